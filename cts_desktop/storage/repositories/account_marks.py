"""Day-start and peak equity per connection and mode (see ``models.AccountMark`` for why stored)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from cts_desktop.domain.enums import TradingMode
from cts_desktop.storage.database import Database, dialect_insert
from cts_desktop.storage.models import metadata, utc_now

_marks = metadata.tables["account_marks"]


@dataclass(frozen=True, slots=True)
class AccountMarkRecord:
    connection_id: str
    mode: TradingMode
    day: str
    day_start_equity: float
    peak_equity: float


class AccountMarksRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, connection_id: str, mode: TradingMode) -> AccountMarkRecord | None:
        query = select(_marks).where(_marks.c.connection_id == connection_id, _marks.c.mode == mode.value)
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        return AccountMarkRecord(
            row.connection_id, TradingMode(row.mode), row.day, row.day_start_equity, row.peak_equity
        )

    async def save(self, mark: AccountMarkRecord) -> None:
        """Insert or replace the marks in one statement (no read first; see engine_state.py)."""
        values = {
            "connection_id": mark.connection_id,
            "mode": mark.mode.value,
            "day": mark.day,
            "day_start_equity": mark.day_start_equity,
            "peak_equity": mark.peak_equity,
            "updated_at": utc_now(),
        }
        statement = dialect_insert(self._database.backend, _marks).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[_marks.c.connection_id, _marks.c.mode],
            set_={
                key: statement.excluded[key]
                for key in ("day", "day_start_equity", "peak_equity", "updated_at")
            },
        )
        async with self._database.engine.begin() as connection:
            await connection.execute(statement)
