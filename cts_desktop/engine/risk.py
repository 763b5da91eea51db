"""The risk gate: every order intent passes here before it may reach a venue, without exception (D26).

Why a gate of its own: the original had a risk manager that no engine ever called (DOMAIN §7),
so nothing stopped an order above the limits. Here the check is one pure, synchronous function
of values (the intent, the account, the market's rules, the limits), so the order executor can
call it on every intent without I/O, and every rule can be tested at its boundary.

The rules run in a fixed order (:data:`RULE_ORDER`) and the first one that fails refuses the
intent with a :class:`~cts_desktop.domain.orders.RiskDecision` that names the rule and the numbers
compared, in words a trader can read ("max open positions: 10 open, limit 10"):

1. ``market``: the intent is for this market and the market is active.
2. ``amount``: the amount is a finite positive number and the intent's contract size is the
   market's (a mismatch would size the order wrongly by that factor).
3. ``lot_step``: the amount is a whole number of lot steps (within float tolerance).
4. ``price``: the reference price is positive; a limit order has a positive limit price, a
   stop-loss/take-profit order a positive stop price.
5. ``price_tick``: the limit or stop price is on the tick grid.
6. ``min_amount``: amount ≥ the market's minimum amount (equal is allowed).
7. ``min_cost``: notional ≥ the market's minimum cost (equal is allowed).
8. ``leverage``: 1 ≤ leverage ≤ cap (equal is allowed); see :func:`leverage_ceiling`.
9. ``max_notional``: open notional in the symbol + this order's notional ≤ ``risk.max_position_notional``
   (equal is allowed; 0 = no limit).
10. ``max_open_positions``: open positions < ``risk.max_open_positions``, i.e. at the limit a new
    position is refused (every intent that is not reduce-only may open one).
11. ``account``: the account values are known (finite, equity and reference values > 0).
12. ``daily_loss``: daily loss % < ``risk.max_daily_loss_pct``; exactly at the limit is refused.
13. ``drawdown``: drawdown % < ``risk.max_drawdown_pct``; exactly at the limit is refused.
14. ``balance``: required margin (notional ÷ leverage + estimated taker fee) ≤ free balance
    (equal is allowed). A spot sell spends the base asset, not the quote, and is not checked here.

Boundaries are the limit's own words: a *maximum* (leverage, notional, margin) may be reached; a
*loss limit* (daily loss, drawdown) and the position count stop new orders once reached, as the
settings say ("new orders stop once ..."). Float noise never decides a boundary: values within a
relative 1e-9 of a limit count as exactly at it.

Reduce-only intents (closing and protective orders) skip the exposure and loss rules
(:data:`EXPOSURE_RULES`: leverage, max_notional, max_open_positions, account, daily_loss,
drawdown, balance): a trader must always be able to reduce risk, above all when a loss limit has
been hit. They still pass the market, amount, precision and minimum rules, which the venue would
refuse anyway.

The gate logs every refusal (INFO, rule and message; no secret is ever part of an intent), so the
"every refusal is logged" rule holds whoever calls it; showing it (``OrderRefused`` event) is the
caller's job.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from cts_desktop.domain.market import Balance, MarketInfo, MarketType, OrderSide, OrderType, PositionSnapshot
from cts_desktop.domain.orders import OrderIntent, RiskDecision
from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.exchanges import paper_matching as pm
from cts_desktop.exchanges.catalog import EXCHANGES
from cts_desktop.storage.repositories.connections import ConnectionRecord

__all__ = [
    "EXPOSURE_RULES",
    "RULE_ORDER",
    "AccountState",
    "RiskGate",
    "RiskLimits",
    "RiskRule",
    "connection_max_leverage",
    "daily_loss_pct",
    "drawdown_pct",
    "effective_leverage_cap",
    "equity_of",
    "leverage_ceiling",
    "reached",
]

log = logging.getLogger(__name__)

_REL_TOLERANCE = 1e-9


class RiskRule(StrEnum):
    """The rule names a refusal carries (``RiskDecision.rule``), in the order they are checked."""

    MARKET = "market"
    AMOUNT = "amount"
    LOT_STEP = "lot_step"
    PRICE = "price"
    PRICE_TICK = "price_tick"
    MIN_AMOUNT = "min_amount"
    MIN_COST = "min_cost"
    LEVERAGE = "leverage"
    MAX_NOTIONAL = "max_notional"
    MAX_OPEN_POSITIONS = "max_open_positions"
    ACCOUNT = "account"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    BALANCE = "balance"


RULE_ORDER: tuple[RiskRule, ...] = tuple(RiskRule)
"""The fixed order of the checks; the first failing rule is the one reported."""

EXPOSURE_RULES: frozenset[RiskRule] = frozenset(
    {
        RiskRule.LEVERAGE,
        RiskRule.MAX_NOTIONAL,
        RiskRule.MAX_OPEN_POSITIONS,
        RiskRule.ACCOUNT,
        RiskRule.DAILY_LOSS,
        RiskRule.DRAWDOWN,
        RiskRule.BALANCE,
    }
)
"""Rules a reduce-only intent never fails: reducing risk must always be possible."""

_LIMIT_KEYS = (
    "risk.max_open_positions",
    "risk.max_daily_loss_pct",
    "risk.max_drawdown_pct",
    "risk.leverage_cap",
    "risk.max_position_notional",
)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The user's risk limits (settings group ``risk``, D26).

    ``leverage_cap`` 0 means "the market's (connection's) own maximum"; ``max_position_notional``
    0 means no limit. Percentages are percent (5.0 = 5 %). ``connection_max_leverage`` is the
    connection's own maximum (:func:`connection_max_leverage`), used where a market states none.
    """

    max_open_positions: int
    max_daily_loss_pct: float
    max_drawdown_pct: float
    leverage_cap: float = 0.0
    max_position_notional: float = 0.0
    connection_max_leverage: float | None = None

    def __post_init__(self) -> None:
        problems = []
        cmax = self.connection_max_leverage
        if cmax is not None and not (math.isfinite(cmax) and cmax >= 1):
            problems.append(f"connection_max_leverage must be at least 1, not {cmax}")
        if self.max_open_positions < 1:
            problems.append(f"max_open_positions must be at least 1, not {self.max_open_positions}")
        for name in ("max_daily_loss_pct", "max_drawdown_pct"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 100):
                problems.append(f"{name} must be above 0 and at most 100, not {value}")
        for name in ("leverage_cap", "max_position_notional"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be 0 (off) or positive, not {value}")
        if problems:
            raise ValueError("invalid risk limits: " + "; ".join(problems))

    @classmethod
    def from_settings(
        cls, values: Mapping[str, Any], *, connection_max_leverage: float | None = None
    ) -> RiskLimits:
        """The limits from a settings mapping; a missing key takes its registry default and every
        value is validated against the registry (an out-of-range value raises)."""
        read = {
            key: SPEC_BY_KEY[key].validate(values.get(key, SPEC_BY_KEY[key].default)) for key in _LIMIT_KEYS
        }
        return cls(
            max_open_positions=int(read["risk.max_open_positions"]),
            max_daily_loss_pct=float(read["risk.max_daily_loss_pct"]),
            max_drawdown_pct=float(read["risk.max_drawdown_pct"]),
            leverage_cap=float(read["risk.leverage_cap"]),
            max_position_notional=float(read["risk.max_position_notional"]),
            connection_max_leverage=connection_max_leverage,
        )


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the gate and the circuit breakers need to know about one connection's account.

    All money values are in the quote currency of the connection (USDT for the predefined ones).
    How each is meant to be obtained:

    - ``equity``: the account's value now, wallet balance plus unrealised PnL. :func:`equity_of`
      adds the positions' unrealised PnL (``fetch_positions``) to ``Balance.total`` of the quote
      asset (``fetch_balance``), which is right for the paper venue, whose total is the wallet
      balance. Whether a ccxt venue's total already includes unrealised PnL differs by exchange
      and account type; the caller that builds the state for a live venue must know which.
    - ``free_balance``: ``Balance.free`` of the quote asset: what a new order's margin can use.
    - ``day_start_equity``: ``equity`` at the first observation after 00:00 UTC, persisted with the
      connection so that a restart during the day does not reset the daily loss.
    - ``peak_equity``: the highest ``equity`` observed since the connection started trading in its
      current mode (or since the user reset it), persisted like the day start; the drawdown is
      measured from it.
    - ``realized_pnl_today``: the sum of realised PnL (fees included) of fills since 00:00 UTC; shown
      with a daily-loss refusal, not used in the percentage (which already includes it via equity).
    - ``open_positions``: open exchange positions across all connections (``risk.max_open_positions``
      is a global limit), each side of a hedged symbol counted once.
    - ``position_notional``: optional, the value (amount × contract size × mark price) of what is
      already open per symbol on this connection, both sides summed; with it ``max_notional``
      limits the resulting position instead of only the order. Empty when unknown.
    """

    equity: float
    free_balance: float
    day_start_equity: float
    peak_equity: float
    realized_pnl_today: float = 0.0
    open_positions: int = 0
    position_notional: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def daily_loss_pct(self) -> float | None:
        return daily_loss_pct(self)

    @property
    def drawdown_pct(self) -> float | None:
        return drawdown_pct(self)


def equity_of(balance: Balance | None, positions: Iterable[PositionSnapshot] = ()) -> float | None:
    """Wallet balance (``balance.total``) plus the unrealised PnL of ``positions``; None without a
    balance, so an account that could not be read never looks like an empty one."""
    if balance is None or not math.isfinite(balance.total):
        return None
    return balance.total + sum(p.unrealized_pnl or 0.0 for p in positions)


def daily_loss_pct(account: AccountState) -> float | None:
    """(day start − equity) ÷ day start × 100; negative on a winning day; None without a day start.

    Deliberately simple: the equity change covers realised and unrealised PnL alike, so a position
    that is deep under water counts before it is closed, and deposits or withdrawals during the day
    show as gains or losses (the day start should be re-taken after a transfer).
    """
    start = account.day_start_equity
    if not (math.isfinite(start) and start > 0 and math.isfinite(account.equity)):
        return None
    return (start - account.equity) / start * 100.0


def drawdown_pct(account: AccountState) -> float | None:
    """(peak − equity) ÷ peak × 100; None without a known peak."""
    peak = account.peak_equity
    if not (math.isfinite(peak) and peak > 0 and math.isfinite(account.equity)):
        return None
    return (peak - account.equity) / peak * 100.0


def reached(value: float, limit: float) -> bool:
    """``value ≥ limit``, where a value within float noise of the limit counts as at the limit."""
    return value >= limit - _REL_TOLERANCE * max(1.0, abs(limit))


def _exceeds(value: float, limit: float) -> bool:
    """``value > limit`` beyond float noise (so exactly at a maximum is allowed)."""
    return value > limit + _REL_TOLERANCE * max(1.0, abs(limit))


def _below(value: float, minimum: float) -> bool:
    """``value < minimum`` beyond float noise (so exactly at a minimum is allowed)."""
    return value < minimum - _REL_TOLERANCE * max(abs(minimum), 1e-300)


def connection_max_leverage(record: ConnectionRecord) -> float | None:
    """The connection's own maximum leverage: its ``max_leverage`` setting (the predefined templates
    store one), else the exchange's from the catalogue (DOMAIN §5), else None."""
    stored = record.settings.get("max_leverage")
    if (
        isinstance(stored, int | float)
        and not isinstance(stored, bool)
        and math.isfinite(stored)
        and stored >= 1
    ):
        return float(stored)
    spec = EXCHANGES.get(record.exchange.strip().lower())
    return float(spec.max_leverage) if spec is not None else None


