"""One connection's engine in the Engine dock: state, mode, health and its own controls.

The card only displays a snapshot and says which action the user asked for (``action_requested``);
the panel runs it on the coordinator. Each button is enabled exactly when its action is legal in
the coordinator's eyes (``allowed``) and no action of this card is in flight, so a double click
cannot send two transitions. Widgets are built once and updated in place: a health refresh every
second must not rebuild (and flicker) the card, and a style sheet is set only when the value it
shows (live or paper, the state, a health) changed, since every ``setStyleSheet`` repolishes the
widget even when the sheet is the same.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Final

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.domain.engine import ComponentHealth, EngineAction, EngineSnapshot, HealthStatus
from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.engine.live_guard import exchange_display_name
from cts_desktop.ui.theme import BOLD_ERROR_STYLE, MODE_STYLES

_BADGE: Final = (
    "QLabel {{ background: {bg}; color: white; font-weight: bold; padding: 1px 8px; border-radius: 3px; }}"
)
STATE_COLOURS: Final[dict[EngineState, str]] = {
    EngineState.IDLE: "#757575",
    EngineState.STARTING: "#1f6fb2",
    EngineState.RUNNING: "#2e7d32",
    EngineState.PAUSED: "#c77700",
    EngineState.STOPPING: "#1f6fb2",
    EngineState.STOPPED: "#546e7a",
    EngineState.ERROR: "#d32f2f",
}
HEALTH_COLOURS: Final[dict[HealthStatus, str]] = {
    HealthStatus.UNKNOWN: "#8a8a8a",
    HealthStatus.HEALTHY: "#2e7d32",
    HealthStatus.DEGRADED: "#c77700",
    HealthStatus.UNHEALTHY: "#d32f2f",
}
NOTICE_STYLE: Final = "QLabel { color: #c77700; font-weight: bold; }"
#: Compact buttons: five of them share a row in a dock about 380 px wide.
COMPACT_BUTTONS: Final = "QPushButton { padding: 2px 7px; }"
PAPER_FRAME: Final = "QFrame#engine_card { border: 1px solid #9e9e9e; border-radius: 4px; }" + COMPACT_BUTTONS
LIVE_FRAME: Final = "QFrame#engine_card { border: 2px solid #c62828; border-radius: 4px; }" + COMPACT_BUTTONS
RESTART_TEXT: Final = "Credentials or connection settings changed: restart required"
#: The card's buttons, in display order, with their labels.
BUTTONS: Final[tuple[tuple[EngineAction, str], ...]] = (
    (EngineAction.START, "Start"),
    (EngineAction.PAUSE, "Pause"),
    (EngineAction.RESUME, "Resume"),
    (EngineAction.STOP, "Stop"),
    (EngineAction.RESTART, "Restart"),
)
#: What the user can click on a card; emergency stop is global (the panel's red button).
CARD_ACTIONS: Final = frozenset(action for action, _ in BUTTONS)
UP_STATES: Final = frozenset({EngineState.STARTING, EngineState.RUNNING, EngineState.PAUSED})
COMPONENT_COLUMNS: Final = ("Component", "Health", "Cycles", "Errors", "Success", "Time ms")
CYCLE_TIME_TIP: Final = "Last and average cycle time, in milliseconds"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def state_style(state: EngineState) -> str:
    return _BADGE.format(bg=STATE_COLOURS[state])


def format_duration(seconds: float) -> str:
    """``1 d 02:03:04`` / ``02:03:04``: uptimes run for days, cycle times are shown elsewhere."""
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days} d {clock}" if days else clock


def format_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def format_rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def overall_success(components: tuple[ComponentHealth, ...]) -> float | None:
    """Success over all components' cycles (not the mean of their rates: a busy loop weighs more)."""
    cycles = sum(c.cycles for c in components)
    if cycles == 0:
        return None
    return (cycles - sum(c.errors for c in components)) / cycles * 100.0


