"""Table model behind the Market dock: one row per symbol of one MarketBus source.

Ticks arrive far faster than anyone can read (50 symbols × several ticks per second). A
``dataChanged`` per tick would repaint, and re-sort through the proxy, for every one of them —
vnpy's lag with hundreds of symbols. Here an event only marks its symbol dirty; a timer
(≤ 5 Hz) copies the dirty symbols' latest values from the bus into a snapshot and emits ONE
``dataChanged`` for the rectangle that changed, and at most one ``beginInsertRows`` for symbols
that appeared since the last refresh. The Age column changes without any event (that is the
point of it: a frozen feed shows a growing age), so it is part of every refresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtGui import QColor

from cts_desktop.domain.market import StreamStatus, Ticker
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.market_events import StreamStatusChanged, TickerUpdated
from cts_desktop.ui.models.row_table_model import RowTableModel

COLUMNS: Final = ("Symbol", "Last", "Bid", "Ask", "24h %", "Status", "Age")
SYMBOL, LAST, BID, ASK, CHANGE, STATUS, AGE = range(len(COLUMNS))
DEFAULT_REFRESH_MS: Final = 250  # 4 refreshes/s: under the 5 Hz budget of this panel
MIN_REFRESH_MS: Final = 200  # 5 Hz: faster would only burn CPU on repaints nobody reads
SORT_ROLE: Final = int(Qt.ItemDataRole.UserRole) + 1  # numbers for numeric columns, text otherwise

POSITIVE_COLOUR: Final = QColor("#2e7d32")
NEGATIVE_COLOUR: Final = QColor("#d32f2f")
#: Live is the only "all good"; amber means "prices may be old", blue "working, but by REST polling".
STATUS_COLOURS: Final[dict[StreamStatus, QColor]] = {
    StreamStatus.CONNECTING: QColor("#8a8a8a"),
    StreamStatus.LIVE: QColor("#2e7d32"),
    StreamStatus.STALE: QColor("#c77700"),
    StreamStatus.RECONNECTING: QColor("#c77700"),
    StreamStatus.POLLING: QColor("#1f6fb2"),
    StreamStatus.STOPPED: QColor("#d32f2f"),
}


def format_price(value: float | None) -> str:
    """Enough decimals to see a tick move at every magnitude, no more.

    BTC at 63 412.5 needs 2 decimals, SOL at 142.35 needs 4 to show a 0.0001 step, and a
    meme coin at 0.00001234 needs about four significant digits after its leading zeros.
    """
    if value is None or not math.isfinite(value):
        return ""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.2f}"
    if magnitude >= 1:
        return f"{value:.4f}"
    if magnitude == 0:
        return "0"
    decimals = min(12, 4 - math.floor(math.log10(magnitude)))
    return f"{value:.{decimals}f}"


def format_change(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.2f} %"


def format_age(age_s: float | None) -> str:
    """Tenths of a second while fresh (a live feed shows 0.x), whole seconds once it is old."""
    if age_s is None:
        return ""
    return f"{age_s:.1f}" if age_s < 60 else f"{age_s:.0f}"


@dataclass(slots=True)
class MarketRow:
    """What the view shows for one symbol, as of the last refresh (not as of the last tick)."""

    symbol: str
    ticker: Ticker | None = None
    status: StreamStatus | None = None
    reason: str = ""
    age_s: float | None = None
    age_text: str = ""


class MarketTableModel(RowTableModel[MarketRow]):
    """Latest ticker, stream status and tick age of every symbol of one source, refreshed in batches.

    Connect :meth:`on_event` to ``EventBridge.received``; the timer starts at once and runs until
    :meth:`stop` (the window closes).
    """

    def __init__(
        self,
        market_bus: MarketBus,
        source: str,
        *,
        refresh_ms: int = DEFAULT_REFRESH_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(COLUMNS, parent)
        if refresh_ms < MIN_REFRESH_MS:
            raise ValueError(f"refresh_ms must be at least {MIN_REFRESH_MS} (≤ 5 refreshes/s)")
        self._bus = market_bus
        self._source = source
        self._row_of: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    @property
    def source(self) -> str:
        return self._source

    @property
    def refresh_interval_ms(self) -> int:
        return self._timer.interval()

    def stop(self) -> None:
        """Stop refreshing (the window is closing; the bus lives on until the loop ends)."""
        self._timer.stop()

    def symbols(self) -> list[str]:
        """Symbols in model (insertion) order."""
        return [row.symbol for row in self._rows]

    def row_of(self, symbol: str) -> int | None:
        return self._row_of.get(symbol)

    def market_row(self, row: int) -> MarketRow:
        return self._rows[row]

    @Slot(object)
    def on_event(self, event: object) -> None:
        """Bridge handler: remember which symbol changed; the next refresh reads its new values.

        Deliberately O(1) and signal-free: it runs for every tick of every symbol.
        """
        if isinstance(event, TickerUpdated | StreamStatusChanged) and event.source == self._source:
            self._dirty.add(event.symbol)

    @Slot()
    def refresh(self) -> None:
        """Apply everything since the last refresh: one insert for new symbols, one ``dataChanged``."""
        bus, source = self._bus, self._source
        symbols = bus.symbols(source)
        if not self._row_of.keys() <= set(symbols):
            self._rebuild(symbols)  # the bus forgot symbols (they left the universe): rare
            return
        new = [symbol for symbol in symbols if symbol not in self._row_of]
        dirty = self._dirty
        self._dirty = set()
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for symbol in new:
                self._row_of[symbol] = len(self._rows)
                row = MarketRow(symbol)
                self._read(row)
                self._rows.append(row)
            self.endInsertRows()
            dirty.difference_update(new)
        top, bottom, left = len(self._rows), -1, AGE
        for symbol in dirty:
            index = self._row_of.get(symbol)
            if index is None:
                continue  # an event raced ahead of the bus listing the symbol: picked up next time
            self._read(self._rows[index])
            top, bottom, left = min(top, index), max(bottom, index), SYMBOL
        for index, row in enumerate(self._rows):
            age = bus.last_tick_age_s(source, row.symbol)
            text = format_age(age)
            row.age_s = age
            if text != row.age_text:
                row.age_text = text
                top, bottom = min(top, index), max(bottom, index)
        if bottom >= 0:
            self.dataChanged.emit(self.index(top, left), self.index(bottom, AGE))

    def _read(self, row: MarketRow) -> None:
        row.ticker = self._bus.ticker(self._source, row.symbol)
        status = self._bus.stream_status(self._source, row.symbol)
        row.status, row.reason = status if status is not None else (None, "")
        row.age_s = self._bus.last_tick_age_s(self._source, row.symbol)
        row.age_text = format_age(row.age_s)

    def _rebuild(self, symbols: list[str]) -> None:
        self.beginResetModel()
        self._rows = [MarketRow(symbol) for symbol in symbols]
        self._row_of = {symbol: index for index, symbol in enumerate(symbols)}
        for row in self._rows:
            self._read(row)
        self._dirty.clear()
        self.endResetModel()

    # -- RowTableModel ----------------------------------------------------------------------

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.ToolTipRole
            and section == AGE
        ):
            return "Seconds since the last tick arrived"
        return super().headerData(section, orientation, role)

    def cell(self, row: MarketRow, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column not in (SYMBOL, STATUS):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == STATUS and row.reason:
            return row.reason
        return None

    @staticmethod
    def _display(row: MarketRow, column: int) -> str:
        ticker = row.ticker
        if column == SYMBOL:
            return row.symbol
        if column == STATUS:
            return row.status.value if row.status is not None else ""
        if column == AGE:
            return row.age_text
        if ticker is None:
            return ""
        if column == LAST:
            return format_price(ticker.last)
        if column == BID:
            return format_price(ticker.bid)
        if column == ASK:
            return format_price(ticker.ask)
        return format_change(ticker.change_pct_24h)

    @staticmethod
    def _sort_key(row: MarketRow, column: int) -> Any:
        """Numbers sort as numbers; a missing value sorts below every real one."""
        ticker = row.ticker
        if column == SYMBOL:
            return row.symbol
        if column == STATUS:
            return row.status.value if row.status is not None else ""
        value: float | None
        if column == AGE:
            value = row.age_s
        elif ticker is None:
            value = None
        else:
            value = (ticker.last, ticker.bid, ticker.ask, ticker.change_pct_24h)[column - LAST]
        return -math.inf if value is None else float(value)

    @staticmethod
    def _foreground(row: MarketRow, column: int) -> QColor | None:
        if column == CHANGE and row.ticker is not None and row.ticker.change_pct_24h:
            return POSITIVE_COLOUR if row.ticker.change_pct_24h > 0 else NEGATIVE_COLOUR
        if column == STATUS and row.status is not None:
            return STATUS_COLOURS.get(row.status)
        return None


class MarketFilterProxy(QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE` (numbers as numbers) and filters symbols by a typed substring."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(SYMBOL)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)

    def set_search_text(self, text: str) -> None:
        self.setFilterFixedString(text.strip())
