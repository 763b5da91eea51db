"""The Market dock over a real EventBus + MarketBus, fed with real Tickers, offscreen."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.domain.market import StreamStatus, Ticker
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.market_events import StreamKind
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.log_handler import QtLogHandler
from cts_desktop.ui.main_window import MainWindow
from cts_desktop.ui.models.market_model import (
    AGE,
    ASK,
    BID,
    CHANGE,
    LAST,
    NEGATIVE_COLOUR,
    POSITIVE_COLOUR,
    STATUS,
    STATUS_COLOURS,
    SYMBOL,
    MarketTableModel,
    format_age,
    format_price,
)
from cts_desktop.ui.panels.market_panel import MarketPanel
from cts_desktop.ui.panels.table_panel import TablePanel
from tests.helpers import wait_for

SOURCE = "simulated"
REFRESH_MS = 200


class Clock:
    """The MarketBus's monotonic clock, moved by hand so tick ages are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Feed:
    """Real Tickers into a real MarketBus, with increasing exchange timestamps per symbol."""

    def __init__(self, market: MarketBus, source: str = SOURCE) -> None:
        self.market = market
        self.source = source
        self.ts = 1_700_000_000_000

    def tick(self, symbol: str, last: float, *, change: float | None = 1.5, spread: float = 0.1) -> Ticker:
        self.ts += 1
        ticker = Ticker(symbol, self.ts, last, bid=last - spread, ask=last + spread, change_pct_24h=change)
        self.market.on_ticker(self.source, ticker)
        return ticker


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> EventBus:
    return EventBus()


@pytest.fixture
def market(events: EventBus, clock: Clock) -> MarketBus:
    return MarketBus(events, clock=clock)


@pytest.fixture
def feed(market: MarketBus) -> Feed:
    return Feed(market)


@pytest.fixture
def panel(qtbot: QtBot, events: EventBus, market: MarketBus) -> Iterator[MarketPanel]:
    bridge = EventBridge(events)
    widget = MarketPanel(market, bridge, source=SOURCE, refresh_ms=REFRESH_MS)
    qtbot.addWidget(widget)
    widget.resize(700, 400)
    widget.show()
    yield widget
    if shiboken6.isValid(widget):  # pytest-qt may already have closed and deleted it
        widget.stop()
    bridge.close()


def cell(panel: MarketPanel, symbol: str, column: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:
    row = panel.model.row_of(symbol)
    assert row is not None, symbol
    return panel.model.index(row, column).data(role)


class Counter:
    """Counts a model's change notifications."""

    def __init__(self, model: MarketTableModel) -> None:
        self.changed: list[tuple[int, int, int, int]] = []
        self.inserted: list[tuple[int, int]] = []
        model.dataChanged.connect(self._on_changed)
        model.rowsInserted.connect(lambda _parent, first, last: self.inserted.append((first, last)))

    def _on_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: object = None) -> None:
        self.changed.append((top_left.row(), top_left.column(), bottom_right.row(), bottom_right.column()))


# ------------------------------------------------------------------------------ formatting


def test_prices_get_decimals_by_magnitude() -> None:
    assert format_price(63412.5) == "63,412.50"
    assert format_price(1000.0) == "1,000.00"
    assert format_price(142.35) == "142.3500"
    assert format_price(1.0) == "1.0000"
    assert format_price(0.5123) == "0.51230"
    assert format_price(0.061234) == "0.061234"
    assert format_price(0.00001234) == "0.000012340"
    assert format_price(0.0) == "0"
    assert format_price(None) == ""
    assert format_price(float("nan")) == ""


def test_age_shows_tenths_while_fresh_and_whole_seconds_when_old() -> None:
    assert format_age(None) == ""
    assert format_age(0.04) == "0.0"
    assert format_age(12.34) == "12.3"
    assert format_age(125.6) == "126"


def test_a_refresh_faster_than_5_hz_is_refused(market: MarketBus) -> None:
    with pytest.raises(ValueError, match="5 refreshes"):
        MarketTableModel(market, SOURCE, refresh_ms=100)


