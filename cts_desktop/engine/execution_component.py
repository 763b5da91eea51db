"""The real order loop of a connection engine: proven sets → sized intents → risk gate → executor.

It plugs into the connection engine as its :class:`~cts_desktop.engine.trading_component.
TradingComponent` and does, per cycle (``system.active_order_interval_ms`` after the last one):

1. **monitor** (always, paused or not, D14): poll the open orders through the executor
   (fills, partial fills, lost orders; engine-managed TP/SL), release the sets whose real
   position closed, and feed the account to the circuit breakers;
2. **open** (only when ``accepting_new``): for each set that passed Main → Real → Exchange
   (:class:`~cts_desktop.engine.real_trading.RealSelector`), at most ``max_new_per_cycle`` per
   cycle and one real position per symbol and direction, size the order (D13,
   :mod:`~cts_desktop.engine.sizing`), build the intent with TP/SL attached, and submit it. The
   executor calls :meth:`_risk_check` first, for every intent without exception: the live rules
   (in live mode) and then the risk gate on a fresh account state.

At start it reconciles the database with the venue and applies what is unambiguous; the rest is
kept for the user (``reconcile`` / ``apply_difference``). Reconciliation has just asked the venue
about every open order, so the first poll comes one ``poll_interval_s`` later; what reconciliation
leaves undone (TP/SL to place or adopt, leftovers of closed positions) is the executor's
``recover``, run after reconciliation and after each confirmed difference. Polling a real exchange
every 50 ms would be a request storm, so order polling runs at most every ``poll_interval_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from cts_desktop.domain.enums import Actor, TradingMode
from cts_desktop.domain.market import MarketInfo, MarketType
from cts_desktop.domain.orders import (
    OrderIntent,
    OrderStatus,
    OrderView,
    PositionView,
    ReconcileDifference,
    RiskDecision,
)
from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.account_tracker import AccountTracker
from cts_desktop.engine.events import OrderRefused
from cts_desktop.engine.orders import OrderExecutor, OrderRefusedError, market_or_load
from cts_desktop.engine.pseudo.promotion import PromotionDecision, record_decisions
from cts_desktop.engine.real_trading import RealCandidate, RealSelector, build_intent
from cts_desktop.engine.reconcile import Reconciler
from cts_desktop.engine.risk import AccountState, RiskGate, RiskLimits, connection_max_leverage
from cts_desktop.engine.sizing import size_order_from_settings, volume_factor_for
from cts_desktop.engine.trading_component import TradingActionError, TradingContext
from cts_desktop.exchanges.errors import ExchangeError
from cts_desktop.storage.repositories.account_marks import AccountMarksRepository
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord
from cts_desktop.storage.repositories.orders import OrderRepository

log = logging.getLogger(__name__)

_AUDIT_BATCH = 200
_SIZING_STATE_MAX_AGE_S = 1.0
_AUDIT_ID_LENGTH = 64

type LivePermission = Callable[[ConnectionRecord], Awaitable[RiskDecision]]


async def _no_live(record: ConnectionRecord) -> RiskDecision:
    return RiskDecision.refuse(
        "live_not_confirmed", f"live trading on {record.name} has not been confirmed in this session"
    )


def _named(decision: PromotionDecision, name: str) -> PromotionDecision:
    """The decision with the set's readable name as its audit entity id (the column holds 64)."""
    return replace(decision, set_id=name) if len(name) <= _AUDIT_ID_LENGTH else decision


