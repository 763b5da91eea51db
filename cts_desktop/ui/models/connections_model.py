"""Table model behind the Connections dock: one row per configured exchange connection.

Connections change rarely (a user edit, a test result), so the model is simply replaced as a
whole after each reload (one ``modelReset``); the panel coalesces bursts of change events into
one reload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QFont

from cts_desktop.domain.market import ApiType
from cts_desktop.engine.live_guard import exchange_display_name
from cts_desktop.ui.models.row_table_model import RowTableModel

if TYPE_CHECKING:
    from cts_desktop.storage.repositories.connections import ConnectionRecord

COLUMNS: Final = ("Name", "Exchange", "API type", "Testnet", "Enabled", "Live", "Preset", "Status")
NAME, EXCHANGE, API_TYPE, TESTNET, ENABLED, LIVE, PRESET, STATUS = range(len(COLUMNS))

API_TYPE_LABELS: Final[dict[str, str]] = {
    ApiType.UNIFIED.value: "Unified",
    ApiType.PERPETUAL_FUTURES.value: "Perpetual futures",
    ApiType.SPOT.value: "Spot",
}
RESTART_REQUIRED: Final = "restart required"
NO_API_KEY: Final = "no API key"

OK_COLOUR: Final = QColor("#2e7d32")
WARNING_COLOUR: Final = QColor("#c77700")
ERROR_COLOUR: Final = QColor("#d32f2f")


def format_test_time(at: datetime) -> str:
    """Local wall-clock time of an aware ``at`` (as stored): the user compares it with their own
    clock, not with UTC."""
    return at.astimezone().strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """A stored connection plus whether the keyring holds its API key (None: could not tell)."""

    record: ConnectionRecord
    has_credentials: bool | None

    @property
    def id(self) -> str:
        return self.record.id

    def status_parts(self) -> list[str]:
        """The Status cell, most urgent first: restart, last test, missing key."""
        record = self.record
        parts: list[str] = []
        if record.restart_required:
            parts.append(RESTART_REQUIRED)
        if record.last_test_status:
            tested = f"test {record.last_test_status}"
            if record.last_test_at is not None:
                tested += f" {format_test_time(record.last_test_at)}"
            parts.append(tested)
        if self.has_credentials is False:
            parts.append(NO_API_KEY)
        return parts


class ConnectionsTableModel(RowTableModel[ConnectionRow]):
    """Read-only rows of :class:`ConnectionRow`; flags are shown, never toggled here."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(COLUMNS, parent)
        self._bold = QFont()
        self._bold.setBold(True)

    def set_rows(self, rows: Sequence[ConnectionRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[ConnectionRow]:
        return list(self._rows)

    def connection_row(self, row: int) -> ConnectionRow:
        return self._rows[row]

    def row_of(self, connection_id: str) -> int | None:
        return next((i for i, row in enumerate(self._rows) if row.id == connection_id), None)

    def cell(self, row: ConnectionRow, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row, column)
        if role == Qt.ItemDataRole.FontRole and column == LIVE and row.record.is_live_trade:
            return self._bold  # real money: impossible to miss
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        return None

    @staticmethod
    def _display(row: ConnectionRow, column: int) -> str:
        record = row.record
        if column == NAME:
            return record.name
        if column == EXCHANGE:
            return exchange_display_name(record.exchange)
        if column == API_TYPE:
            return API_TYPE_LABELS.get(record.api_type, record.api_type)
        if column == STATUS:
            return " · ".join(row.status_parts())
        flag = (record.is_testnet, record.is_enabled, record.is_live_trade, record.is_preset_trade)[
            column - TESTNET
        ]
        return "yes" if flag else "no"

    @staticmethod
    def _foreground(row: ConnectionRow, column: int) -> QColor | None:
        record = row.record
        if column == LIVE and record.is_live_trade:
            return ERROR_COLOUR
        if column == ENABLED:
            return OK_COLOUR if record.is_enabled else None
        if column != STATUS:
            return None
        if record.restart_required or row.has_credentials is False:
            return WARNING_COLOUR
        if record.last_test_status == "failed":
            return ERROR_COLOUR
        if record.last_test_status == "success":
            return OK_COLOUR
        return None

    @staticmethod
    def _tooltip(row: ConnectionRow, column: int) -> str | None:
        record = row.record
        if column == LIVE:
            return "Live trading is switched on through the confirmed go-live flow, not here"
        if column != STATUS:
            return None
        tips: list[str] = []
        if record.restart_required:
            tips.append("A change needs this connection's engine to restart before it takes effect.")
        if row.has_credentials is False:
            tips.append("No API key is stored: only public market data is available.")
        elif row.has_credentials is None:
            tips.append("Could not read the OS keyring to tell whether an API key is stored.")
        if record.last_test_balance is not None:
            tips.append(f"Last tested balance: {record.last_test_balance:,.2f} USDT")
        return "\n".join(tips) or None