# ------------------------------------------------------------------------------ rows and values


@pytest.mark.asyncio
async def test_rows_and_values_appear_after_the_refresh_timer(panel: MarketPanel, feed: Feed) -> None:
    feed.tick("BTC/USDT:USDT", 63412.5, change=2.25)
    feed.tick("DOGE/USDT:USDT", 0.061234, change=-3.5, spread=0.000001)

    assert panel.model.rowCount() == 0  # nothing until the timer refreshes
    await wait_for(lambda: panel.model.rowCount() == 2)

    assert cell(panel, "BTC/USDT:USDT", LAST) == "63,412.50"
    assert cell(panel, "BTC/USDT:USDT", BID) == "63,412.40"
    assert cell(panel, "BTC/USDT:USDT", ASK) == "63,412.60"
    assert cell(panel, "BTC/USDT:USDT", CHANGE) == "+2.25 %"
    assert cell(panel, "DOGE/USDT:USDT", LAST) == "0.061234"
    assert cell(panel, "DOGE/USDT:USDT", BID) == "0.061233"
    assert cell(panel, "DOGE/USDT:USDT", CHANGE) == "-3.50 %"
    assert cell(panel, "BTC/USDT:USDT", AGE) == "0.0"
    assert [panel.model.headerData(c, Qt.Orientation.Horizontal) for c in range(7)] == [
        "Symbol",
        "Last",
        "Bid",
        "Ask",
        "24h %",
        "Status",
        "Age",
    ]


@pytest.mark.asyncio
async def test_a_new_price_is_shown_at_the_next_refresh_not_at_the_tick(
    panel: MarketPanel, feed: Feed
) -> None:
    feed.tick("ETH/USDT", 3000.0)
    panel.model.refresh()
    feed.tick("ETH/USDT", 3001.5)
    assert cell(panel, "ETH/USDT", LAST) == "3,000.00"  # the snapshot, until the next refresh
    await wait_for(lambda: cell(panel, "ETH/USDT", LAST) == "3,001.50")


@pytest.mark.asyncio
async def test_500_ticks_on_5_symbols_are_coalesced(panel: MarketPanel, feed: Feed) -> None:
    symbols = [f"S{i}/USDT" for i in range(5)]
    counter = Counter(panel.model)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for batch in range(50):  # 500 ticks spread over about half a second, as a live feed sends them
        for i in range(10):
            feed.tick(symbols[i % 5], 100.0 + batch + i / 100)
        await asyncio.sleep(0.01)
    await wait_for(lambda: panel.model.rowCount() == 5 and cell(panel, "S4/USDT", LAST) == "149.0900")

    # At most one dataChanged per timer refresh (the fake clock keeps ages still), so a
    # handful for 500 ticks: about 3 at 200 ms, even on a slow machine far below one per tick.
    refreshes_possible = (loop.time() - started) * 1000 / REFRESH_MS + 1
    assert len(counter.changed) <= refreshes_possible, counter.changed
    assert len(counter.changed) <= 25
    assert counter.inserted == [(0, 4)]  # the five symbols arrived in one insert
    assert sorted(panel.model.symbols()) == symbols
    assert cell(panel, "S0/USDT", LAST) == "149.0500"


@pytest.mark.asyncio
async def test_a_burst_between_two_refreshes_is_one_notification(panel: MarketPanel, feed: Feed) -> None:
    for i in range(5):
        feed.tick(f"S{i}/USDT", 1.0)
    await wait_for(lambda: panel.model.rowCount() == 5)
    counter = Counter(panel.model)
    for n in range(500):  # all within one turn of the event loop
        feed.tick(f"S{n % 5}/USDT", 2.0 + n)
    await wait_for(lambda: bool(counter.changed))
    await asyncio.sleep(3 * REFRESH_MS / 1000)  # later refreshes have nothing new to say
    assert counter.changed == [(0, SYMBOL, 4, AGE)]
    assert counter.inserted == []
    assert cell(panel, "S4/USDT", LAST) == "501.0000"


