"""The seeded synthetic market: alive, realistic, and exactly reproducible."""

from __future__ import annotations

import asyncio
import itertools
import math

import numpy as np
import pytest

from cts_desktop.domain.market import MarketType, OrderRequest, OrderSide, OrderType, Ticker
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.clock import ManualClock, VirtualClock, wait_until_idle
from cts_desktop.exchanges.errors import BadSymbolError, ExchangeDownError, NotSupportedError
from cts_desktop.exchanges.simulated import DEFAULT_SIMULATED_SYMBOLS, SimulatedExchange, SimulatedSymbol

START = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
MINUTE = 60_000
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT"]


async def watch_many(venue: SimulatedExchange, symbol: str, count: int) -> list[Ticker]:
    return [await venue.watch_ticker(symbol) for _ in range(count)]


def on_grid(value: float, step: float) -> bool:
    return abs(value / step - round(value / step)) < 1e-6


def test_simulated_venue_satisfies_the_exchange_protocol() -> None:
    assert isinstance(SimulatedExchange(ManualClock(START)), Exchange)


@pytest.mark.asyncio
async def test_default_markets_have_realistic_rules_and_fees() -> None:
    venue = SimulatedExchange(ManualClock(START))
    markets = await venue.load_markets()
    assert list(markets) == SYMBOLS
    btc = markets["BTC/USDT"]
    assert (btc.base, btc.quote, btc.type) == ("BTC", "USDT", MarketType.SPOT)
    assert (btc.price_step, btc.amount_step, btc.min_amount) == (0.1, 0.00001, 0.00001)
    assert all((m.maker_fee, m.taker_fee) == (0.0002, 0.00055) for m in markets.values())
    assert markets["XRP/USDT"].price_step == 0.0001
    assert venue.supports_streaming and venue.name == "simulated"
    with pytest.raises(BadSymbolError, match="BTC/USDT"):
        venue.market("DOGE/USDT")


@pytest.mark.asyncio
async def test_same_seed_and_clock_give_the_same_market_and_another_seed_does_not() -> None:
    async def run(seed: int) -> tuple[list[Ticker], list[object]]:
        venue = SimulatedExchange(VirtualClock(START), seed=seed)
        ticks = await watch_many(venue, "ETH/USDT", 30)
        candles = await venue.fetch_ohlcv("ETH/USDT", "5m", limit=50)
        return ticks, list(candles)

    first = await run(7)
    assert first == await run(7)
    other = await run(8)
    assert [t.last for t in other[0]] != [t.last for t in first[0]]


@pytest.mark.asyncio
async def test_history_does_not_depend_on_which_call_came_first() -> None:
    a = SimulatedExchange(ManualClock(START), seed=3)
    b = SimulatedExchange(ManualClock(START), seed=3)
    daily_a = await a.fetch_ohlcv("SOL/USDT", "1d", limit=40)
    ticker_b = await b.fetch_ticker("SOL/USDT")  # b generates today first, history later
    minutes_b = await b.fetch_ohlcv("SOL/USDT", "1m", since_ms=START - 20 * 86_400_000, limit=10)
    daily_b = await b.fetch_ohlcv("SOL/USDT", "1d", limit=40)
    assert daily_a == daily_b
    assert ticker_b == await a.fetch_ticker("SOL/USDT")
    assert minutes_b == await a.fetch_ohlcv("SOL/USDT", "1m", since_ms=START - 20 * 86_400_000, limit=10)


@pytest.mark.asyncio
async def test_ticks_come_every_second_on_the_clock() -> None:
    clock = ManualClock(START + 400)
    venue = SimulatedExchange(clock, seed=1)
    task = asyncio.create_task(venue.watch_ticker("BTC/USDT"))
    await wait_until_idle()
    assert not task.done()  # nothing before the clock reaches the next whole second
    await clock.advance(599)
    assert not task.done()
    await clock.advance(1)
    assert (await task).timestamp_ms == START + 1000
    ticks = []
    for _ in range(5):
        pending = asyncio.create_task(venue.watch_ticker("BTC/USDT"))
        await clock.advance(1000)
        ticks.append(await pending)
    assert [t.timestamp_ms for t in ticks] == [START + 1000 * k for k in range(2, 7)]


