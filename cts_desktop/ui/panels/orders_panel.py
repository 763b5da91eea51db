"""The Orders dock: every open order of every connection, paper and live, with its state.

"Cancel order" cancels the selected order through the coordinator (never a venue from here);
the coordinator audits it as the user's. Reloads on ``OrdersChanged``.
"""

from __future__ import annotations

from collections.abc import Sequence

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from cts_desktop.domain.enums import Actor
from cts_desktop.domain.orders import OrderView
from cts_desktop.engine.events import OrdersChanged
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.models.orders_model import CLIENT_ID, MODE, SIDE, SYMBOL, TIME, OrdersTableModel
from cts_desktop.ui.panels.live_table_panel import LiveTablePanel


class OrdersPanel(LiveTablePanel):
    """Open orders, newest first."""

    change_event = OrdersChanged
    cancelled = Signal(object)  # the OrderView as it ended

    def __init__(self, facade: EngineFacade, bridge: EventBridge, parent: QWidget | None = None) -> None:
        model = OrdersTableModel()
        super().__init__(facade, bridge, model, name="orders", noun="order", parent=parent)
        self.orders_model = model
        header = self.view.horizontalHeader()
        header.resizeSection(TIME, 80)
        header.resizeSection(MODE, 55)
        header.resizeSection(SYMBOL, 130)
        header.resizeSection(SIDE, 45)
        header.resizeSection(CLIENT_ID, 200)
        self.view.sortByColumn(TIME, Qt.SortOrder.DescendingOrder)
        self.cancel_button = QPushButton("Cancel order", self)
        self.cancel_button.setObjectName("orders_cancel")
        self.cancel_button.setToolTip("Cancel the selected order on its exchange (through the engine)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_selected)
        actions = QHBoxLayout()
        actions.addStretch(1)
        actions.addWidget(self.cancel_button)
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.insertLayout(1, actions)
        self._actions = TaskRunner("orders panel actions", on_error=self._on_cancel_error)
        self.view.selectionModel().selectionChanged.connect(self._update_buttons)
        self.loaded.connect(self._update_buttons)

    def selected_order(self) -> OrderView | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        order: OrderView = self.orders_model.row_at(self.proxy.mapToSource(rows[0]).row())
        return order

    def _update_buttons(self) -> None:
        if not shiboken6.isValid(self):
            return  # a cancel that ended after the window closed
        order = self.selected_order()
        self.cancel_button.setEnabled(
            order is not None and not order.status.is_final and not self._actions.busy
        )

    def cancel_selected(self) -> None:
        order = self.selected_order()
        if order is None or self._actions.busy:
            return
        self.cancel_button.setEnabled(False)
        self._actions.start(self._cancel(order), on_done=lambda: self._update_buttons())

    async def _cancel(self, order: OrderView) -> None:
        result = await self._facade.cancel_order(order.connection_id, order.client_order_id, actor=Actor.USER)
        self._show_error("")
        self.cancelled.emit(result)

    def _on_cancel_error(self, error: BaseException) -> None:
        if shiboken6.isValid(self):
            self._show_error(f"Could not cancel the order: {error}")
            self._update_buttons()

    def stop(self) -> None:
        self._actions.cancel_all()
        super().stop()

    async def fetch(self) -> Sequence[OrderView]:
        return await self._facade.open_orders()
