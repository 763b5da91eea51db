"""``cts-desktop run --headless`` as a real process: started, signalled, and checked in its database.

The engines run on a replay of a real candle file (shared/data/market, see its SOURCE.md) or, with
no replay and no network, on the built-in Simulated market connection.
"""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cts_desktop.cli import HEADLESS_READY, main
from tests.conftest import SHARED_DIR

BTC_1H = SHARED_DIR / "data" / "market" / "Binance_BTCUSDT_1h.csv"


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, CTS_DESKTOP_HOME=str(home))
    env.pop("CTS_DESKTOP_DB", None)
    return subprocess.Popen(
        [sys.executable, "-m", "cts_desktop", "run", "--headless", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float = 90) -> list[str]:
    """Read stdout until a line contains ``needle``; the lines read so far."""
    assert process.stdout is not None
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in lines):
            assert process.poll() is None, "".join(lines) + (process.stderr.read() if process.stderr else "")
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s:\n" + "".join(lines)
            if selector.select(timeout=1):
                lines.append(process.stdout.readline())
    return lines


def _rows(home: Path, query: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(home / "cts-desktop.db")
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def _engine_states(home: Path) -> dict[str, str]:
    return dict(
        _rows(
            home, "select c.name, e.state from engine_states e join connections c on c.id = e.connection_id"
        )
    )


@pytest.fixture
def btc_file() -> Path:
    if not BTC_1H.is_file():
        pytest.skip(f"real market data not found at {BTC_1H}")
    return BTC_1H


def test_sigterm_stops_a_replay_run_gracefully_and_every_engine_is_stored_stopped(
    tmp_path: Path, btc_file: Path
) -> None:
    home = tmp_path / "home"
    process = _start(home, "--paper", "--replay", str(btc_file), "--speed", "36000", "--seconds", "30")
    lines = _wait_for_line(process, HEADLESS_READY)
    ready = next(line for line in lines if HEADLESS_READY in line)
    for name in ("Bybit X03 (paper)", "BingX X01 (paper)", "Simulated market (paper)"):
        assert name in ready  # with the replay every engine runs offline
    time.sleep(1.0)  # let the engines cycle on the replayed market
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    log = "".join(lines) + out
    assert process.returncode == 0, log + err
    assert "SIGTERM received: shutting down gracefully" in log
    assert "all engines stopped" in log and "market data: replay of BTC/USDT" in log
    summary = log[log.index("summary (") :]
    assert summary.count(": stopped; health healthy; cycles: market ") == 3, summary

    assert _engine_states(home) == {
        "Bybit X03": "stopped",
        "BingX X01": "stopped",
        "Simulated market": "stopped",
    }
    assert _rows(home, "select state from engine_states where connection_id is null") == [("stopped",)]
    stopped_by_shutdown = _rows(
        home,
        "select c.name from audit_log a join connections c on c.id = a.entity_id "
        "where a.entity_type = 'engine' and a.action = 'engine.stopped' and a.actor = 'shutdown'",
    )
    assert sorted(name for (name,) in stopped_by_shutdown) == ["BingX X01", "Bybit X03", "Simulated market"]
    logged = _rows(home, "select message from system_log where message like '%SIGTERM received%'")
    assert logged, "the log reaches the database too"


def test_a_second_signal_forces_the_exit_and_the_next_run_restores_the_engines(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = _start(home, "--seconds", "30")  # no replay, no network needed: the Simulated market runs
    lines = _wait_for_line(process, HEADLESS_READY)
    assert "Simulated market (paper)" in next(line for line in lines if HEADLESS_READY in line)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGINT)  # impatient: the second signal does not wait for the shutdown
    _out, err = process.communicate(timeout=60)
    # Both arrive together; the kernel may hand them over in either order: whichever is second wins.
    second = signal.Signals(process.returncode - 128)
    assert second in (signal.SIGINT, signal.SIGTERM), err
    assert f"second {second.name}: forcing the exit" in err
    assert _engine_states(home)["Simulated market"] in ("running", "stopping")  # died before the stop

    again = _start(home, "--seconds", "2")  # runs by itself for two seconds, then stops gracefully
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err
    restored = _rows(
        home,
        "select a.action, a.actor from audit_log a join connections c on c.id = a.entity_id "
        "where c.name = 'Simulated market' and a.reason = 'application restarted' order by a.id",
    )
    assert restored[-1] == ("engine.stopped", "system")
    assert "ran for 2 s: shutting down gracefully" in out
    assert "Simulated market [simulated, paper]: stopped; health healthy" in out
    assert _engine_states(home)["Simulated market"] == "stopped"


def test_paper_forces_a_live_connection_to_trade_on_paper(tmp_path: Path, btc_file: Path) -> None:
    """A connection switched live in the database: without a confirmation in this session its
    engine is refused; with ``--paper`` it runs, on its paper account."""
    import asyncio

    from cts_desktop.services import build_services

    home = tmp_path / "home"

    async def switch_bybit_live() -> None:
        services = await build_services(console_logging=False, env={"CTS_DESKTOP_HOME": str(home)})
        try:
            bybit = next(r for r in await services.connections.list() if r.exchange == "bybit")
            await services.connections.set_live_trade(bybit.id, True)
        finally:
            await services.aclose()

    asyncio.run(switch_bybit_live())
    replay = ("--replay", str(btc_file), "--speed", "36000", "--seconds", "3")
    refused = _start(home, *replay)
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == 0, out + err
    # Refused before any venue was built (no confirmation; on a machine without a keyring, the
    # key cannot even be looked up): it never ran a cycle.
    assert (
        "Bybit X03 [bybit, live]: stopped; health unknown; cycles: no cycles; error: start failed" in out
    ), out

    forced = _start(home, "--paper", *replay)
    out, err = forced.communicate(timeout=120)
    assert forced.returncode == 0, out + err
    assert "Bybit X03 [bybit, paper]: stopped; health healthy" in out, out


def test_run_refuses_unclear_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "'run' needs --headless" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("this,is,not\na,candle,file\n")
    assert main(["run", "--headless", "--replay", str(bad)]) == 2
    assert "bad.csv" in capsys.readouterr().err
    assert main(["run", "--headless", "--replay", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert main(["run", "--headless", "--speed", "-1"]) == 2
    assert not (tmp_path / "cts-home" / "cts-desktop.db").exists()  # nothing was started
