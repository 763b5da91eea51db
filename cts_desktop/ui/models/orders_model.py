"""Table model behind the Orders dock: one row per open order (paper or live), keyed by order id.

Rows are the engine's :class:`OrderView` values, merged by id on each reload (see
:mod:`keyed_table_model`). The mode is a column of its own and LIVE is red and bold: a live
order spends real money and must not look like a paper one.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QFont

from cts_desktop.domain.enums import TradingMode
from cts_desktop.domain.market import OrderSide
from cts_desktop.domain.orders import OrderStatus, OrderView
from cts_desktop.ui.models.keyed_table_model import SORT_ROLE, ConnectionRowsModel
from cts_desktop.ui.models.market_model import format_price

COLUMNS: Final = (
    "Time",
    "Connection",
    "Mode",
    "Symbol",
    "Side",
    "Type",
    "Price",
    "Amount",
    "Filled",
    "Status",
    "Client id",
)
TIME, CONNECTION, MODE, SYMBOL, SIDE, TYPE, PRICE, AMOUNT, FILLED, STATUS, CLIENT_ID = range(len(COLUMNS))
_NUMERIC: Final = frozenset({PRICE, AMOUNT, FILLED})

BUY_COLOUR: Final = QColor("#2e7d32")
SELL_COLOUR: Final = QColor("#d32f2f")
LIVE_COLOUR: Final = QColor("#c62828")
#: In flight is blue (waiting for the venue), trouble is amber or red, a working order keeps the text colour.
STATUS_COLOURS: Final[dict[OrderStatus, QColor]] = {
    OrderStatus.PENDING_CREATE: QColor("#1f6fb2"),
    OrderStatus.PENDING_CANCEL: QColor("#1f6fb2"),
    OrderStatus.PARTIALLY_FILLED: QColor("#2e7d32"),
    OrderStatus.FILLED: QColor("#2e7d32"),
    OrderStatus.REJECTED: QColor("#d32f2f"),
    OrderStatus.FAILED: QColor("#d32f2f"),
    OrderStatus.LOST: QColor("#c77700"),
}


def format_amount(value: float | None) -> str:
    """Up to eight significant digits: enough for 0.00012345 BTC and for 12 345 678 PEPE."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:,.8g}" if abs(value) >= 1000 else f"{value:.8g}"


def format_local_time(at: datetime | None, *, today: datetime | None = None) -> str:
    """Local wall-clock time of an aware ``at`` (every stored time is); the date only when it is
    not today (old orders stand out)."""
    if at is None:
        return ""
    local = at.astimezone()
    now = (today or datetime.now(UTC)).astimezone()
    return local.strftime("%H:%M:%S" if local.date() == now.date() else "%Y-%m-%d %H:%M")


def mode_cell(mode: TradingMode, role: int) -> Any:
    """The Mode cell shared by the Orders and Positions tables."""
    if role == Qt.ItemDataRole.DisplayRole:
        return mode.value.upper()
    if mode is TradingMode.LIVE:
        if role == Qt.ItemDataRole.ForegroundRole:
            return LIVE_COLOUR
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
    return None


class OrdersTableModel(ConnectionRowsModel[OrderView, str]):
    """Open orders of every connection; ``set_names`` gives the Connection column its text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(COLUMNS, CONNECTION, parent)

    def key(self, row: OrderView) -> str:
        return row.id

    def cell(self, row: OrderView, column: int, role: int) -> Any:
        if column == MODE and role != SORT_ROLE:
            return mode_cell(row.mode, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == SIDE:
                return BUY_COLOUR if row.side is OrderSide.BUY else SELL_COLOUR
            if column == STATUS:
                return STATUS_COLOURS.get(row.status)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        return None

    def _display(self, row: OrderView, column: int) -> str:
        if column == TIME:
            return format_local_time(row.created_at)
        if column == CONNECTION:
            return self.connection_name(row.connection_id)
        if column == SYMBOL:
            return row.symbol
        if column == SIDE:
            return row.side.value
        if column == TYPE:
            return row.type.value.replace("_", " ")
        if column == PRICE:
            return format_price(row.price if row.price is not None else row.average_price)
        if column == AMOUNT:
            return format_amount(row.amount)
        if column == FILLED:
            return format_amount(row.filled)
        if column == STATUS:
            return row.status.value.replace("_", " ")
        return row.client_order_id

    def _sort_key(self, row: OrderView, column: int) -> Any:
        if column == TIME:
            return row.created_at.timestamp() if row.created_at is not None else -math.inf
        if column == PRICE:
            price = row.price if row.price is not None else row.average_price
            return -math.inf if price is None else price
        if column == AMOUNT:
            return row.amount
        if column == FILLED:
            return row.filled
        if column == MODE:
            return row.mode.value
        return self._display(row, column)

    @staticmethod
    def _tooltip(row: OrderView, column: int) -> str | None:
        if column == STATUS and row.reject_reason:
            return row.reject_reason
        if column == CLIENT_ID and row.exchange_order_id:
            return f"exchange order id {row.exchange_order_id}"
        if column == PRICE and row.average_price is not None:
            return f"average fill price {format_price(row.average_price)}"
        return None
