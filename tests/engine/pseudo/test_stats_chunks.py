"""The chunked rings of SetStats behave exactly like one big ring, across chunk boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.stats import I8, SetStats

N_SETS = 23  # six chunks of 4, the last one partly used
SINGLE = 1024  # one chunk holds every set


def closed(set_index: Sequence[int], results: Sequence[float], closed_ms: Sequence[int]) -> ClosedBatch:
    n = len(set_index)
    times = np.asarray(closed_ms, dtype=np.int64)
    result = np.asarray(results, dtype=np.float64)
    return ClosedBatch(
        set_index=np.asarray(set_index, dtype=np.int64),
        opened_ms=times - 500,
        closed_ms=times,
        entry_price=np.full(n, 100.0),
        exit_price=100.0 + result,
        result_steps=result,
        pnl_fraction=result / 8,
        fees_fraction=np.zeros(n),
        reason=np.ones(n, dtype=np.int8),
        drawdown_time_ms=np.full(n, 100, dtype=np.int64),
        hold_time_ms=np.full(n, 500, dtype=np.int64),
    )


def assert_same(chunked: SetStats, single: SetStats, queries: list[I8]) -> None:
    assert chunked.n_sets == single.n_sets
    for name in (
        "count",
        "wins",
        "losses",
        "gross_win",
        "gross_loss",
        "sum_result_steps",
        "sum_hold_time_ms",
        "sum_entry_drawdown_time_ms",
        "equity",
        "peak",
        "max_drawdown",
        "underwater_since_ms",
        "max_drawdown_time_ms",
        "last_closed_ms",
    ):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(single, name), err_msg=name)
    for sets in queries:
        for n in range(1, chunked.window + 1):
            for got, want in zip(chunked.recent(sets, n), single.recent(sets, n), strict=True):
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)
            a = chunked.window_measures(sets, n)
            b = single.window_measures(sets, n)
            for field in a.__slots__:
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


entry = st.tuples(
    st.integers(0, N_SETS - 1),
    st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0]),
    st.integers(0, 999),
)


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(entry, min_size=0, max_size=60), min_size=1, max_size=6),
    window=st.integers(1, 7),
    chunk_size=st.integers(1, 5),
    query=st.lists(st.integers(0, N_SETS - 1), min_size=0, max_size=30),
)
def test_chunked_rings_equal_a_single_chunk(
    batches: list[list[tuple[int, float, int]]], window: int, chunk_size: int, query: list[int]
) -> None:
    chunked = SetStats(window=window, milestones=(2, 5), chunk_size=chunk_size)
    single = SetStats(window=window, milestones=(2, 5), chunk_size=SINGLE)
    for number, entries in enumerate(batches):
        batch = closed(
            [e[0] for e in entries], [e[1] for e in entries], [number * 1000 + e[2] for e in entries]
        )
        a = chunked.apply(batch)
        b = single.apply(batch)
        for field in a.__slots__:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    n = chunked.n_sets
    queries = [
        np.arange(n, dtype=np.int64),  # sorted, every chunk
        np.arange(n, dtype=np.int64)[::-1].copy(),  # descending: the grouped (unsorted) path
        np.asarray([q for q in query if q < n], dtype=np.int64),  # arbitrary order with repeats
        np.empty(0, dtype=np.int64),
    ]
    assert_same(chunked, single, queries)


def test_growth_adds_chunks_without_copying_the_old_ones() -> None:
    chunked = SetStats(2, window=3, chunk_size=4)
    single = SetStats(2, window=3, chunk_size=SINGLE)
    first = closed([0, 1, 0, 1, 0], [1.0, -1.0, 2.0, 0.5, -0.5], [0, 1, 2, 3, 4])
    chunked.apply(first)
    single.apply(first)
    kept = chunked._ring_result[0]
    snapshot = kept.copy()

    # One batch spanning four chunks (set 3 | 4..7 | 9 | 13), sets unsorted and a set with more
    # results than the ring holds; the set indices force the book to grow across chunk boundaries.
    sets = [13, 3, 4, 7, 9, 4, 13, 7, 4, 4, 3, 9, 13]
    results = [1.0, -2.0, 0.5, 3.0, -1.0, 1.5, -0.5, -1.0, 2.0, -2.0, 0.0, 1.0, 1.0]
    second = closed(sets, results, list(range(10, 10 + len(sets))))
    fold_a = chunked.apply(second)
    fold_b = single.apply(second)
    np.testing.assert_array_equal(fold_a.count_after, fold_b.count_after)

    assert chunked.n_sets == 14
    assert len(chunked._ring_result) == 4  # ceil(14 / 4), none beyond what is needed
    assert chunked._ring_result[0] is kept  # never reallocated ...
    np.testing.assert_array_equal(kept[:2], snapshot[:2])  # ... and sets 0, 1 untouched by this batch

    queries = [np.arange(14), np.asarray([13, 0, 4, 4, 9, 3, 12, 1, 7])]
    assert_same(chunked, single, queries)

    # Set 4 got 4 results, the ring keeps the newest 3, oldest first.
    result, _, closed_ms, valid = chunked.recent(np.asarray([4]), 3)
    assert result.tolist() == [[1.5, 2.0, -2.0]]
    assert closed_ms.tolist() == [[15, 18, 19]]
    assert valid.all()


def test_rows_inside_the_capacity_but_past_n_sets_read_empty() -> None:
    stats = SetStats(0, window=3, chunk_size=4)  # columns have room for 16 sets, no ring chunk yet
    result, pnl, closed_ms, valid = stats.recent(np.asarray([0, 9, 15]), 3)
    assert not valid.any()
    assert not result.any() and not pnl.any() and not closed_ms.any()
    assert stats.window_measures(np.asarray([5]), 2).results.tolist() == [0]


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        SetStats(1, chunk_size=0)
