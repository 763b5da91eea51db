"""Per-tick cost of the step indications of one symbol (DOMAIN §1; issue: incremental, not a
recomputation of history per tick).

Feeds random-walk ticks, one per second (every tick closes a sample, so every tick is a full
evaluation), into an :class:`IndicationEngine` with every type enabled (Direction, Move, Active,
Active-advanced, Optimal) over all ranges 3-30, after a warm-up that fills the 40-minute
Active-advanced window. Reports the median and p99 of ``on_tick`` in µs for:

- ``volatile``: σ = 0.15 % per second, busy enough that the market-activity gate is open most of
  the time and every detector reaches its slow path (the worst case; prints the gate's open share);
- ``volatile_nogate``: the same path with the activity check off (every tick evaluates everything);
- ``volatile_defaults``: the same path with the shipped settings (Optimal off, D17);
- ``calm``: σ = 0.03 % per second (a quiet large-cap); the gate is mostly shut, the realistic case;
- ``subsecond``: the volatile path with 4 ticks per second (3 of 4 ticks only update the open bucket);
- ``naive``: the same volatile path through a per-tick recomputation of every key from the sample
  list with the plain rules (``*_naive`` functions), for comparison (fewer ticks: it is slow).

Run: ``python benchmarks/indications.py [--ticks N] [--naive-ticks N] [--seed S]``. Output is
``name=value`` lines.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.indications import IndicationEngine
from cts_desktop.engine.indications.active import (
    ACTIVE_THRESHOLDS,
    ADVANCED_RATIOS,
    ADVANCED_WINDOWS_MIN,
    active_advanced_naive,
    active_naive,
)
from cts_desktop.engine.indications.direction import direction_naive
from cts_desktop.engine.indications.move import move_naive
from cts_desktop.engine.indications.optimal import optimal_naive

ALL_ON = {"indication.optimal_enabled": True}
WARMUP_S = 2_460  # a little more than the 40-minute window


def random_walk(n: int, sigma_pct: float, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    prices: npt.NDArray[np.float64] = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma_pct / 100.0, n)))
    return np.round(prices, 4)  # a price grid, so flat steps occur as on a real book


def measure(
    step: Callable[[float, int], int], prices: npt.NDArray[np.float64], ticks_per_s: int
) -> tuple[npt.NDArray[np.float64], int]:
    """Time ``step(price, ts_ms)`` per tick; return the µs of every tick and the signals emitted."""
    gc.collect()
    times = np.empty(len(prices), dtype=np.float64)
    signals = 0
    dt_ms = 1000 // ticks_per_s
    clock = time.perf_counter_ns
    for i, price in enumerate(prices.tolist()):
        t0 = clock()
        signals += step(price, WARMUP_S * 1000 + i * dt_ms)
        times[i] = (clock() - t0) / 1000.0
    return times, signals


def engine_case(
    name: str,
    prices: npt.NDArray[np.float64],
    warm: npt.NDArray[np.float64],
    settings: dict[str, object],
    tps: int,
) -> None:
    engine = IndicationEngine("BENCH", settings)
    for i, price in enumerate(warm.tolist()):
        engine.on_tick(price, i * 1000)
    open_ticks = 0

    def step(price: float, ts: int) -> int:
        nonlocal open_ticks
        n = len(engine.on_tick(price, ts))
        reading = engine.activity
        open_ticks += reading is not None and reading.is_open
        return n

    us, signals = measure(step, prices, tps)
    report(name, us, signals)
    if engine.config.activity_enabled:
        print(f"{name}.gate_open_share={open_ticks / len(prices):.3f}")


def report(name: str, us: npt.NDArray[np.float64], signals: int) -> None:
    print(f"{name}.ticks={len(us)}")
    print(f"{name}.us_median={np.median(us):.1f}")
    print(f"{name}.us_p99={np.percentile(us, 99):.1f}")
    print(f"{name}.us_max={us.max():.1f}")
    print(f"{name}.signals_per_tick={signals / len(us):.3f}")


class NaiveIndications:
    """Every key recomputed from the sample list on every tick with the plain rules (no state
    beyond the list and Optimal's trackers): what "a recomputation of history per tick" costs."""

    def __init__(self, keep: int = 2_401) -> None:
        self.prices: list[float] = []
        self.times: list[int] = []
        self.keep = keep
        self.tracking: dict[int, tuple[int, int]] = {}

    def on_sample(self, price: float, ts_ms: int) -> int:
        self.prices.append(price)
        self.times.append(ts_ms)
        if len(self.prices) > self.keep:
            del self.prices[0], self.times[0]
            self.tracking = {r: (s - 1, d) for r, (s, d) in self.tracking.items()}
        p, t = self.prices, self.times
        fired = 0
        if not self._gate_open(p):
            return 0
        for r in range(3, 31):
            fired += bool(direction_naive(p, r, 0.5)) + bool(move_naive(p, r, 0.3))
        fired += sum(bool(active_naive(p, t, thr)) for thr in ACTIVE_THRESHOLDS)
        for ratio in ADVANCED_RATIOS:
            for window in ADVANCED_WINDOWS_MIN:
                fired += bool(active_advanced_naive(p, t, ratio, window)[0])
        now = len(p) - 1
        for r, (start, d) in list(self.tracking.items()):
            if now - start >= 3:
                del self.tracking[r]
                fired += len(optimal_naive(p[start:], d, 1, 0.1))
        for r in range(3, 31):
            if r not in self.tracking and (d := direction_naive(p, r, 0.0)):
                self.tracking[r] = (now, d)
        return fired

    @staticmethod
    def _gate_open(p: list[float], frames: int = 10) -> bool:
        if len(p) < frames + 1:
            return False
        w = p[-(frames + 1) :]
        changes = [abs(w[i + 1] - w[i]) / w[i] * 100.0 for i in range(frames)]
        mean = sum(changes) / frames
        std = (sum((c - mean) ** 2 for c in changes) / frames) ** 0.5
        return mean >= 0.1 and std >= 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--naive-ticks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"python={platform.python_version()}")
    print(f"numpy={np.__version__}")
    print(f"machine={platform.machine()}")
    print("ranges=3-30 types=direction,move,active,active_advanced,optimal timeframe_s=1")

    volatile = random_walk(WARMUP_S + args.ticks, 0.15, args.seed)
    calm = random_walk(WARMUP_S + args.ticks, 0.03, args.seed)
    warm_v, run_v = volatile[:WARMUP_S], volatile[WARMUP_S:]
    engine_case("volatile", run_v, warm_v, ALL_ON, 1)
    engine_case("volatile_nogate", run_v, warm_v, {**ALL_ON, "indication.market_activity_enabled": False}, 1)
    engine_case("volatile_defaults", run_v, warm_v, {}, 1)
    engine_case("calm", calm[WARMUP_S:], calm[:WARMUP_S], ALL_ON, 1)
    engine_case("subsecond", np.repeat(run_v[: args.ticks // 4], 4), warm_v, ALL_ON, 4)

    naive = NaiveIndications()
    for i, price in enumerate(warm_v.tolist()):
        naive.prices.append(price)
        naive.times.append(i * 1000)
    naive.prices, naive.times = naive.prices[-naive.keep :], naive.times[-naive.keep :]
    us, signals = measure(naive.on_sample, run_v[: args.naive_ticks], 1)
    report("naive", us, signals)
    engine_us, _ = measure(_engine_stepper(warm_v), run_v[: args.naive_ticks], 1)
    print(f"same_ticks.engine_us_median={np.median(engine_us):.1f}")
    print(f"same_ticks.speedup_median={np.median(us) / np.median(engine_us):.0f}")


def _engine_stepper(warm: npt.NDArray[np.float64]) -> Callable[[float, int], int]:
    engine = IndicationEngine("BENCH", ALL_ON)
    for i, price in enumerate(warm.tolist()):
        engine.on_tick(price, i * 1000)
    return lambda price, ts: len(engine.on_tick(price, ts))


if __name__ == "__main__":
    main()
