"""Promotion Base → Main → Real → Exchange (DOMAIN §2.6) with D5 and D11, and its audit trail.

Why it looks like this: the original hard-coded 0.5/0.6/12 h and the last 20/30 entries, ignored the
settings, mixed three meanings of "profit factor" and left no record of why anything was promoted
(D5, D11). Here:

* every threshold comes from the settings registry (:meth:`PromotionThresholds.from_settings`):
  ``strategy.base_pf_min``, ``strategy.main_pf_min``, ``strategy.real_pf_min`` (D5: minimum
  ``avg_result_steps``) and ``strategy.max_drawdown_time_h`` (D12: time below the previous peak);
* windows are evaluation count 1 (25) and count 2 (50), the newest results of the set (D8, D11);
* each step is evaluated for many sets at once (:func:`base_to_main`, :func:`main_to_real`,
  :func:`real_to_exchange`), and every criterion keeps its value and threshold, so a
  :class:`PromotionDecision` can say which numbers crossed which thresholds;
* :class:`PromotionTracker` turns eligibility into decisions only when it changes (a set that stays
  eligible does not write an audit row per close), and :func:`record_decisions` writes them to the
  audit log: actor ``system``, action ``pseudo.promote`` (``pseudo.demote`` when a set loses it).

The rules:

* **Base → Main**: at least 10 closes, at least one win and one loss, ``avg_result_steps`` over the
  newest evaluation-count-1 results ≥ ``strategy.base_pf_min``; optionally the set's status must
  allow it (:meth:`~cts_desktop.engine.pseudo.evaluation.SetEvaluator.promotable`).
* **Main → Real** (on the Main set's own results): at least evaluation count 1 closes;
  ``avg_result_steps`` over the newest count-1 results, and once count 2 closes exist also over the
  newest count-2 results, ≥ ``strategy.main_pf_min``; the longest time below a previous peak within
  the widest of those windows ≤ ``strategy.max_drawdown_time_h``. Both windows must pass: the
  short one catches a recent slump, the long one a lucky streak.
* **Real → Exchange**: the same two windows with ``strategy.real_pf_min`` on the results the caller
  passes (the Real set's; the original used the base set's last 30).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from cts_desktop.domain.enums import Actor
from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.pseudo.stats import BOOL, F8, I8, Measures, SetStats, at_least
from cts_desktop.storage.repositories.audit import AuditRepository

BASE_PF_KEY = "strategy.base_pf_min"
MAIN_PF_KEY = "strategy.main_pf_min"
REAL_PF_KEY = "strategy.real_pf_min"
MAX_DRAWDOWN_TIME_KEY = "strategy.max_drawdown_time_h"

PROMOTE_ACTION = "pseudo.promote"
DEMOTE_ACTION = "pseudo.demote"
AUDIT_ENTITY = "pseudo_set"

_MS_PER_HOUR = 3_600_000


class PromotionStep(StrEnum):
    BASE_TO_MAIN = "base_to_main"
    MAIN_TO_REAL = "main_to_real"
    REAL_TO_EXCHANGE = "real_to_exchange"

    @property
    def levels(self) -> tuple[str, str]:
        """(from, to) level names."""
        return _LEVELS[self]


_LEVELS: dict[PromotionStep, tuple[str, str]] = {
    PromotionStep.BASE_TO_MAIN: ("base", "main"),
    PromotionStep.MAIN_TO_REAL: ("main", "real"),
    PromotionStep.REAL_TO_EXCHANGE: ("real", "exchange"),
}


@dataclass(frozen=True, slots=True)
class PromotionThresholds:
    """The promotion thresholds; build them with :meth:`from_settings` so the settings decide (D11)."""

    base_min_avg_steps: float = 0.6
    main_min_avg_steps: float = 0.6
    real_min_avg_steps: float = 0.6
    max_drawdown_time_h: float = 24.0
    base_min_closes: int = 10
    evaluation_count_1: int = 25
    evaluation_count_2: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.evaluation_count_1 <= self.evaluation_count_2:
            raise ValueError("evaluation counts must satisfy 1 <= count 1 <= count 2")

    @classmethod
    def from_settings(cls, values: Mapping[str, Any], **overrides: Any) -> PromotionThresholds:
        """Thresholds from a settings mapping (e.g. ``SettingsService.values()``); a missing key takes
        the registry default, a bad value raises
        :class:`~cts_desktop.domain.settings_schema.SettingValidationError`."""

        def read(key: str) -> float:
            spec = SPEC_BY_KEY[key]
            return float(spec.validate(values.get(key, spec.default)))

        return cls(
            base_min_avg_steps=read(BASE_PF_KEY),
            main_min_avg_steps=read(MAIN_PF_KEY),
            real_min_avg_steps=read(REAL_PF_KEY),
            max_drawdown_time_h=read(MAX_DRAWDOWN_TIME_KEY),
            **overrides,
        )


@dataclass(frozen=True, slots=True)
class Criterion:
    """One check of a promotion rule: ``value`` compared with ``threshold``."""

    name: str
    value: float
    comparison: str
    threshold: float
    passed: bool
    setting: str | None = None

    def describe(self) -> str:
        source = f" ({self.setting})" if self.setting else ""
        sign = self.comparison if self.passed else _NEGATION[self.comparison]
        return f"{self.name} {_fmt(self.value)} {sign} {_fmt(self.threshold)}{source}"


_NEGATION = {">=": "<", "<=": ">", ">": "<=", "<": ">="}


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _json_number(value: float) -> float | str | None:
    """Audit documents are strict JSON (no NaN/Infinity): NaN → null, ±inf → "inf"/"-inf"."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True, slots=True)
