"""Tests of the step indications; the helpers below build sample histories from price lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hypothesis import strategies as st

from cts_desktop.engine.indications.sampler import TickSampler

TF_MS = 1000


def sampled(prices: Sequence[float], *, timeframe_s: int = 1, capacity: int = 2500) -> TickSampler:
    """A sampler whose closed samples are exactly ``prices`` (one tick per bucket, plus a closer)."""
    sampler = TickSampler(timeframe_s, capacity)
    for _ in replay(sampler, prices):
        pass
    return sampler


def replay(sampler: TickSampler, prices: Sequence[float], *, start_bucket: int = 0) -> Iterator[int]:
    """Feed ``prices`` as one tick per bucket; yield after each *closed* sample (its index in ``prices``).

    The tick that closes sample i is the first tick of bucket i + 1; the last sample is closed by a
    repeat of its price one bucket later.
    """
    tf_ms = sampler.timeframe_s * 1000
    for i, price in enumerate(prices):
        if sampler.on_tick(price, (start_bucket + i) * tf_ms):
            yield i - 1
    if prices and sampler.on_tick(prices[-1], (start_bucket + len(prices)) * tf_ms):
        yield len(prices) - 1


def tick_path(min_size: int = 2, max_size: int = 80, *, max_ticks: int = 6) -> st.SearchStrategy[list[float]]:
    """Random price paths on a 0.01 grid starting at 100, rich in flat steps and one-sided runs.

    Each step moves 0 to ``max_ticks`` hundredths up or down (about 0.01 % each); zero is drawn
    extra often, so flat-step resets occur, and hypothesis shrinks toward simple runs.
    """
    step = st.one_of(st.just(0), st.integers(min_value=-max_ticks, max_value=max_ticks))

    def build(steps: list[int]) -> list[float]:
        cents = 10_000
        out = [cents / 100]
        for move in steps:
            cents = max(100, cents + move)
            out.append(cents / 100)
        return out

    return st.lists(step, min_size=min_size - 1, max_size=max_size - 1).map(build)


def segment_path(
    max_segments: int = 10, max_len: int = 25, max_step: int = 60
) -> st.SearchStrategy[list[float]]:
    """Paths made of trends: each segment moves a fixed number of hundredths per step, zig-zagging
    by a jitter. Trends, jumps and reversals make the window rules (Active-advanced, Optimal)
    actually fire, which small random steps almost never do."""
    segment = st.tuples(
        st.integers(1, max_len), st.integers(-max_step, max_step), st.integers(0, max_step // 4)
    )

    def build(segments: list[tuple[int, int, int]]) -> list[float]:
        cents = 10_000
        out = [cents / 100]
        for length, step, jitter in segments:
            for j in range(length):
                cents = max(100, cents + step + (jitter if j % 2 else -jitter))
                out.append(cents / 100)
        return out

    return st.lists(segment, min_size=1, max_size=max_segments).map(build)
