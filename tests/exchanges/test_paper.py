"""The paper venue end to end on a real SQLite file, against hand-computed cases.

Prices come from a tiny in-test market-data venue (``Prices``). Unless a test says otherwise:
BTC/USDT:USDT is a linear perpetual with tick 0.1, lot 0.001, maker 0.02 %, taker 0.05 %;
slippage is 0 so the arithmetic in the comments stays readable; the account starts with
10,000 USDT.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cts_desktop.domain.market import (
    Balance,
    Candle,
    MarginMode,
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderType,
    PositionMode,
    PositionSide,
    PositionSnapshot,
    Ticker,
    TimeInForce,
    VenueOrderStatus,
)
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.errors import (
    BadSymbolError,
    InsufficientFundsError,
    InvalidOrderError,
    NotSupportedError,
    OrderNotFoundError,
    UnknownExchangeError,
)
from cts_desktop.exchanges.paper import AccountSettings, PaperExchange
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.paper import PaperRepository

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT"
T0 = 1_740_000_000_000
BUY, SELL = OrderSide.BUY, OrderSide.SELL
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
MARKETS = [
    MarketInfo(
        BTC,
        "BTC",
        "USDT",
        MarketType.SWAP,
        price_step=0.1,
        amount_step=0.001,
        min_amount=0.001,
        min_cost=5.0,
        max_leverage=100,
        maker_fee=0.0002,
        taker_fee=0.0005,
    ),
    MarketInfo(
        ETH,
        "ETH",
        "USDT",
        MarketType.SPOT,
        price_step=0.01,
        amount_step=0.0001,
        min_amount=0.001,
        maker_fee=0.001,
        taker_fee=0.001,
    ),
]


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-12, abs=1e-9)


class Prices:
    """Market data only: markets, a settable last price, and a queue for watch_ticker."""

    name = "prices"
    supports_streaming = True

    def __init__(self, prices: dict[str, float]) -> None:
        self.markets = {m.symbol: m for m in MARKETS}
        self.prices = dict(prices)
        self.stream: asyncio.Queue[Ticker] = asyncio.Queue()
        self.loaded = False

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        self.loaded = True
        return dict(self.markets)

    def market(self, symbol: str) -> MarketInfo:
        if not self.loaded or symbol not in self.markets:
            raise BadSymbolError(self.name, f"unknown symbol {symbol}")
        return self.markets[symbol]

    async def fetch_server_time(self) -> int:
        return T0

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self.market(symbol)
        return Ticker(symbol, T0, self.prices[symbol])

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, Ticker]:
        return {s: await self.fetch_ticker(s) for s in symbols or self.prices}

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        return [Candle(T0, 1, 2, 0.5, 1.5, 10)]

    async def watch_ticker(self, symbol: str) -> Ticker:
        return await self.stream.get()

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        return await self.fetch_ohlcv(symbol, timeframe)

    async def _no_trading(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(self.name, "market data only")

    watch_orders = fetch_balance = fetch_positions = fetch_open_orders = _no_trading
    create_order = cancel_order = fetch_order = fetch_order_by_client_id = _no_trading
    set_leverage = set_margin_mode = set_position_mode = _no_trading

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(str(tmp_path / "paper.db"))
    try:
        yield database
    finally:
        await database.close()


SETTINGS = AccountSettings(starting_balance=10_000, quote="USDT", slippage_bps=0)


def make(
    db: Database,
    prices: Prices | None = None,
    account_id: str = "acc",
    **settings: Any,
) -> tuple[PaperExchange, Prices]:
    prices = prices or Prices({BTC: 60_000.0, ETH: 2_000.0})
    venue = PaperExchange(
        prices,
        PaperRepository(db),
        account_id=account_id,
        create_if_missing=dataclasses.replace(SETTINGS, **settings),
        clock=Clock(),
    )
    return venue, prices


_ids = iter(range(1, 1_000_000))


def order(
    side: OrderSide = BUY,
    type: OrderType = OrderType.MARKET,
    amount: float = 0.1,
    symbol: str = BTC,
    cid: str | None = None,
    **extra: Any,
) -> OrderRequest:
    return OrderRequest(symbol, side, type, amount, cid or f"c{next(_ids)}", **extra)


async def quote(venue: PaperExchange, asset: str = "USDT") -> Balance:
    return (await venue.fetch_balance())[asset]


async def position(venue: PaperExchange, side: PositionSide, symbol: str = BTC) -> PositionSnapshot | None:
    found = [p for p in await venue.fetch_positions([symbol]) if p.side is side]
    return found[0] if found else None


# --------------------------------------------------------------------------- basics


@pytest.mark.asyncio
async def test_it_is_an_exchange_and_delegates_market_data(db: Database) -> None:
    venue, _ = make(db)
    assert isinstance(venue, Exchange)
    assert venue.name == "paper" and venue.supports_streaming
    assert set(await venue.load_markets()) == {BTC, ETH}
    assert venue.market(BTC).price_step == 0.1
    assert (await venue.fetch_ticker(BTC)).last == 60_000.0
    assert await venue.fetch_server_time() == T0
    assert len(await venue.fetch_ohlcv(BTC)) == 1
    assert set(await venue.fetch_tickers([BTC])) == {BTC}
    # A new account holds exactly its starting balance.
    assert await venue.fetch_balance() == {"USDT": Balance("USDT", 10_000.0, 0.0, 10_000.0)}
    assert await venue.fetch_positions() == [] and await venue.fetch_open_orders() == []


@pytest.mark.asyncio
async def test_a_missing_account_without_settings_is_an_error(db: Database) -> None:
    venue = PaperExchange(Prices({}), PaperRepository(db), account_id="nope")
    with pytest.raises(UnknownExchangeError, match="no paper account 'nope'"):
        await venue.fetch_balance()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="partial_fill_ratio"):
        AccountSettings(partial_fill_ratio=0)
    with pytest.raises(ValueError, match="taker_fee is a fraction"):
        AccountSettings(taker_fee=0.5)


# --------------------------------------------------------------------------- market orders


@pytest.mark.asyncio
async def test_market_buy_with_slippage_and_taker_fee(db: Database) -> None:
    venue, _ = make(db, slippage_bps=5)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    result = await venue.create_order(order(BUY, amount=0.1))
    # Fill: 60,000 × (1 + 5 bps) = 60,030.0 (on the 0.1 tick). Value 0.1 × 60,030 = 6,003.
    # Taker fee 6,003 × 0.0005 = 3.0015. Margin at 10×: 600.3.
    # Free: 10,000 − 600.3 − 3.0015 = 9,396.6985; used 600.3.
    assert result.status is VenueOrderStatus.FILLED
    assert (result.filled, result.average, result.fee) == (0.1, 60_030.0, approx(3.0015))
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(9_396.6985), approx(600.3))
    held = await position(venue, LONG)
    assert held is not None
    assert (held.contracts, held.entry_price, held.leverage) == (0.1, 60_030.0, 10)
    assert held.extra["margin"] == approx(600.3)
    assert held.realized_pnl == approx(-3.0015)  # the opening fee
    # Marked at 60,000 the long shows (60,000 − 60,030) × 0.1 = −3 unrealised.
    assert held.mark_price == 60_000.0 and held.unrealized_pnl == approx(-3.0)
    (fill,) = await venue.fetch_fills()
    assert (fill.price, fill.amount, fill.maker, fill.fee_currency) == (60_030.0, 0.1, False, "USDT")


@pytest.mark.asyncio
async def test_market_order_without_a_price_yet_uses_the_data_venue_ticker(db: Database) -> None:
    venue, prices = make(db)
    prices.prices[BTC] = 50_000.0
    result = await venue.create_order(order(BUY, amount=0.01))
    # 1× leverage (the default): margin 0.01 × 50,000 = 500; fee 500 × 0.0005 = 0.25.
    assert result.average == 50_000.0
    assert (await quote(venue)).free == approx(10_000 - 500 - 0.25)
    assert venue.last_price(BTC) == 50_000.0


@pytest.mark.asyncio
async def test_spot_buy_needs_quote_and_sell_needs_base(db: Database) -> None:
    venue, _ = make(db, slippage_bps=10)
    await venue.on_price(ETH, 2_000.0, T0)
    # Buy 0.5 ETH: 2,000 × 1.001 = 2,002.00; value 1,001; fee 0.1 % = 1.001.
    # USDT: 10,000 − 1,001 − 1.001 = 8,997.999; ETH: 0.5.
    bought = await venue.create_order(order(BUY, amount=0.5, symbol=ETH))
    assert bought.average == 2_002.0 and bought.fee == approx(1.001)
    assert (await quote(venue)).free == approx(8_997.999)
    assert (await quote(venue, "ETH")).free == approx(0.5)
    with pytest.raises(InsufficientFundsError, match=r"selling 0\.6 ETH"):
        await venue.create_order(order(SELL, amount=0.6, symbol=ETH))
    # A resting sell holds its 0.5 ETH; at 2,100.01 (through 2,100) it fills as maker:
    # value 1,050, fee 1.05 → USDT 8,997.999 + 1,050 − 1.05 = 10,046.949.
    await venue.create_order(order(SELL, OrderType.LIMIT, 0.5, ETH, price=2_100.0))
    assert (await quote(venue, "ETH")).used == approx(0.5)
    with pytest.raises(InsufficientFundsError, match="ETH"):
        await venue.create_order(order(SELL, OrderType.LIMIT, 0.1, ETH, price=2_200.0))
    await venue.on_price(ETH, 2_100.01, T0 + 1)
    assert (await quote(venue)).free == approx(10_046.949)
    assert (await quote(venue, "ETH")).total == approx(0.0)
    with pytest.raises(InvalidOrderError, match="reduce-only applies to derivatives"):
        await venue.create_order(order(SELL, amount=0.1, symbol=ETH, reduce_only=True))
    with pytest.raises(NotSupportedError):
        await venue.set_leverage(ETH, 3)


@pytest.mark.asyncio
async def test_spot_limit_buy_reserves_value_plus_fee_and_releases_the_rest(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(ETH, 2_000.0, T0)
    resting = await venue.create_order(order(BUY, OrderType.LIMIT, 1.0, ETH, price=1_900.0))
    # Reserved: 1.0 × 1,900 × (1 + 0.001 taker, the worst case) = 1,901.9.
    assert (await quote(venue)).used == approx(1_901.9)
    await venue.on_price(ETH, 1_899.0, T0 + 1)
    # Filled as maker: 1,900 + 1.9 fee = 1,901.9 paid; nothing stays reserved.
    usdt = await quote(venue)
    assert (usdt.free, usdt.used) == (approx(10_000 - 1_901.9), 0.0)
    assert (await venue.fetch_order(resting.id, ETH)).status is VenueOrderStatus.FILLED


# --------------------------------------------------------------------------- limit orders


@pytest.mark.asyncio
async def test_limit_fills_as_maker_only_when_traded_through(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    placed = await venue.create_order(order(BUY, OrderType.LIMIT, 0.1, price=59_000.0))
    # Resting: reserves 0.1 × 59,000 / 10 = 590 of margin.
    assert placed.status is VenueOrderStatus.OPEN
    assert (await quote(venue)).used == approx(590.0)
    await venue.on_price(BTC, 59_000.0, T0 + 1)  # a touch: no fill
    assert (await venue.fetch_order(placed.id, BTC)).filled == 0
    await venue.on_price(BTC, 58_900.0, T0 + 2)
    # Maker fill at the limit 59,000 (not 58,900): fee 5,900 × 0.0002 = 1.18.
    # Free: 10,000 − 590 − 1.18 = 9,408.82; used 590 (now the position's margin).
    done = await venue.fetch_order(placed.id, BTC)
    assert (done.status, done.average, done.fee) == (VenueOrderStatus.FILLED, 59_000.0, approx(1.18))
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(9_408.82), approx(590.0))
    (fill,) = await venue.fetch_fills(BTC)
    assert fill.maker and fill.timestamp_ms == T0 + 2


@pytest.mark.asyncio
async def test_partial_fills_across_ticks_then_complete(db: Database) -> None:
    venue, _ = make(db, partial_fill_ratio=0.4)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 51_000.0, T0)
    placed = await venue.create_order(order(BUY, OrderType.LIMIT, 1.0, price=50_000.0))
    # At most 40 % of 1.0 per tick: 0.4, 0.4, then the last 0.2.
    statuses = []
    for i, price in enumerate((49_990.0, 49_980.0, 49_970.0)):
        await venue.on_price(BTC, price, T0 + 1 + i)
        snap = await venue.fetch_order(placed.id, BTC)
        statuses.append((snap.status, snap.filled))
    assert statuses == [
        (VenueOrderStatus.PARTIALLY_FILLED, 0.4),
        (VenueOrderStatus.PARTIALLY_FILLED, 0.8),
        (VenueOrderStatus.FILLED, 1.0),
    ]
    # Maker fees 0.4 × 50,000 × 0.0002 = 4, 4, then 2: 10 in total. Margin 50,000 / 10 = 5,000.
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(10_000 - 5_000 - 10), approx(5_000.0))
    assert [f.amount for f in await venue.fetch_fills()] == [0.4, 0.4, 0.2]


@pytest.mark.asyncio
async def test_fills_are_bounded_by_the_tick_volume_share(db: Database) -> None:
    venue, _ = make(db, volume_share=0.1)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    first = await venue.create_order(order(BUY, OrderType.LIMIT, 0.1, price=59_000.0))
    second = await venue.create_order(order(BUY, OrderType.LIMIT, 0.1, price=59_500.0))
    # A tick at 58,000 with 0.8 traded: 10 % = 0.08 for both orders together; the better price
    # (59,500) goes first and takes it all.
    await venue.on_price(BTC, 58_000.0, T0 + 1, volume=0.8)
    assert (await venue.fetch_order(second.id, BTC)).filled == approx(0.08)
    assert (await venue.fetch_order(first.id, BTC)).filled == 0
    # 1.5 traded: 0.15 available; the second takes its last 0.02, the first 0.1 (all it needs).
    await venue.on_price(BTC, 58_000.0, T0 + 2, volume=1.5)
    assert (await venue.fetch_order(second.id, BTC)).status is VenueOrderStatus.FILLED
    assert (await venue.fetch_order(first.id, BTC)).status is VenueOrderStatus.FILLED
    # Without a volume the share does not apply (and ratio 1.0 fills in one tick).


@pytest.mark.asyncio
async def test_ioc_partial_fill_then_the_remainder_is_cancelled(db: Database) -> None:
    venue, _ = make(db, partial_fill_ratio=0.5)
    await venue.on_price(BTC, 60_000.0, T0)
    result = await venue.create_order(
        order(BUY, OrderType.LIMIT, 0.2, price=60_100.0, time_in_force=TimeInForce.IOC)
    )
    # Marketable (60,100 ≥ 60,000): 50 % = 0.1 fills at once as taker at the market 60,000
    # (better than the limit); fee 6,000 × 0.0005 = 3. The other 0.1 is cancelled.
    assert (result.status, result.filled, result.average) == (VenueOrderStatus.CANCELLED, 0.1, 60_000.0)
    assert result.fee == approx(3.0)
    assert "immediate-or-cancel" in (result.reject_reason or "")
    assert await venue.fetch_open_orders() == []
    # 1×: margin 6,000 locked, fee paid, nothing else reserved.
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(10_000 - 6_000 - 3), approx(6_000.0))
    # A non-marketable IOC is cancelled untouched.
    missed = await venue.create_order(
        order(BUY, OrderType.LIMIT, 0.1, price=59_000.0, time_in_force=TimeInForce.IOC)
    )
    assert (missed.status, missed.filled) == (VenueOrderStatus.CANCELLED, 0.0)


@pytest.mark.asyncio
async def test_fok_is_all_or_nothing(db: Database) -> None:
    venue, _ = make(db, partial_fill_ratio=0.5)
    await venue.on_price(BTC, 60_000.0, T0)
    killed = await venue.create_order(
        order(BUY, OrderType.LIMIT, 0.1, price=60_000.0, time_in_force=TimeInForce.FOK)
    )
    # Only 50 % could fill at once: nothing fills, the balance is untouched.
    assert (killed.status, killed.filled) == (VenueOrderStatus.CANCELLED, 0.0)
    assert "fill-or-kill" in (killed.reject_reason or "")
    assert (await quote(venue)).free == 10_000.0
    assert await venue.fetch_fills() == []

    whole, _ = make(db, account_id="whole")  # ratio 1.0: the whole amount is available
    await whole.on_price(BTC, 60_000.0, T0)
    filled = await whole.create_order(
        order(BUY, OrderType.LIMIT, 0.1, price=60_000.0, time_in_force=TimeInForce.FOK)
    )
    assert (filled.status, filled.filled) == (VenueOrderStatus.FILLED, 0.1)


# --------------------------------------------------------------------------- stops


@pytest.mark.asyncio
async def test_stop_loss_gap_fills_at_the_open_not_the_level(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(BUY, amount=0.1))  # long 0.1 at 60,000, fee 3, margin 600
    stop = await venue.create_order(
        order(SELL, OrderType.STOP_LOSS, 0.1, stop_price=59_000.0, reduce_only=True)
    )
    await venue.on_price(BTC, 59_500.0, T0 + 1)
    assert (await venue.fetch_order(stop.id, BTC)).status is VenueOrderStatus.OPEN
    # The next price is already 58,000: the stop fills there, 1,000 below its level.
    await venue.on_price(BTC, 58_000.0, T0 + 2)
    done = await venue.fetch_order(stop.id, BTC)
    assert (done.status, done.average) == (VenueOrderStatus.FILLED, 58_000.0)
    # PnL (58,000 − 60,000) × 0.1 = −200; close fee 5,800 × 0.0005 = 2.9.
    # Free: 10,000 − 3 − 200 − 2.9 = 9,794.1, nothing used.
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(9_794.1), 0.0)
    assert await venue.fetch_positions() == []
    fills = await venue.fetch_fills()
    assert fills[-1].price == 58_000.0


@pytest.mark.asyncio
async def test_a_candle_gapping_through_a_stop_fills_at_its_open(db: Database) -> None:
    venue, _ = make(db, slippage_bps=5)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(SELL, amount=0.1))  # short 0.1 at 60,000 × (1 − 5 bps) = 59,970
    stop = await venue.create_order(
        order(BUY, OrderType.STOP_LOSS, 0.1, stop_price=61_000.0, reduce_only=True)
    )
    # The candle opens at 61,500 (past 61,000), then 61,800 high, 61,400 low, closes 61,450.
    await venue.on_candle(BTC, Candle(T0 + 60_000, 61_500.0, 61_800.0, 61_400.0, 61_450.0, 12.0))
    # Fill at the open plus 5 bps against the buyer: 61,500 × 1.0005 = 61,530.75 → tick 61,530.8.
    done = await venue.fetch_order(stop.id, BTC)
    assert done.average == 61_530.8
    fills = await venue.fetch_fills()
    assert [f.price for f in fills] == [59_970.0, 61_530.8]
    # Short PnL (59,970 − 61,530.8) × 0.1 = −156.08; fees 5,997 × 0.0005 = 2.9985 and
    # 6,153.08 × 0.0005 = 3.07654. Total: 10,000 − 2.9985 − 156.08 − 3.07654 = 9,837.84496.
    assert (await quote(venue)).total == approx(9_837.84496)


@pytest.mark.asyncio
async def test_stop_entry_reserves_margin_and_is_refused_if_it_would_trigger_now(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 20)
    await venue.on_price(BTC, 60_000.0, T0)
    with pytest.raises(InvalidOrderError, match="would trigger immediately"):
        await venue.create_order(order(BUY, OrderType.STOP_LOSS, 0.1, stop_price=59_000.0))
    breakout = await venue.create_order(order(BUY, OrderType.STOP_LOSS, 0.1, stop_price=61_000.0))
    # Reserved 0.1 × 61,000 / 20 = 305.
    assert (await quote(venue)).used == approx(305.0)
    await venue.on_price(BTC, 61_200.0, T0 + 1)
    # Fills at 61,200 (first price past 61,000): margin 6,120 / 20 = 306, fee 3.06.
    assert (await venue.fetch_order(breakout.id, BTC)).average == 61_200.0
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(10_000 - 306 - 3.06), approx(306.0))


# --------------------------------------------------------------------------- perpetual PnL


@pytest.mark.asyncio
async def test_leveraged_long_round_trip(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(BUY, amount=0.1))
    # 10× long 0.1 BTC at 60,000: margin 6,000 / 10 = 600; fee 3.
    held = await position(venue, LONG)
    assert held is not None and held.extra["margin"] == approx(600.0)
    await venue.on_price(BTC, 61_200.0, T0 + 1)
    held = await position(venue, LONG)
    assert held is not None and held.unrealized_pnl == approx(120.0)  # (61,200 − 60,000) × 0.1
    await venue.create_order(order(SELL, amount=0.1, reduce_only=True))
    # +120 − 3 (open fee) − 3.06 (close fee 6,120 × 0.0005) = +113.94 → 10,113.94.
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(10_113.94), 0.0)
    assert [f.fee for f in await venue.fetch_fills()] == [approx(3.0), approx(3.06)]


@pytest.mark.asyncio
async def test_leveraged_short_round_trip(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(SELL, amount=0.1))
    held = await position(venue, SHORT)
    assert held is not None and (held.contracts, held.extra["margin"]) == (0.1, approx(600.0))
    await venue.on_price(BTC, 58_800.0, T0 + 1)
    await venue.create_order(order(BUY, amount=0.1, position_side=SHORT))
    # +120 ((60,000 − 58,800) × 0.1) − 3 − 2.94 (5,880 × 0.0005) = +114.06.
    assert (await quote(venue)).total == approx(10_114.06)
    assert await venue.fetch_positions() == []


@pytest.mark.asyncio
async def test_one_way_netting_flips_the_position(db: Database) -> None:
    venue, _ = make(db, position_mode=PositionMode.ONE_WAY)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(BUY, amount=0.1))  # long 0.1 @ 60,000: fee 3, margin 600
    await venue.on_price(BTC, 61_000.0, T0 + 1)
    await venue.create_order(order(SELL, amount=0.3))
    # Close 0.1: +100 PnL, 600 margin back. Open short 0.2 at 61,000: margin 12,200 / 10 = 1,220.
    # Fee on the whole 0.3 × 61,000 = 18,300 × 0.0005 = 9.15.
    # Free: 9,397 + 600 + 100 − 9.15 − 1,220 = 8,867.85; used 1,220; total 10,087.85.
    assert await position(venue, LONG) is None
    short = await position(venue, SHORT)
    assert short is not None
    assert (short.contracts, short.entry_price, short.extra["margin"]) == (0.2, 61_000.0, approx(1_220.0))
    balance = await quote(venue)
    assert (balance.free, balance.used, balance.total) == (
        approx(8_867.85),
        approx(1_220.0),
        approx(10_087.85),
    )
    with pytest.raises(InvalidOrderError, match="only accepted in hedge mode"):
        await venue.create_order(order(BUY, amount=0.1, position_side=SHORT))


@pytest.mark.asyncio
async def test_hedge_mode_keeps_long_and_short_side_by_side(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(BUY, amount=0.1))
    await venue.create_order(order(SELL, amount=0.1))
    # Two positions, 600 margin each, 3 fee each.
    sides = {p.side: p for p in await venue.fetch_positions()}
    assert set(sides) == {LONG, SHORT}
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(10_000 - 1_200 - 6), approx(1_200.0))
    # Closing the long (sell on the long side) leaves the short alone.
    await venue.on_price(BTC, 60_500.0, T0 + 1)
    await venue.create_order(order(SELL, amount=0.1, position_side=LONG))
    assert [p.side for p in await venue.fetch_positions()] == [SHORT]
    # +50 on the long, fee 6,050 × 0.0005 = 3.025; the short's −50 stays unrealised.
    assert (await quote(venue)).total == approx(10_000 - 6 + 50 - 3.025)
    short = await position(venue, SHORT)
    assert short is not None and short.unrealized_pnl == approx(-50.0)


@pytest.mark.asyncio
async def test_reduce_only_never_increases_a_position(db: Database) -> None:
    venue, _ = make(db, position_mode=PositionMode.ONE_WAY)
    await venue.on_price(BTC, 60_000.0, T0)
    with pytest.raises(InvalidOrderError, match="no long position"):
        await venue.create_order(order(SELL, amount=0.1, reduce_only=True))
    await venue.create_order(order(BUY, amount=0.1))
    with pytest.raises(InvalidOrderError, match="no short position"):
        await venue.create_order(order(BUY, amount=0.1, reduce_only=True))
    # Reduce-only sell of 0.3 against a long of 0.1: 0.1 executes, the rest is cancelled, no short.
    result = await venue.create_order(order(SELL, amount=0.3, reduce_only=True))
    assert (result.status, result.filled) == (VenueOrderStatus.CANCELLED, 0.1)
    assert await venue.fetch_positions() == []


@pytest.mark.asyncio
async def test_a_resting_reduce_only_order_goes_with_its_position(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(BUY, amount=0.1))
    take = await venue.create_order(order(SELL, OrderType.LIMIT, 0.1, price=65_000.0, reduce_only=True))
    assert take.reduce_only
    await venue.create_order(order(SELL, amount=0.1, position_side=LONG))  # closed by hand
    cancelled = await venue.fetch_order(take.id, BTC)
    assert cancelled.status is VenueOrderStatus.CANCELLED
    assert "position was closed" in (cancelled.reject_reason or "")


# --------------------------------------------------------------------------- refusals


@pytest.mark.asyncio
async def test_insufficient_funds_leaves_no_trace(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    # 1×: 0.2 × 60,000 = 12,000 margin > 10,000.
    with pytest.raises(InsufficientFundsError, match="12000"):
        await venue.create_order(order(BUY, amount=0.2))
    # Resting: 0.2 × 59,000 = 11,800 to reserve > 10,000.
    with pytest.raises(InsufficientFundsError, match="11800"):
        await venue.create_order(order(BUY, OrderType.LIMIT, 0.2, price=59_000.0))
    assert await venue.fetch_orders() == [] and await venue.fetch_fills() == []
    assert (await quote(venue)).free == 10_000.0
    # Margin plus fee must fit: 0.166 × 60,000 = 9,960 + 4.98 fee ≤ 10,000 is fine.
    await venue.create_order(order(BUY, amount=0.166))
    assert (await quote(venue)).free == approx(10_000 - 9_960 - 4.98)


@pytest.mark.asyncio
async def test_size_step_and_symbol_errors_give_the_numbers(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    with pytest.raises(InvalidOrderError, match=r"amount 0.0005 is below the minimum order size 0.001"):
        await venue.create_order(order(BUY, amount=0.0005))
    with pytest.raises(
        InvalidOrderError, match=r"0.0015 is not a multiple of the lot step 0.001 .*0.001 or 0.002"
    ):
        await venue.create_order(order(BUY, amount=0.0015))
    with pytest.raises(InvalidOrderError, match=r"price 59000.05 is not a multiple of the tick size 0.1"):
        await venue.create_order(order(BUY, OrderType.LIMIT, 0.001, price=59_000.05))
    with pytest.raises(InvalidOrderError, match=r"order value 4 USDT is below the minimum 5"):
        await venue.create_order(order(BUY, OrderType.LIMIT, 0.001, price=4_000.0))
    with pytest.raises(BadSymbolError):
        await venue.create_order(order(BUY, symbol="DOGE/USDT:USDT"))
    with pytest.raises(InvalidOrderError, match="needs a price"):
        await venue.create_order(order(BUY, OrderType.LIMIT, 0.001))
    with pytest.raises(NotSupportedError, match="stop-limit"):
        await venue.create_order(order(SELL, OrderType.STOP_LOSS, 0.001, stop_price=59_000.0, price=58_900.0))
    with pytest.raises(InvalidOrderError, match="between 1 and 100"):
        await venue.set_leverage(BTC, 125)


@pytest.mark.asyncio
async def test_client_order_ids(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    placed = await venue.create_order(order(BUY, OrderType.LIMIT, 0.01, price=59_000.0, cid="entry-1"))
    with pytest.raises(InvalidOrderError, match="'entry-1' is already used by open order"):
        await venue.create_order(order(BUY, OrderType.LIMIT, 0.01, price=58_000.0, cid="entry-1"))
    found = await venue.fetch_order_by_client_id("entry-1", BTC)
    assert found.id == placed.id and found.client_order_id == "entry-1"
    with pytest.raises(OrderNotFoundError):
        await venue.fetch_order_by_client_id("never-sent", BTC)
    with pytest.raises(OrderNotFoundError):
        await venue.fetch_order_by_client_id("entry-1", ETH)  # another symbol
    # A final order still owns its id (the database keeps ids unique per account).
    await venue.cancel_order(placed.id, BTC)
    with pytest.raises(InvalidOrderError, match=r"already used by order .* \(cancelled\)"):
        await venue.create_order(order(BUY, amount=0.01, cid="entry-1"))
    assert (await venue.fetch_order_by_client_id("entry-1", BTC)).status is VenueOrderStatus.CANCELLED


@pytest.mark.asyncio
async def test_cancel_releases_the_reservation(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    placed = await venue.create_order(order(BUY, OrderType.LIMIT, 0.1, price=59_000.0))
    assert (await quote(venue)).used == approx(5_900.0)
    cancelled = await venue.cancel_order(placed.id, BTC)
    assert cancelled.status is VenueOrderStatus.CANCELLED
    assert await quote(venue) == Balance("USDT", 10_000.0, 0.0, 10_000.0)
    with pytest.raises(OrderNotFoundError, match="already cancelled"):
        await venue.cancel_order(placed.id, BTC)
    with pytest.raises(OrderNotFoundError, match="no paper order"):
        await venue.cancel_order("missing", BTC)


# --------------------------------------------------------------------------- attached TP/SL


@pytest.mark.asyncio
async def test_attached_take_profit_and_stop_loss_become_reduce_only_children(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    with pytest.raises(InvalidOrderError, match="take-profit 59000 must be above"):
        await venue.create_order(order(BUY, amount=0.1, take_profit=59_000.0))
    entry = await venue.create_order(
        order(BUY, amount=0.1, cid="e1", take_profit=62_000.0, stop_loss=59_000.0)
    )
    assert entry.status is VenueOrderStatus.FILLED
    children = {o.client_order_id: o for o in await venue.fetch_open_orders(BTC)}
    assert set(children) == {"e1:tp", "e1:sl"}
    tp, sl = children["e1:tp"], children["e1:sl"]
    assert (tp.type, tp.side, tp.amount, tp.reduce_only) == (OrderType.TAKE_PROFIT, SELL, 0.1, True)
    assert (sl.type, sl.side, sl.amount, sl.reduce_only) == (OrderType.STOP_LOSS, SELL, 0.1, True)
    await venue.on_price(BTC, 61_000.0, T0 + 1)
    assert len(await venue.fetch_open_orders()) == 2
    await venue.on_price(BTC, 62_050.0, T0 + 2)
    # Take-profit at the first price past 62,000: 62,050. PnL +205; fee 6,205 × 0.0005 = 3.1025.
    # The stop-loss is cancelled with it. Free: 10,000 − 3 + 205 − 3.1025 = 10,198.8975.
    assert (await venue.fetch_order(tp.id, BTC)).average == 62_050.0
    assert (await venue.fetch_order(sl.id, BTC)).status is VenueOrderStatus.CANCELLED
    assert await venue.fetch_open_orders() == [] and await venue.fetch_positions() == []
    assert await quote(venue) == Balance("USDT", approx(10_198.8975), 0.0, approx(10_198.8975))


@pytest.mark.asyncio
async def test_children_follow_a_partially_filled_entry(db: Database) -> None:
    venue, _ = make(db, partial_fill_ratio=0.5)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(
        order(BUY, OrderType.LIMIT, 0.1, price=59_000.0, cid="e2", take_profit=61_000.0, stop_loss=58_000.0)
    )
    assert len(await venue.fetch_open_orders()) == 1  # no children before a fill
    await venue.on_price(BTC, 58_900.0, T0 + 1)  # 0.05 fills
    sizes = sorted((o.client_order_id, o.amount) for o in await venue.fetch_open_orders() if o.reduce_only)
    assert sizes == [("e2:sl", 0.05), ("e2:tp", 0.05)]
    await venue.on_price(BTC, 58_900.0, T0 + 2)  # the other 0.05
    sizes = sorted((o.client_order_id, o.amount) for o in await venue.fetch_open_orders())
    assert sizes == [("e2:sl", 0.1), ("e2:tp", 0.1)]
    # Stop-loss at the first price at or below 58,000; the take-profit goes with it.
    await venue.on_price(BTC, 57_950.0, T0 + 3)
    assert await venue.fetch_open_orders() == [] and await venue.fetch_positions() == []


# --------------------------------------------------------------------------- account settings


@pytest.mark.asyncio
async def test_changing_leverage_remargins_open_positions(db: Database) -> None:
    venue, _ = make(db)
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.create_order(order(BUY, amount=0.5))
    # 10× long 0.5 at 60,000: notional 30,000, margin 3,000, fee 15 → free 6,985.
    # 10× → 5×: margin 30,000 / 5 = 6,000, the extra 3,000 comes from free → 3,985.
    await venue.set_leverage(BTC, 5)
    held = await position(venue, LONG)
    assert held is not None and (held.leverage, held.extra["margin"]) == (5, approx(6_000.0))
    balance = await quote(venue)
    assert (balance.free, balance.used) == (approx(3_985.0), approx(6_000.0))
    # 2× would need 15,000, i.e. 9,000 more than held, with 3,985 free: refused, nothing changes.
    with pytest.raises(InsufficientFundsError, match="needs 9000 USDT more margin"):
        await venue.set_leverage(BTC, 2)
    held = await position(venue, LONG)
    assert held is not None and held.leverage == 5
    assert (await quote(venue)).free == approx(3_985.0)


@pytest.mark.asyncio
async def test_position_and_margin_mode_changes_are_refused_with_open_positions(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.set_margin_mode(BTC, MarginMode.ISOLATED)
    await venue.set_position_mode(hedged=False)
    await venue.create_order(order(BUY, amount=0.01))
    held = await position(venue, LONG)
    assert held is not None and held.margin_mode is MarginMode.ISOLATED
    with pytest.raises(InvalidOrderError, match="close them first"):
        await venue.set_position_mode(hedged=True)
    with pytest.raises(InvalidOrderError, match="close them first"):
        await venue.set_margin_mode(BTC, MarginMode.CROSS)
    await venue.set_position_mode(hedged=False)  # no change: allowed
    await venue.create_order(order(SELL, amount=0.01, reduce_only=True))
    await venue.set_position_mode(hedged=True)
    assert (await venue.load()).position_mode is PositionMode.HEDGE


# --------------------------------------------------------------------------- streams


@pytest.mark.asyncio
async def test_watch_orders_and_watch_ticker_feed(db: Database) -> None:
    venue, prices = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    watcher = asyncio.create_task(venue.watch_orders(BTC))
    await asyncio.sleep(0)
    placed = await venue.create_order(order(BUY, OrderType.LIMIT, 0.01, price=59_000.0))
    updates = await asyncio.wait_for(watcher, 5)
    assert [(u.id, u.status) for u in updates] == [(placed.id, VenueOrderStatus.OPEN)]
    # watch_ticker matches before returning: the limit is filled by the streamed price.
    prices.stream.put_nowait(Ticker(BTC, T0 + 5, 58_000.0))
    ticker = await venue.watch_ticker(BTC)
    assert ticker.last == 58_000.0
    assert (await venue.fetch_order(placed.id, BTC)).status is VenueOrderStatus.FILLED
    updates = await asyncio.wait_for(venue.watch_orders(BTC), 5)
    assert [(u.id, u.status) for u in updates] == [(placed.id, VenueOrderStatus.FILLED)]
    # Another symbol's updates do not reach a BTC watcher.
    await venue.on_price(ETH, 2_000.0, T0)
    await venue.create_order(order(BUY, amount=0.01, symbol=ETH))
    waiting = asyncio.create_task(venue.watch_orders(BTC))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await venue.close()
    with pytest.raises(Exception, match="closed"):
        await waiting


@pytest.mark.asyncio
async def test_invalid_prices_are_ignored(db: Database) -> None:
    venue, _ = make(db)
    await venue.on_price(BTC, 60_000.0, T0)
    stop_order = await venue.create_order(order(BUY, OrderType.STOP_LOSS, 0.01, stop_price=61_000.0))
    for bad in (float("nan"), float("inf"), 0.0, -5.0):
        await venue.on_price(BTC, bad, T0 + 1)
    assert (await venue.fetch_order(stop_order.id, BTC)).status is VenueOrderStatus.OPEN
    assert venue.last_price(BTC) == 60_000.0


# --------------------------------------------------------------------------- restart


async def _state(venue: PaperExchange) -> tuple[Any, ...]:
    return (
        await venue.fetch_balance(),
        await venue.fetch_open_orders(),
        [
            dataclasses.replace(p, mark_price=None, unrealized_pnl=None, notional=None)
            for p in await venue.fetch_positions()
        ],
        await venue.fetch_fills(),
        await venue.fetch_orders(),
        await venue.load(),
    )


@pytest.mark.asyncio
async def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "restart" / "cts.db")
    database = await Database.open(path)
    prices = Prices({BTC: 60_000.0, ETH: 2_000.0})
    venue = PaperExchange(
        prices,
        PaperRepository(database),
        account_id="keep",
        create_if_missing=AccountSettings(starting_balance=10_000, slippage_bps=2, partial_fill_ratio=0.5),
        clock=Clock(),
    )
    await venue.set_leverage(BTC, 10)
    await venue.on_price(BTC, 60_000.0, T0)
    await venue.on_price(ETH, 2_000.0, T0)
    await venue.create_order(order(BUY, amount=0.1, cid="long", stop_loss=58_000.0))
    resting = await venue.create_order(order(SELL, OrderType.LIMIT, 0.2, price=61_000.0, cid="short"))
    await venue.on_price(BTC, 61_000.5, T0 + 1)  # half of the short fills
    await venue.create_order(order(BUY, amount=0.25, symbol=ETH))
    await venue.create_order(order(BUY, OrderType.LIMIT, 0.1, ETH, price=1_900.0, cid="dip"))
    before = await _state(venue)
    await venue.close()
    await database.close()

    reopened = await Database.open(path)
    try:
        again = PaperExchange(
            Prices({BTC: 61_000.0, ETH: 2_000.0}), PaperRepository(reopened), account_id="keep"
        )
        after = await _state(again)
        assert after == before
        _, open_orders, positions, fills = after[:4]
        assert {o.client_order_id for o in open_orders} == {"long:sl", "short", "dip"}
        assert {(p.side, p.contracts) for p in positions} == {(LONG, 0.1), (SHORT, 0.1)}
        assert len(fills) == 3
        assert (await again.fetch_order(resting.id, BTC)).filled == 0.1
        # ...and it keeps trading from there: the rest of the short fills, then the stop.
        await again.on_price(BTC, 61_100.0, T0 + 2)
        assert (await again.fetch_order(resting.id, BTC)).status is VenueOrderStatus.FILLED
        await again.on_price(BTC, 57_000.0, T0 + 3)
        assert {p.side for p in await again.fetch_positions()} == {SHORT}
    finally:
        await reopened.close()


@pytest.mark.asyncio
async def test_invariant_used_equals_margins_plus_reservations(db: Database) -> None:
    """After a mixed session the quote's ``used`` is exactly the positions' margin plus what
    open orders reserve, and equity is the start plus realised PnL minus fees."""
    venue, _ = make(db, partial_fill_ratio=0.5, slippage_bps=3, position_mode=PositionMode.ONE_WAY)
    await venue.set_leverage(BTC, 20)
    script: list[tuple[str, Any]] = [
        ("price", 60_000.0),
        ("order", order(BUY, amount=0.05)),
        ("order", order(SELL, OrderType.LIMIT, 0.2, price=60_500.0)),
        ("order", order(BUY, OrderType.LIMIT, 0.1, price=59_500.0)),
        ("price", 60_600.0),
        ("price", 59_400.0),
        ("price", 60_700.0),
        ("order", order(BUY, amount=0.07)),
        ("price", 59_300.0),
    ]
    for kind, value in script:
        if kind == "price":
            await venue.on_price(BTC, value, T0)
        else:
            await venue.create_order(value)
    repository = PaperRepository(db)
    state = await repository.load_account("acc")
    assert state is not None
    margins = sum(p.margin for p in state.positions)
    reserved = sum(o.reserved for o in state.open_orders)
    assert state.balances["USDT"].used == approx(margins + reserved)
    fills = await repository.list_fills("acc")
    fees = sum(f.fee for f in fills)
    realised = sum(f.realized_pnl for f in fills)
    assert state.balances["USDT"].total == approx(10_000 + realised - fees)


# --------------------------------------------------------------------------- random sessions

_STEP = st.sampled_from([-300.0, -120.0, -40.0, -0.1, 0.0, 0.1, 40.0, 120.0, 300.0])
_ACTION = st.one_of(
    st.tuples(st.just("price"), _STEP, st.none() | st.sampled_from([0.05, 0.5, 3.0])),
    st.tuples(
        st.just("market"),
        st.sampled_from(OrderSide),
        st.integers(min_value=1, max_value=300).map(lambda n: n / 1000),
        st.booleans(),
    ),
    st.tuples(
        st.just("limit"),
        st.sampled_from(OrderSide),
        st.integers(min_value=1, max_value=300).map(lambda n: n / 1000),
        st.sampled_from([-200.0, -50.0, 50.0, 200.0]),
        st.sampled_from(TimeInForce),
    ),
    st.tuples(
        st.just("stop"),
        st.sampled_from(OrderSide),
        st.integers(min_value=1, max_value=300).map(lambda n: n / 1000),
        st.sampled_from([150.0, 400.0]),
        st.booleans(),
    ),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=5)),
)


async def _check_invariants(venue: PaperExchange, repository: PaperRepository, account_id: str) -> None:
    state = await repository.load_account(account_id)
    assert state is not None
    usdt = state.balances["USDT"]
    margins = sum(p.margin for p in state.positions)
    reserved = sum(o.reserved for o in state.open_orders)
    assert usdt.used == pytest.approx(margins + reserved, abs=1e-6)
    assert usdt.free > -1e-6
    assert all(p.contracts > 0 for p in state.positions)
    assert all(o.filled <= o.amount + 1e-12 for o in state.open_orders)
    fills = await repository.list_fills(account_id)
    realised = sum(f.realized_pnl for f in fills)
    fees = sum(f.fee for f in fills)
    assert usdt.total == pytest.approx(10_000 + realised - fees, abs=1e-6)
    # What the venue serves is what is stored.
    assert {(p.symbol, p.side, p.contracts) for p in await venue.fetch_positions()} == {
        (p.symbol, p.side, p.contracts) for p in state.positions
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    actions=st.lists(_ACTION, min_size=1, max_size=14),
    mode=st.sampled_from(PositionMode),
    ratio=st.sampled_from([0.5, 1.0]),
)
def test_random_sessions_keep_the_books_balanced(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[Any, ...]], mode: PositionMode, ratio: float
) -> None:
    """Whatever happens, used = margins + reservations, equity = start + realised − fees, and
    a restart serves the same state."""

    async def session(path: Path) -> None:
        database = await Database.open(str(path))
        try:
            repository = PaperRepository(database)
            venue, _ = make(
                database, position_mode=mode, partial_fill_ratio=ratio, slippage_bps=3, volume_share=0.5
            )
            await venue.set_leverage(BTC, 20)
            price = 60_000.0
            await venue.on_price(BTC, price, T0)
            for action in actions:
                kind = action[0]
                try:
                    if kind == "price":
                        price = max(1_000.0, round(price + action[1], 1))
                        await venue.on_price(BTC, price, T0, volume=action[2])
                    elif kind == "market":
                        await venue.create_order(order(action[1], amount=action[2], reduce_only=action[3]))
                    elif kind == "limit":
                        side, amount, offset, tif = action[1:]
                        limit = round(price + (offset if side is SELL else -offset), 1)
                        await venue.create_order(
                            order(side, OrderType.LIMIT, amount, price=limit, time_in_force=tif)
                        )
                    elif kind == "stop":
                        side, amount, distance, reduce = action[1:]
                        trigger = round(price - distance if side is SELL else price + distance, 1)
                        await venue.create_order(
                            order(side, OrderType.STOP_LOSS, amount, stop_price=trigger, reduce_only=reduce)
                        )
                    else:
                        open_orders = await venue.fetch_open_orders()
                        if open_orders:
                            target = open_orders[action[1] % len(open_orders)]
                            await venue.cancel_order(target.id, BTC)
                except (InsufficientFundsError, InvalidOrderError):
                    pass
                await _check_invariants(venue, repository, "acc")
            before = await _state(venue)
            again = PaperExchange(venue.data_venue, PaperRepository(database), account_id="acc")
            after = await _state(again)
            assert after == before
        finally:
            await database.close()

    asyncio.run(session(tmp_path_factory.mktemp("session") / "paper.db"))
