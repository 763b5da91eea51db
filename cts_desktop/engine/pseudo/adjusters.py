"""Block and DCA volume adjusters (DOMAIN §3.1) and the preset sets with their evaluator (§3.2).

Why here and why like this: in the original these formulas only fed a mock Strategies page, the
block auto-disable was written but never called, and the adjusted-state bookkeeping lived in one
engine-wide map. Here every adjuster is computed for many sets at once from the per-set result
windows of :class:`~cts_desktop.engine.pseudo.stats.SetStats` (result steps are the per-position
"PF" of §3.1), so they can run on every batch like the evaluation rules.

Block adjustment (per set, for each configured block size ``b``):

* blocks are the set's consecutive results ``[k·b, (k+1)·b)`` counted from its first close, so a
  block never shifts when a new result arrives;
* a block size is **adjusted** while its newest complete block averaged < 0 (it reverts as soon as a
  later complete block averages ≥ 0 — the original's state machine reduces to exactly this);
* volume factor = base × (1 + adjustedBlockCount × ratio), where adjustedBlockCount counts the
  adjusted (and not auto-disabled) block sizes, as the original did; with one block size it is 0 or
  1, so ratio 1.0 doubles the volume after a losing block and never compounds;
* **auto-disable** per block size: over the newest ``comparison_window`` results (≥ 20 of them,
  ≥ 2 complete blocks), compare the mean block PnL (sum of result steps) after a losing block with
  the mean after a non-losing block (≥ 2 samples each; a window's first block counts as "after a
  non-losing block", as in the original). Disabled when the former is worse: adding volume after
  losses does not pay for this set. It is recomputed every time, so it re-enables itself when the
  comparison turns.

DCA adjustment: factor × (1 + losers / total) over the newest ``window`` results (levels 3/5/7 only
name how many add-on entries the executor may place; the factor does not depend on them).

Block and DCA switch themselves off per set when the win rate over the window drops below 25 % and
back on at 40 % (:class:`AdjusterActivation`, a hysteresis so a set near one threshold does not flap).

Preset sets: :data:`PREDEFINED_PRESETS` is the §3.2 table, and :func:`evaluate_preset_set` is the
hourly set evaluator: any symbol whose measure over its newest N results is below the preset's
minimum disables the whole set, with a reason naming each offending symbol and its numbers. By D5
a preset minimum is a ``pf_gross`` minimum (the original averaged per-position PFs instead; pass
``measure="avg_result_steps"`` for that reading).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.pseudo.stats import BOOL, F8, I8, SetStats, at_least, below

BLOCK_SIZES: tuple[int, ...] = (2, 4, 6, 8)
DCA_LEVELS: tuple[int, ...] = (3, 5, 7)

BLOCK_RATIO_KEY = "strategy.block_adjustment_ratio"
BLOCK_MIN_BLOCKS_KEY = "strategy.block_auto_disable_min_blocks"
BLOCK_WINDOW_KEY = "strategy.block_auto_disable_window"


# --------------------------------------------------------------------------- block


@dataclass(frozen=True, slots=True)
class BlockSettings:
    """§3.1 block parameters: sizes 2–10 (the UI offers 2/4/6/8), ratio 0.5–2.0."""

    block_sizes: tuple[int, ...] = (2,)
    ratio: float = 1.0
    comparison_window: int = 50
    min_positions: int = 20
    min_blocks: int = 2
    min_samples: int = 2

    def __post_init__(self) -> None:
        if not self.block_sizes or any(not 2 <= size <= 10 for size in self.block_sizes):
            raise ValueError(f"block sizes must be within 2..10, got {self.block_sizes}")
        if not 0.5 <= self.ratio <= 2.0:
            raise ValueError(f"block adjustment ratio must be within 0.5..2.0, got {self.ratio}")
        if self.comparison_window < 1 or self.min_blocks < 1 or self.min_samples < 1:
            raise ValueError("comparison window, minimum blocks and minimum samples must be positive")

    @classmethod
    def from_settings(cls, values: Mapping[str, Any], **overrides: Any) -> BlockSettings:
        """Ratio, comparison window and minimum blocks from the settings registry keys."""

        def read(key: str) -> Any:
            spec = SPEC_BY_KEY[key]
            return spec.validate(values.get(key, spec.default))

        fields: dict[str, Any] = {
            "ratio": float(read(BLOCK_RATIO_KEY)),
            "comparison_window": int(read(BLOCK_WINDOW_KEY)),
            "min_blocks": int(read(BLOCK_MIN_BLOCKS_KEY)),
        }
        fields.update(overrides)
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class BlockAdjustment:
    """Block adjustment of some sets; per-size columns have shape (len(sets), len(block_sizes))."""

    sets: I8
    block_sizes: tuple[int, ...]
    last_block_avg: F8
    adjusted: BOOL
    auto_disabled: BOOL
    mean_after_losing: F8
    mean_after_other: F8
    samples_after_losing: I8
    samples_after_other: I8
    adjusted_block_count: I8
    volume_factor: F8


def _blocks(stats: SetStats, sets: I8, block_size: int, window: int) -> tuple[F8, F8, BOOL]:
    """Complete, count-aligned blocks inside each set's newest ``window`` results, oldest first and
    right-aligned: (average, sum, valid), each of shape (len(sets), window // block_size)."""
    result, _, _, valid = stats.recent(sets, window)
    count = stats.count[sets]
    slots = window // block_size
    complete_end = (count // block_size) * block_size  # absolute position after the newest complete block
    # Block j (0 = oldest column) covers absolute positions [end - (slots-j)·b, end - (slots-j-1)·b).
    offsets = (np.arange(slots, dtype=np.int64) - slots)[None, :] * block_size + complete_end[:, None]
    cells = offsets[:, :, None] + np.arange(block_size, dtype=np.int64)[None, None, :]
    columns = cells - (count[:, None, None] - window)  # column in the right-aligned window matrix
    inside = (columns >= 0) & (columns < window)
    safe = np.clip(columns, 0, window - 1)
    rows = np.arange(sets.shape[0], dtype=np.int64)[:, None, None]
    cell_valid = inside & valid[rows, safe]
    block_valid: BOOL = np.asarray(cell_valid.all(axis=2), dtype=np.bool_)
    sums: F8 = np.where(cell_valid, result[rows, safe], 0.0).sum(axis=2)
    averages: F8 = np.where(block_valid, sums / block_size, np.nan)
    return averages, np.where(block_valid, sums, np.nan), block_valid


def block_adjustment(
    stats: SetStats, sets: I8, settings: BlockSettings, base_volume_factor: float | F8 = 1.0
) -> BlockAdjustment:
    """The §3.1 block adjustment for ``sets`` (see the module description)."""
    sets = np.asarray(sets, dtype=np.int64)
    k, m = sets.shape[0], len(settings.block_sizes)
    window = min(settings.comparison_window, stats.window)
    count = stats.count[sets]
    last_avg = np.full((k, m), np.nan)
    disabled = np.zeros((k, m), dtype=np.bool_)
    after_losing = np.full((k, m), np.nan)
    after_other = np.full((k, m), np.nan)
    n_losing = np.zeros((k, m), dtype=np.int64)
    n_other = np.zeros((k, m), dtype=np.int64)
    if max(settings.block_sizes) > window:
        raise ValueError(f"block size {max(settings.block_sizes)} exceeds the comparison window {window}")
    for column, size in enumerate(settings.block_sizes):  # a few block sizes, not entries
        avg, total, valid = _blocks(stats, sets, size, window)
        last_avg[:, column] = avg[:, -1]
        previous_losing = np.zeros_like(valid)
        previous_losing[:, 1:] = valid[:, :-1] & (avg[:, :-1] < 0)
        losing_group = valid & previous_losing
        other_group = valid & ~previous_losing
        n_losing[:, column] = losing_group.sum(axis=1)
        n_other[:, column] = other_group.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            after_losing[:, column] = np.where(losing_group, total, 0.0).sum(axis=1) / n_losing[:, column]
            after_other[:, column] = np.where(other_group, total, 0.0).sum(axis=1) / n_other[:, column]
        enough = (
            (np.minimum(count, window) >= min(settings.min_positions, window))
            & (valid.sum(axis=1) >= settings.min_blocks)
            & (n_losing[:, column] >= settings.min_samples)
            & (n_other[:, column] >= settings.min_samples)
        )
        disabled[:, column] = enough & (after_losing[:, column] < after_other[:, column])
    adjusted = np.asarray(last_avg < 0, dtype=np.bool_)
    adjusted_count = (adjusted & ~disabled).sum(axis=1).astype(np.int64)
    factor = np.asarray(base_volume_factor, dtype=np.float64) * (1.0 + adjusted_count * settings.ratio)
    return BlockAdjustment(
        sets=sets,
        block_sizes=settings.block_sizes,
        last_block_avg=last_avg,
        adjusted=adjusted,
        auto_disabled=disabled,
        mean_after_losing=after_losing,
        mean_after_other=after_other,
        samples_after_losing=n_losing,
        samples_after_other=n_other,
        adjusted_block_count=adjusted_count,
        volume_factor=np.broadcast_to(factor, (k,)).copy(),
    )


# --------------------------------------------------------------------------- DCA


@dataclass(frozen=True, slots=True)
class DcaAdjustment:
    sets: I8
    levels: int
    results: I8
    losers: I8
    factor: F8


def dca_adjustment(
    stats: SetStats, sets: I8, *, levels: int = 3, window: int = 8, base_factor: float | F8 = 1.0
) -> DcaAdjustment:
    """factor × (1 + losers / total) over each set's newest ``window`` results (§3.1).

    The default window of 8 is §3.1's default "last N" for Base; a set without results keeps
    ``base_factor``.
    """
    if levels not in DCA_LEVELS:
        raise ValueError(f"DCA levels must be one of {DCA_LEVELS}, got {levels}")
    sets = np.asarray(sets, dtype=np.int64)
    measures = stats.window_measures(sets, window)
    share = np.where(measures.results > 0, measures.losses / np.maximum(measures.results, 1), 0.0)
    factor = np.asarray(base_factor, dtype=np.float64) * (1.0 + share)
    return DcaAdjustment(
        sets, levels, measures.results, measures.losses, np.broadcast_to(factor, sets.shape).copy()
    )


# --------------------------------------------------------------------------- activation


@dataclass(frozen=True, slots=True)
class ActivationChange:
    set_index: int
    active: bool
    win_rate: float
    threshold: float


class AdjusterActivation:
    """Per-set on/off state of an adjuster (block or DCA) with §3.1's win-rate hysteresis:
    off below ``deactivate_below`` (25 %), on again at ``reactivate_at`` (40 %).

    Sets start active. ``min_results`` keeps one early loss from switching an adjuster off: the
    win rate of three results says nothing (§3.1 gives no minimum; 10 is phase 1's length).
    """

    def __init__(
        self,
        *,
        deactivate_below: float = 0.25,
        reactivate_at: float = 0.40,
        window: int = 50,
        min_results: int = 10,
    ) -> None:
        if not 0.0 <= deactivate_below <= reactivate_at <= 1.0:
            raise ValueError("need 0 <= deactivate_below <= reactivate_at <= 1")
        self._off_below = deactivate_below
        self._on_at = reactivate_at
        self._window = window
        self._min_results = min_results
        self._active = np.ones(0, dtype=np.bool_)

    def active(self, sets: I8) -> BOOL:
        sets = np.asarray(sets, dtype=np.int64)
        out = np.ones(sets.shape[0], dtype=np.bool_)
        inside = sets < self._active.shape[0]
        out[inside] = self._active[sets[inside]]
        return out

    def update(self, stats: SetStats, sets: I8) -> list[ActivationChange]:
        """Re-check ``sets`` (typically those a batch touched) and return the switches."""
        sets = np.asarray(sets, dtype=np.int64)
        if sets.size == 0:
            return []
        needed = int(sets.max()) + 1
        if self._active.shape[0] < needed:
            grown = np.ones(max(needed, 2 * self._active.shape[0]), dtype=np.bool_)
            grown[: self._active.shape[0]] = self._active
            self._active = grown
        measures = stats.window_measures(sets, min(self._window, stats.window))
        rate = measures.win_rate
        enough = measures.results >= self._min_results
        was = self._active[sets]
        off = was & enough & below(rate, self._off_below)
        on = ~was & enough & at_least(rate, self._on_at)
        self._active[sets[off]] = False
        self._active[sets[on]] = True
        return [
            ActivationChange(
                int(sets[i]), bool(on[i]), float(rate[i]), self._on_at if on[i] else self._off_below
            )
            for i in np.flatnonzero(off | on).tolist()
        ]


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True, slots=True)
class PresetDefinition:
    """One row of §3.2's predefined presets: TP steps, SL ratio range and minimum PF (``pf_gross``)."""

    name: str
    tp_steps: tuple[int, ...]
    sl_ratio_min: float
    sl_ratio_max: float
    min_pf: float

    def sl_ratios(self, step: float = 0.1) -> tuple[float, ...]:
        """The SL ratios of the range on a ``step`` grid (both ends included)."""
        count = round((self.sl_ratio_max - self.sl_ratio_min) / step)
        return tuple(round(self.sl_ratio_min + i * step, 10) for i in range(count + 1))


PREDEFINED_PRESETS: Mapping[str, PresetDefinition] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            PresetDefinition("Conservative", (2, 3, 4), 0.4, 0.8, 0.6),
            PresetDefinition("Balanced", (2, 3, 4, 5, 6), 0.4, 1.0, 0.5),
            PresetDefinition("Aggressive", tuple(range(3, 13)), 0.6, 1.5, 0.4),
            PresetDefinition("Scalping", (2, 3), 0.2, 0.6, 0.5),
            PresetDefinition("Swing", tuple(range(4, 13)), 0.8, 1.5, 0.5),
        )
    }
)

