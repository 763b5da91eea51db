"""PseudoBook: every exit rule by hand, the D9 open limit, pause (D14), and equality with the
per-entry reference loop on random ticks, candles and triggers.

Hand-computed cases use entry 100 and PC 1 %, so one step is exactly 1.0 price unit: TP factor 2
with SL ratio 0.5 puts the target at 102 and the stop at 99 for a long (98 and 101 for a short).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cts_desktop.engine.pseudo.book import PseudoBook, warm_up
from cts_desktop.engine.pseudo.book_reference import ReferenceBook
from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.geometry import LONG, SHORT, ExitReason, exit_levels
from cts_desktop.engine.pseudo.grid import MAIN_GRID, ConfigGrid

SYM = "BTC/USDT"
HOUR = 3_600_000
NAN = math.nan


def grid(tp: float, sl: float, start: float = NAN, stop: float = NAN) -> ConfigGrid:
    trailing = 0 if math.isnan(start) else 1
    return ConfigGrid(
        tp_factor=np.array([tp]),
        sl_ratio=np.array([sl]),
        trailing=np.array([trailing], dtype=np.int8),
        trail_start=np.array([start]),
        trail_stop=np.array([stop]),
    )


def opened(
    book: PseudoBook | ReferenceBook,
    g: ConfigGrid,
    *,
    direction: int = LONG,
    set_index: int = 0,
    ts: int = 0,
    entry: float = 100.0,
    fee: float = 0.0,
    max_age_hours: float = 0.0,
) -> None:
    accepted = book.open_entries(
        SYM,
        [set_index],
        direction,
        entry,
        ts,
        g,
        position_cost_pct=1.0,
        fee_fraction=fee,
        max_age_hours=max_age_hours,
    )
    assert accepted.tolist() == [True]


def only(batch: ClosedBatch) -> dict[str, Any]:
    """The single closed entry of a batch as plain numbers."""
    assert len(batch) == 1
    return {name: getattr(batch, name)[0].item() for name in ClosedBatch.__dataclass_fields__}


@pytest.fixture(params=["book", "reference"])
def book(request: pytest.FixtureRequest) -> PseudoBook | ReferenceBook:
    """Every hand-computed case runs against both implementations."""
    return PseudoBook() if request.param == "book" else ReferenceBook()


# ---------------------------------------------------------------------------------------- ticks


def test_long_take_profit_fills_at_the_tick_price(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5), ts=1_000)
    assert len(book.on_tick(SYM, 101.9, 2_000)) == 0
    c = only(book.on_tick(SYM, 102.5, 3_000))  # a tick beyond the target: a gap, filled there
    assert c["reason"] == ExitReason.TAKE_PROFIT
    assert c["exit_price"] == pytest.approx(102.5)
    assert c["result_steps"] == pytest.approx(2.5)
    assert (c["opened_ms"], c["closed_ms"], c["hold_time_ms"]) == (1_000, 3_000, 2_000)
    assert book.open_count(SYM) == 0


def test_long_take_profit_exactly_at_the_level(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5))
    c = only(book.on_tick(SYM, 102.0, 1))
    assert (c["reason"], c["exit_price"], c["result_steps"]) == (ExitReason.TAKE_PROFIT, 102.0, 2.0)


def test_long_stop_loss(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5))
    assert len(book.on_tick(SYM, 99.1, 1)) == 0
    c = only(book.on_tick(SYM, 98.7, 2))
    assert c["reason"] == ExitReason.STOP_LOSS
    assert c["exit_price"] == pytest.approx(98.7)
    assert c["result_steps"] == pytest.approx(-1.3)


def test_short_take_profit_and_stop_are_mirrored_and_signed(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5), direction=SHORT, set_index=1)  # TP 98, SL 101
    opened(book, grid(4, 0.5), direction=SHORT, set_index=2)  # TP 96, SL 102
    c = only(book.on_tick(SYM, 97.9, 1))
    assert (c["set_index"], c["reason"]) == (1, ExitReason.TAKE_PROFIT)
    assert c["result_steps"] == pytest.approx(2.1)  # a profit on a short is positive (D22)
    c = only(book.on_tick(SYM, 102.0, 2))
    assert (c["set_index"], c["reason"]) == (2, ExitReason.STOP_LOSS)
    assert c["result_steps"] == pytest.approx(-2.0)


def test_stop_comes_before_timeout(book: PseudoBook | ReferenceBook) -> None:
    # Max age 0.1 h: the tick an hour later is past both the age and the stop (99.6): a stop.
    opened(book, grid(2, 0.2), max_age_hours=0.1)  # SL 99.6
    c = only(book.on_tick(SYM, 99.5, HOUR))
    assert c["reason"] == ExitReason.STOP_LOSS


# -------------------------------------------------------------------------------------- candles


def test_candle_touching_stop_and_target_is_a_stop_at_the_stop_price(
    book: PseudoBook | ReferenceBook,
) -> None:
    opened(book, grid(2, 0.5), set_index=0)
    opened(book, grid(2, 0.5), direction=SHORT, set_index=1)
    batch = book.on_candle(SYM, 100.0, 103.0, 98.0, 100.5, 60_000)
    assert len(batch) == 2
    assert batch.reason.tolist() == [ExitReason.STOP_LOSS] * 2
    by_set = dict(zip(batch.set_index.tolist(), batch.exit_price.tolist(), strict=True))
    assert by_set == pytest.approx({0: 99.0, 1: 101.0})
    assert batch.result_steps.tolist() == pytest.approx([-1.0, -1.0])


def test_candle_inside_range_fills_at_the_level(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5))
    assert len(book.on_candle(SYM, 100.0, 101.5, 99.2, 101.0, 60_000)) == 0
    c = only(book.on_candle(SYM, 101.0, 102.3, 100.6, 102.1, 120_000))
    assert (c["reason"], c["exit_price"]) == (ExitReason.TAKE_PROFIT, pytest.approx(102.0))


def test_gap_through_the_stop_fills_at_the_open(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5), set_index=0)
    opened(book, grid(2, 0.5), direction=SHORT, set_index=1)
    batch = book.on_candle(SYM, 98.0, 98.5, 97.5, 98.2, 60_000)
    # The long gapped through its stop (99): filled at the open 98, not at 99. The short's target
    # (98) is reached by the same open, so it takes profit at the open.
    got = {s: (r, x) for s, r, x in zip(batch.set_index, batch.reason, batch.exit_price, strict=True)}
    assert got[0] == (ExitReason.STOP_LOSS, pytest.approx(98.0))
    assert got[1] == (ExitReason.TAKE_PROFIT, pytest.approx(98.0))


def test_gap_through_the_target_fills_at_the_open(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5))
    c = only(book.on_candle(SYM, 103.0, 103.5, 101.0, 102.5, 60_000))
    assert (c["reason"], c["exit_price"], c["result_steps"]) == (
        ExitReason.TAKE_PROFIT,
        pytest.approx(103.0),
        pytest.approx(3.0),
    )


def test_stop_first_even_when_the_open_gapped_through_the_target(book: PseudoBook | ReferenceBook) -> None:
    # The sweep's conservative reading (sweep.py): the range reached the stop, so it is a stop at
    # the stop price, although the open was already beyond the target.
    opened(book, grid(2, 0.5))
    c = only(book.on_candle(SYM, 103.0, 103.5, 98.0, 99.5, 60_000))
    assert (c["reason"], c["exit_price"]) == (ExitReason.STOP_LOSS, pytest.approx(99.0))


def test_bad_candles_and_prices_are_refused() -> None:
    book = PseudoBook()
    with pytest.raises(ValueError, match="inconsistent"):
        book.on_candle(SYM, 100.0, 99.0, 98.0, 98.5, 1)
    with pytest.raises(ValueError, match="finite"):
        book.on_tick(SYM, math.nan, 1)
    with pytest.raises(ValueError, match="finite"):
        book.on_candle(SYM, 100.0, math.inf, 98.0, 99.0, 1)


# ------------------------------------------------------------------------------------- trailing


def test_trailing_activates_at_start_and_exits_on_retrace_not_at_target(
    book: PseudoBook | ReferenceBook,
) -> None:
    # TP distance 10 (target 110), stop 95; trailing (0.3, 0.1): active from 103, retrace 1.0.
    opened(book, grid(10, 0.5, 0.3, 0.1))
    assert len(book.on_tick(SYM, 102.9, 1)) == 0  # not active yet
    assert len(book.on_tick(SYM, 101.0, 2)) == 0  # a 1.9 retrace before activation is nothing
    assert len(book.on_tick(SYM, 103.0, 3)) == 0  # activates (best 103)
    assert len(book.on_tick(SYM, 111.0, 4)) == 0  # beyond the target: not a hard exit (D4)
    assert len(book.on_tick(SYM, 110.1, 5)) == 0  # retrace 0.9 from 111
    c = only(book.on_tick(SYM, 109.9, 6))  # retrace 1.1 ≥ 1.0: exit at the tick price
    assert (c["reason"], c["exit_price"]) == (ExitReason.TRAILING_STOP, pytest.approx(109.9))
    assert c["result_steps"] == pytest.approx(9.9)


def test_trailing_short(book: PseudoBook | ReferenceBook) -> None:
    # Short: target 90, stop 105; active once the low reaches 97, retrace 1.0 upwards.
    opened(book, grid(10, 0.5, 0.3, 0.1), direction=SHORT)
    assert len(book.on_tick(SYM, 96.5, 1)) == 0
    assert len(book.on_tick(SYM, 97.4, 2)) == 0
    c = only(book.on_tick(SYM, 97.5, 3))
    assert (c["reason"], c["exit_price"]) == (ExitReason.TRAILING_STOP, pytest.approx(97.5))
    assert c["result_steps"] == pytest.approx(2.5)


def test_trailing_stop_still_applies_before_activation(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(10, 0.5, 0.6, 0.2))  # stop 95, activation at 106
    assert len(book.on_tick(SYM, 105.9, 1)) == 0
    c = only(book.on_tick(SYM, 95.0, 2))
    assert c["reason"] == ExitReason.STOP_LOSS


def test_trailing_on_candles_activates_then_exits_at_the_trailing_level(
    book: PseudoBook | ReferenceBook,
) -> None:
    opened(book, grid(10, 0.5, 0.3, 0.1))
    # High 104 activates (best 104); the low 102.5 in the same candle is not a trailing exit,
    # because trailing activated inside this candle (path unknown).
    assert len(book.on_candle(SYM, 102.6, 104.0, 102.5, 103.5, 60_000)) == 0
    # Next candle: level = 104 − 1 = 103; the low 102.8 passes it: fill at the level.
    c = only(book.on_candle(SYM, 103.5, 103.9, 102.8, 103.2, 120_000))
    assert (c["reason"], c["exit_price"]) == (ExitReason.TRAILING_STOP, pytest.approx(103.0))


def test_trailing_gap_fills_at_the_open(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(10, 0.5, 0.3, 0.1))
    assert len(book.on_tick(SYM, 105.0, 1)) == 0  # active, level 104
    c = only(book.on_candle(SYM, 103.0, 103.2, 102.0, 102.5, 60_000))
    assert (c["reason"], c["exit_price"]) == (ExitReason.TRAILING_STOP, pytest.approx(103.0))


def test_candle_touching_trailing_level_and_stop_is_a_stop(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(10, 0.5, 0.3, 0.1))  # stop 95
    assert len(book.on_tick(SYM, 105.0, 1)) == 0  # active, level 104
    c = only(book.on_candle(SYM, 104.5, 104.8, 94.0, 96.0, 60_000))
    assert (c["reason"], c["exit_price"]) == (ExitReason.STOP_LOSS, pytest.approx(95.0))


def test_target_caps_trailing_flag_restores_the_other_reading() -> None:
    for book in (PseudoBook(target_caps_trailing=True), ReferenceBook(target_caps_trailing=True)):
        opened(book, grid(10, 0.5, 0.3, 0.1))
        assert len(book.on_tick(SYM, 104.0, 1)) == 0
        c = only(book.on_tick(SYM, 110.0, 2))
        assert (c["reason"], c["exit_price"]) == (ExitReason.TAKE_PROFIT, pytest.approx(110.0))


# -------------------------------------------------------------------------------------- timeout


def test_timeout_at_max_age_fills_at_the_tick_price(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5), ts=10_000, max_age_hours=2.0)
    opened(book, grid(2, 0.5), ts=10_000, set_index=1)  # max age 0 = no timeout (D25)
    assert len(book.on_tick(SYM, 100.3, 10_000 + 2 * HOUR - 1)) == 0
    c = only(book.on_tick(SYM, 100.4, 10_000 + 2 * HOUR))
    assert (c["set_index"], c["reason"]) == (0, ExitReason.TIMEOUT)
    assert (c["exit_price"], c["hold_time_ms"]) == (pytest.approx(100.4), 2 * HOUR)
    assert c["result_steps"] == pytest.approx(0.4)
    assert book.open_count(SYM) == 1


def test_timeout_on_a_candle_fills_at_the_close(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5), max_age_hours=1.0)
    c = only(book.on_candle(SYM, 100.2, 101.0, 99.5, 100.7, HOUR))
    assert (c["reason"], c["exit_price"]) == (ExitReason.TIMEOUT, pytest.approx(100.7))


# ----------------------------------------------------------------------------------------- fees


def test_fees_on_entry_and_exit_long_and_short(book: PseudoBook | ReferenceBook) -> None:
    f = 0.001
    opened(book, grid(2, 0.5), fee=f, set_index=0)
    opened(book, grid(2, 0.5), fee=f, set_index=1, direction=SHORT)
    batch = book.on_tick(SYM, 102.0, 1)  # the long takes profit, the short (stop 101) is stopped
    pnl = dict(zip(batch.set_index.tolist(), batch.pnl_fraction.tolist(), strict=True))
    fees = dict(zip(batch.set_index.tolist(), batch.fees_fraction.tolist(), strict=True))
    # Long: exit value after fee / entry cost with fee − 1 = 102·0.999 / (100·1.001) − 1.
    assert pnl[0] == pytest.approx(102 * (1 - f) / (100 * (1 + f)) - 1, rel=1e-12)
    assert pnl[0] == pytest.approx((2.0 - 0.202) / 100.1, rel=1e-12)
    # Short: sold at 100, bought back at 102, fees 0.1 + 0.102, over the entry cost 100.1.
    assert pnl[1] == pytest.approx((-2.0 - 0.202) / 100.1, rel=1e-12)
    assert fees == pytest.approx({0: 0.202 / 100.1, 1: 0.202 / 100.1}, rel=1e-12)


def test_fees_short(book: PseudoBook | ReferenceBook) -> None:
    f = 0.001
    opened(book, grid(2, 0.5), fee=f, direction=SHORT)
    c = only(book.on_tick(SYM, 98.0, 1))
    # Sold 100 (fee 0.1), bought back 98 (fee 0.098): (2 − 0.198) over the entry cost 100.1.
    assert c["pnl_fraction"] == pytest.approx(1.802 / 100.1, rel=1e-12)
    assert c["fees_fraction"] == pytest.approx(0.198 / 100.1, rel=1e-12)
    assert c["result_steps"] == pytest.approx(2.0)  # steps are before fees


# -------------------------------------------------------------------------------- drawdown time


def test_drawdown_time_is_time_below_the_previous_peak(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(5, 0.2))  # target 105, stop 99
    for ts, price in ((1_000, 101.0), (2_000, 100.5), (5_000, 100.8), (6_000, 101.2), (8_000, 101.0)):
        assert len(book.on_tick(SYM, price, ts)) == 0
    c = only(book.on_tick(SYM, 98.9, 9_000))
    # Under the peak during [2000, 5000), [5000, 6000) and [8000, 9000); at the peak otherwise.
    assert c["drawdown_time_ms"] == 5_000
    assert c["hold_time_ms"] == 9_000
    assert c["reason"] == ExitReason.STOP_LOSS


def test_drawdown_time_short_and_back_at_the_peak_is_not_below(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(5, 0.4), direction=SHORT)  # target 95, stop 102
    book.on_tick(SYM, 99.0, 1_000)  # peak (lowest) 99
    book.on_tick(SYM, 99.5, 3_000)  # under
    book.on_tick(SYM, 99.0, 4_000)  # back at the peak: [3000, 4000) counted
    c = only(book.on_tick(SYM, 94.0, 10_000))  # at the peak all the way from 4000
    assert c["drawdown_time_ms"] == 1_000


def test_drawdown_time_on_candles(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(5, 0.4))  # target 105, stop 98
    book.on_candle(SYM, 100.0, 101.0, 99.8, 100.5, 60_000)  # best 101, close below: under
    book.on_candle(SYM, 100.5, 100.9, 100.1, 100.9, 120_000)  # still under: +60 s
    c = only(book.on_candle(SYM, 100.9, 101.0, 97.0, 97.5, 180_000))  # +60 s, then stopped
    assert c["drawdown_time_ms"] == 120_000


# ---------------------------------------------------------------------------------- open limit


def test_open_limit_per_config_and_direction_at_its_boundary() -> None:
    for limit in (1, 2, 5):
        for book in (PseudoBook(max_open_per_config=limit), ReferenceBook(max_open_per_config=limit)):
            g = grid(2, 0.5)
            results = [
                bool(book.open_entries(SYM, [7], LONG, 100.0, t, g, fee_fraction=0.0)[0])
                for t in range(limit + 1)
            ]
            assert results == [True] * limit + [False]
            # The other direction of the same set has its own count.
            assert book.open_entries(SYM, [7], SHORT, 100.0, 9, g, fee_fraction=0.0).tolist() == [True]
            assert book.open_count_by_set([7, 8], LONG).tolist() == [limit, 0]
            assert book.open_count_by_set([7], SHORT).tolist() == [1]
            assert book.open_count_by_set([7]).tolist() == [limit + 1]
            # A close frees one place.
            book.on_tick(SYM, 102.0, 10)  # PC 0.1: longs take profit (100.2), the short is stopped (100.1)
            assert book.open_count(SYM) == 0
            assert book.open_count_by_set([7]).tolist() == [0]
            assert book.open_entries(SYM, [7], LONG, 100.0, 11, g, fee_fraction=0.0).tolist() == [True]


def test_open_limit_counts_rows_of_the_same_call() -> None:
    g = ConfigGrid(
        tp_factor=np.array([2.0, 4.0]),
        sl_ratio=np.array([0.5, 0.5]),
        trailing=np.zeros(2, dtype=np.int8),
        trail_start=np.array([NAN, NAN]),
        trail_stop=np.array([NAN, NAN]),
    )
    for book in (PseudoBook(max_open_per_config=2), ReferenceBook(max_open_per_config=2)):
        accepted = book.open_entries(
            SYM, [3, 3, 4, 3], LONG, 100.0, 0, g, rows=[0, 1, 0, 1], fee_fraction=0.0
        )
        assert accepted.tolist() == [True, True, True, False]
        assert book.open_count_by_set([3, 4], LONG).tolist() == [2, 1]


def test_limit_setting_range() -> None:
    book = PseudoBook()
    assert book.max_open_per_config == 2  # D9 default
    for bad in (0, 6):
        with pytest.raises(ValueError):
            PseudoBook(max_open_per_config=bad)
        with pytest.raises(ValueError):
            book.max_open_per_config = bad
    book.max_open_per_config = 5
    assert book.max_open_per_config == 5


def test_open_entries_validates_its_arguments() -> None:
    book = PseudoBook()
    g = grid(2, 0.5)
    with pytest.raises(ValueError, match="direction"):
        book.open_entries(SYM, [0], 0, 100.0, 0, g, fee_fraction=0.0)
    with pytest.raises(ValueError, match="entry price"):
        book.open_entries(SYM, [0], LONG, -1.0, 0, g, fee_fraction=0.0)
    with pytest.raises(ValueError, match="one set per grid row"):
        book.open_entries(SYM, [0, 1], LONG, 100.0, 0, g, fee_fraction=0.0)
    with pytest.raises(ValueError, match="fee"):
        book.open_entries(SYM, [0], LONG, 100.0, 0, g, fee_fraction=1.5)
    with pytest.raises(ValueError, match="non-negative"):
        book.open_entries(SYM, [-1], LONG, 100.0, 0, g, fee_fraction=0.0)
    assert book.open_count(SYM) == 0


def test_whole_grid_opens_in_one_call_with_shared_geometry() -> None:
    book = PseudoBook(initial_capacity=16)  # forces several doublings
    sets = np.arange(924, dtype=np.int64) + 5_000  # beyond the initial set-count capacity
    accepted = book.open_entries(SYM, sets, SHORT, 250.0, 0, MAIN_GRID, fee_fraction=0.00055)
    assert accepted.all() and book.open_count(SYM) == 924
    snap = book.snapshot(SYM)
    order = np.argsort(snap.set_index)
    tp, sl = exit_levels(250.0, SHORT, MAIN_GRID.tp_factor, MAIN_GRID.sl_ratio, 0.1)
    np.testing.assert_array_equal(snap.tp_price[order], tp)
    np.testing.assert_array_equal(snap.sl_price[order], sl)
    assert book.open_count_by_set(sets, SHORT).sum() == 924
    assert book.open_count_by_set([10**9]).tolist() == [0]
    # A second trigger of the same sets: the default limit 2 admits it, a third is refused.
    assert book.open_entries(SYM, sets, SHORT, 251.0, 1, MAIN_GRID, fee_fraction=0.0).all()
    assert not book.open_entries(SYM, sets, SHORT, 252.0, 2, MAIN_GRID, fee_fraction=0.0).any()
    assert book.total_open() == 1_848


# ---------------------------------------------------------------------------------------- pause


def test_pause_refuses_new_entries_and_keeps_monitoring(book: PseudoBook | ReferenceBook) -> None:
    opened(book, grid(2, 0.5))
    book.accepting_new = False
    refused = book.open_entries(SYM, [1], LONG, 100.0, 1, grid(2, 0.5), fee_fraction=0.0)
    assert refused.tolist() == [False]
    assert book.open_count(SYM) == 1
    c = only(book.on_tick(SYM, 102.0, 2))  # monitoring continues while paused (D14)
    assert c["reason"] == ExitReason.TAKE_PROFIT
    book.accepting_new = True
    opened(book, grid(2, 0.5), set_index=1, ts=3)
    assert book.open_count(SYM) == 1


def test_unknown_symbol_and_empty_batches() -> None:
    book = PseudoBook()
    assert len(book.on_tick("NOPE", 1.0, 0)) == 0
    assert book.open_count("NOPE") == 0 and len(book.snapshot("NOPE")) == 0
    warm_up()  # compiles or loads the kernel; harmless to call again


# ------------------------------------------------------------------- property: book == reference


@dataclass(frozen=True)
class Open:
    """A trigger: grid rows with their set indices, or (``whole_grid_base`` set) all 924 rows with
    sets ``base + row`` (kept out of the fields so a failing example prints short)."""

    symbol: int
    direction: int
    entry_shift: float
    rows: tuple[int, ...]
    sets: tuple[int, ...]
    fee: float
    pc: float
    max_age_hours: float
    whole_grid_base: int | None = None

    def row_list(self) -> list[int]:
        return list(range(len(MAIN_GRID))) if self.whole_grid_base is not None else list(self.rows)

    def set_list(self) -> list[int]:
        if self.whole_grid_base is not None:
            return [self.whole_grid_base + r for r in range(len(MAIN_GRID))]
        return list(self.sets)


@dataclass(frozen=True)
class Tick:
    symbol: int
    move: float
    dt: int


@dataclass(frozen=True)
class Candle:
    symbol: int
    open_move: float
    close_move: float
    up: float
    down: float
    dt: int


@dataclass(frozen=True)
class LevelTick:
    """A tick exactly at one open entry's stop, target, trailing level or best price."""

    symbol: int
    pick: int
    kind: int
    dt: int


