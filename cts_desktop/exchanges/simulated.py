"""A seeded synthetic market: the application's default venue when no exchange is reachable.

It must look alive (prices move every second, spreads, 24 h statistics, charts with history) and
be exactly reproducible: the same seed and the same clock give the same ticks and candles, which
is what lets the UI and engine be tested offline against a "market".

Model, per symbol:

- log-price follows a geometric Brownian motion (zero drift, the symbol's annual volatility) with
  occasional normally distributed jumps (Poisson arrivals), sampled on a fixed tick grid (1 s by
  default), rounded to the tick size;
- each tick has a bid/ask spread of 1–3 ticks, and the last trade is at the bid or the ask;
- each tick carries a log-normal traded volume, scaled to a realistic daily volume.

The path is generated in UTC-day blocks, each from its own seeded random streams: a day's total
move is drawn first (cheap), and the intraday path is a Brownian bridge to it. So any day can be
produced on demand without generating the days in between, a day is identical whichever call
needs it first, and history (``history_days`` before the start) costs only what is looked at.
The price level is anchored at the UTC day the venue was created in (``start_price`` at that
midnight), so prices start realistic. Candles are built from the very same ticks (1m first, then
aggregated), so a candle's high is the highest tick in it, and so on.

``watch_ticker`` waits on the injected clock for the next tick time and returns that tick, so with
a ``ManualClock`` a test sees exact 1 s steps and with a ``VirtualClock`` hours pass in moments.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.market import Candle, MarketInfo, MarketType, Ticker
from cts_desktop.exchanges.candle_files import CandleArrays
from cts_desktop.exchanges.clock import Clock, SystemClock
from cts_desktop.exchanges.errors import NotSupportedError
from cts_desktop.exchanges.market_data_venue import (
    DAY_MS,
    DEFAULT_MAKER_FEE,
    DEFAULT_OHLCV_LIMIT,
    DEFAULT_TAKER_FEE,
    MarketDataVenue,
    aggregate_candles,
    bucket_start,
    select_candles,
    split_symbol,
    timeframe_ms,
)

__all__ = ["DEFAULT_SIMULATED_SYMBOLS", "SimulatedExchange", "SimulatedSymbol"]

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
_YEAR_MS = 365 * DAY_MS
_MINUTE_MS = 60_000
_VOLUME_SIGMA = 1.0  # log-normal spread of per-tick volume
_DAY_ENTROPY_OFFSET = 1 << 40  # SeedSequence needs non-negative entropy, days before 1970 included


@dataclass(frozen=True, slots=True)
class SimulatedSymbol:
    """One synthetic market: its trading rules and the character of its price path."""

    symbol: str
    start_price: float
    price_step: float
    amount_step: float
    min_amount: float
    annual_volatility: float  # 0.55 = 55 % a year
    daily_volume: float  # base units traded per day, on average
    jumps_per_day: float = 0.5
    jump_sigma: float = 0.008  # standard deviation of a jump's log-return
    min_cost: float = 5.0  # quote units
    max_spread_ticks: int = 3


DEFAULT_SIMULATED_SYMBOLS: tuple[SimulatedSymbol, ...] = (
    SimulatedSymbol("BTC/USDT", 65_000.0, 0.1, 0.00001, 0.00001, 0.55, 20_000.0),
    SimulatedSymbol("ETH/USDT", 3_200.0, 0.01, 0.0001, 0.0001, 0.70, 250_000.0),
    SimulatedSymbol("SOL/USDT", 150.0, 0.01, 0.001, 0.001, 0.95, 3_000_000.0),
    SimulatedSymbol("BNB/USDT", 580.0, 0.1, 0.001, 0.001, 0.60, 400_000.0),
    SimulatedSymbol("XRP/USDT", 0.55, 0.0001, 0.1, 0.1, 0.85, 800_000_000.0),
)
"""Roughly 2024 levels, Binance-like tick sizes and lot steps, typical volatilities and volumes."""


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


@dataclass(frozen=True, eq=False)
class _DayBlock:
    """One UTC day of one symbol's ticks, and the 1m candles built from them."""

    last: F64
    bid_off: I8  # bid = last - bid_off × step
    ask_off: I8  # ask = last + ask_off × step
    cum_volume: F64
    cum_quote: F64
    minutes: CandleArrays
    ticks_per_minute: int

    def extremes(self, i0: int, i1: int) -> tuple[float, float]:
        """Highest and lowest last price of ticks i0…i1 (inclusive), via the minute extremes."""
        tpm = self.ticks_per_minute
        m0, m1 = -(-i0 // tpm), (i1 + 1) // tpm
        if m0 >= m1:
            part = self.last[i0 : i1 + 1]
            return float(part.max()), float(part.min())
        parts_hi = [float(self.minutes.high[m0:m1].max())]
        parts_lo = [float(self.minutes.low[m0:m1].min())]
        for part in (self.last[i0 : m0 * tpm], self.last[m1 * tpm : i1 + 1]):
            if len(part):
                parts_hi.append(float(part.max()))
                parts_lo.append(float(part.min()))
        return max(parts_hi), min(parts_lo)

    def sums(self, i0: int, i1: int) -> tuple[float, float]:
        """Base and quote volume of ticks i0…i1 (inclusive)."""
        before_v = float(self.cum_volume[i0 - 1]) if i0 > 0 else 0.0
        before_q = float(self.cum_quote[i0 - 1]) if i0 > 0 else 0.0
        return float(self.cum_volume[i1]) - before_v, float(self.cum_quote[i1]) - before_q


class SimulatedExchange(MarketDataVenue):
    """The seeded synthetic market, with the same market-data methods as the replay venue."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        symbols: Sequence[SimulatedSymbol] = DEFAULT_SIMULATED_SYMBOLS,
        tick_interval_ms: int = 1000,
        history_days: int = 30,
        maker_fee: float = DEFAULT_MAKER_FEE,
        taker_fee: float = DEFAULT_TAKER_FEE,
        market_type: MarketType = MarketType.SPOT,
        name: str = "simulated",
    ) -> None:
        if tick_interval_ms < 100 or _MINUTE_MS % tick_interval_ms:
            raise ValueError("tick_interval_ms must divide one minute and be at least 100 ms")
        if history_days < 1:
            raise ValueError("history_days must be at least 1 (the 24 h statistics need it)")
        if seed < 0:
            raise ValueError("seed must be non-negative")
        if len({s.symbol for s in symbols}) != len(symbols) or not symbols:
            raise ValueError("symbols must be a non-empty list of distinct symbols")
        markets = {}
        for spec in symbols:
            base, quote, _ = split_symbol(spec.symbol)
            markets[spec.symbol] = MarketInfo(
                symbol=spec.symbol,
                base=base,
                quote=quote,
                type=market_type,
                price_step=spec.price_step,
                amount_step=spec.amount_step,
                min_amount=spec.min_amount,
                min_cost=spec.min_cost,
                max_leverage=None if market_type is MarketType.SPOT else 100.0,
                maker_fee=maker_fee,
                taker_fee=taker_fee,
            )
        super().__init__(name, markets)
        self._clock: Clock = clock or SystemClock()
        self._seed = seed
        self._specs = {s.symbol: s for s in symbols}
        self._spec_list = list(symbols)
        self._index = {s.symbol: i for i, s in enumerate(symbols)}
        self._interval = tick_interval_ms
        self._ticks_per_day = DAY_MS // tick_interval_ms
        self._ticks_per_minute = _MINUTE_MS // tick_interval_ms
        self._anchor_day = self._clock.now_ms() // DAY_MS
        self._first_day = self._anchor_day - history_days
        self._totals: dict[tuple[int, int], tuple[float, npt.NDArray[np.int64], F64]] = {}
        self._day_start: dict[tuple[int, int], float] = {}
        self._blocks: OrderedDict[tuple[int, int], _DayBlock] = OrderedDict()
        self._block_cache_size = 3 * len(symbols)
        self._minutes: dict[tuple[int, int], CandleArrays] = {}

    # ----------------------------------------------------------------- properties

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def tick_interval_ms(self) -> int:
        return self._interval

    @property
    def history_start_ms(self) -> int:
        """Earliest tick the venue will show."""
        return self._first_day * DAY_MS

    # ----------------------------------------------------------------- market data

    async def fetch_server_time(self) -> int:
        self._check_open()
        return self._clock.now_ms()

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self._check_open()
        spec = self._spec(symbol)
        return self._ticker(spec, self._clock.now_ms() // self._interval)

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        self._check_open()
        spec = self._spec(symbol)
        tf = self._timeframe(timeframe)
        now_tick = self._clock.now_ms() // self._interval
        now_t = now_tick * self._interval
        count = DEFAULT_OHLCV_LIMIT if limit is None else max(0, limit)
        if since_ms is not None:
            start = int(bucket_start(since_ms, tf))
            end_t = min(now_t, start + (count + 1) * tf - self._interval)
        else:
            start = int(bucket_start(now_t, tf)) - (count - 1) * tf
            end_t = now_t
        start = max(start, self.history_start_ms)
        if end_t < start:
            return []
        minutes = self._minute_candles(spec, start, end_t // self._interval)
        merged = aggregate_candles(minutes, tf) if tf > _MINUTE_MS else minutes
        return select_candles(merged, since_ms, limit)

    async def watch_ticker(self, symbol: str) -> Ticker:
        spec = self._spec(symbol)
        tick = await self._next_tick()
        return self._ticker(spec, tick)

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        spec = self._spec(symbol)
        tf = self._timeframe(timeframe)
        tick = await self._next_tick()
        start = max(int(bucket_start(tick * self._interval, tf)), self.history_start_ms)
        minutes = self._minute_candles(spec, start, tick)
        merged = aggregate_candles(minutes, tf) if tf > _MINUTE_MS else minutes
        return merged.to_candles()[-1:]

    # ----------------------------------------------------------------- internals

    def _spec(self, symbol: str) -> SimulatedSymbol:
        self.market(symbol)  # BadSymbolError listing the symbols
        return self._specs[symbol]

    def _timeframe(self, timeframe: str) -> int:
        tf = timeframe_ms(self.name, timeframe)
        if tf < _MINUTE_MS:
            raise NotSupportedError(self.name, f"{timeframe} candles are not offered; the smallest is 1m")
        return tf

    async def _next_tick(self) -> int:
        """Wait for the next tick time on the clock; return the latest tick index after waking."""
        self._check_open()
        next_t = (self._clock.now_ms() // self._interval + 1) * self._interval
        await self._clock.sleep_until_ms(next_t)
        self._check_open()
        return max(next_t, self._clock.now_ms()) // self._interval

    def _ticker(self, spec: SimulatedSymbol, tick: int) -> Ticker:
        j = self._index[spec.symbol]
        n = self._ticks_per_day
        day, i = divmod(tick, n)
        block = self._block(j, day)
        step = spec.price_step
        decimals = _decimals(step)
        last = float(block.last[i])
        first = max(tick - n + 1, self._first_day * n)
        high, low, base_volume, quote_volume = -math.inf, math.inf, 0.0, 0.0
        for d in range(first // n, day + 1):
            b = self._block(j, d)
            i0 = max(first - d * n, 0)
            i1 = min(tick - d * n, n - 1)
            hi, lo = b.extremes(i0, i1)
            v, q = b.sums(i0, i1)
            high, low = max(high, hi), min(low, lo)
            base_volume += v
            quote_volume += q
        reference_tick = max(tick - n, self._first_day * n)
        ref_day, ref_i = divmod(reference_tick, n)
        reference = float(self._block(j, ref_day).last[ref_i])
        return Ticker(
            symbol=spec.symbol,
            timestamp_ms=tick * self._interval,
            last=last,
            bid=round(last - int(block.bid_off[i]) * step, decimals),
            ask=round(last + int(block.ask_off[i]) * step, decimals),
            high_24h=high,
            low_24h=low,
            change_pct_24h=(last / reference - 1.0) * 100.0,
            base_volume_24h=base_volume,
            quote_volume_24h=quote_volume,
        )

    def _minute_candles(self, spec: SimulatedSymbol, start_ms: int, end_tick: int) -> CandleArrays:
        """1m candles from the minute containing ``start_ms`` through the one containing
        ``end_tick``; the last one only as far as ``end_tick`` (it may be unfinished)."""
        j = self._index[spec.symbol]
        tpm = self._ticks_per_minute
        minutes_per_day = DAY_MS // _MINUTE_MS
        first_minute = start_ms // _MINUTE_MS
        end_minute, phase = divmod(end_tick, tpm)
        parts: list[CandleArrays] = []
        for day in range(first_minute // minutes_per_day, end_minute // minutes_per_day + 1):
            day_minutes = self._day_minutes(j, day)
            lo = max(first_minute - day * minutes_per_day, 0)
            hi = min(end_minute - day * minutes_per_day, minutes_per_day)
            if hi > lo:
                parts.append(day_minutes.slice(lo, hi))
        # the minute in progress, from its ticks so far
        day, i_end = divmod(end_tick, self._ticks_per_day)
        block = self._block(j, day)
        ticks = block.last[i_end - phase : i_end + 1]
        volume = float(block.sums(i_end - phase, i_end)[0])
        parts.append(
            CandleArrays(
                ts_ms=np.array([end_minute * _MINUTE_MS], dtype=np.int64),
                open=ticks[:1].copy(),
                high=np.array([ticks.max()]),
                low=np.array([ticks.min()]),
                close=ticks[-1:].copy(),
                volume=np.array([volume]),
            )
        )
        return CandleArrays(
            ts_ms=np.concatenate([p.ts_ms for p in parts]),
            open=np.concatenate([p.open for p in parts]),
            high=np.concatenate([p.high for p in parts]),
            low=np.concatenate([p.low for p in parts]),
            close=np.concatenate([p.close for p in parts]),
            volume=np.concatenate([p.volume for p in parts]),
        )

    def _day_minutes(self, j: int, day: int) -> CandleArrays:
        """A day's 1m candles; history days are generated once and only their candles are kept
        (not put in the tick-block cache, where they would evict the days tickers need)."""
        key = (j, day)
        minutes = self._minutes.get(key)
        if minutes is None:
            block = self._blocks.get(key) or self._generate(j, day)
            minutes = self._minutes[key] = block.minutes
        return minutes

    # ----------------------------------------------------------------- path generation

    def _rng(self, j: int, day: int, stream: int) -> np.random.Generator:
        entropy = [self._seed, j, day + _DAY_ENTROPY_OFFSET, stream]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))

    def _day_total(self, j: int, day: int) -> tuple[float, npt.NDArray[np.int64], F64]:
        """The day's Gaussian log-move, and its jumps (positions in 1…ticks_per_day, sizes)."""
        key = (j, day)
        cached = self._totals.get(key)
        if cached is None:
            spec = self._spec_list[j]
            rng = self._rng(j, day, 0)
            variance = spec.annual_volatility**2 * DAY_MS / _YEAR_MS
            gaussian = float(rng.normal(-0.5 * variance, math.sqrt(variance)))
            count = int(rng.poisson(spec.jumps_per_day))
            positions = rng.integers(1, self._ticks_per_day + 1, size=count).astype(np.int64)
            sizes = rng.normal(0.0, spec.jump_sigma, size=count)
            cached = (gaussian, positions, sizes)
            self._totals[key] = cached
        return cached

    def _start_log_price(self, j: int, day: int) -> float:
        """Log price at the day's first tick, chained from the anchor day by daily totals only
        (no intraday path is generated for the days in between)."""
        cache = self._day_start
        key = (j, day)
        if key in cache:
            return cache[key]
        anchor = self._anchor_day
        value = cache.setdefault((j, anchor), math.log(self._spec_list[j].start_price))
        step = 1 if day > anchor else -1
        for d in range(anchor, day, step):
            following = (j, d + step)
            if following in cache:
                value = cache[following]
                continue
            # moving forward adds day d's move; moving back removes day d-1's move
            gaussian, _, sizes = self._day_total(j, d if step == 1 else d - 1)
            value += step * (gaussian + float(sizes.sum()))
            cache[following] = value
        return value

    def _block(self, j: int, day: int) -> _DayBlock:
        key = (j, day)
        block = self._blocks.get(key)
        if block is not None:
            self._blocks.move_to_end(key)
            return block
        block = self._generate(j, day)
        self._blocks[key] = block
        self._minutes[key] = block.minutes
        while len(self._blocks) > self._block_cache_size:
            self._blocks.popitem(last=False)
        return block

    def _generate(self, j: int, day: int) -> _DayBlock:
        spec = self._spec_list[j]
        n = self._ticks_per_day
        start = self._start_log_price(j, day)
        gaussian, positions, sizes = self._day_total(j, day)
        rng = self._rng(j, day, 1)
        sigma = spec.annual_volatility * math.sqrt(self._interval / _YEAR_MS)
        walk = np.cumsum(rng.standard_normal(n) * sigma)
        fraction = np.arange(1, n + 1, dtype=np.float64) / n
        bridge = walk - fraction * walk[-1] + fraction * gaussian  # bridge[n-1] == gaussian
        jump_steps = np.zeros(n + 1, dtype=np.float64)
        np.add.at(jump_steps, positions, sizes)
        jumps = np.cumsum(jump_steps)
        log_price = np.empty(n, dtype=np.float64)
        log_price[0] = start
        log_price[1:] = start + bridge[:-1] + jumps[1:n]

        step = spec.price_step
        decimals = _decimals(step)
        ticks = np.maximum(np.rint(np.exp(log_price) / step), 1.0)
        last = np.round(ticks * step, decimals)
        spread = rng.integers(1, spec.max_spread_ticks + 1, size=n).astype(np.int8)
        at_ask = rng.integers(0, 2, size=n).astype(np.bool_)
        bid_off = np.where(at_ask, spread, 0).astype(np.int8)
        ask_off = np.where(at_ask, 0, spread).astype(np.int8)
        mean_volume = spec.daily_volume / n
        volume = rng.lognormal(-0.5 * _VOLUME_SIGMA**2, _VOLUME_SIGMA, size=n) * mean_volume
        volume = np.maximum(np.round(volume, _decimals(spec.amount_step)), spec.amount_step)

        tpm = self._ticks_per_minute
        by_minute = last.reshape(-1, tpm)
        minute_ts = day * DAY_MS + np.arange(len(by_minute), dtype=np.int64) * _MINUTE_MS
        minutes = CandleArrays(
            ts_ms=minute_ts,
            open=by_minute[:, 0].copy(),
            high=by_minute.max(axis=1),
            low=by_minute.min(axis=1),
            close=by_minute[:, -1].copy(),
            volume=volume.reshape(-1, tpm).sum(axis=1),
        )
        return _DayBlock(
            last=last,
            bid_off=bid_off,
            ask_off=ask_off,
            cum_volume=np.cumsum(volume),
            cum_quote=np.cumsum(volume * last),
            minutes=minutes,
            ticks_per_minute=tpm,
        )
