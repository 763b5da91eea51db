"""The coordinator: the only owner of the per-connection engines and of their state (D1, D15).

Every start, stop, pause, resume, restart and emergency stop (from the window, the command
line, the auto-start, a circuit breaker or the shutdown) goes through here, so there is one
registry of engines and one state per connection, kept by :class:`~cts_desktop.engine.lifecycle.Lifecycle`
(validated against ``domain.engine.TRANSITIONS``, persisted, audited with its actor, published).

Starting an engine:

1. ``start`` moves the connection to ``starting`` and launches a *start job* (a task), then returns
   once the first attempt has an outcome: ``running``, or ``error`` with the reason.
2. An attempt reads the connection afresh, refuses live mode unless the ``live_permitted`` hook
   allows it (default: always refuse, rule ``live_not_confirmed``; a live-incapable venue is
   refused before the hook is asked), builds the venues (:mod:`cts_desktop.engine.venues`) and
   starts a :class:`ConnectionEngine`.
3. A retryable failure (network, rate limit, exchange down) moves to ``error`` with "retrying in
   N s" and, after an exponential backoff with jitter (``exchanges.backoff``), back to
   ``starting``; after ``monitoring.max_restart_attempts`` retries, or at once for a failure that
   retrying cannot fix (credentials, no symbols, live refused), it stays in ``error``.

The start job runs outside the connection's lock, so a stop during a slow start or a backoff
wait cancels it at once instead of waiting behind it; every state change still takes the lock.

An engine that fails while running (a crashed task, a loop failing cycle after cycle) goes to
``error`` with the reason; the others never notice. With ``monitoring.auto_restart`` on, it is
restarted after ``monitoring.restart_cooldown_min``, at most ``monitoring.max_restart_attempts``
times until the user starts it again.

Pause keeps monitoring (D14): the engine's stream, exit checks and order matching keep running.
Emergency stop pauses every engine at once, cancels their open orders, optionally flattens their
positions, stops them, and turns live and preset trade off on every connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cts_desktop.domain.engine import (
    ACTIVE_STATES,
    RUNNING_STATES,
    EngineAction,
    EngineSnapshot,
    GoLiveChecklist,
    HealthStatus,
    IllegalTransition,
)
from cts_desktop.domain.enums import Actor, EngineState, TradingMode
from cts_desktop.domain.orders import OrderView, PositionView, ReconcileDifference, RiskDecision
from cts_desktop.engine.circuit_breakers import BREAKER_SETTING_KEYS, Trip
from cts_desktop.engine.connection_engine import (
    DEFAULT_ENGINE_OPTIONS,
    ConnectionEngine,
    EngineOptions,
    NoSymbolsError,
    engine_types,
)
from cts_desktop.engine.connections import ConnectionChanged, ConnectionService
from cts_desktop.engine.events import (
    CircuitBreakerTripped,
    EngineSnapshotChanged,
    EventBus,
    OrdersChanged,
    PositionsChanged,
    SettingChanged,
    Unsubscribe,
)
from cts_desktop.engine.health import describe_error, overall_health
from cts_desktop.engine.lifecycle import EngineStatus, Lifecycle
from cts_desktop.engine.live_guard import build_checklist
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.settings_service import SettingsService
from cts_desktop.engine.trading_component import (
    TradingActionError,
    TradingComponent,
    TradingComponentFactory,
    TradingContext,
    VenueTradingComponent,
)
from cts_desktop.engine.venues import EngineVenueFactory, paper_account_id
from cts_desktop.exchanges.backoff import BackoffPolicy, Jitter, is_retryable
from cts_desktop.exchanges.catalog import is_live_capable
from cts_desktop.exchanges.errors import ExchangeError
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord
from cts_desktop.storage.repositories.engine_state import EngineStateRepository
from cts_desktop.storage.repositories.orders import OrderRepository
from cts_desktop.storage.repositories.paper import PaperRepository

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_START_BACKOFF",
    "ChecklistProvider",
    "Coordinator",
    "CoordinatorClosedError",
    "EmergencyReport",
    "EngineNotRunningError",
    "EngineRefusedError",
    "LivePermission",
    "refuse_live",
    "snapshot_as_dict",
]

S = EngineState
A = EngineAction
_ENGINE_TYPE_KEYS = frozenset(
    {"system.main_engine_enabled", "system.preset_engine_enabled", "system.trade_mode"}
)
"""States in which a connection's engine counts as running for "restart required"."""

DEFAULT_START_BACKOFF = BackoffPolicy(
    base_s=2.0, factor=2.0, cap_s=60.0, max_attempts=None, jitter=Jitter.FULL
)
"""Waits between start attempts: up to 2 s, 4 s, 8 s … 60 s, fully jittered so engines that
failed together (the network dropped) do not retry together. The attempt limit comes from
``monitoring.max_restart_attempts`` at the time of each start."""

type LivePermission = Callable[[ConnectionRecord], Awaitable[RiskDecision]]
"""Asked before an engine starts in live mode; the live guard plugs in here."""
type ChecklistProvider = Callable[[ConnectionRecord, frozenset[str]], Awaitable[GoLiveChecklist]]


