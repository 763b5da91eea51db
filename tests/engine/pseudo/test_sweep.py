"""The configuration sweep: every exit rule by hand, then the kernel against the plain reference.

Hand-computed cases use ``pc = 1`` (one step = 1 % of the entry: 1.00 at an entry of 100) so the
levels are round numbers; each case runs the compiled kernel with its default sizes, with one-candle
blocks and chunks (every skip and chunk boundary exercised) and the reference loop, and all three
must give the numbers worked out in the comments.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cts_desktop.engine.pseudo.grid import MAIN_GRID, ConfigGrid, build_grid
from cts_desktop.engine.pseudo.sweep import (
    CSV_HEADER,
    Bools,
    SignalSpec,
    SweepResult,
    entry_signal,
    parse_signal,
    run_sweep,
    simulate_entries,
    trailing_label,
    write_sweep_csv,
)
from cts_desktop.engine.pseudo.sweep_reference import reference_entries, reference_sweep
from cts_desktop.exchanges.candle_files import CandleArrays, load_candles
from tests.conftest import SHARED_DIR

MARKET_DIR = SHARED_DIR / "data" / "market"
OFF = (math.nan, math.nan)
COUNTS = ("trades", "wins", "losses")
MONEY = ("net_return", "pf_gross", "avg_result_steps", "max_drawdown")


# --------------------------------------------------------------------------- helpers


def bars(*rows: tuple[float, float, float, float]) -> CandleArrays:
    """Candles from (open, high, low, close) rows, one minute apart."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 4)
    n = a.shape[0]
    return CandleArrays(np.arange(n, dtype=np.int64) * 60_000, a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.ones(n))


def one_config(tp: float, sl: float, trailing: tuple[float, float] = OFF) -> ConfigGrid:
    return build_grid(np.array([tp]), np.array([sl]), (trailing,))


def signals(n: int, *at: int) -> Bools:
    out = np.zeros(n, dtype=np.bool_)
    out[list(at)] = True
    return out


def assert_same(a: SweepResult, b: SweepResult) -> None:
    for name in COUNTS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in MONEY:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name)
    assert (a.candles, a.signals) == (b.candles, b.signals)


def sweep_all_ways(
    candles: CandleArrays, entries: Bools, grid: ConfigGrid, *, pc: float = 1.0, fee_pct: float = 0.0
) -> SweepResult:
    """Kernel (default sizes, then 1-candle blocks and chunks, then 2/4) and reference must agree."""
    kernel = simulate_entries(candles, entries, pc=pc, fee_pct=fee_pct, grid=grid)
    for block, chunk in ((1, 1), (2, 4)):
        small = simulate_entries(
            candles, entries, pc=pc, fee_pct=fee_pct, grid=grid, block_size=block, chunk_size=chunk
        )
        assert_same(kernel, small)
    assert_same(kernel, reference_entries(candles, entries, pc=pc, fee_pct=fee_pct, grid=grid))
    return kernel


def only(result: SweepResult) -> dict[str, float]:
    assert len(result) == 1
    return {name: float(getattr(result, name)[0]) for name in (*COUNTS, *MONEY)}


# --------------------------------------------------------------------------- exits by hand

# Entry at the close of candle 0 = 100, pc 1 → step 1. TP 2 → target 102. SL 0.5 → stop 100 − 1 = 99.
FLAT = (100.0, 100.0, 100.0, 100.0)


def test_target_hit_fills_at_the_target_and_the_open_dip_counts_in_the_drawdown() -> None:
    candles = bars(
        FLAT,  # enter at 100: qty = 1 / 100 = 0.01, marked 0.01 × 100 = 1.0
        (100.0, 101.0, 99.2, 99.5),  # low 99.2 > stop 99, high 101 < 102: open; mark 0.995 → dd 0.005
        (99.5, 102.5, 99.4, 102.0),  # high 102.5 ≥ 102, open 99.5 < 102 → fill 102; equity 1.02
    )
    r = only(sweep_all_ways(candles, signals(3, 0), one_config(2, 0.5)))
    assert (r["trades"], r["wins"], r["losses"]) == (1, 1, 0)
    assert r["net_return"] == pytest.approx(0.02)  # 102 / 100 − 1
    assert r["avg_result_steps"] == pytest.approx(2.0)  # (102 − 100) / 1
    assert r["pf_gross"] == math.inf  # profit 0.02, no loss
    assert r["max_drawdown"] == pytest.approx(0.005)  # 1 − 0.995 / 1.0