def leverage_ceiling(market: MarketInfo, leverage_cap: float, connection_max: float | None = None) -> float:
    """The highest leverage allowed on ``market``; the gate and the sizing share it, so a sized order
    never fails the gate's leverage rule.

    The exchange's maximum is the market's own, else the connection's. The cap is
    ``risk.leverage_cap`` when set (> 0), else that maximum, and never above the maximum when one is
    known. A spot market's cap is 1; with neither a setting nor a known maximum the cap is 1 (no
    leverage unless someone said it is allowed).
    """
    if market.type is MarketType.SPOT:
        return 1.0
    upper: float | None = None
    if market.max_leverage is not None and market.max_leverage > 0:
        upper = market.max_leverage
    elif connection_max is not None and connection_max > 0:
        upper = connection_max
    if leverage_cap > 0:
        return min(leverage_cap, upper) if upper is not None else leverage_cap
    return upper if upper is not None else 1.0


def effective_leverage_cap(market: MarketInfo, limits: RiskLimits) -> float:
    """:func:`leverage_ceiling` for ``limits``."""
    return leverage_ceiling(market, limits.leverage_cap, limits.connection_max_leverage)


def _n(value: float) -> str:
    """A size or price as a trader reads it (no float noise, no scientific notation for normal values)."""
    return f"{value:,.10g}"


