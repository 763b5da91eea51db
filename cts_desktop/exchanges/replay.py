"""Replay historical candle files as a live market: the data half of a backtest or a demo.

One file per symbol (loaded and vetted by ``candle_files.load_candles``). The replay has its own
*market time* that runs at ``speed`` × the injected clock (``speed=10``: one market hour per six
clock minutes) or, with ``speed=None`` (or 0), as fast as consumers pull: then an internal virtual
clock jumps to the next tick as soon as every watcher is waiting, so several symbols still
interleave in time order and the replay runs at CPU speed, deterministically (the injected clock
is then not used for pacing; a backtest can instead inject a ``VirtualClock`` with any speed).

Each candle is expanded into four intra-bar ticks so a paper matcher sees a realistic path rather
than only closes: open at the bar's open time, then the extreme nearer to the open, then the other
extreme, then the close, at 0, ⅓, ⅔ of the interval and 1 ms before the bar ends. (On a tie the
extreme farther from the close comes first, so the path ends with the shorter leg.) A stop that a
bar's wick crossed is therefore triggered, in the order the bar most plausibly travelled.

``watch_ticker`` / ``watch_ohlcv`` follow ccxt.pro: each call returns the next update. Each stream
(kind, symbol, timeframe) keeps a position in its tick sequence and successive calls never skip a
tick: a caller slower than the replay falls behind and catches up without sleeping, so every
intra-bar extreme reaches the matcher. Like ccxt.pro, concurrent callers of one stream share it
(all receive the same update); a consumer that must see every tick should be that stream's only
reader, or get the ticks from whoever is (the market bus).

``fetch_*`` answer for the current market time: the ticker of the latest tick, and candles up to
now with the current bar partial, as a live venue would.
At the end of the data the watchers wait (the market went quiet) until ``seek`` rewinds, or raise
``ReplayFinishedError`` when built with ``raise_at_end=True``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.market import Candle, MarketInfo, MarketType, Ticker
from cts_desktop.exchanges.candle_files import CandleArrays, CandleFileReport, guess_symbol, load_candles
from cts_desktop.exchanges.clock import Clock, ManualClock, SystemClock
from cts_desktop.exchanges.errors import ErrorKind, ExchangeDownError, ExchangeError, NotSupportedError
from cts_desktop.exchanges.market_data_venue import (
    DAY_MS,
    DEFAULT_MAKER_FEE,
    DEFAULT_OHLCV_LIMIT,
    DEFAULT_TAKER_FEE,
    MarketDataVenue,
    aggregate_candles,
    bucket_start,
    infer_step,
    select_candles,
    split_symbol,
    timeframe_ms,
)

__all__ = ["TICKS_PER_BAR", "ReplayExchange", "ReplayFinishedError", "ReplaySource", "load_replay_sources"]

TICKS_PER_BAR = 4
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class ReplayFinishedError(ExchangeError):
    """The replay has no more data (only with ``raise_at_end=True``). Not retryable: a stream
    supervisor stops the symbol with this message instead of reconnecting forever."""

    kind = ErrorKind.UNKNOWN


@dataclass(frozen=True, eq=False)
class ReplaySource:
    """One symbol's candles (oldest first) and their bar interval."""

    symbol: str
    candles: CandleArrays
    interval_ms: int
    market: MarketInfo | None = None
    report: CandleFileReport | None = None


