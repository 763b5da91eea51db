"""The replay venue: candle files played back as a market, on an injected clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cts_desktop.domain.market import Candle, MarketType, OrderRequest, OrderSide, OrderType
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.candle_files import CandleArrays
from cts_desktop.exchanges.clock import ManualClock, VirtualClock, wait_until_idle
from cts_desktop.exchanges.errors import BadSymbolError, ExchangeDownError, NotSupportedError
from cts_desktop.exchanges.replay import ReplayExchange, ReplayFinishedError, ReplaySource
from tests.conftest import SHARED_DIR

HOUR = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % (4 * HOUR)  # 2020-09-13 12:00 UTC, a 4h boundary
CLOCK0 = 5_000  # the clock's time has nothing to do with market time
MARKET_DIR = SHARED_DIR / "data" / "market"

BARS = [
    Candle(T0, 100.0, 103.0, 99.0, 102.0, 10.0),  # low nearer the open: 100 → 99 → 103 → 102
    Candle(T0 + HOUR, 102.0, 104.0, 98.0, 99.0, 20.0),  # high nearer: 102 → 104 → 98 → 99
    Candle(T0 + 2 * HOUR, 99.0, 101.0, 97.0, 100.0, 30.0),  # tie, closes up: low first
    Candle(T0 + 3 * HOUR, 100.0, 102.0, 98.0, 99.0, 40.0),  # tie, closes down: high first
]
PATH = [100, 99, 103, 102, 102, 104, 98, 99, 99, 97, 101, 100, 100, 102, 98, 99]
OFFSETS = [0, HOUR // 3, 2 * HOUR // 3, HOUR - 1]
TIMES = [bar.ts_ms + off for bar in BARS for off in OFFSETS]


def source(symbol: str = "BTC/USDT", bars: list[Candle] = BARS, interval: int = HOUR) -> ReplaySource:
    return ReplaySource(symbol, CandleArrays.from_candles(bars), interval)


def market_file(name: str) -> Path:
    path = MARKET_DIR / name
    if not path.is_file():
        pytest.skip(f"real market data not found at {path} (see shared/data/market/SOURCE.md)")
    return path


def test_replay_satisfies_the_exchange_protocol() -> None:
    assert isinstance(ReplayExchange([source()], clock=ManualClock()), Exchange)


@pytest.mark.asyncio
async def test_markets_are_synthesised_from_the_data() -> None:
    replay = ReplayExchange([source(), source("ETH/USDT:USDT")], clock=ManualClock())
    markets = await replay.load_markets()
    assert list(markets) == ["BTC/USDT", "ETH/USDT:USDT"]
    btc = replay.market("BTC/USDT")
    assert (btc.base, btc.quote, btc.type) == ("BTC", "USDT", MarketType.SPOT)
    assert btc.price_step == 1.0 and btc.amount_step == 1.0
    assert (btc.maker_fee, btc.taker_fee) == (0.0002, 0.00055)
    assert replay.market("ETH/USDT:USDT").type is MarketType.SWAP
    with pytest.raises(BadSymbolError, match="BTC/USDT"):
        replay.market("DOGE/USDT")


@pytest.mark.asyncio
async def test_each_bar_becomes_four_ticks_open_nearer_extreme_farther_extreme_close() -> None:
    replay = ReplayExchange([source()], clock=VirtualClock(CLOCK0), speed=1.0)
    tickers = [await replay.watch_ticker("BTC/USDT") for _ in range(16)]
    assert [t.last for t in tickers] == PATH
    assert [t.timestamp_ms for t in tickers] == TIMES
    assert all(t.bid is None and t.ask is None for t in tickers)  # candles carry no quotes


@pytest.mark.asyncio
async def test_ticks_arrive_at_their_market_time_on_a_manual_clock() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=1.0)
    first = await replay.watch_ticker("BTC/USDT")  # the open is due at the start: no wait
    assert (first.timestamp_ms, first.last) == (T0, 100.0)
    task = asyncio.create_task(replay.watch_ticker("BTC/USDT"))
    await clock.advance(HOUR // 3 - 1)
    assert not task.done()
    await clock.advance(1)
    assert task.done() and (await task).last == 99.0
    assert await replay.fetch_server_time() == T0 + HOUR // 3


@pytest.mark.asyncio
async def test_speed_factor_is_honoured() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=60.0)  # one market hour per clock minute
    await replay.watch_ticker("BTC/USDT")
    task = asyncio.create_task(replay.watch_ticker("BTC/USDT"))
    await clock.advance(HOUR // 3 // 60 - 1)
    assert not task.done()
    await clock.advance(1)
    assert (await task).timestamp_ms == T0 + HOUR // 3
    await clock.advance(60_000)
    assert replay.now_ms == T0 + HOUR // 3 + HOUR
    assert replay.speed == 60.0


@pytest.mark.asyncio
async def test_watch_ohlcv_emits_candles_in_order_at_the_right_virtual_times() -> None:
    clock = VirtualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=3600.0)  # one hour per second
    seen: list[tuple[int, Candle]] = []
    for _ in range(16):
        (candle,) = await replay.watch_ohlcv("BTC/USDT", "1h")
        seen.append((clock.now_ms() - CLOCK0, candle))
    # each update arrives at its tick's market time / 3600 (rounded up to the next clock ms)
    assert [at for at, _ in seen] == [-(-(t - T0) // 3600) for t in TIMES]
    # the last update of every bar is the file's candle; earlier ones are the bar so far
    assert [c for _, c in seen[3::4]] == BARS
    assert seen[1][1] == Candle(T0, 100.0, 100.0, 99.0, 99.0, 5.0)
    assert [c.ts_ms for _, c in seen] == sorted(c.ts_ms for _, c in seen)


@pytest.mark.asyncio
async def test_fetch_ohlcv_returns_candles_up_to_now_with_the_current_one_partial() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=1.0)
    replay.start()
    await clock.advance(HOUR + HOUR // 2)  # bar 1 has shown its open and its high
    candles = await replay.fetch_ohlcv("BTC/USDT", "1h")
    assert candles == [BARS[0], Candle(T0 + HOUR, 102.0, 104.0, 102.0, 104.0, 10.0)]
    assert await replay.fetch_ohlcv("BTC/USDT", "1h", since_ms=T0 + HOUR) == candles[1:]
    assert await replay.fetch_ohlcv("BTC/USDT", "1h", limit=1) == candles[1:]
    ticker = await replay.fetch_ticker("BTC/USDT")
    assert (ticker.timestamp_ms, ticker.last) == (T0 + HOUR + HOUR // 3, 104.0)
    await clock.advance(3 * HOUR)
    (four_hours,) = await replay.fetch_ohlcv("BTC/USDT", "4h")
    assert four_hours == Candle(T0, 100.0, 104.0, 97.0, 99.0, 100.0)
    with pytest.raises(NotSupportedError, match="1m candles cannot be built"):
        await replay.fetch_ohlcv("BTC/USDT", "1m")
    with pytest.raises(NotSupportedError, match="not supported"):
        await replay.fetch_ohlcv("BTC/USDT", "7m")


@pytest.mark.asyncio
async def test_ticker_carries_24h_statistics() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=1.0)
    replay.start()
    await clock.advance(4 * HOUR)
    ticker = await replay.fetch_ticker("BTC/USDT")
    assert (ticker.last, ticker.high_24h, ticker.low_24h) == (99.0, 104.0, 97.0)
    assert ticker.change_pct_24h == pytest.approx(-1.0)
    assert ticker.base_volume_24h == 100.0
    assert ticker.quote_volume_24h is not None and ticker.quote_volume_24h > 0
    assert (await replay.fetch_tickers())["BTC/USDT"] == ticker


@pytest.mark.asyncio
async def test_as_fast_as_possible_interleaves_symbols_in_time_order() -> None:
    late = [Candle(c.ts_ms + HOUR // 2, c.open, c.high, c.low, c.close, c.volume) for c in BARS]
    replay = ReplayExchange([source("BTC/USDT"), source("ETH/USDT", late)], speed=None)
    order: list[tuple[int, str]] = []

    async def consume(symbol: str) -> None:
        for _ in range(16):
            ticker = await replay.watch_ticker(symbol)
            order.append((ticker.timestamp_ms, symbol))

    await asyncio.gather(consume("BTC/USDT"), consume("ETH/USDT"))
    assert order == sorted(order)
    assert replay.finished and replay.progress == 1.0


@pytest.mark.asyncio
async def test_as_fast_as_possible_replays_a_real_file_quickly() -> None:
    replay = ReplayExchange.from_files([market_file("Binance_ADAUSDT_1h.csv")], speed=None)
    assert replay.symbols == ["ADA/USDT"] and replay.reports["ADA/USDT"].rows_kept == 7478
    started = time.perf_counter()
    count, previous = 0, 0
    while not replay.finished:
        ticker = await replay.watch_ticker("ADA/USDT")
        assert ticker.timestamp_ms > previous
        previous = ticker.timestamp_ms
        count += 1
    assert count == 4 * 7478
    assert time.perf_counter() - started < 10.0  # about 0.5 s here
    candles = await replay.fetch_ohlcv("ADA/USDT", "1h", limit=1)
    assert candles[-1].ts_ms == replay.reports["ADA/USDT"].last_ts_ms


@pytest.mark.asyncio
async def test_progress_start_at_and_seek() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=1.0, start_at_ms=T0 + HOUR)
    assert replay.progress == 0.0 and not replay.finished
    first = await replay.watch_ticker("BTC/USDT")
    assert (first.timestamp_ms, first.last) == (T0 + HOUR, 102.0)
    await clock.advance(HOUR + HOUR // 2)
    assert replay.progress == pytest.approx(1.5 / 3, abs=1e-6)
    replay.seek(T0)
    assert replay.now_ms == T0
    again = await replay.watch_ticker("BTC/USDT")
    assert (again.timestamp_ms, again.last) == (T0, 100.0)
    replay.seek(T0 + 3 * HOUR + HOUR // 2)  # forwards, between two ticks: the next one is 10 min away
    after = asyncio.create_task(replay.watch_ticker("BTC/USDT"))
    await clock.advance(HOUR // 6)
    assert (await after).timestamp_ms == T0 + 3 * HOUR + 2 * HOUR // 3


@pytest.mark.asyncio
async def test_seek_releases_a_fast_replay_watcher_waiting_at_the_end() -> None:
    replay = ReplayExchange([source()], speed=None)
    for _ in range(16):
        await replay.watch_ticker("BTC/USDT")
    assert replay.finished
    waiting = asyncio.create_task(replay.watch_ticker("BTC/USDT"))
    await wait_until_idle()
    assert not waiting.done()  # the market went quiet: it waits rather than failing
    replay.seek(T0 + 2 * HOUR)
    ticker = await asyncio.wait_for(waiting, 5)
    assert (ticker.timestamp_ms, ticker.last) == (T0 + 2 * HOUR, 99.0)
    assert not replay.finished


@pytest.mark.asyncio
async def test_raise_at_end_stops_watchers_with_a_clear_error() -> None:
    replay = ReplayExchange([source()], speed=None, raise_at_end=True)
    for _ in range(16):
        await replay.watch_ohlcv("BTC/USDT", "1h")
    with pytest.raises(ReplayFinishedError, match="reached the end") as excinfo:
        await replay.watch_ohlcv("BTC/USDT", "1h")
    assert not excinfo.value.retryable


@pytest.mark.asyncio
async def test_a_symbol_whose_data_starts_later_has_no_ticker_yet() -> None:
    later = [Candle(c.ts_ms + 2 * HOUR, c.open, c.high, c.low, c.close, c.volume) for c in BARS]
    replay = ReplayExchange([source(), source("ETH/USDT", later)], clock=ManualClock(), speed=1.0)
    with pytest.raises(ExchangeDownError, match="no ETH/USDT data before 2020-09-13 14:00 UTC"):
        await replay.fetch_ticker("ETH/USDT")
    assert await replay.fetch_ohlcv("ETH/USDT", "1h") == []
    assert (await replay.fetch_ticker("BTC/USDT")).last == 100.0


@pytest.mark.asyncio
async def test_trading_is_refused_with_a_pointer_to_the_paper_venue() -> None:
    replay = ReplayExchange([source()], clock=ManualClock())
    request = OrderRequest("BTC/USDT", OrderSide.BUY, OrderType.MARKET, 1.0, "cid-1")
    with pytest.raises(NotSupportedError, match="paper venue") as excinfo:
        await replay.create_order(request)
    assert not excinfo.value.retryable
    for call in (
        replay.cancel_order("1", "BTC/USDT"),
        replay.fetch_balance(),
        replay.fetch_positions(),
        replay.fetch_open_orders(),
        replay.fetch_order("1", "BTC/USDT"),
        replay.fetch_order_by_client_id("cid-1", "BTC/USDT"),
        replay.watch_orders(),
        replay.set_leverage("BTC/USDT", 2),
        replay.set_position_mode(True),
    ):
        with pytest.raises(NotSupportedError):
            await call


@pytest.mark.asyncio
async def test_close_releases_watchers_and_refuses_further_calls() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=None)
    for _ in range(16):
        await replay.watch_ticker("BTC/USDT")
    waiting = asyncio.create_task(replay.watch_ticker("BTC/USDT"))
    await wait_until_idle()
    await replay.close()
    with pytest.raises(ExchangeDownError, match="closed"):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ExchangeDownError):
        await replay.fetch_ticker("BTC/USDT")


@pytest.mark.asyncio
async def test_market_clock_reads_and_waits_in_market_time() -> None:
    clock = ManualClock(CLOCK0)
    replay = ReplayExchange([source()], clock=clock, speed=10.0)
    market_clock = replay.market_clock
    assert market_clock.now_ms() == T0
    task = asyncio.create_task(market_clock.sleep(60))  # one market minute = 6 clock seconds
    await clock.advance(5_999)
    assert not task.done()
    await clock.advance(1)
    await task
    assert market_clock.now_ms() == T0 + 60_000


@pytest.mark.asyncio
async def test_real_files_replay_together_by_symbol() -> None:
    replay = ReplayExchange.from_files(
        {
            "BTC/USDT": market_file("Binance_BTCUSDT_d.csv"),
            "TEST/BTC": market_file("freqtrade_UNITTEST_BTC-1m.json"),
        },
        speed=None,
    )
    assert replay.symbols == ["BTC/USDT", "TEST/BTC"]
    assert replay.market("TEST/BTC").price_step == pytest.approx(1e-8)
    assert replay.start_ms == replay.reports["BTC/USDT"].first_ts_ms  # the earlier file starts the replay
    btc = [await replay.watch_ticker("BTC/USDT") for _ in range(8)]
    assert [t.last for t in btc[3::4]] == [4285.08, 4108.37]  # 2017-08-17 and -18 closes
    weekly = await replay.fetch_ohlcv("BTC/USDT", "1w")
    assert len(weekly) == 1 and weekly[0].ts_ms == 1502668800000  # Monday 2017-08-14


def test_invalid_sources_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ReplayExchange([])
    with pytest.raises(ValueError, match="only one replay source"):
        ReplayExchange([source(), source()])
    with pytest.raises(ValueError, match="oldest first"):
        ReplayExchange([source(bars=list(reversed(BARS)))])
    with pytest.raises(ValueError, match="speed"):
        ReplayExchange([source()], speed=-1)
