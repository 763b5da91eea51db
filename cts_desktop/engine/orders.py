"""Safe order execution for one connection: risk gate, intent written first, send, confirm, track.

The shape is hummingbot's in-flight order tracking, with the rules PITFALLS.md learned the hard way:

1. **Risk first.** ``risk_check`` sees every intent before anything is written or sent. A refusal
   is *not* stored as an order (nothing was ever meant to reach the venue, and the Orders dock
   lists venue orders): it is logged with the rule and its numbers, published as ``OrderRefused``
   when an event bus is given, and raised as :class:`OrderRefusedError` carrying the decision, so
   the caller can show it.
2. **Intent before request.** The order is stored as ``pending_create`` with a fresh client order
   id in one transaction, then sent with that id. A crash in between leaves a row that
   reconciliation resolves by looking the id up (``engine/reconcile.py``).
3. **Retry only what cannot have placed the order; look before any resend.**

   * InvalidOrder, InsufficientFunds, Authentication, Permission, BadSymbol, NotSupported: the
     venue refused it. Status ``rejected`` with the venue's reason; no retry.
   * RateLimited (HTTP 429): refused before processing. Retried with backoff.
   * Network (timeout, dropped connection), ExchangeDown (5xx) and unknown errors: the venue may
     have placed the order (Binance documents 5xx as "execution status UNKNOWN"). Before any
     resend the order is looked up by its client id: found → adopted; not found → resent with
     the *same* client id (venues refuse a duplicate of an open id, so a late original and the
     resend cannot both rest); the lookup itself failing → left ``pending_create`` for
     reconciliation and reported, never resent blind. A refusal of a resend after such an error
     is looked up too: it may be the venue refusing our own duplicate.
   * After the retry budget (3 attempts by default, exponential backoff with jitter, at least
     1 s between attempts): a final lookup if the order may exist, then ``failed`` with the
     last reason.

   Residual risk, stated: venues check duplicates among *open* orders only, so if the original
   of a timed-out market order arrives and fills after the lookup said "not found" and before
   the resend, both execute. The backoff wait before the lookup makes that window small.
4. **Everything measured.** Latency intent → acknowledgement and intent → first fill, signed
   slippage of the average price against the intent's reference price (positive = worse for
   us), and every rejection with the venue's reason, on the order row.

Take-profit/stop-loss: where the venue can attach them (``supports_attached_tp_sl``) they travel
with the entry, and the children the venue creates (the paper venue's ``<id>:tp`` / ``<id>:sl``,
see :func:`parent_client_id`) are adopted as our orders so their fills move our positions.
Elsewhere the engine places separate reduce-only TAKE_PROFIT / STOP_LOSS orders once the entry is
final with a fill, for the filled amount; when one of them fills (or the position closes) the
others are cancelled. What a crash or a confirmed reconciliation leaves undone (protection not
placed, children not adopted, leftovers of a closed position) is done by
:meth:`OrderExecutor.recover`, once after reconciliation, not on every poll.

Fills are derived from each order's cumulative state (see ``storage/repositories/orders.py``), so
polling, acknowledgements and reconciliation can all apply the same venue answer safely.

Client order ids: ``<prefix><9 base-36 digits of the intent time in ms><12 random base-36 chars>``,
lower-case letters and digits only, starting with a letter, at most 8 + 9 + 12 = 29 characters:
within Binance's 36 (``^[.A-Z:/a-z0-9_-]{1,36}$``), Bybit's 36, OKX's 32 (alphanumeric) and
BingX's 40. The random part (62 bits) makes collisions negligible; the database's unique key on
the column refuses one anyway, and a new id is drawn.

Leverage is recorded with the order, not set here: margin mode, position mode and leverage per
symbol are set by the connection engine before it trades (D13), because setting leverage
re-margins open positions.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Final

from cts_desktop.domain.enums import Actor, TradingMode
from cts_desktop.domain.market import (
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    PositionSide,
    VenueOrderStatus,
)
from cts_desktop.domain.orders import OrderIntent, OrderStatus, OrderView, RiskDecision, affected_side
from cts_desktop.engine.events import EventBus, OrderRefused, OrdersChanged, PositionsChanged
from cts_desktop.exchanges.backoff import BackoffPolicy, Jitter
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.clock import SystemClock
from cts_desktop.exchanges.errors import BadSymbolError, ErrorKind, ExchangeError, OrderNotFoundError
from cts_desktop.storage.repositories.orders import (
    ACTIVE_STATUSES,
    DuplicateClientOrderIdError,
    IllegalOrderTransition,
    NewOrder,
    OrderChange,
    OrderRecord,
    OrderRepository,
    UnknownOrderError,
    VenueState,
)

log = logging.getLogger(__name__)

type RiskCheck = Callable[[OrderIntent], Awaitable[RiskDecision]]
type Sleep = Callable[[float], Awaitable[object]]

DEFAULT_RETRY_POLICY: Final = BackoffPolicy(
    base_s=1.0, factor=2.0, cap_s=8.0, max_attempts=3, jitter=Jitter.DECORRELATED
)
"""Three attempts; decorrelated jitter keeps every wait at least ``base_s``, so a request that
timed out has had a second to land before it is looked up (full jitter could wait ~0 s)."""
DEFAULT_LOST_AFTER: Final = 3
"""Consecutive "not found" answers for an order we believed open before it is marked ``lost``."""
TP_SL_ATTACHED: Final = "attached"
TP_SL_ENGINE: Final = "engine"

# The venue refused the order: retrying would fail the same way (and may lock the key).
REJECTION_KINDS: Final = frozenset(
    {
        ErrorKind.INVALID_ORDER,
        ErrorKind.INSUFFICIENT_FUNDS,
        ErrorKind.AUTHENTICATION,
        ErrorKind.PERMISSION,
        ErrorKind.BAD_SYMBOL,
        ErrorKind.NOT_SUPPORTED,
    }
)
# Refused before the venue processed the request: safe to resend without looking.
NOT_PLACED_KINDS: Final = frozenset({ErrorKind.RATE_LIMITED})

_PREFIX_PATTERN: Final = re.compile(r"[a-z][a-z0-9]{0,7}")
_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_TIME_DIGITS: Final = 9
_RANDOM_DIGITS: Final = 12

_VENUE_STATUS: Final = {
    VenueOrderStatus.OPEN: OrderStatus.OPEN,
    VenueOrderStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    VenueOrderStatus.FILLED: OrderStatus.FILLED,
    VenueOrderStatus.CANCELLED: OrderStatus.CANCELLED,
    VenueOrderStatus.EXPIRED: OrderStatus.CANCELLED,
    VenueOrderStatus.REJECTED: OrderStatus.REJECTED,
}


class OrderRefusedError(Exception):
    """The risk gate refused the intent; nothing was stored or sent. ``decision`` has the rule
    and the numbers it compared, for the UI."""

    def __init__(self, intent: OrderIntent, decision: RiskDecision) -> None:
        self.intent = intent
        self.decision = decision
        numbers = ", ".join(f"{key}={value:.8g}" for key, value in decision.numbers.items())
        text = f"{intent.symbol} {intent.side.value} {intent.amount:.12g} refused by {decision.rule}"
        if decision.message:
            text += f": {decision.message}"
        if numbers:
            text += f" ({numbers})"
        super().__init__(text)


def _base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, remainder = divmod(value, 36)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits))


def new_client_order_id(prefix: str, now_ms: int) -> str:
    """A fresh client order id (format in the module docstring)."""
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"client id prefix {prefix!r} must be 1 to 8 lower-case letters or digits, starting with a letter"
        )
    stamp = _base36(max(now_ms, 0) % 36**_TIME_DIGITS, _TIME_DIGITS)
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_DIGITS))
    return f"{prefix}{stamp}{tail}"


def venue_status(snapshot: OrderSnapshot) -> OrderStatus:
    """Our status for the venue's; an "open" order with fills is partially filled."""
    status = _VENUE_STATUS[snapshot.status]
    if status is OrderStatus.OPEN and snapshot.filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def parent_client_id(client_order_id: str | None) -> str | None:
    """The client id a venue-derived child id was made from (``<parent>:tp`` → ``<parent>``, the
    paper venue's take-profit/stop-loss children), or None for an id that is no such child. Our
    ids are plain alphanumerics, so a separator right after one can only come from the venue."""
    if not client_order_id:
        return None
    cut = next((i for i, char in enumerate(client_order_id) if not char.isalnum()), None)
    if not cut:  # no separator, or one at the start
        return None
    return client_order_id[:cut]


