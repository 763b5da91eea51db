"""Composition root of the windowed application: the qasync loop, the services and the main window.

The self-test builds the application through exactly the same functions as the GUI, so a
passing self-test means the real start-up path works (installers and CI rely on that).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import qasync
from PySide6.QtCore import QTimer, qVersion
from PySide6.QtWidgets import QApplication, QMessageBox

from cts_desktop import __version__
from cts_desktop.domain.engine import EngineAction, HealthStatus
from cts_desktop.domain.enums import EngineState
from cts_desktop.domain.market import StreamStatus
from cts_desktop.engine.coordinator import snapshot_as_dict
from cts_desktop.engine.live_guard import LiveConfirmation
from cts_desktop.exchanges.catalog import EXCHANGES
from cts_desktop.services import AppServices, build_services
from cts_desktop.shutdown_signals import install_shutdown_signals
from cts_desktop.storage.database import HEAD_REVISION, DatabaseError
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.dialogs.go_live_dialog import GoLiveDecision
from cts_desktop.ui.log_handler import QtLogHandler
from cts_desktop.ui.main_window import DOCK_TITLES, MainWindow

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 15.0
REPORTED_PACKAGES = (
    "PySide6-Essentials",
    "qasync",
    "pyqtgraph",
    "ccxt",
    "SQLAlchemy",
    "aiosqlite",
    "alembic",
    "keyring",
    "numpy",
    "pandas",
    "pandas-ta",
    "TA-Lib",
    "platformdirs",
)


@dataclass(slots=True, weakref_slot=True)
class GuiSession:
    """A running window with its services; owns the one graceful-shutdown path.

    Weak-referenceable because PySide6 may hold a connected bound method's ``self`` weakly.
    """

    services: AppServices
    window: MainWindow
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown_seconds: float | None = None
    _shutdown_task: asyncio.Task[None] | None = None
    _live_runner: TaskRunner = field(default_factory=lambda: TaskRunner("go-live confirmation"))

    def confirm_live(self, decision: object) -> None:
        """The go-live dialog's decision: verified again (checklist, confirmation, credentials)
        before the live flag is set; the outcome is shown in the status bar and the log."""
        if isinstance(decision, GoLiveDecision):
            self._live_runner.start(self._confirm_live(decision))

    async def _confirm_live(self, decision: GoLiveDecision) -> None:
        services = self.services
        try:
            checklist = await services.coordinator.go_live_checklist(decision.connection_id, decision.ticked)
            if not checklist.ready:
                missing = [item.label for item in checklist.items if item.passed is not True]
                message = "Live trading not switched on; the checklist is not complete: " + "; ".join(missing)
            else:
                confirmation = LiveConfirmation(
                    decision.connection_id,
                    decision.exchange,
                    decision.balance,
                    decision.typed_phrase,
                    decision.balance_asset,
                )
                result = await services.live_arming.arm(confirmation)
                record = await services.connections.get(decision.connection_id)
                message = (
                    f"{record.name} is LIVE: its next engine start trades real money"
                    if result.allowed
                    else f"Live trading not switched on: {result.message}"
                )
        except Exception as exc:
            log.exception("switching a connection live failed")
            message = f"Live trading not switched on: {exc}"
        log.warning("%s", message)
        self.window.statusBar().showMessage(message, 20_000)

    def request_shutdown(self) -> None:
        """Called by the window's close, File → Quit, SIGINT and SIGTERM; later calls are ignored."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())

    async def _shutdown(self) -> None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.services.aclose(), SHUTDOWN_TIMEOUT_S)
        except Exception:
            log.exception("graceful shutdown did not complete")
        finally:
            self.window.finish_close()
            self.shutdown_seconds = time.perf_counter() - started
            self.stopped.set()


def application() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(sys.argv[:1])
    app.setApplicationName("cts-desktop")
    app.setApplicationVersion(__version__)
    # Closing the last window must not stop the loop before the async shutdown ran (PITFALLS).
    app.setQuitOnLastWindowClosed(False)
    return app


