"""D20 signal rules at their exact thresholds, and the explicit combiner's boundaries."""

from __future__ import annotations

import math

import pytest

from cts_desktop.engine.indicators.grids import PresetParams
from cts_desktop.engine.indicators.signals import (
    OPEN_THRESHOLD,
    SIGNAL_THRESHOLD,
    Combined,
    Direction,
    PresetValues,
    Signal,
    adx_signal,
    bollinger_signal,
    combine,
    evaluate,
    macd_signal,
    preset_signals,
    psar_signal,
    rsi_signal,
)

LONG, SHORT, NEUTRAL = Direction.LONG, Direction.SHORT, Direction.NEUTRAL
NONE = Signal.none()


def test_thresholds_are_d20s() -> None:
    assert (SIGNAL_THRESHOLD, OPEN_THRESHOLD) == (0.3, 0.5)


# -- RSI ---------------------------------------------------------------------------------------


def test_rsi_exactly_at_the_thresholds_abstains() -> None:
    assert rsi_signal(30.0) == NONE
    assert rsi_signal(70.0) == NONE
    assert rsi_signal(50.0) == NONE


def test_rsi_oversold_and_overbought_strengths() -> None:
    assert rsi_signal(15.0) == Signal(LONG, 0.5)  # (30 − 15)/30
    assert rsi_signal(0.0) == Signal(LONG, 1.0)
    assert rsi_signal(85.0) == Signal(SHORT, 0.5)  # (85 − 70)/30
    assert rsi_signal(100.0) == Signal(SHORT, 1.0)
    just_below = rsi_signal(math.nextafter(30.0, 0.0))
    assert just_below.direction is LONG and 0 < just_below.strength < 1e-15
    assert rsi_signal(20.0, oversold=40.0, overbought=60.0) == Signal(LONG, 0.5)
    assert rsi_signal(80.0, oversold=40.0, overbought=60.0) == Signal(SHORT, 0.5)


def test_rsi_without_a_value_abstains() -> None:
    assert rsi_signal(None) == NONE
    assert rsi_signal(math.nan) == NONE


# -- MACD --------------------------------------------------------------------------------------


def test_macd_histogram_sign_and_strength() -> None:
    assert macd_signal(50.0, 1000.0) == Signal(LONG, 0.05)
    assert macd_signal(-50.0, 1000.0) == Signal(SHORT, 0.05)
    assert macd_signal(0.0, 1000.0) == NONE
    assert macd_signal(2000.0, 1000.0) == Signal(LONG, 1.0)  # capped at 1
    assert macd_signal(-1000.0, 1000.0) == Signal(SHORT, 1.0)


def test_macd_without_usable_inputs_abstains() -> None:
    assert macd_signal(None, 1000.0) == NONE
    assert macd_signal(1.0, None) == NONE
    assert macd_signal(1.0, 0.0) == NONE
    assert macd_signal(math.nan, 1000.0) == NONE


# -- Bollinger ----------------------------------------------------------------------------------


def test_bollinger_percent_b_exactly_at_the_thresholds_abstains() -> None:
    assert bollinger_signal(2.0, 0.0, 10.0) == NONE  # %B = 0.2
    assert bollinger_signal(8.0, 0.0, 10.0) == NONE  # %B = 0.8
    assert bollinger_signal(5.0, 0.0, 10.0) == NONE


def test_bollinger_outside_the_thresholds() -> None:
    assert bollinger_signal(1.0, 0.0, 10.0) == Signal(LONG, 0.5)  # %B 0.1
    assert bollinger_signal(0.0, 0.0, 10.0) == Signal(LONG, 1.0)  # at the lower band
    assert bollinger_signal(-5.0, 0.0, 10.0) == Signal(LONG, 1.0)  # below it: capped
    assert bollinger_signal(9.0, 0.0, 10.0).direction is SHORT
    assert bollinger_signal(9.0, 0.0, 10.0).strength == pytest.approx(0.5)
    assert bollinger_signal(12.0, 0.0, 10.0) == Signal(SHORT, 1.0)
    assert bollinger_signal(math.nextafter(2.0, 0.0), 0.0, 10.0).direction is LONG


