"""The main window: eight movable docks, a saved layout and a status bar that never lies about mode.

The window owns no trading logic. Closing it does not quit: the first close only asks the
composition root (``shutdown_requested``) to stop the engine gracefully — awaiting that inside
``closeEvent`` would need a nested event loop, which qasync forbids — and the root calls
:meth:`MainWindow.finish_close` when it is done.
"""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path
from typing import Final

import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QTabWidget, QToolBar, QWidget

from cts_desktop.domain.engine import desk_mode
from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.engine.connection_test import ConnectionTester
from cts_desktop.engine.connections import ConnectionService
from cts_desktop.engine.events import (
    CircuitBreakerTripped,
    EngineSnapshotChanged,
    EngineStateChanged,
    EventBus,
    OrderRefused,
)
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.storage.secrets import KeyringStatus
from cts_desktop.ui.banner import Banner
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.dialogs.go_live_dialog import GoLiveDialog, balance_reader_from_tester
from cts_desktop.ui.dialogs.reconcile_dialog import ReconcileDialog
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.log_handler import QtLogHandler
from cts_desktop.ui.panels.connections_panel import ConnectionsPanel
from cts_desktop.ui.panels.engine_panel import EnginePanel
from cts_desktop.ui.panels.logs_panel import LogsPanel
from cts_desktop.ui.panels.market_panel import MarketPanel
from cts_desktop.ui.panels.orders_panel import OrdersPanel
from cts_desktop.ui.panels.positions_panel import PositionsPanel
from cts_desktop.ui.panels.table_panel import TablePanel
from cts_desktop.ui.theme import MODE_STYLES

log = logging.getLogger(__name__)

#: Bump when docks are added, removed or renamed: an older saved state is then ignored.
LAYOUT_VERSION: Final = 1
DOCK_TITLES: Final = ("Market", "Chart", "Engine", "Connections", "Positions", "Orders", "Strategies", "Logs")
_LEFT, _RIGHT = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
_TOP, _BOTTOM = Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
DEFAULT_AREAS: Final[dict[str, Qt.DockWidgetArea]] = {
    "Market": _LEFT,
    "Chart": _TOP,
    "Engine": _RIGHT,
    "Connections": _RIGHT,
    "Positions": _BOTTOM,
    "Orders": _BOTTOM,
    "Strategies": _BOTTOM,
    "Logs": _BOTTOM,
}
_BOTTOM_TABS: Final = ("Positions", "Orders", "Strategies", "Logs")
_TABLES: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "Market": (
        ("Symbol", "Last", "Bid", "Ask", "24h %", "Volume", "Updated"),
        "Live prices of the watched symbols of every connection.",
    ),
    "Engine": (
        ("Component", "State", "Since", "Detail"),
        "The engine state machine, each connection's engine and its supervised tasks.",
    ),
    "Connections": (
        ("Name", "Exchange", "Mode", "State", "Latency", "Last message"),
        "Exchange connections with their mode, state and health.",
    ),
    "Positions": (
        ("Connection", "Symbol", "Side", "Size", "Entry", "Mark", "Unrealised PnL", "Leverage"),
        "Open positions (exchange and paper) with live profit and loss.",
    ),
    "Orders": (
        ("Time", "Connection", "Symbol", "Side", "Type", "Price", "Amount", "Filled", "Status", "Client id"),
        "Orders from intent to fill, cancellation or failure.",
    ),
    "Strategies": (
        ("Set", "Configuration", "Stage", "Trades", "Win rate", "Profit factor", "PnL"),
        "Strategy sets and their pseudo positions promoted Base → Main → Real.",
    ),
}
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")
REFUSAL_MESSAGE_MS: Final = 15_000  # long enough to read a rule and its numbers


def redact_location(location: str) -> str:
    """Hide a password in a database URL: the status bar is visible in screenshots and screen shares."""
    return _URL_PASSWORD.sub(r"\1***@", location)


