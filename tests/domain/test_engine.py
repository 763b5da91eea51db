"""The desk's trading mode derived from engine snapshots (status bar, selftest)."""

from __future__ import annotations

import pytest

from cts_desktop.domain.engine import EngineSnapshot, desk_mode
from cts_desktop.domain.enums import EngineState, TradingMode

S = EngineState


def snap(state: EngineState, mode: TradingMode) -> EngineSnapshot:
    return EngineSnapshot(f"c-{state}-{mode}", "Desk", "bybit", state, mode)


@pytest.mark.parametrize("state", list(S))
def test_a_live_engine_makes_the_desk_live_only_while_it_is_up(state: EngineState) -> None:
    up = state in (S.STARTING, S.RUNNING, S.PAUSED, S.STOPPING)
    paper = snap(S.RUNNING, TradingMode.PAPER)
    expected = TradingMode.LIVE if up else TradingMode.PAPER
    assert desk_mode([paper, snap(state, TradingMode.LIVE)]) is expected


def test_no_engines_or_only_paper_ones_is_paper() -> None:
    assert desk_mode([]) is TradingMode.PAPER
    assert desk_mode([snap(s, TradingMode.PAPER) for s in S]) is TradingMode.PAPER
