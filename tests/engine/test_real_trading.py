"""Main → Real → Exchange selection and the order intent a candidate becomes."""

from __future__ import annotations

import numpy as np
import pytest

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import OrderSide, OrderType, PositionSide
from cts_desktop.engine.pseudo.grid import MAIN_GRID
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline, SetKey, TickOutcome
from cts_desktop.engine.pseudo.promotion import PromotionDecision, PromotionStep, base_to_main
from cts_desktop.engine.real_trading import RealCandidate, RealSelector, build_intent
from tests.engine.markets import BTC_SWAP
from tests.engine.pseudo.test_stats import closed

BTC = BTC_SWAP


def _row(tp: float, sl: float, trailing: int) -> int:
    match = (MAIN_GRID.tp_factor == tp) & (MAIN_GRID.sl_ratio == sl) & (MAIN_GRID.trailing == trailing)
    return int(np.flatnonzero(match)[0])


def promoted_pipeline(
    results: list[float], rows: list[int], direction: int = 1
) -> tuple[PseudoPipeline, int]:
    """A pipeline whose block has ``results`` closed for each of ``rows``."""
    pipeline = PseudoPipeline()
    start = pipeline.registry.block(
        SetKey(BTC.symbol, "direction-5", None, direction), len(MAIN_GRID), MAIN_GRID
    )
    pipeline.stats.ensure(len(pipeline.registry))
    sets = [start + row for row in rows]
    index = [s for s in sets for _ in results]
    values = [r for _ in sets for r in results]
    times = list(range(len(index)))
    batch = closed(index, values, closed_ms=[1000 * t for t in times])
    pipeline.stats.apply(batch)
    return pipeline, start


GOOD = [1.0] * 48 + [4.0, -2.0]  # 50 closes, average 1.0 step in every window, a win and a loss


def test_a_set_proven_at_every_level_becomes_a_candidate_with_its_reason() -> None:
    row = _row(4.0, 1.0, 0)
    pipeline, start = promoted_pipeline(GOOD, [row])
    selector = RealSelector(pipeline)
    evaluation = base_to_main(pipeline.stats, np.asarray([start + row]), pipeline.thresholds)
    assert evaluation.eligible.all()
    selector.on_outcome(TickOutcome([], 0, closed([], []), decisions=_decisions(pipeline, start + row)))
    (candidate,) = selector.candidates()
    assert (candidate.set_index, candidate.symbol, candidate.direction) == (start + row, BTC.symbol, 1)
    assert (candidate.tp_factor, candidate.sl_ratio) == (4.0, 1.0)
    assert "avg_result_steps" in candidate.reason and "strategy.real_pf_min" in candidate.reason


def _decisions(pipeline: PseudoPipeline, set_index: int) -> list[PromotionDecision]:
    return [PromotionDecision(PromotionStep.BASE_TO_MAIN, set_index, None, True, 50, ())]


def test_weak_sets_trailing_sets_and_held_sets_are_not_candidates() -> None:
    plain, trailing = _row(4.0, 1.0, 0), _row(4.0, 1.0, 2)
    pipeline, start = promoted_pipeline(GOOD, [plain, trailing])
    weak_pipeline, weak_start = promoted_pipeline([0.5] * 48 + [3.0, -2.0], [plain])
    selector = RealSelector(pipeline)
    selector.on_outcome(
        TickOutcome(
            [],
            0,
            closed([], []),
            decisions=_decisions(pipeline, start + plain) + _decisions(pipeline, start + trailing),
        )
    )
    assert [c.set_index for c in selector.candidates()] == [start + plain]  # trailing is never sent
    selector.mark_holding(start + plain, "ctsentry1")
    assert selector.holding == {start + plain: "ctsentry1"}
    assert selector.candidates() == []
    selector.release(start + plain)
    assert len(selector.candidates()) == 1

    weak = RealSelector(weak_pipeline)
    weak.on_outcome(
        TickOutcome([], 0, closed([], []), decisions=_decisions(weak_pipeline, weak_start + plain))
    )
    assert weak.candidates() == []  # average 0.55 steps < 0.6 in the windows


def test_a_demoted_set_leaves_main() -> None:
    row = _row(4.0, 1.0, 0)
    pipeline, start = promoted_pipeline(GOOD, [row])
    selector = RealSelector(pipeline)
    selector.on_outcome(TickOutcome([], 0, closed([], []), decisions=_decisions(pipeline, start + row)))
    assert selector.main_sets == {start + row}
    demoted = PromotionDecision(PromotionStep.BASE_TO_MAIN, start + row, None, False, 60, ())
    selector.on_outcome(TickOutcome([], 0, closed([], []), decisions=[demoted]))
    assert selector.candidates() == [] and selector.main_sets == frozenset()


@pytest.mark.parametrize(
    ("direction", "side", "position_side"),
    [(1, OrderSide.BUY, PositionSide.LONG), (-1, OrderSide.SELL, PositionSide.SHORT)],
)
def test_the_intent_carries_step_model_tp_and_sl_on_the_tick_grid(
    direction: int, side: OrderSide, position_side: PositionSide
) -> None:
    candidate = RealCandidate(7, BTC.symbol, direction, tp_factor=4.0, sl_ratio=0.5, reason="proven")
    intent = build_intent(
        candidate,
        connection_id="c-1",
        mode=TradingMode.PAPER,
        price=60_000.03,
        amount=0.002,
        market=BTC,
        leverage=10,
        position_cost_pct=0.1,
        hedged=True,
    )
    # One step = 0.1 % of 60,000.03 = 60.00003; TP 4 steps = 240.00012; SL half of that.
    assert (intent.side, intent.type, intent.position_side) == (side, OrderType.MARKET, position_side)
    assert intent.take_profit == pytest.approx(60_000.03 + direction * 240.00012, abs=0.05)
    assert intent.stop_loss == pytest.approx(60_000.03 - direction * 120.00006, abs=0.05)
    for price in (intent.take_profit, intent.stop_loss):
        assert price is not None and round(price * 10) == pytest.approx(price * 10, abs=1e-6)
    assert (intent.amount, intent.reference_price, intent.leverage, intent.reason) == (
        0.002,
        60_000.03,
        10,
        "proven",
    )
    one_way = build_intent(
        candidate, connection_id="c-1", mode=TradingMode.PAPER, price=100.0, amount=1.0, market=BTC,
        leverage=1, position_cost_pct=0.1, hedged=False,
    )  # fmt: skip
    assert one_way.position_side is None