class ExecutionTradingComponent:
    """See the module docstring. Build it with :meth:`factory` for the coordinator."""

    def __init__(
        self,
        context: TradingContext,
        *,
        live_permission: LivePermission = _no_live,
        poll_interval_s: float = 1.0,
        account_interval_s: float = 5.0,
        max_new_per_cycle: int = 1,
        refusal_cooldown_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if context.database is None:
            raise ValueError("the order loop needs the database (orders are written before they are sent)")
        self._context = context
        self._record = context.connection
        self._mode = context.mode
        self._venue = context.venue
        self._live_permission = live_permission
        self._poll_interval_s = poll_interval_s
        self._account_interval_s = account_interval_s
        self._next_account = 0.0
        self._max_new = max_new_per_cycle
        self._cooldown_s = refusal_cooldown_s
        self._monotonic = monotonic
        self.repository = OrderRepository(context.database)
        self.gate = RiskGate()
        self.account = AccountTracker(
            self._record.id, self._mode, self._venue, AccountMarksRepository(context.database)
        )
        self.executor = OrderExecutor(
            self._record.id,
            self._venue,
            self.repository,
            self._risk_check,
            hedge_mode=self._record.position_mode == "hedge",
            mode=self._mode,
            events=context.bus,
        )
        self.reconciler = Reconciler(self._record.id, self._venue, self.repository, mode=self._mode)
        self.selector = RealSelector(context.pipeline) if context.pipeline is not None else None
        self._audit = AuditRepository(context.database)
        self._decisions: list[PromotionDecision] = []
        if context.pipeline is not None and self.selector is not None:
            context.pipeline.on_decisions(self.selector.on_outcome)
            context.pipeline.on_decisions(lambda outcome: self._decisions.extend(outcome.decisions))
        self._leverage: dict[str, float] = {}  # symbol → leverage set on the venue this session
        self._cooling: dict[int, float] = {}  # set index → monotonic time it may try again
        self._next_poll = 0.0
        self.differences: list[ReconcileDifference] = []

    @classmethod
    def factory(
        cls, *, live_permission: LivePermission = _no_live, **options: Any
    ) -> Callable[[TradingContext], ExecutionTradingComponent]:
        """A ``TradingComponentFactory`` with these options."""

        def create(context: TradingContext) -> ExecutionTradingComponent:
            return cls(context, live_permission=live_permission, **options)

        return create

    # ------------------------------------------------------------------ the TradingComponent calls

    async def start(self) -> None:
        await self._venue.load_markets()
        self.differences = await self.reconciler.run(apply=True)
        waiting = [d for d in self.differences if not d.applied]
        if waiting:
            log.warning(
                "%s: %d reconciliation difference(s) wait for confirmation:\n%s",
                self._record.name,
                len(waiting),
                self.reconciler.describe(waiting),
            )
        # Reconciliation just fetched every active order: no full poll now, the first one comes
        # a poll interval later; only what no poll would see is done now.
        await self.executor.recover()
        self._next_poll = self._monotonic() + self._poll_interval_s
        await self.account.refresh()

    async def cycle(self, *, accepting_new: bool) -> None:
        now = self._monotonic()
        if self._decisions:
            await self._record_promotions()
        if now >= self._next_poll:
            self._next_poll = now + self._poll_interval_s
            await self.executor.refresh_open()
            await self._release_closed()
        if now >= self._next_account:
            self._next_account = now + self._account_interval_s
            await self.account.refresh()  # what the daily-loss and drawdown breakers read
        if accepting_new and self.selector is not None:
            await self._open_new(now)

    async def cancel_all(self) -> int:
        before = await self.repository.order_views(self._record.id)
        after = await self.executor.cancel_all()
        still_open = [o for o in after if not o.status.is_final]
        cancelled = len(before) - len(still_open)
        if still_open:
            raise TradingActionError(
                cancelled,
                f"{len(still_open)} order(s) could not be cancelled: "
                + ", ".join(f"{o.symbol} {o.client_order_id}" for o in still_open),
            )
        return cancelled

    async def cancel_order(self, client_order_id: str) -> OrderView:
        order = await self.repository.get_by_client_id(client_order_id)
        if order is None or order.connection_id != self._record.id:
            raise LookupError(f"no order {client_order_id} on {self._record.name}")
        return await self.executor.cancel(client_order_id)

    async def flatten(self) -> int:
        orders = await self.executor.flatten_positions(actor=Actor.USER)
        failed = [o for o in orders if o.status.is_final and o.status is not OrderStatus.FILLED]
        if failed:
            raise TradingActionError(
                len(orders) - len(failed),
                f"{len(failed)} position(s) not closed: "
                + "; ".join(f"{o.symbol}: {o.reject_reason or o.status.value}" for o in failed),
            )
        return len(orders)

    async def open_orders(self) -> list[OrderView]:
        return await self.repository.order_views(self._record.id)

    async def open_positions(self) -> list[PositionView]:
        positions = await self.repository.open_positions(self._record.id)
        marks = {p.symbol: price for p in positions if (price := self._last_matched(p.symbol)) is not None}
        return [p.view(marks.get(p.symbol)) for p in positions]

    async def open_counts(self) -> tuple[int, int]:
        return (
            await self.repository.count_open_orders(self._record.id),
            await self.repository.count_open_positions(self._record.id),
        )

    async def reconcile(self, apply: bool = True) -> list[ReconcileDifference]:
        self.differences = await self.reconciler.run(apply=apply)
        if apply:
            await self.executor.recover()
        return self.differences

    async def apply_difference(self, difference: ReconcileDifference) -> None:
        await self.reconciler.apply(difference)
        await self.executor.recover()  # e.g. a position closed locally leaves its TP/SL to cancel

    async def close(self) -> None:
        """Nothing to release: the executor, repositories and selector hold no connections."""

    def risk_view(self) -> tuple[AccountState, RiskLimits] | None:
        if self.account.last is None:
            return None
        return self.account.last, self._limits()

    async def _record_promotions(self) -> None:
        """ "Why was this promoted?": each Base → Main change goes to the audit log with the numbers
        and thresholds (a bounded batch per cycle, so a burst never stalls the order loop)."""
        batch, self._decisions = self._decisions[:_AUDIT_BATCH], self._decisions[_AUDIT_BATCH:]
        pipeline = self._context.pipeline
        named = [_named(d, pipeline.registry.describe(d.set_index)) if pipeline else d for d in batch]
        await record_decisions(self._audit, named, connection_id=self._record.id)

    # ------------------------------------------------------------------ risk

    async def _risk_check(self, intent: OrderIntent) -> RiskDecision:
        """Every intent, without exception: the live rules first (live mode), then the gate."""
        if intent.mode is not self._mode:
            return RiskDecision.refuse(
                "mode", f"a {intent.mode.value} order on a connection trading {self._mode.value}"
            )
        if self._mode is TradingMode.LIVE:
            permission = await self._live_permission(self._record)
            if not permission.allowed:
                return permission
        market = await self._market(intent.symbol)
        if market is None:
            return RiskDecision.refuse("market", f"{intent.symbol} is not a market of {self._record.name}")
        if intent.reduce_only:
            # Flatten and TP/SL children: the gate skips every rule that reads the account (a
            # trader must always be able to reduce risk), so the last known state will do.
            account = self.account.last or await self.account.refresh()
            return self.gate.check(intent, account, market, self._limits())
        # An order of the open path was sized on a state read a moment ago: reuse it (one balance
        # and positions request per order); anything else reads anew.
        account = await self.account.refresh(max_age_s=_SIZING_STATE_MAX_AGE_S)
        account = replace(account, open_positions=await self._open_positions_everywhere(account))
        return self.gate.check(intent, account, market, self._limits())

    async def _open_positions_everywhere(self, account: AccountState) -> int:
        """``risk.max_open_positions`` is one limit for the whole desk: the open positions of every
        connection trading in this mode (each connection, symbol and side once), or this venue's
        own count if that is higher (positions the database does not know yet)."""
        stored = await self.repository.open_positions(mode=self._mode)
        return max(account.open_positions, len({(p.connection_id, p.symbol, p.side) for p in stored}))

    def _limits(self) -> RiskLimits:
        return RiskLimits.from_settings(
            self._settings(), connection_max_leverage=connection_max_leverage(self._record)
        )

    # ------------------------------------------------------------------ opening

    async def _open_new(self, now: float) -> None:
        assert self.selector is not None
        busy = self._held_symbol_sides()
        opened = 0
        for candidate in self.selector.candidates():
            if opened >= self._max_new:
                break
            if self._cooling.get(candidate.set_index, 0.0) > now:
                continue
            key = (candidate.symbol, candidate.direction)
            if key in busy:
                continue
            if await self._open(candidate):
                busy.add(key)
                opened += 1
            else:
                self._cooling[candidate.set_index] = now + self._cooldown_s

    async def _open(self, candidate: RealCandidate) -> bool:
        market = await self._market(candidate.symbol)
        if market is None:
            return False
        price = await self._price(candidate.symbol)
        account = await self.account.refresh()
        values = self._settings()
        sized = size_order_from_settings(
            values,
            balance=account.free_balance,
            price=price,
            market=market,
            volume_factor=volume_factor_for("main", self._record),
            connection_max_leverage=connection_max_leverage(self._record),
        )
        if isinstance(sized, RiskDecision):
            log.info(
                "%s: no order for %s: [%s] %s",
                self._record.name,
                candidate.symbol,
                sized.rule,
                sized.message,
            )
            self._context.bus.publish(OrderRefused(self._record.id, candidate.symbol, sized))
            return False
        intent = build_intent(
            candidate,
            connection_id=self._record.id,
            mode=self._mode,
            price=price,
            amount=sized.amount,
            market=market,
            leverage=sized.leverage,
            position_cost_pct=float(values["main.position_cost_pct"]),
            hedged=self._record.position_mode == "hedge",
        )
        await self._ensure_leverage(market, sized.leverage)
        try:
            order = await self.executor.submit(intent, actor=Actor.SYSTEM)
        except OrderRefusedError:
            return False  # logged and published by the executor, with the rule and the numbers
        if order.status.is_final and order.status is not OrderStatus.FILLED:
            log.warning(
                "%s: entry for %s ended %s: %s",
                self._record.name,
                candidate.symbol,
                order.status.value,
                order.reject_reason or "",
            )
            return False
        if self.selector is not None:
            self.selector.mark_holding(candidate.set_index, order.client_order_id)
        log.info(
            "%s: real entry %s %s %s (%s)",
            self._record.name,
            intent.side.value,
            intent.amount,
            intent.symbol,
            candidate.reason,
        )
        return True

    def _held_symbol_sides(self) -> set[tuple[str, int]]:
        """(symbol, direction) of every set holding a real position: one per pair at a time."""
        if self._context.pipeline is None or self.selector is None:
            return set()
        registry = self._context.pipeline.registry
        return {
            (location.key.symbol, location.key.direction)
            for location in (registry.locate(set_index) for set_index in self.selector.holding)
        }

    async def _release_closed(self) -> None:
        """Sets whose entry failed or whose position closed may trade again."""
        if self.selector is None:
            return
        for set_index, client_order_id in self.selector.holding.items():
            order = await self.repository.get_by_client_id(client_order_id)
            if order is None:
                continue
            done = order.status.is_final and order.status is not OrderStatus.FILLED
            if not done and order.real_position_id is not None:
                position = await self.repository.get_position(order.real_position_id)
                done = position is not None and not position.is_open
            if done:
                self.selector.release(set_index)

    async def _ensure_leverage(self, market: MarketInfo, leverage: float) -> None:
        """Set the sized leverage on the venue before the first entry of a symbol (and when it
        changes), so the margin and liquidation price the exchange applies match what was sized.
        A refusal is logged and the order still goes: its size does not depend on the leverage,
        only the margin the exchange takes, which the risk gate already bounded."""
        if market.type is MarketType.SPOT or self._leverage.get(market.symbol) == leverage:
            return
        try:
            await self._venue.set_leverage(market.symbol, leverage)
        except ExchangeError as exc:
            log.warning(
                "%s: could not set %g× leverage on %s: %s", self._record.name, leverage, market.symbol, exc
            )
            return
        self._leverage[market.symbol] = leverage

    async def _price(self, symbol: str) -> float:
        """The price the venue matches at: the paper venue's last matched price when it has one
        (the intent's slippage is measured against what the fill will see), else the ticker."""
        price = self._last_matched(symbol)
        return price if price is not None else (await self._venue.fetch_ticker(symbol)).last

    def _last_matched(self, symbol: str) -> float | None:
        """The paper venue's last matched price (it has no request cost); None on other venues."""
        last_price = getattr(self._venue, "last_price", None)
        price = last_price(symbol) if callable(last_price) else None
        return price if isinstance(price, float) else None

    async def _market(self, symbol: str) -> MarketInfo | None:
        """The symbol's market; None when the venue does not list it (a failing market load
        raises: the venue cannot be asked, which is not a refusal)."""
        return await market_or_load(self._venue, symbol)

    def _settings(self) -> Mapping[str, Any]:
        return _SettingsView(self._context.setting)


class _SettingsView(Mapping[str, Any]):
    """The current settings as the mapping ``RiskLimits``/sizing read, each key asked when read
    (the order loop and the breakers read half a dozen keys, not all of the registry)."""

    def __init__(self, setting: Callable[[str], Any]) -> None:
        self._setting = setting

    def __getitem__(self, key: str) -> Any:
        if key not in SPEC_BY_KEY:
            raise KeyError(key)
        return self._setting(key)

    def __iter__(self) -> Iterator[str]:
        return iter(SPEC_BY_KEY)

    def __len__(self) -> int:
        return len(SPEC_BY_KEY)
