"""The result of "Test connection": the status at a glance and the full log to read or send.

The log is what a trader pastes into a support request, hence monospace, selectable and one
click to copy. A key that can withdraw funds gets a banner nobody can overlook: a trading
application never needs that permission, and a leaked withdrawing key empties the account.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.engine.connection_test import WITHDRAW_WARNING, ConnectionTestResult
from cts_desktop.ui.theme import BOLD_ERROR_STYLE

SUCCESS_STYLE: Final = "QLabel { color: #2e7d32; font-weight: bold; }"
WITHDRAW_STYLE: Final = (
    "QLabel { background: #c62828; color: white; font-weight: bold; padding: 8px; border-radius: 3px; }"
)


class ConnectionTestDialog(QDialog):
    """Shows one :class:`ConnectionTestResult`; open it with ``show()`` (it is not modal)."""

    def __init__(
        self, connection_name: str, result: ConnectionTestResult, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("connection_test_dialog")
        self.setWindowTitle(f"Connection test — {connection_name}")
        self.test_result = result  # not `result`: that is QDialog.result()
        self.resize(760, 460)

        self.status_label = QLabel(self._status_text(connection_name, result), self)
        self.status_label.setObjectName("connection_test_status")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet(SUCCESS_STYLE if result.success else BOLD_ERROR_STYLE)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.withdraw_banner = QLabel(WITHDRAW_WARNING, self)
        self.withdraw_banner.setObjectName("connection_test_withdraw_warning")
        self.withdraw_banner.setWordWrap(True)
        self.withdraw_banner.setStyleSheet(WITHDRAW_STYLE)
        self.withdraw_banner.setVisible(result.can_withdraw is True)

        self.log_view = QPlainTextEdit(self)
        self.log_view.setObjectName("connection_test_log")
        self.log_view.setReadOnly(True)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setPlainText(result.log_text)

        self.copy_button = QPushButton("Copy log", self)
        self.copy_button.setObjectName("connection_test_copy")
        self.copy_button.clicked.connect(self.copy_log)
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("connection_test_close")
        self.close_button.clicked.connect(self.close)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.withdraw_banner)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log_view, 1)
        layout.addLayout(buttons)

    @staticmethod
    def _status_text(name: str, result: ConnectionTestResult) -> str:
        if result.success:
            text = f"{name}: connection test successful in {result.duration_s:.2f} s"
            if result.quote_balance is not None:
                text += f"; balance {result.quote_balance:,.2f} USDT"
            return text
        error = result.error or "unknown error"
        return f"{name}: connection test FAILED after {result.duration_s:.2f} s: {error}"

    def log_text(self) -> str:
        return self.log_view.toPlainText()

    @Slot()
    def copy_log(self) -> None:
        """Put the whole log on the clipboard (it holds no secret: the tester redacts it)."""
        QGuiApplication.clipboard().setText(self.log_text())
