"""Active (DOMAIN §1.4): the simple 60 s thresholds, and Active-advanced's six conditions over the
6 ratios × 8 windows grid, each shown to decide on a hand-made path."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cts_desktop.engine.indications.active import (
    ADVANCED_RATIOS,
    ADVANCED_WINDOWS_MIN,
    CONTINUATION_MIN,
    DRAWDOWN_MAX_PCT,
    VOLATILITY_MIN_PCT,
    ActiveAdvancedDetector,
    ActiveDetector,
    active_advanced_naive,
    active_naive,
)
from cts_desktop.engine.indications.sampler import TickSampler
from cts_desktop.engine.indications.signals import LONG, SHORT
from tests.engine.indications import replay, sampled, segment_path, tick_path

# --- simple Active -------------------------------------------------------------------------------


def simple(prices: list[float], timeframe_s: int = 1) -> dict[float, int]:
    detector = ActiveDetector(timeframe_s)
    s = sampled(prices, timeframe_s=timeframe_s)
    found = detector.evaluate(s.ring, s.counters)
    if found is None:
        return {}
    return {float(detector.thresholds[i]): int(d) for i, d in zip(found.index, found.direction, strict=True)}


def test_compares_with_the_sample_sixty_seconds_back_not_older() -> None:
    prices = [90.0] + [100.0] * 60 + [101.0]  # 61 s back: 90 (outside), 60 s back: 100
    assert simple(prices) == {0.5: LONG, 1.0: LONG}


def test_each_threshold_fires_at_exactly_its_value() -> None:
    assert simple([100.0] * 61 + [102.5]) == {t: LONG for t in (0.5, 1.0, 1.5, 2.0, 2.5)}
    assert simple([100.0] * 61 + [101.49]) == {0.5: LONG, 1.0: LONG}
    assert simple([100.0] * 61 + [98.5]) == {0.5: SHORT, 1.0: SHORT, 1.5: SHORT}


def test_short_history_uses_the_oldest_sample_held() -> None:
    assert simple([100.0] * 9 + [100.5]) == {0.5: LONG}
    assert simple([100.0]) == {}


def test_timeframe_changes_the_step_count_but_not_the_sixty_seconds() -> None:
    # 30 s samples: 60 s back is two samples back
    assert simple([90.0, 100.0, 100.0, 101.0], timeframe_s=30) == {0.5: LONG, 1.0: LONG}
    # 5 min samples: nothing else lies within 60 s
    assert simple([90.0, 100.0, 101.0], timeframe_s=300) == {}


@settings(max_examples=80, deadline=None)
@given(prices=st.one_of(segment_path(), tick_path(max_size=90, max_ticks=30)), tf=st.sampled_from([1, 5, 30]))
def test_simple_detector_equals_naive_recomputation(prices: list[float], tf: int) -> None:
    detector = ActiveDetector(tf)
    sampler = TickSampler(tf, 256)
    for i in replay(sampler, prices):
        found = detector.evaluate(sampler.ring, sampler.counters)
        got = (
            {}
            if found is None
            else {int(k): int(d) for k, d in zip(found.index, found.direction, strict=True)}
        )
        history = prices[: i + 1]
        times = [j * tf * 1000 for j in range(i + 1)]
        want = {
            k: d for k, t in enumerate(detector.thresholds) if (d := active_naive(history, times, float(t)))
        }
        assert got == want


# --- Active-advanced -------------------------------------------------------------------------------


def advanced(prices: list[float], timeframe_s: int = 1) -> set[str]:
    detector = ActiveAdvancedDetector(timeframe_s)
    s = sampled(prices, timeframe_s=timeframe_s)
    found = detector.evaluate(s.ring, s.counters)
    return set() if found is None else {detector.keys[i] for i in found.index}


def jump(first: float = 100.6) -> list[float]:
    """61 samples: 5 at ``first``, 55 at 100, then a jump to 102.5. Every condition holds (overall
    +2.41 %, last part +2.29 %, volatility 0.35 %, momentum ≠ 0, drawdown 2.44 %) unless
    ``first`` = 100.5, which makes the newest five samples average exactly the oldest five."""
    return [first] * 5 + [100.0] * 55 + [102.5]


ALL_WINDOWS = {f"{r!r}-{w}" for r in (0.5, 1.0, 1.5, 2.0) for w in ADVANCED_WINDOWS_MIN}


def test_grid_fires_every_ratio_up_to_the_overall_change() -> None:
    # the history is one minute long, so every window holds the same 61 samples
    assert advanced(jump()) == ALL_WINDOWS  # overall 2.41 %: ratios 0.5-2.0, not 2.5 or 3.0


def test_signal_direction_and_metrics() -> None:
    detector = ActiveAdvancedDetector(1)
    s = sampled(jump())
    found = detector.evaluate(s.ring, s.counters)
    assert found is not None
    assert set(found.direction.tolist()) == {LONG}
    assert found.metrics["overall_pct"][0] == pytest.approx(2.4077, abs=1e-4)
    assert found.metrics["drawdown_pct"][0] == pytest.approx(2.439, abs=1e-3)
    falling = [2 * 100.0 - p for p in jump()]  # mirrored: a drop instead of a jump
    found = detector.evaluate(sampled(falling).ring, sampled(falling).counters)
    assert found is not None and set(found.direction.tolist()) == {SHORT}


def test_momentum_zero_blocks() -> None:
    detector = ActiveAdvancedDetector(1)
    metrics = detector.metrics(sampled(jump(100.5)).ring)[0]
    assert metrics is not None and metrics.momentum_change == 0.0
    assert advanced(jump(100.5)) == set()


def test_low_volatility_blocks() -> None:
    # one 0.52 % spike after a flat minute: overall 0.51 %, continuation 0.93, but volatility 0.066 %
    prices = [100.0] * 60 + [100.52]
    m = ActiveAdvancedDetector(1).metrics(sampled(prices).ring)[0]
    assert m is not None and m.volatility < VOLATILITY_MIN_PCT and abs(m.overall) >= 0.5
    assert advanced(prices) == set()


def test_weak_last_part_blocks_continuation() -> None:
    # a steady climb: overall 0.60 %, but the last fifth is only 0.11 % below now (ratio 0.18)
    prices = [round(100 + 0.02 * i, 2) for i in range(61)]
    m = ActiveAdvancedDetector(1).metrics(sampled(prices).ring)[0]
    assert m is not None and abs(m.last_part) < CONTINUATION_MIN * abs(m.overall)
    assert advanced(prices) == set()


def test_last_part_of_the_opposite_sign_blocks() -> None:
    # up 2.25 % on average, but now is below the last fifth's average
    prices = [100.0] * 48 + [103.0] * 12 + [102.9]
    m = ActiveAdvancedDetector(1).metrics(sampled(prices).ring)[0]
    assert m is not None and m.overall > 0 > m.last_part
    assert advanced(prices) == set()


def test_drawdown_over_five_percent_blocks() -> None:
    deep = jump()
    deep[30] = 94.0  # (102.5 − 94) / 102.5 = 8.3 %
    m = ActiveAdvancedDetector(1).metrics(sampled(deep).ring)[0]
    assert m is not None and m.drawdown > DRAWDOWN_MAX_PCT
    assert m.conditions_but_drawdown() and not m.conditions()
    assert advanced(deep) == set()
    shallow = jump()
    shallow[30] = 98.0  # 4.4 %
    assert advanced(shallow) == ALL_WINDOWS


def test_ten_sample_minimum_overall() -> None:
    assert advanced([100.0] * 7 + [99.0, 102.0]) == set()  # 9 samples
    assert advanced([100.0] * 8 + [99.0, 102.0]) == {
        f"{r!r}-{w}" for r in (0.5, 1.0, 1.5) for w in ADVANCED_WINDOWS_MIN
    }


def test_three_sample_minimum_per_window() -> None:
    # 60 s samples: the 1-minute window holds only 2 samples and is never measured
    detector = ActiveAdvancedDetector(60)
    ring = sampled([100.0] * 8 + [99.0, 102.0], timeframe_s=60).ring
    metrics = detector.metrics(ring)
    assert metrics[0] is None
    assert metrics[1] is not None and metrics[1].samples == 4
    assert not any(k.endswith("-1") for k in advanced([100.0] * 8 + [99.0, 102.0], timeframe_s=60))


def test_windows_cover_their_minutes() -> None:
    # a jump 2 minutes ago: the 1-minute window sees a flat market, the 3-minute window the jump
    prices = [100.0] * 200 + [99.0, 103.0] + [103.0] * 119
    detector = ActiveAdvancedDetector(1)
    metrics = detector.metrics(sampled(prices).ring)
    one, three = metrics[0], metrics[1]
    assert one is not None and three is not None
    assert one.samples == 61 and three.samples == 181
    assert one.overall == pytest.approx(0.0) and three.overall > 0.5


def _near(value: float, bound: float, tol: float = 1e-6) -> bool:
    return abs(value - bound) <= tol * max(1.0, abs(bound))


def _ambiguous(m: dict[str, float], ratio: float) -> bool:
    """True when a measured value sits so close to a threshold that rounding may decide it."""
    return (
        _near(abs(m["overall"]), ratio)
        or abs(m["overall"]) < 1e-6
        or abs(m["last_part"]) < 1e-6
        or _near(abs(m["last_part"]), CONTINUATION_MIN * abs(m["overall"]))
        or _near(m["volatility"], VOLATILITY_MIN_PCT)
        or abs(m["momentum_change"]) < 1e-6
        or _near(m["drawdown"], DRAWDOWN_MAX_PCT)
    )


@settings(max_examples=60, deadline=None)
@given(prices=segment_path(), tf=st.sampled_from([1, 30]))
def test_advanced_detector_equals_naive_recomputation(prices: list[float], tf: int) -> None:
    """After every sample, the prefix-sum detector fires what the plain per-key rule fires."""
    detector = ActiveAdvancedDetector(tf)
    sampler = TickSampler(tf, detector.lookback + 5)
    compared = 0
    for i in replay(sampler, prices):
        found = detector.evaluate(sampler.ring, sampler.counters)
        got = (
            {}
            if found is None
            else {int(k): int(d) for k, d in zip(found.index, found.direction, strict=True)}
        )
        history = prices[: i + 1]
        times = [j * tf * 1000 for j in range(i + 1)]
        for key, (ratio, window) in enumerate((r, w) for r in ADVANCED_RATIOS for w in ADVANCED_WINDOWS_MIN):
            want, measured = active_advanced_naive(history, times, ratio, window)
            if measured and _ambiguous(measured, ratio):
                continue
            compared += 1
            assert got.get(key, 0) == want, (i, ratio, window, measured)
    assume(compared > 0)


@settings(max_examples=40, deadline=None)
@given(prices=st.one_of(segment_path(), tick_path(min_size=10, max_size=150, max_ticks=30)))
def test_advanced_metrics_match_the_naive_measurements(prices: list[float]) -> None:
    detector = ActiveAdvancedDetector(30)
    ring = sampled(prices, timeframe_s=30, capacity=detector.lookback + 5).ring
    times = [j * 30_000 for j in range(len(prices))]
    for w, metrics in zip(ADVANCED_WINDOWS_MIN, detector.metrics(ring), strict=True):
        _, naive = active_advanced_naive(prices, times, 0.5, w)
        if metrics is None:
            assert not naive
            continue
        for name in ("overall", "last_part", "volatility", "momentum", "drawdown"):
            # 1e-6 % absolute: the variance is E[d²] − E[d]², whose rounding the square root lifts
            # to ~1e-9 % on a flat window; four orders of magnitude below any threshold
            assert math.isclose(getattr(metrics, name), naive[name], rel_tol=1e-9, abs_tol=1e-6), name