def is_child_client_id(candidate: str | None, parent: str) -> bool:
    """True for an id the venue derived from ``parent`` (see :func:`parent_client_id`)."""
    return parent_client_id(candidate) == parent


def default_mode(venue: Exchange) -> TradingMode:
    """The trading mode of a venue's positions when the caller names none: paper for the paper
    venue, live otherwise."""
    return TradingMode.PAPER if venue.name == "paper" else TradingMode.LIVE


async def market_or_load(venue: Exchange, symbol: str) -> MarketInfo | None:
    """The venue's rules for ``symbol``, loading its markets once if the symbol is not known yet;
    None when the venue does not list it. Errors of the load itself (network, …) propagate."""
    try:
        return venue.market(symbol)
    except BadSymbolError:
        pass
    await venue.load_markets()
    try:
        return venue.market(symbol)
    except BadSymbolError:
        return None


async def fetch_order_of(venue: Exchange, record: OrderRecord) -> OrderSnapshot:
    """The venue's state of one of our orders: by the venue's id once we know it, else by our
    client id. Raises OrderNotFoundError when the venue does not know it."""
    if record.exchange_order_id is not None:
        return await venue.fetch_order(record.exchange_order_id, record.symbol)
    return await venue.fetch_order_by_client_id(record.client_order_id, record.symbol)


