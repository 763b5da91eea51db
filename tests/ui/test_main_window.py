"""MainWindow with real docks offscreen: menus, saved layout, status bar and the close protocol."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from cts_desktop.domain.engine import ChecklistItem
from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.domain.orders import RiskDecision
from cts_desktop.engine.events import CircuitBreakerTripped, EngineStateChanged, EventBus, OrderRefused
from cts_desktop.ui.log_handler import QtLogHandler
from cts_desktop.ui.main_window import DEFAULT_AREAS, DOCK_TITLES, MainWindow
from cts_desktop.ui.panels.engine_panel import EnginePanel
from cts_desktop.ui.panels.orders_panel import OrdersPanel
from cts_desktop.ui.panels.positions_panel import PositionsPanel
from cts_desktop.ui.panels.table_panel import TablePanel
from tests.helpers import wait_for
from tests.ui.fakes import FakeCoordinator

LEFT, RIGHT = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
TOP, BOTTOM = Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea

type WindowFactory = Callable[..., MainWindow]


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def layout_file(cts_home: Path) -> Path:
    return cts_home / "layout.ini"


@pytest.fixture
def make_window(qapp: QApplication, bus: EventBus, layout_file: Path) -> Iterator[WindowFactory]:
    """Builds shown windows; each is closed through finish_close() and deleted at teardown."""
    windows: list[MainWindow] = []

    def make(**overrides: object) -> MainWindow:
        options: dict[str, object] = {
            "layout_file": layout_file,
            "bus": bus,
            "mode": TradingMode.PAPER,
            "engine_state": EngineState.IDLE,
            "database_location": str(layout_file.parent / "cts-desktop.db"),
            "log_handler": QtLogHandler(),
        }
        options.update(overrides)
        window = MainWindow(**options)  # type: ignore[arg-type]
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if shiboken6.isValid(window):
            window.finish_close()
            shiboken6.delete(window)


def destroy(window: MainWindow) -> None:
    window.finish_close()
    shiboken6.delete(window)


def label(window: MainWindow, name: str) -> QLabel:
    found = window.findChild(QLabel, name)
    assert found is not None, name
    return found


def assert_default_layout(window: MainWindow) -> None:
    for title in DOCK_TITLES:
        dock = window.dock(title)
        assert window.dockWidgetArea(dock) == DEFAULT_AREAS[title], title
        assert not dock.isFloating(), title
        assert not dock.isHidden(), title
    tabs = {window.dock(t) for t in ("Orders", "Strategies", "Logs")}
    assert set(window.tabifiedDockWidgets(window.dock("Positions"))) == tabs


# -- docks and menus -----------------------------------------------------------------------------


def test_every_dock_exists_with_its_title_and_a_stable_object_name(make_window: WindowFactory) -> None:
    window = make_window()

    assert window.dock_titles() == list(DOCK_TITLES)
    for title in DOCK_TITLES:
        dock = window.dock(title)
        assert dock.windowTitle() == title
        assert dock.objectName() == f"dock_{title.lower()}"
    with pytest.raises(KeyError):
        window.dock("Nope")


def test_default_arrangement_gives_the_chart_the_most_room(make_window: WindowFactory, qtbot: QtBot) -> None:
    window = make_window()
    qtbot.waitExposed(window)

    assert_default_layout(window)
    chart, market = window.dock("Chart"), window.dock("Market")
    assert chart.width() > market.width() and chart.width() > window.dock("Engine").width()
    assert window.findChild(QLabel, "placeholder") is not None  # table docks say what will appear


def test_each_dock_can_be_closed_and_reopened_from_the_view_menu(make_window: WindowFactory) -> None:
    window = make_window()
    view_actions = window.view_menu.actions()

    assert [a.text() for a in view_actions if not a.isSeparator()] == [*DOCK_TITLES, "&Reset layout"]
    for title in DOCK_TITLES:
        dock = window.dock(title)
        action = dock.toggleViewAction()
        assert action in view_actions
        dock.close()
        assert dock.isHidden() and not action.isChecked()
        action.trigger()
        assert not dock.isHidden() and action.isChecked()
        action.trigger()
        assert dock.isHidden()
        action.trigger()
        assert not dock.isHidden()


def test_each_dock_can_float_and_dock_again(make_window: WindowFactory) -> None:
    window = make_window()
    for title in DOCK_TITLES:
        dock = window.dock(title)
        dock.setFloating(True)
        assert dock.isFloating(), title
        dock.setFloating(False)
        assert not dock.isFloating() and window.dockWidgetArea(dock) == DEFAULT_AREAS[title]


def test_the_chart_dock_holds_a_plot_with_a_date_axis(make_window: WindowFactory) -> None:
    import pyqtgraph as pg

    chart = make_window().dock("Chart").widget()
    assert isinstance(chart, pg.PlotWidget)
    assert isinstance(chart.getPlotItem().getAxis("bottom"), pg.DateAxisItem)


# -- layout persistence --------------------------------------------------------------------------


def rearrange(window: MainWindow) -> None:
    window.addDockWidget(RIGHT, window.dock("Market"))
    window.addDockWidget(TOP, window.dock("Logs"))
    window.dock("Chart").setFloating(True)
    window.dock("Strategies").close()


def test_the_layout_survives_a_restart(make_window: WindowFactory, layout_file: Path) -> None:
    first = make_window()
    assert not first.restore_layout()  # nothing saved yet
    rearrange(first)
    first.save_layout()
    destroy(first)
    assert layout_file.is_file()

    second = make_window()

    assert second.dockWidgetArea(second.dock("Market")) == RIGHT
    assert second.dockWidgetArea(second.dock("Logs")) == TOP
    assert second.dock("Chart").isFloating()
    assert second.dock("Strategies").isHidden()
    assert not second.dock("Strategies").toggleViewAction().isChecked()
    assert not second.dock("Orders").isHidden()
    assert second.restore_layout()


def test_reset_layout_restores_the_default_arrangement(make_window: WindowFactory, qtbot: QtBot) -> None:
    window = make_window()
    rearrange(window)

    window.reset_layout()

    assert_default_layout(window)
    qtbot.waitUntil(lambda: window.dock("Chart").width() > window.dock("Market").width())


def test_reset_layout_is_in_the_view_menu(make_window: WindowFactory) -> None:
    window = make_window()
    rearrange(window)
    (reset,) = [a for a in window.view_menu.actions() if a.objectName() == "action_reset_layout"]

    reset.trigger()

    assert_default_layout(window)


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff\xfe garbage \x01\x02 not an ini file at all \xff" * 20,
        b"[layout]\nversion=1\nstate=@ByteArray(not a dock state)\ngeometry=@ByteArray(nope)\n",
        b"[layout]\nversion=1\nstate=42\n",
    ],
    ids=["binary", "bad-state", "wrong-type"],
)
def test_a_corrupt_layout_file_gives_the_default_layout(
    make_window: WindowFactory, layout_file: Path, content: bytes
) -> None:
    layout_file.parent.mkdir(parents=True, exist_ok=True)
    layout_file.write_bytes(content)

    window = make_window()

    assert_default_layout(window)
    assert not window.restore_layout()


def test_a_layout_from_another_version_is_ignored(make_window: WindowFactory, layout_file: Path) -> None:
    first = make_window()
    rearrange(first)
    first.save_layout()
    destroy(first)
    settings = QSettings(str(layout_file), QSettings.Format.IniFormat)
    settings.setValue("layout/version", 999)
    settings.sync()

    window = make_window()

    assert_default_layout(window)
    assert not window.restore_layout()


# -- status bar ----------------------------------------------------------------------------------


def test_status_bar_shows_paper_mode_engine_state_and_database(
    make_window: WindowFactory, layout_file: Path
) -> None:
    window = make_window(engine_state=EngineState.STOPPED)

    assert label(window, "status_mode").text() == "PAPER"
    assert "bold" not in label(window, "status_mode").styleSheet()
    assert label(window, "status_engine").text() == "Engine: stopped"
    assert str(layout_file.parent / "cts-desktop.db") in label(window, "status_database").text()
    assert window.windowTitle() == "cts-desktop — PAPER"
    assert all(window.statusBar().isAncestorOf(label(window, n)) for n in ("status_mode", "status_engine"))


def test_live_mode_is_red_and_bold(make_window: WindowFactory) -> None:
    window = make_window(mode=TradingMode.LIVE)

    mode = label(window, "status_mode")
    assert mode.text() == "LIVE"
    assert "bold" in mode.styleSheet() and "#c62828" in mode.styleSheet()
    assert window.windowTitle() == "cts-desktop — LIVE"
    window.set_mode(TradingMode.PAPER)
    assert mode.text() == "PAPER" and window.windowTitle() == "cts-desktop — PAPER"


def test_a_password_in_a_database_url_is_not_shown(make_window: WindowFactory) -> None:
    window = make_window(database_location="postgresql+asyncpg://trader:hunter2@db.local:5432/cts")

    text = label(window, "status_database").text() + label(window, "status_database").toolTip()
    assert "hunter2" not in text
    assert "postgresql+asyncpg://trader:***@db.local:5432/cts" in text


@pytest.mark.asyncio
async def test_the_engine_state_follows_global_engine_events(
    make_window: WindowFactory, bus: EventBus
) -> None:
    window = make_window()
    engine = label(window, "status_engine")

    bus.publish(EngineStateChanged(connection_id=None, old=EngineState.IDLE, new=EngineState.RUNNING))
    assert engine.text() == "Engine: running"

    bus.publish(EngineStateChanged(connection_id="binance-1", old=EngineState.RUNNING, new=EngineState.ERROR))
    assert engine.text() == "Engine: running"  # one connection's engine is not the global state

    event = EngineStateChanged(
        connection_id=None, old=EngineState.RUNNING, new=EngineState.PAUSED, reason="user"
    )
    threading.Thread(target=bus.publish, args=(event,)).start()
    await wait_for(lambda: engine.text() == "Engine: paused")
    assert engine.toolTip() == "user"


# -- logs dock -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_logs_dock_shows_records_from_the_handler(make_window: WindowFactory) -> None:
    handler = QtLogHandler()
    window = make_window(log_handler=handler)
    log = logging.getLogger("cts.test.window")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("engine started")
        await wait_for(lambda: window.logs_panel.model.rowCount() == 1)
        assert window.dock("Logs").widget() is window.logs_panel
    finally:
        log.removeHandler(handler)


# -- closing -------------------------------------------------------------------------------------


def test_the_first_close_requests_shutdown_and_keeps_the_window_open(
    make_window: WindowFactory, layout_file: Path
) -> None:
    window = make_window()
    requests: list[bool] = []
    window.shutdown_requested.connect(lambda: requests.append(True))

    assert not window.close()
    assert window.isVisible() and requests == [True]
    (quit_action,) = [
        a for a in window.menuBar().actions()[0].menu().actions() if a.objectName() == "action_quit"
    ]
    quit_action.trigger()  # Quit goes the same way; a second request is not emitted twice
    assert window.isVisible() and requests == [True]
    assert not layout_file.exists()

    window.finish_close()

    assert not window.isVisible()
    assert layout_file.is_file()


@pytest.fixture
def no_quit_on_last_window(qapp: QApplication) -> Iterator[None]:
    """As the composition root sets it (PITFALLS): else closing the window stops the qasync loop."""
    previous = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(previous)


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_quit_on_last_window")
async def test_async_shutdown_then_finish_close(make_window: WindowFactory, layout_file: Path) -> None:
    """The composition root's protocol under qasync: close → async shutdown → finish_close()."""
    window = make_window()
    stopped: list[bool] = []
    tasks: set[asyncio.Task[None]] = set()

    async def shutdown() -> None:
        await asyncio.sleep(0.05)  # the engine stopping
        stopped.append(True)
        window.finish_close()

    window.shutdown_requested.connect(lambda: tasks.add(asyncio.ensure_future(shutdown())))
    window.close()
    assert window.isVisible()

    await wait_for(lambda: not window.isVisible())
    assert stopped == [True]
    await wait_for(layout_file.is_file)


