"""Promotion Base → Main → Real → Exchange: boundaries, settings keys, and the audit trail's reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cts_desktop.domain.settings_schema import SPEC_BY_KEY, SettingValidationError, defaults
from cts_desktop.engine.pseudo.promotion import (
    BASE_PF_KEY,
    DEMOTE_ACTION,
    MAIN_PF_KEY,
    MAX_DRAWDOWN_TIME_KEY,
    PROMOTE_ACTION,
    REAL_PF_KEY,
    PromotionStep,
    PromotionThresholds,
    PromotionTracker,
    base_to_main,
    main_to_real,
    real_to_exchange,
    record_decisions,
)
from cts_desktop.engine.pseudo.stats import SetStats
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories import AuditRepository
from tests.engine.pseudo.test_stats import closed, one_set

HOUR_MS = 3_600_000
TH = PromotionThresholds()


def stats_with(*runs: list[float], window: int = 50) -> SetStats:
    stats = SetStats(len(runs), window=window)
    for index, results in enumerate(runs):
        stats.apply(one_set(results, set_index=index))
    return stats


def averaging(n: int, average: float) -> list[float]:
    """``n`` results whose every newest window of 2 or more has mean ``average`` (in decimal), with
    a win and a loss among them for any ``0 < average < 3``."""
    return [average] * (n - 2) + [average + 3.0, average - 3.0]


# --------------------------------------------------------------------------- settings


def test_every_settings_key_exists_in_the_registry() -> None:
    for key in (BASE_PF_KEY, MAIN_PF_KEY, REAL_PF_KEY, MAX_DRAWDOWN_TIME_KEY):
        assert key in SPEC_BY_KEY


def test_thresholds_come_from_the_settings() -> None:
    assert PromotionThresholds.from_settings(defaults()) == PromotionThresholds(
        base_min_avg_steps=0.6, main_min_avg_steps=0.6, real_min_avg_steps=0.6, max_drawdown_time_h=24.0
    )
    custom = PromotionThresholds.from_settings(
        {BASE_PF_KEY: 0.8, MAIN_PF_KEY: 1.1, REAL_PF_KEY: 1.5, MAX_DRAWDOWN_TIME_KEY: 6}
    )
    assert (custom.base_min_avg_steps, custom.main_min_avg_steps, custom.real_min_avg_steps) == (
        0.8,
        1.1,
        1.5,
    )
    assert custom.max_drawdown_time_h == 6.0
    assert PromotionThresholds.from_settings({}) == PromotionThresholds()  # registry defaults
    with pytest.raises(SettingValidationError, match=BASE_PF_KEY):
        PromotionThresholds.from_settings({BASE_PF_KEY: 5.0})


def test_a_setting_changes_the_outcome() -> None:
    stats = stats_with(averaging(20, 0.7))
    assert base_to_main(stats, np.array([0]), PromotionThresholds.from_settings({})).eligible[0]
    strict = PromotionThresholds.from_settings({BASE_PF_KEY: 0.8})
    assert not base_to_main(stats, np.array([0]), strict).eligible[0]


# --------------------------------------------------------------------------- base → main


def test_base_to_main_boundaries() -> None:
    stats = stats_with(
        averaging(9, 3.0),  # 9 closes: too few
        averaging(10, 0.6),  # 10 closes, avg exactly 0.6: eligible
        averaging(10, 0.59),  # just below
        [1.0] * 10,  # no loss
        [-1.0] * 10,  # no win
        averaging(11, 0.6),
    )
    result = base_to_main(stats, np.arange(6), TH)
    assert result.eligible.tolist() == [False, True, False, False, False, True]
    assert result.step is PromotionStep.BASE_TO_MAIN


def test_base_to_main_reads_the_newest_evaluation_count_1_results() -> None:
    stats = stats_with([-3.0, 3.0] * 20 + averaging(25, 0.8))  # old results averaged 0, newest 25 = 0.8
    assert stats.total_measures(np.array([0])).avg_result_steps[0] < 0.6
    assert base_to_main(stats, np.array([0]), TH).eligible[0]


def test_base_to_main_respects_the_evaluators_status() -> None:
    stats = stats_with(averaging(12, 1.0), averaging(12, 1.0))
    result = base_to_main(stats, np.array([0, 1]), TH, allowed=np.array([True, False]))
    assert result.eligible.tolist() == [True, False]
    assert [c.name for c in result.criteria(1) if not c.passed] == ["status allows promotion (1 = yes)"]


# --------------------------------------------------------------------------- main → real


def main_stats(results: list[list[float]], *, underwater_hours: list[float] | None = None) -> SetStats:
    """Main sets whose results close a minute apart; with ``underwater_hours``, the 10th-newest
    close drops equity below its peak and the next one, that many hours later, regains it."""
    stats = SetStats(len(results), window=50)
    for index, run in enumerate(results):
        n = len(run)
        gaps = np.full(n, 60_000, dtype=np.int64)
        pnl = np.zeros(n)
        if underwater_hours is not None:
            k = n - 10
            pnl[k], pnl[k + 1] = -0.125, 0.125
            gaps[k + 1] = int(underwater_hours[index] * HOUR_MS)
        stats.apply(closed([index] * n, run, pnl=pnl.tolist(), closed_ms=np.cumsum(gaps).tolist()))
    return stats


def test_main_to_real_needs_evaluation_count_1_closes_at_the_main_minimum() -> None:
    stats = main_stats([averaging(24, 2.0), averaging(25, 0.6), averaging(25, 0.59), averaging(26, 0.6)])
    assert main_to_real(stats, np.arange(4), TH).eligible.tolist() == [False, True, False, True]


def test_main_to_real_uses_both_windows_once_fifty_closes_exist() -> None:
    good_recent = [-1.0] * 25 + averaging(25, 1.0)  # newest 25 average 1.0, newest 50 average 0.0
    both_good = averaging(25, 0.6) + averaging(25, 0.6)
    stats = main_stats([good_recent, both_good])
    result = main_to_real(stats, np.array([0, 1]), TH)
    assert result.eligible.tolist() == [False, True]
    failing = {c.name for c in result.criteria(0) if not c.passed}
    assert failing == {"avg_result_steps over newest 50"}
    young = main_to_real(main_stats([averaging(30, 0.7)]), np.array([0]), TH)
    assert "avg_result_steps over newest 50" not in {c.name for c in young.criteria(0)}


@pytest.mark.parametrize(("hours", "eligible"), [(23.0, True), (24.0, True), (24.5, False)])
def test_main_to_real_drawdown_time_at_the_maximum(hours: float, eligible: bool) -> None:
    stats = main_stats([averaging(30, 0.8)], underwater_hours=[hours])
    result = main_to_real(stats, np.array([0]), TH)
    (criterion,) = [c for c in result.criteria(0) if c.name == "drawdown time (h)"]
    assert criterion.value == hours and criterion.threshold == 24.0
    assert criterion.setting == MAX_DRAWDOWN_TIME_KEY
    assert bool(result.eligible[0]) is eligible


def test_real_to_exchange_uses_the_real_minimum() -> None:
    stats = stats_with(averaging(25, 0.9), averaging(25, 0.6))
    th = PromotionThresholds.from_settings({REAL_PF_KEY: 0.9})
    assert real_to_exchange(stats, np.array([0, 1]), th).eligible.tolist() == [True, False]
    (avg,) = [c for c in real_to_exchange(stats, np.array([1]), th).criteria(0) if c.setting == REAL_PF_KEY]
    assert avg.threshold == 0.9 and not avg.passed


def test_windows_must_fit_the_stats_ring() -> None:
    with pytest.raises(ValueError, match="ring"):
        main_to_real(SetStats(1, window=25), np.array([0]), TH)


# --------------------------------------------------------------------------- decisions and audit


def test_decisions_are_made_only_when_eligibility_changes() -> None:
    stats = stats_with(averaging(10, 0.7), averaging(10, 0.1))
    tracker = PromotionTracker()
    ids = ["set-a", "set-b"]
    (decision,) = tracker.update(base_to_main(stats, np.array([0, 1]), TH), ids)
    assert decision.promoted and decision.set_id == "set-a" and decision.action == PROMOTE_ACTION
    assert tracker.update(base_to_main(stats, np.array([0, 1]), TH), ids) == []  # still eligible: silent
    assert tracker.is_eligible(PromotionStep.BASE_TO_MAIN, np.array([0, 1, 7])).tolist() == [
        True,
        False,
        False,
    ]
    stats.apply(one_set([-5.0] * 10, start_ms=100_000))
    (demotion,) = tracker.update(base_to_main(stats, np.array([0]), TH), ids)
    assert not demotion.promoted and demotion.action == DEMOTE_ACTION
    assert "no longer eligible" in demotion.reason()
    assert "avg_result_steps over newest 25" in demotion.reason()


def test_the_reason_names_every_number_and_threshold() -> None:
    stats = stats_with(averaging(12, 0.75))
    (decision,) = PromotionTracker().update(base_to_main(stats, np.array([0]), TH), ["set-a"])
    reason = decision.reason()
    assert reason.startswith("base → main promoted at 12 closes")
    assert "closes 12 >= 10" in reason
    assert "wins 11 > 0" in reason and "losses 1 > 0" in reason
    assert "avg_result_steps over newest 25 0.75 >= 0.6 (strategy.base_pf_min)" in reason


@pytest.mark.asyncio
async def test_promotions_are_written_to_the_audit_log(tmp_path: Path) -> None:
    database = await Database.open(str(tmp_path / "audit.db"))
    try:
        stats = main_stats([averaging(30, 0.8)], underwater_hours=[2.0])
        th = PromotionThresholds.from_settings({MAIN_PF_KEY: 0.7, MAX_DRAWDOWN_TIME_KEY: 12})
        decisions = PromotionTracker().update(main_to_real(stats, np.array([0]), th), ["set-main-1"])
        audit = AuditRepository(database)
        await record_decisions(audit, decisions, connection_id="conn-1")
        (entry,) = await audit.recent()
    finally:
        await database.close()
    assert (entry.actor, entry.action, entry.entity_type, entry.entity_id) == (
        "system",
        "pseudo.promote",
        "pseudo_set",
        "set-main-1",
    )
    assert entry.connection_id == "conn-1"
    assert "main → real promoted at 30 closes" in entry.reason
    assert "avg_result_steps over newest 25 0.8 >= 0.7 (strategy.main_pf_min)" in entry.reason
    assert "drawdown time (h) 2 <= 12 (strategy.max_drawdown_time_h)" in entry.reason
    assert entry.before == {"step": "main_to_real", "level": "main", "eligible_for_real": False}
    assert entry.after is not None
    assert entry.after["level"] == "real" and entry.after["eligible_for_real"] is True
    assert entry.after["measures"]["avg_result_steps over newest 25"] == pytest.approx(0.8)
    assert entry.after["measures"]["drawdown time (h)"] == 2.0
    assert entry.after["thresholds"]["avg_result_steps over newest 25"] == {
        "comparison": ">=",
        "threshold": 0.7,
        "setting": "strategy.main_pf_min",
    }
    assert entry.after["thresholds"]["drawdown time (h)"]["threshold"] == 12.0