class OrderExecutor:
    """Places, tracks and cancels the orders of one connection (see the module docstring).

    ``clock`` gives UTC milliseconds (latencies and timestamps); ``sleep`` and ``rng`` make the
    retry waits testable; ``lost_after`` is N in "not found N times in a row → lost";
    ``hedge_mode`` makes closing orders name their position side (required by Binance/Bybit/OKX
    in hedge mode); ``mode`` is the trading mode of the positions ``flatten_positions`` closes
    (default: :func:`default_mode`).
    """

    def __init__(
        self,
        connection_id: str,
        venue: Exchange,
        repository: OrderRepository,
        risk_check: RiskCheck,
        *,
        clock: Callable[[], int] | None = None,
        client_id_prefix: str = "cts",
        retry_policy: BackoffPolicy = DEFAULT_RETRY_POLICY,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        lost_after: int = DEFAULT_LOST_AFTER,
        hedge_mode: bool = False,
        mode: TradingMode | None = None,
        events: EventBus | None = None,
    ) -> None:
        new_client_order_id(client_id_prefix, 0)  # validates the prefix now, not at the first order
        if lost_after < 1:
            raise ValueError(f"lost_after must be at least 1, not {lost_after}")
        self._connection_id = connection_id
        self._venue = venue
        self._repository = repository
        self._risk_check = risk_check
        self._clock = clock or SystemClock().now_ms
        self._prefix = client_id_prefix
        self._policy = retry_policy
        self._sleep = sleep
        self._rng = rng
        self._lost_after = lost_after
        self._hedge_mode = hedge_mode
        self._mode = mode or default_mode(venue)
        self._events = events
        self._locks: dict[str, asyncio.Lock] = {}
        self._not_found: dict[str, int] = {}
        self._adoption_tried: set[str] = set()
        self._protection_tried: set[str] = set()

    @property
    def connection_id(self) -> str:
        return self._connection_id

    @property
    def attaches_tp_sl(self) -> bool:
        """Whether TP/SL travel with the entry on this venue (else the engine places them)."""
        return bool(getattr(self._venue, "supports_attached_tp_sl", False))

    # ----------------------------------------------------------------- submit

    async def submit(self, intent: OrderIntent, *, actor: Actor = Actor.SYSTEM) -> OrderView:
        """Risk check, write the intent, send, and record the outcome (module docstring).

        Returns the order as stored: ``open``/``partially_filled``/``filled`` when the venue took
        it, ``rejected`` with the venue's reason, ``failed`` after the retry budget, or still
        ``pending_create`` when the venue could not tell whether it holds it (reconciliation
        resolves it). Raises :class:`OrderRefusedError` when the risk gate refuses (nothing
        stored) and ``ValueError`` for an intent of another connection.
        """
        record = await self._submit(intent, actor=actor, parent=None)
        return record.view()

    async def _submit(self, intent: OrderIntent, *, actor: Actor, parent: OrderRecord | None) -> OrderRecord:
        if intent.connection_id != self._connection_id:
            raise ValueError(
                f"intent for connection {intent.connection_id} given to the executor of {self._connection_id}"
            )
        decision = await self._risk_check(intent)
        if not decision.allowed:
            error = OrderRefusedError(intent, decision)
            log.warning("%s: order not sent: %s", self._connection_id, error)
            if self._events is not None:
                self._events.publish(OrderRefused(self._connection_id, intent.symbol, decision))
            raise error
        record = await self._write_intent(intent, actor, parent)
        async with self._lock_for(record.id):
            record, changes = await self._send(record)
        await self._follow_up(changes)
        return await self._fresh(record)

    async def _write_intent(
        self, intent: OrderIntent, actor: Actor, parent: OrderRecord | None
    ) -> OrderRecord:
        has_tp_sl = parent is None and (intent.take_profit is not None or intent.stop_loss is not None)
        tp_sl_mode = (TP_SL_ATTACHED if self.attaches_tp_sl else TP_SL_ENGINE) if has_tp_sl else None
        position_side = intent.position_side
        if position_side is None and intent.real_position_id is not None:
            position = await self._repository.get_position(intent.real_position_id)
            position_side = position.side if position is not None else None
        position_side = affected_side(intent.side, intent.reduce_only, position_side)
        for _ in range(3):
            now = self._clock()
            order = NewOrder(
                client_order_id=new_client_order_id(self._prefix, now),
                connection_id=intent.connection_id,
                symbol=intent.symbol,
                side=intent.side,
                type=intent.type,
                amount=intent.amount,
                mode=intent.mode,
                intent_price=intent.reference_price,
                created_at=_at(now),
                price=intent.price,
                stop_price=intent.stop_price,
                time_in_force=intent.time_in_force,
                reduce_only=intent.reduce_only,
                position_side=position_side,
                leverage=intent.leverage,
                contract_size=intent.contract_size,
                take_profit=intent.take_profit,
                stop_loss=intent.stop_loss,
                tp_sl_mode=tp_sl_mode,
                real_position_id=intent.real_position_id or (parent.real_position_id if parent else None),
                parent_id=parent.id if parent else None,
                reason=intent.reason or None,
                actor=Actor(actor).value,
            )
            try:
                record = await self._repository.insert_intent(order)
            except DuplicateClientOrderIdError:
                log.warning("%s: client order id collision, drawing another", self._connection_id)
                continue
            log.info(
                "%s: order %s intent %s %s %s %.12g%s (%s)",
                self._connection_id,
                record.client_order_id,
                record.symbol,
                record.side.value,
                record.type.value,
                record.amount,
                f" @ {record.price:.12g}" if record.price is not None else "",
                intent.reason or "no reason given",
            )
            self._publish_orders()
            return record
        raise RuntimeError("could not draw a unique client order id three times in a row")

    def _request(self, record: OrderRecord) -> OrderRequest:
        attach = record.tp_sl_mode == TP_SL_ATTACHED
        return OrderRequest(
            symbol=record.symbol,
            side=record.side,
            type=record.type,
            amount=record.amount,
            client_order_id=record.client_order_id,
            price=record.price,
            stop_price=record.stop_price,
            time_in_force=record.time_in_force,
            reduce_only=record.reduce_only,
            position_side=record.position_side if self._names_position_side(record) else None,
            take_profit=record.take_profit if attach else None,
            stop_loss=record.stop_loss if attach else None,
        )

    def _names_position_side(self, record: OrderRecord) -> bool:
        if not self._hedge_mode:
            return False
        try:
            market = self._venue.market(record.symbol)
        except BadSymbolError:
            return True  # not known as spot: name the side, as a derivative needs it
        return market.type is not MarketType.SPOT

    async def _send(self, record: OrderRecord) -> tuple[OrderRecord, list[OrderChange]]:
        """The create/lookup/resend loop; called with the order's lock held."""
        request = self._request(record)
        backoff = self._policy.backoff(self._rng)
        attempts = self._policy.max_attempts or 1  # "retry for ever" is no policy for an order
        may_exist = False  # some earlier attempt may have reached the venue
        last_error: ExchangeError | None = None
        for attempt in range(1, attempts + 1):
            try:
                snapshot = await self._venue.create_order(request)
            except ExchangeError as error:
                last_error = error
                if error.kind in REJECTION_KINDS:
                    if may_exist and error.kind is ErrorKind.INVALID_ORDER:
                        # Perhaps the venue refusing a duplicate of our own first attempt.
                        try:
                            found = await self._lookup(record)
                        except ExchangeError as lookup_error:
                            return await self._leave_pending(record, error, lookup_error), []
                        if found is not None:
                            return await self._adopt(record, found, "after its resend was refused")
                    return await self._reject(record, error), []
                may_exist = may_exist or error.kind not in NOT_PLACED_KINDS
                log.warning(
                    "%s: order %s attempt %d/%d failed: %s",
                    self._connection_id,
                    record.client_order_id,
                    attempt,
                    attempts,
                    error,
                )
                if attempt == attempts:
                    break
                await self._sleep(backoff.next_delay(error))
                if not may_exist:
                    continue
                try:
                    found = await self._lookup(record)
                except ExchangeError as lookup_error:
                    return await self._leave_pending(record, error, lookup_error), []
                if found is not None:
                    return await self._adopt(record, found, f"after {error.kind.value} on the create")
                log.info(
                    "%s: order %s not on the venue after %s; resending with the same client id",
                    self._connection_id,
                    record.client_order_id,
                    error.kind.value,
                )
                continue
            change = await self._apply(record, snapshot, acknowledged=True)
            return change.after, [change]

        assert last_error is not None
        if may_exist:
            try:
                found = await self._lookup(record)
            except ExchangeError as lookup_error:
                return await self._leave_pending(record, last_error, lookup_error), []
            if found is not None:
                return await self._adopt(record, found, "after the last attempt failed")
        reason = f"gave up after {attempts} attempts: {last_error}"
        return await self._transition(record, OrderStatus.FAILED, reason, level=logging.ERROR), []

    async def _transition(
        self,
        record: OrderRecord,
        status: OrderStatus,
        reason: str | None = None,
        *,
        level: int = logging.INFO,
    ) -> OrderRecord:
        """A status change we decide (not the venue's answer), validated, logged and published."""
        after = await self._repository.transition(record.id, status, at=self._now(), reason=reason)
        log.log(
            level,
            "%s: order %s %s → %s%s",
            self._connection_id,
            record.client_order_id,
            record.status.value,
            status.value,
            f": {reason}" if reason else "",
        )
        self._publish_orders()
        return after

    async def _lookup(self, record: OrderRecord) -> OrderSnapshot | None:
        """The order as the venue holds it under our client id; None when it has no such order.
        Any other error (the venue could not tell) propagates to the caller."""
        try:
            return await self._venue.fetch_order_by_client_id(record.client_order_id, record.symbol)
        except OrderNotFoundError:
            return None

    async def _adopt(
        self, record: OrderRecord, snapshot: OrderSnapshot, why: str
    ) -> tuple[OrderRecord, list[OrderChange]]:
        log.info(
            "%s: order %s found on the venue %s (venue id %s); adopted, not resent",
            self._connection_id,
            record.client_order_id,
            why,
            snapshot.id,
        )
        change = await self._apply(record, snapshot, acknowledged=True)
        return change.after, [change]

    async def _reject(self, record: OrderRecord, error: ExchangeError) -> OrderRecord:
        reason = error.describe()
        return await self._transition(record, OrderStatus.REJECTED, reason, level=logging.WARNING)

    async def _leave_pending(
        self, record: OrderRecord, error: ExchangeError, lookup_error: ExchangeError
    ) -> OrderRecord:
        log.error(
            "%s: order %s may or may not be on the venue (%s; the lookup failed: %s); left pending for "
            "reconciliation, not resent",
            self._connection_id,
            record.client_order_id,
            error,
            lookup_error,
        )
        return await self._fresh(record)

    # ----------------------------------------------------------------- applying venue answers

    async def _apply(
        self, record: OrderRecord, snapshot: OrderSnapshot, *, acknowledged: bool
    ) -> OrderChange:
        """Store what the venue said about ``record`` (status, fills, ack); called under its lock."""
        change = await apply_snapshot(
            self._repository, record, snapshot, at=self._now(), acknowledged=acknowledged
        )
        self._log_change(change)
        return change

    def _log_change(self, change: OrderChange) -> None:
        after = change.after
        if change.status_changed:
            log.info(
                "%s: order %s %s → %s (filled %.12g of %.12g%s)",
                self._connection_id,
                after.client_order_id,
                change.before.status.value,
                after.status.value,
                after.filled,
                after.amount,
                f", reason: {after.reject_reason}" if after.reject_reason else "",
            )
        if change.fill is not None:
            log.info(
                "%s: order %s filled %.12g @ %.12g (fee %.8g%s), slippage %s bps",
                self._connection_id,
                after.client_order_id,
                change.fill.amount,
                change.fill.price,
                change.fill.fee,
                f", realised {change.fill.realized_pnl:.8g}" if change.fill.realized_pnl is not None else "",
                f"{after.slippage_bps:.2f}" if after.slippage_bps is not None else "n/a",
            )
        if change.changed:
            self._publish_orders()
        if change.position is not None:
            self._publish_positions()

    async def _follow_up(self, changes: Iterable[OrderChange]) -> None:
        """What a change calls for, run without holding any order lock: adopt attached TP/SL
        children, place engine-managed TP/SL, cancel what a filled TP/SL or a closed position
        leaves behind."""
        for change in changes:
            after = change.after
            if after.parent_id is None and after.tp_sl_mode == TP_SL_ATTACHED and change.fill is not None:
                await self._adopt_children(after)
            if (
                after.parent_id is None
                and after.tp_sl_mode == TP_SL_ENGINE
                and after.is_final
                and after.filled > 0
            ):
                await self._protect(after)
            if after.parent_id is not None and after.status is OrderStatus.FILLED and change.status_changed:
                await self._cancel_leftovers(
                    await self._repository.children(after.parent_id),
                    except_id=after.id,
                    why="its sibling filled",
                )
            position = change.position
            if position is not None and not position.is_open and change.fill is not None:
                await self._cancel_leftovers(
                    await self._repository.open_protective_orders(position.id),
                    except_id=after.id,
                    why="its position closed",
                )

    async def _cancel_leftovers(self, orders: Iterable[OrderRecord], *, except_id: str, why: str) -> None:
        for order in orders:
            if order.id == except_id or order.is_final:
                continue
            log.info("%s: cancelling order %s: %s", self._connection_id, order.client_order_id, why)
            try:
                await self.cancel(order.client_order_id)
            except (ExchangeError, IllegalOrderTransition) as error:
                log.warning(
                    "%s: could not cancel order %s: %s", self._connection_id, order.client_order_id, error
                )

    async def _adopt_children(self, entry: OrderRecord) -> list[OrderRecord]:
        """Track the TP/SL orders the venue created from an attached entry as our own orders."""
        self._adoption_tried.add(entry.id)
        try:
            open_orders = await self._venue.fetch_open_orders(entry.symbol)
        except ExchangeError as error:
            log.warning(
                "%s: could not list open orders to adopt the TP/SL of %s: %s",
                self._connection_id,
                entry.client_order_id,
                error,
            )
            return []
        adopted = []
        for snapshot in open_orders:
            if is_child_client_id(snapshot.client_order_id, entry.client_order_id):
                adopted.append(await self._adopt_child(snapshot, entry))
        return adopted

    async def _adopt_child(self, snapshot: OrderSnapshot, parent: OrderRecord) -> OrderRecord:
        """Start tracking a take-profit/stop-loss the venue created from ``parent``. Idempotent by
        client id (reconciliation adopts them with :func:`adopt_venue_order` too)."""
        reason = "take-profit/stop-loss attached to entry"
        change = await adopt_venue_order(
            self._repository,
            self._connection_id,
            snapshot,
            mode=parent.mode,
            at=self._now(),
            parent=parent,
            reason=reason,
        )
        if not change.changed:
            return change.after  # stored already
        self._log_change(change)
        log.info(
            "%s: adopted venue order %s as %s (%s)",
            self._connection_id,
            snapshot.id,
            change.after.client_order_id,
            reason,
        )
        await self._follow_up([change])
        return change.after

    async def _protect(self, entry: OrderRecord) -> list[OrderRecord]:
        """Engine-managed TP/SL: separate reduce-only trigger orders for the entry's filled amount.

        Tried once per entry by this executor (a refusal is logged as an error, not repeated on
        every poll); a restarted executor tries again for entries that still have no children."""
        if entry.id in self._protection_tried:
            return []
        self._protection_tried.add(entry.id)  # before any await: a concurrent poll must not double it
        if await self._repository.children(entry.id):
            return []
        market = await self._market(entry.symbol)
        derivative = market is None or market.type is not MarketType.SPOT
        side = OrderSide.SELL if entry.side is OrderSide.BUY else OrderSide.BUY
        placed = []
        for kind, level in (
            (OrderType.TAKE_PROFIT, entry.take_profit),
            (OrderType.STOP_LOSS, entry.stop_loss),
        ):
            if level is None:
                continue
            intent = OrderIntent(
                connection_id=entry.connection_id,
                symbol=entry.symbol,
                side=side,
                type=kind,
                amount=entry.filled,
                reference_price=level,
                mode=entry.mode,
                stop_price=level,
                contract_size=entry.contract_size or 1.0,
                leverage=entry.leverage or 1.0,
                reduce_only=derivative,
                position_side=entry.affected_side,
                real_position_id=entry.real_position_id,
                reason=f"{kind.value} of {entry.client_order_id}",
            )
            try:
                placed.append(await self._submit(intent, actor=Actor.SYSTEM, parent=entry))
            except OrderRefusedError as refused:
                log.error(
                    "%s: the %s of %s was refused; the position is NOT protected: %s",
                    self._connection_id,
                    kind.value,
                    entry.client_order_id,
                    refused,
                )
        return placed

    # ----------------------------------------------------------------- cancel

    async def cancel(self, client_order_id: str) -> OrderView:
        """Cancel one order: ``pending_cancel`` → ``cancelled``, or ``filled`` when it filled
        meanwhile. Raises UnknownOrderError for an id we do not have, and the venue's error when
        the venue could not be asked (the order then stays as it was, or ``pending_cancel`` when
        the cancel may have reached the venue; ``refresh_open`` sends it again)."""
        record = await self._repository.get_by_client_id(client_order_id)
        if record is None or record.connection_id != self._connection_id:
            raise UnknownOrderError(f"no order {client_order_id} on connection {self._connection_id}")
        async with self._lock_for(record.id):
            record, changes = await self._cancel_locked(await self._fresh(record))
        await self._follow_up(changes)
        return (await self._fresh(record)).view()

    async def _cancel_locked(self, record: OrderRecord) -> tuple[OrderRecord, list[OrderChange]]:
        changes: list[OrderChange] = []
        if record.is_final:
            return record, changes
        if record.status is OrderStatus.PENDING_CREATE:
            found = await self._lookup(record)  # an error: the venue could not tell, raised as is
            if found is None:
                reason = "cancelled before the venue acknowledged it (the venue does not know it)"
                return await self._transition(record, OrderStatus.CANCELLED, reason), changes
            change = await self._apply(record, found, acknowledged=True)
            changes.append(change)
            record = change.after
            if record.is_final:
                return record, changes

        previous = record.status
        if previous is not OrderStatus.PENDING_CANCEL:
            record = await self._transition(record, OrderStatus.PENDING_CANCEL)
        try:
            snapshot = await self._cancel_on_venue(record)
        except OrderNotFoundError:
            # Already final on the venue (filled meanwhile?) or unknown: ask what it is.
            try:
                snapshot = await self._fetch(record)
            except OrderNotFoundError:
                reason = "the venue does not know this order"
                return await self._transition(record, OrderStatus.LOST, reason, level=logging.ERROR), changes
        except ExchangeError as error:
            # The cancel may or may not have arrived: learn the order's state if we can.
            try:
                snapshot = await self._fetch(record)
            except ExchangeError:
                raise error from None
            change = await self._apply(record, snapshot, acknowledged=True)
            changes.append(change)
            record = change.after
            if record.is_final:
                return record, changes  # the cancel did arrive (or the order ended anyway)
            if previous is not OrderStatus.PENDING_CANCEL:
                restored = OrderStatus.PARTIALLY_FILLED if record.filled > 0 else OrderStatus.OPEN
                record = await self._transition(record, restored, reason=None)
            raise error from None
        change = await self._apply(record, snapshot, acknowledged=True)
        changes.append(change)
        return change.after, changes

    async def _cancel_on_venue(self, record: OrderRecord) -> OrderSnapshot:
        exchange_id = record.exchange_order_id
        if exchange_id is None:
            exchange_id = (
                await self._venue.fetch_order_by_client_id(record.client_order_id, record.symbol)
            ).id
        return await self._venue.cancel_order(exchange_id, record.symbol)

    async def _fetch(self, record: OrderRecord) -> OrderSnapshot:
        return await fetch_order_of(self._venue, record)

    async def cancel_all(self) -> list[OrderView]:
        """Cancel every non-final order of the connection (emergency stop). One failure does not
        stop the others; it is logged and that order is returned as it stands."""
        views = []
        statuses = [*sorted(ACTIVE_STATUSES), OrderStatus.PENDING_CREATE]
        for record in await self._repository.list_orders(self._connection_id, statuses=statuses):
            try:
                views.append(await self.cancel(record.client_order_id))
            except (ExchangeError, UnknownOrderError, IllegalOrderTransition) as error:
                log.error("%s: cancel of %s failed: %s", self._connection_id, record.client_order_id, error)
                views.append((await self._fresh(record)).view())
        return views

    # ----------------------------------------------------------------- polling

    async def refresh_open(self) -> list[OrderView]:
        """Poll the venue for every order it holds for us; apply fills and final states (and what
        they call for: TP/SL to place or adopt, leftovers to cancel); mark an order ``lost`` after
        ``lost_after`` "not found" answers in a row; re-send cancels still pending. Returns the
        orders that changed. What no poll sees change is :meth:`recover`'s job."""
        changed: dict[str, OrderView] = {}
        for record in await self._repository.active_orders(self._connection_id):
            lock = self._lock_for(record.id)
            if lock.locked():
                continue  # being submitted or cancelled right now
            async with lock:
                current = await self._repository.get(record.id)
                if current is None or current.status not in ACTIVE_STATUSES:
                    continue
                changes = await self._poll(current)
            await self._follow_up(changes)
            for change in changes:
                if change.changed:
                    changed[change.after.id] = (await self._fresh(change.after)).view()
        self._drop_idle_locks()
        return list(changed.values())

    async def recover(self) -> None:
        """Finish what the database says is unfinished but no poll will see change: cancel the
        protective orders of positions that closed (while the application was not running, or by
        a confirmed reconciliation), place the engine-managed TP/SL of filled entries that have
        none (a crash after the entry was sent), and adopt attached TP/SL children not adopted
        yet. Run once after reconciliation at start and after each confirmed reconciliation
        difference, not on every poll (three queries that almost always find nothing)."""
        await self._cancel_leftovers(
            await self._repository.protective_orders_of_closed_positions(self._connection_id),
            except_id="",
            why="its position is closed",
        )
        for entry in await self._repository.entries_without_children(self._connection_id, TP_SL_ENGINE):
            if entry.is_final:
                await self._protect(entry)
        for entry in await self._repository.entries_without_children(self._connection_id, TP_SL_ATTACHED):
            if entry.id not in self._adoption_tried:
                await self._adopt_children(entry)
        self._drop_idle_locks()

    async def _poll(self, record: OrderRecord) -> list[OrderChange]:
        try:
            snapshot = await self._fetch(record)
        except OrderNotFoundError:
            count = self._not_found.get(record.id, 0) + 1
            self._not_found[record.id] = count
            log.warning(
                "%s: order %s not found on the venue (%d/%d)",
                self._connection_id,
                record.client_order_id,
                count,
                self._lost_after,
            )
            if count < self._lost_after:
                return []
            del self._not_found[record.id]
            reason = f"the venue answered 'not found' {count} times in a row"
            lost = await self._transition(record, OrderStatus.LOST, reason, level=logging.ERROR)
            return [OrderChange(record, lost)]
        except ExchangeError as error:
            log.warning("%s: could not poll order %s: %s", self._connection_id, record.client_order_id, error)
            return []
        self._not_found.pop(record.id, None)
        change = await self._apply(record, snapshot, acknowledged=True)
        changes = [change]
        if change.after.status is OrderStatus.PENDING_CANCEL:
            try:
                snapshot = await self._venue.cancel_order(snapshot.id, record.symbol)
            except ExchangeError as error:
                log.warning(
                    "%s: cancel of %s sent again, failed: %s",
                    self._connection_id,
                    record.client_order_id,
                    error,
                )
            else:
                changes.append(await self._apply(change.after, snapshot, acknowledged=True))
        return changes

    # ----------------------------------------------------------------- flatten

    async def flatten_positions(self, *, actor: Actor = Actor.USER) -> list[OrderView]:
        """Close every open real position of this connection with a reduce-only market order.

        Only after an explicit confirmation by the caller (emergency stop, D14). Each order still
        passes the risk gate; a refusal or a failure is logged and the others go on.
        """
        views = []
        for position in await self._repository.open_positions(self._connection_id, mode=self._mode):
            market = await self._market(position.symbol)
            derivative = market is None or market.type is not MarketType.SPOT
            try:
                reference = (await self._venue.fetch_ticker(position.symbol)).last
            except ExchangeError as error:
                log.warning(
                    "%s: no price for %s (%s); using the entry price",
                    self._connection_id,
                    position.symbol,
                    error,
                )
                reference = position.entry_price
            intent = OrderIntent(
                connection_id=self._connection_id,
                symbol=position.symbol,
                side=OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY,
                type=OrderType.MARKET,
                amount=position.quantity,
                reference_price=reference,
                mode=position.mode,
                contract_size=position.contract_size or (market.contract_size if market else 1.0),
                leverage=position.leverage or 1.0,
                reduce_only=derivative,
                position_side=position.side,
                real_position_id=position.id,
                reason="flatten: close every open position (confirmed)",
            )
            try:
                views.append(await self.submit(intent, actor=actor))
            except OrderRefusedError as refused:
                log.error("%s: flatten of %s refused: %s", self._connection_id, position.symbol, refused)
        return views

    # ----------------------------------------------------------------- plumbing

    def _lock_for(self, order_id: str) -> asyncio.Lock:
        lock = self._locks.get(order_id)
        if lock is None:
            lock = self._locks[order_id] = asyncio.Lock()
        return lock

    def _drop_idle_locks(self) -> None:
        for order_id, lock in list(self._locks.items()):
            if not lock.locked():
                del self._locks[order_id]

    async def _fresh(self, record: OrderRecord) -> OrderRecord:
        return await self._repository.get(record.id) or record

    def _now(self) -> datetime:
        return _at(self._clock())

    async def _market(self, symbol: str) -> MarketInfo | None:
        try:
            return await market_or_load(self._venue, symbol)
        except ExchangeError as error:
            log.warning("%s: could not load markets: %s", self._connection_id, error)
            return None

    def _publish_orders(self) -> None:
        if self._events is not None:
            self._events.publish(OrdersChanged(self._connection_id))

    def _publish_positions(self) -> None:
        if self._events is not None:
            self._events.publish(PositionsChanged(self._connection_id))


