"""The engine lifecycle as values: the one state machine (D15, ARCHITECTURE "Engine lifecycle"),
the actions that move it, and the read-only snapshots the UI and ``selftest`` show.

The transition table lives here, not in the coordinator, so the UI can enable exactly the
buttons whose action is legal without asking the engine, and a test can enumerate every pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cts_desktop.domain.enums import EngineState, TradingMode


class EngineAction(StrEnum):
    """What a user, the auto-start, a circuit breaker or the shutdown can ask of one engine."""

    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    RESTART = "restart"
    EMERGENCY_STOP = "emergency_stop"


class HealthStatus(StrEnum):
    """DOMAIN §4.1: unhealthy if success < 80 % or a cycle took > 3× its interval; degraded
    if < 95 % or > 2×; otherwise healthy. ``unknown`` until a component ran a cycle."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


S = EngineState

TRANSITIONS: dict[EngineState, frozenset[EngineState]] = {
    S.IDLE: frozenset({S.STARTING, S.ERROR}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.ERROR}),
    S.RUNNING: frozenset({S.PAUSED, S.STOPPING, S.ERROR}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.ERROR}),
    S.STOPPING: frozenset({S.STOPPED, S.ERROR}),
    S.STOPPED: frozenset({S.STARTING, S.ERROR}),
    # From error: retry (starting) or give up (stopped; through stopping if tasks may remain).
    S.ERROR: frozenset({S.STARTING, S.STOPPING, S.STOPPED}),
}
"""Legal ``old → new`` state changes: idle → starting → running ⇄ paused → stopping → stopped,
any → error, error → starting (retry) or stopped. Everything else is refused."""

ACTION_FROM: dict[EngineAction, frozenset[EngineState]] = {
    EngineAction.START: frozenset({S.IDLE, S.STOPPED, S.ERROR}),
    EngineAction.STOP: frozenset({S.STARTING, S.RUNNING, S.PAUSED, S.ERROR}),
    EngineAction.PAUSE: frozenset({S.RUNNING}),
    EngineAction.RESUME: frozenset({S.PAUSED}),
    EngineAction.RESTART: frozenset({S.RUNNING, S.PAUSED, S.ERROR}),
    EngineAction.EMERGENCY_STOP: frozenset({S.STARTING, S.RUNNING, S.PAUSED, S.ERROR, S.IDLE, S.STOPPED}),
}
"""The states from which each action may be asked (what the Engine dock enables)."""

del S


def is_legal(old: EngineState, new: EngineState) -> bool:
    return new in TRANSITIONS[old]


def allowed_actions(state: EngineState) -> frozenset[EngineAction]:
    return frozenset(action for action, states in ACTION_FROM.items() if state in states)


class IllegalTransition(ValueError):
    """An action or a state change that the state machine does not allow; nothing was changed."""

    def __init__(self, scope: str, old: EngineState, wanted: str) -> None:
        self.scope = scope
        self.old = old
        self.wanted = wanted
        super().__init__(f"cannot {wanted} {scope}: it is {old.value}")


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One supervised component of a connection engine (market, main, orders, health...)."""

    name: str
    cycles: int = 0
    errors: int = 0
    last_duration_ms: float | None = None
    avg_duration_ms: float | None = None
    interval_ms: float | None = None
    last_error: str = ""
    status: HealthStatus = HealthStatus.UNKNOWN

    @property
    def success_rate(self) -> float | None:
        """(cycles − errors) / cycles × 100, or None before the first cycle."""
        if self.cycles == 0:
            return None
        return (self.cycles - self.errors) / self.cycles * 100.0


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """What the Engine dock and ``selftest --json`` show of one connection's engine."""

    connection_id: str
    name: str
    exchange: str
    state: EngineState
    mode: TradingMode
    reason: str = ""
    started_at: datetime | None = None
    uptime_s: float = 0.0
    health: HealthStatus = HealthStatus.UNKNOWN
    components: tuple[ComponentHealth, ...] = ()
    restart_required: bool = False
    error_count: int = 0
    open_positions: int = 0
    open_orders: int = 0
    main_enabled: bool = True
    preset_enabled: bool = True
    updated_at: datetime | None = None

    @property
    def actions(self) -> frozenset[EngineAction]:
        return allowed_actions(self.state)


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One step of the go-live checklist (testnet → paper → minimal live → scale).

    ``automatic`` items are checked by the application (``passed`` True/False); the others
    the user ticks (``passed`` None until ticked)."""

    key: str
    label: str
    automatic: bool
    passed: bool | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GoLiveChecklist:
    connection_id: str
    exchange: str
    items: tuple[ChecklistItem, ...] = field(default_factory=tuple)

    @property
    def ready(self) -> bool:
        return all(item.passed is True for item in self.items)


RUNNING_STATES = frozenset({EngineState.STARTING, EngineState.RUNNING, EngineState.PAUSED})
"""States of an engine that is up and not on its way down."""
ACTIVE_STATES = RUNNING_STATES | {EngineState.STOPPING}
"""States in which an engine holds its venue and may act on it (a stopping one still cancels)."""


def desk_mode(snapshots: Iterable[EngineSnapshot]) -> TradingMode:
    """What the status bar says: LIVE as soon as any engine that is up trades live, else PAPER."""
    live = any(s.mode is TradingMode.LIVE and s.state in ACTIVE_STATES for s in snapshots)
    return TradingMode.LIVE if live else TradingMode.PAPER
