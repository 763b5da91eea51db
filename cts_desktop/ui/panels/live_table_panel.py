"""The shared body of the Orders and Positions docks: a sortable table reloaded from the engine.

A change event (``OrdersChanged`` / ``PositionsChanged``) only schedules a reload; the reload
reads the coordinator's full list once and merges it into the keyed model. A burst of events
(a fill changes an order, a position and the balance within milliseconds) thus costs one read
and one repaint, and a reload never overlaps another: a change that lands during a read asks
for exactly one more read afterwards. At most one reload per ``RELOAD_DELAY_MS``: 4 per second.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.engine_facade import EngineFacade, connection_names
from cts_desktop.ui.models.keyed_table_model import ConnectionRowsModel, SortProxy
from cts_desktop.ui.theme import ERROR_STYLE

log = logging.getLogger(__name__)

RELOAD_DELAY_MS: Final = 250  # ≤ 4 reloads (and redraws) per second per panel


class LiveTablePanel(QWidget):
    """A count line above a sortable table; subclasses say what to read and which event means "changed".

    ``loaded`` is emitted after every successful reload.
    """

    loaded = Signal()

    #: The event class whose arrival schedules a reload (set by subclasses).
    change_event: type[object] = object

    def __init__(
        self,
        facade: EngineFacade,
        bridge: EventBridge,
        model: ConnectionRowsModel[Any, Any],
        *,
        name: str,
        noun: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName(f"panel_{name}")
        self._facade = facade
        self._bridge: EventBridge | None = bridge
        self._noun = noun
        self._runner = TaskRunner(f"{name} panel", on_error=self._on_error)
        self._reloading = False
        self._reload_again = False
        self.reload_count = 0  # completed reloads: lets tests check the coalescing
        self.model = model
        model.setParent(self)
        self.proxy = SortProxy(self)
        self.proxy.setSourceModel(model)

        self.summary_label = QLabel(self)
        self.summary_label.setObjectName(f"{name}_summary")
        self.error_label = QLabel(self)
        self.error_label.setObjectName(f"{name}_error")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.view = self._build_view(name)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.view)

        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(RELOAD_DELAY_MS)
        self._reload_timer.timeout.connect(self._start_reload)
        bridge.received.connect(self._on_event)
        self._show_summary()
        self.request_reload()

    def _build_view(self, name: str) -> QTableView:
        view = QTableView(self)
        view.setObjectName(f"{name}_view")
        view.setModel(self.proxy)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setWordWrap(False)
        view.setAlternatingRowColors(True)
        view.verticalHeader().hide()
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
        view.horizontalHeader().setStretchLastSection(True)
        view.horizontalHeader().setDefaultSectionSize(90)
        view.setSortingEnabled(True)
        view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        return view

    # -- reading --------------------------------------------------------------------------------

    async def fetch(self) -> Sequence[object]:
        """The full current list from the engine (subclasses)."""
        raise NotImplementedError

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def display_rows(self) -> list[list[str]]:
        """Every cell's text in view order (sorted), for tests and for a CSV export later."""
        proxy = self.proxy
        return [
            [str(proxy.index(row, column).data() or "") for column in range(proxy.columnCount())]
            for row in range(proxy.rowCount())
        ]

    @Slot(object)
    def _on_event(self, event: object) -> None:
        if isinstance(event, self.change_event):
            self.request_reload()

    def request_reload(self) -> None:
        """Reload soon; requests within the delay give one reload."""
        if not self._reload_timer.isActive():
            self._reload_timer.start()

    @Slot()
    def _start_reload(self) -> None:
        if self._reloading:
            self._reload_again = True
            return
        self._reloading = True
        self._runner.start(self.reload(), on_done=self._reload_finished)

    def _reload_finished(self) -> None:
        self._reloading = False
        if self._reload_again and shiboken6.isValid(self):
            self._reload_again = False
            self.request_reload()

    async def reload(self) -> None:
        """Read the engine's list and merge it into the table."""
        rows = await self.fetch()
        if not shiboken6.isValid(self):
            return
        self.model.set_names(connection_names(self._facade))
        self.model.replace_rows(rows)
        self.reload_count += 1
        self._show_error("")
        self._show_summary()
        self.loaded.emit()

    def _show_summary(self) -> None:
        count = self.model.rowCount()
        self.summary_label.setText(f"{count} open {self._noun}{'' if count == 1 else 's'}")

    def _on_error(self, error: BaseException) -> None:
        if shiboken6.isValid(self):
            self._show_error(f"Could not read the open {self._noun}s: {error}")

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def stop(self) -> None:
        """The window is closing: stop listening and reloading; idempotent."""
        self._reload_timer.stop()
        bridge, self._bridge = self._bridge, None
        if bridge is not None and shiboken6.isValid(bridge):
            bridge.received.disconnect(self._on_event)
        self._runner.cancel_all()

    async def wait_idle(self) -> None:
        await self._runner.wait_idle()
