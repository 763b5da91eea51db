"""StreamSupervisor against a fake venue whose websocket we control message by message.

Intervals are tens of milliseconds with generous timeouts; no assertion needs better than ±20 %
timing precision (qasync timers are ±5 % off, CI machines are slower still).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

from cts_desktop.domain.market import Candle, StreamStatus, Ticker
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.market_events import StreamStatusChanged, TickerUpdated
from cts_desktop.exchanges.backoff import BackoffPolicy, Jitter
from cts_desktop.exchanges.errors import (
    AuthenticationError,
    BadSymbolError,
    ExchangeError,
    NetworkError,
    NotSupportedError,
)
from cts_desktop.exchanges.streams import MarketDataSource, StreamKind, StreamSupervisor
from tests.helpers import wait_for

FAST = BackoffPolicy(base_s=0.01, factor=2.0, cap_s=0.04, max_attempts=None, jitter=Jitter.FULL)


class FakeVenue:
    """The market-data half of the Exchange protocol, driven by the test.

    Per symbol: a queue of tickers or errors that ``watch_ticker`` returns/raises in order; an
    optional ``tick_every`` that makes the websocket produce a fresh ticker at that interval when the
    queue is empty; an optional ``watch_error`` raised on every watch call; and ``fetch_error`` for
    REST. With nothing queued and no ``tick_every`` the websocket is silent (the call blocks).
    """

    def __init__(self, *, streaming: bool = True) -> None:
        self.name = "fake"
        self.supports_streaming = streaming
        self.queues: dict[str, asyncio.Queue[Ticker | ExchangeError]] = {}
        self.candle_queues: dict[str, asyncio.Queue[list[Candle]]] = {}
        self.tick_every: dict[str, float] = {}
        self.watch_error: dict[str, BaseException] = {}
        self.fetch_error: dict[str, ExchangeError] = {}
        self.watch_calls: Counter[str] = Counter()
        self.fetch_calls: Counter[str] = Counter()
        self.ohlcv_fetches: list[tuple[str, str, int | None]] = []
        self.cancelled_watches: Counter[str] = Counter()
        self.pending_watches = 0
        self._seq = 0

    def queue(self, symbol: str) -> asyncio.Queue[Ticker | ExchangeError]:
        return self.queues.setdefault(symbol, asyncio.Queue())

    def push(self, symbol: str, *items: Ticker | ExchangeError) -> None:
        for item in items:
            self.queue(symbol).put_nowait(item)

    def ticker(self, symbol: str) -> Ticker:
        self._seq += 1
        return Ticker(symbol, timestamp_ms=1_700_000_000_000 + self._seq, last=100.0 + self._seq)

    async def _blocking_get[T](self, symbol: str, queue: asyncio.Queue[T]) -> T:
        self.pending_watches += 1
        try:
            return await queue.get()
        except asyncio.CancelledError:
            self.cancelled_watches[symbol] += 1
            raise
        finally:
            self.pending_watches -= 1

    async def watch_ticker(self, symbol: str) -> Ticker:
        self.watch_calls[symbol] += 1
        error = self.watch_error.get(symbol)
        if error is not None:
            raise error  # synchronously: the call never hangs on an error decided earlier
        queue = self.queue(symbol)
        if queue.empty() and symbol in self.tick_every:
            await asyncio.sleep(self.tick_every[symbol])
            return self.ticker(symbol)
        item = await self._blocking_get(symbol, queue)
        if isinstance(item, ExchangeError):
            raise item
        return item

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self.fetch_calls[symbol] += 1
        await asyncio.sleep(0)
        error = self.fetch_error.get(symbol)
        if error is not None:
            raise error
        return self.ticker(symbol)

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        self.watch_calls[f"ohlcv:{symbol}"] += 1
        error = self.watch_error.get(symbol)
        if error is not None:
            raise error  # synchronously: the call never hangs on an error decided earlier
        return await self._blocking_get(symbol, self.candle_queues.setdefault(symbol, asyncio.Queue()))

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        self.ohlcv_fetches.append((symbol, timeframe, limit))
        await asyncio.sleep(0)
        return [Candle(60_000, 1, 2, 0.5, 1.5, 10), Candle(120_000, 1.5, 1.6, 1.4, 1.5, 1)]


@dataclass
class Sink:
    """Collects what the supervisor reports."""

    tickers: list[Ticker] = field(default_factory=list)
    candles: list[tuple[str, str, list[Candle]]] = field(default_factory=list)
    statuses: list[tuple[str, StreamKind, StreamStatus, str, float]] = field(default_factory=list)

    def on_ticker(self, ticker: Ticker) -> None:
        self.tickers.append(ticker)

    def on_candles(self, symbol: str, timeframe: str, candles: list[Candle]) -> None:
        self.candles.append((symbol, timeframe, candles))

    def on_status(self, symbol: str, stream: StreamKind, status: StreamStatus, reason: str) -> None:
        self.statuses.append((symbol, stream, status, reason, asyncio.get_running_loop().time()))

    def history(self, symbol: str, stream: StreamKind = StreamKind.TICKER) -> list[StreamStatus]:
        return [s[2] for s in self.statuses if s[0] == symbol and s[1] is stream]

    def reasons(self, symbol: str, status: StreamStatus) -> list[str]:
        return [s[3] for s in self.statuses if s[0] == symbol and s[2] is status]

    def count(self, symbol: str) -> int:
        return sum(1 for t in self.tickers if t.symbol == symbol)


class RecordingSleep:
    """Injected instead of asyncio.sleep: records each requested delay and yields once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.001)


