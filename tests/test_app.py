"""The composition root: self-test through the real start-up path, and graceful window close."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cts_desktop.storage.database import HEAD_REVISION

DOCKS = ["Market", "Chart", "Engine", "Connections", "Positions", "Orders", "Strategies", "Logs"]


def _selftest(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CTS_DESKTOP_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "cts_desktop", *extra, "selftest", "--seconds", "2.5", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_selftest_reports_a_healthy_application(tmp_path: Path) -> None:
    result = _selftest(tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True and report["errors"] == []
    assert sorted(report["docks"]) == sorted(DOCKS)
    assert report["database"]["revision"] == HEAD_REVISION
    assert report["database"]["journal_mode"] == "wal"
    assert report["database"]["path"] == str((tmp_path / "home" / "cts-desktop.db").resolve())
    assert report["mode"] == "PAPER"
    assert report["shutdown"]["graceful"] is True and report["shutdown"]["layout_saved"] is True
    assert {"python", "PySide6-Essentials", "ccxt", "SQLAlchemy", "numpy"} <= set(report["versions"])
    assert set(report["keyring"]) == {"backend", "available", "error"}
    market = report["market"]
    assert market["source"] == "simulated" and len(market["symbols"]) == 5
    assert all(count > 0 for count in market["ticks"].values()), market
    assert set(market["status"].values()) == {"live"}
    assert sorted(c["name"] for c in report["connections"]) == ["BingX X01", "Bybit X03", "Simulated market"]
    assert not any(c["live"] for c in report["connections"])
    # The Simulated market engine ran through the coordinator, and the shutdown stopped it.
    engine = report["engine"]
    assert engine["global_state"] == "running" and report["shutdown"]["engine_state"] == "stopped"
    states = {s["name"]: s["state"] for s in engine["snapshots"]}
    assert states == {"BingX X01": "idle", "Bybit X03": "idle", "Simulated market": "running"}
    (simulated,) = [s for s in engine["snapshots"] if s["name"] == "Simulated market"]
    assert simulated["mode"] == "paper" and simulated["health"] == "healthy"
    components = {c["name"]: c for c in simulated["components"]}
    assert list(components) == ["market", "main", "preset", "orders", "health"]
    assert all(c["cycles"] > 0 and c["errors"] == 0 for c in components.values()), components
    assert components["main"]["interval_ms"] == 100 and components["orders"]["interval_ms"] == 50


@pytest.mark.asyncio
async def test_selftest_with_auto_start_on_does_not_start_the_engine_twice(tmp_path: Path) -> None:
    """With ``engine.auto_start`` the Simulated market engine is already running when the
    self-test wants it; it must not ask for a second start (an illegal transition)."""
    from cts_desktop.services import build_services

    home = tmp_path / "home"
    services = await build_services(console_logging=False, env={"CTS_DESKTOP_HOME": str(home)})
    await services.settings.update({"engine.auto_start": True})
    await services.aclose()
    result = _selftest(home)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    states = {s["name"]: s["state"] for s in report["engine"]["snapshots"]}
    assert states["Simulated market"] == "running" and report["errors"] == []


def test_selftest_with_db_option_and_redacted_credentials(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "trading.db"
    result = _selftest(tmp_path / "home", "--db", str(other))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["database"]["path"] == str(other.resolve())
    assert other.exists()


def test_selftest_on_a_corrupt_database_fails_clearly_and_keeps_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    corrupt = home / "cts-desktop.db"
    corrupt.write_bytes(b"this is not a database, it is a half-written file" * 100)
    before = corrupt.read_bytes()
    result = _selftest(home)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert any("cts-desktop.db" in error for error in report["errors"])
    assert corrupt.read_bytes() == before


@pytest.mark.qasync
@pytest.mark.asyncio
async def test_closing_the_window_runs_the_graceful_shutdown(cts_home: Path) -> None:
    from cts_desktop.app import application, open_window
    from cts_desktop.services import build_services
    from tests.helpers import wait_for

    application()
    services = await build_services(console_logging=False)
    session = open_window(services)
    assert session.window.isVisible()
    session.window.close()  # the first close only asks for the shutdown
    await wait_for(session.stopped.is_set, timeout=20)
    assert services.closed
    assert not session.window.isVisible()
    assert services.paths.layout_file.exists()


def test_sigterm_closes_the_window_through_the_graceful_shutdown(tmp_path: Path) -> None:
    import selectors
    import signal
    import time

    env = dict(os.environ, CTS_DESKTOP_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    process = subprocess.Popen(
        [sys.executable, "-m", "cts_desktop", "gui"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while not any("market stream started" in line for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
            if selector.select(timeout=1):
                seen.append(process.stderr.readline())
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    log = "".join(seen) + (rest or "")
    assert process.returncode == 0, log
    assert "SIGTERM received: shutting down gracefully" in log
    assert "all engines stopped" in log and (tmp_path / "home" / "layout.ini").exists()


@pytest.mark.asyncio
async def test_a_go_live_decision_is_verified_again_and_refused_without_tested_keys(cts_home: Path) -> None:
    """The dialog only reports a decision; the session re-checks the checklist and the three live
    conditions, so a connection with no tested key stays paper whatever the dialog said."""
    from cts_desktop.app import application, open_window
    from cts_desktop.services import build_services
    from cts_desktop.ui.dialogs.go_live_dialog import GoLiveDecision
    from tests.helpers import wait_for

    application()
    services = await build_services(console_logging=False)
    session = open_window(services)
    try:
        bybit = next(r for r in await services.connections.list() if r.exchange == "bybit")
        decision = GoLiveDecision(
            bybit.id,
            "bybit",
            frozenset({"real_money", "withdrawal_off", "orders_checked"}),
            "Bybit",
            1000.0,
            "USDT",
        )
        session.window.go_live_confirmed.emit(decision)
        await wait_for(
            lambda: "Live trading not switched on" in session.window.statusBar().currentMessage(), 10
        )
        assert not (await services.connections.get(bybit.id)).is_live_trade
        assert not services.live_arming.is_armed(bybit.id)
    finally:
        session.window.close()
        await wait_for(session.stopped.is_set, timeout=20)
