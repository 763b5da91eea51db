"""Batch values are TA-Lib's (on the real files), named as the export expects; the §1.8 grids."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import numpy.typing as npt
import pytest
import talib

from cts_desktop.engine.indicators import batch, grids
from cts_desktop.engine.indicators.grids import GRIDS, ParamRange, PresetParams, combinations
from cts_desktop.exchanges.candle_files import CandleArrays
from tests.engine.indicators import REAL_FILES, market_candles

EXPECTED_COLUMNS = (
    "rsi_14",
    "macd_12_26_9",
    "macd_signal_12_26_9",
    "macd_hist_12_26_9",
    "bb_lower_20_2",
    "bb_mid_20_2",
    "bb_upper_20_2",
    "psar_0.02_0.2",
    "adx_14",
    "atr_14",
)
# TA-Lib's lookback (index of the first value) of each preset column with default parameters.
EXPECTED_LOOKBACK = {
    "rsi_14": 14,
    "macd_12_26_9": 33,
    "macd_signal_12_26_9": 33,
    "macd_hist_12_26_9": 33,
    "bb_lower_20_2": 19,
    "bb_mid_20_2": 19,
    "bb_upper_20_2": 19,
    "psar_0.02_0.2": 1,
    "adx_14": 27,
    "atr_14": 14,
}


def first_value(a: npt.NDArray[np.float64]) -> int:
    return int(np.argmax(~np.isnan(a)))


def test_preset_column_names_are_exactly_the_export_columns() -> None:
    assert batch.PRESET_COLUMNS == EXPECTED_COLUMNS
    assert batch.preset_column_names() == EXPECTED_COLUMNS
    custom = PresetParams(rsi_period=7, bb_nbdev=2.5, psar_acceleration=0.015, psar_maximum=0.25)
    names = batch.preset_column_names(custom)
    assert names[0] == "rsi_7"
    assert names[4:7] == ("bb_lower_20_2.5", "bb_mid_20_2.5", "bb_upper_20_2.5")
    assert names[7] == "psar_0.015_0.25"


def test_column_name_formats_whole_numbers_without_a_decimal_point() -> None:
    assert batch.column_name("psar", 0.02, 0.2) == "psar_0.02_0.2"
    assert batch.column_name("bb_upper", 20, 2.0) == "bb_upper_20_2"
    assert batch.column_name("rsi", 14) == "rsi_14"


@pytest.mark.parametrize("name", REAL_FILES)
def test_preset_columns_equal_talib_on_real_files(name: str) -> None:
    c = market_candles(name)
    h, lo, cl = c.high, c.low, c.close
    cols = batch.preset_columns(c)
    assert tuple(cols) == EXPECTED_COLUMNS
    m, s, hist = talib.MACD(cl, 12, 26, 9)
    up, mid, low = talib.BBANDS(cl, 20, 2.0, 2.0)
    reference = {
        "rsi_14": talib.RSI(cl, 14),
        "macd_12_26_9": m,
        "macd_signal_12_26_9": s,
        "macd_hist_12_26_9": hist,
        "bb_lower_20_2": low,
        "bb_mid_20_2": mid,
        "bb_upper_20_2": up,
        "psar_0.02_0.2": talib.SAR(h, lo, 0.02, 0.2),
        "adx_14": talib.ADX(h, lo, cl, 14),
        "atr_14": talib.ATR(h, lo, cl, 14),
    }
    for col, values in cols.items():
        assert values.dtype == np.float64 and values.shape == (len(c),), col
        np.testing.assert_array_equal(values, reference[col], err_msg=col)
        assert first_value(values) == EXPECTED_LOOKBACK[col], col
        assert np.isfinite(values[EXPECTED_LOOKBACK[col] :]).all(), col


def test_helpers_equal_talib_with_grid_parameters() -> None:
    c = market_candles("Binance_ETHUSDT_1h.csv")
    h, lo, cl = c.high, c.low, c.close
    np.testing.assert_array_equal(batch.ema(cl, 13), talib.EMA(cl, 13))
    np.testing.assert_array_equal(batch.sma(cl, 75), talib.SMA(cl, 75))
    k, d = batch.stochastic(h, lo, cl, k=14, d=3, slowing=3)
    tk, td = talib.STOCH(h, lo, cl, fastk_period=14, slowk_period=3, slowd_period=3)
    np.testing.assert_array_equal(k, tk)
    np.testing.assert_array_equal(d, td)
    dmi = batch.dmi(h, lo, cl, 7)
    np.testing.assert_array_equal(dmi.adx, talib.ADX(h, lo, cl, 7))
    np.testing.assert_array_equal(dmi.plus_di, talib.PLUS_DI(h, lo, cl, 7))
    np.testing.assert_array_equal(dmi.minus_di, talib.MINUS_DI(h, lo, cl, 7))
    bb = batch.bollinger(cl, 10, 1.5)
    up, mid, low = talib.BBANDS(cl, 10, 1.5, 1.5)
    np.testing.assert_array_equal(np.vstack(bb), np.vstack([low, mid, up]))
    np.testing.assert_array_equal(batch.psar(h, lo, 0.03, 0.3), talib.SAR(h, lo, 0.03, 0.3))


def test_inputs_are_validated() -> None:
    x = np.linspace(1.0, 2.0, 50)
    with pytest.raises(ValueError, match="period"):
        batch.rsi(x, 1)
    with pytest.raises(ValueError, match="period"):
        batch.rsi(x, True)
    with pytest.raises(ValueError, match="differ in length"):
        batch.atr(x, x[:-1], x)
    with pytest.raises(ValueError, match="differ in length"):
        batch.adx(x, x, x[:-1])
    with pytest.raises(ValueError, match="1-D"):
        batch.sma(x.reshape(5, 10), 3)


def test_accepts_lists_and_short_series() -> None:
    out = batch.rsi([1.0, 2.0, 3.0], 14)
    assert out.shape == (3,) and np.isnan(out).all()
    cols = batch.preset_columns(CandleArrays.empty())
    assert all(len(v) == 0 for v in cols.values())


def test_pandas_ta_is_not_used() -> None:
    """pandas-ta's PSAR disagrees with TA-Lib on ~1/3 of bars and its ADX is ~46× slower."""
    tree = ast.parse(inspect.getsource(batch))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert "pandas_ta" not in imported and "talib" in imported


