"""SetStats: the vectorised fold equals a plain per-entry loop, and the D5 measures mean what they say."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.stats import NOT_UNDERWATER, SetStats, above, at_least, below

HOUR_MS = 3_600_000


def closed(
    set_index: Sequence[int],
    results: Sequence[float],
    *,
    pnl: Sequence[float] | None = None,
    closed_ms: Sequence[int] | None = None,
    hold_ms: int = 60_000,
    entry_drawdown_ms: int = 0,
) -> ClosedBatch:
    """A batch of closed entries; pnl defaults to result / 100, close times to 1 s apart."""
    n = len(set_index)
    assert len(results) == n
    times = np.asarray(closed_ms if closed_ms is not None else np.arange(n) * 1000, dtype=np.int64)
    result = np.asarray(results, dtype=np.float64)
    return ClosedBatch(
        set_index=np.asarray(set_index, dtype=np.int64),
        opened_ms=times - hold_ms,
        closed_ms=times,
        entry_price=np.full(n, 100.0),
        exit_price=100.0 + result,
        result_steps=result,
        pnl_fraction=np.asarray(pnl, dtype=np.float64) if pnl is not None else result / 100,
        fees_fraction=np.zeros(n),
        reason=np.ones(n, dtype=np.int8),
        drawdown_time_ms=np.full(n, entry_drawdown_ms, dtype=np.int64),
        hold_time_ms=np.full(n, hold_ms, dtype=np.int64),
    )


def one_set(
    results: Sequence[float], *, set_index: int = 0, start_ms: int = 0, **kwargs: object
) -> ClosedBatch:
    n = len(results)
    times = start_ms + np.arange(n, dtype=np.int64) * 1000
    return closed([set_index] * n, results, closed_ms=times.tolist(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reference


@dataclass
class RefSet:
    """One set folded entry by entry, the way the rules are written in prose."""

    count: int = 0
    wins: int = 0
    losses: int = 0
    gross_win: float = 0.0
    gross_loss: float = 0.0
    sum_result: float = 0.0
    hold_ms: int = 0
    entry_dd_ms: int = 0
    last_closed: int = -1
    equity: float = 1.0
    peak: float = 1.0
    max_dd: float = 0.0
    since: int = NOT_UNDERWATER
    max_dd_time: int = 0
    history: list[tuple[float, float, int]] = field(default_factory=list)
    snapshots: dict[int, tuple[int, int, float, float]] = field(default_factory=dict)

    def add(self, result: float, pnl: float, at_ms: int, hold_ms: int, entry_dd_ms: int = 0) -> None:
        self.count += 1
        if result > 0:
            self.wins += 1
            self.gross_win += result
        elif result < 0:
            self.losses += 1
            self.gross_loss += -result
        self.sum_result += result
        self.hold_ms += hold_ms
        self.entry_dd_ms += entry_dd_ms
        self.last_closed = at_ms
        self.equity += pnl
        self.peak = max(self.peak, self.equity)
        if self.equity < self.peak:
            self.max_dd = max(self.max_dd, (self.peak - self.equity) / self.peak)
            if self.since == NOT_UNDERWATER:
                self.since = at_ms
            self.max_dd_time = max(self.max_dd_time, at_ms - self.since)
        elif self.since != NOT_UNDERWATER:
            self.max_dd_time = max(self.max_dd_time, at_ms - self.since)
            self.since = NOT_UNDERWATER
        self.history.append((result, pnl, at_ms))
        self.snapshots[self.count] = (self.wins, self.losses, self.gross_win, self.gross_loss)


def reference_window(history: list[tuple[float, float, int]], n: int) -> dict[str, float]:
    window = history[-n:]
    equity, peak, max_dd, since, longest = 1.0, 1.0, 0.0, NOT_UNDERWATER, 0
    for _, pnl, at_ms in window:
        equity += pnl
        peak = max(peak, equity)
        if equity < peak:
            max_dd = max(max_dd, (peak - equity) / peak)
            since = at_ms if since == NOT_UNDERWATER else since
            longest = max(longest, at_ms - since)
        elif since != NOT_UNDERWATER:
            longest = max(longest, at_ms - since)
            since = NOT_UNDERWATER
    results = [r for r, _, _ in window]
    return {
        "results": len(window),
        "wins": sum(r > 0 for r in results),
        "losses": sum(r < 0 for r in results),
        "gross_win": sum(r for r in results if r > 0),
        "gross_loss": sum(-r for r in results if r < 0),
        "sum": sum(results),
        "max_dd": max_dd,
        "dd_time": longest,
    }


def reference_fold(batches: list[ClosedBatch], n_sets: int) -> list[RefSet]:
    sets = [RefSet() for _ in range(n_sets)]
    for batch in batches:
        # Within a batch: per set in close-time order, ties in batch order (what apply() promises).
        order = sorted(range(len(batch)), key=lambda i: (int(batch.set_index[i]), int(batch.closed_ms[i]), i))
        for i in order:
            sets[int(batch.set_index[i])].add(
                float(batch.result_steps[i]),
                float(batch.pnl_fraction[i]),
                int(batch.closed_ms[i]),
                int(batch.hold_time_ms[i]),
                int(batch.drawdown_time_ms[i]),
            )
    return sets


# Results on a 1/4 grid and pnl on a 1/1024 grid: every sum is exact in binary floating point, so
# the vectorised fold must match the loop bit for bit and any difference is a logic error.
entry = st.tuples(
    st.integers(0, 4),  # set
    st.integers(-20, 20).map(lambda k: k / 4),  # result steps
    st.integers(-200, 200).map(lambda k: k / 1024),  # pnl fraction
    st.integers(0, 999),  # close time within the batch's second
)


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(st.lists(entry, min_size=0, max_size=40), min_size=1, max_size=6),
    window=st.integers(1, 9),
)
def test_vectorised_fold_equals_a_per_entry_loop(
    batches: list[list[tuple[int, float, float, int]]], window: int
) -> None:
    stats = SetStats(5, window=window, milestones=(3, 7))
    built = []
    for number, entries in enumerate(batches):
        batch = closed(
            [e[0] for e in entries],
            [e[1] for e in entries],
            pnl=[e[2] for e in entries],
            closed_ms=[number * 1000 + e[3] for e in entries],
            hold_ms=500,
        )
        built.append(batch)
        reference = reference_fold(built, 5)
        fold = stats.apply(batch)
        # Milestone snapshots: the counters at exactly 3 and 7 closes, when crossed in this batch.
        for row, s in enumerate(fold.sets.tolist()):
            for column, milestone in enumerate((3, 7)):
                crossed = fold.count_before[row] < milestone <= fold.count_after[row]
                assert bool(fold.crossed(milestone)[row]) == crossed
                if crossed:
                    wins, losses, gw, gl = reference[s].snapshots[milestone]
                    assert fold.wins_at[row, column] == wins
                    assert fold.losses_at[row, column] == losses
                    assert fold.gross_win_at[row, column] == gw
                    assert fold.gross_loss_at[row, column] == gl
        assert sorted(fold.sets.tolist()) == sorted({e[0] for e in entries})

    reference = reference_fold(built, 5)
    all_sets = np.arange(5)
    assert stats.count.tolist() == [r.count for r in reference]
    assert stats.wins.tolist() == [r.wins for r in reference]
    assert stats.losses.tolist() == [r.losses for r in reference]
    assert stats.gross_win.tolist() == [r.gross_win for r in reference]
    assert stats.gross_loss.tolist() == [r.gross_loss for r in reference]
    assert stats.sum_result_steps.tolist() == [r.sum_result for r in reference]
    assert stats.sum_hold_time_ms.tolist() == [r.hold_ms for r in reference]
    assert stats.equity.tolist() == [r.equity for r in reference]
    assert stats.peak.tolist() == [r.peak for r in reference]
    assert stats.max_drawdown.tolist() == [r.max_dd for r in reference]
    assert stats.underwater_since_ms.tolist() == [r.since for r in reference]
    assert stats.max_drawdown_time_ms.tolist() == [r.max_dd_time for r in reference]

    for n in range(1, window + 1):
        measures = stats.window_measures(all_sets, n)
        for s, ref in enumerate(reference):
            expected = reference_window(ref.history, n)
            assert measures.results[s] == expected["results"]
            assert measures.wins[s] == expected["wins"]
            assert measures.losses[s] == expected["losses"]
            assert measures.gross_win[s] == expected["gross_win"]
            assert measures.gross_loss[s] == expected["gross_loss"]
            assert measures.sum_result_steps[s] == expected["sum"]
            assert measures.max_drawdown[s] == expected["max_dd"]
            assert measures.drawdown_time_ms[s] == expected["dd_time"]


# Any finite results and pnl, not only exactly summable ones: the fold adds entry by entry in the
# reference's order, so every column must still equal the loop bit for bit. Close times are drawn
# from few values (ties, kept in batch order) and batches arrive unsorted.
any_entry = st.tuples(
    st.integers(0, 9),  # set: with chunk_size 1-4, a batch spans several ring chunks
    st.one_of(st.just(0.0), st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False)),
    st.floats(-0.3, 0.3, allow_nan=False, allow_subnormal=False),
    st.integers(0, 3),  # close time within the batch: many ties
    st.integers(0, 10_000),  # the entry's own drawdown time
)


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(st.lists(any_entry, min_size=0, max_size=50), min_size=1, max_size=8),
    window=st.integers(1, 6),
    chunk_size=st.integers(1, 4),
)
def test_fold_equals_a_per_entry_loop_bit_for_bit_on_any_values(
    batches: list[list[tuple[int, float, float, int, int]]], window: int, chunk_size: int
) -> None:
    milestones = (1, 4, 9)
    stats = SetStats(window=window, milestones=milestones, chunk_size=chunk_size)
    built: list[ClosedBatch] = []
    for number, entries in enumerate(batches):
        n = len(entries)
        times = np.asarray([number * 10 + e[3] for e in entries], dtype=np.int64)
        batch = ClosedBatch(
            set_index=np.asarray([e[0] for e in entries], dtype=np.int64),
            opened_ms=times - 5,
            closed_ms=times,
            entry_price=np.full(n, 100.0),
            exit_price=np.full(n, 100.0),
            result_steps=np.asarray([e[1] for e in entries], dtype=np.float64),
            pnl_fraction=np.asarray([e[2] for e in entries], dtype=np.float64),
            fees_fraction=np.zeros(n),
            reason=np.ones(n, dtype=np.int8),
            drawdown_time_ms=np.asarray([e[4] for e in entries], dtype=np.int64),
            hold_time_ms=5 + np.arange(n, dtype=np.int64),
        )
        before = {s: r.count for s, r in enumerate(reference_fold(built, 10))}
        built.append(batch)
        reference = reference_fold(built, 10)
        fold = stats.apply(batch)

        touched = sorted({e[0] for e in entries})
        assert fold.sets.tolist() == touched
        assert fold.count_before.tolist() == [before[s] for s in touched]
        assert fold.count_after.tolist() == [reference[s].count for s in touched]
        for column, milestone in enumerate(milestones):
            for row, s in enumerate(touched):
                if before[s] < milestone <= reference[s].count:
                    wins, losses, gross_win, gross_loss = reference[s].snapshots[milestone]
                    assert fold.wins_at[row, column] == wins
                    assert fold.losses_at[row, column] == losses
                    assert fold.gross_win_at[row, column] == gross_win
                    assert fold.gross_loss_at[row, column] == gross_loss
                else:
                    assert fold.wins_at[row, column] == -1 and fold.losses_at[row, column] == -1
                    assert math.isnan(fold.gross_win_at[row, column])
                    assert math.isnan(fold.gross_loss_at[row, column])

    reference = reference_fold(built, 10)
    n_sets = stats.n_sets
    assert n_sets == (max((e[0] for entries in batches for e in entries), default=-1) + 1)
    expected = reference[:n_sets]
    assert stats.count.tolist() == [r.count for r in expected]
    assert stats.wins.tolist() == [r.wins for r in expected]
    assert stats.losses.tolist() == [r.losses for r in expected]
    assert stats.gross_win.tolist() == [r.gross_win for r in expected]
    assert stats.gross_loss.tolist() == [r.gross_loss for r in expected]
    assert stats.sum_result_steps.tolist() == [r.sum_result for r in expected]
    assert stats.sum_hold_time_ms.tolist() == [r.hold_ms for r in expected]
    assert stats.sum_entry_drawdown_time_ms.tolist() == [r.entry_dd_ms for r in expected]
    assert stats.equity.tolist() == [r.equity for r in expected]
    assert stats.peak.tolist() == [r.peak for r in expected]
    assert stats.max_drawdown.tolist() == [r.max_dd for r in expected]
    assert stats.underwater_since_ms.tolist() == [r.since for r in expected]
    assert stats.max_drawdown_time_ms.tolist() == [r.max_dd_time for r in expected]
    assert stats.last_closed_ms.tolist() == [r.last_closed for r in expected]
    # The rings hold each set's newest results, oldest first, across chunks and wrap-arounds.
    result, pnl, closed_ms, valid = stats.recent(np.arange(n_sets, dtype=np.int64), window)
    for s, ref in enumerate(expected):
        newest = ref.history[-window:]
        assert valid[s].tolist() == [False] * (window - len(newest)) + [True] * len(newest)
        assert result[s][valid[s]].tolist() == [h[0] for h in newest]
        assert pnl[s][valid[s]].tolist() == [h[1] for h in newest]
        assert closed_ms[s][valid[s]].tolist() == [h[2] for h in newest]


def test_the_three_measures_of_d5() -> None:
    stats = SetStats(1)
    stats.apply(one_set([3.0, -1.0, 1.0, -2.0, 0.0]))
    m = stats.total_measures(np.array([0]))
    assert m.results[0] == 5 and m.wins[0] == 2 and m.losses[0] == 2
    assert m.win_rate[0] == pytest.approx(0.4)  # a 0.0 result counts as a close, not a win
    assert m.avg_result_steps[0] == pytest.approx(1.0 / 5)
    assert m.pf_gross[0] == pytest.approx(4.0 / 3.0)
    assert m.payoff_ratio[0] == pytest.approx((4.0 / 2) / (3.0 / 2))


def test_measures_without_losses_wins_or_results() -> None:
    stats = SetStats(3)
    stats.apply(closed([0, 0, 1, 1], [1.0, 2.0, -1.0, -3.0]))
    m = stats.total_measures(np.array([0, 1, 2]))
    assert math.isinf(m.pf_gross[0]) and math.isinf(m.payoff_ratio[0])
    assert m.pf_gross[1] == 0.0 and m.payoff_ratio[1] == 0.0
    assert math.isnan(m.win_rate[2]) and math.isnan(m.avg_result_steps[2])
    assert math.isnan(m.pf_gross[2]) and math.isnan(m.payoff_ratio[2])


def test_gross_sums_are_exact_sums_not_running_averages() -> None:
    """D10: the original's running average drifted; sums of many results stay the sums."""
    stats = SetStats(1)
    results = [0.5, -0.25, 1.75] * 1000
    for chunk in range(0, len(results), 250):
        stats.apply(one_set(results[chunk : chunk + 250], start_ms=chunk * 1000))
    assert stats.gross_win[0] == 2250.0
    assert stats.gross_loss[0] == 250.0
    assert stats.count[0] == 3000