def test_each_refresh_emits_one_data_changed_over_the_dirty_rows(
    panel: MarketPanel, feed: Feed, clock: Clock
) -> None:
    for symbol in ("A/USDT", "B/USDT", "C/USDT", "D/USDT"):
        feed.tick(symbol, 10.0)
    panel.model.refresh()
    counter = Counter(panel.model)

    feed.tick("B/USDT", 11.0)
    feed.tick("C/USDT", 12.0)
    feed.tick("B/USDT", 13.0)
    panel.model.refresh()
    assert counter.changed == [(1, SYMBOL, 2, AGE)]  # one rectangle: rows B..C, all columns

    panel.model.refresh()
    assert len(counter.changed) == 1  # nothing dirty and no age moved: no signal at all

    clock.now += 5  # no ticks: only the Age column of every row changes
    panel.model.refresh()
    assert counter.changed[-1] == (0, AGE, 3, AGE)
    assert cell(panel, "A/USDT", AGE) == "5.0"
    assert counter.inserted == []


def test_new_symbols_are_inserted_in_one_batch_per_refresh(panel: MarketPanel, feed: Feed) -> None:
    counter = Counter(panel.model)
    feed.tick("A/USDT", 1.0)
    panel.model.refresh()
    for symbol in ("B/USDT", "C/USDT", "D/USDT"):
        feed.tick(symbol, 2.0)
        feed.tick(symbol, 2.5)
    panel.model.refresh()
    assert counter.inserted == [(0, 0), (1, 3)]
    assert panel.model.symbols() == ["A/USDT", "B/USDT", "C/USDT", "D/USDT"]


def test_events_of_another_source_are_ignored(panel: MarketPanel, market: MarketBus) -> None:
    other = Feed(market, source="binance")
    other.tick("BTC/USDT", 50000.0)
    panel.model.refresh()
    assert panel.model.rowCount() == 0


def test_symbols_the_bus_forgets_leave_the_table(panel: MarketPanel, feed: Feed, market: MarketBus) -> None:
    for symbol in ("A/USDT", "B/USDT", "C/USDT"):
        feed.tick(symbol, 1.0)
    panel.model.refresh()
    market.forget(SOURCE, ["B/USDT"])
    panel.model.refresh()
    assert panel.model.symbols() == ["A/USDT", "C/USDT"]
    assert panel.model.row_of("C/USDT") == 1


# ------------------------------------------------------------------------------ colours and status


def test_24h_change_is_green_when_up_and_red_when_down(panel: MarketPanel, feed: Feed) -> None:
    feed.tick("UP/USDT", 5.0, change=4.0)
    feed.tick("DOWN/USDT", 5.0, change=-1.0)
    feed.tick("FLAT/USDT", 5.0, change=0.0)
    panel.model.refresh()
    foreground = Qt.ItemDataRole.ForegroundRole
    assert cell(panel, "UP/USDT", CHANGE, foreground) == POSITIVE_COLOUR
    assert cell(panel, "DOWN/USDT", CHANGE, foreground) == NEGATIVE_COLOUR
    assert cell(panel, "FLAT/USDT", CHANGE, foreground) is None
    assert cell(panel, "UP/USDT", LAST, foreground) is None


