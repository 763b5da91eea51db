"""Table model and filter proxy behind the Logs dock.

Logging can burst to thousands of records per second (a reconnect storm, a DEBUG session). One
``beginInsertRows`` per record would repaint and re-filter the view for each of them, so records
are buffered and inserted in one batch at most ``1000 / refresh_ms`` times per second, and only the
newest ``capacity`` records are kept.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Final

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtGui import QFont

from cts_desktop.ui.log_handler import LogEntry
from cts_desktop.ui.models.row_table_model import ModelIndex, RowTableModel
from cts_desktop.ui.theme import level_colour

COLUMNS: Final = ("Time", "Level", "Logger", "Message")
TIME, LEVEL, LOGGER, MESSAGE = range(len(COLUMNS))
DEFAULT_CAPACITY: Final = 5000
DEFAULT_REFRESH_MS: Final = 100  # ≤ 10 refreshes/s (ARCHITECTURE: coalesced UI updates)


def format_time(created: float) -> str:
    """Local wall-clock time with milliseconds: log lines are read against the user's own clock."""
    return time.strftime("%H:%M:%S", time.localtime(created)) + f".{int(created * 1000) % 1000:03d}"


class LogTableModel(RowTableModel[LogEntry]):
    """A ring of at most ``capacity`` :class:`LogEntry` rows, appended in coalesced batches."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        refresh_ms: int = DEFAULT_REFRESH_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(COLUMNS, parent)
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._pending: deque[LogEntry] = deque(maxlen=capacity)  # a burst beyond the cap drops its oldest
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)  # armed by the first pending entry: no wake-ups while idle
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.flush)
        self._bold = QFont()
        self._bold.setBold(True)

    @property
    def capacity(self) -> int:
        return self._capacity

    def entry(self, row: int) -> LogEntry:
        return self._rows[row]

    def entries(self) -> list[LogEntry]:
        """A copy of the rows currently shown (oldest first)."""
        return list(self._rows)

    @Slot(object)
    def append(self, entry: LogEntry) -> None:
        """Queue ``entry``; it appears with the next batch."""
        self._pending.append(entry)
        if not self._timer.isActive():
            self._timer.start()

    def extend(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self.append(entry)

    @Slot()
    def flush(self) -> None:
        """Insert every pending entry with one row-removal and one row-insertion notification."""
        self._timer.stop()
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        overflow = len(self._rows) + len(batch) - self._capacity
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self._rows[:overflow]
            self.endRemoveRows()
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(batch) - 1)
        self._rows.extend(batch)
        self.endInsertRows()

    @Slot()
    def clear(self) -> None:
        """Forget shown and pending entries."""
        self._timer.stop()
        self.beginResetModel()
        self._rows.clear()
        self._pending.clear()
        self.endResetModel()

    def cell(self, row: LogEntry, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole and column == MESSAGE:
            return row.message  # the cell shows the first line only (tracebacks are long)
        if role == Qt.ItemDataRole.ForegroundRole:
            return level_colour(row.levelno)
        if role == Qt.ItemDataRole.FontRole and row.levelno >= logging.CRITICAL:
            return self._bold
        return None

    @staticmethod
    def _display(entry: LogEntry, column: int) -> str:
        if column == TIME:
            return format_time(entry.created)
        if column == LEVEL:
            return entry.level
        if column == LOGGER:
            return entry.logger
        return entry.message.partition("\n")[0]


class LogFilterProxy(QSortFilterProxyModel):
    """Shows entries at or above a minimum level whose logger or message contains the search text
    (case-insensitive). Reads :class:`LogEntry` objects directly instead of going through ``data()``:
    re-filtering 5000 rows on each keystroke must stay instant."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._min_level = logging.NOTSET
        self._needle = ""

    @property
    def min_level(self) -> int:
        return self._min_level

    def set_min_level(self, level: int) -> None:
        if level != self._min_level:
            self._begin_change()
            self._min_level = level
            self._end_change()

    def set_search_text(self, text: str) -> None:
        needle = text.strip().casefold()
        if needle != self._needle:
            self._begin_change()
            self._needle = needle
            self._end_change()

    # Qt 6.10 deprecates invalidateRowsFilter() in favour of the begin/end pair; 6.8 has only the former.
    def _begin_change(self) -> None:
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()

    def _end_change(self) -> None:
        if hasattr(self, "endFilterChange"):
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, LogTableModel):
            return True
        entry = model.entry(source_row)
        if entry.levelno < self._min_level:
            return False
        if not self._needle:
            return True
        return self._needle in entry.logger.casefold() or self._needle in entry.message.casefold()