async def apply_snapshot(
    repository: OrderRepository,
    record: OrderRecord,
    snapshot: OrderSnapshot,
    *,
    at: datetime,
    acknowledged: bool,
) -> OrderChange:
    """Store a venue answer about ``record``: status, cumulative fills, acknowledgement.

    The status rules for a possibly stale answer (a cancel in flight keeps ``pending_cancel``; a
    status that would be an illegal transition is dropped and its fills still count) are decided
    by the repository against the row as stored when the answer is applied, not against
    ``record``, which may be older (see ``VenueState.from_venue``). A dropped status is logged.
    """
    reason = snapshot.reject_reason
    if snapshot.status is VenueOrderStatus.EXPIRED and not reason:
        reason = "expired"
    state = VenueState(
        at=at,
        status=venue_status(snapshot),
        filled=snapshot.filled,
        average=snapshot.average,
        fee=snapshot.fee,
        fee_currency=snapshot.fee_currency,
        exchange_order_id=snapshot.id,
        reject_reason=reason,
        acknowledged=acknowledged,
        amount=snapshot.amount,
        from_venue=True,
    )
    change = await repository.apply_venue_state(record.id, state)
    if change.ignored_status is not None:
        log.warning(
            "%s: ignored the venue's status for order %s: cannot go from %s to %s",
            record.connection_id,
            change.before.client_order_id,
            change.before.status.value,
            change.ignored_status.value,
        )
    return change


