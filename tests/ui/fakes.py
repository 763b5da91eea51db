"""A test double of the engine coordinator for the UI tests.

It was written before the real :class:`~cts_desktop.engine.coordinator.Coordinator` existed and
stays for what the real one reaches only through venues and time: any state on demand, a state
that moved behind the window's back, a failing read, a slow transition, given reconciliation
differences and checklists. (test_engine_panel also drives the real coordinator once.)

It is honest where the UI depends on the engine's behaviour: every state change goes through
the one transition table (``domain.engine.TRANSITIONS``), every action is checked against
``ACTION_FROM`` and refused with ``IllegalTransition`` without changing anything, and it
publishes the same events on a real :class:`EventBus` as the coordinator's contract says
(``EngineStateChanged`` per transition and for the global state, ``EngineSnapshotChanged``,
``OrdersChanged``, ``PositionsChanged``). What it does not do is trade: orders, positions,
reconciliation differences and checklists are whatever the test puts in.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cts_desktop.domain.engine import (
    ACTION_FROM,
    ChecklistItem,
    EngineAction,
    EngineSnapshot,
    GoLiveChecklist,
    IllegalTransition,
    allowed_actions,
    is_legal,
)
from cts_desktop.domain.enums import Actor, EngineState, TradingMode
from cts_desktop.domain.orders import OrderStatus, OrderView, PositionView, ReconcileDifference
from cts_desktop.engine.events import (
    EngineSnapshotChanged,
    EngineStateChanged,
    EventBus,
    OrdersChanged,
    PositionsChanged,
)
from cts_desktop.engine.lifecycle import derive_global_state

S = EngineState


@dataclass(frozen=True, slots=True)
class FakeEmergencyReport:
    """Same fields as the coordinator's ``EmergencyReport``."""

    stopped: list[str]
    cancelled_orders: int
    flattened_positions: int
    errors: list[str]


@dataclass(frozen=True, slots=True)
class Call:
    """One facade call as the UI made it."""

    method: str
    connection_id: str | None
    actor: Actor | None = None
    args: dict[str, Any] = field(default_factory=dict)


