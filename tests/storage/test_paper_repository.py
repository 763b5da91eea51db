"""The paper venue's storage: round trips, one-transaction writes, the rules the schema enforces,
and migration 0003 on a database that already holds trading data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from cts_desktop.domain.market import (
    MarginMode,
    OrderSide,
    OrderType,
    PositionMode,
    PositionSide,
    TimeInForce,
    VenueOrderStatus,
)
from cts_desktop.storage.database import HEAD_REVISION, Database, alembic_config, make_engine
from cts_desktop.storage.repositories import (
    ConnectionInUseError,
    ConnectionRepository,
    PaperAccountRecord,
    PaperBalanceRecord,
    PaperChanges,
    PaperFillRecord,
    PaperOrderRecord,
    PaperPositionRecord,
    PaperRepository,
    PaperSymbolSettingRecord,
    new_account_record,
)
from tests.storage.conftest import create_at_revision, sqlite_revision
from tests.storage.test_migrations import schema_diff

BTC = "BTC/USDT:USDT"
PAPER_TABLES = {
    "paper_accounts",
    "paper_balances",
    "paper_symbol_settings",
    "paper_orders",
    "paper_fills",
    "paper_positions",
}


def _account(account_id: str = "acc", connection_id: str | None = None) -> PaperAccountRecord:
    return new_account_record(
        id=account_id,
        connection_id=connection_id,
        name="Paper",
        quote="USDT",
        starting_balance=10_000.0,
        position_mode=PositionMode.HEDGE,
        margin_mode=MarginMode.CROSS,
        maker_fee=None,
        taker_fee=0.0004,
        slippage_bps=5.0,
        max_slippage_bps=50.0,
        volume_impact_bps=0.0,
        partial_fill_ratio=0.5,
        volume_share=0.1,
        default_leverage=1.0,
    )


async def _create(
    repository: PaperRepository, account_id: str = "acc", connection_id: str | None = None
) -> PaperAccountRecord:
    account = _account(account_id, connection_id)
    return await repository.create_account(account, [PaperBalanceRecord("USDT", 10_000.0, 0.0)])


def _order(order_id: str = "o1", client_order_id: str = "c1", **changes: object) -> PaperOrderRecord:
    values: dict[str, object] = {
        "id": order_id,
        "client_order_id": client_order_id,
        "symbol": BTC,
        "side": OrderSide.BUY,
        "type": OrderType.LIMIT,
        "status": VenueOrderStatus.OPEN,
        "amount": 0.1,
        "filled": 0.0,
        "price": 59_000.0,
        "stop_price": None,
        "average": None,
        "fee": 0.0,
        "fee_currency": "USDT",
        "reduce_only": False,
        "position_side": PositionSide.LONG,
        "time_in_force": TimeInForce.GTC,
        "leverage": 10.0,
        "take_profit": 61_000.0,
        "stop_loss": None,
        "reserved": 590.0,
        "reject_reason": None,
        "created_ms": 1_000,
        "updated_ms": 1_000,
    }
    values.update(changes)
    return PaperOrderRecord(**values)  # type: ignore[arg-type]


def _fill(order_id: str = "o1", amount: float = 0.1, ts_ms: int = 2_000) -> PaperFillRecord:
    return PaperFillRecord(
        id=None,
        order_id=order_id,
        symbol=BTC,
        side=OrderSide.BUY,
        price=59_000.0,
        amount=amount,
        fee=1.18,
        fee_currency="USDT",
        maker=True,
        realized_pnl=0.0,
        ts_ms=ts_ms,
    )


LONG = PaperPositionRecord(BTC, PositionSide.LONG, 0.1, 59_000.0, 10.0, MarginMode.CROSS, 590.0, -1.18)


@pytest.mark.asyncio
async def test_create_and_load_an_account(db: Database) -> None:
    repository = PaperRepository(db)
    assert await repository.load_account("acc") is None
    created = await _create(repository)
    state = await repository.load_account("acc")
    assert state is not None
    assert state.account == created  # every field, created_at included, survives the round trip
    assert state.balances == {"USDT": PaperBalanceRecord("USDT", 10_000.0, 0.0)}
    assert (state.open_orders, state.positions, state.symbol_settings) == ([], [], {})
    assert await repository.get_account("acc") == state.account
    assert [a.id for a in await repository.list_accounts()] == ["acc"]


@pytest.mark.asyncio
async def test_a_fill_is_written_in_one_transaction(db: Database) -> None:
    repository = PaperRepository(db)
    await _create(repository)
    placed = _order()
    await repository.apply(
        "acc",
        PaperChanges(
            orders={placed.id: placed},
            balances={"USDT": PaperBalanceRecord("USDT", 9_410.0, 590.0)},
            symbol_settings={BTC: PaperSymbolSettingRecord(BTC, 10.0, MarginMode.CROSS)},
        ),
    )
    filled = _order(status=VenueOrderStatus.FILLED, filled=0.1, average=59_000.0, fee=1.18, reserved=0.0)
    await repository.apply(
        "acc",
        PaperChanges(
            orders={filled.id: filled},
            fills=[_fill()],
            balances={"USDT": PaperBalanceRecord("USDT", 9_408.82, 590.0)},
            positions={(BTC, PositionSide.LONG): LONG},
        ),
    )
    state = await repository.load_account("acc")
    assert state is not None
    assert state.open_orders == []  # final orders are not loaded as live state
    assert state.balances["USDT"] == PaperBalanceRecord("USDT", 9_408.82, 590.0)
    assert state.positions == [LONG]
    assert state.symbol_settings == {BTC: PaperSymbolSettingRecord(BTC, 10.0, MarginMode.CROSS)}
    assert await repository.get_order("acc", "o1") == filled
    assert await repository.get_order_by_client_id("acc", "c1") == filled
    (fill,) = await repository.list_fills("acc", symbol=BTC)
    assert fill.id is not None and (fill.symbol, fill.side, fill.amount) == (BTC, OrderSide.BUY, 0.1)

    # Going flat deletes the position row.
    await repository.apply("acc", PaperChanges(positions={(BTC, PositionSide.LONG): None}))
    state = await repository.load_account("acc")
    assert state is not None and state.positions == []


@pytest.mark.asyncio
async def test_a_failed_write_changes_nothing(db: Database) -> None:
    """A fill for an order that does not exist breaks the foreign key: the order, balance and
    position written in the same call must not remain either."""
    repository = PaperRepository(db)
    await _create(repository)
    with pytest.raises(IntegrityError):
        await repository.apply(
            "acc",
            PaperChanges(
                orders={"o1": _order()},
                fills=[_fill(order_id="missing")],
                balances={"USDT": PaperBalanceRecord("USDT", 1.0, 2.0)},
                positions={(BTC, PositionSide.LONG): LONG},
            ),
        )
    state = await repository.load_account("acc")
    assert state is not None
    assert state.balances["USDT"] == PaperBalanceRecord("USDT", 10_000.0, 0.0)
    assert (state.open_orders, state.positions) == ([], [])
    await repository.apply("acc", PaperChanges())  # nothing to write is not an error


@pytest.mark.asyncio
async def test_client_ids_are_unique_per_account_and_children_follow_parents(db: Database) -> None:
    repository = PaperRepository(db)
    await _create(repository, "a")
    await _create(repository, "b")
    await repository.apply("a", PaperChanges(orders={"o1": _order()}))
    await repository.apply("b", PaperChanges(orders={"o2": _order("o2")}))  # same client id elsewhere
    with pytest.raises(IntegrityError):
        await repository.apply("a", PaperChanges(orders={"o3": _order("o3")}))
    # A child written in the same call as its parent, listed first: the parent still goes in first.
    child = _order("k1", "p:tp", type=OrderType.TAKE_PROFIT, parent_id="p", price=None, stop_price=61_000.0)
    parent = _order("p", "p")
    await repository.apply("a", PaperChanges(orders={child.id: child, parent.id: parent}))
    assert (await repository.get_order("a", "k1")) == child
    newest = await repository.list_orders("a", open_only=True, limit=10)
    assert {o.id for o in newest} == {"o1", "p", "k1"}


@pytest.mark.asyncio
async def test_fills_keep_their_execution_order(db: Database) -> None:
    repository = PaperRepository(db)
    await _create(repository)
    await repository.apply("acc", PaperChanges(orders={"o1": _order(amount=0.3)}))
    # Three fills in one millisecond keep the order they were written in.
    await repository.apply("acc", PaperChanges(fills=[_fill(amount=a, ts_ms=5) for a in (0.3, 0.1, 0.2)]))
    fills = await repository.list_fills("acc")
    assert [f.amount for f in fills] == [0.3, 0.1, 0.2]
    assert [f.amount for f in await repository.list_fills("acc", since_ms=6)] == []
    assert [f.amount for f in await repository.list_fills("acc", order_id="o1", limit=1)] == [0.3]


@pytest.mark.asyncio
async def test_fill_stats_count_the_accounts_fills_and_find_the_first(db: Database) -> None:
    repository = PaperRepository(db)
    await _create(repository, "a")
    await _create(repository, "b")
    assert await repository.fill_stats("a") == (0, None)  # no fill yet
    await repository.apply("a", PaperChanges(orders={"o1": _order(amount=0.3)}))
    await repository.apply("b", PaperChanges(orders={"o2": _order("o2", "c2")}))
    # Written out of time order: the first fill is the earliest timestamp, not the first row.
    await repository.apply(
        "a", PaperChanges(fills=[_fill(amount=0.1, ts_ms=t) for t in (9_000, 4_000, 7_000)])
    )
    await repository.apply("b", PaperChanges(fills=[_fill("o2", ts_ms=1_000)]))  # another account's

    assert await repository.fill_stats("a") == (3, 4_000)
    assert await repository.fill_stats("b") == (1, 1_000)
    assert await repository.fill_stats("missing") == (0, None)
    fills = await repository.list_fills("a")  # the same figures as loading every fill
    assert (len(fills), min(f.ts_ms for f in fills)) == (3, 4_000)


@pytest.mark.asyncio
async def test_a_connection_with_a_paper_account_cannot_be_deleted(db: Database) -> None:
    connections = ConnectionRepository(db)
    record = await connections.create(name="Bybit X03", exchange="bybit")
    repository = PaperRepository(db)
    await _create(repository, "acc", connection_id=record.id)
    with pytest.raises(ConnectionInUseError):
        await connections.delete(record.id)
    # Deleting the account removes its whole paper state, and then the connection can go.
    await repository.apply(
        "acc",
        PaperChanges(orders={"o1": _order()}, fills=[_fill()], positions={(BTC, PositionSide.LONG): LONG}),
    )
    assert await repository.delete_account("acc")
    assert not await repository.delete_account("acc")
    async with db.engine.connect() as connection:
        for table in PAPER_TABLES:
            count = (await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()
            assert count == 0, table
    assert await connections.delete(record.id)


# --------------------------------------------------------------------------- migration 0003


def _insert_0002_rows(path: Path) -> None:
    """Trading rows as release 0002 wrote them (plain SQL: the models describe head)."""
    connection = sqlite3.connect(path)
    stamp = "2025-01-01 12:00:00.000000"
    connection.execute(
        """INSERT INTO connections (id, name, exchange, api_type, connection_method, margin_mode,
               position_mode, is_testnet, is_enabled, is_live_trade, is_preset_trade, is_predefined,
               live_volume_factor, preset_volume_factor, settings, api_capabilities, restart_required,
               created_at, updated_at)
           VALUES ('c-1', 'BingX X01', 'bingx', 'perpetual_futures', 'library', 'cross', 'hedge', 0, 1,
                   0, 0, 1, 1.0, 1.0, '{}', '[]', 0, ?, ?)""",
        (stamp, stamp),
    )
    connection.execute(
        """INSERT INTO orders (id, client_order_id, connection_id, symbol, side, order_type, time_in_force,
               price, amount, filled, status, mode, reduce_only, created_at, updated_at)
           VALUES ('o-1', 'cid-1', 'c-1', 'BTC/USDT:USDT', 'buy', 'limit', 'GTC', 60000.0, 0.01, 0.01,
                   'filled', 'paper', 0, ?, ?)""",
        (stamp, stamp),
    )
    connection.execute(
        """INSERT INTO fills (id, order_id, exchange_trade_id, price, amount, fee, at)
           VALUES ('f-1', 'o-1', 't-1', 60000.0, 0.01, 0.12, ?)""",
        (stamp,),
    )
    connection.commit()
    connection.close()


@pytest.mark.asyncio
async def test_upgrading_from_0002_keeps_the_trading_data(db_path: Path, backup_dir: Path) -> None:
    await create_at_revision(db_path, "0002")
    _insert_0002_rows(db_path)

    database = await Database.open(str(db_path), backup_dir=backup_dir)
    try:
        assert (await database.info()).revision == HEAD_REVISION
        async with database.engine.connect() as connection:
            assert await connection.run_sync(schema_diff) == []
            orders = (await connection.execute(sa.text("SELECT id, status, amount FROM orders"))).all()
            fills = (await connection.execute(sa.text("SELECT id, fee FROM fills"))).all()
        assert [tuple(row) for row in orders] == [("o-1", "filled", 0.01)]
        assert [tuple(row) for row in fills] == [("f-1", 0.12)]
        connection_record = await ConnectionRepository(database).get("c-1")
        assert connection_record is not None and connection_record.name == "BingX X01"
        # The new tables work and may refer to the old rows.
        repository = PaperRepository(database)
        await _create(repository, "acc", connection_id="c-1")
        assert (await repository.load_account("acc")) is not None
    finally:
        await database.close()
    (backup,) = backup_dir.iterdir()
    assert sqlite_revision(backup) == "0002"


@pytest.mark.asyncio
async def test_downgrading_0003_drops_only_the_paper_tables(db_path: Path) -> None:
    await create_at_revision(db_path, "0002")
    _insert_0002_rows(db_path)
    await create_at_revision(db_path, "0003")
    engine = make_engine(f"sqlite+aiosqlite:///{db_path}", foreign_keys=False, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: command.downgrade(alembic_config(c), "0002"))
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
            orders = (await connection.execute(sa.text("SELECT count(*) FROM orders"))).scalar_one()
    finally:
        await engine.dispose()
    assert not tables & PAPER_TABLES
    assert {"orders", "fills", "connections"} <= tables
    assert orders == 1
    assert sqlite_revision(db_path) == "0002"


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_paper_repository_on_postgres(postgres_url: str) -> None:
    database = await Database.open(postgres_url)
    try:
        repository = PaperRepository(database)
        await _create(repository)
        await repository.apply(
            "acc",
            PaperChanges(
                orders={"o1": _order(status=VenueOrderStatus.FILLED, filled=0.1, reserved=0.0)},
                fills=[_fill()],
                balances={"USDT": PaperBalanceRecord("USDT", 9_408.82, 590.0)},
                positions={(BTC, PositionSide.LONG): LONG},
                symbol_settings={BTC: PaperSymbolSettingRecord(BTC, 10.0, MarginMode.ISOLATED)},
            ),
        )
        # The same rows again: every write is an upsert except the fills.
        await repository.apply(
            "acc",
            PaperChanges(
                balances={"USDT": PaperBalanceRecord("USDT", 9_400.0, 600.0)},
                positions={(BTC, PositionSide.LONG): LONG},
            ),
        )
        state = await repository.load_account("acc")
        assert state is not None
        assert state.balances["USDT"] == PaperBalanceRecord("USDT", 9_400.0, 600.0)
        assert state.positions == [LONG]
        assert state.symbol_settings[BTC].margin_mode is MarginMode.ISOLATED
        assert [f.amount for f in await repository.list_fills("acc")] == [0.1]
        assert await repository.fill_stats("acc") == (1, 2_000)
        with pytest.raises(IntegrityError):
            await repository.apply("acc", PaperChanges(orders={"o9": _order("o9")}))  # duplicate client id
    finally:
        await database.close()
