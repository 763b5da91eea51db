"""Market-activity pre-check (DOMAIN §1.6): no indication fires while the market is too quiet.

Why: the step rules count *signs* of steps, so in a dead market a run of three 0.001 % ticks is a
"run" like any other; trading it is trading noise. The gate asks whether the market is moving at
all before any detector may emit:

    Over the newest ``range`` frames (setting ``indication.market_activity_range_s``, 5-20,
    default 10), take each frame's absolute relative change |p_i − p_{i−1}| / p_{i−1} (%).
    The gate is open when their mean ≥ 0.05 % × ``indication.market_activity_factor`` (1-20,
    default 2 → 0.10 %) and their population standard deviation ≥ the minimum volatility
    (UI default 0.05 %). With fewer than ``range`` changes in hand it stays shut (unknown is not
    active). When the check is switched off the gate is always open.

A *frame* is one sample of the sampler, i.e. the market timeframe (1 s by default, the frame the
spec names). The computation is over at most 20 numbers, so it runs in plain Python: for arrays
this small numpy's per-call overhead costs more than the loop.
"""

from __future__ import annotations

import math

from cts_desktop.engine.indications.sampler import SampleRing
from cts_desktop.engine.indications.signals import EPS_PCT

__all__ = ["ACTIVITY_STEP_PCT", "DEFAULT_MIN_VOLATILITY_PCT", "ActivityReading", "MarketActivityGate"]

ACTIVITY_STEP_PCT = 0.05
"""One step of the "active factor": the required mean change is ``factor × 0.05 %``."""
DEFAULT_MIN_VOLATILITY_PCT = 0.05


class ActivityReading:
    """The gate's measurement on the newest sample."""

    __slots__ = ("is_open", "mean_pct", "std_pct")

    def __init__(self, mean_pct: float, std_pct: float, is_open: bool) -> None:
        self.mean_pct = mean_pct
        self.std_pct = std_pct
        self.is_open = is_open

    def __repr__(self) -> str:
        return (
            f"ActivityReading(mean_pct={self.mean_pct!r}, std_pct={self.std_pct!r}, is_open={self.is_open!r})"
        )


class MarketActivityGate:
    """Decides per evaluated sample whether indications may fire at all."""

    __slots__ = ("enabled", "factor", "min_volatility_pct", "range_frames", "required_pct")

    def __init__(
        self,
        *,
        enabled: bool = True,
        range_frames: int = 10,
        factor: int = 2,
        min_volatility_pct: float = DEFAULT_MIN_VOLATILITY_PCT,
    ) -> None:
        if range_frames < 1 or factor < 1 or min_volatility_pct < 0.0:
            raise ValueError("market activity needs range >= 1, factor >= 1 and a non-negative volatility")
        self.enabled = enabled
        self.range_frames = range_frames
        self.factor = factor
        self.required_pct = ACTIVITY_STEP_PCT * factor
        self.min_volatility_pct = min_volatility_pct

    @property
    def lookback(self) -> int:
        """Samples the gate reads."""
        return self.range_frames + 1

    def measure(self, ring: SampleRing) -> ActivityReading | None:
        """Mean and standard deviation of the frame changes, or None with too few samples."""
        n = self.range_frames
        if ring.size < n + 1:
            return None
        p = ring.prices(n + 1).tolist()
        changes = [abs(p[i + 1] - p[i]) / p[i] * 100.0 for i in range(n)]
        mean = sum(changes) / n
        std = math.sqrt(sum((c - mean) * (c - mean) for c in changes) / n)
        is_open = mean >= self.required_pct - EPS_PCT and std >= self.min_volatility_pct - EPS_PCT
        return ActivityReading(mean, std, is_open)

    def is_open(self, ring: SampleRing) -> bool:
        """True when indications may fire on the newest sample."""
        if not self.enabled:
            return True
        reading = self.measure(ring)
        return reading is not None and reading.is_open
