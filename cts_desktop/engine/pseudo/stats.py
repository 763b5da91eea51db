"""Per-set running statistics as numpy columns, folded one closed batch at a time (D5, D7, D10, D12, D17).

Why columns: a book holds hundreds of thousands of sets (D17) and a tick can close thousands of
entries at once. Each statistic is one array with one row per set, and :meth:`SetStats.apply`
folds a whole :class:`~cts_desktop.engine.pseudo.closed.ClosedBatch` with sorted segments and
group reductions, so the cost per batch is a handful of numpy passes, never a Python loop per entry.

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
win rate). Floating-point sums are taken in a different order than a per-entry loop would take
them, so they can differ from such a loop in the last bits; the tests therefore use values whose
sums are exact, and the threshold checks allow a 1e-9 slack (:func:`at_least`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

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
the existing ones (a doubling copy of hundreds of MB stalled a live tick for 100-400 ms)."""

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
        """Append zeroed ring chunks until rows ``0 … n_sets-1`` have one; existing chunks stay put."""
        shape = (self._chunk, self._window)
        while len(self._ring_result) * self._chunk < n_sets:
            self._ring_result.append(np.zeros(shape, dtype=np.float64))
            self._ring_pnl.append(np.zeros(shape, dtype=np.float64))
            self._ring_closed.append(np.zeros(shape, dtype=np.int64))

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

        Entries are taken in close-time order per set (ties keep batch order). Everything below is
        whole-array work over the batch sorted by set: segment sums with ``reduceat``, a segmented
        running maximum via ranks, and ring writes of each set's newest ``window`` results.
        """
        n = len(batch)
        if n == 0:
            return FoldResult.empty(self._milestones)
        set_index = batch.set_index
        if int(set_index.min()) < 0:
            raise ValueError("set_index must not be negative")
        self.ensure(int(set_index.max()) + 1)

        order = np.lexsort((batch.closed_ms, set_index))
        s = set_index[order]
        r = batch.result_steps[order]
        p = batch.pnl_fraction[order]
        t = batch.closed_ms[order]

        boundary = np.empty(n, dtype=np.bool_)
        boundary[0] = True
        np.not_equal(s[1:], s[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary)
        sets = s[starts]
        lengths = np.diff(np.append(starts, n))
        ends = starts + lengths - 1
        segment = np.cumsum(boundary) - 1
        rank = np.arange(n, dtype=np.int64) - starts[segment]

        before = self._count[sets].copy()
        wins_before = self._wins[sets].copy()
        losses_before = self._losses[sets].copy()
        gross_win_before = self._gross_win[sets].copy()
        gross_loss_before = self._gross_loss[sets].copy()

        win = r > 0
        loss = r < 0
        win_i = win.astype(np.int64)
        loss_i = loss.astype(np.int64)
        gw = np.where(win, r, 0.0)
        gl = np.where(loss, -r, 0.0)

        # Exact all-time sums (D10). ``sets`` is unique, so fancy "+=" is a plain scatter.
        self._count[sets] = before + lengths
        self._wins[sets] = wins_before + np.add.reduceat(win_i, starts)
        self._losses[sets] = losses_before + np.add.reduceat(loss_i, starts)
        self._gross_win[sets] = gross_win_before + np.add.reduceat(gw, starts)
        self._gross_loss[sets] = gross_loss_before + np.add.reduceat(gl, starts)
        self._sum_result[sets] += np.add.reduceat(r, starts)
        self._sum_hold_ms[sets] += np.add.reduceat(batch.hold_time_ms[order], starts)
        self._sum_entry_dd_ms[sets] += np.add.reduceat(batch.drawdown_time_ms[order], starts)

        milestone_columns = self._milestone_counters(
            before,
            wins_before,
            losses_before,
            gross_win_before,
            gross_loss_before,
            lengths,
            starts,
            win_i,
            loss_i,
            gw,
            gl,
        )

        self._fold_equity(sets, starts, ends, segment, p, t)

        # Ring: only each set's newest ``window`` entries of this batch can survive, so writing
        # just those keeps the scatter free of duplicate slots.
        keep = rank >= (lengths - self._window)[segment]
        position = before[segment] + rank
        rows = s[keep]
        slots = position[keep] % self._window
        kept_r = r[keep]
        kept_p = p[keep]
        kept_t = t[keep]
        for chunk, pick in self._chunk_groups(rows):  # ``rows`` is sorted: slices of one chunk each
            local = rows[pick] - chunk * self._chunk
            at = slots[pick]
            self._ring_result[chunk][local, at] = kept_r[pick]
            self._ring_pnl[chunk][local, at] = kept_p[pick]
            self._ring_closed[chunk][local, at] = kept_t[pick]

        return FoldResult(
            sets=sets,
            count_before=before,
            count_after=before + lengths,
            milestones=self._milestones,
            wins_at=milestone_columns[0],
            losses_at=milestone_columns[1],
            gross_win_at=milestone_columns[2],
            gross_loss_at=milestone_columns[3],
        )

    def _milestone_counters(
        self,
        before: I8,
        wins_before: I8,
        losses_before: I8,
        gross_win_before: F8,
        gross_loss_before: F8,
        lengths: I8,
        starts: I8,
        win_i: I8,
        loss_i: I8,
        gw: F8,
        gl: F8,
    ) -> tuple[I8, I8, F8, F8]:
        """Counters at each milestone crossed inside this batch, from prefix sums over the batch."""
        k = before.shape[0]
        m = len(self._milestones)
        wins_at = np.full((k, m), -1, dtype=np.int64)
        losses_at = np.full((k, m), -1, dtype=np.int64)
        gross_win_at = np.full((k, m), np.nan)
        gross_loss_at = np.full((k, m), np.nan)
        cum_win = np.cumsum(win_i)
        cum_loss = np.cumsum(loss_i)
        cum_gw = np.cumsum(gw)
        cum_gl = np.cumsum(gl)
        for column, milestone in enumerate(self._milestones):  # a few milestones, not entries
            crossed = np.flatnonzero((before < milestone) & (before + lengths >= milestone))
            if crossed.size == 0:
                continue
            first = starts[crossed]
            at = first + (milestone - before[crossed] - 1)
            wins_at[crossed, column] = wins_before[crossed] + cum_win[at] - cum_win[first] + win_i[first]
            losses_at[crossed, column] = (
                losses_before[crossed] + cum_loss[at] - cum_loss[first] + loss_i[first]
            )
            gross_win_at[crossed, column] = gross_win_before[crossed] + (
                cum_gw[at] - cum_gw[first] + gw[first]
            )
            gross_loss_at[crossed, column] = gross_loss_before[crossed] + (
                cum_gl[at] - cum_gl[first] + gl[first]
            )
        return wins_at, losses_at, gross_win_at, gross_loss_at

    def _fold_equity(self, sets: I8, starts: I8, ends: I8, segment: I8, pnl: F8, closed_ms: I8) -> None:
        """Equity path, peak, max drawdown and drawdown time (D12) for the sorted batch."""
        n = pnl.shape[0]
        cumulative = np.cumsum(pnl)
        base = cumulative[starts] - pnl[starts]
        equity = self._equity[sets][segment] + (cumulative - base[segment])

        # Segmented running maximum, exactly: rank the values, offset each segment's ranks above
        # every earlier segment's, take one running maximum and map the ranks back to values.
        by_value = np.argsort(equity, kind="stable")
        ranks = np.empty(n, dtype=np.int64)
        ranks[by_value] = np.arange(n, dtype=np.int64)
        offset = segment * n
        running = np.maximum.accumulate(ranks + offset) - offset
        peak = np.maximum(self._peak[sets][segment], equity[by_value][running])

        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(equity < peak, (peak - equity) / peak, 0.0)
        prior_since = self._since[sets]
        under, since, duration = _underwater_spells(equity, peak, closed_ms, prior_since, segment, starts)

        self._max_dd[sets] = np.maximum(self._max_dd[sets], np.maximum.reduceat(drawdown, starts))
        self._max_dd_time[sets] = np.maximum(self._max_dd_time[sets], np.maximum.reduceat(duration, starts))
        self._equity[sets] = equity[ends]
        self._peak[sets] = peak[ends]
        self._since[sets] = np.where(under[ends], since[ends], NOT_UNDERWATER)
        self._last_closed[sets] = closed_ms[ends]

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
