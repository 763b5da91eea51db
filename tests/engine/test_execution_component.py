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
from cts_desktop.domain.market import MarketType, OrderSide, PositionSide
from cts_desktop.domain.orders import OrderStatus
from cts_desktop.domain.settings_schema import defaults
from cts_desktop.engine.events import Event, EventBus, OrderRefused
from cts_desktop.engine.execution_component import ExecutionTradingComponent
from cts_desktop.engine.pseudo.grid import MAIN_GRID
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline, SetKey, TickOutcome
from cts_desktop.engine.pseudo.promotion import PromotionDecision, PromotionStep
from cts_desktop.engine.trading_component import TradingComponent, TradingContext
from cts_desktop.exchanges.clock import ManualClock
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


@dataclasses.dataclass
class Loop:
    db: Database
    record: ConnectionRecord
    paper: PaperExchange
    pipeline: PseudoPipeline
    bus: EventBus
    events: list[Event]
    settings: dict[str, Any]
    clock_ms: int = T0

    def component(self, mode: TradingMode = TradingMode.PAPER, **options: Any) -> ExecutionTradingComponent:
        context = TradingContext(
            connection=self.record,
            mode=mode,
            venue=self.paper,
            bus=self.bus,
            setting=self.settings.__getitem__,
            pipeline=self.pipeline,
            database=self.db,
        )
        options.setdefault("poll_interval_s", 0.0)
        return ExecutionTradingComponent(context, monotonic=lambda: 0.0, **options)

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
    paper = PaperExchange(
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
