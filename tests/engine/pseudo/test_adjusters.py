"""Block and DCA adjusters (§3.1) and the preset table and set evaluator (§3.2)."""

from __future__ import annotations

import numpy as np
import pytest

from cts_desktop.domain.settings_schema import SettingValidationError, defaults
from cts_desktop.engine.pseudo.adjusters import (
    BLOCK_MIN_BLOCKS_KEY,
    BLOCK_RATIO_KEY,
    BLOCK_WINDOW_KEY,
    PREDEFINED_PRESETS,
    AdjusterActivation,
    BlockSettings,
    block_adjustment,
    dca_adjustment,
    evaluate_preset_set,
)
from cts_desktop.engine.pseudo.stats import SetStats
from tests.engine.pseudo.test_stats import one_set


def stats_of(*runs: list[float], window: int = 50) -> SetStats:
    stats = SetStats(len(runs), window=window)
    for index, results in enumerate(runs):
        if results:
            stats.apply(one_set(results, set_index=index))
    return stats


# --------------------------------------------------------------------------- block


def test_a_losing_last_complete_block_adjusts_the_volume() -> None:
    stats = stats_of(
        [1.0, 1.0, -1.0, -2.0],  # last complete block (-1, -2) averages -1.5 → adjusted
        [-1.0, -2.0, 1.0, 0.0],  # last block averages 0.5 → not adjusted
        [1.0, 1.0, -1.0, -2.0, 5.0],  # the trailing 5.0 is an incomplete block: still adjusted
        [-1.0, -1.0, 1.0, -1.0],  # last block averages 0 → ≥ 0 reverts
        [-1.0],  # no complete block yet
    )
    result = block_adjustment(stats, np.arange(5), BlockSettings(block_sizes=(2,), ratio=1.5), 2.0)
    assert result.adjusted[:, 0].tolist() == [True, False, True, False, False]
    assert result.last_block_avg[:4, 0].tolist() == [-1.5, 0.5, -1.5, 0.0]
    assert result.adjusted_block_count.tolist() == [1, 0, 1, 0, 0]
    assert result.volume_factor.tolist() == [2.0 * (1 + 1.5), 2.0, 2.0 * (1 + 1.5), 2.0, 2.0]


def test_blocks_are_aligned_to_the_sets_own_count() -> None:
    """Blocks are [0,4), [4,8), …; with 10 results the newest complete block is results 4–7."""
    stats = stats_of([1.0] * 4 + [-1.0] * 4 + [3.0, 3.0])
    result = block_adjustment(stats, np.array([0]), BlockSettings(block_sizes=(4,)))
    assert result.last_block_avg[0, 0] == -1.0 and result.adjusted[0, 0]


def test_each_adjusted_block_size_adds_one_ratio() -> None:
    stats = stats_of([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -3.0, -3.0])
    result = block_adjustment(stats, np.array([0]), BlockSettings(block_sizes=(2, 4, 8), ratio=0.5))
    # size 2: (-3, -3) → adjusted; size 4: (1, 1, -3, -3) → -1 → adjusted; size 8: mean 0 → not.
    assert result.adjusted[0].tolist() == [True, True, False]
    assert result.adjusted_block_count[0] == 2 and result.volume_factor[0] == 1.0 * (1 + 2 * 0.5)


