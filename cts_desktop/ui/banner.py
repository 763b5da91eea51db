"""A red strip across the top of the window for what must not scroll away unseen.

A tripped circuit breaker pauses trading on a connection; a line in the Logs dock or a status
bar message that vanishes after a few seconds is easy to miss. The banner keeps the latest few
alerts (newest first, repeats counted instead of repeated) until the user dismisses them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

BANNER_STYLE: Final = (
    "QFrame#alert_banner { background: #b71c1c; border-radius: 3px; }"
    "QFrame#alert_banner QLabel { color: white; font-weight: bold; }"
)
MAX_MESSAGES: Final = 5


class Banner(QFrame):
    """Alert lines with a Dismiss button; ``changed`` when lines are added or dismissed."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, max_messages: int = MAX_MESSAGES) -> None:
        super().__init__(parent)
        self.setObjectName("alert_banner")
        self.setStyleSheet(BANNER_STYLE)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self._max = max_messages
        self._entries: list[tuple[str, str, int]] = []  # (time, text, repeats), newest first
        self.label = QLabel(self)
        self.label.setObjectName("alert_banner_text")
        self.label.setWordWrap(True)
        self.dismiss_button = QPushButton("Dismiss", self)
        self.dismiss_button.setObjectName("alert_banner_dismiss")
        self.dismiss_button.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.dismiss_button)

    def has_messages(self) -> bool:
        return bool(self._entries)

    def messages(self) -> list[str]:
        """The lines as shown, newest first."""
        return [self._line(entry) for entry in self._entries]

    def add(self, text: str) -> None:
        stamp = datetime.now().astimezone().strftime("%H:%M:%S")
        if self._entries and self._entries[0][1] == text:
            self._entries[0] = (stamp, text, self._entries[0][2] + 1)
        else:
            self._entries.insert(0, (stamp, text, 1))
            del self._entries[self._max :]
        self._render()

    @Slot()
    def clear(self) -> None:
        self._entries.clear()
        self._render()

    @staticmethod
    def _line(entry: tuple[str, str, int]) -> str:
        stamp, text, repeats = entry
        return f"{stamp}  {text}" + (f"  (×{repeats})" if repeats > 1 else "")

    def _render(self) -> None:
        self.label.setText("\n".join(self.messages()))
        self.changed.emit()
