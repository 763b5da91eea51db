"""Add or edit an exchange connection, with its API credentials going straight to the keyring.

Everything is validated by :class:`ConnectionService` (the rules live in one place); the dialog
shows a refused change inline and stays open with what the user typed, so nothing has to be
typed twice. Secrets are never pre-filled: in Edit mode empty secret fields mean "keep the
stored key", and the fields are cleared when the dialog closes, so the typed text does not
linger in a hidden widget.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import shiboken6
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.domain.market import ApiType, MarginMode, PositionMode
from cts_desktop.engine.connections import (
    SUPPORTED_EXCHANGES,
    UNSUPPORTED_EXCHANGES,
    VOLUME_FACTOR_MAX,
    VOLUME_FACTOR_MIN,
    VOLUME_FACTOR_STEP,
    ConnectionDraft,
    ConnectionRuleError,
    ConnectionService,
)
from cts_desktop.engine.live_guard import exchange_display_name
from cts_desktop.storage.secrets import Credentials, KeyringStatus, SecretStoreError
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.models.connections_model import API_TYPE_LABELS
from cts_desktop.ui.theme import BOLD_ERROR_STYLE

if TYPE_CHECKING:
    from cts_desktop.storage.repositories.connections import ConnectionRecord

log = logging.getLogger(__name__)

KEEP_SECRET_PLACEHOLDER: Final = "unchanged — leave empty to keep the stored key"  # noqa: S105 - UI text
NO_SECRET_PLACEHOLDER: Final = "none stored — leave empty for public market data only"  # noqa: S105
NOT_SUPPORTED_SUFFIX: Final = " — not supported yet"
PASSPHRASE_EXCHANGES: Final = frozenset({"okx"})
MARGIN_LABELS: Final = {MarginMode.CROSS.value: "Cross", MarginMode.ISOLATED.value: "Isolated"}
POSITION_LABELS: Final = {PositionMode.HEDGE.value: "Hedge", PositionMode.ONE_WAY.value: "One-way"}


class ConnectionDialog(QDialog):
    """Add (``record`` None) or edit a connection; ``saved(connection_id)`` after a successful save.

    Open it with ``open()``; Save runs the service call on the qasync loop and closes the
    dialog only when the service accepted the change.
    """

    saved = Signal(str)

    def __init__(
        self,
        service: ConnectionService,
        *,
        keyring: KeyringStatus | None = None,
        record: ConnectionRecord | None = None,
        has_credentials: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("connection_dialog")
        self._service = service
        self._record = record
        self._keyring_available = keyring is None or keyring.available
        self._keyring_hint = (keyring.error if keyring is not None else None) or ""
        self._runner = TaskRunner("connection dialog", on_error=self._on_unexpected_error)
        self.setWindowTitle(f"Edit connection {record.name}" if record else "Add connection")

        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("connection_name")
        self.exchange_box = self._exchange_box()
        self.api_type_box = self._enum_box("connection_api_type", API_TYPE_LABELS)
        self.margin_box = self._enum_box("connection_margin_mode", MARGIN_LABELS)
        self.position_box = self._enum_box("connection_position_mode", POSITION_LABELS)
        self.testnet_check = QCheckBox("Use the exchange's testnet / sandbox", self)
        self.testnet_check.setObjectName("connection_testnet")
        self.live_factor_spin = self._factor_spin("connection_live_factor")
        self.preset_factor_spin = self._factor_spin("connection_preset_factor")

        self.api_key_edit = self._secret_edit("connection_api_key")
        self.api_secret_edit = self._secret_edit("connection_api_secret")
        self.passphrase_edit = self._secret_edit("connection_passphrase")
        self.keyring_label = QLabel(self)
        self.keyring_label.setObjectName("connection_keyring_hint")
        self.keyring_label.setWordWrap(True)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("connection_error")
        self.error_label.setStyleSheet(BOLD_ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, parent=self
        )
        self.save_button: QPushButton = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setObjectName("connection_save")
        self.cancel_button: QPushButton = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        self._lay_out()
        self.exchange_box.currentIndexChanged.connect(self._update_passphrase)
        self._fill(record, has_credentials)

    # -- construction -------------------------------------------------------------------------

    def _exchange_box(self) -> QComboBox:
        box = QComboBox(self)
        box.setObjectName("connection_exchange")
        for exchange in SUPPORTED_EXCHANGES:
            box.addItem(exchange_display_name(exchange), exchange)
        model = box.model()
        assert isinstance(model, QStandardItemModel)  # QComboBox's own model
        for exchange, reason in UNSUPPORTED_EXCHANGES.items():
            box.addItem(exchange_display_name(exchange) + NOT_SUPPORTED_SUFFIX, exchange)
            item = model.item(box.count() - 1)
            item.setEnabled(False)  # listed so users see it is known, but cannot be chosen
            item.setToolTip(reason)
        return box

    def _enum_box(self, name: str, labels: dict[str, str]) -> QComboBox:
        box = QComboBox(self)
        box.setObjectName(name)
        for value, label in labels.items():
            box.addItem(label, value)
        return box

    def _factor_spin(self, name: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setObjectName(name)
        spin.setRange(VOLUME_FACTOR_MIN, VOLUME_FACTOR_MAX)
        spin.setSingleStep(VOLUME_FACTOR_STEP)
        spin.setDecimals(1)
        spin.setValue(1.0)
        return spin

    def _secret_edit(self, name: str) -> QLineEdit:
        edit = QLineEdit(self)
        edit.setObjectName(name)
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, False)  # no IME history of secrets
        return edit

    def _lay_out(self) -> None:
        general = QFormLayout()
        general.addRow("Name:", self.name_edit)
        general.addRow("Exchange:", self.exchange_box)
        general.addRow("API type:", self.api_type_box)
        general.addRow("Margin mode:", self.margin_box)
        general.addRow("Position mode:", self.position_box)
        general.addRow("", self.testnet_check)
        general.addRow("Live volume factor:", self.live_factor_spin)
        general.addRow("Preset volume factor:", self.preset_factor_spin)

        credentials = QGroupBox("API credentials (stored only in the OS keyring)", self)
        form = QFormLayout(credentials)
        form.addRow("API key:", self.api_key_edit)
        form.addRow("API secret:", self.api_secret_edit)
        form.addRow("Passphrase:", self.passphrase_edit)
        form.addRow(self.keyring_label)

        layout = QVBoxLayout(self)
        layout.addLayout(general)
        layout.addWidget(credentials)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def _fill(self, record: ConnectionRecord | None, has_credentials: bool) -> None:
        if record is not None:
            self.name_edit.setText(record.name)
            self._select(self.exchange_box, record.exchange)
            self._select(self.api_type_box, record.api_type)
            self._select(self.margin_box, record.margin_mode)
            self._select(self.position_box, record.position_mode)
            self.testnet_check.setChecked(record.is_testnet)
            self.live_factor_spin.setValue(record.live_volume_factor)
            self.preset_factor_spin.setValue(record.preset_volume_factor)
        else:
            self._select(self.api_type_box, ApiType.PERPETUAL_FUTURES.value)
        placeholder = KEEP_SECRET_PLACEHOLDER if record is not None and has_credentials else ""
        if record is not None and not has_credentials:
            placeholder = NO_SECRET_PLACEHOLDER
        for edit in self.secret_edits():
            edit.setPlaceholderText(placeholder)
        if not self._keyring_available:
            for edit in self.secret_edits():
                edit.setEnabled(False)
                edit.setPlaceholderText("")
            self.keyring_label.setText(
                "API keys cannot be stored on this computer. "
                + (self._keyring_hint or "No secure OS keyring is available.")
                + " The connection can still be saved for public market data."
            )
            self.keyring_label.setStyleSheet("QLabel { color: #c77700; }")
        else:
            self.keyring_label.setText("Leave all three empty for public market data only.")
            self.keyring_label.setEnabled(False)
        self._update_passphrase()

    @staticmethod
    def _select(box: QComboBox, value: str) -> None:
        index = box.findData(value)
        if index >= 0:
            box.setCurrentIndex(index)

    # -- state ----------------------------------------------------------------------------------

    @property
    def is_edit(self) -> bool:
        return self._record is not None

    @property
    def busy(self) -> bool:
        """True while a save is in flight."""
        return self._runner.busy

    def secret_edits(self) -> tuple[QLineEdit, QLineEdit, QLineEdit]:
        return (self.api_key_edit, self.api_secret_edit, self.passphrase_edit)

    def exchange(self) -> str:
        return str(self.exchange_box.currentData())

    def error_text(self) -> str:
        """The inline error currently shown ("" when none)."""
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def draft(self) -> ConnectionDraft:
        return ConnectionDraft(
            name=self.name_edit.text().strip(),
            exchange=self.exchange(),
            api_type=ApiType(self.api_type_box.currentData()),
            margin_mode=MarginMode(self.margin_box.currentData()),
            position_mode=PositionMode(self.position_box.currentData()),
            is_testnet=self.testnet_check.isChecked(),
            live_volume_factor=round(self.live_factor_spin.value(), 1),
            preset_volume_factor=round(self.preset_factor_spin.value(), 1),
        )

    def typed_credentials(self) -> Credentials | None:
        """What was typed into the secret fields; None when all are empty (keep / public only).

        A half-filled set is passed on as typed: the service refuses it with a clear message.
        """
        if not self._keyring_available:
            return None
        key, secret = self.api_key_edit.text().strip(), self.api_secret_edit.text().strip()
        passphrase = self.passphrase_edit.text().strip() if self.passphrase_edit.isEnabled() else ""
        if not (key or secret or passphrase):
            return None
        return Credentials(key, secret, passphrase or None)

    # -- saving ---------------------------------------------------------------------------------

    @Slot()
    def save(self) -> None:
        """Validate through the service on the loop; the dialog stays open until it succeeded."""
        if self._runner.busy:
            return
        self._show_error("")
        self.save_button.setEnabled(False)
        self._runner.start(self._save(self.draft(), self.typed_credentials()), on_done=self._save_finished)

    async def _save(self, draft: ConnectionDraft, credentials: Credentials | None) -> None:
        try:
            if self._record is None:
                record = await self._service.create(draft, credentials)
            else:
                record = await self._service.update(self._record.id, self._changes(draft))
                self._record = record
                if credentials is not None:
                    record = await self._service.set_credentials(record.id, credentials)
        except (ConnectionRuleError, SecretStoreError, LookupError) as exc:
            # KeyringUnavailableError is a SecretStoreError: its text says what to install.
            if shiboken6.isValid(self):
                self._show_error(str(exc))
            return
        if shiboken6.isValid(self):
            self.saved.emit(record.id)
            self.accept()

    @staticmethod
    def _changes(draft: ConnectionDraft) -> dict[str, object]:
        """Every editable field; the service ignores the unchanged ones."""
        return {
            "name": draft.name,
            "exchange": draft.exchange,
            "api_type": draft.api_type,
            "margin_mode": draft.margin_mode,
            "position_mode": draft.position_mode,
            "is_testnet": draft.is_testnet,
            "live_volume_factor": draft.live_volume_factor,
            "preset_volume_factor": draft.preset_volume_factor,
        }

    def _save_finished(self) -> None:
        if shiboken6.isValid(self):
            self.save_button.setEnabled(True)

    def _on_unexpected_error(self, error: BaseException) -> None:
        if shiboken6.isValid(self):
            self._show_error(f"Could not save the connection: {error}")

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    @Slot()
    def _update_passphrase(self) -> None:
        needs = self.exchange() in PASSPHRASE_EXCHANGES
        self.passphrase_edit.setEnabled(needs and self._keyring_available)
        if not needs:
            self.passphrase_edit.clear()
        self.passphrase_edit.setToolTip("" if needs else "Only OKX API keys have a passphrase")

    # -- closing --------------------------------------------------------------------------------

    def done(self, result: int) -> None:
        """Every way out (Save, Cancel, Esc, the title-bar button) clears the typed secrets."""
        for edit in self.secret_edits():
            edit.clear()
        super().done(result)