class FakeCoordinator:
    """Implements :class:`cts_desktop.ui.engine_facade.EngineFacade` over in-memory snapshots.

    ``step_delay_s`` makes every transition await that long, so a test can see an action in
    flight (busy buttons). ``failures`` maps a method name to an exception its next call raises.
    """

    def __init__(self, bus: EventBus, *, step_delay_s: float = 0.0) -> None:
        self.bus = bus
        self.step_delay_s = step_delay_s
        self.calls: list[Call] = []
        self.failures: dict[str, BaseException] = {}
        self.orders: list[OrderView] = []
        self.positions: list[PositionView] = []
        self.differences: dict[str, list[ReconcileDifference]] = {}
        self.apply_failures: dict[str, BaseException] = {}  # description → error
        self.applied: list[ReconcileDifference] = []
        self.checklist_items: dict[str, tuple[ChecklistItem, ...]] = {}
        self.read_counts: dict[str, int] = {"open_orders": 0, "open_positions": 0}
        self._snapshots: dict[str, EngineSnapshot] = {}
        self._global = S.IDLE

    # -- test set-up ---------------------------------------------------------------------------

    def add(
        self,
        connection_id: str,
        name: str,
        exchange: str = "binance",
        *,
        state: EngineState = S.IDLE,
        mode: TradingMode = TradingMode.PAPER,
        publish: bool = False,
        **fields: Any,
    ) -> EngineSnapshot:
        """Register a connection's engine, as ``restore()`` would have found it."""
        snapshot = EngineSnapshot(connection_id, name, exchange, state, mode, **fields)
        self._snapshots[connection_id] = snapshot
        self._global = self._compute_global()
        if publish:
            self.bus.publish(EngineSnapshotChanged(snapshot))
        return snapshot

    def update(self, connection_id: str, **fields: Any) -> EngineSnapshot:
        """A health refresh (or a flag change such as ``restart_required``): no state change."""
        if "state" in fields:
            raise ValueError("use fail() or an action to change the state")
        snapshot = dataclasses.replace(self._snapshots[connection_id], updated_at=datetime.now(UTC), **fields)
        self._snapshots[connection_id] = snapshot
        self.bus.publish(EngineSnapshotChanged(snapshot))
        return snapshot

    def fail(self, connection_id: str, reason: str) -> None:
        """A component crashed: any state → error, with the reason."""
        self._move(connection_id, S.ERROR, reason, Actor.SYSTEM)

    def force_state_silently(self, connection_id: str, state: EngineState) -> None:
        """The engine moved and the UI has not heard yet (an event still in flight)."""
        self._snapshots[connection_id] = dataclasses.replace(self._snapshots[connection_id], state=state)

    def set_orders(self, orders: Iterable[OrderView]) -> None:
        self.orders = list(orders)
        for connection_id in sorted({order.connection_id for order in self.orders} | set(self._snapshots)):
            self.bus.publish(OrdersChanged(connection_id))

    def set_positions(self, positions: Iterable[PositionView]) -> None:
        self.positions = list(positions)
        for connection_id in sorted({p.connection_id for p in self.positions} | set(self._snapshots)):
            self.bus.publish(PositionsChanged(connection_id))

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # -- reads ---------------------------------------------------------------------------------

    @property
    def global_state(self) -> EngineState:
        return self._global

    def snapshots(self) -> list[EngineSnapshot]:
        self._raise_planned("snapshots")
        return sorted(self._snapshots.values(), key=lambda s: (s.name.casefold(), s.connection_id))

    def snapshot(self, connection_id: str) -> EngineSnapshot:
        return self._snapshots[connection_id]

    def allowed(self, connection_id: str) -> frozenset[EngineAction]:
        return allowed_actions(self._snapshots[connection_id].state)

    # -- per connection ------------------------------------------------------------------------

    async def start(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._record("start", connection_id, actor, reason=reason)
        self._check(connection_id, EngineAction.START)
        await self._walk(connection_id, (S.STARTING, S.RUNNING), reason, actor)
        self._clear_restart_required(connection_id)

    async def stop(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._record("stop", connection_id, actor, reason=reason)
        self._check(connection_id, EngineAction.STOP)
        await self._walk(connection_id, (S.STOPPING, S.STOPPED), reason, actor)

    async def pause(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._record("pause", connection_id, actor, reason=reason)
        self._check(connection_id, EngineAction.PAUSE)
        await self._walk(connection_id, (S.PAUSED,), reason, actor)

    async def resume(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._record("resume", connection_id, actor, reason=reason)
        self._check(connection_id, EngineAction.RESUME)
        await self._walk(connection_id, (S.RUNNING,), reason, actor)

    async def restart(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._record("restart", connection_id, actor, reason=reason)
        self._check(connection_id, EngineAction.RESTART)
        await self._walk(connection_id, (S.STOPPING, S.STOPPED, S.STARTING, S.RUNNING), reason, actor)
        self._clear_restart_required(connection_id)

    # -- global --------------------------------------------------------------------------------

    async def start_all(self, *, actor: Actor = Actor.USER) -> None:
        self._record("start_all", None, actor)
        await self._each(EngineAction.START, lambda cid: self.start(cid, actor=actor))

    async def stop_all(self, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._record("stop_all", None, actor, reason=reason)
        await self._each(EngineAction.STOP, lambda cid: self.stop(cid, actor=actor, reason=reason))

    async def pause_all(self, *, actor: Actor = Actor.USER) -> None:
        self._record("pause_all", None, actor)
        await self._each(EngineAction.PAUSE, lambda cid: self.pause(cid, actor=actor))

    async def resume_all(self, *, actor: Actor = Actor.USER) -> None:
        self._record("resume_all", None, actor)
        await self._each(EngineAction.RESUME, lambda cid: self.resume(cid, actor=actor))

    async def emergency_stop(
        self, *, flatten: bool = False, actor: Actor = Actor.USER
    ) -> FakeEmergencyReport:
        self._record("emergency_stop", None, actor, flatten=flatten)
        self._raise_planned("emergency_stop")
        stopped: list[str] = []
        reason = "Emergency stop activated"
        for connection_id, snapshot in list(self._snapshots.items()):
            if snapshot.state in (S.STARTING, S.RUNNING, S.PAUSED):
                await self._walk(connection_id, (S.STOPPING, S.STOPPED), reason, actor)
            elif snapshot.state is S.ERROR:
                await self._walk(connection_id, (S.STOPPED,), reason, actor)
            stopped.append(connection_id)
        cancelled = len(self.orders)
        self.set_orders([])
        flattened = 0
        if flatten:
            flattened = len(self.positions)
            self.set_positions([])
        return FakeEmergencyReport(stopped, cancelled, flattened, [])

    # -- reads for docks and dialogs -----------------------------------------------------------

    async def open_orders(self, connection_id: str | None = None) -> list[OrderView]:
        self.read_counts["open_orders"] += 1
        self._raise_planned("open_orders")
        await asyncio.sleep(0)
        return [o for o in self.orders if connection_id in (None, o.connection_id)]

    async def cancel_order(
        self, connection_id: str, client_order_id: str, *, actor: Actor = Actor.USER
    ) -> OrderView:
        self._record("cancel_order", connection_id, actor, client_order_id=client_order_id)
        self._raise_planned("cancel_order")
        await asyncio.sleep(self.step_delay_s)
        order = next(
            (
                o
                for o in self.orders
                if (o.connection_id, o.client_order_id) == (connection_id, client_order_id)
            ),
            None,
        )
        if order is None:
            raise LookupError(f"no open order {client_order_id}")
        self.set_orders([o for o in self.orders if o is not order])
        return dataclasses.replace(order, status=OrderStatus.CANCELLED)

    async def open_positions(self, connection_id: str | None = None) -> list[PositionView]:
        self.read_counts["open_positions"] += 1
        self._raise_planned("open_positions")
        await asyncio.sleep(0)
        return [p for p in self.positions if connection_id in (None, p.connection_id)]

    async def reconcile(self, connection_id: str) -> list[ReconcileDifference]:
        self._record("reconcile", connection_id, None)
        self._raise_planned("reconcile")
        await asyncio.sleep(self.step_delay_s)
        return list(self.differences.get(connection_id, []))

    async def apply_difference(self, difference: ReconcileDifference) -> None:
        self._record("apply_difference", difference.connection_id, None, description=difference.description)
        await asyncio.sleep(self.step_delay_s)
        error = self.apply_failures.get(difference.description)
        if error is not None:
            raise error
        self.applied.append(difference)
        stored = self.differences.get(difference.connection_id, [])
        self.differences[difference.connection_id] = [
            dataclasses.replace(d, applied=True) if d == difference else d for d in stored
        ]

    async def go_live_checklist(
        self, connection_id: str, ticked: frozenset[str] = frozenset()
    ) -> GoLiveChecklist:
        self._record("go_live_checklist", connection_id, None, ticked=ticked)
        self._raise_planned("go_live_checklist")
        await asyncio.sleep(self.step_delay_s)
        snapshot = self._snapshots[connection_id]
        manual = {item.key for item in self.checklist_items.get(connection_id, ()) if not item.automatic}
        if not ticked <= manual:  # as live_guard.build_checklist: only manual items can be ticked
            raise ValueError(f"these checklist items cannot be ticked: {', '.join(sorted(ticked - manual))}")
        items = tuple(
            # Like live_guard.build_checklist: a tick cannot pass an item the application failed.
            item
            if item.automatic or item.passed is False
            else dataclasses.replace(item, passed=True if item.key in ticked else None)
            for item in self.checklist_items.get(connection_id, ())
        )
        return GoLiveChecklist(connection_id, snapshot.exchange, items)

    # -- the state machine ---------------------------------------------------------------------

    def _record(self, method: str, connection_id: str | None, actor: Actor | None, **args: Any) -> None:
        self.calls.append(Call(method, connection_id, actor, args))

    def _raise_planned(self, method: str) -> None:
        error = self.failures.pop(method, None)
        if error is not None:
            raise error

    def _check(self, connection_id: str, action: EngineAction) -> None:
        self._raise_planned(action.value)
        state = self._snapshots[connection_id].state
        if state not in ACTION_FROM[action]:
            raise IllegalTransition(f"engine {connection_id}", state, action.value)

    async def _walk(
        self, connection_id: str, states: tuple[EngineState, ...], reason: str, actor: Actor
    ) -> None:
        for state in states:
            if self.step_delay_s:
                await asyncio.sleep(self.step_delay_s)
            self._move(connection_id, state, reason, actor)

    def _move(self, connection_id: str, new: EngineState, reason: str, actor: Actor) -> None:
        old_snapshot = self._snapshots[connection_id]
        old = old_snapshot.state
        if not is_legal(old, new):
            raise IllegalTransition(f"engine {connection_id}", old, new.value)
        now = datetime.now(UTC)
        started_at = now if new is S.STARTING else old_snapshot.started_at
        snapshot = dataclasses.replace(
            old_snapshot,
            state=new,
            reason=reason,
            started_at=started_at,
            uptime_s=0.0 if new is S.STARTING else old_snapshot.uptime_s,
            updated_at=now,
        )
        self._snapshots[connection_id] = snapshot
        self.bus.publish(EngineStateChanged(connection_id, old, new, reason, actor))
        self.bus.publish(EngineSnapshotChanged(snapshot))
        previous_global, self._global = self._global, self._compute_global()
        if previous_global is not self._global:
            self.bus.publish(EngineStateChanged(None, previous_global, self._global, reason, actor))

    def _clear_restart_required(self, connection_id: str) -> None:
        if self._snapshots[connection_id].restart_required:
            self.update(connection_id, restart_required=False)

    async def _each(self, action: EngineAction, run: Any) -> None:
        """Like the coordinator: act on every connection where legal, collect failures, raise at the end."""
        errors: list[str] = []
        for connection_id, snapshot in list(self._snapshots.items()):
            if snapshot.state not in ACTION_FROM[action]:
                continue
            try:
                await run(connection_id)
            except Exception as exc:
                errors.append(f"{connection_id}: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))

    def _compute_global(self) -> EngineState:
        """The coordinator's own rule (not a copy of it)."""
        return derive_global_state(snapshot.state for snapshot in self._snapshots.values())