def test_bollinger_zero_width_or_missing_abstains() -> None:
    assert bollinger_signal(5.0, 5.0, 5.0) == NONE
    assert bollinger_signal(5.0, None, 6.0) == NONE
    assert bollinger_signal(None, 4.0, 6.0) == NONE


# -- PSAR ---------------------------------------------------------------------------------------


def test_psar_trend_from_price_against_sar() -> None:
    assert psar_signal(100.0, 95.0) == Signal(LONG, 0.5)  # 10 × 5 %
    assert psar_signal(100.0, 105.0) == Signal(SHORT, 0.5)
    assert psar_signal(100.0, 80.0) == Signal(LONG, 1.0)  # capped
    assert psar_signal(100.0, 100.0) == NONE
    assert psar_signal(100.0, None) == NONE
    assert psar_signal(0.0, 1.0) == NONE


# -- ADX ----------------------------------------------------------------------------------------


def test_adx_exactly_at_the_threshold_abstains() -> None:
    assert adx_signal(25.0, 30.0, 10.0) == NONE
    assert adx_signal(25.0, 30.0, 10.0, threshold=24.0) == Signal(LONG, 0.5)


def test_adx_direction_from_the_directional_indicators() -> None:
    assert adx_signal(40.0, 30.0, 10.0) == Signal(LONG, 0.8)
    assert adx_signal(40.0, 10.0, 30.0) == Signal(SHORT, 0.8)
    assert adx_signal(40.0, 20.0, 20.0) == NONE
    assert adx_signal(75.0, 30.0, 10.0) == Signal(LONG, 1.0)  # capped
    assert adx_signal(math.nextafter(25.0, 26.0), 30.0, 10.0).direction is LONG
    assert adx_signal(None, 30.0, 10.0) == NONE
    assert adx_signal(40.0, None, 10.0) == NONE


# -- Signal -------------------------------------------------------------------------------------


def test_signal_invariants() -> None:
    with pytest.raises(ValueError):
        Signal(LONG, 1.5)
    with pytest.raises(ValueError):
        Signal(NEUTRAL, 0.2)
    assert Signal.long(2.0) == Signal(LONG, 1.0)
    assert Signal.long(0.0) == NONE and Signal.short(-1.0) == NONE and Signal.long(math.nan) == NONE
    assert not NONE.voted and Signal(SHORT, 0.1).voted


# -- the combiner -------------------------------------------------------------------------------


def test_no_votes_is_neutral() -> None:
    assert combine([]) == Combined(NEUTRAL, 0.0, 0.0, 0.0, 0)
    assert combine([NONE, NONE]) == Combined(NEUTRAL, 0.0, 0.0, 0.0, 0)


def test_strength_exactly_0_3_does_not_signal() -> None:
    result = combine([Signal(LONG, 0.3)])
    assert result.strength == 0.3 and result.direction is NEUTRAL
    assert not result.is_signal and not result.should_open


def test_float_noise_at_0_3_does_not_signal() -> None:
    result = combine([Signal(LONG, 0.2), Signal(LONG, 0.4)])  # (0.2 + 0.4) / 2 in floats
    assert result.strength == pytest.approx(0.3)
    assert result.direction is NEUTRAL


def test_just_above_0_3_signals_but_does_not_open() -> None:
    result = combine([Signal(SHORT, 0.30001)])
    assert result.direction is SHORT and result.is_signal and not result.should_open


def test_strength_exactly_0_5_signals_but_does_not_open() -> None:
    result = combine([Signal(LONG, 0.5), Signal(LONG, 0.5)])
    assert result.strength == 0.5
    assert result.direction is LONG and result.is_signal and not result.should_open
    noisy = combine([Signal(LONG, 0.4), Signal(LONG, 0.6)])  # 0.5 up to float noise
    assert noisy.is_signal and not noisy.should_open


def test_above_0_5_opens() -> None:
    result = combine([Signal(LONG, 0.50001)])
    assert result.should_open and result.direction is LONG


