"""The real order loop on real parts: a SQLite file, the persisted paper venue over the simulated
market, the pseudo pipeline's statistics, the risk gate and the order executor.

A set is "proven" by folding 50 closed pseudo results into the pipeline's statistics (average
1 step in every window) and announcing its Base → Main promotion, exactly what the pipeline does
after closes; everything after that is the production path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import (
    Balance,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderType,
    PositionSide,
)
from cts_desktop.domain.orders import DifferenceKind, OrderIntent, OrderStatus
from cts_desktop.domain.settings_schema import defaults
from cts_desktop.engine.account_tracker import AccountTracker
from cts_desktop.engine.events import Event, EventBus, OrderRefused
from cts_desktop.engine.execution_component import ExecutionTradingComponent
from cts_desktop.engine.pseudo.grid import MAIN_GRID
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline, SetKey, TickOutcome
from cts_desktop.engine.pseudo.promotion import PromotionDecision, PromotionStep
from cts_desktop.engine.reconcile import ACTION_CLOSE_LOCALLY
from cts_desktop.engine.trading_component import TradingComponent, TradingContext, VenueTradingComponent
from cts_desktop.exchanges.clock import ManualClock
from cts_desktop.exchanges.errors import ExchangeDownError
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories import ConnectionRepository
from cts_desktop.storage.repositories.account_marks import AccountMarksRepository
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord
from cts_desktop.storage.repositories.orders import OrderRepository
from cts_desktop.storage.repositories.paper import PaperRepository
from tests.engine.pseudo.test_stats import closed

SYMBOL = "BTC/USDT"
T0 = 1_740_000_000_000
GOOD = [1.0] * 48 + [4.0, -2.0]
ROW = int(
    np.flatnonzero((MAIN_GRID.tp_factor == 4.0) & (MAIN_GRID.sl_ratio == 1.0) & (MAIN_GRID.trailing == 0))[0]
)


class WatchedPaper(PaperExchange):
    """The real paper venue; ``balance_down`` makes its balance unreadable (an exchange outage of
    the account endpoint), ``balance_reads`` counts the balance requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.balance_down = False
        self.balance_reads = 0

    async def fetch_balance(self) -> dict[str, Balance]:
        self.balance_reads += 1
        if self.balance_down:
            raise ExchangeDownError(self.name)
        return await super().fetch_balance()


@dataclasses.dataclass
class Loop:
    db: Database
    record: ConnectionRecord
    paper: WatchedPaper
    pipeline: PseudoPipeline
    bus: EventBus
    events: list[Event]
    settings: dict[str, Any]
    clock_ms: int = T0

    def context(self, mode: TradingMode = TradingMode.PAPER) -> TradingContext:
        return TradingContext(
            connection=self.record,
            mode=mode,
            venue=self.paper,
            bus=self.bus,
            setting=self.settings.__getitem__,
            pipeline=self.pipeline,
            database=self.db,
        )

    def component(self, mode: TradingMode = TradingMode.PAPER, **options: Any) -> ExecutionTradingComponent:
        options.setdefault("poll_interval_s", 0.0)
        options.setdefault("monotonic", lambda: 0.0)
        return ExecutionTradingComponent(self.context(mode), **options)

    def prove(self, direction: int = 1, symbol: str = SYMBOL) -> int:
        """A set of ``symbol`` with 50 good closes, promoted to Main (what a close would announce)."""
        key = SetKey(symbol, f"direction-{direction}", None, direction)
        set_index = self.pipeline.registry.block(key, len(MAIN_GRID), MAIN_GRID) + ROW
        self.pipeline.stats.ensure(len(self.pipeline.registry))
        self.pipeline.stats.apply(
            closed([set_index] * len(GOOD), GOOD, closed_ms=[1000 * i for i in range(len(GOOD))])
        )
        decision = PromotionDecision(PromotionStep.BASE_TO_MAIN, set_index, None, True, len(GOOD), ())
        outcome = TickOutcome([], 0, closed([], []), decisions=[decision])
        for listener in self.pipeline._decision_listeners:
            listener(outcome)
        return set_index

    async def price(self, price: float) -> None:
        self.clock_ms += 1000
        await self.paper.on_price(SYMBOL, price, self.clock_ms)


