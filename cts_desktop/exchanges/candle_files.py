"""Load OHLCV candle files (CSV exports, ccxt/freqtrade JSON) without trusting them.

Real exports are flawed (see ``shared/data/market/SOURCE.md``): newest-first rows, a ``unix``
column that switches from milliseconds to seconds, two ``date`` formats, ``NULL`` trade counts,
an impossible 16199.91 high where the market was near 4,300, missing and repeated hours. A
backtest fed such data silently would report fantasy profits, so the policy here is:

- a row with a bad value is **skipped and reported** (reason, count, first examples with their
  line numbers); nothing is silently repaired: no interpolation, no filling, no clipping;
- facts that are not errors are **reported** and left alone: gaps (count, largest), the file's
  row order (newest-first is detected and reversed), timestamp units and their switches, the
  date formats seen, the detected bar interval, which column was used as volume;
- the whole file is **rejected** with ``CandleFileError`` (naming the file and the problem) when
  it is empty, binary, has no usable header/format, looks half-written, or when too many rows
  (default more than 20 %) had to be rejected: then the file itself is suspect.

Parsing is vectorised (numpy, with pandas only for tolerant number and date parsing, kept inside
a few helpers because pandas is untyped); the largest real file (36,062 rows) loads in a few
tenths of a second.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from cts_desktop.domain.market import Candle

__all__ = [
    "TIMEFRAME_MS",
    "CandleArrays",
    "CandleFileError",
    "CandleFileReport",
    "CandleLoadResult",
    "RejectReason",
    "Rejection",
    "RowExample",
    "guess_symbol",
    "load_candles",
    "timeframe_label",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

TIMEFRAME_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
"""The ccxt timeframe names we understand, in milliseconds (``1M`` has no fixed length)."""

EXAMPLES_PER_REASON = 5
_MIN_TS_MS = 631_152_000_000  # 1990-01-01: older "timestamps" are a unit or parsing mistake
_MAX_TS_MS = 4_102_444_800_000  # 2100-01-01
_NULL_TOKENS = frozenset({"", "null", "none", "nan", "na", "n/a", "-", "nil"})
_TIME_COLUMNS = ("timestamp", "unix", "unix_timestamp", "open_time", "opentime", "ts", "time", "datetime")
_DATE_COLUMN = "date"
_PRICE_COLUMNS = ("open", "high", "low", "close")
_VOLUME_PREFIXED = re.compile(r"^volume[\s_]+(\S+)$")
_KNOWN_QUOTES = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "DAI",
    "USD",
    "EUR",
    "GBP",
    "TRY",
    "BTC",
    "ETH",
    "BNB",
)
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %I-%p",  # CryptoDataDownload's older rows: "2017-08-17 06-AM"
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
)
_ISO_LABEL = "ISO-8601"
_UNIT_LABELS = ("s", "ms", "us", "ns")
_UNIT_FACTORS = (1000.0, 1.0, 1e-3, 1e-6)  # to milliseconds
_HEADER_SEARCH_LINES = 10
_CONFLICT_TOLERANCE = 1e-4


class CandleFileError(ValueError):
    """The file cannot be used at all; ``str()`` names the file and what is wrong with it."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"Cannot load candles from {self.path}: {problem}")


class RejectReason(StrEnum):
    """Why a row was skipped. Each rejected row is counted under exactly one (the first) reason."""

    MALFORMED_ROW = "malformed_row"  # wrong number of fields / not an array of numbers
    BAD_TIMESTAMP = "bad_timestamp"  # unreadable, or outside 1990–2100
    NULL_PRICE = "null_price"  # NULL / empty open, high, low or close
    UNPARSEABLE_NUMBER = "unparseable_number"  # a price or volume that is not a finite number
    NULL_VOLUME = "null_volume"
    IMPOSSIBLE_BAR = "impossible_bar"  # high < max(open, close), low > min(open, close), price ≤ 0…
    DATE_MISMATCH = "date_mismatch"  # the timestamp and the date column disagree
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"  # the first row for a time is kept
    OUTLIER = "outlier"  # a price implausibly far from the neighbouring closes


_REASON_CODES: tuple[RejectReason, ...] = tuple(RejectReason)
_CODE = {reason: np.int8(i + 1) for i, reason in enumerate(_REASON_CODES)}


@dataclass(frozen=True, slots=True)
class RowExample:
    """One rejected row: ``line`` is the 1-based line in a CSV, or the 1-based element in JSON."""

    line: int
    text: str
    detail: str


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    count: int
    examples: tuple[RowExample, ...]


