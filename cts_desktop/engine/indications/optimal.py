"""Optimal (DOMAIN §1.5, §1.6, D17): the consecutive-run trigger, confirmed by tracked market change.

The original triggered on the consecutive-run rule (§1.2 without a size threshold), then created
100 sub-configuration records without checking anything: its "track market change for at least
3 s" step was only a comment. Here the trigger opens a *tracker* and the sub-configurations are
judged on what the market does afterwards:

1. **Trigger** (per range r, key ``symbol-optimal-r``): each of the last r steps fell → track a
   long; each rose → track a short (the expected reversal). A flat step breaks the run. A range
   starts a tracker only while its key is not locked and it is not already tracking; the check
   runs at most once per ``optimal_interval_ms`` of sample time.
2. **Tracking** (§1.6 "minimum calculation time"): the per-second price changes after the trigger
   sample are collected until they span at least ``min_calc_time_s`` (3 s) *and* number at least
   3; with a 1 s timeframe that is 3 samples after the trigger. This is the enforced version of
   the original's comment.
3. **Validation** of the 100 sub-configurations (drawdown ratio × market-change range ×
   last-part ratio), all at once as arrays, in the *effective direction* (the tracked position's
   direction, so a change in its favour is positive):

   - market change: ``overall`` = mean per-second change (% / s) ≥ ``ratio(m) × position cost %``,
     where ``ratio(m) = 0.1 + (m − 1) × 0.1556`` maps the market-change range 1, 3, 5, 7, 9 to
     0.10 … 1.34 × the position cost (the original's documented mapping);
   - acceleration (§1.6): ``last`` = mean of the newest ``max(1, ⌊0.2·n⌋)`` changes ≥
     ``overall × last-part ratio`` (1.0, 1.5, 2.0, 2.5);
   - drawdown (§1.6 [DOC]): for the tracked position, ``(peak − current)/peak`` of its profit
     since the trigger ≤ the drawdown ratio (0.1 … 0.5); a position never in profit fails.

   Every sub-configuration that passes emits one signal (its ``subconfig_id``), all under the
   range's key, so the validation timeout then locks the range. The tracker closes after
   validation whether or not anything passed.

A tick that closes several samples at once (a gap in the feed) can carry a tracker past its due
sample; it is then judged on everything tracked so far (still ≥ 3 s), and dropped if its trigger
sample has left the ring. Optimal stays opt-in (``indication.optimal_enabled`` defaults off, D17):
one validated trigger can emit up to 100 signals per range.

Sub-configuration ids run drawdown-major: ``id = (d·5 + m)·4 + l`` over the tuples below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.indications.sampler import SampleRing, StepCounters
from cts_desktop.engine.indications.signals import (
    EPS_PCT,
    LONG,
    SHORT,
    Detection,
    IndicationType,
)

__all__ = [
    "DRAWDOWN_RATIOS",
    "LAST_PART_RATIOS",
    "MARKET_CHANGE_RANGES",
    "SUBCONFIGS",
    "OptimalDetector",
    "SubConfigs",
    "TrackedChange",
    "acceleration_check",
    "market_change_ratio",
    "measure_tracked",
    "optimal_naive",
    "tracking_samples",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

DRAWDOWN_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
MARKET_CHANGE_RANGES: tuple[int, ...] = (1, 3, 5, 7, 9)
LAST_PART_RATIOS: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5)
MIN_CALC_TIME_S = 3
MIN_CHANGES = 3
LAST_PART_SHARE = 0.2
_DRAWDOWN_EPS = 1e-12


def market_change_ratio(market_change_range: int) -> float:
    """Share of the position cost one market-change range stands for (1 → 0.10, 9 → 1.3448)."""
    return 0.1 + (market_change_range - 1) * 0.1556


def tracking_samples(timeframe_s: int, min_calc_time_s: int = MIN_CALC_TIME_S) -> int:
    """Samples to track after a trigger: at least ``min_calc_time_s`` of time and 3 changes."""
    return max(MIN_CHANGES, math.ceil(min_calc_time_s / timeframe_s))


def acceleration_check(changes: Sequence[float], ratio_factor: float) -> bool:
    """§1.6: with ≥ 3 changes, the newest 20 % (≥ 1) average ≥ the overall average × the factor."""
    if len(changes) < MIN_CHANGES:
        return False
    overall = sum(changes) / len(changes)
    k = max(1, math.floor(len(changes) * LAST_PART_SHARE + 1e-9))
    last = sum(changes[-k:]) / k
    return last >= overall * ratio_factor - EPS_PCT


@dataclass(frozen=True, slots=True)
class SubConfigs:
    """The 100 sub-configurations as parallel arrays (row = ``subconfig_id``)."""

    drawdown_ratio: F64
    market_change_range: I64
    last_part_ratio: F64

    def __len__(self) -> int:
        return int(self.drawdown_ratio.shape[0])

    def params(self, subconfig_id: int) -> tuple[tuple[str, float], ...]:
        """The named parameters of one sub-configuration."""
        return (
            ("drawdown_ratio", float(self.drawdown_ratio[subconfig_id])),
            ("market_change_range", float(self.market_change_range[subconfig_id])),
            ("last_part_ratio", float(self.last_part_ratio[subconfig_id])),
        )


def _build_subconfigs() -> SubConfigs:
    d, m, lp = np.meshgrid(
        np.asarray(DRAWDOWN_RATIOS),
        np.asarray(MARKET_CHANGE_RANGES),
        np.asarray(LAST_PART_RATIOS),
        indexing="ij",
    )
    return SubConfigs(
        drawdown_ratio=d.ravel().astype(np.float64),
        market_change_range=m.ravel().astype(np.int64),
        last_part_ratio=lp.ravel().astype(np.float64),
    )


SUBCONFIGS = _build_subconfigs()
assert len(SUBCONFIGS) == 100


@dataclass(frozen=True, slots=True)
class TrackedChange:
    """What a tracker measured, in the effective direction."""

    overall: float
    """Mean per-second change, % / s."""
    last: float
    """Mean of the newest 20 % of the changes, % / s."""
    drawdown: float
    """``(peak − current)/peak`` of the tracked position's profit; ``inf`` if never in profit."""
    tracked_s: float


