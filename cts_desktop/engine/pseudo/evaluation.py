"""The base evaluation phases of DOMAIN §2.5, with D10's recovery, vectorised over a batch's sets.

Why it exists: in the original the close handler that fed these rules was never called, its average
formulas were wrong, and a paused set could never come back (D7, D10). Here every closed batch is
folded into :class:`~cts_desktop.engine.pseudo.stats.SetStats` and then :meth:`SetEvaluator.evaluate`
applies the rules to exactly the sets that batch touched, returning each status change with the
numbers and thresholds that decided it, so "why is this set paused?" always has an answer.

The rules (every number is a parameter of :class:`EvaluationThresholds`, defaults from §2.5/D10):

* **Phase 1** (fewer than 10 closes): the set is ``evaluating`` and may open entries.
* **At exactly 10 closes**: win rate < 0.40 → ``failed``, permanently (no more entries).
* **Phase 2** (10–49 closes): it may open entries only while its win rate is ≥ 0.40.
* **At exactly 50 closes**: win rate ≥ 0.45 and payoff ratio ≥ 1.2 → ``active``, else ``paused``.
* **Production** (more than 50 closes, ``active``): rolling win rate < 0.38 or rolling max drawdown
  > 0.30 → ``paused``.
* **Resume** (D10): a set paused before this batch returns to ``active`` once its rolling win rate is
  ≥ 0.43, unless the production rule would pause it again at once (rolling drawdown > 0.30); without
  that guard a set could flip active → paused on every close.

"Rolling" means over the newest ``rolling_window`` results (default 50, evaluation count 2; D8: the
windows use the newest rows). The milestone decisions use the counters captured at the crossing
(:class:`~cts_desktop.engine.pseudo.stats.FoldResult`), so a batch that carries a set from 8 to 12
closes is judged at 10, as the rule says. Production and resume look at the state after the batch.

Paused sets keep being simulated (:meth:`SetEvaluator.may_open`): pseudo entries cost nothing
(D17), and a set whose simulation stopped could never reach the resume threshold, which is the
defect D10 fixes. Paused and failed sets are not promoted (:meth:`SetEvaluator.promotable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt

from cts_desktop.engine.pseudo.stats import BOOL, I8, FoldResult, SetStats, above, at_least, below

I1 = npt.NDArray[np.int8]


class SetStatus(StrEnum):
    """The stored ``pseudo_sets.status`` vocabulary of an evaluated set."""

    EVALUATING = "evaluating"
    ACTIVE = "active"
    PAUSED = "paused"
    FAILED = "failed"


_CODES: tuple[SetStatus, ...] = (SetStatus.EVALUATING, SetStatus.ACTIVE, SetStatus.PAUSED, SetStatus.FAILED)
_CODE_OF = {status: code for code, status in enumerate(_CODES)}
EVALUATING, ACTIVE, PAUSED, FAILED = (np.int8(code) for code in range(len(_CODES)))


class Phase(IntEnum):
    """``pseudo_sets.phase``: 1 and 2 are the evaluation phases, 3 is production (after 50)."""

    ONE = 1
    TWO = 2
    PRODUCTION = 3


class Rule(StrEnum):
    """Which rule of §2.5/D10 changed a status."""

    PHASE1_WIN_RATE = "phase1_win_rate"
    PHASE2_ACTIVATE = "phase2_activate"
    PHASE2_PAUSE = "phase2_pause"
    PRODUCTION_PAUSE = "production_pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class EvaluationThresholds:
    """§2.5 and D10 as parameters; the defaults are the specification's numbers."""

    phase1_closes: int = 10
    phase2_closes: int = 50
    min_win_rate: float = 0.40
    """At ``phase1_closes`` (below → failed) and throughout phase 2 (below → no new entries)."""
    activate_win_rate: float = 0.45
    activate_payoff: float = 1.2
    pause_win_rate: float = 0.38
    pause_max_drawdown: float = 0.30
    resume_win_rate: float = 0.43
    rolling_window: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.phase1_closes < self.phase2_closes:
            raise ValueError("phase1_closes must be at least 1 and below phase2_closes")
        if self.rolling_window < 1:
            raise ValueError("rolling_window must be at least 1")


