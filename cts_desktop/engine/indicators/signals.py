"""D20 signal rules of the preset indicators and their explicit combiner.

Each rule turns indicator values into a ``Signal(direction, strength ∈ [0, 1])``. A rule that
has no opinion — inside the RSI's neutral band, %B between 0.2 and 0.8, ADX at or below its
threshold, a histogram of exactly 0, a value still warming up — returns ``Signal.none()``
(``NEUTRAL``, strength 0), which is an *abstention*, not a vote.

Thresholds are strict: RSI exactly at oversold/overbought, %B exactly 0.2/0.8, ADX exactly at
its threshold all abstain, and so does a combined strength exactly 0.3 (no signal) or 0.5 (a
signal, but not enough to open).

**The combiner** (D20, replacing the original's division by *all* signals, which let every
abstaining indicator dilute the others until nothing could ever fire):

- only signals that voted (LONG or SHORT) count; ``n`` is their number;
- ``long = Σ long strengths / n`` and ``short = Σ short strengths / n`` — both over the same
  ``n`` voters, so a vote for the other side lowers a side's average: two longs at 0.8 against
  one short at 0.9 give long 0.53, short 0.30. Averaging each side over its own voters instead
  would let one strong dissenter beat a unanimous majority of slightly weaker votes, and dividing
  by all signals (the original) would make adding an indicator silence the others;
- the side with the larger average is the *majority*; equal averages are a tie and neutral;
- the majority strength must exceed 0.3 to signal and 0.5 to open (D20). "Exceed" is tested
  with a margin of 1e-9 so that float noise in an average — (0.2 + 0.4)/2 evaluates to
  0.30000000000000004 — does not turn a boundary case into a signal.

A single voter therefore decides alone (RSI at 10 with everything else neutral: long 0.67,
opens). That is intended: abstentions carry no information, and each configuration set may use
only one indicator anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from cts_desktop.engine.indicators.grids import PresetParams

__all__ = [
    "OPEN_THRESHOLD",
    "SIGNAL_THRESHOLD",
    "Combined",
    "Direction",
    "PresetValues",
    "Signal",
    "adx_signal",
    "bollinger_signal",
    "combine",
    "evaluate",
    "macd_signal",
    "preset_signals",
    "psar_signal",
    "rsi_signal",
]

SIGNAL_THRESHOLD = 0.3
"""Majority strength that must be exceeded to signal (D20)."""
OPEN_THRESHOLD = 0.5
"""Majority strength that must be exceeded to open a position (D20)."""
_MARGIN = 1e-9
BB_LONG_BELOW = 0.2
BB_SHORT_ABOVE = 0.8
PSAR_DISTANCE_FACTOR = 10.0  # strength = min(10 · |close − SAR| / close, 1): 10 % away is full
ADX_FULL_STRENGTH = 50.0  # strength = min(ADX / 50, 1)


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class Signal:
    """One rule's opinion; NEUTRAL always has strength 0 and does not vote."""

    direction: Direction
    strength: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if self.direction is Direction.NEUTRAL and self.strength != 0.0:
            raise ValueError("a neutral signal has strength 0")

    @property
    def voted(self) -> bool:
        return self.direction is not Direction.NEUTRAL

    @staticmethod
    def none() -> Signal:
        return _NONE

    @staticmethod
    def long(strength: float) -> Signal:
        """A long vote, strength clipped into [0, 1]; a zero strength is an abstention."""
        s = _clip(strength)
        return Signal(Direction.LONG, s) if s > 0.0 else _NONE

    @staticmethod
    def short(strength: float) -> Signal:
        s = _clip(strength)
        return Signal(Direction.SHORT, s) if s > 0.0 else _NONE


_NONE = Signal(Direction.NEUTRAL, 0.0)


def _clip(x: float) -> float:
    return 0.0 if not x > 0.0 else min(x, 1.0)  # NaN → 0