@pytest_asyncio.fixture
async def loop(tmp_path: Path) -> AsyncIterator[Loop]:
    db = await Database.open(str(tmp_path / "cts.db"))
    record = await ConnectionRepository(db).create(name="Paper BTC", exchange="bybit")
    market = SimulatedExchange(ManualClock(T0), market_type=MarketType.SWAP)
    paper = WatchedPaper(
        market,
        PaperRepository(db),
        account_id="acct",
        create_if_missing=AccountSettings(
            starting_balance=10_000.0, slippage_bps=0.0, default_leverage=10.0, connection_id=record.id
        ),
        clock=lambda: T0,
    )
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(Event, events.append)
    bench = Loop(db, record, paper, PseudoPipeline(), bus, events, dict(defaults()))
    await bench.price(60_000.0)
    try:
        yield bench
    finally:
        await paper.close()
        await db.close()


def test_it_is_a_trading_component(loop: Loop) -> None:
    assert isinstance(loop.component(), TradingComponent)


@pytest.mark.asyncio
async def test_a_proven_set_becomes_one_sized_filled_paper_position_with_tp_and_sl(loop: Loop) -> None:
    component = loop.component()
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    (position,) = await component.open_positions()
    assert (position.symbol, position.side, position.mode) == (SYMBOL, PositionSide.LONG, TradingMode.PAPER)
    # D13: 10,000 × 0.1 % × volume factor 1 × leverage 100 (main.max_leverage 125 capped by the
    # simulated market's 100) ÷ 60,000 = 0.016666… → 0.01666 on the market's 0.00001 lot step.
    assert position.contracts == pytest.approx(0.01666)
    assert position.take_profit == pytest.approx(60_000 + 4 * 60.0)  # 4 steps of 0.1 %
    assert position.stop_loss == pytest.approx(60_000 - 4 * 60.0)  # SL ratio 1.0
    (venue_position,) = await loop.paper.fetch_positions([SYMBOL])
    assert venue_position.leverage == 100  # set on the venue before the entry, as sized
    # The same set (and any other on BTC long) holds one position at a time.
    loop.prove()
    await component.cycle(accepting_new=True)
    assert len(await component.open_positions()) == 1
    mark = await AccountMarksRepository(loop.db).get(loop.record.id, TradingMode.PAPER)
    assert mark is not None and mark.day_start_equity == pytest.approx(10_000.0, rel=1e-3)


@pytest.mark.asyncio
async def test_paused_cycles_monitor_but_open_nothing_and_the_take_profit_still_closes(loop: Loop) -> None:
    component = loop.component()
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    assert len(await component.open_positions()) == 1
    loop.prove(direction=-1)  # a short set proven while paused
    await component.cycle(accepting_new=False)
    assert [p.side for p in await component.open_positions()] == [PositionSide.LONG]
    await loop.price(60_300.0)  # through the attached take-profit at 60,240
    await component.cycle(accepting_new=False)
    assert await component.open_positions() == []


@pytest.mark.asyncio
async def test_the_risk_gate_refuses_with_its_rule_and_nothing_is_sent(loop: Loop) -> None:
    loop.settings["risk.max_open_positions"] = 1
    component = loop.component()
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    loop.prove(direction=-1)
    await component.cycle(accepting_new=True)
    refusals = [e for e in loop.events if isinstance(e, OrderRefused)]
    assert [r.decision.rule for r in refusals] == ["max_open_positions"]
    assert "1 open" in refusals[0].decision.message
    orders = await component.repository.list_orders(loop.record.id)
    assert [o.side for o in orders if o.parent_id is None] == [OrderSide.BUY]  # the short never got written


