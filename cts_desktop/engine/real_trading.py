"""Main → Real → Exchange: which proven configurations become order intents (DOMAIN §2.6, D11, D13).

The pipeline decides Base → Main on every close; this module takes the sets that reached Main and
asks, once per order-loop cycle, the two remaining questions on the same set statistics:

* **Main → Real** (:func:`~cts_desktop.engine.pseudo.promotion.main_to_real`): both evaluation
  windows above ``strategy.main_pf_min`` and the time below a previous peak within
  ``strategy.max_drawdown_time_h``;
* **Real → Exchange** (:func:`~cts_desktop.engine.pseudo.promotion.real_to_exchange`): both windows
  above ``strategy.real_pf_min``.

Simplification, stated plainly: Main and Real are judged on the configuration set's own pseudo
results (the set is the unit that is promoted), not on a separate book of main-level entries.
A set holds at most one real position at a time (it is released when that position closes).

Trailing configurations are not sent to an exchange: with trailing on, the target is not a hard
exit (D4) and no venue of ours can attach a trailing exit measured in TP distances, so such a
position would have only its stop. They keep being simulated and promoted; they just never
become orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import MarketInfo, OrderSide, OrderType, PositionSide
from cts_desktop.domain.orders import OrderIntent
from cts_desktop.engine.pseudo.geometry import LONG, exit_levels
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline, TickOutcome
from cts_desktop.engine.pseudo.promotion import PromotionStep, main_to_real, real_to_exchange


@dataclass(frozen=True, slots=True)
class RealCandidate:
    """A configuration set that passed Main → Real and Real → Exchange, with the reason why."""

    set_index: int
    symbol: str
    direction: int
    tp_factor: float
    sl_ratio: float
    reason: str


class RealSelector:
    """Tracks the Main sets of one pipeline and picks those ready for a real position."""

    def __init__(self, pipeline: PseudoPipeline) -> None:
        self._pipeline = pipeline
        self._main: set[int] = set()
        self._holding: dict[int, str] = {}  # set index → client order id of its real entry

    @property
    def main_sets(self) -> frozenset[int]:
        return frozenset(self._main)

    def on_outcome(self, outcome: TickOutcome) -> None:
        """Follow the Base → Main decisions of a tick (promoted sets join Main, demoted ones leave)."""
        for decision in outcome.decisions:
            if decision.step is not PromotionStep.BASE_TO_MAIN:
                continue
            if decision.promoted:
                self._main.add(decision.set_index)
            else:
                self._main.discard(decision.set_index)

    @property
    def holding(self) -> dict[int, str]:
        """Set index → client order id of the entry of every set that holds a real position."""
        return dict(self._holding)

    def mark_holding(self, set_index: int, client_order_id: str) -> None:
        """A real position (or its entry order) exists for this set: no second one."""
        self._holding[set_index] = client_order_id

    def release(self, set_index: int) -> None:
        """The set's real position closed (or its entry failed): it may trade again."""
        self._holding.pop(set_index, None)

    def candidates(self) -> list[RealCandidate]:
        """Main sets without a real position that pass both remaining steps, oldest set first."""
        waiting = sorted(self._main - self._holding.keys())
        if not waiting:
            return []
        pipeline = self._pipeline
        sets = np.asarray(waiting, dtype=np.int64)
        to_real = main_to_real(pipeline.stats, sets, pipeline.thresholds)
        to_exchange = real_to_exchange(pipeline.stats, sets, pipeline.thresholds)
        ready = np.flatnonzero(to_real.eligible & to_exchange.eligible)
        found: list[RealCandidate] = []
        for row in ready.tolist():
            set_index = int(sets[row])
            location = pipeline.registry.locate(set_index)
            grid = location.grid
            if grid is None or int(grid.trailing[location.row]) != 0:
                continue  # trailing exits cannot be attached on a venue (module docstring)
            criteria = to_real.criteria(row) + to_exchange.criteria(row)
            found.append(
                RealCandidate(
                    set_index=set_index,
                    symbol=location.key.symbol,
                    direction=location.key.direction,
                    tp_factor=float(grid.tp_factor[location.row]),
                    sl_ratio=float(grid.sl_ratio[location.row]),
                    reason=f"set {pipeline.registry.describe(set_index)}: "
                    + "; ".join(c.describe() for c in criteria),
                )
            )
        return found


def _round_to_step(price: float, step: float | None) -> float:
    """The nearest price on the tick grid, in decimal arithmetic (no 0.30000000000000004)."""
    if not step:
        return price
    tick = Decimal(repr(step))
    return float((Decimal(repr(price)) / tick).to_integral_value(ROUND_HALF_EVEN) * tick)


def build_intent(
    candidate: RealCandidate,
    *,
    connection_id: str,
    mode: TradingMode,
    price: float,
    amount: float,
    market: MarketInfo,
    leverage: float,
    position_cost_pct: float,
    hedged: bool,
) -> OrderIntent:
    """A market entry for ``candidate`` with its TP and SL attached, as prices on the tick grid.

    TP and SL come from the same step geometry as the pseudo book (D3), at the price the intent
    is formed; ``amount`` is already sized and rounded (``engine.sizing``)."""
    take_profit, stop_loss = exit_levels(
        price, candidate.direction, candidate.tp_factor, candidate.sl_ratio, position_cost_pct
    )
    is_long = candidate.direction == LONG
    return OrderIntent(
        connection_id=connection_id,
        symbol=candidate.symbol,
        side=OrderSide.BUY if is_long else OrderSide.SELL,
        type=OrderType.MARKET,
        amount=amount,
        reference_price=price,
        mode=mode,
        contract_size=market.contract_size,
        leverage=leverage,
        position_side=(PositionSide.LONG if is_long else PositionSide.SHORT) if hedged else None,
        take_profit=_round_to_step(float(take_profit), market.price_step),
        stop_loss=_round_to_step(float(stop_loss), market.price_step),
        reason=candidate.reason,
    )
