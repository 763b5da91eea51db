"""RowTableModel: the counts, headings and ``data()`` guard shared by every table model."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from cts_desktop.ui.models.connections_model import ConnectionsTableModel
from cts_desktop.ui.models.log_model import LogTableModel
from cts_desktop.ui.models.market_model import MarketTableModel
from cts_desktop.ui.models.row_table_model import RowTableModel
from cts_desktop.ui.panels.table_panel import ColumnTableModel

DISPLAY = Qt.ItemDataRole.DisplayRole
HORIZONTAL = Qt.Orientation.Horizontal


class Pairs(RowTableModel[tuple[str, int]]):
    """Two columns over (name, number) rows; records each ``cell`` call."""

    def __init__(self, rows: list[tuple[str, int]]) -> None:
        super().__init__(["Name", "Number"])
        self._rows = list(rows)
        self.calls: list[tuple[tuple[str, int], int, int]] = []

    def cell(self, row: tuple[str, int], column: int, role: int) -> Any:
        self.calls.append((row, column, role))
        return str(row[column]) if role == DISPLAY else None


@pytest.fixture
def model(qtbot: QtBot) -> Pairs:
    return Pairs([("a", 1), ("b", 2), ("c", 3)])


def test_counts_are_those_of_a_flat_table(model: Pairs) -> None:
    assert model.columns == ("Name", "Number")
    assert (model.rowCount(), model.columnCount()) == (3, 2)
    child_parent = model.index(0, 0)  # a flat table: no cell has children
    assert (model.rowCount(child_parent), model.columnCount(child_parent)) == (0, 0)


def test_horizontal_display_headings_only(model: Pairs) -> None:
    assert [model.headerData(s, HORIZONTAL) for s in range(2)] == ["Name", "Number"]
    assert model.headerData(0, Qt.Orientation.Vertical) is None
    assert model.headerData(0, HORIZONTAL, Qt.ItemDataRole.ToolTipRole) is None


def test_data_hands_the_row_object_column_and_role_to_cell(model: Pairs) -> None:
    assert model.data(model.index(1, 1)) == "2"
    assert model.data(model.index(2, 0), Qt.ItemDataRole.ToolTipRole) is None
    assert model.calls == [(("b", 2), 1, int(DISPLAY)), (("c", 3), 0, int(Qt.ItemDataRole.ToolTipRole))]


def test_invalid_or_stale_index_never_reaches_cell(model: Pairs) -> None:
    stale = QPersistentModelIndex(model.index(2, 0))
    model._rows = model._rows[:1]  # rows dropped without notifying Qt: the index still claims row 2
    assert model.data(QModelIndex()) is None
    assert model.data(stale) is None
    assert model.calls == []


def test_passes_qt_model_consistency_checks(model: Pairs, qtmodeltester: ModelTester) -> None:
    qtmodeltester.check(model, force_py=True)


def test_base_cell_must_be_implemented(qtbot: QtBot) -> None:
    with pytest.raises(NotImplementedError, match="cell"):
        RowTableModel[int](["Only"]).cell(0, 0, DISPLAY)


def test_every_table_model_shares_the_base() -> None:
    for cls in (LogTableModel, MarketTableModel, ConnectionsTableModel, ColumnTableModel):
        assert issubclass(cls, RowTableModel)
