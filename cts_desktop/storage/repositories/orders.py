"""Our orders from intent to final state, their fills, and the real positions those fills move.

The order executor and the reconciler are the writers; the Orders and Positions docks read the
``OrderView`` / ``PositionView`` rows. The rules this module enforces, whoever calls it:

* **Intent first.** :meth:`OrderRepository.insert_intent` writes the order as ``pending_create``
  with its client order id in one transaction *before* anything is sent, so a crash between
  sending and recording is resolved later by looking the order up by that id (PITFALLS: SQLite).
* **Only legal transitions.** Every status change is checked against ``ORDER_TRANSITIONS``; an
  illegal one raises :class:`IllegalOrderTransition` and changes nothing (the transaction rolls
  back), so a late "open" from the venue can never undo a fill. A venue's answer
  (``VenueState.from_venue``) has its possibly stale status judged inside the transaction
  instead: kept out when illegal (its fills still count), never applied over a cancel in flight.
* **Fills are idempotent and move positions in the same transaction.** The venues report an
  order's *cumulative* filled amount, average price and fee; :meth:`OrderRepository.apply_venue_state`
  turns the increase over what is stored into one fill, keyed ``(order_id, "cum:<filled>")`` (the
  ``fills`` unique key), and applies it to the order's real position in the same transaction.
  Replaying the same venue answer, or the executor and the reconciler both applying it, adds
  nothing. The increase is computed inside the transaction from the stored rows, never from a
  copy read earlier, so two writers cannot both add it.
* **Write first.** Read-modify-write transactions start with a write to the row (see
  ``storage/database.py``: a SQLite transaction that reads first can fail with "database is
  locked" when another connection commits in between).

Position arithmetic (linear contracts; PnL = price move × quantity × contract size): a fill on the
side that opens the order's ``position_side`` (buy → long, sell → short) increases the position at
a volume-weighted entry price; the other side reduces it and realises
``(exit − entry) × quantity × contract size`` (negated for a short). ``realized_pnl`` is that price
PnL only; ``fees`` is every fee paid on the position, so net = realized_pnl − fees. Fees are
assumed to be in the quote currency (the paper venue's and the perpetuals' case).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import OrderSide, OrderType, PositionSide, TimeInForce
from cts_desktop.domain.orders import (
    FINAL_ORDER_STATUSES,
    ORDER_TRANSITIONS,
    OrderStatus,
    OrderView,
    PositionView,
    affected_side,
)
from cts_desktop.storage.database import Database, dialect_insert
from cts_desktop.storage.models import metadata, new_id, utc_now

_orders = metadata.tables["orders"]
_fills = metadata.tables["fills"]
_positions = metadata.tables["real_positions"]

ACTIVE_STATUSES: Final = frozenset(
    {OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL}
)
"""Orders the venue holds for us (as far as we know): what the executor polls."""
POSITION_OPEN: Final = "open"
POSITION_CLOSED: Final = "closed"
CUMULATIVE_FILL_PREFIX: Final = "cum:"
"""``exchange_trade_id`` of a fill derived from the order's cumulative filled amount."""

_RELATIVE_TOLERANCE: Final = 1e-9  # float noise on sums of lot multiples


def _is_zero(value: float, scale: float) -> bool:
    return abs(value) <= _RELATIVE_TOLERANCE * max(1.0, abs(scale))


class IllegalOrderTransition(ValueError):
    """A status change ``ORDER_TRANSITIONS`` does not allow; nothing was changed."""

    def __init__(self, client_order_id: str, old: OrderStatus, new: OrderStatus) -> None:
        self.client_order_id = client_order_id
        self.old = old
        self.new = new
        super().__init__(f"order {client_order_id}: cannot go from {old.value} to {new.value}")


class UnknownOrderError(LookupError):
    """No order (or position) with this id in the database."""


