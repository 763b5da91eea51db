"""§2.5 phases and D10 recovery, each rule at its exact boundary."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.engine.pseudo.evaluation import (
    EvaluationThresholds,
    Phase,
    Rule,
    SetEvaluator,
    SetStatus,
    StatusTransition,
)
from cts_desktop.engine.pseudo.stats import BOOL, F8, SetStats, above, at_least, below
from tests.engine.pseudo.test_stats import closed, one_set, reference_window

WIN, LOSS = 2.0, -1.0  # payoff 2.0: only the win rate decides unless a test says otherwise


def outcomes(wins: int, losses: int, *, win: float = WIN, loss: float = LOSS) -> list[float]:
    """``wins`` wins spread evenly among ``losses`` losses (so no window is lopsided)."""
    total = wins + losses
    marks = {round((i + 0.5) * total / wins - 0.5) for i in range(wins)} if wins else set()
    assert len(marks) == wins
    return [win if i in marks else loss for i in range(total)]


class Book:
    """One SetStats + SetEvaluator, fed batch by batch like the live book does."""

    def __init__(self, n_sets: int = 1, thresholds: EvaluationThresholds | None = None, window: int = 50):
        th = thresholds or EvaluationThresholds()
        self.stats = SetStats(n_sets, window=window, milestones=(th.phase1_closes, th.phase2_closes))
        self.evaluator = SetEvaluator(self.stats, th)
        self.clock = 0

    def feed(
        self, results: Sequence[float], *, set_index: int = 0, pnl: Sequence[float] | None = None
    ) -> list[StatusTransition]:
        batch = one_set(results, set_index=set_index, start_ms=self.clock, pnl=pnl)
        self.clock += 1000 * len(results)
        return self.evaluator.evaluate(self.stats.apply(batch))

    def status(self, set_index: int = 0) -> SetStatus:
        return self.evaluator.statuses(np.array([set_index]))[0]

    def may_open(self, set_index: int = 0) -> bool:
        return bool(self.evaluator.may_open(np.array([set_index]))[0])


# --------------------------------------------------------------------------- phase 1: 9 / 10 / 11


def test_nine_closes_decide_nothing_even_without_a_win() -> None:
    book = Book()
    assert book.feed([LOSS] * 9) == []
    assert book.status() is SetStatus.EVALUATING and book.may_open()
    assert book.evaluator.phases(np.array([0])).tolist() == [Phase.ONE]


def test_ten_closes_below_040_fail_the_set_for_good() -> None:
    book = Book()
    (transition,) = book.feed(outcomes(3, 7))
    assert (transition.old, transition.new, transition.rule) == (
        SetStatus.EVALUATING,
        SetStatus.FAILED,
        Rule.PHASE1_WIN_RATE,
    )
    assert transition.closes == 10 and transition.measures["win_rate"] == pytest.approx(0.3)
    assert transition.thresholds == {"min_win_rate": 0.40}
    assert "win_rate 0.3" in transition.describe() and "min_win_rate 0.4" in transition.describe()
    assert not book.may_open()
    assert book.feed([WIN] * 60) == []  # permanent: even a perfect run later changes nothing
    assert book.status() is SetStatus.FAILED and not book.may_open()


def test_ten_closes_at_exactly_040_pass() -> None:
    book = Book()
    assert book.feed(outcomes(4, 6)) == []
    assert book.status() is SetStatus.EVALUATING and book.may_open()
    assert book.evaluator.phases(np.array([0])).tolist() == [Phase.TWO]


def test_the_decision_uses_the_tenth_close_even_when_a_batch_runs_to_eleven() -> None:
    failing = Book()
    failing.feed([LOSS] * 9)
    # 10th close a loss (win rate 0/10), 11th a win: judged at 10 → failed.
    (transition,) = failing.feed([LOSS, WIN])
    assert transition.new is SetStatus.FAILED and transition.closes == 10
    passing = Book()
    passing.feed(outcomes(3, 6))
    # 10th close a win (4/10 = 0.40), 11th a loss (4/11 < 0.40): judged at 10 → not failed.
    assert passing.feed([WIN, LOSS]) == []
    assert passing.status() is SetStatus.EVALUATING


def test_a_batch_from_eight_to_twelve_is_judged_at_ten() -> None:
    book = Book()
    book.feed([WIN] * 3 + [LOSS] * 5)
    transitions = book.feed([LOSS, LOSS, WIN, WIN])  # at 10: 3/10; at 12: 5/12
    assert [t.rule for t in transitions] == [Rule.PHASE1_WIN_RATE]
    assert transitions[0].measures["win_rate"] == pytest.approx(0.3)


# --------------------------------------------------------------------------- phase 2: gate, 49 / 50 / 51


def test_phase_two_opens_only_while_win_rate_is_at_least_040() -> None:
    book = Book()
    book.feed(outcomes(4, 6))  # 0.40 at 10
    book.feed([LOSS])  # 4/11
    assert book.status() is SetStatus.EVALUATING and not book.may_open()
    book.feed([WIN])  # 5/12
    assert book.may_open()
    book.feed([WIN, WIN, LOSS, WIN, LOSS, LOSS])  # 8/18 = 0.444
    assert book.may_open()
    book.feed([LOSS, LOSS])  # 8/20 = 0.40 exactly
    assert book.may_open()


def test_forty_nine_closes_decide_nothing() -> None:
    book = Book()
    assert book.feed(outcomes(30, 19)) == []
    assert book.status() is SetStatus.EVALUATING


@pytest.mark.parametrize(("wins", "expected"), [(23, SetStatus.ACTIVE), (22, SetStatus.PAUSED)])
def test_fifty_closes_activate_at_045_else_pause(wins: int, expected: SetStatus) -> None:
    book = Book()
    (transition,) = book.feed(outcomes(wins, 50 - wins))
    assert transition.new is expected and transition.closes == 50
    assert transition.rule is (Rule.PHASE2_ACTIVATE if expected is SetStatus.ACTIVE else Rule.PHASE2_PAUSE)
    assert transition.measures["win_rate"] == wins / 50
    assert transition.thresholds == {"activate_win_rate": 0.45, "activate_payoff": 1.2}
    assert book.evaluator.phases(np.array([0])).tolist() == [Phase.PRODUCTION]


def test_win_rate_of_exactly_045_activates() -> None:
    """At 50 closes 0.45 is not a reachable rate, so the boundary is shown with 20 closes (9/20)."""
    th = EvaluationThresholds(phase2_closes=20)
    exactly = Book(thresholds=th)
    (transition,) = exactly.feed(outcomes(4, 6) + outcomes(5, 5))  # 0.40 at 10, 9/20 = 0.45 at 20
    assert transition.measures["win_rate"] == 0.45 and transition.new is SetStatus.ACTIVE
    below = Book(thresholds=th)
    (transition,) = below.feed(outcomes(4, 6) + outcomes(4, 6))  # 8/20 = 0.40
    assert transition.new is SetStatus.PAUSED


@pytest.mark.parametrize(
    ("win", "expected"),
    [(1.2, SetStatus.ACTIVE), (1.19, SetStatus.PAUSED), (1.21, SetStatus.ACTIVE)],
)
def test_payoff_ratio_of_exactly_12_activates(win: float, expected: SetStatus) -> None:
    book = Book()
    (transition,) = book.feed(outcomes(25, 25, win=win, loss=-1.0))
    assert transition.measures["payoff_ratio"] == pytest.approx(win)
    assert transition.new is expected


def test_the_fifty_close_decision_uses_the_fiftieth_close_when_a_batch_runs_to_fifty_one() -> None:
    book = Book()
    book.feed(outcomes(22, 27))  # 49 closes
    (transition, *rest) = book.feed([WIN, LOSS])  # 23/50 at 50 → active; 23/51 afterwards
    assert transition.new is SetStatus.ACTIVE and transition.measures["win_rate"] == 0.46
    # Production then looks at 51 closes: rolling 23/50 = 0.46 ≥ 0.38 → stays active.
    assert rest == [] and book.status() is SetStatus.ACTIVE


# --------------------------------------------------------------------------- production


def activated(**kwargs: object) -> Book:
    book = Book(**kwargs)  # type: ignore[arg-type]
    book.feed(outcomes(25, 25))
    assert book.status() is SetStatus.ACTIVE
    return book


def test_production_rolling_win_rate_exactly_038_stays_active() -> None:
    book = activated()
    assert book.feed(outcomes(19, 31)) == []  # the newest 50 are these: 19/50 = 0.38
    assert book.stats.window_measures(np.array([0]), 50).win_rate[0] == 0.38
    assert book.status() is SetStatus.ACTIVE


def test_production_rolling_win_rate_below_038_pauses() -> None:
    book = activated()
    (transition,) = book.feed(outcomes(18, 32))  # 18/50 = 0.36
    assert (transition.old, transition.new, transition.rule) == (
        SetStatus.ACTIVE,
        SetStatus.PAUSED,
        Rule.PRODUCTION_PAUSE,
    )
    assert transition.measures["rolling_win_rate"] == 0.36
    assert transition.thresholds == {"pause_win_rate": 0.38, "pause_max_drawdown": 0.30}
    assert book.may_open()  # paused sets keep simulating so they can recover (D10)
    assert not book.evaluator.promotable(np.array([0]))[0]


def test_the_production_rule_is_not_applied_at_fifty_itself() -> None:
    book = Book()
    (transition,) = book.feed(outcomes(23, 27, win=2.0, loss=-1.0))
    assert transition.new is SetStatus.ACTIVE  # no production check at exactly 50 closes


def drawdown_run(loss_pnl: float) -> tuple[list[float], list[float]]:
    """50 results (win rate 0.5) whose newest-50 equity peaks at 1.25 and then falls by
    ``3 × loss_pnl``: max drawdown = 3·loss/1.25 (0.375 → exactly 0.30)."""
    results = [WIN, LOSS] * 22 + [WIN, WIN, WIN, LOSS, LOSS, LOSS]
    pnl = [0.0] * 44 + [0.125, 0.0625, 0.0625, -loss_pnl, -loss_pnl, -loss_pnl]
    return results, pnl


def test_production_drawdown_of_exactly_030_stays_active() -> None:
    book = activated()
    results, pnl = drawdown_run(0.125)
    assert book.feed(results, pnl=pnl) == []
    measures = book.stats.window_measures(np.array([0]), 50)
    assert measures.max_drawdown[0] == 0.30
    assert book.status() is SetStatus.ACTIVE


def test_production_drawdown_above_030_pauses() -> None:
    book = activated()
    results, pnl = drawdown_run(0.1875)  # 0.5625 / 1.25 = 0.45
    (transition,) = book.feed(results, pnl=pnl)
    assert transition.rule is Rule.PRODUCTION_PAUSE
    assert transition.measures["rolling_max_drawdown"] == pytest.approx(0.45)
    assert transition.measures["rolling_win_rate"] == 0.5


# --------------------------------------------------------------------------- resume (D10)


def paused_at_fifty(**kwargs: object) -> Book:
    book = Book(**kwargs)  # type: ignore[arg-type]
    book.feed(outcomes(20, 30))  # 0.40 at 50 → paused
    assert book.status() is SetStatus.PAUSED
    return book


@pytest.mark.parametrize(("wins", "expected"), [(43, SetStatus.ACTIVE), (42, SetStatus.PAUSED)])
def test_a_paused_set_resumes_at_rolling_win_rate_043(wins: int, expected: SetStatus) -> None:
    """0.43 needs a window of 100 to be exact: 43/100."""
    book = paused_at_fifty(thresholds=EvaluationThresholds(rolling_window=100), window=100)
    transitions = book.feed(outcomes(wins - 20, 50 - (wins - 20)))  # 100 closes, ``wins`` wins in all
    assert book.stats.window_measures(np.array([0]), 100).win_rate[0] == wins / 100
    assert book.status() is expected
    if expected is SetStatus.ACTIVE:
        (transition,) = transitions
        assert (transition.old, transition.new, transition.rule) == (
            SetStatus.PAUSED,
            SetStatus.ACTIVE,
            Rule.RESUME,
        )
        assert transition.thresholds["resume_win_rate"] == 0.43
    else:
        assert transitions == []


def test_a_set_paused_in_this_batch_does_not_resume_in_the_same_batch() -> None:
    book = Book()
    book.feed(outcomes(20, 29))
    transitions = book.feed([LOSS] + [WIN] * 10)  # paused at 50, then 30/60 → 0.6 rolling
    assert [t.rule for t in transitions] == [Rule.PHASE2_PAUSE]
    (transition,) = book.feed([WIN])
    assert transition.rule is Rule.RESUME


def test_resume_waits_while_the_drawdown_would_pause_it_again() -> None:
    book = paused_at_fifty()
    results, pnl = drawdown_run(0.1875)  # win rate 0.5 ≥ 0.43 but drawdown 0.45 > 0.30
    assert book.feed(results, pnl=pnl) == []
    assert book.status() is SetStatus.PAUSED


# --------------------------------------------------------------------------- many sets at once


def test_one_batch_evaluates_every_touched_set() -> None:
    book = Book(n_sets=4)
    book.feed(outcomes(22, 27), set_index=2)
    book.feed(outcomes(22, 27), set_index=3)
    set_index = [0] * 10 + [1] * 10 + [2] + [3]
    results = outcomes(3, 7) + outcomes(5, 5) + [WIN] + [LOSS]
    transitions = book.evaluator.evaluate(
        book.stats.apply(closed(set_index, results, closed_ms=list(range(100_000, 100_022))))
    )
    assert sorted((t.set_index, t.new) for t in transitions) == [
        (0, SetStatus.FAILED),
        (2, SetStatus.ACTIVE),
        (3, SetStatus.PAUSED),
    ]
    assert book.evaluator.statuses(np.arange(4)) == [
        SetStatus.FAILED,
        SetStatus.EVALUATING,
        SetStatus.ACTIVE,
        SetStatus.PAUSED,
    ]
    assert book.evaluator.may_open(np.arange(4)).tolist() == [False, True, True, True]
    assert book.evaluator.promotable(np.arange(4)).tolist() == [False, True, True, False]


def _passes(check: Callable[[F8, float], BOOL], value: float, threshold: float) -> bool:
    return bool(check(np.array([value]), threshold)[0])


class ReferenceEvaluator:
    """§2.5/D10 as prose, one set at a time, from each set's full list of results."""

    def __init__(self, n_sets: int, th: EvaluationThresholds) -> None:
        self.th = th
        self.status = [SetStatus.EVALUATING] * n_sets
        self.history: list[list[tuple[float, float, int]]] = [[] for _ in range(n_sets)]

    def may_open(self, s: int) -> bool:
        results = [r for r, _, _ in self.history[s]]
        gated = (
            self.status[s] is SetStatus.EVALUATING
            and len(results) >= self.th.phase1_closes
            and not _passes(at_least, sum(r > 0 for r in results) / len(results), self.th.min_win_rate)
        )
        return self.status[s] is not SetStatus.FAILED and not gated

    def feed(
        self, batch: list[tuple[int, float, float, int]]
    ) -> list[tuple[int, SetStatus, SetStatus, Rule]]:
        th = self.th
        touched = sorted({s for s, _, _, _ in batch})
        before = {s: len(self.history[s]) for s in touched}
        for s, result, pnl, at_ms in sorted(batch, key=lambda e: (e[0], e[3])):  # stable: ties keep order
            self.history[s].append((result, pnl, at_ms))
        old = {s: self.status[s] for s in touched}
        phase1, phase2, rolling = [], [], []
        for s in touched:
            results = [r for r, _, _ in self.history[s]]
            if self.status[s] is SetStatus.EVALUATING and before[s] < th.phase1_closes <= len(results):
                first = results[: th.phase1_closes]
                if _passes(below, sum(r > 0 for r in first) / len(first), th.min_win_rate):
                    self.status[s] = SetStatus.FAILED
                    phase1.append((s, SetStatus.EVALUATING, SetStatus.FAILED, Rule.PHASE1_WIN_RATE))
            if self.status[s] is SetStatus.EVALUATING and before[s] < th.phase2_closes <= len(results):
                first = results[: th.phase2_closes]
                wins = [r for r in first if r > 0]
                losses = [-r for r in first if r < 0]
                if wins and losses:
                    payoff = (sum(wins) / len(wins)) / (sum(losses) / len(losses))
                else:
                    payoff = math.inf if wins else 0.0
                activate = _passes(at_least, len(wins) / len(first), th.activate_win_rate) and _passes(
                    at_least, payoff, th.activate_payoff
                )
                self.status[s] = SetStatus.ACTIVE if activate else SetStatus.PAUSED
                rule = Rule.PHASE2_ACTIVATE if activate else Rule.PHASE2_PAUSE
                phase2.append((s, SetStatus.EVALUATING, self.status[s], rule))
            production = self.status[s] is SetStatus.ACTIVE and len(results) > th.phase2_closes
            resumable = old[s] is SetStatus.PAUSED and self.status[s] is SetStatus.PAUSED
            if production or resumable:
                window = reference_window(self.history[s], th.rolling_window)
                win_rate = window["wins"] / window["results"]
                would_pause = _passes(below, win_rate, th.pause_win_rate) or _passes(
                    above, window["max_dd"], th.pause_max_drawdown
                )
                if production and would_pause:
                    self.status[s] = SetStatus.PAUSED
                    rolling.append((s, SetStatus.ACTIVE, SetStatus.PAUSED, Rule.PRODUCTION_PAUSE))
                elif resumable and _passes(at_least, win_rate, th.resume_win_rate) and not would_pause:
                    self.status[s] = SetStatus.ACTIVE
                    rolling.append((s, SetStatus.PAUSED, SetStatus.ACTIVE, Rule.RESUME))
        return phase1 + phase2 + rolling


