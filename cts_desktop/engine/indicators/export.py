"""Write the preset indicator columns of a candle series to CSV (``cts-desktop indicators``).

One row per candle, oldest first: ``timestamp`` (the bar's open time, UTC ISO-8601 with a ``Z``,
e.g. ``2021-06-10T00:00:00Z``; milliseconds appear only when some bar has them) and the ten
``batch.PRESET_COLUMNS``. A value still in its warm-up is an empty field — not 0, not ``nan`` —
so a spreadsheet or pandas reads it as missing. Numbers are written with Python's shortest
round-trip representation: reading the file back gives the exact float TA-Lib computed.

The file is written to a temporary sibling and moved into place, so an interrupted export never
leaves a truncated CSV that looks complete.
"""

from __future__ import annotations

import csv
import math
import os
import uuid
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.indicators.batch import preset_column_names, preset_columns
from cts_desktop.engine.indicators.grids import PresetParams
from cts_desktop.exchanges.candle_files import CandleArrays

__all__ = ["iso_timestamps", "write_indicator_csv"]


def iso_timestamps(ts_ms: npt.NDArray[np.int64]) -> list[str]:
    """UTC ISO-8601 strings for millisecond timestamps: seconds precision unless a timestamp
    has a sub-second part, then milliseconds for all (one consistent format per file)."""
    ms = np.asarray(ts_ms, dtype=np.int64)
    unit: Literal["s", "ms"] = "s" if not np.any(ms % 1000) else "ms"
    stamps: npt.NDArray[np.datetime64] = ms.astype("datetime64[ms]")
    strings = np.datetime_as_string(stamps, unit=unit, timezone="UTC")
    return [str(s) for s in strings.tolist()]


def _cells(values: npt.NDArray[np.float64]) -> list[str]:
    return ["" if math.isnan(v) else repr(v) for v in values.tolist()]


def write_indicator_csv(candles: CandleArrays, out: Path, params: PresetParams | None = None) -> int:
    """Compute the preset columns for ``candles`` and write them to ``out``; returns the number
    of data rows written (always ``len(candles)``)."""
    out = Path(out)
    columns = preset_columns(candles, params)
    header = ["timestamp", *preset_column_names(params)]
    cells = [iso_timestamps(candles.ts_ms), *(_cells(columns[name]) for name in header[1:])]
    # A unique sibling opened with "x" (not mkstemp, whose 0600 mode would survive the rename):
    # the export gets the permissions of any file the user creates.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("x", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(zip(*cells, strict=True))
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(candles)