class EngineCard(QFrame):
    """Shows one :class:`EngineSnapshot`; ``action_requested(connection_id, action)`` on a click."""

    action_requested = Signal(str, str)

    def __init__(self, snapshot: EngineSnapshot, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("engine_card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.connection_id = snapshot.connection_id
        self._snapshot = snapshot
        self._allowed: frozenset[EngineAction] = frozenset()
        self._busy = False
        self._received_at = time.monotonic()
        self._component_names: tuple[str, ...] = ()

        self.name_label = self._label("engine_card_name")
        self.name_label.setStyleSheet("QLabel { font-weight: bold; }")
        self.exchange_label = self._label("engine_card_exchange")
        self.state_badge = self._label("engine_card_state")
        self.mode_badge = self._label("engine_card_mode")
        self.values: dict[str, QLabel] = {}
        self.error_label = self._label("engine_card_error", BOLD_ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = self._button("Retry", "engine_card_retry", EngineAction.START)
        self.retry_button.setToolTip("Start the engine again")
        self.restart_label = self._label("engine_card_restart_notice", NOTICE_STYLE)
        self.restart_label.setWordWrap(True)
        self.restart_notice_button = self._button("Restart", "engine_card_restart_now", EngineAction.RESTART)
        self.buttons: dict[EngineAction, QPushButton] = {
            action: self._button(text, f"engine_card_{action.value}", action) for action, text in BUTTONS
        }
        self.components = QGridLayout()
        self.components.setHorizontalSpacing(6)
        self.components.setVerticalSpacing(1)
        self._lay_out()
        self.set_snapshot(snapshot, frozenset())

    # -- construction -------------------------------------------------------------------------

    @staticmethod
    def _restyle(widget: QWidget, style: str) -> None:
        """Set ``style`` unless the widget already has it (Qt repolishes on every call)."""
        if widget.styleSheet() != style:
            widget.setStyleSheet(style)

    def _label(self, name: str, style: str = "") -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        if style:
            label.setStyleSheet(style)
        return label

    def _button(self, text: str, name: str, action: EngineAction) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.clicked.connect(lambda: self.action_requested.emit(self.connection_id, action.value))
        return button

    def _lay_out(self) -> None:
        header = QHBoxLayout()
        header.addWidget(self.name_label)
        header.addWidget(self.exchange_label)
        header.addStretch(1)
        header.addWidget(self.mode_badge)
        header.addWidget(self.state_badge)

        stats = QGridLayout()
        stats.setHorizontalSpacing(12)
        stats.setVerticalSpacing(1)
        names = ("Uptime", "Health", "Cycles", "Errors", "Success", "Open")
        for index, name in enumerate(names):
            row, column = divmod(index, 2)
            caption = QLabel(f"{name}:", self)
            caption.setEnabled(False)  # greyed caption, black value
            value = self._label(f"engine_card_{name.split()[0].lower()}")
            self.values[name] = value
            stats.addWidget(caption, row, column * 2)
            stats.addWidget(value, row, column * 2 + 1)
        stats.setColumnStretch(1, 1)
        stats.setColumnStretch(3, 1)

        error_row = QHBoxLayout()
        error_row.addWidget(self.error_label, 1)
        error_row.addWidget(self.retry_button)
        restart_row = QHBoxLayout()
        restart_row.addWidget(self.restart_label, 1)
        restart_row.addWidget(self.restart_notice_button)
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for button in self.buttons.values():
            buttons.addWidget(button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addLayout(stats)
        layout.addLayout(self.components)
        layout.addLayout(error_row)
        layout.addLayout(restart_row)
        layout.addLayout(buttons)

    # -- state ----------------------------------------------------------------------------------

    @property
    def snapshot(self) -> EngineSnapshot:
        return self._snapshot

    @property
    def busy(self) -> bool:
        return self._busy

    def set_busy(self, busy: bool) -> None:
        """While an action of this card runs, its buttons wait (no second transition on a double click)."""
        self._busy = busy
        self._update_buttons()

    def set_snapshot(self, snapshot: EngineSnapshot, allowed: frozenset[EngineAction]) -> None:
        self._snapshot = snapshot
        self._allowed = allowed
        self._received_at = time.monotonic()
        self.name_label.setText(snapshot.name)
        self.exchange_label.setText(exchange_display_name(snapshot.exchange))
        self.state_badge.setText(snapshot.state.value.upper())
        self._restyle(self.state_badge, state_style(snapshot.state))
        self.state_badge.setToolTip(snapshot.reason)
        live = snapshot.mode is TradingMode.LIVE
        self.mode_badge.setText(snapshot.mode.value.upper())
        self._restyle(self.mode_badge, MODE_STYLES[snapshot.mode])
        self.mode_badge.setToolTip(
            "Live trading: orders go to the exchange with real funds"
            if live
            else "Paper trading: simulated orders, no real funds"
        )
        self._restyle(self, LIVE_FRAME if live else PAPER_FRAME)
        self._show_stats(snapshot)
        self._show_components(snapshot.components)
        in_error = snapshot.state is EngineState.ERROR
        self.error_label.setText(f"Error: {snapshot.reason or 'no reason given'}" if in_error else "")
        self.error_label.setVisible(in_error)
        self.retry_button.setVisible(in_error)
        self.restart_label.setVisible(snapshot.restart_required)
        self.restart_notice_button.setVisible(snapshot.restart_required)
        self._update_buttons()
        self.tick()

    def _show_stats(self, snapshot: EngineSnapshot) -> None:
        components = snapshot.components
        health = self.values["Health"]
        health.setText(snapshot.health.value)
        self._restyle(health, f"QLabel {{ color: {HEALTH_COLOURS[snapshot.health]}; font-weight: bold; }}")
        self.values["Cycles"].setText(f"{sum(c.cycles for c in components):,}")
        self.values["Errors"].setText(f"{snapshot.error_count:,}")
        self.values["Success"].setText(format_rate(overall_success(components)))
        self.values["Open"].setText(
            f"{plural(snapshot.open_orders, 'order')}, {plural(snapshot.open_positions, 'position')}"
        )

    def _show_components(self, components: tuple[ComponentHealth, ...]) -> None:
        names = tuple(c.name for c in components)
        if names != self._component_names:
            self._rebuild_component_grid(len(components))
            self._component_names = names
        for row, component in enumerate(components, start=1):
            texts = (
                component.name,
                component.status.value,
                f"{component.cycles:,}",
                f"{component.errors:,}",
                format_rate(component.success_rate),
                f"{format_ms(component.last_duration_ms)} / {format_ms(component.avg_duration_ms)}",
            )
            for column, text in enumerate(texts):
                item = self.components.itemAtPosition(row, column)
                label = item.widget() if item is not None else None
                if isinstance(label, QLabel):
                    label.setText(text)
                    if column == 1:
                        self._restyle(label, f"QLabel {{ color: {HEALTH_COLOURS[component.status]}; }}")
                    if column == 0:
                        label.setToolTip(component.last_error)
                    if column == 5 and component.interval_ms is not None:
                        label.setToolTip(f"interval {format_ms(component.interval_ms)} ms")

    def _rebuild_component_grid(self, rows: int) -> None:
        while (item := self.components.takeAt(0)) is not None:
            widget = item.widget()
            if widget is not None:
                widget.deleteLater()
        if rows == 0:
            return
        for column, heading in enumerate(COMPONENT_COLUMNS):
            label = QLabel(heading, self)
            label.setEnabled(False)
            if column == len(COMPONENT_COLUMNS) - 1:
                label.setToolTip(CYCLE_TIME_TIP)
            self.components.addWidget(label, 0, column)
        for row in range(1, rows + 1):
            for column in range(len(COMPONENT_COLUMNS)):
                label = QLabel(self)
                label.setObjectName(f"engine_component_{row - 1}_{column}")
                if column >= 2:
                    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.components.addWidget(label, row, column)

    def _update_buttons(self) -> None:
        for action, button in self.buttons.items():
            button.setEnabled(action in self._allowed and not self._busy)
        self.retry_button.setEnabled(EngineAction.START in self._allowed and not self._busy)
        can_restart = EngineAction.RESTART in self._allowed and not self._busy
        self.restart_notice_button.setEnabled(can_restart)
        self.restart_label.setText(
            RESTART_TEXT if can_restart or self._busy else f"{RESTART_TEXT} (applies at the next start)"
        )

    def enabled_actions(self) -> frozenset[EngineAction]:
        """The actions whose button can be clicked now."""
        return frozenset(action for action, button in self.buttons.items() if button.isEnabled())

    def component_texts(self) -> list[list[str]]:
        """The component grid as text (heading row excluded), for tests and screenshots."""
        rows: list[list[str]] = []
        for row in range(1, len(self._component_names) + 1):
            cells: list[str] = []
            for column in range(len(COMPONENT_COLUMNS)):
                item = self.components.itemAtPosition(row, column)
                widget = item.widget() if item is not None else None
                cells.append(widget.text() if isinstance(widget, QLabel) else "")
            rows.append(cells)
        return rows

    def tick(self) -> None:
        """Advance the uptime between snapshots (they arrive about once a second, or less).

        Counted from ``started_at`` while the engine is up (pausing does not reset it); a
        stopped engine has no uptime, whatever its last run lasted.
        """
        snapshot = self._snapshot
        text = "–"
        if snapshot.state in UP_STATES:
            if snapshot.started_at is not None:  # aware, as every stored time
                elapsed = (datetime.now(UTC) - snapshot.started_at).total_seconds()
                text = format_duration(max(0.0, elapsed))
            else:
                text = format_duration(snapshot.uptime_s + time.monotonic() - self._received_at)
        self.values["Uptime"].setText(text)
