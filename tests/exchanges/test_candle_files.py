"""Candle file loading: the real exports' flaws are reported, bad rows skipped, bad files refused.

The real files live outside the repository in ``../shared/data/market`` (see its SOURCE.md);
tests that need them are skipped, naming the path, when it is absent.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cts_desktop.domain.market import Candle
from cts_desktop.exchanges.candle_files import (
    CandleArrays,
    CandleFileError,
    CandleLoadResult,
    RejectReason,
    guess_symbol,
    load_candles,
)
from tests.conftest import SHARED_DIR

MARKET_DIR = SHARED_DIR / "data" / "market"
HOUR = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % HOUR  # 2020-09-13 12:00 UTC


def market_file(name: str) -> Path:
    path = MARKET_DIR / name
    if not path.is_file():
        pytest.skip(f"real market data not found at {path} (see shared/data/market/SOURCE.md)")
    return path


@functools.cache
def real(name: str, **options: float | bool) -> CandleLoadResult:
    return load_candles(market_file(name), **options)  # type: ignore[arg-type]


def assert_oldest_first(result: CandleLoadResult) -> None:
    assert np.all(np.diff(result.candles.ts_ms) > 0)


# --------------------------------------------------------------------------- the real exports


def test_btc_hourly_newest_first_is_detected_and_reversed() -> None:
    result = real("Binance_BTCUSDT_1h.csv")
    report = result.report
    assert report.format == "cryptodatadownload"
    assert report.order == "newest_first" and report.reversed and report.out_of_order_rows == 0
    assert_oldest_first(result)
    assert report.first_ts_ms == 1502946000000  # 2017-08-17 05:00, the 04:00 outlier removed
    assert report.last_ts_ms == 1623283200000  # 2021-06-10 00:00
    assert report.symbol == "BTC/USDT" and report.symbol_source == "column"
    assert report.volume_column == "Volume BTC"
    assert report.interval_ms == HOUR and report.timeframe == "1h"


def test_btc_hourly_unit_switch_from_ms_to_seconds_is_counted() -> None:
    report = real("Binance_BTCUSDT_1h.csv").report
    assert report.timestamp_column == "unix"
    assert report.timestamp_units == {"ms": 7478, "s": 28584}
    # the two exports overlap for 2649 hours, interleaved row by row, so the unit flips often
    assert report.unit_switches == 5297


def test_btc_hourly_both_date_formats_are_parsed() -> None:
    report = real("Binance_BTCUSDT_1h.csv").report
    assert report.date_formats == {"%Y-%m-%d %H:%M:%S": 7478, "%Y-%m-%d %I-%p": 28584}
    assert report.date_unparsed == 0


def test_btc_hourly_null_tradecount_does_not_reject_rows() -> None:
    result = real("Binance_BTCUSDT_1h.csv")
    report = result.report
    assert report.count(RejectReason.NULL_PRICE) == 0
    assert report.count(RejectReason.UNPARSEABLE_NUMBER) == 0
    # line 36062: 1502946000.0,2017-08-17 05-AM,BTC/USDT,4308.83,4328.69,4291.37,4315.32,23.23,…,NULL
    i = int(np.searchsorted(result.candles.ts_ms, 1502946000000))
    assert result.candles.candle(i) == Candle(1502946000000, 4308.83, 4328.69, 4291.37, 4315.32, 23.23)
    old_rows = np.count_nonzero(result.candles.ts_ms < 1596326400000)  # before the ms rows start
    assert old_rows > 25_000


def test_btc_hourly_impossible_high_is_rejected_as_an_outlier_with_its_line() -> None:
    result = real("Binance_BTCUSDT_1h.csv")
    report = result.report
    assert report.count(RejectReason.OUTLIER) == 1
    (example,) = report.examples(RejectReason.OUTLIER)
    assert example.line == 36063
    assert "16199.91" in example.text and "16199.91" in example.detail
    assert "3.74×" in example.detail
    assert 1502942400000 not in result.candles.ts_ms
    # the whole 2017 stretch is now plausible: no high above 3× its day's close
    early = result.candles.slice(0, 24 * 30)
    assert float(np.max(early.high / early.close)) < 1.5


def test_btc_hourly_repeated_hours_keep_the_first_row_and_are_reported() -> None:
    result = real("Binance_BTCUSDT_1h.csv")
    report = result.report
    assert report.count(RejectReason.DUPLICATE_TIMESTAMP) == 2649
    first = report.examples(RejectReason.DUPLICATE_TIMESTAMP)[0]
    assert first.line == 4832 and "line 4831" in first.detail
    assert "close 18143.03 vs 18212" in first.detail
    assert report.duplicate_conflicts == 32  # the rest differ only by rounding
    # the kept row is the first one in the file (line 4831, the ms export)
    i = int(np.searchsorted(result.candles.ts_ms, 1605855600000))
    assert result.candles.close[i] == 18212.0


def test_btc_hourly_rows_whose_date_contradicts_unix_are_rejected() -> None:
    report = real("Binance_BTCUSDT_1h.csv").report
    assert report.count(RejectReason.DATE_MISMATCH) == 91
    lines = [ex.line for ex in report.examples(RejectReason.DATE_MISMATCH)]
    assert lines == [35093, 35094, 35095, 35096, 35097]
    assert "2017-09-26 02-PM" in report.examples(RejectReason.DATE_MISMATCH)[0].detail
    assert report.rows_read == 36062
    assert report.rows_kept == 36062 - 2649 - 91 - 1


def test_btc_hourly_missing_hours_are_counted_not_filled() -> None:
    report = real("Binance_BTCUSDT_1h.csv", keep_date_mismatches=True).report
    # the file's own holes: 8 gaps, 16 missing hours, the largest 5 h after 2017-09-22 19:00
    assert (report.gap_count, report.missing_bars) == (8, 16)
    assert report.largest_gap_ms == 5 * HOUR and report.largest_gap_after_ms == 1506106800000
    assert report.count(RejectReason.DATE_MISMATCH) == 0
    assert any("91 rows" in note for note in report.notes)
    # rejecting the 91 contradictory rows (the default) widens that hole, and says so
    strict = real("Binance_BTCUSDT_1h.csv").report
    assert (strict.gap_count, strict.missing_bars, strict.largest_gap_ms) == (8, 107, 96 * HOUR)


def test_eth_hourly_has_the_same_flaws() -> None:
    report = real("Binance_ETHUSDT_1h.csv").report
    assert report.order == "newest_first"
    assert report.timestamp_units == {"ms": 7478, "s": 28584}
    assert report.count(RejectReason.DUPLICATE_TIMESTAMP) == 2649
    assert report.count(RejectReason.DATE_MISMATCH) == 91
    # ETH's first bar (open/high 652.74 near 300) is only 2.1× off: under the default 3× limit…
    assert report.count(RejectReason.OUTLIER) == 0
    # …and caught with a stricter one
    strict = real("Binance_ETHUSDT_1h.csv", outlier_factor=2.0).report
    assert 36063 in [ex.line for ex in strict.examples(RejectReason.OUTLIER)]


def test_btc_daily_has_a_third_date_format_and_one_repeated_day() -> None:
    result = real("Binance_BTCUSDT_d.csv")
    report = result.report
    assert report.timeframe == "1d"
    assert report.timestamp_units == {"ms": 1272, "s": 124}
    assert report.unit_switches == 1
    assert report.date_formats == {"%Y-%m-%d %H:%M:%S": 1272, "%Y-%m-%d": 124}
    assert report.count(RejectReason.DUPLICATE_TIMESTAMP) == 1
    assert report.examples(RejectReason.DUPLICATE_TIMESTAMP)[0].line == 1274
    assert report.gap_count == 0 and report.rows_kept == 1395
    assert any("exported before it closed" in note for note in report.notes)  # 2021-06-11, 1 % volume
    assert_oldest_first(result)


@pytest.mark.parametrize("name", ["Binance_ADAUSDT_1h.csv", "Binance_BNBUSDT_1h.csv"])
def test_recent_only_exports_are_clean_but_have_gaps(name: str) -> None:
    report = real(name).report
    assert report.rows_read == report.rows_kept == 7478
    assert report.rejections == {}
    assert report.timestamp_units == {"ms": 7478} and report.unit_switches == 0
    assert (report.gap_count, report.missing_bars, report.largest_gap_ms) == (7, 12, 4 * HOUR)


def test_freqtrade_json_loads_every_candle() -> None:
    result = real("freqtrade_UNITTEST_BTC-1m.json")
    report = result.report
    assert len(result.candles) == report.rows_kept == report.rows_read == 13681
    assert report.format == "json_array" and report.location == "element"
    assert report.order == "oldest_first" and not report.reversed
    assert report.timeframe == "1m"
    assert report.symbol == "UNITTEST/BTC" and report.symbol_source == "filename"
    assert report.first_ts_ms == 1509836520000 and report.last_ts_ms == 1510700340000
    assert report.gap_count == 538  # minutes without trades are absent, and reported
    assert result.candles.candle(0) == Candle(
        1509836520000, 0.00162008, 0.00162008, 0.00162008, 0.00162008, 108.14853839
    )


def test_largest_real_file_loads_fast() -> None:
    path = market_file("Binance_BTCUSDT_1h.csv")
    started = time.perf_counter()
    load_candles(path)
    assert time.perf_counter() - started < 3.0  # ~0.25 s here; generous for slow CI machines


def test_summary_is_readable() -> None:
    text = real("Binance_BTCUSDT_1h.csv").report.summary()
    assert "33321 of 36062 rows kept" in text
    assert "line 36063" in text and "outlier" in text


# --------------------------------------------------------------------------- synthetic files


def bars(
    n: int, start: int = T0, step: int = HOUR, price: float = 100.0
) -> list[tuple[int, float, float, float, float, float]]:
    """n plausible hourly bars: (ts_ms, open, high, low, close, volume)."""
    rows = []
    for i in range(n):
        o = price + (i % 7) * 0.5
        c = o + (0.3 if i % 2 else -0.2)
        rows.append((start + i * step, o, max(o, c) + 0.4, min(o, c) - 0.4, c, 10.0 + i))
    return rows


def write_csv(
    path: Path, rows: Sequence[Sequence[object]], header: str = "timestamp,open,high,low,close,volume"
) -> Path:
    path.write_text(
        header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_plain_csv_with_ms_timestamps_and_any_header_case(tmp_path: Path) -> None:
    rows = bars(30)
    path = write_csv(tmp_path / "candles.csv", rows, "Timestamp,OPEN,High,low,Close,Volume")
    result = load_candles(path)
    assert result.report.format == "csv"
    assert result.report.volume_column == "Volume"
    assert result.report.order == "oldest_first" and not result.report.reversed
    assert result.candles.to_candles() == [Candle(*r) for r in rows]
    assert result.report.rejections == {} and result.report.gap_count == 0


def test_seconds_and_iso_timestamps(tmp_path: Path) -> None:
    rows = bars(10)
    seconds = [(r[0] // 1000, *r[1:]) for r in rows]
    assert load_candles(write_csv(tmp_path / "s.csv", seconds)).report.timestamp_units == {"s": 10}
    iso = [
        (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r[0] / 1000)), *r[1:])
        if i % 2
        else (time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(r[0] / 1000)), *r[1:])
        for i, r in enumerate(rows)
    ]
    result = load_candles(write_csv(tmp_path / "iso.csv", iso))
    assert result.candles.ts_ms.tolist() == [r[0] for r in rows]
    assert result.report.timestamp_units == {"ISO-8601": 10}


def test_date_column_alone_in_both_cryptodatadownload_formats(tmp_path: Path) -> None:
    rows = bars(12)
    dated = [
        (time.strftime("%Y-%m-%d %I-%p" if i < 6 else "%Y-%m-%d %H:%M:%S", time.gmtime(r[0] / 1000)), *r[1:])
        for i, r in enumerate(rows)
    ]
    result = load_candles(write_csv(tmp_path / "dated.csv", dated, "date,open,high,low,close,volume"))
    assert result.report.timestamp_column == "date"
    assert result.candles.ts_ms.tolist() == [r[0] for r in rows]
    assert result.report.timestamp_units == {"%Y-%m-%d %I-%p": 6, "%Y-%m-%d %H:%M:%S": 6}


def test_cryptodatadownload_export_with_banner_newest_first_and_unit_switch(tmp_path: Path) -> None:
    rows = bars(40)
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume ETH,Volume USDT,tradecount",
    ]
    for i, (ts, o, h, lo, c, v) in enumerate(reversed(rows)):
        old = i >= 20  # older rows: seconds with ".0", the AM/PM date, NULL tradecount
        unix = f"{ts // 1000}.0" if old else str(ts)
        date = time.strftime("%Y-%m-%d %I-%p" if old else "%Y-%m-%d %H:%M:%S", time.gmtime(ts / 1000))
        lines.append(f"{unix},{date},ETH/USDT,{o},{h},{lo},{c},{v},{v * c},{'NULL' if old else 42}")
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = load_candles(path)
    report = result.report
    assert report.format == "cryptodatadownload" and report.banner == "https://www.CryptoDataDownload.com"
    assert report.order == "newest_first" and report.reversed
    assert report.timestamp_units == {"ms": 20, "s": 20} and report.unit_switches == 1
    assert report.date_formats == {"%Y-%m-%d %H:%M:%S": 20, "%Y-%m-%d %I-%p": 20}
    assert report.volume_column == "Volume ETH" and report.symbol == "ETH/USDT"
    assert report.rejections == {}
    assert result.candles.to_candles() == [Candle(*r) for r in rows]


def test_volume_column_follows_the_symbols_base(tmp_path: Path) -> None:
    rows = bars(5)
    lines = [(r[0], "BTC/USDT", *r[1:5], r[5] * 100, r[5]) for r in rows]
    header = "timestamp,symbol,open,high,low,close,Volume USDT,Volume BTC"
    result = load_candles(write_csv(tmp_path / "v.csv", lines, header))
    assert result.report.volume_column == "Volume BTC"
    assert result.candles.volume.tolist() == [r[5] for r in rows]


def test_no_volume_column_is_reported_not_invented(tmp_path: Path) -> None:
    rows = [r[:5] for r in bars(5)]
    result = load_candles(write_csv(tmp_path / "nv.csv", rows, "timestamp,open,high,low,close"))
    assert result.report.volume_column is None
    assert result.candles.volume.tolist() == [0.0] * 5
    assert any("no volume column" in note for note in result.report.notes)


def test_semicolon_separated_file(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text(
        "timestamp;open;high;low;close;volume\n" + "".join(";".join(map(str, r)) + "\n" for r in bars(5))
    )
    assert len(load_candles(path).candles) == 5


def test_ccxt_json_arrays_and_json_records(tmp_path: Path) -> None:
    rows = bars(8)
    arrays = tmp_path / "BTC_USDT-1h.json"
    arrays.write_text(json.dumps([list(r) for r in rows]))
    result = load_candles(arrays)
    assert result.report.format == "json_array" and result.report.symbol == "BTC/USDT"
    assert result.candles.to_candles() == [Candle(*r) for r in rows]

    records = tmp_path / "records.json"
    keys = ("date", "open", "high", "low", "close", "volume")
    records.write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in rows]))
    assert load_candles(records).candles.to_candles() == [Candle(*r) for r in rows]


def test_json_bad_elements_are_reported_by_element_number(tmp_path: Path) -> None:
    data: list[object] = [list(r) for r in bars(20)]
    data[3] = [data[3][0], None, 1, 1, 1, 1]  # type: ignore[index]
    data[7] = [1, 2, 3]
    data[9] = "not a candle"
    data[12] = [data[12][0], 1, 1, 1, "abc", 1]  # type: ignore[index]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    report = load_candles(path).report
    assert report.location == "element"
    assert [(ex.line, ex.detail) for ex in report.examples(RejectReason.NULL_PRICE)] == [
        (4, "open is 'null'")
    ]
    assert [ex.line for ex in report.examples(RejectReason.MALFORMED_ROW)] == [8, 10]
    (unparseable,) = report.examples(RejectReason.UNPARSEABLE_NUMBER)
    assert unparseable.line == 13 and unparseable.detail == "close value 'abc' is not a finite number"
    assert report.rows_kept == 16


def make_file_with(tmp_path: Path, bad_lines: dict[int, str], n: int = 60) -> Path:
    """A good hourly CSV of n rows where data row i (0-based) is replaced by bad_lines[i]."""
    lines = [",".join(str(v) for v in r) for r in bars(n)]
    for i, text in bad_lines.items():
        lines[i] = text
    path = tmp_path / "mixed.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


ROW_TS = [r[0] for r in bars(60)]


@pytest.mark.parametrize(
    ("bad", "reason", "detail"),
    [
        (
            f"{ROW_TS[5]},100,abc,99,100,10",
            RejectReason.UNPARSEABLE_NUMBER,
            "high value 'abc' is not a finite number",
        ),
        (f"{ROW_TS[5]},100,101,99,inf,10", RejectReason.UNPARSEABLE_NUMBER, "close value 'inf'"),
        (f"{ROW_TS[5]},NULL,101,99,100,10", RejectReason.NULL_PRICE, "open is 'NULL'"),
        (f"{ROW_TS[5]},100,101,99,,10", RejectReason.NULL_PRICE, "close is ''"),
        (f"{ROW_TS[5]},100,101,99,100,NULL", RejectReason.NULL_VOLUME, "volume is 'NULL'"),
        (f"{ROW_TS[5]},100,101,99,100,x1", RejectReason.UNPARSEABLE_NUMBER, "volume value 'x1'"),
        (
            f"{ROW_TS[5]},100,99.5,99,100,10",
            RejectReason.IMPOSSIBLE_BAR,
            "high 99.5 is below max(open 100, close 100)",
        ),
        (f"{ROW_TS[5]},100,101,100.5,100,10", RejectReason.IMPOSSIBLE_BAR, "low 100.5 is above min"),
        (f"{ROW_TS[5]},0,101,0,100,10", RejectReason.IMPOSSIBLE_BAR, "non-positive price"),
        (f"{ROW_TS[5]},100,101,99,100,-3", RejectReason.IMPOSSIBLE_BAR, "negative volume -3"),
        (f"{ROW_TS[5]},100,1000,99,100,10", RejectReason.OUTLIER, "high 1000 is"),
        (f"{ROW_TS[5]},100,101,10,100,10", RejectReason.OUTLIER, "low 10 is 1/"),
        (f"{ROW_TS[4]},100,101,99,100,10", RejectReason.DUPLICATE_TIMESTAMP, "as line 6 (kept)"),
        ("yesterday,100,101,99,100,10", RejectReason.BAD_TIMESTAMP, "timestamp value 'yesterday'"),
        ("12,100,101,99,100,10", RejectReason.BAD_TIMESTAMP, "between 1990 and 2100"),
        (
            f"{ROW_TS[5]},100,101,99,100,10,extra",
            RejectReason.MALFORMED_ROW,
            "7 fields where the header has 6",
        ),
        (f"{ROW_TS[5]},100,101", RejectReason.MALFORMED_ROW, "3 fields"),
    ],
)
def test_each_rejection_reason_is_reported_with_its_line(
    tmp_path: Path, bad: str, reason: RejectReason, detail: str
) -> None:
    result = load_candles(make_file_with(tmp_path, {5: bad}))
    report = result.report
    assert report.rows_read == 60 and report.rows_kept == 59
    assert list(report.rejections) == [reason]
    (example,) = report.examples(reason)
    assert example.line == 7  # header is line 1, data row 5 is line 7
    assert example.text == bad
    assert detail in example.detail, example.detail


def test_date_mismatch_is_rejected(tmp_path: Path) -> None:
    lines = ["unix,date,open,high,low,close,volume"]
    for i, (ts, o, h, lo, c, v) in enumerate(bars(20)):
        shown = ts - (4 * HOUR if i == 3 else 0)
        lines.append(
            f"{ts},{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(shown / 1000))},{o},{h},{lo},{c},{v}"
        )
    path = tmp_path / "mm.csv"
    path.write_text("\n".join(lines) + "\n")
    report = load_candles(path).report
    (example,) = report.examples(RejectReason.DATE_MISMATCH)
    assert example.line == 5 and "says" in example.detail
    assert load_candles(path, keep_date_mismatches=True).report.rows_kept == 20


def test_only_the_first_five_examples_are_kept_but_all_are_counted(tmp_path: Path) -> None:
    bad = {i: f"{ROW_TS[i]},x,1,1,1,1" for i in range(10, 17)}
    report = load_candles(make_file_with(tmp_path, bad)).report
    rejection = report.rejections[RejectReason.UNPARSEABLE_NUMBER]
    assert rejection.count == 7
    assert [ex.line for ex in rejection.examples] == [12, 13, 14, 15, 16]


def test_duplicates_keep_the_first_row(tmp_path: Path) -> None:
    path = make_file_with(tmp_path, {6: f"{ROW_TS[5]},100,105,95,104,1"})
    result = load_candles(path)
    i = int(np.searchsorted(result.candles.ts_ms, ROW_TS[5]))
    assert result.candles.candle(i) == Candle(*bars(60)[5])
    assert result.report.duplicate_conflicts == 1
    assert result.report.gap_count == 1  # row 6's own hour is now missing, and reported


def test_gaps_are_counted_and_the_largest_reported(tmp_path: Path) -> None:
    rows = bars(50)
    kept = rows[:10] + rows[13:30] + rows[31:]  # a 3-hour hole and a 1-hour hole
    report = load_candles(write_csv(tmp_path / "gaps.csv", kept)).report
    assert report.interval_ms == HOUR
    assert (report.gap_count, report.missing_bars) == (2, 4)
    assert report.largest_gap_ms == 4 * HOUR and report.largest_gap_after_ms == rows[9][0]


def test_unordered_rows_are_sorted_and_counted(tmp_path: Path) -> None:
    rows = bars(20)
    shuffled = [*rows[:5], rows[6], rows[5], *rows[7:]]
    result = load_candles(write_csv(tmp_path / "swap.csv", shuffled))
    assert result.report.order == "oldest_first" and result.report.out_of_order_rows == 1
    assert result.candles.to_candles() == [Candle(*r) for r in rows]


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = ["timestamp,open,high,low,close,volume"] + [",".join(map(str, r)) for r in bars(5)]
    lines.insert(3, "")
    lines.insert(5, "   ")
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(lines) + "\n")
    result = load_candles(path)
    assert len(result.candles) == 5 and result.report.blank_lines == 2


# --------------------------------------------------------------------------- whole-file rejection


def test_too_many_rejected_rows_reject_the_file(tmp_path: Path) -> None:
    bad = {i: f"{ROW_TS[i]},NULL,1,1,1,1" for i in range(0, 60, 4)}  # 15 of 60 = 25 %
    path = make_file_with(tmp_path, bad)
    with pytest.raises(CandleFileError) as excinfo:
        load_candles(path)
    message = str(excinfo.value)
    assert str(path) in message and "15 of 60 rows (25%)" in message and "null_price" in message
    assert len(load_candles(path, max_rejected_fraction=0.3).candles) == 45


def test_half_written_csv_is_refused_unless_allowed(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume\n" + "".join(",".join(map(str, r)) + "\n" for r in bars(30))
    path = tmp_path / "partial.csv"
    path.write_text(text[: len(text) - 12])  # cut inside the last row
    with pytest.raises(CandleFileError, match="half-written") as excinfo:
        load_candles(path)
    assert "line 31" in str(excinfo.value) and str(path) in str(excinfo.value)
    result = load_candles(path, allow_truncated=True)
    assert len(result.candles) == 29
    assert [ex.line for ex in result.report.examples(RejectReason.MALFORMED_ROW)] == [31]


def test_half_written_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partial.json"
    text = json.dumps([list(r) for r in bars(30)])
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CandleFileError, match="not valid JSON"):
        load_candles(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"  \n\n \n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        ("timestamp,open,high,low,close\n1,\xe9".encode("latin-1"), "UTF-8"),
        (b"timestamp,price,amount\n1600000000000,100,1\n", "no price column(s) open, high, low, close"),
        (b"timestamp,open,high,close,volume\n1600000000000,1,1,1,1\n", "no price column(s) low"),
        (b"open,high,low,close,volume\n1,1,1,1,1\n", "names no time column"),
        (b"1600000000000,1,1,1,1,1\n1600003600000,1,1,1,1,1\n", "no header row"),
        (b"timestamp,open,high,low,close,volume\n", "no data rows"),
        (b"timestamp,open,high,low,close,volume\n\n\n", "no data rows"),
        (b"[]", "holds no candles"),
        (b'{"open": 1}', "the JSON is an object"),
        (b'[{"a": 1}]', "expected a time key"),
        (b"timestamp,open,high,low,close\nx,NULL,1,1,1\n", "no usable candle"),
    ],
)
def test_unusable_files_raise_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad_file.csv"
    path.write_bytes(content)
    with pytest.raises(CandleFileError) as excinfo:
        load_candles(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    assert excinfo.value.path == path


def test_missing_file_raises_candle_file_error(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError, match="cannot be read"):
        load_candles(tmp_path / "nope.csv")


def test_a_file_mixing_symbols_is_refused(tmp_path: Path) -> None:
    rows = [(r[0], "BTC/USDT" if i % 2 else "ETH/USDT", *r[1:]) for i, r in enumerate(bars(6))]
    path = write_csv(tmp_path / "mixed.csv", rows, "timestamp,symbol,open,high,low,close,volume")
    with pytest.raises(CandleFileError, match="mixes several symbols"):
        load_candles(path)


# --------------------------------------------------------------------------- helpers


def test_guess_symbol_from_file_names() -> None:
    assert guess_symbol("Binance_BTCUSDT_1h.csv") == "BTC/USDT"
    assert guess_symbol("Binance_ETHBTC_d.csv") == "ETH/BTC"
    assert guess_symbol("freqtrade_UNITTEST_BTC-1m.json") == "UNITTEST/BTC"
    assert guess_symbol("BTC_USDT_USDT-1h-futures.json") == "BTC/USDT:USDT"
    assert guess_symbol("candles.csv") is None


def test_candle_arrays_round_trip() -> None:
    candles = [Candle(*r) for r in bars(4)]
    arrays = CandleArrays.from_candles(candles)
    assert arrays.to_candles() == candles and len(arrays) == 4
    structured = arrays.to_structured()
    assert structured["close"].tolist() == [c.close for c in candles]
    assert arrays.slice(1, 3).to_candles() == candles[1:3]
    with pytest.raises(ValueError, match="open has 0 values"):
        CandleArrays(arrays.ts_ms, np.empty(0), arrays.high, arrays.low, arrays.close, arrays.volume)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.floats(1.0, 1e5),
            st.floats(0.0, 0.2),
            st.floats(0.0, 0.2),
            st.floats(-0.1, 0.1),
            st.floats(0.0, 1e6),
        ),
        min_size=3,
        max_size=40,
    ),
    st.booleans(),
)
def test_any_valid_series_round_trips_in_either_order(
    tmp_path: Path, shapes: list[tuple[float, float, float, float, float]], newest_first: bool
) -> None:
    rows = []
    price = shapes[0][0]
    for i, (_, up, down, move, volume) in enumerate(shapes):
        o = round(price, 4)
        c = round(o * (1 + move), 4)
        h = round(max(o, c) * (1 + up), 4) + 0.0001
        lo = max(round(min(o, c) * (1 - down), 4) - 0.0001, 0.0001)
        rows.append((T0 + i * HOUR, o, h, min(lo, o, c), c, round(volume, 4)))
        price = c
    path = write_csv(tmp_path / "prop.csv", list(reversed(rows)) if newest_first else rows)
    result = load_candles(path, outlier_factor=1e9)
    assert result.report.reversed is (newest_first and len(rows) > 1)
    assert result.candles.to_candles() == [Candle(*r) for r in rows]