def test_stop_hit_fills_at_the_stop() -> None:
    candles = bars(FLAT, (100.0, 100.5, 98.5, 99.0))  # low 98.5 ≤ 99, open 100 > 99 → fill 99
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5)))
    assert (r["trades"], r["wins"], r["losses"]) == (1, 0, 1)
    assert r["net_return"] == pytest.approx(-0.01)  # 99 / 100 − 1
    assert r["avg_result_steps"] == pytest.approx(-1.0)
    assert r["pf_gross"] == 0.0  # no profit / loss 0.01
    assert r["max_drawdown"] == pytest.approx(0.01)  # cash 0.99 on the exit candle, peak 1


def test_stop_and_target_in_one_candle_is_a_stop() -> None:
    candles = bars(FLAT, (100.0, 103.0, 98.0, 101.0))  # low 98 ≤ 99 and high 103 ≥ 102: stop first
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5)))
    assert (r["trades"], r["wins"]) == (1, 0)
    assert r["avg_result_steps"] == pytest.approx(-1.0)  # filled at the stop, 99
    assert r["net_return"] == pytest.approx(-0.01)


def test_gap_through_the_stop_fills_at_the_open() -> None:
    candles = bars(FLAT, (97.0, 98.0, 96.0, 97.5))  # opens at 97, already below the stop 99
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5)))
    assert r["avg_result_steps"] == pytest.approx(-3.0)  # 97 − 100
    assert r["net_return"] == pytest.approx(-0.03)


def test_gap_through_the_target_fills_at_the_open() -> None:
    candles = bars(FLAT, (103.0, 104.0, 102.5, 103.5))  # opens at 103, already above the target 102
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5)))
    assert (r["trades"], r["wins"]) == (1, 1)
    assert r["avg_result_steps"] == pytest.approx(3.0)  # 103 − 100: the favourable gap is kept
    assert r["net_return"] == pytest.approx(0.03)


# Trailing: TP 4 → TP distance 4; SL 0.5 → stop 100 − 2 = 98; trailing (start 0.5, stop 0.25) →
# activation at best ≥ 100 + 0.5 × 4 = 102, exit level best − 0.25 × 4 = best − 1. The target 104 is
# not an exit with trailing on (D4).
TRAIL = one_config(4, 0.5, (0.5, 0.25))


def test_trailing_activates_on_the_previous_best_and_exits_on_the_retrace() -> None:
    candles = bars(
        FLAT,  # enter at 100, best 100
        (100.0, 101.5, 99.5, 101.0),  # not active (best 100 < 102); best → 101.5
        (101.0, 102.5, 100.2, 102.0),  # not active (101.5 < 102): the low 100.2 exits nothing; best → 102.5
        (102.0, 105.0, 101.8, 104.6),  # active (102.5 ≥ 102), level 101.5 < low 101.8; the 105 high passes
        #                                the target 104 without exiting; best → 105
        (104.6, 105.2, 103.9, 104.2),  # level 105 − 1 = 104 ≥ low 103.9, open 104.6 > 104 → fill 104
    )
    r = only(sweep_all_ways(candles, signals(5, 0), TRAIL))
    assert (r["trades"], r["wins"]) == (1, 1)
    assert r["avg_result_steps"] == pytest.approx(4.0)  # 104 − 100; had 105.2 raised best first: 4.2
    assert r["net_return"] == pytest.approx(0.04)