def test_window_uses_only_the_newest_results() -> None:
    stats = SetStats(1, window=10)
    stats.apply(one_set([-5.0] * 20 + [1.0] * 10))
    newest = stats.window_measures(np.array([0]), 10)
    assert newest.results[0] == 10 and newest.wins[0] == 10
    assert newest.avg_result_steps[0] == 1.0
    assert stats.total_measures(np.array([0])).avg_result_steps[0] == pytest.approx((-100 + 10) / 30)
    with pytest.raises(ValueError, match="outside"):
        stats.window_measures(np.array([0]), 11)


def test_young_set_windows_hold_what_exists() -> None:
    stats = SetStats(1, window=50)
    stats.apply(one_set([1.0, -1.0, 2.0]))
    m = stats.window_measures(np.array([0]), 25)
    assert m.results[0] == 3 and m.avg_result_steps[0] == pytest.approx(2 / 3)


def test_drawdown_time_is_time_below_the_previous_peak_not_hold_time() -> None:
    """D12: equity under water from the first losing close until the close that regains the peak."""
    stats = SetStats(1)
    pnl = [0.1, -0.05, -0.01, 0.02, 0.05, -0.01]
    times = [0, HOUR_MS, 2 * HOUR_MS, 5 * HOUR_MS, 7 * HOUR_MS, 8 * HOUR_MS]
    stats.apply(closed([0] * 6, [1, -1, -1, 1, 1, -1], pnl=pnl, closed_ms=times, hold_ms=10 * HOUR_MS))
    # Under water from 1 h (first loss) until 7 h (equity 1.11 ≥ peak 1.1): 6 h. Hold time is another thing.
    assert stats.max_drawdown_time_ms[0] == 6 * HOUR_MS
    assert stats.sum_hold_time_ms[0] == 60 * HOUR_MS
    assert stats.underwater_since_ms[0] == 8 * HOUR_MS  # the last close went under again
    assert stats.current_drawdown_time_ms(np.array([0]), 11 * HOUR_MS)[0] == 3 * HOUR_MS
    assert stats.max_drawdown[0] == pytest.approx(0.06 / 1.1)


