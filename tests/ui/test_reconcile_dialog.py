"""The reconciliation dialog: lists what the coordinator found and applies only what the user ticks."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from cts_desktop.domain.orders import DifferenceKind, ReconcileDifference
from cts_desktop.engine.events import EventBus
from cts_desktop.ui.dialogs.reconcile_dialog import (
    APPLY,
    AUTO_APPLIED,
    DESCRIPTION,
    PENDING,
    STATUS,
    ReconcileDialog,
)
from tests.helpers import wait_for
from tests.ui.fakes import FakeCoordinator

BTC = "BTC/USDT:USDT"


def difference(description: str, *, applied: bool = False, connection_id: str = "c1") -> ReconcileDifference:
    return ReconcileDifference(
        DifferenceKind.ORDER_MISSING_ON_EXCHANGE,
        connection_id,
        BTC,
        description,
        "mark the local order lost",
        applied,
        local=MappingProxyType({"status": "open"}),
        remote=MappingProxyType({"status": "not found"}),
        client_order_id=f"cts-{description}",
    )


@pytest.fixture
def coordinator() -> FakeCoordinator:
    fake = FakeCoordinator(EventBus())
    fake.add("c1", "Binance main")
    fake.add("c2", "Bybit main", exchange="bybit")
    fake.differences["c1"] = [
        difference("auto", applied=True),
        difference("first"),
        difference("second"),
        difference("third"),
    ]
    fake.differences["c2"] = []
    return fake


@pytest.fixture
def dialogs(qapp: QApplication) -> Iterator[list[ReconcileDialog]]:
    made: list[ReconcileDialog] = []
    yield made
    for dialog in made:
        if shiboken6.isValid(dialog):
            shiboken6.delete(dialog)


async def open_dialog(
    coordinator: FakeCoordinator, dialogs: list[ReconcileDialog], connection_id: str | None = None
) -> ReconcileDialog:
    dialog = ReconcileDialog(coordinator, connection_id=connection_id)
    dialogs.append(dialog)
    dialog.open()
    dialog.check()
    await wait_for(lambda: not dialog.busy and dialog.status_label.text().endswith("."))
    return dialog


def statuses(dialog: ReconcileDialog) -> dict[str, str]:
    model = dialog.model
    return {
        str(model.index(row, DESCRIPTION).data()): str(model.index(row, STATUS).data())
        for row in range(model.rowCount())
    }


@pytest.mark.asyncio
async def test_the_differences_are_listed_and_only_pending_ones_can_be_ticked(
    coordinator: FakeCoordinator, dialogs: list[ReconcileDialog]
) -> None:
    dialog = await open_dialog(coordinator, dialogs)

    assert dialog.connection_id() == "c1"
    assert statuses(dialog) == {"auto": AUTO_APPLIED, "first": PENDING, "second": PENDING, "third": PENDING}
    assert dialog.status_label.text() == (
        "4 differences: 1 applied automatically, 3 waiting for your confirmation."
    )
    model = dialog.model
    auto, first = model.index(0, APPLY), model.index(1, APPLY)
    assert not (model.flags(auto) & Qt.ItemFlag.ItemIsUserCheckable)
    assert model.flags(first) & Qt.ItemFlag.ItemIsUserCheckable
    assert first.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked  # nothing pre-ticked
    assert not model.set_ticked(0, True)  # an applied difference cannot be ticked
    assert "exchange: status=not found" in model.index(1, DESCRIPTION).data(Qt.ItemDataRole.ToolTipRole)
    assert not dialog.apply_button.isEnabled()


@pytest.mark.asyncio
async def test_only_the_ticked_differences_are_applied(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[ReconcileDialog]
) -> None:
    dialog = await open_dialog(coordinator, dialogs)
    model = dialog.model
    model.set_ticked(1, True)  # first
    model.set_ticked(3, True)  # third
    model.set_ticked(3, False)  # changed their mind
    model.set_ticked(2, True)  # second
    assert dialog.apply_button.isEnabled() and dialog.apply_button.text() == "Apply ticked (2)"

    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    await wait_for(lambda: not dialog.busy and statuses(dialog)["second"] == "applied")

    assert [d.description for d in coordinator.applied] == ["first", "second"]
    assert statuses(dialog) == {
        "auto": AUTO_APPLIED,
        "first": "applied",
        "second": "applied",
        "third": PENDING,
    }
    assert dialog.status_label.text().endswith("1 waiting for your confirmation.")
    assert not dialog.apply_button.isEnabled()  # the applied rows are no longer ticked
    assert not (model.flags(model.index(1, APPLY)) & Qt.ItemFlag.ItemIsUserCheckable)
    assert dialog.error_text() == ""


@pytest.mark.asyncio
async def test_a_fix_that_fails_is_marked_and_the_others_still_apply(
    qtbot: QtBot, coordinator: FakeCoordinator, dialogs: list[ReconcileDialog]
) -> None:
    coordinator.apply_failures["first"] = RuntimeError("order is still open on the exchange")
    dialog = await open_dialog(coordinator, dialogs)
    applied_counts: list[int] = []
    dialog.applied.connect(applied_counts.append)
    for row in (1, 2):
        dialog.model.set_ticked(row, True)

    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    await wait_for(lambda: not dialog.busy and dialog.error_text() != "")

    assert statuses(dialog)["first"] == "failed: order is still open on the exchange"
    assert statuses(dialog)["second"] == "applied"
    assert dialog.error_text() == "1 of 2 fixes failed; see the Status column."
    assert applied_counts == [1]
    assert dialog.apply_button.text() == "Apply ticked (1)"  # the failed one stays ticked, to retry


@pytest.mark.asyncio
async def test_another_connection_is_checked_when_chosen(
    coordinator: FakeCoordinator, dialogs: list[ReconcileDialog]
) -> None:
    dialog = await open_dialog(coordinator, dialogs)
    dialog.connection_box.setCurrentIndex(dialog.connection_box.findData("c2"))
    await wait_for(lambda: not dialog.busy and dialog.model.rowCount() == 0)

    assert dialog.status_label.text() == "No differences: local records match the exchange."
    assert [c.connection_id for c in coordinator.calls_to("reconcile")] == ["c1", "c2"]


@pytest.mark.asyncio
async def test_a_failing_reconciliation_is_reported(
    coordinator: FakeCoordinator, dialogs: list[ReconcileDialog]
) -> None:
    coordinator.failures["reconcile"] = ConnectionError("exchange unreachable")
    dialog = ReconcileDialog(coordinator, connection_id="c2")
    dialogs.append(dialog)
    dialog.open()
    dialog.check()
    await wait_for(lambda: dialog.error_text() != "")

    assert dialog.error_text() == "Reconciliation failed: exchange unreachable"
    assert dialog.check_button.isEnabled()  # try again
