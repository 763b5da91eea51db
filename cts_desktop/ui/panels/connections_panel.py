"""The Connections dock: the configured exchange connections, their flags and last test result.

All changes go through :class:`ConnectionService` (where the rules of DOMAIN §5 live) on the
qasync loop; the table reloads when the service announces a change (``ConnectionChanged``), so
an edit from anywhere — this panel, the command line, the engine — shows up here. Live trading
is only displayed: switching it on is a separate, confirmed go-live flow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import shiboken6
from PySide6.QtCore import QItemSelection, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.engine.connection_test import ConnectionTester, ConnectionTestResult
from cts_desktop.engine.connections import ConnectionChanged, ConnectionService
from cts_desktop.storage.repositories.connections import ConnectionInUseError
from cts_desktop.storage.secrets import KeyringStatus, SecretStoreError
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.dialogs.connection_dialog import ConnectionDialog
from cts_desktop.ui.dialogs.connection_test_dialog import ConnectionTestDialog
from cts_desktop.ui.models.connections_model import (
    API_TYPE,
    EXCHANGE,
    NAME,
    ConnectionRow,
    ConnectionsTableModel,
)
from cts_desktop.ui.theme import ERROR_STYLE

log = logging.getLogger(__name__)

RELOAD_DELAY_MS: Final = 100  # a burst of ConnectionChanged events → one reload; ≤ 10 reloads/s


class ConnectionsPanel(QWidget):
    """Buttons above the connections table; ``loaded`` is emitted after every reload."""

    loaded = Signal()

    def __init__(
        self,
        service: ConnectionService,
        bridge: EventBridge,
        *,
        tester: ConnectionTester | None = None,
        keyring: KeyringStatus | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("panel_connections")
        self._service = service
        self._tester = tester
        self._keyring = keyring
        self._bridge: EventBridge | None = bridge
        self._runner = TaskRunner("connections panel", on_error=self._on_task_error)
        self._reloading = False
        self._reload_again = False
        self._testing: str | None = None  # id of the connection under test
        self._select_after_reload: str | None = None
        self.dialog: ConnectionDialog | None = None
        self.test_dialog: ConnectionTestDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.model = ConnectionsTableModel(self)

        self.add_button = self._button("Add…", "connections_add", self.open_add_dialog)
        self.edit_button = self._button("Edit…", "connections_edit", self.open_edit_dialog)
        self.delete_button = self._button("Delete…", "connections_delete", self.delete_selected)
        self.toggle_button = self._button("Enable", "connections_toggle", self.toggle_enabled)
        self.test_button = self._button("Test connection", "connections_test", self.test_selected)
        if tester is None:
            self.test_button.setToolTip("Connection testing is not available in this session")

        self.error_label = QLabel(self)
        self.error_label.setObjectName("connections_error")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        self.view = self._build_view()
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.view.doubleClicked.connect(lambda _index: self.open_edit_dialog())

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for button in (self.add_button, self.edit_button, self.delete_button, self.toggle_button):
            bar.addWidget(button)
        bar.addStretch(1)
        bar.addWidget(self.test_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.error_label)
        layout.addWidget(self.view)

        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(RELOAD_DELAY_MS)
        self._reload_timer.timeout.connect(self._start_reload)
        bridge.received.connect(self._on_event)
        self._update_buttons()
        self.request_reload()

    def _button(self, text: str, name: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.clicked.connect(slot)
        return button

    def _build_view(self) -> QTableView:
        view = QTableView(self)
        view.setObjectName("connections_view")
        view.setModel(self.model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setWordWrap(False)
        view.verticalHeader().hide()
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
        header = view.horizontalHeader()
        header.setStretchLastSection(True)
        header.setDefaultSectionSize(58)  # the yes/no flag columns
        header.resizeSection(NAME, 130)
        header.resizeSection(EXCHANGE, 75)
        header.resizeSection(API_TYPE, 115)
        return view

    # -- reading --------------------------------------------------------------------------------

    @property
    def keyring_available(self) -> bool:
        return self._keyring is None or self._keyring.available

    @property
    def busy(self) -> bool:
        """True while a reload, a change or a test started here is running."""
        return self._runner.busy

    def selected_row(self) -> ConnectionRow | None:
        rows = self.view.selectionModel().selectedRows()
        return self.model.connection_row(rows[0].row()) if rows else None

    def select_connection(self, connection_id: str) -> bool:
        row = self.model.row_of(connection_id)
        if row is None:
            return False
        self.view.selectRow(row)
        return True

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    @Slot(object)
    def _on_event(self, event: object) -> None:
        if isinstance(event, ConnectionChanged):
            self.request_reload()

    def request_reload(self) -> None:
        """Reload soon; several requests within the delay give one reload."""
        if not self._reload_timer.isActive():
            self._reload_timer.start()

    @Slot()
    def _start_reload(self) -> None:
        if self._reloading:
            self._reload_again = True  # a change landed during the reload: read once more after it
            return
        self._reloading = True
        self._runner.start(self.reload(), on_done=self._reload_finished)

    def _reload_finished(self) -> None:
        self._reloading = False
        if self._reload_again and shiboken6.isValid(self):
            self._reload_again = False
            self._start_reload()

    async def reload(self) -> None:
        """Read every connection and whether its API key is stored, then replace the rows."""
        records = await self._service.list()
        # One connection after the other: a keyring may prompt to unlock, and parallel D-Bus
        # calls would only multiply that prompt.
        stored = [await self._has_credentials(record.id) for record in records]
        if not shiboken6.isValid(self):
            return
        selected = self.selected_row()
        wanted = self._select_after_reload or (selected.id if selected is not None else None)
        self._select_after_reload = None
        self.model.set_rows([ConnectionRow(r, has) for r, has in zip(records, stored, strict=True)])
        if wanted is not None:
            self.select_connection(wanted)
        self._update_buttons()
        self.loaded.emit()

    async def _has_credentials(self, connection_id: str) -> bool | None:
        if not self.keyring_available:
            return False  # nothing can be stored, so nothing is
        try:
            return await self._service.has_credentials(connection_id)
        except SecretStoreError as exc:
            log.warning("could not read the keyring for connection %s: %s", connection_id, exc)
            return None

    # -- actions --------------------------------------------------------------------------------

    @Slot()
    def open_add_dialog(self) -> ConnectionDialog:
        """Open the Add dialog non-modally; the table reloads when it saves."""
        return self._open_dialog(ConnectionDialog(self._service, keyring=self._keyring, parent=self))

    @Slot()
    def open_edit_dialog(self) -> ConnectionDialog | None:
        row = self.selected_row()
        if row is None:
            return None
        dialog = ConnectionDialog(
            self._service,
            keyring=self._keyring,
            record=row.record,
            has_credentials=bool(row.has_credentials),
            parent=self,
        )
        return self._open_dialog(dialog)

    def _open_dialog(self, dialog: ConnectionDialog) -> ConnectionDialog:
        self._show_error("")
        previous, self.dialog = self.dialog, dialog
        if previous is not None and shiboken6.isValid(previous) and not previous.busy:
            previous.close()
            previous.deleteLater()
        dialog.saved.connect(self._on_saved)
        dialog.open()  # not exec(): a nested event loop would strand the qasync task
        return dialog

    @Slot(str)
    def _on_saved(self, connection_id: str) -> None:
        self._select_after_reload = connection_id  # the new or edited row becomes the selection
        self.request_reload()

    @Slot()
    def delete_selected(self) -> QMessageBox | None:
        """Ask first (non-modally); deleting also removes the stored API key."""
        row = self.selected_row()
        if row is None:
            return None
        self._show_error("")
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete connection",
            f"Delete the connection {row.record.name}? Its API key is removed from the OS keyring too.\n\n"
            "A connection with orders or positions cannot be deleted; disable it instead.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setObjectName("connections_confirm_delete")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        connection_id = row.id

        def answered(button: QAbstractButton) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                self._runner.start(self._service.delete(connection_id), name="delete connection")

        box.buttonClicked.connect(answered)
        box.finished.connect(box.deleteLater)
        self.confirm_box = box
        box.open()
        return box

    @Slot()
    def toggle_enabled(self) -> None:
        """Enable or disable; disabling also switches live and preset trade off (the service's rule)."""
        row = self.selected_row()
        if row is None:
            return
        self._show_error("")
        self._runner.start(
            self._service.set_enabled(row.id, not row.record.is_enabled), name="enable/disable connection"
        )

    @Slot()
    def test_selected(self) -> None:
        """Run the connection test on the loop; the window stays responsive and the button waits."""
        row = self.selected_row()
        if row is None or self._tester is None or self._testing is not None:
            return
        self._show_error("")
        self._testing = row.id
        self._update_buttons()
        self._runner.start(self._run_test(row.id, row.record.name), on_done=self._test_finished)

    async def _run_test(self, connection_id: str, name: str) -> None:
        assert self._tester is not None
        result = await self._tester.test(connection_id)
        if shiboken6.isValid(self):
            self.show_test_result(name, result)
            self.request_reload()  # the stored test status and time changed (no event for that)

    def show_test_result(self, name: str, result: ConnectionTestResult) -> ConnectionTestDialog:
        previous, self.test_dialog = self.test_dialog, ConnectionTestDialog(name, result, self)
        if previous is not None and shiboken6.isValid(previous):
            previous.close()
            previous.deleteLater()
        self.test_dialog.show()
        return self.test_dialog

    def _test_finished(self) -> None:
        self._testing = None
        if shiboken6.isValid(self):
            self._update_buttons()

    # -- state ----------------------------------------------------------------------------------

    @Slot(QItemSelection, QItemSelection)
    def _on_selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.selected_row()
        has_row = row is not None
        for button in (self.edit_button, self.delete_button, self.toggle_button):
            button.setEnabled(has_row)
        self.toggle_button.setText("Disable" if row is not None and row.record.is_enabled else "Enable")
        self.test_button.setEnabled(has_row and self._tester is not None and self._testing is None)
        self.test_button.setText("Testing…" if self._testing is not None else "Test connection")

    def _on_task_error(self, error: BaseException) -> None:
        if not shiboken6.isValid(self):
            return
        if isinstance(error, ConnectionInUseError | LookupError | ValueError | SecretStoreError):
            self._show_error(str(error))  # ConnectionRuleError is a ValueError: its text is for the user
        else:
            self._show_error(f"Unexpected error: {type(error).__name__}: {error}")

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def stop(self) -> None:
        """The window is closing: stop listening, cancel running work, close the dialogs; idempotent."""
        self._reload_timer.stop()
        bridge, self._bridge = self._bridge, None
        if bridge is not None and shiboken6.isValid(bridge):
            bridge.received.disconnect(self._on_event)
        self._runner.cancel_all()
        for dialog in (self.dialog, self.test_dialog, self.confirm_box):
            if dialog is not None and shiboken6.isValid(dialog):
                dialog.close()
