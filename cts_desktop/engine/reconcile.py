"""Reconciliation: compare the database with the exchange at start (and on demand).

Freqtrade re-checks the orders that were open when the bot stopped; hummingbot resolves in-flight
orders by client id. This does both, for one connection, in this order (each step sees what the
previous one fixed):

1. **Orders left ``pending_create``** (a crash between writing the intent and learning the
   venue's answer) are looked up by client id: found → the venue's state is adopted (status,
   fills, position); not found and older than ``pending_grace_ms`` → ``failed``, "never reached
   the exchange"; younger ones may still be in flight and are only reported.
2. **Orders we think open** are fetched: a final state, or fills that happened while the
   application was closed, are applied (with their fills and position changes); "not found" is
   a difference to confirm (mark lost). **Lost orders** that turn up again are restored: those
   lost within the last ``LOST_RECHECK_DAYS`` days are looked up one by one; older ones only
   when they are among the exchange's open orders (step 3), so the lookups do not grow with
   every order ever lost.
3. **Open orders on the exchange that we do not know**: the TP/SL children the venue created from
   one of our entries (``<client id>:tp``) are adopted; the others are differences to confirm
   (cancel on the exchange, or adopt).
4. **Positions**: our open real positions, per symbol and side, against the exchange's (spot
   holdings against the base asset's balance). Missing, unknown or different sizes are
   differences to confirm; nothing about a position is changed without confirmation, because
   only the user knows whether a manual trade or a liquidation explains it.
5. **Balances** are reported (nothing to compare them with locally). They are fetched once per
   run; step 4 reads them for spot holdings.

What is unambiguous is applied at once when ``run(apply=True)``; the rest comes back as
``ReconcileDifference`` rows with ``applied=False`` and the proposed ``action``, for the UI to
confirm (:meth:`Reconciler.apply`) or the headless runner to print (:func:`describe`). Report-only
rows (balances) carry ``applied=True`` and the action "report only": nothing waits on the user.
``run(apply=False)`` is a dry run: nothing is written, every row says what would be done.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import (
    Balance,
    MarketInfo,
    MarketType,
    OrderSnapshot,
    PositionSide,
    PositionSnapshot,
)
from cts_desktop.domain.orders import ORDER_TRANSITIONS, DifferenceKind, OrderStatus, ReconcileDifference
from cts_desktop.engine.orders import (
    adopt_venue_order,
    apply_snapshot,
    client_id_of,
    default_mode,
    fetch_order_of,
    market_or_load,
    parent_client_id,
    venue_status,
)
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.clock import SystemClock
from cts_desktop.exchanges.errors import ExchangeError, OrderNotFoundError
from cts_desktop.storage.repositories.orders import (
    ACTIVE_STATUSES,
    OrderChange,
    OrderRecord,
    OrderRepository,
    RealPositionRecord,
    UnknownOrderError,
    status_after_venue_answer,
)

log = logging.getLogger(__name__)

DEFAULT_PENDING_GRACE_MS: Final = 120_000
"""A ``pending_create`` order younger than this may still be on its way (the executor's three
attempts with their timeouts and waits take well under it); it is not failed yet."""
DEFAULT_SIZE_TOLERANCE: Final = 1e-6
"""Relative difference below which two position sizes are the same (float noise, lot rounding)."""
LOST_RECHECK_DAYS: Final = 7
"""Lost orders last changed within this many days are looked up again on every run; older ones
are restored only when they show up among the exchange's open orders (module docstring, step 2)."""

ACTION_ADOPT_STATE: Final = "apply the exchange's state"
ACTION_MARK_FAILED: Final = "mark failed: never reached the exchange"
ACTION_WAIT: Final = "wait: it may still be on its way; reconcile again later"
ACTION_RETRY: Final = "reconcile again: the exchange could not be asked"
ACTION_MARK_LOST: Final = "mark lost"
ACTION_CANCEL_ON_EXCHANGE: Final = "cancel on exchange"
ACTION_ADOPT: Final = "adopt"
ACTION_CLOSE_LOCALLY: Final = "close locally"
ACTION_ADOPT_POSITION: Final = "adopt the exchange's position"
ACTION_SET_LOCAL_SIZE: Final = "set the local size to the exchange's"
ACTION_REPORT: Final = "report only"