def _money(value: float, quote: str) -> str:
    return f"{value:,.2f} {quote}"


@dataclass(frozen=True, slots=True)
class _Order:
    """Values derived once per check and shared by the rules."""

    intent: OrderIntent
    account: AccountState
    market: MarketInfo
    limits: RiskLimits
    fee_rate: float

    @property
    def price(self) -> float:
        """The price the order's value is measured at: the limit price of a limit order, else the
        reference price (the market price when the intent was formed)."""
        intent = self.intent
        if intent.type is OrderType.LIMIT and intent.price is not None:
            return intent.price
        return intent.reference_price

    @property
    def notional(self) -> float:
        return pm.trade_value(self.price, abs(self.intent.amount), self.market.contract_size)

    @property
    def quote(self) -> str:
        return self.market.quote


type _Rule = Callable[[_Order], RiskDecision | None]


def _check_market(o: _Order) -> RiskDecision | None:
    if o.intent.symbol != o.market.symbol:
        return RiskDecision.refuse(
            RiskRule.MARKET.value,
            f"market: the order is for {o.intent.symbol} but the trading rules given are {o.market.symbol}",
        )
    if not o.market.active:
        return RiskDecision.refuse(
            RiskRule.MARKET.value, f"market: {o.market.symbol} is not active for trading"
        )
    return None


