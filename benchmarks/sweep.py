"""Speed and memory of the configuration sweep kernel (``cts_desktop.engine.pseudo.sweep``).

    NUMBA_NUM_THREADS=1 python benchmarks/sweep.py --configs 250 --candles 1000000 --repeat 5

Synthetic candles: a seeded geometric random walk (``--sigma`` = per-candle log-return standard
deviation; 0.001 is about a BTC 1-minute candle, 0.007 a 1-hour one), opens jittered off the previous
close, highs and lows beyond the body. The grid is the first ``--configs`` rows of the 924-row main
grid (tiled when more are asked for). The timed call is the whole ``run_sweep`` (RSI(14) < 30
signal, block statistics and the kernel); the compile happens in a warm-up call first and is not
timed. Prints medians over ``--repeat`` runs:

- ``config_candles_per_s=``: configurations × candles / seconds (target ≥ 6e8 on one core);
- ``peak_rss_mb=``: the process's peak resident memory (``ru_maxrss``; target ≤ 1 GB);
- ``reference_match=``: the kernel equals the plain Python loop (``sweep_reference``) on the first
  ``--check-candles`` candles × all requested configurations (counts exactly, money to 1e-9).

``--compare-layouts`` also times what the kernel's design was chosen against: the kernel without
cache chunks (each configuration streaming the whole file), also without block skipping (every
in-position candle walked), and the plain loop order candles outer / configurations inner with all
state in arrays (``candles_outer_kernel`` below, checked on final equity).
numba runs one thread: the kernel has no ``prange``, and ``NUMBA_NUM_THREADS`` is pinned to 1 here.
"""

from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"  # before numba is imported: the single-core figure

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from cts_desktop.engine.pseudo.grid import MAIN_GRID, ConfigGrid
from cts_desktop.engine.pseudo.sweep import (
    DEFAULT_BLOCK_SIZE,
    SweepResult,
    entry_signal,
    parse_signal,
    run_sweep,
    simulate_entries,
)
from cts_desktop.engine.pseudo.sweep_reference import reference_entries
from cts_desktop.exchanges.candle_files import CandleArrays

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
SIGNAL = parse_signal("rsi:14:30")