class _Check:
    """A vectorised criterion: one value per set."""

    name: str
    values: F8
    comparison: str
    threshold: float
    passed: BOOL
    setting: str | None = None
    applies: BOOL | None = None
    """Rows where the criterion is part of the rule (None: all); the others pass and are not reported."""


@dataclass(frozen=True, slots=True)
class StepEvaluation:
    """One promotion step evaluated for many sets: who is eligible and every criterion's numbers."""

    step: PromotionStep
    sets: I8
    closes: I8
    eligible: BOOL
    checks: tuple[_Check, ...]

    def criteria(self, row: int) -> tuple[Criterion, ...]:
        """The criteria of row ``row`` (a position in :attr:`sets`)."""
        return tuple(
            Criterion(c.name, float(c.values[row]), c.comparison, c.threshold, bool(c.passed[row]), c.setting)
            for c in self.checks
            if c.applies is None or c.applies[row]
        )


def _check(
    name: str,
    values: Any,
    comparison: str,
    threshold: float,
    setting: str | None = None,
    applies: BOOL | None = None,
) -> _Check:
    values = np.asarray(values, dtype=np.float64)
    if comparison == ">=":
        passed = at_least(values, threshold)
    elif comparison == "<=":
        passed = at_least(-values, -threshold)
    elif comparison == ">":
        passed = np.asarray(values > threshold, dtype=np.bool_)
    else:
        raise ValueError(f"unsupported comparison {comparison!r}")
    if applies is not None:
        passed = passed | ~applies
    return _Check(name, values, comparison, threshold, passed, setting, applies)


def _all(checks: Sequence[_Check], size: int) -> BOOL:
    eligible = np.ones(size, dtype=np.bool_)
    for check in checks:
        eligible &= check.passed
    return eligible


def _require_window(stats: SetStats, n: int) -> None:
    if n > stats.window:
        raise ValueError(
            f"evaluation window {n} exceeds the stats ring ({stats.window}); build SetStats(window=)"
        )