@dataclass(frozen=True, eq=False)
class CandleArrays:
    """Candles as parallel numpy arrays, oldest first: the shape replays and indicators consume.

    ``ts_ms`` is each bar's open time (UTC ms). Arrays are read-only views; slicing is free.
    """

    ts_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CandleArrays: {name} has {len(getattr(self, name))} values, ts_ms has {n}")

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def empty(cls) -> CandleArrays:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f)

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleArrays:
        return cls(
            np.fromiter((c.ts_ms for c in candles), dtype=np.int64, count=len(candles)),
            np.fromiter((c.open for c in candles), dtype=np.float64, count=len(candles)),
            np.fromiter((c.high for c in candles), dtype=np.float64, count=len(candles)),
            np.fromiter((c.low for c in candles), dtype=np.float64, count=len(candles)),
            np.fromiter((c.close for c in candles), dtype=np.float64, count=len(candles)),
            np.fromiter((c.volume for c in candles), dtype=np.float64, count=len(candles)),
        )

    def slice(self, start: int | None, stop: int | None) -> CandleArrays:
        s = slice(start, stop)
        return CandleArrays(
            self.ts_ms[s], self.open[s], self.high[s], self.low[s], self.close[s], self.volume[s]
        )

    def candle(self, i: int) -> Candle:
        return Candle(
            ts_ms=int(self.ts_ms[i]),
            open=float(self.open[i]),
            high=float(self.high[i]),
            low=float(self.low[i]),
            close=float(self.close[i]),
            volume=float(self.volume[i]),
        )

    def to_candles(self) -> list[Candle]:
        return [
            Candle(int(t), float(o), float(h), float(lo), float(c), float(v))
            for t, o, h, lo, c, v in zip(
                self.ts_ms.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                strict=True,
            )
        ]

    def to_structured(self) -> npt.NDArray[np.void]:
        """One structured array (fields ts_ms, open, high, low, close, volume), e.g. for saving."""
        out = np.empty(
            len(self),
            dtype=[
                ("ts_ms", "i8"),
                ("open", "f8"),
                ("high", "f8"),
                ("low", "f8"),
                ("close", "f8"),
                ("volume", "f8"),
            ],
        )
        for name in ("ts_ms", "open", "high", "low", "close", "volume"):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class CandleFileReport:
    """Everything the loader noticed about a file; ``summary()`` renders it for a person."""

    path: Path
    format: str  # "cryptodatadownload", "csv", "json_array", "json_records"
    symbol: str | None
    symbol_source: str | None  # "column", "filename" or None
    rows_read: int  # data rows (not counting header, banner and blank lines)
    rows_kept: int
    rejections: dict[RejectReason, Rejection]
    timestamp_column: str
    volume_column: str | None  # None: the file has no volume; volumes are 0.0
    timestamp_units: dict[str, int]  # rows per unit: "s", "ms", "us", "ns" or a date format
    unit_switches: int  # how often the unit changes from one row to the next, in file order
    date_formats: dict[str, int]  # rows per format of the date/time text column, if any
    date_unparsed: int  # rows whose (secondary) date text could not be read; kept, timestamp used
    order: str  # "oldest_first" or "newest_first" (the file's majority direction)
    reversed: bool  # rows were reversed into oldest-first order
    out_of_order_rows: int  # steps against the majority direction (sorted, and counted here)
    duplicate_conflicts: int  # duplicates whose values differed from the row kept
    interval_ms: int | None  # median spacing of the kept candles
    timeframe: str | None  # "1h" etc. when the interval is a known timeframe
    gap_count: int  # spacings longer than the interval
    missing_bars: int  # bars absent inside those gaps
    largest_gap_ms: int
    largest_gap_after_ms: int | None  # open time of the bar before the largest gap
    first_ts_ms: int | None
    last_ts_ms: int | None
    blank_lines: int
    banner: str | None  # a text line above the header (CryptoDataDownload's URL banner)
    location: str = "line"  # what RowExample.line counts: "line" (CSV) or "element" (JSON)
    notes: tuple[str, ...] = field(default=())

    @property
    def rows_rejected(self) -> int:
        return sum(r.count for r in self.rejections.values())

    def count(self, reason: RejectReason) -> int:
        rejection = self.rejections.get(reason)
        return rejection.count if rejection else 0

    def examples(self, reason: RejectReason) -> tuple[RowExample, ...]:
        rejection = self.rejections.get(reason)
        return rejection.examples if rejection else ()

    def summary(self) -> str:
        lines = [
            f"{self.path.name}: {self.format}, symbol {self.symbol or '?'}, "
            f"{self.rows_kept} of {self.rows_read} rows kept ({self.rows_rejected} rejected)",
            f"  time from column {self.timestamp_column!r}: units {self.timestamp_units}, "
            f"{self.unit_switches} unit switches"
            + (f", date formats {self.date_formats}" if self.date_formats else ""),
            f"  order: {self.order}"
            + (" (reversed to oldest first)" if self.reversed else "")
            + (f", {self.out_of_order_rows} rows out of order (sorted)" if self.out_of_order_rows else ""),
            f"  interval: {_duration(self.interval_ms) if self.interval_ms else '?'}; {self.gap_count} gaps, "
            f"{self.missing_bars} missing bars, largest gap {_duration(self.largest_gap_ms)}",
            f"  volume from column: {self.volume_column or 'none (volumes are 0)'}",
        ]
        for rejection in self.rejections.values():
            lines.append(f"  rejected {rejection.count} × {rejection.reason.value}")
            lines.extend(f"    {self.location} {ex.line}: {ex.detail}" for ex in rejection.examples)
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class CandleLoadResult:
    candles: CandleArrays
    report: CandleFileReport


# --------------------------------------------------------------------------- public entry point


