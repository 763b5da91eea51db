"""Exponential backoff with jitter, and an async ``retry`` built on it.

One helper for every retry in the app (stream reconnects now, order and engine restarts later),
so that all of them back off the same way and can be tested the same way: pass a seeded
``random.Random`` and the delays are reproducible.

Why jitter: when a venue drops, every symbol's stream (up to 50 per connection) fails at the
same moment. Without jitter they would all reconnect in lock-step and hit the venue's connection
limit together on every attempt; spreading the retries randomly avoids that thundering herd
(AWS Architecture Blog, "Exponential Backoff And Jitter").

Why retry only some errors: a timeout is worth retrying, a rejected API key or an unknown symbol is
not (it would fail the same way forever and may get the key locked). The default decision uses our
own ``ExchangeError.retryable`` (by error kind, never by parsing the venue's text).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from cts_desktop.exchanges.errors import ErrorKind, ExchangeError

log = logging.getLogger(__name__)


class Jitter(StrEnum):
    """How randomness is mixed into the exponential delay."""

    NONE = "none"  # the plain ceiling min(cap, base·factorⁿ); only for tests and single callers
    FULL = "full"  # uniform(0, ceiling): widest spread, the best against thundering herds
    DECORRELATED = "decorrelated"  # uniform(base, previous·factor), capped: grows from the last delay


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """The shape of a backoff; immutable, so one policy can be shared by many callers.

    ``max_attempts`` counts calls including the first one (3 means: try, retry, retry); ``None``
    means retry for ever, which only makes sense for supervisors that never give up (streams).
    ``rate_limited_factor`` stretches the delay after a rate-limit answer (HTTP 429): the venue
    asked us to slow down, so we wait longer than after a dropped connection (still ≤ ``cap_s``).
    """

    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 30.0
    max_attempts: int | None = 3
    jitter: Jitter = Jitter.FULL
    rate_limited_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.base_s <= 0:
            raise ValueError(f"base_s must be > 0, got {self.base_s}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if self.cap_s < self.base_s:
            raise ValueError(f"cap_s ({self.cap_s}) must be >= base_s ({self.base_s})")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")
        if self.rate_limited_factor < 1:
            raise ValueError(f"rate_limited_factor must be >= 1, got {self.rate_limited_factor}")

    def ceiling(self, retry: int) -> float:
        """Largest delay before retry number ``retry`` (1-based): min(cap, base·factor^(retry−1))."""
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry}")
        value = self.base_s
        for _ in range(retry - 1):  # a loop, not **, so a huge retry count cannot overflow a float
            value *= self.factor
            if value >= self.cap_s:
                return self.cap_s
        return min(value, self.cap_s)

    def backoff(self, rng: random.Random | None = None) -> Backoff:
        """A fresh stateful delay sequence for one caller (one stream, one order)."""
        return Backoff(self, rng)


class Backoff:
    """The running state of one backoff: how many failures so far and the last delay.

    Not thread-safe and not shared: each supervised task owns its own instance, so one symbol's
    failures never lengthen another symbol's waits.
    """

    __slots__ = ("_last", "_policy", "_rng", "failures")

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._last = policy.base_s
        self.failures = 0

    @property
    def policy(self) -> BackoffPolicy:
        return self._policy

    def next_delay(self, error: BaseException | None = None) -> float:
        """Record one more failure and return how long to wait before the next try (seconds)."""
        policy = self._policy
        self.failures += 1
        if policy.jitter is Jitter.NONE:
            delay = policy.ceiling(self.failures)
        elif policy.jitter is Jitter.FULL:
            delay = self._rng.uniform(0.0, policy.ceiling(self.failures))
        else:
            upper = max(policy.base_s, self._last * policy.factor)
            delay = min(policy.cap_s, self._rng.uniform(policy.base_s, upper))
        self._last = max(delay, policy.base_s)
        if isinstance(error, ExchangeError) and error.kind is ErrorKind.RATE_LIMITED:
            delay = min(policy.cap_s, delay * policy.rate_limited_factor)
        return delay

    def exhausted(self) -> bool:
        """True when the policy allows no further attempt after ``failures`` failed ones."""
        limit = self._policy.max_attempts
        return limit is not None and self.failures >= limit

    def reset(self) -> None:
        """Forget past failures, e.g. once a stream delivers again."""
        self.failures = 0
        self._last = self._policy.base_s


def is_retryable(error: BaseException) -> bool:
    """Default retry decision: only our exchange errors whose kind is transient."""
    return isinstance(error, ExchangeError) and error.retryable


type RetryCallback = Callable[[int, BaseException, float], None]
"""``on_retry(failed_attempt, error, delay_s)``, called before each wait (for logs and the UI)."""


async def retry[T](
    call: Callable[[], Awaitable[T]],
    *,
    policy: BackoffPolicy,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    on_retry: RetryCallback | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Await ``call()`` until it succeeds, retrying errors that ``retry_on`` accepts.

    Raises the last error when it is not retryable or when ``policy.max_attempts`` calls have
    failed. Cancellation is never swallowed (``CancelledError`` is not an ``Exception``), so a
    stopping engine is not held up by a retry loop. ``sleep`` is injectable so tests can record
    the delays instead of waiting for them.
    """
    backoff = policy.backoff(rng)
    while True:
        try:
            return await call()
        except Exception as error:
            if not retry_on(error):
                raise
            delay = backoff.next_delay(error)
            if backoff.exhausted():
                raise
            if on_retry is not None:
                on_retry(backoff.failures, error, delay)
            else:
                log.warning("attempt %d failed (%s); retrying in %.2f s", backoff.failures, error, delay)
            await sleep(delay)
