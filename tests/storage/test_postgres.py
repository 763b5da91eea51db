"""The same schema and repositories on a real, throwaway PostgreSQL server (see conftest)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from cts_desktop.domain.enums import Actor, EngineState
from cts_desktop.storage.database import HEAD_REVISION, Database, DatabaseError, current_revision, make_engine
from cts_desktop.storage.models import Order, new_id
from cts_desktop.storage.repositories import (
    AuditRepository,
    ConnectionInUseError,
    ConnectionRepository,
    EngineStateRepository,
    LogEntry,
    SettingsRepository,
    SystemLogRepository,
)
from tests.storage.test_migrations import constraint_rules, model_rules, schema_diff
from tests.storage.test_repositories import T0

pytestmark = pytest.mark.postgres


@pytest.mark.asyncio
async def test_postgres_database_is_migrated_to_head_and_matches_the_models(postgres_server: str) -> None:
    database = await Database.open(postgres_server)
    try:
        info = await database.info()
        assert info.backend == "postgresql"
        assert info.revision == HEAD_REVISION
        assert info.journal_mode is None and info.path is None
        async with database.engine.connect() as connection:
            assert await connection.run_sync(schema_diff) == []
            rules = await connection.run_sync(constraint_rules, False)
        assert rules == model_rules(database.engine.dialect, with_sql=False)

        settings = SettingsRepository(database)
        await settings.save_many({"ui.theme": "dark", "risk.max_open": 10}, Actor.USER)
        await settings.save_many({"ui.theme": "light", "none": None}, Actor.SYSTEM)
        assert await settings.load_all() == {"ui.theme": "light", "risk.max_open": 10, "none": None}
    finally:
        await database.close()

    again = await Database.open(postgres_server)  # already at head: a no-op
    try:
        assert await current_revision(again.engine) == HEAD_REVISION
    finally:
        await again.close()


@pytest.mark.asyncio
async def test_repositories_on_postgres(postgres_url: str) -> None:
    database = await Database.open(postgres_url)
    try:
        connections = ConnectionRepository(database)
        record = await connections.create(name="OKX", exchange="okx", settings={"pf_min_base": 0.6})
        assert await connections.get(record.id) == record
        with pytest.raises(IntegrityError):
            await connections.update(record.id, is_live_trade=True)

        states = EngineStateRepository(database)
        await states.set(record.id, EngineState.ERROR, "boom")
        await states.set(record.id, EngineState.ERROR, "boom")
        await states.set(None, EngineState.RUNNING)
        failing = await states.get(record.id)
        assert failing is not None and failing.error_count == 2
        assert [s.connection_id for s in await states.all()] == [None, record.id]

        audit = AuditRepository(database)
        await audit.record(actor=Actor.USER, action="a", entity_type="t", entity_id="1", after={"at": T0})
        (entry,) = await audit.recent()
        assert entry.after == {"at": T0.isoformat()} and entry.at.tzinfo is not None

        logs = SystemLogRepository(database)
        await logs.write_batch(
            [LogEntry(at=T0, level="ERROR", logger="x", message="m", connection_id=record.id)]
        )
        assert await logs.recent(min_level=40) == [LogEntry(T0, "ERROR", "x", "m", record.id)]

        async with database.engine.begin() as conn:
            await conn.execute(
                insert(Order),
                [
                    {
                        "id": new_id(),
                        "client_order_id": "cts-1",
                        "connection_id": record.id,
                        "symbol": "BTC/USDT:USDT",
                        "side": "sell",
                        "order_type": "market",
                        "amount": 1.0,
                        "mode": "paper",
                    }
                ],
            )
        with pytest.raises(ConnectionInUseError):
            await connections.delete(record.id)
        assert await connections.get(record.id) is not None
    finally:
        await database.close()


@pytest.mark.asyncio
async def test_a_postgres_database_from_a_newer_version_is_refused(postgres_url: str) -> None:
    await (await Database.open(postgres_url)).close()
    database = await Database.open(postgres_url, migrate=False)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await database.close()
    for migrate in (True, False):
        with pytest.raises(DatabaseError, match="newer version of cts-desktop"):
            await Database.open(postgres_url, migrate=migrate)
    engine = make_engine(postgres_url)
    try:
        assert await current_revision(engine) == "9999"  # left as it was
    finally:
        await engine.dispose()