def synthetic_candles(n: int, *, sigma: float, seed: int) -> CandleArrays:
    """A seeded random walk with realistic OHLC shape (opens near the previous close)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    open_ = prev * np.exp(rng.normal(0.0, sigma * 0.1, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma * 0.5, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma * 0.5, n)))
    ts = np.arange(n, dtype=np.int64) * 60_000
    return CandleArrays(ts, open_, high, low, close, np.ones(n))


def grid_of_size(n: int) -> ConfigGrid:
    """The first ``n`` configurations of the main grid, tiled when ``n`` > 924."""
    rows = np.arange(n) % len(MAIN_GRID)
    return ConfigGrid(
        tp_factor=MAIN_GRID.tp_factor[rows].copy(),
        sl_ratio=MAIN_GRID.sl_ratio[rows].copy(),
        trailing=MAIN_GRID.trailing[rows].copy(),
        trail_start=MAIN_GRID.trail_start[rows].copy(),
        trail_stop=MAIN_GRID.trail_stop[rows].copy(),
    )


def results_match(a: SweepResult, b: SweepResult) -> bool:
    counts = all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("trades", "wins", "losses"))
    money = all(
        np.allclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-9, equal_nan=True)
        for f in ("net_return", "pf_gross", "avg_result_steps", "max_drawdown")
    )
    return counts and money


def _jit[F: Callable[..., Any]](fn: F) -> F:
    compiled: F = njit(cache=True)(fn)  # numba is untyped: keep the function's own signature
    return compiled


@_jit
def candles_outer_kernel(
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    entries: npt.NDArray[np.bool_],
    tp_factor: F64,
    sl_ratio: F64,
    trail_start: F64,
    trail_stop: F64,
    pc: float,
    fee: float,
    out: F64,
) -> None:
    """The rejected layout: every configuration's state in arrays, updated candle by candle.

    Same rules as the kernel; it cannot skip flat stretches or quiet blocks per configuration, and
    touches all state arrays on every candle. ``out[k]`` receives the final equity.
    """
    n = close.shape[0]
    m = tp_factor.shape[0]
    buy = 1.0 + fee
    sell = 1.0 - fee
    in_pos = np.zeros(m, dtype=np.bool_)
    equity = np.ones(m)
    qty = np.zeros(m)
    entry = np.zeros(m)
    target = np.zeros(m)
    stop = np.zeros(m)
    act = np.zeros(m)
    tdist = np.zeros(m)
    best = np.zeros(m)
    peak = np.ones(m)
    dd = np.zeros(m)
    trailing = ~np.isnan(trail_start)
    for t in range(n):
        o = open_[t]
        h = high[t]
        lo = low[t]
        c = close[t]
        sig = entries[t]
        for k in range(m):
            exited = False
            if in_pos[k]:
                px = -1.0
                if lo <= stop[k]:
                    px = o if o <= stop[k] else stop[k]
                elif trailing[k]:
                    if best[k] >= act[k]:
                        level = best[k] - tdist[k]
                        if lo <= level:
                            px = o if o <= level else level
                elif h >= target[k]:
                    px = o if o >= target[k] else target[k]
                if px < 0.0:
                    best[k] = max(best[k], h)
                else:
                    equity[k] = qty[k] * px * sell
                    in_pos[k] = False
                    exited = True
            if sig and not in_pos[k] and not exited:
                e = c
                d = tp_factor[k] * (e * (pc / 100.0))
                entry[k] = e
                target[k] = e + d
                stop[k] = e - sl_ratio[k] * d
                act[k] = e + trail_start[k] * d
                tdist[k] = trail_stop[k] * d
                qty[k] = equity[k] / (e * buy)
                best[k] = e
                in_pos[k] = True
            mark = qty[k] * c if in_pos[k] else equity[k]
            if mark > peak[k]:
                peak[k] = mark
            else:
                dd[k] = max(dd[k], 1.0 - mark / peak[k])
    for k in range(m):
        out[k] = qty[k] * close[n - 1] if in_pos[k] else equity[k]


def timed(fn: Callable[[], Any], repeat: int, cpu: list[float] | None = None) -> float:
    """Median wall time of ``repeat`` calls (their median CPU time is appended to ``cpu``).

    On a shared machine the CPU time shows whether a slow wall time was our code or a neighbour.
    """
    walls = []
    cpus = []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(statistics.median(cpus))
    return statistics.median(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", type=int, default=250)
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the median is printed")
    parser.add_argument("--sigma", type=float, default=0.001, help="per-candle log-return std")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pc", type=float, default=0.1)
    parser.add_argument("--fee", type=float, default=0.1)
    parser.add_argument("--check-candles", type=int, default=2_000)
    parser.add_argument("--compare-layouts", action="store_true")
    args = parser.parse_args(argv)

    candles = synthetic_candles(args.candles, sigma=args.sigma, seed=args.seed)
    grid = grid_of_size(args.configs)

    def sweep() -> SweepResult:
        return run_sweep(candles, SIGNAL, pc=args.pc, fee_pct=args.fee, grid=grid)

    warm = synthetic_candles(500, sigma=args.sigma, seed=1)
    run_sweep(warm, SIGNAL, grid=grid)  # compile (or load the cache) outside the timing
    cpu: list[float] = []
    seconds = timed(sweep, args.repeat, cpu)
    result = sweep()
    rate = args.configs * args.candles / seconds

    check = CandleArrays(
        candles.ts_ms[: args.check_candles],
        candles.open[: args.check_candles],
        candles.high[: args.check_candles],
        candles.low[: args.check_candles],
        candles.close[: args.check_candles],
        candles.volume[: args.check_candles],
    )
    check_entries = entry_signal(check.close, SIGNAL, 100)
    match = results_match(
        simulate_entries(check, check_entries, pc=args.pc, fee_pct=args.fee, grid=grid),
        reference_entries(check, check_entries, pc=args.pc, fee_pct=args.fee, grid=grid),
    )

    print(f"configs={args.configs} candles={args.candles} sigma={args.sigma} repeat={args.repeat}")
    print(f"signals={result.signals} trades_total={int(result.trades.sum())}")
    print(f"seconds_median={seconds:.4f}")
    print(f"config_candles_per_s={rate:.3e}")
    print(f"cpu_time_config_candles_per_s={args.configs * args.candles / cpu[0]:.3e}")

    if args.compare_layouts:
        entries = entry_signal(candles.close, SIGNAL, 100)
        whole = 1 << args.candles.bit_length()  # one chunk / one block: that feature switched off
        variants = {  # name: (block_size, chunk_size)
            "unchunked": (DEFAULT_BLOCK_SIZE, whole),
            "unchunked_no_block_skip": (whole, whole),
        }
        for name, (block_size, chunk_size) in variants.items():

            def variant(block_size: int = block_size, chunk_size: int = chunk_size) -> SweepResult:
                return simulate_entries(
                    candles,
                    entries,
                    pc=args.pc,
                    fee_pct=args.fee,
                    grid=grid,
                    block_size=block_size,
                    chunk_size=chunk_size,
                )

            variant_seconds = timed(variant, args.repeat)
            print(f"{name}_config_candles_per_s={args.configs * args.candles / variant_seconds:.3e}")
        out = np.empty(len(grid))

        def outer_loop(limit: int) -> None:
            candles_outer_kernel(
                candles.open[:limit],
                candles.high[:limit],
                candles.low[:limit],
                candles.close[:limit],
                entries[:limit],
                grid.tp_factor,
                grid.sl_ratio,
                grid.trail_start,
                grid.trail_stop,
                args.pc,
                args.fee / 100.0,
                out,
            )

        outer_loop(500)  # compile
        outer = timed(lambda: outer_loop(args.candles), args.repeat)
        same = np.allclose(out, result.net_return + 1.0, rtol=1e-9, atol=1e-12)
        print(f"candles_outer_config_candles_per_s={args.configs * args.candles / outer:.3e}")
        print(f"candles_outer_equity_match={str(same).lower()}")

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak_rss_mb={peak_rss_mb:.1f}")
    print(f"reference_match={str(match).lower()}")
    return 0 if match else 1


if __name__ == "__main__":
    sys.exit(main())
