"""A small typed publish/subscribe bus between the engine, its services and the UI bridge.

Handlers run synchronously on the publisher's event loop, in subscription order. A handler
that raises is logged and skipped: one faulty subscriber (a panel, a plug-in) must never stop
the engine from publishing to the others (vnpy's single-handler failure mode).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cts_desktop.domain.engine import EngineSnapshot
from cts_desktop.domain.enums import Actor, EngineState
from cts_desktop.domain.orders import RiskDecision

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event; ``at`` is UTC."""

    at: datetime = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True, slots=True)
class SettingChanged(Event):
    """A validated setting was saved (D2: the engine reacts to edits without a restart)."""

    key: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class EngineStateChanged(Event):
    """The coordinator moved an engine (or the global state when ``connection_id`` is None)."""

    connection_id: str | None
    old: EngineState
    new: EngineState
    reason: str = ""
    actor: Actor = Actor.SYSTEM


@dataclass(frozen=True, slots=True)
class EngineSnapshotChanged(Event):
    """A connection engine's state or health changed (health at most about once a second per
    engine): what the Engine dock redraws from."""

    snapshot: EngineSnapshot


@dataclass(frozen=True, slots=True)
class OrdersChanged(Event):
    """Orders of a connection were created or changed state; the Orders dock reloads them."""

    connection_id: str


@dataclass(frozen=True, slots=True)
class PositionsChanged(Event):
    """Positions of a connection opened, changed or closed; the Positions dock reloads them."""

    connection_id: str


@dataclass(frozen=True, slots=True)
class OrderRefused(Event):
    """The risk gate or a live-trading rule refused an order intent (shown with rule and numbers)."""

    connection_id: str
    symbol: str
    decision: RiskDecision


@dataclass(frozen=True, slots=True)
class CircuitBreakerTripped(Event):
    """A circuit breaker paused a connection (daily loss, drawdown, error burst, lost stream)."""

    connection_id: str
    breaker: str
    reason: str


type Handler[E: Event] = Callable[[E], None]
type Unsubscribe = Callable[[], None]


class EventBus:
    """Subscribe by event class; a subscriber to ``Event`` receives everything."""

    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe[E: Event](self, event_type: type[E], handler: Handler[E]) -> Unsubscribe:
        self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(event_type, [])
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for event_type in type(event).__mro__:
            for handler in list(self._handlers.get(event_type, ())):
                try:
                    handler(event)
                except Exception:
                    log.exception("event handler %r failed on %s", handler, type(event).__name__)