def make(
    venue: FakeVenue, symbols: list[str], sink: Sink, *, candles: bool = False, **kwargs: object
) -> StreamSupervisor:
    options: dict[str, object] = {
        "stale_after_s": 2.0,
        "backoff": FAST,
        "poll_interval_s": 0.02,
        "fallback_after_failures": 100,
        "ws_retry_interval_s": 0.1,
        "rng": random.Random(42),
    }
    options.update(kwargs)
    return StreamSupervisor(
        venue,
        symbols,
        on_ticker=sink.on_ticker,
        on_status=sink.on_status,
        on_candles=sink.on_candles if candles else None,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue()


@pytest.fixture
def sink() -> Sink:
    return Sink()


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def test_the_fake_satisfies_the_supervisors_protocol(venue: FakeVenue) -> None:
    source: MarketDataSource = venue
    assert source.name == "fake"


# ---------------------------------------------------------------- live streaming


@pytest.mark.asyncio
async def test_live_when_messages_flow(venue: FakeVenue, sink: Sink) -> None:
    async with make(venue, ["BTC/USDT"], sink) as supervisor:
        assert supervisor.status("BTC/USDT") is StreamStatus.CONNECTING
        pushed = [venue.ticker("BTC/USDT") for _ in range(3)]
        venue.push("BTC/USDT", *pushed)
        await wait_for(lambda: len(sink.tickers) == 3)
        assert sink.tickers == pushed
        assert supervisor.status("BTC/USDT") is StreamStatus.LIVE
        assert sink.history("BTC/USDT") == [StreamStatus.CONNECTING, StreamStatus.LIVE]
        info = supervisor.info("BTC/USDT")
        assert info.messages == 3 and info.last_message_age_s is not None
        assert venue.fetch_calls == Counter()


@pytest.mark.asyncio
async def test_reconnects_with_seeded_backoff_after_network_errors(venue: FakeVenue, sink: Sink) -> None:
    sleep = RecordingSleep()
    venue.watch_error["BTC/USDT"] = NetworkError("fake", "connection reset")
    supervisor = make(venue, ["BTC/USDT"], sink, sleep=sleep, rng=random.Random(42))
    supervisor.start()
    try:
        await wait_for(lambda: len(sleep.delays) >= 6)
        delays = list(sleep.delays)  # no await between the snapshot and the fix: consistent
        del venue.watch_error["BTC/USDT"]
        venue.push("BTC/USDT", venue.ticker("BTC/USDT"))
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.LIVE)
    finally:
        await supervisor.stop()

    # Each stream draws its own Random from the supervisor's rng: first the websocket backoff's.
    stream_rng = random.Random(random.Random(42).getrandbits(64))
    expected = [stream_rng.uniform(0, FAST.ceiling(n)) for n in range(1, len(delays) + 1)]
    assert delays == expected
    assert all(d <= FAST.cap_s for d in delays)
    assert sleep.delays == delays  # reconnected without another wait
    assert venue.watch_calls["BTC/USDT"] == len(delays) + 2  # failures + the successful session
    assert StreamStatus.RECONNECTING in sink.history("BTC/USDT")
    reason = sink.reasons("BTC/USDT", StreamStatus.RECONNECTING)[0]
    assert "connection reset" in reason and "attempt 1" in reason