def test_auto_disable_when_adding_volume_after_losses_does_not_pay() -> None:
    # Blocks of 2 in cycles L, A, N: L loses (sum -2), A follows a losing block, N follows A.
    # Set 0: A sums 0, N sums 6 → after a loss 0 on average, otherwise (6·6 - 2·6) / 12 = 2: worse.
    # Set 1: A sums 6, N sums 1 → after a loss 6, otherwise (1·6 - 2·6) / 12 = -0.5: better.
    worse_after_losing: list[float] = []
    better_after_losing: list[float] = []
    for _ in range(6):
        worse_after_losing += [-1.0, -1.0, 0.0, 0.0, 3.0, 3.0]
        better_after_losing += [-1.0, -1.0, 3.0, 3.0, 0.5, 0.5]
    stats = stats_of(worse_after_losing, better_after_losing)
    settings = BlockSettings(block_sizes=(2,), comparison_window=36)
    result = block_adjustment(stats, np.array([0, 1]), settings)
    assert result.samples_after_losing[:, 0].tolist() == [6, 6]
    assert result.samples_after_other[:, 0].tolist() == [12, 12]
    assert result.mean_after_losing[:, 0].tolist() == [0.0, 6.0]
    assert result.mean_after_other[:, 0].tolist() == [2.0, -0.5]
    assert result.auto_disabled[:, 0].tolist() == [True, False]
    # The newest block (N) is not losing, so nothing is adjusted yet; make it a loss for both.
    stats.apply(one_set([-1.0, -1.0], set_index=0, start_ms=10**6))
    stats.apply(one_set([-1.0, -1.0], set_index=1, start_ms=10**6))
    result = block_adjustment(stats, np.array([0, 1]), settings)
    assert result.adjusted[:, 0].tolist() == [True, True]
    assert result.volume_factor.tolist() == [1.0, 2.0]  # disabled size adds nothing


def test_auto_disable_needs_enough_positions_blocks_and_samples() -> None:
    short = [-1.0, -1.0, -0.5, 0.0, 2.0, 2.0] * 3  # 18 positions < 20
    stats = stats_of(short)
    result = block_adjustment(stats, np.array([0]), BlockSettings(block_sizes=(2,)))
    assert not result.auto_disabled[0, 0]
    few_samples = [2.0, 2.0] * 10 + [-1.0, -1.0, -0.5, -0.5]  # one block after a loss
    result = block_adjustment(stats_of(few_samples), np.array([0]), BlockSettings(block_sizes=(2,)))
    assert result.samples_after_losing[0, 0] == 1 and not result.auto_disabled[0, 0]


def test_block_settings_from_the_registry() -> None:
    assert BlockSettings.from_settings(defaults()) == BlockSettings(
        ratio=1.0, comparison_window=50, min_blocks=2
    )
    custom = BlockSettings.from_settings(
        {BLOCK_RATIO_KEY: 2.0, BLOCK_WINDOW_KEY: 40, BLOCK_MIN_BLOCKS_KEY: 3}, block_sizes=(4, 8)
    )
    assert (custom.ratio, custom.comparison_window, custom.min_blocks, custom.block_sizes) == (
        2.0,
        40,
        3,
        (4, 8),
    )
    with pytest.raises(SettingValidationError):
        BlockSettings.from_settings({BLOCK_RATIO_KEY: 3.0})
    with pytest.raises(ValueError):
        BlockSettings(block_sizes=(1,))
    with pytest.raises(ValueError, match="exceeds"):
        block_adjustment(SetStats(1, window=4), np.array([0]), BlockSettings(block_sizes=(8,)))


# --------------------------------------------------------------------------- DCA


def test_dca_factor_grows_with_the_share_of_losers() -> None:
    stats = stats_of([1.0, -1.0, -1.0, 1.0], [1.0] * 8, [-1.0] * 12, [])
    result = dca_adjustment(stats, np.arange(4), levels=5, window=8, base_factor=2.0)
    assert result.losers.tolist() == [2, 0, 8, 0]
    assert result.factor.tolist() == [2.0 * 1.5, 2.0, 4.0, 2.0]
    with pytest.raises(ValueError, match="levels"):
        dca_adjustment(stats, np.arange(4), levels=4)


# --------------------------------------------------------------------------- activation


