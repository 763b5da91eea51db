"""Move (DOMAIN §1.3, D6): a steady one-way move without opposite steps, ranges 3-30.

Why this rule: the original ran a bare endpoint test (``|change| > 0.3 %``) and left its
"correct" variant unused; D6 decides for the documented variant and keeps 0.3 % as a setting:

    For range r (one state key per r), over the last r steps, with p_r the sample r steps back:
    - LONG  if no step fell, at least ``min_share`` (60 %) of the r steps rose, and
            (p_0 − p_r) / p_r ≥ threshold (0.3 %)
    - SHORT mirrored (no step rose, ≥ 60 % fell, (p_r − p_0) / p_r ≥ threshold)
    Flat steps are allowed (up to 40 % of the range). The 60 % is exact in whole steps:
    ``ceil(0.6 × r)`` steps (2 of 3, 3 of 5, 6 of 10).

Unlike Direction this is a *continuation* signal: the position follows the move.

Cost: "no opposite step in the last r" is ``no_down_run >= r`` from the O(1)
:class:`~.sampler.StepCounters`, so nothing is read unless a range can fire; then one cumulative
count of rising steps over at most ``range_max`` samples answers every candidate range at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.indications.sampler import SampleRing, StepCounters
from cts_desktop.engine.indications.signals import (
    EPS_PCT,
    LONG,
    SHORT,
    Detection,
    IndicationType,
    threshold_strength,
)

__all__ = ["MOVE_MIN_SHARE", "MoveDetector", "move_naive", "required_steps"]

B = npt.NDArray[np.bool_]

MOVE_MIN_SHARE = 0.6
"""Share of the range's steps that must go the move's way (DOMAIN §1.3)."""


def required_steps(r: int, share: float = MOVE_MIN_SHARE) -> int:
    """Whole steps of ``r`` that make at least ``share`` (0.6 × 5 = 3, never 3.0000000000000004 → 4)."""
    return max(1, math.ceil(round(share * r, 9)))


class MoveDetector:
    """Evaluates every range of ``range_min..range_max`` at once (one key per range)."""

    kind = IndicationType.MOVE

    def __init__(
        self, range_min: int, range_max: int, threshold_pct: float, min_share: float = MOVE_MIN_SHARE
    ) -> None:
        if not 1 <= range_min <= range_max:
            raise ValueError("Move needs 1 <= range_min <= range_max")
        if threshold_pct < 0.0 or not 0.0 < min_share <= 1.0:
            raise ValueError("Move needs threshold >= 0 and 0 < min_share <= 1")
        self.range_min = range_min
        self.range_max = range_max
        self.threshold_pct = float(threshold_pct)
        self.min_share = min_share
        self.ranges = np.arange(range_min, range_max + 1, dtype=np.int64)
        self.need: npt.NDArray[np.int64] = np.array(
            [required_steps(r, min_share) for r in range(range_min, range_max + 1)], dtype=np.int64
        )
        self.keys: tuple[str, ...] = tuple(str(r) for r in range(range_min, range_max + 1))
        self.key_params: tuple[tuple[tuple[str, float], ...], ...] = tuple(
            (("range", float(r)),) for r in range(range_min, range_max + 1)
        )

    @property
    def lookback(self) -> int:
        """Samples the detector reads at most (``range_max`` steps)."""
        return self.range_max + 1

    def evaluate(
        self, ring: SampleRing, counters: StepCounters, open_keys: B | None = None
    ) -> Detection | None:
        """The ranges that fire on the newest sample, or None (``open_keys`` as for Direction)."""
        found: list[Detection] = []
        if counters.no_down_run >= self.range_min:
            hit = self._side(ring, counters.no_down_run, LONG, open_keys)
            if hit is not None:
                found.append(hit)
        if counters.no_up_run >= self.range_min:
            hit = self._side(ring, counters.no_up_run, SHORT, open_keys)
            if hit is not None:
                found.append(hit)
        if not found:
            return None
        if len(found) == 1:  # both sides need ≥ 1 step their way, so at most one side fires per range
            return found[0]
        return Detection(
            np.concatenate([f.index for f in found]),
            np.concatenate([f.direction for f in found]),
            np.concatenate([f.strength for f in found]),
            {k: np.concatenate([f.metrics[k] for f in found]) for k in found[0].metrics},
        )

    def _side(
        self, ring: SampleRing, clean_run: int, direction: int, open_keys: B | None
    ) -> Detection | None:
        top = min(clean_run, self.range_max)
        k = top - self.range_min + 1
        lags = self.ranges[:k]
        view = ring.prices(top + 1)
        steps = np.diff(view)[::-1]  # newest step first
        with_move = np.cumsum(steps > 0.0 if direction == LONG else steps < 0.0)
        count = with_move[lags - 1]
        back = view[top - lags]
        move = (view[-1] - back) / back * 100.0
        size = move if direction == LONG else -move
        fire = (count >= self.need[:k]) & (size >= self.threshold_pct - EPS_PCT)
        if open_keys is not None:
            fire &= open_keys[:k]
        if not fire.any():
            return None
        n = int(fire.sum())
        return Detection(
            index=lags[fire] - self.range_min,
            direction=np.full(n, direction, dtype=np.int64),
            strength=threshold_strength(size[fire], self.threshold_pct),
            metrics={"change_pct": move[fire], "steps_with_move": count[fire].astype(np.float64)},
        )


def move_naive(
    prices: Sequence[float], r: int, threshold_pct: float, min_share: float = MOVE_MIN_SHARE
) -> int:
    """The rule as written, for one range over a plain list of samples (oldest first): +1, -1 or 0."""
    if len(prices) < r + 1:
        return 0
    window = prices[-(r + 1) :]
    ups = sum(1 for i in range(r) if window[i + 1] > window[i])
    downs = sum(1 for i in range(r) if window[i + 1] < window[i])
    need = required_steps(r, min_share)
    move = (window[-1] - window[0]) / window[0] * 100.0
    if downs == 0 and ups >= need and move >= threshold_pct - EPS_PCT:
        return LONG
    if ups == 0 and downs >= need and -move >= threshold_pct - EPS_PCT:
        return SHORT
    return 0
