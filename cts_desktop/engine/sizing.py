"""Order sizing at the exchange level (DOMAIN §2.7, D13): how much to buy or sell for one position.

Why this is its own module: the original computed ``balance × PC / price``, fell back to a balance
of 10,000 when the exchange did not answer, fixed leverage at 125 without applying it, ignored the
volume factor, and *raised* a too-small size to the exchange minimum. D13 replaces all of that:

    leverage = min(``main.max_leverage``, the risk gate's leverage ceiling) × ``main.leverage_pct`` %
               (the full min(...) when ``main.use_max_leverage`` is on), rounded down to a whole ×,
               at least 1; the ceiling is min(exchange max, ``risk.leverage_cap``) with the exchange
               max taken from the market, else the connection (see ``risk.leverage_ceiling``; spot: 1)
    amount   = balance × PC % × volume factor × leverage ÷ (price × contract size),
               rounded DOWN to the lot step

where ``balance`` is what the caller passes: the order loop (``execution_component``) passes the
account's free balance in the quote currency (``AccountState.free_balance``), not its equity.

and refuses (never rounds up) below the market's minimum amount or minimum cost, and refuses
without a real positive balance. Rounding down means the order is never larger than the formula
says; refusing instead of raising to the minimum means a small account never trades more than
its settings allow.

The arithmetic is done in :class:`decimal.Decimal` on the decimal text of each input (``repr``),
so 0.1 × 3 lot steps is 0.3 and not 0.30000000000000004, and an exact multiple of the lot step is
never floored one step too low by binary noise.

Result: :class:`SizedOrder`, or a refusing :class:`~cts_desktop.domain.orders.RiskDecision` (a
value, not an exception: "too small to trade" is an everyday outcome the engine logs and shows,
exactly like a risk refusal; ``rule`` uses the risk gate's rule names where one fits). Inputs that
the settings registry would never allow (a negative position cost, leverage % above 100) are bugs
and raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal

from cts_desktop.domain.market import MarketInfo, MarketType
from cts_desktop.domain.orders import RiskDecision
from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.risk import leverage_ceiling
from cts_desktop.storage.repositories.connections import ConnectionRecord

__all__ = [
    "EngineKind",
    "SizedOrder",
    "leverage_for",
    "size_order",
    "size_order_from_settings",
    "volume_factor_for",
]

type EngineKind = Literal["main", "preset"]
"""Which engine an order comes from: the main engine uses the live volume factor, the preset engine
the preset volume factor (DOMAIN §5 "volume_factor, split into a live factor and a preset factor")."""


@dataclass(frozen=True, slots=True)
class SizedOrder:
    """An order size that is on the lot step and at or above the market's minimums.

    ``amount`` is in the market's amount unit (base currency, or contracts); ``raw_amount`` is the
    formula's value before rounding down (for the log and the "volume breakdown" view).
    """

    amount: float
    leverage: float
    price: float
    notional: float
    margin: float
    raw_amount: float


def _d(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _finite_positive(value: float | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value) and value > 0


def leverage_for(
    market: MarketInfo,
    *,
    leverage_pct: float,
    max_leverage_setting: float,
    use_max_leverage: bool,
    leverage_cap: float = 0.0,
    connection_max_leverage: float | None = None,
) -> float:
    """The D13 leverage for ``market`` (see the module docstring), a whole number ≥ 1.

    Rounded down because most venues set leverage in whole steps and rounding up would exceed the
    user's share of the maximum.
    """
    if not (math.isfinite(leverage_pct) and 0 < leverage_pct <= 100):
        raise ValueError(f"leverage_pct must be above 0 and at most 100, not {leverage_pct}")
    if not (math.isfinite(max_leverage_setting) and max_leverage_setting >= 1):
        raise ValueError(f"max_leverage_setting must be at least 1, not {max_leverage_setting}")
    if not (math.isfinite(leverage_cap) and leverage_cap >= 0):
        raise ValueError(f"leverage_cap must be 0 (none) or positive, not {leverage_cap}")
    if market.type is MarketType.SPOT:
        return 1.0
    ceiling = leverage_ceiling(market, leverage_cap, connection_max_leverage)
    allowed = min(_d(max_leverage_setting), _d(ceiling))
    chosen = allowed if use_max_leverage else allowed * _d(leverage_pct) / 100
    return float(max(Decimal(1), chosen.to_integral_value(rounding=ROUND_FLOOR)))


def size_order(
    *,
    balance: float | None,
    price: float,
    market: MarketInfo,
    position_cost_pct: float,
    volume_factor: float,
    leverage_pct: float,
    max_leverage_setting: float,
    use_max_leverage: bool,
    leverage_cap: float = 0.0,
    connection_max_leverage: float | None = None,
) -> SizedOrder | RiskDecision:
    """Size one order by D13, or refuse (a :class:`RiskDecision` that is not allowed).

    ``balance`` is the quote-currency amount the order may be sized from, freshly fetched (the
    order loop passes the account's free balance); None when it could not be fetched: that
    refuses, there is no fallback balance.

    ``position_cost_pct`` is in percent (0.1 = 0.1 %), ``leverage_pct`` too (5–100).
    """
    if not (math.isfinite(position_cost_pct) and position_cost_pct > 0):
        raise ValueError(f"position_cost_pct must be positive, not {position_cost_pct}")
    if not (math.isfinite(volume_factor) and volume_factor > 0):
        raise ValueError(f"volume_factor must be positive, not {volume_factor}")
    quote = market.quote
    if not _finite_positive(balance):
        return RiskDecision.refuse(
            "balance",
            f"balance: no real {quote} balance is known for sizing (got {balance!r}); "
            "no order without a balance fetched from the account",
        )
    assert balance is not None
    if not _finite_positive(price):
        return RiskDecision.refuse("price", f"price: the market price must be positive, not {price!r}")
    if not _finite_positive(market.contract_size):
        return RiskDecision.refuse("amount", f"amount: {market.symbol} has no usable contract size")
    leverage = leverage_for(
        market,
        leverage_pct=leverage_pct,
        max_leverage_setting=max_leverage_setting,
        use_max_leverage=use_max_leverage,
        leverage_cap=leverage_cap,
        connection_max_leverage=connection_max_leverage,
    )
    raw = (
        _d(balance)
        * _d(position_cost_pct)
        / 100
        * _d(volume_factor)
        * _d(leverage)
        / (_d(price) * _d(market.contract_size))
    )
    step = market.amount_step
    if step:
        step_d = _d(step)
        amount_d = (raw / step_d).to_integral_value(rounding=ROUND_FLOOR) * step_d
    else:
        amount_d = raw
    amount = float(amount_d)
    if _d(amount) > amount_d:
        # Beyond ~15 significant digits a float cannot hold the exact multiple; never round up.
        amount = math.nextafter(amount, 0.0)
    notional_d = amount_d * _d(market.contract_size) * _d(price)
    notional = float(notional_d)
    numbers = {"amount": amount, "raw_amount": float(raw), "leverage": leverage, "balance": balance}
    if amount_d <= 0 or (market.min_amount and amount_d < _d(market.min_amount)):
        minimum = market.min_amount or 0.0
        return RiskDecision.refuse(
            "min_amount",
            f"minimum amount: {balance:,.2f} {quote} × {position_cost_pct:g} % × {volume_factor:g} × "
            f"{leverage:g}× at {price:,.10g} gives {float(raw):.10g}, {amount:.10g} on the lot step "
            f"{step or 0:g}; below the minimum order size {minimum:g} of {market.symbol}",
            minimum=minimum,
            **numbers,
        )
    if market.min_cost and notional_d < _d(market.min_cost):
        return RiskDecision.refuse(
            "min_cost",
            f"minimum order value: {notional:,.2f} {quote} is below the minimum "
            f"{market.min_cost:,.2f} {quote} of {market.symbol}",
            notional=notional,
            minimum=market.min_cost,
            **numbers,
        )
    return SizedOrder(
        amount=amount,
        leverage=leverage,
        price=price,
        notional=notional,
        margin=notional / leverage,
        raw_amount=float(raw),
    )


def _setting(values: Mapping[str, Any], key: str) -> Any:
    spec = SPEC_BY_KEY[key]
    return spec.validate(values.get(key, spec.default))


def volume_factor_for(
    engine: EngineKind, record: ConnectionRecord | None = None, values: Mapping[str, Any] | None = None
) -> float:
    """The volume factor an order of ``engine`` uses: the connection's own (live factor for the
    main engine, preset factor for the preset engine), else the ``exchange.*_volume_factor`` default."""
    if engine not in ("main", "preset"):
        raise ValueError(f"engine must be 'main' or 'preset', not {engine!r}")
    if record is not None:
        return record.live_volume_factor if engine == "main" else record.preset_volume_factor
    key = "exchange.live_volume_factor" if engine == "main" else "exchange.preset_volume_factor"
    return float(_setting(values or {}, key))


def size_order_from_settings(
    values: Mapping[str, Any],
    *,
    balance: float | None,
    price: float,
    market: MarketInfo,
    volume_factor: float,
    connection_max_leverage: float | None = None,
) -> SizedOrder | RiskDecision:
    """:func:`size_order` with ``main.position_cost_pct``, ``main.leverage_pct``, ``main.max_leverage``,
    ``main.use_max_leverage`` and ``risk.leverage_cap`` read (and validated) from ``values``;
    missing keys take their registry defaults."""
    return size_order(
        balance=balance,
        price=price,
        market=market,
        position_cost_pct=float(_setting(values, "main.position_cost_pct")),
        volume_factor=volume_factor,
        leverage_pct=float(_setting(values, "main.leverage_pct")),
        max_leverage_setting=float(_setting(values, "main.max_leverage")),
        use_max_leverage=bool(_setting(values, "main.use_max_leverage")),
        leverage_cap=float(_setting(values, "risk.leverage_cap")),
        connection_max_leverage=connection_max_leverage,
    )
