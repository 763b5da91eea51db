"""The Market dock: live prices, stream status and tick age of every symbol of one source.

The panel reads only the MarketBus (the engine's shared market state) and its events through
the window's :class:`EventBridge`; it never talks to an exchange. Selecting a row announces the
symbol (``symbol_selected``) so the chart can follow it.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.models.market_model import (
    AGE,
    CHANGE,
    DEFAULT_REFRESH_MS,
    SYMBOL,
    MarketFilterProxy,
    MarketTableModel,
)


class MarketPanel(QWidget):
    """Filter box above a sortable table of one source's symbols; emits ``symbol_selected``."""

    symbol_selected = Signal(str)

    def __init__(
        self,
        market_bus: MarketBus,
        bridge: EventBridge,
        *,
        source: str = "simulated",
        refresh_ms: int = DEFAULT_REFRESH_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("panel_market")
        self.model = MarketTableModel(market_bus, source, refresh_ms=refresh_ms, parent=self)
        self.proxy = MarketFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._bridge: EventBridge | None = bridge
        bridge.received.connect(self.model.on_event)
        self._selected: str | None = None

        self.source_label = QLabel(f"Source: {source}", self)
        self.source_label.setObjectName("market_source")
        self.filter_box = QLineEdit(self)
        self.filter_box.setObjectName("market_filter")
        self.filter_box.setPlaceholderText("Filter symbols")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self.proxy.set_search_text)

        self.view = self._build_view()
        self.view.selectionModel().currentRowChanged.connect(self._on_current_row_changed)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.filter_box, 1)
        bar.addWidget(self.source_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view)

    def _build_view(self) -> QTableView:
        view = QTableView(self)
        view.setObjectName("market_view")
        view.setModel(self.proxy)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setWordWrap(False)
        view.setAlternatingRowColors(True)
        view.verticalHeader().hide()
        # Fixed sizes: ResizeToContents would measure every row on every refresh.
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
        header = view.horizontalHeader()
        header.setStretchLastSection(True)
        header.setDefaultSectionSize(78)  # the dock is narrow: compact columns, widen by dragging
        header.resizeSection(SYMBOL, 120)
        header.resizeSection(CHANGE, 64)
        header.resizeSection(AGE, 40)
        view.setSortingEnabled(True)
        view.sortByColumn(SYMBOL, Qt.SortOrder.AscendingOrder)
        return view

    @property
    def source(self) -> str:
        return self.model.source

    def selected_symbol(self) -> str | None:
        return self._selected

    def select_symbol(self, symbol: str) -> bool:
        """Select the row of ``symbol`` (if shown through the current filter); True when found."""
        row = self.model.row_of(symbol)
        if row is None:
            return False
        proxy_index = self.proxy.mapFromSource(self.model.index(row, SYMBOL))
        if not proxy_index.isValid():
            return False
        self.view.selectRow(proxy_index.row())
        return True

    def visible_symbols(self) -> list[str]:
        """Symbols in view order (after sorting and filtering)."""
        return [str(self.proxy.index(row, SYMBOL).data()) for row in range(self.proxy.rowCount())]

    def stop(self) -> None:
        """Stop refreshing and listening (the window is closing); idempotent."""
        self.model.stop()
        bridge, self._bridge = self._bridge, None
        if bridge is not None and shiboken6.isValid(bridge):
            bridge.received.disconnect(self.model.on_event)

    @Slot(QModelIndex, QModelIndex)
    def _on_current_row_changed(
        self, current: QModelIndex | QPersistentModelIndex, _previous: QModelIndex | QPersistentModelIndex
    ) -> None:
        if not current.isValid():
            return
        source_index = self.proxy.mapToSource(self.proxy.index(current.row(), SYMBOL))
        symbol = self.model.market_row(source_index.row()).symbol
        if symbol != self._selected:  # re-sorting moves the row, it does not re-select it
            self._selected = symbol
            self.symbol_selected.emit(symbol)