def _check_amount(o: _Order) -> RiskDecision | None:
    amount = o.intent.amount
    if not (math.isfinite(amount) and amount > 0):
        return RiskDecision.refuse(
            RiskRule.AMOUNT.value, f"amount: must be a positive number, not {amount!r}", amount=amount
        )
    intent_cs, market_cs = o.intent.contract_size, o.market.contract_size
    if not math.isclose(intent_cs, market_cs, rel_tol=_REL_TOLERANCE):
        return RiskDecision.refuse(
            RiskRule.AMOUNT.value,
            f"amount: the order assumes a contract size of {_n(intent_cs)} but {o.market.symbol} "
            f"has {_n(market_cs)}; the order would be sized wrongly",
            contract_size=intent_cs,
            market_contract_size=market_cs,
        )
    return None


def _check_lot_step(o: _Order) -> RiskDecision | None:
    step = o.market.amount_step
    amount = o.intent.amount
    if step and not pm.is_on_step(amount, step):
        low, high = pm.nearest_steps(amount, step)
        return RiskDecision.refuse(
            RiskRule.LOT_STEP.value,
            f"lot step: amount {_n(amount)} is not a multiple of the lot step {_n(step)} "
            f"(nearest valid: {_n(low)} or {_n(high)})",
            amount=amount,
            step=step,
        )
    return None


def _required_prices(intent: OrderIntent) -> dict[str, float | None]:
    if intent.type is OrderType.LIMIT:
        return {"limit price": intent.price}
    if intent.type in (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT):
        return {"stop price": intent.stop_price}
    return {}


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _check_price(o: _Order) -> RiskDecision | None:
    reference = o.intent.reference_price
    if not _positive(reference):
        return RiskDecision.refuse(
            RiskRule.PRICE.value,
            f"price: the reference (market) price must be positive, not {reference!r}",
            reference_price=reference,
        )
    for label, value in _required_prices(o.intent).items():
        if not _positive(value):
            return RiskDecision.refuse(
                RiskRule.PRICE.value, f"price: a {o.intent.type.value} order needs a positive {label}"
            )
    return None