def test_an_underwater_stretch_continues_across_batches() -> None:
    stats = SetStats(1)
    stats.apply(closed([0, 0], [1, -1], pnl=[0.1, -0.1], closed_ms=[0, HOUR_MS]))
    stats.apply(closed([0], [-1], pnl=[-0.1], closed_ms=[3 * HOUR_MS]))
    assert stats.underwater_since_ms[0] == HOUR_MS
    stats.apply(closed([0], [1], pnl=[0.5], closed_ms=[10 * HOUR_MS]))
    assert stats.max_drawdown_time_ms[0] == 9 * HOUR_MS
    assert stats.underwater_since_ms[0] == NOT_UNDERWATER


def test_batches_are_ordered_by_close_time_per_set() -> None:
    stats = SetStats(2, window=3)
    stats.apply(closed([1, 0, 1, 0], [4.0, 2.0, 3.0, 1.0], closed_ms=[40, 20, 30, 10]))
    result, _, closed_ms, valid = stats.recent(np.array([0, 1]), 3)
    assert valid.tolist() == [[False, True, True], [False, True, True]]
    assert result[:, 1:].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert closed_ms[:, 1:].tolist() == [[10, 20], [30, 40]]


def test_more_results_than_the_ring_in_one_batch_keep_the_newest() -> None:
    stats = SetStats(1, window=4)
    stats.apply(one_set([float(i) for i in range(1, 11)]))
    result, _, _, valid = stats.recent(np.array([0]), 4)
    assert valid.all() and result.tolist() == [[7.0, 8.0, 9.0, 10.0]]