@pytest.mark.asyncio
async def test_tick_cadence_is_configurable() -> None:
    venue = SimulatedExchange(VirtualClock(START), tick_interval_ms=250)
    ticks = await watch_many(venue, "BTC/USDT", 8)
    assert np.diff([t.timestamp_ms for t in ticks]).tolist() == [250] * 7
    with pytest.raises(ValueError, match="divide one minute"):
        SimulatedExchange(ManualClock(START), tick_interval_ms=7000)


@pytest.mark.asyncio
async def test_prices_are_positive_on_the_tick_grid_with_bid_below_ask() -> None:
    venue = SimulatedExchange(VirtualClock(START), seed=11)
    for spec in DEFAULT_SIMULATED_SYMBOLS:
        for ticker in await watch_many(venue, spec.symbol, 120):
            assert ticker.bid is not None and ticker.ask is not None
            assert 0 < ticker.bid < ticker.ask
            assert ticker.last in (ticker.bid, ticker.ask)
            assert 1 <= round((ticker.ask - ticker.bid) / spec.price_step) <= spec.max_spread_ticks
            assert on_grid(ticker.last, spec.price_step)
            # a realistic level: within 30 % of the starting price on the first day
            assert 0.7 * spec.start_price < ticker.last < 1.3 * spec.start_price


@pytest.mark.asyncio
async def test_the_market_looks_alive() -> None:
    venue = SimulatedExchange(VirtualClock(START), seed=5)
    prices = [t.last for t in await watch_many(venue, "BTC/USDT", 120)]
    changes = sum(1 for a, b in itertools.pairwise(prices) if a != b)
    assert changes > 60  # BTC moves most seconds at a 0.1 tick


@pytest.mark.asyncio
async def test_candles_are_consistent_with_the_ticks() -> None:
    first_minute = START - START % MINUTE
    venue = SimulatedExchange(VirtualClock(first_minute - 1000), seed=2)  # a second before a minute
    ticks = await watch_many(venue, "ETH/USDT", 3 * 60)  # three whole minutes, every tick
    candles = await venue.fetch_ohlcv("ETH/USDT", "1m", since_ms=first_minute)
    by_minute: dict[int, list[float]] = {}
    for t in ticks:
        by_minute.setdefault(t.timestamp_ms - t.timestamp_ms % MINUTE, []).append(t.last)
    assert [c.ts_ms for c in candles] == sorted(by_minute) == [first_minute + k * MINUTE for k in range(3)]
    for candle in candles:
        prices = by_minute[candle.ts_ms]
        assert len(prices) == 60
        assert candle.open == prices[0] and candle.close == prices[-1]
        assert candle.high == max(prices) and candle.low == min(prices)
        assert all(candle.low <= p <= candle.high for p in prices)
        assert candle.volume > 0
    # one more tick opens the next minute: its candle so far is that single tick
    opening = await venue.watch_ticker("ETH/USDT")
    (current,) = await venue.fetch_ohlcv("ETH/USDT", "1m", since_ms=first_minute + 3 * MINUTE)
    assert current.ts_ms == opening.timestamp_ms
    assert current.open == current.high == current.low == current.close == opening.last


@pytest.mark.asyncio
async def test_aggregated_candles_match_their_minutes() -> None:
    venue = SimulatedExchange(ManualClock(START), seed=4)
    minutes = await venue.fetch_ohlcv("BNB/USDT", "1m", limit=120)
    fives = await venue.fetch_ohlcv("BNB/USDT", "5m", limit=10)
    for five in fives[:-1]:
        inside = [m for m in minutes if five.ts_ms <= m.ts_ms < five.ts_ms + 5 * MINUTE]
        assert len(inside) == 5
        assert five.open == inside[0].open and five.close == inside[-1].close
        assert five.high == max(m.high for m in inside) and five.low == min(m.low for m in inside)
        assert five.volume == pytest.approx(sum(m.volume for m in inside))
    assert fives[-1].ts_ms == START - START % (5 * MINUTE)
    hourly = await venue.fetch_ohlcv("BNB/USDT", "1h", limit=500)
    assert len(hourly) == 500
    assert [c.ts_ms for c in hourly] == sorted({c.ts_ms for c in hourly})
    assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in hourly)


