"""Market-activity pre-check (DOMAIN §1.6): mean |change| per frame ≥ 0.05 % × factor and their
standard deviation ≥ the minimum volatility, over the last ``range`` frames."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.engine.indications.activity import MarketActivityGate
from tests.engine.indications import sampled, tick_path


def path(changes_pct: list[float], start: float = 100.0) -> list[float]:
    prices = [start]
    for change in changes_pct:
        prices.append(prices[-1] * (1 + change / 100.0))
    return prices


def test_open_when_mean_and_spread_are_high_enough() -> None:
    # |changes| alternate 0.05 % and 0.15 %: mean 0.10 % (the default 2 × 0.05 %), std 0.05 %
    gate = MarketActivityGate()
    reading = gate.measure(sampled(path([0.05, -0.15] * 5)).ring)
    assert reading is not None
    assert reading.mean_pct == pytest.approx(0.10, rel=1e-9)
    assert reading.std_pct == pytest.approx(0.05, rel=1e-9)
    assert reading.is_open


def test_shut_just_below_the_required_mean() -> None:
    gate = MarketActivityGate()
    assert not gate.is_open(sampled(path([0.049, -0.149] * 5)).ring)


def test_shut_when_every_frame_moves_alike() -> None:
    # ±0.3 % every second is busy, but the spread of |change| is zero
    gate = MarketActivityGate()
    reading = gate.measure(sampled(path([0.3, -0.3] * 5)).ring)
    assert reading is not None and reading.std_pct == pytest.approx(0.0, abs=1e-9)
    assert not reading.is_open
    assert MarketActivityGate(min_volatility_pct=0.0).is_open(sampled(path([0.3, -0.3] * 5)).ring)


def test_factor_scales_the_required_mean() -> None:
    ring = sampled(path([0.05, -0.15] * 5)).ring  # mean 0.10 %
    assert MarketActivityGate(factor=2).is_open(ring)
    assert not MarketActivityGate(factor=3).is_open(ring)
    assert MarketActivityGate(factor=3).required_pct == pytest.approx(0.15)


def test_only_the_last_range_frames_count() -> None:
    busy_then_quiet = path([0.05, -0.15] * 5 + [0.0] * 5)
    assert not MarketActivityGate(range_frames=10).is_open(sampled(busy_then_quiet).ring)
    quiet_then_busy = path([0.0] * 5 + [0.05, -0.15] * 5)
    assert MarketActivityGate(range_frames=10).is_open(sampled(quiet_then_busy).ring)
    assert not MarketActivityGate(range_frames=15).is_open(sampled(quiet_then_busy).ring)


def test_shut_until_enough_frames_and_open_when_disabled() -> None:
    short = sampled(path([0.05, -0.15] * 4 + [0.05])).ring  # 9 changes for a 10-frame range
    assert MarketActivityGate().measure(short) is None
    assert not MarketActivityGate().is_open(short)
    assert MarketActivityGate(enabled=False).is_open(short)
    assert MarketActivityGate(enabled=False).is_open(sampled([100.0]).ring)


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        MarketActivityGate(range_frames=0)
    with pytest.raises(ValueError):
        MarketActivityGate(factor=0)


@settings(max_examples=80, deadline=None)
@given(prices=tick_path(min_size=2, max_size=40, max_ticks=30), frames=st.integers(5, 20))
def test_reading_equals_plain_statistics(prices: list[float], frames: int) -> None:
    gate = MarketActivityGate(range_frames=frames)
    reading = gate.measure(sampled(prices).ring)
    if len(prices) < frames + 1:
        assert reading is None
        return
    window = prices[-(frames + 1) :]
    changes = [abs(window[i + 1] - window[i]) / window[i] * 100.0 for i in range(frames)]
    assert reading is not None
    assert math.isclose(reading.mean_pct, statistics.fmean(changes), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(reading.std_pct, statistics.pstdev(changes), rel_tol=1e-7, abs_tol=1e-9)