@pytest.mark.asyncio
async def test_real_backoff_waits_roughly_the_policy_delays(venue: FakeVenue, sink: Sink) -> None:
    policy = BackoffPolicy(base_s=0.05, factor=2, cap_s=0.1, max_attempts=None, jitter=Jitter.NONE)
    venue.watch_error["BTC/USDT"] = NetworkError("fake")
    loop = asyncio.get_running_loop()
    async with make(venue, ["BTC/USDT"], sink, backoff=policy):
        started = loop.time()
        await wait_for(lambda: venue.watch_calls["BTC/USDT"] >= 4)
        elapsed = loop.time() - started
    # three waits of 0.05 + 0.1 + 0.1 s between four calls
    assert elapsed >= 0.25 * 0.8


# ---------------------------------------------------------------- staleness


@pytest.mark.asyncio
async def test_silence_marks_the_stream_stale_then_reconnects(venue: FakeVenue, sink: Sink) -> None:
    stale = 0.1
    loop = asyncio.get_running_loop()
    async with make(venue, ["ETH/USDT"], sink, stale_after_s=stale) as supervisor:
        venue.push("ETH/USDT", venue.ticker("ETH/USDT"))
        await wait_for(lambda: len(sink.tickers) == 1)
        last_message = loop.time()
        await wait_for(lambda: StreamStatus.STALE in sink.history("ETH/USDT"))
        stale_at = next(s[4] for s in sink.statuses if s[2] is StreamStatus.STALE)
        assert stale_at - last_message >= stale * 0.8
        assert venue.cancelled_watches["ETH/USDT"] >= 1  # the silent watch was cancelled
        assert sink.reasons("ETH/USDT", StreamStatus.STALE) == ["no update for 0.1 s"]

        venue.push("ETH/USDT", venue.ticker("ETH/USDT"))
        await wait_for(lambda: len(sink.tickers) == 2)
        await wait_for(lambda: supervisor.status("ETH/USDT") is StreamStatus.LIVE)
    history = sink.history("ETH/USDT")
    stale_index = history.index(StreamStatus.STALE)
    assert StreamStatus.RECONNECTING in history[stale_index:]
    assert StreamStatus.LIVE in history[stale_index:]
    assert venue.watch_calls["ETH/USDT"] >= 3


@pytest.mark.asyncio
async def test_a_steady_stream_never_goes_stale(venue: FakeVenue, sink: Sink) -> None:
    venue.tick_every["BTC/USDT"] = 0.01
    async with make(venue, ["BTC/USDT"], sink, stale_after_s=0.1):
        await asyncio.sleep(0.4)  # four stale periods of steady messages
    assert StreamStatus.STALE not in sink.history("BTC/USDT")
    assert venue.watch_calls["BTC/USDT"] == sink.count("BTC/USDT") + 1


# ---------------------------------------------------------------- REST fallback


@pytest.mark.asyncio
async def test_polls_over_rest_when_the_venue_cannot_stream(sink: Sink) -> None:
    venue = FakeVenue(streaming=False)
    async with make(venue, ["BTC/USDT"], sink) as supervisor:
        await wait_for(lambda: len(sink.tickers) >= 3)
        assert supervisor.status("BTC/USDT") is StreamStatus.POLLING
        await asyncio.sleep(0.25)  # longer than ws_retry_interval_s: still no websocket attempt
    assert venue.watch_calls == Counter()
    assert venue.fetch_calls["BTC/USDT"] >= 3
    assert "no websocket" in sink.reasons("BTC/USDT", StreamStatus.POLLING)[0]


@pytest.mark.asyncio
async def test_polling_interval_is_respected(sink: Sink) -> None:
    venue = FakeVenue(streaming=False)
    async with make(venue, ["BTC/USDT"], sink, poll_interval_s=0.05):
        await asyncio.sleep(0.5)
    assert 5 <= venue.fetch_calls["BTC/USDT"] <= 12  # ≈ 10 at 0.05 s; ±20 % and then some


