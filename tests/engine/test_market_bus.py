"""MarketBus: ring buffers (wraparound, open-bar replacement), closed-candle events, tickers, counters."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.domain.market import Candle, StreamStatus, Ticker
from cts_desktop.engine.events import Event, EventBus
from cts_desktop.engine.market_bus import CandleRing, MarketBus
from cts_desktop.engine.market_events import CandleClosed, StreamKind, StreamStatusChanged, TickerUpdated

MIN = 60_000


def bar(i: int, close: float | None = None, volume: float = 1.0) -> Candle:
    c = float(i) if close is None else close
    return Candle(i * MIN, c, c + 1, c - 1, c, volume)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(capacity: int = 5) -> tuple[MarketBus, list[Event], Clock]:
    events = EventBus()
    seen: list[Event] = []
    events.subscribe(Event, seen.append)
    clock = Clock()
    return MarketBus(events, candle_capacity=capacity, clock=clock), seen, clock


def of[E: Event](seen: list[Event], kind: type[E]) -> list[E]:
    return [e for e in seen if isinstance(e, kind)]


# ---------------------------------------------------------------- ring buffer


def test_ring_keeps_the_newest_bars_oldest_first_across_wraparound() -> None:
    ring = CandleRing(4)
    for i in range(11):
        ring.update(bar(i))
    assert len(ring) == 4
    arrays = ring.arrays()
    assert arrays.ts.tolist() == [7 * MIN, 8 * MIN, 9 * MIN, 10 * MIN]
    assert arrays.close.tolist() == [7.0, 8.0, 9.0, 10.0]
    assert arrays.high.tolist() == [8.0, 9.0, 10.0, 11.0]
    assert arrays.ts.dtype == np.int64 and arrays.close.dtype == np.float64
    assert ring.arrays(2).close.tolist() == [9.0, 10.0]
    assert ring.arrays(0).close.tolist() == []
    assert ring.arrays(99).close.tolist() == [7.0, 8.0, 9.0, 10.0]
    assert arrays.candle(-1) == bar(10)


def test_arrays_are_contiguous_even_when_the_ring_has_wrapped() -> None:
    ring = CandleRing(4)
    for i in range(6):  # wrapped: physical start is 2
        ring.update(bar(i))
    for copy in (True, False):
        arrays = ring.arrays(copy=copy)
        for column in (arrays.ts, arrays.open, arrays.high, arrays.low, arrays.close, arrays.volume):
            assert column.flags.c_contiguous
            assert len(column) == 4


def test_copies_are_independent_and_views_are_read_only() -> None:
    ring = CandleRing(3)
    for i in range(3):
        ring.update(bar(i))
    copy = ring.arrays()
    view = ring.arrays(copy=False)
    assert not view.close.flags.writeable
    with pytest.raises(ValueError):
        view.close[0] = 42.0
    copy.close[0] = 42.0  # a copy belongs to the caller
    ring.update(bar(2, close=99.0))
    assert copy.close.tolist() == [42.0, 1.0, 2.0]
    assert view.close.tolist() == [0.0, 1.0, 99.0]  # a view sees the update: valid until the next one
    assert ring.arrays().close.tolist() == [0.0, 1.0, 99.0]


def test_an_update_of_the_open_bar_replaces_the_last_row() -> None:
    ring = CandleRing(10)
    assert ring.update(bar(0)) is None
    assert ring.update(bar(1, close=5.0, volume=1)) == bar(0)
    assert ring.update(bar(1, close=6.0, volume=2)) is None
    assert ring.update(bar(1, close=7.0, volume=3)) is None
    assert len(ring) == 2
    assert ring.last() == bar(1, close=7.0, volume=3)
    assert ring.arrays().volume.tolist() == [1.0, 3.0]


def test_a_late_final_update_corrects_a_recent_bar_without_closing_it_again() -> None:
    ring = CandleRing(10)
    for i in range(4):
        ring.update(bar(i))
    assert ring.update(bar(2, close=2.5)) is None
    assert ring.arrays().close.tolist() == [0.0, 1.0, 2.5, 3.0]
    assert ring.update(Candle(-5 * MIN, 1, 1, 1, 1, 1)) is None  # far too old: ignored
    assert len(ring) == 4


def test_ring_refuses_a_tiny_capacity() -> None:
    with pytest.raises(ValueError):
        CandleRing(1)


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(2, 12),
    steps=st.lists(st.tuples(st.booleans(), st.floats(0, 1000, allow_nan=False)), max_size=60),
)
def test_ring_matches_a_plain_list_model(capacity: int, steps: list[tuple[bool, float]]) -> None:
    """Any sequence of 'new bar' / 'update open bar' steps gives what a list would hold."""
    ring = CandleRing(capacity)
    model: list[Candle] = []
    ts = 0
    for new_bar, price in steps:
        if new_bar or not model:
            ts += 1
        candle = Candle(ts * MIN, price, price, price, price, price)
        closed = ring.update(candle)
        if model and model[-1].ts_ms == candle.ts_ms:
            assert closed is None
            model[-1] = candle
        else:
            assert closed == (model[-1] if model else None)
            model.append(candle)
    kept = model[-capacity:]
    arrays = ring.arrays()
    assert arrays.ts.tolist() == [c.ts_ms for c in kept]
    assert arrays.close.tolist() == [c.close for c in kept]
    assert ring.last() == (kept[-1] if kept else None)


# ---------------------------------------------------------------- candles through the bus


def test_closed_candle_is_published_once_when_a_newer_bar_starts() -> None:
    bus, seen, _ = make()
    bus.on_candles("binance", "BTC/USDT", "1m", [bar(0, close=1.0)])
    bus.on_candles("binance", "BTC/USDT", "1m", [bar(0, close=2.0)])
    bus.on_candles("binance", "BTC/USDT", "1m", [bar(0, close=3.0)])
    assert of(seen, CandleClosed) == []
    # ccxt.pro often sends the closing bar's final values together with the new bar
    bus.on_candles("binance", "BTC/USDT", "1m", [bar(0, close=4.0), bar(1, close=10.0)])
    bus.on_candles("binance", "BTC/USDT", "1m", [bar(0, close=4.0), bar(1, close=11.0)])
    closed = of(seen, CandleClosed)
    assert len(closed) == 1
    assert closed[0].candle == bar(0, close=4.0)
    assert (closed[0].source, closed[0].symbol, closed[0].timeframe) == ("binance", "BTC/USDT", "1m")
    assert bus.last_candle("binance", "BTC/USDT", "1m") == bar(1, close=11.0)
    assert bus.candle_count("binance", "BTC/USDT", "1m") == 2


def test_history_loads_without_publishing() -> None:
    bus, seen, _ = make(capacity=100)
    bus.on_candles("bybit", "ETH/USDT", "5m", [bar(i) for i in range(50)], history=True)
    assert of(seen, CandleClosed) == []
    assert bus.candles("bybit", "ETH/USDT", "5m").close.tolist() == [float(i) for i in range(50)]
    bus.on_candles("bybit", "ETH/USDT", "5m", [bar(50)])
    assert [e.candle for e in of(seen, CandleClosed)] == [bar(49)]


def test_candle_buffers_are_separate_per_source_symbol_and_timeframe() -> None:
    bus, _, _ = make()
    bus.on_candles("a", "BTC/USDT", "1m", [bar(1)])
    bus.on_candles("a", "BTC/USDT", "5m", [bar(2)])
    bus.on_candles("b", "BTC/USDT", "1m", [bar(3)])
    assert bus.candles("a", "BTC/USDT", "1m").close.tolist() == [1.0]
    assert bus.candles("a", "BTC/USDT", "5m").close.tolist() == [2.0]
    assert bus.candles("b", "BTC/USDT", "1m").close.tolist() == [3.0]
    assert len(bus.candles("c", "BTC/USDT", "1m")) == 0
    assert bus.last_candle("c", "BTC/USDT", "1m") is None
    assert bus.candle_count("c", "BTC/USDT", "1m") == 0


def test_bus_candles_wrap_at_the_configured_capacity() -> None:
    bus, seen, _ = make(capacity=5)
    for i in range(12):
        bus.on_candles("x", "S", "1m", [bar(i)])
    arrays = bus.candles("x", "S", "1m", n=3)
    assert arrays.ts.tolist() == [9 * MIN, 10 * MIN, 11 * MIN]
    assert len(of(seen, CandleClosed)) == 11
    assert bus.candle_capacity == 5


# ---------------------------------------------------------------- tickers and counters


def ticker(symbol: str, ts: int, last: float = 100.0) -> Ticker:
    return Ticker(symbol, timestamp_ms=ts, last=last)


def test_ticker_is_stored_published_and_counted() -> None:
    bus, seen, clock = make()
    bus.on_ticker("okx", ticker("BTC/USDT", 1, 100.0))
    bus.on_ticker("okx", ticker("BTC/USDT", 2, 101.0))
    bus.on_ticker("okx", ticker("ETH/USDT", 2, 5.0))
    bus.on_ticker("bybit", ticker("BTC/USDT", 3, 99.0))
    updates = of(seen, TickerUpdated)
    assert [(u.source, u.symbol, u.ticker.last) for u in updates] == [
        ("okx", "BTC/USDT", 100.0),
        ("okx", "BTC/USDT", 101.0),
        ("okx", "ETH/USDT", 5.0),
        ("bybit", "BTC/USDT", 99.0),
    ]
    assert bus.ticker("okx", "BTC/USDT") == ticker("BTC/USDT", 2, 101.0)
    assert bus.last_price("bybit", "BTC/USDT") == 99.0
    assert bus.last_price("bybit", "ETH/USDT") is None
    assert bus.ticks_received("okx") == {"BTC/USDT": 2, "ETH/USDT": 1}
    assert bus.ticks_received("nowhere") == {}
    assert bus.sources() == ["bybit", "okx"]
    assert bus.symbols("okx") == ["BTC/USDT", "ETH/USDT"]

    clock.now += 2.5
    assert bus.last_tick_age_s("okx", "BTC/USDT") == pytest.approx(2.5)
    assert bus.last_tick_age_s("okx", "SOL/USDT") is None


def test_an_older_ticker_is_counted_but_never_replaces_a_newer_one() -> None:
    bus, seen, _ = make()
    bus.on_ticker("x", ticker("BTC/USDT", 10, 100.0))
    bus.on_ticker("x", ticker("BTC/USDT", 9, 50.0))  # a slow REST answer overtaken by the websocket
    assert bus.ticker("x", "BTC/USDT") == ticker("BTC/USDT", 10, 100.0)
    assert len(of(seen, TickerUpdated)) == 1
    assert bus.ticks_received("x") == {"BTC/USDT": 2}


def test_status_is_remembered_and_published_only_on_change() -> None:
    bus, seen, _ = make()
    feed = bus.feed("bingx")
    feed.on_status("BTC/USDT", StreamKind.TICKER, StreamStatus.LIVE, "")
    feed.on_status("BTC/USDT", StreamKind.TICKER, StreamStatus.LIVE, "")
    feed.on_status("BTC/USDT", StreamKind.CANDLES, StreamStatus.POLLING, "no websocket")
    changes = of(seen, StreamStatusChanged)
    assert [(c.source, c.stream, c.status, c.reason) for c in changes] == [
        ("bingx", StreamKind.TICKER, StreamStatus.LIVE, ""),
        ("bingx", StreamKind.CANDLES, StreamStatus.POLLING, "no websocket"),
    ]
    assert bus.stream_status("bingx", "BTC/USDT") == (StreamStatus.LIVE, "")
    assert bus.stream_status("bingx", "BTC/USDT", StreamKind.CANDLES) == (
        StreamStatus.POLLING,
        "no websocket",
    )
    assert bus.stream_status("bingx", "ETH/USDT") is None
    assert bus.ticks_received("bingx") == {}  # a status is not a tick


def test_feed_binds_the_source() -> None:
    bus, _, _ = make()
    feed = bus.feed("paper")
    feed.on_ticker(ticker("BTC/USDT", 1))
    feed.on_candles("BTC/USDT", "1m", [bar(0)])
    assert feed.source == "paper"
    assert bus.ticker("paper", "BTC/USDT") is not None
    assert bus.candle_count("paper", "BTC/USDT", "1m") == 1


def test_forget_drops_symbols_that_left_the_universe() -> None:
    bus, _, _ = make()
    for symbol in ("A", "B"):
        bus.on_ticker("x", ticker(symbol, 1))
        bus.on_candles("x", symbol, "1m", [bar(0)])
    bus.on_ticker("y", ticker("A", 1))
    bus.forget("x", ["A"])
    assert bus.symbols("x") == ["B"]
    assert bus.candle_count("x", "A", "1m") == 0
    assert bus.ticker("y", "A") is not None
    bus.forget("x")
    assert bus.symbols("x") == [] and bus.sources() == ["y"]


def test_a_failing_subscriber_does_not_stop_the_bus() -> None:
    events = EventBus()
    received: list[TickerUpdated] = []

    def broken(_: TickerUpdated) -> None:
        raise RuntimeError("panel bug")

    events.subscribe(TickerUpdated, broken)
    events.subscribe(TickerUpdated, received.append)
    bus = MarketBus(events)
    bus.on_ticker("x", ticker("BTC/USDT", 1))
    assert len(received) == 1 and bus.ticks_received("x") == {"BTC/USDT": 1}


def test_on_ticker_is_fast_enough_for_fifty_busy_symbols() -> None:
    """A sanity bound, not a benchmark: 50 symbols × 10 ticks/s is 500 calls per second."""
    bus = MarketBus(EventBus())
    tickers = [ticker(f"S{i}/USDT", 1) for i in range(50)]
    started = time.perf_counter()
    for _ in range(200):
        for t in tickers:
            bus.on_ticker("x", t)
    per_call = (time.perf_counter() - started) / 10_000
    assert per_call < 100e-6  # typically a few µs
    assert sum(bus.ticks_received("x").values()) == 10_000
