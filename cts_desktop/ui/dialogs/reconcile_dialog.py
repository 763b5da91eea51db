"""Reconciliation: what the database and the exchange disagree about, and the user's fixes.

The coordinator already applied the unambiguous differences (they are listed as such); the
others change local records on the user's word only. Nothing is pre-ticked: each difference is
applied only when its own box is ticked and "Apply ticked" is clicked, one after the other, and
each row then says whether its fix went through. The dialog is non-modal and runs every call on
the qasync loop (no ``exec()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import shiboken6
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.domain.orders import ReconcileDifference
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.models.row_table_model import ModelIndex, RowTableModel
from cts_desktop.ui.theme import ERROR_STYLE

COLUMNS: Final = ("Apply", "Kind", "Symbol", "Difference", "Proposed fix", "Status")
APPLY, KIND, SYMBOL, DESCRIPTION, ACTION, STATUS = range(len(COLUMNS))
AUTO_APPLIED: Final = "applied automatically"
PENDING: Final = "waits for your confirmation"
APPLIED: Final = "applied"
OK_COLOUR: Final = QColor("#2e7d32")
PENDING_COLOUR: Final = QColor("#c77700")
FAILED_COLOUR: Final = QColor("#d32f2f")


def describe_values(values: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "–"


@dataclass(slots=True)
class DifferenceRow:
    """One difference and what the user did with it in this dialog."""

    difference: ReconcileDifference
    ticked: bool = False
    outcome: str = ""  # "" (not tried here), APPLIED or "failed: …"

    @property
    def pending(self) -> bool:
        """Still needs the user's decision: not applied by the engine, not applied here."""
        return not self.difference.applied and self.outcome != APPLIED

    @property
    def status(self) -> str:
        if self.difference.applied:
            return AUTO_APPLIED
        return self.outcome or PENDING