async def refuse_live(record: ConnectionRecord) -> RiskDecision:
    """The default live permission: never. Live trading needs the go-live conditions (checklist,
    tested credentials, confirmation) that the live guard checks; until it is plugged in, a
    connection switched to live refuses to start rather than trade real money unchecked."""
    return RiskDecision.refuse(
        "live_not_confirmed",
        f"live trading on {record.name} has not been confirmed through the go-live checks; "
        "switch the connection back to paper or complete the go-live checklist",
    )


class EngineRefusedError(ValueError):
    """A start that cannot succeed as things are (a disabled connection, live not permitted);
    nothing was changed when it is raised by a public method, and it is never retried."""


class CoordinatorClosedError(RuntimeError):
    """The coordinator is shutting down (or has): no engine starts any more."""


class EngineNotRunningError(LookupError):
    """The action needs the connection's engine to be running (reconcile, apply a difference)."""


@dataclass(frozen=True, slots=True)
class EmergencyReport:
    """What an emergency stop did: connections stopped, orders cancelled, positions flattened,
    and every failure along the way (it never stops half-way on one)."""

    stopped: list[str]
    cancelled_orders: int
    flattened_positions: int
    errors: list[str]


@dataclass(slots=True)
class _StartJob:
    first_outcome: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Slot:
    record: ConnectionRecord
    engine: ConnectionEngine | None = None
    job: _StartJob | None = None
    running_since: float | None = None
    auto_restarts: int = 0