def base_to_main(
    stats: SetStats, sets: I8, thresholds: PromotionThresholds, *, allowed: BOOL | None = None
) -> StepEvaluation:
    """Base → Main for ``sets`` of a base-level :class:`SetStats` (see the module rules)."""
    sets = np.asarray(sets, dtype=np.int64)
    th = thresholds
    window = th.evaluation_count_1
    _require_window(stats, window)
    totals = stats.total_measures(sets)
    recent = stats.window_measures(sets, window)
    checks = [
        _check("closes", totals.results, ">=", th.base_min_closes),
        _check("wins", totals.wins, ">", 0),
        _check("losses", totals.losses, ">", 0),
        _check(
            f"avg_result_steps over newest {window}",
            recent.avg_result_steps,
            ">=",
            th.base_min_avg_steps,
            setting=BASE_PF_KEY,
        ),
    ]
    if allowed is not None:
        checks.append(
            _check("status allows promotion (1 = yes)", np.asarray(allowed, dtype=np.float64), ">=", 1)
        )
    return StepEvaluation(
        PromotionStep.BASE_TO_MAIN, sets, totals.results, _all(checks, sets.shape[0]), tuple(checks)
    )


def _two_window_checks(
    stats: SetStats, sets: I8, thresholds: PromotionThresholds, minimum: float, setting: str
) -> tuple[list[_Check], Measures, Measures]:
    th = thresholds
    _require_window(stats, th.evaluation_count_2)
    count = stats.count[sets]
    short = stats.window_measures(sets, th.evaluation_count_1)
    long = stats.window_measures(sets, th.evaluation_count_2)
    # The long window is part of the rule once it is full.
    long_full = np.asarray(count >= th.evaluation_count_2, dtype=np.bool_)
    long_check = _check(
        f"avg_result_steps over newest {th.evaluation_count_2}",
        long.avg_result_steps,
        ">=",
        minimum,
        setting=setting,
        applies=long_full,
    )
    checks = [
        _check("closes", count, ">=", th.evaluation_count_1),
        _check(
            f"avg_result_steps over newest {th.evaluation_count_1}",
            short.avg_result_steps,
            ">=",
            minimum,
            setting=setting,
        ),
        long_check,
    ]
    return checks, short, long


def main_to_real(stats: SetStats, sets: I8, thresholds: PromotionThresholds) -> StepEvaluation:
    """Main → Real for ``sets`` of a main-level :class:`SetStats` (see the module rules)."""
    sets = np.asarray(sets, dtype=np.int64)
    th = thresholds
    checks, short, long = _two_window_checks(stats, sets, th, th.main_min_avg_steps, MAIN_PF_KEY)
    long_full = stats.count[sets] >= th.evaluation_count_2
    hours = np.where(long_full, long.drawdown_time_ms, short.drawdown_time_ms) / _MS_PER_HOUR
    checks.append(_check("drawdown time (h)", hours, "<=", th.max_drawdown_time_h, MAX_DRAWDOWN_TIME_KEY))
    return StepEvaluation(
        PromotionStep.MAIN_TO_REAL, sets, stats.count[sets], _all(checks, sets.shape[0]), tuple(checks)
    )


