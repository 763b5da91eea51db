"""The go-live checklist and the typed confirmation that precedes live trading on a connection.

Two steps, each a deliberate act. First the checklist (testnet → paper → minimal live →
scale): the application's automatic checks are shown passed or failed with their details, the
steps only the user can vouch for are checkboxes, and "Switch to LIVE…" stays disabled until
every item passes. Then the confirmation names the exchange and the account balance at stake,
and the user must type the exchange's name.

The dialog never switches anything: it re-asks the coordinator whether the checklist, with the
user's ticks, is ready, and then only reports the decision (``decided``: ticked keys and the
typed phrase, with the balance that was shown). Whoever flips the connection to live checks
all of it again (``engine.live_guard.LiveConfirmation``).

The balance is read fresh from the account when the confirmation opens, through the injected
``balance_reader`` (the window runs a connection test, which signs a real request); without a
readable, positive balance the confirmation cannot be given, as the live guard would refuse it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import shiboken6
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cts_desktop.domain.engine import ChecklistItem, GoLiveChecklist
from cts_desktop.domain.enums import TradingMode
from cts_desktop.engine.connection_test import ConnectionTester
from cts_desktop.engine.live_guard import exchange_display_name, names_exchange
from cts_desktop.ui.async_tasks import TaskRunner
from cts_desktop.ui.engine_facade import EngineFacade
from cts_desktop.ui.theme import BOLD_ERROR_STYLE, ERROR_STYLE

NO_READER: Final = "cannot be read in this session (no connection tester)"
PASSED_STYLE: Final = "QLabel { color: #2e7d32; }"
UNKNOWN_STYLE: Final = "QLabel { color: #8a8a8a; }"
LIVE_BUTTON_STYLE: Final = (
    "QPushButton { background: #c62828; color: white; font-weight: bold; padding: 4px 12px; }"
    "QPushButton:disabled { background: #bdbdbd; color: #eeeeee; }"
)
CHECKLIST_PAGE, CONFIRM_PAGE = 0, 1


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """The balance the confirmation shows; ``amount`` None when it could not be read (``detail`` says why)."""

    amount: float | None
    asset: str = "USDT"
    detail: str = ""

    @property
    def usable(self) -> bool:
        """A real, positive balance: the only kind a live confirmation may show."""
        return self.amount is not None and math.isfinite(self.amount) and self.amount > 0

    def text(self) -> str:
        if self.amount is None:
            return f"unknown ({self.detail})" if self.detail else "unknown"
        return f"{self.amount:,.2f} {self.asset}"


type BalanceReader = Callable[[str], Awaitable[AccountBalance]]


def balance_reader_from_tester(tester: ConnectionTester, asset: str = "USDT") -> BalanceReader:
    """Read the balance by running the connection test: a signed request proves the key works now."""

    async def read(connection_id: str) -> AccountBalance:
        result = await tester.test(connection_id)
        if not result.success:
            return AccountBalance(
                None, asset, f"the connection test failed: {result.error or 'unknown error'}"
            )
        if result.quote_balance is None:
            return AccountBalance(None, asset, f"no {asset} balance was read (is an API key stored?)")
        return AccountBalance(result.quote_balance, asset)

    return read


@dataclass(frozen=True, slots=True)
class GoLiveDecision:
    """What the user decided and saw; the caller verifies it again before switching to live."""

    connection_id: str
    exchange: str
    ticked: frozenset[str]
    typed_phrase: str
    balance: float | None
    balance_asset: str


class GoLiveDialog(QDialog):
    """Checklist page, then confirmation page; ``decided(GoLiveDecision)`` when the user confirmed.

    Open with ``open()`` (not ``exec()``), then :meth:`load`.
    """

    decided = Signal(object)

    def __init__(
        self,
        facade: EngineFacade,
        *,
        connection_id: str | None = None,
        balance_reader: BalanceReader | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("go_live_dialog")
        self.setWindowTitle("Go-live checklist")
        self.resize(620, 460)
        self._facade = facade
        self._balance_reader = balance_reader
        self._runner = TaskRunner("go-live dialog", on_error=self._on_error)
        self._checklist: GoLiveChecklist | None = None
        self._balance: AccountBalance | None = None
        self._manual: dict[str, QCheckBox] = {}
        self.item_labels: dict[str, QLabel] = {}
        self.decision: GoLiveDecision | None = None

        self.connection_box = QComboBox(self)
        self.connection_box.setObjectName("go_live_connection")
        for snapshot in facade.snapshots():
            self.connection_box.addItem(f"{snapshot.name} ({snapshot.exchange})", snapshot.connection_id)
        if connection_id is not None and (index := self.connection_box.findData(connection_id)) >= 0:
            self.connection_box.setCurrentIndex(index)
        self.connection_box.currentIndexChanged.connect(lambda _index: self.load())

        self.summary_label = self._label("go_live_summary")
        self.error_label = self._label("go_live_error", ERROR_STYLE)
        self.error_label.hide()
        self.items_box = QVBoxLayout()
        self.items_box.setSpacing(6)
        self.reload_button = self._button("Check again", "go_live_reload", self.load)
        self.switch_button = self._button("Switch to LIVE…", "go_live_switch", self.ask_confirmation)
        self.switch_button.setStyleSheet(LIVE_BUTTON_STYLE)
        self.cancel_button = self._button("Cancel", "go_live_cancel", self.reject)

        self.confirm_label = self._label("go_live_confirm_text")
        self.confirm_label.setTextFormat(Qt.TextFormat.PlainText)
        self.phrase_edit = QLineEdit(self)
        self.phrase_edit.setObjectName("go_live_phrase")
        self.phrase_edit.textChanged.connect(lambda _text: self._update_buttons())
        self.back_button = self._button("Back", "go_live_back", self.back)
        self.confirm_button = self._button("Trade LIVE with real funds", "go_live_confirm", self.confirm)
        self.confirm_button.setStyleSheet(LIVE_BUTTON_STYLE)

        self.pages = QStackedWidget(self)
        self.pages.addWidget(self._checklist_page())
        self.pages.addWidget(self._confirm_page())
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Connection:", self))
        top.addWidget(self.connection_box, 1)
        layout.addLayout(top)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.error_label)
        self._update_buttons()

    # -- construction -------------------------------------------------------------------------

    def _label(self, name: str, style: str = "") -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setWordWrap(True)
        if style:
            label.setStyleSheet(style)
        return label

    def _button(self, text: str, name: str, slot: Any) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setAutoDefault(False)  # Enter in the phrase field must not confirm by itself
        button.clicked.connect(slot)
        return button

    def _checklist_page(self) -> QWidget:
        page = QWidget(self)
        items = QFrame(page)
        items.setObjectName("go_live_items")
        items.setLayout(self.items_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.reload_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.switch_button)
        layout = QVBoxLayout(page)
        layout.addWidget(self.summary_label)
        layout.addWidget(items)
        layout.addStretch(1)
        layout.addLayout(buttons)
        return page

    def _confirm_page(self) -> QWidget:
        page = QWidget(self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.back_button)
        buttons.addStretch(1)
        buttons.addWidget(self.confirm_button)
        layout = QVBoxLayout(page)
        layout.addWidget(self.confirm_label)
        layout.addWidget(self.phrase_edit)
        layout.addStretch(1)
        layout.addLayout(buttons)
        return page

    # -- state ----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._runner.busy

    @property
    def checklist(self) -> GoLiveChecklist | None:
        return self._checklist

    def connection_id(self) -> str | None:
        data = self.connection_box.currentData()
        return str(data) if data is not None else None

    def manual_checkboxes(self) -> dict[str, QCheckBox]:
        return dict(self._manual)

    def ticked(self) -> frozenset[str]:
        """Keys of the manual items ticked (an item the checklist failed cannot be ticked)."""
        return frozenset(key for key, box in self._manual.items() if box.isChecked() and box.isEnabled())

    def all_pass(self) -> bool:
        """Every automatic item passed and every manual item is ticked (what enables the switch)."""
        checklist = self._checklist
        if checklist is None or not checklist.items:
            return False
        ticked = self.ticked()
        return all(self._passes(item, ticked) for item in checklist.items)

    @staticmethod
    def _passes(item: ChecklistItem, ticked: frozenset[str]) -> bool:
        if item.automatic:
            return item.passed is True
        return item.passed is not False and item.key in ticked

    def already_live(self) -> bool:
        connection_id = self.connection_id()
        if connection_id is None:
            return False
        try:
            return self._facade.snapshot(connection_id).mode is TradingMode.LIVE
        except LookupError:
            return False

    @property
    def balance(self) -> AccountBalance | None:
        """The balance shown on the confirmation page (None before it was read)."""
        return self._balance

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def _update_buttons(self) -> None:
        busy = self._runner.busy
        on_checklist = self.pages.currentIndex() == CHECKLIST_PAGE
        self.connection_box.setEnabled(on_checklist and not busy)
        self.reload_button.setEnabled(self.connection_id() is not None and not busy)
        self.switch_button.setEnabled(self.all_pass() and not self.already_live() and not busy)
        checklist = self._checklist
        self.confirm_button.setEnabled(
            checklist is not None
            and self._balance is not None
            and self._balance.usable
            and names_exchange(self.phrase_edit.text(), checklist.exchange)
            and not busy
        )

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _on_error(self, error: BaseException) -> None:
        if shiboken6.isValid(self):
            self._show_error(f"Could not read the go-live checklist: {error}")

    def _finished(self) -> None:
        if shiboken6.isValid(self):
            self._update_buttons()

    # -- loading --------------------------------------------------------------------------------

    @Slot()
    def load(self) -> None:
        """Ask the coordinator for the checklist of the selected connection (keeping the ticks)."""
        connection_id = self.connection_id()
        if connection_id is None:
            self.summary_label.setText("No connection to check.")
            return
        if self._runner.busy:
            return
        self._show_error("")
        self.back()
        ticked = self.ticked() if self._checklist and self._checklist.connection_id == connection_id else None
        self._runner.start(self._load(connection_id, ticked or frozenset()), on_done=self._finished)
        self._update_buttons()

    async def _load(self, connection_id: str, ticked: frozenset[str]) -> None:
        checklist = await self._facade.go_live_checklist(connection_id, ticked)
        if shiboken6.isValid(self):
            self.show_checklist(checklist)

    def show_checklist(self, checklist: GoLiveChecklist) -> None:
        """Rebuild the item list; manual ticks the checklist reports (or the user made) are kept."""
        previous = self.ticked()
        same_connection = (
            self._checklist is not None and self._checklist.connection_id == checklist.connection_id
        )
        self._checklist = checklist
        while (item := self.items_box.takeAt(0)) is not None:
            widget = item.widget()
            if widget is not None:
                widget.deleteLater()
        self._manual = {}
        self.item_labels = {}
        for entry in checklist.items:
            if entry.automatic:
                self.items_box.addWidget(self._automatic_row(entry))
            else:
                self.items_box.addWidget(
                    self._manual_row(
                        entry, entry.passed is True or (same_connection and entry.key in previous)
                    )
                )
        self._show_summary()
        self._update_buttons()

    def _automatic_row(self, item: ChecklistItem) -> QLabel:
        if item.passed is True:
            mark, style = "✓", PASSED_STYLE
        elif item.passed is False:
            mark, style = "✗", BOLD_ERROR_STYLE
        else:
            mark, style = "?", UNKNOWN_STYLE
        label = self._label(f"go_live_item_{item.key}", style)
        label.setText(f"{mark} {item.label}" + (f" — {item.detail}" if item.detail else ""))
        label.setProperty("passed", item.passed)
        self.item_labels[item.key] = label
        return label

    def _manual_row(self, item: ChecklistItem, ticked: bool) -> QCheckBox:
        box = QCheckBox(item.label, self)
        box.setObjectName(f"go_live_item_{item.key}")
        box.setToolTip(item.detail)
        if item.passed is False:  # the application knows better than a tick (e.g. a withdrawing key)
            box.setText(f"✗ {item.label}" + (f" — {item.detail}" if item.detail else ""))
            box.setStyleSheet("QCheckBox { color: #d32f2f; font-weight: bold; }")
            box.setEnabled(False)
        else:
            box.setChecked(ticked)
        box.toggled.connect(self._on_ticked)
        self._manual[item.key] = box
        return box

    @Slot(bool)
    def _on_ticked(self, _checked: bool) -> None:
        self._show_summary()
        self._update_buttons()

    def _show_summary(self) -> None:
        checklist = self._checklist
        if checklist is None:
            return
        ticked = self.ticked()
        passing = sum(1 for item in checklist.items if self._passes(item, ticked))
        text = f"{passing} of {len(checklist.items)} items pass."
        if self.already_live():
            text += " This connection already trades LIVE."
        elif passing == len(checklist.items) and checklist.items:
            text += " You can switch this connection to LIVE."
        self.summary_label.setText(text)

    # -- confirming -----------------------------------------------------------------------------

    @Slot()
    def ask_confirmation(self) -> None:
        """Re-ask the coordinator with the ticks; only a ready checklist leads to the confirmation."""
        connection_id = self.connection_id()
        if connection_id is None or not self.all_pass() or self._runner.busy:
            return
        self._show_error("")
        self._runner.start(self._verify(connection_id, self.ticked()), on_done=self._finished)
        self._update_buttons()

    async def _verify(self, connection_id: str, ticked: frozenset[str]) -> None:
        checklist = await self._facade.go_live_checklist(connection_id, ticked)
        if not shiboken6.isValid(self):
            return
        self.show_checklist(checklist)
        if not checklist.ready:
            failing = [item.label for item in checklist.items if item.passed is not True]
            self._show_error("The checklist is not complete: " + "; ".join(failing))
            return
        self.summary_label.setText("Reading the account balance…")
        balance = await self._read_balance(connection_id)
        if shiboken6.isValid(self):
            self._show_summary()
            self._show_confirmation(checklist, balance)

    async def _read_balance(self, connection_id: str) -> AccountBalance:
        if self._balance_reader is None:
            return AccountBalance(None, detail=NO_READER)
        try:
            return await self._balance_reader(connection_id)
        except Exception as exc:
            return AccountBalance(None, detail=f"could not be read: {exc}")

    def _show_confirmation(self, checklist: GoLiveChecklist, balance: AccountBalance) -> None:
        self._balance = balance
        name = self._facade.snapshot(checklist.connection_id).name
        exchange = exchange_display_name(checklist.exchange)
        text = (
            f"Switch “{name}” to LIVE trading on {exchange}.\n\n"
            f"Account balance: {balance.text()}\n\n"
            "From then on the engine sends real orders with real funds on this account.\n\n"
        )
        if balance.usable:
            text += f"Type the exchange name ({checklist.exchange}) to confirm:"
        else:
            text += "Live trading needs a real, positive account balance: check the API key and test again."
        self.confirm_label.setText(text)
        self.phrase_edit.clear()
        self.phrase_edit.setEnabled(balance.usable)
        self.pages.setCurrentIndex(CONFIRM_PAGE)
        self.phrase_edit.setFocus()
        self._update_buttons()

    @Slot()
    def back(self) -> None:
        self.phrase_edit.clear()
        self._balance = None
        self.pages.setCurrentIndex(CHECKLIST_PAGE)
        self._update_buttons()

    @Slot()
    def confirm(self) -> None:
        """Report the decision and close; nothing is switched here."""
        checklist = self._checklist
        typed = self.phrase_edit.text()
        balance = self._balance
        if (
            checklist is None
            or balance is None
            or not balance.usable
            or not names_exchange(typed, checklist.exchange)
            or not self.all_pass()
        ):
            return
        self.decision = GoLiveDecision(
            checklist.connection_id,
            checklist.exchange,
            self.ticked(),
            typed.strip(),
            balance.amount,
            balance.asset,
        )
        self.decided.emit(self.decision)
        self.accept()