def open_window(services: AppServices) -> GuiSession:
    log_handler = QtLogHandler()
    services.logging.add(log_handler)
    info = services.database_info
    window = MainWindow(
        layout_file=services.paths.layout_file,
        bus=services.bus,
        mode=services.mode,
        engine_state=services.coordinator.global_state,
        database_location=info.path or info.url,
        log_handler=log_handler,
        market_bus=services.market.bus,
        market_source=services.market.source,
        connections=services.connections,
        tester=services.tester,
        keyring=services.keyring,
        coordinator=services.coordinator,
    )
    session = GuiSession(services, window)
    window.shutdown_requested.connect(session.request_shutdown)
    window.go_live_confirmed.connect(session.confirm_live)
    window.show()
    for warning in services.startup_warnings:
        log.warning("%s", warning)
    return session


def install_signal_handlers(session: GuiSession) -> Callable[[], None]:
    """SIGINT/SIGTERM run the graceful shutdown (the same path as closing the window); a second
    signal forces the exit. Returns the function that removes the handlers."""

    def keep_alive() -> Callable[[], None]:
        ticker = QTimer()  # lets Python's own handler run while Qt idles (no loop handler)
        ticker.timeout.connect(lambda: None)
        ticker.start(200)
        return ticker.stop

    def close_window() -> None:
        session.window.close()

    return install_shutdown_signals(close_window, log, keep_alive=keep_alive)


async def _gui_main(db_url: str | None) -> str | None:
    """Run until the window closed; return why start-up failed, or None."""
    try:
        services = await build_services(db_url=db_url)
    except DatabaseError as exc:
        return str(exc)
    session = open_window(services)
    remove_handlers = install_signal_handlers(session)
    await services.start()
    await session.stopped.wait()
    remove_handlers()
    return None


def run_gui(*, db_url: str | None = None) -> int:
    app = application()
    failure: str | None = qasync.run(_gui_main(db_url))
    if failure is None:
        return 0
    print(f"cts-desktop could not start: {failure}", file=sys.stderr)
    if app.platformName() not in ("offscreen", "minimal"):
        # Outside the asyncio loop now, so a modal dialog cannot strand a task (PITFALLS).
        QMessageBox.critical(None, "cts-desktop could not start", failure)
    return 1


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "cts-desktop": __version__, "qt": qVersion()}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _status_text(status: tuple[StreamStatus, str] | None) -> str:
    if status is None:
        return "unknown"
    return f"{status[0].value}: {status[1]}" if status[1] else status[0].value