def measure_tracked(prices: Sequence[float] | F64, direction: int, timeframe_s: int) -> TrackedChange:
    """Measure a tracker's window: ``prices[0]`` is the trigger sample, the rest came after it."""
    q = np.asarray(prices, dtype=np.float64)
    changes = np.diff(q) / q[:-1] * 100.0 * direction / timeframe_s
    n = int(changes.shape[0])
    k = max(1, (n * 2) // 10)
    profit = (q - q[0]) * direction
    peak = float(profit.max())
    current = float(profit[-1])
    drawdown = (peak - current) / peak if peak > 0.0 else math.inf
    return TrackedChange(
        overall=float(changes.sum()) / n,
        last=float(changes[-k:].sum()) / k,
        drawdown=drawdown,
        tracked_s=float(n * timeframe_s),
    )


class OptimalDetector:
    """Trigger, track and validate Optimal for every range (one key per range)."""

    kind = IndicationType.OPTIMAL

    def __init__(
        self,
        range_min: int,
        range_max: int,
        timeframe_s: int,
        position_cost_pct: float,
        *,
        interval_ms: int = 1000,
        min_calc_time_s: int = MIN_CALC_TIME_S,
        subconfigs: SubConfigs = SUBCONFIGS,
    ) -> None:
        if not 1 <= range_min <= range_max:
            raise ValueError("Optimal needs 1 <= range_min <= range_max")
        if position_cost_pct <= 0.0:
            raise ValueError("the position cost must be positive")
        self.range_min = range_min
        self.range_max = range_max
        self.timeframe_s = timeframe_s
        self.interval_ms = interval_ms
        self.track_n = tracking_samples(timeframe_s, min_calc_time_s)
        self.subconfigs = subconfigs
        self._min_change: F64 = (
            np.asarray([market_change_ratio(int(m)) for m in subconfigs.market_change_range])
            * position_cost_pct
            - EPS_PCT
        )
        self._max_drawdown: F64 = subconfigs.drawdown_ratio + _DRAWDOWN_EPS
        self.ranges = np.arange(range_min, range_max + 1, dtype=np.int64)
        k = self.ranges.shape[0]
        self.tracking: B = np.zeros(k, dtype=np.bool_)
        self.start: I64 = np.zeros(k, dtype=np.int64)
        self.direction: I64 = np.zeros(k, dtype=np.int64)
        self._last_check_ts: int | None = None
        self.keys: tuple[str, ...] = tuple(str(r) for r in range(range_min, range_max + 1))
        self.key_params: tuple[tuple[tuple[str, float], ...], ...] = tuple(
            (("range", float(r)),) for r in range(range_min, range_max + 1)
        )

    @property
    def lookback(self) -> int:
        """Samples the detector reads at most (the trigger run or a tracker's window)."""
        return max(self.range_max, self.track_n) + 1

    def reset(self) -> None:
        """Forget every tracker (type switched off, or the sample stream restarted)."""
        self.tracking[:] = False
        self._last_check_ts = None

    def trigger(self, ring: SampleRing, counters: StepCounters, allowed: B) -> int:
        """Start trackers for the ranges whose run rule holds now; return how many started.

        ``allowed`` (one bool per key) is false for keys the engine has locked.
        """
        if counters.down_run >= self.range_min:
            run, direction = counters.down_run, LONG
        elif counters.up_run >= self.range_min:
            run, direction = counters.up_run, SHORT
        else:
            return 0
        now_ts = ring.newest_ts
        if self._last_check_ts is not None and now_ts - self._last_check_ts < self.interval_ms:
            return 0
        self._last_check_ts = now_ts
        k = min(run, self.range_max) - self.range_min + 1
        start = allowed[:k] & ~self.tracking[:k]
        started = int(start.sum())
        if started:
            self.tracking[:k] |= start
            self.start[:k][start] = ring.count - 1
            self.direction[:k][start] = direction
        return started

    def _due(self, ring: SampleRing) -> B:
        due: B = self.tracking & (ring.count - 1 - self.start >= self.track_n)
        return due

    def drop_due(self, ring: SampleRing) -> None:
        """Close the trackers that are due without validating (used while the activity gate is shut)."""
        self.tracking &= ~self._due(ring)

    def evaluate(
        self, ring: SampleRing, counters: StepCounters, open_keys: B | None = None
    ) -> Detection | None:
        """Validate the due trackers; one row per (range, passing sub-configuration), or None.

        A due tracker whose key is locked (``open_keys``; only a position-close cooldown can lock
        a tracking range) closes without validation.
        """
        if not self.tracking.any():
            return None
        due = self._due(ring)
        if not due.any():
            return None
        self.tracking &= ~due
        if open_keys is not None:
            due &= open_keys
            if not due.any():
                return None
        rows: list[Detection] = []
        now_index = ring.count - 1
        for start, direction in sorted(
            {(int(s), int(d)) for s, d in zip(self.start[due], self.direction[due], strict=True)}
        ):
            length = now_index - start + 1
            if length > ring.size:
                continue  # the trigger sample left the ring during a long gap: too stale to judge
            tracked = measure_tracked(ring.prices(length), direction, self.timeframe_s)
            passed = self.validate(tracked)
            if not passed.any():
                continue
            keys = np.flatnonzero(due & (self.start == start) & (self.direction == direction))
            rows.append(self._rows(keys, passed, direction, tracked))
        if not rows:
            return None
        if len(rows) == 1:
            return rows[0]
        return Detection(
            np.concatenate([r.index for r in rows]),
            np.concatenate([r.direction for r in rows]),
            np.concatenate([r.strength for r in rows]),
            {k: np.concatenate([r.metrics[k] for r in rows]) for k in rows[0].metrics},
            np.concatenate([r.subconfig for r in rows if r.subconfig is not None]),
        )

    def validate(self, tracked: TrackedChange) -> B:
        """The pass mask over the sub-configurations for one tracker's measurement."""
        result: B = (
            (tracked.overall >= self._min_change)
            & (tracked.last >= tracked.overall * self.subconfigs.last_part_ratio - EPS_PCT)
            & (tracked.drawdown <= self._max_drawdown)
        )
        return result

    def _rows(self, keys: I64, passed: B, direction: int, tracked: TrackedChange) -> Detection:
        ids = np.flatnonzero(passed).astype(np.int64)
        share = float(ids.shape[0]) / float(passed.shape[0])
        n = int(keys.shape[0]) * int(ids.shape[0])
        return Detection(
            index=np.repeat(keys.astype(np.int64), ids.shape[0]),
            direction=np.full(n, direction, dtype=np.int64),
            strength=np.full(n, share),
            metrics={
                "overall_pct_s": np.full(n, tracked.overall),
                "last_pct_s": np.full(n, tracked.last),
                "drawdown_ratio": np.full(n, tracked.drawdown),
                "tracked_s": np.full(n, tracked.tracked_s),
            },
            subconfig=np.tile(ids, keys.shape[0]),
        )


def optimal_naive(
    window: Sequence[float], direction: int, timeframe_s: int, position_cost_pct: float
) -> list[int]:
    """The validation rule as written, one sub-configuration at a time: the ids that pass.

    ``window[0]`` is the trigger sample and the rest the tracked samples after it.
    """
    if len(window) - 1 < MIN_CHANGES or (len(window) - 1) * timeframe_s < MIN_CALC_TIME_S:
        return []
    changes = [
        (window[i + 1] - window[i]) / window[i] * 100.0 * direction / timeframe_s
        for i in range(len(window) - 1)
    ]
    overall = sum(changes) / len(changes)
    profits = [(p - window[0]) * direction for p in window]
    peak = max(profits)
    drawdown = (peak - profits[-1]) / peak if peak > 0 else math.inf
    passed: list[int] = []
    for i in range(len(SUBCONFIGS)):
        d = float(SUBCONFIGS.drawdown_ratio[i])
        m = int(SUBCONFIGS.market_change_range[i])
        lp = float(SUBCONFIGS.last_part_ratio[i])
        moving = overall >= market_change_ratio(m) * position_cost_pct - EPS_PCT
        if moving and acceleration_check(changes, lp) and drawdown <= d + _DRAWDOWN_EPS:
            passed.append(i)
    return passed