class Coordinator:
    """See the module docstring. Build it, ``await restore()`` at launch, ``await shutdown()`` at
    exit; everything else is the public API the window and the command line use."""

    def __init__(
        self,
        *,
        connections: ConnectionService,
        settings: SettingsService,
        states: EngineStateRepository,
        audit: AuditRepository,
        bus: EventBus,
        market_bus: MarketBus,
        venue_factory: EngineVenueFactory,
        trading_factory: TradingComponentFactory = VenueTradingComponent.create,
        live_permitted: LivePermission = refuse_live,
        checklist: ChecklistProvider | None = None,
        force_paper: bool = False,
        database: Database | None = None,
        engine_options: EngineOptions = DEFAULT_ENGINE_OPTIONS,
        start_backoff: BackoffPolicy = DEFAULT_START_BACKOFF,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        redactor: Redactor | None = None,
    ) -> None:
        self._connections = connections
        self._settings = settings
        self._audit = audit
        self._bus = bus
        self._market_bus = market_bus
        self._venue_factory = venue_factory
        self._trading_factory = trading_factory
        self._live_permitted = live_permitted
        self._checklist = checklist
        self._force_paper = force_paper
        self._database = database
        self._engine_options = engine_options
        self._start_backoff = start_backoff
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._clock = clock
        self._redactor = redactor
        self._life = Lifecycle(states, audit, bus)
        self._states = states
        self._slots: dict[str, _Slot] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._restored = False
        self._closing = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._unsubscribe: list[Unsubscribe] = [
            bus.subscribe(SettingChanged, self._on_setting_changed),
            bus.subscribe(ConnectionChanged, self._on_connection_changed),
        ]
        connections.set_engine_probe(self.is_engine_running)

    # ------------------------------------------------------------------ sync reads

    @property
    def global_state(self) -> EngineState:
        return self._life.global_state

    def snapshots(self) -> list[EngineSnapshot]:
        return sorted(
            (self._snapshot(slot) for slot in self._slots.values()), key=lambda s: (s.name, s.connection_id)
        )

    def snapshot(self, connection_id: str) -> EngineSnapshot:
        return self._snapshot(self._slot(connection_id))

    def allowed(self, connection_id: str) -> frozenset[EngineAction]:
        self._slot(connection_id)
        return self._life.allowed(connection_id)

    def is_engine_running(self, connection_id: str) -> bool:
        """The probe ConnectionService uses to mark "restart required"."""
        return connection_id in self._life and self._life.state(connection_id) in RUNNING_STATES

    def engine(self, connection_id: str) -> ConnectionEngine | None:
        """The running engine of a connection (None when it has none), for reports and tests."""
        return self._slot(connection_id).engine

    @property
    def closed(self) -> bool:
        return self._closing

    # ------------------------------------------------------------------ per connection

    async def start(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        """Start one engine; returns when it runs or its first attempt failed (state ``error``,
        possibly with a retry scheduled). Raises IllegalTransition or EngineRefusedError
        (changing nothing) when it cannot start now."""
        self._check_open()
        slot = self._slot(connection_id)
        self._life.require(connection_id, A.START)  # fail fast: never queue behind a running stop
        async with self._life.lock(connection_id):
            self._life.require(connection_id, A.START)
            record = await self._connections.get(connection_id)
            if not record.is_enabled:
                raise EngineRefusedError(f"enable the connection {record.name} before starting its engine")
            await self._cancel_job(slot)  # a scheduled retry gives way to this explicit start
            slot.record = record
            if actor is Actor.USER:
                slot.auto_restarts = 0
            await self._life.move(connection_id, S.STARTING, actor=actor, reason=reason or "start requested")
            self._publish(slot)
            job = self._launch_job(slot, actor)
        await job.first_outcome.wait()

    async def stop(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        slot = self._slot(connection_id)
        self._life.require(connection_id, A.STOP)  # fail fast: never queue behind a running stop
        async with self._life.lock(connection_id):
            self._life.require(connection_id, A.STOP)
            await self._stop_locked(slot, actor, reason or "stop requested")

    async def pause(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        """No new positions; the stream, exit checks and order matching keep running (D14)."""
        slot = self._slot(connection_id)
        self._life.require(connection_id, A.PAUSE)  # fail fast: never queue behind a running stop
        async with self._life.lock(connection_id):
            self._life.require(connection_id, A.PAUSE)
            await self._life.move(connection_id, S.PAUSED, actor=actor, reason=reason or "pause requested")
            if slot.engine is not None:
                slot.engine.pause()
            self._publish(slot)

    async def resume(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        self._check_open()
        slot = self._slot(connection_id)
        self._life.require(connection_id, A.RESUME)  # fail fast: never queue behind a running stop
        async with self._life.lock(connection_id):
            self._life.require(connection_id, A.RESUME)
            await self._life.move(connection_id, S.RUNNING, actor=actor, reason=reason or "resume requested")
            if slot.engine is not None:
                slot.engine.resume()
            self._publish(slot)

    async def restart(self, connection_id: str, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        """Stop, then start with the connection's current settings and credentials (the one-click
        answer to "restart required"); the flag is cleared once the new engine is built."""
        self._check_open()
        slot = self._slot(connection_id)
        self._life.require(connection_id, A.RESTART)  # fail fast: never queue behind a running stop
        async with self._life.lock(connection_id):
            self._life.require(connection_id, A.RESTART)
            record = await self._connections.get(connection_id)
            if not record.is_enabled:
                raise EngineRefusedError(f"enable the connection {record.name} before restarting its engine")
            why = reason or "restart requested"
            await self._stop_locked(slot, actor, why)
            slot.record = record
            if actor is Actor.USER:
                slot.auto_restarts = 0
            await self._life.move(connection_id, S.STARTING, actor=actor, reason=why)
            self._publish(slot)
            job = self._launch_job(slot, actor)
        await job.first_outcome.wait()

    # ------------------------------------------------------------------ global

    async def start_all(self, *, actor: Actor = Actor.USER) -> None:
        """Start every enabled connection whose engine may start; failures are logged per
        connection, never raised half-way."""
        self._check_open()
        # Decide on the records just read, not on the slots' copies: a connection-changed event
        # may still be on its way to a slot (a connection enabled a moment ago).
        records = await self._connections.list()
        for record in records:
            self._ensure_slot(record).record = record
        targets = [r.id for r in records if r.is_enabled and A.START in self._life.allowed(r.id)]
        await self._each(targets, "start", lambda cid: self.start(cid, actor=actor))

    async def stop_all(self, *, actor: Actor = Actor.USER, reason: str = "") -> None:
        targets = [cid for cid in self._slots if A.STOP in self._life.allowed(cid)]
        await self._each(targets, "stop", lambda cid: self.stop(cid, actor=actor, reason=reason))

    async def pause_all(self, *, actor: Actor = Actor.USER) -> None:
        targets = [cid for cid in self._slots if A.PAUSE in self._life.allowed(cid)]
        await self._each(targets, "pause", lambda cid: self.pause(cid, actor=actor))

    async def resume_all(self, *, actor: Actor = Actor.USER) -> None:
        targets = [cid for cid in self._slots if A.RESUME in self._life.allowed(cid)]
        await self._each(targets, "resume", lambda cid: self.resume(cid, actor=actor))

    async def emergency_stop(self, *, flatten: bool = False, actor: Actor = Actor.USER) -> EmergencyReport:
        """Pause every engine at once, cancel their open orders, flatten their positions when
        asked (after the user confirmed), stop them, and turn live and preset trade off on every
        connection. Failures are collected in the report; the stop always goes on."""
        reason = "emergency stop" + (" with flatten" if flatten else "")
        for slot in self._slots.values():  # first, before any await: nothing new opens anywhere
            if slot.engine is not None:
                slot.engine.pause()
        stopped: list[str] = []
        errors: list[str] = []
        counts = {"cancelled": 0, "flattened": 0}

        def idle(cid: str) -> bool:
            state = self._life.state(cid)
            return A.EMERGENCY_STOP not in self._life.allowed(cid) or state in (S.IDLE, S.STOPPED)

        async def one(slot: _Slot) -> None:
            cid = slot.record.id
            if idle(cid):  # nothing up, or a stop already under way: do not wait behind it
                if slot.engine is None:
                    cancelled, flattened = await self._cold_emergency(slot, flatten, errors)
                    counts["cancelled"] += cancelled
                    counts["flattened"] += flattened
                return
            async with self._life.lock(cid):
                if idle(cid):
                    return
                engine = slot.engine
                if engine is not None and engine.trading is not None:
                    counts["cancelled"] += await self._try_trading(
                        slot, "cancel open orders", engine.trading.cancel_all, errors
                    )
                    if flatten:
                        counts["flattened"] += await self._try_trading(
                            slot, "flatten positions", engine.trading.flatten, errors
                        )
                try:
                    await self._stop_locked(slot, actor, reason)
                except Exception as exc:
                    errors.append(f"{slot.record.name}: stop failed: {self._describe(exc)}")
                    return
                stopped.append(cid)

        await asyncio.gather(*(one(slot) for slot in list(self._slots.values())))
        for record in await self._connections.list():
            try:
                if record.is_live_trade:
                    await self._connections.set_live_trade(record.id, False, actor=actor, reason=reason)
                if record.is_preset_trade:
                    await self._connections.set_preset_trade(record.id, False, actor=actor)
            except Exception as exc:
                errors.append(f"{record.name}: could not turn live/preset trade off: {self._describe(exc)}")
        report = EmergencyReport(stopped, counts["cancelled"], counts["flattened"], errors)
        await self._audit.record(
            actor=actor.value,
            action="engine.emergency_stop",
            entity_type="engine",
            entity_id=None,
            reason=reason,
            after={
                "stopped": len(stopped),
                "cancelled_orders": report.cancelled_orders,
                "flattened_positions": report.flattened_positions,
                "errors": errors,
            },
        )
        log.warning(
            "EMERGENCY STOP by %s: %d engine(s) stopped, %d order(s) cancelled, %d position(s) flattened%s",
            actor,
            len(stopped),
            report.cancelled_orders,
            report.flattened_positions,
            f"; {len(errors)} error(s): " + "; ".join(errors) if errors else "",
        )
        return report

    async def set_engine_types(self, *, main: bool | None = None, preset: bool | None = None) -> None:
        """D16: turn the main and/or preset engine on or off for every connection (persisted as
        settings; running engines start or end the loop at once)."""
        changes: dict[str, Any] = {}
        if main is not None:
            changes["system.main_engine_enabled"] = main
        if preset is not None:
            changes["system.preset_engine_enabled"] = preset
        if changes:
            await self._settings.update(changes, actor=Actor.USER.value)

    async def trip(self, connection_id: str, breaker: str, reason: str) -> None:
        """A circuit breaker fired: pause the connection (actor circuit_breaker), announce and audit
        it. A connection that is not running is left alone (its breakers are level-triggered and
        will fire again if the condition still holds after a resume)."""
        slot = self._slot(connection_id)
        async with self._life.lock(connection_id):
            if self._life.state(connection_id) is not S.RUNNING:
                log.info(
                    "circuit breaker %s on %s ignored: not running (%s)", breaker, slot.record.name, reason
                )
                return
            await self._life.move(
                connection_id,
                S.PAUSED,
                actor=Actor.CIRCUIT_BREAKER,
                reason=f"circuit breaker {breaker}: {reason}",
            )
            if slot.engine is not None:
                slot.engine.pause()
            self._publish(slot)
        self._bus.publish(CircuitBreakerTripped(connection_id=connection_id, breaker=breaker, reason=reason))
        try:
            await self._audit.record(
                actor=Actor.CIRCUIT_BREAKER.value,
                action="engine.circuit_breaker",
                entity_type="engine",
                entity_id=connection_id,
                connection_id=connection_id,
                reason=reason,
                after={"breaker": breaker},
            )
        except Exception:
            log.exception("the circuit breaker trip of %s could not be audited", slot.record.name)

    # ------------------------------------------------------------------ reads for docks and dialogs

    async def open_orders(self, connection_id: str | None = None) -> list[OrderView]:
        """Open orders of every connection (or one): a running engine answers, a stopped one's
        come from the database, so what is still open never disappears from the dock."""
        return await self._gather(
            connection_id,
            "open orders",
            lambda trading: trading.open_orders(),
            lambda repository, cid: repository.order_views(cid),
        )

    async def open_positions(self, connection_id: str | None = None) -> list[PositionView]:
        """Open positions of every connection (or one), like :meth:`open_orders`."""
        return await self._gather(
            connection_id,
            "open positions",
            lambda trading: trading.open_positions(),
            lambda repository, cid: repository.position_views(cid),
        )

    async def _gather[T](
        self,
        connection_id: str | None,
        what: str,
        read: Callable[[TradingComponent], Awaitable[list[T]]],
        stored: Callable[[OrderRepository, str], Awaitable[list[T]]],
    ) -> list[T]:
        """``read`` from every selected running engine, ``stored`` for the others; for all
        connections, one venue's error is logged and skipped (the dock still shows the others),
        for one connection it is raised."""
        result: list[T] = []
        repository = OrderRepository(self._database) if self._database is not None else None
        for slot in self._selected(connection_id):
            engine = slot.engine
            try:
                if engine is not None and engine.trading is not None:
                    result.extend(await read(engine.trading))
                elif repository is not None:
                    result.extend(await stored(repository, slot.record.id))
            except ExchangeError as exc:
                if connection_id is not None:
                    raise
                log.warning("%s of %s unavailable: %s", what, slot.record.name, exc)
        return result

    async def cancel_order(
        self, connection_id: str, client_order_id: str, *, actor: Actor = Actor.USER
    ) -> OrderView:
        """Cancel one open order of a running engine (the Orders dock), audited with its actor."""
        engine = self._running_engine(connection_id)
        assert engine.trading is not None
        order = await engine.trading.cancel_order(client_order_id)
        await self._audit.record(
            actor=actor.value,
            action="order.cancel",
            entity_type="order",
            entity_id=client_order_id,
            connection_id=connection_id,
            reason="cancelled by hand",
            after={"status": order.status.value, "symbol": order.symbol},
        )
        self._bus.publish(OrdersChanged(connection_id=connection_id))
        return order

    async def reconcile(self, connection_id: str) -> list[ReconcileDifference]:
        """Compare the connection's records with its venue; unambiguous differences are applied,
        the others are returned for the user to confirm."""
        engine = self._running_engine(connection_id)
        assert engine.trading is not None
        return await engine.trading.reconcile(apply=True)

    async def apply_difference(self, difference: ReconcileDifference) -> None:
        engine = self._running_engine(difference.connection_id)
        assert engine.trading is not None
        await engine.trading.apply_difference(difference)
        self._bus.publish(OrdersChanged(connection_id=difference.connection_id))
        self._bus.publish(PositionsChanged(connection_id=difference.connection_id))

    async def go_live_checklist(
        self, connection_id: str, ticked: frozenset[str] = frozenset()
    ) -> GoLiveChecklist:
        slot = self._slot(connection_id)
        record = await self._connections.get(connection_id)
        slot.record = record
        if self._checklist is not None:
            return await self._checklist(record, ticked)
        return await self._paper_record_checklist(record, ticked)

    async def _paper_record_checklist(
        self, record: ConnectionRecord, ticked: frozenset[str]
    ) -> GoLiveChecklist:
        """The live guard's checklist, fed with this connection's paper record (its first paper
        fill and the number of fills on its persisted paper account)."""
        count, first = (0, None)
        if self._database is not None:
            count, first = await PaperRepository(self._database).fill_stats(paper_account_id(record.id))
        return build_checklist(
            record,
            self._settings.values(),
            first_paper_trade_at=None if first is None else datetime.fromtimestamp(first / 1000, tz=UTC),
            paper_trade_count=count,
            now=datetime.now(UTC),
            ticks=ticked,
        )

    # ------------------------------------------------------------------ lifecycle of the coordinator

    async def restore(self, *, auto_start: bool | None = None) -> None:
        """At launch: know every connection and its persisted state, mark engines that were up
        when the application died as stopped ("application restarted"), then start the enabled
        connections when the setting ``engine.auto_start`` is on (actor auto_start)."""
        if self._restored:
            return
        self._restored = True
        persisted = {row.connection_id: row for row in await self._states.all() if row.connection_id}
        for record in await self._connections.list():
            row = persisted.get(record.id)
            status = (
                EngineStatus(row.state, row.reason, row.updated_at, row.started_at, row.error_count)
                if row is not None
                else None
            )
            self._ensure_slot(record, status)
        for cid, slot in self._slots.items():
            async with self._life.lock(cid):
                state = self._life.state(cid)
                if state not in ACTIVE_STATES:
                    continue
                why = "application restarted"
                log.warning(
                    "the engine of %s was %s when the application ended; marking it stopped",
                    slot.record.name,
                    state,
                )
                if state is not S.STOPPING:
                    await self._life.move(cid, S.STOPPING, actor=Actor.SYSTEM, reason=why)
                await self._life.move(cid, S.STOPPED, actor=Actor.SYSTEM, reason=why)
        await self._life.refresh_global(reason="restored")
        for slot in self._slots.values():
            self._publish(slot)
        if self._settings.get("engine.auto_start") if auto_start is None else auto_start:
            log.info("auto-start: starting the engines of all enabled connections")
            await self.start_all(actor=Actor.AUTO_START)

    async def shutdown(self) -> None:
        """Graceful: no new starts, every engine that is up stops (actor shutdown), venues close.
        Idempotent; concurrent callers wait for the same shutdown."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def settle(self, connection_id: str | None = None) -> None:
        """Wait until pending start jobs (retries, scheduled auto-restarts) have finished."""
        while True:
            tasks = [
                slot.job.task
                for slot in self._selected(connection_id)
                if slot.job is not None and slot.job.task is not None and not slot.job.task.done()
            ]
            if not tasks:
                return
            await asyncio.wait(tasks)

    # ------------------------------------------------------------------ internals: start jobs

    def _launch_job(self, slot: _Slot, actor: Actor, *, delay_s: float | None = None) -> _StartJob:
        job = _StartJob()
        slot.job = job
        job.task = asyncio.get_running_loop().create_task(
            self._run_start(slot, job, actor, delay_s), name=f"start:{slot.record.name}"
        )
        return job

    async def _cancel_job(self, slot: _Slot) -> None:
        job, slot.job = slot.job, None
        if job is None or job.task is None or job.task is asyncio.current_task():
            return
        job.task.cancel()
        await asyncio.gather(job.task, return_exceptions=True)

    def _attempt_limit(self) -> int:
        return 1 + int(self._settings.get("monitoring.max_restart_attempts"))

    async def _run_start(self, slot: _Slot, job: _StartJob, actor: Actor, delay_s: float | None) -> None:
        cid = slot.record.id
        lock = self._life.lock(cid)
        try:
            if delay_s is not None:  # an automatic restart: wait in error, then start
                await self._sleep(delay_s)
                async with lock:
                    if slot.job is not job or self._life.state(cid) is not S.ERROR:
                        return
                    await self._life.move(
                        cid,
                        S.STARTING,
                        actor=Actor.SYSTEM,
                        reason=f"automatic restart {slot.auto_restarts} of "
                        f"{self._settings.get('monitoring.max_restart_attempts')}",
                    )
                    self._publish(slot)
            limit = self._attempt_limit()
            backoff = replace(self._start_backoff, max_attempts=limit).backoff(self._rng)
            attempt = 0
            while True:
                attempt += 1
                try:
                    engine = await self._launch(slot)
                except Exception as exc:
                    text = self._describe(exc)
                    retry = is_retryable(exc)
                    delay = backoff.next_delay(exc) if retry else 0.0
                    final = not retry or backoff.exhausted()
                    if final:
                        why = (
                            f"start failed: {text}"
                            if attempt == 1
                            else f"start failed after {attempt} attempts: {text}"
                        )
                    else:
                        why = (
                            f"start failed: {text}; retrying in {delay:.1f} s (attempt {attempt} of {limit})"
                        )
                    async with lock:
                        if slot.job is not job or self._life.state(cid) is not S.STARTING:
                            return
                        await self._life.move(cid, S.ERROR, actor=actor, reason=why)
                        self._publish(slot)
                    job.first_outcome.set()
                    if final:
                        return
                    await self._sleep(delay)
                    async with lock:
                        if slot.job is not job or self._life.state(cid) is not S.ERROR:
                            return
                        await self._life.move(
                            cid,
                            S.STARTING,
                            actor=actor,
                            reason=f"retry {attempt} of {limit - 1} after: {text}",
                        )
                        self._publish(slot)
                    continue
                async with lock:
                    if slot.job is not job or self._life.state(cid) is not S.STARTING:
                        await engine.stop()
                        return
                    slot.engine = engine
                    slot.running_since = self._clock()
                    try:
                        await self._life.move(
                            cid, S.RUNNING, actor=actor, reason=f"running ({engine.mode.value})"
                        )
                    except Exception:
                        slot.engine, slot.running_since = None, None
                        await engine.stop()
                        raise
                    self._publish(slot)
                return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the start of %s failed unexpectedly", slot.record.name)
        finally:
            job.first_outcome.set()
            if slot.job is job:
                slot.job = None

    async def _launch(self, slot: _Slot) -> ConnectionEngine:
        """One start attempt: a fresh record, the live check, the venues, a started engine."""
        record = await self._connections.get(slot.record.id)
        slot.record = record
        mode = self._mode_for(record)
        if mode is TradingMode.LIVE:
            if not is_live_capable(record.exchange):
                raise EngineRefusedError(
                    f"{record.name} ({record.exchange}) can never trade live; it runs paper only"
                )
            decision = await self._live_permitted(record)
            if not decision.allowed:
                raise EngineRefusedError(f"live trading refused ({decision.rule}): {decision.message}")
        venues = await self._venue_factory(record, mode)
        if venues.mode is not mode:  # a factory must never swap paper and live behind our back
            await venues.close()
            raise EngineRefusedError(
                f"the venue factory built a {venues.mode.value} venue for a {mode.value} start"
            )
        engine = ConnectionEngine(
            record,
            venues,
            bus=self._bus,
            market_bus=self._market_bus,
            settings=self._settings,
            trading_factory=self._trading_factory,
            on_failure=self._on_engine_failure,
            on_refresh=self._on_engine_refresh,
            on_trip=self._on_engine_trip,
            options=self._engine_options,
            database=self._database,
        )
        await engine.start()
        if record.restart_required:
            try:
                slot.record = await self._connections.mark_restarted(record.id)
            except Exception:
                log.exception("could not clear 'restart required' on %s", record.name)
        return engine

    async def _stop_locked(self, slot: _Slot, actor: Actor, reason: str) -> None:
        """Stop one engine (the caller holds its lock and checked the action)."""
        cid = slot.record.id
        await self._cancel_job(slot)
        state = self._life.state(cid)
        if state in (S.STOPPED, S.IDLE):
            return
        if state is not S.STOPPING:
            await self._life.move(cid, S.STOPPING, actor=actor, reason=reason)
            self._publish(slot)
        engine, slot.engine = slot.engine, None
        slot.running_since = None
        if engine is not None:
            await engine.stop()
        await self._life.move(cid, S.STOPPED, actor=actor, reason=reason)
        self._publish(slot)

    async def _shutdown(self) -> None:
        self._closing = True
        log.info("stopping every engine (shutdown)")
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

        async def one(slot: _Slot) -> None:
            cid = slot.record.id
            async with self._life.lock(cid):
                await self._cancel_job(slot)
                status = self._life.status(cid)
                if status.state in (S.IDLE, S.STOPPED):
                    return
                why = "application shutdown"
                if status.state is S.ERROR and status.reason:
                    why += f" (last error: {status.reason})"
                await self._stop_locked(slot, Actor.SHUTDOWN, why)

        results = await asyncio.gather(
            *(one(slot) for slot in list(self._slots.values())), return_exceptions=True
        )
        for slot, result in zip(list(self._slots.values()), results, strict=False):
            if isinstance(result, BaseException):
                log.error("the engine of %s did not stop cleanly: %s", slot.record.name, result)
        await self._life.refresh_global(actor=Actor.SHUTDOWN, reason="application shutdown")
        log.info("all engines stopped")

    # ------------------------------------------------------------------ internals: events

    def _on_engine_trip(self, engine: ConnectionEngine, trip: Trip) -> None:
        self._background_task(
            self.trip(engine.connection_id, trip.breaker.value, trip.reason), f"trip:{engine.record.name}"
        )

    def _on_engine_failure(self, engine: ConnectionEngine, reason: str) -> None:
        self._background_task(self._engine_failed(engine, reason), f"failure:{engine.record.name}")

    async def _engine_failed(self, engine: ConnectionEngine, reason: str) -> None:
        slot = self._slots.get(engine.connection_id)
        if slot is None:
            await engine.stop()
            return
        cid = slot.record.id
        async with self._life.lock(cid):
            if slot.engine is not engine or self._life.state(cid) not in (S.RUNNING, S.PAUSED):
                return
            slot.engine, slot.running_since = None, None
            await engine.stop()
            await self._life.move(cid, S.ERROR, actor=Actor.SYSTEM, reason=reason)
            self._publish(slot)
            limit = int(self._settings.get("monitoring.max_restart_attempts"))
            if (
                self._closing
                or not self._settings.get("monitoring.auto_restart")
                or slot.auto_restarts >= limit
            ):
                return
            slot.auto_restarts += 1
            cooldown = 60.0 * float(self._settings.get("monitoring.restart_cooldown_min"))
            log.warning(
                "engine %s will restart automatically in %g min (%d of %d)",
                slot.record.name,
                cooldown / 60,
                slot.auto_restarts,
                limit,
            )
            self._launch_job(slot, Actor.SYSTEM, delay_s=cooldown)

    def _on_engine_refresh(self, engine: ConnectionEngine) -> None:
        slot = self._slots.get(engine.connection_id)
        if slot is not None and slot.engine is engine:
            self._publish(slot)

    def _on_setting_changed(self, event: SettingChanged) -> None:
        if event.key in BREAKER_SETTING_KEYS:
            for slot in self._slots.values():
                if slot.engine is not None:
                    slot.engine.apply_breaker_settings()
            return
        if event.key not in _ENGINE_TYPE_KEYS:
            return
        for slot in self._slots.values():
            if slot.engine is not None:
                slot.engine.apply_engine_types()
            self._publish(slot)

    def _on_connection_changed(self, event: ConnectionChanged) -> None:
        if self._restored and not self._closing:
            self._background_task(self._connection_changed(event), f"connection:{event.connection_id}")

    async def _connection_changed(self, event: ConnectionChanged) -> None:
        cid = event.connection_id
        if event.change == "deleted":
            slot = self._slots.pop(cid, None)
            if slot is None:
                return
            await self._cancel_job(slot)
            if slot.engine is not None:  # the state rows went with the connection: nothing to store
                await slot.engine.stop()
            self._life.forget(cid)
            await self._life.refresh_global(reason="connection deleted")
            return
        try:
            record = await self._connections.get(cid)
        except LookupError:
            return
        slot = self._ensure_slot(record)
        slot.record = record
        self._life.rename(cid, record.name)
        if not record.is_enabled and self._life.state(cid) in (S.STARTING, S.RUNNING, S.PAUSED, S.ERROR):
            async with self._life.lock(cid):
                # Read again under the lock: this event may be older than an "enabled" that
                # followed it (events are handled in background tasks).
                try:
                    fresh = await self._connections.get(cid)
                except LookupError:
                    return  # deleted meanwhile: its own event stops the engine
                slot.record = fresh
                if not fresh.is_enabled and A.STOP in self._life.allowed(cid):
                    await self._stop_locked(slot, Actor.SYSTEM, "connection disabled")
        self._publish(slot)

    def _background_task(self, coro: Awaitable[None], name: str) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("coordinator task %s failed", name)

        task = asyncio.get_running_loop().create_task(run(), name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ internals: helpers

    def _check_open(self) -> None:
        if self._closing:
            raise CoordinatorClosedError("the application is shutting down; engines no longer start")

    def _slot(self, connection_id: str) -> _Slot:
        try:
            return self._slots[connection_id]
        except KeyError:
            raise LookupError(f"the coordinator knows no connection {connection_id!r}") from None

    def _ensure_slot(self, record: ConnectionRecord, status: EngineStatus | None = None) -> _Slot:
        slot = self._slots.get(record.id)
        if slot is None:
            slot = self._slots[record.id] = _Slot(record)
            self._life.register(record.id, record.name, status)
        return slot

    def _selected(self, connection_id: str | None) -> Iterable[_Slot]:
        if connection_id is None:
            return list(self._slots.values())
        return [self._slot(connection_id)]

    def _running_engine(self, connection_id: str) -> ConnectionEngine:
        slot = self._slot(connection_id)
        if slot.engine is None or slot.engine.trading is None:
            raise EngineNotRunningError(f"start the engine of {slot.record.name} first")
        return slot.engine

    def _mode_for(self, record: ConnectionRecord) -> TradingMode:
        """Live only when the connection is switched to live and the run does not force paper."""
        return TradingMode.LIVE if record.is_live_trade and not self._force_paper else TradingMode.PAPER

    async def _each(self, targets: list[str], verb: str, action: Callable[[str], Awaitable[None]]) -> None:
        results = await asyncio.gather(*(action(cid) for cid in targets), return_exceptions=True)
        for cid, result in zip(targets, results, strict=True):
            if isinstance(result, IllegalTransition):
                log.info("%s skipped %s: %s", verb, self._name(cid), result)
            elif isinstance(result, BaseException):
                log.warning("could not %s %s: %s", verb, self._name(cid), self._describe(result))

    def _name(self, connection_id: str) -> str:
        slot = self._slots.get(connection_id)
        return slot.record.name if slot is not None else connection_id

    async def _cold_emergency(self, slot: _Slot, flatten: bool, errors: list[str]) -> tuple[int, int]:
        """Emergency stop of a connection whose engine is not running: orders it left open (and,
        when asked, its open positions) are still on the venue, so bring up its trading venue and
        order loop just long enough to cancel (and flatten). Only risk-reducing calls are made,
        so no live permission is asked; nothing is done when the database knows of nothing open."""
        if self._database is None:
            return 0, 0
        repository = OrderRepository(self._database)
        record = slot.record
        orders = await repository.active_orders(record.id) + await repository.pending_orders(record.id)
        positions = await repository.open_positions(record.id) if flatten else []
        if not orders and not positions:
            return 0, 0
        live = any(o.mode is TradingMode.LIVE for o in orders) or any(
            p.mode is TradingMode.LIVE for p in positions
        )
        mode = TradingMode.LIVE if live else TradingMode.PAPER
        cancelled = flattened = 0
        try:
            venues = await self._venue_factory(record, mode)
        except Exception as exc:
            errors.append(f"{record.name}: could not reach the venue to cancel: {self._describe(exc)}")
            return 0, 0
        try:
            await venues.trading.load_markets()
            trading = self._trading_factory(
                TradingContext(
                    connection=record,
                    mode=mode,
                    venue=venues.trading,
                    bus=self._bus,
                    setting=self._settings.get,
                    database=self._database,
                )
            )
            try:
                cancelled = await self._try_trading(slot, "cancel open orders", trading.cancel_all, errors)
                if flatten:
                    flattened = await self._try_trading(slot, "flatten positions", trading.flatten, errors)
            finally:
                await trading.close()
        except Exception as exc:
            errors.append(f"{record.name}: emergency cancel failed: {self._describe(exc)}")
        finally:
            await venues.close()
        log.warning(
            "emergency stop of %s (engine not running): %d order(s) cancelled, %d position(s) closed",
            record.name,
            cancelled,
            flattened,
        )
        return cancelled, flattened

    async def _try_trading(
        self, slot: _Slot, what: str, call: Callable[[], Awaitable[int]], errors: list[str]
    ) -> int:
        try:
            return await call()
        except TradingActionError as exc:
            errors.append(f"{slot.record.name}: {what}: {self._describe(exc)}")
            return exc.done
        except Exception as exc:
            errors.append(f"{slot.record.name}: {what}: {self._describe(exc)}")
            return 0

    def _describe(self, error: BaseException) -> str:
        text = describe_error(error, readable=(EngineRefusedError, NoSymbolsError, TradingActionError))
        return self._redactor.redact(text) if self._redactor is not None else text

    def _publish(self, slot: _Slot) -> None:
        self._bus.publish(EngineSnapshotChanged(snapshot=self._snapshot(slot)))

    def _snapshot(self, slot: _Slot) -> EngineSnapshot:
        record = slot.record
        status = self._life.status(record.id)
        engine = slot.engine
        components = engine.components() if engine is not None else ()
        main, preset = engine_types(self._settings)
        return EngineSnapshot(
            connection_id=record.id,
            name=record.name,
            exchange=record.exchange,
            state=status.state,
            mode=engine.mode if engine is not None else self._mode_for(slot.record),
            reason=status.reason,
            started_at=status.started_at,
            uptime_s=self._clock() - slot.running_since if slot.running_since is not None else 0.0,
            health=overall_health(components) if engine is not None else HealthStatus.UNKNOWN,
            components=components,
            restart_required=record.restart_required and status.state in RUNNING_STATES,
            error_count=status.error_count,
            open_positions=engine.open_positions if engine is not None else 0,
            open_orders=engine.open_orders if engine is not None else 0,
            main_enabled=main,
            preset_enabled=preset,
            updated_at=datetime.now(UTC),
        )


def snapshot_as_dict(snapshot: EngineSnapshot) -> dict[str, Any]:
    """One snapshot as plain JSON values (``selftest --json``, the headless summary)."""
    return {
        "connection_id": snapshot.connection_id,
        "name": snapshot.name,
        "exchange": snapshot.exchange,
        "state": snapshot.state.value,
        "mode": snapshot.mode.value,
        "reason": snapshot.reason,
        "uptime_s": round(snapshot.uptime_s, 3),
        "health": snapshot.health.value,
        "restart_required": snapshot.restart_required,
        "error_count": snapshot.error_count,
        "open_positions": snapshot.open_positions,
        "open_orders": snapshot.open_orders,
        "main_enabled": snapshot.main_enabled,
        "preset_enabled": snapshot.preset_enabled,
        "actions": sorted(action.value for action in snapshot.actions),
        "components": [
            {
                "name": c.name,
                "status": c.status.value,
                "cycles": c.cycles,
                "errors": c.errors,
                "success_rate": None if c.success_rate is None else round(c.success_rate, 2),
                "last_duration_ms": None if c.last_duration_ms is None else round(c.last_duration_ms, 3),
                "avg_duration_ms": None if c.avg_duration_ms is None else round(c.avg_duration_ms, 3),
                "interval_ms": c.interval_ms,
                "last_error": c.last_error,
            }
            for c in snapshot.components
        ],
    }
