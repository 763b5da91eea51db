"""The coordinator on real parts: a real SQLite file, the real connection and settings services, the
real paper venue over seeded simulated markets (fast ticks), the real engines and state repository.

Faults are injected around real venues (``FaultyVenue``: a real simulated market whose listed calls
raise our exchange errors; ``GatedVenue``: one whose calls wait for the test), never by replacing
our own code. The backoff sleep is injected, so retries are recorded instead of waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keyring.backends.fail
import pytest
import pytest_asyncio

from cts_desktop.domain.engine import (
    ACTION_FROM,
    TRANSITIONS,
    EngineAction,
    HealthStatus,
    IllegalTransition,
    allowed_actions,
)
from cts_desktop.domain.enums import Actor, EngineState, TradingMode
from cts_desktop.domain.market import MarketType, OrderSide, OrderType
from cts_desktop.domain.orders import DifferenceKind, OrderIntent, OrderStatus, RiskDecision
from cts_desktop.engine.connection_engine import EngineOptions
from cts_desktop.engine.connections import ConnectionDraft, ConnectionService
from cts_desktop.engine.coordinator import (
    Coordinator,
    CoordinatorClosedError,
    EngineNotRunningError,
    EngineRefusedError,
    snapshot_as_dict,
)
from cts_desktop.engine.events import (
    CircuitBreakerTripped,
    EngineSnapshotChanged,
    EngineStateChanged,
    Event,
    EventBus,
)
from cts_desktop.engine.execution_component import ExecutionTradingComponent
from cts_desktop.engine.lifecycle import EngineStatus, Lifecycle, derive_global_state
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.orders import OrderExecutor
from cts_desktop.engine.settings_service import SettingsService
from cts_desktop.engine.trading_component import TradingComponent, TradingContext, VenueTradingComponent
from cts_desktop.engine.venues import VenueFactory, paper_account_id
from cts_desktop.exchanges.backoff import BackoffPolicy, Jitter
from cts_desktop.exchanges.base import Exchange
from cts_desktop.exchanges.errors import AuthenticationError, ExchangeDownError, NetworkError
from cts_desktop.exchanges.paper import PaperExchange
from cts_desktop.exchanges.simulated import SimulatedExchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditEntry, AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord, ConnectionRepository
from cts_desktop.storage.repositories.engine_state import EngineStateRepository
from cts_desktop.storage.repositories.orders import NewOrder, OrderRepository
from cts_desktop.storage.repositories.paper import PaperRepository
from cts_desktop.storage.repositories.settings import SettingsRepository
from cts_desktop.storage.secrets import SecretStore
from tests.engine.test_connection_engine import FailingCycles, FaultyVenue
from tests.helpers import wait_for

S = EngineState
A = EngineAction
FAST = EngineOptions(
    health_interval_s=0.05,
    max_consecutive_errors=3,
    stream_backoff=BackoffPolicy(base_s=0.05, cap_s=0.1, max_attempts=None, jitter=Jitter.NONE),
    stream_poll_interval_s=0.05,
)
NO_KEYRING: Any = keyring.backends.fail.Keyring()  # type: ignore[no-untyped-call]
NO_JITTER = BackoffPolicy(base_s=2.0, factor=2.0, cap_s=60.0, max_attempts=None, jitter=Jitter.NONE)
FAST_SETTINGS = {
    "system.main_engine_interval_ms": 50,
    "system.preset_engine_interval_ms": 50,
    "system.active_order_interval_ms": 50,
}


class Gate:
    """Holds the start (``load_markets``) or the stop (``close``) of every venue built with it."""

    def __init__(self) -> None:
        self.hold_start = asyncio.Event()
        self.hold_start.set()
        self.hold_stop = asyncio.Event()
        self.hold_stop.set()
        self.waiting = False
        self.fail: dict[str, Exception] = {}


class GatedVenue(FaultyVenue):
    """A real venue whose ``load_markets`` (start) or ``close`` (stop) waits until the test opens
    its gate: the only way to hold an engine in ``starting`` or ``stopping`` on real parts."""

    def __init__(self, inner: Exchange, gate: Gate) -> None:
        super().__init__(inner)
        self.gate = gate

    async def load_markets(self, *, reload: bool = False) -> Any:
        self.gate.waiting = True
        await self.gate.hold_start.wait()
        self.gate.waiting = False
        error = self.gate.fail.get("load_markets")
        if error is not None:
            raise error
        return await self._inner.load_markets(reload=reload)

    async def close(self) -> None:
        self.gate.waiting = True
        await self.gate.hold_stop.wait()
        self.gate.waiting = False
        await super().close()


@dataclass
class Harness:
    database: Database
    bus: EventBus
    settings: SettingsService
    connections: ConnectionService
    audit: AuditRepository
    states: EngineStateRepository
    market_bus: MarketBus
    events: list[Event] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    venue_makers: dict[str, Callable[[], Exchange]] = field(default_factory=dict)
    built: dict[str, list[Exchange]] = field(default_factory=dict)
    coordinators: list[Coordinator] = field(default_factory=list)

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)

    def public_venue(self, record: ConnectionRecord) -> Exchange:
        maker = self.venue_makers.get(record.name)
        venue = (
            maker() if maker is not None else SimulatedExchange(seed=len(record.name), tick_interval_ms=100)
        )
        self.built.setdefault(record.name, []).append(venue)
        return venue

    def coordinator(self, **kwargs: Any) -> Coordinator:
        async def no_credentials(_connection_id: str) -> None:
            return None

        factory = VenueFactory(
            database=self.database,
            redactor=Redactor(),
            credentials=kwargs.pop("credentials", no_credentials),
            simulated=SimulatedExchange(seed=11, tick_interval_ms=100),
            public_venue=self.public_venue,
        )
        coordinator = Coordinator(
            connections=self.connections,
            settings=self.settings,
            states=self.states,
            audit=self.audit,
            bus=self.bus,
            market_bus=self.market_bus,
            venue_factory=kwargs.pop("venue_factory", factory),
            database=self.database,
            engine_options=kwargs.pop("engine_options", FAST),
            start_backoff=kwargs.pop("start_backoff", NO_JITTER),
            # The production order loop (risk gate, executor, reconciliation) unless a test injects faults.
            trading_factory=kwargs.pop("trading_factory", ExecutionTradingComponent.factory()),
            sleep=self.sleep,
            **kwargs,
        )
        self.coordinators.append(coordinator)
        return coordinator

    async def desk(self, name: str, exchange: str = "bybit", *, enabled: bool = True) -> str:
        record = await self.connections.create(ConnectionDraft(name=name, exchange=exchange))
        if enabled:
            await self.connections.set_enabled(record.id, True)
        return record.id

    def transitions(self, connection_id: str | None, since: int = 0) -> list[EngineState]:
        return [
            e.new
            for e in self.events[since:]
            if isinstance(e, EngineStateChanged) and e.connection_id == connection_id
        ]

    async def audit_for(self, connection_id: str) -> list[AuditEntry]:
        """The engine's audit entries (not the connection's own), oldest first."""
        entries = await self.audit.recent(10_000)
        return [e for e in reversed(entries) if e.entity_id == connection_id and e.entity_type == "engine"]


@pytest_asyncio.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}")
    bus = EventBus()
    settings = SettingsService(SettingsRepository(database), bus)
    await settings.load()
    await settings.update(FAST_SETTINGS)
    audit = AuditRepository(database)
    connections = ConnectionService(
        ConnectionRepository(database), SecretStore(Redactor(), NO_KEYRING), audit, bus
    )
    harness = Harness(
        database, bus, settings, connections, audit, EngineStateRepository(database), MarketBus(bus)
    )
    bus.subscribe(Event, harness.events.append)
    yield harness
    for coordinator in harness.coordinators:
        await coordinator.shutdown()
    await database.close()


async def running(h: Harness, *names: str, **kwargs: Any) -> tuple[Coordinator, list[str]]:
    ids = [await h.desk(name) for name in names]
    coordinator = h.coordinator(**kwargs)
    await coordinator.restore()
    for cid in ids:
        await coordinator.start(cid)
    return coordinator, ids


# ------------------------------------------------------------------------------------------------
# The state machine, applied: every pair of the table through the Lifecycle.

PAIRS = [(old, new) for old in S for new in S]


@pytest.mark.asyncio
@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{o}->{n}" for o, n in PAIRS])
async def test_every_state_change_is_checked_against_the_table(h: Harness, old: S, new: S) -> None:
    cid = await h.desk("Desk")
    await h.states.set(cid, old, "setup")
    life = Lifecycle(h.states, h.audit, h.bus)
    life.register(cid, "Desk", EngineStatus(old, "setup"))
    audit_before = len(await h.audit.recent(10_000))
    events_before = len(h.events)

    if new in TRANSITIONS[old]:
        await life.move(cid, new, actor=Actor.CIRCUIT_BREAKER, reason="because")
        row = await h.states.get(cid)
        assert row is not None and (row.state, row.reason) == (new, "because")
        (entry,) = await h.audit.recent(1)
        assert (entry.actor, entry.action, entry.before, entry.after, entry.reason) == (
            "circuit_breaker",
            f"engine.{new.value}",
            {"state": old.value},
            {"state": new.value},
            "because",
        )
        changed = [e for e in h.events[events_before:] if isinstance(e, EngineStateChanged)]
        assert (changed[0].connection_id, changed[0].old, changed[0].new, changed[0].actor) == (
            cid,
            old,
            new,
            Actor.CIRCUIT_BREAKER,
        )
        assert life.state(cid) is new
        assert life.global_state is derive_global_state([new])
    else:
        with pytest.raises(
            IllegalTransition, match=f"cannot move to {new.value} the engine of Desk: it is {old}"
        ):
            await life.move(cid, new, actor=Actor.USER, reason="nope")
        row = await h.states.get(cid)
        assert row is not None and (row.state, row.reason) == (old, "setup")
        assert len(await h.audit.recent(10_000)) == audit_before
        assert h.events[events_before:] == []
        assert life.state(cid) is old


def test_the_global_state_is_derived_from_all_engines() -> None:
    assert derive_global_state([]) is S.IDLE
    assert derive_global_state([S.IDLE, S.IDLE]) is S.IDLE
    assert derive_global_state([S.IDLE, S.STOPPED]) is S.STOPPED
    assert derive_global_state([S.ERROR, S.STOPPED]) is S.ERROR
    assert derive_global_state([S.PAUSED, S.PAUSED, S.STOPPED]) is S.PAUSED
    assert derive_global_state([S.PAUSED, S.RUNNING, S.ERROR]) is S.RUNNING
    assert derive_global_state([S.STARTING, S.PAUSED]) is S.STARTING
    assert derive_global_state([S.STOPPING, S.PAUSED]) is S.STOPPING


# ------------------------------------------------------------------------------------------------
# Every action from every state, on real engines.


@dataclass
class AtState:
    coordinator: Coordinator
    cid: str
    gate: Gate
    pending: asyncio.Task[None] | None = None

    async def release(self) -> None:
        self.gate.hold_start.set()
        self.gate.hold_stop.set()
        self.gate.fail.clear()
        if self.pending is not None:
            await self.pending


async def at_state(h: Harness, state: S) -> AtState:
    """A connection whose engine is in ``state``, reached through the real paths (restore for the
    persisted states, start/pause/stop for the others, a gated venue for the transient ones)."""
    gate = Gate()
    h.venue_makers["Desk"] = lambda: GatedVenue(SimulatedExchange(seed=5, tick_interval_ms=100), gate)
    cid = await h.desk("Desk")
    if state in (S.STOPPED, S.ERROR):
        await h.states.set(cid, state, "persisted before this run")
    coordinator = h.coordinator()
    await coordinator.restore()
    at = AtState(coordinator, cid, gate)
    if state in (S.RUNNING, S.PAUSED, S.STOPPING):
        await coordinator.start(cid)
    if state is S.PAUSED:
        await coordinator.pause(cid)
    if state is S.STARTING:
        gate.hold_start.clear()
        at.pending = asyncio.ensure_future(coordinator.start(cid))
        await wait_for(lambda: gate.waiting)
    if state is S.STOPPING:
        gate.hold_stop.clear()
        at.pending = asyncio.ensure_future(coordinator.stop(cid))
        await wait_for(lambda: gate.waiting)
    assert coordinator.snapshot(cid).state is state
    return at


ILLEGAL = [(s, a) for a in A if a is not A.EMERGENCY_STOP for s in S if s not in ACTION_FROM[a]]
EXPECTED = {
    A.START: [S.STARTING, S.RUNNING],
    A.STOP: [S.STOPPING, S.STOPPED],
    A.PAUSE: [S.PAUSED],
    A.RESUME: [S.RUNNING],
    A.RESTART: [S.STOPPING, S.STOPPED, S.STARTING, S.RUNNING],
}
LEGAL = [(s, a) for a in EXPECTED for s in S if s in ACTION_FROM[a]]


@pytest.mark.asyncio
@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{a}-from-{s}" for s, a in ILLEGAL])
async def test_an_illegal_action_raises_and_changes_nothing(h: Harness, state: S, action: A) -> None:
    at = await at_state(h, state)
    coordinator, cid = at.coordinator, at.cid
    assert coordinator.allowed(cid) == allowed_actions(state) == coordinator.snapshot(cid).actions
    row = await h.states.get(cid)
    audit_before = len(await h.audit.recent(10_000))
    events_before = len(h.events)
    try:
        with pytest.raises(
            IllegalTransition, match=f"cannot {action.value} the engine of Desk: it is {state}"
        ):
            await getattr(coordinator, action.value)(cid)
        assert coordinator.snapshot(cid).state is state
        assert await h.states.get(cid) == row
        assert len(await h.audit.recent(10_000)) == audit_before
        assert h.transitions(cid, events_before) == [] and h.transitions(None, events_before) == []
    finally:
        await at.release()


@pytest.mark.asyncio
@pytest.mark.parametrize(("state", "action"), LEGAL, ids=[f"{a}-from-{s}" for s, a in LEGAL])
async def test_a_legal_action_moves_persists_audits_and_publishes(h: Harness, state: S, action: A) -> None:
    at = await at_state(h, state)
    coordinator, cid = at.coordinator, at.cid
    at.gate.fail.clear()  # an engine left in error by a persisted state starts fine now
    events_before = len(h.events)
    audit_before = len(await h.audit_for(cid))
    task = asyncio.ensure_future(getattr(coordinator, action.value)(cid, reason=f"test {action.value}"))
    if state is S.STARTING:
        await asyncio.sleep(0.05)  # the stop cancels the held start; nothing waits for the gate
    await task
    await at.release()
    expected = EXPECTED[action]
    assert coordinator.snapshot(cid).state is expected[-1]
    row = await h.states.get(cid)
    assert row is not None and row.state is expected[-1]
    assert h.transitions(cid, events_before) == expected
    entries = (await h.audit_for(cid))[audit_before:]
    assert [e.action for e in entries] == [f"engine.{s.value}" for s in expected]
    assert {e.actor for e in entries} == {"user"}
    assert entries[0].reason == f"test {action.value}"
    if expected[-1] is S.RUNNING:
        assert coordinator.engine(cid) is not None and coordinator.snapshot(cid).mode is TradingMode.PAPER
    if expected[-1] is S.STOPPED:
        assert coordinator.engine(cid) is None


@pytest.mark.asyncio
@pytest.mark.parametrize("state", list(S))
async def test_emergency_stop_from_every_state(h: Harness, state: S) -> None:
    at = await at_state(h, state)
    coordinator, cid = at.coordinator, at.cid
    try:
        report = await coordinator.emergency_stop(actor=Actor.USER)
        if state in (S.STARTING, S.RUNNING, S.PAUSED, S.ERROR):
            assert report.stopped == [cid] and coordinator.snapshot(cid).state is S.STOPPED
        else:  # idle and stopped have nothing to stop; a stop already under way finishes on its own
            assert report.stopped == [] and coordinator.snapshot(cid).state is state
        assert report.errors == []
    finally:
        await at.release()
    assert coordinator.snapshot(cid).state in (S.IDLE, S.STOPPED)


# ------------------------------------------------------------------------------------------------
# Actors, events, snapshots.


@pytest.mark.asyncio
async def test_transitions_carry_their_actor_and_the_global_state_is_published(h: Harness) -> None:
    cid = await h.desk("Desk")
    coordinator = h.coordinator()
    await coordinator.restore()
    states = [coordinator.global_state]
    await coordinator.start(cid, actor=Actor.AUTO_START, reason="launch")
    states.append(coordinator.global_state)
    assert states == [S.IDLE, S.RUNNING]
    assert h.transitions(None) == [S.STARTING, S.RUNNING]
    global_row = await h.states.get(None)
    assert global_row is not None and global_row.state is S.RUNNING

    await coordinator.trip(cid, "daily_loss", "daily loss 5.2 % reached the 5 % limit")
    tripped = [e for e in h.events if isinstance(e, CircuitBreakerTripped)]
    assert [(e.connection_id, e.breaker) for e in tripped] == [(cid, "daily_loss")]
    assert coordinator.snapshot(cid).state is S.PAUSED
    await coordinator.trip(cid, "daily_loss", "still")  # already paused: ignored
    assert len([e for e in h.events if isinstance(e, CircuitBreakerTripped)]) == 1

    await coordinator.resume(cid)
    await coordinator.shutdown()
    entries = await h.audit_for(cid)
    assert [(e.actor, e.action) for e in entries] == [
        ("auto_start", "engine.starting"),
        ("auto_start", "engine.running"),
        ("circuit_breaker", "engine.paused"),
        ("circuit_breaker", "engine.circuit_breaker"),
        ("user", "engine.running"),
        ("shutdown", "engine.stopping"),
        ("shutdown", "engine.stopped"),
    ]
    assert entries[2].reason == "circuit breaker daily_loss: daily loss 5.2 % reached the 5 % limit"
    assert coordinator.global_state is S.STOPPED and h.transitions(None)[-1] is S.STOPPED


@pytest.mark.asyncio
async def test_snapshots_report_health_about_once_a_second_with_the_default_refresh(h: Harness) -> None:
    coordinator, (cid,) = await running(h, "Desk", engine_options=EngineOptions())
    first = len(h.events)
    await asyncio.sleep(2.3)
    refreshes = [e for e in h.events[first:] if isinstance(e, EngineSnapshotChanged)]
    assert 2 <= len(refreshes) <= 4
    snapshot = coordinator.snapshot(cid)
    assert snapshot.state is S.RUNNING and snapshot.health is HealthStatus.HEALTHY
    assert snapshot.uptime_s >= 2.0 and snapshot.started_at is not None
    assert [c.name for c in snapshot.components] == ["market", "main", "preset", "orders", "health"]
    data = snapshot_as_dict(snapshot)
    assert data["state"] == "running" and data["components"][1]["success_rate"] == 100.0
    names = [s.name for s in coordinator.snapshots()]
    assert names == sorted(names) == ["Desk"]


# ------------------------------------------------------------------------------------------------
# Failure isolation, retries, crashes.


@pytest.mark.asyncio
async def test_one_connection_losing_its_stream_leaves_three_others_running_and_healthy(h: Harness) -> None:
    faulty = FaultyVenue(SimulatedExchange(seed=99, tick_interval_ms=100))
    h.venue_makers["Desk D"] = lambda: faulty
    coordinator, ids = await running(h, "Desk A", "Desk B", "Desk C", "Desk D")
    *healthy, broken = ids
    await wait_for(
        lambda: all(coordinator.snapshot(c).health is HealthStatus.HEALTHY for c in ids), timeout=10
    )

    down = NetworkError("bybit", "the websocket was closed by the exchange")
    for call in ("watch_ticker", "watch_ohlcv", "fetch_ticker", "fetch_ohlcv"):
        faulty.fail[call] = down
    await wait_for(lambda: coordinator.snapshot(broken).health is HealthStatus.UNHEALTHY, timeout=10)
    cycles = {c: coordinator.snapshot(c).components[1].cycles for c in healthy}
    await asyncio.sleep(0.5)
    for cid in healthy:
        snapshot = coordinator.snapshot(cid)
        assert snapshot.state is S.RUNNING and snapshot.health is HealthStatus.HEALTHY
        assert snapshot.components[1].cycles > cycles[cid]  # their main loops keep cycling
    market = coordinator.snapshot(broken).components[0]
    assert market.status is HealthStatus.UNHEALTHY and "websocket was closed" in market.last_error
    assert coordinator.snapshot(broken).state is S.RUNNING  # a lost stream pauses nothing by itself

    faulty.fail.clear()  # the exchange is back: the stream supervisor reconnects on its own
    await wait_for(
        lambda: coordinator.snapshot(broken).components[0].status is HealthStatus.HEALTHY, timeout=10
    )


@pytest.mark.asyncio
async def test_a_failing_start_retries_with_backoff_then_stays_in_error_with_the_reason(h: Harness) -> None:
    await h.settings.update({"monitoring.max_restart_attempts": 2})
    faults: dict[str, Any] = {"load_markets": ExchangeDownError("bybit", "maintenance")}
    h.venue_makers["Desk D"] = lambda: FaultyVenue(SimulatedExchange(seed=3, tick_interval_ms=100), faults)
    coordinator, ids = await running(h, "Desk A", "Desk B", "Desk C")
    broken = await h.desk("Desk D")
    await coordinator.start_all()  # the running ones are skipped, Desk D starts and fails
    await coordinator.settle()

    snapshot = coordinator.snapshot(broken)
    assert snapshot.state is S.ERROR and snapshot.error_count == 3
    assert snapshot.reason == "start failed after 3 attempts: bybit: maintenance"
    assert h.delays == [2.0, 4.0]  # exponential backoff between the three attempts
    attempts = h.built["Desk D"]
    assert len(attempts) == 3 and all(isinstance(v, FaultyVenue) and v.closed for v in attempts)
    assert [e.action for e in await h.audit_for(broken)] == [
        "engine.starting",
        "engine.error",
        "engine.starting",
        "engine.error",
        "engine.starting",
        "engine.error",
    ]
    first_error = next(e for e in await h.audit_for(broken) if e.action == "engine.error")
    assert first_error.reason == "start failed: bybit: maintenance; retrying in 2.0 s (attempt 1 of 3)"
    assert all(coordinator.snapshot(c).state is S.RUNNING for c in ids)

    faults.clear()
    await coordinator.start(broken)  # a user start from error works once the exchange is back
    assert coordinator.snapshot(broken).state is S.RUNNING


@pytest.mark.asyncio
async def test_a_start_that_cannot_succeed_is_not_retried(h: Harness) -> None:
    faulty = FaultyVenue(SimulatedExchange(seed=3), load_markets=AuthenticationError("bybit"))
    h.venue_makers["Desk"] = lambda: faulty
    coordinator, (cid,) = await running(h, "Desk")
    assert coordinator.snapshot(cid).state is S.ERROR and h.delays == []
    assert coordinator.snapshot(cid).reason.startswith(
        "start failed: bybit: The exchange rejected the API credentials"
    )


@pytest.mark.asyncio
async def test_a_crashed_engine_goes_to_error_restarts_automatically_up_to_the_limit(h: Harness) -> None:
    await h.settings.update({"monitoring.max_restart_attempts": 1, "monitoring.restart_cooldown_min": 2})
    FailingCycles.error = RuntimeError("order loop bug")

    def trading(context: TradingContext) -> TradingComponent:
        if context.connection.name == "Desk B":
            return FailingCycles(context)
        return VenueTradingComponent(context)

    coordinator, (good, bad) = await running(h, "Desk A", "Desk B", trading_factory=trading)
    await wait_for(lambda: h.transitions(bad).count(S.ERROR) == 2, timeout=10)
    await coordinator.settle()
    snapshot = coordinator.snapshot(bad)
    assert snapshot.state is S.ERROR
    assert snapshot.reason == "the orders loop failed 3 cycles in a row: RuntimeError: order loop bug"
    assert h.delays == [120.0]  # one automatic restart after the two-minute cooldown
    assert h.transitions(bad) == [S.STARTING, S.RUNNING, S.ERROR, S.STARTING, S.RUNNING, S.ERROR]
    restart = [e for e in await h.audit_for(bad) if e.action == "engine.starting"][1]
    assert (restart.actor, restart.reason) == ("system", "automatic restart 1 of 1")
    assert coordinator.snapshot(good).state is S.RUNNING
    assert coordinator.snapshot(good).health is not HealthStatus.UNHEALTHY


# ------------------------------------------------------------------------------------------------
# Launch: restore and auto-start.


@pytest.mark.asyncio
@pytest.mark.parametrize("persisted", [S.STARTING, S.RUNNING, S.PAUSED, S.STOPPING])
async def test_restore_marks_engines_that_were_up_at_a_crash_as_stopped(h: Harness, persisted: S) -> None:
    cid = await h.desk("Desk")
    other = await h.desk("Other")
    await h.states.set(cid, persisted, "was working")
    await h.states.set(other, S.ERROR, "bybit: maintenance")
    coordinator = h.coordinator()
    await coordinator.restore()
    snapshot = coordinator.snapshot(cid)
    assert (snapshot.state, snapshot.reason) == (S.STOPPED, "application restarted")
    row = await h.states.get(cid)
    assert row is not None and (row.state, row.reason) == (S.STOPPED, "application restarted")
    entries = await h.audit_for(cid)
    expected = ["engine.stopped"] if persisted is S.STOPPING else ["engine.stopping", "engine.stopped"]
    assert [e.action for e in entries] == expected and {e.actor for e in entries} == {"system"}
    assert coordinator.snapshot(other).state is S.ERROR  # an error is kept, with its reason
    assert coordinator.snapshot(other).reason == "bybit: maintenance"
    assert coordinator.global_state is S.ERROR
    assert coordinator.engine(cid) is None  # nothing was started: engine.auto_start is off


@pytest.mark.asyncio
async def test_auto_start_starts_the_enabled_connections_at_launch(h: Harness) -> None:
    await h.settings.update({"engine.auto_start": True})
    first, second = await h.desk("Desk A"), await h.desk("Desk B")
    off = await h.desk("Desk C", enabled=False)
    coordinator = h.coordinator()
    await coordinator.restore()
    assert [coordinator.snapshot(c).state for c in (first, second, off)] == [S.RUNNING, S.RUNNING, S.IDLE]
    assert {e.actor for e in await h.audit_for(first)} == {"auto_start"}
    with pytest.raises(EngineRefusedError, match="enable the connection Desk C before starting"):
        await coordinator.start(off)
    assert coordinator.snapshot(off).state is S.IDLE


# ------------------------------------------------------------------------------------------------
# Restart required, shutdown, live refusal, engine types, emergency stop.


@pytest.mark.asyncio
async def test_a_settings_change_while_running_asks_for_a_restart_and_restart_applies_it(h: Harness) -> None:
    coordinator, (cid,) = await running(h, "Desk")
    engine = coordinator.engine(cid)
    assert not coordinator.snapshot(cid).restart_required
    record = await h.connections.update(cid, {"settings": {"trailing": False}})
    assert record.restart_required  # the probe told the service the engine runs
    await wait_for(lambda: coordinator.snapshot(cid).restart_required)

    await coordinator.restart(cid)
    assert coordinator.snapshot(cid).state is S.RUNNING and not coordinator.snapshot(cid).restart_required
    assert not (await h.connections.get(cid)).restart_required
    new_engine = coordinator.engine(cid)
    assert new_engine is not None and new_engine is not engine
    assert new_engine.record.settings["trailing"] is False  # the new engine runs the new settings

    await coordinator.stop(cid)
    await h.connections.update(cid, {"settings": {"trailing": True}})  # not running: no restart needed
    assert not (await h.connections.get(cid)).restart_required


@pytest.mark.asyncio
async def test_graceful_shutdown_stops_every_engine_and_closes_their_venues(h: Harness) -> None:
    broken = FaultyVenue(SimulatedExchange(seed=3), load_markets=AuthenticationError("bybit"))
    h.venue_makers["Desk C"] = lambda: broken
    coordinator, (a, b, c) = await running(h, "Desk A", "Desk B", "Desk C")
    await coordinator.pause(b)
    engines = [coordinator.engine(a), coordinator.engine(b)]
    assert coordinator.snapshot(c).state is S.ERROR

    await asyncio.gather(coordinator.shutdown(), coordinator.shutdown())  # concurrent callers share it
    await coordinator.shutdown()  # and later ones are no-ops
    for cid in (a, b, c):
        assert coordinator.snapshot(cid).state is S.STOPPED
        entries = await h.audit_for(cid)
        assert [(e.actor, e.action) for e in entries[-2:]] == [
            ("shutdown", "engine.stopping"),
            ("shutdown", "engine.stopped"),
        ]
    assert (await h.audit_for(c))[-1].reason.startswith("application shutdown (last error: start failed")
    for engine in engines:
        assert engine is not None and not engine.running
        with pytest.raises(ExchangeDownError, match="closed"):
            await engine.venues.trading.fetch_balance()
    assert coordinator.global_state is S.STOPPED
    with pytest.raises(CoordinatorClosedError):
        await coordinator.start(a)


@pytest.mark.asyncio
async def test_live_mode_is_refused_unless_the_hook_allows_it_and_never_falls_back(h: Harness) -> None:
    cid = await h.desk("Live desk")
    await h.connections.set_live_trade(cid, True)
    coordinator = h.coordinator()
    await coordinator.restore()
    await coordinator.start(cid)
    snapshot = coordinator.snapshot(cid)
    assert snapshot.state is S.ERROR and snapshot.mode is TradingMode.LIVE
    assert "live trading refused (live_not_confirmed)" in snapshot.reason
    assert "Live desk" not in h.built and h.delays == []  # no venue was even built

    asked: list[str] = []

    async def allow(record: ConnectionRecord) -> RiskDecision:
        asked.append(record.name)
        return RiskDecision.ok()

    permissive = h.coordinator(live_permitted=allow)
    await permissive.restore()
    await permissive.start(cid)
    assert asked == ["Live desk"]
    assert permissive.snapshot(cid).state is S.ERROR  # allowed, but there is no API key: no trading
    assert "no API key is stored for Live desk" in permissive.snapshot(cid).reason
    await permissive.stop(cid)

    paper = h.coordinator(force_paper=True)
    await paper.restore()
    await paper.start(cid)
    assert paper.snapshot(cid).state is S.RUNNING and paper.snapshot(cid).mode is TradingMode.PAPER
    engine = paper.engine(cid)
    assert engine is not None and isinstance(engine.venues.trading, PaperExchange)


@pytest.mark.asyncio
async def test_engine_types_are_persisted_and_reach_running_engines(h: Harness) -> None:
    coordinator, (cid,) = await running(h, "Desk")
    engine = coordinator.engine(cid)
    assert engine is not None and engine.loop_running("main")
    await coordinator.set_engine_types(main=False)
    await asyncio.sleep(0.01)
    assert not engine.loop_running("main") and engine.loop_running("preset")
    snapshot = coordinator.snapshot(cid)
    assert (snapshot.main_enabled, snapshot.preset_enabled) == (False, True)
    stored = await SettingsRepository(h.database).load_all()
    assert stored["system.main_engine_enabled"] is False
    await coordinator.set_engine_types(main=True, preset=False)
    await asyncio.sleep(0.01)
    assert engine.loop_running("main") and not engine.loop_running("preset")


@pytest.mark.asyncio
async def test_emergency_stop_cancels_flattens_stops_and_turns_live_and_preset_off(h: Harness) -> None:
    h.venue_makers["Desk A"] = lambda: SimulatedExchange(
        seed=4, tick_interval_ms=100, market_type=MarketType.SWAP
    )
    coordinator, (a, b) = await running(h, "Desk A", "Desk B")
    await h.connections.set_preset_trade(a, True)
    engine = coordinator.engine(a)
    assert engine is not None and isinstance(engine.trading, ExecutionTradingComponent)
    price = (await engine.venues.trading.fetch_ticker("ETH/USDT")).last
    executor = engine.trading.executor  # the production path: risk gate, intent written first
    entry = OrderIntent(a, "ETH/USDT", OrderSide.BUY, OrderType.MARKET, 0.5, price, TradingMode.PAPER)
    assert (await executor.submit(entry)).status is OrderStatus.FILLED
    resting = await executor.submit(
        replace(entry, type=OrderType.LIMIT, price=round(price * 0.5, 2), reference_price=price)
    )
    assert [o.client_order_id for o in await coordinator.open_orders()] == [resting.client_order_id]
    assert [(p.symbol, p.contracts) for p in await coordinator.open_positions(a)] == [("ETH/USDT", 0.5)]
    # The database and the venue agree: reconciliation only reports the balance.
    assert [d.kind for d in await coordinator.reconcile(a)] == [DifferenceKind.BALANCE]

    report = await coordinator.emergency_stop(flatten=True)
    assert sorted(report.stopped) == sorted([a, b])
    assert (report.cancelled_orders, report.flattened_positions, report.errors) == (1, 1, [])
    assert all(coordinator.snapshot(c).state is S.STOPPED for c in (a, b))
    assert not (await h.connections.get(a)).is_preset_trade
    (entry,) = [e for e in await h.audit.recent(100) if e.action == "engine.emergency_stop"]
    assert entry.after == {"stopped": 2, "cancelled_orders": 1, "flattened_positions": 1, "errors": []}
    # The paper account is persisted: reopened, it holds no open order and no position.
    swap = SimulatedExchange(seed=4, market_type=MarketType.SWAP)
    reopened = PaperExchange(swap, PaperRepository(h.database), account_id=paper_account_id(a))
    assert await reopened.fetch_open_orders() == [] and await reopened.fetch_positions() == []
    with pytest.raises(EngineNotRunningError, match="start the engine of Desk A first"):
        await coordinator.reconcile(a)
    assert await coordinator.open_orders(a) == []


@pytest.mark.asyncio
async def test_the_simulated_market_connection_runs_offline_and_cannot_go_live(h: Harness) -> None:
    created = await h.connections.ensure_predefined()
    simulated = next(r for r in created if r.exchange == "simulated")
    coordinator = h.coordinator()
    await coordinator.restore()
    await coordinator.start(simulated.id)
    engine = coordinator.engine(simulated.id)
    assert engine is not None and engine.venues.data.name == "simulated" and not engine.venues.owns_data
    await wait_for(lambda: coordinator.snapshot(simulated.id).health is HealthStatus.HEALTHY, timeout=10)
    checklist = await coordinator.go_live_checklist(simulated.id, frozenset({"real_money"}))
    items = {item.key: item for item in checklist.items}
    assert items["live_capable"].passed is False and not checklist.ready
    assert items["live_capable"].detail == "Simulated market is paper only"
    assert items["paper_trades"].passed is False and items["paper_trades"].detail.startswith("0 paper trades")
    assert items["real_money"].passed is True and items["withdrawal_off"].passed is None
    await coordinator.stop(simulated.id)
    assert "Simulated market" not in h.built  # the shared simulated venue, no ccxt venue was built


@pytest.mark.asyncio
async def test_connection_changes_reach_the_coordinator(h: Harness) -> None:
    coordinator, (cid,) = await running(h, "Desk")
    await h.connections.update(cid, {"name": "Desk renamed"})
    await wait_for(lambda: coordinator.snapshot(cid).name == "Desk renamed")
    await h.connections.set_enabled(cid, False)  # a disabled connection must not trade
    await wait_for(lambda: coordinator.snapshot(cid).state is S.STOPPED)
    assert (await h.audit_for(cid))[-1].reason == "connection disabled"

    new = await h.desk("Fresh", enabled=False)
    await wait_for(lambda: any(s.connection_id == new for s in coordinator.snapshots()))
    await h.connections.delete(new)
    await wait_for(lambda: all(s.connection_id != new for s in coordinator.snapshots()))
    with pytest.raises(LookupError):
        coordinator.snapshot(new)


# ------------------------------------------------------------------------------------------------
# Circuit breakers, end to end: the engine's own breakers trip and the coordinator pauses.


class BurstingCycles(VenueTradingComponent):
    """The real built-in order loop whose cycles fail with a network error (fault injection)."""

    async def cycle(self, *, accepting_new: bool) -> None:
        raise NetworkError("bybit", "The exchange did not answer in time.")


@pytest.mark.asyncio
async def test_a_burst_of_exchange_errors_pauses_only_that_connection(h: Harness) -> None:
    await h.settings.update({"risk.error_burst_count": 3, "risk.error_burst_window_s": 60})
    burst_id = await h.desk("Bursting")
    calm_id = await h.desk("Calm")

    def factory(context: TradingContext) -> TradingComponent:
        if context.connection.id == burst_id:
            return BurstingCycles(context)
        return VenueTradingComponent(context)

    coordinator = h.coordinator(trading_factory=factory)
    await coordinator.restore()
    await coordinator.start(burst_id)
    await coordinator.start(calm_id)
    await wait_for(lambda: coordinator.snapshot(burst_id).state is S.PAUSED, timeout=10)
    (tripped,) = [e for e in h.events if isinstance(e, CircuitBreakerTripped)]
    assert (tripped.connection_id, tripped.breaker) == (burst_id, "error_burst")
    assert "3" in tripped.reason
    assert coordinator.snapshot(calm_id).state is S.RUNNING
    entries = await h.audit_for(burst_id)
    assert ("circuit_breaker", "engine.paused") in [(e.actor, e.action) for e in entries]
    # Paused by a breaker, the engine still runs its loops (monitoring) and trips nothing more.
    await asyncio.sleep(0.3)
    assert len([e for e in h.events if isinstance(e, CircuitBreakerTripped)]) == 1


@pytest.mark.asyncio
async def test_a_stopped_connection_still_shows_its_open_orders_from_the_database(h: Harness) -> None:
    cid = await h.desk("Stopped desk")
    coordinator = h.coordinator()
    await coordinator.restore()
    await OrderRepository(h.database).insert_intent(
        NewOrder(
            client_order_id="ctsleftover1",
            connection_id=cid,
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            amount=0.01,
            mode=TradingMode.PAPER,
            intent_price=60_000.0,
            created_at=datetime.now(UTC),
            price=59_000.0,
        )
    )
    (order,) = await coordinator.open_orders(cid)
    assert (order.client_order_id, order.status) == ("ctsleftover1", OrderStatus.PENDING_CREATE)
    assert [o.client_order_id for o in await coordinator.open_orders()] == ["ctsleftover1"]
    assert await coordinator.open_positions(cid) == []


@pytest.mark.asyncio
async def test_emergency_stop_cancels_orders_a_stopped_engine_left_open(h: Harness) -> None:
    """The engine is not running, but an order it placed still rests on the (persisted paper)
    venue: the emergency stop brings the venue up just to cancel it."""
    cid = await h.desk("Left open")
    coordinator = h.coordinator(trading_factory=ExecutionTradingComponent.factory())
    await coordinator.restore()
    record = await h.connections.get(cid)
    factory = VenueFactory(
        database=h.database,
        redactor=Redactor(),
        credentials=lambda _cid: asyncio.sleep(0, None),
        simulated=SimulatedExchange(seed=11, tick_interval_ms=100),
        public_venue=h.public_venue,
    )
    venues = await factory(record, TradingMode.PAPER)
    try:
        await venues.trading.load_markets()
        ticker = await venues.trading.fetch_ticker("BTC/USDT")
        executor = OrderExecutor(cid, venues.trading, OrderRepository(h.database), allow_everything)
        resting = await executor.submit(limit_buy(cid, ticker.last * 0.5))  # far below: it rests
        assert resting.status is OrderStatus.OPEN
    finally:
        await venues.close()

    report = await coordinator.emergency_stop()
    assert report.cancelled_orders == 1 and report.errors == []
    assert await coordinator.open_orders(cid) == []
    stored = await OrderRepository(h.database).get_by_client_id(resting.client_order_id)
    assert stored is not None and stored.status is OrderStatus.CANCELLED


async def allow_everything(_intent: OrderIntent) -> RiskDecision:
    return RiskDecision.ok()


def limit_buy(connection_id: str, price: float) -> OrderIntent:
    return OrderIntent(
        connection_id=connection_id,
        symbol="BTC/USDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=0.001,
        reference_price=price * 2,
        mode=TradingMode.PAPER,
        price=round(price, 1),
    )


@pytest.mark.asyncio
async def test_one_order_is_cancelled_by_hand_through_the_coordinator_and_audited(h: Harness) -> None:
    cid = await h.desk("Manual")
    coordinator = h.coordinator(trading_factory=ExecutionTradingComponent.factory())
    await coordinator.restore()
    with pytest.raises(EngineNotRunningError):
        await coordinator.cancel_order(cid, "ctsnothing")
    await coordinator.start(cid)
    engine = coordinator.engine(cid)
    assert engine is not None and isinstance(engine.trading, ExecutionTradingComponent)
    ticker = await engine.venues.trading.fetch_ticker("BTC/USDT")
    resting = await engine.trading.executor.submit(limit_buy(cid, ticker.last * 0.5))
    assert [o.client_order_id for o in await coordinator.open_orders(cid)] == [resting.client_order_id]

    cancelled = await coordinator.cancel_order(cid, resting.client_order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert await coordinator.open_orders(cid) == []
    (entry,) = [e for e in await h.audit.recent(100) if e.action == "order.cancel"]
    assert (entry.actor, entry.entity_id, entry.connection_id) == ("user", resting.client_order_id, cid)
    with pytest.raises(LookupError):
        await coordinator.cancel_order(cid, "ctsunknown")


@pytest.mark.asyncio
async def test_circuit_breaker_thresholds_follow_the_settings_while_running(h: Harness) -> None:
    coordinator, (cid,) = await running(h, "Desk")
    engine = coordinator.engine(cid)
    assert engine is not None and engine.breakers.settings.error_burst_count == 5
    await h.settings.update({"risk.error_burst_count": 9, "risk.stream_lost_pause_s": 120})
    assert (engine.breakers.settings.error_burst_count, engine.breakers.settings.stream_lost_pause_s) == (
        9,
        120,
    )
