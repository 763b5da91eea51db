"""A table model whose rows have identities, replaced by merging instead of resetting.

The Orders and Positions docks reload their whole list after a change event. A model reset per
reload would drop the selection and the scroll position and repaint every row, several times a
second while orders fill. Merging by key keeps rows that still exist where they are, emits ONE
``dataChanged`` for the rows whose values changed, removes vanished rows in contiguous blocks
and appends new rows in one insert; the sorting proxy in front puts them in view order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Final

from PySide6.QtCore import QModelIndex, QObject, QSortFilterProxyModel, Qt

from cts_desktop.ui.models.row_table_model import RowTableModel

SORT_ROLE: Final = int(Qt.ItemDataRole.UserRole) + 1  # numbers for numeric columns, text otherwise


class KeyedRowTableModel[RowT, KeyT: Hashable](RowTableModel[RowT]):
    """Rows identified by :meth:`key`; :meth:`replace_rows` merges a fresh full list."""

    def key(self, row: RowT) -> KeyT:
        raise NotImplementedError(f"{type(self).__name__} must implement key()")

    def rows(self) -> list[RowT]:
        """Rows in model order (not view order)."""
        return list(self._rows)

    def row_at(self, row: int) -> RowT:
        return self._rows[row]

    def replace_rows(self, rows: Sequence[RowT]) -> None:
        """Make the model hold exactly ``rows`` (later duplicates of a key win), with minimal signals."""
        fresh: dict[KeyT, RowT] = {self.key(row): row for row in rows}
        self._remove_missing(fresh)
        top, bottom = len(self._rows), -1
        for index, current in enumerate(self._rows):
            replacement = fresh.pop(self.key(current))
            if replacement != current:
                self._rows[index] = replacement
                top, bottom = min(top, index), max(bottom, index)
        if bottom >= 0:
            self.dataChanged.emit(self.index(top, 0), self.index(bottom, self.columnCount() - 1))
        if fresh:  # what is left is new
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._rows.extend(fresh.values())
            self.endInsertRows()

    def refresh_column(self, column: int) -> None:
        """Something every row's cell in ``column`` depends on changed (e.g. a connection's name)."""
        if self._rows:
            self.dataChanged.emit(self.index(0, column), self.index(len(self._rows) - 1, column))

    def _remove_missing(self, fresh: dict[KeyT, RowT]) -> None:
        gone = [index for index, row in enumerate(self._rows) if self.key(row) not in fresh]
        if not gone:
            return
        # Bottom-up, one signal pair per contiguous block, so earlier indices stay valid.
        blocks: list[tuple[int, int]] = []
        for index in reversed(gone):
            if blocks and blocks[-1][0] == index + 1:
                blocks[-1] = (index, blocks[-1][1])
            else:
                blocks.append((index, index))
        for first, last in blocks:
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()


class ConnectionRowsModel[RowT, KeyT: Hashable](KeyedRowTableModel[RowT, KeyT]):
    """Rows that carry only a connection id, shown by the connection's name in ``connection_column``."""

    def __init__(self, columns: Sequence[str], connection_column: int, parent: QObject | None = None) -> None:
        super().__init__(columns, parent)
        self._connection_column = connection_column
        self._names: dict[str, str] = {}

    def set_names(self, names: Mapping[str, str]) -> None:
        """Connection id → name; a rename repaints only the Connection column."""
        if dict(names) != self._names:
            self._names = dict(names)
            self.refresh_column(self._connection_column)

    def connection_name(self, connection_id: str) -> str:
        return self._names.get(connection_id, connection_id)


class SortProxy(QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE`, so numbers sort as numbers and times as times."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)
