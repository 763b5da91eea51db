"""Component health (DOMAIN §4.1): thresholds, the cycle monitor, the stream verdict, worst-of."""

import pytest

from cts_desktop.domain.engine import ComponentHealth, HealthStatus
from cts_desktop.domain.market import StreamStatus
from cts_desktop.engine.health import ComponentMonitor, classify, overall_health, stream_health
from cts_desktop.exchanges.streams import StreamInfo, StreamKind

H, D, U, N = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY, HealthStatus.UNKNOWN


@pytest.mark.parametrize(
    ("cycles", "errors", "last_ms", "interval_ms", "expected"),
    [
        (0, 0, None, 100.0, N),  # nothing ran yet
        (100, 0, 10.0, 100.0, H),
        (100, 5, 10.0, 100.0, H),  # exactly 95 % is not "below 95 %"
        (100, 6, 10.0, 100.0, D),  # 94 %
        (100, 20, 10.0, 100.0, D),  # exactly 80 %
        (100, 21, 10.0, 100.0, U),  # 79 %
        (100, 0, 200.0, 100.0, H),  # exactly 2 x the interval
        (100, 0, 200.1, 100.0, D),
        (100, 0, 300.0, 100.0, D),  # exactly 3 x
        (100, 0, 300.1, 100.0, U),
        (100, 0, 5_000.0, None, H),  # no interval: judged on the success rate alone
        (1, 1, 1.0, 100.0, U),
    ],
)
def test_classify_follows_the_domain_thresholds(
    cycles: int, errors: int, last_ms: float | None, interval_ms: float | None, expected: HealthStatus
) -> None:
    assert classify(cycles, errors, last_ms, interval_ms) is expected


def test_monitor_counts_cycles_durations_and_errors_against_a_live_interval() -> None:
    now = [10.0]
    interval = [100.0]
    monitor = ComponentMonitor("main", lambda: interval[0], clock=lambda: now[0])
    assert monitor.health() == ComponentHealth("main", interval_ms=100.0)  # unknown before a cycle

    for duration_s, error in ((0.010, None), (0.030, None), (0.020, RuntimeError("bad tick"))):
        monitor.begin()
        now[0] += duration_s
        monitor.end(error)
    health = monitor.health()
    assert (health.cycles, health.errors) == (3, 1)
    assert health.last_duration_ms == pytest.approx(20.0)
    assert health.avg_duration_ms == pytest.approx(20.0)
    assert health.last_error == "RuntimeError: bad tick"
    assert health.success_rate == pytest.approx(200 / 3)
    assert health.status is U  # 66.7 % < 80 %

    for _ in range(97):
        monitor.record(50.0)
    assert monitor.health().status is H  # 99 % and 50 ms against 100 ms
    interval[0] = 20.0  # the setting changed: 50 ms is now 2.5 x the interval
    assert monitor.health().status is D and monitor.health().interval_ms == 20.0


def _info(symbol: str, status: StreamStatus, messages: int = 10, reason: str = "") -> StreamInfo:
    return StreamInfo(symbol, StreamKind.TICKER, status, reason, messages, 0.5)


def test_stream_health_is_judged_from_the_current_stream_statuses() -> None:
    live = [_info("BTC/USDT", StreamStatus.LIVE), _info("ETH/USDT", StreamStatus.POLLING)]
    assert stream_health("market", live).status is H
    assert stream_health("market", []).status is N
    assert stream_health("market", [_info("BTC/USDT", StreamStatus.CONNECTING, 0)]).status is N

    broken = _info("ETH/USDT", StreamStatus.RECONNECTING, reason="timeout; reconnecting in 2.0 s")
    some = stream_health("market", [live[0], broken], failures=3)
    assert some.status is D
    assert some.last_error == "ETH/USDT ticker: reconnecting timeout; reconnecting in 2.0 s"
    assert (some.cycles, some.errors) == (23, 3)  # 20 messages + 3 failures, 3 of them failed

    none_alive = stream_health("market", [broken, _info("BTC/USDT", StreamStatus.STALE)], 5, "BTC: stale")
    assert none_alive.status is U and none_alive.last_error == "BTC: stale"


def test_overall_health_is_the_worst_known_component() -> None:
    def c(status: HealthStatus) -> ComponentHealth:
        return ComponentHealth("x", status=status)

    assert overall_health([]) is N
    assert overall_health([c(N), c(N)]) is N
    assert overall_health([c(H), c(N)]) is H  # a disabled loop does not make the engine look broken
    assert overall_health([c(H), c(D), c(H)]) is D
    assert overall_health([c(D), c(U), c(H)]) is U