@pytest.mark.asyncio
async def test_live_mode_without_permission_never_reaches_the_venue(loop: Loop) -> None:
    component = loop.component(TradingMode.LIVE)
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    (refusal,) = [e for e in loop.events if isinstance(e, OrderRefused)]
    assert refusal.decision.rule == "live_not_confirmed"
    assert await loop.paper.fetch_orders(SYMBOL) == []
    assert await component.repository.list_orders(loop.record.id) == []


@pytest.mark.asyncio
async def test_emergency_actions_cancel_and_flatten_through_the_executor(loop: Loop) -> None:
    component = loop.component()
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    assert await component.cancel_all() == 2  # the attached take-profit and stop-loss
    assert await component.flatten() == 1
    await component.cycle(accepting_new=False)
    assert await component.open_positions() == []
    statuses = {o.status for o in await component.repository.list_orders(loop.record.id)}
    assert statuses <= {OrderStatus.FILLED, OrderStatus.CANCELLED}


@pytest.mark.asyncio
async def test_each_promotion_is_audited_with_its_set_and_reason(loop: Loop) -> None:
    component = loop.component()
    await component.start()
    set_index = loop.prove()
    await component.cycle(accepting_new=False)
    entries = await AuditRepository(loop.db).recent(50)
    (promotion,) = [e for e in entries if e.action == "pseudo.promote"]
    assert promotion.entity_id == loop.pipeline.registry.describe(set_index)
    assert promotion.connection_id == loop.record.id and promotion.reason.startswith("base → main promoted")


@pytest.mark.asyncio
async def test_max_open_positions_counts_every_connection_of_the_same_mode(loop: Loop) -> None:
    loop.settings["risk.max_open_positions"] = 1
    other = await ConnectionRepository(loop.db).create(name="Other desk", exchange="bingx")
    await OrderRepository(loop.db).create_position(
        connection_id=other.id,
        symbol="ETH/USDT",
        side=PositionSide.SHORT,
        mode=TradingMode.PAPER,
        entry_price=3_000.0,
        quantity=1.0,
        at=datetime.now(UTC),
    )
    component = loop.component()
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    (refusal,) = [e for e in loop.events if isinstance(e, OrderRefused)]
    assert refusal.decision.rule == "max_open_positions"
    assert await component.open_positions() == []


