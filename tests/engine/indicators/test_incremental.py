"""Incremental updaters fed candle by candle reproduce TA-Lib's batch values after the warm-up.

Tolerance: **absolute 1e-8** for every indicator and every price scale here (BTC near 64,000,
altcoin/BTC near 0.0001). In practice RSI, SMA, Bollinger and Stochastic match bit for bit; EMA,
MACD, ATR, ADX and SAR differ by a few ulps where TA-Lib 0.8 fuses a multiply-add (Python 3.12
has no ``math.fma``) — at most ~5e-11 on BTC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from talib._ta_lib import MA_Type

from cts_desktop.engine.indicators import batch
from cts_desktop.engine.indicators.grids import PresetParams
from cts_desktop.engine.indicators.incremental import (
    Adx,
    Atr,
    BarIndicator,
    Bollinger,
    Ema,
    Macd,
    ParabolicSar,
    PresetUpdater,
    Rsi,
    Sma,
    Stochastic,
)
from cts_desktop.exchanges.candle_files import CandleArrays
from tests.engine.indicators import REAL_FILES, market_candles

TOL = 1e-8
SMA = MA_Type.SMA
F64 = npt.NDArray[np.float64]
Ref = Callable[[F64, F64, F64], Sequence[F64]]


@dataclass(frozen=True)
class Case:
    """An updater factory, the inputs its ``update`` takes, and TA-Lib's batch reference."""

    id: str
    factory: Callable[[], Any]
    inputs: str  # "c", "hl" or "hlc"
    reference: Ref


def _bb(period: int, k: float) -> Ref:
    def ref(h: F64, lo: F64, c: F64) -> Sequence[F64]:
        up, mid, low = talib.BBANDS(c, period, k, k)
        return (low, mid, up)

    return ref


CASES = (
    Case("rsi14", lambda: Rsi(14), "c", lambda h, lo, c: [talib.RSI(c, 14)]),
    Case("rsi7", lambda: Rsi(7), "c", lambda h, lo, c: [talib.RSI(c, 7)]),
    Case("rsi21", lambda: Rsi(21), "c", lambda h, lo, c: [talib.RSI(c, 21)]),
    Case("ema9", lambda: Ema(9), "c", lambda h, lo, c: [talib.EMA(c, 9)]),
    Case("ema31", lambda: Ema(31), "c", lambda h, lo, c: [talib.EMA(c, 31)]),
    Case("sma10", lambda: Sma(10), "c", lambda h, lo, c: [talib.SMA(c, 10)]),
    Case("sma75", lambda: Sma(75), "c", lambda h, lo, c: [talib.SMA(c, 75)]),
    Case("macd12_26_9", lambda: Macd(12, 26, 9), "c", lambda h, lo, c: talib.MACD(c, 12, 26, 9)),
    Case("macd18_13_5", lambda: Macd(18, 13, 5), "c", lambda h, lo, c: talib.MACD(c, 18, 13, 5)),  # swapped
    Case("macd6_39_13", lambda: Macd(6, 39, 13), "c", lambda h, lo, c: talib.MACD(c, 6, 39, 13)),
    Case("bb20_2", lambda: Bollinger(20, 2.0), "c", _bb(20, 2.0)),
    Case("bb10_1", lambda: Bollinger(10, 1.0), "c", _bb(10, 1.0)),
    Case("bb30_2.5", lambda: Bollinger(30, 2.5), "c", _bb(30, 2.5)),
    Case("psar.02_.2", lambda: ParabolicSar(0.02, 0.2), "hl", lambda h, lo, c: [talib.SAR(h, lo, 0.02, 0.2)]),
    Case("psar.01_.3", lambda: ParabolicSar(0.01, 0.3), "hl", lambda h, lo, c: [talib.SAR(h, lo, 0.01, 0.3)]),
    Case("psar.03_.1", lambda: ParabolicSar(0.03, 0.1), "hl", lambda h, lo, c: [talib.SAR(h, lo, 0.03, 0.1)]),
    Case("atr14", lambda: Atr(14), "hlc", lambda h, lo, c: [talib.ATR(h, lo, c, 14)]),
    Case("atr7", lambda: Atr(7), "hlc", lambda h, lo, c: [talib.ATR(h, lo, c, 7)]),
    Case(
        "adx14",
        lambda: Adx(14),
        "hlc",
        lambda h, lo, c: [talib.ADX(h, lo, c, 14), talib.PLUS_DI(h, lo, c, 14), talib.MINUS_DI(h, lo, c, 14)],
    ),
    Case(
        "adx7",
        lambda: Adx(7),
        "hlc",
        lambda h, lo, c: [talib.ADX(h, lo, c, 7), talib.PLUS_DI(h, lo, c, 7), talib.MINUS_DI(h, lo, c, 7)],
    ),
    Case(
        "stoch14_3_3",
        lambda: Stochastic(14, 3, 3),
        "hlc",
        lambda h, lo, c: talib.STOCH(h, lo, c, 14, 3, SMA, 3, SMA),
    ),
    Case(
        "stoch7_2_4",
        lambda: Stochastic(7, 2, 4),
        "hlc",
        lambda h, lo, c: talib.STOCH(h, lo, c, 7, 4, SMA, 2, SMA),
    ),
)


