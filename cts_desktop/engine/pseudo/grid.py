"""The configuration grid per trigger (DOMAIN §2.2, D3, D4): 11 TP factors × 21 SL ratios × 4 trailing
variants = 924 configurations, as parallel numpy columns (one row per configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TP_FACTORS = np.arange(2, 23, 2, dtype=np.float64)  # 2, 4, …, 22
SL_RATIOS = np.round(np.arange(2, 23, dtype=np.float64) / 10.0, 10)  # 0.2 … 2.2 step 0.1
ACTIVE_ADVANCED_SL_RATIOS = np.round(np.arange(2, 16, dtype=np.float64) / 10.0, 10)  # 0.2 … 1.5
# (start, stop) as fractions of the TP distance; NaN start = trailing off.
TRAILING_VARIANTS: tuple[tuple[float, float], ...] = (
    (np.nan, np.nan),
    (0.3, 0.1),
    (0.6, 0.2),
    (1.0, 0.3),
)


@dataclass(frozen=True, slots=True)
class ConfigGrid:
    """Column arrays of equal length; ``trailing`` is the index into TRAILING_VARIANTS (0 = off)."""

    tp_factor: npt.NDArray[np.float64]
    sl_ratio: npt.NDArray[np.float64]
    trailing: npt.NDArray[np.int8]
    trail_start: npt.NDArray[np.float64]
    trail_stop: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.tp_factor.shape[0])


def build_grid(
    tp_factors: npt.NDArray[np.float64] = TP_FACTORS,
    sl_ratios: npt.NDArray[np.float64] = SL_RATIOS,
    trailing_variants: tuple[tuple[float, float], ...] = TRAILING_VARIANTS,
) -> ConfigGrid:
    """Every (tp, sl, trailing) combination, TP slowest, trailing fastest."""
    tp, sl, tr = np.meshgrid(
        tp_factors, sl_ratios, np.arange(len(trailing_variants), dtype=np.int8), indexing="ij"
    )
    starts = np.array([v[0] for v in trailing_variants], dtype=np.float64)
    stops = np.array([v[1] for v in trailing_variants], dtype=np.float64)
    trailing = tr.ravel().astype(np.int8)
    return ConfigGrid(
        tp_factor=tp.ravel().copy(),
        sl_ratio=sl.ravel().copy(),
        trailing=trailing,
        trail_start=starts[trailing],
        trail_stop=stops[trailing],
    )


MAIN_GRID = build_grid()
ACTIVE_ADVANCED_GRID = build_grid(sl_ratios=ACTIVE_ADVANCED_SL_RATIOS)
assert len(MAIN_GRID) == 924 and len(ACTIVE_ADVANCED_GRID) == 616
