"""Reconciliation after simulated crashes and while-closed events, on the real paper venue and a
real SQLite file: a "restart" closes the database and builds a new paper venue on the same file
and the same persisted account, exactly what a new process would see.

The two crash windows of the issue: between "intent written" and "sent", and between "sent" and
"acknowledged". In both, after reconciliation the order exists exactly once (or, if it never left,
is marked failed), and the database agrees with the venue.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cts_desktop.domain.market import (
    MarketType,
    OrderRequest,
    OrderSide,
    OrderType,
    PositionSide,
    VenueOrderStatus,
)
from cts_desktop.domain.orders import DifferenceKind, OrderStatus, ReconcileDifference
from cts_desktop.engine.reconcile import (
    ACTION_ADOPT,
    ACTION_CANCEL_ON_EXCHANGE,
    ACTION_CLOSE_LOCALLY,
    ACTION_MARK_FAILED,
    ACTION_MARK_LOST,
    ACTION_REPORT,
    ACTION_SET_LOCAL_SIZE,
    ACTION_WAIT,
    DEFAULT_PENDING_GRACE_MS,
    LOST_RECHECK_DAYS,
    Reconciler,
    describe,
)
from cts_desktop.storage.repositories.orders import NewOrder
from tests.engine.test_orders import SYMBOL, Bench, SimulatedCrash, bench

DAY_MS = 86_400_000


def reconciler(b: Bench) -> Reconciler:
    return Reconciler(b.connection_id, b.paper, b.repo, clock=b.clock)


def of_kind(differences: list[ReconcileDifference], kind: DifferenceKind) -> list[ReconcileDifference]:
    return [d for d in differences if d.kind is kind]


def needing_confirmation(differences: list[ReconcileDifference]) -> list[ReconcileDifference]:
    return [d for d in differences if not d.applied]


# --------------------------------------------------------------------------- the two crash windows


@pytest.mark.asyncio
async def test_crash_between_intent_written_and_sent(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["crash-before"]
        with pytest.raises(SimulatedCrash):
            await b.executor().submit(b.intent())
        (pending,) = await b.repo.pending_orders(b.connection_id)

        await b.restart()
        differences = await reconciler(b).run()
        (difference,) = of_kind(differences, DifferenceKind.PENDING_CREATE)
        # Just now: it might still be on its way, so it is only reported.
        assert (difference.applied, difference.action, difference.client_order_id) == (
            False,
            ACTION_WAIT,
            pending.client_order_id,
        )
        assert (await b.stored(pending.client_order_id)).status is OrderStatus.PENDING_CREATE

        b.clock.now += DEFAULT_PENDING_GRACE_MS
        differences = await reconciler(b).run()
        (difference,) = of_kind(differences, DifferenceKind.PENDING_CREATE)
        assert difference.applied and difference.action == ACTION_MARK_FAILED
        failed = await b.stored(pending.client_order_id)
        assert (failed.status, failed.reject_reason) == (OrderStatus.FAILED, "never reached the exchange")
        assert await b.venue_orders() == [] and await b.repo.open_positions(b.connection_id) == []
        assert needing_confirmation(differences) == []

        # Trading goes on; the failed intent is not resurrected and nothing is duplicated.
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.FILLED and len(await b.venue_orders()) == 1
        assert await b.local_contracts() == 0.1 == await b.venue_contracts()


@pytest.mark.asyncio
async def test_crash_between_sent_and_acknowledged(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["crash-after"]
        with pytest.raises(SimulatedCrash):
            await b.executor().submit(b.intent())
        (pending,) = await b.repo.pending_orders(b.connection_id)
        assert await b.venue_contracts() == 0.1  # the venue has it; we never heard back

        await b.restart()
        differences = await reconciler(b).run()
        (difference,) = of_kind(differences, DifferenceKind.PENDING_CREATE)
        assert difference.applied and "filled" in difference.action
        adopted = await b.stored(pending.client_order_id)
        assert (adopted.status, adopted.filled, adopted.average_price) == (OrderStatus.FILLED, 0.1, 60_000.0)
        assert adopted.exchange_order_id is not None and adopted.acknowledged_at is not None
        assert len(await b.repo.fills(adopted.id)) == 1
        (venue_order,) = await b.venue_orders()  # exactly one order: nothing was resent
        assert venue_order.client_order_id == pending.client_order_id
        assert await b.local_contracts() == 0.1 == await b.venue_contracts()
        assert needing_confirmation(differences) == []

        # A second pass finds nothing but the balance report, and the new executor has nothing to do.
        again = await reconciler(b).run()
        assert {d.kind for d in again} == {DifferenceKind.BALANCE}
        assert all(d.applied and d.action == ACTION_REPORT for d in again)
        assert await b.executor().refresh_open() == []
        assert b.paper.created == []  # the restarted process sent nothing


@pytest.mark.asyncio
async def test_crash_after_sending_an_entry_with_attached_tp_sl_adopts_the_children(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["crash-after"]
        with pytest.raises(SimulatedCrash):
            await b.executor().submit(b.intent(take_profit=61_000.0, stop_loss=59_000.0))
        (pending,) = await b.repo.pending_orders(b.connection_id)

        await b.restart()
        differences = await reconciler(b).run()
        children = of_kind(differences, DifferenceKind.ORDER_UNKNOWN_LOCALLY)
        assert len(children) == 2 and all(d.applied for d in children)
        entry = await b.stored(pending.client_order_id)
        stored_children = await b.repo.children(entry.id)
        assert {c.type for c in stored_children} == {OrderType.TAKE_PROFIT, OrderType.STOP_LOSS}
        assert all(c.real_position_id == entry.real_position_id for c in stored_children)

        # The take-profit then works as if nothing had happened.
        await b.price(61_100.0)
        await b.executor().refresh_open()
        assert await b.repo.open_positions(b.connection_id) == [] and await b.venue_contracts() == 0.0


@pytest.mark.asyncio
async def test_crash_after_sending_an_entry_with_engine_managed_tp_sl_protects_it_once_on_recovery(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path, attach=False) as b:
        b.paper.create_faults = ["crash-after"]
        with pytest.raises(SimulatedCrash):
            await b.executor().submit(b.intent(take_profit=61_000.0, stop_loss=59_000.0))
        (pending,) = await b.repo.pending_orders(b.connection_id)
        assert pending.tp_sl_mode == "engine"

        await b.restart()
        await b.price(60_000.0)  # the market where the entry filled, as the restarted feed sees it
        (difference,) = of_kind(await reconciler(b).run(), DifferenceKind.PENDING_CREATE)
        assert difference.applied
        entry = await b.stored(pending.client_order_id)
        assert (entry.status, entry.filled) == (OrderStatus.FILLED, 0.1)
        assert await b.repo.children(entry.id) == []  # reconciliation places no order
        executor = b.executor()
        assert await executor.refresh_open() == [] and b.paper.created == []  # nor does a poll

        await executor.recover()
        children = {c.type: c for c in await b.repo.children(entry.id)}
        assert set(children) == {OrderType.TAKE_PROFIT, OrderType.STOP_LOSS}
        for child in children.values():
            assert (child.status, child.amount, child.side) == (OrderStatus.OPEN, 0.1, OrderSide.SELL)
            assert child.reduce_only and child.real_position_id == entry.real_position_id
        assert (children[OrderType.TAKE_PROFIT].stop_price, children[OrderType.STOP_LOSS].stop_price) == (
            61_000.0,
            59_000.0,
        )
        child_ids = sorted(c.client_order_id for c in children.values())
        assert sorted(b.paper.created) == child_ids

        # Exactly once: recovering again, polling, and another restart with its reconciliation
        # and recovery place nothing more.
        await executor.recover()
        await executor.refresh_open()
        assert sorted(b.paper.created) == child_ids
        await b.restart()
        await b.price(60_000.0)
        await reconciler(b).run()
        await b.executor().recover()
        assert b.paper.created == [] and len(await b.repo.children(entry.id)) == 2
        assert sorted(o.client_order_id or "" for o in await b.paper.fetch_open_orders(SYMBOL)) == child_ids

        # And they protect: the stop closes the position and the take-profit is cancelled.
        await b.price(58_990.0)
        await b.executor().refresh_open()
        statuses = {c.type: c.status for c in await b.repo.children(entry.id)}
        assert statuses == {
            OrderType.STOP_LOSS: OrderStatus.FILLED,
            OrderType.TAKE_PROFIT: OrderStatus.CANCELLED,
        }
        assert await b.repo.open_positions(b.connection_id) == [] and await b.venue_contracts() == 0.0


@pytest.mark.asyncio
async def test_a_pending_order_whose_lookup_fails_is_left_for_the_next_pass(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        b.paper.create_faults = ["timeout-after"]
        b.paper.lookup_faults = ["timeout"]
        view = await b.executor().submit(b.intent())
        assert view.status is OrderStatus.PENDING_CREATE

        b.paper.lookup_faults = ["timeout"]
        (difference,) = of_kind(await reconciler(b).run(), DifferenceKind.PENDING_CREATE)
        assert not difference.applied and "could not look it up" in difference.description
        assert (await b.stored(view.client_order_id)).status is OrderStatus.PENDING_CREATE

        (difference,) = of_kind(await reconciler(b).run(), DifferenceKind.PENDING_CREATE)
        assert difference.applied
        assert (await b.stored(view.client_order_id)).status is OrderStatus.FILLED
        assert b.paper.created == [view.client_order_id] and len(await b.venue_orders()) == 1


# --------------------------------------------------------------------------- while the app was closed


@pytest.mark.asyncio
async def test_fills_that_happened_while_closed_are_applied(tmp_path: Path) -> None:
    async with bench(tmp_path, partial_fill_ratio=0.5) as b:
        first = await b.executor().submit(b.intent(type=OrderType.LIMIT, price=59_900.0))
        second = await b.executor().submit(b.intent(type=OrderType.LIMIT, price=59_500.0))
        await b.restart()
        await b.price(59_800.0)  # half of the first fills while we are not looking
        await b.price(59_700.0)  # the other half
        await b.price(59_400.0)  # half of the second

        dry = await reconciler(b).run(apply=False)
        assert len(of_kind(dry, DifferenceKind.ORDER_FILLED_WHILE_CLOSED)) == 2
        assert not any(d.applied for d in dry if d.kind is not DifferenceKind.BALANCE)
        assert (await b.stored(first.client_order_id)).filled == 0.0  # a dry run writes nothing

        differences = await reconciler(b).run()
        filled = of_kind(differences, DifferenceKind.ORDER_FILLED_WHILE_CLOSED)
        assert len(filled) == 2 and all(d.applied for d in filled)
        assert (await b.stored(first.client_order_id)).status is OrderStatus.FILLED
        partly = await b.stored(second.client_order_id)
        assert (partly.status, partly.filled) == (OrderStatus.PARTIALLY_FILLED, 0.05)
        assert await b.local_contracts() == pytest.approx(0.15) == await b.venue_contracts()
        assert of_kind(differences, DifferenceKind.POSITION_SIZE) == []


@pytest.mark.asyncio
async def test_a_stale_answer_racing_our_cancel_keeps_pending_cancel_and_records_the_fill(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path, partial_fill_ratio=0.5) as b:
        view = await b.executor().submit(b.intent(type=OrderType.LIMIT, price=59_900.0))
        assert view.exchange_order_id is not None
        await b.price(59_800.0)  # half fills on the venue; we have not polled
        answer = await b.paper.fetch_order(view.exchange_order_id, SYMBOL)
        assert (answer.status, answer.filled) == (VenueOrderStatus.PARTIALLY_FILLED, 0.05)

        async def cancel_sent_meanwhile() -> None:
            # The executor's cancel moves the order on while the reconciler's question (asked
            # about the order as it read it: open) is on its way back.
            await b.repo.transition(view.id, OrderStatus.PENDING_CANCEL, at=b.now())

        b.paper.fetch_hooks.append(cancel_sent_meanwhile)
        (difference,) = of_kind(await reconciler(b).run(), DifferenceKind.ORDER_FILLED_WHILE_CLOSED)
        assert b.paper.fetch_hooks == []  # the race did happen
        assert difference.applied and difference.action.endswith("now pending_cancel")
        record = await b.stored(view.client_order_id)
        # The answer predates the cancel: its "partially filled" does not undo pending_cancel
        # (so the poll sends the cancel again), but its fill counts.
        assert (record.status, record.filled) == (OrderStatus.PENDING_CANCEL, 0.05)
        assert [f.amount for f in await b.repo.fills(record.id)] == [0.05]
        assert await b.local_contracts() == 0.05 == await b.venue_contracts()


@pytest.mark.asyncio
async def test_an_order_the_exchange_does_not_know_is_marked_lost_on_confirmation(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        ghost = await b.repo.insert_intent(
            NewOrder(
                client_order_id="ghost1",
                connection_id=b.connection_id,
                symbol=SYMBOL,
                side=OrderSide.BUY,
                type=OrderType.LIMIT,
                amount=0.1,
                mode=b.intent().mode,
                intent_price=60_000.0,
                created_at=b.now(),
                price=59_000.0,
                exchange_order_id="not-on-the-venue",
            )
        )
        await b.repo.transition(ghost.id, OrderStatus.OPEN)
        (difference,) = of_kind(await reconciler(b).run(), DifferenceKind.ORDER_MISSING_ON_EXCHANGE)
        assert not difference.applied and difference.action == ACTION_MARK_LOST
        assert (await b.stored("ghost1")).status is OrderStatus.OPEN
        applied = await reconciler(b).apply(difference)
        assert applied.applied and (await b.stored("ghost1")).status is OrderStatus.LOST


@pytest.mark.asyncio
async def test_a_lost_order_that_turns_up_is_restored(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        view = await b.executor().submit(b.intent(type=OrderType.LIMIT, price=59_000.0))
        await b.repo.transition(view.id, OrderStatus.LOST, reason="test: the venue said not found")
        (difference,) = of_kind(await reconciler(b).run(), DifferenceKind.ORDER_STATUS)
        assert difference.applied and "restored as open" in difference.action
        assert (await b.stored(view.client_order_id)).status is OrderStatus.OPEN


@pytest.mark.asyncio
async def test_only_recently_lost_orders_are_looked_up_older_ones_only_if_open_on_the_exchange(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path) as b:
        executor = b.executor()
        old_open = await executor.submit(b.intent(type=OrderType.LIMIT, price=59_000.0))
        old_gone = await executor.submit(b.intent(type=OrderType.LIMIT, price=58_000.0))
        assert old_gone.exchange_order_id is not None
        await b.paper.cancel_order(old_gone.exchange_order_id, SYMBOL)  # final on the exchange
        for view in (old_open, old_gone):
            await b.repo.transition(view.id, OrderStatus.LOST, at=b.now(), reason="test: not found")
        b.clock.now += (LOST_RECHECK_DAYS + 1) * DAY_MS
        recent = await executor.submit(b.intent(type=OrderType.LIMIT, price=57_000.0))
        await b.repo.transition(recent.id, OrderStatus.LOST, at=b.now(), reason="test: not found")
        b.paper.lookups.clear()

        restored = of_kind(await reconciler(b).run(), DifferenceKind.ORDER_STATUS)
        assert b.paper.lookups == [recent.client_order_id]  # the old ones are not asked about
        assert sorted(d.client_order_id or "" for d in restored) == sorted(
            [recent.client_order_id, old_open.client_order_id]
        )
        assert all(d.applied and "restored as open" in d.action for d in restored)
        assert (await b.stored(recent.client_order_id)).status is OrderStatus.OPEN
        # Lost long ago, but among the exchange's open orders: restored from that list.
        assert (await b.stored(old_open.client_order_id)).status is OrderStatus.OPEN
        assert (await b.stored(old_gone.client_order_id)).status is OrderStatus.LOST


@pytest.mark.asyncio
async def test_an_unknown_open_order_waits_for_confirmation_then_is_cancelled_or_adopted(
    tmp_path: Path,
) -> None:
    async with bench(tmp_path) as b:
        for cid, price in (("manual1", 58_000.0), ("manual2", 57_000.0)):
            await b.paper.create_order(
                OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, 0.1, cid, price=price)
            )
        differences = of_kind(await reconciler(b).run(), DifferenceKind.ORDER_UNKNOWN_LOCALLY)
        assert [(d.client_order_id, d.applied, d.action) for d in differences] == [
            ("manual1", False, ACTION_CANCEL_ON_EXCHANGE),
            ("manual2", False, ACTION_CANCEL_ON_EXCHANGE),
        ]
        text = describe(differences, b.connection_id)
        assert "2 to confirm" in text and "manual1" in text and f"(or: {ACTION_ADOPT})" in text

        first, second = differences
        assert (await reconciler(b).apply(first)).applied
        assert [o.client_order_id for o in await b.paper.fetch_open_orders(SYMBOL)] == ["manual2"]
        assert await b.repo.get_by_client_id("manual1") is None

        adopted = await reconciler(b).apply(second, ACTION_ADOPT)
        assert adopted.applied and adopted.action == ACTION_ADOPT
        record = await b.stored("manual2")
        assert (record.status, record.exchange_order_id) == (OrderStatus.OPEN, second.remote["id"])
        assert of_kind(await reconciler(b).run(), DifferenceKind.ORDER_UNKNOWN_LOCALLY) == []


# --------------------------------------------------------------------------- positions and balances


@pytest.mark.asyncio
async def test_position_differences_need_confirmation_and_apply_when_confirmed(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        executor = b.executor()
        await executor.submit(b.intent(amount=0.2))  # long 0.2, known to both
        # A manual short on the venue, and a long we believe in that the venue no longer has.
        await b.paper.create_order(OrderRequest(SYMBOL, OrderSide.SELL, OrderType.MARKET, 0.3, "manual3"))
        await b.paper.create_order(
            OrderRequest(
                SYMBOL, OrderSide.SELL, OrderType.MARKET, 0.05, "manual4", position_side=PositionSide.LONG
            )
        )
        await b.repo.create_position(
            connection_id=b.connection_id,
            symbol="ETH/USDT",
            side=PositionSide.LONG,
            mode=b.intent().mode,
            entry_price=3_000.0,
            quantity=1.0,
            at=b.now(),
        )
        before = await b.repo.open_positions(b.connection_id)

        differences = await reconciler(b).run()
        positions = [d for d in differences if d.kind.value.startswith("position")]
        assert {(d.kind, d.symbol, d.applied) for d in positions} == {
            (DifferenceKind.POSITION_SIZE, SYMBOL, False),
            (DifferenceKind.POSITION_UNKNOWN_LOCALLY, SYMBOL, False),
            (DifferenceKind.POSITION_MISSING_ON_EXCHANGE, "ETH/USDT", False),
        }
        assert await b.repo.open_positions(b.connection_id) == before  # nothing changed unconfirmed
        size = of_kind(positions, DifferenceKind.POSITION_SIZE)[0]
        assert (size.local["contracts"], size.remote["contracts"], size.action) == (
            0.2,
            0.15,
            ACTION_SET_LOCAL_SIZE,
        )
        missing = of_kind(positions, DifferenceKind.POSITION_MISSING_ON_EXCHANGE)[0]
        assert missing.action == ACTION_CLOSE_LOCALLY

        for difference in positions:
            assert (await reconciler(b).apply(difference)).applied
        assert await b.local_contracts(PositionSide.LONG) == pytest.approx(0.15)
        assert await b.local_contracts(PositionSide.SHORT) == pytest.approx(0.3)
        assert [p.symbol for p in await b.repo.open_positions(b.connection_id)].count("ETH/USDT") == 0
        after = await reconciler(b).run()
        assert [d for d in after if d.kind.value.startswith("position")] == []


@pytest.mark.asyncio
async def test_spot_holdings_and_balances_come_from_one_balance_request(tmp_path: Path) -> None:
    async with bench(tmp_path, market_type=MarketType.SPOT) as b:
        await b.repo.create_position(
            connection_id=b.connection_id,
            symbol=SYMBOL,
            side=PositionSide.LONG,
            mode=b.intent().mode,
            entry_price=60_000.0,
            quantity=0.5,
            at=b.now(),
        )
        differences = await reconciler(b).run()
        assert b.paper.balance_fetches == 1
        (size,) = of_kind(differences, DifferenceKind.POSITION_SIZE)
        assert (size.local["contracts"], size.remote["contracts"]) == (0.5, 0.0)  # no BTC held
        (balance,) = of_kind(differences, DifferenceKind.BALANCE)
        assert (balance.symbol, balance.remote["total"]) == ("USDT", 10_000.0)


@pytest.mark.asyncio
async def test_balances_are_reported_and_describe_says_when_all_agree(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        differences = await reconciler(b).run()
        (balance,) = differences
        assert (balance.kind, balance.symbol, balance.applied) == (DifferenceKind.BALANCE, "USDT", True)
        assert balance.remote["total"] == 10_000.0 and "total 10000" in balance.description
        assert "1 applied, 0 to confirm" in describe(differences)
        assert (
            describe([], b.connection_id)
            == f"Reconciliation of {b.connection_id}: the database and the exchange agree."
        )
        with pytest.raises(ValueError, match="nothing to apply"):
            await reconciler(b).apply(
                ReconcileDifference(DifferenceKind.BALANCE, b.connection_id, "USDT", "", ACTION_REPORT, False)
            )
