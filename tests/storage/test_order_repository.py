"""OrderRepository on a real SQLite file: intents, validated transitions, idempotent fills and the
real positions they move, with hand-computed numbers in the comments."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import OrderSide, OrderType, PositionSide
from cts_desktop.domain.orders import OrderStatus
from cts_desktop.storage.database import Database, alembic_config
from cts_desktop.storage.models import Fill, Order, RealPosition
from cts_desktop.storage.repositories import ConnectionRepository
from cts_desktop.storage.repositories.orders import (
    DuplicateClientOrderIdError,
    IllegalOrderTransition,
    NewOrder,
    OrderChange,
    OrderRepository,
    UnknownOrderError,
    VenueState,
    position_pnl,
    slippage_bps,
    status_after_venue_answer,
)
from tests.storage.test_migrations import constraint_rules, model_rules, schema_diff

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
BTC = "BTC/USDT:USDT"


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


async def connection(db: Database) -> str:
    return (await ConnectionRepository(db).create(name="Paper", exchange="bybit")).id


def intent(connection_id: str, cid: str, **extra: Any) -> NewOrder:
    values: dict[str, Any] = {
        "client_order_id": cid,
        "connection_id": connection_id,
        "symbol": BTC,
        "side": OrderSide.BUY,
        "type": OrderType.MARKET,
        "amount": 0.2,
        "mode": TradingMode.PAPER,
        "intent_price": 60_000.0,
        "created_at": T0,
        "contract_size": 1.0,
        "leverage": 5.0,
    }
    values.update(extra)
    return NewOrder(**values)


async def count(db: Database, model: Any) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


@pytest.mark.asyncio
async def test_the_intent_is_stored_pending_with_its_client_id_and_ids_are_unique(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    record = await repo.insert_intent(
        intent(
            cid, "cts1", reason="entry of set 7", actor="system", take_profit=61_000.0, tp_sl_mode="engine"
        )
    )
    assert record.status is OrderStatus.PENDING_CREATE
    assert (record.client_order_id, record.connection_id, record.filled, record.exchange_order_id) == (
        "cts1",
        cid,
        0.0,
        None,
    )
    assert (record.reason, record.actor, record.take_profit, record.tp_sl_mode) == (
        "entry of set 7",
        "system",
        61_000.0,
        "engine",
    )
    assert record.created_at == T0 and record.intent_price == 60_000.0
    assert await repo.get_by_client_id("cts1") == record == await repo.get(record.id)

    with pytest.raises(DuplicateClientOrderIdError, match="cts1"):
        await repo.insert_intent(intent(cid, "cts1"))
    assert await count(db, Order) == 1
    assert [o.id for o in await repo.pending_orders(cid)] == [record.id]


@pytest.mark.asyncio
async def test_legal_transitions_apply_and_illegal_ones_change_nothing(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    record = await repo.insert_intent(intent(cid, "cts2"))
    opened = await repo.transition(record.id, OrderStatus.OPEN, at=at(5))
    assert opened.status is OrderStatus.OPEN and opened.updated_at == at(5)

    cancelled = await repo.transition(record.id, OrderStatus.CANCELLED, at=at(9), reason="user")
    with pytest.raises(IllegalOrderTransition, match="cannot go from cancelled to open") as info:
        await repo.transition(record.id, OrderStatus.OPEN, at=at(20))
    assert (info.value.old, info.value.new) == (OrderStatus.CANCELLED, OrderStatus.OPEN)
    assert await repo.get(record.id) == cancelled  # not even updated_at moved
    with pytest.raises(UnknownOrderError):
        await repo.transition("no-such-order", OrderStatus.OPEN)


@pytest.mark.asyncio
async def test_cumulative_fills_become_idempotent_fills_and_open_then_grow_a_position(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    record = await repo.insert_intent(intent(cid, "cts3", type=OrderType.LIMIT, price=59_990.0))

    acked = await repo.apply_venue_state(
        record.id, VenueState(at=at(120), status=OrderStatus.OPEN, exchange_order_id="X1", acknowledged=True)
    )
    assert acked.fill is None and acked.after.status is OrderStatus.OPEN
    assert (acked.after.exchange_order_id, acked.after.ack_latency_ms, acked.after.acknowledged_at) == (
        "X1",
        120,
        at(120),
    )

    # First 0.05 at 60,000 (fee 1.5), then cumulative 0.2 at an average of 60,030:
    # the second part is 0.15 at (60,030 × 0.2 − 60,000 × 0.05) / 0.15 = 60,040, fee 6 − 1.5 = 4.5.
    first = VenueState(
        at=at(500), status=OrderStatus.PARTIALLY_FILLED, filled=0.05, average=60_000.0, fee=1.5
    )
    part = await repo.apply_venue_state(record.id, first)
    assert part.fill is not None and part.position is not None
    assert (part.fill.amount, part.fill.price, part.fill.fee, part.fill.exchange_trade_id) == (
        0.05,
        60_000.0,
        1.5,
        "cum:0.05",
    )
    assert part.after.fill_latency_ms == 500 and part.after.real_position_id == part.position.id
    assert (part.position.side, part.position.quantity, part.position.entry_price) == (
        PositionSide.LONG,
        0.05,
        60_000.0,
    )
    # The same answer again (a poll and the reconciler) adds nothing.
    again = await repo.apply_venue_state(record.id, dataclasses.replace(first, at=at(600)))
    assert again.fill is None and again.after.filled == 0.05
    assert await count(db, Fill) == 1

    done = await repo.apply_venue_state(
        record.id, VenueState(at=at(900), status=OrderStatus.FILLED, filled=0.2, average=60_030.0, fee=6.0)
    )
    assert done.fill is not None and done.position is not None
    assert done.fill.amount == pytest.approx(0.15) and done.fill.price == pytest.approx(60_040.0)
    assert done.fill.fee == pytest.approx(4.5)
    after = done.after
    assert (after.status, after.filled, after.average_price, after.filled_at) == (
        OrderStatus.FILLED,
        0.2,
        60_030.0,
        at(900),
    )
    assert after.fill_latency_ms == 500  # to the first fill
    # Bought 30 above the intent's 60,000: 5 bps worse.
    assert after.slippage_bps == pytest.approx(5.0)
    position = done.position
    assert position.quantity == pytest.approx(0.2) and position.entry_price == pytest.approx(60_030.0)
    assert position.fees == pytest.approx(6.0) and position.leverage == 5.0
    assert [f.amount for f in await repo.fills(record.id)] == pytest.approx([0.05, 0.15])

    # A stale answer (less filled, "open") neither removes fills nor undoes the fill.
    with pytest.raises(IllegalOrderTransition):
        await repo.apply_venue_state(record.id, VenueState(at=at(950), status=OrderStatus.OPEN, filled=0.05))
    stale = await repo.apply_venue_state(record.id, VenueState(at=at(960), filled=0.05, average=60_000.0))
    assert stale.fill is None and stale.after.filled == 0.2 and stale.after.status is OrderStatus.FILLED
    assert await count(db, Fill) == 2


@pytest.mark.asyncio
async def test_an_illegal_status_in_a_venue_state_writes_nothing_not_even_its_fills(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    record = await repo.insert_intent(intent(cid, "cts4"))
    await repo.transition(record.id, OrderStatus.REJECTED, reason="-2010 insufficient balance")
    before = await repo.get(record.id)
    with pytest.raises(IllegalOrderTransition):
        await repo.apply_venue_state(
            record.id, VenueState(at=at(5), status=OrderStatus.FILLED, filled=0.2, average=60_000.0)
        )
    assert await repo.get(record.id) == before
    assert await count(db, Fill) == 0 and await count(db, RealPosition) == 0


def test_what_a_possibly_stale_venue_status_becomes() -> None:
    S = OrderStatus
    assert status_after_venue_answer(S.OPEN, S.PARTIALLY_FILLED) is S.PARTIALLY_FILLED
    assert status_after_venue_answer(S.PENDING_CREATE, S.FILLED) is S.FILLED
    # Our cancel is in flight: a non-final answer keeps it, a final one ends it.
    assert status_after_venue_answer(S.PENDING_CANCEL, S.OPEN) is S.PENDING_CANCEL
    assert status_after_venue_answer(S.PENDING_CANCEL, S.PARTIALLY_FILLED) is S.PENDING_CANCEL
    assert status_after_venue_answer(S.PENDING_CANCEL, S.CANCELLED) is S.CANCELLED
    assert status_after_venue_answer(S.PENDING_CANCEL, S.FILLED) is S.FILLED
    # Illegal transitions (stale answers) keep what is stored.
    assert status_after_venue_answer(S.FILLED, S.OPEN) is S.FILLED
    assert status_after_venue_answer(S.PARTIALLY_FILLED, S.OPEN) is S.PARTIALLY_FILLED
    assert status_after_venue_answer(S.CANCELLED, S.PARTIALLY_FILLED) is S.CANCELLED


@pytest.mark.asyncio
async def test_venue_answers_are_judged_against_the_row_inside_the_transaction(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    # Our cancel is in flight; the venue's answer (older than the cancel) says partially filled.
    record = await repo.insert_intent(intent(cid, "cts6", type=OrderType.LIMIT, price=60_000.0))
    await repo.transition(record.id, OrderStatus.OPEN, at=at(1))
    await repo.transition(record.id, OrderStatus.PENDING_CANCEL, at=at(2))
    stale = VenueState(
        at=at(3), status=OrderStatus.PARTIALLY_FILLED, filled=0.05, average=60_000.0, from_venue=True
    )
    change = await repo.apply_venue_state(record.id, stale)
    assert (change.after.status, change.after.filled, change.ignored_status) == (
        OrderStatus.PENDING_CANCEL,
        0.05,
        None,
    )
    assert change.fill is not None and change.fill.amount == 0.05
    # A fill that happened just before the cancel landed, reported after we stored "cancelled":
    # the illegal status is dropped (and reported), the fill counts; all in one transaction.
    await repo.apply_venue_state(record.id, VenueState(at=at(4), status=OrderStatus.CANCELLED, filled=0.05))
    late = VenueState(
        at=at(5), status=OrderStatus.PARTIALLY_FILLED, filled=0.1, average=60_000.0, from_venue=True
    )
    change = await repo.apply_venue_state(record.id, late)
    assert (change.after.status, change.after.filled) == (OrderStatus.CANCELLED, 0.1)
    assert change.ignored_status is OrderStatus.PARTIALLY_FILLED and change.fill is not None
    assert [f.amount for f in await repo.fills(record.id)] == pytest.approx([0.05, 0.05])
    (position,) = await repo.open_positions(cid)
    assert position.quantity == pytest.approx(0.1)
    # A status we decide (not from the venue) is still refused outright, with nothing written.
    with pytest.raises(IllegalOrderTransition):
        await repo.apply_venue_state(record.id, VenueState(at=at(6), status=OrderStatus.OPEN, filled=0.2))
    assert (await repo.get(record.id)).filled == 0.1  # type: ignore[union-attr]
    # An unchanged row is no change.
    stored = await repo.get(record.id)
    assert stored is not None and not OrderChange(stored, stored).changed


@pytest.mark.asyncio
async def test_reducing_fills_realise_pnl_and_close_the_position(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    entry = await repo.insert_intent(intent(cid, "e1", side=OrderSide.SELL, amount=0.3))
    opened = await repo.apply_venue_state(
        entry.id, VenueState(at=at(10), status=OrderStatus.FILLED, filled=0.3, average=60_000.0, fee=9.0)
    )
    assert opened.position is not None and opened.position.side is PositionSide.SHORT
    # Sold 0 below the intent: 0 bps; a sell filled lower than the intent would be positive.
    assert opened.after.slippage_bps == pytest.approx(0.0)

    close = await repo.insert_intent(
        intent(cid, "c1", side=OrderSide.BUY, amount=0.3, reduce_only=True, intent_price=59_000.0)
    )
    part = await repo.apply_venue_state(
        close.id,
        VenueState(at=at(20), status=OrderStatus.PARTIALLY_FILLED, filled=0.1, average=59_000.0, fee=3.0),
    )
    # Short 0.3 from 60,000, buying back 0.1 at 59,000: (59,000 − 60,000) × 0.1 × −1 = +100.
    assert part.fill is not None and part.fill.realized_pnl == pytest.approx(100.0)
    assert part.position is not None and part.position.id == opened.position.id
    assert part.position.quantity == pytest.approx(0.2) and part.position.is_open
    done = await repo.apply_venue_state(
        close.id, VenueState(at=at(30), status=OrderStatus.FILLED, filled=0.3, average=59_500.0, fee=9.0)
    )
    # The rest: 0.2 at (59,500 × 0.3 − 59,000 × 0.1) / 0.2 = 59,750 → (60,000 − 59,750) × 0.2 = +50.
    assert done.fill is not None and done.fill.price == pytest.approx(59_750.0)
    assert done.fill.realized_pnl == pytest.approx(50.0)
    position = done.position
    assert position is not None and not position.is_open
    assert (position.quantity, position.closed_at) == (0.0, at(30))
    assert position.realized_pnl == pytest.approx(150.0) and position.fees == pytest.approx(18.0)
    assert position.view().realized_pnl == pytest.approx(132.0)  # net of fees
    assert await repo.open_positions(cid) == []
    # Bought back 500 above the intent's 59,000: a worse price on a buy is positive slippage.
    assert done.after.slippage_bps == pytest.approx(500 / 59_000 * 10_000)


def test_pnl_and_slippage_signs() -> None:
    assert position_pnl(PositionSide.LONG, 100.0, 110.0, 2.0, 10.0) == 200.0
    assert position_pnl(PositionSide.SHORT, 100.0, 110.0, 2.0, 10.0) == -200.0
    assert slippage_bps(OrderSide.BUY, 100.0, 101.0) == pytest.approx(100.0)
    assert slippage_bps(OrderSide.SELL, 100.0, 101.0) == pytest.approx(-100.0)
    assert slippage_bps(OrderSide.SELL, 100.0, 99.0) == pytest.approx(100.0)
    assert slippage_bps(OrderSide.BUY, None, 99.0) is None


@pytest.mark.asyncio
async def test_children_protection_queries_and_views(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    entry = await repo.insert_intent(
        intent(cid, "e2", take_profit=62_000.0, stop_loss=59_000.0, tp_sl_mode="engine")
    )
    await repo.apply_venue_state(
        entry.id, VenueState(at=at(10), status=OrderStatus.FILLED, filled=0.2, average=60_000.0)
    )
    (due,) = await repo.entries_without_children(cid, "engine")
    assert due.id == entry.id and due.real_position_id is not None
    assert await repo.entries_without_children(cid, "attached") == []

    child = await repo.insert_intent(
        intent(
            cid,
            "e2tp",
            side=OrderSide.SELL,
            type=OrderType.TAKE_PROFIT,
            stop_price=62_000.0,
            reduce_only=True,
            position_side=PositionSide.LONG,
            parent_id=entry.id,
            real_position_id=due.real_position_id,
        )
    )
    await repo.transition(child.id, OrderStatus.OPEN)
    assert await repo.entries_without_children(cid, "engine") == []
    assert [c.id for c in await repo.children(entry.id)] == [child.id]
    assert due.real_position_id is not None
    assert [o.id for o in await repo.open_protective_orders(due.real_position_id)] == [child.id]
    assert await repo.protective_orders_of_closed_positions(cid) == []

    (view,) = await repo.order_views(cid)
    assert (view.client_order_id, view.status, view.price, view.type) == (
        "e2tp",
        OrderStatus.OPEN,
        62_000.0,
        OrderType.TAKE_PROFIT,
    )
    assert {v.client_order_id for v in await repo.order_views(cid, open_only=False)} == {"e2", "e2tp"}
    (position_view,) = await repo.position_views(cid, marks={BTC: 61_000.0})
    assert (position_view.contracts, position_view.take_profit) == (0.2, 62_000.0)
    assert position_view.unrealized_pnl == pytest.approx(200.0)

    # Closed locally at 61,000: +200 realised, and the TP is now a leftover to cancel.
    closed = await repo.set_position_quantity(due.real_position_id, 0.0, price=61_000.0, at=at(50))
    assert not closed.is_open and closed.realized_pnl == pytest.approx(200.0)
    assert [o.id for o in await repo.protective_orders_of_closed_positions(cid)] == [child.id]


@pytest.mark.asyncio
async def test_open_counts_and_orders_changed_since(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    other = await connection(db)
    assert (await repo.count_open_orders(cid), await repo.count_open_positions(cid)) == (0, 0)
    pending = await repo.insert_intent(intent(cid, "n1"))  # not final: counted
    resting = await repo.insert_intent(intent(cid, "n2", type=OrderType.LIMIT, price=55_000.0))
    await repo.transition(resting.id, OrderStatus.OPEN, at=at(1))
    done = await repo.insert_intent(intent(cid, "n3"))
    await repo.apply_venue_state(
        done.id, VenueState(at=at(2), status=OrderStatus.FILLED, filled=0.2, average=60_000.0)
    )
    await repo.insert_intent(intent(other, "n4"))
    await repo.create_position(
        connection_id=cid,
        symbol="ETH/USDT:USDT",
        side=PositionSide.SHORT,
        mode=TradingMode.LIVE,
        entry_price=3_000.0,
        quantity=1.0,
        at=T0,
    )
    assert await repo.count_open_orders(cid) == 2 == len(await repo.order_views(cid))
    assert await repo.count_open_positions(cid) == 2 == len(await repo.open_positions(cid))
    assert (await repo.count_open_orders(other), await repo.count_open_positions(other)) == (1, 0)

    await repo.transition(pending.id, OrderStatus.LOST, at=at(10))
    await repo.transition(resting.id, OrderStatus.LOST, at=at(20))
    lost = [OrderStatus.LOST]
    assert [o.id for o in await repo.list_orders(cid, statuses=lost, updated_since=at(20))] == [resting.id]
    assert len(await repo.list_orders(cid, statuses=lost, updated_since=at(10))) == 2
    assert await repo.list_orders(cid, statuses=lost, updated_since=at(21)) == []


@pytest.mark.asyncio
async def test_positions_created_and_resized_without_orders(db: Database) -> None:
    repo = OrderRepository(db)
    cid = await connection(db)
    position = await repo.create_position(
        connection_id=cid,
        symbol=BTC,
        side=PositionSide.LONG,
        mode=TradingMode.LIVE,
        entry_price=100.0,
        quantity=2.0,
        at=T0,
        contract_size=10.0,
    )
    grown = await repo.set_position_quantity(position.id, 3.0, price=130.0, at=at(1))
    assert grown.quantity == 3.0 and grown.entry_price == pytest.approx(110.0)
    cut = await repo.set_position_quantity(position.id, 1.0, price=120.0, at=at(2))
    # 2 contracts of 10 closed 10 above the entry: +200.
    assert cut.quantity == pytest.approx(1.0) and cut.realized_pnl == pytest.approx(200.0) and cut.is_open
    assert await repo.open_positions(cid, mode=TradingMode.PAPER) == []
    with pytest.raises(UnknownOrderError):
        await repo.set_position_quantity("nope", 0.0, price=1.0, at=T0)


@pytest.mark.asyncio
async def test_concurrent_writers_of_the_same_venue_state_add_one_fill(db: Database) -> None:
    """The executor's poll and the reconciler applying one answer at once: one fill, one position."""
    repo = OrderRepository(db)
    cid = await connection(db)
    record = await repo.insert_intent(intent(cid, "cts5"))
    state = VenueState(at=at(7), status=OrderStatus.FILLED, filled=0.2, average=60_000.0, fee=6.0)
    changes = await asyncio.gather(*(repo.apply_venue_state(record.id, state) for _ in range(4)))
    assert sum(1 for change in changes if change.fill is not None) == 1
    assert await count(db, Fill) == 1
    (position,) = await repo.open_positions(cid)
    assert position.quantity == 0.2


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_migration_0006_and_fills_on_postgres(postgres_url: str) -> None:
    """0006 downgrades and upgrades on PostgreSQL too, and the write-first, conflict-tolerant fill
    path holds there with concurrent writers."""
    database = await Database.open(postgres_url)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0005"))
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("orders")}
            )
        assert "slippage_bps" not in columns and "parent_id" not in columns
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            assert await conn.run_sync(schema_diff) == []
            rules = await conn.run_sync(constraint_rules, False)
        assert rules == model_rules(database.engine.dialect, with_sql=False)

        repo = OrderRepository(database)
        cid = await connection(database)
        record = await repo.insert_intent(intent(cid, "pg1"))
        state = VenueState(at=at(7), status=OrderStatus.FILLED, filled=0.2, average=60_000.0, fee=6.0)
        changes = await asyncio.gather(*(repo.apply_venue_state(record.id, state) for _ in range(4)))
        assert sum(1 for change in changes if change.fill is not None) == 1
        (position,) = await repo.open_positions(cid)
        assert position.quantity == 0.2
        with pytest.raises(IllegalOrderTransition):
            await repo.transition(record.id, OrderStatus.OPEN)
    finally:
        await database.close()
