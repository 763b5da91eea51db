"""Backoff policy and retry: delays follow the policy, only retryable errors are retried."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cts_desktop.exchanges.backoff import Backoff, BackoffPolicy, Jitter, is_retryable, retry
from cts_desktop.exchanges.errors import (
    AuthenticationError,
    BadSymbolError,
    ExchangeDownError,
    NetworkError,
    RateLimitedError,
)


class Recorder:
    """Stands in for asyncio.sleep: records the delays, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Flaky:
    """An async call that raises the queued errors first, then returns ``result``."""

    def __init__(self, *errors: Exception, result: str = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


# ---------------------------------------------------------------- policy


def test_ceiling_grows_exponentially_up_to_the_cap() -> None:
    policy = BackoffPolicy(base_s=0.5, factor=2.0, cap_s=5.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.ceiling(10_000) == 5.0  # no float overflow for a long outage


def test_no_jitter_gives_the_plain_ceilings() -> None:
    backoff = BackoffPolicy(base_s=1, factor=3, cap_s=20, jitter=Jitter.NONE).backoff()
    assert [backoff.next_delay() for _ in range(5)] == [1, 3, 9, 20, 20]
    assert backoff.failures == 5


def test_full_jitter_is_seeded_and_below_the_ceiling() -> None:
    policy = BackoffPolicy(base_s=0.1, factor=2, cap_s=1.0, jitter=Jitter.FULL)
    a = policy.backoff(random.Random(7))
    b = policy.backoff(random.Random(7))
    delays_a = [a.next_delay() for _ in range(8)]
    assert delays_a == [b.next_delay() for _ in range(8)]
    rng = random.Random(7)
    expected = [rng.uniform(0, policy.ceiling(n)) for n in range(1, 9)]
    assert delays_a == expected
    assert all(0 <= d <= policy.ceiling(n) for n, d in enumerate(delays_a, start=1))


def test_decorrelated_jitter_stays_between_base_and_cap() -> None:
    policy = BackoffPolicy(base_s=0.2, factor=3, cap_s=2.0, jitter=Jitter.DECORRELATED)
    backoff = policy.backoff(random.Random(1))
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.2 <= d <= 2.0 for d in delays)
    assert max(delays) > 1.0  # it does grow towards the cap


@given(
    base=st.floats(0.001, 5),
    factor=st.floats(1, 4),
    extra=st.floats(0, 60),
    jitter=st.sampled_from(list(Jitter)),
    seed=st.integers(0, 2**32),
)
def test_every_delay_is_within_zero_and_cap(
    base: float, factor: float, extra: float, jitter: Jitter, seed: int
) -> None:
    policy = BackoffPolicy(base_s=base, factor=factor, cap_s=base + extra, jitter=jitter)
    backoff = policy.backoff(random.Random(seed))
    for _ in range(20):
        assert 0 <= backoff.next_delay() <= policy.cap_s


def test_rate_limited_errors_wait_longer_but_never_beyond_the_cap() -> None:
    policy = BackoffPolicy(base_s=1, factor=2, cap_s=3, jitter=Jitter.NONE, rate_limited_factor=2)
    backoff = policy.backoff()
    assert backoff.next_delay(RateLimitedError("x")) == 2.0
    assert backoff.next_delay(NetworkError("x")) == 2.0
    assert backoff.next_delay(RateLimitedError("x")) == 3.0


def test_reset_starts_over_and_exhausted_counts_attempts() -> None:
    backoff = Backoff(BackoffPolicy(base_s=1, jitter=Jitter.NONE, max_attempts=2))
    backoff.next_delay()
    assert not backoff.exhausted()
    backoff.next_delay()
    assert backoff.exhausted()
    backoff.reset()
    assert backoff.failures == 0 and not backoff.exhausted()
    assert backoff.next_delay() == 1
    assert not Backoff(BackoffPolicy(max_attempts=None)).exhausted()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": 0},
        {"factor": 0.5},
        {"base_s": 2, "cap_s": 1},
        {"max_attempts": 0},
        {"rate_limited_factor": 0.5},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_is_retryable_follows_the_error_kind() -> None:
    assert is_retryable(NetworkError("x"))
    assert is_retryable(RateLimitedError("x"))
    assert is_retryable(ExchangeDownError("x"))
    assert not is_retryable(AuthenticationError("x"))
    assert not is_retryable(BadSymbolError("x"))
    assert not is_retryable(ValueError("x"))


# ---------------------------------------------------------------- retry


@pytest.mark.asyncio
async def test_retry_returns_after_transient_errors_with_policy_delays() -> None:
    sleep = Recorder()
    call = Flaky(NetworkError("x"), ExchangeDownError("x"))
    policy = BackoffPolicy(base_s=0.5, factor=2, cap_s=10, max_attempts=3, jitter=Jitter.NONE)
    assert await retry(call, policy=policy, sleep=sleep) == "ok"
    assert call.calls == 3
    assert sleep.delays == [0.5, 1.0]


@pytest.mark.asyncio
async def test_retry_with_seeded_jitter_is_reproducible() -> None:
    policy = BackoffPolicy(base_s=0.5, factor=2, cap_s=10, max_attempts=5, jitter=Jitter.FULL)
    runs = []
    for _ in range(2):
        sleep = Recorder()
        await retry(Flaky(*[NetworkError("x")] * 4), policy=policy, sleep=sleep, rng=random.Random(3))
        runs.append(sleep.delays)
    rng = random.Random(3)
    assert runs[0] == runs[1] == [rng.uniform(0, policy.ceiling(n)) for n in range(1, 5)]


@pytest.mark.asyncio
async def test_retry_does_not_retry_non_retryable_errors() -> None:
    sleep = Recorder()
    call = Flaky(AuthenticationError("binance"))
    with pytest.raises(AuthenticationError):
        await retry(call, policy=BackoffPolicy(), sleep=sleep)
    assert call.calls == 1 and sleep.delays == []


@pytest.mark.asyncio
async def test_retry_never_retries_plain_exceptions_by_default() -> None:
    call = Flaky(KeyError("bug"))
    with pytest.raises(KeyError):
        await retry(call, policy=BackoffPolicy(), sleep=Recorder())
    assert call.calls == 1


@pytest.mark.asyncio
async def test_retry_gives_up_after_max_attempts_with_the_last_error() -> None:
    sleep = Recorder()
    last = NetworkError("x", "third")
    call = Flaky(NetworkError("x"), NetworkError("x"), last, result="never")
    with pytest.raises(NetworkError) as caught:
        await retry(call, policy=BackoffPolicy(max_attempts=3, jitter=Jitter.NONE, base_s=1), sleep=sleep)
    assert caught.value is last
    assert call.calls == 3 and sleep.delays == [1, 2]


@pytest.mark.asyncio
async def test_retry_respects_the_cap() -> None:
    sleep = Recorder()
    policy = BackoffPolicy(base_s=1, factor=10, cap_s=5, max_attempts=5, jitter=Jitter.NONE)
    await retry(Flaky(*[NetworkError("x")] * 4), policy=policy, sleep=sleep)
    assert sleep.delays == [1, 5, 5, 5]


@pytest.mark.asyncio
async def test_retry_custom_predicate_and_on_retry_callback() -> None:
    seen: list[tuple[int, str, float]] = []
    call = Flaky(ValueError("a"), ValueError("b"))
    result = await retry(
        call,
        policy=BackoffPolicy(base_s=0.1, jitter=Jitter.NONE, max_attempts=None),
        retry_on=lambda exc: isinstance(exc, ValueError),
        on_retry=lambda attempt, exc, delay: seen.append((attempt, str(exc), delay)),
        sleep=Recorder(),
    )
    assert result == "ok"
    assert seen == [(1, "a", 0.1), (2, "b", 0.2)]


@pytest.mark.asyncio
async def test_retry_propagates_cancellation_during_the_wait() -> None:
    call = Flaky(*[NetworkError("x")] * 100)
    policy = BackoffPolicy(base_s=10, jitter=Jitter.NONE, max_attempts=None)
    task = asyncio.create_task(retry(call, policy=policy))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.calls == 1
