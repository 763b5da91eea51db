"""Active (DOMAIN §1.4): a sharp recent price change; the simple thresholds and Active-advanced.

**Active (simple)**, thresholds 0.5, 1.0, 1.5, 2.0, 2.5 %, one state key per threshold: compare
the newest sample with the oldest sample inside the last 60 s (the sample 60 s back when the
history is that long, else the oldest one held); ``|change| ≥ threshold`` fires in the direction
of the change (a continuation signal). With a market timeframe longer than 60 s no other sample
lies inside the window, so nothing fires.

**Active-advanced**, activity ratios 0.5 … 3.0 % × windows 1, 3, 5, 10, 15, 20, 30, 40 min (48
keys ``ratio-window``). A window of w minutes holds the samples stamped within ``w`` minutes of
the newest one (``w·60/tf + 1`` samples once the history is that long; fewer while it fills,
exactly as the original selected rows by time). Per window, with ``now`` the newest sample:

- ``avg`` = mean price, ``overall = (now − avg)/avg`` (%)
- ``lastAvg`` = mean of the newest ``max(1, ⌊0.2·n⌋)`` samples, ``lastPart = (now − lastAvg)/lastAvg`` (%)
- volatility = population standard deviation / ``avg`` (%)
- momentum = % change from the mean of the oldest ``k`` samples to the mean of the newest ``k``,
  ``k = min(5, ⌊n/3⌋)``, divided by the seconds between their mean sample times
- drawdown = ``(max − min)/max`` (%)

It fires when all six hold: ``|overall| ≥ ratio``; overall and lastPart have the same sign;
``|lastPart|/|overall| ≥ 0.6``; volatility ≥ 0.1 %; momentum ≠ 0 (read as ``|momentum change|
> 1e-9 %``, so float noise on an exactly balanced window does not count as momentum); drawdown
≤ 5 %; and the window holds ≥ 3 samples while the history holds ≥ 10. The direction is the sign
of overall. The original capped its history at 500 rows, so its 10-40 min windows silently saw
only the last ~8 min of 1 s data; here each window really covers its minutes.

Why it is cheap: the window metrics do not depend on the ratio, so they are computed once per
window, and all windows end at the newest sample. The ring keeps running prefix sums of the price
and its square (:meth:`.SampleRing.window_sums`), so every mean, the variance, the last-part mean
and both momentum means of every window are differences of two prefix values: 32 lookups per
sample, whatever the window length. Only the drawdown needs a pass over a window, and it is
taken only for windows that passed everything else (one running max/min over the longest of them
answers all shorter ones). The 6 ratios are then one comparison per passing window.
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
    Detection,
    IndicationType,
    threshold_strength,
)

__all__ = [
    "ACTIVE_THRESHOLDS",
    "ACTIVE_WINDOW_S",
    "ADVANCED_RATIOS",
    "ADVANCED_WINDOWS_MIN",
    "ActiveAdvancedDetector",
    "ActiveDetector",
    "WindowMetrics",
    "active_advanced_naive",
    "active_naive",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

ACTIVE_THRESHOLDS: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5)
ACTIVE_WINDOW_S = 60

ADVANCED_RATIOS: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
ADVANCED_WINDOWS_MIN: tuple[int, ...] = (1, 3, 5, 10, 15, 20, 30, 40)
CONTINUATION_MIN = 0.6
VOLATILITY_MIN_PCT = 0.1
DRAWDOWN_MAX_PCT = 5.0
LAST_PART_SHARE = 0.2
MOMENTUM_K = 5
MIN_WINDOW_SAMPLES = 3
MIN_TOTAL_SAMPLES = 10


class ActiveDetector:
    """Simple Active: one key per threshold, all thresholds compared at once."""

    kind = IndicationType.ACTIVE

    def __init__(
        self,
        timeframe_s: int,
        thresholds: Sequence[float] = ACTIVE_THRESHOLDS,
        window_s: int = ACTIVE_WINDOW_S,
    ) -> None:
        self.thresholds: F64 = np.asarray(thresholds, dtype=np.float64)
        self.window_steps = window_s // timeframe_s
        self._min_threshold = float(self.thresholds.min())
        self.keys: tuple[str, ...] = tuple(repr(float(t)) for t in thresholds)
        self.key_params: tuple[tuple[tuple[str, float], ...], ...] = tuple(
            (("threshold_pct", float(t)),) for t in thresholds
        )

    @property
    def lookback(self) -> int:
        """Samples the detector reads at most."""
        return self.window_steps + 1

    def evaluate(
        self, ring: SampleRing, counters: StepCounters, open_keys: B | None = None
    ) -> Detection | None:
        """The thresholds that fire on the newest sample, or None (``open_keys``: unlocked thresholds)."""
        back_steps = min(ring.size - 1, self.window_steps)
        if back_steps < 1:
            return None
        back = ring.price_back(back_steps)
        change = (ring.newest_price - back) / back * 100.0
        size = abs(change)
        if size < self._min_threshold - EPS_PCT:
            return None
        fire = size >= self.thresholds - EPS_PCT
        if open_keys is not None:
            fire &= open_keys
        index = np.flatnonzero(fire).astype(np.int64)
        n = int(index.shape[0])
        if not n:
            return None
        sizes = np.full(n, size)
        return Detection(
            index=index,
            direction=np.full(n, 1 if change > 0 else -1, dtype=np.int64),
            strength=threshold_strength(sizes, self.thresholds[index]),
            metrics={"change_pct": np.full(n, change), "back_s": np.full(n, float(back_steps))},
        )


def active_naive(prices: Sequence[float], times_ms: Sequence[int], threshold_pct: float) -> int:
    """The simple rule as written, over plain lists (oldest first): +1, -1 or 0."""
    if len(prices) < 2:
        return 0
    cutoff = times_ms[-1] - ACTIVE_WINDOW_S * 1000
    oldest = next(p for p, t in zip(prices, times_ms, strict=True) if t >= cutoff)
    change = (prices[-1] - oldest) / oldest * 100.0
    if abs(change) >= threshold_pct - EPS_PCT and change != 0.0:
        return 1 if change > 0 else -1
    return 0


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """The Active-advanced measurements of one window on the newest sample."""

    samples: int
    overall: float
    last_part: float
    volatility: float
    momentum: float
    """% / s."""
    momentum_change: float
    """The % change behind ``momentum`` (its sign and size, before dividing by the seconds)."""
    drawdown: float

    def conditions(self) -> bool:
        """Every condition except ``|overall| ≥ ratio`` (the one that depends on the ratio)."""
        return self.conditions_but_drawdown() and self.drawdown <= DRAWDOWN_MAX_PCT + EPS_PCT

    def conditions_but_drawdown(self) -> bool:
        """The conditions the cheap prefix-sum measurements decide."""
        return _cheap_conditions(
            self.samples, self.overall, self.last_part, self.volatility, self.momentum_change
        )


def _cheap_conditions(samples: int, overall: float, last: float, volatility: float, change: float) -> bool:
    return (
        samples >= MIN_WINDOW_SAMPLES
        and ((overall > 0.0 and last > 0.0) or (overall < 0.0 and last < 0.0))
        and abs(last) >= CONTINUATION_MIN * abs(overall) - EPS_PCT
        and volatility >= VOLATILITY_MIN_PCT - EPS_PCT
        and abs(change) > EPS_PCT
    )


class _Plan:
    """Per-window sample counts for one history size (constant once the ring is full)."""

    __slots__ = ("k", "lags", "last_n", "n", "size")

    def __init__(self, size: int, window_n: Sequence[int]) -> None:
        self.size = size
        self.n = [min(w, size) for w in window_n]
        self.last_n = [max(1, (n * 2) // 10) for n in self.n]  # ⌊0.2·n⌋ in integers: 0.2 × 5 gives 1
        self.k = [max(1, min(MOMENTUM_K, n // 3)) for n in self.n]
        older = [n - k for n, k in zip(self.n, self.k, strict=True)]
        self.lags: I64 = np.asarray([*self.n, *self.last_n, *self.k, *older], dtype=np.int64)


_Values = tuple[int, float, float, float, float, float]
"""samples, overall, last part, volatility, momentum, momentum change (the fields of WindowMetrics)."""


def _window(
    anchor: float, now_dev: float, plan: _Plan, s1: list[float], s2: list[float], w: int, timeframe_s: int
) -> _Values | None:
    """Window ``w``'s measurements but the drawdown, from the prefix sums ``s1``/``s2`` over ``plan.lags``.

    Every mean is ``anchor + (prefix difference) / count``, so the deviations from the anchor
    are summed, not the prices: that keeps the variance of a 0.1 % window exact enough.
    """
    n = plan.n[w]
    if n < MIN_WINDOW_SAMPLES:
        return None
    count = len(plan.n)
    mean_dev = s1[w] / n
    avg = anchor + mean_dev
    overall = (now_dev - mean_dev) / avg * 100.0
    last_dev = s1[count + w] / plan.last_n[w]
    last_part = (now_dev - last_dev) / (anchor + last_dev) * 100.0
    volatility = math.sqrt(max(s2[w] / n - mean_dev * mean_dev, 0.0)) / avg * 100.0
    k = plan.k[w]
    recent = anchor + s1[2 * count + w] / k
    older = anchor + (s1[w] - s1[3 * count + w]) / k
    change = (recent - older) / older * 100.0
    seconds = (n - k) * timeframe_s  # samples are evenly spaced, so the mean times are n - k apart
    momentum = change / seconds if seconds > 0 else 0.0
    return n, overall, last_part, volatility, momentum, change


class ActiveAdvancedDetector:
    """Active-advanced: 6 ratios × 8 windows, key index ``ratio_index × 8 + window_index``."""

    kind = IndicationType.ACTIVE_ADVANCED

    def __init__(
        self,
        timeframe_s: int,
        ratios: Sequence[float] = ADVANCED_RATIOS,
        windows_min: Sequence[int] = ADVANCED_WINDOWS_MIN,
    ) -> None:
        self.timeframe_s = timeframe_s
        self.ratios = tuple(float(a) for a in ratios)
        self.windows_min = tuple(int(w) for w in windows_min)
        self.window_n = tuple(w * 60 // timeframe_s + 1 for w in self.windows_min)
        self._min_ratio = min(self.ratios)
        self._plan: _Plan | None = None
        self.keys: tuple[str, ...] = tuple(f"{a!r}-{w}" for a in self.ratios for w in self.windows_min)
        self.key_params: tuple[tuple[tuple[str, float], ...], ...] = tuple(
            (("ratio_pct", a), ("window_min", float(w))) for a in self.ratios for w in self.windows_min
        )

    @property
    def lookback(self) -> int:
        """Samples the detector reads at most (the longest window, plus the prefix sum before it)."""
        return max(self.window_n) + 1

    def _plan_for(self, size: int) -> _Plan:
        plan = self._plan
        if plan is None or plan.size != size:
            plan = self._plan = _Plan(size, self.window_n)
        return plan

    def metrics(self, ring: SampleRing) -> list[WindowMetrics | None]:
        """Every window's measurements on the newest sample (None where a sample minimum fails)."""
        if ring.size < MIN_TOTAL_SAMPLES:
            return [None] * len(self.window_n)
        plan = self._plan_for(ring.size)
        s1, s2 = (x.tolist() for x in ring.window_sums(plan.lags))
        out: list[WindowMetrics | None] = []
        anchor = ring.anchor
        now_dev = ring.newest_price - anchor
        for w in range(len(self.window_n)):
            v = _window(anchor, now_dev, plan, s1, s2, w, self.timeframe_s)
            out.append(None if v is None else WindowMetrics(*v, self._drawdowns(ring, [v[0]])[v[0]]))
        return out

    @staticmethod
    def _drawdowns(ring: SampleRing, lengths: list[int]) -> dict[int, float]:
        """``(max − min)/max`` (%) of the windows of the given lengths, in one pass.

        The windows are nested (all end now), so the newest samples are cut into segments at the
        window starts, each segment is reduced once, and a suffix max/min over the few segment
        results answers every window.
        """
        ordered = sorted(set(lengths), reverse=True)  # longest first: its start is 0
        top = ordered[0]
        view = ring.prices(top)  # oldest first, contiguous
        starts = np.asarray([top - n for n in ordered], dtype=np.int64)
        hi = np.maximum.accumulate(np.maximum.reduceat(view, starts)[::-1])[::-1].tolist()
        lo = np.minimum.accumulate(np.minimum.reduceat(view, starts)[::-1])[::-1].tolist()
        return {n: (h - low) / h * 100.0 for n, h, low in zip(ordered, hi, lo, strict=True)}

    def evaluate(
        self, ring: SampleRing, counters: StepCounters, open_keys: B | None = None
    ) -> Detection | None:
        """The (ratio, window) keys that fire on the newest sample, or None.

        The overall change of each window comes first (two prefix-sum lookups); the other
        measurements follow only for windows that reach the smallest ratio, and the drawdown (the
        one measurement that needs a pass over the window) only for windows that passed the rest.
        The eight windows are walked in plain Python: for eight numbers numpy's per-call overhead
        costs more than the arithmetic. Windows whose keys are all locked (``open_keys``, one
        bool per key) are not measured at all.
        """
        size = ring.size
        if size < MIN_TOTAL_SAMPLES:
            return None
        plan = self._plan_for(size)
        sums, squares = ring.window_sums(plan.lags)
        s1 = sums.tolist()
        anchor = ring.anchor
        now_dev = ring.newest_price - anchor
        floor = self._min_ratio - EPS_PCT
        passed: list[tuple[int, _Values]] = []
        s2: list[float] | None = None
        tf = self.timeframe_s
        n_windows = len(self.window_n)
        usable = None if open_keys is None else open_keys.reshape(len(self.ratios), n_windows).tolist()
        for w, n in enumerate(plan.n):
            if n < MIN_WINDOW_SAMPLES or (usable is not None and not any(row[w] for row in usable)):
                continue
            mean_dev = s1[w] / n
            if abs((now_dev - mean_dev) / (anchor + mean_dev) * 100.0) < floor:
                continue  # the cheap test first: most windows stop here in a calm market
            if s2 is None:
                s2 = squares.tolist()
            v = _window(anchor, now_dev, plan, s1, s2, w, tf)
            if v is not None and _cheap_conditions(v[0], v[1], v[2], v[3], v[5]):
                passed.append((w, v))
        if not passed:
            return None
        drawdowns = self._drawdowns(ring, [v[0] for _, v in passed])
        index: list[int] = []
        direction: list[int] = []
        strength: list[float] = []
        rows: list[WindowMetrics] = []
        for w, v in passed:
            drawdown = drawdowns[v[0]]
            if drawdown > DRAWDOWN_MAX_PCT + EPS_PCT:
                continue
            m = WindowMetrics(*v, drawdown)
            size_pct = abs(m.overall)
            for a, ratio in enumerate(self.ratios):
                if size_pct >= ratio - EPS_PCT and (usable is None or usable[a][w]):
                    index.append(a * n_windows + w)
                    direction.append(1 if m.overall > 0 else -1)
                    strength.append(min(1.0, size_pct / (2.0 * ratio)))
                    rows.append(m)
        if not index:
            return None
        return Detection(
            index=np.asarray(index, dtype=np.int64),
            direction=np.asarray(direction, dtype=np.int64),
            strength=np.asarray(strength, dtype=np.float64),
            metrics={
                "overall_pct": np.asarray([m.overall for m in rows]),
                "last_part_pct": np.asarray([m.last_part for m in rows]),
                "volatility_pct": np.asarray([m.volatility for m in rows]),
                "momentum_pct_s": np.asarray([m.momentum for m in rows]),
                "drawdown_pct": np.asarray([m.drawdown for m in rows]),
                "samples": np.asarray([float(m.samples) for m in rows]),
            },
        )