def test_trailing_best_is_raised_only_after_the_candles_exits() -> None:
    candles = bars(
        FLAT,
        (100.0, 102.5, 99.5, 102.0),  # not active yet; best → 102.5 (≥ 102: active from the next candle)
        (102.4, 106.0, 102.0, 105.0),  # level 102.5 − 1 = 101.5 < low 102: stays open. Raising best to 106
        #                                first would have put the level at 105 and exited here. best → 106
        (105.2, 105.5, 104.5, 105.0),  # level 106 − 1 = 105 ≥ low 104.5, open 105.2 > 105 → fill 105
    )
    r = only(sweep_all_ways(candles, signals(4, 0), TRAIL))
    assert r["trades"] == 1
    assert r["avg_result_steps"] == pytest.approx(5.0)  # 105 − 100
    assert r["net_return"] == pytest.approx(0.05)


def test_trailing_gap_through_the_level_fills_at_the_open() -> None:
    candles = bars(
        FLAT,
        (100.0, 103.0, 99.5, 102.8),  # best → 103: active from the next candle, level 102
        (101.0, 101.5, 100.5, 101.2),  # opens at 101, below the level 102 → fill 101
    )
    r = only(sweep_all_ways(candles, signals(3, 0), TRAIL))
    assert r["avg_result_steps"] == pytest.approx(1.0)


def test_trailing_before_activation_only_the_stop_exits() -> None:
    candles = bars(
        FLAT,
        (100.0, 101.9, 99.0, 101.0),  # best → 101.9 (< 102: never active)
        (101.0, 101.2, 99.5, 100.0),  # a 1.7 retrace from the best: no exit while inactive
        (100.0, 100.2, 97.5, 98.0),  # low 97.5 ≤ stop 98, open 100 > 98 → fill 98
    )
    r = only(sweep_all_ways(candles, signals(4, 0), TRAIL))
    assert (r["trades"], r["losses"]) == (1, 1)
    assert r["avg_result_steps"] == pytest.approx(-2.0)


def test_trailing_stop_is_checked_before_the_trailing_level() -> None:
    candles = bars(
        FLAT,
        (100.0, 103.0, 99.5, 102.5),  # best → 103, active from the next candle at level 102
        (102.5, 102.6, 97.0, 97.5),  # crosses the level 102 and the stop 98: the stop (98) fills
    )
    r = only(sweep_all_ways(candles, signals(3, 0), TRAIL))
    assert r["avg_result_steps"] == pytest.approx(-2.0)


def test_touching_a_level_exactly_triggers_it() -> None:
    # All levels are exact binary numbers here: stop 99, target 102, activation 102, level best − 1.
    stop = bars(FLAT, (100.0, 100.5, 99.0, 99.5))  # low == stop 99 → stop at 99
    assert only(sweep_all_ways(stop, signals(2, 0), one_config(2, 0.5)))["avg_result_steps"] == -1.0
    target = bars(FLAT, (100.0, 102.0, 99.5, 101.0))  # high == target 102 → target at 102
    assert only(sweep_all_ways(target, signals(2, 0), one_config(2, 0.5)))["avg_result_steps"] == 2.0
    trail = bars(
        FLAT,
        *[(100.0, 101.0, 99.5, 100.5)] * 3,  # best 101
        (100.5, 102.0, 100.2, 101.5),  # candle 4 (starts a block of 2 and of 4): best == 102 == activation
        (101.5, 101.6, 100.9, 101.2),  # active, level 102 − 1 = 101 ≥ low 100.9 → fill at 101
    )
    assert only(sweep_all_ways(trail, signals(6, 0), TRAIL))["avg_result_steps"] == 1.0


