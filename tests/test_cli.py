"""The power-user commands on a real exported candle file from shared/data/market."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import talib

from cts_desktop.cli import main
from cts_desktop.exchanges.candle_files import load_candles
from tests.conftest import SHARED_DIR

MARKET = SHARED_DIR / "data" / "market"
ETH_1H = MARKET / "Binance_ETHUSDT_1h.csv"


@pytest.fixture
def eth_file() -> Path:
    if not ETH_1H.exists():
        pytest.skip(f"real market data not found at {ETH_1H}")
    return ETH_1H


def test_indicators_command_writes_talib_values_per_candle(eth_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ind.csv"
    assert main(["indicators", "--candles", str(eth_file), "--out", str(out)]) == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    candles = load_candles(eth_file).candles
    assert len(rows) == len(candles.ts_ms)
    assert list(rows[0]) == [
        "timestamp", "rsi_14", "macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9",
        "bb_lower_20_2", "bb_mid_20_2", "bb_upper_20_2", "psar_0.02_0.2", "adx_14", "atr_14",
    ]  # fmt: skip
    assert rows[0]["timestamp"].endswith("Z") and rows[0]["rsi_14"] == ""  # warm-up cells are empty
    rsi = talib.RSI(candles.close, 14)
    adx = talib.ADX(candles.high, candles.low, candles.close, 14)
    for i in (100, 5000, len(rows) - 1):
        assert math.isclose(float(rows[i]["rsi_14"]), rsi[i], abs_tol=1e-8)
        assert math.isclose(float(rows[i]["adx_14"]), adx[i], abs_tol=1e-8)


def test_sweep_command_writes_one_row_per_configuration(eth_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    code = main(
        ["sweep", "--candles", str(eth_file), "--signal", "rsi:14:30", "--pc", "0.1", "--fee", "0.1",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 924
    assert list(rows[0]) == [
        "tp_factor", "sl_ratio", "trailing", "trades", "wins", "losses", "net_return", "pf_gross",
        "avg_result_steps", "max_drawdown",
    ]  # fmt: skip
    trades = np.array([int(r["trades"]) for r in rows])
    assert (trades > 0).all()  # RSI(14) < 30 happens often enough on 3.8 years of hourly ETH
    assert all(int(r["wins"]) + int(r["losses"]) == int(r["trades"]) for r in rows)
    assert all(0 <= float(r["max_drawdown"]) <= 1 for r in rows)


def test_commands_reject_an_unusable_file_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("this,is,not\na,candle,file\n")
    assert main(["indicators", "--candles", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    assert "bad.csv" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    assert main(["sweep", "--candles", str(bad), "--signal", "macd:1", "--out", str(tmp_path / "s.csv")]) == 2
    assert "signal" in capsys.readouterr().err