@pytest.mark.asyncio
async def test_start_reconciles_without_a_full_poll_and_polls_one_interval_later(loop: Loop) -> None:
    first = loop.component()
    await first.start()
    loop.prove()
    await first.cycle(accepting_new=True)  # an entry with its take-profit and stop-loss
    (entry,) = [o for o in await first.repository.list_orders(loop.record.id) if o.parent_id is None]
    tp = next(o for o in await first.repository.children(entry.id) if o.type is OrderType.TAKE_PROFIT)

    now = [100.0]
    component = loop.component(poll_interval_s=5.0, monotonic=lambda: now[0])  # a restart
    await component.start()  # reconciliation asked about every order just now
    await loop.price(60_300.0)  # then the take-profit fills on the venue
    await component.cycle(accepting_new=False)
    now[0] = 104.9
    await component.cycle(accepting_new=False)
    assert (await component.repository.get(tp.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]
    now[0] = 105.0  # one poll interval after the start
    await component.cycle(accepting_new=False)
    assert (await component.repository.get(tp.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert await component.open_positions() == []


@pytest.mark.asyncio
async def test_confirming_a_missing_position_cancels_its_leftover_take_profit(loop: Loop) -> None:
    # A one-way account, where a take-profit need not be reduce-only.
    await loop.paper.set_position_mode(False)
    loop.record = dataclasses.replace(loop.record, position_mode="one_way")
    component = loop.component()
    await component.start()
    # A long we hold that the exchange no longer has (closed by hand while we were away), with
    # its take-profit still resting on the exchange: a plain trigger order, which venues keep
    # after a manual close (the paper venue cancels only reduce-only orders with a position).
    position = await component.repository.create_position(
        connection_id=loop.record.id,
        symbol=SYMBOL,
        side=PositionSide.LONG,
        mode=TradingMode.PAPER,
        entry_price=60_000.0,
        quantity=0.01,
        at=datetime.fromtimestamp(T0 / 1000, UTC),
    )
    take_profit = await component.executor.submit(
        OrderIntent(
            connection_id=loop.record.id,
            symbol=SYMBOL,
            side=OrderSide.SELL,
            type=OrderType.TAKE_PROFIT,
            amount=0.01,
            reference_price=61_000.0,
            mode=TradingMode.PAPER,
            stop_price=61_000.0,
            real_position_id=position.id,
        )
    )
    assert take_profit.status is OrderStatus.OPEN
    differences = await component.reconcile()
    (missing,) = [d for d in differences if d.kind is DifferenceKind.POSITION_MISSING_ON_EXCHANGE]
    assert missing.action == ACTION_CLOSE_LOCALLY and not missing.applied
    assert (await component.repository.get(take_profit.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]

    await component.apply_difference(missing)
    assert await component.open_positions() == []
    cancelled = await component.repository.get(take_profit.id)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert await loop.paper.fetch_open_orders(SYMBOL) == []


@pytest.mark.asyncio
async def test_reduce_only_orders_use_the_last_account_state_but_still_need_live_permission(
    loop: Loop,
) -> None:
    component = loop.component()
    await component.start()
    loop.prove()
    await component.cycle(accepting_new=True)
    assert len(await component.open_positions()) == 1
    # The last account state is an hour old and the account endpoint is down: an entry could
    # not be checked, but closing must still work (the gate skips every rule that reads the
    # account for a reduce-only order), without asking for the account first.
    clock = [0.0]
    component.account = AccountTracker(
        loop.record.id,
        TradingMode.PAPER,
        loop.paper,
        AccountMarksRepository(loop.db),
        monotonic=lambda: clock[0],
    )
    await component.account.refresh()
    clock[0] = 3_600.0
    loop.paper.balance_down = True
    reads = loop.paper.balance_reads
    assert await component.flatten() == 1
    assert loop.paper.balance_reads == reads  # the flatten's risk check asked for no balance
    assert await component.open_positions() == []

    live = loop.component(TradingMode.LIVE)
    loop.paper.balance_down = False
    await live.start()
    await live.repository.create_position(
        connection_id=loop.record.id,
        symbol=SYMBOL,
        side=PositionSide.LONG,
        mode=TradingMode.LIVE,
        entry_price=60_000.0,
        quantity=0.01,
        at=datetime.fromtimestamp(T0 / 1000, UTC),
    )
    before = len(await loop.paper.fetch_orders(SYMBOL))
    assert await live.flatten() == 0
    refusal = [e for e in loop.events if isinstance(e, OrderRefused)][-1]
    assert refusal.decision.rule == "live_not_confirmed"
    assert len(await loop.paper.fetch_orders(SYMBOL)) == before
    assert [p.mode for p in await live.repository.open_positions(loop.record.id)] == [TradingMode.LIVE]


@pytest.mark.asyncio
async def test_open_counts_of_both_components(loop: Loop) -> None:
    component = loop.component()
    await component.start()
    assert await component.open_counts() == (0, 0)
    loop.prove()
    await component.cycle(accepting_new=True)
    assert await component.open_counts() == (2, 1)  # the take-profit and stop-loss; the long

    now = [0.0]
    venue = VenueTradingComponent(loop.context(), poll_interval_s=10.0, clock=lambda: now[0])
    await venue.start()
    assert await venue.open_counts() == (2, 1)
    await loop.paper.create_order(
        OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, 0.01, "manual1", price=50_000.0)
    )
    assert await venue.open_counts() == (2, 1)  # what the last refresh saw, still fresh
    now[0] = 10.0
    assert await venue.open_counts() == (3, 1)  # stale: asked again
