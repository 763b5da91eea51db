"""The go-live dialog: the switch waits for every checklist item, the confirmation for the typed
exchange name and a real balance, and the dialog only reports the decision."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from cts_desktop.domain.engine import ChecklistItem
from cts_desktop.domain.enums import TradingMode
from cts_desktop.engine.connection_test import ConnectionTester
from cts_desktop.engine.connections import ConnectionDraft, ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.live_guard import names_exchange
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRepository
from cts_desktop.storage.secrets import SecretStore
from cts_desktop.ui.dialogs.go_live_dialog import (
    CHECKLIST_PAGE,
    CONFIRM_PAGE,
    AccountBalance,
    GoLiveDecision,
    GoLiveDialog,
    balance_reader_from_tester,
)
from tests.helpers import wait_for
from tests.ui.fakes import FakeCoordinator
from tests.ui.test_connections_panel import NO_KEYRING, FailingVenue, WithdrawingVenue

ITEMS = (
    ChecklistItem("testnet_test", "Connection test passed on testnet", True, True, "tested on 2024-05-01"),
    ChecklistItem(
        "paper_days", "Traded on paper for at least 7 days", True, True, "9.0 days since the first"
    ),
    ChecklistItem("real_money", "I understand that live orders use real money", False, None),
    ChecklistItem("orders_checked", "I checked on testnet that orders appear", False, None),
)
MANUAL = frozenset({"real_money", "orders_checked"})


class Balances:
    """The balance source the window would back with a connection test; records who asked."""

    def __init__(self, balance: AccountBalance) -> None:
        self.balance = balance
        self.asked: list[str] = []

    async def __call__(self, connection_id: str) -> AccountBalance:
        self.asked.append(connection_id)
        return self.balance


@pytest.fixture
def coordinator() -> FakeCoordinator:
    fake = FakeCoordinator(EventBus())
    fake.add("c1", "Binance main", exchange="binance")
    fake.checklist_items["c1"] = ITEMS
    return fake


@pytest.fixture
def dialogs(qapp: QApplication) -> Iterator[list[GoLiveDialog]]:
    made: list[GoLiveDialog] = []
    yield made
    for dialog in made:
        if shiboken6.isValid(dialog):
            shiboken6.delete(dialog)


async def open_dialog(
    coordinator: FakeCoordinator, dialogs: list[GoLiveDialog], balances: Balances | None = None
) -> GoLiveDialog:
    dialog = GoLiveDialog(coordinator, balance_reader=balances)
    dialogs.append(dialog)
    dialog.open()
    dialog.load()
    await wait_for(lambda: dialog.checklist is not None and not dialog.busy)
    return dialog


def tick_all(dialog: GoLiveDialog) -> None:
    for box in dialog.manual_checkboxes().values():
        box.setChecked(True)


async def to_confirmation(qtbot: QtBot, dialog: GoLiveDialog) -> None:
    tick_all(dialog)
    qtbot.mouseClick(dialog.switch_button, Qt.MouseButton.LeftButton)
    await wait_for(lambda: dialog.pages.currentIndex() == CONFIRM_PAGE and not dialog.busy)


@pytest.mark.asyncio
async def test_automatic_items_show_their_result_and_manual_items_are_checkboxes(
    coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    coordinator.checklist_items["c1"] = (
        dataclasses.replace(ITEMS[0], passed=False, detail="the last test ran on the real network"),
        *ITEMS[1:],
    )
    dialog = await open_dialog(coordinator, dialogs)

    failed, passed = dialog.item_labels["testnet_test"], dialog.item_labels["paper_days"]
    assert failed.text() == "✗ Connection test passed on testnet — the last test ran on the real network"
    assert "#d32f2f" in failed.styleSheet()
    assert passed.text() == "✓ Traded on paper for at least 7 days — 9.0 days since the first"
    assert "#2e7d32" in passed.styleSheet()
    boxes = dialog.manual_checkboxes()
    assert set(boxes) == MANUAL and not any(box.isChecked() for box in boxes.values())
    assert dialog.summary_label.text() == "1 of 4 items pass."

    tick_all(dialog)
    assert dialog.summary_label.text() == "3 of 4 items pass."
    assert not dialog.switch_button.isEnabled()  # a failed automatic check cannot be ticked away


@pytest.mark.asyncio
async def test_the_switch_is_enabled_only_when_every_item_passes(
    coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    dialog = await open_dialog(coordinator, dialogs)
    boxes = dialog.manual_checkboxes()
    assert not dialog.switch_button.isEnabled()

    boxes["real_money"].setChecked(True)
    assert not dialog.switch_button.isEnabled()
    boxes["orders_checked"].setChecked(True)
    assert dialog.switch_button.isEnabled()
    assert dialog.summary_label.text() == "4 of 4 items pass. You can switch this connection to LIVE."
    boxes["real_money"].setChecked(False)
    assert not dialog.switch_button.isEnabled()


@pytest.mark.asyncio
async def test_a_manual_item_the_application_failed_cannot_be_ticked(
    coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    withdrawing = ChecklistItem(
        "withdrawal_off",
        "Withdrawal permission is off",
        False,
        False,
        "this key CAN withdraw: replace the key",
    )
    coordinator.checklist_items["c1"] = (*ITEMS, withdrawing)
    dialog = await open_dialog(coordinator, dialogs)

    box = dialog.manual_checkboxes()["withdrawal_off"]
    assert not box.isEnabled() and "CAN withdraw" in box.text()
    tick_all(dialog)  # setChecked works on a disabled box; it must still not count
    assert "withdrawal_off" not in dialog.ticked()
    assert not dialog.switch_button.isEnabled()


@pytest.mark.asyncio
async def test_confirming_needs_the_typed_exchange_name_and_only_reports_the_decision(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    balances = Balances(AccountBalance(1234.5, "USDT"))
    dialog = await open_dialog(coordinator, dialogs, balances)
    decisions: list[GoLiveDecision] = []
    dialog.decided.connect(decisions.append)

    await to_confirmation(qtbot, dialog)

    assert coordinator.calls_to("go_live_checklist")[-1].args == {"ticked": MANUAL}  # re-asked with the ticks
    assert balances.asked == ["c1"]
    text = dialog.confirm_label.text()
    assert "Binance main" in text and "LIVE trading on Binance" in text
    assert "Account balance: 1,234.50 USDT" in text
    assert not dialog.confirm_button.isEnabled()
    qtbot.keyClicks(dialog.phrase_edit, "bybit")
    assert not dialog.confirm_button.isEnabled()
    dialog.phrase_edit.clear()
    qtbot.keyClicks(dialog.phrase_edit, "Binance")
    assert dialog.confirm_button.isEnabled()

    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)

    assert decisions == [GoLiveDecision("c1", "binance", MANUAL, "Binance", 1234.5, "USDT")]
    assert dialog.decision == decisions[0] and not dialog.isVisible()
    assert coordinator.snapshot("c1").mode is TradingMode.PAPER  # the dialog switched nothing
    assert {c.method for c in coordinator.calls} == {"go_live_checklist"}


@pytest.mark.asyncio
async def test_back_returns_to_the_checklist_and_forgets_the_phrase(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    dialog = await open_dialog(coordinator, dialogs, Balances(AccountBalance(50.0)))
    await to_confirmation(qtbot, dialog)
    qtbot.keyClicks(dialog.phrase_edit, "binance")

    qtbot.mouseClick(dialog.back_button, Qt.MouseButton.LeftButton)

    assert dialog.pages.currentIndex() == CHECKLIST_PAGE
    assert dialog.phrase_edit.text() == "" and dialog.balance is None
    assert dialog.ticked() == MANUAL  # the ticks survive


@pytest.mark.asyncio
async def test_without_a_real_balance_the_confirmation_cannot_be_given(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    balances = Balances(AccountBalance(None, "USDT", "the connection test failed: invalid API key"))
    dialog = await open_dialog(coordinator, dialogs, balances)
    await to_confirmation(qtbot, dialog)

    assert (
        "Account balance: unknown (the connection test failed: invalid API key)"
        in dialog.confirm_label.text()
    )
    assert not dialog.phrase_edit.isEnabled()
    dialog.phrase_edit.setText("binance")
    assert not dialog.confirm_button.isEnabled()
    dialog.confirm()
    assert dialog.decision is None


@pytest.mark.asyncio
async def test_without_a_balance_reader_the_dialog_says_why(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    dialog = await open_dialog(coordinator, dialogs)
    await to_confirmation(qtbot, dialog)
    assert "no connection tester" in dialog.confirm_label.text()
    assert not dialog.confirm_button.isEnabled()


@pytest.mark.asyncio
async def test_the_coordinator_has_the_last_word_on_readiness(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    balances = Balances(AccountBalance(1000.0))
    dialog = await open_dialog(coordinator, dialogs, balances)
    tick_all(dialog)
    # Between loading and clicking, a check started failing (e.g. backups were switched off).
    coordinator.checklist_items["c1"] = (
        *ITEMS,
        ChecklistItem("backups", "Automatic backups are on", True, False, "turn on Automatic backups"),
    )

    qtbot.mouseClick(dialog.switch_button, Qt.MouseButton.LeftButton)
    await wait_for(lambda: dialog.error_text() != "")

    assert dialog.error_text() == "The checklist is not complete: Automatic backups are on"
    assert dialog.pages.currentIndex() == CHECKLIST_PAGE
    assert not dialog.switch_button.isEnabled()
    assert balances.asked == []  # the account is not even asked


@pytest.mark.asyncio
async def test_a_connection_already_live_cannot_be_switched_again(
    coordinator: FakeCoordinator, dialogs: list[GoLiveDialog]
) -> None:
    coordinator.add("c1", "Binance main", exchange="binance", mode=TradingMode.LIVE)
    dialog = await open_dialog(coordinator, dialogs)
    tick_all(dialog)
    assert not dialog.switch_button.isEnabled()
    assert dialog.summary_label.text().endswith("This connection already trades LIVE.")


@pytest.mark.parametrize(
    ("exchange", "typed", "accepted"),
    [
        ("binance", "binance", True),
        ("binance", "  BINANCE ", True),
        ("okx", "  OKX ", True),
        ("bingx", "BingX", True),
        ("binance", "", False),
        ("binance", "binanc", False),
        ("binance", "bybit", False),
    ],
)
@pytest.mark.asyncio
async def test_the_phrase_is_the_exchange_id_or_its_display_name_as_the_live_guard_reads_it(
    qtbot: QtBot, dialogs: list[GoLiveDialog], exchange: str, typed: str, accepted: bool
) -> None:
    coordinator = FakeCoordinator(EventBus())
    coordinator.add("c1", "Main", exchange=exchange)
    coordinator.checklist_items["c1"] = ITEMS
    dialog = await open_dialog(coordinator, dialogs, Balances(AccountBalance(100.0)))
    await to_confirmation(qtbot, dialog)

    qtbot.keyClicks(dialog.phrase_edit, typed)
    assert dialog.confirm_button.isEnabled() is accepted
    assert names_exchange(typed, exchange) is accepted  # the rule arming checks the decision against


# ------------------------------------------------------------------------------ the balance via a real test


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[ConnectionService]:
    database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    yield ConnectionService(
        ConnectionRepository(database),
        SecretStore(Redactor(), NO_KEYRING),
        AuditRepository(database),
        EventBus(),
    )
    await database.close()


def venue_tester(service: ConnectionService, venue: Any) -> ConnectionTester:
    return ConnectionTester(service, lambda _record, _credentials: venue)


@pytest.mark.asyncio
async def test_the_balance_comes_from_a_fresh_connection_test(service: ConnectionService) -> None:
    record = await service.create(ConnectionDraft(name="Binance keys", exchange="binance"))

    failing = await balance_reader_from_tester(venue_tester(service, FailingVenue()))(record.id)
    assert failing.amount is None and not failing.usable
    assert failing.detail.startswith("the connection test failed: ") and "Invalid API-key" in failing.detail

    # No keyring here, so no key: the public steps pass and no balance can be read.
    public = await balance_reader_from_tester(venue_tester(service, WithdrawingVenue()))(record.id)
    assert public == AccountBalance(None, "USDT", "no USDT balance was read (is an API key stored?)")
    assert (await service.get(record.id)).last_test_status == "success"  # it was a real, recorded test
