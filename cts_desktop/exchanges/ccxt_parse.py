"""ccxt's unified dicts → our frozen dataclasses. Pure functions, no I/O, no ccxt import.

The engine and the UI never see a ccxt dict (domain/market.py), so everything ccxt-shaped is
translated here, where it can be tested against recorded responses. ccxt's unified structures
are loosely typed: numbers may arrive as floats, ints, numeric strings or None, and markets
saved by other ccxt revisions lack keys. Every reader below therefore tolerates missing keys
and converts numbers itself, and raises ``ValueError`` only when something we cannot do without
(an order's side, a ticker's price) is missing; the venue turns that into an ExchangeError.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from cts_desktop.domain.market import (
    Balance,
    Candle,
    Fill,
    MarginMode,
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    PositionSide,
    PositionSnapshot,
    Ticker,
    VenueOrderStatus,
)

# ccxt's precision modes (ccxt.base.decimal_to_precision); copied so this module needs no ccxt.
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_MARKET_TYPES = {
    "spot": MarketType.SPOT,
    "margin": MarketType.SPOT,
    "swap": MarketType.SWAP,
    "future": MarketType.FUTURE,
}

_STATUS = {
    "open": VenueOrderStatus.OPEN,
    "closed": VenueOrderStatus.FILLED,
    "filled": VenueOrderStatus.FILLED,
    "canceled": VenueOrderStatus.CANCELLED,
    "cancelled": VenueOrderStatus.CANCELLED,
    "rejected": VenueOrderStatus.REJECTED,
    "expired": VenueOrderStatus.EXPIRED,
}

# Balance dict keys that are not currencies.
_BALANCE_META = frozenset({"info", "free", "used", "total", "timestamp", "datetime", "debt"})

# Position fields kept in ``PositionSnapshot.extra`` when the venue reports them.
_POSITION_EXTRA = (
    "collateral",
    "initialMargin",
    "initialMarginPercentage",
    "maintenanceMargin",
    "maintenanceMarginPercentage",
    "marginRatio",
    "percentage",
    "contractSize",
)


def to_float(value: Any) -> float | None:
    """A finite float from a ccxt number (float, int, numeric string); None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        try:
            result = float(value)
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def to_int(value: Any) -> int | None:
    number = to_float(value)
    return int(number) if number is not None else None


def _nested(data: Mapping[str, Any], *keys: str) -> object:
    current: Any = data
    for key in keys:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def precision_step(value: Any, precision_mode: int = TICK_SIZE) -> float | None:
    """ccxt's ``precision`` entry as a step size (tick or lot), whatever the exchange's precision mode."""
    number = to_float(value)
    if number is None:
        return None
    if precision_mode == DECIMAL_PLACES:
        return math.pow(10.0, -number)
    if precision_mode == SIGNIFICANT_DIGITS:
        return None  # a number of digits, not a step: no fixed step exists
    return number


def parse_market(market: Mapping[str, Any], precision_mode: int = TICK_SIZE) -> MarketInfo | None:
    """One ccxt market; None for kinds we do not trade (options, unknown types)."""
    market_type = _MARKET_TYPES.get(str(market.get("type") or ""))
    symbol = market.get("symbol")
    if market_type is None or not symbol:
        return None
    linear = market.get("linear")
    active = market.get("active")
    return MarketInfo(
        symbol=str(symbol),
        base=str(market.get("base") or ""),
        quote=str(market.get("quote") or ""),
        type=market_type,
        price_step=precision_step(_nested(market, "precision", "price"), precision_mode),
        amount_step=precision_step(_nested(market, "precision", "amount"), precision_mode),
        min_amount=to_float(_nested(market, "limits", "amount", "min")),
        min_cost=to_float(_nested(market, "limits", "cost", "min")),
        contract_size=to_float(market.get("contractSize")) or 1.0,
        max_leverage=to_float(_nested(market, "limits", "leverage", "max")),
        maker_fee=to_float(market.get("maker")),
        taker_fee=to_float(market.get("taker")),
        linear=linear is not False,  # spot markets carry None: treat as linear
        active=active is not False,  # None means "unknown", which ccxt treats as tradable
    )


def parse_markets(
    markets: Mapping[str, Mapping[str, Any]], precision_mode: int = TICK_SIZE
) -> dict[str, MarketInfo]:
    parsed = (parse_market(m, precision_mode) for m in markets.values())
    return {info.symbol: info for info in parsed if info is not None}