def test_no_reentry_on_the_exit_candle() -> None:
    candles = bars(
        FLAT,  # signal: enter at 100
        (100.0, 100.5, 98.5, 99.0),  # signal, but this is the exit candle (stop 99): no entry
        (99.0, 99.5, 98.8, 99.2),  # signal: enter at 99.2; step 0.992, target 99.2 + 1.984 = 101.184
        (99.2, 101.5, 99.0, 101.3),  # stop 99.2 − 0.992 = 98.208 < low 99; high 101.5 → fill 101.184
    )
    r = only(sweep_all_ways(candles, signals(4, 0, 1, 2, 3), one_config(2, 0.5)))
    assert (r["trades"], r["wins"], r["losses"]) == (2, 1, 1)
    # equity 1 × 99 / 100 = 0.99, then × 101.184 / 99.2 = × 1.02 → 1.0098
    assert r["net_return"] == pytest.approx(0.0098)
    assert r["avg_result_steps"] == pytest.approx(0.5)  # (−1 + 2) / 2
    assert r["pf_gross"] == pytest.approx(0.02 / 0.01)  # returns +2 % and −1 %
    assert r["max_drawdown"] == pytest.approx(0.01)  # cash 0.99 against the first peak 1.0
    # Re-entering at 99 on candle 1 would have ended differently (one trade, still open at 101.3):
    assert r["net_return"] != pytest.approx(0.99 * 101.3 / 99 - 1)


def test_fees_on_entry_and_exit_decide_the_win() -> None:
    # pc 0.1 → step 0.1; TP 2 → target 100.2; fee 0.1 % a side.
    candles = bars(FLAT, (100.0, 100.3, 100.0, 100.25))  # high 100.3 ≥ 100.2 → fill 100.2
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5), pc=0.1, fee_pct=0.1))
    # qty = 1 / (100 × 1.001) = 1 / 100.1; proceeds 100.2 × 0.999 = 100.0998 < cost 100.1 → a loss
    assert (r["trades"], r["wins"], r["losses"]) == (1, 0, 1)
    assert r["net_return"] == pytest.approx(100.0998 / 100.1 - 1)  # ≈ −2.0e-6
    assert r["avg_result_steps"] == pytest.approx(2.0)  # steps are before fees
    assert r["pf_gross"] == 0.0
    # entry marked at 100 / 100.1 = 0.999001: the entry fee is an immediate drawdown
    assert r["max_drawdown"] == pytest.approx(1 - 100 / 100.1)


def test_a_win_after_fees() -> None:
    candles = bars(FLAT, (100.0, 102.5, 99.5, 102.0))  # pc 1, TP 2 → fill 102
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5), fee_pct=0.1))
    # proceeds 102 × 0.999 = 101.898 > cost 100.1: a win of 101.898 / 100.1 − 1
    assert (r["trades"], r["wins"]) == (1, 1)
    assert r["net_return"] == pytest.approx(101.898 / 100.1 - 1)


def test_open_position_at_the_end_is_valued_at_the_last_close_without_exit_fee() -> None:
    candles = bars(FLAT, (100.0, 101.5, 99.5, 101.0))  # no exit: target 102, stop 99
    r = only(sweep_all_ways(candles, signals(2, 0), one_config(2, 0.5), fee_pct=0.1))
    assert (r["trades"], r["wins"], r["losses"]) == (0, 0, 0)
    assert r["net_return"] == pytest.approx(101 / 100.1 - 1)  # qty 1 / 100.1 × 101, no exit fee
    assert math.isnan(r["pf_gross"]) and math.isnan(r["avg_result_steps"])
    assert r["max_drawdown"] == pytest.approx(1 - 100 / 100.1)


def test_no_signal_no_trade() -> None:
    r = only(sweep_all_ways(bars(FLAT, FLAT, FLAT), signals(3), one_config(2, 0.5)))
    assert (r["trades"], r["wins"], r["losses"], r["net_return"], r["max_drawdown"]) == (0, 0, 0, 0.0, 0.0)
    assert math.isnan(r["pf_gross"]) and math.isnan(r["avg_result_steps"])


def test_a_signal_on_the_last_candle_opens_and_is_valued_without_exit_fee() -> None:
    r = only(sweep_all_ways(bars(FLAT, FLAT), signals(2, 1), one_config(2, 0.5), fee_pct=0.1))
    assert r["trades"] == 0
    assert r["net_return"] == pytest.approx(1 / 1.001 - 1)


