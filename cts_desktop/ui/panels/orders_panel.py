"""The Orders dock: every open order of every connection, paper and live, with its state.

Read-only for now: the engine owns the orders (cancelling by hand is a later feature and would
go through the coordinator, never to a venue from here). Reloads on ``OrdersChanged``.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from cts_desktop.domain.orders import OrderView
from cts_desktop.engine.events import OrdersChanged
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.models.orders_model import CLIENT_ID, MODE, SIDE, SYMBOL, TIME, OrdersTableModel
from cts_desktop.ui.panels.live_table_panel import LiveTablePanel


class OrdersPanel(LiveTablePanel):
    """Open orders, newest first."""

    change_event = OrdersChanged

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

    async def fetch(self) -> Sequence[OrderView]:
        return await self._facade.open_orders()