def _check_price_tick(o: _Order) -> RiskDecision | None:
    tick = o.market.price_step
    if not tick:
        return None
    for label, value in _required_prices(o.intent).items():
        assert value is not None  # _check_price ran first
        if not pm.is_on_step(value, tick):
            low, high = pm.nearest_steps(value, tick)
            return RiskDecision.refuse(
                RiskRule.PRICE_TICK.value,
                f"price tick: {label} {_n(value)} is not a multiple of the tick size {_n(tick)} "
                f"(nearest valid: {_n(low)} or {_n(high)})",
                price=value,
                tick=tick,
            )
    return None


def _check_min_amount(o: _Order) -> RiskDecision | None:
    minimum = o.market.min_amount
    amount = o.intent.amount
    if minimum and _below(amount, minimum):
        return RiskDecision.refuse(
            RiskRule.MIN_AMOUNT.value,
            f"minimum amount: {_n(amount)} is below the minimum order size {_n(minimum)} "
            f"of {o.market.symbol}",
            amount=amount,
            minimum=minimum,
        )
    return None


def _check_min_cost(o: _Order) -> RiskDecision | None:
    minimum = o.market.min_cost
    notional = o.notional
    if minimum and _below(notional, minimum):
        return RiskDecision.refuse(
            RiskRule.MIN_COST.value,
            f"minimum order value: {_money(notional, o.quote)} is below the minimum "
            f"{_money(minimum, o.quote)} of {o.market.symbol}",
            notional=notional,
            minimum=minimum,
        )
    return None


def _check_leverage(o: _Order) -> RiskDecision | None:
    leverage = o.intent.leverage
    cap = effective_leverage_cap(o.market, o.limits)
    if not (math.isfinite(leverage) and leverage >= 1):
        return RiskDecision.refuse(
            RiskRule.LEVERAGE.value,
            f"leverage: must be at least 1×, not {leverage!r}",
            leverage=leverage,
            cap=cap,
        )
    if _exceeds(leverage, cap):
        return RiskDecision.refuse(
            RiskRule.LEVERAGE.value,
            f"leverage: {_n(leverage)}× is above the cap of {_n(cap)}× for {o.market.symbol}",
            leverage=leverage,
            cap=cap,
        )
    return None


def _check_max_notional(o: _Order) -> RiskDecision | None:
    limit = o.limits.max_position_notional
    if limit <= 0:
        return None
    order = o.notional
    held = abs(o.account.position_notional.get(o.intent.symbol, 0.0))
    total = order + held
    if _exceeds(total, limit):
        held_text = f" + open {_money(held, o.quote)} = {_money(total, o.quote)}" if held else ""
        return RiskDecision.refuse(
            RiskRule.MAX_NOTIONAL.value,
            f"max position size: order {_money(order, o.quote)}{held_text}, limit {_money(limit, o.quote)}",
            notional=order,
            open_notional=held,
            total=total,
            limit=limit,
        )
    return None


def _check_open_positions(o: _Order) -> RiskDecision | None:
    count, limit = o.account.open_positions, o.limits.max_open_positions
    if count >= limit:
        return RiskDecision.refuse(
            RiskRule.MAX_OPEN_POSITIONS.value,
            f"max open positions: {count} open, limit {limit}",
            open_positions=count,
            limit=limit,
        )
    return None


def _check_account(o: _Order) -> RiskDecision | None:
    a = o.account
    known = (
        all(math.isfinite(v) for v in (a.equity, a.free_balance, a.day_start_equity, a.peak_equity))
        and a.equity > 0
        and a.day_start_equity > 0
        and a.peak_equity > 0
        and a.open_positions >= 0
    )
    if not known:
        return RiskDecision.refuse(
            RiskRule.ACCOUNT.value,
            "account: the account's equity, day start or peak is unknown or not positive "
            f"(equity {a.equity!r}, day start {a.day_start_equity!r}, peak {a.peak_equity!r}); "
            "no new position without a real balance",
            equity=a.equity,
            day_start_equity=a.day_start_equity,
            peak_equity=a.peak_equity,
        )
    return None


