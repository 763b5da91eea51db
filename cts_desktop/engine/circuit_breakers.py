"""Circuit breakers: conditions under which a connection pauses itself, without waiting for the user.

Why: the risk gate refuses one order at a time, but some situations mean nothing new should be
opened at all until a person has looked: the day's loss or the drawdown limit is reached, the
exchange keeps failing, or the market stream is gone (prices the engine decides on would be
stale). A trip is meant to make the coordinator pause the connection with actor
``circuit_breaker`` (:attr:`Trip.actor`, :attr:`Trip.action`). Pause, not stop (D14): open positions
stay monitored and protected, so a false alarm costs new entries, never protection.

One :class:`CircuitBreakers` per connection is fed with events and asked :meth:`CircuitBreakers.check`:

- ``daily_loss`` / ``drawdown``: from the latest :class:`~cts_desktop.engine.risk.AccountState`, with
  the risk gate's formulas and boundaries (reaching the limit trips).
- ``error_burst``: ``risk.error_burst_count`` errors within ``risk.error_burst_window_s`` seconds
  (inclusive: an error exactly the window old still counts; reaching the count trips). Successes
  do not cancel errors: a venue that fails every other call is not safe to trade either.
- ``stream_lost``: the market stream has not been alive for ``risk.stream_lost_pause_s`` seconds
  (reaching it trips). ``live`` and ``polling`` count as alive: polling is the designed REST
  fallback (D19) and prices still arrive; ``connecting``, ``stale``, ``reconnecting`` and
  ``stopped`` do not. Before the first status report nothing is known and nothing trips (the market
  service reports ``connecting`` as soon as it starts).

Times are plain seconds on one injected monotonic clock (``at``, ``now``); there is no wall clock
inside, so tests are deterministic and a replay can run at any speed.

Level-triggered: :meth:`check` answers whether a condition holds *now*. The coordinator pauses a
running connection on a trip and ignores trips of a connection that is already paused; when the
user resumes, it calls :meth:`reset` so old errors and an old outage do not pause it again at once
(a loss limit that still holds does, as it should). :meth:`check` should run right after each
:meth:`record_error` and periodically (a lost stream trips by time passing, not by an event).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar

from cts_desktop.domain.engine import EngineAction
from cts_desktop.domain.enums import Actor
from cts_desktop.domain.market import ALIVE_STREAM_STATUSES, StreamStatus
from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.events import CircuitBreakerTripped
from cts_desktop.engine.risk import AccountState, RiskLimits, daily_loss_pct, drawdown_pct, reached

__all__ = ["BREAKER_ORDER", "Breaker", "BreakerSettings", "CircuitBreakers", "Trip"]


class Breaker(StrEnum):
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    STREAM_LOST = "stream_lost"
    ERROR_BURST = "error_burst"


BREAKER_ORDER: tuple[Breaker, ...] = tuple(Breaker)
"""When several hold at once, the first in this order is reported: money first, then data."""


@dataclass(frozen=True, slots=True)
class Trip:
    """A breaker that holds: which one, why (with the numbers), and when (``at`` = the ``now`` asked)."""

    actor: ClassVar[Actor] = Actor.CIRCUIT_BREAKER
    action: ClassVar[EngineAction] = EngineAction.PAUSE

    connection_id: str
    breaker: Breaker
    reason: str
    at: float
    numbers: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def to_event(self) -> CircuitBreakerTripped:
        """The event the coordinator publishes once it has paused the connection."""
        return CircuitBreakerTripped(
            connection_id=self.connection_id, breaker=self.breaker.value, reason=self.reason
        )


BREAKER_SETTING_KEYS = (
    "risk.error_burst_count",
    "risk.error_burst_window_s",
    "risk.stream_lost_pause_s",
)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """The breakers' thresholds (settings group ``risk``); defaults are the registry's."""

    error_burst_count: int = 5
    error_burst_window_s: float = 60.0
    stream_lost_pause_s: float = 30.0

    def __post_init__(self) -> None:
        if self.error_burst_count < 1:
            raise ValueError(f"error_burst_count must be at least 1, not {self.error_burst_count}")
        for name in ("error_burst_window_s", "stream_lost_pause_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value}")

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> BreakerSettings:
        """Read and validate the three ``risk.*`` keys; a missing key takes its registry default."""
        read = {
            key: SPEC_BY_KEY[key].validate(values.get(key, SPEC_BY_KEY[key].default))
            for key in BREAKER_SETTING_KEYS
        }
        return cls(
            error_burst_count=int(read["risk.error_burst_count"]),
            error_burst_window_s=float(read["risk.error_burst_window_s"]),
            stream_lost_pause_s=float(read["risk.stream_lost_pause_s"]),
        )


class CircuitBreakers:
    """The breakers of one connection (see the module docstring). Not thread-safe; one event loop."""

    def __init__(self, connection_id: str, settings: BreakerSettings | None = None) -> None:
        self._connection_id = connection_id
        self._settings = settings or BreakerSettings()
        self._errors: deque[tuple[float, str]] = deque(maxlen=self._settings.error_burst_count)
        self._last_success_at: float | None = None
        self._stream: StreamStatus | None = None
        self._down_since: float | None = None
        self._account: AccountState | None = None
        self._limits: RiskLimits | None = None

    @property
    def connection_id(self) -> str:
        return self._connection_id

    @property
    def settings(self) -> BreakerSettings:
        return self._settings

    def update_settings(self, settings: BreakerSettings) -> None:
        """New thresholds (a settings change); the newest errors are kept."""
        self._settings = settings
        self._errors = deque(self._errors, maxlen=settings.error_burst_count)

    # ----------------------------------------------------------------------- events

    def record_error(self, at: float, kind: str = "") -> None:
        """One failed exchange call at ``at``; ``kind`` is a short label for the reason (an
        ``ErrorKind`` value, never an exception text, which could carry a signed URL)."""
        self._errors.append((at, kind))

    def record_success(self, at: float) -> None:
        """A successful exchange call; kept for the reason text only (see the module docstring)."""
        self._last_success_at = at

    def stream_status(self, status: StreamStatus, at: float) -> None:
        """The market stream's status changed (or was re-reported) at ``at``."""
        self._stream = status
        if status in ALIVE_STREAM_STATUSES:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = at

    def account(self, state: AccountState, limits: RiskLimits) -> None:
        """The latest account values and the limits they are judged by."""
        self._account = state
        self._limits = limits

    def reset(self, now: float) -> None:
        """After the user resumed: forget past errors and restart the outage clock at ``now``."""
        self._errors.clear()
        if self._down_since is not None:
            self._down_since = now

    # ----------------------------------------------------------------------- answers

    def check(self, now: float) -> Trip | None:
        """The first breaker (in :data:`BREAKER_ORDER`) that holds at ``now``, or None."""
        trips = self.trips(now)
        return trips[0] if trips else None

    def trips(self, now: float) -> tuple[Trip, ...]:
        """Every breaker that holds at ``now``, in :data:`BREAKER_ORDER`."""
        found = (self._daily_loss(now), self._drawdown(now), self._stream_lost(now), self._error_burst(now))
        return tuple(trip for trip in found if trip is not None)

    def _trip(self, breaker: Breaker, reason: str, now: float, **numbers: float) -> Trip:
        return Trip(self._connection_id, breaker, reason, now, MappingProxyType(numbers))

    def _daily_loss(self, now: float) -> Trip | None:
        if self._account is None or self._limits is None:
            return None
        loss, limit = daily_loss_pct(self._account), self._limits.max_daily_loss_pct
        if loss is None or not reached(loss, limit):
            return None
        a = self._account
        return self._trip(
            Breaker.DAILY_LOSS,
            f"daily loss {loss:.2f} % ({a.day_start_equity:,.2f} → {a.equity:,.2f}) reached the limit of "
            f"{limit:g} %: new positions paused, open positions stay protected",
            now,
            loss_pct=loss,
            limit_pct=limit,
            day_start_equity=a.day_start_equity,
            equity=a.equity,
        )

    def _drawdown(self, now: float) -> Trip | None:
        if self._account is None or self._limits is None:
            return None
        drawdown, limit = drawdown_pct(self._account), self._limits.max_drawdown_pct
        if drawdown is None or not reached(drawdown, limit):
            return None
        a = self._account
        return self._trip(
            Breaker.DRAWDOWN,
            f"drawdown {drawdown:.2f} % below the peak ({a.peak_equity:,.2f} → {a.equity:,.2f}) reached the "
            f"limit of {limit:g} %: new positions paused, open positions stay protected",
            now,
            drawdown_pct=drawdown,
            limit_pct=limit,
            peak_equity=a.peak_equity,
            equity=a.equity,
        )

    def _stream_lost(self, now: float) -> Trip | None:
        if self._down_since is None:
            return None
        down_for, limit = now - self._down_since, self._settings.stream_lost_pause_s
        if not reached(down_for, limit):
            return None
        status = self._stream.value if self._stream is not None else "unknown"
        return self._trip(
            Breaker.STREAM_LOST,
            f"market stream lost: not live for {down_for:.0f} s (now {status}), limit {limit:g} s: "
            "new positions paused until prices flow again",
            now,
            down_s=down_for,
            limit_s=limit,
        )

    def _error_burst(self, now: float) -> Trip | None:
        count, window = self._settings.error_burst_count, self._settings.error_burst_window_s
        if len(self._errors) < count:
            return None
        oldest = self._errors[0][0]
        span = now - oldest
        if span > window:
            return None
        kind = self._errors[-1][1]
        last = f"; last error: {kind}" if kind else ""
        success = (
            f"; last success {now - self._last_success_at:.0f} s ago"
            if self._last_success_at is not None
            else "; no success yet"
        )
        return self._trip(
            Breaker.ERROR_BURST,
            f"error burst: {count} exchange errors in the last {span:.0f} s (limit {count} in {window:g} s)"
            f"{last}{success}: new positions paused",
            now,
            errors=count,
            span_s=span,
            window_s=window,
        )
