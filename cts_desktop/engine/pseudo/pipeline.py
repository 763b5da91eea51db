"""One tick's path through the compute core: step indications → pseudo book → set statistics →
phase evaluation → Base → Main promotion (ARCHITECTURE data flow; D7: every close feeds the
statistics, the phase rules and promotion).

Every configuration set is a dense integer index. A firing indication owns one block of
consecutive indices, one per grid row (924, or 616 for Active-advanced), so the book, the
statistics and the evaluator all work on plain index arrays and nothing loops per configuration.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cts_desktop.domain.settings_schema import defaults
from cts_desktop.engine.indications.engine import IndicationEngine
from cts_desktop.engine.indications.signals import IndicationSignal, IndicationType
from cts_desktop.engine.pseudo.book import PseudoBook
from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.evaluation import SetEvaluator, StatusTransition
from cts_desktop.engine.pseudo.grid import ACTIVE_ADVANCED_GRID, MAIN_GRID, ConfigGrid
from cts_desktop.engine.pseudo.promotion import (
    PromotionDecision,
    PromotionThresholds,
    PromotionTracker,
    base_to_main,
)
from cts_desktop.engine.pseudo.stats import SetStats

DEFAULT_FEE_FRACTION = 0.00055  # taker 0.055 % per side, the perpetual default of our venues


@dataclass(frozen=True, slots=True)
class SetKey:
    """What one block of sets stands for: a symbol's indication instance, sub-config and direction."""

    symbol: str
    state_key: str
    subconfig_id: int | None
    direction: int


@dataclass(frozen=True, slots=True)
class SetLocation:
    """Where a set index lives: its block's key, its row in the grid, and the grid (None when the
    block was registered without one)."""

    key: SetKey
    row: int
    grid: ConfigGrid | None


class SetRegistry:
    """Hands out one block of consecutive set indices per SetKey, on first sight.

    Only block starts are stored (one entry per trigger key, not per configuration), so a new
    key costs O(1) on the tick that first fires it.
    """

    def __init__(self) -> None:
        self._starts: dict[SetKey, int] = {}
        self._block_starts: list[int] = []
        self._block_keys: list[SetKey] = []
        self._block_grids: list[ConfigGrid | None] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def block(self, key: SetKey, rows: int, grid: ConfigGrid | None = None) -> int:
        start = self._starts.get(key)
        if start is None:
            if grid is not None and len(grid) != rows:
                raise ValueError(f"a block of {rows} rows cannot hold a grid of {len(grid)}")
            start = self._size
            self._starts[key] = start
            self._block_starts.append(start)
            self._block_keys.append(key)
            self._block_grids.append(grid)
            self._size += rows
        return start

    def locate(self, set_index: int) -> SetLocation:
        if not 0 <= set_index < self._size:
            raise IndexError(f"no set {set_index}")
        block = bisect.bisect_right(self._block_starts, set_index) - 1
        return SetLocation(
            self._block_keys[block], set_index - self._block_starts[block], self._block_grids[block]
        )

    def describe(self, set_index: int) -> str:
        location = self.locate(set_index)
        key = location.key
        side = "long" if key.direction > 0 else "short"
        sub = f"/sub{key.subconfig_id}" if key.subconfig_id is not None else ""
        return f"{key.state_key}{sub}/{side}/config{location.row}"


@dataclass(slots=True)
class TickOutcome:
    signals: list[IndicationSignal]
    opened: int
    closed: ClosedBatch
    transitions: list[StatusTransition] = field(default_factory=list)
    decisions: list[PromotionDecision] = field(default_factory=list)


_GRIDS: dict[bool, ConfigGrid] = {False: MAIN_GRID, True: ACTIVE_ADVANCED_GRID}  # keyed by "active-advanced?"


