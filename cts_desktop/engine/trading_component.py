"""The order loop of a connection engine as a pluggable component.

The connection engine supervises the loop (its interval, its health, its crash handling) but does
not know how orders are decided, checked and sent: that is the :class:`TradingComponent`. The
real one (risk gate → order executor → reconciler) is built elsewhere and plugged in through the
coordinator's ``trading_factory``; until then :class:`VenueTradingComponent` works directly on the
engine's trading venue (the paper venue in paper mode), so start, pause, emergency stop and the
Orders and Positions docks run end to end today.

Why a Protocol and a factory instead of a base class: the engine only needs the calls below, and
a factory receiving a :class:`TradingContext` lets the real component take whatever it needs
(database, risk settings, the pseudo pipeline's promotions) without the engine changing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import (
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    PositionSide,
    PositionSnapshot,
)
from cts_desktop.domain.orders import OrderView, PositionView, ReconcileDifference
from cts_desktop.engine.events import EventBus, OrdersChanged, PositionsChanged
from cts_desktop.engine.orders import venue_status
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.errors import ExchangeError, OrderNotFoundError

if TYPE_CHECKING:
    from cts_desktop.engine.market_bus import MarketBus
    from cts_desktop.engine.pseudo.pipeline import PseudoPipeline
    from cts_desktop.engine.risk import AccountState, RiskLimits
    from cts_desktop.storage.database import Database
    from cts_desktop.storage.repositories.connections import ConnectionRecord

log = logging.getLogger(__name__)

__all__ = [
    "TradingActionError",
    "TradingComponent",
    "TradingComponentFactory",
    "TradingContext",
    "VenueTradingComponent",
    "order_view",
    "position_view",
]


class TradingActionError(RuntimeError):
    """``cancel_all`` or ``flatten`` did part of the job: ``done`` succeeded, the message says
    what failed (an emergency stop reports both instead of losing the count)."""

    def __init__(self, done: int, message: str) -> None:
        super().__init__(message)
        self.done = done


@runtime_checkable
class TradingComponent(Protocol):
    """What the connection engine asks of its order loop.

    ``cycle`` runs every ``system.active_order_interval_ms`` after the previous cycle finished,
    also while the engine is paused (``accepting_new=False``): pause stops new positions, never the
    monitoring and protection of open ones (D14). A cycle that raises is counted as an error and
    the loop goes on; many failing cycles in a row put the engine into ``error``.
    """

    async def start(self) -> None:
        """Prepare before the first cycle (load the account, re-check open orders); raising fails
        the engine's start (retried with backoff when the error is retryable)."""
        ...

    async def cycle(self, *, accepting_new: bool) -> None: ...

    async def cancel_all(self) -> int:
        """Cancel every open order of the connection; return how many were cancelled (raise
        :class:`TradingActionError` when only some could be)."""
        ...

    async def cancel_order(self, client_order_id: str) -> OrderView:
        """Cancel one open order (the Orders dock); returns it as it ended (cancelled, or filled
        if it filled first). ``LookupError`` when this connection has no such open order."""
        ...

    async def flatten(self) -> int:
        """Close every open position with reduce-only market orders; return how many were closed
        (raise :class:`TradingActionError` when only some could be)."""
        ...

    async def open_orders(self) -> list[OrderView]: ...

    async def open_positions(self) -> list[PositionView]: ...

    async def open_counts(self) -> tuple[int, int]:
        """(open orders, open positions) of the connection, as the docks would list them, for
        the health loop: cheaper than building the views."""
        ...

    async def reconcile(self, apply: bool = True) -> list[ReconcileDifference]: ...

    async def apply_difference(self, difference: ReconcileDifference) -> None: ...

    async def close(self) -> None:
        """Release what ``start`` took; the engine closes the venues afterwards."""
        ...

    def risk_view(self) -> tuple[AccountState, RiskLimits] | None:
        """The latest account state and the limits it is judged by, for the circuit breakers
        (daily loss, drawdown); None when this component does not track the account."""
        ...


@dataclass(frozen=True, slots=True)
class TradingContext:
    """Everything a trading component may need, handed to its factory by the engine.

    New fields get defaults, so factories written against this version keep working.
    """

    connection: ConnectionRecord
    mode: TradingMode
    venue: Exchange
    bus: EventBus
    setting: Callable[[str], Any]
    market_bus: MarketBus | None = None
    source: str = ""
    pipeline: PseudoPipeline | None = None
    database: Database | None = None


type TradingComponentFactory = Callable[[TradingContext], TradingComponent]