def load_candles(
    path: str | Path,
    *,
    outlier_factor: float = 3.0,
    outlier_window: int = 5,
    max_rejected_fraction: float = 0.2,
    allow_truncated: bool = False,
    keep_date_mismatches: bool = False,
) -> CandleLoadResult:
    """Read a candle file of any supported format; see the module docstring for the policy.

    ``outlier_factor``: a bar whose high exceeds ``factor`` × the median close of the
    ``outlier_window`` bars on each side (or whose low is below median / factor) is rejected.
    ``allow_truncated``: drop (and report) a cut-off last line instead of rejecting the file.
    ``keep_date_mismatches``: keep rows whose timestamp and date columns disagree, at their
    timestamp (a note counts them) instead of rejecting them as DATE_MISMATCH.
    """
    path = Path(path)
    if outlier_factor <= 1.0:
        raise ValueError("outlier_factor must be > 1")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CandleFileError(path, f"the file cannot be read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise CandleFileError(path, "the file is empty")
    if b"\x00" in data[:65536]:
        raise CandleFileError(path, "this is a binary file, not a CSV or JSON candle export")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CandleFileError(
            path, f"the file is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8 CSV"
        ) from exc
    if text.lstrip()[:1] in ("[", "{"):
        table = _read_json(path, text)
    else:
        table = _read_csv(path, text, allow_truncated=allow_truncated)
    return _validate(
        path,
        table,
        outlier_factor=outlier_factor,
        outlier_window=outlier_window,
        max_rejected_fraction=max_rejected_fraction,
        keep_date_mismatches=keep_date_mismatches,
    )


def guess_symbol(path: str | Path) -> str | None:
    """A ccxt symbol from a file name: ``Binance_BTCUSDT_1h.csv`` → BTC/USDT,
    ``UNITTEST_BTC-1m.json`` (freqtrade) → UNITTEST/BTC, ``BTC_USDT_USDT-1h-futures.json`` →
    BTC/USDT:USDT. None when the name follows no known convention."""
    name = Path(path).name
    freqtrade = re.search(r"(?:^|_)([A-Z0-9]+)_([A-Z0-9]+)(?:_([A-Z0-9]+))?-\d+[smhdwM]\b", name)
    if freqtrade:
        base, quote, settle = freqtrade.groups()
        return f"{base}/{quote}" + (f":{settle}" if settle else "")
    cdd = re.match(r"^[A-Za-z]+_([A-Z0-9]+)_\w+\.\w+$", name)
    if cdd:
        return _split_pair(cdd.group(1))
    return None


def timeframe_label(interval_ms: int | None) -> str | None:
    for label, ms in TIMEFRAME_MS.items():
        if ms == interval_ms:
            return label
    return None


# --------------------------------------------------------------------------- raw tables


@dataclass
class _Table:
    """A file's data rows before validation; every array has one entry per data row."""

    format: str
    location: str
    line_no: I64
    reason: npt.NDArray[np.int8]  # 0 = fine so far, else a _CODE value
    columns: dict[str, Any]  # field name → object ndarray of cell texts (CSV / records) …
    numeric: dict[str, F64]  # … or already-numeric columns (JSON arrays)
    time_field: str
    date_field: str | None
    volume_field: str | None
    symbol_values: list[str]
    row_text: Callable[[int], str]
    malformed_detail: Callable[[int], str]
    blank_lines: int = 0
    banner: str | None = None
    notes: list[str] = field(default_factory=list)


def _split_pair(pair: str) -> str | None:
    pair = pair.upper()
    for quote in _KNOWN_QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return f"{pair[: -len(quote)]}/{quote}"
    return None


def _find_header(path: Path, lines: list[str]) -> tuple[int, str, list[str]]:
    """Index, delimiter and field names of the header line (within the first few lines)."""
    first_texty: list[str] | None = None
    seen = 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        seen += 1
        if seen > _HEADER_SEARCH_LINES:
            break
        delimiter = max((",", ";", "\t", "|"), key=line.count)
        fields = [f.strip().strip('"').strip() for f in next(csv.reader([line], delimiter=delimiter))]
        lowered = [f.lower() for f in fields]
        has_time = any(name in lowered for name in (*_TIME_COLUMNS, _DATE_COLUMN))
        has_prices = all(name in lowered for name in _PRICE_COLUMNS)
        if has_time and has_prices:
            return i, delimiter, fields
        if first_texty is None and len(fields) > 1 and any(re.search(r"[A-Za-z]", f) for f in fields):
            first_texty = fields
    if first_texty is None:
        first = next((line for line in lines if line.strip()), "")
        if re.fullmatch(r"[\d\s.,;:\-+eE\"TZ]+", first):
            raise CandleFileError(
                path,
                "no header row: the first line already holds numbers. Add a header such as "
                "'timestamp,open,high,low,close,volume' so the columns can be identified",
            )
        raise CandleFileError(
            path, "no CSV header found (expected columns timestamp or date, open, high, low, close, volume)"
        )
    lowered = [f.lower() for f in first_texty]
    missing = [name for name in _PRICE_COLUMNS if name not in lowered]
    if missing:
        raise CandleFileError(
            path,
            f"the header {first_texty} has no price column(s) {', '.join(missing)}; "
            "a candle file needs open, high, low and close",
        )
    raise CandleFileError(
        path,
        f"the header {first_texty} names no time column; expected one of "
        f"{', '.join((*_TIME_COLUMNS, _DATE_COLUMN))}",
    )


def _pick_fields(
    names: Sequence[str], symbol_hint: str | None
) -> tuple[str, str | None, str | None, dict[str, str]]:
    """Map our roles to the file's field names: time, secondary date, volume, and o/h/l/c."""
    by_lower = {n.lower(): n for n in names}
    time_field = next((by_lower[c] for c in _TIME_COLUMNS if c in by_lower), None)
    date_field = by_lower.get(_DATE_COLUMN)
    if time_field is None:
        time_field, date_field = date_field, None
    assert time_field is not None  # _find_header guaranteed one
    prices = {name: by_lower[name] for name in _PRICE_COLUMNS}
    volume_field = by_lower.get("volume")
    if volume_field is None:
        prefixed = [(m.group(1), n) for n in names if (m := _VOLUME_PREFIXED.match(n.lower()))]
        base = symbol_hint.split("/")[0].lower() if symbol_hint else None
        volume_field = next((n for suffix, n in prefixed if suffix == base), None)
        if volume_field is None and prefixed:
            volume_field = prefixed[0][1]
    return time_field, date_field, volume_field, prices


def _read_csv(path: Path, text: str, *, allow_truncated: bool) -> _Table:
    lines = text.splitlines()
    header_idx, delimiter, header = _find_header(path, lines)
    banner = next((line.strip() for line in lines[:header_idx] if line.strip()), None)
    width = len(header)
    rows = list(csv.reader(lines[header_idx + 1 :], delimiter=delimiter))
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    blank = counts == 0
    for i in np.nonzero(counts == 1)[0].tolist():
        blank[i] = not rows[i][0].strip()
    data_idx = np.nonzero(~blank)[0]
    line_no = (data_idx + header_idx + 2).astype(np.int64)
    n = len(data_idx)
    if n == 0:
        raise CandleFileError(path, "the file has a header but no data rows")
    counts = counts[data_idx]
    reason = np.zeros(n, dtype=np.int8)
    reason[counts != width] = _CODE[RejectReason.MALFORMED_ROW]
    ends_mid_line = not text.endswith(("\n", "\r"))
    if ends_mid_line and counts[-1] != width:
        problem = (
            f"the last line, line {int(line_no[-1])}, is cut off mid-row "
            f"({int(counts[-1])} of {width} fields and no line end): the file looks half-written"
        )
        if not allow_truncated:
            raise CandleFileError(path, problem + "; wait for the export to finish, or remove that line")
    good = counts == width
    good_rows = list(itertools.compress((rows[i] for i in data_idx.tolist()), good.tolist()))
    columns_by_pos = list(zip(*good_rows, strict=True)) if good_rows else [() for _ in header]
    columns: dict[str, Any] = {}
    for j, name in enumerate(header):
        full = np.full(n, "", dtype=object)
        full[good] = columns_by_pos[j]
        columns[name] = full

    symbol_values: list[str] = []
    symbol_field = next((h for h in header if h.lower() == "symbol"), None)
    if symbol_field is not None:
        symbol_values = sorted({str(v).strip() for v in columns[symbol_field][good].tolist()} - {""})
    hint = symbol_values[0] if len(symbol_values) == 1 else guess_symbol(path)
    time_field, date_field, volume_field, prices = _pick_fields(header, hint)
    lowered = {h.lower() for h in header}
    is_cdd = ("unix" in lowered and "symbol" in lowered) or bool(
        banner and "cryptodatadownload" in banner.lower()
    )
    # Internal role names for the price fields, so validation needs no per-file mapping.
    for role, name in prices.items():
        columns[f"__{role}"] = columns[name]

    def row_text(i: int) -> str:
        return lines[int(line_no[i]) - 1]

    def malformed_detail(i: int) -> str:
        return f"{int(counts[i])} fields where the header has {width}"

    table = _Table(
        format="cryptodatadownload" if is_cdd else "csv",
        location="line",
        line_no=line_no,
        reason=reason,
        columns=columns,
        numeric={},
        time_field=time_field,
        date_field=date_field,
        volume_field=volume_field,
        symbol_values=symbol_values,
        row_text=row_text,
        malformed_detail=malformed_detail,
        blank_lines=int(blank.sum()),
        banner=banner,
    )
    if ends_mid_line and counts[-1] != width:
        table.notes.append(f"line {int(line_no[-1])} was cut off mid-row (half-written file) and dropped")
    return table


def _read_json(path: Path, text: str) -> _Table:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CandleFileError(
            path,
            f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "a file cut off while being written looks like this",
        ) from exc
    if isinstance(data, dict):
        raise CandleFileError(
            path, "the JSON is an object; expected an array of [ms, open, high, low, close, volume] arrays"
        )
    if not isinstance(data, list) or not data:
        raise CandleFileError(path, "the JSON array holds no candles")
    n = len(data)
    line_no = np.arange(1, n + 1, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)

    def row_text(i: int) -> str:
        return json.dumps(data[i])[:200]

    if all(isinstance(x, dict) for x in data):
        frame = pd.DataFrame.from_records(data)
        names = [str(c) for c in frame.columns]
        lowered = [c.lower() for c in names]
        if not all(p in lowered for p in _PRICE_COLUMNS) or not any(
            c in lowered for c in (*_TIME_COLUMNS, _DATE_COLUMN)
        ):
            raise CandleFileError(
                path, f"the JSON records have keys {names}; expected a time key and open, high, low, close"
            )
        time_field, date_field, volume_field, prices = _pick_fields(names, guess_symbol(path))
        columns: dict[str, Any] = {
            name: np.asarray(frame[name].map(_cell_text).to_numpy(dtype=object), dtype=object)
            for name in names
        }
        for role, name in prices.items():
            columns[f"__{role}"] = columns[name]
        return _Table(
            format="json_records",
            location="element",
            line_no=line_no,
            reason=reason,
            columns=columns,
            numeric={},
            time_field=time_field,
            date_field=date_field,
            volume_field=volume_field,
            symbol_values=[],
            row_text=row_text,
            malformed_detail=lambda i: "not a candle record",
        )

    numeric, texts = _json_arrays(data, reason)
    roles = ("__time", "__open", "__high", "__low", "__close", "__volume")

    def malformed_detail(i: int) -> str:
        item = data[i]
        if not isinstance(item, list):
            return f"a {type(item).__name__}, not an array"
        return f"{len(item)} values where [ms, open, high, low, close, volume] has 6"

    return _Table(
        format="json_array",
        location="element",
        line_no=line_no,
        reason=reason,
        columns=dict(zip(roles, texts, strict=True)) if texts else {},
        numeric=dict(zip(roles, numeric, strict=True)) if numeric else {},
        time_field="__time",
        date_field=None,
        volume_field="__volume",
        symbol_values=[],
        row_text=row_text,
        malformed_detail=malformed_detail,
    )


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return str(value)


def _json_arrays(data: list[Any], reason: npt.NDArray[np.int8]) -> tuple[list[F64], list[Any]]:
    """Six columns from ``[[ms, o, h, l, c, v], …]``: as floats, or as cell texts.

    Fast path: one ``np.asarray`` when every element is a clean numeric array (the usual case),
    giving float columns. Otherwise rows of the wrong shape are marked malformed and the columns
    come back as texts, so nulls, strings and booleans are told apart and reported like CSV cells.
    """
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is not None and arr.ndim == 2 and arr.shape[1] >= 6 and np.isfinite(arr[:, :6]).all():
        return [np.ascontiguousarray(arr[:, j]) for j in range(6)], []
    n = len(data)
    ok = np.fromiter((isinstance(x, list) and len(x) >= 6 for x in data), dtype=np.bool_, count=n)
    reason[~ok] = _CODE[RejectReason.MALFORMED_ROW]
    rows = np.nonzero(ok)[0].tolist()
    texts: list[Any] = []
    for j in range(6):
        column = np.full(n, "", dtype=object)
        column[ok] = [_cell_text(data[i][j]) for i in rows]
        texts.append(column)
    return [], texts


# --------------------------------------------------------------------------- parsing helpers


def _coerce_numbers(texts: Any) -> tuple[F64, Mask, Mask]:
    """Values, NULL mask and unparseable mask of a column of cell texts (or JSON scalars)."""
    values_obj = np.asarray(texts, dtype=object)
    try:
        values = np.asarray(values_obj, dtype=np.float64)
        if np.isfinite(values).all():
            return values, np.zeros(len(values), dtype=np.bool_), np.zeros(len(values), dtype=np.bool_)
    except (ValueError, TypeError):
        pass
    series = pd.Series(values_obj, dtype=object)
    lowered = series.map(lambda v: "null" if v is None else str(v).strip().lower())
    null = np.asarray(lowered.isin(_NULL_TOKENS).to_numpy(), dtype=np.bool_)
    parsed = np.array(pd.to_numeric(lowered, errors="coerce").to_numpy(dtype=np.float64), dtype=np.float64)
    bad = ~null & ~np.isfinite(parsed)
    parsed[null | bad] = np.nan
    return parsed, null, bad


def _numeric_times(values: F64) -> tuple[I64, npt.NDArray[np.int8]]:
    """Epoch numbers → ms, with each row's unit chosen by magnitude (s, ms, µs or ns).

    Per row, because real exports switch units mid-file: 1623283200000 (ms) next to
    1502942400.0 (s). -1 in the unit code marks a row whose value is not a usable time.
    """
    magnitude = np.abs(values)
    unit = np.select(
        [magnitude < 1e11, magnitude < 1e14, magnitude < 1e17, magnitude < 1e20],
        [0, 1, 2, 3],
        default=-1,
    ).astype(np.int8)
    factor = np.asarray(_UNIT_FACTORS, dtype=np.float64)[np.clip(unit, 0, 3)]
    with np.errstate(invalid="ignore"):
        ms_float = np.rint(values * factor)
    valid = np.isfinite(ms_float) & (unit >= 0) & (ms_float >= _MIN_TS_MS) & (ms_float < _MAX_TS_MS)
    unit[~valid] = -1
    ms = np.where(valid, ms_float, 0).astype(np.int64)
    return ms, unit


def _parse_dates(texts: Any) -> tuple[I64, Mask, npt.NDArray[np.int16]]:
    """Date/time texts → (ms, parsed mask, index into the format list; -1 = not parsed).

    Each known format is tried on the rows still unparsed, so a file mixing CryptoDataDownload's
    ``2021-06-10 00:00:00`` and ``2017-08-17 06-AM`` is read in two vectorised passes. Texts
    without a timezone are UTC. The last resort is pandas' ISO-8601 parser (offsets, ``Z``,
    fractions).
    """
    series = pd.Series(np.asarray(texts, dtype=object), dtype=object).map(lambda v: str(v).strip())
    n = len(series)
    ms = np.zeros(n, dtype=np.int64)
    fmt_index = np.full(n, -1, dtype=np.int16)
    remaining: npt.NDArray[np.intp] = np.arange(n, dtype=np.intp)
    for k, fmt in enumerate((*_DATE_FORMATS, _ISO_LABEL)):
        if len(remaining) == 0:
            break
        subset = series.iloc[remaining]
        if fmt == _ISO_LABEL:
            parsed = pd.to_datetime(subset, format="ISO8601", utc=True, errors="coerce").dt.tz_convert(None)
        else:
            parsed = pd.to_datetime(subset, format=fmt, errors="coerce")
        ok = np.asarray(parsed.notna().to_numpy(), dtype=np.bool_)
        if ok.any():
            values = np.asarray(parsed[ok].to_numpy(dtype="datetime64[ms]").astype(np.int64), dtype=np.int64)
            ms[remaining[ok]] = values
            fmt_index[remaining[ok]] = k
        remaining = remaining[~ok]
    parsed_mask = fmt_index >= 0
    in_range = (ms >= _MIN_TS_MS) & (ms < _MAX_TS_MS)
    fmt_index[~in_range] = -1
    return ms, parsed_mask & in_range, fmt_index


def _format_label(k: int) -> str:
    formats = (*_DATE_FORMATS, _ISO_LABEL)
    return formats[k]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _rolling_median(values: F64, half_window: int) -> F64:
    """Centered rolling median over 2·half_window+1 values, shrinking at the edges."""
    series = pd.Series(values)
    out = series.rolling(2 * half_window + 1, center=True, min_periods=1).median()
    return np.asarray(out.to_numpy(dtype=np.float64), dtype=np.float64)


# --------------------------------------------------------------------------- validation


def _validate(
    path: Path,
    table: _Table,
    *,
    outlier_factor: float,
    outlier_window: int,
    max_rejected_fraction: float,
    keep_date_mismatches: bool,
) -> CandleLoadResult:
    reason = table.reason
    n = len(reason)
    if len(table.symbol_values) > 1:
        raise CandleFileError(
            path,
            f"the file mixes several symbols ({', '.join(table.symbol_values[:5])}); one symbol per file",
        )

    def mark(mask: Mask, why: RejectReason) -> None:
        reason[(reason == 0) & mask] = _CODE[why]

    details: dict[RejectReason, Callable[[int], str]] = {RejectReason.MALFORMED_ROW: table.malformed_detail}
    notes = list(table.notes)

    # --- time
    units: dict[str, int] = {}
    date_formats: dict[str, int] = {}
    date_unparsed = 0
    time_texts = table.columns.get(table.time_field)
    if time_texts is None:
        ts, unit = _numeric_times(table.numeric[table.time_field])
        unit_code = unit.astype(np.int16)
    else:
        numbers, _, not_number = _coerce_numbers(time_texts)
        ts, unit = _numeric_times(numbers)
        unit_code = unit.astype(np.int16)
        textual = not_number & (reason == 0)
        if textual.any():
            d_ms, d_ok, d_fmt = _parse_dates(time_texts[textual])
            idx = np.nonzero(textual)[0]
            ts[idx[d_ok]] = d_ms[d_ok]
            unit_code[idx] = np.where(d_ok, 100 + d_fmt, -1)
            for k, count in zip(*np.unique(d_fmt[d_ok], return_counts=True), strict=True):
                date_formats[_format_label(int(k))] = int(count)
    live = reason == 0
    bad_time = live & (unit_code < 0)
    mark(bad_time, RejectReason.BAD_TIMESTAMP)
    ok_units = unit_code[live & ~bad_time]
    for code, count in zip(*np.unique(ok_units, return_counts=True), strict=True):
        code_i = int(code)
        label = _UNIT_LABELS[code_i] if code_i < 100 else _format_label(code_i - 100)
        units[label] = int(count)
    unit_switches = int(np.count_nonzero(ok_units[1:] != ok_units[:-1])) if len(ok_units) > 1 else 0

    def time_detail(i: int) -> str:
        raw = str(time_texts[i]) if time_texts is not None else repr(table.numeric[table.time_field][i])
        name = "ms" if table.time_field == "__time" else table.time_field
        return f"{name} value {raw!r} is not a readable time between 1990 and 2100"

    details[RejectReason.BAD_TIMESTAMP] = time_detail

    # --- prices and volume
    prices: dict[str, F64] = {}
    nulls: dict[str, Mask] = {}
    bads: dict[str, Mask] = {}
    for role in _PRICE_COLUMNS:
        key = f"__{role}"
        if key in table.numeric:
            values = table.numeric[key]
            nulls[role] = np.isnan(values)
            bads[role] = ~nulls[role] & ~np.isfinite(values)
            prices[role] = values
        else:
            prices[role], nulls[role], bads[role] = _coerce_numbers(table.columns[key])
    any_null = np.logical_or.reduce([nulls[r] for r in _PRICE_COLUMNS])
    mark(any_null, RejectReason.NULL_PRICE)
    any_bad = np.logical_or.reduce([bads[r] for r in _PRICE_COLUMNS])
    if table.volume_field is not None:
        if table.volume_field in table.numeric:
            volume = table.numeric[table.volume_field]
            v_null = np.isnan(volume)
            v_bad = ~v_null & ~np.isfinite(volume)
        else:
            volume, v_null, v_bad = _coerce_numbers(table.columns[table.volume_field])
        mark(any_bad | v_bad, RejectReason.UNPARSEABLE_NUMBER)
        mark(v_null, RejectReason.NULL_VOLUME)
    else:
        volume = np.zeros(n, dtype=np.float64)
        v_null = v_bad = np.zeros(n, dtype=np.bool_)
        mark(any_bad, RejectReason.UNPARSEABLE_NUMBER)
        notes.append("the file has no volume column: every volume is 0.0")

    def cell(role: str, i: int) -> str:
        if f"__{role}" in table.numeric:
            value = float(table.numeric[f"__{role}"][i])
            return "null" if math.isnan(value) else repr(value)
        column = table.columns.get(f"__{role}", table.columns.get(role))
        return str(column[i]) if column is not None else "?"

    def null_detail(i: int) -> str:
        role = next(r for r in _PRICE_COLUMNS if nulls[r][i])
        return f"{role} is {cell(role, i)!r}"

    def unparseable_detail(i: int) -> str:
        for role in _PRICE_COLUMNS:
            if bads[role][i]:
                return f"{role} value {cell(role, i)!r} is not a finite number"
        field_name = table.volume_field or "volume"
        raw = table.columns[field_name][i] if field_name in table.columns else repr(float(volume[i]))
        return f"{field_name.removeprefix('__')} value {raw!r} is not a finite number"

    def null_volume_detail(i: int) -> str:
        field_name = table.volume_field or "volume"
        raw = table.columns[field_name][i] if field_name in table.columns else "null"
        return f"{field_name.removeprefix('__')} is {raw!r}"

    details[RejectReason.NULL_PRICE] = null_detail
    details[RejectReason.UNPARSEABLE_NUMBER] = unparseable_detail
    details[RejectReason.NULL_VOLUME] = null_volume_detail

    o, h, lo, c = prices["open"], prices["high"], prices["low"], prices["close"]
    with np.errstate(invalid="ignore"):
        non_positive = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)
        high_low = h < np.maximum(o, c)
        low_high = lo > np.minimum(o, c)
        negative_volume = volume < 0
    mark(non_positive | high_low | low_high | negative_volume, RejectReason.IMPOSSIBLE_BAR)

    def impossible_detail(i: int) -> str:
        oi, hi, li, ci = _num(o[i]), _num(h[i]), _num(lo[i]), _num(c[i])
        if non_positive[i]:
            return f"non-positive price (open {oi}, high {hi}, low {li}, close {ci})"
        if high_low[i]:
            return f"high {hi} is below max(open {oi}, close {ci})"
        if low_high[i]:
            return f"low {li} is above min(open {oi}, close {ci})"
        return f"negative volume {_num(volume[i])}"

    details[RejectReason.IMPOSSIBLE_BAR] = impossible_detail

    # --- secondary date column must agree with the timestamp
    if table.date_field is not None and table.date_field in table.columns:
        rows = np.nonzero(reason == 0)[0]
        d_ms, d_ok, d_fmt = _parse_dates(table.columns[table.date_field][rows])
        for k, count in zip(*np.unique(d_fmt[d_ok], return_counts=True), strict=True):
            date_formats[_format_label(int(k))] = int(count)
        date_unparsed = int(np.count_nonzero(~d_ok))
        date_ms = np.zeros(n, dtype=np.int64)
        date_ms[rows] = d_ms
        mismatch = np.zeros(n, dtype=np.bool_)
        mismatch[rows] = d_ok & (d_ms != ts[rows])
        if keep_date_mismatches:
            if mismatch.any():
                notes.append(
                    f"{int(mismatch.sum())} rows whose {table.date_field} disagrees with "
                    f"{table.time_field} were kept at their {table.time_field} time"
                )
        else:
            mark(mismatch, RejectReason.DATE_MISMATCH)
        if date_unparsed:
            notes.append(
                f"{date_unparsed} rows have an unreadable {table.date_field}; "
                f"their {table.time_field} was used"
            )

        date_field = table.date_field
        date_texts = table.columns[date_field]

        def mismatch_detail(i: int) -> str:
            return (
                f"{table.time_field} says {_iso(int(ts[i]))} but {date_field} "
                f"{date_texts[i]!r} says {_iso(int(date_ms[i]))}"
            )

        details[RejectReason.DATE_MISMATCH] = mismatch_detail

    # --- duplicates (the first row in file order wins), then order
    valid_idx = np.nonzero(reason == 0)[0]
    vts = ts[valid_idx]
    _, first_pos, inverse = np.unique(vts, return_index=True, return_inverse=True)
    keeper = valid_idx[first_pos[inverse]]
    duplicate = keeper != valid_idx
    dup_rows = valid_idx[duplicate]
    dup_keepers = keeper[duplicate]
    conflicts = np.zeros(n, dtype=np.bool_)
    conflicts[dup_rows] = np.logical_or.reduce(
        [_differs(arr[dup_rows], arr[dup_keepers]) for arr in (o, h, lo, c, volume)]
    )
    keeper_of = np.full(n, -1, dtype=np.int64)
    keeper_of[dup_rows] = dup_keepers
    reason[dup_rows] = _CODE[RejectReason.DUPLICATE_TIMESTAMP]

    def duplicate_detail(i: int) -> str:
        k = int(keeper_of[i])
        text = f"same time {_iso(int(ts[i]))} as {table.location} {int(table.line_no[k])} (kept)"
        if conflicts[i]:
            diffs = [
                f"{name} {_num(arr[i])} vs {_num(arr[k])}"
                for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c), ("volume", volume))
                if _differs(arr[i : i + 1], arr[k : k + 1])[0]
            ]
            text += " with different values: " + ", ".join(diffs[:3])
        return text

    details[RejectReason.DUPLICATE_TIMESTAMP] = duplicate_detail

    kept_idx = valid_idx[~duplicate]  # file order
    steps = np.diff(ts[kept_idx])
    backwards = int(np.count_nonzero(steps < 0))
    forwards = int(np.count_nonzero(steps > 0))
    newest_first = backwards > forwards
    order = "newest_first" if newest_first else "oldest_first"
    out_of_order = forwards if newest_first else backwards
    if newest_first:
        kept_idx = kept_idx[::-1]
    kept_idx = kept_idx[np.argsort(ts[kept_idx], kind="stable")]

    # --- implausible outliers, judged against neighbouring closes in time order
    if len(kept_idx) >= 3:
        median = _rolling_median(c[kept_idx], outlier_window)
        high_ratio = h[kept_idx] / median
        low_ratio = median / lo[kept_idx]
        outlier = (high_ratio > outlier_factor) | (low_ratio > outlier_factor)
        ratio_of = np.zeros(n, dtype=np.float64)
        median_of = np.zeros(n, dtype=np.float64)
        ratio_of[kept_idx] = np.maximum(high_ratio, low_ratio)
        median_of[kept_idx] = median
        reason[kept_idx[outlier]] = _CODE[RejectReason.OUTLIER]
        kept_idx = kept_idx[~outlier]

        def outlier_detail(i: int) -> str:
            med = float(median_of[i])
            if h[i] / med > outlier_factor:
                what = f"high {_num(h[i])} is {float(h[i]) / med:.2f}×"
            else:
                what = f"low {_num(lo[i])} is 1/{med / float(lo[i]):.2f} of"
            return (
                f"{what} the median close {_num(med)} of the neighbouring bars "
                f"(limit {outlier_factor:g}×) at {_iso(int(ts[i]))}"
            )

        details[RejectReason.OUTLIER] = outlier_detail

    candles = CandleArrays(
        ts_ms=ts[kept_idx],
        open=o[kept_idx],
        high=h[kept_idx],
        low=lo[kept_idx],
        close=c[kept_idx],
        volume=volume[kept_idx],
    )

    # --- rejections and the whole-file verdict
    rejections: dict[RejectReason, Rejection] = {}
    for why in _REASON_CODES:
        rows_with = np.nonzero(reason == _CODE[why])[0]
        if len(rows_with) == 0:
            continue
        detail = details[why]
        examples = tuple(
            RowExample(line=int(table.line_no[i]), text=table.row_text(i)[:200], detail=detail(i))
            for i in rows_with[:EXAMPLES_PER_REASON].tolist()
        )
        rejections[why] = Rejection(why, len(rows_with), examples)
    rejected = int(np.count_nonzero(reason))
    if len(candles) == 0:
        raise CandleFileError(path, "no usable candle survived validation: " + _reason_list(rejections))
    if rejected / n > max_rejected_fraction:
        raise CandleFileError(
            path,
            f"{rejected} of {n} rows ({rejected / n:.0%}) were rejected, more than the "
            f"{max_rejected_fraction:.0%} allowed, so the file itself is suspect: "
            + _reason_list(rejections),
        )

    # --- interval and gaps of what is kept
    interval_ms: int | None = None
    gap_count = missing = largest = 0
    largest_after: int | None = None
    if len(candles) >= 2:
        spacing = np.diff(candles.ts_ms)
        interval_ms = int(np.median(spacing))
        if interval_ms > 0:
            gaps = spacing > interval_ms
            gap_count = int(np.count_nonzero(gaps))
            missing = int(np.sum(np.rint(spacing[gaps] / interval_ms).astype(np.int64) - 1))
            at = int(np.argmax(spacing))
            largest = int(spacing[at]) if gap_count else 0
            largest_after = int(candles.ts_ms[at]) if gap_count else None
        recent = candles.volume[-201:-1]
        if len(recent) >= 24:
            # Exports are often taken while the newest bar is still open. Only a note: the bar
            # may be genuinely quiet, so it is kept.
            typical = float(np.median(recent))
            quieter = float(np.mean(recent <= candles.volume[-1]))
            if typical > 0 and candles.volume[-1] < 0.25 * typical and quieter < 0.01:
                notes.append(
                    f"the newest bar ({_iso(int(candles.ts_ms[-1]))}) has {candles.volume[-1] / typical:.0%} "
                    "of the usual volume: it was probably exported before it closed"
                )

    symbol: str | None
    symbol_source: str | None
    if len(table.symbol_values) == 1:
        symbol, symbol_source = table.symbol_values[0], "column"
    else:
        symbol = guess_symbol(path)
        symbol_source = "filename" if symbol else None

    report = CandleFileReport(
        path=path,
        format=table.format,
        symbol=symbol,
        symbol_source=symbol_source,
        rows_read=n,
        rows_kept=len(candles),
        rejections=rejections,
        timestamp_column=table.time_field if not table.time_field.startswith("__") else "element[0]",
        volume_column=(
            table.volume_field if not (table.volume_field or "").startswith("__") else "element[5]"
        ),
        timestamp_units=units,
        unit_switches=unit_switches,
        date_formats=date_formats,
        date_unparsed=date_unparsed,
        order=order,
        reversed=newest_first,
        out_of_order_rows=out_of_order,
        duplicate_conflicts=int(conflicts.sum()),
        interval_ms=interval_ms,
        timeframe=timeframe_label(interval_ms),
        gap_count=gap_count,
        missing_bars=missing,
        largest_gap_ms=largest,
        largest_gap_after_ms=largest_after,
        first_ts_ms=int(candles.ts_ms[0]),
        last_ts_ms=int(candles.ts_ms[-1]),
        blank_lines=table.blank_lines,
        banner=table.banner,
        location=table.location,
        notes=tuple(notes),
    )
    return CandleLoadResult(candles=candles, report=report)


def _differs(a: F64, b: F64) -> Mask:
    """Values that differ beyond rounding: exports repeat rows at lower precision (18164.79 vs
    18164.8, 2523.079494 vs 2523.08), which is not a conflict; 0.01 % or more is."""
    return np.asarray(np.abs(a - b) > _CONFLICT_TOLERANCE * np.maximum(np.abs(a), np.abs(b)), dtype=np.bool_)


def _num(value: float | np.floating[Any]) -> str:
    return format(float(value), ".10g")


def _duration(ms: int) -> str:
    if ms % 86_400_000 == 0:
        return f"{ms // 86_400_000} d"
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000} h"
    if ms % 60_000 == 0:
        return f"{ms // 60_000} min"
    return f"{ms / 1000:g} s"


def _reason_list(rejections: dict[RejectReason, Rejection]) -> str:
    parts = []
    for rejection in rejections.values():
        first = rejection.examples[0] if rejection.examples else None
        where = f" (first at {first.line}: {first.detail})" if first else ""
        parts.append(f"{rejection.count} × {rejection.reason.value}{where}")
    return "; ".join(parts) or "no rows"
