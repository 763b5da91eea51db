"""The indicator CSV: exact header, one row per candle, UTC ISO-8601 times, empty warm-up cells."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from cts_desktop.engine.indicators import batch
from cts_desktop.engine.indicators.export import iso_timestamps, write_indicator_csv
from cts_desktop.engine.indicators.grids import PresetParams
from cts_desktop.exchanges.candle_files import CandleArrays
from tests.engine.indicators import market_candles

HEADER = [
    "timestamp",
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
]
WARM_UP = dict(zip(HEADER[1:], (14, 33, 33, 33, 19, 19, 19, 1, 27, 14), strict=True))


def synthetic(n: int, start_ms: int = 1_700_000_000_000, step_ms: int = 3_600_000) -> CandleArrays:
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    ts = start_ms + np.arange(n, dtype=np.int64) * step_ms
    return CandleArrays(ts, open_, high, low, close, np.ones(n))


def read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_header_rows_and_warm_up(tmp_path: Path) -> None:
    candles = synthetic(120)
    out = tmp_path / "ind.csv"
    assert write_indicator_csv(candles, out) == 120
    table = read(out)
    assert table[0] == HEADER
    assert len(table) == 1 + 120
    body = table[1:]
    for j, name in enumerate(HEADER[1:], start=1):
        warm = WARM_UP[name]
        assert all(row[j] == "" for row in body[:warm]), name
        assert all(row[j] != "" for row in body[warm:]), name
    assert all(row[1:] == [""] * 10 for row in body[:1])  # the first candle has nothing at all


def test_values_round_trip_exactly(tmp_path: Path) -> None:
    candles = synthetic(200)
    out = tmp_path / "ind.csv"
    write_indicator_csv(candles, out)
    body = read(out)[1:]
    cols = batch.preset_columns(candles)
    for j, name in enumerate(HEADER[1:], start=1):
        parsed = np.array([float(row[j]) if row[j] else np.nan for row in body])
        np.testing.assert_array_equal(parsed, cols[name], err_msg=name)


def test_timestamps_are_utc_iso_8601(tmp_path: Path) -> None:
    candles = synthetic(40, start_ms=1_623_283_200_000)  # 2021-06-10T00:00:00Z
    out = tmp_path / "ind.csv"
    write_indicator_csv(candles, out)
    stamps = [row[0] for row in read(out)[1:]]
    assert stamps[0] == "2021-06-10T00:00:00Z"
    assert stamps[1] == "2021-06-10T01:00:00Z"
    for stamp, ms in zip(stamps, candles.ts_ms.tolist(), strict=True):
        parsed = datetime.fromisoformat(stamp)
        assert parsed.tzinfo is not None and parsed.utcoffset() is not None
        assert parsed == datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_sub_second_timestamps_keep_their_milliseconds() -> None:
    assert iso_timestamps(np.array([1_623_283_200_000, 1_623_283_200_250], dtype=np.int64)) == [
        "2021-06-10T00:00:00.000Z",
        "2021-06-10T00:00:00.250Z",
    ]


def test_real_file_export(tmp_path: Path) -> None:
    candles = market_candles("Binance_BTCUSDT_1h.csv")
    out = tmp_path / "btc.csv"
    assert write_indicator_csv(candles, out) == len(candles)
    table = read(out)
    assert table[0] == HEADER
    assert len(table) == len(candles) + 1
    assert table[1][0] == iso_timestamps(candles.ts_ms[:1])[0]
    assert table[1][0].startswith("2017-08-17T") and table[-1][0].startswith("2021-06-")
    assert all(cell != "" for cell in table[-1])


def test_empty_series_writes_the_header_only(tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    assert write_indicator_csv(CandleArrays.empty(), out) == 0
    assert read(out) == [HEADER]


def test_custom_parameters_rename_the_columns(tmp_path: Path) -> None:
    out = tmp_path / "custom.csv"
    write_indicator_csv(synthetic(60), out, PresetParams(rsi_period=7, psar_maximum=0.3))
    header = read(out)[0]
    assert header[1] == "rsi_7" and header[8] == "psar_0.02_0.3"


def test_overwrites_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "ind.csv"
    out.write_text("old content\n", encoding="utf-8")
    write_indicator_csv(synthetic(50), out)
    assert read(out)[0] == HEADER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ind.csv"]


def test_a_missing_directory_fails_without_leftovers(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_indicator_csv(synthetic(50), tmp_path / "missing" / "ind.csv")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Boom(csv.Error):
        pass

    def exploding_writer(*args: object, **kwargs: object) -> object:
        raise Boom("disk full")

    monkeypatch.setattr(csv, "writer", exploding_writer)
    out = tmp_path / "ind.csv"
    out.write_text("previous export\n", encoding="utf-8")
    with pytest.raises(Boom):
        write_indicator_csv(synthetic(50), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ind.csv"]
    assert out.read_text(encoding="utf-8") == "previous export\n"