def _usable(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def rsi_signal(rsi: float | None, oversold: float = 30.0, overbought: float = 70.0) -> Signal:
    """RSI < oversold → long, strength (oversold − RSI)/oversold; RSI > overbought → short,
    strength (RSI − overbought)/(100 − overbought)."""
    if rsi is None or not math.isfinite(rsi):
        return _NONE
    if rsi < oversold:
        return Signal.long((oversold - rsi) / oversold)
    if rsi > overbought:
        return Signal.short((rsi - overbought) / (100.0 - overbought))
    return _NONE


def macd_signal(hist: float | None, price: float | None) -> Signal:
    """The histogram's sign; strength |hist|/price, capped at 1 (D20 keeps §1.8's rule).

    Note the scale: on BTC a histogram of 50 at a price of 60,000 is a strength of 0.0008, so
    MACD mostly contributes its *direction* (and its weight as a voter) to the combiner.
    """
    if hist is None or price is None or not _usable(hist, price) or price <= 0.0 or hist == 0.0:
        return _NONE
    strength = abs(hist) / price
    return Signal.long(strength) if hist > 0.0 else Signal.short(strength)


def bollinger_signal(close: float | None, lower: float | None, upper: float | None) -> Signal:
    """%B = (close − lower)/(upper − lower): below 0.2 → long, above 0.8 → short; the strength
    grows linearly to 1 at %B = 0 (resp. 1) and beyond. Zero-width bands abstain."""
    if close is None or lower is None or upper is None or not _usable(close, lower, upper):
        return _NONE
    width = upper - lower
    if not width > 0.0:
        return _NONE
    pct_b = (close - lower) / width
    if pct_b < BB_LONG_BELOW:
        return Signal.long((BB_LONG_BELOW - pct_b) / BB_LONG_BELOW)
    if pct_b > BB_SHORT_ABOVE:
        return Signal.short((pct_b - BB_SHORT_ABOVE) / (1.0 - BB_SHORT_ABOVE))
    return _NONE


def psar_signal(close: float | None, sar: float | None) -> Signal:
    """Trend from the SAR computed on real highs and lows: price above the SAR → long, below →
    short (TA-Lib's SAR sits below the low in an uptrend and above the high in a downtrend);
    strength ``min(10 · |close − SAR| / close, 1)``."""
    if close is None or sar is None or not _usable(close, sar) or close <= 0.0 or close == sar:
        return _NONE
    strength = PSAR_DISTANCE_FACTOR * abs(close - sar) / close
    return Signal.long(strength) if close > sar else Signal.short(strength)


def adx_signal(
    adx: float | None, plus_di: float | None, minus_di: float | None, threshold: float = 25.0
) -> Signal:
    """A trend only when ADX > threshold: +DI > −DI → long, −DI > +DI → short; strength
    ``min(ADX/50, 1)``. Equal DIs abstain."""
    if adx is None or plus_di is None or minus_di is None or not _usable(adx, plus_di, minus_di):
        return _NONE
    if not adx > threshold or plus_di == minus_di:
        return _NONE
    strength = adx / ADX_FULL_STRENGTH
    return Signal.long(strength) if plus_di > minus_di else Signal.short(strength)


@dataclass(frozen=True, slots=True)
class Combined:
    """The combiner's verdict. ``direction`` is NEUTRAL unless the majority strength exceeds
    ``SIGNAL_THRESHOLD``; ``should_open`` needs it to exceed ``OPEN_THRESHOLD``."""

    direction: Direction
    strength: float  # the majority side's average (0 when no one voted)
    long_strength: float
    short_strength: float
    voters: int

    @property
    def is_signal(self) -> bool:
        return self.direction is not Direction.NEUTRAL

    @property
    def should_open(self) -> bool:
        return self.is_signal and self.strength > OPEN_THRESHOLD + _MARGIN


def combine(signals: Iterable[Signal]) -> Combined:
    """Average long and short strengths over the signals that voted; see the module docstring."""
    voters = [s for s in signals if s.voted]
    if not voters:
        return Combined(Direction.NEUTRAL, 0.0, 0.0, 0.0, 0)
    n = len(voters)
    long_avg = math.fsum(s.strength for s in voters if s.direction is Direction.LONG) / n
    short_avg = math.fsum(s.strength for s in voters if s.direction is Direction.SHORT) / n
    if long_avg > short_avg:
        side, strength = Direction.LONG, long_avg
    elif short_avg > long_avg:
        side, strength = Direction.SHORT, short_avg
    else:
        side, strength = Direction.NEUTRAL, long_avg
    if strength <= SIGNAL_THRESHOLD + _MARGIN:
        side = Direction.NEUTRAL
    return Combined(side, strength, long_avg, short_avg, n)


class PresetValues(NamedTuple):
    """The preset indicators' values at one candle (``None`` while an indicator warms up).

    ``rsi_flat`` marks an RSI without a single gain or loss in its memory: TA-Lib then reports 0,
    which must not read as "maximally oversold" (a halted market would open a long).
    """

    close: float
    rsi: float | None
    macd: float | None
    macd_signal: float | None
    macd_hist: float | None
    bb_lower: float | None
    bb_mid: float | None
    bb_upper: float | None
    psar: float | None
    adx: float | None
    plus_di: float | None
    minus_di: float | None
    atr: float | None
    rsi_flat: bool = False


def preset_signals(values: PresetValues, params: PresetParams | None = None) -> Mapping[str, Signal]:
    """The signal of every *enabled* indicator (``params.enabled``; PSAR is off by default)."""
    p = params or PresetParams()
    out: dict[str, Signal] = {}
    if "rsi" in p.enabled:
        out["rsi"] = _NONE if values.rsi_flat else rsi_signal(values.rsi, p.rsi_oversold, p.rsi_overbought)
    if "macd" in p.enabled:
        out["macd"] = macd_signal(values.macd_hist, values.close)
    if "bollinger" in p.enabled:
        out["bollinger"] = bollinger_signal(values.close, values.bb_lower, values.bb_upper)
    if "psar" in p.enabled:
        out["psar"] = psar_signal(values.close, values.psar)
    if "adx" in p.enabled:
        out["adx"] = adx_signal(values.adx, values.plus_di, values.minus_di, p.adx_threshold)
    return out


def evaluate(values: PresetValues, params: PresetParams | None = None) -> Combined:
    """``combine`` over ``preset_signals``: the preset engine's decision for one candle."""
    return combine(preset_signals(values, params).values())
