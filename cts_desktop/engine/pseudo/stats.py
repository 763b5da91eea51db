"""Per-set running statistics as numpy columns, folded one closed batch at a time (D5, D7, D10, D12, D17).

Why columns: a book holds hundreds of thousands of sets (D17) and a tick can close thousands of
entries at once. Each statistic is one array with one row per set, and :meth:`SetStats.apply`
folds a whole :class:`~cts_desktop.engine.pseudo.closed.ClosedBatch` in one compiled pass, never a
Python loop per entry.

Why numba for the fold: the numpy version (lexsort, ``reduceat`` per column, a rank trick for the
segmented running maximum, prefix sums for the milestones, ring scatters) was ~50 array calls and
as many temporaries per batch: 0.34 ms for a median 735-entry batch of ``benchmarks/live_tick.py``
replayed into its 2.8-million-set table (page faults aside, see :data:`DEFAULT_RING_CHUNK`), in a
2 ms tick budget. :func:`_fold_kernel` walks the batch once in the order the rules are stated (per
set, by close time), like ``book.py``'s kernel: 0.14 ms for the same batches, most of it cache
misses on the columns of sets that far apart (37 µs when the columns fit in cache).

What is kept per set:

* all-time counters and **exact sums** (D10): closes, wins, losses, gross win and gross loss in
  steps, the sum of results, hold time and per-entry drawdown time. The original updated running
  averages with a wrong formula; sums cannot drift that way and every average is derived on demand.
* the set's equity in units of its stake (each entry adds its net ``pnl_fraction``; equity starts at
  1.0, the first peak), the peak, the largest drawdown from a peak as a fraction of that peak, and
  **drawdown time** (D12): how long the equity stayed below its previous peak. Hold time is a
  different measure and is kept besides, never in its place.
* a ring of the newest ``window`` results per set (result steps, pnl, close time) for the windowed
  measures: evaluation counts 10/25/50 (D8, D11) and the rolling win rate of D10.

The three measures the original called "profit factor" are named apart (D5): ``avg_result_steps``
(mean result in steps), ``pf_gross`` (gross win / gross loss) and ``payoff_ratio`` (average win /
average loss).

A result > 0 is a win, < 0 a loss, exactly 0 neither (it still counts as a close, so it lowers the
win rate). The fold adds entry by entry in that order, so the all-time columns and the milestone
counters equal a per-entry loop bit for bit. The windowed measures are numpy reductions over the
ring, whose order of addition differs from such a loop in the last bits; the tests use values whose
sums are exact there, and the threshold checks allow a 1e-9 slack (:func:`at_least`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, cast

import numba
import numpy as np
import numpy.typing as npt

from cts_desktop.engine.pseudo.closed import ClosedBatch

I8 = npt.NDArray[np.int64]
F8 = npt.NDArray[np.float64]
BOOL = npt.NDArray[np.bool_]

EVALUATION_WINDOWS: tuple[int, ...] = (10, 25, 50)
"""The newest-N windows of D8/D11: phase 1 length, evaluation count 1 and evaluation count 2."""

DEFAULT_WINDOW = 50
"""Ring length per set: the largest evaluation window (evaluation count 2)."""

DEFAULT_RING_CHUNK = 8192
"""Sets per ring chunk. The rings are the bulk of the memory (3 × 8 bytes × window per set); they
live in fixed chunks of this many sets so that adding sets allocates a new chunk and never copies
the existing ones (a doubling copy of hundreds of MB stalled a live tick for 100-400 ms).

A chunk is indexed ``[set, slot]`` but stored slot-major: slot ``k`` of all its sets is one
contiguous row. Chunks are zero pages mapped lazily, so the first write to a page costs a page
fault (~2 µs here). Set-major, a set's first close faulted the pages holding its whole ring row
(400 bytes, shared with ~10 neighbours) in each of the three arrays; on ``benchmarks/live_tick.py``
those faults (~175 in the median 700-close :meth:`SetStats.apply`, ~290,000 over the 15,000 timed
ticks) cost more than the fold itself. Slot-major, a young set only touches the pages of the slots
it has filled, each shared with 511 neighbouring sets (~9,000 faults in the same run); a set with a
full ring touches as much memory as before. Reading one set's window then spans ``n`` rows instead
of one, which measured the same for contiguous sets and about 15 % slower for scattered ones
(:meth:`SetStats.window_measures`, 1,000 sets × 50).