def rows(inputs: str, h: F64, lo: F64, c: F64) -> list[tuple[float, ...]]:
    columns = {"c": (c,), "hl": (h, lo), "hlc": (h, lo, c)}[inputs]
    return list(zip(*(col.tolist() for col in columns), strict=True))


def assert_matches_talib(case: Case, h: F64, lo: F64, c: F64) -> int:
    """Feed every candle; None before the lookback, TA-Lib's values (± TOL) from it on."""
    ind = case.factory()
    refs = [np.asarray(r) for r in case.reference(h, lo, c)]
    first = int(np.argmax(~np.isnan(refs[0]))) if not np.isnan(refs[0]).all() else len(c)
    if first < len(c):
        assert ind.lookback == first, case.id
    checked = 0
    for i, row in enumerate(rows(case.inputs, h, lo, c)):
        value = ind.update(*row)
        if i < ind.lookback:
            assert value is None, (case.id, i, value)
            continue
        assert value is not None, (case.id, i)
        parts = value if isinstance(value, tuple) else (value,)
        for j, ref in enumerate(refs):
            got, want = parts[j], ref[i]
            assert abs(got - want) <= TOL, f"{case.id}[{j}] at {i}: {got!r} vs TA-Lib {want!r}"
        checked += 1
    return checked


@pytest.mark.parametrize("name", REAL_FILES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_incremental_equals_talib_on_real_files(case: Case, name: str) -> None:
    candles = market_candles(name)
    checked = assert_matches_talib(case, candles.high, candles.low, candles.close)
    assert checked == len(candles) - case.factory().lookback


@st.composite
def ohlc_series(draw: st.DrawFn) -> tuple[F64, F64, F64]:
    """Valid bars: high ≥ max(open, close), low ≤ min(open, close). Three shapes: a random walk,
    small integers (ties, flat windows, equal highs/lows) and unrelated prices across 7 decades."""
    n = draw(st.integers(1, 160))
    shape = draw(st.sampled_from(["walk", "integers", "wild"]))
    if shape == "integers":
        ints = st.integers(1, 12)
        body = draw(
            st.lists(st.tuples(ints, ints, st.integers(0, 2), st.integers(0, 2)), min_size=n, max_size=n)
        )
        o = np.array([b[0] for b in body], dtype=float)
        c = np.array([b[1] for b in body], dtype=float)
        up = np.array([b[2] for b in body], dtype=float)
        down = np.array([min(b[3], min(b[0], b[1]) - 1) for b in body], dtype=float)
    else:
        frac = st.floats(0.0, 0.05)
        if shape == "walk":
            start = draw(st.floats(1e-4, 1e5))
            steps = draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
            c = start * np.exp(np.cumsum(steps))
            o = np.concatenate(([start], c[:-1]))
        else:
            price = st.floats(1e-2, 1e5)
            o = np.array(draw(st.lists(price, min_size=n, max_size=n)))
            c = np.array(draw(st.lists(price, min_size=n, max_size=n)))
        wicks = draw(st.lists(st.tuples(frac, frac), min_size=n, max_size=n))
        up = np.maximum(o, c) * np.array([w[0] for w in wicks])
        down = np.minimum(o, c) * np.array([w[1] for w in wicks])
    high = np.maximum(o, c) + up
    low = np.minimum(o, c) - down
    assert (high >= np.maximum(o, c)).all() and (low <= np.minimum(o, c)).all()
    return high, low, c


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ohlc_series())
def test_incremental_equals_talib_on_random_ohlc(series: tuple[F64, F64, F64]) -> None:
    h, lo, c = series
    for case in CASES:
        assert_matches_talib(case, h, lo, c)


