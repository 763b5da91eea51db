"""The base of the read-only table models: fixed column headings over a list of row objects.

A subclass owns how its rows arrive (a reset, a coalesced batch, a ring buffer) and what each cell
shows; this class owns the Qt plumbing every such model repeats: row and column counts of a flat
table, the horizontal headings, and the guard in ``data()`` against invalid or stale indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

type ModelIndex = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()  # the invalid index: a shared default, never mutated


class RowTableModel[RowT](QAbstractTableModel):
    """A flat table of ``RowT`` rows (``self._rows``) under ``columns``; subclasses implement :meth:`cell`."""

    def __init__(self, columns: Sequence[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._columns = tuple(columns)
        self._rows: list[RowT] = []

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    def cell(self, row: RowT, column: int, role: int) -> Any:
        """What ``data()`` returns for ``role`` in ``column`` of ``row``; None when the role is not served."""
        raise NotImplementedError(f"{type(self).__name__} must implement cell()")

    def rowCount(self, parent: ModelIndex = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = ROOT) -> int:
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self._columns[section]
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        return self.cell(self._rows[index.row()], index.column(), role)