def real_to_exchange(stats: SetStats, sets: I8, thresholds: PromotionThresholds) -> StepEvaluation:
    """Real → Exchange eligibility for ``sets`` of the stats whose results decide it."""
    sets = np.asarray(sets, dtype=np.int64)
    th = thresholds
    checks, _, _ = _two_window_checks(stats, sets, th, th.real_min_avg_steps, REAL_PF_KEY)
    return StepEvaluation(
        PromotionStep.REAL_TO_EXCHANGE, sets, stats.count[sets], _all(checks, sets.shape[0]), tuple(checks)
    )


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """A set gained (``promoted``) or lost eligibility for the next level, and why."""

    step: PromotionStep
    set_index: int
    set_id: str | None
    promoted: bool
    closes: int
    criteria: tuple[Criterion, ...]

    @property
    def action(self) -> str:
        return PROMOTE_ACTION if self.promoted else DEMOTE_ACTION

    def reason(self) -> str:
        """ "Why was this promoted?": every number and the threshold it was held against."""
        source, target = self.step.levels
        verb = "promoted" if self.promoted else "no longer eligible"
        deciding = self.criteria if self.promoted else tuple(c for c in self.criteria if not c.passed)
        details = "; ".join(c.describe() for c in deciding)
        return f"{source} → {target} {verb} at {self.closes} closes: {details}"

    def audit_before(self) -> dict[str, Any]:
        source, target = self.step.levels
        return {"step": str(self.step), "level": source, f"eligible_for_{target}": not self.promoted}

    def audit_after(self) -> dict[str, Any]:
        source, target = self.step.levels
        return {
            "step": str(self.step),
            "level": target if self.promoted else source,
            f"eligible_for_{target}": self.promoted,
            "closes": self.closes,
            "measures": {c.name: _json_number(c.value) for c in self.criteria},
            "thresholds": {
                c.name: {"comparison": c.comparison, "threshold": c.threshold, "setting": c.setting}
                for c in self.criteria
            },
            "passed": {c.name: c.passed for c in self.criteria},
        }


class PromotionTracker:
    """Remembers which sets are eligible for each step so decisions mark changes only.

    Without it, a set that stays above its thresholds would produce an audit row on every close
    (thousands per minute across a book).
    """

    def __init__(self) -> None:
        self._eligible: dict[PromotionStep, BOOL] = {}

    def is_eligible(self, step: PromotionStep, sets: I8) -> BOOL:
        known = self._eligible.get(step, np.zeros(0, dtype=np.bool_))
        sets = np.asarray(sets, dtype=np.int64)
        out = np.zeros(sets.shape[0], dtype=np.bool_)
        inside = sets < known.shape[0]
        out[inside] = known[sets[inside]]
        return out

    def update(
        self, evaluation: StepEvaluation, set_ids: Sequence[str] | None = None
    ) -> list[PromotionDecision]:
        """Record ``evaluation`` and return a decision for every set whose eligibility changed.

        ``set_ids`` maps set indices to stored ids (``set_ids[set_index]``) for the audit log.
        """
        sets = evaluation.sets
        if sets.size == 0:
            return []
        known = self._eligible.get(evaluation.step, np.zeros(0, dtype=np.bool_))
        needed = int(sets.max()) + 1
        if known.shape[0] < needed:
            grown = np.zeros(max(needed, 2 * known.shape[0]), dtype=np.bool_)
            grown[: known.shape[0]] = known
            known = grown
            self._eligible[evaluation.step] = known
        before = known[sets]
        changed = np.flatnonzero(before != evaluation.eligible)
        known[sets] = evaluation.eligible
        decisions = []
        for row in changed.tolist():
            set_index = int(sets[row])
            decisions.append(
                PromotionDecision(
                    step=evaluation.step,
                    set_index=set_index,
                    set_id=set_ids[set_index] if set_ids is not None else None,
                    promoted=bool(evaluation.eligible[row]),
                    closes=int(evaluation.closes[row]),
                    criteria=evaluation.criteria(row),
                )
            )
        return decisions


async def record_decisions(
    audit: AuditRepository, decisions: Sequence[PromotionDecision], *, connection_id: str | None = None
) -> None:
    """Write each decision to the audit log (actor ``system``), with the measures and thresholds
    in ``after`` and the sentence of :meth:`PromotionDecision.reason` as the reason."""
    for decision in decisions:
        await audit.record(
            actor=Actor.SYSTEM,
            action=decision.action,
            entity_type=AUDIT_ENTITY,
            entity_id=decision.set_id if decision.set_id is not None else str(decision.set_index),
            reason=decision.reason(),
            before=decision.audit_before(),
            after=decision.audit_after(),
            connection_id=connection_id,
        )
