"""The Engine dock: the coordinator's global controls, the emergency stop, and one card per engine.

Everything shown is read from the coordinator (``snapshots()``, ``allowed()``, ``global_state``)
when an engine event arrives: the events only say "look again", so the dock cannot drift from
the engine even if an event is missed or arrives out of order. Events are coalesced to at most
one redraw per ``REFRESH_DELAY_MS`` (4 per second), however fast health refreshes come.

Actions run as tasks on the qasync loop with ``actor=USER``; the coordinator may still refuse
one (``IllegalTransition``: the state moved since the buttons were drawn), which is shown, not
swallowed. The emergency stop asks first, without a nested event loop (``QMessageBox.open``),
and closing positions at market needs its own tick in that question.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.domain.engine import EngineAction, IllegalTransition
from cts_desktop.domain.enums import Actor, EngineState, TradingMode
from cts_desktop.engine.events import EngineSnapshotChanged, EngineStateChanged
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.engine_facade import EmergencyOutcome, EngineFacade
from cts_desktop.ui.panels.engine_card import COMPACT_BUTTONS, EngineCard, plural, state_style
from cts_desktop.ui.theme import ERROR_STYLE

log = logging.getLogger(__name__)

REFRESH_DELAY_MS: Final = 250  # ≤ 4 redraws per second
TICK_MS: Final = 1000  # uptimes advance between snapshots
EMERGENCY_STYLE: Final = (
    "QPushButton { background: #b71c1c; color: white; font-weight: bold; padding: 6px; border-radius: 3px; }"
    "QPushButton:disabled { background: #bdbdbd; color: #eeeeee; }"
)
FLATTEN_TEXT: Final = "Also close all open positions at market"
RETRY_REASON: Final = "retry after error"
RESTART_REASON: Final = "apply changed credentials or connection settings"
#: Global buttons: (label, object name, the per-engine action that must be legal somewhere).
GLOBAL_BUTTONS: Final[tuple[tuple[str, str, EngineAction], ...]] = (
    ("Start all", "engine_start_all", EngineAction.START),
    ("Pause all", "engine_pause_all", EngineAction.PAUSE),
    ("Resume all", "engine_resume_all", EngineAction.RESUME),
    ("Stop all", "engine_stop_all", EngineAction.STOP),
)


def describe_emergency(report: EmergencyOutcome) -> str:
    text = (
        f"Emergency stop: {plural(len(report.stopped), 'engine')} stopped, "
        f"{plural(report.cancelled_orders, 'order')} cancelled, "
        f"{plural(report.flattened_positions, 'position')} closed."
    )
    if report.errors:
        text += " Problems: " + "; ".join(report.errors)
    return text


class EnginePanel(QWidget):
    """Global controls above a scrolling column of :class:`EngineCard`; ``refreshed`` after each redraw."""

    refreshed = Signal()

    def __init__(self, facade: EngineFacade, bridge: EventBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel_engine")
        self._facade = facade
        self._bridge: EventBridge | None = bridge
        self._runner = TaskRunner("engine panel", on_error=self._on_task_error)
        self._cards: dict[str, EngineCard] = {}
        self._global_busy = False
        self._emergency_busy = False
        self._read_failed = False
        self.refresh_count = 0  # completed redraws: lets tests check the coalescing
        self.emergency_box: QMessageBox | None = None
        self.flatten_check: QCheckBox | None = None

        self.global_badge = QLabel(self)
        self.global_badge.setObjectName("engine_global_state")
        self.global_buttons: dict[EngineAction, QPushButton] = {}
        for text, name, action in GLOBAL_BUTTONS:
            button = QPushButton(text, self)
            button.setObjectName(name)
            button.clicked.connect(lambda _checked=False, a=action: self.run_global(a))
            self.global_buttons[action] = button
        self.emergency_button = QPushButton("EMERGENCY STOP", self)
        self.emergency_button.setObjectName("engine_emergency_stop")
        self.emergency_button.setStyleSheet(EMERGENCY_STYLE)
        self.emergency_button.setToolTip("Stop every engine and cancel all open orders (asks first)")
        self.emergency_button.clicked.connect(self.ask_emergency_stop)
        self.setStyleSheet(COMPACT_BUTTONS)
        self.error_label = self._message_label("engine_error", ERROR_STYLE)
        self.report_label = self._message_label("engine_report", "")
        self.empty_label = QLabel("No connections yet: add one in the Connections dock.", self)
        self.empty_label.setObjectName("engine_empty")
        self.empty_label.setEnabled(False)
        self.empty_label.setWordWrap(True)

        self._cards_box = QVBoxLayout()
        self._cards_box.setContentsMargins(0, 0, 0, 0)
        self._cards_box.setSpacing(6)
        self._lay_out()

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(TICK_MS)
        self._tick_timer.timeout.connect(self._tick)
        self._tick_timer.start()
        bridge.received.connect(self._on_event)
        self.refresh()

    def _message_label(self, name: str, style: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if style:
            label.setStyleSheet(style)
        label.hide()
        return label

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("All engines:", self))
        top.addWidget(self.global_badge)
        top.addStretch(1)
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for button in self.global_buttons.values():
            buttons.addWidget(button)
        buttons.addStretch(1)

        container = QWidget(self)
        container.setObjectName("engine_cards")
        column = QVBoxLayout(container)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.empty_label)
        column.addLayout(self._cards_box)
        column.addStretch(1)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setObjectName("engine_scroll")
        self.scroll_area.setWidgetResizable(True)
        # Cards take the dock's width (they wrap and compress) instead of scrolling sideways.
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setWidget(container)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(buttons)
        layout.addWidget(self.emergency_button)
        layout.addWidget(self.error_label)
        layout.addWidget(self.report_label)
        layout.addWidget(self.scroll_area, 1)

    # -- reading --------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def card(self, connection_id: str) -> EngineCard:
        """The card of a connection; ``KeyError`` when the coordinator does not know it."""
        return self._cards[connection_id]

    def card_ids(self) -> list[str]:
        """Connection ids in display order."""
        ids: list[str] = []
        for index in range(self._cards_box.count()):
            item = self._cards_box.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, EngineCard):
                ids.append(widget.connection_id)
        return ids

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def report_text(self) -> str:
        return self.report_label.text() if not self.report_label.isHidden() else ""

    @Slot(object)
    def _on_event(self, event: object) -> None:
        if isinstance(event, EngineSnapshotChanged | EngineStateChanged):
            self.request_refresh()

    def request_refresh(self) -> None:
        """Redraw soon; events within the delay give one redraw."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    @Slot()
    def refresh(self) -> None:
        """Read the coordinator and bring every card and button up to date."""
        self._refresh_timer.stop()
        try:
            self._redraw()
        except Exception as exc:  # a slot must not raise into Qt; the next event tries again
            log.exception("the Engine dock could not read the coordinator")
            self._show_error(f"Could not read the engine state: {exc}")
            self._read_failed = True
            return
        if self._read_failed:  # an action's error stays until the next action; a read error goes now
            self._read_failed = False
            self._show_error("")
        self.refresh_count += 1
        self.refreshed.emit()

    def _redraw(self) -> None:
        snapshots = self._facade.snapshots()
        wanted = [snapshot.connection_id for snapshot in snapshots]
        for connection_id in set(self._cards) - set(wanted):
            gone = self._cards.pop(connection_id)
            self._cards_box.removeWidget(gone)
            gone.deleteLater()
        for snapshot in snapshots:
            allowed = self._facade.allowed(snapshot.connection_id)
            card = self._cards.get(snapshot.connection_id)
            if card is None:
                card = EngineCard(snapshot, self)
                card.action_requested.connect(self._on_card_action)
                self._cards[snapshot.connection_id] = card
            card.set_snapshot(snapshot, allowed)
        if self.card_ids() != wanted:
            for connection_id in wanted:  # re-adding moves a card to the end: the order becomes `wanted`
                self._cards_box.removeWidget(self._cards[connection_id])
                self._cards_box.addWidget(self._cards[connection_id])
        self.empty_label.setVisible(not snapshots)
        state = self._facade.global_state
        self.global_badge.setText(state.value.upper())
        self.global_badge.setStyleSheet(state_style(state))
        self._update_global_buttons()

    def _update_global_buttons(self) -> None:
        legal: set[EngineAction] = set()
        for card in self._cards.values():
            legal |= self._facade.allowed(card.connection_id)
        for action, button in self.global_buttons.items():
            button.setEnabled(action in legal and not self._global_busy)
        # Never greyed out by another action in flight: a hanging "start all" is when it is needed.
        self.emergency_button.setEnabled(bool(self._cards) and not self._emergency_busy)

    @Slot()
    def _tick(self) -> None:
        for card in self._cards.values():
            card.tick()

    # -- per-connection actions -----------------------------------------------------------------

    @Slot(str, str)
    def _on_card_action(self, connection_id: str, action: str) -> None:
        self.run_action(connection_id, EngineAction(action))

    def run_action(self, connection_id: str, action: EngineAction) -> None:
        """Ask the coordinator for ``action`` on one engine, as the user."""
        card = self._cards.get(connection_id)
        if card is None or card.busy:
            return
        card_snapshot = card.snapshot
        facade = self._facade
        reason = ""
        if action is EngineAction.START and card_snapshot.state is EngineState.ERROR:
            reason = RETRY_REASON
        elif action is EngineAction.RESTART and card_snapshot.restart_required:
            reason = RESTART_REASON
        methods: dict[EngineAction, Callable[..., Coroutine[Any, Any, None]]] = {
            EngineAction.START: facade.start,
            EngineAction.STOP: facade.stop,
            EngineAction.PAUSE: facade.pause,
            EngineAction.RESUME: facade.resume,
            EngineAction.RESTART: facade.restart,
        }
        method = methods.get(action)
        if method is None:
            raise ValueError(f"{action.value} is not a per-engine action of the Engine dock")
        self._show_error("")
        card.set_busy(True)

        def done() -> None:
            if shiboken6.isValid(card):
                card.set_busy(False)
            if shiboken6.isValid(self):
                self.request_refresh()

        self._runner.start(
            method(connection_id, actor=Actor.USER, reason=reason),
            name=f"{action.value} {connection_id}",
            on_done=done,
        )

    # -- global actions -------------------------------------------------------------------------

    def run_global(self, action: EngineAction) -> None:
        """Start, pause, resume or stop every engine, as the user."""
        if self._global_busy:
            return
        facade = self._facade
        coroutines: dict[EngineAction, Callable[[], Coroutine[Any, Any, None]]] = {
            EngineAction.START: lambda: facade.start_all(actor=Actor.USER),
            EngineAction.PAUSE: lambda: facade.pause_all(actor=Actor.USER),
            EngineAction.RESUME: lambda: facade.resume_all(actor=Actor.USER),
            EngineAction.STOP: lambda: facade.stop_all(actor=Actor.USER),
        }
        self._show_error("")
        self._global_busy = True
        self._update_global_buttons()
        self._runner.start(coroutines[action](), name=f"{action.value} all", on_done=self._global_done)

    def _global_done(self) -> None:
        self._global_busy = False
        if shiboken6.isValid(self):
            self._update_global_buttons()
            self.request_refresh()

    @Slot()
    def ask_emergency_stop(self) -> QMessageBox | None:
        """Ask (non-modally) before stopping everything; closing positions needs its own tick."""
        if self._emergency_busy or not self._cards:
            return None
        snapshots = [card.snapshot for card in self._cards.values()]
        positions = sum(s.open_positions for s in snapshots)
        live = [s.name for s in snapshots if s.mode is TradingMode.LIVE]
        box = QMessageBox(self)
        box.setObjectName("engine_confirm_emergency")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Emergency stop")
        box.setText("Stop every engine now and cancel all open orders on every connection?")
        details = "Open positions stay open unless you also tick the box below."
        if live:
            details += f"\n\nLIVE connections (real funds): {', '.join(live)}."
        box.setInformativeText(details)
        flatten = QCheckBox(f"{FLATTEN_TEXT} ({plural(positions, 'open position')})", box)
        flatten.setObjectName("engine_flatten")
        flatten.setChecked(False)
        box.setCheckBox(flatten)
        confirm = box.addButton("Emergency stop", QMessageBox.ButtonRole.DestructiveRole)
        confirm.setObjectName("engine_emergency_confirm")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        flatten.toggled.connect(
            lambda on: confirm.setText("Emergency stop and close positions" if on else "Emergency stop")
        )

        def answered(button: QAbstractButton) -> None:
            if button is confirm:
                self._run_emergency_stop(flatten=flatten.isChecked())

        box.buttonClicked.connect(answered)
        box.finished.connect(box.deleteLater)
        self.emergency_box, self.flatten_check = box, flatten
        box.open()  # not exec(): a nested event loop would strand the qasync task
        return box

    def _run_emergency_stop(self, *, flatten: bool) -> None:
        self._show_error("")
        self._emergency_busy = True
        self._update_global_buttons()
        log.warning("emergency stop requested by the user (close positions: %s)", flatten)
        self._runner.start(self._emergency_stop(flatten), name="emergency stop", on_done=self._emergency_done)

    async def _emergency_stop(self, flatten: bool) -> None:
        report = await self._facade.emergency_stop(flatten=flatten, actor=Actor.USER)
        if shiboken6.isValid(self):
            self.report_label.setText(describe_emergency(report))
            self.report_label.setStyleSheet(ERROR_STYLE if report.errors else "")
            self.report_label.show()

    def _emergency_done(self) -> None:
        self._emergency_busy = False
        if shiboken6.isValid(self):
            self._update_global_buttons()
            self.request_refresh()

    # -- errors and closing ---------------------------------------------------------------------

    def _on_task_error(self, error: BaseException) -> None:
        if not shiboken6.isValid(self):
            return
        if isinstance(error, IllegalTransition):
            self._show_error(f"Refused: {error}")
        else:
            self._show_error(f"{type(error).__name__}: {error}")

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def stop(self) -> None:
        """The window is closing: stop listening and redrawing; idempotent."""
        self._refresh_timer.stop()
        self._tick_timer.stop()
        bridge, self._bridge = self._bridge, None
        if bridge is not None and shiboken6.isValid(bridge):
            bridge.received.disconnect(self._on_event)
        self._runner.cancel_all()

    async def wait_idle(self) -> None:
        await self._runner.wait_idle()
