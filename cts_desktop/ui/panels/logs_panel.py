"""The Logs dock: the newest records of the whole application, filterable while trading.

Follows the newest row like ``tail -f`` until the user scrolls up to read something; scrolling
back to the bottom resumes following. A record never reaches this panel unredacted: it arrives
through :class:`QtLogHandler`, whose filters run in the logging thread.
"""

from __future__ import annotations

import logging
from typing import Final

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.ui.log_handler import LogEntry, QtLogHandler
from cts_desktop.ui.models.log_model import (
    DEFAULT_CAPACITY,
    DEFAULT_REFRESH_MS,
    LEVEL,
    LOGGER,
    TIME,
    LogFilterProxy,
    LogTableModel,
)

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogsPanel(QWidget):
    """Level filter, search box, Clear button and the log table."""

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        refresh_ms: int = DEFAULT_REFRESH_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = LogTableModel(capacity, refresh_ms, self)
        self.proxy = LogFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._handler: QtLogHandler | None = None
        self._follow = True

        self.level_box = QComboBox(self)
        self.level_box.setObjectName("logs_level")
        self.level_box.addItems(LEVELS)
        self.level_box.setToolTip("Show this level and above")
        self.level_box.currentTextChanged.connect(self._on_level_changed)

        self.search_box = QLineEdit(self)
        self.search_box.setObjectName("logs_search")
        self.search_box.setPlaceholderText("Search logger or message")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self.proxy.set_search_text)

        self.clear_button = QPushButton("Clear", self)
        self.clear_button.setObjectName("logs_clear")
        self.clear_button.clicked.connect(self.model.clear)

        self.view = self._build_view()

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Level:", self))
        bar.addWidget(self.level_box)
        bar.addWidget(self.search_box, 1)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view)

    def _build_view(self) -> QTableView:
        view = QTableView(self)
        view.setObjectName("logs_view")
        view.setModel(self.proxy)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setWordWrap(False)
        view.setAlternatingRowColors(True)
        view.verticalHeader().hide()
        # Fixed row heights and widths: ResizeToContents would measure thousands of rows per batch.
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
        header = view.horizontalHeader()
        header.setStretchLastSection(True)
        for column, width in ((TIME, 100), (LEVEL, 75), (LOGGER, 200)):
            header.resizeSection(column, width)
        bar = view.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        return view

    def attach(self, handler: QtLogHandler) -> None:
        """Show what ``handler`` logged so far, then every new entry."""
        self.detach()
        self._handler = handler
        self.model.extend(handler.attach(self.model.append))

    def detach(self) -> None:
        """Stop receiving entries (the window is closing; logging goes on until the loop ends)."""
        if self._handler is not None:
            self._handler.detach(self.model.append)
            self._handler = None

    def set_min_level(self, name: str) -> None:
        """Select a level by name (``"WARNING"``); the combo box and the filter stay in step."""
        self.level_box.setCurrentText(name.upper())

    def is_following(self) -> bool:
        """True while the view keeps the newest row in sight."""
        return self._follow

    def _on_level_changed(self, name: str) -> None:
        self.proxy.set_min_level(logging.getLevelNamesMapping().get(name, logging.NOTSET))

    def _on_scrolled(self, value: int) -> None:
        self._follow = value >= self.view.verticalScrollBar().maximum()

    def _on_range_changed(self, _minimum: int, _maximum: int) -> None:
        if self._follow:
            self.view.scrollToBottom()

    def entries(self) -> list[LogEntry]:
        """Entries visible through the current filter, oldest first."""
        return [
            self.model.entry(self.proxy.mapToSource(self.proxy.index(row, 0)).row())
            for row in range(self.proxy.rowCount())
        ]