# -- the engine docks, menu and alerts ---------------------------------------------------------------


def engine_actions(window: MainWindow) -> dict[str, QAction]:
    return {a.objectName(): a for a in window.engine_menu.actions()}


def test_without_a_coordinator_the_engine_docks_are_placeholders_and_the_menu_is_off(
    make_window: WindowFactory,
) -> None:
    window = make_window()

    assert window.coordinator is None
    for title in ("Engine", "Positions", "Orders"):
        assert isinstance(window.dock(title).widget(), TablePanel), title
    assert window.engine_panel is None and window.orders_panel is None and window.positions_panel is None
    actions = engine_actions(window)
    assert set(actions) == {"action_reconcile", "action_go_live"}
    assert not any(action.isEnabled() for action in actions.values())
    assert window.open_reconcile_dialog() is None and window.open_go_live_dialog() is None


@pytest.mark.asyncio
async def test_with_a_coordinator_the_engine_positions_and_orders_docks_are_live(
    make_window: WindowFactory, bus: EventBus
) -> None:
    coordinator = FakeCoordinator(bus)
    coordinator.add("c1", "Binance main", state=EngineState.RUNNING)
    window = make_window(coordinator=coordinator)

    assert window.coordinator is coordinator
    assert window.dock("Engine").widget() is window.engine_panel
    assert isinstance(window.engine_panel, EnginePanel) and window.engine_panel.card_ids() == ["c1"]
    assert isinstance(window.dock("Positions").widget(), PositionsPanel)
    assert isinstance(window.dock("Orders").widget(), OrdersPanel)
    assert all(action.isEnabled() for action in engine_actions(window).values())

    await coordinator.pause("c1")
    await wait_for(lambda: window.engine_panel.card("c1").state_badge.text() == "PAUSED")
    assert label(window, "status_engine").text() == "Engine: paused"  # the global state, from the same events


