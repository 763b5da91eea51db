"""Orders as the engine sees them: the intent before risk and venue, the risk verdict, our own
in-flight order lifecycle (hummingbot's states plus ``lost``), and the rows the Orders,
Positions and reconciliation views show. Plain values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import OrderSide, OrderType, PositionSide, TimeInForce


class OrderStatus(StrEnum):
    """Our lifecycle of an order (the ``orders.status`` column).

    ``pending_create``: the intent is stored, the request may or may not have reached the venue.
    ``lost``: the venue kept answering "not found" for an order we believed open.
    """

    PENDING_CREATE = "pending_create"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    FAILED = "failed"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in FINAL_ORDER_STATUSES


FINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.LOST}
)

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_CREATE: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.FAILED,
            OrderStatus.LOST,
        }
    ),
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.LOST,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.LOST,
        }
    ),
    OrderStatus.PENDING_CANCEL: frozenset(
        {
            OrderStatus.CANCELLED,
            OrderStatus.FILLED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.OPEN,
            OrderStatus.LOST,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.FAILED: frozenset(),
    # A lost order that later turns up (reconciliation) is restored to what the venue says.
    OrderStatus.LOST: frozenset(
        {OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED}
    ),
}
"""Legal order status changes; the executor refuses any other (a late "open" never undoes a fill)."""


def affected_side(
    side: OrderSide, reduce_only: bool, position_side: PositionSide | None = None
) -> PositionSide:
    """The position an order moves: ``position_side`` when it names one; else a buy opens a long
    and a reduce-only buy closes a short (and the other way round)."""
    if position_side is not None:
        return position_side
    opening = PositionSide.LONG if side is OrderSide.BUY else PositionSide.SHORT
    if reduce_only:
        return PositionSide.SHORT if opening is PositionSide.LONG else PositionSide.LONG
    return opening


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What the engine wants to trade, before the risk gate and before the venue.

    ``amount`` is in the market's amount unit (base currency, or contracts for derivatives),
    already rounded to the lot step; ``reference_price`` is the market price when the intent was
    formed, against which slippage is measured and the notional is computed.
    """

    connection_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    reference_price: float
    mode: TradingMode
    price: float | None = None
    stop_price: float | None = None
    contract_size: float = 1.0
    leverage: float = 1.0
    reduce_only: bool = False
    position_side: PositionSide | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    real_position_id: str | None = None
    reason: str = ""

    @property
    def notional(self) -> float:
        """Value of the position in quote currency (without leverage)."""
        return abs(self.amount) * self.contract_size * self.reference_price


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The risk gate's verdict on one intent. A refusal names the rule and the numbers compared."""

    allowed: bool
    rule: str | None = None
    message: str = ""
    numbers: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def ok(cls) -> RiskDecision:
        return cls(True)

    @classmethod
    def refuse(cls, rule: str, message: str, **numbers: float) -> RiskDecision:
        return cls(False, rule, message, MappingProxyType(dict(numbers)))


@dataclass(frozen=True, slots=True)
class OrderView:
    """One row of the Orders dock (paper or live)."""

    id: str
    client_order_id: str
    connection_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    filled: float
    status: OrderStatus
    mode: TradingMode
    price: float | None = None
    average_price: float | None = None
    exchange_order_id: str | None = None
    reject_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PositionView:
    """One row of the Positions dock (paper or live)."""

    connection_id: str
    symbol: str
    side: PositionSide
    contracts: float
    entry_price: float
    mode: TradingMode
    mark_price: float | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float | None = None
    leverage: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    opened_at: datetime | None = None


class DifferenceKind(StrEnum):
    ORDER_MISSING_ON_EXCHANGE = "order_missing_on_exchange"
    ORDER_UNKNOWN_LOCALLY = "order_unknown_locally"
    ORDER_STATUS = "order_status"
    ORDER_FILLED_WHILE_CLOSED = "order_filled_while_closed"
    PENDING_CREATE = "pending_create"
    POSITION_MISSING_ON_EXCHANGE = "position_missing_on_exchange"
    POSITION_UNKNOWN_LOCALLY = "position_unknown_locally"
    POSITION_SIZE = "position_size"
    BALANCE = "balance"


@dataclass(frozen=True, slots=True)
class ReconcileDifference:
    """One disagreement between the database and the exchange found by reconciliation.

    ``applied`` differences were unambiguous and have been fixed locally (``action`` says how);
    the others wait for the user to confirm ``action`` (UI) or are printed (headless)."""

    kind: DifferenceKind
    connection_id: str
    symbol: str
    description: str
    action: str
    applied: bool
    local: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    remote: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    client_order_id: str | None = None