@dataclass(frozen=True)
class Pause:
    accepting: bool


SYMBOLS = ("AAA", "BBB")
moves = st.floats(-0.03, 0.03, allow_nan=False)
gaps = st.integers(0, 20 * 60_000)


@st.composite
def opens(draw: st.DrawFn) -> Open:
    base: int | None = None
    rows: tuple[int, ...] = ()
    sets: tuple[int, ...] = ()
    if draw(st.integers(0, 9)) == 0:  # now and then a whole 924-row trigger
        base = draw(st.integers(0, 3)) * 1000
    else:
        rows = tuple(draw(st.lists(st.integers(0, len(MAIN_GRID) - 1), min_size=1, max_size=30)))
        sets = tuple(draw(st.lists(st.integers(0, 12), min_size=len(rows), max_size=len(rows))))
    return Open(
        symbol=draw(st.integers(0, 1)),
        direction=draw(st.sampled_from([LONG, SHORT])),
        entry_shift=draw(st.floats(-0.002, 0.002)),
        rows=rows,
        sets=sets,
        fee=draw(st.sampled_from([0.0, 0.00055, 0.001])),
        pc=draw(st.sampled_from([0.1, 0.5, 1.0])),
        max_age_hours=draw(st.sampled_from([0.0, 0.0, 0.05, 0.5])),
        whole_grid_base=base,
    )