Keep a chunk below 4 MiB (8192 × 50 × 8 bytes is 3.3 MB): from that size numpy asks Linux for
transparent huge pages, and with 16,384 sets per chunk the first touches of those huge pages took
the benchmark's p99 tick from ~1 ms to 13 ms."""

DEFAULT_MILESTONES: tuple[int, ...] = (10, 50)
"""Close counts at which §2.5 takes a decision; :meth:`SetStats.apply` snapshots the counters there."""

NOT_UNDERWATER = -1
"""``underwater_since_ms`` of a set whose equity is at its peak."""

THRESHOLD_SLACK = 1e-9
"""Relative slack of every threshold comparison: sums of decimal results such as 0.6 come out as
0.59999999999999998 or 0.60000000000000009 depending on the order of addition; a set that averages
exactly the threshold must pass regardless. No meaningful difference is this small."""


def at_least(value: F8, threshold: float) -> BOOL:
    """``value >= threshold`` with :data:`THRESHOLD_SLACK`; NaN (no data) never passes."""
    return np.asarray(value >= threshold - THRESHOLD_SLACK * max(1.0, abs(threshold)), dtype=np.bool_)


def below(value: F8, threshold: float) -> BOOL:
    """``value < threshold`` beyond the slack; NaN (no data) is not below anything."""
    return np.asarray(value < threshold - THRESHOLD_SLACK * max(1.0, abs(threshold)), dtype=np.bool_)


def above(value: F8, threshold: float) -> BOOL:
    """``value > threshold`` beyond the slack; NaN (no data) is not above anything."""
    return np.asarray(value > threshold + THRESHOLD_SLACK * max(1.0, abs(threshold)), dtype=np.bool_)