def test_seed_equals_updates_and_continues() -> None:
    candles = market_candles("Binance_BTCUSDT_1h.csv").slice(0, 3000)
    for case in CASES:
        fed, seeded, by_candles = case.factory(), case.factory(), case.factory()
        last = None
        for row in rows(case.inputs, candles.high, candles.low, candles.close)[:2000]:
            last = fed.update(*row)
        cols = {
            "c": (candles.close,),
            "hl": (candles.high, candles.low),
            "hlc": (candles.high, candles.low, candles.close),
        }
        assert seeded.seed(*(col[:2000] for col in cols[case.inputs])) == last, case.id
        assert by_candles.seed_candles(candles.slice(0, 2000)) == last, case.id
        # Seeding is not a reset: later candles continue the same state.
        tail = candles.slice(2000, 3000)
        for i in range(len(tail)):
            o, hi, low, cl = (
                float(tail.open[i]),
                float(tail.high[i]),
                float(tail.low[i]),
                float(tail.close[i]),
            )
            assert seeded.update_bar(o, hi, low, cl) == fed.update_bar(o, hi, low, cl), case.id


def test_reset_forgets_everything() -> None:
    candles = market_candles("Binance_ETHUSDT_1h.csv").slice(0, 400)
    for case in CASES:
        ind = case.factory()
        first = ind.seed_candles(candles)
        ind.reset()
        assert ind.seed_candles(candles.slice(0, ind.lookback)) is None, case.id
        ind.reset()
        assert ind.seed_candles(candles) == first, case.id


def test_every_updater_is_a_bar_indicator() -> None:
    candles = market_candles("freqtrade_UNITTEST_BTC-1m.json").slice(0, 200)
    indicators: list[BarIndicator[object]] = [case.factory() for case in CASES]
    for ind in indicators:
        assert ind.seed_candles(candles) is not None


def test_seeding_with_a_recent_window_converges_to_the_full_history_value() -> None:
    """A live engine seeds with the last few hundred candles, not the whole history."""
    c = market_candles("Binance_BTCUSDT_1h.csv")
    h, lo, cl = c.high, c.low, c.close
    window = 500
    recent = c.slice(len(c) - window, None)
    assert Rsi(14).seed_candles(recent) == pytest.approx(talib.RSI(cl, 14)[-1], abs=TOL)
    assert Atr(14).seed_candles(recent) == pytest.approx(talib.ATR(h, lo, cl, 14)[-1], abs=TOL)
    bb = Bollinger(20, 2.0).seed_candles(recent)
    assert bb is not None
    assert bb.mid == pytest.approx(talib.SMA(cl, 20)[-1], abs=TOL)
    assert Sma(50).seed_candles(recent) == pytest.approx(talib.SMA(cl, 50)[-1], abs=TOL)
    macd = Macd().seed_candles(recent)
    assert macd is not None and macd.hist == pytest.approx(talib.MACD(cl)[2][-1], abs=1e-6)


def test_rsi_of_a_series_that_never_moves_is_talibs_zero_and_flagged_flat() -> None:
    flat = np.full(40, 123.45)
    rsi = Rsi(14)
    values = [rsi.update(x) for x in flat.tolist()]
    assert values[14:] == talib.RSI(flat, 14)[14:].tolist() == [0.0] * 26
    assert rsi.flat
    assert rsi.update(124.0) == 100.0 and not rsi.flat
    assert not Rsi(14).flat


def test_rsi_keeps_working_on_a_fine_tick() -> None:
    """TA-Lib 0.8 tests gain+loss exactly (old versions zeroed anything under 1e-8)."""
    tiny = 1e-6 + np.arange(40, dtype=np.float64) * 1e-12
    rsi = Rsi(14)
    assert [rsi.update(x) for x in tiny.tolist()][-1] == talib.RSI(tiny, 14)[-1] == 100.0


def test_adx_exposes_talibs_directional_indicators_before_the_first_adx() -> None:
    c = market_candles("Binance_ETHUSDT_1h.csv").slice(0, 300)
    adx = Adx(14)
    plus = talib.PLUS_DI(c.high, c.low, c.close, 14)
    minus = talib.MINUS_DI(c.high, c.low, c.close, 14)
    for i in range(len(c)):
        adx.update(float(c.high[i]), float(c.low[i]), float(c.close[i]))
        if i < 14:
            assert adx.plus_di is None and adx.minus_di is None
        else:
            assert adx.plus_di == pytest.approx(plus[i], abs=TOL)
            assert adx.minus_di == pytest.approx(minus[i], abs=TOL)