class _ErrorCollector(logging.Handler):
    """Counts ERROR records during the self-test; any one makes the run unhealthy."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


async def _selftest_main(seconds: float, db_url: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    report: dict[str, Any] = {"versions": package_versions(), "errors": [], "warnings": []}
    try:
        services = await build_services(db_url=db_url, console_logging=False)
    except DatabaseError as exc:
        report["errors"].append(f"database: {exc}")
        return report
    collector = _ErrorCollector()
    services.logging.add(collector)
    session = open_window(services)
    await services.start()
    engine_id = await _start_simulated_engine(services, report["warnings"])
    await asyncio.sleep(seconds)
    engine_report = {
        "global_state": services.coordinator.global_state.value,
        "snapshots": [snapshot_as_dict(snapshot) for snapshot in services.coordinator.snapshots()],
    }
    window = session.window
    info = services.database_info
    market = services.market
    ticks = market.bus.ticks_received(market.source)
    report.update(
        database={
            "url": info.url,
            "backend": info.backend,
            "path": info.path,
            "revision": info.revision,
            "head_revision": HEAD_REVISION,
            "journal_mode": info.journal_mode,
        },
        keyring={
            "backend": services.keyring.backend,
            "available": services.keyring.available,
            "error": services.keyring.error,
        },
        docks=window.dock_titles(),
        market={
            "source": market.source,
            "symbols": market.symbols,
            "ticks": {symbol: ticks.get(symbol, 0) for symbol in market.symbols},
            "status": {
                symbol: _status_text(market.bus.stream_status(market.source, symbol))
                for symbol in market.symbols
            },
        },
        connections=[
            {"name": c.name, "exchange": c.exchange, "enabled": c.is_enabled, "live": c.is_live_trade}
            for c in await services.connections.list()
        ],
        mode=services.mode.value.upper(),
        engine_state=services.engine_state.value,
        engine=engine_report,
        home=str(services.paths.home),
    )
    report["warnings"].extend(services.startup_warnings)
    errors: list[str] = report["errors"]
    if info.revision != HEAD_REVISION:
        errors.append(f"database revision {info.revision} is not the head revision {HEAD_REVISION}")
    silent = [symbol for symbol, count in report["market"]["ticks"].items() if count == 0]
    if silent:
        errors.append(f"no market ticks received in {seconds:g} s for: {', '.join(silent)}")
    missing = [title for title in DOCK_TITLES if title not in report["docks"]]
    if missing:
        errors.append(f"missing docks: {', '.join(missing)}")
    if engine_id is not None:
        errors.extend(_engine_problems(engine_report, engine_id, seconds))
    window.close()  # the same path as the user closing the window
    try:
        await asyncio.wait_for(session.stopped.wait(), SHUTDOWN_TIMEOUT_S + 5)
    except TimeoutError:
        errors.append("graceful shutdown did not finish in time")
    errors.extend(collector.messages)
    still_up = [
        s.name
        for s in services.coordinator.snapshots()
        if s.state not in (EngineState.IDLE, EngineState.STOPPED)
    ]
    report["shutdown"] = {
        "graceful": session.stopped.is_set() and services.closed and not window.isVisible(),
        "seconds": round(session.shutdown_seconds or 0.0, 3),
        "layout_saved": services.paths.layout_file.exists(),
        "engine_state": services.coordinator.global_state.value,
    }
    if not report["shutdown"]["graceful"]:
        errors.append("window or services still open after shutdown")
    if still_up:
        errors.append(f"engines not stopped after shutdown: {', '.join(still_up)}")
    report["uptime_seconds"] = round(time.perf_counter() - started, 3)
    return report


async def _start_simulated_engine(services: AppServices, warnings: list[str]) -> str | None:
    """Start the Simulated market connection's engine through the coordinator, as the user would;
    its id, or None (with a warning) when the database has no such connection."""
    for record in await services.connections.list():
        spec = EXCHANGES.get(record.exchange)
        if spec is not None and spec.builtin and record.is_enabled:
            if EngineAction.START in services.coordinator.allowed(record.id):  # not auto-started already
                await services.coordinator.start(record.id)
            return record.id
    warnings.append("no enabled Simulated market connection: the trade engine was not exercised")
    return None


def _engine_problems(engine: dict[str, Any], connection_id: str, seconds: float) -> list[str]:
    """What the self-test calls unhealthy in the Simulated market engine after ``seconds``."""
    snapshot = next((s for s in engine["snapshots"] if s["connection_id"] == connection_id), None)
    if snapshot is None:
        return ["the coordinator reports no Simulated market engine"]
    name = snapshot["name"]
    if snapshot["state"] != EngineState.RUNNING.value:
        return [f"engine {name} is {snapshot['state']}, not running: {snapshot['reason']}"]
    problems = []
    if snapshot["health"] == HealthStatus.UNHEALTHY.value:
        problems.append(f"engine {name} is unhealthy")
    components = {c["name"]: c for c in snapshot["components"]}
    for component in ("market", "main", "orders"):
        data = components.get(component)
        if data is None or data["cycles"] == 0:
            problems.append(f"engine {name}: the {component} component ran no cycle in {seconds:g} s")
        elif data["status"] == HealthStatus.UNHEALTHY.value:
            problems.append(f"engine {name}: the {component} component is unhealthy ({data['last_error']})")
    return problems


def run_selftest(*, seconds: float, db_url: str | None = None) -> tuple[dict[str, Any], int]:
    """Run the application offscreen for ``seconds`` and return (report, exit code)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    application()
    report: dict[str, Any] = qasync.run(_selftest_main(seconds, db_url))
    report["healthy"] = not report["errors"]
    return report, 0 if report["healthy"] else 1
