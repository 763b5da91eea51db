"""The per-symbol engine (DOMAIN §1.1, §1.6, D16) and the sampler under it: settings, enabled
flags, the activity gate, the validation lock per state key, the position cooldown."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cts_desktop.domain.settings_schema import SPEC_BY_KEY
from cts_desktop.engine.indications import (
    LONG,
    PROPOSED_SETTINGS,
    SETTING_KEYS,
    IndicationConfig,
    IndicationEngine,
    IndicationSignal,
    IndicationType,
)
from cts_desktop.engine.indications.sampler import SampleRing, TickSampler
from tests.engine.indications import segment_path, tick_path

ONLY_ACTIVE = {
    "indication.direction_enabled": False,
    "indication.move_enabled": False,
    "indication.optimal_enabled": False,
    "indication.active_advanced_enabled": False,
    "indication.market_activity_enabled": False,
}


def feed(engine: IndicationEngine, prices: list[float], start_s: int = 0) -> list[IndicationSignal]:
    """One tick per second; sample i is closed by the tick at (i + 1) s."""
    out: list[IndicationSignal] = []
    for i, price in enumerate(prices):
        out.extend(engine.on_tick(price, (start_s + i) * 1000))
    out.extend(engine.on_tick(prices[-1], (start_s + len(prices)) * 1000))
    return out


def times_of(signals: list[IndicationSignal], key: str) -> list[int]:
    return [s.ts_ms for s in signals if s.state_key == key]


# --- settings -------------------------------------------------------------------------------------


def test_defaults_come_from_the_settings_registry() -> None:
    config = IndicationConfig.from_settings({})
    for name, key in SETTING_KEYS.items():
        assert getattr(config, name) == SPEC_BY_KEY[key].default, name
    assert (config.validation_timeout_s, config.position_cooldown_ms) == (15, 100)
    assert (config.range_min, config.range_max, config.timeframe_s) == (3, 30, 1)
    assert (config.activity_range_s, config.activity_factor) == (10, 2)
    assert config.optimal_enabled is False
    assert config.direction_threshold_pct == 0.5 and config.move_threshold_pct == 0.3
    assert config.lock_ms == 15_000


def test_registry_and_proposed_keys_are_read() -> None:
    config = IndicationConfig.from_settings(
        {
            "indication.validation_timeout_s": 30,
            "indication.range_min": 5,
            "system.position_cooldown_ms": 500,
            "indication.direction_threshold_pct": 0.2,
            "indication.move_threshold_pct": 0.0,
            "indication.market_activity_min_volatility_pct": 0.0,
            "unrelated.key": 1,
        }
    )
    assert (config.validation_timeout_s, config.range_min, config.position_cooldown_ms) == (30, 5, 500)
    assert (config.direction_threshold_pct, config.move_threshold_pct) == (0.2, 0.0)
    assert config.activity_min_volatility_pct == 0.0
    assert all(key not in SPEC_BY_KEY for key, _ in PROPOSED_SETTINGS.values())
    # D6: the thresholds are registry settings with the documented defaults
    for key, default in (
        ("indication.direction_threshold_pct", 0.5),
        ("indication.move_threshold_pct", 0.3),
        ("indication.market_activity_min_volatility_pct", 0.05),
    ):
        assert SPEC_BY_KEY[key].default == default


def test_range_minimum_above_maximum_collapses_to_one_range() -> None:
    config = IndicationConfig.from_settings({"indication.range_min": 12, "indication.range_max": 8})
    assert (config.range_min, config.range_max) == (12, 12)


def test_main_engine_switch_and_trade_mode_gate_everything() -> None:  # D16
    on = IndicationEngine("X", {"indication.optimal_enabled": True})
    assert set(on.enabled_types) == set(IndicationType)
    assert IndicationEngine("X", {"system.main_engine_enabled": False}).enabled_types == ()
    assert IndicationEngine("X", {"system.trade_mode": "preset"}).enabled_types == ()
    assert IndicationEngine("X", {"system.trade_mode": "main"}).enabled_types != ()


def test_type_flags_and_active_advanced_following_active() -> None:
    default = IndicationEngine("X")
    assert default.enabled_types == (
        IndicationType.DIRECTION,
        IndicationType.MOVE,
        IndicationType.ACTIVE,
        IndicationType.ACTIVE_ADVANCED,
    )
    no_active = IndicationEngine("X", {"indication.active_enabled": False})
    assert no_active.enabled_types == (IndicationType.DIRECTION, IndicationType.MOVE)
    only_advanced = IndicationEngine(
        "X", {"indication.active_enabled": False, "indication.active_advanced_enabled": True}
    )
    assert IndicationType.ACTIVE_ADVANCED in only_advanced.enabled_types
    assert IndicationType.ACTIVE not in only_advanced.enabled_types


def test_state_keys_follow_symbol_type_parameter() -> None:
    engine = IndicationEngine("BTCUSDT", {"indication.optimal_enabled": True})
    assert engine.state_keys(IndicationType.DIRECTION)[:2] == ("BTCUSDT-direction-3", "BTCUSDT-direction-4")
    assert engine.state_keys(IndicationType.ACTIVE) == tuple(
        f"BTCUSDT-active-{t}" for t in ("0.5", "1.0", "1.5", "2.0", "2.5")
    )
    assert engine.state_keys(IndicationType.ACTIVE_ADVANCED)[0] == "BTCUSDT-active_advanced-0.5-1"
    assert len(engine.state_keys(IndicationType.ACTIVE_ADVANCED)) == 48
    assert engine.state_keys(IndicationType.OPTIMAL)[-1] == "BTCUSDT-optimal-30"


# --- locks and cooldown ----------------------------------------------------------------------------

RISING = [100.0] * 61 + [round(100.0 + 0.1 * i, 1) for i in range(1, 60)]  # +0.1 %/s after a flat minute


def test_validation_timeout_locks_a_key_for_fifteen_seconds() -> None:
    engine = IndicationEngine("X", ONLY_ACTIVE)
    signals = feed(engine, RISING)
    half = times_of(signals, "X-active-0.5")
    # +0.5 % is reached at sample 65 (closed at 66 s); then every 15 s while the rise goes on
    assert half[:4] == [66_000, 81_000, 96_000, 111_000]
    assert engine.blocked_until("X-active-0.5") == half[-1] + 15_000
    one = times_of(signals, "X-active-1.0")
    assert one[0] == 71_000  # keys lock independently
    first = next(s for s in signals if s.state_key == "X-active-0.5")
    assert (first.kind, first.direction, first.price, first.param("threshold_pct")) == (
        IndicationType.ACTIVE,
        LONG,
        100.5,
        0.5,
    )


def test_lock_release_is_inclusive_of_the_timeout() -> None:
    engine = IndicationEngine("X", {**ONLY_ACTIVE, "indication.validation_timeout_s": 1})
    half = times_of(feed(engine, RISING[:70]), "X-active-0.5")
    # the 100 ms cooldown is shorter than the 1 s lock: the key fires on every later sample
    assert half == [66_000, 67_000, 68_000, 69_000, 70_000]


def test_cooldown_longer_than_the_timeout_sets_the_lock() -> None:
    engine = IndicationEngine(
        "X", {**ONLY_ACTIVE, "indication.validation_timeout_s": 1, "system.position_cooldown_ms": 3000}
    )
    assert engine.config.lock_ms == 3000
    assert times_of(feed(engine, RISING[:75]), "X-active-0.5") == [66_000, 69_000, 72_000, 75_000]


def test_position_close_starts_the_cooldown() -> None:
    engine = IndicationEngine(
        "X", {**ONLY_ACTIVE, "indication.validation_timeout_s": 1, "system.position_cooldown_ms": 2500}
    )
    feed(engine, RISING[:66])  # the key fired at 66 s
    assert engine.blocked_until("X-active-0.5") == 68_500
    engine.notify_position_closed("X-active-0.5", 68_000)
    assert engine.blocked_until("X-active-0.5") == 70_500
    engine.notify_position_closed("X-active-0.5", 60_000)  # an older close never shortens the lock
    assert engine.blocked_until("X-active-0.5") == 70_500
    engine.notify_position_closed("X-unknown-1", 1)  # a key of a type switched off: ignored
    later = [s.ts_ms for s in feed(engine, RISING[66:75], start_s=66) if s.state_key == "X-active-0.5"]
    assert later[0] == 71_000


# --- activity gate ---------------------------------------------------------------------------------


def staircase(n: int) -> list[float]:
    """Alternating +0.05 % / +0.15 % steps: mean 0.10 %, spread 0.05 %, a steady rise of 0.1 %/s."""
    prices = [100.0]
    for i in range(n):
        prices.append(prices[-1] * (1.0005 if i % 2 == 0 else 1.0015))
    return prices


def test_activity_gate_open_lets_signals_through_and_shut_blocks_them() -> None:
    base = {**ONLY_ACTIVE, "indication.market_activity_enabled": True}
    open_gate = IndicationEngine("X", base)
    assert times_of(feed(open_gate, staircase(20)), "X-active-0.5")
    assert open_gate.activity is not None and open_gate.activity.is_open
    shut_gate = IndicationEngine("X", {**base, "indication.market_activity_factor": 3})  # needs 0.15 %
    assert feed(shut_gate, staircase(20)) == []
    assert shut_gate.activity is not None and not shut_gate.activity.is_open


def test_gate_stays_shut_until_the_range_is_filled() -> None:
    engine = IndicationEngine("X", {**ONLY_ACTIVE, "indication.market_activity_enabled": True})
    assert feed(engine, staircase(9)) == []  # 9 changes for a 10-frame range; 0.5 % is reached at 5
    assert engine.activity is None


OPTIMAL_ONLY = {
    "indication.optimal_enabled": True,
    "indication.direction_enabled": False,
    "indication.move_enabled": False,
    "indication.active_enabled": False,
    "indication.market_activity_enabled": False,
}
REVERSAL = [100.3, 100.2, 100.1, 100.0, 100.02, 100.05, 100.12]  # 3 falls, then an accelerating rise


def test_shut_gate_drops_due_optimal_trackers() -> None:
    # busy swings, then three falls: the gate (5 frames) is open when range 3 triggers at sample 6;
    # the small rise after it lets the mean |change| fall to 0.064 % by the time the tracker is due
    path = [100.0, 100.4, 100.0, 100.4, 100.3, 100.2, 100.1, 100.12, 100.15, 100.22]
    gate_on = {
        **OPTIMAL_ONLY,
        "indication.market_activity_enabled": True,
        "indication.market_activity_range_s": 5,
    }
    assert feed(IndicationEngine("X", {**gate_on, "indication.market_activity_enabled": False}), path)
    gated = IndicationEngine("X", gate_on)
    optimal = gated._optimal
    assert optimal is not None
    assert feed(gated, path[:7]) == []
    assert gated.activity is not None and gated.activity.is_open and optimal.tracking[0]  # triggered
    assert feed(gated, path[7:], start_s=7) == []
    assert gated.activity is not None and not gated.activity.is_open
    assert not optimal.tracking.any()  # dropped when due, and no new trigger while shut


# --- Optimal through the engine ---------------------------------------------------------------------


def test_optimal_signals_carry_subconfigs_and_lock_their_range() -> None:
    engine = IndicationEngine("X", OPTIMAL_ONLY)
    signals = feed(engine, REVERSAL)
    assert len(signals) == 10 and {s.state_key for s in signals} == {"X-optimal-3"}
    first = signals[0]
    assert first.subconfig_id == 0
    assert first.params == (
        ("range", 3.0),
        ("drawdown_ratio", 0.1),
        ("market_change_range", 1.0),
        ("last_part_ratio", 1.0),
    )
    assert first.strength == pytest.approx(0.1)  # 10 of 100 sub-configurations validated
    assert first.metric("tracked_s") == 3.0 and first.ts_ms == 7000 and first.price == 100.12
    assert engine.blocked_until("X-optimal-3") == 7000 + 15_000


# --- configure ------------------------------------------------------------------------------------


def test_configure_keeps_history_unless_the_timeframe_changes() -> None:
    engine = IndicationEngine("X", ONLY_ACTIVE)
    feed(engine, RISING[:30])
    sampler = engine.sampler
    engine.configure({"indication.direction_enabled": True})
    assert engine.sampler is sampler and engine.sampler.ring.count == 30
    assert IndicationType.DIRECTION in engine.enabled_types
    engine.configure(dataclasses.replace(engine.config, timeframe_s=5))
    assert engine.sampler is not sampler and engine.sampler.ring.count == 0


def test_no_enabled_type_means_no_work_but_sampling_continues() -> None:
    engine = IndicationEngine("X", {"system.main_engine_enabled": False})
    assert feed(engine, RISING) == []
    assert engine.sampler.ring.count == len(RISING)


# --- invariants on random paths ---------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    prices=st.one_of(segment_path(max_len=20, max_step=40), tick_path(max_size=120, max_ticks=40)),
    timeout_s=st.sampled_from([1, 5, 15]),
    gate=st.booleans(),
)
def test_no_key_fires_twice_within_its_lock(prices: list[float], timeout_s: int, gate: bool) -> None:
    engine = IndicationEngine(
        "X",
        {
            "indication.optimal_enabled": True,
            "indication.validation_timeout_s": timeout_s,
            "indication.market_activity_enabled": gate,
        },
    )
    by_key: dict[str, set[int]] = defaultdict(set)
    for s in feed(engine, prices):
        by_key[s.state_key].add(s.ts_ms)
        assert s.direction in (1, -1) and 0.0 < s.strength <= 1.0
    for times in by_key.values():
        ordered = sorted(times)
        assert all(b - a >= engine.config.lock_ms for a, b in itertools.pairwise(ordered))


# --- sampler ------------------------------------------------------------------------------------------


def test_sample_is_the_last_price_of_its_bucket() -> None:
    sampler = TickSampler(1, 16)
    assert sampler.on_tick(100.0, 0) == 0
    assert sampler.on_tick(101.0, 500) == 0
    assert sampler.on_tick(102.0, 999) == 0
    assert sampler.on_tick(103.0, 1000) == 1
    assert sampler.ring.prices(1).tolist() == [102.0]
    assert sampler.ring.times(1).tolist() == [0]
    assert sampler.open_price == 103.0


def test_gaps_are_forward_filled_as_flat_steps() -> None:
    sampler = TickSampler(1, 16)
    sampler.on_tick(100.0, 0)
    sampler.on_tick(99.0, 1000)
    sampler.on_tick(98.0, 2000)  # two falling samples closed so far... (100, 99)
    assert sampler.counters.down_run == 1
    assert sampler.on_tick(97.0, 5000) == 3  # closes 98 at 2 s, fills 3 s and 4 s with 98
    assert sampler.ring.prices(5).tolist() == [100.0, 99.0, 98.0, 98.0, 98.0]
    assert sampler.ring.times(5).tolist() == [0, 1000, 2000, 3000, 4000]
    assert (sampler.counters.down_run, sampler.counters.no_up_run) == (0, 4)


def test_gap_longer_than_the_ring_keeps_count_and_content_right() -> None:
    sampler = TickSampler(5, 4)
    sampler.on_tick(100.0, 0)
    assert sampler.on_tick(101.0, 100_000) == 20
    assert sampler.ring.count == 20
    assert sampler.ring.prices(4).tolist() == [100.0] * 4
    assert sampler.ring.times(4).tolist() == [80_000, 85_000, 90_000, 95_000]


def test_out_of_order_and_bad_prices_are_dropped() -> None:
    sampler = TickSampler(1, 16)
    sampler.on_tick(100.0, 5000)
    assert sampler.on_tick(50.0, 4000) == 0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        assert sampler.on_tick(bad, 5500) == 0
    assert sampler.open_price == 100.0


def test_ring_rejects_tiny_capacity_and_bad_timeframe() -> None:
    with pytest.raises(ValueError):
        SampleRing(1)
    with pytest.raises(ValueError):
        TickSampler(0, 16)


@settings(max_examples=60, deadline=None)
@given(
    prices=tick_path(min_size=2, max_size=200, max_ticks=500),
    capacity=st.integers(4, 40),
    data=st.data(),
)
def test_prefix_window_sums_equal_direct_sums_across_rebases(
    prices: list[float], capacity: int, data: st.DataObject
) -> None:
    """The ring's prefix sums (re-anchored every ``capacity`` samples) equal sums over the window."""
    ring = SampleRing(capacity)
    for i, price in enumerate(prices):
        ring.push(price, i * 1000)
        top = min(ring.size, capacity - 1)
        lags = np.asarray(data.draw(st.lists(st.integers(1, top), min_size=1, max_size=4)), dtype=np.int64)
        s1, s2 = ring.window_sums(lags)
        for lag, got1, got2 in zip(lags.tolist(), s1.tolist(), s2.tolist(), strict=True):
            dev = ring.prices(lag) - ring.anchor
            assert got1 == pytest.approx(float(dev.sum()), rel=1e-9, abs=1e-9)
            assert got2 == pytest.approx(float((dev * dev).sum()), rel=1e-9, abs=1e-9)


def test_signal_is_frozen_and_reads_its_params() -> None:
    signal = IndicationSignal(
        symbol="X",
        kind=IndicationType.DIRECTION,
        direction=LONG,
        ts_ms=1,
        price=2.0,
        strength=0.5,
        state_key="X-direction-3",
        params=(("range", 3.0),),
        metrics=(("run", 3.0),),
    )
    assert signal.is_long and signal.param("range") == 3.0 and signal.metric("run") == 3.0
    with pytest.raises(KeyError):
        signal.param("threshold_pct")
    with pytest.raises(KeyError):
        signal.metric("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        signal.price = 3.0  # type: ignore[misc]


def test_configure_keeps_the_locks_of_surviving_keys() -> None:
    engine = IndicationEngine("X", ONLY_ACTIVE)
    feed(engine, RISING[:67])
    assert engine.blocked_until("X-active-0.5") == 81_000
    engine.configure({"indication.direction_enabled": True})
    assert engine.blocked_until("X-active-0.5") == 81_000
    assert engine.blocked_until("X-direction-3") is None