def parse_ticker(ticker: Mapping[str, Any], now_ms: int) -> Ticker:
    """A ccxt ticker; ``now_ms`` stands in for a venue that sends no timestamp."""
    bid = to_float(ticker.get("bid"))
    ask = to_float(ticker.get("ask"))
    last = to_float(ticker.get("last"))
    if last is None:
        last = to_float(ticker.get("close"))
    if last is None and bid is not None and ask is not None:
        last = (bid + ask) / 2
    if last is None:
        raise ValueError(f"ticker of {ticker.get('symbol')} has no price")
    return Ticker(
        symbol=str(ticker.get("symbol") or ""),
        timestamp_ms=to_int(ticker.get("timestamp")) or now_ms,
        last=last,
        bid=bid,
        ask=ask,
        high_24h=to_float(ticker.get("high")),
        low_24h=to_float(ticker.get("low")),
        change_pct_24h=to_float(ticker.get("percentage")),
        base_volume_24h=to_float(ticker.get("baseVolume")),
        quote_volume_24h=to_float(ticker.get("quoteVolume")),
    )


def parse_ohlcv(rows: Iterable[Any]) -> list[Candle]:
    """ccxt's ``[ts, open, high, low, close, volume]`` rows; rows without prices are dropped."""
    candles: list[Candle] = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < 5:
            continue
        ts = to_int(row[0])
        prices = [to_float(v) for v in row[1:5]]
        if ts is None or any(p is None for p in prices):
            continue
        open_, high, low, close = (p for p in prices if p is not None)
        volume = to_float(row[5]) if len(row) > 5 else None
        candles.append(Candle(ts, open_, high, low, close, volume or 0.0))
    return candles


def parse_balance(balance: Mapping[str, Any]) -> dict[str, Balance]:
    """Per-asset free/used/total; a missing total is free + used, missing parts are 0."""
    result: dict[str, Balance] = {}
    for asset, entry in balance.items():
        if asset in _BALANCE_META or not isinstance(entry, Mapping):
            continue
        free = to_float(entry.get("free"))
        used = to_float(entry.get("used"))
        total = to_float(entry.get("total"))
        if free is None and used is None and total is None:
            continue
        if total is None:
            total = (free or 0.0) + (used or 0.0)
        if free is None and used is not None:
            free = total - used
        if used is None and free is not None:
            used = max(total - free, 0.0)
        result[str(asset)] = Balance(str(asset), free or 0.0, used or 0.0, total)
    return result


def parse_order_status(status: Any, filled: float) -> VenueOrderStatus | None:
    """ccxt's order status in our terms; an open order with fills is partially filled."""
    mapped = _STATUS.get(str(status).lower()) if status is not None else None
    if mapped is VenueOrderStatus.OPEN and filled > 0:
        return VenueOrderStatus.PARTIALLY_FILLED
    return mapped


def parse_order_type(order: Mapping[str, Any]) -> OrderType | None:
    """Our four order types from ccxt's free-form type string and trigger fields."""
    raw = str(order.get("type") or "").lower().replace("-", "_")
    if "take_profit" in raw or "takeprofit" in raw:
        return OrderType.TAKE_PROFIT
    if "stop" in raw:
        return OrderType.STOP_LOSS
    trigger = to_float(order.get("triggerPrice"))
    if trigger is not None and trigger > 0:
        if to_float(order.get("stopLossPrice")) == trigger:
            return OrderType.STOP_LOSS
        if to_float(order.get("takeProfitPrice")) == trigger:
            return OrderType.TAKE_PROFIT
    if "limit" in raw:
        return OrderType.LIMIT
    if "market" in raw:
        return OrderType.MARKET
    return None


def _side(value: Any) -> OrderSide | None:
    text = str(value or "").lower()
    return OrderSide(text) if text in ("buy", "sell") else None


def parse_fee(entry: Mapping[str, Any]) -> tuple[float, str | None]:
    """Total fee and its currency from ccxt's ``fee`` / ``fees`` (fees in other currencies are skipped)."""
    fees = entry.get("fees")
    items = [f for f in fees if isinstance(f, Mapping)] if isinstance(fees, list) else []
    if not items and isinstance(entry.get("fee"), Mapping):
        items = [entry["fee"]]
    currency: str | None = None
    total = 0.0
    for item in items:
        cost = to_float(item.get("cost"))
        if cost is None:
            continue
        item_currency = item.get("currency")
        if currency is None:
            currency = str(item_currency) if item_currency else None
        elif item_currency and item_currency != currency:
            continue
        total += cost
    return total, currency