# Few sets and long batches, so one batch can carry a set across both milestones; results and pnl
# (drawn apart, pnl in 1/32 so every sum is exact) are large enough for the rolling drawdown rule
# to matter both alone and together with the win rate.
SMALL = EvaluationThresholds(phase1_closes=3, phase2_closes=8, rolling_window=6)
N_EVALUATED = 4
evaluation_entry = st.tuples(
    st.integers(0, N_EVALUATED - 1),
    st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]),
    st.sampled_from([-8, -4, -1, 0, 1, 4]).map(lambda k: k / 32),
    st.integers(0, 2),  # close time within the batch: ties
)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(evaluation_entry, min_size=0, max_size=30), min_size=1, max_size=12))
def test_many_sets_over_many_batches_follow_the_rules_as_written(
    batches: list[list[tuple[int, float, float, int]]],
) -> None:
    """The vectorised evaluator (which skips the rules no set is subject to) against the rules
    applied set by set: transitions in order, statuses and the may-open gate after every batch."""
    stats = SetStats(N_EVALUATED, window=6, milestones=(SMALL.phase1_closes, SMALL.phase2_closes))
    evaluator = SetEvaluator(stats, SMALL)
    reference = ReferenceEvaluator(N_EVALUATED, SMALL)
    everyone = np.arange(N_EVALUATED)
    for number, entries in enumerate(batches):
        batch = [(s, r, pnl, number * 10 + t) for s, r, pnl, t in entries]
        transitions = evaluator.evaluate(
            stats.apply(
                closed(
                    [e[0] for e in batch],
                    [e[1] for e in batch],
                    pnl=[e[2] for e in batch],
                    closed_ms=[e[3] for e in batch],
                )
            )
        )
        assert [(t.set_index, t.old, t.new, t.rule) for t in transitions] == reference.feed(batch)
        assert evaluator.statuses(everyone) == reference.status
        assert evaluator.may_open(everyone).tolist() == [reference.may_open(s) for s in range(N_EVALUATED)]
        mixed = [3, 0, 3, 1]
        assert evaluator.may_open(np.array(mixed)).tolist() == [reference.may_open(s) for s in mixed]


def test_thresholds_are_parameters() -> None:
    strict = Book(thresholds=EvaluationThresholds(min_win_rate=0.5))
    (transition,) = strict.feed(outcomes(4, 6))
    assert transition.new is SetStatus.FAILED and transition.thresholds == {"min_win_rate": 0.5}
    with pytest.raises(ValueError):
        EvaluationThresholds(phase1_closes=50, phase2_closes=10)
    with pytest.raises(ValueError, match="exceeds"):
        SetEvaluator(SetStats(1, window=10), EvaluationThresholds())
    with pytest.raises(ValueError, match="milestones"):
        SetEvaluator(SetStats(1, milestones=(10, 60)), EvaluationThresholds())


def test_restore_puts_back_stored_statuses() -> None:
    book = Book(n_sets=3)
    book.evaluator.restore(np.array([0, 2]), ["failed", "paused"])
    assert book.evaluator.statuses(np.arange(3)) == [SetStatus.FAILED, SetStatus.EVALUATING, SetStatus.PAUSED]
    assert book.evaluator.evaluate(book.stats.apply(closed([], []))) == []