def active_advanced_naive(
    prices: Sequence[float], times_ms: Sequence[int], ratio_pct: float, window_min: int
) -> tuple[int, dict[str, float]]:
    """The Active-advanced rule as written for one (ratio, window), over plain lists (oldest first).

    Returns the direction (+1, -1 or 0) and the measured values (empty when a sample minimum is
    not met), so tests can tell a real disagreement from a value sitting on a threshold.
    """
    if len(prices) < MIN_TOTAL_SAMPLES:
        return 0, {}
    cutoff = times_ms[-1] - window_min * 60_000
    pairs = [(p, t) for p, t in zip(prices, times_ms, strict=True) if t >= cutoff]
    n = len(pairs)
    if n < MIN_WINDOW_SAMPLES:
        return 0, {}
    window = [p for p, _ in pairs]
    stamps = [t for _, t in pairs]
    now = window[-1]
    avg = sum(window) / n
    overall = (now - avg) / avg * 100.0
    last_n = max(1, math.floor(n * LAST_PART_SHARE + 1e-9))
    last_avg = sum(window[-last_n:]) / last_n
    last_part = (now - last_avg) / last_avg * 100.0
    volatility = math.sqrt(sum((p - avg) ** 2 for p in window) / n) / avg * 100.0
    k = min(MOMENTUM_K, n // 3)
    recent = sum(window[-k:]) / k
    older = sum(window[:k]) / k
    change = (recent - older) / older * 100.0
    seconds = (sum(stamps[-k:]) / k - sum(stamps[:k]) / k) / 1000.0
    momentum = change / seconds if seconds else 0.0
    drawdown = (max(window) - min(window)) / max(window) * 100.0
    measured = {
        "overall": overall,
        "last_part": last_part,
        "volatility": volatility,
        "momentum_change": change,
        "momentum": momentum,
        "drawdown": drawdown,
    }
    fires = (
        abs(overall) >= ratio_pct - EPS_PCT
        and ((overall > 0 and last_part > 0) or (overall < 0 and last_part < 0))
        and abs(last_part) >= CONTINUATION_MIN * abs(overall) - EPS_PCT
        and volatility >= VOLATILITY_MIN_PCT - EPS_PCT
        and abs(change) > EPS_PCT
        and drawdown <= DRAWDOWN_MAX_PCT + EPS_PCT
    )
    return (1 if overall > 0 else -1) if fires else 0, measured