type Operation = Open | Tick | Candle | LevelTick | Pause

operations: st.SearchStrategy[Operation] = st.one_of(
    opens(),
    st.builds(Tick, st.integers(0, 1), moves, gaps),
    st.builds(Candle, st.integers(0, 1), moves, moves, st.floats(0, 0.02), st.floats(0, 0.02), gaps),
    st.builds(LevelTick, st.integers(0, 1), st.integers(0, 10_000), st.integers(0, 3), gaps),
    st.builds(Pause, st.booleans()),
)


def canonical(batch: ClosedBatch) -> dict[str, npt.NDArray[Any]]:
    """The batch sorted into a fixed order (the two books close in different orders)."""
    order = np.lexsort(
        (
            batch.drawdown_time_ms,
            batch.fees_fraction,
            batch.pnl_fraction,
            batch.result_steps,
            batch.exit_price,
            batch.entry_price,
            batch.reason,
            batch.opened_ms,
            batch.set_index,
        )
    )
    return {name: getattr(batch, name)[order] for name in ClosedBatch.__dataclass_fields__}


def assert_same_closes(fast: ClosedBatch, ref: ClosedBatch) -> None:
    a, b = canonical(fast), canonical(ref)
    for name in ("set_index", "opened_ms", "closed_ms", "reason", "drawdown_time_ms", "hold_time_ms"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in ("entry_price", "exit_price", "result_steps", "pnl_fraction", "fees_fraction"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-9, err_msg=name)


def assert_same_state(fast: PseudoBook, ref: ReferenceBook, symbol: str) -> None:
    snap = fast.snapshot(symbol)
    got = sorted(
        zip(
            snap.set_index.tolist(),
            snap.direction.tolist(),
            snap.opened_ms.tolist(),
            snap.tp_price.tolist(),
            snap.sl_price.tolist(),
            snap.best_price.tolist(),
            snap.trailing_active.tolist(),
            snap.below_peak.tolist(),
            snap.drawdown_time_ms.tolist(),
            strict=True,
        )
    )
    want = sorted(
        (
            e.set_index,
            e.direction,
            e.opened_ms,
            e.tp_price,
            e.sl_price,
            e.best_price,
            e.trailing_active,
            e.below_peak,
            e.drawdown_time_ms,
        )
        for e in ref.entries.get(symbol, [])
    )
    assert got == want


def assert_same_counts(fast: PseudoBook, ref: ReferenceBook, sets: Iterable[int]) -> None:
    wanted = np.fromiter(sets, dtype=np.int64)
    for direction in (LONG, SHORT, None):
        np.testing.assert_array_equal(
            fast.open_count_by_set(wanted, direction), ref.open_count_by_set(wanted, direction)
        )


def level_price(ref: ReferenceBook, op: LevelTick, price: float) -> float:
    entries = ref.entries.get(SYMBOLS[op.symbol], [])
    if not entries:
        return price
    e = entries[op.pick % len(entries)]
    if op.kind == 0:
        return e.sl_price
    if op.kind == 1:
        return e.tp_price
    if op.kind == 2 and e.trailing:
        return e.best_price - e.direction * e.trail_stop_distance
    return e.best_price


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    limit=st.integers(1, 5),
    caps=st.booleans(),
    ops=st.lists(operations, min_size=5, max_size=60),
)
def test_book_equals_reference_loop(limit: int, caps: bool, ops: list[Operation]) -> None:
    fast = PseudoBook(max_open_per_config=limit, target_caps_trailing=caps, initial_capacity=8)
    ref = ReferenceBook(max_open_per_config=limit, target_caps_trailing=caps)
    price = {s: 100.0 for s in SYMBOLS}
    now = {s: 0 for s in SYMBOLS}
    used: set[int] = set()
    for op in ops:
        if isinstance(op, Pause):
            fast.accepting_new = ref.accepting_new = op.accepting
            continue
        symbol = SYMBOLS[op.symbol]
        if isinstance(op, Open):
            entry = price[symbol] * (1.0 + op.entry_shift)
            accepted = [
                book.open_entries(
                    symbol,
                    op.set_list(),
                    op.direction,
                    entry,
                    now[symbol],
                    MAIN_GRID,
                    rows=op.row_list(),
                    position_cost_pct=op.pc,
                    fee_fraction=op.fee,
                    max_age_hours=op.max_age_hours,
                )
                for book in (fast, ref)
            ]
            np.testing.assert_array_equal(accepted[0], accepted[1])
            used.update(op.set_list())
        elif isinstance(op, Tick | LevelTick):
            now[symbol] += op.dt
            if isinstance(op, Tick):
                price[symbol] *= math.exp(op.move)
            else:
                price[symbol] = level_price(ref, op, price[symbol])
            assert_same_closes(
                fast.on_tick(symbol, price[symbol], now[symbol]),
                ref.on_tick(symbol, price[symbol], now[symbol]),
            )
        elif isinstance(op, Candle):
            now[symbol] += op.dt
            o = price[symbol] * math.exp(op.open_move)
            c = price[symbol] * math.exp(op.close_move)
            h, lo = max(o, c) * (1 + op.up), min(o, c) * (1 - op.down)
            price[symbol] = c
            assert_same_closes(
                fast.on_candle(symbol, o, h, lo, c, now[symbol]),
                ref.on_candle(symbol, o, h, lo, c, now[symbol]),
            )
        assert fast.open_count(symbol) == ref.open_count(symbol)
        assert_same_counts(fast, ref, range(13))
    assert_same_counts(fast, ref, sorted(used))
    for symbol in SYMBOLS:
        assert_same_state(fast, ref, symbol)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.integers(0, len(MAIN_GRID) - 1), min_size=1, max_size=60),
    direction=st.sampled_from([LONG, SHORT]),
    path=st.lists(st.tuples(st.floats(-0.02, 0.02), st.integers(0, 600_000)), min_size=1, max_size=40),
)
def test_a_tick_is_the_candle_whose_four_prices_are_equal(
    rows: list[int], direction: int, path: list[tuple[float, int]]
) -> None:
    """The fast book runs ticks through its candle kernel; the reference has a separate tick path."""
    ref_ticks = ReferenceBook(max_open_per_config=5)
    ref_candles = ReferenceBook(max_open_per_config=5)
    for ref in (ref_ticks, ref_candles):
        ref.open_entries(
            SYM, rows, direction, 100.0, 0, MAIN_GRID, rows=rows, fee_fraction=0.001, max_age_hours=1.0
        )
    price, now = 100.0, 0
    for move, dt in path:
        price *= math.exp(move)
        now += dt
        assert_same_closes(
            ref_ticks.on_tick(SYM, price, now), ref_candles.on_candle(SYM, price, price, price, price, now)
        )