class _Series:
    """A symbol's candles plus its precomputed tick path (times and prices, 4 per bar)."""

    def __init__(self, source: ReplaySource) -> None:
        c = source.candles
        if len(c) == 0:
            raise ValueError(f"replay source {source.symbol} has no candles")
        if source.interval_ms < TICKS_PER_BAR:
            raise ValueError(f"replay source {source.symbol}: interval {source.interval_ms} ms is too short")
        if np.any(np.diff(c.ts_ms) <= 0):
            raise ValueError(f"replay source {source.symbol}: candles must be strictly oldest first")
        self.symbol = source.symbol
        self.candles = c
        self.interval = int(source.interval_ms)
        up, down = c.high - c.open, c.open - c.low
        high_first = (up < down) | ((up == down) & (c.close < c.open))
        path = np.empty((len(c), TICKS_PER_BAR), dtype=np.float64)
        path[:, 0] = c.open
        path[:, 1] = np.where(high_first, c.high, c.low)
        path[:, 2] = np.where(high_first, c.low, c.high)
        path[:, 3] = c.close
        self.path = path
        interval = self.interval
        offsets = np.array([0, interval // 3, 2 * interval // 3, interval - 1], dtype=np.int64)
        self.tick_times: I64 = (c.ts_ms[:, None] + offsets[None, :]).reshape(-1)
        self.tick_prices: F64 = path.reshape(-1)
        # Quote volume is not in candle files; volume × typical price is the usual estimate.
        self.quote_volume: F64 = c.volume * (c.high + c.low + c.close) / 3.0

    def partial(self, tick: int) -> Candle:
        """The bar containing ``tick`` as it looked right after that tick (volume pro rata)."""
        bar, phase = divmod(tick, TICKS_PER_BAR)
        seen = self.path[bar, : phase + 1]
        c = self.candles
        return Candle(
            ts_ms=int(c.ts_ms[bar]),
            open=float(seen[0]),
            high=float(seen.max()),
            low=float(seen.min()),
            close=float(seen[-1]),
            volume=float(c.volume[bar]) * (phase + 1) / TICKS_PER_BAR,
        )

    def candles_through(self, tick: int, first_bar: int = 0) -> CandleArrays:
        """Bars ``first_bar`` … the one containing ``tick``, the last one partial."""
        bar = tick // TICKS_PER_BAR
        closed = self.candles.slice(first_bar, bar)
        last = self.partial(tick)
        return CandleArrays(
            ts_ms=np.append(closed.ts_ms, last.ts_ms),
            open=np.append(closed.open, last.open),
            high=np.append(closed.high, last.high),
            low=np.append(closed.low, last.low),
            close=np.append(closed.close, last.close),
            volume=np.append(closed.volume, last.volume),
        )


def _synthetic_market(symbol: str, candles: CandleArrays, maker_fee: float, taker_fee: float) -> MarketInfo:
    base, quote, settle = split_symbol(symbol)
    prices = np.concatenate((candles.open[:2000], candles.close[-2000:]))
    amount_step = infer_step(candles.volume, max_decimals=8)
    return MarketInfo(
        symbol=symbol,
        base=base,
        quote=quote,
        type=MarketType.SWAP if settle else MarketType.SPOT,
        price_step=infer_step(prices),
        amount_step=amount_step,
        min_amount=amount_step,
        maker_fee=maker_fee,
        taker_fee=taker_fee,
    )


def load_replay_sources(files: Mapping[str, str | Path] | Sequence[str | Path]) -> list[ReplaySource]:
    """Load candle files: ``{symbol: path}``, or paths whose symbol comes from the file's symbol
    column or its name. Raises ``CandleFileError`` for an unusable file; each source keeps its
    file's report. Synchronous (a fraction of a second per large file): from a running UI, call
    it through ``asyncio.to_thread``."""
    pairs: list[tuple[str | None, Path]]
    if isinstance(files, Mapping):
        pairs = [(symbol, Path(p)) for symbol, p in files.items()]
    else:
        pairs = [(None, Path(p)) for p in files]
    sources = []
    for symbol, path in pairs:
        result = load_candles(path)
        report = result.report
        chosen = symbol or report.symbol or guess_symbol(path)
        if chosen is None:
            raise ValueError(f"cannot tell which symbol {path} holds; pass it as {{symbol: path}}")
        if report.interval_ms is None:
            raise ValueError(f"{path} holds a single candle; a replay needs at least two")
        sources.append(ReplaySource(chosen, result.candles, report.interval_ms, report=report))
    return sources


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class ReplayExchange(MarketDataVenue):
    """Replays candle files through the market-data half of the ``Exchange`` protocol."""

    def __init__(
        self,
        sources: Sequence[ReplaySource],
        *,
        clock: Clock | None = None,
        speed: float | None = 1.0,
        start_at_ms: int | None = None,
        name: str = "replay",
        raise_at_end: bool = False,
        maker_fee: float = DEFAULT_MAKER_FEE,
        taker_fee: float = DEFAULT_TAKER_FEE,
    ) -> None:
        if not sources:
            raise ValueError("a replay needs at least one candle source")
        if speed is not None and speed < 0:
            raise ValueError("speed must be positive, or None/0 for as fast as possible")
        series = {s.symbol: _Series(s) for s in sources}
        if len(series) != len(sources):
            raise ValueError("each symbol may have only one replay source")
        markets = {
            s.symbol: s.market or _synthetic_market(s.symbol, s.candles, maker_fee, taker_fee)
            for s in sources
        }
        super().__init__(name, markets)
        self._series = series
        self._reports = {s.symbol: s.report for s in sources if s.report is not None}
        self._clock: Clock = clock or SystemClock()
        self._speed = float(speed) if speed else None
        self._first_ms = min(int(s.tick_times[0]) for s in series.values())
        self._end_ms = max(int(s.tick_times[-1]) for s in series.values())
        self._start_ms = self._first_ms if start_at_ms is None else int(start_at_ms)
        self._raise_at_end = raise_at_end
        self._started = False
        self._origin_clock = 0
        self._origin_market = self._start_ms
        self._high_water = self._start_ms
        self._fast_clock = ManualClock(self._start_ms, autoadvance=True)
        self._generation = 0
        self._cursors: dict[tuple[str, str, str], int] = {}
        self._changed = asyncio.Event()

    @classmethod
    def from_files(
        cls,
        files: Mapping[str, str | Path] | Sequence[str | Path],
        *,
        clock: Clock | None = None,
        speed: float | None = 1.0,
        start_at_ms: int | None = None,
        name: str = "replay",
        raise_at_end: bool = False,
        maker_fee: float = DEFAULT_MAKER_FEE,
        taker_fee: float = DEFAULT_TAKER_FEE,
    ) -> ReplayExchange:
        """``ReplayExchange(load_replay_sources(files), …)``; see ``load_replay_sources``."""
        return cls(
            load_replay_sources(files),
            clock=clock,
            speed=speed,
            start_at_ms=start_at_ms,
            name=name,
            raise_at_end=raise_at_end,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
        )

    # ----------------------------------------------------------------- replay control

    @property
    def reports(self) -> dict[str, CandleFileReport]:
        return dict(self._reports)

    @property
    def speed(self) -> float | None:
        """Market ms per clock ms; None = as fast as consumers pull."""
        return self._speed

    @property
    def start_ms(self) -> int:
        return self._start_ms

    @property
    def end_ms(self) -> int:
        """Time of the last tick of any symbol."""
        return self._end_ms

    @property
    def now_ms(self) -> int:
        """Current market time (starts the replay if it has not started)."""
        return self._market_now()

    @property
    def progress(self) -> float:
        """Fraction of the replay span (start → last tick) already played, 0…1."""
        if not self._started:
            return 0.0
        span = self._end_ms - self._start_ms
        if span <= 0:
            return 1.0
        return min(1.0, max(0.0, (self._market_now() - self._start_ms) / span))

    @property
    def finished(self) -> bool:
        return self._started and self._market_now() >= self._end_ms

    def start(self) -> None:
        """Start market time now (otherwise the first market-data call does)."""
        if not self._started:
            self._started = True
            self._origin_clock = self._clock.now_ms()
            self._origin_market = self._start_ms

    def seek(self, t_ms: int) -> None:
        """Jump market time to ``t_ms`` (forwards or back). Watchers continue from there; one
        already sleeping on an external clock may deliver up to one tick spacing late."""
        self._started = True
        self._origin_clock = self._clock.now_ms()
        self._origin_market = self._high_water = int(t_ms)
        self._start_ms = min(self._start_ms, int(t_ms))
        old = self._fast_clock
        self._fast_clock = ManualClock(int(t_ms), autoadvance=True)
        old.release_all()
        self._generation += 1
        self._cursors.clear()
        self._signal_change()

    @property
    def market_clock(self) -> Clock:
        """A ``Clock`` reading this replay's market time, for components that must live in it."""
        return _MarketClock(self)

    async def close(self) -> None:
        await super().close()
        self._fast_clock.release_all()
        self._generation += 1
        self._signal_change()

    # ----------------------------------------------------------------- market data

    async def fetch_server_time(self) -> int:
        self._check_open()
        return self._market_now()

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self._check_open()
        series = self._get(symbol)
        return self._ticker(series, self._current_tick(series))

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        self._check_open()
        series = self._get(symbol)
        tf = self._timeframe(series, timeframe)
        now = self._market_now()
        tick = int(np.searchsorted(series.tick_times, now, side="right")) - 1
        if tick < 0:
            return []
        bars_per_tf = tf // series.interval
        if since_ms is not None:
            first_ts = int(bucket_start(since_ms, tf))
        else:
            wanted = (limit if limit is not None else DEFAULT_OHLCV_LIMIT) + 1
            first_ts = int(bucket_start(int(series.candles.ts_ms[tick // TICKS_PER_BAR]), tf)) - wanted * tf
        first_bar = int(np.searchsorted(series.candles.ts_ms, first_ts, side="left"))
        if first_bar > tick // TICKS_PER_BAR:
            return []
        bars = series.candles_through(tick, first_bar)
        merged = aggregate_candles(bars, tf) if bars_per_tf > 1 else bars
        return select_candles(merged, since_ms, limit)

    async def watch_ticker(self, symbol: str) -> Ticker:
        series = self._get(symbol)
        tick = await self._next_tick(("ticker", symbol, ""), series)
        return self._ticker(series, tick)

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        series = self._get(symbol)
        tf = self._timeframe(series, timeframe)
        tick = await self._next_tick(("ohlcv", symbol, timeframe), series)
        bar = tick // TICKS_PER_BAR
        if tf == series.interval:
            return [series.partial(tick)]
        first_ts = int(bucket_start(int(series.candles.ts_ms[bar]), tf))
        first_bar = int(np.searchsorted(series.candles.ts_ms, first_ts, side="left"))
        return aggregate_candles(series.candles_through(tick, first_bar), tf).to_candles()[-1:]

    # ----------------------------------------------------------------- internals

    def _get(self, symbol: str) -> _Series:
        self.market(symbol)  # BadSymbolError with the list of symbols
        return self._series[symbol]

    def _timeframe(self, series: _Series, timeframe: str) -> int:
        tf = timeframe_ms(self.name, timeframe)
        if tf < series.interval or tf % series.interval:
            raise NotSupportedError(
                self.name,
                f"{series.symbol} is replayed from {series.interval // 1000} s candles; "
                f"{timeframe} candles cannot be built from them (use a multiple of the file's interval)",
            )
        return tf

    def _market_now(self) -> int:
        self.start()
        if self._speed is None:
            now = self._fast_clock.now_ms()
        else:
            elapsed = self._clock.now_ms() - self._origin_clock
            now = self._origin_market + math.floor(elapsed * self._speed)
        return max(now, self._high_water)

    def _current_tick(self, series: _Series) -> int:
        now = self._market_now()
        tick = int(np.searchsorted(series.tick_times, now, side="right")) - 1
        if tick < 0:
            raise ExchangeDownError(
                self.name, f"the replay has no {series.symbol} data before {_iso(int(series.tick_times[0]))}"
            )
        return tick

    async def _sleep_until_market(self, t_ms: int) -> None:
        if self._speed is None:
            await self._fast_clock.sleep_until_ms(t_ms)
        else:
            wake = self._origin_clock + math.ceil((t_ms - self._origin_market) / self._speed)
            await self._clock.sleep_until_ms(wake)

    async def _next_tick(self, key: tuple[str, str, str], series: _Series) -> int:
        """Index of the next tick for this subscription, after waiting for its market time."""
        while True:
            self._check_open()
            generation = self._generation
            index = self._cursors.get(key)
            if index is None:
                index = int(np.searchsorted(series.tick_times, self._market_now(), side="left"))
                self._cursors[key] = index
            if index >= len(series.tick_times):
                if self._raise_at_end:
                    raise ReplayFinishedError(
                        self.name, f"the replay of {series.symbol} reached the end of its data"
                    )
                changed = self._changed
                await changed.wait()
                continue
            t = int(series.tick_times[index])
            await self._sleep_until_market(t)
            if generation != self._generation:
                continue  # seek or close happened while we slept: start over from the new position
            self._cursors[key] = max(self._cursors.get(key, 0), index + 1)
            self._high_water = max(self._high_water, t)
            return index

    def _signal_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _ticker(self, series: _Series, tick: int) -> Ticker:
        c = series.candles
        t = int(series.tick_times[tick])
        bar, phase = divmod(tick, TICKS_PER_BAR)
        seen = series.path[bar, : phase + 1]
        last = float(seen[-1])
        bar_volume = float(c.volume[bar]) * (phase + 1) / TICKS_PER_BAR
        first = int(np.searchsorted(c.ts_ms, t - DAY_MS, side="right"))
        high = max(float(c.high[first:bar].max(initial=-np.inf)), float(seen.max()))
        low = min(float(c.low[first:bar].min(initial=np.inf)), float(seen.min()))
        open_24h = float(c.open[first]) if first < bar else float(seen[0])
        return Ticker(
            symbol=series.symbol,
            timestamp_ms=t,
            last=last,
            high_24h=high,
            low_24h=low,
            change_pct_24h=(last / open_24h - 1.0) * 100.0,
            base_volume_24h=float(c.volume[first:bar].sum()) + bar_volume,
            quote_volume_24h=float(series.quote_volume[first:bar].sum()) + bar_volume * last,
        )


class _MarketClock:
    """Reads and waits on a replay's market time (see ``ReplayExchange.market_clock``)."""

    def __init__(self, replay: ReplayExchange) -> None:
        self._replay = replay

    def now_ms(self) -> int:
        return self._replay._market_now()

    async def sleep_until_ms(self, t_ms: int) -> None:
        await self._replay._sleep_until_market(t_ms)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until_ms(self.now_ms() + max(0, math.ceil(seconds * 1000)))