@pytest.mark.asyncio
async def test_history_is_bounded_and_candles_stop_at_now() -> None:
    clock = ManualClock(START)
    venue = SimulatedExchange(clock, history_days=10)
    daily = await venue.fetch_ohlcv("BTC/USDT", "1d", limit=500)
    assert len(daily) == 11  # ten whole days and today so far
    assert daily[0].ts_ms == venue.history_start_ms
    assert daily[-1].ts_ms == START - START % 86_400_000
    assert await venue.fetch_ohlcv("BTC/USDT", "1m", since_ms=START + MINUTE) == []  # no future


@pytest.mark.asyncio
async def test_watch_ohlcv_returns_the_candle_in_progress() -> None:
    venue = SimulatedExchange(VirtualClock(START), seed=9)
    (candle,) = await venue.watch_ohlcv("SOL/USDT", "15m")
    ticker = await venue.fetch_ticker("SOL/USDT")
    assert candle.ts_ms == ticker.timestamp_ms - ticker.timestamp_ms % (15 * MINUTE)
    assert candle.close == ticker.last
    assert candle.low <= ticker.last <= candle.high
    with pytest.raises(NotSupportedError, match="smallest is 1m"):
        await venue.watch_ohlcv("SOL/USDT", "1s")


@pytest.mark.asyncio
async def test_24h_statistics_are_realistic() -> None:
    venue = SimulatedExchange(ManualClock(START), seed=6)
    tickers = await venue.fetch_tickers()
    for spec in DEFAULT_SIMULATED_SYMBOLS:
        ticker = tickers[spec.symbol]
        assert ticker.high_24h is not None and ticker.low_24h is not None
        assert ticker.low_24h <= ticker.last <= ticker.high_24h
        assert ticker.base_volume_24h is not None and ticker.quote_volume_24h is not None
        assert spec.daily_volume / 2 < ticker.base_volume_24h < spec.daily_volume * 2
        assert ticker.quote_volume_24h == pytest.approx(ticker.base_volume_24h * ticker.last, rel=0.3)
        assert ticker.change_pct_24h is not None and abs(ticker.change_pct_24h) < 30
    assert (await venue.fetch_tickers(["XRP/USDT"])).keys() == {"XRP/USDT"}


@pytest.mark.asyncio
async def test_volatility_matches_the_symbol() -> None:
    venue = SimulatedExchange(ManualClock(START), seed=12)
    closes = np.array([c.close for c in await venue.fetch_ohlcv("BTC/USDT", "1m", limit=5000)])
    returns = np.diff(np.log(closes))
    annualised = float(np.std(returns) * math.sqrt(365 * 24 * 60))
    assert 0.4 < annualised / 0.55 < 1.6


@pytest.mark.asyncio
async def test_custom_symbols_and_a_derivatives_market() -> None:
    spec = SimulatedSymbol("DOGE/USDT:USDT", 0.1, 0.00001, 1.0, 1.0, 1.2, 1e9)
    venue = SimulatedExchange(ManualClock(START), symbols=[spec], market_type=MarketType.SWAP, name="sim2")
    market = venue.market("DOGE/USDT:USDT")
    assert market.type is MarketType.SWAP and market.max_leverage == 100.0
    assert (await venue.fetch_ticker("DOGE/USDT:USDT")).last > 0
    assert await venue.fetch_server_time() == START


@pytest.mark.asyncio
async def test_trading_is_refused_and_close_stops_the_venue() -> None:
    venue = SimulatedExchange(ManualClock(START))
    with pytest.raises(NotSupportedError, match="paper venue"):
        await venue.create_order(OrderRequest("BTC/USDT", OrderSide.BUY, OrderType.MARKET, 0.01, "cid"))
    with pytest.raises(NotSupportedError):
        await venue.fetch_balance()
    await venue.close()
    with pytest.raises(ExchangeDownError, match="closed"):
        await venue.fetch_ticker("BTC/USDT")


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="history_days"):
        SimulatedExchange(ManualClock(START), history_days=0)
    with pytest.raises(ValueError, match="distinct"):
        SimulatedExchange(ManualClock(START), symbols=[DEFAULT_SIMULATED_SYMBOLS[0]] * 2)
    with pytest.raises(ValueError, match="seed"):
        SimulatedExchange(ManualClock(START), seed=-1)
