"""The Positions dock: every open position of every connection, paper and live, with live PnL.

Read-only: closing a position by hand is a later feature and would go through the coordinator.
Reloads on ``PositionsChanged``, which the engine publishes when positions open, change or close,
not when the mark price moves. So the mark price and unrealised PnL also refresh every
``MARK_REFRESH_MS`` while the dock shows at least one position (an empty or hidden dock reads
nothing); the reload merges by key, so only the cells that changed are repainted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QWidget

from cts_desktop.domain.orders import PositionView
from cts_desktop.engine.events import PositionsChanged
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.models.positions_model import CONNECTION, MODE, PNL, SIDE, SYMBOL, PositionsTableModel
from cts_desktop.ui.panels.live_table_panel import LiveTablePanel

MARK_REFRESH_MS: Final = 2_000  # marks and PnL between position events: one read every 2 s at most


class PositionsPanel(LiveTablePanel):
    """Open positions, by connection."""

    change_event = PositionsChanged

    def __init__(self, facade: EngineFacade, bridge: EventBridge, parent: QWidget | None = None) -> None:
        model = PositionsTableModel()
        super().__init__(facade, bridge, model, name="positions", noun="position", parent=parent)
        self.positions_model = model
        header = self.view.horizontalHeader()
        header.resizeSection(CONNECTION, 120)
        header.resizeSection(MODE, 55)
        header.resizeSection(SYMBOL, 130)
        header.resizeSection(SIDE, 50)
        header.resizeSection(PNL, 110)
        self.view.sortByColumn(CONNECTION, Qt.SortOrder.AscendingOrder)
        self._mark_timer = QTimer(self)
        self._mark_timer.setInterval(MARK_REFRESH_MS)
        self._mark_timer.timeout.connect(self._refresh_marks)
        self._mark_timer.start()

    async def fetch(self) -> Sequence[PositionView]:
        return await self._facade.open_positions()

    @Slot()
    def _refresh_marks(self) -> None:
        if self.model.rowCount() > 0 and self.isVisible():
            self.request_reload()

    def stop(self) -> None:
        self._mark_timer.stop()
        super().stop()
