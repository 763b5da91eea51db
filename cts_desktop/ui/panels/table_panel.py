"""A generic table dock body used while the real panels (Market, Positions, Orders, ...) are built.

Each dock gets its final column headings now, so the layout, the saved dock state and the look of
the window can be reviewed before the engine feeds any data; the placeholder line says what will
appear there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableView, QVBoxLayout, QWidget

from cts_desktop.ui.models.row_table_model import RowTableModel


class ColumnTableModel(RowTableModel[tuple[Any, ...]]):
    """A column-headed model with rows of plain values; empty until a panel feeds it."""

    def set_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Replace all rows at once (one reset, not one signal per row)."""
        self.beginResetModel()
        self._rows = [tuple(row) for row in rows]
        self.endResetModel()

    def cell(self, row: tuple[Any, ...], column: int, role: int) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return "" if column >= len(row) else str(row[column])


class TablePanel(QWidget):
    """A placeholder line above a read-only table with the panel's column headings."""

    def __init__(self, columns: Sequence[str], placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ColumnTableModel(columns, self)
        self.placeholder = QLabel(placeholder, self)
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setWordWrap(True)
        self.placeholder.setEnabled(False)  # greyed: it describes, it is not data
        self.view = QTableView(self)
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.placeholder)
        layout.addWidget(self.view)
