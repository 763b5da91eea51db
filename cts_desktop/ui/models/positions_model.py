"""Table model behind the Positions dock: one row per open position (paper or live).

A position is identified by connection, symbol and side (hedge mode holds a long and a short of
one symbol at once); rows are merged by that key on each reload, so a mark-price update changes
cells in place instead of rebuilding the table.
"""

from __future__ import annotations

import math
from typing import Any, Final

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor

from cts_desktop.domain.market import PositionSide
from cts_desktop.domain.orders import PositionView
from cts_desktop.ui.models.keyed_table_model import SORT_ROLE, ConnectionRowsModel
from cts_desktop.ui.models.market_model import format_price
from cts_desktop.ui.models.orders_model import format_amount, format_local_time, mode_cell

COLUMNS: Final = (
    "Connection",
    "Mode",
    "Symbol",
    "Side",
    "Size",
    "Entry",
    "Mark",
    "Unrealised PnL",
    "Leverage",
    "TP",
    "SL",
    "Opened",
)
CONNECTION, MODE, SYMBOL, SIDE, SIZE, ENTRY, MARK, PNL, LEVERAGE, TAKE_PROFIT, STOP_LOSS, OPENED = range(
    len(COLUMNS)
)
_NUMERIC: Final = frozenset({SIZE, ENTRY, MARK, PNL, LEVERAGE, TAKE_PROFIT, STOP_LOSS})

LONG_COLOUR: Final = QColor("#2e7d32")
SHORT_COLOUR: Final = QColor("#d32f2f")
PROFIT_COLOUR: Final = QColor("#2e7d32")
LOSS_COLOUR: Final = QColor("#d32f2f")

type PositionKey = tuple[str, str, PositionSide]


def format_pnl(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+,.2f}"


def format_leverage(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:g}×"


class PositionsTableModel(ConnectionRowsModel[PositionView, PositionKey]):
    """Open positions of every connection; ``set_names`` gives the Connection column its text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(COLUMNS, CONNECTION, parent)

    def key(self, row: PositionView) -> PositionKey:
        return (row.connection_id, row.symbol, row.side)

    def cell(self, row: PositionView, column: int, role: int) -> Any:
        if column == MODE and role != SORT_ROLE:
            return mode_cell(row.mode, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == SIDE:
                return LONG_COLOUR if row.side is PositionSide.LONG else SHORT_COLOUR
            if column == PNL and row.unrealized_pnl:
                return PROFIT_COLOUR if row.unrealized_pnl > 0 else LOSS_COLOUR
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == PNL and row.realized_pnl is not None:
            return f"realised {format_pnl(row.realized_pnl)}"
        return None

    def _display(self, row: PositionView, column: int) -> str:
        if column == CONNECTION:
            return self.connection_name(row.connection_id)
        if column == SYMBOL:
            return row.symbol
        if column == SIDE:
            return row.side.value
        if column == SIZE:
            return format_amount(row.contracts)
        if column == ENTRY:
            return format_price(row.entry_price)
        if column == MARK:
            return format_price(row.mark_price)
        if column == PNL:
            return format_pnl(row.unrealized_pnl)
        if column == LEVERAGE:
            return format_leverage(row.leverage)
        if column == TAKE_PROFIT:
            return format_price(row.take_profit)
        if column == STOP_LOSS:
            return format_price(row.stop_loss)
        if column == OPENED:
            return format_local_time(row.opened_at)
        return ""

    def _sort_key(self, row: PositionView, column: int) -> Any:
        numbers: dict[int, float | None] = {
            SIZE: row.contracts,
            ENTRY: row.entry_price,
            MARK: row.mark_price,
            PNL: row.unrealized_pnl,
            LEVERAGE: row.leverage,
            TAKE_PROFIT: row.take_profit,
            STOP_LOSS: row.stop_loss,
            OPENED: row.opened_at.timestamp() if row.opened_at is not None else None,
        }
        if column in numbers:
            value = numbers[column]
            return -math.inf if value is None else float(value)
        if column == MODE:
            return row.mode.value
        return self._display(row, column)