def test_stream_status_is_shown_coloured_with_its_reason(
    panel: MarketPanel, market: MarketBus, feed: Feed
) -> None:
    statuses = {
        "L/USDT": (StreamStatus.LIVE, ""),
        "S/USDT": (StreamStatus.STALE, "no update for 30 s"),
        "R/USDT": (StreamStatus.RECONNECTING, "connection reset"),
        "P/USDT": (StreamStatus.POLLING, "websocket unavailable, polling REST"),
        "X/USDT": (StreamStatus.STOPPED, "stopped by the user"),
    }
    for symbol, (status, reason) in statuses.items():
        feed.tick(symbol, 1.0)
        market.on_status(SOURCE, symbol, StreamKind.TICKER, status, reason)
    panel.model.refresh()

    foreground = Qt.ItemDataRole.ForegroundRole
    assert {s: cell(panel, s, STATUS) for s in statuses} == {s: v[0].value for s, v in statuses.items()}
    assert cell(panel, "L/USDT", STATUS, foreground).name() == "#2e7d32"  # green
    assert cell(panel, "S/USDT", STATUS, foreground).name() == "#c77700"  # amber
    assert cell(panel, "R/USDT", STATUS, foreground).name() == "#c77700"
    assert cell(panel, "P/USDT", STATUS, foreground).name() == "#1f6fb2"  # blue
    assert cell(panel, "X/USDT", STATUS, foreground).name() == "#d32f2f"  # red
    assert cell(panel, "S/USDT", STATUS, Qt.ItemDataRole.ToolTipRole) == "no update for 30 s"
    assert set(STATUS_COLOURS) == set(StreamStatus)

    market.on_status(SOURCE, "S/USDT", StreamKind.TICKER, StreamStatus.LIVE)
    panel.model.refresh()
    assert cell(panel, "S/USDT", STATUS) == "live"


def test_a_status_before_any_tick_adds_the_row(panel: MarketPanel, market: MarketBus) -> None:
    market.on_status(SOURCE, "NEW/USDT", StreamKind.TICKER, StreamStatus.CONNECTING)
    panel.model.refresh()
    assert cell(panel, "NEW/USDT", STATUS) == "connecting"
    assert cell(panel, "NEW/USDT", LAST) == ""
    assert cell(panel, "NEW/USDT", AGE) == ""


# ------------------------------------------------------------------------------ sorting, filter, selection


def test_columns_sort_numerically(panel: MarketPanel, feed: Feed, clock: Clock) -> None:
    feed.tick("BTC/USDT", 63000.0, change=-1.0)
    clock.now += 2
    feed.tick("ADA/USDT", 9.5, change=5.0)
    clock.now += 2
    feed.tick("ETH/USDT", 3000.0, change=0.5)
    panel.model.refresh()

    assert panel.visible_symbols() == ["ADA/USDT", "BTC/USDT", "ETH/USDT"]  # default: by symbol
    panel.view.sortByColumn(LAST, Qt.SortOrder.AscendingOrder)
    assert panel.visible_symbols() == ["ADA/USDT", "ETH/USDT", "BTC/USDT"]  # 9.5 < 3000 < 63000
    panel.view.sortByColumn(CHANGE, Qt.SortOrder.DescendingOrder)
    assert panel.visible_symbols() == ["ADA/USDT", "ETH/USDT", "BTC/USDT"]
    panel.view.sortByColumn(AGE, Qt.SortOrder.DescendingOrder)
    assert panel.visible_symbols() == ["BTC/USDT", "ADA/USDT", "ETH/USDT"]  # the oldest tick first


def test_clicking_a_header_sorts(panel: MarketPanel, feed: Feed, qtbot: QtBot) -> None:
    for symbol, last in (("A/USDT", 3.0), ("B/USDT", 1.0), ("C/USDT", 2.0)):
        feed.tick(symbol, last)
    panel.model.refresh()
    header = panel.view.horizontalHeader()
    position = header.sectionViewportPosition(LAST) + header.sectionSize(LAST) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(position, 5))
    assert header.sortIndicatorSection() == LAST
    order = panel.visible_symbols()
    assert order in (["B/USDT", "C/USDT", "A/USDT"], ["A/USDT", "C/USDT", "B/USDT"])
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(position, 5))
    assert panel.visible_symbols() == order[::-1]  # a second click reverses


