"""Which symbols a connection trades (DOMAIN §4.1 "Symbol selection", §6 Overall/Main, D21).

A pure function of the venue's market list, its tickers and the settings, so it is tested without a
venue and re-run on every symbol refresh (hourly by default) with no hidden state:

1. the forced symbols (always traded),
2. then either the main symbols (``use_main_symbols``) or the top ``count`` symbols by the chosen
   order,
3. duplicates removed (first occurrence wins), each base asset turned into the venue's symbol with
   the quote asset (BTC → ``BTC/USDT`` on spot, ``BTC/USDT:USDT`` for USDT-margined perpetuals),
4. only active markets that the venue lists; every requested symbol that is dropped comes back with
   the reason, so the UI can say "BCH: not listed on bingx" instead of silently trading fewer.

``count`` applies to the ranked part only, as in the original (forced symbols are added on top;
a forced symbol that also ranks in the top ``count`` is kept once, so the total can be smaller).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cts_desktop.domain.market import MarketInfo, MarketType, Ticker

__all__ = [
    "DropReason",
    "DroppedSymbol",
    "SymbolMetrics",
    "SymbolOrder",
    "SymbolSelection",
    "abs_change_pct",
    "normalize_base",
    "select_symbols",
]


class SymbolOrder(StrEnum):
    """Values of the ``main.symbol_order`` setting."""

    VOLUME_24H = "volume_24h"
    MARKET_CAP = "market_cap"
    PRICE_CHANGE_24H = "price_change_24h"
    VOLATILITY = "volatility"
    TRADES_24H = "trades_24h"
    ALPHABETICAL = "alphabetical"


class DropReason(StrEnum):
    NOT_LISTED = "not_listed"  # the venue has no market for this base and quote (of the chosen type)
    INACTIVE = "inactive"  # listed but not trading (delisted, suspended, pre-launch)


@dataclass(frozen=True, slots=True)
class SymbolMetrics:
    """Ranking inputs a ticker does not carry; every field is optional.

    ``change_pct_period`` is the price change in percent over the volatility period (the product
    fixes it at 1 hour, ``main.volatility_period_min``), computed by the caller from that hour's
    bars (``abs_change_pct`` helps); the sign does not matter, volatility ranks by its magnitude.
    ``market_cap`` comes from an external source when one is configured; venues do not report it.
    """

    market_cap: float | None = None
    trades_24h: int | None = None
    change_pct_period: float | None = None


@dataclass(frozen=True, slots=True)
class DroppedSymbol:
    requested: str  # as the user wrote it in the settings
    symbol: str  # the venue symbol it resolved to (e.g. BCH/USDT:USDT)
    reason: DropReason
    message: str  # a sentence for the UI and the log


@dataclass(frozen=True, slots=True)
class SymbolSelection:
    symbols: tuple[str, ...]
    dropped: tuple[DroppedSymbol, ...]
    market_type: MarketType  # SPOT or SWAP: the family all chosen symbols belong to


def normalize_base(requested: str, quote_asset: str) -> str:
    """The base asset of a user-typed symbol: ``btc``, ``BTC/USDT``, ``BTC/USDT:USDT`` and ``BTCUSDT``
    all mean BTC (settings hold bases, but users paste venue symbols too)."""
    text = requested.strip().upper()
    if "/" in text:
        return text.split("/", 1)[0].strip()
    quote = quote_asset.upper()
    if text.endswith(quote) and len(text) > len(quote):
        return text[: -len(quote)]
    return text


def abs_change_pct(first_price: float, last_price: float) -> float | None:
    """Absolute price change in percent between two prices (volatility over a period)."""
    if not (first_price > 0 and math.isfinite(first_price) and math.isfinite(last_price)):
        return None
    return abs(last_price - first_price) / first_price * 100.0


def select_symbols(
    markets: Iterable[MarketInfo],
    tickers: Mapping[str, Ticker],
    *,
    order: SymbolOrder | str,
    count: int,
    quote_asset: str,
    use_main_symbols: bool,
    main_symbols: Sequence[str],
    forced_symbols: Sequence[str],
    metrics: Mapping[str, SymbolMetrics] | None = None,
    market_type: MarketType | None = None,
) -> SymbolSelection:
    """Pick the symbols to trade (DOMAIN §4.1); see the module docstring for the rules.

    ``markets`` is the venue's market list, ``tickers`` and ``metrics`` are keyed by venue symbol.
    ``market_type`` chooses spot or perpetual (SWAP) markets; None takes USDT-margined perpetuals
    (``BTC/USDT:USDT``) when the market list contains any for the quote asset, else spot, because
    the engine trades with leverage where the venue allows it. Dated futures and inverse
    contracts are never chosen.

    Ranking (descending unless said otherwise; ties by 24 h quote volume, then symbol):

    - ``volume_24h``: 24 h volume in the quote asset (base volume × last price when the venue
      reports only base volume).
    - ``market_cap``: venues do not report market capitalisation, so unless ``metrics`` carries
      one, the 24 h quote volume stands in as a proxy. Symbols with a known cap rank first (by
      cap), then the rest by the proxy: the two scales are never compared with each other.
    - ``price_change_24h``: signed 24 h change, biggest gain first.
    - ``volatility``: absolute change over the volatility period (1 h) from
      ``metrics[...].change_pct_period``; symbols without it rank after those with it.
    - ``trades_24h``: number of trades in 24 h from ``metrics``; unknown ranks last.
    - ``alphabetical``: by base asset, A → Z.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    order = SymbolOrder(order)
    quote = quote_asset.strip().upper()
    metrics = metrics or {}
    market_list = list(markets)
    family = market_type if market_type is not None else _default_family(market_list, quote)
    # base → market of the chosen family for this quote asset (listed ones, active or not)
    by_base: dict[str, MarketInfo] = {}
    for market in market_list:
        if _in_family(market, family, quote):
            known = by_base.get(market.base.upper())
            if known is None or (market.active and not known.active):
                by_base[market.base.upper()] = market

    chosen: dict[str, None] = {}  # ordered set of venue symbols
    dropped: dict[str, DroppedSymbol] = {}

    def take_requested(requested: str, kind: str) -> None:
        base = normalize_base(requested, quote)
        if not base:
            return
        market = by_base.get(base)
        symbol = market.symbol if market is not None else _symbol_for(base, quote, family)
        if symbol in chosen or symbol in dropped:
            return
        if market is None:
            venue_kind = "perpetual" if family is MarketType.SWAP else family.value
            dropped[symbol] = DroppedSymbol(
                requested,
                symbol,
                DropReason.NOT_LISTED,
                f"{kind} symbol {requested!r}: the exchange lists no {venue_kind} market {symbol}",
            )
        elif not market.active:
            dropped[symbol] = DroppedSymbol(
                requested,
                symbol,
                DropReason.INACTIVE,
                f"{kind} symbol {requested!r}: {symbol} is not trading on the exchange (inactive)",
            )
        else:
            chosen[symbol] = None

    for requested in forced_symbols:
        take_requested(requested, "forced")
    if use_main_symbols:
        for requested in main_symbols:
            take_requested(requested, "main")
    else:
        candidates = [m for m in by_base.values() if m.active]
        ranked = sorted(candidates, key=lambda m: _rank_key(m, order, tickers.get(m.symbol), metrics))
        for market in ranked[:count]:
            chosen.setdefault(market.symbol, None)

    return SymbolSelection(tuple(chosen), tuple(dropped.values()), family)