@dataclass(frozen=True, slots=True)
class StatusTransition:
    """One status change and its evidence: the measures it looked at and the thresholds it used."""

    set_index: int
    old: SetStatus
    new: SetStatus
    rule: Rule
    closes: int
    measures: dict[str, float]
    thresholds: dict[str, float]

    def describe(self) -> str:
        """A sentence for logs and the audit trail naming every number that decided it."""
        parts = ", ".join(f"{name} {value:.6g}" for name, value in self.measures.items())
        limits = ", ".join(f"{name} {value:.6g}" for name, value in self.thresholds.items())
        return (
            f"set {self.set_index}: {self.old} → {self.new} by {self.rule} at {self.closes} closes "
            f"({parts}; thresholds {limits})"
        )


class SetEvaluator:
    """The status of every set of one :class:`SetStats`, updated batch by batch.

    New sets start ``evaluating``. Restore persisted statuses with :meth:`restore`.
    """

    def __init__(self, stats: SetStats, thresholds: EvaluationThresholds | None = None) -> None:
        self._stats = stats
        self._thresholds = thresholds or EvaluationThresholds()
        if self._thresholds.rolling_window > stats.window:
            raise ValueError(
                f"rolling window {self._thresholds.rolling_window} exceeds the stats ring ({stats.window})"
            )
        missing = {self._thresholds.phase1_closes, self._thresholds.phase2_closes} - set(stats.milestones)
        if missing:
            raise ValueError(
                f"the stats must capture milestones {sorted(missing)} (see SetStats(milestones=))"
            )
        self._status = np.zeros(0, dtype=np.int8)

    @property
    def thresholds(self) -> EvaluationThresholds:
        return self._thresholds

    def _ensure(self) -> None:
        n = self._stats.n_sets
        if self._status.shape[0] < n:
            grown = np.full(max(n, 2 * self._status.shape[0]), EVALUATING, dtype=np.int8)
            grown[: self._status.shape[0]] = self._status
            self._status = grown

    def status_codes(self, sets: I8) -> I1:
        self._ensure()
        return self._status[np.asarray(sets, dtype=np.int64)]

    def statuses(self, sets: I8) -> list[SetStatus]:
        """The statuses of ``sets`` (for storage and display)."""
        return [_CODES[code] for code in self.status_codes(sets).tolist()]

    def phases(self, sets: I8) -> npt.NDArray[np.int64]:
        """Phase 1, 2 or 3 (production) from each set's close count."""
        count = self._stats.count[np.asarray(sets, dtype=np.int64)]
        th = self._thresholds
        return np.where(
            count < th.phase1_closes,
            Phase.ONE,
            np.where(count < th.phase2_closes, Phase.TWO, Phase.PRODUCTION),
        ).astype(np.int64)

    def restore(self, sets: I8, statuses: list[str] | tuple[str, ...]) -> None:
        """Put back statuses loaded from storage (the counters come back through the stats)."""
        self._ensure()
        codes = np.array([_CODE_OF[SetStatus(value)] for value in statuses], dtype=np.int8)
        self._status[np.asarray(sets, dtype=np.int64)] = codes

    def may_open(self, sets: I8) -> BOOL:
        """Whether each set may open new pseudo entries: not failed, and in phase 2 only while its
        win rate is at least ``min_win_rate``. Paused sets keep simulating (see the module note).

        Runs for every row a trigger would open (thousands per tick), so it reads only the two
        columns the rule needs and computes the win rate only for the sets in phase 2.
        """
        sets = np.asarray(sets, dtype=np.int64)
        status = self.status_codes(sets)
        th = self._thresholds
        closes, wins = self._stats.closes_and_wins(sets)
        allowed = np.asarray(status != FAILED, dtype=np.bool_)
        phase2 = np.flatnonzero((status == EVALUATING) & (closes >= th.phase1_closes))
        if phase2.size:
            win_rate = wins[phase2].astype(np.float64) / closes[phase2].astype(np.float64)
            allowed[phase2] &= at_least(win_rate, th.min_win_rate)
        return allowed

    def promotable(self, sets: I8) -> BOOL:
        """Whether each set's status allows promotion: not failed and not paused."""
        status = self.status_codes(sets)
        return np.asarray((status != FAILED) & (status != PAUSED), dtype=np.bool_)

    def evaluate(self, fold: FoldResult) -> list[StatusTransition]:
        """Apply the §2.5/D10 rules to the sets ``fold`` touched; returns the changes in rule order.

        Runs after every closing tick, usually for hundreds of sets of which none is at a milestone
        or in production; each rule is therefore only worked out when some set is actually subject
        to it (an empty rule changes nothing), which keeps the common call to a few array passes.
        """
        if len(fold) == 0:
            return []
        self._ensure()
        th = self._thresholds
        sets = fold.sets
        old = self._status[sets]  # a copy (fancy indexing)
        status = old.copy()
        transitions: list[StatusTransition] = []
        evaluating = status == EVALUATING

        # At exactly phase1_closes: a win rate below the minimum fails the set for good.
        crossed1 = fold.crossed(th.phase1_closes) & evaluating
        if crossed1.any():
            at1 = fold.at(th.phase1_closes)
            win_rate1 = at1.win_rate
            fail = crossed1 & below(win_rate1, th.min_win_rate)
            status[fail] = FAILED
            evaluating = status == EVALUATING
            for i in np.flatnonzero(fail).tolist():
                transitions.append(
                    self._transition(
                        sets[i],
                        SetStatus.EVALUATING,
                        SetStatus.FAILED,
                        Rule.PHASE1_WIN_RATE,
                        th.phase1_closes,
                        {"win_rate": float(win_rate1[i]), "wins": float(at1.wins[i])},
                        {"min_win_rate": th.min_win_rate},
                    )
                )

        # At exactly phase2_closes: activate on win rate and payoff ratio, otherwise pause.
        crossed2 = fold.crossed(th.phase2_closes) & evaluating
        if crossed2.any():
            at2 = fold.at(th.phase2_closes)
            win_rate2 = at2.win_rate
            payoff2 = at2.payoff_ratio
            activate = (
                crossed2 & at_least(win_rate2, th.activate_win_rate) & at_least(payoff2, th.activate_payoff)
            )
            pause = crossed2 & ~activate
            status[activate] = ACTIVE
            status[pause] = PAUSED
            for i in np.flatnonzero(crossed2).tolist():
                new = SetStatus.ACTIVE if activate[i] else SetStatus.PAUSED
                transitions.append(
                    self._transition(
                        sets[i],
                        SetStatus.EVALUATING,
                        new,
                        Rule.PHASE2_ACTIVATE if activate[i] else Rule.PHASE2_PAUSE,
                        th.phase2_closes,
                        {"win_rate": float(win_rate2[i]), "payoff_ratio": float(payoff2[i])},
                        {"activate_win_rate": th.activate_win_rate, "activate_payoff": th.activate_payoff},
                    )
                )

        # Production and resume read the rolling window after the batch.
        production = (status == ACTIVE) & (fold.count_after > th.phase2_closes)
        resumable = (old == PAUSED) & (status == PAUSED)
        candidates = np.flatnonzero(production | resumable)
        if candidates.size:
            rolling = self._stats.window_measures(
                sets[candidates], min(th.rolling_window, self._stats.window)
            )
            win_rate = np.full(sets.shape[0], np.nan)
            drawdown = np.full(sets.shape[0], np.nan)
            win_rate[candidates] = rolling.win_rate
            drawdown[candidates] = rolling.max_drawdown
            would_pause = below(win_rate, th.pause_win_rate) | above(drawdown, th.pause_max_drawdown)
            pause_now = production & would_pause
            resume = resumable & at_least(win_rate, th.resume_win_rate) & ~would_pause
            status[pause_now] = PAUSED
            status[resume] = ACTIVE
            pause_limits = {"pause_win_rate": th.pause_win_rate, "pause_max_drawdown": th.pause_max_drawdown}
            for i in np.flatnonzero(pause_now | resume).tolist():
                resumed = bool(resume[i])
                transitions.append(
                    self._transition(
                        sets[i],
                        SetStatus.PAUSED if resumed else SetStatus.ACTIVE,
                        SetStatus.ACTIVE if resumed else SetStatus.PAUSED,
                        Rule.RESUME if resumed else Rule.PRODUCTION_PAUSE,
                        int(fold.count_after[i]),
                        {"rolling_win_rate": float(win_rate[i]), "rolling_max_drawdown": float(drawdown[i])},
                        {"resume_win_rate": th.resume_win_rate, **pause_limits} if resumed else pause_limits,
                    )
                )

        if transitions:
            self._status[sets] = status
        return transitions

    def _transition(
        self,
        set_index: np.int64 | int,
        old: SetStatus,
        new: SetStatus,
        rule: Rule,
        closes: int,
        measures: dict[str, float],
        thresholds: dict[str, float],
    ) -> StatusTransition:
        return StatusTransition(int(set_index), old, new, rule, closes, measures, thresholds)