# -- §1.8 parameter grids ---------------------------------------------------------------------


def test_grids_are_the_section_1_8_table() -> None:
    assert GRIDS["rsi"]["period"].values() == tuple(range(7, 22))
    assert GRIDS["rsi"]["oversold"].values() == (15, 20, 25, 30, 35, 40, 45)
    assert GRIDS["rsi"]["overbought"].values() == (55, 60, 65, 70, 75, 80, 85)
    assert GRIDS["macd"]["fast"].values() == (6, 8, 10, 12, 14, 16, 18)
    assert GRIDS["macd"]["signal"].values() == tuple(range(5, 14))
    assert GRIDS["bollinger"]["period"].values() == tuple(range(10, 31, 2))
    assert GRIDS["bollinger"]["nbdev"].values() == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert GRIDS["ema"]["short"].values() == tuple(range(5, 14))
    assert GRIDS["ema"]["long"].values() == tuple(range(11, 32, 2))
    assert GRIDS["sma"]["short"].values() == tuple(range(5, 16))
    assert GRIDS["sma"]["long"].values() == tuple(range(25, 76, 5))
    assert GRIDS["stochastic"]["k"].values() == tuple(range(7, 22))
    assert GRIDS["stochastic"]["d"].values() == (2, 3, 4)
    assert GRIDS["stochastic"]["slowing"].values() == (2, 3, 4)
    assert GRIDS["adx"]["period"].values() == tuple(range(7, 22))
    assert GRIDS["adx"]["threshold"].values() == tuple(range(13, 38, 2))
    assert GRIDS["atr"]["period"].values() == tuple(range(7, 22))
    assert GRIDS["atr"]["multiplier"].values() == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert GRIDS["psar"]["acceleration"].values() == (0.01, 0.015, 0.02, 0.025, 0.03)
    assert GRIDS["psar"]["maximum"].values() == (0.1, 0.15, 0.2, 0.25, 0.3)
    defaults = {ind: {name: r.default for name, r in g.items()} for ind, g in GRIDS.items()}
    assert defaults == {
        "rsi": {"period": 14, "oversold": 30, "overbought": 70},
        "macd": {"fast": 12, "slow": 26, "signal": 9},
        "bollinger": {"period": 20, "nbdev": 2.0},
        "ema": {"short": 9, "long": 21},
        "sma": {"short": 10, "long": 50},
        "stochastic": {"k": 14, "d": 3, "slowing": 3},
        "adx": {"period": 14, "threshold": 25},
        "atr": {"period": 14, "multiplier": 1.5},
        "psar": {"acceleration": 0.02, "maximum": 0.2},
    }


def test_macd_slow_default_is_added_to_its_odd_grid() -> None:
    slow = GRIDS["macd"]["slow"]
    assert slow.stepped() == tuple(range(13, 40, 2))
    assert not slow.default_on_grid
    assert slow.values() == (*range(13, 26, 2), 26, *range(27, 40, 2))
    assert all(
        r.default_on_grid for ind, g in GRIDS.items() for n, r in g.items() if (ind, n) != ("macd", "slow")
    )


def test_integer_grid_values_are_ints() -> None:
    assert all(isinstance(v, int) for v in GRIDS["rsi"]["period"].values())
    assert all(isinstance(v, float) for v in GRIDS["psar"]["acceleration"].values())


def test_combinations_skip_unordered_pairs() -> None:
    macd = list(combinations("macd"))
    assert all(c["fast"] < c["slow"] for c in macd)
    assert {"fast": 12, "slow": 26, "signal": 9} in macd
    assert len(macd) == sum(1 for f in range(6, 19, 2) for s in GRIDS["macd"]["slow"].values() if f < s) * 9
    assert all(c["short"] < c["long"] for c in combinations("ema"))
    assert len(list(combinations("rsi"))) == 15 * 7 * 7
    assert len(list(combinations("psar"))) == 25
    assert next(combinations("stochastic")) == {"k": 7, "d": 2, "slowing": 2}


def test_param_range_and_preset_params_validate() -> None:
    with pytest.raises(ValueError, match="outside"):
        ParamRange(50, 1, 10, 1)
    with pytest.raises(ValueError, match="bad range"):
        ParamRange(5, 1, 10, 0)
    with pytest.raises(ValueError, match="unknown signal"):
        PresetParams(enabled=frozenset({"rsi", "cci"}))
    with pytest.raises(ValueError, match="oversold"):
        PresetParams(rsi_oversold=70, rsi_overbought=30)
    p = PresetParams()
    assert (p.rsi_period, p.macd_slow, p.bb_nbdev, p.psar_acceleration, p.adx_threshold) == (
        14,
        26,
        2.0,
        0.02,
        25,
    )
    assert p.enabled == frozenset({"rsi", "macd", "bollinger", "adx"})  # PSAR disabled by default (§1.8)
    assert grids.SIGNAL_INDICATORS == ("rsi", "macd", "bollinger", "psar", "adx")
