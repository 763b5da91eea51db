"""The sweep's rules as a plain per-configuration Python loop: the readable reference.

The compiled kernel in ``sweep`` skips flat stretches and whole blocks of candles; this module walks
every candle of every configuration, one rule per line, in the order the module docstring of
``sweep`` states them. It is slow (about a million configuration-candles per second) and exists so
that tests and the benchmark can hold the kernel to it: the same trades exactly, money to 1e-9.

Price levels come from ``geometry`` (the exit geometry shared with the live book), so the reference
also pins the kernel to the one step model of D3/D4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.pseudo.geometry import LONG, exit_levels, result_steps, tp_distance
from cts_desktop.engine.pseudo.grid import MAIN_GRID, ConfigGrid
from cts_desktop.engine.pseudo.sweep import (
    Bools,
    SignalSpec,
    SweepResult,
    assemble_result,
    entry_signal,
)
from cts_desktop.exchanges.candle_files import CandleArrays

__all__ = ["ConfigOutcome", "reference_entries", "reference_sweep", "simulate_config"]


@dataclass(frozen=True, slots=True)
class ConfigOutcome:
    """One configuration's raw totals; the ratio columns are derived from these."""

    trades: int
    wins: int
    gross_profit: float
    gross_loss: float
    sum_steps: float
    final_equity: float
    max_drawdown: float


def simulate_config(
    open_: list[float],
    high: list[float],
    low: list[float],
    close: list[float],
    entries: list[bool],
    *,
    tp_factor: float,
    sl_ratio: float,
    trail_start: float,
    trail_stop: float,
    pc: float,
    fee: float,
) -> ConfigOutcome:
    """One configuration over every candle. ``fee`` is a fraction (0.001 = 0.1 %) per side."""
    trailing = not math.isnan(trail_start)
    equity = 1.0  # cash while flat
    peak = 1.0
    max_dd = 0.0
    trades = wins = 0
    gross_profit = gross_loss = sum_steps = 0.0

    in_position = False
    entry = qty = target = stop = activation = trail_dist = best = 0.0
    exited_on = -1

    for t in range(len(close)):
        # 1. exits, from the candle after entry on (an entry happens below, after this block)
        if in_position:
            exit_price: float | None = None
            if low[t] <= stop:  # stop first
                exit_price = open_[t] if open_[t] <= stop else stop
            elif trailing:
                if best >= activation:  # best as of the previous candle
                    level = best - trail_dist
                    if low[t] <= level:
                        exit_price = open_[t] if open_[t] <= level else level
            elif high[t] >= target:
                exit_price = open_[t] if open_[t] >= target else target

            if exit_price is None:
                best = max(best, high[t])  # raised only after this candle's exits were checked
            else:
                equity = qty * exit_price * (1.0 - fee)
                trades += 1
                if exit_price * (1.0 - fee) > entry * (1.0 + fee):
                    wins += 1
                trade_return = (exit_price * (1.0 - fee)) / (entry * (1.0 + fee)) - 1.0
                if exit_price * (1.0 - fee) > entry * (1.0 + fee):  # the win rule decides the side
                    gross_profit += max(trade_return, 0.0)
                elif exit_price * (1.0 - fee) < entry * (1.0 + fee):
                    gross_loss += max(-trade_return, 0.0)
                sum_steps += float(result_steps(entry, exit_price, LONG, pc))
                in_position = False
                exited_on = t

        # 2. entry at this candle's close, never on the candle of an exit
        if not in_position and entries[t] and t != exited_on:
            entry = close[t]
            target_level, stop_level = exit_levels(entry, LONG, tp_factor, sl_ratio, pc)
            target, stop = float(target_level), float(stop_level)
            distance = float(tp_distance(entry, tp_factor, pc))
            activation = entry + trail_start * distance
            trail_dist = trail_stop * distance
            qty = equity / (entry * (1.0 + fee))  # the whole equity, entry fee included
            best = entry
            in_position = True

        # 3. mark the equity curve at this candle's close
        mark = qty * close[t] if in_position else equity
        peak = max(peak, mark)
        max_dd = max(max_dd, 1.0 - mark / peak)

    final_equity = qty * close[-1] if in_position else equity  # no exit fee, not a trade
    return ConfigOutcome(trades, wins, gross_profit, gross_loss, sum_steps, final_equity, max_dd)


def reference_entries(
    candles: CandleArrays,
    entries: Bools,
    *,
    pc: float = 0.1,
    fee_pct: float = 0.1,
    grid: ConfigGrid = MAIN_GRID,
) -> SweepResult:
    """``sweep.simulate_entries`` computed the slow, obvious way."""
    open_ = [float(x) for x in candles.open]
    high = [float(x) for x in candles.high]
    low = [float(x) for x in candles.low]
    close = [float(x) for x in candles.close]
    signal = [bool(x) for x in entries]
    outcomes = [
        simulate_config(
            open_,
            high,
            low,
            close,
            signal,
            tp_factor=float(grid.tp_factor[k]),
            sl_ratio=float(grid.sl_ratio[k]),
            trail_start=float(grid.trail_start[k]),
            trail_stop=float(grid.trail_stop[k]),
            pc=pc,
            fee=fee_pct / 100.0,
        )
        for k in range(len(grid))
    ]

    def ints(values: list[int]) -> npt.NDArray[np.int64]:
        return np.array(values, dtype=np.int64).reshape(-1)

    def floats(values: list[float]) -> npt.NDArray[np.float64]:
        return np.array(values, dtype=np.float64).reshape(-1)

    return assemble_result(
        grid,
        ints([o.trades for o in outcomes]),
        ints([o.wins for o in outcomes]),
        floats([o.gross_profit for o in outcomes]),
        floats([o.gross_loss for o in outcomes]),
        floats([o.sum_steps for o in outcomes]),
        floats([o.final_equity for o in outcomes]),
        floats([o.max_drawdown for o in outcomes]),
        candles=len(close),
        signals=sum(signal),
    )


def reference_sweep(
    candles: CandleArrays,
    signal: SignalSpec,
    *,
    pc: float = 0.1,
    fee_pct: float = 0.1,
    grid: ConfigGrid = MAIN_GRID,
    warmup: int = 100,
) -> SweepResult:
    """``sweep.run_sweep`` computed the slow way (the RSI signal itself is shared: TA-Lib's)."""
    entries = entry_signal(np.asarray(candles.close, dtype=np.float64), signal, warmup)
    return reference_entries(candles, entries, pc=pc, fee_pct=fee_pct, grid=grid)