def parse_order(
    order: Mapping[str, Any],
    *,
    fallback: OrderRequest | None = None,
    default_status: VenueOrderStatus = VenueOrderStatus.OPEN,
) -> OrderSnapshot:
    """A ccxt order. Some venues acknowledge a new order with little more than its id (Bybit,
    OKX): ``fallback`` (the request just sent) fills in what the answer leaves out, and
    ``default_status`` stands for a missing status (open after a create, cancelled after a cancel).
    """
    order_id = order.get("id")
    if order_id is None or order_id == "":
        raise ValueError("order without an id")
    side = _side(order.get("side")) or (fallback.side if fallback else None)
    if side is None:
        raise ValueError(f"order {order_id} without a side")
    order_type = parse_order_type(order) or (fallback.type if fallback else None)
    if order_type is None:
        order_type = OrderType.LIMIT if to_float(order.get("price")) else OrderType.MARKET
    filled = to_float(order.get("filled")) or 0.0
    amount = to_float(order.get("amount"))
    if amount is None:
        amount = fallback.amount if fallback else filled
    status = parse_order_status(order.get("status"), filled)
    if status is None:
        status = (
            VenueOrderStatus.PARTIALLY_FILLED
            if default_status is VenueOrderStatus.OPEN and filled > 0
            else default_status
        )
    fee, fee_currency = parse_fee(order)
    client_order_id = order.get("clientOrderId") or (fallback.client_order_id if fallback else None)
    symbol = order.get("symbol") or (fallback.symbol if fallback else "")
    price = to_float(order.get("price"))
    if price is None and fallback is not None:
        price = fallback.price
    reduce_only = order.get("reduceOnly")
    return OrderSnapshot(
        id=str(order_id),
        client_order_id=str(client_order_id) if client_order_id else None,
        symbol=str(symbol),
        side=side,
        type=order_type,
        status=status,
        amount=amount,
        filled=filled,
        price=price,
        average=to_float(order.get("average")),
        fee=fee,
        fee_currency=fee_currency,
        timestamp_ms=to_int(order.get("timestamp")),
        reduce_only=bool(reduce_only) if reduce_only is not None else bool(fallback and fallback.reduce_only),
        reject_reason=None,
    )


def parse_position(position: Mapping[str, Any]) -> PositionSnapshot | None:
    """A ccxt position; None for an empty one (venues list flat positions with 0 contracts)."""
    contracts = to_float(position.get("contracts"))
    if not contracts:
        return None
    side_text = str(position.get("side") or "").lower()
    if side_text in ("long", "short"):
        side = PositionSide(side_text)
    else:
        side = PositionSide.SHORT if contracts < 0 else PositionSide.LONG
    margin_text = str(position.get("marginMode") or "").lower()
    margin_mode = MarginMode(margin_text) if margin_text in ("cross", "isolated") else None
    extra = {key: value for key in _POSITION_EXTRA if (value := to_float(position.get(key))) is not None}
    return PositionSnapshot(
        symbol=str(position.get("symbol") or ""),
        side=side,
        contracts=abs(contracts),
        entry_price=to_float(position.get("entryPrice")) or 0.0,
        mark_price=to_float(position.get("markPrice")),
        leverage=to_float(position.get("leverage")),
        margin_mode=margin_mode,
        unrealized_pnl=to_float(position.get("unrealizedPnl")),
        realized_pnl=to_float(position.get("realizedPnl")),
        liquidation_price=to_float(position.get("liquidationPrice")),
        notional=to_float(position.get("notional")),
        extra=extra,
    )


def parse_positions(positions: Iterable[Mapping[str, Any]]) -> list[PositionSnapshot]:
    parsed = (parse_position(p) for p in positions)
    return [p for p in parsed if p is not None]


def parse_trade(trade: Mapping[str, Any]) -> Fill:
    """One of our own fills (ccxt ``fetch_my_trades`` / ``watch_my_trades``)."""
    side = _side(trade.get("side"))
    price = to_float(trade.get("price"))
    amount = to_float(trade.get("amount"))
    if side is None or price is None or amount is None:
        raise ValueError(f"trade {trade.get('id')} without side, price or amount")
    fee, fee_currency = parse_fee(trade)
    return Fill(
        id=str(trade.get("id") or ""),
        order_id=str(trade.get("order") or ""),
        symbol=str(trade.get("symbol") or ""),
        side=side,
        price=price,
        amount=amount,
        fee=fee,
        fee_currency=fee_currency,
        timestamp_ms=to_int(trade.get("timestamp")) or 0,
        maker=trade.get("takerOrMaker") == "maker",
    )
