"""Closed pseudo entries travel as one batch of columns from the book to evaluation and storage.

Only closed results and set aggregates are persisted (D17); a batch is written with one Core
insert and folded into set statistics with vectorised group sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class ClosedBatch:
    """Parallel arrays, one element per closed entry.

    ``set_index`` identifies the configuration set in the book's set table; times are UTC ms;
    ``result_steps`` is signed (D22); ``pnl_fraction`` is the net return of the entry after fees
    (exit value after fee over entry cost with fee, minus one); ``drawdown_time_ms`` is the time the
    entry spent below its previous peak (D12), ``hold_time_ms`` its age at close.
    """

    set_index: npt.NDArray[np.int64]
    opened_ms: npt.NDArray[np.int64]
    closed_ms: npt.NDArray[np.int64]
    entry_price: npt.NDArray[np.float64]
    exit_price: npt.NDArray[np.float64]
    result_steps: npt.NDArray[np.float64]
    pnl_fraction: npt.NDArray[np.float64]
    fees_fraction: npt.NDArray[np.float64]
    reason: npt.NDArray[np.int8]
    drawdown_time_ms: npt.NDArray[np.int64]
    hold_time_ms: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.set_index.shape[0])

    @staticmethod
    def empty() -> ClosedBatch:
        i8 = np.empty(0, dtype=np.int64)
        f8 = np.empty(0, dtype=np.float64)
        return ClosedBatch(i8, i8, i8, f8, f8, f8, f8, f8, np.empty(0, dtype=np.int8), i8, i8)