@pytest.mark.asyncio
async def test_the_status_bar_says_live_while_any_live_engine_is_up(
    make_window: WindowFactory, bus: EventBus
) -> None:
    coordinator = FakeCoordinator(bus)
    coordinator.add("c1", "Binance main", state=EngineState.RUNNING)
    coordinator.add("c2", "Bybit live", state=EngineState.IDLE, mode=TradingMode.LIVE)
    window = make_window(coordinator=coordinator)
    assert label(window, "status_mode").text() == "PAPER"  # a live connection that is not up
    coordinator.add("c2", "Bybit live", state=EngineState.RUNNING, mode=TradingMode.LIVE, publish=True)
    await wait_for(lambda: label(window, "status_mode").text() == "LIVE")
    assert window.windowTitle() == "cts-desktop — LIVE"
    await coordinator.stop("c2")
    await wait_for(lambda: label(window, "status_mode").text() == "PAPER")


@pytest.mark.asyncio
async def test_a_tripped_circuit_breaker_stays_on_the_banner_until_dismissed(
    make_window: WindowFactory, bus: EventBus, qtbot: QtBot
) -> None:
    coordinator = FakeCoordinator(bus)
    coordinator.add("c1", "Binance main", state=EngineState.RUNNING)
    window = make_window(coordinator=coordinator)
    banner = window.banner
    assert not banner.isVisible()

    bus.publish(CircuitBreakerTripped("c1", "daily_loss", "daily loss 5.2 % over the 5 % limit"))
    bus.publish(CircuitBreakerTripped("c1", "daily_loss", "daily loss 5.2 % over the 5 % limit"))

    assert banner.isVisible()
    [line] = banner.messages()
    assert line.endswith(
        "Circuit breaker 'daily_loss' tripped on Binance main: daily loss 5.2 % over the 5 % limit  (×2)"
    )
    qtbot.mouseClick(banner.dismiss_button, Qt.MouseButton.LeftButton)
    assert not banner.isVisible() and banner.messages() == []


