"""Shared plumbing of the offline market-data venues (replay and simulated).

Both serve only the market-data half of the ``Exchange`` protocol; trading is added by the paper
venue, which wraps a data venue. Keeping the common parts here (symbol lookup, timeframe
arithmetic, candle aggregation, the NotSupported trading methods) means both venues answer
identically where they should: the same error for an unknown symbol, the same bucket alignment
for a 4h or 1w candle, the same ccxt ``since``/``limit`` semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.market import (
    Balance,
    Candle,
    MarginMode,
    MarketInfo,
    OrderRequest,
    OrderSnapshot,
    PositionSnapshot,
    Ticker,
)
from cts_desktop.exchanges.candle_files import TIMEFRAME_MS, CandleArrays
from cts_desktop.exchanges.errors import BadSymbolError, ExchangeDownError, NotSupportedError

__all__ = [
    "DAY_MS",
    "DEFAULT_MAKER_FEE",
    "DEFAULT_OHLCV_LIMIT",
    "DEFAULT_TAKER_FEE",
    "MarketDataVenue",
    "aggregate_candles",
    "bucket_start",
    "infer_step",
    "select_candles",
    "split_symbol",
    "timeframe_ms",
]

DAY_MS = 86_400_000
DEFAULT_MAKER_FEE = 0.0002  # 0.02 %
DEFAULT_TAKER_FEE = 0.00055  # 0.055 %
DEFAULT_OHLCV_LIMIT = 500
"""Candles returned when the caller gives no ``limit`` (Binance's default, too)."""
_WEEK_OFFSET_MS = 4 * DAY_MS
"""1970-01-01 was a Thursday; exchanges start weekly candles on Monday (1970-01-05)."""


def timeframe_ms(venue: str, timeframe: str) -> int:
    """Milliseconds of a ccxt timeframe name; NotSupportedError names the ones we know."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise NotSupportedError(
            venue, f"timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}"
        ) from None


def bucket_start(t_ms: int | npt.NDArray[np.int64], tf_ms: int) -> npt.NDArray[np.int64]:
    """Open time of the ``tf_ms`` candle containing ``t_ms`` (weeks start on Monday, UTC)."""
    offset = _WEEK_OFFSET_MS if tf_ms == TIMEFRAME_MS["1w"] else 0
    t = np.asarray(t_ms, dtype=np.int64)
    return np.asarray((t - offset) // tf_ms * tf_ms + offset, dtype=np.int64)


def aggregate_candles(candles: CandleArrays, tf_ms: int) -> CandleArrays:
    """Combine oldest-first candles into ``tf_ms`` buckets (vectorised, gaps simply absent).

    A bucket's open is its first bar's open, close its last bar's close, high/low the extremes
    and volume the sum: the same rule exchanges use, so a 4h candle built here equals the venue's.
    """
    if len(candles) == 0:
        return candles
    buckets = bucket_start(candles.ts_ms, tf_ms)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(buckets)) + 1)).astype(np.intp)
    ends = np.concatenate((starts[1:], [len(candles)])).astype(np.intp)
    return CandleArrays(
        ts_ms=buckets[starts],
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends - 1],
        volume=np.add.reduceat(candles.volume, starts),
    )


def select_candles(candles: CandleArrays, since_ms: int | None, limit: int | None) -> list[Candle]:
    """ccxt semantics: with ``since``, the first ``limit`` candles opening at or after it;
    without, the most recent ``limit``."""
    limit = DEFAULT_OHLCV_LIMIT if limit is None else max(0, limit)
    if since_ms is not None:
        first = int(np.searchsorted(candles.ts_ms, since_ms, side="left"))
        return candles.slice(first, first + limit).to_candles()
    return candles.slice(max(0, len(candles) - limit), None).to_candles()


def infer_step(values: npt.NDArray[np.float64], max_decimals: int = 10) -> float:
    """The coarsest decimal step all ``values`` sit on (37388.05 → 0.01): a synthetic tick size
    for data that came without market rules. Checks a sample, so it costs microseconds."""
    sample = values[np.isfinite(values)][:5000]
    for decimals in range(max_decimals + 1):
        scaled = sample * 10.0**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled)) + 1e-9):
            return float(10.0**-decimals)
    return float(10.0**-max_decimals)


class MarketDataVenue:
    """Base of the offline venues: markets, symbol checks and the trading half refused.

    Subclasses implement ``fetch_server_time``, ``fetch_ticker``, ``fetch_ohlcv``, ``watch_ticker``
    and ``watch_ohlcv``. The trading methods raise ``NotSupportedError`` with a message that says
    what to do instead (trade through the paper venue), so a mis-wired engine fails loudly rather
    than pretending to trade on a data feed.
    """

    def __init__(self, name: str, markets: Mapping[str, MarketInfo]) -> None:
        self._name = name
        self._markets = dict(markets)
        self._closed = False

    # ----------------------------------------------------------------- market data (shared)

    @property
    def name(self) -> str:
        return self._name

    @property
    def supports_streaming(self) -> bool:
        return True

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        self._check_open()
        return dict(self._markets)

    def market(self, symbol: str) -> MarketInfo:
        try:
            return self._markets[symbol]
        except KeyError:
            known = ", ".join(sorted(self._markets)) or "none"
            raise BadSymbolError(
                self._name, f"{symbol!r} is not offered by the {self._name} venue (symbols: {known})"
            ) from None

    async def fetch_server_time(self) -> int:
        raise NotImplementedError

    async def fetch_ticker(self, symbol: str) -> Ticker:
        raise NotImplementedError

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, Ticker]:
        wanted = self.symbols if symbols is None else symbols
        return {symbol: await self.fetch_ticker(symbol) for symbol in wanted}

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        raise NotImplementedError

    async def watch_ticker(self, symbol: str) -> Ticker:
        raise NotImplementedError

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        raise NotImplementedError

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ExchangeDownError(self._name, f"the {self._name} venue has been closed")

    # ----------------------------------------------------------------- trading (refused)

    def _no_trading(self, what: str) -> NoReturn:
        raise NotSupportedError(
            self._name,
            f"the {self._name} venue only provides market data and cannot {what}; "
            "trade on it through the paper venue, which adds simulated orders and balances",
        )

    async def watch_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        self._no_trading("stream orders")

    async def fetch_balance(self) -> dict[str, Balance]:
        self._no_trading("report balances")

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[PositionSnapshot]:
        self._no_trading("report positions")

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        self._no_trading("list open orders")

    async def create_order(self, request: OrderRequest) -> OrderSnapshot:
        self._no_trading("place orders")

    async def cancel_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        self._no_trading("cancel orders")

    async def fetch_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        self._no_trading("look up orders")

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> OrderSnapshot:
        self._no_trading("look up orders")

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        self._no_trading("set leverage")

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        self._no_trading("set the margin mode")

    async def set_position_mode(self, hedged: bool) -> None:
        self._no_trading("set the position mode")


def split_symbol(symbol: str) -> tuple[str, str, str | None]:
    """``BTC/USDT`` → (BTC, USDT, None); ``BTC/USDT:USDT`` → (BTC, USDT, USDT)."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    return base, quote or "USDT", settle or None
