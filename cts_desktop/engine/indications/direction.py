"""Direction (DOMAIN §1.2, D6): a reversal after a one-sided run of steps, ranges 3-30.

Why this rule: the original *ran* an average-versus-old-price test that is really a continuation
test, while its docs and an unused helper describe the reversal rule. D6 decides for the
documented rule and keeps the original's 0.5 % as a setting. How they combine, exactly:

    For range r (one state key per r), with p_0 the newest sample and p_r the sample r steps back:
    - LONG  if each of the last r steps fell (p_0 < p_1 < … < p_r) and (p_r − p_0) / p_r ≥ threshold
    - SHORT if each of the last r steps rose (p_0 > p_1 > … > p_r) and (p_0 − p_r) / p_r ≥ threshold
    A flat step (equal prices) breaks the run. Threshold 0 switches the size test off.

So the run gives the *shape* (a one-sided move, expected to revert) and the threshold its *size*
(r tiny ticks in a row is noise, not an exhausted move). The threshold is measured over exactly
the r steps of the range, not over the whole run, so a longer run does not make short ranges
easier to fire. The comparison is inclusive (≥), like Move's documented "≥ 0.3 %".

Cost: the run lengths come from :class:`~.sampler.StepCounters` in O(1); only when a run reaches
the smallest range does one vectorised gather over the candidate ranges check the thresholds.
"""

from __future__ import annotations

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

__all__ = ["DirectionDetector", "direction_naive"]

B = npt.NDArray[np.bool_]


class DirectionDetector:
    """Evaluates every range of ``range_min..range_max`` at once (one key per range)."""

    kind = IndicationType.DIRECTION

    def __init__(self, range_min: int, range_max: int, threshold_pct: float) -> None:
        if not 1 <= range_min <= range_max:
            raise ValueError("Direction needs 1 <= range_min <= range_max")
        if threshold_pct < 0.0:
            raise ValueError("the Direction threshold cannot be negative")
        self.range_min = range_min
        self.range_max = range_max
        self.threshold_pct = float(threshold_pct)
        self.ranges = np.arange(range_min, range_max + 1, dtype=np.int64)
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
        """The ranges that fire on the newest sample, or None.

        ``open_keys`` (one bool per range) masks ranges the engine has locked, so a locked range
        costs nothing downstream; None means all are open.
        """
        if counters.down_run >= self.range_min:
            run, direction = counters.down_run, LONG
        elif counters.up_run >= self.range_min:
            run, direction = counters.up_run, SHORT
        else:
            return None
        top = min(run, self.range_max)
        lags = self.ranges[: top - self.range_min + 1]
        view = ring.prices(top + 1)
        back = view[top - lags]
        move = (view[-1] - back) / back * 100.0
        size = -move if direction == LONG else move
        fire = size >= self.threshold_pct - EPS_PCT
        if open_keys is not None:
            fire &= open_keys[: lags.shape[0]]
        if not fire.any():
            return None
        n = int(fire.sum())
        return Detection(
            index=(lags[fire] - self.range_min),
            direction=np.full(n, direction, dtype=np.int64),
            strength=threshold_strength(size[fire], self.threshold_pct),
            metrics={"change_pct": move[fire], "run": np.full(n, float(run))},
        )


def direction_naive(prices: Sequence[float], r: int, threshold_pct: float) -> int:
    """The rule as written, for one range over a plain list of samples (oldest first).

    Returns +1 (long), -1 (short) or 0. This is the executable statement of the rule that the
    tests and the benchmark's naive baseline compare the vectorised detector with.
    """
    if len(prices) < r + 1:
        return 0
    window = prices[-(r + 1) :]
    steps = [window[i + 1] - window[i] for i in range(r)]
    now, back = window[-1], window[0]
    move = (now - back) / back * 100.0
    if all(s < 0 for s in steps) and -move >= threshold_pct - EPS_PCT:
        return LONG
    if all(s > 0 for s in steps) and move >= threshold_pct - EPS_PCT:
        return SHORT
    return 0