def test_block_and_dca_switch_off_below_25_percent_and_on_again_at_40() -> None:
    activation = AdjusterActivation(window=20, min_results=10)
    stats = SetStats(1, window=50)
    assert activation.active(np.array([0])).tolist() == [True]
    stats.apply(one_set([-1.0] * 8 + [1.0]))  # 9 results: too few to judge
    assert activation.update(stats, np.array([0])) == []
    stats.apply(one_set([-1.0] * 3 + [1.0], start_ms=10**5))  # 2/13 = 0.15
    (off,) = activation.update(stats, np.array([0]))
    assert not off.active and off.threshold == 0.25 and off.win_rate == pytest.approx(2 / 13)
    stats.apply(one_set([1.0, 1.0, 1.0, -1.0, 1.0], start_ms=10**6))  # 6/18 = 0.33: still off
    assert activation.update(stats, np.array([0])) == [] and not activation.active(np.array([0]))[0]
    stats.apply(one_set([1.0, -1.0], start_ms=10**7))  # 7/20 = 0.35
    assert activation.update(stats, np.array([0])) == []
    stats.apply(one_set([1.0], start_ms=10**8))  # newest 20: 8/20 = 0.40 exactly → on
    (on,) = activation.update(stats, np.array([0]))
    assert on.active and on.win_rate == 0.4 and activation.active(np.array([0]))[0]


def test_exactly_25_percent_keeps_the_adjuster_on() -> None:
    activation = AdjusterActivation(window=20, min_results=10)
    stats = stats_of([1.0, -1.0, -1.0, -1.0] * 5)
    assert activation.update(stats, np.array([0])) == []


# --------------------------------------------------------------------------- presets


def test_predefined_presets_table() -> None:
    assert list(PREDEFINED_PRESETS) == ["Conservative", "Balanced", "Aggressive", "Scalping", "Swing"]
    conservative = PREDEFINED_PRESETS["Conservative"]
    assert conservative.tp_steps == (2, 3, 4) and conservative.min_pf == 0.6
    assert conservative.sl_ratios() == (0.4, 0.5, 0.6, 0.7, 0.8)
    assert PREDEFINED_PRESETS["Balanced"].tp_steps == (2, 3, 4, 5, 6)
    assert PREDEFINED_PRESETS["Aggressive"].tp_steps == tuple(range(3, 13))
    assert PREDEFINED_PRESETS["Aggressive"].min_pf == 0.4
    assert PREDEFINED_PRESETS["Scalping"].sl_ratios() == (0.2, 0.3, 0.4, 0.5, 0.6)
    assert PREDEFINED_PRESETS["Swing"].tp_steps == tuple(range(4, 13))
    assert (PREDEFINED_PRESETS["Swing"].sl_ratio_min, PREDEFINED_PRESETS["Swing"].sl_ratio_max) == (0.8, 1.5)


def test_the_set_evaluator_disables_a_set_when_any_symbol_is_below_its_minimum() -> None:
    stats = stats_of(
        [2.0, -1.0] * 15,  # BTC: newest 25 = 12 wins of 2, 13 losses of 1 → pf_gross 24/13
        [1.0, -4.0] * 15,  # ETH: 12 wins of 1, 13 losses of 4 → 12/52 ≈ 0.23 < 0.5
        [-5.0] * 10,  # XRP: only 10 results, not judged yet
    )
    verdict = evaluate_preset_set(stats, {"BTC": 0, "ETH": 1, "XRP": 2}, min_pf=0.5, now_ms=123)
    assert verdict.disable and verdict.evaluated_at_ms == 123
    assert verdict.reason.startswith("auto-disabled: ETH pf_gross over newest 25 = 0.230769 < minimum 0.5")
    assert "BTC" not in verdict.reason and "XRP" not in verdict.reason
    xrp = verdict.symbols[2]
    assert not xrp.evaluated and not xrp.below and xrp.results == 10


def test_the_set_evaluator_keeps_a_healthy_set_and_can_use_avg_result_steps() -> None:
    stats = stats_of([2.0, -1.0] * 15, [0.6] * 25)
    verdict = evaluate_preset_set(stats, {"BTC": 0, "ETH": 1}, min_pf=0.5, now_ms=0)
    assert not verdict.disable and verdict.reason.startswith("kept: 2 of 2 symbols judged")
    by_average = evaluate_preset_set(
        stats, {"BTC": 0, "ETH": 1}, min_pf=0.6, now_ms=0, measure="avg_result_steps"
    )
    assert (
        by_average.disable and "BTC avg_result_steps over newest 25 = 0.44 < minimum 0.6" in by_average.reason
    )
    assert not by_average.symbols[1].below  # exactly the minimum passes