class PseudoPipeline:
    """The main engine's compute core for any number of symbols (one instance per connection)."""

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, fee_fraction: float = DEFAULT_FEE_FRACTION
    ) -> None:
        values = {**defaults(), **dict(settings or {})}
        self._settings = values
        self.book = PseudoBook(max_open_per_config=int(values["strategy.max_positions_per_config_direction"]))
        self.stats = SetStats()
        self.evaluator = SetEvaluator(self.stats)
        self.tracker = PromotionTracker()
        self.thresholds = PromotionThresholds.from_settings(values)
        self.registry = SetRegistry()
        self.fee_fraction = fee_fraction
        self.position_cost_pct = float(values["main.position_cost_pct"])
        self.max_age_hours = float(values["strategy.max_position_age_main_h"])
        self._indications: dict[str, IndicationEngine] = {}
        self._decision_listeners: list[Callable[[TickOutcome], None]] = []
        self._offsets = {advanced: np.arange(len(g), dtype=np.int64) for advanced, g in _GRIDS.items()}

    def on_decisions(self, listener: Callable[[TickOutcome], None]) -> None:
        """Call ``listener`` with every tick outcome that carries promotion decisions: the order
        loop follows Main without the engine's tick loop knowing it exists."""
        self._decision_listeners.append(listener)

    @property
    def accepting_new(self) -> bool:
        return self.book.accepting_new

    @accepting_new.setter
    def accepting_new(self, value: bool) -> None:
        """Pause (D14): no new pseudo entries, while open ones keep being monitored."""
        self.book.accepting_new = value

    def indications(self, symbol: str) -> IndicationEngine:
        engine = self._indications.get(symbol)
        if engine is None:
            engine = IndicationEngine(symbol, self._settings)
            self._indications[symbol] = engine
        return engine

    def on_tick(self, symbol: str, price: float, ts_ms: int) -> TickOutcome:
        signals = self.indications(symbol).on_tick(price, ts_ms)
        closed = self.book.on_tick(symbol, price, ts_ms)
        outcome = TickOutcome(signals, 0, closed)
        if len(closed):
            self._after_closes(closed, outcome)
        if signals:
            outcome.opened = self._open_all(symbol, signals, price, ts_ms)
        if outcome.decisions:
            for listener in self._decision_listeners:
                listener(outcome)
        return outcome

    def _after_closes(self, closed: ClosedBatch, outcome: TickOutcome) -> None:
        fold = self.stats.apply(closed)
        outcome.transitions = self.evaluator.evaluate(fold)
        touched = np.unique(closed.set_index)
        # A set below the minimum close count has never been eligible (counts only grow), so
        # its eligibility cannot change: evaluate only the sets that reached it.
        candidates = touched[self.stats.count[touched] >= self.thresholds.base_min_closes]
        if candidates.size:
            evaluation = base_to_main(
                self.stats, candidates, self.thresholds, allowed=self.evaluator.promotable(candidates)
            )
            outcome.decisions = self.tracker.update(evaluation)

    def _open_all(self, symbol: str, signals: list[IndicationSignal], price: float, ts_ms: int) -> int:
        """Open every signal of this tick with one book call per (grid, direction)."""
        groups: dict[tuple[bool, int], list[int]] = {}  # (active-advanced grid?, direction) → starts
        for signal in signals:
            advanced = signal.kind is IndicationType.ACTIVE_ADVANCED
            key = SetKey(symbol, signal.state_key, signal.subconfig_id, signal.direction)
            start = self.registry.block(key, len(_GRIDS[advanced]), _GRIDS[advanced])
            groups.setdefault((advanced, signal.direction), []).append(start)
        self.stats.ensure(len(self.registry))
        opened = 0
        for (advanced, direction), starts in groups.items():
            grid = _GRIDS[advanced]
            offsets = self._offsets[advanced]
            sets: npt.NDArray[np.int64] = (np.asarray(starts, dtype=np.int64)[:, None] + offsets).ravel()
            allowed = self.evaluator.may_open(sets)
            if not allowed.any():
                continue
            rows = np.tile(offsets, len(starts))[allowed]
            mask = self.book.open_entries(
                symbol,
                sets[allowed],
                direction,
                price,
                ts_ms,
                grid,
                rows=rows,
                position_cost_pct=self.position_cost_pct,
                fee_fraction=self.fee_fraction,
                max_age_hours=self.max_age_hours,
            )
            opened += int(np.count_nonzero(mask))
        return opened
