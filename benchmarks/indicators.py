"""Benchmark the preset indicators against TA-Lib, in the same process.

Batch mode (``--candles N``, default 1,000,000): every ``cts_desktop.engine.indicators.batch``
function against the bare TA-Lib call on the same synthetic random-walk OHLC (highs and lows
drawn around the open/close body, so SAR and ADX see real ranges). Prints, as ``name=value``
lines, the median milliseconds of ``--repeat`` interleaved runs, the ratio ours/TA-Lib (target
≤ 2) and the maximum absolute difference after the warm-up (target ≤ 1e-8).

Incremental mode (``--incremental``; ``--candles`` then defaults to 100,000): each
``incremental`` updater fed candle by candle; prints the median µs per new candle (target ≤ 2),
the maximum absolute difference to TA-Lib's batch values on the same candles after the warm-up,
and, for reference, the µs TA-Lib needs to recompute the indicator over the last 500 candles
(what a live engine without updaters would do for every new candle).

``--pandas-ta`` adds pandas-ta's PSAR and ADX (batch mode): the fraction of bars where its PSAR
disagrees with TA-Lib and its ADX time — the reasons neither is shipped.

Run: ``python benchmarks/indicators.py --candles 1000000`` and
``python benchmarks/indicators.py --incremental``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import talib
from talib._ta_lib import MA_Type

from cts_desktop.engine.indicators import batch, incremental

F64 = npt.NDArray[np.float64]
SMA = MA_Type.SMA
WINDOW = 500  # the "recompute the last N candles" reference of the incremental mode


@dataclass(frozen=True)
class Ohlc:
    open: F64
    high: F64
    low: F64
    close: F64


def synthetic(n: int, seed: int) -> Ohlc:
    """A geometric random walk near 30,000 with wicks around each candle body."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.empty(n)
    open_[0] = close[0]
    open_[1:] = close[:-1]
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.001, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.001, n)))
    return Ohlc(open_, high, low, close)


def emit(name: str, value: float) -> None:
    print(f"{name}={value:.6g}", flush=True)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def max_diff(ours: Sequence[F64], ref: Sequence[F64]) -> float:
    """Max |ours − ref| wherever ours has a value. NaN (a failure) when ours has a value where
    TA-Lib has none, or when TA-Lib's main output (the first) has one where ours has none;
    secondary outputs may start earlier in TA-Lib (+DI/−DI before the ADX)."""
    worst = 0.0
    for j, (a, b) in enumerate(zip(ours, ref, strict=True)):
        have = ~np.isnan(a)
        if np.any(np.isnan(b[have])) or (j == 0 and np.any(~have & ~np.isnan(b))):
            return float("nan")
        if have.any():
            worst = max(worst, float(np.max(np.abs(a[have] - b[have]))))
    return worst


def batch_cases(d: Ohlc) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    h, lo, c = d.high, d.low, d.close
    return {
        "rsi": (lambda: [batch.rsi(c, 14)], lambda: [talib.RSI(c, 14)]),
        "macd": (lambda: list(batch.macd(c, 12, 26, 9)), lambda: list(talib.MACD(c, 12, 26, 9))),
        "bb": (
            lambda: list(batch.bollinger(c, 20, 2.0)),
            lambda: list(talib.BBANDS(c, 20, 2.0, 2.0, SMA))[::-1],
        ),
        "atr": (lambda: [batch.atr(h, lo, c, 14)], lambda: [talib.ATR(h, lo, c, 14)]),
        "adx": (lambda: [batch.adx(h, lo, c, 14)], lambda: [talib.ADX(h, lo, c, 14)]),
        "psar": (lambda: [batch.psar(h, lo, 0.02, 0.2)], lambda: [talib.SAR(h, lo, 0.02, 0.2)]),
        "ema": (lambda: [batch.ema(c, 9)], lambda: [talib.EMA(c, 9)]),
        "sma": (lambda: [batch.sma(c, 10)], lambda: [talib.SMA(c, 10)]),
        "stoch": (
            lambda: list(batch.stochastic(h, lo, c, 14, 3, 3)),
            lambda: list(talib.STOCH(h, lo, c, 14, 3, SMA, 3, SMA)),
        ),
    }


