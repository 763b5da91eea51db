"""Move (DOMAIN §1.3, D6): no opposite step, ≥ 60 % of the steps with the move, total ≥ 0.3 %."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.engine.indications.move import MoveDetector, move_naive, required_steps
from cts_desktop.engine.indications.sampler import TickSampler
from cts_desktop.engine.indications.signals import LONG, SHORT
from tests.engine.indications import replay, sampled, segment_path, tick_path


def fired(prices: list[float], threshold: float = 0.3, rmin: int = 3, rmax: int = 30) -> dict[int, int]:
    detector = MoveDetector(rmin, rmax, threshold)
    s = sampled(prices)
    found = detector.evaluate(s.ring, s.counters)
    if found is None:
        return {}
    return {int(detector.ranges[i]): int(d) for i, d in zip(found.index, found.direction, strict=True)}


def test_required_steps_are_sixty_percent_rounded_up() -> None:
    assert [required_steps(r) for r in (3, 4, 5, 6, 10, 30)] == [2, 3, 3, 4, 6, 18]


def test_three_rises_of_five_with_two_flat_steps_fire_at_sixty_percent() -> None:
    prices = [100.0, 100.1, 100.1, 100.2, 100.2, 100.3]  # up, flat, up, flat, up: 3 of 5, +0.3 %
    result = fired(prices)
    assert result[5] == LONG
    assert 4 not in result  # last 4 steps: flat, up, flat, up → 2 of 4 < 3
    assert 3 not in result  # last 3: up, flat, up → 2 of 3, but only +0.2 % < 0.3 %


def test_two_rises_of_five_are_not_enough() -> None:
    prices = [100.0, 100.0, 100.2, 100.2, 100.2, 100.4]  # flat, up, flat, flat, up: 2 of 5
    assert 5 not in fired(prices)


def test_a_single_opposite_step_vetoes_the_range() -> None:
    prices = [100.0, 100.2, 100.19, 100.4, 100.6, 100.8]  # one down step 4 steps back
    result = fired(prices)
    assert 3 in result and 4 not in result and 5 not in result


def test_total_move_threshold_is_inclusive() -> None:
    exact = [100.0, 100.1, 100.2, 100.3]  # +0.3 % over 3 rising steps
    assert fired(exact) == {3: LONG}
    below = [100.0, 100.1, 100.2, 100.29]
    assert fired(below) == {}
    down = [100.0, 99.9, 99.8, 99.7]
    assert fired(down) == {3: SHORT}


def test_flat_only_window_never_fires() -> None:
    assert fired([100.0] * 10, threshold=0.0) == {}


def test_threshold_zero_keeps_the_step_rules() -> None:
    prices = [100.0, 100.01, 100.01, 100.02]  # 2 of 3 up, tiny total
    assert fired(prices, threshold=0.0) == {3: LONG}


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        MoveDetector(3, 30, -1.0)
    with pytest.raises(ValueError):
        MoveDetector(3, 30, 0.3, min_share=0.0)


@settings(max_examples=150, deadline=None)
@given(
    prices=st.one_of(tick_path(max_size=70, max_ticks=25), segment_path(max_step=30)),
    threshold=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_incremental_detector_equals_naive_recomputation(prices: list[float], threshold: float) -> None:
    detector = MoveDetector(3, 30, threshold)
    sampler = TickSampler(1, 64)
    for i in replay(sampler, prices):
        found = detector.evaluate(sampler.ring, sampler.counters)
        got = (
            {}
            if found is None
            else {int(detector.ranges[k]): int(d) for k, d in zip(found.index, found.direction, strict=True)}
        )
        history = prices[: i + 1]
        want = {r: d for r in range(3, 31) if (d := move_naive(history, r, threshold))}
        assert got == want


@settings(max_examples=60, deadline=None)
@given(ups=st.lists(st.booleans(), min_size=3, max_size=30))
def test_one_sided_paths_fire_iff_share_and_size_hold(ups: list[bool]) -> None:
    """A path of rises and flats: range r fires exactly when ≥ ceil(0.6 r) rises and ≥ 0.3 % total."""
    prices = [100.0]
    for up in ups:
        prices.append(round(prices[-1] + (0.11 if up else 0.0), 2))
    result = fired(prices)
    for r in range(3, len(ups) + 1):
        window = ups[-r:]
        total = (prices[-1] - prices[-1 - r]) / prices[-1 - r] * 100.0
        expected = sum(window) >= required_steps(r) and total >= 0.3 - 1e-9
        assert (r in result) == expected, r
