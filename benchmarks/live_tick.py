"""One live tick through indications + pseudo book + statistics/evaluation/promotion, 50 symbols.

    python benchmarks/live_tick.py --symbols 50 [--ticks-per-symbol 400] [--sigma 0.001]

Each symbol is first given 924 configurations × 5 indication types of open pseudo entries
(4,620), then ticks arrive round-robin (1 s apart per symbol, random walk) and every
``PseudoPipeline.on_tick`` call is timed. Prints ``name=value`` lines; the target is
``tick_p99_ms`` ≤ 2. For comparison the same ticks' book step is also run through the plain
per-entry reference loop (``ReferenceBook``) on one symbol, in the same process.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np

from cts_desktop.engine.pseudo.book import warm_up
from cts_desktop.engine.pseudo.book_reference import ReferenceBook
from cts_desktop.engine.pseudo.grid import MAIN_GRID
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline, SetKey

SEEDED_TYPES = ("direction", "move", "active", "active_advanced", "optimal")


def seed_open_entries(pipeline: PseudoPipeline, symbol: str, price: float, ts_ms: int) -> None:
    """924 configurations × 5 indication types open, as if five triggers had just fired."""
    for kind in SEEDED_TYPES:
        key = SetKey(symbol, f"{symbol}-{kind}-seed", None, 1)
        start = pipeline.registry.block(key, len(MAIN_GRID))
        pipeline.stats.ensure(len(pipeline.registry))
        sets = start + np.arange(len(MAIN_GRID), dtype=np.int64)
        pipeline.book.open_entries(
            symbol, sets, 1, price, ts_ms, MAIN_GRID, position_cost_pct=pipeline.position_cost_pct,
            fee_fraction=pipeline.fee_fraction,
        )  # fmt: skip


def run(symbols: int, ticks_per_symbol: int, sigma: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    pipeline = PseudoPipeline()
    names = [f"SYM{i:02d}/USDT" for i in range(symbols)]
    prices = np.full(symbols, 100.0)
    t0 = 1_700_000_000_000
    # Warm-up: fill the indication windows (Active-advanced looks 40 min back) without timing.
    warm_up()
    pipeline.accepting_new = False  # fill the windows, but start timing from exactly 4,620 open
    for second in range(2_500):
        prices *= 1 + rng.normal(0.0, sigma, symbols)
        for j, name in enumerate(names):
            pipeline.on_tick(name, float(prices[j]), t0 + second * 1000)
    t = t0 + 2_500 * 1000
    pipeline.accepting_new = True
    for j, name in enumerate(names):
        seed_open_entries(pipeline, name, float(prices[j]), t)
    open_before = statistics.mean(pipeline.book.open_count(n) for n in names)
    durations: list[float] = []
    signals = closes = 0
    reference_ticks: list[tuple[float, int]] = []
    gc.collect()
    for step in range(ticks_per_symbol):
        t += 1000
        prices *= 1 + rng.normal(0.0, sigma, symbols)
        for j, name in enumerate(names):
            price = float(prices[j])
            started = time.perf_counter_ns()
            outcome = pipeline.on_tick(name, price, t)
            durations.append((time.perf_counter_ns() - started) / 1e6)
            signals += len(outcome.signals)
            closes += len(outcome.closed)
            if j == 0 and step < 200:
                reference_ticks.append((price, t))
    # Reference: the plain per-entry loop on the first symbol's seeded entries and ticks.
    reference = ReferenceBook()
    ref_t = t0 + 2_500 * 1000
    for kind in SEEDED_TYPES:
        key = SetKey(names[0], f"ref-{kind}", None, 1)
        start = pipeline.registry.block(key, len(MAIN_GRID))
        reference.open_entries(
            names[0], start + np.arange(len(MAIN_GRID)), 1, 100.0, ref_t, MAIN_GRID,
            position_cost_pct=pipeline.position_cost_pct, fee_fraction=pipeline.fee_fraction,
        )  # fmt: skip
    ref_durations = []
    for price, ts in reference_ticks:
        started = time.perf_counter_ns()
        reference.on_tick(names[0], 100.0 * price / reference_ticks[0][0], ts)
        ref_durations.append((time.perf_counter_ns() - started) / 1e6)
    ordered = sorted(durations)
    return {
        "symbols": symbols,
        "ticks": len(durations),
        "open_entries_per_symbol_at_start": round(open_before),
        "open_entries_per_symbol_at_end": round(statistics.mean(pipeline.book.open_count(n) for n in names)),
        "signals_per_tick": signals / len(durations),
        "closes_per_tick": closes / len(durations),
        "tick_median_ms": statistics.median(durations),
        "tick_p99_ms": ordered[int(0.99 * (len(ordered) - 1))],
        "tick_max_ms": ordered[-1],
        "reference_book_tick_median_ms": statistics.median(ref_durations) if ref_durations else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--ticks-per-symbol", type=int, default=400)
    parser.add_argument("--sigma", type=float, default=0.001, help="per-second volatility of the walk")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    runs = [run(args.symbols, args.ticks_per_symbol, args.sigma, args.seed + r) for r in range(args.repeat)]
    for name in runs[0]:
        values = [r[name] for r in runs]
        print(f"{name}={statistics.median(values):.6g}")
    print(f"target_tick_p99_ms=2 met={statistics.median(r['tick_p99_ms'] for r in runs) <= 2.0}")


if __name__ == "__main__":
    main()