@pytest.mark.asyncio
async def test_falls_back_to_polling_after_n_websocket_failures_and_comes_back(
    venue: FakeVenue, sink: Sink
) -> None:
    venue.watch_error["BTC/USDT"] = NetworkError("fake", "handshake failed")
    async with make(venue, ["BTC/USDT"], sink, fallback_after_failures=3, ws_retry_interval_s=0.15) as sup:
        await wait_for(lambda: sup.status("BTC/USDT") is StreamStatus.POLLING)
        assert venue.watch_calls["BTC/USDT"] == 3
        assert sink.history("BTC/USDT")[:4] == [
            StreamStatus.CONNECTING,
            StreamStatus.RECONNECTING,
            StreamStatus.RECONNECTING,
            StreamStatus.POLLING,
        ]
        assert "failed 3 time(s) in a row" in sink.reasons("BTC/USDT", StreamStatus.POLLING)[0]
        await wait_for(lambda: venue.fetch_calls["BTC/USDT"] >= 2)

        # While polling the websocket is retried periodically; one failure goes back to polling.
        await wait_for(lambda: venue.watch_calls["BTC/USDT"] >= 4)
        await wait_for(lambda: sup.status("BTC/USDT") is StreamStatus.POLLING)

        # The venue recovers: the next probe goes live and polling stops.
        del venue.watch_error["BTC/USDT"]
        venue.tick_every["BTC/USDT"] = 0.01
        await wait_for(lambda: sup.status("BTC/USDT") is StreamStatus.LIVE)
        fetched = venue.fetch_calls["BTC/USDT"]
        await asyncio.sleep(0.1)
        assert venue.fetch_calls["BTC/USDT"] == fetched
    polled = [t for t in sink.tickers if t.symbol == "BTC/USDT"]
    assert len(polled) >= fetched


@pytest.mark.asyncio
async def test_not_supported_websocket_polls_without_probing(venue: FakeVenue, sink: Sink) -> None:
    venue.watch_error["BTC/USDT"] = NotSupportedError("fake")
    async with make(venue, ["BTC/USDT"], sink, ws_retry_interval_s=0.05) as supervisor:
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.POLLING)
        await asyncio.sleep(0.25)
        assert supervisor.status("BTC/USDT") is StreamStatus.POLLING
    assert venue.watch_calls["BTC/USDT"] == 1
    assert venue.fetch_calls["BTC/USDT"] >= 3


@pytest.mark.asyncio
async def test_transient_rest_errors_are_retried_while_polling(sink: Sink) -> None:
    venue = FakeVenue(streaming=False)
    venue.fetch_error["BTC/USDT"] = NetworkError("fake", "HTTP 502")
    async with make(venue, ["BTC/USDT"], sink) as supervisor:
        await wait_for(lambda: venue.fetch_calls["BTC/USDT"] >= 3)
        assert supervisor.status("BTC/USDT") is StreamStatus.RECONNECTING
        assert "HTTP 502" in supervisor.info("BTC/USDT").reason
        del venue.fetch_error["BTC/USDT"]
        await wait_for(lambda: len(sink.tickers) >= 1)
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.POLLING)


# ---------------------------------------------------------------- fatal errors and isolation


@pytest.mark.asyncio
async def test_auth_error_stops_only_that_symbol(venue: FakeVenue, sink: Sink) -> None:
    for symbol in ("BTC/USDT", "SOL/USDT"):
        venue.tick_every[symbol] = 0.01
    venue.watch_error["ETH/USDT"] = AuthenticationError("fake")
    async with make(venue, ["BTC/USDT", "ETH/USDT", "SOL/USDT"], sink) as supervisor:
        await wait_for(lambda: supervisor.status("ETH/USDT") is StreamStatus.STOPPED)
        before = {s: sink.count(s) for s in ("BTC/USDT", "SOL/USDT")}
        await asyncio.sleep(0.1)
        for symbol in ("BTC/USDT", "SOL/USDT"):
            assert sink.count(symbol) > before[symbol]
            assert supervisor.status(symbol) is StreamStatus.LIVE
        assert venue.watch_calls["ETH/USDT"] == 1  # never retried
        assert "API credentials" in supervisor.info("ETH/USDT").reason
    assert StreamStatus.RECONNECTING not in sink.history("ETH/USDT")


@pytest.mark.asyncio
async def test_bad_symbol_while_polling_stops_that_symbol(sink: Sink) -> None:
    venue = FakeVenue(streaming=False)
    venue.fetch_error["NOPE/USDT"] = BadSymbolError("fake")
    async with make(venue, ["NOPE/USDT", "BTC/USDT"], sink) as supervisor:
        await wait_for(lambda: supervisor.status("NOPE/USDT") is StreamStatus.STOPPED)
        await wait_for(lambda: sink.count("BTC/USDT") >= 3)
        assert supervisor.status("BTC/USDT") is StreamStatus.POLLING
    assert venue.fetch_calls["NOPE/USDT"] == 1


