"""Step-based indications of the main engine (DOMAIN §1.1-§1.6, D6, D16).

Ticks become fixed-timeframe samples (:mod:`.sampler`); five detectors judge the newest sample
(:mod:`.direction`, :mod:`.move`, :mod:`.active` for Active and Active-advanced, :mod:`.optimal`);
the market-activity pre-check (:mod:`.activity`) gates them all; :class:`IndicationEngine` adds
the per-key validation lock, the position cooldown and the enabled flags, and emits
:class:`IndicationSignal` values. Everything is incremental: per sample the state changes in
O(1), and each detector reads at most its own window, vectorised over all of its parameters.
No Qt, no I/O.
"""

from cts_desktop.engine.indications.engine import (
    PROPOSED_SETTINGS,
    SETTING_KEYS,
    IndicationConfig,
    IndicationEngine,
)
from cts_desktop.engine.indications.signals import LONG, SHORT, IndicationSignal, IndicationType

__all__ = [
    "LONG",
    "PROPOSED_SETTINGS",
    "SETTING_KEYS",
    "SHORT",
    "IndicationConfig",
    "IndicationEngine",
    "IndicationSignal",
    "IndicationType",
]