def test_a_long_quiet_position_is_skipped_block_by_block_exactly() -> None:
    # 200 quiet candles (inside both levels) between entry and the target: every block skippable.
    quiet = [(100.0 + 0.1 * (i % 3), 100.5, 99.5, 100.0 + 0.1 * (i % 5)) for i in range(200)]
    candles = bars(FLAT, *quiet, (100.2, 102.4, 100.0, 102.0))
    grid = build_grid(np.array([2.0, 4.0]), np.array([0.6, 1.2]))  # 2 × 2 × 4 trailing variants
    result = sweep_all_ways(candles, signals(202, 0), grid)
    for block, chunk in ((4, 8), (16, 64), (64, 64)):
        assert_same(
            result,
            simulate_entries(
                candles, signals(202, 0), pc=1.0, fee_pct=0.0, grid=grid, block_size=block, chunk_size=chunk
            ),
        )
    first = int(
        np.flatnonzero((result.tp_factor == 2.0) & (result.sl_ratio == 0.6) & (result.trailing == 0))[0]
    )
    assert result.trades[first] == 1 and result.avg_result_steps[first] == pytest.approx(2.0)
    # quiet closes 100.0–100.4: the 100.0 after the first 100.4 is the deepest mark below its peak
    assert result.max_drawdown[first] == pytest.approx(1 - 100.0 / 100.4)


# --------------------------------------------------------------------------- signal and warm-up


def test_talib_rsi_is_wilders() -> None:
    # changes +1, −1, +1, +1 with period 2: seed gain (1 + 0) / 2 = 0.5, loss (0 + 1) / 2 = 0.5 → 50;
    # then gain (0.5 + 1) / 2 = 0.75, loss 0.5 / 2 = 0.25 → 75; then 0.875 / 0.125 → 87.5
    rsi = talib.RSI(np.array([1.0, 2.0, 1.0, 2.0, 3.0]), timeperiod=2)
    np.testing.assert_allclose(rsi[2:], [50.0, 75.0, 87.5])
    assert np.isnan(rsi[:2]).all()


def test_entry_signal_respects_the_warmup_counted_from_one() -> None:
    falling = 200.0 - np.arange(150.0)  # RSI 0 from index 14 on
    spec = parse_signal("rsi:14:30")
    assert int(np.flatnonzero(entry_signal(falling, spec, 100))[0]) == 99  # the 100th candle
    assert int(np.flatnonzero(entry_signal(falling, spec, 1))[0]) == 14  # RSI's own warm-up
    assert not entry_signal(100.0 + np.arange(150.0), spec, 1).any()  # RSI 100: never below 30
    assert not entry_signal(falling[:14], spec, 1).any()  # too short for RSI(14)


def test_run_sweep_enters_on_rsi_below_threshold_at_the_warmup() -> None:
    n = 130
    close = 200.0 - np.arange(n, dtype=np.float64)  # falls 1 a candle: RSI 0
    candles = CandleArrays(
        np.arange(n, dtype=np.int64), close + 0.5, close + 0.6, close - 0.1, close, np.ones(n)
    )
    # pc 1, TP 2, SL 0.5: the 100th candle (index 99) is the first entry, at its close 101: step
    # 1.01, stop 101 − 0.5 × 2.02 = 99.99. Candle 100 (open 100.5, low 99.9) hits it → fill 99.99,
    # −1 step. No entry on that exit candle; candle 101 enters at 99 and candle 102 stops it out, …:
    # entries on the odd indices 99…129, exits on the even ones, the last entry (129) still open.
    result = run_sweep(candles, SignalSpec("rsi", 14, 30.0), pc=1.0, fee_pct=0.0, grid=one_config(2, 0.5))
    assert result.signals == n - 99
    assert_same(
        result,
        reference_sweep(candles, SignalSpec("rsi", 14, 30.0), pc=1.0, fee_pct=0.0, grid=one_config(2, 0.5)),
    )
    assert (int(result.trades[0]), int(result.wins[0])) == (15, 0)
    assert result.avg_result_steps[0] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("rsi:14:30", SignalSpec("rsi", 14, 30.0)), (" RSI:7:27.5 ", SignalSpec("rsi", 7, 27.5))],
)
def test_parse_signal(text: str, expected: SignalSpec) -> None:
    assert parse_signal(text) == expected


