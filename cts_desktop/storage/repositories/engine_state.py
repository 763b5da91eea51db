"""The persisted engine state (D15): one row per connection plus the global row.

The original wrote ``state`` on stop while the engine read ``status``; here there is one
column holding one enum, and the coordinator is its only writer. Transition rules live in the
coordinator; this repository stores what it is told, plus two derived fields:

* ``started_at`` is set on entering ``starting`` (or ``running`` with no start recorded);
* ``error_count`` counts ``error`` entries since the engine was last ``stopped`` or ``idle``,
  which is what a retry backoff needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select

from cts_desktop.domain.enums import EngineState
from cts_desktop.storage.database import Database, dialect_insert
from cts_desktop.storage.models import GLOBAL_ENGINE_SCOPE, metadata, utc_now

_states = metadata.tables["engine_states"]
_RESETS_ERRORS = (EngineState.STOPPED.value, EngineState.IDLE.value)


@dataclass(frozen=True, slots=True)
class EngineStateRecord:
    connection_id: str | None
    state: EngineState
    reason: str
    updated_at: datetime
    started_at: datetime | None
    error_count: int


class EngineStateRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, connection_id: str | None) -> EngineStateRecord | None:
        """The state of one connection's engine, or the global state for ``None``."""
        scope = connection_id or GLOBAL_ENGINE_SCOPE
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(select(_states).where(_states.c.scope == scope))).first()
        return _record(row._asdict()) if row is not None else None

    async def all(self) -> list[EngineStateRecord]:
        """Every stored state, global first, for restoring the engines at start."""
        statement = select(_states).order_by(_states.c.connection_id.is_not(None), _states.c.scope)
        async with self._database.engine.connect() as connection:
            return [_record(row._asdict()) for row in await connection.execute(statement)]

    async def set(self, connection_id: str | None, state: EngineState, reason: str = "") -> EngineStateRecord:
        """Store ``state`` in a single upsert and return the row as stored (with its derived
        ``started_at`` and ``error_count``, so no caller restates those rules).

        One statement, no read first: with SQLite a read-then-write transaction can fail when
        another connection commits in between, and the coordinator must never lose a state.
        """
        state = EngineState(state)
        now = utc_now()
        statement = dialect_insert(self._database.backend, _states).values(
            scope=connection_id or GLOBAL_ENGINE_SCOPE,
            connection_id=connection_id,
            state=state.value,
            reason=reason,
            updated_at=now,
            started_at=now if state in (EngineState.STARTING, EngineState.RUNNING) else None,
            error_count=1 if state is EngineState.ERROR else 0,
        )
        new = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[_states.c.scope],
            set_={
                "state": new.state,
                "reason": new.reason,
                "updated_at": new.updated_at,
                "started_at": case(
                    (new.state == EngineState.STARTING.value, new.updated_at),
                    (
                        (new.state == EngineState.RUNNING.value) & _states.c.started_at.is_(None),
                        new.updated_at,
                    ),
                    else_=_states.c.started_at,
                ),
                "error_count": case(
                    (new.state == EngineState.ERROR.value, _states.c.error_count + 1),
                    (new.state.in_(_RESETS_ERRORS), 0),
                    else_=_states.c.error_count,
                ),
            },
        )
        async with self._database.engine.begin() as connection:
            row = (await connection.execute(statement.returning(*_states.c))).one()
        return _record(row._asdict())


def _record(row: Mapping[str, Any]) -> EngineStateRecord:
    return EngineStateRecord(
        connection_id=row["connection_id"],
        state=EngineState(row["state"]),
        reason=row["reason"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        error_count=row["error_count"],
    )