def test_psar_direction_matches_where_the_sar_sits() -> None:
    c = market_candles("Binance_BTCUSDT_1h.csv").slice(0, 3000)
    psar = ParabolicSar()
    assert psar.is_long is None
    flips = 0
    previous = None
    for i in range(len(c)):
        sar = psar.update(float(c.high[i]), float(c.low[i]))
        if sar is None:
            continue
        if psar.is_long:
            assert sar <= c.low[i]
        else:
            assert sar >= c.high[i]
        flips += previous is not None and previous != psar.is_long
        previous = psar.is_long
    assert flips > 50  # a real series reverses often


def test_psar_initial_direction_comes_from_the_first_dm_comparison() -> None:
    # Second bar: low falls by 2 (−DM = 2), high falls (+DM < 0): −DM wins, TA-Lib starts short,
    # from the first bar's high.
    highs, lows = np.array([10.0, 9.5]), np.array([8.0, 6.0])
    short = ParabolicSar()
    short.update(10.0, 8.0)
    assert short.update(9.5, 6.0) == 10.0 == talib.SAR(highs, lows)[1]
    assert short.is_long is False
    # An inside bar (no positive DM at all) starts long, from the first bar's low.
    highs, lows = np.array([10.0, 9.5]), np.array([8.0, 8.5])
    long = ParabolicSar()
    long.update(10.0, 8.0)
    assert long.update(9.5, 8.5) == 8.0 == talib.SAR(highs, lows)[1]
    assert long.is_long is True
    # Long start whose second bar already pierces the first low: an immediate reversal.
    highs, lows = np.array([10.0, 11.0]), np.array([8.0, 7.0])
    flip = ParabolicSar()
    flip.update(10.0, 8.0)
    assert flip.update(11.0, 7.0) == talib.SAR(highs, lows)[1] == 11.0
    assert flip.is_long is False


def test_acceleration_above_maximum_is_lowered_like_talib() -> None:
    assert ParabolicSar(0.5, 0.2).acceleration == 0.2


def test_preset_updater_equals_the_batch_columns() -> None:
    c = market_candles("Binance_ETHUSDT_1h.csv").slice(0, 2000)
    cols = batch.preset_columns(c)
    dmi = batch.dmi(c.high, c.low, c.close, 14)
    up = PresetUpdater()
    assert up.lookback == 33
    names = batch.PRESET_COLUMNS
    fields = (
        "rsi",
        "macd",
        "macd_signal",
        "macd_hist",
        "bb_lower",
        "bb_mid",
        "bb_upper",
        "psar",
        "adx",
        "atr",
    )
    for i in range(len(c)):
        v = up.update(float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]))
        assert v.close == c.close[i]
        for name, field in zip(names, fields, strict=True):
            got, want = getattr(v, field), cols[name][i]
            if math.isnan(want):
                assert got is None, (name, i)
            else:
                assert got == pytest.approx(want, abs=TOL), (name, i)
        if v.adx is not None:
            assert v.plus_di == pytest.approx(dmi.plus_di[i], abs=TOL)
            assert v.minus_di == pytest.approx(dmi.minus_di[i], abs=TOL)
        assert v.rsi_flat is False
    custom = PresetUpdater(PresetParams(rsi_period=7, macd_fast=6, macd_slow=13, macd_signal=5))
    assert custom.seed_candles(c) is not None and custom.rsi.period == 7
    custom.reset()
    assert custom.update_bar(1.0, 1.0, 1.0, 1.0).rsi is None


def test_constructor_arguments_are_validated() -> None:
    for bad in (
        lambda: Rsi(1),
        lambda: Rsi(14.0),  # type: ignore[arg-type]
        lambda: Ema(0),
        lambda: Sma(True),
        lambda: Macd(1, 26, 9),
        lambda: Macd(12, 26, 0),
        lambda: Bollinger(1, 2.0),
        lambda: Bollinger(20, -1.0),
        lambda: Bollinger(20, math.nan),
        lambda: ParabolicSar(-0.02, 0.2),
        lambda: ParabolicSar(0.02, math.inf),
        lambda: Adx(1),
        lambda: Atr(0),
        lambda: Stochastic(14, 0, 3),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="differ in length"):
        Atr(14).seed([1.0, 2.0], [1.0], [1.0, 2.0])


def test_ema_of_period_one_is_a_copy_like_talib() -> None:
    x = np.array([1.0, 3.0, 100.0, 0.5, 7.25])
    ema = Ema(1)
    assert [ema.update(v) for v in x.tolist()] == x.tolist() == talib.EMA(x, 1).tolist()
    assert Ema(3).value is None


def test_empty_history_seeds_nothing() -> None:
    assert Rsi().seed([]) is None
    assert Stochastic().seed_candles(CandleArrays.empty()) is None
