"""The audit log: who or what (actor) did what (action on an entity), why (reason) and when.

Every engine state change and every order goes through here, so that after an incident the
question "why did it do that?" has an answer in the database and not only in a rotated log file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from cts_desktop.storage.database import Database
from cts_desktop.storage.models import AuditLog, utc_now


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    connection_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


class AuditRepository:
    """Append-only: there is deliberately no update or delete."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def record(
        self,
        *,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str | None,
        reason: str = "",
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        connection_id: str | None = None,
    ) -> None:
        """``actor`` is usually an :class:`~cts_desktop.domain.enums.Actor`; any text is kept
        so that a new kind of actor never needs a migration."""
        values = {
            "at": utc_now(),
            "actor": str(actor),
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "connection_id": connection_id,
            "before": dict(before) if before is not None else None,
            "after": dict(after) if after is not None else None,
            "reason": reason,
        }
        async with self._database.engine.begin() as connection:
            await connection.execute(insert(AuditLog), [values])

    async def recent(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries (of one ``action``, if given), newest first."""
        statement = (
            select(
                AuditLog.id,
                AuditLog.at,
                AuditLog.actor,
                AuditLog.action,
                AuditLog.entity_type,
                AuditLog.entity_id,
                AuditLog.connection_id,
                AuditLog.before,
                AuditLog.after,
                AuditLog.reason,
            )
            .order_by(AuditLog.at.desc(), AuditLog.id.desc())
            .limit(limit)
        )
        if action is not None:
            statement = statement.where(AuditLog.action == action)
        async with self._database.engine.connect() as connection:
            result = await connection.execute(statement)
            return [AuditEntry(**row._asdict()) for row in result]
