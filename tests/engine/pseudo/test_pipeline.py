"""The compute core end to end: a real Direction signal opens a whole grid block in the book, its
closes reach the set statistics, the phase rules and promotion, and pause stops new entries only."""

import numpy as np

from cts_desktop.engine.pseudo.grid import MAIN_GRID
from cts_desktop.engine.pseudo.pipeline import PseudoPipeline, SetKey, SetRegistry

ONLY_DIRECTION = {
    "indication.market_activity_enabled": False,
    "indication.move_enabled": False,
    "indication.active_enabled": False,
    "indication.optimal_enabled": False,
    "indication.range_min": 3,
    "indication.range_max": 3,
    "indication.direction_threshold_pct": 0.0,
}


def _falling_then(pipeline: PseudoPipeline, after: list[float], t0: int = 1_000_000) -> list:
    """Three one-second down steps (Direction r=3 → long), then the given prices, 1 s apart."""
    outcomes = []
    prices = [100.0, 99.9, 99.8, 99.7, 99.6, *after]
    for i, price in enumerate(prices):
        outcomes.append(pipeline.on_tick("BTC/USDT", price, t0 + i * 1000))
    return outcomes


def test_a_signal_opens_every_configuration_and_closes_feed_the_statistics() -> None:
    pipeline = PseudoPipeline(ONLY_DIRECTION)
    outcomes = _falling_then(pipeline, [99.6, 99.6])
    fired = [o for o in outcomes if o.signals]
    assert fired, "three down steps must fire Direction long"
    signal = fired[0].signals[0]
    assert signal.direction == 1
    assert fired[0].opened == len(MAIN_GRID) == 924
    assert pipeline.book.open_count("BTC/USDT") >= 924
    assert len(pipeline.registry) >= 924
    # A rise of 3 % closes every configuration (the largest target is 22 steps of 0.1 % = 2.2 %;
    # the trailing ones exit on the retrace that follows).
    entry = signal.price
    t = outcomes and 1_000_000 + len(outcomes) * 1000
    closed = 0
    for i, price in enumerate([entry * 1.03, entry * 1.03, entry * 0.5]):
        closed += len(pipeline.on_tick("BTC/USDT", price, t + i * 1000).closed)
    assert closed >= 924
    counts = pipeline.stats.count[: len(pipeline.registry)]
    assert counts.sum() == closed
    assert pipeline.registry.describe(0).startswith(signal.state_key)


def test_pause_stops_new_entries_but_keeps_monitoring() -> None:
    pipeline = PseudoPipeline(ONLY_DIRECTION)
    outcomes = _falling_then(pipeline, [])
    assert sum(o.opened for o in outcomes) == 924
    pipeline.accepting_new = False
    later = _falling_then(pipeline, [], t0=2_000_000)
    assert any(o.signals for o in later)  # indications still run
    assert sum(o.opened for o in later) == 0  # but nothing new opens
    closes = pipeline.on_tick("BTC/USDT", 200.0, 3_000_000).closed  # open entries still close
    assert len(closes) > 0


def test_repeated_triggers_respect_the_per_config_limit() -> None:
    pipeline = PseudoPipeline({**ONLY_DIRECTION, "strategy.max_positions_per_config_direction": 1})
    first = sum(o.opened for o in _falling_then(pipeline, []))
    open_after_first = pipeline.book.open_count("BTC/USDT")
    # The second path first jumps back up, closing some entries; only those sets may reopen.
    again = sum(o.opened for o in _falling_then(pipeline, [], t0=2_000_000))
    assert first == 924 and 0 < again < 924
    per_set = pipeline.book.open_count_by_set(np.arange(924, dtype=np.int64), 1)
    assert per_set.max() == 1  # never two open entries in one (set, direction)
    assert pipeline.book.open_count("BTC/USDT") <= open_after_first + again


def test_registry_blocks_are_dense_and_describable() -> None:
    registry = SetRegistry()
    a = registry.block(SetKey("BTC/USDT", "BTC/USDT-direction-3", None, 1), 924)
    b = registry.block(SetKey("BTC/USDT", "BTC/USDT-direction-3", None, -1), 924)
    assert (a, b, len(registry)) == (0, 924, 1848)
    assert registry.block(SetKey("BTC/USDT", "BTC/USDT-direction-3", None, 1), 924) == 0
    assert registry.describe(925) == "BTC/USDT-direction-3/short/config1"
