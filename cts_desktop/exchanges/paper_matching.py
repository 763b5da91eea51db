"""The arithmetic of the paper venue: steps, fees, slippage, triggers, partial fills, margin, PnL.

Everything here is pure and deterministic (no I/O, no clock, no randomness), so each rule can be
checked against a hand-computed case and the paper venue (``paper.py``) only orchestrates. Prices
and sizes are float64, as ccxt hands them to us; where a real exchange rounds (fill prices to the
tick, fill sizes to the lot step) we round, and nowhere else, so fees and PnL keep full precision.

Conventions:

* ``amount`` / ``contracts`` are in the market's amount unit (base units for spot, contracts for
  derivatives); value = price × amount × contract_size, in the quote currency.
* Only linear contracts are modelled (USDT-margined perpetuals and futures): PnL and margin are
  in the quote currency. Inverse contracts are refused by the venue.
* Slippage always moves the price against the order (up for a buy, down for a sell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

from cts_desktop.domain.market import (
    MarginMode,
    MarketInfo,
    OrderSide,
    OrderType,
    PositionMode,
    PositionSide,
)

DEFAULT_MAKER_FEE = 0.0002
"""Used when neither the account nor the market states a maker fee (a common VIP-0 perp rate)."""
DEFAULT_TAKER_FEE = 0.0005
"""Used when neither the account nor the market states a taker fee."""
DEFAULT_MAX_LEVERAGE = 125.0
"""Leverage cap when the market does not state one (the original's hard-coded 125, DOMAIN §2.7)."""

# Tolerance, in units of one step, for "this float is on the step grid". Division adds a
# relative error of about 1e-16, so 1e-9 steps (plus a relative term for huge counts) separates
# representation noise from a genuinely off-grid value.
_STEP_TOLERANCE = 1e-9
_RELATIVE_TOLERANCE = 1e-12


# --------------------------------------------------------------------------- steps


@lru_cache(maxsize=256)
def step_decimals(step: float) -> int:
    """Decimal places of a step (0.001 → 3, 0.5 → 1, 10 → 0), for rounding results onto it.

    Rounding ``n × step`` to these places removes the binary noise (3 × 0.1 = 0.30000000000000004)
    that would otherwise make a later "is it on the step" check fail.
    """
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _steps(value: float, step: float) -> tuple[float, float]:
    count = value / step
    return count, _STEP_TOLERANCE + abs(count) * _RELATIVE_TOLERANCE


def is_on_step(value: float, step: float | None) -> bool:
    """True when ``value`` is a whole number of ``step`` (always true without a step)."""
    if not step:
        return True
    count, tolerance = _steps(value, step)
    return abs(count - round(count)) <= tolerance


def floor_to_step(value: float, step: float | None) -> float:
    """The largest multiple of ``step`` not above ``value`` (``value`` itself without a step)."""
    if not step:
        return value
    count, tolerance = _steps(value, step)
    return round(math.floor(count + tolerance) * step, step_decimals(step))


def ceil_to_step(value: float, step: float | None) -> float:
    """The smallest multiple of ``step`` not below ``value`` (``value`` itself without a step)."""
    if not step:
        return value
    count, tolerance = _steps(value, step)
    return round(math.ceil(count - tolerance) * step, step_decimals(step))


def nearest_steps(value: float, step: float) -> tuple[float, float]:
    """The valid values either side of an off-grid ``value``, for an error message."""
    return floor_to_step(value, step), ceil_to_step(value, step)


def clean_amount(value: float, step: float | None) -> float:
    """A sum or difference of on-step amounts, put back on the grid (0.1 + 0.2 → 0.3)."""
    if not step:
        return round(value, 12)
    return round(round(value / step) * step, step_decimals(step))


# --------------------------------------------------------------------------- fees and slippage


def fee_rate(
    market: MarketInfo,
    *,
    maker: bool,
    maker_override: float | None = None,
    taker_override: float | None = None,
) -> float:
    """The rate for one fill: the account's setting, else the market's, else the default.

    A resting limit order that is filled by the market moving through it is the maker; market
    orders, limit orders that cross on arrival and triggered stops take liquidity.
    """
    if maker:
        for rate in (maker_override, market.maker_fee):
            if rate is not None:
                return rate
        return DEFAULT_MAKER_FEE
    for rate in (taker_override, market.taker_fee):
        if rate is not None:
            return rate
    return DEFAULT_TAKER_FEE


def trade_value(price: float, amount: float, contract_size: float = 1.0) -> float:
    """Quote value of a trade: price × amount × contract size."""
    return price * amount * contract_size


def trade_fee(price: float, amount: float, rate: float, contract_size: float = 1.0) -> float:
    """Fee in the quote currency = traded value × rate (negative for a maker rebate)."""
    return trade_value(price, amount, contract_size) * rate


def slippage_bps(
    base_bps: float,
    max_bps: float,
    *,
    impact_bps: float = 0.0,
    amount: float = 0.0,
    volume: float | None = None,
) -> float:
    """The slippage of one taker fill, in basis points, bounded to ``[0, max_bps]``.

    ``base_bps`` stands for half the spread and the first levels of the book; ``impact_bps`` is
    added per 100 % of the tick's traded volume the order takes, so an order that is large
    against the traded volume walks further into the book. The bound keeps one outsized order
    (or a tick with almost no volume) from producing an absurd price.
    """
    bps = base_bps
    if impact_bps and volume is not None and volume > 0:
        bps += impact_bps * amount / volume
    return min(max(bps, 0.0), max_bps)


def slipped_price(price: float, side: OrderSide, bps: float, price_step: float | None = None) -> float:
    """``price`` moved ``bps`` against the order, then onto the tick grid, also against it.

    Exchanges fill on the tick grid; rounding up for a buy and down for a sell never makes the
    simulation kinder than the market.
    """
    if side is OrderSide.BUY:
        return ceil_to_step(price * (1.0 + bps / 10_000.0), price_step)
    moved = floor_to_step(price * (1.0 - bps / 10_000.0), price_step)
    return moved if moved > 0 or not price_step else price_step


# --------------------------------------------------------------------------- triggers


def limit_marketable(side: OrderSide, limit: float, price: float) -> bool:
    """A limit order that would take liquidity on arrival: a buy at or above the market price,
    a sell at or below it."""
    return price <= limit if side is OrderSide.BUY else price >= limit


def limit_traded_through(side: OrderSide, limit: float, price: float) -> bool:
    """A resting limit order fills only when the market trades *through* its price.

    Touching the level is not enough: other orders queued at that price come first, and
    assuming a fill on a touch is the classic way a paper account beats its live twin.
    """
    return price < limit if side is OrderSide.BUY else price > limit


def stop_triggered(order_type: OrderType, side: OrderSide, stop_price: float, price: float) -> bool:
    """Whether ``price`` fires a stop_loss / take_profit order (reaching the level is enough).

    A stop-loss buys when the price rises to the level (closing a short, or a breakout entry)
    and sells when it falls to it; a take-profit does the opposite.
    """
    if order_type is OrderType.STOP_LOSS:
        return price >= stop_price if side is OrderSide.BUY else price <= stop_price
    if order_type is OrderType.TAKE_PROFIT:
        return price <= stop_price if side is OrderSide.BUY else price >= stop_price
    return False


def stop_fill_price(
    first_price_past: float, side: OrderSide, bps: float, price_step: float | None = None
) -> float:
    """A triggered stop is a market order at the first price seen at or past its level.

    After a gap (the open of a candle already beyond the level) that price is the open, not the
    level: the market never traded at the level, so no order could have filled there.
    """
    return slipped_price(first_price_past, side, bps, price_step)


# --------------------------------------------------------------------------- partial fills


def tick_liquidity(volume: float | None, volume_share: float | None) -> float | None:
    """How much a tick lets resting orders fill in total: a share of its traded volume.

    None means unbounded (no volume reported, or no share configured).
    """
    if volume is None or volume_share is None:
        return None
    return max(volume, 0.0) * volume_share


def fillable_amount(
    remaining: float,
    order_amount: float,
    fill_ratio: float,
    liquidity: float | None = None,
    amount_step: float | None = None,
) -> float:
    """How much of a limit order fills on one tick.

    At most ``fill_ratio`` of the whole order per tick (so a large order fills over several
    ticks), at most the tick's remaining ``liquidity``, never more than ``remaining``, and
    rounded down to the lot step because exchanges only trade whole lots.
    """
    cap = order_amount * fill_ratio
    if liquidity is not None:
        cap = min(cap, liquidity)
    if cap >= remaining or math.isclose(cap, remaining, rel_tol=1e-12, abs_tol=0.0):
        return remaining
    return max(0.0, min(floor_to_step(cap, amount_step), remaining))


# --------------------------------------------------------------------------- positions


def direction(side: PositionSide) -> int:
    return 1 if side is PositionSide.LONG else -1


def initial_margin(price: float, contracts: float, leverage: float, contract_size: float = 1.0) -> float:
    """Linear perpetual margin = notional / leverage."""
    return trade_value(price, contracts, contract_size) / leverage


def position_pnl(
    side: PositionSide, entry_price: float, exit_price: float, contracts: float, contract_size: float = 1.0
) -> float:
    """PnL = (exit − entry) × contracts × contract_size × direction (+1 long, −1 short)."""
    return (exit_price - entry_price) * contracts * contract_size * direction(side)


def opening_side(side: OrderSide) -> PositionSide:
    """The position a non-reducing order builds: a buy goes long, a sell goes short."""
    return PositionSide.LONG if side is OrderSide.BUY else PositionSide.SHORT


def closes(side: OrderSide, position_side: PositionSide) -> bool:
    """Whether an order on ``side`` reduces a position on ``position_side``."""
    return opening_side(side) is not position_side


@dataclass(frozen=True, slots=True)
class FillPlan:
    """How one fill splits between reducing a position and opening/increasing one."""

    close_side: PositionSide | None
    close_qty: float
    open_side: PositionSide | None
    open_qty: float

    @property
    def total(self) -> float:
        return self.close_qty + self.open_qty


def plan_fill(
    mode: PositionMode,
    side: OrderSide,
    qty: float,
    *,
    long_contracts: float,
    short_contracts: float,
    position_side: PositionSide | None = None,
    reduce_only: bool = False,
    amount_step: float | None = None,
) -> FillPlan:
    """Split ``qty`` into the part that reduces a position and the part that opens one.

    * Hedge mode keeps long and short apart: an order addresses one ``position_side``; a sell on
      the long side (or a buy on the short side) only reduces, never beyond the position.
    * One-way mode nets: an opposite order reduces, then closes, then flips the remainder into a
      new position (unless reduce-only, whose remainder is dropped).

    Reduce-only orders therefore never increase a position; ``total`` may be below ``qty`` when
    the position is smaller than the order.
    """
    if mode is PositionMode.HEDGE:
        target = position_side or (
            (PositionSide.SHORT if side is OrderSide.BUY else PositionSide.LONG)
            if reduce_only
            else opening_side(side)
        )
        if closes(side, target):
            held = long_contracts if target is PositionSide.LONG else short_contracts
            return FillPlan(target, min(qty, max(held, 0.0)), None, 0.0)
        if reduce_only:
            return FillPlan(None, 0.0, None, 0.0)
        return FillPlan(None, 0.0, target, qty)
    opposite = PositionSide.SHORT if side is OrderSide.BUY else PositionSide.LONG
    held = max(short_contracts if opposite is PositionSide.SHORT else long_contracts, 0.0)
    close_qty = min(qty, held)
    open_qty = 0.0 if reduce_only else clean_amount(qty - close_qty, amount_step)
    return FillPlan(
        opposite if close_qty > 0 else None,
        close_qty,
        opening_side(side) if open_qty > 0 else None,
        open_qty,
    )


@dataclass(frozen=True, slots=True)
class PositionState:
    """One side of one symbol. ``margin`` is the initial margin held for it (the isolated
    collateral in isolated mode, its share of the wallet in cross mode); ``realized_pnl`` is
    the PnL booked on this position so far, net of the fees of its fills."""

    side: PositionSide
    contracts: float
    entry_price: float
    leverage: float
    margin_mode: MarginMode
    margin: float
    realized_pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class Settlement:
    """The result of one derivative fill on the positions and the quote balance."""

    closed: PositionState | None  # the reduced position after the fill (contracts may be 0)
    opened: PositionState | None  # the opened or increased position after the fill
    realized_pnl: float  # gross PnL of the reduced part, before fees
    released_margin: float  # margin freed by the reduced part
    added_margin: float  # margin locked by the opened part
    fee: float

    @property
    def free_delta(self) -> float:
        """Change of the free quote balance: freed margin + PnL − fee − new margin."""
        return self.released_margin + self.realized_pnl - self.fee - self.added_margin


def settle_derivative_fill(
    plan: FillPlan,
    price: float,
    fee: float,
    *,
    long: PositionState | None,
    short: PositionState | None,
    leverage: float,
    margin_mode: MarginMode,
    contract_size: float = 1.0,
    amount_step: float | None = None,
) -> Settlement:
    """Apply a planned fill at ``price`` to the positions.

    The reduced part realises (price − entry) × qty × contract_size × direction and frees the
    same share of the position's margin; the opened part locks price × qty × contract_size /
    leverage and averages into the entry price. The fee is split between the two parts by
    quantity and booked into each position's ``realized_pnl``. An existing position keeps its
    own leverage and margin mode; ``leverage`` and ``margin_mode`` apply to a new one.
    """
    positions = {PositionSide.LONG: long, PositionSide.SHORT: short}
    total = plan.total
    fee_close = fee * plan.close_qty / total if total > 0 else 0.0
    fee_open = fee - fee_close

    closed: PositionState | None = None
    pnl = 0.0
    released = 0.0
    if plan.close_side is not None and plan.close_qty > 0:
        current = positions[plan.close_side]
        if current is None or current.contracts <= 0:
            raise ValueError(f"no {plan.close_side} position to reduce")
        pnl = position_pnl(current.side, current.entry_price, price, plan.close_qty, contract_size)
        left = clean_amount(current.contracts - plan.close_qty, amount_step)
        if left <= 0:
            left = 0.0
            released = current.margin
        else:
            released = current.margin * plan.close_qty / current.contracts
        closed = replace(
            current,
            contracts=left,
            margin=current.margin - released if left > 0 else 0.0,
            realized_pnl=current.realized_pnl + pnl - fee_close,
        )

    opened: PositionState | None = None
    added = 0.0
    if plan.open_side is not None and plan.open_qty > 0:
        current = positions[plan.open_side]
        if current is not None and current.contracts > 0:
            added = initial_margin(price, plan.open_qty, current.leverage, contract_size)
            contracts = clean_amount(current.contracts + plan.open_qty, amount_step)
            entry = (current.entry_price * current.contracts + price * plan.open_qty) / (
                current.contracts + plan.open_qty
            )
            opened = replace(
                current,
                contracts=contracts,
                entry_price=entry,
                margin=current.margin + added,
                realized_pnl=current.realized_pnl - fee_open,
            )
        else:
            added = initial_margin(price, plan.open_qty, leverage, contract_size)
            opened = PositionState(
                side=plan.open_side,
                contracts=plan.open_qty,
                entry_price=price,
                leverage=leverage,
                margin_mode=margin_mode,
                margin=added,
                realized_pnl=-fee_open,
            )
    return Settlement(closed, opened, pnl, released, added, fee)


def unrealized_pnl(position: PositionState, mark_price: float, contract_size: float = 1.0) -> float:
    return position_pnl(position.side, position.entry_price, mark_price, position.contracts, contract_size)


def remargin(position: PositionState, leverage: float, contract_size: float = 1.0) -> PositionState:
    """The position held at another leverage: margin = entry notional / new leverage."""
    margin = initial_margin(position.entry_price, position.contracts, leverage, contract_size)
    return replace(position, leverage=leverage, margin=margin)


# --------------------------------------------------------------------------- spot


@dataclass(frozen=True, slots=True)
class SpotSettlement:
    """Balance changes of one spot fill; the fee is charged in the quote currency."""

    base_delta: float
    quote_delta: float
    fee: float


def settle_spot_fill(side: OrderSide, qty: float, price: float, fee: float) -> SpotSettlement:
    """A buy pays value + fee in quote and receives base; a sell gives base and receives
    value − fee. (Charging the fee in quote on both sides keeps the base balance whole, so a
    bought amount can be sold again exactly.)"""
    value = trade_value(price, qty)
    if side is OrderSide.BUY:
        return SpotSettlement(base_delta=qty, quote_delta=-(value + fee), fee=fee)
    return SpotSettlement(base_delta=-qty, quote_delta=value - fee, fee=fee)
