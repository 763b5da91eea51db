"""The Engine dock over a real EventBus and bridge, driving the coordinator test double offscreen.

The double (tests/ui/fakes.py) follows the real transition table and publishes the coordinator's
events, so what is checked here is the dock's side of the contract: which buttons it offers in
each state, what it asks the coordinator for (always as the user), and what it shows back. The
last test repeats the basic clicks over the real Coordinator on the offline simulated market.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from cts_desktop.domain.engine import (
    ACTION_FROM,
    ComponentHealth,
    EngineAction,
    HealthStatus,
    IllegalTransition,
    allowed_actions,
)
from cts_desktop.domain.enums import Actor, EngineState, TradingMode
from cts_desktop.domain.market import OrderSide, OrderType, PositionSide
from cts_desktop.domain.orders import OrderStatus, OrderView, PositionView
from cts_desktop.engine.events import EngineSnapshotChanged, EngineStateChanged, Event, EventBus
from cts_desktop.engine.lifecycle import derive_global_state
from cts_desktop.services import build_services
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.panels.engine_card import CARD_ACTIONS, LIVE_FRAME, PAPER_FRAME, format_duration
from cts_desktop.ui.panels.engine_panel import FLATTEN_TEXT, RESTART_REASON, RETRY_REASON, EnginePanel
from tests.helpers import wait_for
from tests.ui.fakes import Call, FakeCoordinator

S = EngineState
type PanelFactory = Callable[[], EnginePanel]


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def coordinator(bus: EventBus) -> FakeCoordinator:
    return FakeCoordinator(bus)


@pytest.fixture
def make_panel(
    qtbot: QtBot, qapp: QApplication, bus: EventBus, coordinator: FakeCoordinator
) -> Iterator[PanelFactory]:
    panels: list[EnginePanel] = []
    bridges: list[EventBridge] = []

    def make() -> EnginePanel:
        bridge = EventBridge(bus)
        facade: EngineFacade = coordinator  # the double satisfies the Protocol the window uses
        panel = EnginePanel(facade, bridge)
        panel.resize(420, 700)
        panel.show()
        panels.append(panel)
        bridges.append(bridge)
        return panel

    yield make
    for panel in panels:
        panel.stop()
        shiboken6.delete(panel)
    for bridge in bridges:
        bridge.close()


def click(qtbot: QtBot, button: QAbstractButton) -> None:
    assert button.isEnabled(), button.objectName()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def order(order_id: str, connection_id: str = "c1") -> OrderView:
    return OrderView(
        order_id,
        f"cts-{order_id}",
        connection_id,
        "BTC/USDT:USDT",
        OrderSide.BUY,
        OrderType.LIMIT,
        0.01,
        0.0,
        OrderStatus.OPEN,
        TradingMode.PAPER,
        price=60_000.0,
    )


def position(symbol: str, connection_id: str = "c1") -> PositionView:
    return PositionView(connection_id, symbol, PositionSide.LONG, 0.5, 100.0, TradingMode.PAPER)


# ------------------------------------------------------------------------------ buttons per state


@pytest.mark.parametrize("state", list(EngineState))
def test_each_card_button_is_enabled_exactly_when_its_action_is_legal(
    state: EngineState, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main", state=state, reason="stream lost" if state is S.ERROR else "")
    panel = make_panel()
    card = panel.card("c1")

    assert card.enabled_actions() == allowed_actions(state) & CARD_ACTIONS
    for action, button in card.buttons.items():
        assert button.isEnabled() == (state in ACTION_FROM[action]), (state, action)
    assert card.state_badge.text() == state.value.upper()
    assert card.retry_button.isHidden() == (state is not S.ERROR)
    # With one engine the global buttons follow the same table.
    for action, button in panel.global_buttons.items():
        assert button.isEnabled() == (state in ACTION_FROM[action]), (state, action)
    assert panel.emergency_button.isEnabled()


def test_global_buttons_offer_what_any_engine_allows(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Idle one", state=S.IDLE)
    coordinator.add("c2", "Running one", state=S.RUNNING)
    panel = make_panel()

    enabled = {action for action, button in panel.global_buttons.items() if button.isEnabled()}
    assert enabled == {EngineAction.START, EngineAction.PAUSE, EngineAction.STOP}
    assert panel.global_badge.text() == "RUNNING"


def test_the_global_badge_follows_the_coordinators_rule(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Paused one", state=S.PAUSED)
    coordinator.add("c2", "Failed one", state=S.ERROR, reason="stream lost")
    panel = make_panel()
    # Paused engines are still up: the desk is paused, the failed one shows on its own card.
    assert panel.global_badge.text() == derive_global_state([S.PAUSED, S.ERROR]).value.upper() == "PAUSED"
    assert panel.card("c2").state_badge.text() == "ERROR"


def test_without_connections_the_dock_says_so_and_nothing_can_be_clicked(make_panel: PanelFactory) -> None:
    panel = make_panel()
    assert not panel.empty_label.isHidden()
    assert panel.card_ids() == []
    assert not any(button.isEnabled() for button in panel.global_buttons.values())
    assert not panel.emergency_button.isEnabled()


# ------------------------------------------------------------------------------ actions


@pytest.mark.asyncio
async def test_start_pause_resume_stop_go_to_the_coordinator_as_the_user(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main")
    panel = make_panel()
    card = panel.card("c1")

    for action, expected in (
        (EngineAction.START, S.RUNNING),
        (EngineAction.PAUSE, S.PAUSED),
        (EngineAction.RESUME, S.RUNNING),
        (EngineAction.STOP, S.STOPPED),
    ):
        click(qtbot, card.buttons[action])
        await wait_for(lambda e=expected: card.snapshot.state is e and not card.busy)
        assert card.state_badge.text() == expected.value.upper()
        assert card.enabled_actions() == allowed_actions(expected) & CARD_ACTIONS

    assert coordinator.calls == [
        Call("start", "c1", Actor.USER, {"reason": ""}),
        Call("pause", "c1", Actor.USER, {"reason": ""}),
        Call("resume", "c1", Actor.USER, {"reason": ""}),
        Call("stop", "c1", Actor.USER, {"reason": ""}),
    ]
    assert panel.global_badge.text() == "STOPPED"
    assert panel.error_text() == ""


@pytest.mark.asyncio
async def test_buttons_wait_while_an_action_runs_so_a_double_click_sends_one_start(
    qtbot: QtBot, bus: EventBus, make_panel: PanelFactory
) -> None:
    coordinator = FakeCoordinator(bus, step_delay_s=0.15)
    coordinator.add("c1", "Slow starter")
    bridge = EventBridge(bus)
    panel = EnginePanel(coordinator, bridge)
    try:
        card = panel.card("c1")
        qtbot.mouseClick(card.buttons[EngineAction.START], Qt.MouseButton.LeftButton)
        qtbot.mouseClick(card.buttons[EngineAction.START], Qt.MouseButton.LeftButton)
        assert card.busy and card.enabled_actions() == frozenset()

        await wait_for(lambda: card.snapshot.state is S.RUNNING and not card.busy)
        assert [call.method for call in coordinator.calls] == ["start"]
        assert card.enabled_actions() == allowed_actions(S.RUNNING) & CARD_ACTIONS
    finally:
        panel.stop()
        shiboken6.delete(panel)
        bridge.close()


@pytest.mark.asyncio
async def test_a_refused_action_is_shown_and_the_buttons_catch_up(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main")
    panel = make_panel()
    card = panel.card("c1")
    coordinator.force_state_silently("c1", S.RUNNING)  # the engine moved; its event is still on the way

    click(qtbot, card.buttons[EngineAction.START])
    await wait_for(lambda: panel.error_text() != "")

    assert panel.error_text() == "Refused: cannot start engine c1: it is running"
    await wait_for(lambda: card.snapshot.state is S.RUNNING)  # the refresh after the action read the truth
    assert card.enabled_actions() == allowed_actions(S.RUNNING) & CARD_ACTIONS


@pytest.mark.asyncio
async def test_global_start_and_stop_act_on_every_engine_as_the_user(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Alpha")
    coordinator.add("c2", "Beta", state=S.STOPPED)
    panel = make_panel()

    click(qtbot, panel.global_buttons[EngineAction.START])
    await wait_for(lambda: panel.global_badge.text() == "RUNNING" and not panel.busy)
    await wait_for(lambda: all(panel.card(c).snapshot.state is S.RUNNING for c in ("c1", "c2")))
    click(qtbot, panel.global_buttons[EngineAction.STOP])
    await wait_for(lambda: panel.global_badge.text() == "STOPPED" and not panel.busy)

    assert [(c.method, c.actor) for c in coordinator.calls if c.connection_id is None] == [
        ("start_all", Actor.USER),
        ("stop_all", Actor.USER),
    ]


# ------------------------------------------------------------------------------ emergency stop


@pytest.mark.asyncio
async def test_emergency_stop_asks_first_and_keeps_positions_unless_told(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Paper one", state=S.RUNNING, open_positions=2, open_orders=1)
    coordinator.add("c2", "Real money", exchange="bybit", mode=TradingMode.LIVE, state=S.PAUSED)
    coordinator.orders = [order("o1")]
    coordinator.positions = [position("BTC/USDT:USDT"), position("ETH/USDT:USDT")]
    panel = make_panel()

    click(qtbot, panel.emergency_button)
    box = panel.emergency_box
    assert box is not None and box.isVisible()
    assert coordinator.calls_to("emergency_stop") == []  # nothing happens before the answer
    assert panel.flatten_check is not None and not panel.flatten_check.isChecked()
    assert panel.flatten_check.text() == f"{FLATTEN_TEXT} (2 open positions)"
    assert "Real money" in box.informativeText()  # live connections are named
    click(qtbot, box.button(QMessageBox.StandardButton.Cancel))
    await asyncio.sleep(0.1)
    assert coordinator.calls_to("emergency_stop") == []
    assert panel.card("c1").snapshot.state is S.RUNNING

    click(qtbot, panel.emergency_button)
    box = panel.emergency_box
    confirm = next(b for b in box.buttons() if b.objectName() == "engine_emergency_confirm")
    click(qtbot, confirm)
    await wait_for(lambda: panel.report_text() != "")

    assert coordinator.calls_to("emergency_stop") == [
        Call("emergency_stop", None, Actor.USER, {"flatten": False})
    ]
    assert panel.report_text() == "Emergency stop: 2 engines stopped, 1 order cancelled, 0 positions closed."
    await wait_for(lambda: all(panel.card(c).snapshot.state is S.STOPPED for c in ("c1", "c2")))


@pytest.mark.asyncio
async def test_closing_positions_needs_its_own_tick(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Paper one", state=S.RUNNING, open_positions=1)
    coordinator.positions = [position("BTC/USDT:USDT")]
    panel = make_panel()

    click(qtbot, panel.emergency_button)
    box = panel.emergency_box
    confirm = next(b for b in box.buttons() if b.objectName() == "engine_emergency_confirm")
    assert confirm.text() == "Emergency stop"
    panel.flatten_check.setChecked(True)
    assert confirm.text() == "Emergency stop and close positions"
    click(qtbot, confirm)
    await wait_for(lambda: panel.report_text() != "")

    assert coordinator.calls_to("emergency_stop") == [
        Call("emergency_stop", None, Actor.USER, {"flatten": True})
    ]
    assert "1 position closed" in panel.report_text()


@pytest.mark.asyncio
async def test_a_failing_emergency_stop_is_reported(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Paper one", state=S.RUNNING)
    coordinator.failures["emergency_stop"] = RuntimeError("database is locked")
    panel = make_panel()

    click(qtbot, panel.emergency_button)
    confirm = next(b for b in panel.emergency_box.buttons() if b.objectName() == "engine_emergency_confirm")
    click(qtbot, confirm)
    await wait_for(lambda: panel.error_text() != "")

    assert panel.error_text() == "RuntimeError: database is locked"
    assert panel.emergency_button.isEnabled()  # it can be tried again


# ------------------------------------------------------------------------------ error, restart, mode


@pytest.mark.asyncio
async def test_an_engine_in_error_shows_the_reason_and_retry_starts_it(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main", state=S.RUNNING)
    panel = make_panel()
    card = panel.card("c1")
    assert card.error_label.isHidden() and card.retry_button.isHidden()

    coordinator.fail("c1", "market stream: connection reset by peer")
    await wait_for(lambda: card.snapshot.state is S.ERROR)

    assert not card.error_label.isHidden()
    assert card.error_label.text() == "Error: market stream: connection reset by peer"
    assert "#d32f2f" in card.error_label.styleSheet()
    assert not card.retry_button.isHidden()
    click(qtbot, card.retry_button)
    await wait_for(lambda: card.snapshot.state is S.RUNNING and not card.busy)

    assert coordinator.calls == [Call("start", "c1", Actor.USER, {"reason": RETRY_REASON})]
    assert card.error_label.isHidden() and card.retry_button.isHidden()


@pytest.mark.asyncio
async def test_changed_settings_show_restart_required_with_a_one_click_restart(
    qtbot: QtBot, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main", state=S.RUNNING)
    panel = make_panel()
    card = panel.card("c1")
    assert card.restart_label.isHidden()

    coordinator.update("c1", restart_required=True)  # credentials replaced while running
    await wait_for(lambda: not card.restart_label.isHidden())

    assert "restart required" in card.restart_label.text()
    assert card.restart_notice_button.text() == "Restart" and card.restart_notice_button.isEnabled()
    click(qtbot, card.restart_notice_button)
    await wait_for(lambda: card.restart_label.isHidden() and not card.busy)

    assert coordinator.calls == [Call("restart", "c1", Actor.USER, {"reason": RESTART_REASON})]
    assert card.snapshot.state is S.RUNNING and not card.snapshot.restart_required


def test_restart_required_on_a_stopped_engine_applies_at_the_next_start(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main", state=S.STOPPED, restart_required=True)
    card = make_panel().card("c1")

    assert not card.restart_label.isHidden()
    assert card.restart_label.text().endswith("(applies at the next start)")
    assert not card.restart_notice_button.isEnabled()
    assert card.buttons[EngineAction.START].isEnabled()
    assert card.values["Uptime"].text() == "–"  # a stopped engine has no uptime


def test_the_mode_is_on_every_card_and_live_is_loud(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("p", "Paper one")
    coordinator.add("l", "Live one", mode=TradingMode.LIVE)
    panel = make_panel()

    paper, live = panel.card("p"), panel.card("l")
    assert paper.mode_badge.text() == "PAPER" and "bold" not in paper.mode_badge.styleSheet()
    assert paper.styleSheet() == PAPER_FRAME
    assert live.mode_badge.text() == "LIVE"
    assert "bold" in live.mode_badge.styleSheet() and "#c62828" in live.mode_badge.styleSheet()
    assert live.styleSheet() == LIVE_FRAME
    assert panel.card_ids() == ["l", "p"]  # by name, as the coordinator lists them


# ------------------------------------------------------------------------------ live figures


def test_health_cycles_errors_success_and_cycle_times_are_shown(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    components = (
        ComponentHealth("main", 1000, 10, 12.34, 10.0, 100.0, "", HealthStatus.DEGRADED),
        ComponentHealth("orders", 500, 0, 4.0, 3.5, 50.0, "", HealthStatus.HEALTHY),
        ComponentHealth("preset", 0, 0, None, None, 100.0, "", HealthStatus.UNKNOWN),
    )
    coordinator.add(
        "c1",
        "Binance main",
        state=S.RUNNING,
        health=HealthStatus.DEGRADED,
        components=components,
        error_count=10,
        open_orders=3,
        open_positions=2,
        started_at=datetime.now(UTC) - timedelta(hours=1, seconds=5),
    )
    card = make_panel().card("c1")

    assert card.values["Health"].text() == "degraded" and "#c77700" in card.values["Health"].styleSheet()
    assert card.values["Cycles"].text() == "1,500"
    assert card.values["Errors"].text() == "10"
    assert card.values["Success"].text() == "99.3 %"  # 1490 of 1500 cycles
    assert card.values["Open"].text() == "3 orders, 2 positions"
    assert card.values["Uptime"].text().startswith("01:00:0")
    assert card.component_texts() == [
        ["main", "degraded", "1,000", "10", "99.0 %", "12.3 / 10.0"],
        ["orders", "healthy", "500", "0", "100.0 %", "4.0 / 3.5"],
        ["preset", "unknown", "0", "0", "–", "– / –"],
    ]


class StyleChanges(QObject):
    """Counts the restyles Qt performs (``QEvent.StyleChange``) on a widget and its children."""

    def __init__(self, root: QWidget) -> None:
        super().__init__(root)
        self.count = 0
        for widget in (root, *root.findChildren(QWidget)):
            widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.StyleChange:
            self.count += 1
        return False


def test_a_health_refresh_restyles_nothing_unless_a_styled_value_changed(
    qapp: QApplication, coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    main = ComponentHealth("main", 1, 0, status=HealthStatus.HEALTHY)
    coordinator.add("c1", "Live one", mode=TradingMode.LIVE, state=S.RUNNING, components=(main,))
    card = make_panel().card("c1")
    allowed = coordinator.allowed("c1")
    qapp.processEvents()
    restyles = StyleChanges(card)

    for cycle in range(2, 12):  # ten health refreshes: figures change, nothing styled does
        snapshot = dataclasses.replace(card.snapshot, components=(dataclasses.replace(main, cycles=cycle),))
        card.set_snapshot(snapshot, allowed)
    qapp.processEvents()
    assert restyles.count == 0
    assert card.values["Cycles"].text() == "11" and card.styleSheet() == LIVE_FRAME

    card.set_snapshot(dataclasses.replace(card.snapshot, health=HealthStatus.DEGRADED), allowed)
    qapp.processEvents()
    assert restyles.count == 1  # the health value only
    assert "#c77700" in card.values["Health"].styleSheet()
    card.set_snapshot(dataclasses.replace(card.snapshot, mode=TradingMode.PAPER, state=S.PAUSED), allowed)
    qapp.processEvents()
    assert card.styleSheet() == PAPER_FRAME and card.state_badge.text() == "PAUSED"
    assert "bold" not in card.mode_badge.styleSheet()
    assert restyles.count > 1


def test_uptimes_of_days_are_readable() -> None:
    assert format_duration(3 * 86_400 + 3723) == "3 d 01:02:03"
    assert format_duration(59) == "00:00:59"


@pytest.mark.asyncio
async def test_health_refreshes_redraw_the_card_at_most_four_times_a_second(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main", state=S.RUNNING)
    panel = make_panel()
    card = panel.card("c1")
    before = panel.refresh_count

    for cycle in range(1, 41):  # 40 snapshots over ~1 s: 10 times the redraw budget
        coordinator.update("c1", components=(ComponentHealth("main", cycle, 0),))
        await asyncio.sleep(0.025)
    await wait_for(lambda: card.values["Cycles"].text() == "40")

    assert panel.refresh_count - before <= 6  # ≤ 4/s over the ~1.2 s the burst and its tail took


@pytest.mark.asyncio
async def test_a_connection_added_to_the_coordinator_gets_a_card(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c2", "Zulu")
    panel = make_panel()

    coordinator.add("c1", "Alpha", state=S.STOPPED, publish=True)
    await wait_for(lambda: panel.card_ids() == ["c1", "c2"])
    assert panel.empty_label.isHidden()


@pytest.mark.asyncio
async def test_a_failed_read_of_the_coordinator_is_shown_until_the_next_good_one(
    coordinator: FakeCoordinator, make_panel: PanelFactory
) -> None:
    coordinator.add("c1", "Binance main", state=S.RUNNING)
    panel = make_panel()

    coordinator.failures["snapshots"] = LookupError("the coordinator knows no connection 'c9'")
    coordinator.update("c1", error_count=1)
    await wait_for(lambda: panel.error_text() != "")
    assert panel.error_text() == "Could not read the engine state: the coordinator knows no connection 'c9'"

    coordinator.update("c1", error_count=2)
    await wait_for(lambda: panel.card("c1").values["Errors"].text() == "2")
    assert panel.error_text() == ""


# ------------------------------------------------------------------------------ the double is honest


@pytest.mark.asyncio
async def test_the_coordinator_double_refuses_illegal_actions_without_changing_anything(
    bus: EventBus, coordinator: FakeCoordinator
) -> None:
    coordinator.add("c1", "Binance main")
    seen: list[Event] = []
    bus.subscribe(Event, seen.append)

    for action in (coordinator.pause, coordinator.resume, coordinator.stop, coordinator.restart):
        with pytest.raises(IllegalTransition):
            await action("c1")
    assert coordinator.snapshot("c1").state is S.IDLE and seen == []

    await coordinator.start("c1")
    assert [(e.old, e.new) for e in seen if isinstance(e, EngineStateChanged) and e.connection_id] == [
        (S.IDLE, S.STARTING),
        (S.STARTING, S.RUNNING),
    ]
    assert isinstance(seen[-1], EngineSnapshotChanged | EngineStateChanged)
    with pytest.raises(IllegalTransition):
        await coordinator.start("c1")


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
async def test_the_dock_drives_the_real_coordinator_on_the_simulated_market(qtbot: QtBot) -> None:
    """The same clicks over the real Coordinator (offline: the built-in simulated market, paper)."""
    services = await build_services(console_logging=False)
    bridge = EventBridge(services.bus)
    panel: EnginePanel | None = None
    transitions: list[EngineStateChanged] = []
    services.bus.subscribe(EngineStateChanged, transitions.append)
    try:
        await services.start()
        panel = EnginePanel(services.coordinator, bridge)
        panel.show()
        [simulated] = [c for c in panel.card_ids() if panel.card(c).snapshot.exchange == "simulated"]
        card = panel.card(simulated)
        assert card.enabled_actions() == allowed_actions(card.snapshot.state) & CARD_ACTIONS

        click(qtbot, card.buttons[EngineAction.START])
        await wait_for(lambda: card.snapshot.state is S.RUNNING and not card.busy, timeout=30)
        await wait_for(lambda: card.values["Cycles"].text() not in ("", "0"), timeout=10)
        assert card.mode_badge.text() == "PAPER"
        click(qtbot, card.buttons[EngineAction.PAUSE])
        await wait_for(lambda: card.snapshot.state is S.PAUSED and not card.busy, timeout=30)
        click(qtbot, card.buttons[EngineAction.STOP])
        await wait_for(lambda: card.snapshot.state is S.STOPPED and not card.busy, timeout=30)

        mine = [(t.old, t.new, t.actor) for t in transitions if t.connection_id == simulated]
        assert [(old, new) for old, new, _ in mine] == [
            (S.IDLE, S.STARTING),
            (S.STARTING, S.RUNNING),
            (S.RUNNING, S.PAUSED),
            (S.PAUSED, S.STOPPING),
            (S.STOPPING, S.STOPPED),
        ]
        assert {actor for _, _, actor in mine} == {Actor.USER}
        assert panel.error_text() == ""
    finally:
        if panel is not None:
            panel.stop()
            await panel.wait_idle()
            shiboken6.delete(panel)
        bridge.close()
        await services.aclose()
