"""Symbol selection (DOMAIN §4.1, §6 Overall/Main, D21) as a pure function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pytest

from cts_desktop.domain.market import MarketInfo, MarketType, Ticker
from cts_desktop.engine.symbol_universe import (
    DropReason,
    SymbolMetrics,
    SymbolOrder,
    SymbolSelection,
    abs_change_pct,
    normalize_base,
    select_symbols,
)

D21_MAIN = ("BTC", "ETH", "BNB", "XRP", "ADA", "SOL")
D21_FORCED = ("XRP", "BCH")

# base → (24 h quote volume, 24 h change %)
VENUE = {
    "BTC": (9_000.0, 1.0),
    "ETH": (8_000.0, -3.0),
    "SOL": (7_000.0, 6.0),
    "XRP": (6_000.0, 2.0),
    "DOGE": (5_000.0, -8.0),
    "BNB": (4_000.0, 0.5),
    "ADA": (3_000.0, 4.0),
    "BCH": (2_000.0, -1.0),
    "LINK": (1_000.0, 3.0),
    "AVAX": (900.0, 0.0),
    "DOT": (800.0, 9.0),
}


def spot(base: str, quote: str = "USDT", *, active: bool = True) -> MarketInfo:
    return MarketInfo(f"{base}/{quote}", base, quote, MarketType.SPOT, active=active)


def swap(base: str, quote: str = "USDT", *, active: bool = True, linear: bool = True) -> MarketInfo:
    settle = quote if linear else base
    return MarketInfo(f"{base}/{quote}:{settle}", base, quote, MarketType.SWAP, linear=linear, active=active)


def tickers_for(markets: Iterable[MarketInfo], table: Mapping[str, tuple[float, float]]) -> dict[str, Ticker]:
    result = {}
    for m in markets:
        if m.base in table:
            volume, change = table[m.base]
            result[m.symbol] = Ticker(m.symbol, 0, 1.0, quote_volume_24h=volume, change_pct_24h=change)
    return result


def select(
    markets: Sequence[MarketInfo],
    *,
    order: SymbolOrder | str = SymbolOrder.VOLUME_24H,
    count: int = 8,
    quote: str = "USDT",
    use_main: bool = False,
    main: Sequence[str] = D21_MAIN,
    forced: Sequence[str] = D21_FORCED,
    tickers: Mapping[str, Ticker] | None = None,
    metrics: Mapping[str, SymbolMetrics] | None = None,
    market_type: MarketType | None = None,
) -> SymbolSelection:
    return select_symbols(
        markets,
        tickers if tickers is not None else tickers_for(markets, VENUE),
        order=order,
        count=count,
        quote_asset=quote,
        use_main_symbols=use_main,
        main_symbols=main,
        forced_symbols=forced,
        metrics=metrics,
        market_type=market_type,
    )


SPOT_VENUE = [spot(b) for b in VENUE]
SWAP_VENUE = [swap(b) for b in VENUE]


def bases(selection: SymbolSelection) -> list[str]:
    return [s.split("/")[0] for s in selection.symbols]


# ---------------------------------------------------------------- the §4.1 recipe


def test_forced_first_then_top_n_by_volume_deduplicated() -> None:
    result = select(SPOT_VENUE, count=4)
    # forced XRP, BCH; top 4 by volume: BTC, ETH, SOL, XRP (XRP already forced → kept once)
    assert result.symbols == ("XRP/USDT", "BCH/USDT", "BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert result.dropped == ()
    assert result.market_type is MarketType.SPOT


def test_d21_defaults_pick_forced_plus_eight() -> None:
    result = select(SPOT_VENUE)
    assert bases(result) == ["XRP", "BCH", "BTC", "ETH", "SOL", "DOGE", "BNB", "ADA"]


def test_main_symbols_replace_the_ranking() -> None:
    result = select(SPOT_VENUE, use_main=True, count=2)
    assert bases(result) == ["XRP", "BCH", "BTC", "ETH", "BNB", "ADA", "SOL"]  # count ignored


def test_count_zero_leaves_only_forced_symbols() -> None:
    assert bases(select(SPOT_VENUE, count=0)) == ["XRP", "BCH"]
    assert select(SPOT_VENUE, count=0, forced=()).symbols == ()


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        select(SPOT_VENUE, count=-1)


# ---------------------------------------------------------------- quote asset and market family


def test_perpetuals_get_the_settle_suffix_when_the_venue_lists_them() -> None:
    markets = SPOT_VENUE + SWAP_VENUE
    result = select(markets, count=2)
    assert result.market_type is MarketType.SWAP
    assert result.symbols == ("XRP/USDT:USDT", "BCH/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT:USDT")


def test_spot_can_be_chosen_explicitly_on_a_unified_venue() -> None:
    result = select(SPOT_VENUE + SWAP_VENUE, count=1, market_type=MarketType.SPOT)
    assert result.symbols == ("XRP/USDT", "BCH/USDT", "BTC/USDT")


def test_quote_asset_is_appended() -> None:
    markets = [spot("BTC", "USDC"), spot("ETH", "USDC"), spot("XRP", "USDC"), spot("BTC")]
    tickers = {
        "BTC/USDC": Ticker("BTC/USDC", 0, 1, quote_volume_24h=5),
        "ETH/USDC": Ticker("ETH/USDC", 0, 1, quote_volume_24h=9),
    }
    result = select(markets, quote="usdc", count=1, forced=("XRP",), tickers=tickers)
    assert result.symbols == ("XRP/USDC", "ETH/USDC")


def test_inverse_swaps_and_dated_futures_are_never_chosen() -> None:
    markets = [
        swap("BTC"),
        swap("ETH", quote="USD", linear=False),
        MarketInfo("SOL/USDT:USDT-251226", "SOL", "USDT", MarketType.FUTURE),
    ]
    result = select(markets, count=5, forced=(), tickers={})
    assert result.symbols == ("BTC/USDT:USDT",)


# ---------------------------------------------------------------- dropped symbols


def test_requested_symbols_that_are_not_listed_or_inactive_are_dropped_with_reasons() -> None:
    markets = [*SPOT_VENUE, spot("LUNA", active=False)]
    result = select(markets, forced=("XRP", "PEPE2", "LUNA"), count=1)
    assert result.symbols == ("XRP/USDT", "BTC/USDT")
    dropped = {(d.requested, d.symbol, d.reason) for d in result.dropped}
    assert dropped == {
        ("PEPE2", "PEPE2/USDT", DropReason.NOT_LISTED),
        ("LUNA", "LUNA/USDT", DropReason.INACTIVE),
    }
    messages = {d.requested: d.message for d in result.dropped}
    assert "lists no spot market PEPE2/USDT" in messages["PEPE2"]
    assert "inactive" in messages["LUNA"]


def test_main_symbols_missing_on_a_perpetual_venue_are_reported() -> None:
    markets = [swap(b) for b in ("BTC", "ETH", "XRP", "SOL", "BCH")]
    result = select(markets, use_main=True, tickers={})
    assert bases(result) == ["XRP", "BCH", "BTC", "ETH", "SOL"]
    assert [(d.symbol, d.reason) for d in result.dropped] == [
        ("BNB/USDT:USDT", DropReason.NOT_LISTED),
        ("ADA/USDT:USDT", DropReason.NOT_LISTED),
    ]
    assert "perpetual" in result.dropped[0].message


def test_a_symbol_dropped_twice_is_reported_once() -> None:
    result = select(SPOT_VENUE, forced=("NOPE", "nope"), use_main=True, main=("NOPE",))
    assert [d.requested for d in result.dropped] == ["NOPE"]


def test_inactive_markets_are_skipped_by_the_ranking() -> None:
    markets = [spot("BTC", active=False), *(spot(b) for b in VENUE if b != "BTC")]
    result = select(markets, count=2, forced=())
    assert result.symbols == ("ETH/USDT", "SOL/USDT")
    assert result.dropped == ()  # nobody asked for BTC by name


def test_user_typed_symbols_are_normalised() -> None:
    result = select(SPOT_VENUE, forced=(" btc ", "ETH/USDT", "SOLUSDT", "XRP/USDT:USDT", ""), count=0)
    assert result.symbols == ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
    assert normalize_base("bnbusdt", "USDT") == "BNB"
    assert normalize_base("USDT", "USDT") == "USDT"


# ---------------------------------------------------------------- orders


def top(order: SymbolOrder, count: int = 3, **kwargs: object) -> list[str]:
    return bases(select(SPOT_VENUE, order=order, count=count, forced=(), **kwargs))  # type: ignore[arg-type]


def test_volume_order() -> None:
    assert top(SymbolOrder.VOLUME_24H) == ["BTC", "ETH", "SOL"]


def test_volume_falls_back_to_base_volume_times_price() -> None:
    tickers = {
        "BTC/USDT": Ticker("BTC/USDT", 0, 100.0, base_volume_24h=10.0),  # 1,000 in quote
        "ETH/USDT": Ticker("ETH/USDT", 0, 1.0, quote_volume_24h=500.0),
    }
    assert bases(select(SPOT_VENUE, count=2, forced=(), tickers=tickers)) == ["BTC", "ETH"]


def test_price_change_order_is_biggest_gain_first() -> None:
    assert top(SymbolOrder.PRICE_CHANGE_24H) == ["DOT", "SOL", "ADA"]


def test_market_cap_uses_known_caps_first_then_volume_as_proxy() -> None:
    metrics = {"DOGE/USDT": SymbolMetrics(market_cap=2e9), "ADA/USDT": SymbolMetrics(market_cap=1e9)}
    assert top(SymbolOrder.MARKET_CAP, count=4, metrics=metrics) == ["DOGE", "ADA", "BTC", "ETH"]
    assert top(SymbolOrder.MARKET_CAP) == top(SymbolOrder.VOLUME_24H)  # no caps at all: pure proxy


def test_volatility_ranks_absolute_change_over_the_period() -> None:
    metrics = {
        "LINK/USDT": SymbolMetrics(change_pct_period=-4.0),
        "AVAX/USDT": SymbolMetrics(change_pct_period=2.5),
        "BTC/USDT": SymbolMetrics(change_pct_period=0.3),
    }
    # unknown volatility ranks after known, then by volume
    assert top(SymbolOrder.VOLATILITY, count=5, metrics=metrics) == ["LINK", "AVAX", "BTC", "ETH", "SOL"]


def test_trades_order_uses_trade_counts() -> None:
    metrics = {"ADA/USDT": SymbolMetrics(trades_24h=900), "BCH/USDT": SymbolMetrics(trades_24h=1200)}
    assert top(SymbolOrder.TRADES_24H, metrics=metrics) == ["BCH", "ADA", "BTC"]


def test_alphabetical_order() -> None:
    assert top(SymbolOrder.ALPHABETICAL, count=4) == ["ADA", "AVAX", "BCH", "BNB"]


def test_ties_are_broken_deterministically() -> None:
    tickers = {
        m.symbol: Ticker(m.symbol, 0, 1.0, change_pct_24h=1.0, quote_volume_24h=1.0) for m in SPOT_VENUE
    }
    first = select(SPOT_VENUE, order="price_change_24h", count=3, forced=(), tickers=tickers)
    again = select(list(reversed(SPOT_VENUE)), order="price_change_24h", count=3, forced=(), tickers=tickers)
    assert first.symbols == again.symbols == ("ADA/USDT", "AVAX/USDT", "BCH/USDT")


def test_setting_values_are_accepted_as_strings() -> None:
    for value in ("volume_24h", "market_cap", "price_change_24h", "volatility", "trades_24h", "alphabetical"):
        assert len(select(SPOT_VENUE, order=value, count=2, forced=()).symbols) == 2
    with pytest.raises(ValueError):
        select(SPOT_VENUE, order="liquidity")


def test_abs_change_pct() -> None:
    assert abs_change_pct(100.0, 97.0) == pytest.approx(3.0)
    assert abs_change_pct(100.0, 104.0) == pytest.approx(4.0)
    assert abs_change_pct(0.0, 1.0) is None
    assert abs_change_pct(float("nan"), 1.0) is None
