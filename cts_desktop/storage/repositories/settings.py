"""Persistence for the settings service: a key → JSON value table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from cts_desktop.storage.database import Database, dialect_insert
from cts_desktop.storage.models import Setting, metadata, utc_now

_settings = metadata.tables["settings"]


class SettingsRepository:
    """Raw storage only: validation and defaults belong to the settings service, which can
    then treat an unknown or invalid stored value as a warning instead of a crash."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def load_all(self) -> dict[str, Any]:
        async with self._database.engine.connect() as connection:
            result = await connection.execute(select(Setting.key, Setting.value))
            return {key: value for key, value in result}

    async def save_many(self, values: Mapping[str, Any], actor: str) -> None:
        """Upsert all ``values`` in one transaction: a settings page is saved whole or not at all."""
        if not values:
            return
        now = utc_now()
        rows = [
            {"key": key, "value": value, "updated_at": now, "updated_by": str(actor)}
            for key, value in values.items()
        ]
        statement = dialect_insert(self._database.backend, _settings)
        statement = statement.on_conflict_do_update(
            index_elements=[_settings.c.key],
            set_={
                "value": statement.excluded.value,
                "updated_at": statement.excluded.updated_at,
                "updated_by": statement.excluded.updated_by,
            },
        )
        async with self._database.engine.begin() as connection:
            await connection.execute(statement, rows)