def client_id_of(snapshot: OrderSnapshot) -> str:
    """The client id we store for a venue order (``ext<venue id>`` when it has none)."""
    return snapshot.client_order_id or f"ext{snapshot.id}"


async def adopt_venue_order(
    repository: OrderRepository,
    connection_id: str,
    snapshot: OrderSnapshot,
    *,
    mode: TradingMode,
    at: datetime,
    parent: OrderRecord | None = None,
    reason: str = "adopted from the venue",
) -> OrderChange:
    """Store a venue order we did not send (an attached TP/SL child of ``parent``, or an unknown
    order the user adopted) and apply its state. Idempotent by client id: when that id is stored
    already, the stored record comes back as an unchanged change (``before`` is ``after``,
    ``changed`` is False) and nothing is written."""
    client_id = client_id_of(snapshot)
    existing = await repository.get_by_client_id(client_id)
    if existing is not None:
        return OrderChange(existing, existing)
    stop_price = None
    if parent is not None and snapshot.type is OrderType.TAKE_PROFIT:
        stop_price = parent.take_profit
    elif parent is not None and snapshot.type is OrderType.STOP_LOSS:
        stop_price = parent.stop_loss
    try:
        record = await repository.insert_intent(
            NewOrder(
                client_order_id=client_id,
                connection_id=connection_id,
                symbol=snapshot.symbol,
                side=snapshot.side,
                type=snapshot.type,
                amount=snapshot.amount,
                mode=mode,
                intent_price=stop_price or snapshot.price or snapshot.average,
                created_at=at,
                price=snapshot.price if snapshot.type is OrderType.LIMIT else None,
                stop_price=stop_price,
                reduce_only=snapshot.reduce_only or parent is not None,
                position_side=parent.affected_side if parent is not None else None,
                leverage=parent.leverage if parent is not None else None,
                contract_size=parent.contract_size if parent is not None else None,
                real_position_id=parent.real_position_id if parent is not None else None,
                parent_id=parent.id if parent is not None else None,
                exchange_order_id=snapshot.id,
                reason=reason,
                actor=Actor.SYSTEM.value,
            )
        )
    except DuplicateClientOrderIdError:  # stored by a concurrent writer since the check above
        stored = await repository.get_by_client_id(client_id)
        assert stored is not None
        return OrderChange(stored, stored)
    return await apply_snapshot(repository, record, snapshot, at=at, acknowledged=True)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


__all__ = [
    "DEFAULT_LOST_AFTER",
    "DEFAULT_RETRY_POLICY",
    "OrderExecutor",
    "OrderRefusedError",
    "RiskCheck",
    "adopt_venue_order",
    "apply_snapshot",
    "client_id_of",
    "default_mode",
    "fetch_order_of",
    "is_child_client_id",
    "market_or_load",
    "new_client_order_id",
    "parent_client_id",
    "venue_status",
]