ALTERNATIVE_ACTIONS: Final[Mapping[DifferenceKind, tuple[str, ...]]] = MappingProxyType(
    {
        DifferenceKind.ORDER_UNKNOWN_LOCALLY: (ACTION_CANCEL_ON_EXCHANGE, ACTION_ADOPT),
        DifferenceKind.ORDER_STATUS: (ACTION_ADOPT_STATE, ACTION_CANCEL_ON_EXCHANGE),
    }
)
"""Actions the user may choose instead of the proposed one (pass to :meth:`Reconciler.apply`)."""


def _frozen(values: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(values))


def _order_facts(record: OrderRecord) -> Mapping[str, object]:
    return _frozen(
        {
            "order_id": record.id,
            "status": record.status.value,
            "side": record.side.value,
            "type": record.type.value,
            "amount": record.amount,
            "filled": record.filled,
            "exchange_order_id": record.exchange_order_id,
        }
    )


def _snapshot_facts(snapshot: OrderSnapshot) -> Mapping[str, object]:
    return _frozen(
        {
            "id": snapshot.id,
            "client_order_id": snapshot.client_order_id,
            "status": snapshot.status.value,
            "side": snapshot.side.value,
            "type": snapshot.type.value,
            "amount": snapshot.amount,
            "filled": snapshot.filled,
            "price": snapshot.price,
            "average": snapshot.average,
        }
    )


