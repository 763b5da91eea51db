"""Circuit breakers on injected times: each breaker just before, exactly at and just past its
threshold, the report order, reset after a resume, and the settings they read."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cts_desktop.domain.engine import EngineAction
from cts_desktop.domain.enums import Actor
from cts_desktop.domain.market import StreamStatus
from cts_desktop.domain.settings_schema import SPEC_BY_KEY, SettingValidationError, defaults
from cts_desktop.engine.circuit_breakers import BREAKER_ORDER, Breaker, BreakerSettings, CircuitBreakers, Trip
from cts_desktop.engine.events import CircuitBreakerTripped, EventBus
from cts_desktop.engine.risk import AccountState, RiskLimits

LIMITS = RiskLimits(max_open_positions=10, max_daily_loss_pct=5.0, max_drawdown_pct=30.0)
HEALTHY = AccountState(
    equity=10_000.0, free_balance=10_000.0, day_start_equity=10_000.0, peak_equity=10_000.0
)
T0 = 1_000.0  # seconds on the injected monotonic clock


def breakers(**settings: Any) -> CircuitBreakers:
    return CircuitBreakers("conn-1", BreakerSettings(**settings))


def test_nothing_trips_without_events() -> None:
    cb = breakers()
    assert cb.check(T0) is None and cb.trips(T0) == ()


# --- error burst: N errors within W seconds (inclusive) -----------------------------------------------


def test_error_burst_trips_at_the_count() -> None:
    cb = breakers(error_burst_count=5, error_burst_window_s=60.0)
    for i in range(4):
        cb.record_error(T0 + i, "network")
    assert cb.check(T0 + 4) is None  # four errors: one short
    cb.record_error(T0 + 4, "rate_limited")
    trip = cb.check(T0 + 4)
    assert trip is not None and trip.breaker is Breaker.ERROR_BURST
    assert trip.reason == (
        "error burst: 5 exchange errors in the last 4 s (limit 5 in 60 s); last error: rate_limited; "
        "no success yet: new positions paused"
    )
    assert trip.numbers == {"errors": 5, "span_s": 4.0, "window_s": 60.0}


@pytest.mark.parametrize(("now", "trips"), [(T0 + 59.0, True), (T0 + 60.0, True), (T0 + 60.5, False)])
def test_error_burst_window_boundary(now: float, trips: bool) -> None:
    # The first of five errors is at T0; the window is 60 s and inclusive.
    cb = breakers(error_burst_count=5, error_burst_window_s=60.0)
    for at in (T0, T0 + 10, T0 + 20, T0 + 30, T0 + 40):
        cb.record_error(at)
    assert (cb.check(now) is not None) is trips


def test_errors_spread_wider_than_the_window_never_burst() -> None:
    cb = breakers(error_burst_count=3, error_burst_window_s=10.0)
    for i in range(10):  # one error every 6 s: at most 2 in any 10 s
        cb.record_error(T0 + 6 * i)
        assert cb.check(T0 + 6 * i) is None


def test_successes_do_not_cancel_errors_but_show_in_the_reason() -> None:
    cb = breakers(error_burst_count=3, error_burst_window_s=30.0)
    for i in range(3):
        cb.record_error(T0 + 2 * i)
        cb.record_success(T0 + 2 * i + 1)  # a venue failing every other call
    trip = cb.check(T0 + 6)
    assert trip is not None and trip.breaker is Breaker.ERROR_BURST
    assert "last success 1 s ago" in trip.reason


# --- stream lost: not alive for S seconds ----------------------------------------------------------------


@pytest.mark.parametrize(("down_for", "trips"), [(29.0, False), (30.0, True), (31.0, True)])
def test_stream_lost_boundary(down_for: float, trips: bool) -> None:
    cb = breakers(stream_lost_pause_s=30.0)
    cb.stream_status(StreamStatus.LIVE, T0)
    cb.stream_status(StreamStatus.RECONNECTING, T0 + 5)
    trip = cb.check(T0 + 5 + down_for)
    assert (trip is not None) is trips
    if trip is not None:
        assert trip.breaker is Breaker.STREAM_LOST
        assert trip.reason == (
            f"market stream lost: not live for {down_for:.0f} s (now reconnecting), limit 30 s: "
            "new positions paused until prices flow again"
        )


def test_the_outage_clock_runs_from_the_first_status_that_is_not_live() -> None:
    cb = breakers(stream_lost_pause_s=30.0)
    cb.stream_status(StreamStatus.STALE, T0)
    cb.stream_status(StreamStatus.RECONNECTING, T0 + 20)  # still the same outage
    assert cb.check(T0 + 29) is None
    assert cb.check(T0 + 30) is not None
    cb.stream_status(StreamStatus.LIVE, T0 + 31)  # back: the breaker clears
    assert cb.check(T0 + 100) is None


def test_polling_counts_as_alive_and_a_stream_that_never_connects_trips() -> None:
    cb = breakers(stream_lost_pause_s=30.0)
    cb.stream_status(StreamStatus.POLLING, T0)  # the REST fallback delivers prices
    assert cb.check(T0 + 3_600) is None
    never = breakers(stream_lost_pause_s=30.0)
    never.stream_status(StreamStatus.CONNECTING, T0)
    assert never.check(T0 + 30) is not None
    stopped = breakers(stream_lost_pause_s=30.0)
    stopped.stream_status(StreamStatus.STOPPED, T0)
    assert stopped.check(T0 + 30) is not None


# --- daily loss and drawdown: the risk gate's formulas and boundaries ------------------------------------


@pytest.mark.parametrize(("equity", "trips"), [(9_501.0, False), (9_500.0, True), (9_400.0, True)])
def test_daily_loss_boundary(equity: float, trips: bool) -> None:
    cb = breakers()
    cb.account(dataclasses.replace(HEALTHY, equity=equity), LIMITS)
    trip = cb.check(T0)
    assert (trip is not None) is trips
    if trip is not None:
        assert trip.breaker is Breaker.DAILY_LOSS
        loss = (10_000.0 - equity) / 100
        assert trip.reason == (
            f"daily loss {loss:.2f} % (10,000.00 → {equity:,.2f}) reached the limit of 5 %: "
            "new positions paused, open positions stay protected"
        )
        assert trip.numbers["loss_pct"] == pytest.approx(loss)


@pytest.mark.parametrize(("equity", "trips"), [(7_001.0, False), (7_000.0, True), (6_000.0, True)])
def test_drawdown_boundary(equity: float, trips: bool) -> None:
    cb = breakers()
    cb.account(dataclasses.replace(HEALTHY, equity=equity, day_start_equity=equity), LIMITS)
    trip = cb.check(T0)
    assert (trip is not None) is trips
    if trip is not None:
        assert trip.breaker is Breaker.DRAWDOWN
        assert trip.reason.startswith(f"drawdown {(10_000.0 - equity) / 100:.2f} % below the peak")


def test_an_account_that_recovers_clears_the_loss_breaker() -> None:
    cb = breakers()
    cb.account(dataclasses.replace(HEALTHY, equity=9_000.0), LIMITS)
    assert cb.check(T0) is not None
    cb.account(dataclasses.replace(HEALTHY, equity=9_800.0), LIMITS)
    assert cb.check(T0 + 1) is None
    cb.account(
        dataclasses.replace(HEALTHY, equity=9_800.0), dataclasses.replace(LIMITS, max_daily_loss_pct=2.0)
    )
    assert cb.check(T0 + 2) is not None  # a stricter limit trips at the same equity


# --- together -------------------------------------------------------------------------------------------


def test_several_breakers_are_reported_money_first() -> None:
    assert [b.value for b in BREAKER_ORDER] == ["daily_loss", "drawdown", "stream_lost", "error_burst"]
    cb = breakers(error_burst_count=2, error_burst_window_s=60.0, stream_lost_pause_s=10.0)
    cb.record_error(T0)
    cb.record_error(T0 + 1)
    cb.stream_status(StreamStatus.STALE, T0)
    assert [t.breaker for t in cb.trips(T0 + 10)] == [Breaker.STREAM_LOST, Breaker.ERROR_BURST]
    cb.account(dataclasses.replace(HEALTHY, equity=6_500.0), LIMITS)  # −35 %: daily loss and drawdown
    assert [t.breaker for t in cb.trips(T0 + 10)] == list(BREAKER_ORDER)
    first = cb.check(T0 + 10)
    assert first is not None and first.breaker is Breaker.DAILY_LOSS and first.at == T0 + 10


def test_reset_after_a_resume_forgets_old_errors_and_restarts_the_outage_clock() -> None:
    cb = breakers(error_burst_count=2, error_burst_window_s=60.0, stream_lost_pause_s=30.0)
    cb.record_error(T0)
    cb.record_error(T0 + 1)
    cb.stream_status(StreamStatus.RECONNECTING, T0)
    assert len(cb.trips(T0 + 30)) == 2
    cb.reset(T0 + 40)  # the user resumed
    assert cb.check(T0 + 40) is None
    assert cb.check(T0 + 69) is None
    trip = cb.check(T0 + 70)  # still no stream 30 s after the resume
    assert trip is not None and trip.breaker is Breaker.STREAM_LOST
    cb.account(dataclasses.replace(HEALTHY, equity=9_000.0), LIMITS)
    cb.reset(T0 + 80)
    trip = cb.check(T0 + 80)  # a loss limit that still holds trips again at once
    assert trip is not None and trip.breaker is Breaker.DAILY_LOSS


def test_a_trip_pauses_as_the_circuit_breaker_and_becomes_an_event() -> None:
    cb = breakers(error_burst_count=2)
    cb.record_error(T0)
    cb.record_error(T0)
    trip = cb.check(T0)
    assert isinstance(trip, Trip)
    assert (trip.actor, trip.action, trip.connection_id) == (
        Actor.CIRCUIT_BREAKER,
        EngineAction.PAUSE,
        "conn-1",
    )
    bus = EventBus()
    seen: list[CircuitBreakerTripped] = []
    bus.subscribe(CircuitBreakerTripped, seen.append)
    bus.publish(trip.to_event())
    assert [(e.connection_id, e.breaker, e.reason) for e in seen] == [("conn-1", "error_burst", trip.reason)]


# --- settings ---------------------------------------------------------------------------------------------


def test_the_breaker_settings_are_registered_with_their_ranges() -> None:
    expected = {
        "risk.error_burst_count": (5, 2, 50),
        "risk.error_burst_window_s": (60, 10, 600),
        "risk.stream_lost_pause_s": (30, 5, 600),
    }
    for key, (default, minimum, maximum) in expected.items():
        spec = SPEC_BY_KEY[key]
        assert (spec.default, spec.minimum, spec.maximum, spec.category.value) == (
            default,
            minimum,
            maximum,
            "Risk",
        )


def test_breaker_settings_from_values() -> None:
    assert BreakerSettings.from_settings(defaults()) == BreakerSettings(5, 60.0, 30.0)
    assert BreakerSettings.from_settings({}) == BreakerSettings(5, 60.0, 30.0)
    values = {"risk.error_burst_count": 3, "risk.error_burst_window_s": 20, "risk.stream_lost_pause_s": 120}
    assert BreakerSettings.from_settings(values) == BreakerSettings(3, 20.0, 120.0)
    with pytest.raises(SettingValidationError, match=r"risk\.error_burst_count"):
        BreakerSettings.from_settings({"risk.error_burst_count": 1})
    with pytest.raises(ValueError):
        BreakerSettings(error_burst_window_s=0.0)


def test_new_settings_apply_to_the_errors_already_seen() -> None:
    cb = breakers(error_burst_count=5, error_burst_window_s=60.0)
    for i in range(3):
        cb.record_error(T0 + i)
    assert cb.check(T0 + 3) is None
    cb.update_settings(BreakerSettings(error_burst_count=3, error_burst_window_s=60.0))
    assert cb.settings.error_burst_count == 3
    trip = cb.check(T0 + 3)
    assert trip is not None and trip.breaker is Breaker.ERROR_BURST