def test_abstentions_do_not_dilute() -> None:
    """The original divided by all signals: one RSI vote of 0.6 among five signals was 0.12."""
    result = combine([Signal(LONG, 0.6), NONE, NONE, NONE, NONE])
    assert result == Combined(LONG, 0.6, 0.6, 0.0, 1)
    assert result.should_open


def test_opposing_votes_count_against_the_majority() -> None:
    result = combine([Signal(LONG, 0.8), Signal(LONG, 0.8), Signal(SHORT, 0.9)])
    assert result.voters == 3
    assert result.long_strength == pytest.approx(1.6 / 3)
    assert result.short_strength == pytest.approx(0.3)
    assert result.direction is LONG and result.should_open
    # One strong dissenter does not beat a unanimous majority of weaker votes.
    result = combine([Signal(LONG, 0.7), Signal(LONG, 0.7), Signal(LONG, 0.7), Signal(SHORT, 1.0)])
    assert result.direction is LONG and result.strength == pytest.approx(2.1 / 4)


def test_conflict_can_drop_the_majority_below_the_thresholds() -> None:
    result = combine([Signal(LONG, 0.6), Signal(SHORT, 0.4)])
    assert (result.long_strength, result.short_strength) == (0.3, 0.2)
    assert result.direction is NEUTRAL


def test_a_tie_is_neutral() -> None:
    result = combine([Signal(LONG, 0.9), Signal(SHORT, 0.9)])
    assert result.direction is NEUTRAL and result.strength == 0.45 and not result.should_open


# -- the preset evaluation ------------------------------------------------------------------------


def values(**overrides: object) -> PresetValues:
    base: dict[str, object] = {
        "close": 100.0,
        "rsi": 50.0,
        "macd": 0.0,
        "macd_signal": 0.0,
        "macd_hist": 0.0,
        "bb_lower": 90.0,
        "bb_mid": 100.0,
        "bb_upper": 110.0,
        "psar": 95.0,
        "adx": 20.0,
        "plus_di": 25.0,
        "minus_di": 15.0,
        "atr": 1.0,
    }
    base.update(overrides)
    return PresetValues(**base)  # type: ignore[arg-type]


def test_preset_signals_cover_the_enabled_indicators_only() -> None:
    signals = preset_signals(values())
    assert set(signals) == {"rsi", "macd", "bollinger", "adx"}  # PSAR is disabled by default
    assert all(not s.voted for s in signals.values())
    with_psar = preset_signals(values(), PresetParams(enabled=frozenset({"psar", "rsi"})))
    assert set(with_psar) == {"psar", "rsi"}
    assert with_psar["psar"] == Signal(LONG, 0.5)


def test_evaluate_combines_the_preset_signals() -> None:
    oversold = values(rsi=10.0, bb_lower=100.5, bb_upper=120.0, adx=40.0, plus_di=10.0, minus_di=30.0)
    result = evaluate(oversold)
    # RSI long 2/3, Bollinger long 1.0, ADX short 0.8; MACD abstains (hist 0): 3 voters.
    assert result.voters == 3
    assert result.long_strength == pytest.approx((2 / 3 + 1.0) / 3)
    assert result.short_strength == pytest.approx(0.8 / 3)
    assert result.direction is LONG and result.should_open


def test_a_flat_rsi_does_not_read_as_oversold() -> None:
    """TA-Lib's RSI is 0 for a series without a single change; a halted market must not open."""
    halted = values(rsi=0.0, rsi_flat=True)
    assert preset_signals(halted)["rsi"] == NONE
    assert evaluate(halted).direction is NEUTRAL
    assert preset_signals(values(rsi=0.0))["rsi"] == Signal(LONG, 1.0)


def test_warm_up_values_abstain() -> None:
    cold = PresetValues(100.0, None, None, None, None, None, None, None, None, None, None, None, None)
    assert evaluate(cold) == Combined(NEUTRAL, 0.0, 0.0, 0.0, 0)


def test_custom_thresholds_are_used() -> None:
    p = PresetParams(rsi_oversold=45, rsi_overbought=55, adx_threshold=13)
    signals = preset_signals(values(rsi=40.0, adx=20.0), p)
    assert signals["rsi"].direction is LONG
    assert signals["adx"] == Signal(LONG, 0.4)