def run_batch(d: Ohlc, repeat: int, with_pandas_ta: bool) -> None:
    for name, (ours, ref) in batch_cases(d).items():
        ours(), ref()  # untimed first calls: page in the arrays and TA-Lib's code
        ours_t: list[float] = []
        ref_t: list[float] = []
        for _ in range(repeat):  # interleaved, so drift (thermal, other load) hits both alike
            ours_t.append(median_ms(ours, 1))
            ref_t.append(median_ms(ref, 1))
        ours_ms, ref_ms = statistics.median(ours_t), statistics.median(ref_t)
        emit(f"{name}_ms", ours_ms)
        emit(f"{name}_talib_ms", ref_ms)
        emit(f"{name}_ratio", ours_ms / ref_ms)
        emit(f"{name}_maxdiff", max_diff(ours(), ref()))
    from cts_desktop.exchanges.candle_files import CandleArrays

    n = len(d.close)
    candles = CandleArrays(np.arange(n, dtype=np.int64) * 60_000, d.open, d.high, d.low, d.close, np.ones(n))
    emit("preset_columns_ms", median_ms(lambda: batch.preset_columns(candles), repeat))
    if with_pandas_ta:
        run_pandas_ta(d, repeat)


def run_pandas_ta(d: Ohlc, repeat: int) -> None:
    import pandas as pd  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas_ta

        h, lo, c = pd.Series(d.high), pd.Series(d.low), pd.Series(d.close)
        ps = pandas_ta.psar(h, lo, c, af0=0.02, af=0.02, max_af=0.2)
        long_, short = ps.iloc[:, 0].to_numpy(), ps.iloc[:, 1].to_numpy()
        theirs = np.where(np.isnan(long_), short, long_)
        ref = talib.SAR(d.high, d.low, 0.02, 0.2)
        both = ~np.isnan(theirs) & ~np.isnan(ref)
        emit(
            "pandas_ta_psar_mismatch_fraction", float(np.mean(~np.isclose(theirs[both], ref[both], 0, 1e-8)))
        )
        emit("pandas_ta_adx_ms", median_ms(lambda: pandas_ta.adx(h, lo, c, length=14), max(1, repeat // 3)))


def incremental_cases(
    d: Ohlc,
) -> dict[str, tuple[Callable[[], Any], str, Callable[[F64, F64, F64], list[F64]]]]:
    """name → (factory, input kind, TA-Lib batch reference)."""
    return {
        "rsi": (lambda: incremental.Rsi(14), "c", lambda h, lo, c: [talib.RSI(c, 14)]),
        "macd": (lambda: incremental.Macd(12, 26, 9), "c", lambda h, lo, c: list(talib.MACD(c, 12, 26, 9))),
        "bb": (
            lambda: incremental.Bollinger(20, 2.0),
            "c",
            lambda h, lo, c: list(talib.BBANDS(c, 20, 2.0, 2.0, SMA))[::-1],
        ),
        "atr": (lambda: incremental.Atr(14), "hlc", lambda h, lo, c: [talib.ATR(h, lo, c, 14)]),
        "adx": (
            lambda: incremental.Adx(14),
            "hlc",
            lambda h, lo, c: [
                talib.ADX(h, lo, c, 14),
                talib.PLUS_DI(h, lo, c, 14),
                talib.MINUS_DI(h, lo, c, 14),
            ],
        ),
        "psar": (
            lambda: incremental.ParabolicSar(0.02, 0.2),
            "hl",
            lambda h, lo, c: [talib.SAR(h, lo, 0.02, 0.2)],
        ),
        "ema": (lambda: incremental.Ema(9), "c", lambda h, lo, c: [talib.EMA(c, 9)]),
        "sma": (lambda: incremental.Sma(10), "c", lambda h, lo, c: [talib.SMA(c, 10)]),
        "stoch": (
            lambda: incremental.Stochastic(14, 3, 3),
            "hlc",
            lambda h, lo, c: list(talib.STOCH(h, lo, c, 14, 3, SMA, 3, SMA)),
        ),
    }


def _feed_time(ind: Any, kind: str, h: list[float], lo: list[float], c: list[float]) -> float:
    """Seconds to feed every candle through ``update`` (the loop itself included)."""
    upd = ind.update
    t0 = time.perf_counter()
    if kind == "c":
        for x in c:
            upd(x)
    elif kind == "hl":
        for a, b in zip(h, lo, strict=True):
            upd(a, b)
    else:
        for a, b, x in zip(h, lo, c, strict=True):
            upd(a, b, x)
    return time.perf_counter() - t0


def _feed_values(
    ind: Any, kind: str, h: list[float], lo: list[float], c: list[float], width: int
) -> list[F64]:
    out = np.full((width, len(c)), np.nan)
    columns = {"c": (c,), "hl": (h, lo), "hlc": (h, lo, c)}[kind]
    args = zip(*columns, strict=True)
    for i, row in enumerate(args):
        v = ind.update(*row)
        if v is None:
            continue
        out[:, i] = v if width > 1 else (v,)
    return list(out)


def _talib500(name: str, d: Ohlc, calls: int) -> Callable[[], None]:
    h, lo, c = d.high, d.low, d.close
    fns: dict[str, Callable[[int], object]] = {
        "rsi": lambda i: talib.RSI(c[i - WINDOW : i], 14),
        "macd": lambda i: talib.MACD(c[i - WINDOW : i], 12, 26, 9),
        "bb": lambda i: talib.BBANDS(c[i - WINDOW : i], 20, 2.0, 2.0, SMA),
        "atr": lambda i: talib.ATR(h[i - WINDOW : i], lo[i - WINDOW : i], c[i - WINDOW : i], 14),
        "adx": lambda i: talib.ADX(h[i - WINDOW : i], lo[i - WINDOW : i], c[i - WINDOW : i], 14),
        "psar": lambda i: talib.SAR(h[i - WINDOW : i], lo[i - WINDOW : i], 0.02, 0.2),
        "ema": lambda i: talib.EMA(c[i - WINDOW : i], 9),
        "sma": lambda i: talib.SMA(c[i - WINDOW : i], 10),
        "stoch": lambda i: talib.STOCH(
            h[i - WINDOW : i], lo[i - WINDOW : i], c[i - WINDOW : i], 14, 3, SMA, 3, SMA
        ),
    }
    fn = fns[name]
    stop = min(len(c), WINDOW + calls)

    def run() -> None:
        for i in range(WINDOW, stop):
            fn(i)

    return run


def run_incremental(d: Ohlc, repeat: int) -> None:
    h, lo, c = d.high.tolist(), d.low.tolist(), d.close.tolist()
    n = len(c)
    calls = min(n - WINDOW, 20_000)
    for name, (factory, kind, reference) in incremental_cases(d).items():
        ref = reference(d.high, d.low, d.close)
        ours = _feed_values(factory(), kind, h, lo, c, len(ref))
        times = [_feed_time(factory(), kind, h, lo, c) / n * 1e6 for _ in range(repeat)]
        recompute = _talib500(name, d, calls)
        t500 = [median_ms(recompute, 1) * 1e3 / calls for _ in range(repeat)]
        us, ref_us = statistics.median(times), statistics.median(t500)
        emit(f"{name}_us", us)
        emit(f"{name}_talib{WINDOW}_us", ref_us)
        emit(f"{name}_vs_talib{WINDOW}", us / ref_us)
        emit(f"{name}_maxdiff", max_diff(ours, ref))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--candles", type=int, default=None, help="default 1,000,000 (batch), 100,000 (incr.)"
    )
    parser.add_argument("--incremental", action="store_true", help="µs per new candle instead of batch ms")
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure; the median is printed")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--pandas-ta", action="store_true", help="batch mode: also time/compare pandas-ta")
    args = parser.parse_args(argv)
    n = args.candles or (100_000 if args.incremental else 1_000_000)
    if n <= WINDOW + 100 or args.repeat < 1:
        parser.error(f"--candles must exceed {WINDOW + 100} and --repeat be ≥ 1")
    d = synthetic(n, args.seed)
    emit("candles", n)
    emit("repeat", args.repeat)
    if args.incremental:
        run_incremental(d, args.repeat)
    else:
        run_batch(d, args.repeat, args.pandas_ta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