PresetMeasure = Literal["pf_gross", "avg_result_steps"]


@dataclass(frozen=True, slots=True)
class SymbolEvaluation:
    symbol: str
    results: int
    value: float
    minimum: float
    evaluated: bool
    below: bool


@dataclass(frozen=True, slots=True)
class PresetSetVerdict:
    """The set evaluator's answer for one preset set: disable it or not, and why."""

    disable: bool
    reason: str
    evaluated_at_ms: int
    measure: PresetMeasure
    evaluation_count: int
    symbols: tuple[SymbolEvaluation, ...]


def evaluate_preset_set(
    stats: SetStats,
    symbol_sets: Mapping[str, int],
    *,
    min_pf: float,
    now_ms: int,
    evaluation_count: int = 25,
    measure: PresetMeasure = "pf_gross",
) -> PresetSetVerdict:
    """§3.2 set evaluator for one preset set whose per-symbol results are the stats rows
    ``symbol_sets`` (symbol → set index). Symbols with fewer than ``evaluation_count`` results are
    not judged yet; if any judged symbol is below ``min_pf`` the whole set is to be disabled."""
    symbols: Sequence[str] = list(symbol_sets)
    rows = np.fromiter((symbol_sets[s] for s in symbols), dtype=np.int64, count=len(symbols))
    measures = stats.window_measures(rows, evaluation_count)
    values = measures.pf_gross if measure == "pf_gross" else measures.avg_result_steps
    evaluated = stats.count[rows] >= evaluation_count
    low = evaluated & below(values, min_pf)
    evaluations = tuple(
        SymbolEvaluation(
            symbol, int(measures.results[i]), float(values[i]), min_pf, bool(evaluated[i]), bool(low[i])
        )
        for i, symbol in enumerate(symbols)
    )
    offenders = [e for e in evaluations if e.below]
    if offenders:
        detail = "; ".join(
            f"{e.symbol} {measure} over newest {evaluation_count} = {e.value:.6g} < minimum {min_pf:.6g}"
            for e in offenders
        )
        reason = f"auto-disabled: {detail}"
    else:
        judged = sum(e.evaluated for e in evaluations)
        reason = f"kept: {judged} of {len(evaluations)} symbols judged, none below {measure} {min_pf:.6g}"
    return PresetSetVerdict(bool(offenders), reason, now_ms, measure, evaluation_count, evaluations)