def _check_daily_loss(o: _Order) -> RiskDecision | None:
    loss = daily_loss_pct(o.account)
    limit = o.limits.max_daily_loss_pct
    if loss is not None and reached(loss, limit):
        a = o.account
        return RiskDecision.refuse(
            RiskRule.DAILY_LOSS.value,
            f"daily loss: {loss:.2f} % lost today ({_money(a.day_start_equity, o.quote)} → "
            f"{_money(a.equity, o.quote)}, realised {_money(a.realized_pnl_today, o.quote)}), "
            f"limit {limit:g} %",
            loss_pct=loss,
            limit_pct=limit,
            day_start_equity=a.day_start_equity,
            equity=a.equity,
            realized_pnl_today=a.realized_pnl_today,
        )
    return None


def _check_drawdown(o: _Order) -> RiskDecision | None:
    drawdown = drawdown_pct(o.account)
    limit = o.limits.max_drawdown_pct
    if drawdown is not None and reached(drawdown, limit):
        a = o.account
        return RiskDecision.refuse(
            RiskRule.DRAWDOWN.value,
            f"drawdown: {drawdown:.2f} % below the peak ({_money(a.peak_equity, o.quote)} → "
            f"{_money(a.equity, o.quote)}), limit {limit:g} %",
            drawdown_pct=drawdown,
            limit_pct=limit,
            peak_equity=a.peak_equity,
            equity=a.equity,
        )
    return None


def _check_balance(o: _Order) -> RiskDecision | None:
    if o.market.type is MarketType.SPOT and o.intent.side is OrderSide.SELL:
        return None  # a spot sell spends the base asset; the quote balance is not involved
    leverage = 1.0 if o.market.type is MarketType.SPOT else o.intent.leverage
    amount, contract_size = abs(o.intent.amount), o.market.contract_size
    margin = pm.initial_margin(o.price, amount, leverage, contract_size)
    fee = pm.trade_fee(o.price, amount, o.fee_rate, contract_size)
    required = margin + fee
    free = o.account.free_balance
    if _exceeds(required, free):
        return RiskDecision.refuse(
            RiskRule.BALANCE.value,
            f"balance: the order needs {_money(required, o.quote)} (margin {_money(margin, o.quote)} + "
            f"fee {_money(fee, o.quote)}) but only {_money(free, o.quote)} is free",
            required=required,
            margin=margin,
            fee=fee,
            free_balance=free,
        )
    return None


_RULES: Mapping[RiskRule, _Rule] = MappingProxyType(
    {
        RiskRule.MARKET: _check_market,
        RiskRule.AMOUNT: _check_amount,
        RiskRule.LOT_STEP: _check_lot_step,
        RiskRule.PRICE: _check_price,
        RiskRule.PRICE_TICK: _check_price_tick,
        RiskRule.MIN_AMOUNT: _check_min_amount,
        RiskRule.MIN_COST: _check_min_cost,
        RiskRule.LEVERAGE: _check_leverage,
        RiskRule.MAX_NOTIONAL: _check_max_notional,
        RiskRule.MAX_OPEN_POSITIONS: _check_open_positions,
        RiskRule.ACCOUNT: _check_account,
        RiskRule.DAILY_LOSS: _check_daily_loss,
        RiskRule.DRAWDOWN: _check_drawdown,
        RiskRule.BALANCE: _check_balance,
    }
)
assert tuple(_RULES) == RULE_ORDER


class RiskGate:
    """Checks one intent against all rules (see the module docstring); holds no state.

    The margin check estimates the taker fee the way the paper venue charges it
    (:func:`~cts_desktop.exchanges.paper_matching.fee_rate`: the market's taker fee, else the
    paper default), so paper and gate agree.
    """

    def check(
        self, intent: OrderIntent, account: AccountState, market: MarketInfo, limits: RiskLimits
    ) -> RiskDecision:
        """``RiskDecision.ok()`` or the refusal of the first failing rule (pure, no I/O but a log line)."""
        order = _Order(intent, account, market, limits, pm.fee_rate(market, maker=False))
        for rule, check in _RULES.items():
            if intent.reduce_only and rule in EXPOSURE_RULES:
                continue
            decision = check(order)
            if decision is not None:
                log.info(
                    "risk gate refused %s %s %s on %s: [%s] %s",
                    intent.side.value,
                    intent.symbol,
                    intent.mode.value,
                    intent.connection_id,
                    decision.rule,
                    decision.message,
                )
                return decision
        return RiskDecision.ok()