def _default_family(markets: Sequence[MarketInfo], quote: str) -> MarketType:
    if any(_in_family(m, MarketType.SWAP, quote) for m in markets):
        return MarketType.SWAP
    return MarketType.SPOT


def _in_family(market: MarketInfo, family: MarketType, quote: str) -> bool:
    if market.type is not family or market.quote.upper() != quote:
        return False
    # Perpetuals: only linear (quote-margined) ones, settled in the quote asset.
    return family is not MarketType.SWAP or market.linear


def _symbol_for(base: str, quote: str, family: MarketType) -> str:
    """The ccxt unified symbol a market would have; only used to name a missing one."""
    return f"{base}/{quote}:{quote}" if family is MarketType.SWAP else f"{base}/{quote}"


def _quote_volume(ticker: Ticker | None) -> float | None:
    if ticker is None:
        return None
    if ticker.quote_volume_24h is not None:
        return ticker.quote_volume_24h
    if ticker.base_volume_24h is not None:
        return ticker.base_volume_24h * ticker.last
    return None


def _desc(value: float | None) -> tuple[int, float]:
    """Sort key part: known values first, larger first; unknown (None, NaN) last."""
    if value is None or math.isnan(value):
        return (1, 0.0)
    return (0, -value)


def _rank_key(
    market: MarketInfo, order: SymbolOrder, ticker: Ticker | None, metrics: Mapping[str, SymbolMetrics]
) -> tuple[object, ...]:
    extra = metrics.get(market.symbol)
    volume = _quote_volume(ticker)
    tiebreak = (_desc(volume), market.symbol)
    if order is SymbolOrder.ALPHABETICAL:
        return (market.base.upper(), market.symbol)
    if order is SymbolOrder.VOLUME_24H:
        return (_desc(volume), market.symbol)
    if order is SymbolOrder.MARKET_CAP:
        cap = extra.market_cap if extra is not None else None
        if cap is not None and not math.isnan(cap):
            return (0, -cap, *tiebreak)
        return (1, *_desc(volume), market.symbol)
    if order is SymbolOrder.PRICE_CHANGE_24H:
        change = ticker.change_pct_24h if ticker is not None else None
        return (_desc(change), *tiebreak)
    if order is SymbolOrder.VOLATILITY:
        period = extra.change_pct_period if extra is not None else None
        return (_desc(None if period is None else abs(period)), *tiebreak)
    trades = extra.trades_24h if extra is not None else None
    return (_desc(None if trades is None else float(trades)), *tiebreak)