def test_milestones_are_captured_at_the_crossing_inside_a_batch() -> None:
    stats = SetStats(1)
    stats.apply(one_set([1.0] * 8))
    fold = stats.apply(one_set([-1.0, -1.0, 1.0, 1.0], start_ms=10_000))  # 8 → 12 closes
    assert fold.crossed(10).tolist() == [True] and not fold.crossed(50)[0]
    at10 = fold.at(10)
    assert at10.wins[0] == 8 and at10.losses[0] == 2 and at10.win_rate[0] == 0.8
    assert stats.wins[0] == 10  # the state after the batch moved on


def test_growth_keeps_existing_rows() -> None:
    stats = SetStats(2, window=3)
    stats.apply(closed([0, 1], [1.0, -1.0]))
    stats.apply(closed([500], [2.0]))
    assert stats.n_sets == 501
    assert stats.count[[0, 1, 2, 500]].tolist() == [1, 1, 0, 1]
    assert stats.equity[2] == 1.0 and stats.peak[2] == 1.0


def test_empty_batch_and_bad_input() -> None:
    stats = SetStats(1)
    assert len(stats.apply(ClosedBatch.empty())) == 0
    with pytest.raises(ValueError, match="negative"):
        stats.apply(closed([-1], [1.0]))
    with pytest.raises(ValueError):
        SetStats(1, window=0)
    with pytest.raises(ValueError):
        SetStats(1, milestones=(50, 10))


def test_aggregate_columns_match_the_pseudo_sets_table() -> None:
    stats = SetStats(1)
    stats.apply(closed([0, 0], [2.0, -1.0], pnl=[0.1, -0.2], closed_ms=[0, 3000]))
    columns = stats.aggregate_columns(np.array([0]))
    assert {k: v.tolist() for k, v in columns.items()} == {
        "entries": [2],
        "wins": [1],
        "losses": [1],
        "gross_profit": [2.0],
        "gross_loss": [1.0],
        "sum_result_steps": [1.0],
        "max_drawdown": [pytest.approx(0.2 / 1.1)],
        "drawdown_time_s": [0.0],
    }


def test_threshold_comparisons_absorb_summation_noise_only() -> None:
    noisy = np.array([0.1 + 0.2, 0.3, 0.2999999])  # 0.30000000000000004, 0.3, clearly below
    assert at_least(noisy, 0.3).tolist() == [True, True, False]
    assert below(noisy, 0.3).tolist() == [False, False, True]
    assert above(np.array([0.30000000000000004, 0.3001]), 0.3).tolist() == [False, True]
    assert not at_least(np.array([np.nan]), 0.0)[0] and not below(np.array([np.nan]), 0.0)[0]