def _utc(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def order_view(order: OrderSnapshot, connection_id: str, mode: TradingMode) -> OrderView:
    """A venue's order as a row of the Orders dock."""
    return OrderView(
        id=order.id,
        client_order_id=order.client_order_id or "",
        connection_id=connection_id,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        amount=order.amount,
        filled=order.filled,
        status=venue_status(order),
        mode=mode,
        price=order.price,
        average_price=order.average,
        exchange_order_id=order.id,
        reject_reason=order.reject_reason,
        created_at=_utc(order.timestamp_ms),
    )


def position_view(position: PositionSnapshot, connection_id: str, mode: TradingMode) -> PositionView:
    """A venue's position as a row of the Positions dock."""
    return PositionView(
        connection_id=connection_id,
        symbol=position.symbol,
        side=position.side,
        contracts=position.contracts,
        entry_price=position.entry_price,
        mode=mode,
        mark_price=position.mark_price,
        unrealized_pnl=position.unrealized_pnl,
        realized_pnl=position.realized_pnl,
        leverage=position.leverage,
    )


class VenueTradingComponent:
    """The built-in order loop: reads and acts on the trading venue directly, decides nothing.

    It opens no position of its own (there is no risk gate or executor behind it yet); what it
    does is what a stop and an emergency stop need and what the docks show: list, cancel and
    flatten on the venue, and announce ``OrdersChanged`` / ``PositionsChanged`` when the venue's
    open orders or positions change (the paper venue fills resting TP/SL orders on its own as
    prices arrive, so changes happen without this component acting).

    The venue is polled at most every ``poll_interval_s`` (not every 50 ms cycle): cheap for the
    paper venue, which answers from memory, and not a request storm should this component ever
    run against a real exchange. ``reconcile`` finds nothing: there are no local order records to
    compare with the venue.
    """

    def __init__(
        self,
        context: TradingContext,
        *,
        poll_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._venue = context.venue
        self._connection_id = context.connection.id
        self._mode = context.mode
        self._bus = context.bus
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._next_poll = 0.0
        self._orders_key: tuple[tuple[Any, ...], ...] | None = None
        self._positions_key: tuple[tuple[Any, ...], ...] | None = None
        self._counts: tuple[int, int] | None = None  # from the last refresh

    @classmethod
    def create(cls, context: TradingContext) -> VenueTradingComponent:
        """The default ``TradingComponentFactory``."""
        return cls(context)

    async def start(self) -> None:
        # Loads (or creates) the paper account now, so a broken database fails the start rather
        # than the first order; on a real venue this is the credentials' first signed call.
        await self._venue.fetch_balance()
        await self._refresh(force=True)

    async def cycle(self, *, accepting_new: bool) -> None:
        await self._refresh()

    async def cancel_all(self) -> int:
        cancelled = 0
        errors: list[str] = []
        for order in await self._venue.fetch_open_orders():
            try:
                await self._venue.cancel_order(order.id, order.symbol)
            except OrderNotFoundError:
                continue  # filled or cancelled in the meantime: nothing left to cancel
            except ExchangeError as exc:
                errors.append(f"{order.symbol} order {order.id}: {exc}")
                continue
            cancelled += 1
        if cancelled:
            await self._refresh(force=True)
        if errors:
            raise TradingActionError(cancelled, f"{len(errors)} order(s) not cancelled: " + "; ".join(errors))
        return cancelled

    async def cancel_order(self, client_order_id: str) -> OrderView:
        for order in await self._venue.fetch_open_orders():
            if order.client_order_id == client_order_id:
                cancelled = await self._venue.cancel_order(order.id, order.symbol)
                await self._refresh(force=True)
                return order_view(cancelled, self._connection_id, self._mode)
        raise LookupError(f"no open order {client_order_id} on {self._context.connection.name}")

    async def flatten(self) -> int:
        closed = 0
        errors: list[str] = []
        for position in await self._venue.fetch_positions():
            if position.contracts <= 0:
                continue
            side = OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY
            request = OrderRequest(
                symbol=position.symbol,
                side=side,
                type=OrderType.MARKET,
                amount=position.contracts,
                client_order_id=f"flat-{uuid.uuid4().hex[:20]}",
                reduce_only=True,
                position_side=position.side,
            )
            try:
                await self._venue.create_order(request)
            except ExchangeError as exc:
                errors.append(f"{position.symbol} {position.side}: {exc}")
                continue
            closed += 1
        if closed:
            await self._refresh(force=True)
        if errors:
            raise TradingActionError(closed, f"{len(errors)} position(s) not closed: " + "; ".join(errors))
        return closed

    async def open_orders(self) -> list[OrderView]:
        return [order_view(o, self._connection_id, self._mode) for o in await self._venue.fetch_open_orders()]

    async def open_positions(self) -> list[PositionView]:
        return [
            position_view(p, self._connection_id, self._mode)
            for p in await self._venue.fetch_positions()
            if p.contracts > 0
        ]

    async def open_counts(self) -> tuple[int, int]:
        """What the last refresh fetched while it is fresh (within the poll interval), else a
        refresh now (which also announces any change to the docks)."""
        if self._counts is None or self._clock() >= self._next_poll:
            await self._refresh(force=True)
        assert self._counts is not None
        return self._counts

    async def reconcile(self, apply: bool = True) -> list[ReconcileDifference]:
        return []

    async def apply_difference(self, difference: ReconcileDifference) -> None:
        raise ValueError(
            "the built-in order loop keeps no local order records, so it has no difference to apply "
            f"({difference.kind.value} on {difference.symbol})"
        )

    async def close(self) -> None:
        self._orders_key = self._positions_key = None
        self._counts = None

    def risk_view(self) -> tuple[AccountState, RiskLimits] | None:
        return None  # it opens no positions of its own, so it tracks no account

    async def _refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now < self._next_poll:
            return
        self._next_poll = now + self._poll_interval_s
        orders = await self._venue.fetch_open_orders()
        orders_key = tuple(sorted((o.id, o.status.value, o.filled) for o in orders))
        positions = await self._venue.fetch_positions()
        positions_key = tuple(sorted((p.symbol, p.side.value, p.contracts) for p in positions))
        self._counts = (len(orders), sum(1 for p in positions if p.contracts > 0))
        # The first look counts as a change too: the docks then show what a restored paper
        # account (or a live account) already holds as soon as the engine starts.
        if orders_key != self._orders_key:
            self._orders_key = orders_key
            self._bus.publish(OrdersChanged(connection_id=self._connection_id))
        if positions_key != self._positions_key:
            self._positions_key = positions_key
            self._bus.publish(PositionsChanged(connection_id=self._connection_id))