@pytest.mark.asyncio
async def test_a_failing_callback_does_not_break_the_stream(venue: FakeVenue, sink: Sink) -> None:
    calls: list[Ticker] = []

    def flaky_consumer(ticker: Ticker) -> None:
        calls.append(ticker)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")

    venue.tick_every["BTC/USDT"] = 0.01
    supervisor = StreamSupervisor(venue, ["BTC/USDT"], on_ticker=flaky_consumer, on_status=sink.on_status)
    async with supervisor:
        await wait_for(lambda: len(calls) >= 5)
    assert sink.history("BTC/USDT")[:2] == [StreamStatus.CONNECTING, StreamStatus.LIVE]
    assert StreamStatus.RECONNECTING not in sink.history("BTC/USDT")


@pytest.mark.asyncio
async def test_unexpected_exceptions_are_retried_like_network_errors(venue: FakeVenue, sink: Sink) -> None:
    venue.watch_error["BTC/USDT"] = KeyError("adapter bug")
    async with make(venue, ["BTC/USDT"], sink) as supervisor:
        await wait_for(lambda: venue.watch_calls["BTC/USDT"] >= 3)
        assert supervisor.status("BTC/USDT") is StreamStatus.RECONNECTING
        del venue.watch_error["BTC/USDT"]
        venue.push("BTC/USDT", venue.ticker("BTC/USDT"))
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.LIVE)


@pytest.mark.asyncio
async def test_a_stray_cancelled_error_from_the_venue_is_retried(venue: FakeVenue, sink: Sink) -> None:
    """Some libraries raise CancelledError when their socket closes under them; that is not a stop."""
    venue.watch_error["BTC/USDT"] = asyncio.CancelledError()
    async with make(venue, ["BTC/USDT"], sink) as supervisor:
        await wait_for(lambda: venue.watch_calls["BTC/USDT"] >= 3)
        assert supervisor.status("BTC/USDT") is StreamStatus.RECONNECTING
        del venue.watch_error["BTC/USDT"]
        venue.push("BTC/USDT", venue.ticker("BTC/USDT"))
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.LIVE)
    assert supervisor.status("BTC/USDT") is StreamStatus.STOPPED


# ---------------------------------------------------------------- lifecycle


@pytest.mark.asyncio
async def test_stop_cancels_and_awaits_every_task(sink: Sink) -> None:
    venue = FakeVenue()
    venue.tick_every["A/USDT"] = 0.01  # streaming
    # B/USDT: silent websocket (a pending watch)
    venue.watch_error["C/USDT"] = NetworkError("fake")  # waiting in backoff
    supervisor = make(
        venue,
        ["A/USDT", "B/USDT", "C/USDT"],
        sink,
        candles=True,
        backoff=BackoffPolicy(base_s=5, cap_s=5, max_attempts=None, jitter=Jitter.NONE),
    )
    baseline = other_tasks()
    supervisor.start()
    await wait_for(lambda: supervisor.status("A/USDT") is StreamStatus.LIVE)
    await wait_for(lambda: supervisor.status("C/USDT") is StreamStatus.RECONNECTING)
    assert len(other_tasks() - baseline) == 6  # ticker + candles for three symbols

    await supervisor.stop()

    assert other_tasks() - baseline == set()
    assert venue.pending_watches == 0
    assert not supervisor.running
    for info in supervisor.infos():
        assert info.status is StreamStatus.STOPPED
    await supervisor.stop()  # idempotent


@pytest.mark.asyncio
async def test_add_and_remove_symbols_while_running(venue: FakeVenue, sink: Sink) -> None:
    venue.tick_every.update({"A/USDT": 0.01, "B/USDT": 0.01})
    async with make(venue, ["A/USDT"], sink) as supervisor:
        baseline = len(other_tasks())
        supervisor.add_symbols(["B/USDT", "A/USDT"])  # A is already supervised: no duplicate task
        assert supervisor.symbols == ("A/USDT", "B/USDT")
        assert len(other_tasks()) == baseline + 1
        await wait_for(lambda: sink.count("B/USDT") >= 2)

        await supervisor.remove_symbols(["A/USDT"])
        assert list(supervisor.symbols) == ["B/USDT"]
        assert sink.history("A/USDT")[-1] is StreamStatus.STOPPED
        with pytest.raises(KeyError):
            supervisor.status("A/USDT")
        count_a = sink.count("A/USDT")
        await asyncio.sleep(0.05)
        assert sink.count("A/USDT") == count_a
        assert supervisor.status("B/USDT") is StreamStatus.LIVE