def test_the_sort_follows_new_prices(panel: MarketPanel, feed: Feed) -> None:
    feed.tick("A/USDT", 1.0)
    feed.tick("B/USDT", 2.0)
    panel.model.refresh()
    panel.view.sortByColumn(LAST, Qt.SortOrder.DescendingOrder)
    assert panel.visible_symbols() == ["B/USDT", "A/USDT"]
    feed.tick("A/USDT", 5.0)
    panel.model.refresh()
    assert panel.visible_symbols() == ["A/USDT", "B/USDT"]


def test_the_filter_box_narrows_the_rows(panel: MarketPanel, feed: Feed, qtbot: QtBot) -> None:
    for symbol in ("BTC/USDT", "ETH/USDT", "ETH/BTC", "SOL/USDT"):
        feed.tick(symbol, 1.0)
    panel.model.refresh()

    qtbot.keyClicks(panel.filter_box, "eth")
    assert panel.visible_symbols() == ["ETH/BTC", "ETH/USDT"]
    feed.tick("WETH/USDT", 1.0)  # a new symbol matching the filter shows up too
    panel.model.refresh()
    assert panel.visible_symbols() == ["ETH/BTC", "ETH/USDT", "WETH/USDT"]
    panel.filter_box.clear()
    assert len(panel.visible_symbols()) == 5


def test_selecting_a_row_emits_the_symbol_once(panel: MarketPanel, feed: Feed, qtbot: QtBot) -> None:
    feed.tick("A/USDT", 1.0)
    feed.tick("B/USDT", 2.0)
    panel.model.refresh()
    panel.view.sortByColumn(LAST, Qt.SortOrder.DescendingOrder)
    selected: list[str] = []
    panel.symbol_selected.connect(selected.append)

    rect = panel.view.visualRect(panel.proxy.index(1, SYMBOL))  # second row: A (1.0 < 2.0)
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert selected == ["A/USDT"]
    assert panel.selected_symbol() == "A/USDT"

    feed.tick("A/USDT", 9.0)  # A moves to the top: still selected, not announced again
    panel.model.refresh()
    assert panel.visible_symbols()[0] == "A/USDT"
    assert selected == ["A/USDT"]

    assert panel.select_symbol("B/USDT")
    assert selected == ["A/USDT", "B/USDT"]
    assert not panel.select_symbol("NOPE/USDT")


# ------------------------------------------------------------------------------ in the main window


@pytest.fixture
def make_window(qapp: QApplication, cts_home: Path) -> Iterator[list[MainWindow]]:
    windows: list[MainWindow] = []
    yield windows
    for window in windows:
        if shiboken6.isValid(window):
            window.finish_close()
            shiboken6.delete(window)


def _window(events: EventBus, cts_home: Path, **extra: Any) -> MainWindow:
    return MainWindow(
        layout_file=cts_home / "layout.ini",
        bus=events,
        mode=TradingMode.PAPER,
        engine_state=EngineState.IDLE,
        database_location=str(cts_home / "cts.db"),
        log_handler=QtLogHandler(),
        **extra,
    )


@pytest.mark.asyncio
async def test_the_market_dock_shows_the_bus_when_given_one(
    make_window: list[MainWindow], events: EventBus, market: MarketBus, feed: Feed, cts_home: Path
) -> None:
    window = _window(events, cts_home, market_bus=market, market_source=SOURCE)
    make_window.append(window)
    window.show()
    panel = window.dock("Market").widget()
    assert isinstance(panel, MarketPanel)
    assert window.market_panel is panel and panel.source == SOURCE

    feed.tick("BTC/USDT", 64000.0)
    await wait_for(lambda: panel.model.rowCount() == 1)
    assert cell(panel, "BTC/USDT", LAST) == "64,000.00"

    window.finish_close()
    assert not panel.model._timer.isActive()


def test_without_a_market_bus_the_market_dock_keeps_its_placeholder(
    make_window: list[MainWindow], events: EventBus, cts_home: Path
) -> None:
    window = _window(events, cts_home)
    make_window.append(window)
    assert isinstance(window.dock("Market").widget(), TablePanel)
    assert window.market_panel is None