@pytest.mark.parametrize(
    "text", ["rsi:14", "macd:12:26", "rsi:x:30", "rsi:1:30", "rsi:14:0", "rsi:14:100", ""]
)
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="signal"):
        parse_signal(text)


def test_signal_spec_round_trips_through_str() -> None:
    assert str(parse_signal("rsi:14:30")) == "rsi:14:30"


def test_invalid_inputs_are_refused() -> None:
    candles = bars(FLAT, FLAT)
    with pytest.raises(ValueError, match="positive"):
        simulate_entries(bars(FLAT, (100.0, 100.0, 0.0, 100.0)), signals(2, 0))
    with pytest.raises(ValueError, match="entries"):
        simulate_entries(candles, signals(3, 0))
    with pytest.raises(ValueError, match="power of two"):
        simulate_entries(candles, signals(2, 0), block_size=3)
    with pytest.raises(ValueError, match="pc"):
        simulate_entries(candles, signals(2, 0), pc=0.0)
    with pytest.raises(ValueError, match="fee"):
        simulate_entries(candles, signals(2, 0), fee_pct=-0.1)
    with pytest.raises(ValueError, match="warmup"):
        entry_signal(candles.close, parse_signal("rsi:14:30"), 0)


def test_empty_candles_give_untouched_accounts() -> None:
    result = simulate_entries(CandleArrays.empty(), np.zeros(0, dtype=np.bool_))
    assert len(result) == len(MAIN_GRID) and result.candles == 0
    assert (result.trades == 0).all() and (result.net_return == 0.0).all()


# --------------------------------------------------------------------------- kernel == reference


@st.composite
def markets(draw: st.DrawFn) -> tuple[CandleArrays, Bools]:
    """Random OHLC paths: calm (long trades across many blocks) or wild (gaps, quick exits), with
    prices sometimes on a coarse tick so that candles touch levels exactly."""
    n = draw(st.integers(1, 260))
    seed = draw(st.integers(0, 2**32 - 1))
    sigma = draw(st.sampled_from([0.0005, 0.003, 0.02]))
    gap = draw(st.sampled_from([0.0, 0.5, 3.0]))  # open's distance from the last close, in sigmas
    tick = draw(st.sampled_from([0.0, 0.01, 0.25]))
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, sigma * gap, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma, n)))
    if tick:
        open_, high, low, close = (np.round(a / tick) * tick for a in (open_, high, low, close))
        high = np.maximum(high, np.maximum(open_, close))
        low = np.maximum(np.minimum(low, np.minimum(open_, close)), tick)
    entries = rng.random(n) < draw(st.sampled_from([0.02, 0.2, 1.0]))
    candles = CandleArrays(np.arange(n, dtype=np.int64), open_, high, low, close, np.ones(n))
    return candles, entries