class DifferencesModel(RowTableModel[DifferenceRow]):
    """The differences of one reconciliation; the Apply column is a checkbox on pending rows."""

    ticked_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(COLUMNS, parent)

    def set_differences(self, differences: list[ReconcileDifference]) -> None:
        self.beginResetModel()
        self._rows = [DifferenceRow(d) for d in differences]
        self.endResetModel()
        self.ticked_changed.emit()

    def difference_rows(self) -> list[DifferenceRow]:
        return list(self._rows)

    def ticked(self) -> list[DifferenceRow]:
        return [row for row in self._rows if row.ticked and row.pending]

    def set_ticked(self, row: int, ticked: bool) -> bool:
        return self.setData(
            self.index(row, APPLY),
            (Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked).value,
            Qt.ItemDataRole.CheckStateRole,
        )

    def set_outcome(self, row: DifferenceRow, outcome: str) -> None:
        row.outcome = outcome
        if outcome == APPLIED:
            row.ticked = False
        index = self._rows.index(row)
        self.dataChanged.emit(self.index(index, 0), self.index(index, len(COLUMNS) - 1))
        self.ticked_changed.emit()

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and index.column() == APPLY and self._rows[index.row()].pending:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def setData(
        self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole
    ) -> bool:
        if not index.isValid() or index.column() != APPLY or role != Qt.ItemDataRole.CheckStateRole:
            return False
        row = self._rows[index.row()]
        if not row.pending:
            return False
        row.ticked = Qt.CheckState(value) == Qt.CheckState.Checked
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.CheckStateRole])
        self.ticked_changed.emit()
        return True

    def cell(self, row: DifferenceRow, column: int, role: int) -> Any:
        difference = row.difference
        if role == Qt.ItemDataRole.CheckStateRole and column == APPLY and row.pending:
            return Qt.CheckState.Checked if row.ticked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                "",
                difference.kind.value.replace("_", " "),
                difference.symbol,
                difference.description,
                difference.action,
                row.status,
            )[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == STATUS:
            if row.outcome.startswith("failed"):
                return FAILED_COLOUR
            return PENDING_COLOUR if row.pending else OK_COLOUR
        if role == Qt.ItemDataRole.ToolTipRole and column == DESCRIPTION:
            return (
                f"local: {describe_values(difference.local)}\n"
                f"exchange: {describe_values(difference.remote)}"
                + (f"\nclient order id: {difference.client_order_id}" if difference.client_order_id else "")
            )
        return None


class ReconcileDialog(QDialog):
    """Check one connection against its exchange and apply the fixes the user ticks.

    Open with ``open()`` (or ``show()``), then :meth:`check`. ``applied(count)`` after each apply
    run that changed something.
    """

    applied = Signal(int)

    def __init__(
        self, facade: EngineFacade, *, connection_id: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("reconcile_dialog")
        self.setWindowTitle("Reconcile with the exchange")
        self.resize(900, 420)
        self._facade = facade
        self._runner = TaskRunner("reconcile dialog", on_error=self._on_error)
        self.model = DifferencesModel(self)

        self.connection_box = QComboBox(self)
        self.connection_box.setObjectName("reconcile_connection")
        for snapshot in facade.snapshots():
            self.connection_box.addItem(f"{snapshot.name} ({snapshot.exchange})", snapshot.connection_id)
        if connection_id is not None and (index := self.connection_box.findData(connection_id)) >= 0:
            self.connection_box.setCurrentIndex(index)
        self.connection_box.currentIndexChanged.connect(lambda _index: self.check())
        self.check_button = self._button("Check again", "reconcile_check", self.check)
        self.apply_button = self._button("Apply ticked", "reconcile_apply", self.apply_ticked)
        self.close_button = self._button("Close", "reconcile_close", self.close)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("reconcile_status")
        self.status_label.setWordWrap(True)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("reconcile_error")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.view = self._build_view()
        self.model.ticked_changed.connect(self._update_buttons)
        self._lay_out()
        self._update_buttons()

    def _button(self, text: str, name: str, slot: Any) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        return button

    def _build_view(self) -> QTableView:
        view = QTableView(self)
        view.setObjectName("reconcile_view")
        view.setModel(self.model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.verticalHeader().hide()
        header = view.horizontalHeader()
        header.setSectionResizeMode(DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(APPLY, 48)
        header.resizeSection(KIND, 170)
        header.resizeSection(SYMBOL, 120)
        header.resizeSection(ACTION, 200)
        header.resizeSection(STATUS, 170)
        return view

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Connection:", self))
        top.addWidget(self.connection_box, 1)
        top.addWidget(self.check_button)
        hint = QLabel(
            "Only the differences you tick are applied; they change local records to match the exchange.",
            self,
        )
        hint.setWordWrap(True)
        hint.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.view, 1)
        layout.addWidget(hint)
        layout.addLayout(buttons)

    # -- state ----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def connection_id(self) -> str | None:
        data = self.connection_box.currentData()
        return str(data) if data is not None else None

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def _update_buttons(self) -> None:
        busy = self._runner.busy
        count = len(self.model.ticked())
        self.apply_button.setEnabled(count > 0 and not busy)
        self.apply_button.setText(f"Apply ticked ({count})" if count else "Apply ticked")
        self.check_button.setEnabled(self.connection_id() is not None and not busy)
        self.connection_box.setEnabled(not busy)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _on_error(self, error: BaseException) -> None:
        if shiboken6.isValid(self):
            self.status_label.setText("")
            self._show_error(f"Reconciliation failed: {error}")

    def _finished(self) -> None:
        if shiboken6.isValid(self):
            self._update_buttons()

    # -- actions --------------------------------------------------------------------------------

    @Slot()
    def check(self) -> None:
        """Ask the coordinator for the differences of the selected connection."""
        connection_id = self.connection_id()
        if connection_id is None or self._runner.busy:
            if connection_id is None:
                self.status_label.setText("No connection to reconcile.")
            return
        self._show_error("")
        self.status_label.setText("Comparing local records with the exchange…")
        self._runner.start(self._check(connection_id), name="reconcile", on_done=self._finished)
        self._update_buttons()

    async def _check(self, connection_id: str) -> None:
        differences = await self._facade.reconcile(connection_id)
        if not shiboken6.isValid(self):
            return
        self.model.set_differences(differences)
        self._show_status()

    def _show_status(self) -> None:
        rows = self.model.difference_rows()
        if not rows:
            self.status_label.setText("No differences: local records match the exchange.")
            return
        auto = sum(1 for row in rows if row.difference.applied)
        pending = sum(1 for row in rows if row.pending)
        self.status_label.setText(
            f"{len(rows)} difference{'' if len(rows) == 1 else 's'}: {auto} applied automatically, "
            f"{pending} waiting for your confirmation."
        )

    @Slot()
    def apply_ticked(self) -> None:
        """Apply exactly the ticked, still pending differences, one after the other."""
        rows = self.model.ticked()
        if not rows or self._runner.busy:
            return
        self._show_error("")
        self._runner.start(self._apply(rows), name="apply differences", on_done=self._finished)
        self._update_buttons()

    async def _apply(self, rows: list[DifferenceRow]) -> None:
        done = 0
        for row in rows:
            try:
                await self._facade.apply_difference(row.difference)
            except Exception as exc:
                outcome = f"failed: {exc}"
            else:
                outcome = APPLIED
                done += 1
            if not shiboken6.isValid(self):
                return
            self.model.set_outcome(row, outcome)
        self._show_status()
        failed = len(rows) - done
        if failed:
            self._show_error(f"{failed} of {len(rows)} fixes failed; see the Status column.")
        if done:
            self.applied.emit(done)
