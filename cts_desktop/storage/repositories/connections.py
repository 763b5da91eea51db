"""Exchange connections as configured by the user (DOMAIN §5), without their credentials.

API keys, secrets and passphrases are never passed to or returned from this repository: they
live in the OS keyring (``cts_desktop.storage.secrets``), keyed by the connection id.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cts_desktop.storage.database import Database
from cts_desktop.storage.models import metadata, new_id, utc_now

_connections = metadata.tables["connections"]


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """One row of ``connections``; field names are the column names."""

    id: str
    name: str
    exchange: str
    api_type: str
    connection_method: str
    margin_mode: str
    position_mode: str
    is_testnet: bool
    is_enabled: bool
    is_live_trade: bool
    is_preset_trade: bool
    is_predefined: bool
    live_volume_factor: float
    preset_volume_factor: float
    preset_type_id: str | None
    settings: dict[str, Any]
    last_test_at: datetime | None
    last_test_status: str | None
    last_test_balance: float | None
    last_test_log: str | None
    api_capabilities: list[str]
    restart_required: bool
    created_at: datetime
    updated_at: datetime


_FIELDS = tuple(field.name for field in fields(ConnectionRecord))
# Identity and bookkeeping are not the caller's to change.
UPDATABLE_FIELDS = frozenset(_FIELDS) - {"id", "created_at", "updated_at"}


class ConnectionInUseError(Exception):
    """The connection still has orders or positions, which must never be deleted with it."""


class ConnectionRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(
        self,
        *,
        name: str,
        exchange: str,
        api_type: str = "perpetual_futures",
        connection_method: str = "library",
        margin_mode: str = "cross",
        position_mode: str = "hedge",
        is_testnet: bool = False,
        is_enabled: bool = False,
        is_live_trade: bool = False,
        is_preset_trade: bool = False,
        is_predefined: bool = False,
        live_volume_factor: float = 1.0,
        preset_volume_factor: float = 1.0,
        preset_type_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
        api_capabilities: Sequence[str] = (),
        id: str | None = None,
    ) -> ConnectionRecord:
        """Insert a connection; new connections are disabled and paper-only unless told otherwise."""
        now = utc_now()
        values: dict[str, Any] = {
            "id": id or new_id(),
            "name": name,
            "exchange": exchange,
            "api_type": api_type,
            "connection_method": connection_method,
            "margin_mode": margin_mode,
            "position_mode": position_mode,
            "is_testnet": is_testnet,
            "is_enabled": is_enabled,
            "is_live_trade": is_live_trade,
            "is_preset_trade": is_preset_trade,
            "is_predefined": is_predefined,
            "live_volume_factor": live_volume_factor,
            "preset_volume_factor": preset_volume_factor,
            "preset_type_id": preset_type_id,
            "settings": dict(settings or {}),
            "last_test_at": None,
            "last_test_status": None,
            "last_test_balance": None,
            "last_test_log": None,
            "api_capabilities": list(api_capabilities),
            "restart_required": False,
            "created_at": now,
            "updated_at": now,
        }
        async with self._database.engine.begin() as connection:
            await connection.execute(insert(_connections), [values])
        return ConnectionRecord(**values)

    async def get(self, id: str) -> ConnectionRecord | None:
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(select(_connections).where(_connections.c.id == id))).first()
        return ConnectionRecord(**row._asdict()) if row is not None else None

    async def list(self) -> builtins.list[ConnectionRecord]:
        """All connections, by name (the order of the connections panel)."""
        statement = select(_connections).order_by(_connections.c.name, _connections.c.created_at)
        async with self._database.engine.connect() as connection:
            result = await connection.execute(statement)
            return [ConnectionRecord(**row._asdict()) for row in result]

    async def update(self, id: str, **changes: Any) -> ConnectionRecord:
        """Change some fields in one statement and return the stored result.

        Raises ``ValueError`` for a field that does not exist or may not change, ``LookupError``
        when there is no such connection, and ``IntegrityError`` when the database refuses the
        values (e.g. live trade on a disabled connection).
        """
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update connection fields {sorted(unknown)}")
        async with self._database.engine.begin() as connection:
            # The UPDATE comes first so the transaction takes the write lock at once.
            result = await connection.execute(
                update(_connections).where(_connections.c.id == id).values(**changes, updated_at=utc_now())
            )
            if result.rowcount == 0:
                raise LookupError(f"no connection with id {id!r}")
            row = (await connection.execute(select(_connections).where(_connections.c.id == id))).one()
        return ConnectionRecord(**row._asdict())

    async def delete(self, id: str) -> bool:
        """Delete a connection and its derived data (engine state, signals, pseudo sets).

        Returns False when there was no such connection. Raises :class:`ConnectionInUseError`
        when it still has orders or positions: trading history outlives its connection
        (disable the connection instead).
        """
        try:
            async with self._database.engine.begin() as connection:
                result = await connection.execute(delete(_connections).where(_connections.c.id == id))
        except IntegrityError as exc:
            raise ConnectionInUseError(
                f"connection {id!r} still has orders or positions and cannot be deleted; disable it instead"
            ) from exc
        return result.rowcount > 0
