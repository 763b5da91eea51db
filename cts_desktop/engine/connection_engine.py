"""One connection's engine: supervised asyncio tasks over that connection's venues (D1, DOMAIN §4.1).

Tasks, each supervised on its own so one failure never touches another connection:

- **market**: a :class:`StreamSupervisor` streams the selected symbols from the data venue into
  the shared MarketBus under the connection's own source name (D19). Every ticker is also queued
  for the main loop and for the paper venue's matching.
- **main**: feeds each symbol's new ticks to the connection's :class:`PseudoPipeline`
  (indications → pseudo book → statistics → promotion).
- **preset**: the preset engine's loop. There is no preset compute yet, so its cycle does
  nothing; it exists so the D16 switches, the interval and the health report already behave.
- **orders**: passes queued prices to the paper venue (which fills resting TP/SL orders), then
  runs the pluggable :class:`TradingComponent` cycle.
- **health**: refreshes the open order and position counts and reports the snapshot about once
  a second.

Each loop sleeps its interval *after* a cycle, so cycles never overlap (§4.1). A cycle that
raises is counted (health) and the loop goes on: one bad tick must not stop trading. A loop whose
cycles fail ``max_consecutive_errors`` times with no good cycle in between, or a task that dies
outside its cycle, ends the engine: the coordinator is told the reason and moves the connection
to ``error``. Transient venue errors (network, rate limit, exchange down) do not count towards
that limit: the venue is expected back, and the health report already shows the trouble.

Pause (D14) stops new entries only: the pipeline stops accepting new pseudo entries and the
trading component is told ``accepting_new=False``, while the market stream, the book's exit
checks and the paper venue's order matching keep running, so open positions stay monitored and
protected.

D16: the main loop runs only when ``system.main_engine_enabled`` is on and ``system.trade_mode`` is
``both`` or ``main``; the preset loop likewise with ``preset``. :meth:`apply_engine_types` starts
or ends the loops when those settings change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from cts_desktop.domain.engine import ComponentHealth, HealthStatus
from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import ALIVE_STREAM_STATUSES, FAILING_STREAM_STATUSES, StreamStatus, Ticker
from cts_desktop.engine.circuit_breakers import BreakerSettings, CircuitBreakers, Trip
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.health import ComponentMonitor, describe_error, overall_health, stream_health
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline
from cts_desktop.engine.symbol_universe import select_symbols
from cts_desktop.engine.trading_component import (
    TradingComponent,
    TradingComponentFactory,
    TradingContext,
    VenueTradingComponent,
)
from cts_desktop.engine.venues import EngineVenues
from cts_desktop.exchanges.backoff import BackoffPolicy, is_retryable
from cts_desktop.exchanges.errors import ExchangeError
from cts_desktop.exchanges.streams import DEFAULT_RECONNECT_POLICY, StreamKind, StreamSupervisor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.connections import ConnectionRecord

log = logging.getLogger(__name__)

__all__ = [
    "COMPONENTS",
    "DEFAULT_ENGINE_OPTIONS",
    "ConnectionEngine",
    "EngineOptions",
    "NoSymbolsError",
    "SettingsReader",
    "engine_types",
]

COMPONENTS = ("market", "main", "preset", "orders", "health")
"""Every engine reports these components, in this order."""

_INTERVAL_KEYS = {
    "main": "system.main_engine_interval_ms",
    "preset": "system.preset_engine_interval_ms",
    "orders": "system.active_order_interval_ms",
}


class SettingsReader(Protocol):
    """What the engine reads of the settings service (current values, D2)."""

    def get(self, key: str) -> Any: ...

    def values(self) -> dict[str, Any]: ...


class NoSymbolsError(ValueError):
    """The venue lists none of the symbols the settings ask for; retrying would not help."""


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Knobs that are not user settings: supervision limits and test seams."""

    health_interval_s: float = 1.0
    counts_interval_s: float = 2.0
    """How often the health loop asks the trading component for its open orders and positions
    (a venue call on a live exchange, so not on every one-second refresh)."""
    max_consecutive_errors: int = 10
    tick_buffer: int = 10_000
    stream_backoff: BackoffPolicy = DEFAULT_RECONNECT_POLICY
    stream_poll_interval_s: float = 5.0


DEFAULT_ENGINE_OPTIONS = EngineOptions()


def engine_types(settings: SettingsReader) -> tuple[bool, bool]:
    """(main loop may run, preset loop may run) under D16."""
    mode = str(settings.get("system.trade_mode"))
    main = bool(settings.get("system.main_engine_enabled")) and mode in ("both", "main")
    preset = bool(settings.get("system.preset_engine_enabled")) and mode in ("both", "preset")
    return main, preset