@pytest.mark.asyncio
async def test_adding_a_stopped_symbol_restarts_it(venue: FakeVenue, sink: Sink) -> None:
    venue.watch_error["BTC/USDT"] = AuthenticationError("fake")
    async with make(venue, ["BTC/USDT"], sink) as supervisor:
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.STOPPED)
        del venue.watch_error["BTC/USDT"]  # the user fixed the key
        venue.tick_every["BTC/USDT"] = 0.01
        supervisor.add_symbols(["BTC/USDT"])
        await wait_for(lambda: supervisor.status("BTC/USDT") is StreamStatus.LIVE)


@pytest.mark.asyncio
async def test_symbols_added_before_start_wait_for_start(venue: FakeVenue, sink: Sink) -> None:
    venue.tick_every["BTC/USDT"] = 0.01
    supervisor = make(venue, [], sink)
    supervisor.add_symbols(["BTC/USDT"])
    await asyncio.sleep(0.03)
    assert venue.watch_calls == Counter() and sink.statuses == []
    async with supervisor:
        await wait_for(lambda: sink.count("BTC/USDT") >= 1)


def test_invalid_options_are_refused(venue: FakeVenue, sink: Sink) -> None:
    with pytest.raises(ValueError):
        make(venue, [], sink, stale_after_s=0)
    with pytest.raises(ValueError):
        make(venue, [], sink, fallback_after_failures=0)


# ---------------------------------------------------------------- candles


@pytest.mark.asyncio
async def test_candle_stream_delivers_bars_with_symbol_and_timeframe(venue: FakeVenue, sink: Sink) -> None:
    bars = [Candle(0, 1, 2, 0.5, 1.5, 3)]
    async with make(venue, ["BTC/USDT"], sink, candles=True, timeframe="5m") as supervisor:
        venue.candle_queues.setdefault("BTC/USDT", asyncio.Queue()).put_nowait(bars)
        await wait_for(lambda: len(sink.candles) == 1)
        assert sink.candles == [("BTC/USDT", "5m", bars)]
        assert supervisor.status("BTC/USDT", StreamKind.CANDLES) is StreamStatus.LIVE
        assert supervisor.status("BTC/USDT") is StreamStatus.CONNECTING  # ticker stream still silent


@pytest.mark.asyncio
async def test_candle_polling_fetches_the_last_two_bars(sink: Sink) -> None:
    venue = FakeVenue(streaming=False)
    async with make(venue, ["BTC/USDT"], sink, candles=True) as supervisor:
        await wait_for(lambda: len(sink.candles) >= 2)
        assert supervisor.status("BTC/USDT", StreamKind.CANDLES) is StreamStatus.POLLING
    assert venue.ohlcv_fetches[0] == ("BTC/USDT", "1m", 2)


# ---------------------------------------------------------------- wired to the MarketBus


@pytest.mark.asyncio
async def test_supervisor_feeds_the_market_bus(venue: FakeVenue) -> None:
    events = EventBus()
    updates: list[TickerUpdated] = []
    statuses: list[StreamStatusChanged] = []
    events.subscribe(TickerUpdated, updates.append)
    events.subscribe(StreamStatusChanged, statuses.append)
    bus = MarketBus(events)
    feed = bus.feed("bybit")
    venue.tick_every["BTC/USDT:USDT"] = 0.01
    supervisor = StreamSupervisor(
        venue,
        ["BTC/USDT:USDT"],
        on_ticker=feed.on_ticker,
        on_candles=feed.on_candles,
        on_status=feed.on_status,
    )
    async with supervisor:
        await wait_for(lambda: len(updates) >= 3)
    assert {u.source for u in updates} == {"bybit"}
    assert bus.ticks_received("bybit")["BTC/USDT:USDT"] >= 3
    assert bus.ticker("bybit", "BTC/USDT:USDT") == updates[-1].ticker
    assert [s.status for s in statuses if s.stream is StreamKind.TICKER][:2] == [
        StreamStatus.CONNECTING,
        StreamStatus.LIVE,
    ]
    assert bus.stream_status("bybit", "BTC/USDT:USDT") == (StreamStatus.STOPPED, "market stream stopped")