def _ratio(numerator: F8, denominator: F8) -> F8:
    """numerator / denominator with 0/0 = NaN and x/0 = +inf for x > 0 (no losses at all)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(numerator, denominator)
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Measures:
    """The D5 measures of some sets over one window (or over all their results).

    ``results`` is how many results the window actually held (fewer than N while a set is young).
    ``gross_loss`` is positive. ``max_drawdown`` is a fraction of the peak equity; ``drawdown_time_ms``
    is the longest stretch below a previous peak (D12), an ongoing one measured to the last close.
    """

    sets: I8
    results: I8
    wins: I8
    losses: I8
    gross_win: F8
    gross_loss: F8
    sum_result_steps: F8
    max_drawdown: F8
    drawdown_time_ms: I8

    @property
    def win_rate(self) -> F8:
        """wins / results; NaN without results."""
        return _ratio(self.wins.astype(np.float64), self.results.astype(np.float64))

    @property
    def avg_result_steps(self) -> F8:
        """Mean result in steps (D5: what the Base/Main/Real minimums apply to); NaN without results."""
        return _ratio(self.sum_result_steps, self.results.astype(np.float64))

    @property
    def pf_gross(self) -> F8:
        """Gross win / gross loss (D5: what preset minimums apply to); +inf without losses."""
        return _ratio(self.gross_win, self.gross_loss)

    @property
    def payoff_ratio(self) -> F8:
        """Average win / average loss (D5: phase 2's 1.2); +inf with wins but no losses, 0 with
        losses but no wins, NaN with neither."""
        avg_win = _ratio(self.gross_win, self.wins.astype(np.float64))
        avg_loss = _ratio(self.gross_loss, self.losses.astype(np.float64))
        ratio = _ratio(np.nan_to_num(avg_win, nan=0.0), np.nan_to_num(avg_loss, nan=0.0))
        return np.where((self.wins == 0) & (self.losses == 0), np.nan, ratio)


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What one :meth:`SetStats.apply` changed: the touched sets (ascending), their close counts
    before and after, and the counters at each milestone a set crossed inside this batch.

    The §2.5 decisions happen "at exactly 10 closes" and "at exactly 50"; one batch may carry a set
    from 8 to 12 closes, so the counters are captured at the crossing, not read after the batch.
    Columns of the ``*_at`` arrays follow ``milestones``; rows that did not cross hold -1 / NaN.
    """

    sets: I8
    count_before: I8
    count_after: I8
    milestones: tuple[int, ...]
    wins_at: I8
    losses_at: I8
    gross_win_at: F8
    gross_loss_at: F8

    def __len__(self) -> int:
        return int(self.sets.shape[0])

    def crossed(self, milestone: int) -> BOOL:
        """Rows whose close count passed ``milestone`` in this batch (before < M ≤ after)."""
        return np.asarray((self.count_before < milestone) & (self.count_after >= milestone), dtype=np.bool_)

    def at(self, milestone: int) -> Measures:
        """The counters at ``milestone`` closes (meaningful where :meth:`crossed`)."""
        column = self.milestones.index(milestone)
        size = len(self)
        return Measures(
            sets=self.sets,
            results=np.full(size, milestone, dtype=np.int64),
            wins=self.wins_at[:, column],
            losses=self.losses_at[:, column],
            gross_win=self.gross_win_at[:, column],
            gross_loss=self.gross_loss_at[:, column],
            sum_result_steps=self.gross_win_at[:, column] - self.gross_loss_at[:, column],
            max_drawdown=np.full(size, np.nan),
            drawdown_time_ms=np.zeros(size, dtype=np.int64),
        )

    @staticmethod
    def empty(milestones: tuple[int, ...]) -> FoldResult:
        i8 = np.empty(0, dtype=np.int64)
        m = len(milestones)
        return FoldResult(
            sets=i8,
            count_before=i8,
            count_after=i8,
            milestones=milestones,
            wins_at=np.empty((0, m), dtype=np.int64),
            losses_at=np.empty((0, m), dtype=np.int64),
            gross_win_at=np.empty((0, m), dtype=np.float64),
            gross_loss_at=np.empty((0, m), dtype=np.float64),
        )


def _underwater_spells(
    equity: F8, peak: F8, closed_ms: I8, prior_since: I8, segment: I8, starts: I8
) -> tuple[BOOL, I8, I8]:
    """For equity paths laid end to end in segments: which points are below their peak, since when
    each underwater stretch runs, and the duration each point closes or extends (0 elsewhere).

    ``prior_since`` (per segment) is when an underwater stretch began before the first point, or
    :data:`NOT_UNDERWATER`. A stretch that ends (equity back at its peak) is measured to that close.
    """
    n = equity.shape[0]
    under = equity < peak
    prev_under = np.empty(n, dtype=np.bool_)
    prev_under[1:] = under[:-1]
    prev_under[starts] = prior_since >= 0
    run_start = under & ~prev_under
    index = np.arange(n, dtype=np.int64)
    last_start = np.maximum.accumulate(np.where(run_start, index, -1))
    inside = last_start >= starts[segment]
    since = np.where(inside, closed_ms[np.maximum(last_start, 0)], prior_since[segment])
    since_prev = np.empty(n, dtype=np.int64)
    since_prev[1:] = since[:-1]
    since_prev[starts] = prior_since
    recovered = prev_under & ~under
    duration = np.where(under, closed_ms - since, np.where(recovered, closed_ms - since_prev, 0))
    return under, since, duration


# A frozen (PyInstaller) build has no source files next to the modules, and numba's on-disk cache
# needs one to locate its index; there the kernels are compiled once per process instead.
_CACHE: Final = not getattr(sys, "frozen", False)


def _jit[F: Callable[..., object]](fn: F) -> F:
    """numba.njit with a type mypy can see (numba ships no stubs), as in ``book.py``. No fastmath:
    the sums must round exactly like the per-entry loop they stand for (IEEE, no reassociation)."""
    return cast(F, numba.njit(cache=_CACHE, nogil=True)(fn))


@_jit
def _fold_kernel(
    order: I8,
    set_index: I8,
    closed_ms: I8,
    result: F8,
    pnl: F8,
    hold_ms: I8,
    entry_dd_ms: I8,
    count: I8,
    wins: I8,
    losses: I8,
    gross_win: F8,
    gross_loss: F8,
    sum_result: F8,
    sum_hold_ms: I8,
    sum_entry_dd_ms: I8,
    equity: F8,
    peak: F8,
    max_dd: F8,
    since: I8,
    max_dd_time: I8,
    last_closed: I8,
    milestones: I8,
    window: int,
    chunk_size: int,
) -> tuple[I8, I8, I8, I8, I8, F8, F8, I8, I8, I8, I8, I8]:
    """Fold the batch, taken in ``order`` (by set, then close time), into the per-set columns.

    One pass, one set at a time, one entry at a time: every sum is accumulated in the order a
    per-entry loop would add it, so the columns equal such a loop bit for bit (the numpy version
    this replaces summed each set's part of the batch first and then added it, and built the equity
    path from one cumulative sum over all sets, which differ from the loop in the last bits).

    Returns the touched sets (ascending), their counts before and after, the counters at each
    milestone crossed (-1 / NaN where not crossed), and the ring writes: for each surviving entry
    (a set's newest ``window`` of this batch) its set, ring slot and batch index, in set order,
    cut into groups of one ring chunk each (``group_bounds`` into the write list, ``group_chunk``).
    """
    n = order.shape[0]
    k = 1
    for j in range(1, n):
        if set_index[order[j]] != set_index[order[j - 1]]:
            k += 1
    m = milestones.shape[0]
    sets = np.empty(k, dtype=np.int64)
    before = np.empty(k, dtype=np.int64)
    after = np.empty(k, dtype=np.int64)
    wins_at = np.full((k, m), -1, dtype=np.int64)
    losses_at = np.full((k, m), -1, dtype=np.int64)
    gross_win_at = np.full((k, m), np.nan)
    gross_loss_at = np.full((k, m), np.nan)
    ring_row = np.empty(n, dtype=np.int64)
    ring_slot = np.empty(n, dtype=np.int64)
    ring_src = np.empty(n, dtype=np.int64)
    group_bounds = np.empty(k + 1, dtype=np.int64)
    group_chunk = np.empty(k, dtype=np.int64)
    writes = 0
    groups = 0
    g = 0
    j = 0
    while j < n:
        s = set_index[order[j]]
        e = j + 1
        while e < n and set_index[order[e]] == s:
            e += 1
        c0 = count[s]
        c = c0
        w = wins[s]
        lo = losses[s]
        gw = gross_win[s]
        gl = gross_loss[s]
        sr = sum_result[s]
        sh = sum_hold_ms[s]
        sd = sum_entry_dd_ms[s]
        eq = equity[s]
        pk = peak[s]
        mdd = max_dd[s]
        sn = since[s]
        mdt = max_dd_time[s]
        was_under = sn >= 0
        under = was_under
        first_kept = e - window  # only the newest ``window`` of this batch can survive in the ring
        chunk = s // chunk_size
        if groups == 0 or group_chunk[groups - 1] != chunk:
            group_chunk[groups] = chunk
            group_bounds[groups] = writes
            groups += 1
        for i in range(j, e):
            src = order[i]
            r = result[src]
            t = closed_ms[src]
            c += 1
            if r > 0:
                w += 1
                gw += r
            elif r < 0:
                lo += 1
                gl += -r
            sr += r
            sh += hold_ms[src]
            sd += entry_dd_ms[src]
            for col in range(m):
                if c == milestones[col]:
                    wins_at[g, col] = w
                    losses_at[g, col] = lo
                    gross_win_at[g, col] = gw
                    gross_loss_at[g, col] = gl
            # Equity in units of the stake, its peak, drawdown and drawdown time (D12).
            eq += pnl[src]
            if eq > pk:
                pk = eq
            under = eq < pk
            if under:
                drawdown = (pk - eq) / pk
                if drawdown > mdd:
                    mdd = drawdown
                if not was_under:
                    sn = t  # a new stretch below the peak starts at this close
                if t - sn > mdt:
                    mdt = t - sn
            elif was_under and t - sn > mdt:
                mdt = t - sn  # the stretch ends here: measured to the close that regained the peak
            was_under = under
            if i >= first_kept:
                ring_row[writes] = s
                ring_slot[writes] = (c - 1) % window
                ring_src[writes] = src
                writes += 1
        count[s] = c
        wins[s] = w
        losses[s] = lo
        gross_win[s] = gw
        gross_loss[s] = gl
        sum_result[s] = sr
        sum_hold_ms[s] = sh
        sum_entry_dd_ms[s] = sd
        equity[s] = eq
        peak[s] = pk
        max_dd[s] = mdd
        since[s] = sn if under else NOT_UNDERWATER
        max_dd_time[s] = mdt
        last_closed[s] = closed_ms[order[e - 1]]
        sets[g] = s
        before[g] = c0
        after[g] = c
        g += 1
        j = e
    group_bounds[groups] = writes
    return (
        sets,
        before,
        after,
        wins_at,
        losses_at,
        gross_win_at,
        gross_loss_at,
        ring_row,
        ring_slot,
        ring_src,
        group_bounds[: groups + 1],
        group_chunk[:groups],
    )


@_jit
def _ring_write(
    ring_result: F8,
    ring_pnl: F8,
    ring_closed: I8,
    ring_row: I8,
    ring_slot: I8,
    ring_src: I8,
    result: F8,
    pnl: F8,
    closed_ms: I8,
    first_row: int,
    start: int,
    stop: int,
) -> None:
    """Writes ``start … stop-1`` of :func:`_fold_kernel`'s ring list into one chunk, whose first
    set is ``first_row``. The slots of one set within one batch are distinct, so order is free."""
    for q in range(start, stop):
        row = ring_row[q] - first_row
        slot = ring_slot[q]
        src = ring_src[q]
        ring_result[row, slot] = result[src]
        ring_pnl[row, slot] = pnl[src]
        ring_closed[row, slot] = closed_ms[src]


class SetStats:
    """Running statistics of ``n_sets`` sets, one row per set index of the book's set table.

    Rows are added with :meth:`ensure` (or implicitly by :meth:`apply`); the all-time columns grow
    by doubling so adding sets one by one stays cheap, and the rings grow by whole chunks of
    ``chunk_size`` sets without copying (:data:`DEFAULT_RING_CHUNK`). The column properties return
    views of the live arrays: read them, do not write them.
    """

    def __init__(
        self,
        n_sets: int = 0,
        *,
        window: int = DEFAULT_WINDOW,
        milestones: tuple[int, ...] = DEFAULT_MILESTONES,
        chunk_size: int = DEFAULT_RING_CHUNK,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        if any(m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
            raise ValueError(f"milestones must be increasing positive counts, got {milestones}")
        self._window = window
        self._milestones = tuple(milestones)
        self._milestone_array: I8 = np.asarray(self._milestones, dtype=np.int64)
        self._n = 0
        self._capacity = 0
        self._chunk = chunk_size
        # Ring chunks, each of shape (chunk_size, window); row i lives in chunk i // chunk_size.
        self._ring_result: list[F8] = []
        self._ring_pnl: list[F8] = []
        self._ring_closed: list[I8] = []
        self._allocate(max(n_sets, 16))
        self.ensure(n_sets)

    # ------------------------------------------------------------------ storage

    def _allocate(self, capacity: int) -> None:
        """(Re)allocate the per-set columns with ``capacity`` rows, keeping the first ``_n`` rows.

        Only the small 1-D columns are copied; the rings are chunked (:meth:`_add_ring_chunks`).
        """
        keep = self._n

        def grow_i8(name: str, fill: int) -> I8:
            new = np.empty(capacity, dtype=np.int64)
            if keep:
                new[:keep] = getattr(self, name)[:keep]
            new[keep:] = fill
            return new

        def grow_f8(name: str, fill: float) -> F8:
            new = np.empty(capacity, dtype=np.float64)
            if keep:
                new[:keep] = getattr(self, name)[:keep]
            new[keep:] = fill
            return new

        self._count = grow_i8("_count", 0)
        self._wins = grow_i8("_wins", 0)
        self._losses = grow_i8("_losses", 0)
        self._gross_win = grow_f8("_gross_win", 0.0)
        self._gross_loss = grow_f8("_gross_loss", 0.0)
        self._sum_result = grow_f8("_sum_result", 0.0)
        self._sum_hold_ms = grow_i8("_sum_hold_ms", 0)
        self._sum_entry_dd_ms = grow_i8("_sum_entry_dd_ms", 0)
        self._equity = grow_f8("_equity", 1.0)
        self._peak = grow_f8("_peak", 1.0)
        self._max_dd = grow_f8("_max_dd", 0.0)
        self._since = grow_i8("_since", NOT_UNDERWATER)
        self._max_dd_time = grow_i8("_max_dd_time", 0)
        self._last_closed = grow_i8("_last_closed", -1)
        self._capacity = capacity

    def _add_ring_chunks(self, n_sets: int) -> None:
        """Append zeroed ring chunks until rows ``0 … n_sets-1`` have one; existing chunks stay put.

        Each chunk is indexed ``[set row, slot]`` but stored slot-major (a transposed view of a
        ``(window, chunk_size)`` array), see :data:`DEFAULT_RING_CHUNK`.
        """
        shape = (self._window, self._chunk)
        while len(self._ring_result) * self._chunk < n_sets:
            self._ring_result.append(np.zeros(shape, dtype=np.float64).T)
            self._ring_pnl.append(np.zeros(shape, dtype=np.float64).T)
            self._ring_closed.append(np.zeros(shape, dtype=np.int64).T)

    def _chunk_groups(self, rows: I8) -> list[tuple[int, slice | npt.NDArray[np.intp]]]:
        """Split ``rows`` (1-D) by ring chunk: (chunk number, selector into ``rows``) per chunk.

        Batches usually touch one chunk or a few neighbouring ones (a trigger's sets are
        contiguous), so the common cases are a single group or slices of already sorted rows.
        """
        if rows.shape[0] == 0:
            return []
        chunk = rows // self._chunk
        low = int(chunk.min())
        if low == int(chunk.max()):
            return [(low, slice(None))]
        if bool(np.all(chunk[1:] >= chunk[:-1])):
            cuts = np.flatnonzero(chunk[1:] != chunk[:-1]) + 1
            bounds = [0, *cuts.tolist(), int(chunk.shape[0])]
            return [(int(chunk[a]), slice(a, b)) for a, b in pairwise(bounds)]
        order = np.argsort(chunk, kind="stable")
        by_chunk = chunk[order]
        cuts = np.flatnonzero(by_chunk[1:] != by_chunk[:-1]) + 1
        bounds = [0, *cuts.tolist(), int(order.shape[0])]
        return [(int(by_chunk[a]), order[a:b]) for a, b in pairwise(bounds)]

    def ensure(self, n_sets: int) -> None:
        """Make rows ``0 … n_sets-1`` exist (new sets start empty, equity 1.0)."""
        if n_sets > self._capacity:
            self._allocate(max(n_sets, 2 * self._capacity))
        self._add_ring_chunks(n_sets)
        self._n = max(self._n, n_sets)

    @property
    def n_sets(self) -> int:
        return self._n

    @property
    def window(self) -> int:
        """How many newest results per set the ring keeps (the largest usable N)."""
        return self._window

    @property
    def milestones(self) -> tuple[int, ...]:
        return self._milestones

    # Read-only views of the all-time columns.
    @property
    def count(self) -> I8:
        return self._count[: self._n]

    @property
    def wins(self) -> I8:
        return self._wins[: self._n]

    @property
    def losses(self) -> I8:
        return self._losses[: self._n]

    @property
    def gross_win(self) -> F8:
        return self._gross_win[: self._n]

    @property
    def gross_loss(self) -> F8:
        return self._gross_loss[: self._n]

    @property
    def sum_result_steps(self) -> F8:
        return self._sum_result[: self._n]

    @property
    def sum_hold_time_ms(self) -> I8:
        return self._sum_hold_ms[: self._n]

    @property
    def sum_entry_drawdown_time_ms(self) -> I8:
        """Sum of the entries' own time below their peak (D12, position level)."""
        return self._sum_entry_dd_ms[: self._n]

    @property
    def equity(self) -> F8:
        return self._equity[: self._n]

    @property
    def peak(self) -> F8:
        return self._peak[: self._n]

    @property
    def max_drawdown(self) -> F8:
        return self._max_dd[: self._n]

    @property
    def underwater_since_ms(self) -> I8:
        return self._since[: self._n]

    @property
    def max_drawdown_time_ms(self) -> I8:
        """Longest time the set's equity spent below a previous peak (D12, set level)."""
        return self._max_dd_time[: self._n]

    @property
    def last_closed_ms(self) -> I8:
        return self._last_closed[: self._n]

    # ------------------------------------------------------------------ folding

    def apply(self, batch: ClosedBatch) -> FoldResult:
        """Fold ``batch`` into the statistics and report what changed.

        Entries are taken in close-time order per set (ties keep batch order): one ``lexsort``,
        then :func:`_fold_kernel` walks the sorted batch once, set by set, exactly as the prose
        rules (and the per-entry reference of the tests) read, and :func:`_ring_write` stores each
        set's newest ``window`` results, one call per ring chunk the batch touches.
        """
        n = len(batch)
        if n == 0:
            return FoldResult.empty(self._milestones)
        # Contiguous int64/float64 (a no-op for the book's batches), so every call runs the same
        # compiled version of the kernels that warm_up() prepared.
        set_index = np.ascontiguousarray(batch.set_index, dtype=np.int64)
        closed_ms = np.ascontiguousarray(batch.closed_ms, dtype=np.int64)
        order = np.lexsort((closed_ms, set_index))
        if int(set_index[order[0]]) < 0:
            raise ValueError("set_index must not be negative")
        self.ensure(int(set_index[order[-1]]) + 1)

        result = np.ascontiguousarray(batch.result_steps, dtype=np.float64)
        pnl = np.ascontiguousarray(batch.pnl_fraction, dtype=np.float64)
        (
            sets,
            before,
            after,
            wins_at,
            losses_at,
            gross_win_at,
            gross_loss_at,
            ring_row,
            ring_slot,
            ring_src,
            group_bounds,
            group_chunk,
        ) = _fold_kernel(
            order,
            set_index,
            closed_ms,
            result,
            pnl,
            np.ascontiguousarray(batch.hold_time_ms, dtype=np.int64),
            np.ascontiguousarray(batch.drawdown_time_ms, dtype=np.int64),
            self._count,
            self._wins,
            self._losses,
            self._gross_win,
            self._gross_loss,
            self._sum_result,
            self._sum_hold_ms,
            self._sum_entry_dd_ms,
            self._equity,
            self._peak,
            self._max_dd,
            self._since,
            self._max_dd_time,
            self._last_closed,
            self._milestone_array,
            self._window,
            self._chunk,
        )
        bounds = group_bounds.tolist()
        for group, chunk in enumerate(group_chunk.tolist()):
            _ring_write(
                self._ring_result[chunk],
                self._ring_pnl[chunk],
                self._ring_closed[chunk],
                ring_row,
                ring_slot,
                ring_src,
                result,
                pnl,
                closed_ms,
                chunk * self._chunk,
                bounds[group],
                bounds[group + 1],
            )

        return FoldResult(
            sets=sets,
            count_before=before,
            count_after=after,
            milestones=self._milestones,
            wins_at=wins_at,
            losses_at=losses_at,
            gross_win_at=gross_win_at,
            gross_loss_at=gross_loss_at,
        )

    # ------------------------------------------------------------------ reading

    def recent(self, sets: I8, n: int) -> tuple[F8, F8, I8, BOOL]:
        """The newest ``n`` results of each set as (result_steps, pnl, closed_ms, valid) matrices of
        shape (len(sets), n), oldest first and newest in the last column. A set with fewer results
        has its missing (oldest) cells invalid, holding 0."""
        if not 1 <= n <= self._window:
            raise ValueError(f"window {n} is outside 1..{self._window} (the ring length of these stats)")
        sets = np.asarray(sets, dtype=np.int64)
        count = self._count[sets]
        position = count[:, None] - n + np.arange(n, dtype=np.int64)[None, :]
        valid = position >= 0
        slots = np.mod(position, self._window)
        k = sets.shape[0]
        result: F8 = np.zeros((k, n), dtype=np.float64)
        pnl: F8 = np.zeros((k, n), dtype=np.float64)
        closed: I8 = np.zeros((k, n), dtype=np.int64)
        for chunk, pick in self._chunk_groups(sets):
            if chunk >= len(self._ring_result):
                continue  # rows past n_sets (inside the column capacity) hold no results
            local = (sets[pick] - chunk * self._chunk)[:, None]
            at = slots[pick]
            result[pick] = self._ring_result[chunk][local, at]
            pnl[pick] = self._ring_pnl[chunk][local, at]
            closed[pick] = self._ring_closed[chunk][local, at]
        invalid = ~valid
        result[invalid] = 0.0
        pnl[invalid] = 0.0
        closed[invalid] = 0
        return result, pnl, closed, valid

    def window_measures(self, sets: I8, n: int) -> Measures:
        """The D5 measures over each set's newest ``n`` results (all of them while fewer exist).

        Drawdown here starts from the first result in the window (equity 1.0, its own first peak),
        so an old loss that has left the window no longer counts: that is what makes the production
        and resume rules of D10 "rolling".
        """
        sets = np.asarray(sets, dtype=np.int64)
        result, pnl, closed, valid = self.recent(sets, n)
        k = sets.shape[0]
        win = result > 0
        loss = result < 0
        equity = 1.0 + np.cumsum(pnl, axis=1)
        peak = np.maximum.accumulate(np.maximum(equity, 1.0), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(equity < peak, (peak - equity) / peak, 0.0)
        flat_segment = np.repeat(np.arange(k, dtype=np.int64), n)
        starts = np.arange(k, dtype=np.int64) * n
        _, _, duration = _underwater_spells(
            equity.ravel(),
            peak.ravel(),
            closed.ravel(),
            np.full(k, NOT_UNDERWATER, dtype=np.int64),
            flat_segment,
            starts,
        )
        return Measures(
            sets=sets,
            results=valid.sum(axis=1).astype(np.int64),
            wins=win.sum(axis=1).astype(np.int64),
            losses=loss.sum(axis=1).astype(np.int64),
            gross_win=np.where(win, result, 0.0).sum(axis=1),
            gross_loss=np.where(loss, -result, 0.0).sum(axis=1),
            sum_result_steps=result.sum(axis=1),
            max_drawdown=drawdown.max(axis=1, initial=0.0),
            drawdown_time_ms=duration.reshape(k, n).max(axis=1, initial=0).astype(np.int64),
        )

    def total_measures(self, sets: I8) -> Measures:
        """The D5 measures over all results each set has ever closed."""
        sets = np.asarray(sets, dtype=np.int64)
        return Measures(
            sets=sets,
            results=self._count[sets],
            wins=self._wins[sets],
            losses=self._losses[sets],
            gross_win=self._gross_win[sets],
            gross_loss=self._gross_loss[sets],
            sum_result_steps=self._sum_result[sets],
            max_drawdown=self._max_dd[sets],
            drawdown_time_ms=self._max_dd_time[sets],
        )

    def closes_and_wins(self, sets: I8) -> tuple[I8, I8]:
        """All-time close counts and wins of ``sets``: the two columns of :meth:`total_measures`
        that the phase-2 gate reads, without gathering the other seven for thousands of rows."""
        sets = np.asarray(sets, dtype=np.int64)
        return self._count[sets], self._wins[sets]

    def current_drawdown_time_ms(self, sets: I8, now_ms: int) -> I8:
        """How long each set has been below its previous peak as of ``now_ms`` (0 at its peak).

        The stored maximum only moves at closes; this is the live figure for a set that has been
        under water, without closing anything, since its last loss.
        """
        since = self._since[np.asarray(sets, dtype=np.int64)]
        return np.where(since >= 0, np.maximum(now_ms - since, 0), 0).astype(np.int64)

    def aggregate_columns(self, sets: I8) -> dict[str, npt.NDArray[np.generic]]:
        """The ``pseudo_sets`` aggregate columns of ``sets``, ready for
        :meth:`~cts_desktop.storage.repositories.pseudo.PseudoRepository.update_set_aggregates`
        (status and phase come from the evaluator)."""
        sets = np.asarray(sets, dtype=np.int64)
        return {
            "entries": self._count[sets],
            "wins": self._wins[sets],
            "losses": self._losses[sets],
            "gross_profit": self._gross_win[sets],
            "gross_loss": self._gross_loss[sets],
            "sum_result_steps": self._sum_result[sets],
            "max_drawdown": self._max_dd[sets],
            "drawdown_time_s": self._max_dd_time[sets] / 1000.0,
        }


def warm_up() -> None:
    """Compile (or load from numba's cache) the fold kernels now, so the first closing tick does
    not pay it; :func:`cts_desktop.engine.pseudo.book.warm_up` calls this. The arrays have the
    dtypes and layouts of the live ones (the rings are transposed views), so the live calls hit
    the same compiled versions."""
    stats = SetStats(4, window=2, milestones=(1,), chunk_size=2)  # two chunks, each truly 2-D
    i8 = np.array([3, 0, 3, 1], dtype=np.int64)
    f8 = np.array([1.0, -1.0, 0.5, 0.0])
    stats.apply(ClosedBatch(i8, i8, i8, f8, f8, f8, f8 / 100, f8, np.ones(4, dtype=np.int8), i8, i8))
