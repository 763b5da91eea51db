"""The Orders and Positions docks over a real EventBus and bridge, reading the coordinator double.

What matters: rows follow ``OrdersChanged`` / ``PositionsChanged``; a change updates cells in
place (no model reset, the selection survives); a burst of events costs one read; live rows are
marked loudly. The last test runs the Positions dock over the real Coordinator (the offline
simulated market, paper).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QApplication

from cts_desktop.domain.enums import Actor, TradingMode
from cts_desktop.domain.market import OrderSide, OrderType, PositionSide
from cts_desktop.domain.orders import OrderIntent, OrderStatus, OrderView, PositionView
from cts_desktop.engine.events import EventBus, OrdersChanged
from cts_desktop.engine.execution_component import ExecutionTradingComponent
from cts_desktop.services import build_services
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.models import orders_model, positions_model
from cts_desktop.ui.models.market_model import format_price
from cts_desktop.ui.models.orders_model import LIVE_COLOUR, OrdersTableModel, format_amount
from cts_desktop.ui.models.positions_model import LOSS_COLOUR, PROFIT_COLOUR, PositionsTableModel
from cts_desktop.ui.panels.live_table_panel import LiveTablePanel
from cts_desktop.ui.panels.orders_panel import OrdersPanel
from cts_desktop.ui.panels.positions_panel import MARK_REFRESH_MS, PositionsPanel
from tests.helpers import wait_for
from tests.ui.fakes import FakeCoordinator

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def order(
    order_id: str,
    *,
    connection_id: str = "c1",
    status: OrderStatus = OrderStatus.OPEN,
    mode: TradingMode = TradingMode.PAPER,
    filled: float = 0.0,
    created_at: datetime | None = None,
    reject_reason: str | None = None,
) -> OrderView:
    return OrderView(
        order_id,
        f"cts-{order_id}",
        connection_id,
        BTC,
        OrderSide.BUY if order_id.endswith(("1", "3")) else OrderSide.SELL,
        OrderType.LIMIT,
        0.02,
        filled,
        status,
        mode,
        price=60_000.5,
        created_at=created_at or datetime(2024, 5, 1, 12, 0, int(order_id[-1]), tzinfo=UTC),
        reject_reason=reject_reason,
    )


def position(
    symbol: str,
    *,
    connection_id: str = "c1",
    side: PositionSide = PositionSide.LONG,
    pnl: float | None = 12.5,
    mark: float | None = 101.0,
    mode: TradingMode = TradingMode.PAPER,
) -> PositionView:
    return PositionView(
        connection_id, symbol, side, 0.5, 100.0, mode, mark_price=mark, unrealized_pnl=pnl, leverage=3.0
    )


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def coordinator(bus: EventBus) -> FakeCoordinator:
    fake = FakeCoordinator(bus)
    fake.add("c1", "Binance main")
    fake.add("c2", "Bybit live", exchange="bybit", mode=TradingMode.LIVE)
    return fake


@pytest.fixture
def make_panel(
    qapp: QApplication, bus: EventBus, coordinator: FakeCoordinator
) -> Iterator[Callable[[type[LiveTablePanel]], Any]]:
    made: list[tuple[LiveTablePanel, EventBridge]] = []

    def make(kind: type[LiveTablePanel]) -> Any:
        bridge = EventBridge(bus)
        panel = kind(coordinator, bridge)  # type: ignore[call-arg]
        panel.resize(900, 300)
        panel.show()
        made.append((panel, bridge))
        return panel

    yield make
    for panel, bridge in made:
        panel.stop()
        shiboken6.delete(panel)
        bridge.close()


def model_row(model: Any, key: object) -> int:
    """The model row (not the view row) holding ``key``."""
    return next(index for index, row in enumerate(model.rows()) if model.key(row) == key)


class Signals:
    """Counts what a model told its views."""

    def __init__(self, model: Any) -> None:
        self.resets = 0
        self.inserted: list[tuple[int, int]] = []
        self.removed: list[tuple[int, int]] = []
        self.changed: list[tuple[int, int]] = []
        model.modelReset.connect(self._reset)
        model.rowsInserted.connect(lambda _p, first, last: self.inserted.append((first, last)))
        model.rowsRemoved.connect(lambda _p, first, last: self.removed.append((first, last)))
        model.dataChanged.connect(lambda top, bottom, *_: self.changed.append((top.row(), bottom.row())))

    def _reset(self) -> None:
        self.resets += 1


# ------------------------------------------------------------------------------ orders


@pytest.mark.asyncio
async def test_orders_appear_with_their_connection_mode_and_state(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    panel: OrdersPanel = make_panel(OrdersPanel)
    await wait_for(lambda: panel.reload_count == 1)
    assert panel.display_rows() == [] and panel.summary_label.text() == "0 open orders"

    coordinator.set_orders(
        [
            order("o1"),
            order(
                "o2",
                connection_id="c2",
                mode=TradingMode.LIVE,
                status=OrderStatus.PARTIALLY_FILLED,
                filled=0.01,
            ),
        ]
    )
    await wait_for(lambda: panel.model.rowCount() == 2)

    rows = panel.display_rows()  # newest first
    assert [row[orders_model.CLIENT_ID] for row in rows] == ["cts-o2", "cts-o1"]
    live, paper = rows
    assert live[orders_model.CONNECTION] == "Bybit live" and paper[orders_model.CONNECTION] == "Binance main"
    assert live[orders_model.MODE] == "LIVE" and paper[orders_model.MODE] == "PAPER"
    assert live[orders_model.STATUS] == "partially filled" and paper[orders_model.STATUS] == "open"
    assert paper[orders_model.PRICE] == "60,000.50" and paper[orders_model.AMOUNT] == "0.02"
    assert live[orders_model.FILLED] == "0.01"
    assert panel.summary_label.text() == "2 open orders"

    model = panel.orders_model
    live_row = model_row(model, "o2")
    mode_index = model.index(live_row, orders_model.MODE)
    assert mode_index.data(Qt.ItemDataRole.ForegroundRole) == LIVE_COLOUR
    assert mode_index.data(Qt.ItemDataRole.FontRole).bold()
    paper_row = model_row(model, "o1")
    assert model.index(paper_row, orders_model.MODE).data(Qt.ItemDataRole.ForegroundRole) is None


@pytest.mark.asyncio
async def test_a_changed_order_is_updated_in_place_and_keeps_the_selection(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    coordinator.orders = [order("o1"), order("o2"), order("o3")]
    panel: OrdersPanel = make_panel(OrdersPanel)
    await wait_for(lambda: panel.model.rowCount() == 3)
    signals = Signals(panel.model)
    panel.view.selectRow(1)
    selected = panel.display_rows()[1][orders_model.CLIENT_ID]

    coordinator.set_orders(
        [
            order("o1"),
            order("o2", status=OrderStatus.PENDING_CANCEL),
            order("o3", status=OrderStatus.PARTIALLY_FILLED),
        ]
    )
    await wait_for(lambda: signals.changed != [])

    assert signals.resets == 0 and signals.inserted == [] and signals.removed == []
    assert signals.changed == [(1, 2)]  # one signal for the rectangle that changed
    statuses = {row[orders_model.CLIENT_ID]: row[orders_model.STATUS] for row in panel.display_rows()}
    assert statuses == {"cts-o1": "open", "cts-o2": "pending cancel", "cts-o3": "partially filled"}
    [current] = panel.view.selectionModel().selectedRows()
    assert panel.display_rows()[current.row()][orders_model.CLIENT_ID] == selected


@pytest.mark.asyncio
async def test_orders_that_are_no_longer_open_leave_the_table(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    coordinator.orders = [order("o1"), order("o2"), order("o3")]
    panel: OrdersPanel = make_panel(OrdersPanel)
    await wait_for(lambda: panel.model.rowCount() == 3)

    coordinator.set_orders([order("o2")])  # o1 filled, o3 cancelled
    await wait_for(lambda: panel.model.rowCount() == 1)

    assert [row[orders_model.CLIENT_ID] for row in panel.display_rows()] == ["cts-o2"]
    assert panel.summary_label.text() == "1 open order"


@pytest.mark.asyncio
async def test_a_burst_of_order_events_costs_one_read(
    bus: EventBus, coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    panel: OrdersPanel = make_panel(OrdersPanel)
    await wait_for(lambda: panel.reload_count == 1)
    reads = coordinator.read_counts["open_orders"]

    coordinator.orders = [order("o1")]
    for _ in range(200):
        bus.publish(OrdersChanged("c1"))
    await wait_for(lambda: panel.model.rowCount() == 1)
    await asyncio.sleep(0.4)

    assert coordinator.read_counts["open_orders"] - reads == 1
    assert panel.reload_count == 2


@pytest.mark.asyncio
async def test_a_failed_read_is_shown_and_the_next_one_clears_it(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    coordinator.failures["open_orders"] = RuntimeError("database is locked")
    panel: OrdersPanel = make_panel(OrdersPanel)
    await wait_for(lambda: panel.error_text() != "")
    assert panel.error_text() == "Could not read the open orders: database is locked"

    coordinator.set_orders([order("o1")])
    await wait_for(lambda: panel.model.rowCount() == 1)
    assert panel.error_text() == ""


def test_a_rejection_reason_is_the_status_tooltip() -> None:
    model = OrdersTableModel()
    model.replace_rows([order("o1", status=OrderStatus.REJECTED, reject_reason="insufficient margin")])
    index = model.index(0, orders_model.STATUS)
    assert index.data() == "rejected"
    assert index.data(Qt.ItemDataRole.ToolTipRole) == "insufficient margin"
    assert index.data(Qt.ItemDataRole.ForegroundRole).name() == "#d32f2f"
    assert format_amount(12_345_678.0) == "12,345,678" and format_amount(0.00012345) == "0.00012345"


# ------------------------------------------------------------------------------ positions


@pytest.mark.asyncio
async def test_positions_show_pnl_coloured_and_follow_position_events(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    panel: PositionsPanel = make_panel(PositionsPanel)
    await wait_for(lambda: panel.reload_count == 1)

    coordinator.set_positions(
        [
            position(BTC),
            position(ETH, side=PositionSide.SHORT, pnl=-3.25),
            position(BTC, connection_id="c2", mode=TradingMode.LIVE, pnl=None, mark=None),
        ]
    )
    await wait_for(lambda: panel.model.rowCount() == 3)

    rows = panel.display_rows()  # by connection name
    assert [(r[positions_model.CONNECTION], r[positions_model.SYMBOL]) for r in rows] == [
        ("Binance main", BTC),
        ("Binance main", ETH),
        ("Bybit live", BTC),
    ]
    assert rows[0][positions_model.PNL] == "+12.50" and rows[1][positions_model.PNL] == "-3.25"
    assert rows[0][positions_model.LEVERAGE] == "3×" and rows[1][positions_model.SIDE] == "short"
    assert rows[2][positions_model.MODE] == "LIVE" and rows[2][positions_model.MARK] == ""
    model = panel.positions_model
    btc_row = model_row(model, ("c1", BTC, PositionSide.LONG))
    eth_row = model_row(model, ("c1", ETH, PositionSide.SHORT))
    assert model.index(btc_row, positions_model.PNL).data(Qt.ItemDataRole.ForegroundRole) == PROFIT_COLOUR
    assert model.index(eth_row, positions_model.PNL).data(Qt.ItemDataRole.ForegroundRole) == LOSS_COLOUR
    assert panel.summary_label.text() == "3 open positions"

    signals = Signals(model)
    coordinator.set_positions(
        [position(BTC, pnl=20.0, mark=102.0), position(ETH, side=PositionSide.SHORT, pnl=-3.25)]
    )
    await wait_for(lambda: model.rowCount() == 2)

    assert signals.resets == 0
    assert signals.removed == [(2, 2)] and signals.changed == [(0, 0)]
    assert panel.display_rows()[0][positions_model.PNL] == "+20.00"


@pytest.mark.asyncio
async def test_marks_and_pnl_refresh_between_position_events_while_positions_are_shown(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    """The engine publishes PositionsChanged only when positions change, not when the mark moves:
    the dock reads again on its own, at a low rate, while it is visible and shows positions."""
    period_s = MARK_REFRESH_MS / 1000
    coordinator.positions = [position(BTC, pnl=12.5, mark=101.0)]
    panel: PositionsPanel = make_panel(PositionsPanel)
    await wait_for(lambda: panel.model.rowCount() == 1)
    assert panel.display_rows()[0][positions_model.PNL] == "+12.50"

    coordinator.positions = [position(BTC, pnl=20.0, mark=102.5)]  # the mark moved, no event
    await wait_for(lambda: panel.display_rows()[0][positions_model.PNL] == "+20.00", timeout=period_s + 1)
    assert panel.display_rows()[0][positions_model.MARK] == format_price(102.5)

    panel.hide()  # a hidden dock reads nothing
    reads = coordinator.read_counts["open_positions"]
    coordinator.positions = [position(BTC, pnl=30.0, mark=103.0)]
    await asyncio.sleep(period_s * 1.5)
    assert coordinator.read_counts["open_positions"] == reads
    assert panel.display_rows()[0][positions_model.PNL] == "+20.00"

    panel.show()
    coordinator.set_positions([])  # closed (an event): nothing left to refresh
    await wait_for(lambda: panel.model.rowCount() == 0)
    reads = coordinator.read_counts["open_positions"]
    await asyncio.sleep(period_s * 1.5)
    assert coordinator.read_counts["open_positions"] == reads


def test_a_hedged_long_and_short_of_one_symbol_are_two_rows() -> None:
    model = PositionsTableModel()
    model.replace_rows([position(BTC), position(BTC, side=PositionSide.SHORT)])
    assert model.rowCount() == 2


# ------------------------------------------------------------------------------ the merge itself


def test_merging_removes_in_blocks_updates_once_and_appends_new_rows(qapp: QApplication) -> None:
    model = OrdersTableModel()
    first = [order(f"o{i}") for i in range(1, 8)]  # o1..o7
    model.replace_rows(first)
    signals = Signals(model)

    changed = dataclasses.replace(first[5], status=OrderStatus.PARTIALLY_FILLED)  # o6
    model.replace_rows([first[0], first[3], changed, first[6], order("o8"), order("o9")])  # o2, o3, o5 gone

    assert signals.removed == [(4, 4), (1, 2)]  # bottom-up, one pair per contiguous block
    assert signals.changed == [(2, 2)]  # o6, now at row 2
    assert signals.inserted == [(4, 5)]
    assert [row.id for row in model.rows()] == ["o1", "o4", "o6", "o7", "o8", "o9"]
    assert model.index(2, orders_model.STATUS).data() == "partially filled"
    assert signals.resets == 0

    model.replace_rows(model.rows())  # nothing changed: no signal at all
    assert signals.changed == [(2, 2)] and signals.inserted == [(4, 5)]
    assert not model.index(99, 0).isValid() and model.data(QModelIndex()) is None


@pytest.mark.asyncio
async def test_the_selected_order_is_cancelled_through_the_coordinator_as_the_user(
    coordinator: FakeCoordinator, make_panel: Callable[[type[LiveTablePanel]], Any]
) -> None:
    coordinator.orders = [order("o1"), order("o2")]
    panel: OrdersPanel = make_panel(OrdersPanel)
    await wait_for(lambda: panel.model.rowCount() == 2)
    assert not panel.cancel_button.isEnabled()  # nothing selected
    panel.view.selectRow(0)
    assert panel.cancel_button.isEnabled()
    target = panel.selected_order()
    assert target is not None
    ended: list[OrderView] = []
    panel.cancelled.connect(ended.append)

    panel.cancel_button.click()
    await wait_for(lambda: len(ended) == 1)
    (call,) = coordinator.calls_to("cancel_order")
    assert (call.connection_id, call.actor, call.args) == (
        target.connection_id,
        Actor.USER,
        {"client_order_id": target.client_order_id},
    )
    await wait_for(lambda: panel.model.rowCount() == 1)
    remaining = [row[orders_model.CLIENT_ID] for row in panel.display_rows()]
    assert remaining == [cid for cid in ("cts-o1", "cts-o2") if cid != target.client_order_id]

    coordinator.failures["cancel_order"] = LookupError("no open order cts-o9")
    panel.view.selectRow(0)
    panel.cancel_button.click()
    await wait_for(lambda: panel.error_label.isVisible())
    assert "Could not cancel the order: no open order cts-o9" in panel.error_label.text()
    assert panel.cancel_button.isEnabled()  # the user may try again


# ------------------------------------------------------------------------------ over the real coordinator


@pytest.fixture
def no_quit_on_last_window(qapp: QApplication) -> Iterator[None]:
    """As the composition root sets it: deleting the panel (the only window) must not stop the loop."""
    previous = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(previous)


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_quit_on_last_window")
async def test_the_dock_shows_a_paper_position_opened_through_the_real_coordinator() -> None:
    """Offline: the built-in simulated market's engine, paper. A market buy through the engine's
    own order executor fills on the paper venue, and the dock shows the position it opened."""
    services = await build_services(console_logging=False)
    bridge = EventBridge(services.bus)
    panel: PositionsPanel | None = None
    try:
        await services.start(auto_start=False)
        coordinator = services.coordinator
        [simulated] = [s for s in coordinator.snapshots() if s.exchange == "simulated"]
        await coordinator.start(simulated.connection_id)
        await coordinator.pause(simulated.connection_id)  # no entries of its own: only ours
        engine = coordinator.engine(simulated.connection_id)
        assert engine is not None and isinstance(engine.trading, ExecutionTradingComponent)
        panel = PositionsPanel(coordinator, bridge)
        panel.show()
        await wait_for(lambda: panel is not None and panel.reload_count >= 1, timeout=10)
        assert panel.display_rows() == []

        symbol = "SOL/USDT"
        price = (await engine.venues.trading.fetch_ticker(symbol)).last
        assert price is not None
        filled = await engine.trading.executor.submit(
            OrderIntent(
                connection_id=simulated.connection_id,
                symbol=symbol,
                side=OrderSide.BUY,
                type=OrderType.MARKET,
                amount=1.0,
                reference_price=price,
                mode=TradingMode.PAPER,
            )
        )
        assert filled.status is OrderStatus.FILLED, filled.reject_reason

        await wait_for(lambda: panel is not None and panel.model.rowCount() == 1, timeout=10)
        [row] = panel.display_rows()
        assert row[positions_model.CONNECTION] == simulated.name == "Simulated market"
        assert (row[positions_model.MODE], row[positions_model.SYMBOL]) == ("PAPER", symbol)
        assert (row[positions_model.SIDE], row[positions_model.SIZE]) == ("long", format_amount(1.0))
        assert row[positions_model.ENTRY] != "" and panel.summary_label.text() == "1 open position"
        assert panel.error_text() == ""
    finally:
        if panel is not None:
            panel.stop()
            await panel.wait_idle()
            shiboken6.delete(panel)
        bridge.close()
        await services.aclose()
