"""Direction (DOMAIN §1.2, D6): r consecutive falling steps → long, r rising → short, flat resets,
and the 0.5 % size threshold over the range's r steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.engine.indications.direction import DirectionDetector, direction_naive
from cts_desktop.engine.indications.sampler import TickSampler
from cts_desktop.engine.indications.signals import LONG, SHORT
from tests.engine.indications import replay, sampled, segment_path, tick_path


def fired(prices: list[float], threshold: float = 0.0, rmin: int = 3, rmax: int = 30) -> dict[int, int]:
    """Range → direction fired on the newest sample of ``prices``."""
    detector = DirectionDetector(rmin, rmax, threshold)
    s = sampled(prices)
    found = detector.evaluate(s.ring, s.counters)
    if found is None:
        return {}
    return {int(detector.ranges[i]): int(d) for i, d in zip(found.index, found.direction, strict=True)}


def test_r_falling_steps_fire_long_on_every_range_up_to_r() -> None:
    down5 = [100.0, 99.9, 99.8, 99.7, 99.6, 99.5]  # 5 falling steps
    assert fired(down5) == {3: LONG, 4: LONG, 5: LONG}


def test_exactly_range_min_steps_fire_and_one_fewer_does_not() -> None:
    assert fired([100.0, 99.9, 99.8, 99.7]) == {3: LONG}
    assert fired([100.0, 99.9, 99.8]) == {}


def test_rising_run_fires_short() -> None:
    assert fired([100.0, 100.1, 100.2, 100.3]) == {3: SHORT}


def test_flat_step_resets_the_run() -> None:
    # four falling steps, but the second one is flat: only two fall after it
    assert fired([100.0, 99.9, 99.9, 99.8, 99.7]) == {}
    # after the flat step three more falls: range 3 fires again, 4 does not
    assert fired([100.0, 99.9, 99.9, 99.8, 99.7, 99.6]) == {3: LONG}


def test_an_opposite_step_resets_the_run() -> None:
    assert fired([100.0, 99.9, 99.8, 99.85, 99.8, 99.7]) == {}


def test_threshold_fires_at_exactly_half_a_percent_over_the_range() -> None:
    exact = [100.0, 99.8, 99.6, 99.5]  # (99.5 − 100) / 100 = −0.5 %
    assert fired(exact, threshold=0.5) == {3: LONG}
    short_of_it = [100.0, 99.8, 99.6, 99.51]  # −0.49 %
    assert fired(short_of_it, threshold=0.5) == {}
    up_exact = [100.0, 100.2, 100.4, 100.5]
    assert fired(up_exact, threshold=0.5) == {3: SHORT}


def test_threshold_is_measured_over_each_range_not_the_whole_run() -> None:
    # a big first fall (−0.3 %) then five small ones (−0.1 %): ranges 3 and 4 see 0.3-0.4 %,
    # range 5 sees 0.5 %, range 6 the whole 0.8 %
    prices = [100.0, 99.7, 99.6, 99.5, 99.4, 99.3, 99.2]
    result = fired(prices, threshold=0.5)
    assert result == {5: LONG, 6: LONG}


def test_range_bounds_are_respected() -> None:
    down = [100.0 - 0.1 * i for i in range(12)]  # 11 falling steps
    assert set(fired(down, rmin=5, rmax=8)) == {5, 6, 7, 8}


def test_metrics_and_strength() -> None:
    detector = DirectionDetector(3, 30, 0.5)
    s = sampled([100.0, 99.6, 99.2, 99.0])  # −1.0 % over 3 steps
    found = detector.evaluate(s.ring, s.counters)
    assert found is not None
    assert found.metrics["change_pct"][0] == pytest.approx(-1.0)
    assert found.metrics["run"][0] == 3
    assert found.strength[0] == pytest.approx(1.0)  # twice the threshold


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        DirectionDetector(5, 3, 0.5)
    with pytest.raises(ValueError):
        DirectionDetector(3, 30, -0.1)


@settings(max_examples=150, deadline=None)
@given(
    prices=st.one_of(tick_path(max_size=70, max_ticks=40), segment_path(max_step=30)),
    threshold=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_incremental_detector_equals_naive_recomputation(prices: list[float], threshold: float) -> None:
    """After every sample, the O(1)-counter detector fires exactly the ranges the plain rule does."""
    detector = DirectionDetector(3, 30, threshold)
    sampler = TickSampler(1, 64)
    for i in replay(sampler, prices):
        found = detector.evaluate(sampler.ring, sampler.counters)
        got = (
            {}
            if found is None
            else {int(detector.ranges[k]): int(d) for k, d in zip(found.index, found.direction, strict=True)}
        )
        history = prices[: i + 1]
        want = {r: d for r in range(3, 31) if (d := direction_naive(history, r, threshold))}
        assert got == want
