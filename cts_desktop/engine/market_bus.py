"""MarketBus: the one shared market state (latest ticker, rolling candles) and its events.

Every consumer (indications, the pseudo book, paper matching, the UI) reads prices from here, so
live trading, paper trading and backtests see the same numbers by the same path (ARCHITECTURE
"Data flow"). The stream supervisor (or a replay) feeds it through ``on_ticker`` / ``on_candles``
/ ``on_status``; it publishes ``TickerUpdated``, ``CandleClosed`` and ``StreamStatusChanged`` on
the EventBus.

Speed: ``on_ticker`` runs for every tick of every symbol (50 symbols per connection, several ticks
per second each), so it is O(1): two dict lookups on nested dicts (no tuple key allocated), a few
attribute stores and one small event object. Candles live in numpy ring buffers so indications
get contiguous float64 arrays without converting lists of dataclasses on every cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.market import Candle, StreamStatus, Ticker
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.market_events import CandleClosed, StreamKind, StreamStatusChanged, TickerUpdated

__all__ = ["DEFAULT_CANDLE_CAPACITY", "CandleArrays", "CandleRing", "MarketBus", "MarketFeed"]

DEFAULT_CANDLE_CAPACITY = 5_000
"""Bars kept per (source, symbol, timeframe): 3.5 days of 1-minute bars, enough for the default
5 prehistoric days at 5-minute bars and for every indication range in DOMAIN §1."""

_LATE_UPDATE_ROWS = 3
"""How far back a late update of an already-closed bar may still correct the buffer."""

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """Columns of consecutive bars, oldest first; all arrays have the same length.

    ``ts`` is the bar open time in UTC milliseconds. Whether the arrays are copies or read-only
    views depends on how they were requested (``MarketBus.candles(copy=...)``).
    """

    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def candle(self, index: int) -> Candle:
        """One row as a Candle (negative indices count from the newest)."""
        return Candle(
            int(self.ts[index]),
            float(self.open[index]),
            float(self.high[index]),
            float(self.low[index]),
            float(self.close[index]),
            float(self.volume[index]),
        )


class CandleRing:
    """A fixed-capacity ring of bars whose newest ``n`` rows are always one contiguous slice.

    Every row is written twice, at ``i`` and ``i + capacity`` of a buffer twice the capacity
    ("mirrored" ring). Any window of up to ``capacity`` consecutive bars is therefore a plain slice
    of that buffer: reading never has to stitch the wrapped halves together, so views cost nothing
    and copies are one ``memcpy`` per column. Appending is O(1) (two row writes), and the memory cost
    is 2 × 48 bytes per bar (480 KB for 5,000 bars).

    The last row is the bar still being built: an update with the same open time replaces it, an
    update with a newer time closes it and starts a new row.
    """

    __slots__ = ("_capacity", "_size", "_start", "_ts", "_values")

    def __init__(self, capacity: int = DEFAULT_CANDLE_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        self._capacity = capacity
        self._ts: IntArray = np.zeros(2 * capacity, dtype=np.int64)
        # One contiguous row per field (open, high, low, close, volume), so each column is a slice.
        self._values: FloatArray = np.zeros((5, 2 * capacity), dtype=np.float64)
        self._start = 0  # physical index of the oldest bar, always < capacity
        self._size = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._size

    def last(self) -> Candle | None:
        """The newest bar (normally the one still open), or None when empty."""
        return self._row(self._size - 1) if self._size else None

    def update(self, candle: Candle) -> Candle | None:
        """Merge one bar; returns the previous bar when ``candle`` starts a newer one (it closed).

        Same open time as the newest bar: replaces it (the open bar moved). Older: a late final
        update of a recent bar corrects it in place if it is among the last few rows, else it is
        ignored; it is never reported as closed a second time.
        """
        if self._size == 0:
            self._write(0, candle)
            self._size = 1
            return None
        newest = self._physical(self._size - 1)
        newest_ts = int(self._ts[newest])
        if candle.ts_ms == newest_ts:
            self._write(self._size - 1, candle)
            return None
        if candle.ts_ms > newest_ts:
            closed = self._row(self._size - 1)
            if self._size < self._capacity:
                self._size += 1
            else:
                self._start = (self._start + 1) % self._capacity
            self._write(self._size - 1, candle)
            return closed
        for back in range(2, min(self._size, _LATE_UPDATE_ROWS + 1) + 1):
            if int(self._ts[self._physical(self._size - back)]) == candle.ts_ms:
                self._write(self._size - back, candle)
                break
        return None

    def arrays(self, n: int | None = None, *, copy: bool = True) -> CandleArrays:
        """The newest ``n`` bars (all when None), oldest first.

        ``copy=True`` (default) returns independent arrays, safe to keep across awaits.
        ``copy=False`` returns read-only views into the ring: free, but only valid until the next
        update of this ring (a later bar overwrites the memory they point at). Use it for
        synchronous number crunching inside one event handler.
        """
        count = self._size if n is None else max(0, min(n, self._size))
        end = self._start + self._size
        begin = end - count
        ts = self._ts[begin:end]
        block = self._values[:, begin:end]
        if copy:
            ts, block = ts.copy(), block.copy()  # the block copy is C-contiguous: rows stay contiguous
        else:
            ts.flags.writeable = False
            block.flags.writeable = False
        return CandleArrays(ts, block[0], block[1], block[2], block[3], block[4])

    def _physical(self, logical: int) -> int:
        return (self._start + logical) % self._capacity

    def _row(self, logical: int) -> Candle:
        i = self._physical(logical)
        v = self._values
        return Candle(
            int(self._ts[i]), float(v[0, i]), float(v[1, i]), float(v[2, i]), float(v[3, i]), float(v[4, i])
        )

    def _write(self, logical: int, candle: Candle) -> None:
        i = self._physical(logical)
        row = (candle.open, candle.high, candle.low, candle.close, candle.volume)
        ts = self._ts
        values = self._values
        ts[i] = ts[i + self._capacity] = candle.ts_ms
        values[:, i] = row
        values[:, i + self._capacity] = row


class _SymbolState:
    """Latest ticker and counters of one (source, symbol); mutated in place on every tick."""

    __slots__ = ("last_tick_at", "statuses", "ticker", "ticks")

    def __init__(self) -> None:
        self.ticker: Ticker | None = None
        self.ticks = 0
        self.last_tick_at: float | None = None
        self.statuses: dict[StreamKind, tuple[StreamStatus, str]] = {}


class MarketFeed:
    """The bus's three inputs bound to one source, shaped like the StreamSupervisor's callbacks.

    ``StreamSupervisor(ex, symbols, on_ticker=feed.on_ticker, on_candles=feed.on_candles,
    on_status=feed.on_status)`` wires a venue to the bus in one line.
    """

    __slots__ = ("_bus", "source")

    def __init__(self, bus: MarketBus, source: str) -> None:
        self._bus = bus
        self.source = source

    def on_ticker(self, ticker: Ticker) -> None:
        self._bus.on_ticker(self.source, ticker)

    def on_candles(self, symbol: str, timeframe: str, candles: list[Candle]) -> None:
        self._bus.on_candles(self.source, symbol, timeframe, candles)

    def on_status(self, symbol: str, stream: StreamKind, status: StreamStatus, reason: str) -> None:
        self._bus.on_status(self.source, symbol, stream, status, reason)


class MarketBus:
    """Latest tickers and candle buffers per source and symbol; publishes market events.

    Runs on the engine's event loop only (no locks): feeds and readers are all loop callbacks.
    ``clock`` is monotonic seconds (injectable for tests and replays) and only dates ticks for
    ``last_tick_age_s``.
    """

    def __init__(
        self,
        events: EventBus,
        *,
        candle_capacity: int = DEFAULT_CANDLE_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if candle_capacity < 2:
            raise ValueError(f"candle_capacity must be >= 2, got {candle_capacity}")
        self._events = events
        self._capacity = candle_capacity
        self._clock = clock
        self._symbols: dict[str, dict[str, _SymbolState]] = {}
        self._candles: dict[str, dict[tuple[str, str], CandleRing]] = {}

    @property
    def candle_capacity(self) -> int:
        return self._capacity

    def feed(self, source: str) -> MarketFeed:
        return MarketFeed(self, source)

    # ------------------------------------------------------------------ inputs

    def on_ticker(self, source: str, ticker: Ticker) -> None:
        """Store the newest ticker, count it and publish ``TickerUpdated``. O(1).

        A ticker older than the stored one (a slow REST answer overtaken by the websocket) is
        counted but neither stored nor published, so prices never step backwards.
        """
        per_source = self._symbols.get(source)
        if per_source is None:
            per_source = self._symbols[source] = {}
        state = per_source.get(ticker.symbol)
        if state is None:
            state = per_source[ticker.symbol] = _SymbolState()
        state.ticks += 1
        state.last_tick_at = self._clock()
        previous = state.ticker
        if previous is not None and ticker.timestamp_ms < previous.timestamp_ms:
            return
        state.ticker = ticker
        self._events.publish(TickerUpdated(source=source, symbol=ticker.symbol, ticker=ticker))

    def on_candles(
        self, source: str, symbol: str, timeframe: str, candles: Iterable[Candle], *, history: bool = False
    ) -> None:
        """Merge bars (oldest first) into the ring; publish ``CandleClosed`` for each bar that closed.

        ``history=True`` loads prehistoric bars (DOMAIN §4.1 step 4) without publishing thousands
        of CandleClosed events for bars that closed long ago.
        """
        per_source = self._candles.get(source)
        if per_source is None:
            per_source = self._candles[source] = {}
        ring = per_source.get((symbol, timeframe))
        if ring is None:
            ring = per_source[(symbol, timeframe)] = CandleRing(self._capacity)
        publish = self._events.publish
        for candle in candles:
            closed = ring.update(candle)
            if closed is not None and not history:
                publish(CandleClosed(source=source, symbol=symbol, timeframe=timeframe, candle=closed))

    def on_status(
        self, source: str, symbol: str, stream: StreamKind, status: StreamStatus, reason: str = ""
    ) -> None:
        """Remember a stream's status and publish ``StreamStatusChanged`` (only on a change)."""
        per_source = self._symbols.get(source)
        if per_source is None:
            per_source = self._symbols[source] = {}
        state = per_source.get(symbol)
        if state is None:
            state = per_source[symbol] = _SymbolState()
        if state.statuses.get(stream) == (status, reason):
            return
        state.statuses[stream] = (status, reason)
        self._events.publish(
            StreamStatusChanged(source=source, symbol=symbol, stream=stream, status=status, reason=reason)
        )

    def forget(self, source: str, symbols: Iterable[str] | None = None) -> None:
        """Drop the state of symbols that left the universe (all of the source's when None)."""
        if symbols is None:
            self._symbols.pop(source, None)
            self._candles.pop(source, None)
            return
        wanted = set(symbols)
        per_source = self._symbols.get(source, {})
        for symbol in wanted:
            per_source.pop(symbol, None)
        rings = self._candles.get(source, {})
        for key in [key for key in rings if key[0] in wanted]:
            del rings[key]

    # ------------------------------------------------------------------ reads

    def sources(self) -> list[str]:
        return sorted(self._symbols.keys() | self._candles.keys())

    def symbols(self, source: str) -> list[str]:
        """Symbols with a ticker, status or candles from ``source``, in first-seen order."""
        seen = dict.fromkeys(self._symbols.get(source, {}))
        seen.update(dict.fromkeys(symbol for symbol, _ in self._candles.get(source, {})))
        return list(seen)

    def ticker(self, source: str, symbol: str) -> Ticker | None:
        state = self._symbols.get(source, {}).get(symbol)
        return None if state is None else state.ticker

    def last_price(self, source: str, symbol: str) -> float | None:
        ticker = self.ticker(source, symbol)
        return None if ticker is None else ticker.last

    def ticks_received(self, source: str) -> dict[str, int]:
        """Tickers received per symbol since the start (including out-of-order ones)."""
        return {symbol: state.ticks for symbol, state in self._symbols.get(source, {}).items() if state.ticks}

    def last_tick_age_s(self, source: str, symbol: str) -> float | None:
        """Seconds since the last ticker of ``symbol`` arrived; None when none has."""
        state = self._symbols.get(source, {}).get(symbol)
        if state is None or state.last_tick_at is None:
            return None
        return max(0.0, self._clock() - state.last_tick_at)

    def stream_status(
        self, source: str, symbol: str, stream: StreamKind = StreamKind.TICKER
    ) -> tuple[StreamStatus, str] | None:
        """Last reported (status, reason) of a stream; None before the supervisor reported any."""
        state = self._symbols.get(source, {}).get(symbol)
        return None if state is None else state.statuses.get(stream)

    def candle_count(self, source: str, symbol: str, timeframe: str) -> int:
        ring = self._candles.get(source, {}).get((symbol, timeframe))
        return 0 if ring is None else len(ring)

    def last_candle(self, source: str, symbol: str, timeframe: str) -> Candle | None:
        """The newest bar, normally still open."""
        ring = self._candles.get(source, {}).get((symbol, timeframe))
        return None if ring is None else ring.last()

    def candles(
        self, source: str, symbol: str, timeframe: str, n: int | None = None, *, copy: bool = True
    ) -> CandleArrays:
        """The newest ``n`` bars (all when None) as contiguous arrays, oldest first.

        The last row is the bar still open. ``copy=True`` (default) returns independent arrays;
        ``copy=False`` returns read-only views that stay valid only until the next ``on_candles``
        for this key (see ``CandleRing.arrays``). Unknown keys give empty arrays.
        """
        ring = self._candles.get(source, {}).get((symbol, timeframe))
        if ring is None:
            return _EMPTY
        return ring.arrays(n, copy=copy)


def _empty_arrays() -> CandleArrays:
    floats = np.zeros(0, dtype=np.float64)
    floats.flags.writeable = False
    ts = np.zeros(0, dtype=np.int64)
    ts.flags.writeable = False
    return CandleArrays(ts, floats, floats, floats, floats, floats)


_EMPTY = _empty_arrays()