class Reconciler:
    """Reconciles one connection's orders and positions with its venue (module docstring).

    ``clock`` gives UTC milliseconds (the age of pending orders, timestamps of what is applied);
    ``mode`` selects which real positions belong to this venue (default:
    :func:`~cts_desktop.engine.orders.default_mode`).
    """

    def __init__(
        self,
        connection_id: str,
        venue: Exchange,
        repository: OrderRepository,
        *,
        clock: Callable[[], int] | None = None,
        pending_grace_ms: int = DEFAULT_PENDING_GRACE_MS,
        size_tolerance: float = DEFAULT_SIZE_TOLERANCE,
        mode: TradingMode | None = None,
    ) -> None:
        self._connection_id = connection_id
        self._venue = venue
        self._repository = repository
        self._clock = clock or SystemClock().now_ms
        self._grace_ms = pending_grace_ms
        self._tolerance = size_tolerance
        self._mode = mode or default_mode(venue)

    # ----------------------------------------------------------------- run

    async def run(self, apply: bool = True) -> list[ReconcileDifference]:
        """Compare everything; apply what is unambiguous when ``apply``; return every difference."""
        differences: list[ReconcileDifference] = []
        differences += await self._pending_orders(apply)
        differences += await self._active_orders(apply)
        lost, rechecked = await self._lost_orders(apply)
        differences += lost
        differences += await self._unknown_orders(apply, rechecked)
        balances = await self._fetch_balances()
        differences += await self._positions(balances)
        differences += self._balances(balances)
        waiting = sum(1 for d in differences if not d.applied)
        log.info(
            "%s: reconciliation found %d difference(s), %d applied, %d to confirm",
            self._connection_id,
            len(differences),
            len(differences) - waiting,
            waiting,
        )
        for difference in differences:
            log.info("%s: %s", self._connection_id, _line(difference))
        return differences

    def describe(self, differences: Sequence[ReconcileDifference]) -> str:
        """Print-friendly text of ``differences`` (headless runs)."""
        return describe(differences, self._connection_id)

    # ----------------------------------------------------------------- orders

    def _difference(
        self,
        kind: DifferenceKind,
        record: OrderRecord | None,
        description: str,
        action: str,
        applied: bool,
        *,
        symbol: str | None = None,
        remote: Mapping[str, object] | None = None,
        client_order_id: str | None = None,
        local: Mapping[str, object] | None = None,
    ) -> ReconcileDifference:
        return ReconcileDifference(
            kind=kind,
            connection_id=self._connection_id,
            symbol=symbol or (record.symbol if record else ""),
            description=description,
            action=action,
            applied=applied,
            local=local if local is not None else (_order_facts(record) if record else _frozen({})),
            remote=remote if remote is not None else _frozen({}),
            client_order_id=client_order_id or (record.client_order_id if record else None),
        )

    async def _pending_orders(self, apply: bool) -> list[ReconcileDifference]:
        found: list[ReconcileDifference] = []
        for record in await self._repository.pending_orders(self._connection_id):
            found.append(await self._resolve_pending(record, apply, force=False))
        return found

    async def _resolve_pending(self, record: OrderRecord, apply: bool, *, force: bool) -> ReconcileDifference:
        kind = DifferenceKind.PENDING_CREATE
        try:
            snapshot = await self._venue.fetch_order_by_client_id(record.client_order_id, record.symbol)
        except OrderNotFoundError:
            age_ms = self._clock() - round(record.created_at.timestamp() * 1000)
            if age_ms < self._grace_ms and not force:
                return self._difference(
                    kind,
                    record,
                    f"left pending {age_ms / 1000:.0f} s ago and not on the exchange yet",
                    ACTION_WAIT,
                    False,
                )
            description = "left pending (crash before sending?) and the exchange does not know it"
            if not apply:
                return self._difference(kind, record, description, ACTION_MARK_FAILED, False)
            await self._repository.transition(
                record.id, OrderStatus.FAILED, at=self._now(), reason="never reached the exchange"
            )
            return self._difference(kind, record, description, ACTION_MARK_FAILED, True)
        except ExchangeError as error:
            return self._difference(kind, record, f"could not look it up: {error}", ACTION_RETRY, False)
        status = venue_status(snapshot)
        description = (
            f"left pending, but the exchange holds it as {status.value} (filled {snapshot.filled:.12g})"
        )
        if not apply:
            return self._difference(
                kind, record, description, ACTION_ADOPT_STATE, False, remote=_snapshot_facts(snapshot)
            )
        change = await self._apply(record, snapshot)
        return self._difference(
            kind,
            record,
            description,
            f"adopted the exchange's order as {change.after.status.value}",
            True,
            remote=_snapshot_facts(snapshot),
        )

    async def _active_orders(self, apply: bool) -> list[ReconcileDifference]:
        found: list[ReconcileDifference] = []
        for record in await self._repository.active_orders(self._connection_id):
            difference = await self._check_order(record, apply)
            if difference is not None:
                found.append(difference)
        return found

    async def _check_order(self, record: OrderRecord, apply: bool) -> ReconcileDifference | None:
        try:
            snapshot = await self._fetch(record)
        except OrderNotFoundError:
            return self._difference(
                DifferenceKind.ORDER_MISSING_ON_EXCHANGE,
                record,
                f"we hold it as {record.status.value}; the exchange does not know it",
                ACTION_MARK_LOST,
                False,
            )
        except ExchangeError as error:
            return self._difference(
                DifferenceKind.ORDER_STATUS,
                record,
                f"could not ask the exchange: {error}",
                ACTION_RETRY,
                False,
            )
        status = venue_status(snapshot)
        more_filled = snapshot.filled > record.filled * (1 + self._tolerance)
        # What applying the answer would store (a cancel in flight keeps pending_cancel, a stale
        # status is dropped): the repository's rule, so a no-op answer is no difference.
        if status_after_venue_answer(record.status, status) is record.status and not more_filled:
            return None
        kind = DifferenceKind.ORDER_FILLED_WHILE_CLOSED if more_filled else DifferenceKind.ORDER_STATUS
        description = (
            f"{record.status.value} (filled {record.filled:.12g}) here, {status.value} "
            f"(filled {snapshot.filled:.12g}) on the exchange"
        )
        if not apply:
            return self._difference(
                kind, record, description, ACTION_ADOPT_STATE, False, remote=_snapshot_facts(snapshot)
            )
        change = await self._apply(record, snapshot)
        return self._difference(
            kind,
            record,
            description,
            f"applied the exchange's state: now {change.after.status.value}",
            True,
            remote=_snapshot_facts(snapshot),
        )

    async def _lost_orders(self, apply: bool) -> tuple[list[ReconcileDifference], set[str]]:
        """Look up the orders lost within ``LOST_RECHECK_DAYS``; returns the differences and the
        ids of the orders looked up (older ones are matched against the open orders later)."""
        found: list[ReconcileDifference] = []
        since = self._now() - timedelta(days=LOST_RECHECK_DAYS)
        recent = await self._repository.list_orders(
            self._connection_id, statuses=[OrderStatus.LOST], updated_since=since
        )
        for record in recent:
            try:
                snapshot = await self._venue.fetch_order_by_client_id(record.client_order_id, record.symbol)
            except ExchangeError:
                continue  # still lost (or the exchange cannot tell now): nothing new to report
            difference = await self._restore_lost(record, snapshot, apply)
            if difference is not None:
                found.append(difference)
        return found, {record.id for record in recent}

    async def _restore_lost(
        self, record: OrderRecord, snapshot: OrderSnapshot, apply: bool
    ) -> ReconcileDifference | None:
        status = venue_status(snapshot)
        if status not in ORDER_TRANSITIONS[OrderStatus.LOST]:
            return None
        description = (
            f"lost here, but the exchange holds it as {status.value} (filled {snapshot.filled:.12g})"
        )
        if not apply:
            return self._difference(
                DifferenceKind.ORDER_STATUS,
                record,
                description,
                ACTION_ADOPT_STATE,
                False,
                remote=_snapshot_facts(snapshot),
            )
        change = await self._apply(record, snapshot)
        return self._difference(
            DifferenceKind.ORDER_STATUS,
            record,
            description,
            f"restored as {change.after.status.value}",
            True,
            remote=_snapshot_facts(snapshot),
        )

    async def _unknown_orders(self, apply: bool, rechecked: set[str]) -> list[ReconcileDifference]:
        try:
            remote_orders = await self._venue.fetch_open_orders()
        except ExchangeError as error:
            return [
                self._difference(
                    DifferenceKind.ORDER_UNKNOWN_LOCALLY,
                    None,
                    f"could not list the exchange's open orders: {error}",
                    ACTION_RETRY,
                    False,
                    symbol="*",
                )
            ]
        found: list[ReconcileDifference] = []
        for snapshot in remote_orders:
            client_id = client_id_of(snapshot)
            local = await self._repository.get_by_client_id(client_id)
            facts = _snapshot_facts(snapshot)
            if local is not None:
                if local.status is OrderStatus.LOST and local.id not in rechecked:
                    # Lost too long ago to be looked up, but open on the exchange after all.
                    difference = await self._restore_lost(local, snapshot, apply)
                    if difference is not None:
                        found.append(difference)
                    continue
                if local.status in ACTIVE_STATUSES or local.status in (
                    OrderStatus.PENDING_CREATE,
                    OrderStatus.LOST,
                ):
                    continue  # checked above
                found.append(
                    self._difference(
                        DifferenceKind.ORDER_STATUS,
                        local,
                        f"{local.status.value} here, but open on the exchange",
                        ACTION_CANCEL_ON_EXCHANGE,
                        False,
                        remote=facts,
                    )
                )
                continue
            parent = await self._parent_of(snapshot.client_order_id)
            if parent is not None:
                description = (
                    f"{snapshot.type.value} the exchange created from our order {parent.client_order_id}"
                )
                if not apply:
                    found.append(
                        self._difference(
                            DifferenceKind.ORDER_UNKNOWN_LOCALLY,
                            None,
                            description,
                            ACTION_ADOPT,
                            False,
                            symbol=snapshot.symbol,
                            remote=facts,
                            client_order_id=client_id,
                        )
                    )
                    continue
                await adopt_venue_order(
                    self._repository,
                    self._connection_id,
                    snapshot,
                    mode=parent.mode,
                    at=self._now(),
                    parent=parent,
                    reason=f"take-profit/stop-loss attached to {parent.client_order_id}",
                )
                found.append(
                    self._difference(
                        DifferenceKind.ORDER_UNKNOWN_LOCALLY,
                        None,
                        description,
                        f"adopted as a child of {parent.client_order_id}",
                        True,
                        symbol=snapshot.symbol,
                        remote=facts,
                        client_order_id=client_id,
                    )
                )
                continue
            found.append(
                self._difference(
                    DifferenceKind.ORDER_UNKNOWN_LOCALLY,
                    None,
                    f"open {snapshot.side.value} {snapshot.type.value} {snapshot.amount:.12g} on the "
                    "exchange that this application did not place",
                    ACTION_CANCEL_ON_EXCHANGE,
                    False,
                    symbol=snapshot.symbol,
                    remote=facts,
                    client_order_id=client_id,
                )
            )
        return found

    async def _parent_of(self, client_order_id: str | None) -> OrderRecord | None:
        parent_id = parent_client_id(client_order_id)
        if parent_id is None:
            return None
        parent = await self._repository.get_by_client_id(parent_id)
        if parent is None or parent.connection_id != self._connection_id:
            return None
        return parent

    # ----------------------------------------------------------------- positions and balances

    async def _positions(self, balances: Mapping[str, Balance] | None) -> list[ReconcileDifference]:
        """Our open positions against the exchange's; ``balances`` (None: could not be fetched)
        stand in for spot positions."""
        local_positions = await self._repository.open_positions(self._connection_id, mode=self._mode)
        try:
            remote_positions = await self._venue.fetch_positions()
        except ExchangeError as error:
            return [
                self._position_difference(
                    DifferenceKind.POSITION_SIZE, "*", None, [], None, f"could not ask: {error}", ACTION_RETRY
                )
            ]
        local: dict[tuple[str, PositionSide], list[RealPositionRecord]] = defaultdict(list)
        for position in local_positions:
            local[(position.symbol, position.side)].append(position)
        remote: dict[tuple[str, PositionSide], PositionSnapshot] = {
            (p.symbol, p.side): p for p in remote_positions if p.contracts > 0
        }
        found: list[ReconcileDifference] = []
        for key in sorted(set(local) | set(remote)):
            symbol, side = key
            mine = local.get(key, [])
            theirs = remote.get(key)
            quantity = sum(p.quantity for p in mine)
            market = await self._market(symbol)
            if market is not None and market.type is MarketType.SPOT and theirs is None:
                if balances is None:
                    continue
                base = balances.get(market.base)
                held = base.total if base is not None else 0.0
                if side is PositionSide.LONG and not self._smaller(held, quantity):
                    continue
                found.append(
                    self._position_difference(
                        DifferenceKind.POSITION_SIZE,
                        symbol,
                        side,
                        mine,
                        None,
                        f"{quantity:.12g} {market.base} held here, {held:.12g} in the exchange balance",
                        ACTION_SET_LOCAL_SIZE,
                        remote_contracts=held,
                    )
                )
                continue
            if theirs is None:
                found.append(
                    self._position_difference(
                        DifferenceKind.POSITION_MISSING_ON_EXCHANGE,
                        symbol,
                        side,
                        mine,
                        None,
                        f"{side.value} {quantity:.12g} open here, none on the exchange",
                        ACTION_CLOSE_LOCALLY,
                    )
                )
            elif not mine:
                found.append(
                    self._position_difference(
                        DifferenceKind.POSITION_UNKNOWN_LOCALLY,
                        symbol,
                        side,
                        mine,
                        theirs,
                        f"{side.value} {theirs.contracts:.12g} on the exchange, not held by this application",
                        ACTION_ADOPT_POSITION,
                    )
                )
            elif self._differ(quantity, theirs.contracts):
                found.append(
                    self._position_difference(
                        DifferenceKind.POSITION_SIZE,
                        symbol,
                        side,
                        mine,
                        theirs,
                        f"{side.value} {quantity:.12g} here, {theirs.contracts:.12g} on the exchange",
                        ACTION_SET_LOCAL_SIZE,
                    )
                )
        return found

    def _position_difference(
        self,
        kind: DifferenceKind,
        symbol: str,
        side: PositionSide | None,
        mine: Sequence[RealPositionRecord],
        theirs: PositionSnapshot | None,
        description: str,
        action: str,
        *,
        remote_contracts: float | None = None,
    ) -> ReconcileDifference:
        local = {
            "side": side.value if side else None,
            "contracts": sum(p.quantity for p in mine),
            "position_ids": ",".join(p.id for p in mine),
        }
        remote: dict[str, object] = {}
        if theirs is not None:
            remote = {
                "side": theirs.side.value,
                "contracts": theirs.contracts,
                "entry_price": theirs.entry_price,
                "mark_price": theirs.mark_price,
                "leverage": theirs.leverage,
            }
        elif remote_contracts is not None:
            remote = {"side": side.value if side else None, "contracts": remote_contracts}
        return ReconcileDifference(
            kind=kind,
            connection_id=self._connection_id,
            symbol=symbol,
            description=description,
            action=action,
            applied=False,
            local=_frozen(local),
            remote=_frozen(remote),
        )

    async def _fetch_balances(self) -> dict[str, Balance] | None:
        try:
            return await self._venue.fetch_balance()
        except ExchangeError as error:
            log.warning("%s: could not fetch balances: %s", self._connection_id, error)
            return None

    def _balances(self, balances: Mapping[str, Balance] | None) -> list[ReconcileDifference]:
        if balances is None:
            return []
        return [
            ReconcileDifference(
                kind=DifferenceKind.BALANCE,
                connection_id=self._connection_id,
                symbol=asset,
                description=f"free {b.free:.8g}, used {b.used:.8g}, total {b.total:.8g}",
                action=ACTION_REPORT,
                applied=True,
                remote=_frozen({"free": b.free, "used": b.used, "total": b.total}),
            )
            for asset, b in sorted(balances.items())
            if b.total
        ]

    def _differ(self, a: float, b: float) -> bool:
        return abs(a - b) > self._tolerance * max(abs(a), abs(b), 1e-12)

    def _smaller(self, held: float, wanted: float) -> bool:
        return held < wanted and self._differ(held, wanted)

    # ----------------------------------------------------------------- apply a confirmed difference

    async def apply(self, difference: ReconcileDifference, action: str | None = None) -> ReconcileDifference:
        """Carry out a difference's action (or ``action``, one of ``ALTERNATIVE_ACTIONS``) after the
        user confirmed it; returns the difference marked applied. Raises the venue's error when
        the exchange could not be asked, and ValueError for an action this kind does not have."""
        if difference.applied:
            return difference
        action = action or difference.action
        kind = difference.kind
        if action in (ACTION_RETRY, ACTION_REPORT):
            raise ValueError(f"{kind.value}: '{action}' has nothing to apply; run the reconciliation again")
        if kind is DifferenceKind.PENDING_CREATE:
            result = await self._resolve_pending(
                self._local_order(await self._order_of(difference)), True, force=True
            )
            if not result.applied:
                raise ValueError(f"could not resolve {difference.client_order_id}: {result.description}")
            return result
        if kind in (DifferenceKind.ORDER_STATUS, DifferenceKind.ORDER_FILLED_WHILE_CLOSED):
            if action == ACTION_CANCEL_ON_EXCHANGE:
                await self._cancel_remote(difference)
            else:
                record = self._local_order(await self._order_of(difference))
                await self._apply(record, await self._fetch_any(record))
        elif kind is DifferenceKind.ORDER_MISSING_ON_EXCHANGE:
            record = self._local_order(await self._order_of(difference))
            await self._repository.transition(
                record.id,
                OrderStatus.LOST,
                at=self._now(),
                reason="the exchange does not know it (confirmed)",
            )
        elif kind is DifferenceKind.ORDER_UNKNOWN_LOCALLY:
            if action == ACTION_CANCEL_ON_EXCHANGE:
                await self._cancel_remote(difference)
            elif action == ACTION_ADOPT:
                snapshot = await self._venue.fetch_order(str(difference.remote["id"]), difference.symbol)
                parent = await self._parent_of(snapshot.client_order_id)
                await adopt_venue_order(
                    self._repository,
                    self._connection_id,
                    snapshot,
                    mode=parent.mode if parent is not None else self._mode,
                    at=self._now(),
                    parent=parent,
                    reason="adopted in reconciliation (confirmed)",
                )
            else:
                raise ValueError(f"{kind.value} has no action {action!r}")
        elif kind is DifferenceKind.POSITION_MISSING_ON_EXCHANGE:
            price = await self._price(difference.symbol)
            for position_id in _ids(difference):
                await self._repository.set_position_quantity(position_id, 0.0, price=price, at=self._now())
        elif kind is DifferenceKind.POSITION_UNKNOWN_LOCALLY:
            remote = difference.remote
            market = await self._market(difference.symbol)
            await self._repository.create_position(
                connection_id=self._connection_id,
                symbol=difference.symbol,
                side=PositionSide(str(remote["side"])),
                mode=self._mode,
                entry_price=float(str(remote["entry_price"])),
                quantity=float(str(remote["contracts"])),
                at=self._now(),
                leverage=float(str(remote["leverage"])) if remote.get("leverage") is not None else None,
                contract_size=market.contract_size if market is not None else None,
            )
        elif kind is DifferenceKind.POSITION_SIZE:
            await self._set_size(difference)
        elif kind is not DifferenceKind.BALANCE:
            raise ValueError(f"no way to apply {kind.value}")
        log.info("%s: applied (confirmed) %s", self._connection_id, _line(difference))
        return replace(difference, applied=True, action=action)

    async def _set_size(self, difference: ReconcileDifference) -> None:
        """Bring our positions of that symbol and side to the exchange's total: the newest ones
        absorb the change (reductions realise PnL at the current price)."""
        target = float(str(difference.remote["contracts"]))
        positions = [p for p in await self._positions_of(difference) if p.is_open]
        if not positions:
            raise ValueError(f"{difference.symbol}: no open local position left to adjust")
        price = await self._price(difference.symbol)
        excess = sum(p.quantity for p in positions) - target
        for position in reversed(positions):
            if excess > 0:
                cut = min(excess, position.quantity)
                await self._repository.set_position_quantity(
                    position.id, position.quantity - cut, price=price, at=self._now()
                )
                excess -= cut
            elif excess < 0:
                await self._repository.set_position_quantity(
                    position.id, position.quantity - excess, price=price, at=self._now()
                )
                excess = 0.0
            if excess == 0:
                break

    async def _positions_of(self, difference: ReconcileDifference) -> list[RealPositionRecord]:
        found = []
        for position_id in _ids(difference):
            position = await self._repository.get_position(position_id)
            if position is not None:
                found.append(position)
        return found

    async def _cancel_remote(self, difference: ReconcileDifference) -> None:
        remote_id = difference.remote.get("id")
        if remote_id is None:
            raise ValueError(f"{difference.kind.value}: no exchange order id to cancel")
        try:
            await self._venue.cancel_order(str(remote_id), difference.symbol)
        except OrderNotFoundError:
            log.info("%s: order %s was already gone from the exchange", self._connection_id, remote_id)

    async def _order_of(self, difference: ReconcileDifference) -> OrderRecord | None:
        if difference.client_order_id is None:
            return None
        return await self._repository.get_by_client_id(difference.client_order_id)

    @staticmethod
    def _local_order(record: OrderRecord | None) -> OrderRecord:
        if record is None:
            raise UnknownOrderError("the difference names no order of ours")
        return record

    # ----------------------------------------------------------------- plumbing

    async def _apply(self, record: OrderRecord, snapshot: OrderSnapshot) -> OrderChange:
        change = await apply_snapshot(self._repository, record, snapshot, at=self._now(), acknowledged=True)
        if change.status_changed:
            log.info(
                "%s: reconciled order %s %s → %s",
                self._connection_id,
                record.client_order_id,
                change.before.status.value,
                change.after.status.value,
            )
        return change

    async def _fetch(self, record: OrderRecord) -> OrderSnapshot:
        return await fetch_order_of(self._venue, record)

    async def _fetch_any(self, record: OrderRecord) -> OrderSnapshot:
        try:
            return await self._fetch(record)
        except OrderNotFoundError:
            return await self._venue.fetch_order_by_client_id(record.client_order_id, record.symbol)

    async def _market(self, symbol: str) -> MarketInfo | None:
        try:
            return await market_or_load(self._venue, symbol)
        except ExchangeError as error:
            log.warning("%s: could not load markets: %s", self._connection_id, error)
            return None

    async def _price(self, symbol: str) -> float:
        return (await self._venue.fetch_ticker(symbol)).last

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock() / 1000, UTC)