class DuplicateClientOrderIdError(ValueError):
    """The client order id is already stored: ids are unique across all connections."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What :meth:`OrderRepository.insert_intent` writes: the intent plus its client order id.

    ``intent_price`` is the market price when the intent was formed (slippage is measured
    against it); ``created_at`` is the intent time, from which latencies are measured.
    """

    client_order_id: str
    connection_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    mode: TradingMode
    intent_price: float | None
    created_at: datetime
    price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    position_side: PositionSide | None = None
    leverage: float | None = None
    contract_size: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    tp_sl_mode: str | None = None
    real_position_id: str | None = None
    parent_id: str | None = None
    exchange_order_id: str | None = None
    reason: str | None = None
    actor: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: str
    client_order_id: str
    connection_id: str
    real_position_id: str | None
    parent_id: str | None
    exchange_order_id: str | None
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    price: float | None
    stop_price: float | None
    amount: float
    filled: float
    average_price: float | None
    status: OrderStatus
    mode: TradingMode
    reduce_only: bool
    position_side: PositionSide | None
    leverage: float | None
    contract_size: float | None
    take_profit: float | None
    stop_loss: float | None
    tp_sl_mode: str | None
    intent_price: float | None
    reject_reason: str | None
    reason: str | None
    actor: str | None
    ack_latency_ms: int | None
    fill_latency_ms: int | None
    slippage_bps: float | None
    created_at: datetime
    acknowledged_at: datetime | None
    filled_at: datetime | None
    updated_at: datetime

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def affected_side(self) -> PositionSide:
        """The position this order moves (stored at intent time; derived for older rows)."""
        return affected_side(self.side, self.reduce_only, self.position_side)

    @property
    def opens(self) -> bool:
        """True when a fill of this order increases its position rather than reducing it."""
        return (self.side is OrderSide.BUY) == (self.affected_side is PositionSide.LONG)

    def view(self) -> OrderView:
        return OrderView(
            id=self.id,
            client_order_id=self.client_order_id,
            connection_id=self.connection_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            amount=self.amount,
            filled=self.filled,
            status=self.status,
            mode=self.mode,
            price=self.price if self.price is not None else self.stop_price,
            average_price=self.average_price,
            exchange_order_id=self.exchange_order_id,
            reject_reason=self.reject_reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class FillRecord:
    id: str
    order_id: str
    exchange_trade_id: str
    price: float
    amount: float
    fee: float
    fee_currency: str | None
    at: datetime
    realized_pnl: float | None


@dataclass(frozen=True, slots=True)
class RealPositionRecord:
    id: str
    connection_id: str
    set_id: str | None
    symbol: str
    side: PositionSide
    mode: TradingMode
    entry_price: float
    quantity: float
    take_profit: float | None
    stop_loss: float | None
    status: str
    opened_at: datetime
    closed_at: datetime | None
    realized_pnl: float
    fees: float
    leverage: float | None
    contract_size: float | None

    @property
    def is_open(self) -> bool:
        return self.status == POSITION_OPEN

    def view(self, mark_price: float | None = None) -> PositionView:
        unrealized = None
        if mark_price is not None:
            unrealized = position_pnl(
                self.side, self.entry_price, mark_price, self.quantity, self.contract_size or 1.0
            )
        return PositionView(
            connection_id=self.connection_id,
            symbol=self.symbol,
            side=self.side,
            contracts=self.quantity,
            entry_price=self.entry_price,
            mode=self.mode,
            mark_price=mark_price,
            unrealized_pnl=unrealized,
            realized_pnl=self.realized_pnl - self.fees,
            leverage=self.leverage,
            take_profit=self.take_profit,
            stop_loss=self.stop_loss,
            opened_at=self.opened_at,
        )


@dataclass(frozen=True, slots=True)
class VenueState:
    """What a venue said about one order, in our terms, to be applied in one transaction.

    ``status`` None keeps the stored status (e.g. a cancel is in flight); ``filled``, ``average``
    and ``fee`` are cumulative, as venues report them. ``acknowledged`` marks the first answer
    that proves the venue holds the order: it sets ``acknowledged_at`` and the ack latency once.
    ``amount`` (when given) is the venue's current size of the order: the venue resizes the
    take-profit/stop-loss children of an entry that keeps filling.

    ``from_venue`` marks an answer the venue gave (which may be stale by the time it is applied),
    as opposed to a status we decided: its status goes through :func:`status_after_venue_answer`
    against the row read inside the transaction, so while our cancel is in flight a non-final
    status keeps ``pending_cancel``, and a status that would be an illegal transition (a late
    "open" after a fill) is dropped (reported as ``OrderChange.ignored_status``) while its fills
    still count. Without it an illegal status raises :class:`IllegalOrderTransition`.
    """

    at: datetime
    status: OrderStatus | None = None
    filled: float = 0.0
    average: float | None = None
    fee: float = 0.0
    fee_currency: str | None = None
    exchange_order_id: str | None = None
    reject_reason: str | None = None
    acknowledged: bool = False
    amount: float | None = None
    from_venue: bool = False


@dataclass(frozen=True, slots=True)
class OrderChange:
    """The result of applying a venue state: the order before and after, and what moved.

    ``ignored_status`` is the venue's status when it was dropped as an illegal transition (a
    stale answer, see ``VenueState.from_venue``)."""

    before: OrderRecord
    after: OrderRecord
    fill: FillRecord | None = None
    position: RealPositionRecord | None = None
    ignored_status: OrderStatus | None = None

    @property
    def status_changed(self) -> bool:
        return self.before.status is not self.after.status

    @property
    def changed(self) -> bool:
        # A new fill or status always changes the row (filled, status, updated_at).
        return self.before != self.after


def status_after_venue_answer(stored: OrderStatus, reported: OrderStatus) -> OrderStatus:
    """The status an order stored as ``stored`` takes when the venue reports ``reported``.

    While our cancel is in flight (``pending_cancel``) a non-final venue status keeps it (the
    answer predates the cancel, or the venue has not processed it yet); a status that would be an
    illegal transition (a stale answer: a late "open" after a fill) keeps ``stored`` too. Else
    the venue's status."""
    if stored is OrderStatus.PENDING_CANCEL and not reported.is_final:
        return stored
    if reported is not stored and reported not in ORDER_TRANSITIONS[stored]:
        return stored
    return reported


# --------------------------------------------------------------------------- pure arithmetic


def position_pnl(
    side: PositionSide, entry: float, price: float, quantity: float, contract_size: float
) -> float:
    """Gross PnL of ``quantity`` closed (or marked) at ``price``."""
    direction = 1.0 if side is PositionSide.LONG else -1.0
    return (price - entry) * quantity * contract_size * direction


def slippage_bps(side: OrderSide, reference: float | None, average: float | None) -> float | None:
    """Signed slippage of the average fill price against the price at intent, in basis points:
    positive is worse for us (paid more on a buy, received less on a sell)."""
    if reference is None or average is None or reference <= 0:
        return None
    move = (average - reference) / reference * 10_000
    return move if side is OrderSide.BUY else -move


def _delta_price(
    before_filled: float, before_average: float | None, filled: float, average: float | None, fallback: float
) -> float:
    """Price of the newly filled part, from two cumulative (filled, average) pairs."""
    delta = filled - before_filled
    if average is None:
        return before_average if before_average is not None else fallback
    if before_filled <= 0 or before_average is None:
        return average
    price = (average * filled - before_average * before_filled) / delta
    if not (math.isfinite(price) and price > 0):
        return average
    return price


# --------------------------------------------------------------------------- repository


class OrderRepository:
    """Orders, fills and real positions (see the module docstring for the rules)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    # ----------------------------------------------------------------- writes: orders

    async def insert_intent(self, order: NewOrder) -> OrderRecord:
        """Store the intent as ``pending_create`` (one transaction), before anything is sent.

        Raises :class:`DuplicateClientOrderIdError` when the client order id is already taken.
        """
        values = _intent_values(order)
        try:
            async with self._database.engine.begin() as connection:
                await connection.execute(insert(_orders).values(values))
                row = await _order_row(connection, values["id"])
        except IntegrityError:
            if await self.get_by_client_id(order.client_order_id) is not None:
                raise DuplicateClientOrderIdError(
                    f"client order id {order.client_order_id!r} is already stored"
                ) from None
            raise
        assert row is not None
        return row

    async def transition(
        self, order_id: str, status: OrderStatus, *, at: datetime | None = None, reason: str | None = None
    ) -> OrderRecord:
        """Move an order to ``status`` (validated); ``reason`` is stored as the reject reason.

        One conditional UPDATE: it only matches when the stored status may legally move to
        ``status``, so the check and the write cannot be separated by another writer.
        """
        status = OrderStatus(status)
        allowed_from = [old.value for old, targets in ORDER_TRANSITIONS.items() if status in targets]
        now = at or utc_now()
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        if reason is not None:
            values["reject_reason"] = reason
        async with self._database.engine.begin() as connection:
            result = await connection.execute(
                update(_orders)
                .where(_orders.c.id == order_id, _orders.c.status.in_(allowed_from))
                .values(values)
            )
            row = await _order_row(connection, order_id)
            if row is None:
                raise UnknownOrderError(f"no order {order_id}")
            if result.rowcount == 0:
                raise IllegalOrderTransition(row.client_order_id, row.status, status)
        return row

    async def apply_venue_state(self, order_id: str, state: VenueState) -> OrderChange:
        """Apply what the venue said (status, cumulative fills, ack) in one transaction.

        A status equal to the stored one is no change; any other is validated and an illegal one
        raises :class:`IllegalOrderTransition` with nothing written (unless ``state.from_venue``:
        see :class:`VenueState`; both rules are decided on the row as read in this transaction).
        A cumulative filled amount above the stored one adds one fill and moves the real position;
        a lower one (a stale answer) is ignored.
        """
        at = state.at
        async with self._database.engine.begin() as connection:
            touched = await connection.execute(
                # A write that changes nothing, to take the write lock before reading.
                update(_orders)
                .where(_orders.c.id == order_id)
                .values(status=_orders.c.status, updated_at=_orders.c.updated_at)
            )
            if touched.rowcount == 0:
                raise UnknownOrderError(f"no order {order_id}")
            before = await _order_row(connection, order_id)
            assert before is not None
            target = before.status if state.status is None else OrderStatus(state.status)
            ignored: OrderStatus | None = None
            if state.from_venue:
                kept = status_after_venue_answer(before.status, target)
                if kept is not target and target not in ORDER_TRANSITIONS[before.status]:
                    ignored = target
                target = kept
            if target is not before.status and target not in ORDER_TRANSITIONS[before.status]:
                raise IllegalOrderTransition(before.client_order_id, before.status, target)

            values: dict[str, Any] = {"status": target.value}
            fill: FillRecord | None = None
            position: RealPositionRecord | None = None
            filled, average = before.filled, before.average_price
            delta = state.filled - before.filled
            if delta > 0 and not _is_zero(delta, state.filled):
                fallback = before.price or before.stop_price or before.intent_price or 0.0
                price = _delta_price(
                    before.filled, before.average_price, state.filled, state.average, fallback
                )
                fees_so_far = await _fee_total(connection, order_id)
                fill = FillRecord(
                    id=new_id(),
                    order_id=order_id,
                    exchange_trade_id=f"{CUMULATIVE_FILL_PREFIX}{state.filled:.12g}",
                    price=price,
                    amount=delta,
                    fee=max(state.fee - fees_so_far, 0.0),
                    fee_currency=state.fee_currency,
                    at=at,
                    realized_pnl=None,
                )
                inserted = await _insert_fill(connection, self._database.backend, fill)
                if inserted:
                    position, realized = await _apply_fill(connection, before, fill)
                    if realized is not None:
                        fill = replace(fill, realized_pnl=realized)
                        await connection.execute(
                            update(_fills).where(_fills.c.id == fill.id).values(realized_pnl=realized)
                        )
                    if position is not None and before.real_position_id != position.id:
                        values["real_position_id"] = position.id
                    filled = state.filled
                    average = state.average if state.average is not None else price
                else:
                    fill = None
            if fill is not None:
                values["filled"] = filled
                values["average_price"] = average
                values["slippage_bps"] = slippage_bps(before.side, before.intent_price, average)
                if before.filled <= 0 and before.fill_latency_ms is None:
                    values["fill_latency_ms"] = _ms_between(before.created_at, at)
            if target is OrderStatus.FILLED and before.filled_at is None:
                values["filled_at"] = at
            if state.exchange_order_id and before.exchange_order_id is None:
                values["exchange_order_id"] = state.exchange_order_id
            if state.acknowledged and before.acknowledged_at is None:
                values["acknowledged_at"] = at
                values["ack_latency_ms"] = _ms_between(before.created_at, at)
            if state.reject_reason and target is not before.status and target.is_final:
                values["reject_reason"] = state.reject_reason
            if (
                state.amount is not None
                and state.amount > 0
                and not _is_zero(state.amount - before.amount, state.amount)
            ):
                values["amount"] = state.amount
            stored = _stored_values(before)
            values = {
                key: value for key, value in values.items() if key not in stored or stored[key] != value
            }
            if values:
                values["updated_at"] = at
                await connection.execute(update(_orders).where(_orders.c.id == order_id).values(values))
            after = await _order_row(connection, order_id)
            assert after is not None
        return OrderChange(before, after, fill, position, ignored)

    # ----------------------------------------------------------------- writes: positions

    async def create_position(
        self,
        *,
        connection_id: str,
        symbol: str,
        side: PositionSide,
        mode: TradingMode,
        entry_price: float,
        quantity: float,
        at: datetime,
        leverage: float | None = None,
        contract_size: float | None = None,
        take_profit: float | None = None,
        stop_loss: float | None = None,
        set_id: str | None = None,
    ) -> RealPositionRecord:
        """A real position that no order of ours opened (reconciliation adopting the exchange's)."""
        values = _position_values(
            connection_id=connection_id,
            symbol=symbol,
            side=side,
            mode=mode,
            entry_price=entry_price,
            quantity=quantity,
            at=at,
            fees=0.0,
            leverage=leverage,
            contract_size=contract_size,
            take_profit=take_profit,
            stop_loss=stop_loss,
            set_id=set_id,
        )
        async with self._database.engine.begin() as connection:
            await connection.execute(insert(_positions).values(values))
            row = await _position_row(connection, values["id"])
        assert row is not None
        return row

    async def set_position_quantity(
        self, position_id: str, quantity: float, *, price: float, at: datetime
    ) -> RealPositionRecord:
        """Bring a position to ``quantity`` without an order of ours (reconciliation's confirmed
        fixes): a reduction realises PnL at ``price``, an increase averages in at ``price``, zero
        closes it."""
        async with self._database.engine.begin() as connection:
            touched = await connection.execute(
                update(_positions)
                .where(_positions.c.id == position_id)
                .values(quantity=_positions.c.quantity)
            )
            if touched.rowcount == 0:
                raise UnknownOrderError(f"no real position {position_id}")
            position = await _position_row(connection, position_id)
            assert position is not None
            change = quantity - position.quantity
            values: dict[str, Any]
            if change < 0:
                values, _ = _reduce_values(position, -change, price, 0.0, at)
            elif change > 0:
                values = _increase_values(position, change, price, 0.0)
            else:
                values = {}
            if values:
                await connection.execute(
                    update(_positions).where(_positions.c.id == position_id).values(values)
                )
            row = await _position_row(connection, position_id)
        assert row is not None
        return row

    # ----------------------------------------------------------------- reads: orders

    async def get(self, order_id: str) -> OrderRecord | None:
        async with self._database.engine.connect() as connection:
            return await _order_row(connection, order_id)

    async def get_by_client_id(self, client_order_id: str) -> OrderRecord | None:
        async with self._database.engine.connect() as connection:
            row = (
                await connection.execute(select(_orders).where(_orders.c.client_order_id == client_order_id))
            ).first()
        return _order(row._asdict()) if row is not None else None

    async def list_orders(
        self,
        connection_id: str | None = None,
        *,
        statuses: Sequence[OrderStatus] | None = None,
        symbol: str | None = None,
        mode: TradingMode | None = None,
        limit: int | None = None,
        updated_since: datetime | None = None,
    ) -> list[OrderRecord]:
        """Orders newest first, optionally filtered (``updated_since``: last changed at or after)."""
        statement = select(_orders).order_by(_orders.c.created_at.desc(), _orders.c.id)
        if connection_id is not None:
            statement = statement.where(_orders.c.connection_id == connection_id)
        if statuses is not None:
            statement = statement.where(_orders.c.status.in_([OrderStatus(s).value for s in statuses]))
        if updated_since is not None:
            statement = statement.where(_orders.c.updated_at >= updated_since)
        if symbol is not None:
            statement = statement.where(_orders.c.symbol == symbol)
        if mode is not None:
            statement = statement.where(_orders.c.mode == TradingMode(mode).value)
        if limit is not None:
            statement = statement.limit(limit)
        async with self._database.engine.connect() as connection:
            return [_order(row._asdict()) for row in await connection.execute(statement)]

    async def count_open_orders(self, connection_id: str) -> int:
        """How many orders of the connection are not final (what the Orders dock lists)."""
        statement = (
            select(func.count())
            .select_from(_orders)
            .where(
                _orders.c.connection_id == connection_id,
                _orders.c.status.not_in([s.value for s in FINAL_ORDER_STATUSES]),
            )
        )
        async with self._database.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def active_orders(self, connection_id: str) -> list[OrderRecord]:
        """Open, partially filled and pending-cancel orders, oldest first (polling order)."""
        rows = await self.list_orders(connection_id, statuses=sorted(ACTIVE_STATUSES))
        return rows[::-1]

    async def pending_orders(self, connection_id: str) -> list[OrderRecord]:
        """Orders still ``pending_create``: sent or not, the venue has not told us yet."""
        rows = await self.list_orders(connection_id, statuses=[OrderStatus.PENDING_CREATE])
        return rows[::-1]

    async def children(self, parent_id: str) -> list[OrderRecord]:
        """The take-profit/stop-loss orders of an entry, oldest first."""
        statement = select(_orders).where(_orders.c.parent_id == parent_id).order_by(_orders.c.created_at)
        async with self._database.engine.connect() as connection:
            return [_order(row._asdict()) for row in await connection.execute(statement)]

    async def entries_without_children(self, connection_id: str, tp_sl_mode: str) -> list[OrderRecord]:
        """Final, (partly) filled entries with take-profit/stop-loss of ``tp_sl_mode`` that have no
        child order yet and whose real position is still open: protection still to place or adopt."""
        child = _orders.alias("child")
        statement = (
            select(_orders)
            .join(_positions, _positions.c.id == _orders.c.real_position_id)
            .where(
                _orders.c.connection_id == connection_id,
                _orders.c.tp_sl_mode == tp_sl_mode,
                _orders.c.parent_id.is_(None),
                _orders.c.filled > 0,
                or_(_orders.c.take_profit.is_not(None), _orders.c.stop_loss.is_not(None)),
                _positions.c.status == POSITION_OPEN,
                ~select(child.c.id).where(child.c.parent_id == _orders.c.id).exists(),
            )
            .order_by(_orders.c.created_at)
        )
        async with self._database.engine.connect() as connection:
            return [_order(row._asdict()) for row in await connection.execute(statement)]

    async def open_protective_orders(self, position_id: str) -> list[OrderRecord]:
        """Non-final take-profit/stop-loss and reduce-only orders of a position."""
        statement = (
            select(_orders)
            .where(_orders.c.real_position_id == position_id, _open_protective())
            .order_by(_orders.c.created_at)
        )
        async with self._database.engine.connect() as connection:
            return [_order(row._asdict()) for row in await connection.execute(statement)]

    async def protective_orders_of_closed_positions(self, connection_id: str) -> list[OrderRecord]:
        """Non-final TP/SL and reduce-only orders whose position is already closed: leftovers to
        cancel (a sibling filled, or the position closed while the application was not running)."""
        statement = (
            select(_orders)
            .join(_positions, _positions.c.id == _orders.c.real_position_id)
            .where(
                _orders.c.connection_id == connection_id,
                _positions.c.status == POSITION_CLOSED,
                _open_protective(),
            )
            .order_by(_orders.c.created_at)
        )
        async with self._database.engine.connect() as connection:
            return [_order(row._asdict()) for row in await connection.execute(statement)]

    async def order_views(
        self, connection_id: str | None = None, *, open_only: bool = True, limit: int | None = 500
    ) -> list[OrderView]:
        """Rows for the Orders dock: non-final orders (or all), newest first."""
        statuses = [s for s in OrderStatus if not s.is_final] if open_only else None
        return [o.view() for o in await self.list_orders(connection_id, statuses=statuses, limit=limit)]

    async def fills(self, order_id: str) -> list[FillRecord]:
        statement = select(_fills).where(_fills.c.order_id == order_id).order_by(_fills.c.at, _fills.c.amount)
        async with self._database.engine.connect() as connection:
            return [_fill(row._asdict()) for row in await connection.execute(statement)]

    # ----------------------------------------------------------------- reads: positions

    async def get_position(self, position_id: str) -> RealPositionRecord | None:
        async with self._database.engine.connect() as connection:
            return await _position_row(connection, position_id)

    async def open_positions(
        self, connection_id: str | None = None, *, mode: TradingMode | None = None
    ) -> list[RealPositionRecord]:
        """Open real positions, oldest first."""
        statement = (
            select(_positions).where(_positions.c.status == POSITION_OPEN).order_by(_positions.c.opened_at)
        )
        if connection_id is not None:
            statement = statement.where(_positions.c.connection_id == connection_id)
        if mode is not None:
            statement = statement.where(_positions.c.mode == TradingMode(mode).value)
        async with self._database.engine.connect() as connection:
            return [_position(row._asdict()) for row in await connection.execute(statement)]

    async def count_open_positions(self, connection_id: str) -> int:
        """How many real positions of the connection are open (every mode)."""
        statement = (
            select(func.count())
            .select_from(_positions)
            .where(_positions.c.connection_id == connection_id, _positions.c.status == POSITION_OPEN)
        )
        async with self._database.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def position_views(
        self, connection_id: str | None = None, marks: Mapping[str, float] | None = None
    ) -> list[PositionView]:
        """Rows for the Positions dock; ``marks`` (symbol → price) fills in unrealised PnL."""
        marks = marks or {}
        return [p.view(marks.get(p.symbol)) for p in await self.open_positions(connection_id)]


# --------------------------------------------------------------------------- helpers


def _open_protective() -> ColumnElement[bool]:
    """Non-final take-profit/stop-loss and reduce-only orders: what protects (or reduces) a position."""
    return and_(
        _orders.c.status.not_in([s.value for s in FINAL_ORDER_STATUSES]),
        or_(
            _orders.c.reduce_only.is_(True),
            _orders.c.order_type.in_([OrderType.TAKE_PROFIT.value, OrderType.STOP_LOSS.value]),
        ),
    )


def _position_values(
    *,
    connection_id: str,
    symbol: str,
    side: PositionSide,
    mode: TradingMode,
    entry_price: float,
    quantity: float,
    at: datetime,
    fees: float,
    leverage: float | None,
    contract_size: float | None,
    take_profit: float | None,
    stop_loss: float | None,
    set_id: str | None = None,
) -> dict[str, Any]:
    """The row of a newly opened real position, with a fresh id."""
    return {
        "id": new_id(),
        "connection_id": connection_id,
        "set_id": set_id,
        "symbol": symbol,
        "side": PositionSide(side).value,
        "mode": TradingMode(mode).value,
        "entry_price": entry_price,
        "quantity": quantity,
        "take_profit": take_profit,
        "stop_loss": stop_loss,
        "status": POSITION_OPEN,
        "opened_at": at,
        "realized_pnl": 0.0,
        "fees": fees,
        "leverage": leverage,
        "contract_size": contract_size,
    }


def _stored_values(record: OrderRecord) -> dict[str, Any]:
    """The stored column values of ``record`` that ``apply_venue_state`` may write."""
    return {
        "status": record.status.value,
        "real_position_id": record.real_position_id,
        "filled": record.filled,
        "average_price": record.average_price,
        "slippage_bps": record.slippage_bps,
        "fill_latency_ms": record.fill_latency_ms,
        "filled_at": record.filled_at,
        "exchange_order_id": record.exchange_order_id,
        "acknowledged_at": record.acknowledged_at,
        "ack_latency_ms": record.ack_latency_ms,
        "reject_reason": record.reject_reason,
        "amount": record.amount,
    }


def _ms_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def _intent_values(order: NewOrder) -> dict[str, Any]:
    return {
        "id": order.id or new_id(),
        "client_order_id": order.client_order_id,
        "connection_id": order.connection_id,
        "real_position_id": order.real_position_id,
        "parent_id": order.parent_id,
        "exchange_order_id": order.exchange_order_id,
        "symbol": order.symbol,
        "side": OrderSide(order.side).value,
        "order_type": OrderType(order.type).value,
        "time_in_force": TimeInForce(order.time_in_force).value,
        "price": order.price,
        "stop_price": order.stop_price,
        "amount": order.amount,
        "filled": 0.0,
        "average_price": None,
        "status": OrderStatus.PENDING_CREATE.value,
        "mode": TradingMode(order.mode).value,
        "reduce_only": order.reduce_only,
        "position_side": PositionSide(order.position_side).value if order.position_side else None,
        "leverage": order.leverage,
        "contract_size": order.contract_size,
        "take_profit": order.take_profit,
        "stop_loss": order.stop_loss,
        "tp_sl_mode": order.tp_sl_mode,
        "intent_price": order.intent_price,
        "reason": order.reason,
        "actor": order.actor,
        "created_at": order.created_at,
        "updated_at": order.created_at,
    }


async def _order_row(connection: AsyncConnection, order_id: str) -> OrderRecord | None:
    row = (await connection.execute(select(_orders).where(_orders.c.id == order_id))).first()
    return _order(row._asdict()) if row is not None else None


async def _position_row(connection: AsyncConnection, position_id: str) -> RealPositionRecord | None:
    row = (await connection.execute(select(_positions).where(_positions.c.id == position_id))).first()
    return _position(row._asdict()) if row is not None else None


async def _fee_total(connection: AsyncConnection, order_id: str) -> float:
    total = (
        await connection.execute(
            select(func.coalesce(func.sum(_fills.c.fee), 0.0)).where(_fills.c.order_id == order_id)
        )
    ).scalar_one()
    return float(total)


async def _insert_fill(connection: AsyncConnection, backend: str, fill: FillRecord) -> bool:
    """Insert unless ``(order_id, exchange_trade_id)`` is stored already; True when inserted."""
    statement = (
        dialect_insert(backend, _fills)
        .values(
            id=fill.id,
            order_id=fill.order_id,
            exchange_trade_id=fill.exchange_trade_id,
            price=fill.price,
            amount=fill.amount,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            at=fill.at,
            realized_pnl=None,
        )
        .on_conflict_do_nothing(index_elements=[_fills.c.order_id, _fills.c.exchange_trade_id])
    )
    result = await connection.execute(statement)
    return bool(result.rowcount)


async def _apply_fill(
    connection: AsyncConnection, order: OrderRecord, fill: FillRecord
) -> tuple[RealPositionRecord | None, float | None]:
    """Move the order's real position by ``fill``; returns the position and the realised PnL
    (None for an opening fill). A reducing fill with no open position to reduce moves nothing."""
    side = order.affected_side
    position: RealPositionRecord | None = None
    if order.real_position_id is not None:
        position = await _position_row(connection, order.real_position_id)
    elif not order.opens:
        row = (
            await connection.execute(
                select(_positions)
                .where(
                    _positions.c.connection_id == order.connection_id,
                    _positions.c.symbol == order.symbol,
                    _positions.c.side == side.value,
                    _positions.c.mode == order.mode.value,
                    _positions.c.status == POSITION_OPEN,
                )
                .order_by(_positions.c.opened_at)
                .limit(1)
            )
        ).first()
        position = _position(row._asdict()) if row is not None else None

    if order.opens:
        if position is None or not position.is_open:
            values = _position_values(
                connection_id=order.connection_id,
                symbol=order.symbol,
                side=side,
                mode=order.mode,
                entry_price=fill.price,
                quantity=fill.amount,
                at=fill.at,
                fees=fill.fee,
                leverage=order.leverage,
                contract_size=order.contract_size,
                take_profit=order.take_profit,
                stop_loss=order.stop_loss,
            )
            await connection.execute(insert(_positions).values(values))
            return await _position_row(connection, values["id"]), None
        increase = _increase_values(position, fill.amount, fill.price, fill.fee)
        await connection.execute(update(_positions).where(_positions.c.id == position.id).values(increase))
        return await _position_row(connection, position.id), None

    if position is None or not position.is_open:
        return position, None
    values, realized = _reduce_values(position, fill.amount, fill.price, fill.fee, fill.at)
    await connection.execute(update(_positions).where(_positions.c.id == position.id).values(values))
    return await _position_row(connection, position.id), realized


def _increase_values(position: RealPositionRecord, amount: float, price: float, fee: float) -> dict[str, Any]:
    quantity = position.quantity + amount
    entry = (position.entry_price * position.quantity + price * amount) / quantity
    return {"quantity": quantity, "entry_price": entry, "fees": position.fees + fee}


def _reduce_values(
    position: RealPositionRecord, amount: float, price: float, fee: float, at: datetime
) -> tuple[dict[str, Any], float]:
    """Close ``amount`` (at most the position) at ``price``; a fill larger than the position only
    realises the part that existed (the venue may have netted the rest elsewhere)."""
    closing = min(amount, position.quantity)
    realized = position_pnl(
        position.side, position.entry_price, price, closing, position.contract_size or 1.0
    )
    quantity = position.quantity - closing
    values: dict[str, Any] = {
        "quantity": quantity,
        "realized_pnl": position.realized_pnl + realized,
        "fees": position.fees + fee,
    }
    if _is_zero(quantity, position.quantity):
        values.update(quantity=0.0, status=POSITION_CLOSED, closed_at=at)
    return values, realized


def _order(row: Mapping[str, Any]) -> OrderRecord:
    return OrderRecord(
        id=row["id"],
        client_order_id=row["client_order_id"],
        connection_id=row["connection_id"],
        real_position_id=row["real_position_id"],
        parent_id=row["parent_id"],
        exchange_order_id=row["exchange_order_id"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        price=row["price"],
        stop_price=row["stop_price"],
        amount=row["amount"],
        filled=row["filled"],
        average_price=row["average_price"],
        status=OrderStatus(row["status"]),
        mode=TradingMode(row["mode"]),
        reduce_only=bool(row["reduce_only"]),
        position_side=PositionSide(row["position_side"]) if row["position_side"] else None,
        leverage=row["leverage"],
        contract_size=row["contract_size"],
        take_profit=row["take_profit"],
        stop_loss=row["stop_loss"],
        tp_sl_mode=row["tp_sl_mode"],
        intent_price=row["intent_price"],
        reject_reason=row["reject_reason"],
        reason=row["reason"],
        actor=row["actor"],
        ack_latency_ms=row["ack_latency_ms"],
        fill_latency_ms=row["fill_latency_ms"],
        slippage_bps=row["slippage_bps"],
        created_at=row["created_at"],
        acknowledged_at=row["acknowledged_at"],
        filled_at=row["filled_at"],
        updated_at=row["updated_at"],
    )


def _fill(row: Mapping[str, Any]) -> FillRecord:
    return FillRecord(
        id=row["id"],
        order_id=row["order_id"],
        exchange_trade_id=row["exchange_trade_id"],
        price=row["price"],
        amount=row["amount"],
        fee=row["fee"],
        fee_currency=row["fee_currency"],
        at=row["at"],
        realized_pnl=row["realized_pnl"],
    )


def _position(row: Mapping[str, Any]) -> RealPositionRecord:
    return RealPositionRecord(
        id=row["id"],
        connection_id=row["connection_id"],
        set_id=row["set_id"],
        symbol=row["symbol"],
        side=PositionSide(row["side"]),
        mode=TradingMode(row["mode"]),
        entry_price=row["entry_price"],
        quantity=row["quantity"],
        take_profit=row["take_profit"],
        stop_loss=row["stop_loss"],
        status=row["status"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        realized_pnl=row["realized_pnl"],
        fees=row["fees"],
        leverage=row["leverage"],
        contract_size=row["contract_size"],
    )


__all__ = [
    "ACTIVE_STATUSES",
    "DuplicateClientOrderIdError",
    "FillRecord",
    "IllegalOrderTransition",
    "NewOrder",
    "OrderChange",
    "OrderRecord",
    "OrderRepository",
    "RealPositionRecord",
    "UnknownOrderError",
    "VenueState",
    "position_pnl",
    "slippage_bps",
    "status_after_venue_answer",
]
