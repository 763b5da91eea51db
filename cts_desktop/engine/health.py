"""Health of a connection engine's components (DOMAIN §4.1 "Health").

Each supervised loop owns one :class:`ComponentMonitor`. The loop reports every cycle (its
duration and whether it failed); the monitor turns that into a
:class:`~cts_desktop.domain.engine.ComponentHealth` with the §4.1 verdict:

- **unhealthy** if the success rate is below 80 % or the last cycle took more than 3 × the
  component's expected interval,
- **degraded** if below 95 % or more than 2 × the interval,
- otherwise **healthy**; **unknown** until the first cycle ran.

Why a separate module: the thresholds are the one definition of "healthy" shared by the Engine
dock, ``selftest --json``, the headless summary and the tests, and a monitor must be cheap
enough to be told about every 50 ms cycle (a few float additions, no allocation).

The market stream is not a loop with cycles of its own (the stream supervisor owns one task per
symbol), so :func:`stream_health` judges it from the supervisor's per-stream statuses instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from cts_desktop.domain.engine import ComponentHealth, HealthStatus
from cts_desktop.domain.market import ALIVE_STREAM_STATUSES, FAILING_STREAM_STATUSES
from cts_desktop.exchanges.errors import ExchangeError
from cts_desktop.exchanges.streams import StreamInfo

__all__ = [
    "DEGRADED_DURATION_FACTOR",
    "DEGRADED_SUCCESS_PCT",
    "UNHEALTHY_DURATION_FACTOR",
    "UNHEALTHY_SUCCESS_PCT",
    "ComponentMonitor",
    "classify",
    "overall_health",
    "stream_health",
]

UNHEALTHY_SUCCESS_PCT = 80.0
DEGRADED_SUCCESS_PCT = 95.0
UNHEALTHY_DURATION_FACTOR = 3.0
DEGRADED_DURATION_FACTOR = 2.0

_SEVERITY = {
    HealthStatus.UNKNOWN: 0,
    HealthStatus.HEALTHY: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.UNHEALTHY: 3,
}


def classify(
    cycles: int, errors: int, last_duration_ms: float | None, interval_ms: float | None
) -> HealthStatus:
    """The §4.1 verdict for one component; a component without an interval is judged on its
    success rate alone."""
    if cycles <= 0:
        return HealthStatus.UNKNOWN
    success = (cycles - errors) / cycles * 100.0
    ratio = 0.0
    if last_duration_ms is not None and interval_ms is not None and interval_ms > 0:
        ratio = last_duration_ms / interval_ms
    if success < UNHEALTHY_SUCCESS_PCT or ratio > UNHEALTHY_DURATION_FACTOR:
        return HealthStatus.UNHEALTHY
    if success < DEGRADED_SUCCESS_PCT or ratio > DEGRADED_DURATION_FACTOR:
        return HealthStatus.DEGRADED
    return HealthStatus.HEALTHY


def overall_health(components: Iterable[ComponentHealth]) -> HealthStatus:
    """The worst component (§4.1). Components that have not run (disabled loops, a stream still
    connecting) do not count, so switching the preset engine off does not make a connection
    look broken; with nothing known the answer is ``unknown``."""
    worst = HealthStatus.UNKNOWN
    for component in components:
        if _SEVERITY[component.status] > _SEVERITY[worst]:
            worst = component.status
    return worst


class ComponentMonitor:
    """Cycle statistics of one component: counts, last and average duration, last error.

    ``interval_ms`` is a callable so a changed setting (D2: settings reach running engines) moves
    the thresholds at once. The average is over every cycle since the engine started, like the
    success rate (§4.1 defines both cumulatively).
    """

    __slots__ = (
        "_clock",
        "_interval_ms",
        "_started",
        "_total_ms",
        "cycles",
        "errors",
        "last_error",
        "last_ms",
        "name",
    )

    def __init__(
        self,
        name: str,
        interval_ms: Callable[[], float | None] = lambda: None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self._interval_ms = interval_ms
        self._clock = clock
        self._started: float | None = None
        self._total_ms = 0.0
        self.cycles = 0
        self.errors = 0
        self.last_ms: float | None = None
        self.last_error = ""

    def begin(self) -> None:
        """Mark the start of a cycle (``end`` measures from here)."""
        self._started = self._clock()

    def end(self, error: BaseException | str | None = None) -> None:
        """Record the cycle that ``begin`` started; ``error`` marks it failed."""
        started = self._started if self._started is not None else self._clock()
        self.record((self._clock() - started) * 1000.0, error)
        self._started = None

    def record(self, duration_ms: float, error: BaseException | str | None = None) -> None:
        """Record one finished cycle of ``duration_ms``."""
        self.cycles += 1
        self._total_ms += duration_ms
        self.last_ms = duration_ms
        if error is not None:
            self.errors += 1
            self.last_error = error if isinstance(error, str) else describe_error(error)

    def health(self) -> ComponentHealth:
        interval = self._interval_ms()
        return ComponentHealth(
            name=self.name,
            cycles=self.cycles,
            errors=self.errors,
            last_duration_ms=self.last_ms,
            avg_duration_ms=self._total_ms / self.cycles if self.cycles else None,
            interval_ms=interval,
            last_error=self.last_error,
            status=classify(self.cycles, self.errors, self.last_ms, interval),
        )


def stream_health(
    name: str, infos: Iterable[StreamInfo], failures: int = 0, last_error: str = ""
) -> ComponentHealth:
    """The market stream as a component: every message received and every failure the
    supervisor reported (stale, reconnecting, stopped) is one ``cycle``; the failures are its
    ``errors``, so the success rate is the share of outcomes that delivered data.

    The status comes from the streams' current state rather than from the counts, because a
    stream that delivered a million ticks and then died an hour ago has a 99.99 % success rate
    and no prices: every stream alive (live or polling) is healthy, some failing is degraded,
    none alive while some fail is unhealthy, nothing reported yet is unknown.
    """
    streams = list(infos)
    messages = sum(info.messages for info in streams)
    alive = sum(1 for info in streams if info.status in ALIVE_STREAM_STATUSES)
    failing = [info for info in streams if info.status in FAILING_STREAM_STATUSES]
    if failing and alive == 0:
        status = HealthStatus.UNHEALTHY
    elif failing:
        status = HealthStatus.DEGRADED
    elif streams and alive == len(streams):
        status = HealthStatus.HEALTHY
    else:
        status = HealthStatus.UNKNOWN
    if failing and not last_error:
        last_error = (
            f"{failing[0].symbol} {failing[0].stream}: {failing[0].status} {failing[0].reason}".strip()
        )
    return ComponentHealth(
        name=name,
        cycles=messages + failures,
        errors=failures,
        last_error=last_error,
        status=status,
    )


def describe_error(error: BaseException, *, readable: tuple[type[BaseException], ...] = ()) -> str:
    """One line for a health report, a log or an engine's error reason. Our exchange errors (and
    the ``readable`` types) are already sentences a trader can read; anything else gets its class
    name, so "KeyError: 'x'" does not show as a bare "'x'"."""
    text = str(error)
    if text and isinstance(error, (ExchangeError, *readable)):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