def _ids(difference: ReconcileDifference) -> list[str]:
    return [part for part in str(difference.local.get("position_ids") or "").split(",") if part]


def _line(difference: ReconcileDifference) -> str:
    state = "applied" if difference.applied else "confirm"
    subject = difference.symbol
    if difference.client_order_id:
        subject += f" order {difference.client_order_id}"
    return f"[{state}] {difference.kind.value} {subject}: {difference.description} → {difference.action}"


def describe(differences: Sequence[ReconcileDifference], connection_id: str | None = None) -> str:
    """The differences as text for a terminal: a summary line, then one line each, the ones
    waiting for confirmation first (with the alternatives the user may choose)."""
    waiting = [d for d in differences if not d.applied]
    done = [d for d in differences if d.applied]
    head = f"Reconciliation{f' of {connection_id}' if connection_id else ''}: "
    if not differences:
        return head + "the database and the exchange agree."
    lines = [head + f"{len(differences)} difference(s): {len(done)} applied, {len(waiting)} to confirm."]
    for difference in waiting + done:
        line = "  " + _line(difference)
        alternatives = [a for a in ALTERNATIVE_ACTIONS.get(difference.kind, ()) if a != difference.action]
        if not difference.applied and alternatives:
            line += f" (or: {', '.join(alternatives)})"
        lines.append(line)
    return "\n".join(lines)


__all__ = [
    "ACTION_ADOPT",
    "ACTION_ADOPT_POSITION",
    "ACTION_ADOPT_STATE",
    "ACTION_CANCEL_ON_EXCHANGE",
    "ACTION_CLOSE_LOCALLY",
    "ACTION_MARK_FAILED",
    "ACTION_MARK_LOST",
    "ACTION_REPORT",
    "ACTION_RETRY",
    "ACTION_SET_LOCAL_SIZE",
    "ACTION_WAIT",
    "ALTERNATIVE_ACTIONS",
    "DEFAULT_PENDING_GRACE_MS",
    "LOST_RECHECK_DAYS",
    "Reconciler",
    "describe",
]
