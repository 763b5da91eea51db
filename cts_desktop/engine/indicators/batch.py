"""Batch indicator values (history, backtests, exports) through TA-Lib.

TA-Lib is the fast path and the definition: its C loops are what the incremental updaters are
held to, and at 1,000,000 candles it computes each preset indicator in a few milliseconds.
pandas-ta is deliberately *not* used for any column: its PSAR disagrees with TA-Lib on about a
third of bars (it does not clamp to the previous two bars' extremes the same way) and its ADX is
~46× slower. Each function returns float64 arrays as long as its input, NaN during the warm-up
(exactly TA-Lib's lookback), so values line up with candles by index.

Column names follow ``<indicator>_<parameters joined by _>``: whole numbers print without a
decimal point (``bb_upper_20_2``), fractions as Python prints them (``psar_0.02_0.2``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import talib
from talib._ta_lib import MA_Type

from cts_desktop.engine.indicators.grids import PresetParams
from cts_desktop.exchanges.candle_files import CandleArrays

__all__ = [
    "PRESET_COLUMNS",
    "AdxArrays",
    "BollingerArrays",
    "MacdArrays",
    "StochArrays",
    "adx",
    "atr",
    "bollinger",
    "column_name",
    "dmi",
    "ema",
    "macd",
    "minus_di",
    "plus_di",
    "preset_column_names",
    "preset_columns",
    "psar",
    "rsi",
    "sma",
    "stochastic",
]

F64 = npt.NDArray[np.float64]
_SMA = MA_Type.SMA  # talib re-exports MA_Type at run time but only its private stub types it


class MacdArrays(NamedTuple):
    macd: F64
    signal: F64
    hist: F64


class BollingerArrays(NamedTuple):
    lower: F64
    mid: F64
    upper: F64


class AdxArrays(NamedTuple):
    adx: F64
    plus_di: F64
    minus_di: F64


class StochArrays(NamedTuple):
    k: F64
    d: F64


def _f64(values: npt.ArrayLike) -> F64:
    """TA-Lib needs contiguous float64; candle arrays already are, so this is usually free."""
    arr: F64 = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {arr.shape}")
    return arr


def _hl(high: npt.ArrayLike, low: npt.ArrayLike) -> tuple[F64, F64]:
    h, lo = _f64(high), _f64(low)
    if len(h) != len(lo):
        raise ValueError(f"high and low differ in length: {len(h)} != {len(lo)}")
    return h, lo


def _hlc(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> tuple[F64, F64, F64]:
    h, lo = _hl(high, low)
    c = _f64(close)
    if len(c) != len(h):
        raise ValueError(f"close and high differ in length: {len(c)} != {len(h)}")
    return h, lo, c


def _period(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return value


def rsi(close: npt.ArrayLike, period: int = 14) -> F64:
    """Wilder RSI (TA-Lib ``RSI``); first value at index ``period``."""
    out: F64 = talib.RSI(_f64(close), timeperiod=_period("period", period, 2))
    return out


def ema(close: npt.ArrayLike, period: int) -> F64:
    """EMA seeded with the SMA of the first ``period`` closes (TA-Lib ``EMA``)."""
    out: F64 = talib.EMA(_f64(close), timeperiod=_period("period", period, 1))
    return out


def sma(close: npt.ArrayLike, period: int) -> F64:
    out: F64 = talib.SMA(_f64(close), timeperiod=_period("period", period, 1))
    return out


def macd(close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MacdArrays:
    """MACD line, its real signal EMA and the histogram (TA-Lib ``MACD``); all three start at
    index ``max(fast, slow) + signal − 2``."""
    m, s, h = talib.MACD(
        _f64(close),
        fastperiod=_period("fast", fast, 2),
        slowperiod=_period("slow", slow, 2),
        signalperiod=_period("signal", signal, 1),
    )
    return MacdArrays(m, s, h)


def bollinger(close: npt.ArrayLike, period: int = 20, nbdev: float = 2.0) -> BollingerArrays:
    """SMA ± ``nbdev`` population standard deviations (TA-Lib ``BBANDS``, SMA type)."""
    upper, mid, lower = talib.BBANDS(
        _f64(close), timeperiod=_period("period", period, 2), nbdevup=nbdev, nbdevdn=nbdev, matype=_SMA
    )
    return BollingerArrays(lower, mid, upper)


def psar(high: npt.ArrayLike, low: npt.ArrayLike, acceleration: float = 0.02, maximum: float = 0.2) -> F64:
    """Parabolic SAR from real highs and lows (TA-Lib ``SAR``); first value at index 1."""
    h, lo = _hl(high, low)
    out: F64 = talib.SAR(h, lo, acceleration=acceleration, maximum=maximum)
    return out


def adx(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> F64:
    """Wilder ADX (TA-Lib ``ADX``); first value at index ``2·period − 1``."""
    out: F64 = talib.ADX(*_hlc(high, low, close), timeperiod=_period("period", period, 2))
    return out


def plus_di(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> F64:
    out: F64 = talib.PLUS_DI(*_hlc(high, low, close), timeperiod=_period("period", period, 1))
    return out


def minus_di(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> F64:
    out: F64 = talib.MINUS_DI(*_hlc(high, low, close), timeperiod=_period("period", period, 1))
    return out


def dmi(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> AdxArrays:
    """ADX with +DI and −DI: what the ADX signal rule needs (+DI vs −DI, strength from ADX)."""
    h, lo, c = _hlc(high, low, close)
    return AdxArrays(adx(h, lo, c, period), plus_di(h, lo, c, period), minus_di(h, lo, c, period))


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> F64:
    """Wilder ATR (TA-Lib ``ATR``); first value at index ``period``."""
    out: F64 = talib.ATR(*_hlc(high, low, close), timeperiod=_period("period", period, 1))
    return out


def stochastic(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, k: int = 14, d: int = 3, slowing: int = 3
) -> StochArrays:
    """Slow stochastic (TA-Lib ``STOCH``, SMA smoothing): ``k`` is fast-%K's period, ``slowing``
    the %K smoothing and ``d`` the %D period, as in the §1.8 grid."""
    sk, sd = talib.STOCH(
        *_hlc(high, low, close),
        fastk_period=_period("k", k, 1),
        slowk_period=_period("slowing", slowing, 1),
        slowk_matype=_SMA,
        slowd_period=_period("d", d, 1),
        slowd_matype=_SMA,
    )
    return StochArrays(sk, sd)


def _fmt(value: float) -> str:
    f = float(value)
    return str(int(f)) if f.is_integer() else repr(f)


def column_name(indicator: str, *params: float) -> str:
    """``("psar", 0.02, 0.2)`` → ``psar_0.02_0.2``; ``("bb_upper", 20, 2.0)`` → ``bb_upper_20_2``."""
    return "_".join((indicator, *(_fmt(p) for p in params)))


def preset_column_names(params: PresetParams | None = None) -> tuple[str, ...]:
    """The ten preset column names for a parameter set, in export order."""
    p = params or PresetParams()
    m = (p.macd_fast, p.macd_slow, p.macd_signal)
    bb = (p.bb_period, p.bb_nbdev)
    return (
        column_name("rsi", p.rsi_period),
        column_name("macd", *m),
        column_name("macd_signal", *m),
        column_name("macd_hist", *m),
        column_name("bb_lower", *bb),
        column_name("bb_mid", *bb),
        column_name("bb_upper", *bb),
        column_name("psar", p.psar_acceleration, p.psar_maximum),
        column_name("adx", p.adx_period),
        column_name("atr", p.atr_period),
    )


PRESET_COLUMNS: tuple[str, ...] = preset_column_names()
"""``rsi_14, macd_12_26_9, macd_signal_12_26_9, macd_hist_12_26_9, bb_lower_20_2, bb_mid_20_2,
bb_upper_20_2, psar_0.02_0.2, adx_14, atr_14`` — the export's columns, in this order."""


def preset_columns(candles: CandleArrays, params: PresetParams | None = None) -> dict[str, F64]:
    """The ten preset columns for a candle series, keyed (and ordered) as ``preset_column_names``."""
    p = params or PresetParams()
    h, lo, c = _hlc(candles.high, candles.low, candles.close)
    m = macd(c, p.macd_fast, p.macd_slow, p.macd_signal)
    bb = bollinger(c, p.bb_period, p.bb_nbdev)
    values = (
        rsi(c, p.rsi_period),
        m.macd,
        m.signal,
        m.hist,
        bb.lower,
        bb.mid,
        bb.upper,
        psar(h, lo, p.psar_acceleration, p.psar_maximum),
        adx(h, lo, c, p.adx_period),
        atr(h, lo, c, p.atr_period),
    )
    return dict(zip(preset_column_names(p), values, strict=True))
