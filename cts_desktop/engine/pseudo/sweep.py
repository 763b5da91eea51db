"""The configuration sweep: every TP × SL × trailing configuration (D3, D4) over one candle file.

``cts-desktop sweep --candles FILE --signal rsi:14:30 [--pc 0.1] [--fee 0.1] --out OUT.csv`` asks
how each configuration of the grid (DOMAIN §2.2) would have traded a history, so the simulation
must be exact (every configuration is an independent account) and fast (924 configurations over a
million candles are ~10⁹ configuration-candles). A compiled numba kernel does the work; the plain
per-configuration loop in ``sweep_reference`` states the same rules readably, and the tests hold
the two equal (counts exactly, money to 1e-9).

Rules (long only; the binding semantics of the issue, plus the details it left to us)
---------------------------------------------------------------------------------
Units. ``pc`` and ``fee_pct`` are percentages: one step = entry × pc / 100; the TP distance is
``tp_factor`` steps, the stop distance ``sl_ratio`` × the TP distance (``geometry``); the fee is
``fee_pct`` / 100 of the traded value on each side.

Entry signal. For ``rsi:P:T``: TA-Lib's RSI(P) (Wilder's smoothing, seeded with the mean of the
first P changes, NaN before candle P) of the closes is strictly below T. Entries are allowed from
the ``warmup``-th candle on, counting from 1 (default 100, so index 99 is the first candle that
may enter). A configuration that is flat enters at the **close** of a signal candle, except on the
candle on which it has just exited (no same-candle re-entry). At most one position at a time.

Exits are checked from the candle after entry on, in this order on each candle:

1. **Stop**: the candle trades at or below the stop (``low <= stop``). Fill: the open if the open is
   already at or below the stop (a gap through it), else the stop price.
2. Without trailing, **target**: ``high >= target``. Fill: the open if the open is already at or
   above the target (a gap through it; the gap is in our favour), else the target price.
   With trailing (D4: the target is then not an exit), **trailing exit**, only once activated:
   activated means ``best >= entry + trail_start × TP distance``, where ``best`` is the best price
   *before* this candle (see 3); the exit level is ``best − trail_stop × TP distance`` and it
   triggers on ``low <= level``. Fill: the open if the open is at or below the level, else the level.
3. If the position is still open, ``best = max(best, high)``. ``best`` starts at the entry price
   (the entry candle's high is not used: we entered at its close). Because activation and the level
   use ``best`` from before the candle, a candle that first reaches the activation price (or a new
   high) cannot also exit at the trailing level it sets; that happens from the next candle on.

The stop is checked first even when a trailing level (which always lies above the stop, as
``trail_start > trail_stop`` in the grid) was crossed in the same candle: with only OHLC we cannot
know the path, and the conservative reading is the binding one. There is no timeout exit (D25:
``maxPositionAgeHours`` is off for the main engine).

Money. Each configuration starts with equity 1 and each trade invests the whole equity ``E``: it
buys ``qty = E / (entry × (1 + fee))`` (the entry fee is paid out of ``E``) and on exit receives
``qty × exit × (1 − fee)``. A trade is a **win** when its exit value after fee exceeds its entry
cost with fee, i.e. ``exit × (1 − fee) > entry × (1 + fee)``; every other closed trade (break-even
included) is a **loss**, so ``wins + losses == trades``. A position still open after the last
candle is valued at the last close without an exit fee and is not a trade.

Columns (one row per configuration):

- ``trades``, ``wins``, ``losses``: closed trades only.
- ``net_return``: final equity / initial equity − 1.
- ``pf_gross``: gross profit / gross loss, summed over the trades' own returns after fees
  (``exit × (1 − fee) / (entry × (1 + fee)) − 1``), so it does not depend on compounding. With no
  losing amount it is ``inf`` if anything was won and NaN if not (no trades, or only break-evens).
- ``avg_result_steps``: the mean signed result in steps, ``(exit − entry) / step`` (D5, D22; before
  fees, as the per-position PF is defined); NaN without trades.
- ``max_drawdown``: the largest peak-to-trough decline of the equity curve as a fraction of the
  peak (0.25 = −25 %), the curve being marked at every candle's close: cash when flat or on an exit
  candle, ``qty × close`` while a position is open (the entry candle included, so the entry fee
  shows as an immediate dip; no exit fee, as for the final valuation). The initial equity is the
  first peak. Marking at closes, not only at exits, is what shows a position's open loss.

Kernel layout. Chosen by measurement (``benchmarks/sweep.py --compare-layouts``, 250
configurations × 1,000,000 random-walk candles, one core): candles outer in chunks of
``chunk_size`` (2,048 candles, 64 KiB of prices, so the chunk stays in cache while every
configuration passes over it), configurations inner, each configuration's state in registers
within a chunk and in two small state arrays between chunks. Inside a chunk a flat configuration
jumps straight to the next signal candle (a precomputed "next entry" index), and an open one crosses
an aligned block of ``block_size`` candles in O(1) when no exit can trigger in it (its min low above
the stop and the trailing level, its max high below the target or the activation price, or not
above ``best``), the block's precomputed min/max close and internal drawdown carrying its effect on
the drawdown. Only the block holding an exit is walked candle by candle. Chunk and block sizes
change the speed, never the result (the tests run them down to one candle). Measured on an idle
machine: 2.05e9 configuration-candles/s. Without chunks (each configuration streaming the 40 MB
file from memory) 0.56–0.95e9, memory-bound and so at the mercy of other processes; without block
skipping as well 0.42–0.93e9; the plain order, candles outer and configurations inner with all
state in arrays, 4.8e8: it touches every configuration on every candle and can skip nothing.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import numpy as np
import numpy.typing as npt
import talib
from numba import njit

from cts_desktop.engine.pseudo.grid import MAIN_GRID, ConfigGrid
from cts_desktop.exchanges.candle_files import CandleArrays

__all__ = [
    "CSV_HEADER",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "SignalSpec",
    "SweepResult",
    "assemble_result",
    "entry_signal",
    "parse_signal",
    "run_sweep",
    "simulate_entries",
    "trailing_label",
    "write_sweep_csv",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

CSV_HEADER: Final = (
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
DEFAULT_BLOCK_SIZE: Final = 16
"""Candles per skip block (a power of two); see the module docstring."""
DEFAULT_CHUNK_SIZE: Final = 2_048
"""Candles per cache chunk (a power of two): 4 price arrays × 2,048 × 8 bytes = 64 KiB."""


def _jit[F: Callable[..., Any]](fn: F) -> F:
    """``numba.njit(cache=True)`` with the function's own signature kept for mypy.

    numba is untyped; wrapping it here keeps strict mypy checking every call site. ``cache=True``
    stores the machine code next to the module, so only the first run pays the ~2 s compile.
    """
    compiled: F = njit(cache=True, nogil=True)(fn)
    return compiled


# --------------------------------------------------------------------------- signal


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """An entry signal. Only ``rsi`` exists: enter long when RSI(``period``) < ``threshold``."""

    kind: str
    period: int
    threshold: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.period}:{self.threshold:g}"


def parse_signal(text: str) -> SignalSpec:
    """``"rsi:14:30"`` → ``SignalSpec("rsi", 14, 30.0)``; ``ValueError`` says what is wrong."""
    parts = [p.strip() for p in text.strip().split(":")]
    if len(parts) != 3 or parts[0].lower() != "rsi":
        raise ValueError(f"signal {text!r}: expected rsi:PERIOD:THRESHOLD, e.g. rsi:14:30")
    try:
        period = int(parts[1])
    except ValueError:
        raise ValueError(f"signal {text!r}: the RSI period must be a whole number") from None
    try:
        threshold = float(parts[2])
    except ValueError:
        raise ValueError(f"signal {text!r}: the RSI threshold must be a number") from None
    if period < 2:
        raise ValueError(f"signal {text!r}: the RSI period must be at least 2")
    if not 0.0 < threshold < 100.0:
        raise ValueError(f"signal {text!r}: the RSI threshold must lie strictly between 0 and 100")
    return SignalSpec("rsi", period, threshold)


def entry_signal(close: npt.ArrayLike, signal: SignalSpec, warmup: int = 100) -> Bools:
    """Candles on which a flat configuration enters: RSI below the threshold, from the warm-up on.

    ``warmup`` counts from 1: the ``warmup``-th candle (index ``warmup − 1``) is the first allowed.
    """
    if signal.kind != "rsi":
        raise ValueError(f"unknown signal kind {signal.kind!r}")
    if warmup < 1:
        raise ValueError("warmup must be at least 1 (the first candle that may enter, counting from 1)")
    closes = np.ascontiguousarray(close, dtype=np.float64)
    out = np.zeros(closes.shape[0], dtype=np.bool_)
    if closes.shape[0] <= signal.period:
        return out
    rsi = np.asarray(talib.RSI(closes, timeperiod=signal.period), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        below = rsi < signal.threshold  # NaN (before candle P) compares False
    out[warmup - 1 :] = below[warmup - 1 :]
    return out


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True, eq=False)
class SweepResult:
    """One row per configuration as parallel columns (the CSV's columns plus the trailing pair).

    ``trailing`` is the grid's variant index (0 = off); ``trail_start``/``trail_stop`` are the
    fractions of the TP distance (NaN when off). ``candles`` and ``signals`` describe the input:
    how many candles were simulated and on how many the entry signal was true.
    """

    tp_factor: F64
    sl_ratio: F64
    trailing: npt.NDArray[np.int8]
    trail_start: F64
    trail_stop: F64
    trades: I64
    wins: I64
    losses: I64
    net_return: F64
    pf_gross: F64
    avg_result_steps: F64
    max_drawdown: F64
    candles: int
    signals: int

    def __len__(self) -> int:
        return int(self.tp_factor.shape[0])


def trailing_label(start: float, stop: float) -> str:
    """The CSV's ``trailing`` cell: ``off`` or ``start/stop`` (fractions of the TP distance)."""
    if math.isnan(start):
        return "off"
    return f"{start:g}/{stop:g}"


# --------------------------------------------------------------------------- kernel


@_jit
def _next_entry(entries: Bools) -> I64:
    """``nxt[i]`` = the first index ≥ i whose entry signal is true, ``n`` if none (length n + 1)."""
    n = entries.shape[0]
    nxt = np.empty(n + 1, dtype=np.int64)
    nxt[n] = n
    for i in range(n - 1, -1, -1):
        nxt[i] = i if entries[i] else nxt[i + 1]
    return nxt


@_jit
def _block_stats(high: F64, low: F64, close: F64, block: int) -> tuple[F64, F64, F64, F64, F64]:
    """Per aligned block: min low, max high, min close, max close, internal max drawdown of closes.

    The internal drawdown is ``max over t of 1 − close[t] / max(close[block start .. t])``; with the
    peak before the block ``P`` the block's drawdown is ``max(1 − min close / P, internal)``.
    """
    n = close.shape[0]
    nb = (n + block - 1) // block
    bmin_low = np.empty(nb)
    bmax_high = np.empty(nb)
    bmin_close = np.empty(nb)
    bmax_close = np.empty(nb)
    bdd = np.empty(nb)
    for b in range(nb):
        start = b * block
        stop = min(start + block, n)
        lo = low[start]
        hi = high[start]
        cmin = close[start]
        cmax = close[start]
        dd = 0.0
        for t in range(start + 1, stop):
            lo = min(lo, low[t])
            hi = max(hi, high[t])
            c = close[t]
            cmin = min(cmin, c)
            if c > cmax:
                cmax = c
            else:
                dd = max(dd, 1.0 - c / cmax)
        bmin_low[b] = lo
        bmax_high[b] = hi
        bmin_close[b] = cmin
        bmax_close[b] = cmax
        bdd[b] = dd
    return bmin_low, bmax_high, bmin_close, bmax_close, bdd


# Per-configuration state carried from one chunk of candles to the next (rows of two arrays).
# Float columns:
_COST = 0  # entry × (1 + fee): the cost of one unit, fee included
_PER_COST = 1  # 1 / _COST
_QTY = 2  # units held
_TARGET = 3
_STOP = 4
_ACTIVATION = 5  # trailing activation price
_TRAIL_DIST = 6  # trailing retrace distance
_BEST = 7  # best price so far (trailing)
_EQUITY = 8  # cash while flat
_PEAK = 9  # peak of the marked equity curve
_DD = 10  # maximum drawdown so far
_GROSS_PROFIT = 11
_GROSS_LOSS = 12
_STEPS = 13  # Σ result in steps over trades
_ENTRY = 14
_STEP = 15  # entry × pc / 100
_N_FLOAT = 16
# Integer columns:
_NEXT = 0  # the next candle to look at: an exit check when open, an entry search when flat
_OPEN = 1
_TRADES = 2
_WINS = 3
_N_INT = 4


@_jit
def _sweep_chunk(
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    nxt: I64,
    shift: int,
    bmin_low: F64,
    bmax_high: F64,
    bmin_close: F64,
    bmax_close: F64,
    bdd: F64,
    tp_factor: F64,
    sl_ratio: F64,
    trail_start: F64,
    trail_stop: F64,
    pc_frac: float,
    fee: float,
    chunk_end: int,
    fs: F64,
    st: I64,
) -> None:
    """Advance every configuration up to (not including) candle ``chunk_end``; state in ``fs``/``st``.

    Rules as in the module docstring; each price level is computed with the expressions of
    ``geometry`` and the reference, so that every comparison, hence every trade, is identical.
    ``chunk_end`` is a multiple of the block size (or the end of the data), so a skipped block never
    straddles two chunks.
    """
    block = 1 << shift
    mask = block - 1
    buy = 1.0 + fee
    sell = 1.0 - fee
    for k in range(tp_factor.shape[0]):
        t = st[k, _NEXT]
        if t >= chunk_end:
            continue  # flat until a later signal, or finished
        tp = tp_factor[k]
        slr = sl_ratio[k]
        t_start = trail_start[k]
        t_stop = trail_stop[k]
        trailing = not np.isnan(t_start)
        in_position = st[k, _OPEN] != 0
        n_trades = st[k, _TRADES]
        n_wins = st[k, _WINS]
        cost = fs[k, _COST]
        per_cost = fs[k, _PER_COST]
        qty = fs[k, _QTY]
        target = fs[k, _TARGET]
        stop = fs[k, _STOP]
        activation = fs[k, _ACTIVATION]
        trail_dist = fs[k, _TRAIL_DIST]
        best = fs[k, _BEST]
        equity = fs[k, _EQUITY]
        peak = fs[k, _PEAK]
        dd = fs[k, _DD]
        gp = fs[k, _GROSS_PROFIT]
        gl = fs[k, _GROSS_LOSS]
        steps = fs[k, _STEPS]
        entry = fs[k, _ENTRY]
        step = fs[k, _STEP]
        keep = 1.0 - dd  # a mark below peak × keep is a new maximum drawdown (spares divisions)
        while True:
            if not in_position:
                i = nxt[t]
                if i >= chunk_end:
                    t = i
                    break
                entry = close[i]
                step = entry * pc_frac
                dist = tp * step
                target = entry + dist
                stop = entry - slr * dist
                activation = entry + t_start * dist
                trail_dist = t_stop * dist
                cost = entry * buy
                per_cost = 1.0 / cost
                qty = equity * per_cost
                best = entry
                in_position = True
                mark = qty * entry
                peak = max(peak, mark)
                if mark < peak * keep:
                    dd = max(dd, 1.0 - mark / peak)
                    keep = 1.0 - dd
                t = i + 1
            exit_price = 0.0
            hit = False
            while t < chunk_end:
                if (t & mask) == 0:  # a block starts here: cross it whole if no exit can trigger
                    b = t >> shift
                    skip = bmin_low[b] > stop
                    if skip:
                        if not trailing:
                            skip = bmax_high[b] < target
                        elif best >= activation:
                            skip = bmax_high[b] <= best and bmin_low[b] > best - trail_dist
                        else:
                            skip = bmax_high[b] < activation
                    if skip:
                        low_mark = qty * bmin_close[b]
                        if low_mark < peak * keep or bdd[b] > dd:
                            dd = max(dd, max(1.0 - low_mark / peak, bdd[b]))
                            keep = 1.0 - dd
                        peak = max(peak, qty * bmax_close[b])
                        if trailing:
                            best = max(best, bmax_high[b])
                        t += block
                        continue
                end = min((t | mask) + 1, chunk_end)  # walk the rest of this block candle by candle
                while t < end:
                    lo = low[t]
                    if lo <= stop:
                        op = open_[t]
                        exit_price = op if op <= stop else stop
                        hit = True
                        break
                    if trailing:
                        if best >= activation:
                            level = best - trail_dist
                            if lo <= level:
                                op = open_[t]
                                exit_price = op if op <= level else level
                                hit = True
                                break
                        best = max(best, high[t])
                    elif high[t] >= target:
                        op = open_[t]
                        exit_price = op if op >= target else target
                        hit = True
                        break
                    mark = qty * close[t]
                    peak = max(peak, mark)
                    if mark < peak * keep:
                        dd = max(dd, 1.0 - mark / peak)
                        keep = 1.0 - dd
                    t += 1
                if hit:
                    break
            if not hit:
                break  # the position carries into the next chunk
            proceeds = exit_price * sell
            equity = qty * proceeds
            n_trades += 1
            n_wins += 1 if proceeds > cost else 0
            ret = proceeds * per_cost - 1.0
            # Classified by the same comparison as a win, so a break-even trade (proceeds equal
            # to cost, ret within rounding of 0) counts on neither side in kernel and reference.
            if proceeds > cost:
                gp += max(ret, 0.0)
            elif proceeds < cost:
                gl += max(-ret, 0.0)
            steps += (exit_price - entry) / step
            peak = max(peak, equity)
            if equity < peak * keep:
                dd = max(dd, 1.0 - equity / peak)
                keep = 1.0 - dd
            in_position = False
            t += 1  # no re-entry on the exit candle
        st[k, _NEXT] = t
        st[k, _OPEN] = 1 if in_position else 0
        st[k, _TRADES] = n_trades
        st[k, _WINS] = n_wins
        fs[k, _COST] = cost
        fs[k, _PER_COST] = per_cost
        fs[k, _QTY] = qty
        fs[k, _TARGET] = target
        fs[k, _STOP] = stop
        fs[k, _ACTIVATION] = activation
        fs[k, _TRAIL_DIST] = trail_dist
        fs[k, _BEST] = best
        fs[k, _EQUITY] = equity
        fs[k, _PEAK] = peak
        fs[k, _DD] = dd
        fs[k, _GROSS_PROFIT] = gp
        fs[k, _GROSS_LOSS] = gl
        fs[k, _STEPS] = steps
        fs[k, _ENTRY] = entry
        fs[k, _STEP] = step


@_jit
def _sweep_kernel(
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    entries: Bools,
    shift: int,
    chunk: int,
    tp_factor: F64,
    sl_ratio: F64,
    trail_start: F64,
    trail_stop: F64,
    pc: float,
    fee: float,
) -> tuple[F64, I64]:
    """All configurations over all candles, chunk by chunk; returns the final state rows.

    Candles outer in chunks that stay in the L2 cache, configurations inner: every configuration
    reuses a chunk while it is cached, instead of each one streaming the whole file from memory.
    """
    n = close.shape[0]
    nxt = _next_entry(entries)
    bmin_low, bmax_high, bmin_close, bmax_close, bdd = _block_stats(high, low, close, 1 << shift)
    m = tp_factor.shape[0]
    fs = np.zeros((m, _N_FLOAT))
    st = np.zeros((m, _N_INT), dtype=np.int64)
    for k in range(m):
        fs[k, _EQUITY] = 1.0
        fs[k, _PEAK] = 1.0
    pc_frac = pc / 100.0
    for start in range(0, n, chunk):
        _sweep_chunk(
            open_,
            high,
            low,
            close,
            nxt,
            shift,
            bmin_low,
            bmax_high,
            bmin_close,
            bmax_close,
            bdd,
            tp_factor,
            sl_ratio,
            trail_start,
            trail_stop,
            pc_frac,
            fee,
            min(start + chunk, n),
            fs,
            st,
        )
    for k in range(m):
        if st[k, _OPEN] != 0:  # still open: valued at the last close, no exit fee, not a trade
            fs[k, _EQUITY] = fs[k, _QTY] * close[n - 1]
    return fs, st


# --------------------------------------------------------------------------- public API


def _validated_prices(candles: CandleArrays) -> tuple[F64, F64, F64, F64]:
    arrays = tuple(
        np.ascontiguousarray(a, dtype=np.float64)
        for a in (candles.open, candles.high, candles.low, candles.close)
    )
    for name, a in zip(("open", "high", "low", "close"), arrays, strict=True):
        if a.size and not (np.isfinite(a).all() and (a > 0.0).all()):
            raise ValueError(f"sweep: every {name} price must be a finite positive number")
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _check_costs(pc: float, fee_pct: float) -> None:
    if not (math.isfinite(pc) and pc > 0.0):
        raise ValueError("pc (position cost, percent) must be a positive number")
    if not (math.isfinite(fee_pct) and 0.0 <= fee_pct < 100.0):
        raise ValueError("fee (percent per side) must be at least 0 and below 100")


def assemble_result(
    grid: ConfigGrid,
    trades: I64,
    wins: I64,
    gross_profit: F64,
    gross_loss: F64,
    sum_steps: F64,
    final_equity: F64,
    max_drawdown: F64,
    *,
    candles: int,
    signals: int,
) -> SweepResult:
    """Derive the ratio columns from the raw per-configuration sums (shared with the reference)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pf = np.where(
            gross_loss > 0.0,
            gross_profit / np.where(gross_loss > 0.0, gross_loss, 1.0),
            np.where(gross_profit > 0.0, np.inf, np.nan),
        )
        avg = np.where(trades > 0, sum_steps / np.maximum(trades, 1), np.nan)
    return SweepResult(
        tp_factor=grid.tp_factor.copy(),
        sl_ratio=grid.sl_ratio.copy(),
        trailing=grid.trailing.copy(),
        trail_start=grid.trail_start.copy(),
        trail_stop=grid.trail_stop.copy(),
        trades=trades,
        wins=wins,
        losses=trades - wins,
        net_return=final_equity - 1.0,
        pf_gross=pf.astype(np.float64),
        avg_result_steps=avg.astype(np.float64),
        max_drawdown=max_drawdown,
        candles=candles,
        signals=signals,
    )


def simulate_entries(
    candles: CandleArrays,
    entries: Bools,
    *,
    pc: float = 0.1,
    fee_pct: float = 0.1,
    grid: ConfigGrid = MAIN_GRID,
    block_size: int = DEFAULT_BLOCK_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SweepResult:
    """Run the grid on ``candles`` with an explicit entry-signal mask (warm-up already applied).

    ``run_sweep`` is this plus the RSI signal; tests and other signals use it directly.
    ``block_size`` and ``chunk_size`` (powers of two, the chunk at least a block) only change the
    speed, never the result.
    """
    _check_costs(pc, fee_pct)
    for name, size in (("block_size", block_size), ("chunk_size", chunk_size)):
        if size < 1 or size & (size - 1):
            raise ValueError(f"{name} must be a power of two")
    if chunk_size < block_size:
        raise ValueError("chunk_size must be at least block_size")
    o, h, lo, c = _validated_prices(candles)
    mask = np.ascontiguousarray(entries, dtype=np.bool_)
    if mask.shape != c.shape:
        raise ValueError(f"entries has {mask.shape[0]} values for {c.shape[0]} candles")
    m = len(grid)
    fs: F64 = np.zeros((m, _N_FLOAT))
    st: I64 = np.zeros((m, _N_INT), dtype=np.int64)
    fs[:, _EQUITY] = 1.0
    if c.shape[0] and m:
        fs, st = _sweep_kernel(
            o,
            h,
            lo,
            c,
            mask,
            block_size.bit_length() - 1,
            chunk_size,
            np.ascontiguousarray(grid.tp_factor, dtype=np.float64),
            np.ascontiguousarray(grid.sl_ratio, dtype=np.float64),
            np.ascontiguousarray(grid.trail_start, dtype=np.float64),
            np.ascontiguousarray(grid.trail_stop, dtype=np.float64),
            float(pc),
            float(fee_pct) / 100.0,
        )
    return assemble_result(
        grid,
        st[:, _TRADES].copy(),
        st[:, _WINS].copy(),
        fs[:, _GROSS_PROFIT].copy(),
        fs[:, _GROSS_LOSS].copy(),
        fs[:, _STEPS].copy(),
        fs[:, _EQUITY].copy(),
        fs[:, _DD].copy(),
        candles=int(c.shape[0]),
        signals=int(mask.sum()),
    )


def run_sweep(
    candles: CandleArrays,
    signal: SignalSpec,
    *,
    pc: float = 0.1,
    fee_pct: float = 0.1,
    grid: ConfigGrid = MAIN_GRID,
    warmup: int = 100,
) -> SweepResult:
    """The ``sweep`` command: every configuration of ``grid`` on ``candles`` (module docstring)."""
    entries = entry_signal(np.asarray(candles.close, dtype=np.float64), signal, warmup)
    return simulate_entries(candles, entries, pc=pc, fee_pct=fee_pct, grid=grid)


def _format_rows(result: SweepResult) -> list[list[str]]:
    rows: list[list[str]] = []
    for k in range(len(result)):
        rows.append(
            [
                f"{float(result.tp_factor[k]):g}",
                f"{float(result.sl_ratio[k]):g}",
                trailing_label(float(result.trail_start[k]), float(result.trail_stop[k])),
                str(int(result.trades[k])),
                str(int(result.wins[k])),
                str(int(result.losses[k])),
                repr(float(result.net_return[k])),
                repr(float(result.pf_gross[k])),
                repr(float(result.avg_result_steps[k])),
                repr(float(result.max_drawdown[k])),
            ]
        )
    return rows


def write_sweep_csv(result: SweepResult, out: str | os.PathLike[str] | TextIO) -> None:
    """Write the header and one row per configuration, in grid order.

    Numbers are written round-trip exact (``repr``); ``inf``/``nan`` as Python spells them, which
    pandas and ``float()`` read back. A path is written whole to a temporary file and then renamed,
    so an interrupted run never leaves a half-written CSV behind.
    """
    if not isinstance(out, str | os.PathLike):
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(_format_rows(result))
        return
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CSV_HEADER)
            writer.writerows(_format_rows(result))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
