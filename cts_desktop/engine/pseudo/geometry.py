"""The one exit geometry shared by the live book, the sweep and backtests (D3, D4).

Step model: one step = entry × PC / 100. The take-profit distance is ``tp_factor`` steps, the stop
distance ``sl_ratio`` × the take-profit distance. Trailing start and stop are fractions of the
take-profit distance; with trailing on, the target is not a hard exit: the position trails once
the best price is ``trail_start`` × TP distance in profit and exits on a retrace of
``trail_stop`` × TP distance from the best price, while the stop still applies.

Functions take numpy arrays or scalars alike, so the vectorised book and a plain per-configuration
reference loop compute the same numbers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

LONG = 1
SHORT = -1


class ExitReason(IntEnum):
    """Stored as small integers in the book's columns; names match DOMAIN §2.3 close reasons."""

    OPEN = 0
    TAKE_PROFIT = 1
    STOP_LOSS = 2
    TRAILING_STOP = 3
    TIMEOUT = 4
    MANUAL = 5


def step_size(entry: F64 | float, position_cost_pct: float) -> F64 | float:
    """Price distance of one step: PC is a percentage of price (0.1 means 0.1 %, not 10 %)."""
    return entry * (position_cost_pct / 100.0)


def tp_distance(entry: F64 | float, tp_factor: F64 | float, position_cost_pct: float) -> F64 | float:
    return tp_factor * step_size(entry, position_cost_pct)


def exit_levels(
    entry: F64 | float,
    direction: F64 | int,
    tp_factor: F64 | float,
    sl_ratio: F64 | float,
    position_cost_pct: float,
) -> tuple[F64 | float, F64 | float]:
    """(take-profit price, stop-loss price) for a long (+1) or short (−1) entry."""
    distance = tp_distance(entry, tp_factor, position_cost_pct)
    return entry + direction * distance, entry - direction * sl_ratio * distance


def result_steps(
    entry: F64 | float, exit_price: F64 | float, direction: F64 | int, position_cost_pct: float
) -> F64 | float:
    """Signed result in position-cost steps (the per-position 'PF' of D5, ``avg_result_steps``)."""
    return direction * (exit_price - entry) / step_size(entry, position_cost_pct)