def grid_rows(rows: list[int]) -> ConfigGrid:
    idx = np.array(rows, dtype=np.int64)
    return ConfigGrid(
        MAIN_GRID.tp_factor[idx],
        MAIN_GRID.sl_ratio[idx],
        MAIN_GRID.trailing[idx],
        MAIN_GRID.trail_start[idx],
        MAIN_GRID.trail_stop[idx],
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    market=markets(),
    rows=st.lists(st.integers(0, len(MAIN_GRID) - 1), min_size=1, max_size=24),
    pc=st.sampled_from([0.05, 0.1, 0.5, 1.0]),
    fee_pct=st.sampled_from([0.0, 0.04, 0.1]),
    sizes=st.sampled_from([(1, 1), (1, 8), (2, 2), (4, 16), (16, 2048), (64, 64)]),
)
def test_kernel_equals_reference_on_random_candles(
    market: tuple[CandleArrays, Bools],
    rows: list[int],
    pc: float,
    fee_pct: float,
    sizes: tuple[int, int],
) -> None:
    candles, entries = market
    grid = grid_rows(rows)
    kernel = simulate_entries(
        candles, entries, pc=pc, fee_pct=fee_pct, grid=grid, block_size=sizes[0], chunk_size=sizes[1]
    )
    assert_same(kernel, reference_entries(candles, entries, pc=pc, fee_pct=fee_pct, grid=grid))
    assert (kernel.wins + kernel.losses == kernel.trades).all()


def test_kernel_equals_reference_on_a_real_file() -> None:
    path = MARKET_DIR / "Binance_BTCUSDT_1h.csv"
    if not path.is_file():
        pytest.skip(f"real market data not found at {path} (see shared/data/market/SOURCE.md)")
    full = load_candles(path).candles
    lo, hi = 20_000, 22_500  # 2,500 hours of BTC, every one of the 924 configurations
    candles = CandleArrays(
        full.ts_ms[lo:hi],
        full.open[lo:hi],
        full.high[lo:hi],
        full.low[lo:hi],
        full.close[lo:hi],
        full.volume[lo:hi],
    )
    spec = parse_signal("rsi:14:30")
    kernel = run_sweep(candles, spec)
    assert kernel.signals > 0 and kernel.trades.sum() > 0
    assert_same(kernel, reference_sweep(candles, spec))


# --------------------------------------------------------------------------- CSV


def test_csv_header_and_rows(tmp_path: Path) -> None:
    candles = bars(FLAT, (100.0, 102.5, 99.9, 102.0), FLAT)
    result = simulate_entries(candles, signals(3, 0), pc=1.0, fee_pct=0.0)
    out = tmp_path / "sweep.csv"
    write_sweep_csv(result, out)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert (
        tuple(rows[0])
        == CSV_HEADER
        == (
            "tp_factor",
            "sl_ratio",
            "trailing",
            "trades",
            "wins",
            "losses",
            "net_return",
            "pf_gross",
            "avg_result_steps",
            "max_drawdown",
        )
    )
    assert len(rows) == 1 + 924
    assert rows[1][:3] == ["2", "0.2", "off"] and rows[2][2] == "0.3/0.1" and rows[4][2] == "1/0.3"
    assert rows[-1][:3] == ["22", "2.2", "1/0.3"]
    # TP 2 / SL 0.2 without trailing: stop 99.6 < low 99.9, target 102 reached on candle 1 → +2 %,
    # no loss → inf; the equity never dips below its start
    assert rows[1][3:6] == ["1", "1", "0"] and rows[1][7:] == ["inf", "2.0", "0.0"]
    assert float(rows[1][6]) == pytest.approx(0.02)
    for row, k in ((rows[1], 0), (rows[500], 499)):
        assert float(row[6]) == result.net_return[k]  # round-trip exact
    assert (tmp_path / "sweep.csv.tmp").exists() is False

    buffer = io.StringIO()
    write_sweep_csv(result, buffer)
    assert buffer.getvalue() == out.read_text(encoding="utf-8")


def test_csv_writes_nan_for_configurations_without_trades() -> None:
    result = simulate_entries(bars(FLAT, FLAT), signals(2), pc=1.0, fee_pct=0.0, grid=one_config(2, 0.5))
    buffer = io.StringIO()
    write_sweep_csv(result, buffer)
    assert buffer.getvalue().splitlines()[1] == "2,0.5,off,0,0,0,0.0,nan,nan,0.0"


def test_trailing_label() -> None:
    assert trailing_label(math.nan, math.nan) == "off"
    assert trailing_label(0.6, 0.2) == "0.6/0.2"
