"""One connection's engine on real parts: a replayed market on a manual clock, the real paper venue
on a real SQLite file, the real settings service and pseudo pipeline.

The replay is built from one-second flat bars, so each bar is exactly one one-second sample for the
step indications (four ticks at the same price inside the second) and the test decides every
price the engine sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cts_desktop.domain.engine import HealthStatus
from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import (
    Candle,
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderType,
    PositionSide,
    Ticker,
)
from cts_desktop.domain.orders import DifferenceKind, OrderView, PositionView, ReconcileDifference
from cts_desktop.engine.connection_engine import COMPONENTS, ConnectionEngine, EngineOptions, NoSymbolsError
from cts_desktop.engine.events import EventBus, OrdersChanged, PositionsChanged
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.settings_service import SettingsService
from cts_desktop.engine.trading_component import TradingComponent, TradingContext, VenueTradingComponent
from cts_desktop.engine.venues import EngineVenues, ReplayFeed, VenueFactory
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.candle_files import CandleArrays
from cts_desktop.exchanges.clock import ManualClock
from cts_desktop.exchanges.errors import ExchangeDownError, ExchangeError, NetworkError
from cts_desktop.exchanges.paper import PaperExchange
from cts_desktop.exchanges.replay import ReplaySource
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.connections import ConnectionRecord, ConnectionRepository
from cts_desktop.storage.repositories.settings import SettingsRepository
from tests.helpers import wait_for

T0 = 1_700_000_000_000  # a whole second: each 1 s bar is one sampler bucket
SECOND = 1_000

ONLY_DIRECTION: dict[str, Any] = {
    # Direction with range 3 only, no activity gate: three one-second down steps fire a long.
    "indication.market_activity_enabled": False,
    "indication.move_enabled": False,
    "indication.active_enabled": False,
    "indication.optimal_enabled": False,
    "indication.range_min": 3,
    "indication.range_max": 3,
    "indication.direction_threshold_pct": 0.0,
    "system.main_engine_interval_ms": 50,
    "system.preset_engine_interval_ms": 50,
    "system.active_order_interval_ms": 50,
}
FAST = EngineOptions(health_interval_s=0.05, max_consecutive_errors=3)


def flat_bars(prices: Sequence[float], t0: int = T0) -> ReplaySource:
    """One flat one-second bar per price (open = high = low = close)."""
    candles = [Candle(t0 + i * SECOND, p, p, p, p, 10.0) for i, p in enumerate(prices)]
    return ReplaySource("BTC/USDT", CandleArrays.from_candles(candles), SECOND)


class FaultyVenue:
    """Fault injection around a real venue: every call is passed through, except the ones listed in
    ``fail`` (method name → the ExchangeError to raise), which can be changed while running and
    shared by several venues (``faults``)."""

    def __init__(
        self, inner: Exchange, faults: dict[str, ExchangeError] | None = None, **fail: ExchangeError
    ) -> None:
        self._inner = inner
        self.fail: dict[str, ExchangeError] = faults if faults is not None else {}
        self.fail.update(fail)
        self.calls: dict[str, int] = {}
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            error = self.fail.get(name)
            if error is not None:
                await asyncio.sleep(0.01)  # a failing venue still takes a moment to answer
                raise error
            return await attribute(*args, **kwargs)

        return call

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def supports_streaming(self) -> bool:
        return self._inner.supports_streaming

    def market(self, symbol: str) -> MarketInfo:
        return self._inner.market(symbol)

    async def close(self) -> None:
        self.closed = True
        await self._inner.close()


class FailingCycles(VenueTradingComponent):
    """The real built-in order loop with its cycle failing (fault injection): ``error`` is raised
    from every cycle while set."""

    error: BaseException | None = RuntimeError("order loop bug")

    async def cycle(self, *, accepting_new: bool) -> None:
        if self.error is not None:
            raise self.error
        await super().cycle(accepting_new=accepting_new)


@dataclass
class Parts:
    database: Database
    bus: EventBus
    market_bus: MarketBus
    settings: SettingsService
    record: ConnectionRecord

    def engine(self, venues: EngineVenues, **kwargs: Any) -> ConnectionEngine:
        failures: list[str] = kwargs.pop("failures", [])
        return ConnectionEngine(
            self.record,
            venues,
            bus=self.bus,
            market_bus=self.market_bus,
            settings=self.settings,
            on_failure=lambda _engine, reason: failures.append(reason),
            options=kwargs.pop("options", FAST),
            database=self.database,
            **kwargs,
        )

    def factory(self, replay: ReplayFeed | None = None, **kwargs: Any) -> VenueFactory:
        async def no_credentials(_connection_id: str) -> None:
            return None

        return VenueFactory(
            database=self.database,
            redactor=Redactor(),
            credentials=no_credentials,
            simulated=SimulatedExchange(seed=7, tick_interval_ms=100),
            replay=replay,
            **kwargs,
        )


@pytest_asyncio.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}")
    bus = EventBus()
    settings = SettingsService(SettingsRepository(database), bus)
    await settings.load()
    await settings.update(ONLY_DIRECTION)
    record = await ConnectionRepository(database).create(
        name="Replay desk", exchange="binance", is_enabled=True
    )
    yield Parts(database, bus, MarketBus(bus), settings, record)
    await database.close()


async def advance(clock: ManualClock, seconds: int) -> None:
    for _ in range(seconds):
        await clock.advance(SECOND)
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_pause_stops_new_entries_but_open_ones_stay_monitored_and_protected(parts: Parts) -> None:
    clock = ManualClock(0)
    prices = [100.0, 99.9, 99.8, 99.7, 99.6, 99.6, 99.6]  # three down steps: Direction long fires
    # Down again (Direction fires, nothing may open), a dip that fills the resting buy, then a 3 %
    # rise that takes every target and a collapse that ends every trailing exit.
    paused_prices = [100.0, 99.9, 99.8, 99.7, 99.6, 99.6, 98.9, 98.9, 103.0, 103.0, 50.0, 50.0]
    feed = ReplayFeed((flat_bars(prices + paused_prices),), speed=1.0, clock=clock)
    venues = await parts.factory(feed)(parts.record, TradingMode.PAPER)
    engine = parts.engine(venues)
    await engine.start()
    try:
        assert engine.symbols == ("BTC/USDT",)  # forced XRP and BCH are not in the replay
        assert isinstance(venues.trading, PaperExchange)
        await advance(clock, len(prices) - 1)
        await wait_for(lambda: engine.pseudo_opened >= 924, timeout=10)
        assert engine.pseudo_closed == 0

        engine.pause()
        # An order resting on the paper venue stands for an open, protected position's order.
        order = await venues.trading.create_order(
            OrderRequest("BTC/USDT", OrderSide.BUY, OrderType.LIMIT, 1.0, "rest-1", price=99.0)
        )
        opened_at_pause = engine.pseudo_opened
        ticks_at_pause = parts.market_bus.ticks_received(venues.source)["BTC/USDT"]
        await advance(clock, len(paused_prices))
        await wait_for(lambda: engine.pseudo_closed >= opened_at_pause, timeout=10)

        assert engine.pseudo_opened == opened_at_pause  # Direction fired again, but nothing opened
        assert parts.market_bus.ticks_received(venues.source)["BTC/USDT"] > ticks_at_pause
        filled = await venues.trading.fetch_order(order.id, "BTC/USDT")
        assert filled.status.value == "filled" and filled.average == pytest.approx(99.0, abs=0.2)
        assert engine.pipeline is not None and engine.pipeline.book.total_open() == 0

        engine.resume()
        assert engine.pipeline.accepting_new
    finally:
        await engine.stop()
    assert not any(engine.loop_running(name) for name in COMPONENTS)
    with pytest.raises(ExchangeDownError, match="closed"):
        await venues.trading.fetch_balance()


@pytest.mark.asyncio
async def test_components_report_health_on_a_running_engine(parts: Parts) -> None:
    venues = await parts.factory()(parts.record, TradingMode.PAPER)
    assert venues.source == "Replay desk" and venues.owns_data  # binance's public data, through ccxt
    assert venues.data.name == "binance" and isinstance(venues.trading, PaperExchange)
    await venues.close()
    # A public venue for "binance" would need the network: give the factory a simulated one.
    venues = await parts.factory(public_venue=lambda _r: SimulatedExchange(seed=3, tick_interval_ms=100))(
        parts.record, TradingMode.PAPER
    )
    refreshed: list[ConnectionEngine] = []
    engine = parts.engine(venues, on_refresh=refreshed.append)
    await engine.start()
    try:
        await wait_for(lambda: all(c.cycles >= 3 for c in engine.components()), timeout=10)
        components = engine.components()
        assert [c.name for c in components] == list(COMPONENTS)
        assert {c.name: c.interval_ms for c in components} == {
            "market": None,
            "main": 50.0,
            "preset": 50.0,
            "orders": 50.0,
            "health": 50.0,
        }
        assert engine.health() is HealthStatus.HEALTHY, components
        assert set(engine.stream_statuses().values()) == {"live"}
        assert refreshed and refreshed[0] is engine
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_engine_types_follow_the_d16_settings_while_running(parts: Parts) -> None:
    factory = parts.factory(public_venue=lambda _r: SimulatedExchange(seed=3, tick_interval_ms=100))
    engine = parts.engine(await factory(parts.record, TradingMode.PAPER))
    await engine.start()
    try:
        assert engine.loop_running("main") and engine.loop_running("preset")
        cases: list[tuple[dict[str, Any], bool, bool]] = [
            ({"system.main_engine_enabled": False}, False, True),
            ({"system.main_engine_enabled": True, "system.trade_mode": "preset"}, False, True),
            ({"system.trade_mode": "main"}, True, False),
            ({"system.trade_mode": "both", "system.preset_engine_enabled": False}, True, False),
            ({"system.preset_engine_enabled": True}, True, True),
        ]
        for changes, main, preset in cases:
            await parts.settings.update(changes)
            engine.apply_engine_types()
            await asyncio.sleep(0.01)  # let cancelled loops end
            assert (engine.loop_running("main"), engine.loop_running("preset")) == (main, preset), changes
        assert engine.loop_running("orders") and engine.loop_running("health")  # never switched off
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_a_failing_cycle_is_counted_and_a_loop_failing_in_a_row_fails_the_engine(parts: Parts) -> None:
    factory = parts.factory(public_venue=lambda _r: SimulatedExchange(seed=3, tick_interval_ms=100))
    failures: list[str] = []
    FailingCycles.error = NetworkError("paper", "the venue dropped the connection")
    engine = parts.engine(
        await factory(parts.record, TradingMode.PAPER), trading_factory=FailingCycles, failures=failures
    )
    await engine.start()
    try:
        await wait_for(lambda: engine.components()[3].errors >= 5, timeout=10)
        assert failures == []  # a venue that is down is expected back: counted, never fatal
        assert engine.components()[3].status is HealthStatus.UNHEALTHY
        assert engine.loop_running("orders")

        FailingCycles.error = RuntimeError("order loop bug")  # a bug fails three cycles in a row
        await wait_for(lambda: bool(failures), timeout=10)
        assert failures == ["the orders loop failed 3 cycles in a row: RuntimeError: order loop bug"]
        assert engine.failure == failures[0]
        assert engine.loop_running("main")  # the engine is ended by its owner, not by itself
    finally:
        FailingCycles.error = RuntimeError("order loop bug")
        await engine.stop()


@pytest.mark.asyncio
async def test_a_failed_start_cleans_up_and_raises(parts: Parts) -> None:
    faulty = FaultyVenue(SimulatedExchange(seed=3), load_markets=ExchangeDownError("binance"))
    factory = parts.factory(public_venue=lambda _r: faulty)
    venues = await factory(parts.record, TradingMode.PAPER)
    engine = parts.engine(venues)
    with pytest.raises(ExchangeDownError):
        await engine.start()
    assert faulty.closed and not engine.running
    with pytest.raises(ExchangeDownError, match="closed"):
        await venues.trading.fetch_balance()
    with pytest.raises(RuntimeError, match="starts once"):
        await engine.start()


@pytest.mark.asyncio
async def test_no_listed_symbol_is_an_error_that_says_so(parts: Parts) -> None:
    await parts.settings.update({"main.quote_asset": "BTC"})
    factory = parts.factory(public_venue=lambda _r: SimulatedExchange(seed=3))
    engine = parts.engine(await factory(parts.record, TradingMode.PAPER))
    with pytest.raises(NoSymbolsError, match="quote BTC"):
        await engine.start()


@pytest.mark.asyncio
async def test_the_trading_component_gets_its_context_and_is_closed(parts: Parts) -> None:
    seen: list[TradingContext] = []
    closed: list[bool] = []

    class Recording(VenueTradingComponent):
        async def close(self) -> None:
            closed.append(True)
            await super().close()

    def factory(context: TradingContext) -> TradingComponent:
        seen.append(context)
        return Recording(context)

    venues = await parts.factory(public_venue=lambda _r: SimulatedExchange(seed=3))(
        parts.record, TradingMode.PAPER
    )
    engine = parts.engine(venues, trading_factory=factory)
    await engine.start()
    await engine.stop()
    (context,) = seen
    assert context.connection == parts.record and context.mode is TradingMode.PAPER
    assert context.venue is venues.trading and context.pipeline is engine.pipeline
    assert context.setting("system.trade_mode") == "both" and context.database is parts.database
    assert closed == [True]


@pytest.mark.asyncio
async def test_venue_trading_component_lists_cancels_and_flattens_on_the_paper_venue(parts: Parts) -> None:
    simulated = SimulatedExchange(seed=3, market_type=MarketType.SWAP)
    venues = await parts.factory(public_venue=lambda _r: simulated)(parts.record, TradingMode.PAPER)
    paper = venues.trading
    component = VenueTradingComponent(
        TradingContext(parts.record, TradingMode.PAPER, paper, parts.bus, parts.settings.get),
        poll_interval_s=0.0,
    )
    changes: list[str] = []
    parts.bus.subscribe(OrdersChanged, lambda e: changes.append("orders"))
    parts.bus.subscribe(PositionsChanged, lambda e: changes.append("positions"))
    await component.start()
    ticker: Ticker = await simulated.fetch_ticker("ETH/USDT")
    await paper.create_order(
        OrderRequest(
            "ETH/USDT", OrderSide.BUY, OrderType.MARKET, 0.5, "pos-1", position_side=PositionSide.LONG
        )
    )
    await paper.create_order(
        OrderRequest(
            "ETH/USDT", OrderSide.BUY, OrderType.LIMIT, 0.5, "rest-1", price=round(ticker.last * 0.5, 2)
        )
    )
    await component.cycle(accepting_new=True)
    orders: list[OrderView] = await component.open_orders()
    positions: list[PositionView] = await component.open_positions()
    assert [(o.client_order_id, o.status.value, o.mode) for o in orders] == [
        ("rest-1", "open", TradingMode.PAPER)
    ]
    assert [(p.symbol, p.side, p.contracts) for p in positions] == [("ETH/USDT", PositionSide.LONG, 0.5)]
    assert changes.count("orders") >= 2 and changes.count("positions") >= 2

    assert await component.cancel_all() == 1
    assert await component.flatten() == 1
    assert await component.open_orders() == [] and await component.open_positions() == []
    assert await component.reconcile() == []
    with pytest.raises(ValueError, match="no difference to apply"):
        await component.apply_difference(
            ReconcileDifference(
                kind=DifferenceKind.BALANCE,
                connection_id=parts.record.id,
                symbol="ETH/USDT",
                description="",
                action="",
                applied=False,
            )
        )
    await component.close()
    await venues.close()
