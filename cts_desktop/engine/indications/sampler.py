"""Ticks to fixed-timeframe samples, kept in a ring with the step counters every detector shares.

Why samples and not ticks: the step indications count in *steps*, and the original defined a step
as the change between two consecutive ``market_data`` rows, one row per market timeframe (DOMAIN
§1.1, ``main.market_timeframe_s``, default 1 s). A tick stream is irregular (bursts of ticks in a
busy second, silence in a quiet one), so counting tick-to-tick changes would make "5 steps" mean
0.2 s on one symbol and a minute on another.

Sampling rules (:class:`TickSampler`):

- A sample is the *last* price seen in its timeframe bucket ``[k·tf, (k+1)·tf)`` and carries the
  bucket's start time. A bucket is closed by the first tick of a later bucket, so a closed sample
  never changes afterwards (detectors never see a half-built step).
- Buckets without any tick are forward-filled with the previous close: the price did not change,
  which is a *flat step* (it resets Direction runs; DOMAIN §1.2). After a gap longer than the ring
  only the newest ``capacity`` filled samples are written (the older ones would be overwritten
  anyway), but the sample count still advances by the whole gap.
- Ticks older than the open bucket (out of order) and non-positive or non-finite prices are
  dropped: a closed sample is final, and a bad price must not poison every window it enters.

Storage (:class:`SampleRing`): a *doubled* ring (every value is written at ``i`` and
``i + capacity``), so the newest ``n`` samples are always one contiguous slice and detectors read
them as a numpy view without copying or wrapping. Pushing is O(1).

Step counters (:class:`StepCounters`): the run lengths the consecutive-step rules need, updated
in O(1) per sample, so Direction, Move and the Optimal trigger know in constant time which ranges
*can* fire before touching any array.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["SampleRing", "StepCounters", "TickSampler"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class SampleRing:
    """The newest ``capacity`` samples (price, bucket-start time in ms), oldest first on read.

    It also keeps running prefix sums of ``price − anchor`` and of its square, so the mean and
    variance of *any* window ending at the newest sample cost two lookups instead of a pass over
    the window (:meth:`window_sums`). The anchor (a recent price) keeps the sums small; it is
    moved, and the sums rebuilt from the stored prices, once per ``capacity`` samples, so float
    error cannot build up over days (amortised O(1) per sample).
    """

    __slots__ = (
        "_anchor",
        "_pos",
        "_prices",
        "_since_rebase",
        "_sq",
        "_sq_total",
        "_sum",
        "_sum_total",
        "_ts",
        "capacity",
        "count",
    )

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("a sample ring needs room for at least two samples")
        self.capacity = capacity
        self._prices: F64 = np.zeros(2 * capacity, dtype=np.float64)
        self._ts: I64 = np.zeros(2 * capacity, dtype=np.int64)
        self._sum: F64 = np.zeros(2 * capacity, dtype=np.float64)
        self._sq: F64 = np.zeros(2 * capacity, dtype=np.float64)
        self._anchor = math.nan
        self._sum_total = 0.0
        self._sq_total = 0.0
        self._since_rebase = 0
        self._pos = 0
        self.count = 0
        """Samples pushed since creation (also the index the next sample gets)."""

    @property
    def size(self) -> int:
        """How many samples the ring holds now (at most ``capacity``)."""
        return min(self.count, self.capacity)

    @property
    def anchor(self) -> float:
        """The price the prefix sums are taken relative to (NaN while empty)."""
        return self._anchor

    def push(self, price: float, ts_ms: int) -> None:
        """Append one sample, overwriting the oldest when full."""
        if self._since_rebase >= self.capacity or self.count == 0:
            self._rebase(price)
        pos = self._pos
        cap = self.capacity
        dev = price - self._anchor
        self._sum_total += dev
        self._sq_total += dev * dev
        prices, sums, squares, times = self._prices, self._sum, self._sq, self._ts
        prices[pos] = prices[pos + cap] = price
        sums[pos] = sums[pos + cap] = self._sum_total
        squares[pos] = squares[pos + cap] = self._sq_total
        times[pos] = times[pos + cap] = ts_ms
        self._pos = pos + 1 if pos + 1 < cap else 0
        self.count += 1
        self._since_rebase += 1

    def _rebase(self, anchor: float) -> None:
        """Re-anchor the prefix sums at ``anchor`` and rebuild them from the stored prices."""
        self._anchor = anchor
        self._since_rebase = 0
        size = self.size
        if size == 0:
            self._sum_total = self._sq_total = 0.0
            return
        dev = self.prices(size) - anchor
        sums = np.cumsum(dev)
        squares = np.cumsum(dev * dev)
        end = self._pos + self.capacity
        slots = np.arange(end - size, end) % self.capacity  # both copies of the held samples
        for target, values in ((self._sum, sums), (self._sq, squares)):
            target[slots] = values
            target[slots + self.capacity] = values
        self._sum_total = float(sums[-1])
        self._sq_total = float(squares[-1])

    def skip(self, n: int) -> None:
        """Count ``n`` samples that were never written (older than the ring, overwritten anyway)."""
        self.count += n

    def prices(self, n: int) -> F64:
        """A read-only view of the newest ``n`` prices, oldest first (``n`` ≤ :attr:`size`)."""
        end = self._pos + self.capacity
        view = self._prices[end - n : end]
        view.flags.writeable = False
        return view

    def times(self, n: int) -> I64:
        """A read-only view of the newest ``n`` sample times (bucket starts, ms), oldest first."""
        end = self._pos + self.capacity
        view = self._ts[end - n : end]
        view.flags.writeable = False
        return view

    def window_sums(self, n: I64) -> tuple[F64, F64]:
        """Sums of ``price − anchor`` and of its square over the newest ``n[i]`` samples, for each i.

        Every ``n[i]`` must be ≤ :attr:`size` and < ``capacity``.
        """
        newest = self._pos + self.capacity - 1
        before = newest - n
        s1 = self._sum[newest] - self._sum[before]
        s2 = self._sq[newest] - self._sq[before]
        if self.count <= self.capacity:  # still filling: a window can be the whole history
            whole = n >= self.count  # nothing before it to subtract
            s1 = np.where(whole, self._sum[newest], s1)
            s2 = np.where(whole, self._sq[newest], s2)
        return s1, s2

    def price_back(self, lag: int) -> float:
        """The price ``lag`` samples before the newest (0 = newest); ``lag`` < :attr:`size`."""
        return float(self._prices[self._pos + self.capacity - 1 - lag])

    @property
    def newest_price(self) -> float:
        """The newest sample's price (the ring must not be empty)."""
        return float(self._prices[self._pos + self.capacity - 1])

    @property
    def newest_ts(self) -> int:
        """The newest sample's bucket start in ms (the ring must not be empty)."""
        return int(self._ts[self._pos + self.capacity - 1])


