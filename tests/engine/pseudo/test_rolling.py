"""The D8 rolling window rule: prune at ⌈L·(1+T)⌉ back to L, for every L and T of the settings ranges."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from cts_desktop.domain.settings_schema import SettingValidationError, defaults
from cts_desktop.engine.pseudo.rolling import (
    LEVELS,
    RollingWindow,
    entries_to_drop,
    position_length_key,
    trigger_count,
)
from cts_desktop.storage.repositories.pseudo import rolling_trigger

LENGTHS = range(50, 501, 50)  # product requirement: 50–500 step 50
THRESHOLDS = range(10, 51, 5)  # 10–50 % step 5
RANGES = list(itertools.product(LENGTHS, THRESHOLDS))


def test_the_default_250_plus_20_percent() -> None:
    assert trigger_count(250, 0.2) == 300
    assert entries_to_drop(299, 250, 0.2) == 0  # at 299 nothing happens
    assert entries_to_drop(300, 250, 0.2) == 50  # at 300 back to the newest 250
    assert entries_to_drop(301, 250, 0.2) == 51
    assert entries_to_drop(250, 250, 0.2) == 0


@pytest.mark.parametrize(("limit", "pct"), RANGES)
def test_every_length_and_threshold_of_the_settings_ranges(limit: int, pct: int) -> None:
    exact = math.ceil(Fraction(limit) * (1 + Fraction(pct, 100)))
    assert trigger_count(limit, pct / 100) == exact
    window = RollingWindow(limit, pct)
    assert window.trigger == exact
    assert rolling_trigger(limit, pct / 100) == exact  # the repository applies the same rule
    assert window.to_drop(exact - 1) == 0
    assert window.to_drop(exact) == exact - limit
    assert exact - window.to_drop(exact) == limit


def test_float_rounding_does_not_move_the_trigger() -> None:
    assert 100 * (1 + 0.1) > 110  # 110.00000000000001 in binary floating point
    assert trigger_count(100, 0.1) == 110
    assert trigger_count(50, 0.15) == 58  # 57.5 rounds up


def test_entries_to_drop_works_on_arrays() -> None:
    counts = np.array([0, 299, 300, 310, 1000], dtype=np.int64)
    assert entries_to_drop(counts, 250, 0.2).tolist() == [0, 0, 50, 60, 750]


def test_window_from_settings_per_level() -> None:
    assert RollingWindow.from_settings(defaults(), "base") == RollingWindow(250, 20)
    values = {
        "system.position_length_main": 100,
        "system.position_length_preset": 500,
        "system.rearrange_threshold_pct": 35,
    }
    assert RollingWindow.from_settings(values, "main") == RollingWindow(100, 35)
    assert RollingWindow.from_settings(values, "preset").trigger == 675
    assert RollingWindow.from_settings(values, "real") == RollingWindow(250, 35)  # default length
    assert [position_length_key(level) for level in LEVELS] == [
        "system.position_length_base",
        "system.position_length_main",
        "system.position_length_real",
        "system.position_length_preset",
    ]
    with pytest.raises(ValueError, match="level"):
        position_length_key("exchange")


@pytest.mark.parametrize(("limit", "pct"), [(275, 20), (550, 20), (0, 20), (250, 12), (250, 5), (250, 55)])
def test_out_of_range_values_are_refused(limit: int, pct: int) -> None:
    with pytest.raises(SettingValidationError):
        RollingWindow(limit, pct)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        trigger_count(0, 0.2)
    with pytest.raises(ValueError):
        trigger_count(250, -0.1)