class ConnectionEngine:
    """The supervised tasks of one connection (see the module docstring).

    Lifecycle: ``await start()`` (raises on failure after cleaning up what it started),
    ``pause()`` / ``resume()``, ``await stop()`` (idempotent, never raises). State names and
    transitions belong to the coordinator; the engine only does the work.
    """

    def __init__(
        self,
        record: ConnectionRecord,
        venues: EngineVenues,
        *,
        bus: EventBus,
        market_bus: MarketBus,
        settings: SettingsReader,
        trading_factory: TradingComponentFactory = VenueTradingComponent.create,
        on_failure: Callable[[ConnectionEngine, str], None] = lambda _engine, _reason: None,
        on_refresh: Callable[[ConnectionEngine], None] = lambda _engine: None,
        on_trip: Callable[[ConnectionEngine, Trip], None] = lambda _engine, _trip: None,
        options: EngineOptions = DEFAULT_ENGINE_OPTIONS,
        database: Database | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.record = record
        self.venues = venues
        self._bus = bus
        self._market_bus = market_bus
        self._settings = settings
        self._trading_factory = trading_factory
        self._on_failure = on_failure
        self._on_refresh = on_refresh
        self._on_trip = on_trip
        self._options = options
        self._database = database
        self._sleep = sleep
        self._feed = market_bus.feed(venues.source)
        self.pipeline: PseudoPipeline | None = None
        self.trading: TradingComponent | None = None
        self.symbols: tuple[str, ...] = ()
        self._supervisor: StreamSupervisor | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._main_ticks: dict[str, deque[tuple[float, int]]] = {}
        self._order_ticks: dict[str, deque[tuple[float, int]]] = {}
        self._monitors = {
            name: ComponentMonitor(name, self._interval_getter(name))
            for name in COMPONENTS
            if name != "market"
        }
        self._stream_failures = 0
        self._stream_error = ""
        self.breakers = CircuitBreakers(record.id, BreakerSettings.from_settings(settings.values()))
        self._paused = False
        self._started = False
        self._stopped = False
        self.failure: str | None = None
        self.pseudo_opened = 0
        self.pseudo_closed = 0
        self.open_orders = 0
        self.open_positions = 0

    # ------------------------------------------------------------------ properties

    @property
    def connection_id(self) -> str:
        return self.record.id

    @property
    def mode(self) -> TradingMode:
        return self.venues.mode

    @property
    def source(self) -> str:
        return self.venues.source

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def loop_running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Select the symbols, prepare the trading component, open the stream, start the loops.

        Any failure (or cancellation) tears down what was started before it propagates, so a
        failed start leaves no task, stream or open venue behind.
        """
        if self._started or self._stopped:
            raise RuntimeError("a connection engine starts once; build a new one to start again")
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        data = self.venues.data
        markets = await data.load_markets()
        try:
            tickers = await data.fetch_tickers()
        except ExchangeError as exc:
            if exc.retryable:
                raise
            tickers = {}  # a venue without a tickers call: rank without volumes
        settings = self._settings
        selection = select_symbols(
            markets.values(),
            tickers,
            order=str(settings.get("main.symbol_order")),
            count=int(settings.get("main.symbol_count")),
            quote_asset=str(settings.get("main.quote_asset")),
            use_main_symbols=bool(settings.get("main.use_main_symbols")),
            main_symbols=list(settings.get("main.main_symbols")),
            forced_symbols=list(settings.get("main.forced_symbols")),
        )
        for dropped in selection.dropped:
            log.info("%s: %s", self.record.name, dropped.message)
        if not selection.symbols:
            raise NoSymbolsError(
                f"{data.name} lists none of the symbols the settings ask for "
                f"(quote {settings.get('main.quote_asset')}); check the symbol settings"
            )
        self.symbols = selection.symbols
        for symbol in self.symbols:
            self._main_ticks[symbol] = deque(maxlen=self._options.tick_buffer)
            self._order_ticks[symbol] = deque(maxlen=self._options.tick_buffer)
        self.pipeline = PseudoPipeline(settings.values())
        self.trading = self._trading_factory(
            TradingContext(
                connection=self.record,
                mode=self.mode,
                venue=self.venues.trading,
                bus=self._bus,
                setting=settings.get,
                market_bus=self._market_bus,
                source=self.source,
                pipeline=self.pipeline,
                database=self._database,
            )
        )
        await self.trading.start()
        self._supervisor = StreamSupervisor(
            data,
            self.symbols,
            on_ticker=self._on_ticker,
            on_candles=self._feed.on_candles,
            on_status=self._on_status,
            timeframe=self.venues.timeframe,
            stale_after_s=self.venues.stale_after_s,
            backoff=self._options.stream_backoff,
            poll_interval_s=self._options.stream_poll_interval_s,
        )
        self._supervisor.start()
        self._spawn("orders", lambda: self._loop("orders", self._orders_cycle))
        self._spawn("health", self._health_loop)
        self.apply_engine_types()
        log.info(
            "engine %s started (%s, %s data, %d symbols: %s)",
            self.record.name,
            self.mode.value,
            data.name,
            len(self.symbols),
            ", ".join(self.symbols),
        )

    async def stop(self) -> None:
        """Cancel every loop, stop the stream, close the trading component and the venues.

        Idempotent and never raises: a stop is also what cleans up after a failure, and it must
        get as far as closing the venues whatever broke first.
        """
        if self._stopped:
            return
        self._stopped = True
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        steps: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        supervisor = self._supervisor
        if supervisor is not None:
            steps.append(("market stream", supervisor.stop))
        trading = self.trading
        if trading is not None:
            steps.append(("trading component", trading.close))
        steps.append(("venues", self.venues.close))
        for label, step in steps:
            try:
                await step()
            except Exception:
                log.exception("engine %s: the %s did not close cleanly", self.record.name, label)
        log.info("engine %s stopped", self.record.name)

    def pause(self) -> None:
        """No new pseudo, real or exchange positions; everything open stays monitored (D14)."""
        self._paused = True
        if self.pipeline is not None:
            self.pipeline.accepting_new = False

    def resume(self) -> None:
        """New positions again; the breakers forget the errors and outage time that tripped them
        (they are level-triggered: a condition that still holds trips again)."""
        self.breakers.reset(time.time())
        self._paused = False
        if self.pipeline is not None:
            self.pipeline.accepting_new = True

    def apply_engine_types(self) -> None:
        """Start or end the main and preset loops to match D16 (called on settings changes)."""
        if not self.running or self.pipeline is None:
            return
        main, preset = engine_types(self._settings)
        self._toggle("main", main, self._main_cycle)
        self._toggle("preset", preset, self._preset_cycle)

    def apply_breaker_settings(self) -> None:
        """New circuit-breaker thresholds (called on settings changes); recent errors are kept."""
        self.breakers.update_settings(BreakerSettings.from_settings(self._settings.values()))

    # ------------------------------------------------------------------ health

    def components(self) -> tuple[ComponentHealth, ...]:
        infos = self._supervisor.infos() if self._supervisor is not None else []
        market = stream_health("market", infos, self._stream_failures, self._stream_error)
        return (market, *(self._monitors[name].health() for name in COMPONENTS if name != "market"))

    def health(self) -> HealthStatus:
        return overall_health(self.components())

    def stream_statuses(self) -> dict[str, str]:
        """Ticker stream status per symbol, for logs and the headless summary."""
        if self._supervisor is None:
            return {}
        return {
            info.symbol: info.status.value
            for info in self._supervisor.infos()
            if info.stream is StreamKind.TICKER
        }

    # ------------------------------------------------------------------ stream callbacks

    def _on_ticker(self, ticker: Ticker) -> None:
        self._feed.on_ticker(ticker)
        tick = (ticker.last, ticker.timestamp_ms)
        main = self._main_ticks.get(ticker.symbol)
        if main is not None:
            main.append(tick)
            self._order_ticks[ticker.symbol].append(tick)

    def _on_status(self, symbol: str, stream: StreamKind, status: StreamStatus, reason: str) -> None:
        self._feed.on_status(symbol, stream, status, reason)
        if stream is StreamKind.TICKER and self._supervisor is not None:
            # The supervisor has already recorded ``status``: judge all ticker streams together.
            down = [
                info.status
                for info in self._supervisor.infos()
                if info.stream is StreamKind.TICKER and info.status not in ALIVE_STREAM_STATUSES
            ]
            self.breakers.stream_status(down[0] if down else StreamStatus.LIVE, time.time())
        if status in FAILING_STREAM_STATUSES and not (status is StreamStatus.STOPPED and self._stopped):
            self._stream_failures += 1
            self._stream_error = f"{symbol} {stream}: {status} {reason}".strip()

    # ------------------------------------------------------------------ loops

    def _interval_getter(self, name: str) -> Callable[[], float | None]:
        key = _INTERVAL_KEYS.get(name)
        if key is not None:
            return lambda: float(self._settings.get(key))
        if name == "health":
            return lambda: self._options.health_interval_s * 1000.0
        return lambda: None

    def _toggle(self, name: str, wanted: bool, cycle: Callable[[], Awaitable[None]]) -> None:
        task = self._tasks.get(name)
        active = task is not None and not task.done()
        if wanted and not active:
            if name == "main":
                for ticks in self._main_ticks.values():
                    ticks.clear()  # do not replay what arrived while the loop was off
            self._spawn(name, lambda: self._loop(name, cycle))
            log.info("engine %s: %s loop on", self.record.name, name)
        elif not wanted and active and task is not None:
            task.cancel()
            log.info("engine %s: %s loop off", self.record.name, name)

    def _spawn(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # The coroutine is created inside the task, so a task cancelled before it ever ran
        # leaves no never-awaited coroutine behind.
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._supervised(name, body), name=f"engine:{self.record.name}:{name}"
        )

    async def _supervised(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one task; if it ends with an error, the whole engine fails with that reason."""
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = (
                exc.reason
                if isinstance(exc, _ComponentFailed)
                else f"the {name} task crashed: {describe_error(exc)}"
            )
            log.error(
                "engine %s: %s", self.record.name, reason, exc_info=not isinstance(exc, _ComponentFailed)
            )
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self.failure is not None or self._stopped:
            return
        self.failure = reason
        try:
            self._on_failure(self, reason)
        except Exception:
            log.exception("engine %s: the failure callback failed", self.record.name)

    async def _loop(self, name: str, cycle: Callable[[], Awaitable[None]]) -> None:
        monitor = self._monitors[name]
        interval = self._interval_getter(name)
        limit = self._options.max_consecutive_errors
        consecutive = 0  # failures in a row, for the log
        broken = 0  # non-transient failures since the last good cycle
        while True:
            monitor.begin()
            try:
                await cycle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                monitor.end(exc)
                if isinstance(exc, ExchangeError):
                    self.breakers.record_error(time.time(), exc.kind.value)
                consecutive += 1
                if consecutive == 1 or consecutive % 100 == 0:
                    log.warning(
                        "engine %s: %s cycle failed (%d in a row): %s",
                        self.record.name,
                        name,
                        consecutive,
                        describe_error(exc),
                        exc_info=not isinstance(exc, ExchangeError),
                    )
                # Retryable venue errors (network, rate limit, exchange down) never end the engine:
                # the venue is expected back, and health already shows the trouble.
                if not is_retryable(exc):
                    broken += 1
                    if broken >= limit:
                        raise _ComponentFailed(
                            f"the {name} loop failed {broken} cycles in a row: {describe_error(exc)}"
                        ) from exc
            else:
                monitor.end()
                consecutive = broken = 0
                self.breakers.record_success(time.time())
            await self._sleep((interval() or 0.0) / 1000.0)

    async def _main_cycle(self) -> None:
        pipeline = self.pipeline
        assert pipeline is not None
        for symbol, ticks in self._main_ticks.items():
            while ticks:
                price, ts_ms = ticks.popleft()
                outcome = pipeline.on_tick(symbol, price, ts_ms)
                self.pseudo_opened += outcome.opened
                self.pseudo_closed += len(outcome.closed)

    async def _preset_cycle(self) -> None:
        """No preset compute exists yet (DOMAIN §3.2); the loop runs empty so D16, the interval
        and the health report already behave as they will."""

    async def _orders_cycle(self) -> None:
        on_price = self.venues.on_price
        if on_price is not None:
            for symbol, ticks in self._order_ticks.items():
                while ticks:
                    price, ts_ms = ticks.popleft()
                    await on_price(symbol, price, ts_ms)
        else:
            for ticks in self._order_ticks.values():
                ticks.clear()
        trading = self.trading
        assert trading is not None
        await trading.cycle(accepting_new=not self._paused)

    async def _health_loop(self) -> None:
        monitor = self._monitors["health"]
        trading = self.trading
        assert trading is not None
        loop = asyncio.get_running_loop()
        next_count = 0.0
        while True:
            monitor.begin()
            try:
                if loop.time() >= next_count:
                    next_count = loop.time() + self._options.counts_interval_s
                    self.open_orders, self.open_positions = await trading.open_counts()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                monitor.end(exc)
                log.debug("engine %s: health refresh failed: %s", self.record.name, describe_error(exc))
            else:
                monitor.end()
            self._check_breakers(trading)
            self._on_refresh(self)
            await self._sleep(self._options.health_interval_s)

    def _check_breakers(self, trading: TradingComponent) -> None:
        """Feed the account to the breakers and report a trip (the coordinator pauses); a paused
        engine reports nothing: the breakers only stop new positions, which pause already does."""
        view = trading.risk_view()
        if view is not None:
            self.breakers.account(*view)
        if self._paused:
            return
        trip = self.breakers.check(time.time())
        if trip is not None:
            try:
                self._on_trip(self, trip)
            except Exception:
                log.exception("engine %s: the circuit-breaker callback failed", self.record.name)


class _ComponentFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
