"""Repositories against a real SQLite file: round trips and the rules the schema enforces."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from cts_desktop.domain.enums import Actor, EngineState, TradingMode
from cts_desktop.storage.database import Database
from cts_desktop.storage.models import (
    Candle,
    Fill,
    IndicationSignal,
    Order,
    PseudoEntry,
    PseudoSet,
    RealPosition,
    Setting,
    new_id,
)
from cts_desktop.storage.repositories import (
    AuditRepository,
    ConnectionInUseError,
    ConnectionRecord,
    ConnectionRepository,
    EngineStateRepository,
    LogEntry,
    SettingsRepository,
    SystemLogRepository,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _order(db: Database, connection_id: str, client_order_id: str, **extra: Any) -> str:
    order_id = new_id()
    values = {
        "id": order_id,
        "client_order_id": client_order_id,
        "connection_id": connection_id,
        "symbol": "BTC/USDT:USDT",
        "side": "buy",
        "order_type": "limit",
        "price": 60000.0,
        "amount": 0.01,
        "mode": TradingMode.PAPER.value,
        **extra,
    }
    async with db.engine.begin() as connection:
        await connection.execute(insert(Order), [values])
    return order_id


# --------------------------------------------------------------------------- settings


@pytest.mark.asyncio
async def test_settings_round_trip_and_upsert(db: Database) -> None:
    settings = SettingsRepository(db)
    assert await settings.load_all() == {}
    values = {"ui.theme": "dark", "risk.max_open": 10, "pf.min": 0.6, "flags": {"a": [1, 2]}, "none": None}
    await settings.save_many(values, Actor.USER)
    assert await settings.load_all() == values

    await settings.save_many({"ui.theme": "light", "new": True}, Actor.SYSTEM)
    assert await settings.load_all() == {**values, "ui.theme": "light", "new": True}
    async with db.engine.connect() as connection:
        rows = dict((await connection.execute(select(Setting.key, Setting.updated_by))).all())
    assert rows["ui.theme"] == "system"
    assert rows["risk.max_open"] == "user"

    await settings.save_many({}, "user")  # nothing to do, no error


@pytest.mark.asyncio
async def test_settings_are_saved_all_or_nothing(db: Database) -> None:
    settings = SettingsRepository(db)
    await settings.save_many({"a": 1}, "user")
    with pytest.raises(StatementError):
        await settings.save_many({"a": 2, "b": object()}, "user")
    with pytest.raises(StatementError):  # PostgreSQL would refuse NaN; refuse it everywhere
        await settings.save_many({"a": 3, "c": float("nan")}, "user")
    assert await settings.load_all() == {"a": 1}


# --------------------------------------------------------------------------- audit


@pytest.mark.asyncio
async def test_audit_entries_come_back_newest_first(db: Database) -> None:
    audit = AuditRepository(db)
    await audit.record(actor=Actor.USER, action="settings.update", entity_type="settings", entity_id=None)
    await audit.record(
        actor=Actor.CIRCUIT_BREAKER,
        action="engine.state",
        entity_type="engine",
        entity_id="c-1",
        connection_id="c-1",
        reason="3 order rejections in 60 s",
        before={"state": EngineState.RUNNING},
        after={"state": EngineState.PAUSED, "at": T0, "limit": Decimal("0.10")},
    )
    entries = await audit.recent()
    assert [entry.action for entry in entries] == ["engine.state", "settings.update"]
    newest = entries[0]
    assert newest.actor == "circuit_breaker"
    assert newest.connection_id == "c-1"  # kept even though no such connection exists (no FK)
    assert newest.reason == "3 order rejections in 60 s"
    assert newest.before == {"state": "running"}
    assert newest.after == {"state": "paused", "at": T0.isoformat(), "limit": "0.10"}
    assert newest.at.tzinfo is UTC
    assert entries[1].before is None and entries[1].after is None and entries[1].reason == ""
    assert len(await audit.recent(limit=1)) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        newest.reason = "edited"  # type: ignore[misc]


# --------------------------------------------------------------------------- system log


@pytest.mark.asyncio
async def test_system_log_batches_and_level_filter(db: Database) -> None:
    repository = SystemLogRepository(db)
    await repository.write_batch([])
    batch = [
        LogEntry(at=T0, level="DEBUG", logger="cts.engine", message="tick"),
        LogEntry(at=T0 + timedelta(seconds=1), level="INFO", logger="cts.engine", message="started"),
        LogEntry(
            at=T0 + timedelta(seconds=2),
            level="WARNING",
            logger="cts.ex",
            message="slow",
            connection_id="c-1",
        ),
        LogEntry(at=T0 + timedelta(seconds=3), level="ERROR", logger="cts.ex", message="rejected: ü €"),
    ]
    await repository.write_batch(batch)
    everything = await repository.recent()
    assert everything == list(reversed(batch))
    assert everything[0].at == T0 + timedelta(seconds=3)  # microseconds and UTC survive
    assert await repository.recent(min_level=logging.WARNING) == [batch[3], batch[2]]
    assert await repository.recent(limit=2, min_level=logging.DEBUG) == [batch[3], batch[2]]


@pytest.mark.asyncio
async def test_a_batch_is_one_insert(db: Database) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    from sqlalchemy import event

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        entries = [LogEntry(at=T0, level="INFO", logger="x", message=str(i)) for i in range(500)]
        await SystemLogRepository(db).write_batch(entries)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1


# --------------------------------------------------------------------------- connections


@pytest.mark.asyncio
async def test_connection_crud(db: Database) -> None:
    repository = ConnectionRepository(db)
    created = await repository.create(
        name="Bybit X03",
        exchange="bybit",
        api_type="unified",
        is_testnet=True,
        settings={"pf_min_base": 0.6, "trailing": True},
        api_capabilities=["unified", "hedge_mode"],
    )
    assert isinstance(created, ConnectionRecord)
    assert created.created_at.tzinfo is UTC
    assert (created.margin_mode, created.position_mode, created.is_enabled, created.is_live_trade) == (
        "cross",
        "hedge",
        False,
        False,
    )
    assert await repository.get(created.id) == created
    other = await repository.create(name="Binance", exchange="binance")
    assert [record.name for record in await repository.list()] == ["Binance", "Bybit X03"]

    await asyncio.sleep(0.001)
    updated = await repository.update(
        created.id, is_enabled=True, is_live_trade=True, live_volume_factor=2.5, last_test_balance=1234.5
    )
    assert (updated.is_enabled, updated.is_live_trade, updated.live_volume_factor) == (True, True, 2.5)
    assert updated.last_test_balance == 1234.5
    assert updated.updated_at > created.updated_at
    assert updated.created_at == created.created_at
    assert await repository.get(created.id) == updated

    assert await repository.delete(other.id) is True
    assert await repository.get(other.id) is None
    assert await repository.delete(other.id) is False


@pytest.mark.asyncio
async def test_connection_update_refuses_bad_input(db: Database) -> None:
    repository = ConnectionRepository(db)
    record = await repository.create(name="OKX", exchange="okx")
    with pytest.raises(ValueError, match="api_secret"):
        await repository.update(record.id, api_secret="nope")
    with pytest.raises(ValueError, match="created_at"):
        await repository.update(record.id, created_at=T0)
    with pytest.raises(LookupError):
        await repository.update("missing", name="x")
    with pytest.raises(IntegrityError):  # DOMAIN §5: live trade requires an enabled connection
        await repository.update(record.id, is_live_trade=True)
    with pytest.raises(IntegrityError):
        await repository.update(record.id, margin_mode="portfolio")
    assert await repository.get(record.id) == record


def test_a_connection_record_has_no_place_for_credentials() -> None:
    names = {field.name for field in dataclasses.fields(ConnectionRecord)}
    assert not {
        name for name in names if any(word in name for word in ("key", "secret", "passphrase", "password"))
    }


@pytest.mark.asyncio
async def test_deleting_a_connection_with_orders_is_refused(db: Database) -> None:
    repository = ConnectionRepository(db)
    record = await repository.create(name="Binance", exchange="binance")
    order_id = await _order(db, record.id, "cts-1")
    with pytest.raises(ConnectionInUseError, match="disable it instead"):
        await repository.delete(record.id)
    assert await repository.get(record.id) == record
    async with db.engine.connect() as connection:
        assert (await connection.execute(select(Order.id))).scalars().all() == [order_id]


@pytest.mark.asyncio
async def test_deleting_a_connection_removes_only_its_derived_data(db: Database) -> None:
    repository = ConnectionRepository(db)
    record = await repository.create(name="Bybit", exchange="bybit", is_enabled=True)
    await EngineStateRepository(db).set(record.id, EngineState.STOPPED)
    set_id = new_id()
    async with db.engine.begin() as connection:
        await connection.execute(
            insert(PseudoSet),
            [
                {
                    "id": set_id,
                    "connection_id": record.id,
                    "symbol": "ETH/USDT:USDT",
                    "level": "base",
                    "indication_type": "direction",
                    "direction": "long",
                    "config_key": "tp2-sl1",
                    "params": {"tp": 2, "sl": 1},
                }
            ],
        )
        await connection.execute(
            insert(PseudoEntry),
            [{"set_id": set_id, "opened_at": T0, "entry_price": 3000.0} for _ in range(3)],
        )
        await connection.execute(
            insert(IndicationSignal),
            [
                {
                    "connection_id": record.id,
                    "symbol": "ETH/USDT:USDT",
                    "indication_type": "move",
                    "mode": "main",
                    "direction": "short",
                    "value": 0.4,
                }
            ],
        )
    assert await repository.delete(record.id) is True
    async with db.engine.connect() as connection:
        for model in (PseudoSet, PseudoEntry, IndicationSignal):
            assert (await connection.execute(select(func.count()).select_from(model))).scalar_one() == 0
    assert await EngineStateRepository(db).get(record.id) is None


# --------------------------------------------------------------------------- engine state


@pytest.mark.asyncio
async def test_engine_state_round_trip_and_derived_fields(db: Database) -> None:
    states = EngineStateRepository(db)
    connection = await ConnectionRepository(db).create(name="Bybit", exchange="bybit")
    assert await states.get(None) is None
    assert await states.get(connection.id) is None

    await states.set(None, EngineState.RUNNING, "auto start")
    global_state = await states.get(None)
    assert global_state is not None
    assert (global_state.connection_id, global_state.state, global_state.reason) == (
        None,
        EngineState.RUNNING,
        "auto start",
    )
    assert global_state.started_at == global_state.updated_at

    await states.set(connection.id, EngineState.STARTING)
    started = await states.get(connection.id)
    assert started is not None and started.started_at is not None
    await states.set(connection.id, EngineState.RUNNING)
    await states.set(connection.id, EngineState.ERROR, "exchange unreachable")
    await states.set(connection.id, EngineState.STARTING, "retry")
    await states.set(connection.id, EngineState.ERROR, "exchange unreachable")
    failing = await states.get(connection.id)
    assert failing is not None
    assert (failing.state, failing.error_count, failing.reason) == (
        EngineState.ERROR,
        2,
        "exchange unreachable",
    )
    assert failing.started_at is not None and failing.started_at > started.started_at

    await states.set(connection.id, EngineState.STOPPED, "user stop")
    stopped = await states.get(connection.id)
    assert stopped is not None
    assert (stopped.state, stopped.error_count) == (EngineState.STOPPED, 0)
    assert stopped.started_at == failing.started_at  # the last start stays visible

    assert [(s.connection_id, s.state) for s in await states.all()] == [
        (None, EngineState.RUNNING),
        (connection.id, EngineState.STOPPED),
    ]
    assert (await states.get(None)) == global_state  # one global row, untouched


@pytest.mark.asyncio
async def test_engine_state_refuses_unknown_states_and_connections(db: Database) -> None:
    states = EngineStateRepository(db)
    with pytest.raises(ValueError):
        await states.set(None, "exploded")  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        await states.set("no-such-connection", EngineState.IDLE)
    async with db.engine.begin() as connection:  # the CHECK backs up the enum
        with pytest.raises(IntegrityError):
            await connection.exec_driver_sql(
                "INSERT INTO engine_states (scope, state, reason, updated_at, error_count) "
                "VALUES ('global', 'status', '', '2025-01-01 00:00:00', 0)"
            )


# --------------------------------------------------------------------------- trading tables


@pytest.mark.asyncio
async def test_client_order_ids_are_unique(db: Database) -> None:
    connection = await ConnectionRepository(db).create(name="Binance", exchange="binance")
    await _order(db, connection.id, "cts-abc")
    with pytest.raises(IntegrityError):
        await _order(db, connection.id, "cts-abc")


@pytest.mark.asyncio
async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError):
        await _order(db, "no-such-connection", "cts-1")
    async with db.engine.begin() as connection:
        with pytest.raises(IntegrityError):
            await connection.execute(
                insert(Fill),
                [
                    {
                        "order_id": "no-such-order",
                        "exchange_trade_id": "t1",
                        "price": 1.0,
                        "amount": 1.0,
                        "at": T0,
                    }
                ],
            )


@pytest.mark.asyncio
async def test_orders_fills_and_positions_round_trip_through_the_orm(db: Database) -> None:
    connection = await ConnectionRepository(db).create(name="Binance", exchange="binance")
    async with db.sessions() as session:
        position = RealPosition(
            connection_id=connection.id,
            symbol="BTC/USDT:USDT",
            side="long",
            mode="paper",
            entry_price=60000.0,
            quantity=0.01,
            trailing={"start": 0.5, "stop": 0.2},
            opened_at=T0.astimezone(timezone(timedelta(hours=2))),
        )
        session.add(position)
        await session.flush()
        order = Order(
            client_order_id="cts-xyz",
            connection_id=connection.id,
            real_position_id=position.id,
            symbol="BTC/USDT:USDT",
            side="buy",
            order_type="market",
            amount=0.01,
            mode="paper",
        )
        session.add(order)
        await session.flush()
        session.add(
            Fill(order_id=order.id, exchange_trade_id="t-1", price=60010.0, amount=0.01, fee=0.06, at=T0)
        )
        await session.commit()
    async with db.sessions() as session:
        stored = (await session.execute(select(Order).where(Order.client_order_id == "cts-xyz"))).scalar_one()
        assert (stored.status, stored.time_in_force, stored.filled, stored.reduce_only) == (
            "pending_create",
            "GTC",
            0.0,
            False,
        )
        stored_position = await session.get(RealPosition, position.id)
        assert stored_position is not None
        assert stored_position.opened_at == T0 and stored_position.opened_at.tzinfo is UTC
        assert stored_position.trailing == {"start": 0.5, "stop": 0.2}
        stored.status = "lost"
        await session.commit()
    async with db.sessions() as session:
        stored.status = "bogus"
        session.add(stored)
        with pytest.raises(IntegrityError):
            await session.commit()
    async with db.engine.begin() as conn:  # the same exchange trade twice is refused
        with pytest.raises(IntegrityError):
            await conn.execute(
                insert(Fill),
                [{"order_id": order.id, "exchange_trade_id": "t-1", "price": 1.0, "amount": 1.0, "at": T0}],
            )


@pytest.mark.asyncio
async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.engine.begin() as connection:
            await connection.execute(
                insert(Fill),
                [
                    {
                        "order_id": "x",
                        "exchange_trade_id": "t",
                        "price": 1.0,
                        "amount": 1.0,
                        "at": datetime(2025, 1, 1),
                    }
                ],
            )


@pytest.mark.asyncio
async def test_candles_are_keyed_by_exchange_symbol_timeframe_and_time(db: Database) -> None:
    bar = {"exchange": "bybit", "symbol": "BTC/USDT", "timeframe": "1m", "ts": 1_700_000_000_000,
           "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0}  # fmt: skip
    async with db.engine.begin() as connection:
        await connection.execute(
            insert(Candle), [bar, {**bar, "timeframe": "5m"}, {**bar, "ts": bar["ts"] + 60_000}]
        )
    async with db.engine.begin() as connection:
        with pytest.raises(IntegrityError):
            await connection.execute(insert(Candle), [bar])
