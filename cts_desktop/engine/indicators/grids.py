"""The preset indicators' parameter grids (DOMAIN §1.8) and the parameter set they default to.

The original source has four conflicting range rules (the §1.8 settings grids, a generic
"default ± 60 %", a coordination-engine "± 50 % in ten steps" and fixed test grids such as RSI
periods {7, 14, 21}). D20 settles it: the §1.8 grids below are the only ones. Values are
generated from integer step counts and rounded, so ``0.01 … 0.03`` step ``0.005`` yields exactly
``0.01, 0.015, 0.02, 0.025, 0.03`` (no ``0.015000000000000001`` from repeated addition).

§1.8 is not fully consistent: MACD slow's default 26 is not on its own grid (13–39 step 2). The
range is kept as written and the default is added to the values (see ``ParamRange.values``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "GRIDS",
    "SIGNAL_INDICATORS",
    "ParamRange",
    "PresetParams",
    "combinations",
]

_DECIMALS = 10


@dataclass(frozen=True, slots=True)
class ParamRange:
    """One §1.8 row: ``default`` and the inclusive range ``start … stop`` in steps of ``step``."""

    default: float
    start: float
    stop: float
    step: float
    integer: bool = True

    def __post_init__(self) -> None:
        if self.step <= 0 or self.stop < self.start:
            raise ValueError(f"bad range {self.start}–{self.stop} step {self.step}")
        if not self.start <= self.default <= self.stop:
            raise ValueError(f"default {self.default} is outside {self.start}–{self.stop}")

    def stepped(self) -> tuple[float, ...]:
        """``start, start + step, …, stop``: the range exactly as §1.8 states it (``int`` values
        for integer parameters, so they can be passed to the indicators as they are)."""
        count = round((self.stop - self.start) / self.step) + 1
        raw = (round(self.start + i * self.step, _DECIMALS) for i in range(count))
        return tuple(int(v) if self.integer else v for v in raw)

    @property
    def default_on_grid(self) -> bool:
        return self.default in self.stepped()

    def values(self) -> tuple[float, ...]:
        """The stepped values, plus the default where the step misses it (ascending).

        §1.8 has one such row: MACD slow, default 26 on 13–39 step 2 (odd values only). Adding
        the default keeps the default parameter set among the combinations a sweep evaluates.
        """
        stepped = self.stepped()
        if self.default in stepped:
            return stepped
        return tuple(sorted((*stepped, int(self.default) if self.integer else self.default)))

    def __len__(self) -> int:
        return len(self.values())


def _f(default: float, start: float, stop: float, step: float) -> ParamRange:
    return ParamRange(default, start, stop, step, integer=False)


GRIDS: Mapping[str, Mapping[str, ParamRange]] = MappingProxyType(
    {
        "rsi": MappingProxyType(
            {
                "period": ParamRange(14, 7, 21, 1),
                "oversold": ParamRange(30, 15, 45, 5),
                "overbought": ParamRange(70, 55, 85, 5),
            }
        ),
        "macd": MappingProxyType(
            {
                "fast": ParamRange(12, 6, 18, 2),
                "slow": ParamRange(26, 13, 39, 2),
                "signal": ParamRange(9, 5, 13, 1),
            }
        ),
        "bollinger": MappingProxyType({"period": ParamRange(20, 10, 30, 2), "nbdev": _f(2.0, 1.0, 3.0, 0.5)}),
        "ema": MappingProxyType({"short": ParamRange(9, 5, 13, 1), "long": ParamRange(21, 11, 31, 2)}),
        "sma": MappingProxyType({"short": ParamRange(10, 5, 15, 1), "long": ParamRange(50, 25, 75, 5)}),
        "stochastic": MappingProxyType(
            {"k": ParamRange(14, 7, 21, 1), "d": ParamRange(3, 2, 4, 1), "slowing": ParamRange(3, 2, 4, 1)}
        ),
        "adx": MappingProxyType({"period": ParamRange(14, 7, 21, 1), "threshold": ParamRange(25, 13, 37, 2)}),
        "atr": MappingProxyType({"period": ParamRange(14, 7, 21, 1), "multiplier": _f(1.5, 1.0, 3.0, 0.5)}),
        "psar": MappingProxyType(
            {"acceleration": _f(0.02, 0.01, 0.03, 0.005), "maximum": _f(0.2, 0.1, 0.3, 0.05)}
        ),
    }
)
"""Indicator → parameter → range, exactly the §1.8 table."""

# Pairs that must be strictly ordered for a combination to mean anything. MACD's grids overlap
# (fast up to 18, slow from 13): TA-Lib would silently swap fast ≥ slow, turning e.g. (18, 13)
# into a duplicate of (13, 18), so such combinations are skipped rather than evaluated twice.
_ORDERED: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "macd": ("fast", "slow"),
        "ema": ("short", "long"),
        "sma": ("short", "long"),
        "rsi": ("oversold", "overbought"),
    }
)


def combinations(indicator: str) -> Iterator[dict[str, float]]:
    """Every parameter combination of one indicator's grid (first parameter slowest), skipping
    those whose ordered pair (MACD fast < slow, EMA/SMA short < long, RSI oversold < overbought)
    is not strictly increasing."""
    grid = GRIDS[indicator]
    names = tuple(grid)
    ordered = _ORDERED.get(indicator)
    for combo in itertools.product(*(grid[n].values() for n in names)):
        params = dict(zip(names, combo, strict=True))
        if ordered is None or params[ordered[0]] < params[ordered[1]]:
            yield params


SIGNAL_INDICATORS: tuple[str, ...] = ("rsi", "macd", "bollinger", "psar", "adx")
"""Indicators with a D20 signal rule (EMA/SMA/Stochastic/ATR have none, §1.8)."""


def _default(indicator: str, name: str) -> float:
    return GRIDS[indicator][name].default


@dataclass(frozen=True, slots=True)
class PresetParams:
    """One parameter set for the preset indicators and their signal rules; every default is the
    §1.8 grid default. ``enabled`` lists the indicators whose signals vote: Parabolic SAR is
    disabled by default, as in §1.8."""

    rsi_period: int = int(_default("rsi", "period"))
    rsi_oversold: float = _default("rsi", "oversold")
    rsi_overbought: float = _default("rsi", "overbought")
    macd_fast: int = int(_default("macd", "fast"))
    macd_slow: int = int(_default("macd", "slow"))
    macd_signal: int = int(_default("macd", "signal"))
    bb_period: int = int(_default("bollinger", "period"))
    bb_nbdev: float = _default("bollinger", "nbdev")
    psar_acceleration: float = _default("psar", "acceleration")
    psar_maximum: float = _default("psar", "maximum")
    adx_period: int = int(_default("adx", "period"))
    adx_threshold: float = _default("adx", "threshold")
    atr_period: int = int(_default("atr", "period"))
    enabled: frozenset[str] = field(default_factory=lambda: frozenset({"rsi", "macd", "bollinger", "adx"}))

    def __post_init__(self) -> None:
        unknown = self.enabled - set(SIGNAL_INDICATORS)
        if unknown:
            raise ValueError(f"unknown signal indicators {sorted(unknown)}; known: {SIGNAL_INDICATORS}")
        if not 0 < self.rsi_oversold < self.rsi_overbought < 100:
            raise ValueError(
                f"need 0 < oversold < overbought < 100, got {self.rsi_oversold}, {self.rsi_overbought}"
            )