class MainWindow(QMainWindow):
    """Docks, menus, saved layout and status bar; see the module docstring for the close protocol.

    The Market dock shows ``market_bus`` (the symbols of ``market_source``), the Connections
    dock manages ``connections`` (tested with ``tester``, secrets gated by ``keyring``), and the
    Engine, Positions and Orders docks and the Engine menu drive ``coordinator``; each keeps its
    placeholder table when its service is not given (tests, partial start-ups).

    ``go_live_confirmed(GoLiveDecision)``: the user completed the go-live checklist and typed the
    exchange's name. The window switches nothing itself; the composition root verifies the
    decision and flips the connection to live.
    """

    shutdown_requested = Signal()
    go_live_confirmed = Signal(object)

    def __init__(
        self,
        *,
        layout_file: Path,
        bus: EventBus,
        mode: TradingMode,
        engine_state: EngineState,
        database_location: str,
        log_handler: QtLogHandler,
        market_bus: MarketBus | None = None,
        market_source: str = "simulated",
        connections: ConnectionService | None = None,
        tester: ConnectionTester | None = None,
        keyring: KeyringStatus | None = None,
        coordinator: EngineFacade | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("main_window")
        self.coordinator = coordinator
        self.engine_panel: EnginePanel | None = None
        self.positions_panel: PositionsPanel | None = None
        self.orders_panel: OrdersPanel | None = None
        self.reconcile_dialog: ReconcileDialog | None = None
        self.go_live_dialog: GoLiveDialog | None = None
        self._market_bus = market_bus
        self._market_source = market_source
        self._connections = connections
        self._tester = tester
        self._keyring = keyring
        self.market_panel: MarketPanel | None = None
        self.connections_panel: ConnectionsPanel | None = None
        self._layout_file = layout_file
        self._shutdown_pending = False
        self._close_allowed = False
        self._docks: dict[str, QDockWidget] = {}
        self.resize(1500, 900)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AllowNestedDocks
        )
        # Market and Engine/Connections run the full height; the tab group spans the full width.
        self.setCorner(Qt.Corner.TopLeftCorner, _LEFT)
        self.setCorner(Qt.Corner.TopRightCorner, _RIGHT)
        self.setCorner(Qt.Corner.BottomLeftCorner, _BOTTOM)
        self.setCorner(Qt.Corner.BottomRightCorner, _BOTTOM)
        self.setTabPosition(_BOTTOM, QTabWidget.TabPosition.North)

        # Before the docks: the live panels listen to the same bridge as the window.
        self._bridge = EventBridge(bus, self)
        self._bridge.received.connect(self._on_event)
        self.logs_panel = LogsPanel(parent=self)
        self.logs_panel.attach(log_handler)
        self._create_docks()
        self._create_banner()
        self._create_menus()
        self._create_status_bar(database_location)
        self.set_mode(mode)
        self.set_engine_state(engine_state)
        self._arrange_default()
        self.restore_layout()

    # -- construction -------------------------------------------------------------------------

    def _create_docks(self) -> None:
        for title in DOCK_TITLES:
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{title.lower()}")  # saveState() keys docks by objectName
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            dock.setWidget(self._panel_for(title))
            self._docks[title] = dock

    def _panel_for(self, title: str) -> QWidget:
        if title == "Logs":
            return self.logs_panel
        if title == "Chart":
            chart = pg.PlotWidget(parent=self, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
            chart.setObjectName("chart")
            chart.showGrid(x=True, y=True, alpha=0.2)
            chart.setTitle("Select a symbol in the Market panel")
            widget: QWidget = chart
            return widget
        if title == "Market" and self._market_bus is not None:
            self.market_panel = MarketPanel(
                self._market_bus, self._bridge, source=self._market_source, parent=self
            )
            return self.market_panel
        if title == "Connections" and self._connections is not None:
            self.connections_panel = ConnectionsPanel(
                self._connections, self._bridge, tester=self._tester, keyring=self._keyring, parent=self
            )
            return self.connections_panel
        if self.coordinator is not None:
            if title == "Engine":
                self.engine_panel = EnginePanel(self.coordinator, self._bridge, self)
                return self.engine_panel
            if title == "Positions":
                self.positions_panel = PositionsPanel(self.coordinator, self._bridge, self)
                return self.positions_panel
            if title == "Orders":
                self.orders_panel = OrdersPanel(self.coordinator, self._bridge, self)
                return self.orders_panel
        columns, placeholder = _TABLES[title]
        panel = TablePanel(columns, placeholder, self)
        panel.setObjectName(f"panel_{title.lower()}")
        return panel

    def _create_banner(self) -> None:
        """Alerts strip above the docks; a toolbar, so it takes no room while empty and hidden."""
        self.banner = Banner(self)
        self._banner_bar = QToolBar("Alerts", self)
        self._banner_bar.setObjectName("toolbar_alerts")  # saveState() keys toolbars by objectName
        self._banner_bar.setMovable(False)
        self._banner_bar.setFloatable(False)
        self._banner_bar.toggleViewAction().setVisible(False)  # not a user-toggled toolbar
        self._banner_bar.addWidget(self.banner)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self._banner_bar)
        self.banner.changed.connect(self._sync_banner)
        self._sync_banner()

    def _sync_banner(self) -> None:
        self._banner_bar.setVisible(self.banner.has_messages())

    def _create_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setObjectName("action_quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)  # the same graceful path as the title-bar button
        file_menu.addAction(quit_action)

        self.view_menu = self.menuBar().addMenu("&View")
        for title in DOCK_TITLES:
            self.view_menu.addAction(self._docks[title].toggleViewAction())
        self.view_menu.addSeparator()
        reset_action = QAction("&Reset layout", self)
        reset_action.setObjectName("action_reset_layout")
        reset_action.triggered.connect(self.reset_layout)
        self.view_menu.addAction(reset_action)

        self.engine_menu = self.menuBar().addMenu("&Engine")
        self.reconcile_action = QAction("&Reconcile…", self)
        self.reconcile_action.setObjectName("action_reconcile")
        self.reconcile_action.triggered.connect(self.open_reconcile_dialog)
        self.go_live_action = QAction("&Go-live checklist…", self)
        self.go_live_action.setObjectName("action_go_live")
        self.go_live_action.triggered.connect(self.open_go_live_dialog)
        for action in (self.reconcile_action, self.go_live_action):
            action.setEnabled(self.coordinator is not None)
            self.engine_menu.addAction(action)

    def _create_status_bar(self, database_location: str) -> None:
        self._mode_label = QLabel(self)
        self._mode_label.setObjectName("status_mode")
        self._engine_label = QLabel(self)
        self._engine_label.setObjectName("status_engine")
        location = redact_location(database_location)
        self._database_label = QLabel(f"DB: {location}", self)
        self._database_label.setObjectName("status_database")
        self._database_label.setToolTip(location)
        bar = self.statusBar()
        for label in (self._mode_label, self._engine_label, self._database_label):
            bar.addPermanentWidget(label)

    def _arrange_default(self) -> None:
        for title in DOCK_TITLES:
            dock = self._docks[title]
            self.addDockWidget(DEFAULT_AREAS[title], dock)
            dock.show()
        for first, second in itertools.pairwise(_BOTTOM_TABS):
            self.tabifyDockWidget(self._docks[first], self._docks[second])
        self._docks[_BOTTOM_TABS[0]].raise_()
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        # The chart must be named too: with no central widget, the space it does not claim goes to
        # the side docks and it shrinks to its minimum width.
        market, chart, engine = (self._docks[title] for title in ("Market", "Chart", "Engine"))
        # The watch list needs room for all its columns (last, bid, ask, 24h %, status, age).
        self.resizeDocks([market, chart, engine], [520, 600, 380], horizontal)
        self.resizeDocks([chart, self._docks["Positions"]], [540, 300], vertical)

    # -- docks ----------------------------------------------------------------------------------

    def dock_titles(self) -> list[str]:
        return list(DOCK_TITLES)

    def dock(self, title: str) -> QDockWidget:
        """The dock with this title; ``KeyError`` for an unknown one."""
        return self._docks[title]

    # -- layout ---------------------------------------------------------------------------------

    def save_layout(self) -> None:
        """Write window geometry and dock state to the layout file (INI, via QSettings)."""
        self._layout_file.parent.mkdir(parents=True, exist_ok=True)
        settings = QSettings(str(self._layout_file), QSettings.Format.IniFormat)
        settings.setValue("layout/version", LAYOUT_VERSION)
        settings.setValue("layout/geometry", self.saveGeometry())
        settings.setValue("layout/state", self.saveState(LAYOUT_VERSION))
        settings.sync()
        if settings.status() != QSettings.Status.NoError:
            log.warning("could not save the window layout to %s: %s", self._layout_file, settings.status())

    def restore_layout(self) -> bool:
        """Apply the saved layout; False, with the current layout untouched, when there is none usable.

        A layout from another LAYOUT_VERSION is ignored rather than half-applied: the dock set it
        describes may differ from ours.
        """
        if not self._layout_file.is_file():
            return False
        settings = QSettings(str(self._layout_file), QSettings.Format.IniFormat)
        if settings.status() != QSettings.Status.NoError:
            log.warning("ignoring unreadable window layout %s", self._layout_file)
            return False
        if str(settings.value("layout/version", "")) != str(LAYOUT_VERSION):
            log.info("ignoring window layout %s from another layout version", self._layout_file)
            return False
        state = settings.value("layout/state")
        geometry = settings.value("layout/geometry")
        if not isinstance(state, QByteArray) or not self.restoreState(state, LAYOUT_VERSION):
            log.warning("ignoring invalid window layout %s", self._layout_file)
            return False
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        self._sync_banner()  # the saved state may have had alerts showing; these are gone
        return True

    def reset_layout(self) -> None:
        """Every dock visible, docked at its default area, with default sizes."""
        for dock in self._docks.values():
            dock.setFloating(False)
            self.removeDockWidget(dock)
        self._arrange_default()

    # -- status ---------------------------------------------------------------------------------

    def set_mode(self, mode: TradingMode) -> None:
        text = mode.value.upper()
        self._mode_label.setText(text)
        self._mode_label.setStyleSheet(MODE_STYLES[mode])
        self._mode_label.setToolTip(
            "Live trading: orders go to the exchange with real funds"
            if mode is TradingMode.LIVE
            else "Paper trading: simulated orders, no real funds"
        )
        self.setWindowTitle(f"cts-desktop — {text}")

    def set_engine_state(self, state: EngineState, reason: str = "") -> None:
        self._engine_label.setText(f"Engine: {state.value}")
        self._engine_label.setToolTip(reason)

    def _on_event(self, event: object) -> None:
        if isinstance(event, EngineStateChanged) and event.connection_id is None:
            self.set_engine_state(event.new, event.reason)
        elif isinstance(event, EngineSnapshotChanged):
            self._refresh_mode()
        elif isinstance(event, OrderRefused):
            decision = event.decision
            self.statusBar().showMessage(
                f"Order refused on {self._connection_name(event.connection_id)} {event.symbol}: "
                f"{decision.rule or 'refused'}: {decision.message}",
                REFUSAL_MESSAGE_MS,
            )
        elif isinstance(event, CircuitBreakerTripped):
            self.banner.add(
                f"Circuit breaker '{event.breaker}' tripped on {self._connection_name(event.connection_id)}: "
                f"{event.reason}"
            )

    def _refresh_mode(self) -> None:
        """LIVE as soon as any engine that is up trades live; PAPER only when none does."""
        if self.coordinator is None:
            return
        mode = desk_mode(self.coordinator.snapshots())
        if self._mode_label.text() != mode.value.upper():  # a snapshot arrives about once a second
            self.set_mode(mode)

    def _connection_name(self, connection_id: str) -> str:
        if self.coordinator is not None:
            try:
                return self.coordinator.snapshot(connection_id).name
            except LookupError:  # a connection the coordinator does not (or no longer) know
                pass
        return connection_id

    # -- engine dialogs -------------------------------------------------------------------------

    def open_reconcile_dialog(self) -> ReconcileDialog | None:
        """Open (non-modally) the reconciliation of a connection and start the first check."""
        if self.coordinator is None:
            return None
        previous, self.reconcile_dialog = (
            self.reconcile_dialog,
            ReconcileDialog(self.coordinator, parent=self),
        )
        self._discard(previous)
        self.reconcile_dialog.open()
        self.reconcile_dialog.check()
        return self.reconcile_dialog

    def open_go_live_dialog(self) -> GoLiveDialog | None:
        """Open (non-modally) the go-live checklist; its decision is re-emitted as ``go_live_confirmed``."""
        if self.coordinator is None:
            return None
        reader = balance_reader_from_tester(self._tester) if self._tester is not None else None
        dialog = GoLiveDialog(self.coordinator, balance_reader=reader, parent=self)
        previous, self.go_live_dialog = self.go_live_dialog, dialog
        self._discard(previous)
        dialog.decided.connect(self.go_live_confirmed)
        dialog.open()
        dialog.load()
        return dialog

    @staticmethod
    def _discard(dialog: QWidget | None) -> None:
        if dialog is not None and shiboken6.isValid(dialog):
            dialog.close()
            dialog.deleteLater()

    # -- closing --------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """First close: ask for the graceful shutdown and stay open; after finish_close(): close."""
        if self._close_allowed:
            event.accept()
            return
        event.ignore()
        if not self._shutdown_pending:  # a second click while shutting down must not start another
            self._shutdown_pending = True
            self.shutdown_requested.emit()

    def finish_close(self) -> None:
        """Called by the composition root once the engine has stopped: save the layout, then close."""
        try:
            self.save_layout()
        except Exception:
            log.exception("could not save the window layout")
        if self.market_panel is not None:
            self.market_panel.stop()
        if self.connections_panel is not None:
            self.connections_panel.stop()
        for panel in (self.engine_panel, self.positions_panel, self.orders_panel):
            if panel is not None:
                panel.stop()
        for dialog in (self.reconcile_dialog, self.go_live_dialog):
            self._discard(dialog)
        self._bridge.close()
        self.logs_panel.detach()
        self._close_allowed = True
        self.close()
