"""The D8 rolling window per set, as pure functions: when to prune and how much.

Why: the original stopped a set for good once it held 250 entries (a hard stop) and never read its
20 % threshold. D8 and the product requirements make it a rolling window instead: a set keeps
collecting; when its stored entries reach ⌈L·(1+T)⌉ (250 + 20 % = 300), the oldest are deleted until
the newest L (250) remain. Pruning in bursts rather than one row per close keeps the delete a rare,
batched statement (``PseudoRepository.prune_rolling``) instead of a delete per insert.

L is the position length of the set's level (``system.position_length_{base,main,real,preset}``:
50–500 step 50, default 250) and T the rearrange threshold (``system.rearrange_threshold_pct``:
10–50 % step 5, default 20 %). The arithmetic is exact: 250 × 1.2 in binary floating point is not
exactly 300, and a trigger of 301 would be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.settings_schema import SPEC_BY_KEY

LEVELS: tuple[str, ...] = ("base", "main", "real", "preset")
THRESHOLD_KEY = "system.rearrange_threshold_pct"


def position_length_key(level: str) -> str:
    """The settings key of a level's position length L."""
    if level not in LEVELS:
        raise ValueError(f"unknown set level {level!r}; expected one of {LEVELS}")
    return f"system.position_length_{level}"


def _fraction(threshold: float) -> Fraction:
    """T as the decimal the user meant: 0.2 → 1/5 exactly (not 0.2000000000000000111…)."""
    value = Fraction(repr(float(threshold)))
    if value < 0:
        raise ValueError(f"threshold must not be negative, got {threshold}")
    return value


def trigger_count(limit: int, threshold: float) -> int:
    """⌈L·(1+T)⌉: the stored-entry count at which a set is pruned back to ``limit``.

    ``threshold`` is a fraction (0.2 for 20 %).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return math.ceil(limit * (1 + _fraction(threshold)))


@overload
def entries_to_drop(stored: int, limit: int, threshold: float) -> int: ...
@overload
def entries_to_drop(stored: npt.NDArray[np.int64], limit: int, threshold: float) -> npt.NDArray[np.int64]: ...
def entries_to_drop(
    stored: int | npt.NDArray[np.int64], limit: int, threshold: float
) -> int | npt.NDArray[np.int64]:
    """How many of the oldest entries to delete from a set holding ``stored`` entries: none below
    the trigger, else all but the newest ``limit``. Works on one count or an array of counts."""
    trigger = trigger_count(limit, threshold)
    if isinstance(stored, np.ndarray):
        counts = stored.astype(np.int64)
        return np.where(counts >= trigger, counts - limit, 0).astype(np.int64)
    return stored - limit if stored >= trigger else 0


@dataclass(frozen=True, slots=True)
class RollingWindow:
    """One level's rolling window: L entries kept, pruned at ⌈L·(1+T)⌉; both validated against the
    settings registry, so an out-of-range L or T cannot be configured here either."""

    limit: int
    threshold_pct: int

    def __post_init__(self) -> None:
        # Every level's position length has the same range; "base" stands for all four.
        SPEC_BY_KEY[position_length_key("base")].validate(self.limit)
        SPEC_BY_KEY[THRESHOLD_KEY].validate(self.threshold_pct)

    @property
    def threshold(self) -> float:
        """T as a fraction (0.2 for 20 %)."""
        return self.threshold_pct / 100

    @property
    def trigger(self) -> int:
        # Integer arithmetic: ⌈L·(100+T%)/100⌉.
        return -(-self.limit * (100 + self.threshold_pct) // 100)

    def to_drop(self, stored: int) -> int:
        return entries_to_drop(stored, self.limit, self.threshold)

    @classmethod
    def from_settings(cls, values: Mapping[str, Any], level: str) -> RollingWindow:
        """The window of ``level`` from a settings mapping (missing keys take registry defaults)."""
        length_spec = SPEC_BY_KEY[position_length_key(level)]
        threshold_spec = SPEC_BY_KEY[THRESHOLD_KEY]
        return cls(
            limit=int(length_spec.validate(values.get(length_spec.key, length_spec.default))),
            threshold_pct=int(
                threshold_spec.validate(values.get(threshold_spec.key, threshold_spec.default))
            ),
        )
