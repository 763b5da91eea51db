"""The ``system_log`` table: application log records, written in batches by the log sink."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from cts_desktop.storage.database import Database
from cts_desktop.storage.models import SystemLog


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log record; ``level`` is the level name (``record.levelname``), ``at`` is UTC."""

    at: datetime
    level: str
    logger: str
    message: str
    connection_id: str | None = None


def _level_names_at_or_above(min_level: int) -> list[str]:
    """Level names whose number is at least ``min_level``, custom names included.

    Levels without a name (logged as ``"Level 25"``) are not matched; name them with
    ``logging.addLevelName`` if they should be filterable.
    """
    return sorted(name for name, number in logging.getLevelNamesMapping().items() if number >= min_level)


class SystemLogRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        """One INSERT for the whole batch: per-record transactions would each cost an fsync
        (``synchronous=FULL``) and a busy log could then starve the trading writes."""
        if not entries:
            return
        rows = [
            {
                "at": entry.at,
                "level": entry.level,
                "logger": entry.logger,
                "message": entry.message,
                "connection_id": entry.connection_id,
            }
            for entry in entries
        ]
        async with self._database.engine.begin() as connection:
            await connection.execute(insert(SystemLog), rows)

    async def recent(self, limit: int = 100, min_level: int | None = None) -> list[LogEntry]:
        """The newest ``limit`` records (at ``min_level`` or above when given), newest first."""
        statement = select(
            SystemLog.at, SystemLog.level, SystemLog.logger, SystemLog.message, SystemLog.connection_id
        )
        if min_level is not None:
            statement = statement.where(SystemLog.level.in_(_level_names_at_or_above(min_level)))
        statement = statement.order_by(SystemLog.at.desc(), SystemLog.id.desc()).limit(limit)
        async with self._database.engine.connect() as connection:
            result = await connection.execute(statement)
            return [LogEntry(**row._asdict()) for row in result]