class StepCounters:
    """Run lengths of the step signs up to the newest sample, updated in O(1) per sample.

    ``up_run`` / ``down_run``: consecutive strictly rising / falling steps ending now; a flat step
    resets both (DOMAIN §1.2). ``no_down_run`` / ``no_up_run``: consecutive steps ending now that
    did not fall / rise (flat steps count), which is exactly the "no opposite step" part of the
    Move rule (§1.3): a range ``r`` can hold an up-move only if ``no_down_run >= r``.
    """

    __slots__ = ("down_run", "no_down_run", "no_up_run", "up_run")

    def __init__(self) -> None:
        self.up_run = 0
        self.down_run = 0
        self.no_down_run = 0
        self.no_up_run = 0

    def step(self, previous: float, price: float) -> None:
        """Account for one step from ``previous`` to ``price``."""
        if price > previous:
            self.up_run += 1
            self.down_run = 0
            self.no_down_run += 1
            self.no_up_run = 0
        elif price < previous:
            self.down_run += 1
            self.up_run = 0
            self.no_up_run += 1
            self.no_down_run = 0
        else:
            self.flat(1)

    def flat(self, n: int) -> None:
        """Account for ``n`` flat steps."""
        self.up_run = 0
        self.down_run = 0
        self.no_down_run += n
        self.no_up_run += n


class TickSampler:
    """Turns ticks into closed samples of ``timeframe_s`` seconds (see the module docstring)."""

    __slots__ = ("_bucket", "_last", "_tf_ms", "counters", "ring", "timeframe_s")

    def __init__(self, timeframe_s: int, capacity: int) -> None:
        if timeframe_s <= 0:
            raise ValueError("the market timeframe must be positive")
        self.timeframe_s = timeframe_s
        self._tf_ms = timeframe_s * 1000
        self.ring = SampleRing(capacity)
        self.counters = StepCounters()
        self._bucket: int | None = None
        """The open bucket's number (``ts // tf``), None before the first tick."""
        self._last = math.nan
        """The newest price of the open bucket."""

    @property
    def open_price(self) -> float:
        """The newest price of the bucket still open (NaN before the first tick)."""
        return self._last

    def on_tick(self, price: float, ts_ms: int) -> int:
        """Take one tick; return how many samples it closed (0 while the bucket stays open)."""
        if not (price > 0.0 and math.isfinite(price)):
            return 0
        bucket = ts_ms // self._tf_ms
        current = self._bucket
        if bucket == current:
            self._last = price
            return 0
        closed = 0
        if current is not None:
            if bucket < current:
                return 0  # out of order: that sample is already closed
            closed = bucket - current
            self._close(self._last, current, closed)
        self._bucket = bucket
        self._last = price
        return closed

    def _close(self, price: float, bucket: int, n: int) -> None:
        """Push the closed bucket and forward-fill the ``n - 1`` empty buckets after it."""
        ring = self.ring
        if ring.count:
            self.counters.step(ring.newest_price, price)
        ring.push(price, bucket * self._tf_ms)
        fill = n - 1
        if fill <= 0:
            return
        self.counters.flat(fill)
        written = min(fill, ring.capacity)
        ring.skip(fill - written)
        first = bucket + 1 + fill - written
        for b in range(first, bucket + 1 + fill):
            ring.push(price, b * self._tf_ms)