def test_a_refused_order_is_shown_in_the_status_bar_with_its_rule(
    make_window: WindowFactory, bus: EventBus
) -> None:
    coordinator = FakeCoordinator(bus)
    coordinator.add("c1", "Binance main")
    window = make_window(coordinator=coordinator)

    decision = RiskDecision.refuse("max_open_positions", "10 positions are open; the limit is 10", open=10.0)
    bus.publish(OrderRefused("c1", "BTC/USDT:USDT", decision))

    assert window.statusBar().currentMessage() == (
        "Order refused on Binance main BTC/USDT:USDT: "
        "max_open_positions: 10 positions are open; the limit is 10"
    )


@pytest.mark.asyncio
async def test_the_engine_menu_opens_reconciliation_and_the_go_live_checklist(
    make_window: WindowFactory, bus: EventBus
) -> None:
    coordinator = FakeCoordinator(bus)
    coordinator.add("c1", "Binance main")
    coordinator.checklist_items["c1"] = (ChecklistItem("real_money", "I understand", False, None),)
    window = make_window(coordinator=coordinator)
    actions = engine_actions(window)

    actions["action_reconcile"].trigger()
    reconcile = window.reconcile_dialog
    assert reconcile is not None and reconcile.isVisible()
    await wait_for(lambda: not reconcile.busy and bool(coordinator.calls_to("reconcile")))
    assert reconcile.status_label.text() == "No differences: local records match the exchange."

    decisions: list[object] = []
    window.go_live_confirmed.connect(decisions.append)
    actions["action_go_live"].trigger()
    go_live = window.go_live_dialog
    assert go_live is not None and go_live.isVisible()
    await wait_for(lambda: go_live.checklist is not None and not go_live.busy)
    go_live.decided.emit("the decision")  # the dialog's own flow is tested in test_go_live_dialog
    assert decisions == ["the decision"]

    window.finish_close()  # closes the dialogs with the window
    assert not reconcile.isVisible() and not go_live.isVisible()
