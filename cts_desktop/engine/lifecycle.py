"""The engine state machine applied: validate → persist → audit → publish, one connection at a time.

The table of legal moves is :data:`cts_desktop.domain.engine.TRANSITIONS` (and ``ACTION_FROM`` for
what a user may ask); this module only enforces it, so there is exactly one definition of the
state machine. Every move of a connection's engine:

1. is checked against the table; an illegal one raises :class:`IllegalTransition` and changes
   nothing (nothing stored, nothing audited, no event);
2. is stored in ``engine_states`` (EngineStateRepository); if that write fails the move did not
   happen (the exception propagates, memory keeps the old state);
3. is written to the audit log with its actor (user, auto_start, circuit_breaker, shutdown,
   system) and reason; an audit failure is logged but does not undo the stored state, because
   the state row is what the application restores from;
4. is published as ``EngineStateChanged``; when the derived global state changes too, that is
   stored (the global row) and published with ``connection_id=None`` for the status bar.

Callers hold :meth:`Lifecycle.lock` for the connection around a check and the moves that follow,
so two clicks on the same connection cannot interleave; different connections never wait for
each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cts_desktop.domain.engine import EngineAction, IllegalTransition, allowed_actions, is_legal
from cts_desktop.domain.enums import Actor, EngineState
from cts_desktop.engine.events import EngineStateChanged, EventBus
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.engine_state import EngineStateRepository

log = logging.getLogger(__name__)

__all__ = ["EngineStatus", "Lifecycle", "derive_global_state"]

S = EngineState

_GLOBAL_PRECEDENCE = (S.RUNNING, S.STARTING, S.STOPPING, S.PAUSED, S.ERROR, S.STOPPED)


def derive_global_state(states: Iterable[EngineState]) -> EngineState:
    """The one state the status bar shows for all engines together.

    Running if any engine runs; otherwise starting or stopping if one is on its way; paused
    when the engines that are up are all paused; error when something failed and nothing is up;
    stopped when all are stopped (or idle); idle when there is no engine at all.
    """
    present = set(states)
    for state in _GLOBAL_PRECEDENCE:
        if state in present:
            return state
    return S.IDLE


@dataclass(slots=True)
class EngineStatus:
    """The in-memory state of one connection's engine (what the repository also holds)."""

    state: EngineState = S.IDLE
    reason: str = ""
    updated_at: datetime | None = None
    started_at: datetime | None = None
    error_count: int = 0


class Lifecycle:
    """Per-connection states, locks and the global state (see the module docstring)."""

    def __init__(self, states: EngineStateRepository, audit: AuditRepository, bus: EventBus) -> None:
        self._repository = states
        self._audit = audit
        self._bus = bus
        self._status: dict[str, EngineStatus] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._global = S.IDLE
        self._global_lock = asyncio.Lock()

    # ------------------------------------------------------------------ registry

    def register(self, connection_id: str, name: str, status: EngineStatus | None = None) -> None:
        """Know a connection (at restore, or when it is created); its state starts idle."""
        self._status.setdefault(connection_id, status or EngineStatus())
        self._names[connection_id] = name
        self._locks.setdefault(connection_id, asyncio.Lock())

    def rename(self, connection_id: str, name: str) -> None:
        if connection_id in self._names:
            self._names[connection_id] = name

    def forget(self, connection_id: str) -> None:
        self._status.pop(connection_id, None)
        self._names.pop(connection_id, None)
        self._locks.pop(connection_id, None)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._status

    def status(self, connection_id: str) -> EngineStatus:
        try:
            return self._status[connection_id]
        except KeyError:
            raise LookupError(f"the coordinator knows no connection {connection_id!r}") from None

    def state(self, connection_id: str) -> EngineState:
        return self.status(connection_id).state

    def lock(self, connection_id: str) -> asyncio.Lock:
        self.status(connection_id)
        return self._locks[connection_id]

    @property
    def global_state(self) -> EngineState:
        return self._global

    # ------------------------------------------------------------------ checks and moves

    def allowed(self, connection_id: str) -> frozenset[EngineAction]:
        return allowed_actions(self.state(connection_id))

    def require(self, connection_id: str, action: EngineAction) -> None:
        """Raise IllegalTransition (changing nothing) unless ``action`` is allowed now."""
        state = self.state(connection_id)
        if action not in allowed_actions(state):
            raise IllegalTransition(self._scope(connection_id), state, action.value)

    async def move(self, connection_id: str, new: EngineState, *, actor: Actor, reason: str = "") -> None:
        """One validated, persisted, audited and published state change (caller holds the lock)."""
        status = self.status(connection_id)
        old = status.state
        if not is_legal(old, new):
            raise IllegalTransition(self._scope(connection_id), old, f"move to {new.value}")
        stored = await self._repository.set(connection_id, new, reason)
        try:
            await self._audit.record(
                actor=actor.value,
                action=f"engine.{new.value}",
                entity_type="engine",
                entity_id=connection_id,
                connection_id=connection_id,
                reason=reason,
                before={"state": old.value},
                after={"state": new.value},
            )
        except Exception:
            log.exception(
                "the audit entry for engine %s → %s could not be written", self._scope(connection_id), new
            )
        # started_at and error_count follow the repository's rules; the stored row is the truth.
        status.state, status.reason, status.updated_at = new, reason, stored.updated_at
        status.started_at, status.error_count = stored.started_at, stored.error_count
        level = logging.WARNING if new is S.ERROR else logging.INFO
        log.log(
            level,
            "%s: %s → %s (%s)%s",
            self._scope(connection_id),
            old,
            new,
            actor,
            f": {reason}" if reason else "",
        )
        self._bus.publish(EngineStateChanged(connection_id, old, new, reason, actor))
        await self.refresh_global(actor=actor, reason=reason)

    async def refresh_global(self, *, actor: Actor = Actor.SYSTEM, reason: str = "") -> None:
        """Recompute the global state; store and publish it when it changed."""
        async with self._global_lock:
            new = derive_global_state(status.state for status in self._status.values())
            old = self._global
            if new is old:
                return
            try:
                await self._repository.set(None, new, reason)
            except Exception:
                log.exception("the global engine state %s could not be stored", new)
            self._global = new
            self._bus.publish(EngineStateChanged(None, old, new, reason, actor))

    def _scope(self, connection_id: str) -> str:
        name = self._names.get(connection_id)
        return f"the engine of {name}" if name else f"engine {connection_id}"
