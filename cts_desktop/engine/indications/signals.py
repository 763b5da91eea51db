"""What a step indication emits (DOMAIN §1.1 "Output"): one immutable signal per firing key.

Why a frozen value type: a signal crosses from the indication engine into the pseudo book, the
promotion pipeline and the event bus; nobody may change it on the way, and a frozen, slotted
dataclass is cheap to create in the rare ticks that fire.

The ``state_key`` is the original's ``symbol-type-parameter`` string (for example
``BTCUSDT-direction-5`` or ``BTCUSDT-active_advanced-1.5-10``): the validation timeout and the
position cooldown key on it (the per-config position limit of D9 adds the TP/SL configuration and
the direction to it downstream). Optimal sub-configurations share their range's key (the original
locked ``symbol-optimal-range``) and carry ``subconfig_id`` to tell the 100 sets apart.

``strength`` is a number in (0, 1] that says how clearly the rule held, so consumers can rank
signals of one tick; it never gates anything here:

- Direction, Move, Active, Active-advanced: ``min(1, measured / (2 × required))``: 0.5 exactly at
  the threshold, 1.0 at twice the threshold or more (a Direction threshold of 0 gives 1.0).
- Optimal: the share of the 100 sub-configurations of that trigger that validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "EPS_PCT",
    "LONG",
    "SHORT",
    "Detection",
    "IndicationSignal",
    "IndicationType",
    "threshold_strength",
]

LONG = 1
SHORT = -1

EPS_PCT = 1e-9
"""Slack on every percent threshold: a move of exactly 0.5 % computed as 0.49999999999999994
must still count as 0.5 %. It is far below any price tick, so it never changes a real decision."""


class IndicationType(StrEnum):
    """The step-based indication types (DOMAIN §1.2-§1.5); the values are the original's names."""

    DIRECTION = "direction"
    MOVE = "move"
    ACTIVE = "active"
    ACTIVE_ADVANCED = "active_advanced"
    OPTIMAL = "optimal"


@dataclass(frozen=True, slots=True)
class IndicationSignal:
    """One firing of one indication key.

    ``direction`` is +1 (long) or -1 (short). ``price`` is the close of the newest sample the
    detector judged and ``ts_ms`` the time of the tick that completed it (the moment the signal
    became known, which the locks are measured from). ``params`` are the key's parameters by name
    (``range``; ``threshold_pct``; ``ratio_pct`` and ``window_min``; for Optimal also
    ``drawdown_ratio``, ``market_change_range`` and ``last_part_ratio``); ``metrics`` are the
    measured values behind the decision (change %, run length, volatility …), for logs and the UI.
    """

    symbol: str
    kind: IndicationType
    direction: int
    ts_ms: int
    price: float
    strength: float
    state_key: str
    params: tuple[tuple[str, float], ...]
    subconfig_id: int | None = None
    metrics: tuple[tuple[str, float], ...] = ()

    @property
    def is_long(self) -> bool:
        """True for a long signal, False for a short one."""
        return self.direction == LONG

    def param(self, name: str) -> float:
        """The parameter ``name`` of this signal's key; raises KeyError if the type has no such parameter."""
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(name)

    def metric(self, name: str) -> float:
        """The measured value ``name``; raises KeyError if the detector did not report it."""
        for key, value in self.metrics:
            if key == name:
                return value
        raise KeyError(name)


@dataclass(slots=True)
class Detection:
    """What a detector found in one evaluation, as parallel arrays (one row per firing key).

    ``index`` is the key's position in the detector's key space (its ``keys`` tuple), so the engine
    can apply locks to all keys of a type with one array operation before any signal object exists.
    ``metrics`` holds one array per measured value, aligned with ``index``. ``subconfig`` is set
    only by Optimal (the sub-configuration id of each row; one key can fire several rows).
    """

    index: npt.NDArray[np.int64]
    direction: npt.NDArray[np.int64]
    strength: npt.NDArray[np.float64]
    metrics: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    subconfig: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def take(self, mask: npt.NDArray[np.bool_]) -> Detection:
        """The rows where ``mask`` is true."""
        return Detection(
            self.index[mask],
            self.direction[mask],
            self.strength[mask],
            {name: values[mask] for name, values in self.metrics.items()},
            None if self.subconfig is None else self.subconfig[mask],
        )


def threshold_strength(
    measured: npt.NDArray[np.float64], required: npt.NDArray[np.float64] | float
) -> npt.NDArray[np.float64]:
    """``min(1, measured / (2 × required))``, and 1.0 where nothing was required (see module docstring)."""
    if isinstance(required, float):
        if required <= 0.0:
            return np.ones_like(measured)
        return np.minimum(1.0, measured / (2.0 * required))
    safe = np.where(required > 0.0, required, np.inf)
    return np.where(required > 0.0, np.minimum(1.0, measured / (2.0 * safe)), 1.0)
