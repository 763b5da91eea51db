"""The per-symbol step-indication engine: ticks in, :class:`IndicationSignal` out (DOMAIN §1, D6, D16).

One :class:`IndicationEngine` per (connection, symbol). Each tick goes to the
:class:`~.sampler.TickSampler`; only a tick that *closes* a sample triggers an evaluation (a tick
inside the open second costs a comparison and a store). An evaluation runs, in order:

1. the market-activity pre-check (§1.6); while it is shut nothing fires and due Optimal trackers
   are dropped (they could not emit anyway, and judging them later would stretch their window);
2. every enabled detector on the newest sample: Direction, Move, Active, Active-advanced, then
   the due Optimal trackers, then new Optimal triggers;
3. the key locks: a key (``symbol-type-parameter``) may fire only when the tick time has reached
   its ``blocked_until``. Firing sets it to ``ts + max(validation timeout, position cooldown)``
   (the validation timeout, default 15 s, is the lock of §1.1; a key's next signal also waits
   at least the position cooldown). :meth:`IndicationEngine.notify_position_closed`
   extends it to ``ts + position cooldown`` when the book closes a position of that key, which
   is what the original's ``lastPositionClosed`` cooldown meant.

Which types run (D16): step indications belong to the *main* engine, so nothing runs unless
``system.main_engine_enabled`` is on and ``system.trade_mode`` is ``both`` or ``main``; then each
type follows its ``indication.<type>_enabled`` flag. Active-advanced follows the Active flag
(the registry has no flag of its own; ``indication.active_advanced_enabled`` is honoured if a
settings mapping carries it). The ``exchange.<type>_enabled`` flags decide which *signals may
reach an exchange* and belong to the promotion stage, not here.

Settings: :meth:`IndicationConfig.from_settings` reads the registry keys listed in
:data:`SETTING_KEYS` (defaults from :mod:`cts_desktop.domain.settings_schema`) plus the proposed
keys in :data:`PROPOSED_SETTINGS`, which the registry does not declare yet (D6's thresholds, the
activity check's minimum volatility). :meth:`IndicationEngine.configure` applies a new config
live: every state key that still exists keeps its lock, pending Optimal trackers restart, and the
sample history is kept unless the market timeframe changed (samples of another length cannot be
mixed).

Cost: a tick inside the open bucket is a comparison and a store. A closing tick updates the O(1)
step counters, runs the gate over at most 20 numbers, then each type once, vectorised over its
keys; a type whose keys are all locked is skipped, and the engine passes each detector the mask
of unlocked keys so locked keys are never measured. See ``benchmarks/indications.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.indications.active import ActiveAdvancedDetector, ActiveDetector
from cts_desktop.engine.indications.activity import (
    DEFAULT_MIN_VOLATILITY_PCT,
    ActivityReading,
    MarketActivityGate,
)
from cts_desktop.engine.indications.direction import DirectionDetector
from cts_desktop.engine.indications.move import MoveDetector
from cts_desktop.engine.indications.optimal import SUBCONFIGS, OptimalDetector, tracking_samples
from cts_desktop.engine.indications.sampler import SampleRing, StepCounters, TickSampler
from cts_desktop.engine.indications.signals import Detection, IndicationSignal, IndicationType

__all__ = ["PROPOSED_SETTINGS", "SETTING_KEYS", "IndicationConfig", "IndicationEngine"]

SETTING_KEYS: Mapping[str, str] = {
    "timeframe_s": "main.market_timeframe_s",
    "position_cost_pct": "main.position_cost_pct",
    "main_engine_enabled": "system.main_engine_enabled",
    "trade_mode": "system.trade_mode",
    "range_min": "indication.range_min",
    "direction_threshold_pct": "indication.direction_threshold_pct",  # D6
    "move_threshold_pct": "indication.move_threshold_pct",  # D6
    "activity_min_volatility_pct": "indication.market_activity_min_volatility_pct",
    "range_max": "indication.range_max",
    "direction_enabled": "indication.direction_enabled",
    "move_enabled": "indication.move_enabled",
    "active_enabled": "indication.active_enabled",
    "optimal_enabled": "indication.optimal_enabled",
    "validation_timeout_s": "indication.validation_timeout_s",
    "position_cooldown_ms": "system.position_cooldown_ms",
    "activity_enabled": "indication.market_activity_enabled",
    "activity_range_s": "indication.market_activity_range_s",
    "activity_factor": "indication.market_activity_factor",
    "optimal_interval_ms": "indication.optimal_interval_ms",
}
"""Config field → registry key; the registry's default is the field's default."""

PROPOSED_SETTINGS: Mapping[str, tuple[str, Any]] = {
    "active_advanced_enabled": ("indication.active_advanced_enabled", None),
}
"""Config field → (proposed key, default) for values D6 / §1.6 make settings but the registry lacks.
``None`` for ``active_advanced_enabled`` means "follow ``active_enabled``"."""


def _registry_default(field_name: str) -> Any:
    return SPEC_BY_KEY[SETTING_KEYS[field_name]].default


@dataclass(frozen=True, slots=True, kw_only=True)
class IndicationConfig:
    """Everything the engine needs, already typed; build it with :meth:`from_settings`.

    Units follow the registry: seconds for ``timeframe_s`` and ``validation_timeout_s``, ms for
    the cooldown and the Optimal interval, percent for thresholds and the position cost, samples
    (steps) for the ranges, frames for the activity range.
    """

    timeframe_s: int = _registry_default("timeframe_s")
    position_cost_pct: float = _registry_default("position_cost_pct")
    main_engine_enabled: bool = _registry_default("main_engine_enabled")
    trade_mode: str = _registry_default("trade_mode")
    range_min: int = _registry_default("range_min")
    range_max: int = _registry_default("range_max")
    direction_enabled: bool = _registry_default("direction_enabled")
    move_enabled: bool = _registry_default("move_enabled")
    active_enabled: bool = _registry_default("active_enabled")
    active_advanced_enabled: bool | None = None
    optimal_enabled: bool = _registry_default("optimal_enabled")
    validation_timeout_s: float = _registry_default("validation_timeout_s")
    position_cooldown_ms: int = _registry_default("position_cooldown_ms")
    activity_enabled: bool = _registry_default("activity_enabled")
    activity_range_s: int = _registry_default("activity_range_s")
    activity_factor: int = _registry_default("activity_factor")
    activity_min_volatility_pct: float = DEFAULT_MIN_VOLATILITY_PCT
    optimal_interval_ms: int = _registry_default("optimal_interval_ms")
    direction_threshold_pct: float = 0.5
    move_threshold_pct: float = 0.3

    def __post_init__(self) -> None:
        # The registry validates keys one by one; a minimum above the maximum can only arise from
        # two separate edits, so the engine reads it as the single range ``range_min``.
        if self.range_max < self.range_min:
            object.__setattr__(self, "range_max", self.range_min)
        if self.timeframe_s <= 0 or self.range_min < 1:
            raise ValueError("timeframe and range minimum must be positive")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> IndicationConfig:
        """Read a settings mapping (registry key → value); missing keys take their defaults."""
        values: dict[str, Any] = {}
        for name, key in SETTING_KEYS.items():
            if key in settings:
                values[name] = settings[key]
        for name, (key, _default) in PROPOSED_SETTINGS.items():
            if key in settings:
                values[name] = settings[key]
        return cls(**values)

    def updated(self, settings: Mapping[str, Any]) -> IndicationConfig:
        """This config with the keys present in ``settings`` changed (for one SettingChanged event)."""
        changes = {
            name: settings[key]
            for name, key in [*SETTING_KEYS.items(), *((n, k) for n, (k, _d) in PROPOSED_SETTINGS.items())]
            if key in settings
        }
        return replace(self, **changes)

    @property
    def main_engine_runs(self) -> bool:
        """D16: the main engine's step indications run only if it is on and the trade mode allows it."""
        return self.main_engine_enabled and self.trade_mode in ("both", "main")

    def enabled(self, kind: IndicationType) -> bool:
        """Whether ``kind`` is evaluated under this config."""
        if not self.main_engine_runs:
            return False
        if kind is IndicationType.ACTIVE_ADVANCED:
            return (
                self.active_enabled if self.active_advanced_enabled is None else self.active_advanced_enabled
            )
        flag: bool = getattr(self, f"{kind.value}_enabled")
        return flag

    @property
    def lock_ms(self) -> int:
        """How long a key stays blocked after it fired."""
        return max(round(self.validation_timeout_s * 1000), self.position_cooldown_ms)

    def as_dict(self) -> dict[str, Any]:
        """Field name → value (for logs and the diagnostics view)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_SUBCONFIG_PARAMS = tuple(SUBCONFIGS.params(i) for i in range(len(SUBCONFIGS)))


class _Detector(Protocol):
    kind: IndicationType
    keys: tuple[str, ...]
    key_params: tuple[tuple[tuple[str, float], ...], ...]

    @property
    def lookback(self) -> int: ...

    def evaluate(
        self, ring: SampleRing, counters: StepCounters, open_keys: npt.NDArray[np.bool_] | None = None
    ) -> Detection | None: ...


class _Slot:
    """One indication type inside an engine: its detector, key strings and locks."""

    __slots__ = ("_subconfig_params", "blocked_until", "detector", "kind", "params", "state_keys")

    def __init__(self, symbol: str, detector: _Detector) -> None:
        self.detector = detector
        self.kind = detector.kind
        self.state_keys = tuple(f"{symbol}-{detector.kind.value}-{key}" for key in detector.keys)
        self.params = detector.key_params
        self.blocked_until: npt.NDArray[np.int64] = np.full(len(detector.keys), np.iinfo(np.int64).min)
        self._subconfig_params: list[list[tuple[tuple[str, float], ...]]] | None = None

    def subconfig_params(self) -> list[list[tuple[tuple[str, float], ...]]]:
        """``[key][subconfig_id]`` → the key's params followed by the sub-configuration's (built once)."""
        if self._subconfig_params is None:
            self._subconfig_params = [[p + sub for sub in _SUBCONFIG_PARAMS] for p in self.params]
        return self._subconfig_params


class IndicationEngine:
    """Step indications of one symbol, fed tick by tick (see the module docstring)."""

    def __init__(
        self,
        symbol: str,
        settings: Mapping[str, Any] | None = None,
        *,
        config: IndicationConfig | None = None,
    ) -> None:
        self.symbol = symbol
        if config is None:
            config = IndicationConfig.from_settings(settings or {})
        self._config = config
        self._sampler = self._new_sampler(config)
        self._slots: list[_Slot] = []
        self._by_key: dict[str, tuple[_Slot, int]] = {}
        self._optimal: OptimalDetector | None = None
        self._optimal_slot: _Slot | None = None
        self._gate = MarketActivityGate()
        self._activity: ActivityReading | None = None
        self._build(config)

    # --- configuration -------------------------------------------------------------------------

    @property
    def config(self) -> IndicationConfig:
        """The config in force."""
        return self._config

    def configure(self, config: IndicationConfig | Mapping[str, Any]) -> None:
        """Apply new settings live: a full config, or a mapping of changed registry keys."""
        new = config if isinstance(config, IndicationConfig) else self._config.updated(config)
        if _capacity(new) != self._sampler.ring.capacity or new.timeframe_s != self._sampler.timeframe_s:
            self._sampler = self._new_sampler(new)
        self._config = new
        self._build(new)

    @staticmethod
    def _new_sampler(config: IndicationConfig) -> TickSampler:
        return TickSampler(config.timeframe_s, _capacity(config))

    def _build(self, c: IndicationConfig) -> None:
        tf = c.timeframe_s
        detectors: list[_Detector] = []
        self._optimal = None
        self._optimal_slot = None
        if c.enabled(IndicationType.DIRECTION):
            detectors.append(DirectionDetector(c.range_min, c.range_max, c.direction_threshold_pct))
        if c.enabled(IndicationType.MOVE):
            detectors.append(MoveDetector(c.range_min, c.range_max, c.move_threshold_pct))
        if c.enabled(IndicationType.ACTIVE):
            detectors.append(ActiveDetector(tf))
        if c.enabled(IndicationType.ACTIVE_ADVANCED):
            detectors.append(ActiveAdvancedDetector(tf))
        self._slots = [_Slot(self.symbol, d) for d in detectors]
        if c.enabled(IndicationType.OPTIMAL):
            self._optimal = OptimalDetector(
                c.range_min, c.range_max, tf, c.position_cost_pct, interval_ms=c.optimal_interval_ms
            )
            self._optimal_slot = _Slot(self.symbol, self._optimal)
            self._slots.append(self._optimal_slot)
        previous = self._by_key
        self._by_key = {key: (slot, i) for slot in self._slots for i, key in enumerate(slot.state_keys)}
        for key, (slot, i) in self._by_key.items():  # a key that survives keeps its lock
            if key in previous:
                old_slot, j = previous[key]
                slot.blocked_until[i] = old_slot.blocked_until[j]
        self._gate = MarketActivityGate(
            enabled=c.activity_enabled,
            range_frames=c.activity_range_s,
            factor=c.activity_factor,
            min_volatility_pct=c.activity_min_volatility_pct,
        )
        self._lock_ms = c.lock_ms
        self._cooldown_ms = c.position_cooldown_ms

    # --- inspection ----------------------------------------------------------------------------

    @property
    def sampler(self) -> TickSampler:
        """The tick sampler (its ring holds the sample history)."""
        return self._sampler

    @property
    def activity(self) -> ActivityReading | None:
        """The activity check's last reading (None before enough samples or when it is off)."""
        return self._activity

    @property
    def enabled_types(self) -> tuple[IndicationType, ...]:
        """The indication types evaluated under the current config."""
        return tuple(slot.kind for slot in self._slots)

    def state_keys(self, kind: IndicationType) -> tuple[str, ...]:
        """Every state key of ``kind`` (empty when the type is off)."""
        for slot in self._slots:
            if slot.kind is kind:
                return slot.state_keys
        return ()

    def blocked_until(self, state_key: str) -> int | None:
        """The tick time (ms) from which ``state_key`` may fire again; None if it never fired."""
        slot, i = self._by_key[state_key]
        until = int(slot.blocked_until[i])
        return None if until == np.iinfo(np.int64).min else until

    # --- the hot path --------------------------------------------------------------------------

    def on_tick(self, price: float, ts_ms: int) -> list[IndicationSignal]:
        """Feed one tick; return the signals it released (usually none)."""
        if not self._sampler.on_tick(price, ts_ms) or not self._slots:
            return []
        ring = self._sampler.ring
        counters = self._sampler.counters
        gate = self._gate
        if gate.enabled:
            self._activity = gate.measure(ring)
            if self._activity is None or not self._activity.is_open:
                if self._optimal is not None:
                    self._optimal.drop_due(ring)
                return []
        out: list[IndicationSignal] = []
        price_now = ring.newest_price
        for slot in self._slots:
            open_keys = ts_ms >= slot.blocked_until
            if not open_keys.any():  # every key of this type is locked: nothing to evaluate
                if slot is self._optimal_slot and self._optimal is not None:
                    self._optimal.drop_due(ring)
                continue
            found = slot.detector.evaluate(ring, counters, open_keys)
            if found is not None:
                self._emit(slot, found, ts_ms, price_now, out)
        if self._optimal is not None and self._optimal_slot is not None:
            self._optimal.trigger(ring, counters, ts_ms >= self._optimal_slot.blocked_until)
        return out

    def _emit(
        self, slot: _Slot, found: Detection, ts_ms: int, price: float, out: list[IndicationSignal]
    ) -> None:
        free = ts_ms >= slot.blocked_until[found.index]
        if not free.all():
            found = found.take(free)
            if not len(found):
                return
        slot.blocked_until[found.index] = ts_ms + self._lock_ms
        names = tuple(found.metrics)
        columns = [found.metrics[name].tolist() for name in names]
        index = found.index.tolist()
        directions = found.direction.tolist()
        strengths = found.strength.tolist()
        symbol, kind, keys, params = self.symbol, slot.kind, slot.state_keys, slot.params
        signal = IndicationSignal  # built positionally below: the hot path's one allocation per signal
        if found.subconfig is None:
            for row, i in enumerate(index):
                metrics = tuple(zip(names, [col[row] for col in columns], strict=True))
                out.append(
                    signal(
                        symbol,
                        kind,
                        directions[row],
                        ts_ms,
                        price,
                        strengths[row],
                        keys[i],
                        params[i],
                        None,
                        metrics,
                    )
                )
            return
        # Optimal: many sub-configuration rows per key, grouped by key, sharing the key's metrics
        table = slot.subconfig_params()
        subs = found.subconfig.tolist()
        last_key = -1
        metrics = ()
        for row, i in enumerate(index):
            if i != last_key:
                metrics = tuple(zip(names, [col[row] for col in columns], strict=True))
                last_key = i
            sub = subs[row]
            out.append(
                signal(
                    symbol,
                    kind,
                    directions[row],
                    ts_ms,
                    price,
                    strengths[row],
                    keys[i],
                    table[i][sub],
                    sub,
                    metrics,
                )
            )

    def notify_position_closed(self, state_key: str, ts_ms: int) -> None:
        """Start the position cooldown of ``state_key`` (the book calls this when a position closes).

        Unknown keys (a type switched off since the position opened) are ignored.
        """
        entry = self._by_key.get(state_key)
        if entry is None:
            return
        slot, i = entry
        slot.blocked_until[i] = max(int(slot.blocked_until[i]), ts_ms + self._cooldown_ms)


def _capacity(c: IndicationConfig) -> int:
    """Samples the ring must hold: the longest look-back of any type, enabled or not.

    Sizing for every type keeps the history when a type is switched on later (at 1 s that is the
    40-minute Active-advanced window plus one: 2,402 samples; with times and prefix sums, doubled,
    about 150 KB per symbol).
    """
    tf = c.timeframe_s
    needs = (
        ActiveAdvancedDetector(tf).lookback,
        ActiveDetector(tf).lookback,
        c.range_max + 1,
        max(c.range_max, tracking_samples(tf)) + 1,
        c.activity_range_s + 1,
    )
    return max(*needs, 2)
