"""The Connections dock and its dialogs over a real ConnectionService on a real SQLite file.

Keyrings: ``keyring.backends.fail.Keyring`` is the machine without a keyring; ``real_keyring``
(tests/conftest.py) is the OS keyring (Secret Service in CI, where these tests must run; they
skip elsewhere without one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import keyring.backends.fail
import keyring.errors
import pytest
import pytest_asyncio
import shiboken6
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QStandardItemModel
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox
from pytestqt.qtbot import QtBot

from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.domain.market import Balance, MarketInfo, MarketType, Ticker
from cts_desktop.engine.connection_test import WITHDRAW_WARNING, ConnectionTester
from cts_desktop.engine.connections import ConnectionDraft, ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.exchanges.errors import AuthenticationError
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord, ConnectionRepository
from cts_desktop.storage.secrets import Credentials, KeyringStatus, SecretStore
from cts_desktop.ui.bridge import EventBridge
from cts_desktop.ui.dialogs.connection_dialog import KEEP_SECRET_PLACEHOLDER, ConnectionDialog
from cts_desktop.ui.log_handler import QtLogHandler
from cts_desktop.ui.main_window import MainWindow
from cts_desktop.ui.models.connections_model import (
    API_TYPE,
    ENABLED,
    EXCHANGE,
    LIVE,
    NAME,
    NO_API_KEY,
    PRESET,
    STATUS,
    TESTNET,
)
from cts_desktop.ui.panels.connections_panel import ConnectionsPanel
from cts_desktop.ui.panels.table_panel import TablePanel
from tests.helpers import wait_for

NO_KEYRING = keyring.backends.fail.Keyring()


# ------------------------------------------------------------------------------ venues for the tester


class FailingVenue:
    """Implements only what run_connection_test calls before its first step fails."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.closed = False

    @property
    def name(self) -> str:
        return "binance"

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        await asyncio.sleep(self.delay_s)
        raise AuthenticationError("binance", detail='{"code":-2015,"msg":"Invalid API-key"}')

    async def close(self) -> None:
        self.closed = True


class WithdrawingVenue:
    """A venue whose every step succeeds and whose key can withdraw (the loud-banner case)."""

    BTC = "BTC/USDT:USDT"

    @property
    def name(self) -> str:
        return "binance"

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        return {self.BTC: MarketInfo(self.BTC, "BTC", "USDT", MarketType.SWAP)}

    async def clock_skew_ms(self) -> int:
        return 12

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return Ticker(symbol, 1_700_000_000_000, 64_000.0)

    async def fetch_balance(self) -> dict[str, Balance]:
        return {"USDT": Balance("USDT", 900.0, 100.0, 1000.0)}

    def capabilities(self) -> list[str]:
        return ["perpetual_futures", "hedge_mode"]

    async def key_can_withdraw(self) -> bool | None:
        return True

    async def close(self) -> None:
        pass


# ------------------------------------------------------------------------------ fixtures


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    yield db
    await db.close()


@pytest.fixture
def events() -> EventBus:
    return EventBus()


@pytest.fixture
def bridge(qapp: QApplication, events: EventBus) -> Iterator[EventBridge]:
    bridge = EventBridge(events)
    yield bridge
    bridge.close()


def make_service(database: Database, events: EventBus, backend: Any) -> ConnectionService:
    return ConnectionService(
        ConnectionRepository(database), SecretStore(Redactor(), backend), AuditRepository(database), events
    )


def keyring_status(backend: Any) -> KeyringStatus:
    return SecretStore(Redactor(), backend).status()


class Harness:
    """A panel over a real service; tracks the widgets it made so teardown can stop them."""

    def __init__(self, qtbot: QtBot, database: Database, events: EventBus, bridge: EventBridge) -> None:
        self.qtbot = qtbot
        self.database = database
        self.events = events
        self.bridge = bridge
        self.panels: list[ConnectionsPanel] = []

    def service(self, backend: Any = NO_KEYRING) -> ConnectionService:
        return make_service(self.database, self.events, backend)

    async def panel(
        self, service: ConnectionService, backend: Any = NO_KEYRING, tester: ConnectionTester | None = None
    ) -> ConnectionsPanel:
        panel = ConnectionsPanel(service, self.bridge, tester=tester, keyring=keyring_status(backend))
        self.qtbot.addWidget(panel)
        panel.resize(900, 300)
        panel.show()
        self.panels.append(panel)
        loaded: list[bool] = []
        panel.loaded.connect(lambda: loaded.append(True))
        await wait_for(lambda: bool(loaded))
        return panel


@pytest_asyncio.fixture
async def harness(
    qtbot: QtBot, database: Database, events: EventBus, bridge: EventBridge
) -> AsyncIterator[Harness]:
    h = Harness(qtbot, database, events, bridge)
    yield h
    for panel in h.panels:
        if shiboken6.isValid(panel):
            panel.stop()
            await panel._runner.wait_idle()


def cell(panel: ConnectionsPanel, name: str, column: int, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
    for row in range(panel.model.rowCount()):
        if panel.model.index(row, NAME).data() == name:
            return panel.model.index(row, column).data(role)
    raise AssertionError(f"no row named {name!r}; rows: {names(panel)}")


def names(panel: ConnectionsPanel) -> list[str]:
    return [panel.model.index(row, NAME).data() for row in range(panel.model.rowCount())]


def choose(box: Any, value: str) -> None:
    index = box.findData(value)
    assert index >= 0, value
    box.setCurrentIndex(index)


def click(qtbot: QtBot, button: Any) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


async def add_via_dialog(
    qtbot: QtBot, panel: ConnectionsPanel, name: str, exchange: str = "binance", **secrets: str
) -> ConnectionDialog:
    click(qtbot, panel.add_button)
    dialog = panel.dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.keyClicks(dialog.name_edit, name)
    choose(dialog.exchange_box, exchange)
    for field, value in secrets.items():
        qtbot.keyClicks(getattr(dialog, f"{field}_edit"), value)
    click(qtbot, dialog.save_button)
    return dialog


# ------------------------------------------------------------------------------ the table


@pytest.mark.asyncio
async def test_the_table_lists_connections_with_flags_and_status(harness: Harness) -> None:
    service = harness.service()
    await service.create(ConnectionDraft(name="Binance main", exchange="binance", is_testnet=True))
    await service.ensure_predefined()  # connections exist: only the built-in Simulated market joins
    panel = await harness.panel(service)

    assert [panel.model.headerData(c, Qt.Orientation.Horizontal) for c in range(8)] == [
        "Name",
        "Exchange",
        "API type",
        "Testnet",
        "Enabled",
        "Live",
        "Preset",
        "Status",
    ]
    assert names(panel) == ["Binance main", "Simulated market"]
    row = [cell(panel, "Binance main", c) for c in (EXCHANGE, API_TYPE, TESTNET, ENABLED, LIVE, PRESET)]
    assert row == ["Binance", "Perpetual futures", "yes", "no", "no", "no"]
    assert cell(panel, "Binance main", STATUS) == NO_API_KEY  # no keyring: nothing can be stored


@pytest.mark.asyncio
async def test_the_table_reloads_when_the_service_announces_a_change(harness: Harness) -> None:
    service = harness.service()
    panel = await harness.panel(service)
    assert names(panel) == []
    await service.create(ConnectionDraft(name="From elsewhere", exchange="okx"))  # e.g. the CLI
    await wait_for(lambda: names(panel) == ["From elsewhere"])
    assert cell(panel, "From elsewhere", EXCHANGE) == "OKX"


@pytest.mark.asyncio
async def test_buttons_follow_the_selection(harness: Harness) -> None:
    service = harness.service()
    record = await service.create(ConnectionDraft(name="A", exchange="bybit"))
    panel = await harness.panel(service)
    assert not panel.edit_button.isEnabled() and not panel.delete_button.isEnabled()
    assert not panel.test_button.isEnabled()  # no tester in this session
    assert panel.select_connection(record.id)
    assert panel.edit_button.isEnabled() and panel.delete_button.isEnabled()
    assert panel.toggle_button.text() == "Enable"


# ------------------------------------------------------------------------------ add / edit dialog


@pytest.mark.asyncio
async def test_add_through_the_dialog_without_a_keyring(harness: Harness, qtbot: QtBot) -> None:
    service = harness.service(NO_KEYRING)
    panel = await harness.panel(service, NO_KEYRING)

    click(qtbot, panel.add_button)
    dialog = panel.dialog
    assert dialog is not None and dialog.isVisible() and not dialog.is_edit
    for edit in dialog.secret_edits():  # no keyring: secrets cannot be typed at all
        assert not edit.isEnabled()
        assert edit.echoMode() == QLineEdit.EchoMode.Password
    assert "gnome-keyring" in dialog.keyring_label.text()
    assert "public market data" in dialog.keyring_label.text()

    qtbot.keyClicks(dialog.name_edit, "Bybit public")
    choose(dialog.exchange_box, "bybit")
    choose(dialog.api_type_box, "unified")
    choose(dialog.margin_box, "isolated")
    choose(dialog.position_box, "one_way")
    dialog.testnet_check.setChecked(True)
    dialog.live_factor_spin.setValue(2.5)
    dialog.preset_factor_spin.setValue(0.3)
    click(qtbot, dialog.save_button)

    await wait_for(lambda: names(panel) == ["Bybit public"])
    assert not dialog.isVisible()
    [record] = await service.list()
    assert (record.exchange, record.api_type, record.margin_mode, record.position_mode) == (
        "bybit",
        "unified",
        "isolated",
        "one_way",
    )
    assert record.is_testnet and not record.is_enabled and not record.is_live_trade
    assert (record.live_volume_factor, record.preset_volume_factor) == (2.5, 0.3)
    assert panel.selected_row() is not None and panel.selected_row().id == record.id


@pytest.mark.asyncio
async def test_unsupported_exchanges_are_listed_but_cannot_be_chosen(harness: Harness, qtbot: QtBot) -> None:
    panel = await harness.panel(harness.service())
    click(qtbot, panel.add_button)
    box = panel.dialog.exchange_box
    model = box.model()
    assert isinstance(model, QStandardItemModel)
    entries = {box.itemData(i): (box.itemText(i), model.item(i).isEnabled()) for i in range(box.count())}
    assert entries["pionex"] == ("Pionex — not supported yet", False)
    assert entries["orangex"] == ("OrangeX — not supported yet", False)
    assert {k for k, (_text, enabled) in entries.items() if enabled} == {"bybit", "bingx", "binance", "okx"}
    assert "ccxt" in model.item(box.findData("pionex")).toolTip()


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_the_passphrase_is_only_for_okx(harness: Harness, qtbot: QtBot, real_keyring: Any) -> None:
    backend = real_keyring
    panel = await harness.panel(harness.service(backend), backend)
    click(qtbot, panel.add_button)
    dialog = panel.dialog
    choose(dialog.exchange_box, "binance")
    assert not dialog.passphrase_edit.isEnabled()
    choose(dialog.exchange_box, "okx")
    assert dialog.passphrase_edit.isEnabled()
    qtbot.keyClicks(dialog.passphrase_edit, "pass")
    choose(dialog.exchange_box, "bybit")
    assert not dialog.passphrase_edit.isEnabled() and dialog.passphrase_edit.text() == ""


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_rule_error_is_shown_inline_and_the_dialog_keeps_the_typed_values(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    backend = real_keyring
    service = harness.service(backend)
    panel = await harness.panel(service, backend)

    dialog = await add_via_dialog(
        qtbot, panel, "OKX main", "okx", api_key="KEY123456", api_secret="SECRET123456"
    )
    await wait_for(lambda: dialog.error_text() != "")
    assert "passphrase" in dialog.error_text()
    assert dialog.isVisible()
    assert dialog.error_label.styleSheet().count("#d32f2f") == 1  # red
    assert dialog.name_edit.text() == "OKX main"
    assert dialog.api_key_edit.text() == "KEY123456" and dialog.api_secret_edit.text() == "SECRET123456"
    assert dialog.save_button.isEnabled()
    assert await service.list() == []

    qtbot.keyClicks(dialog.passphrase_edit, "PASS123")  # fix it and save again
    click(qtbot, dialog.save_button)
    await wait_for(lambda: names(panel) == ["OKX main"])
    assert not dialog.isVisible() and dialog.error_text() == ""
    [record] = await service.list()
    assert await service.credentials(record.id) == Credentials("KEY123456", "SECRET123456", "PASS123")
    assert cell(panel, "OKX main", STATUS) == ""  # key stored, never tested


@pytest.mark.asyncio
async def test_an_empty_name_is_refused_inline(harness: Harness, qtbot: QtBot) -> None:
    panel = await harness.panel(harness.service())
    dialog = await add_via_dialog(qtbot, panel, "   ")
    await wait_for(lambda: dialog.error_text() != "")
    assert dialog.error_text() == "a connection needs a name"
    assert dialog.isVisible()


@pytest.mark.asyncio
async def test_a_missing_keyring_is_reported_inline_when_secrets_are_typed(
    harness: Harness, qtbot: QtBot
) -> None:
    service = harness.service(NO_KEYRING)
    panel = await harness.panel(service, NO_KEYRING)
    # The window did not know the keyring status (None), so the secret fields are open.
    dialog = ConnectionDialog(service, keyring=None, parent=panel)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.keyClicks(dialog.name_edit, "Binance keys")
    qtbot.keyClicks(dialog.api_key_edit, "KEY123456")
    qtbot.keyClicks(dialog.api_secret_edit, "SECRET123456")
    click(qtbot, dialog.save_button)
    await wait_for(lambda: dialog.error_text() != "")
    assert "No secure OS keyring" in dialog.error_text()
    assert dialog.isVisible() and dialog.api_key_edit.text() == "KEY123456"
    assert await service.list() == []  # nothing half-created


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_secret_fields_are_cleared_when_the_dialog_closes(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    backend = real_keyring
    panel = await harness.panel(harness.service(backend), backend)
    click(qtbot, panel.add_button)
    dialog = panel.dialog
    choose(dialog.exchange_box, "okx")
    for edit, text in zip(dialog.secret_edits(), ("K1234567", "S1234567", "P123"), strict=True):
        qtbot.keyClicks(edit, text)
    click(qtbot, dialog.cancel_button)
    assert not dialog.isVisible()
    assert [edit.text() for edit in dialog.secret_edits()] == ["", "", ""]
    assert await harness.service(backend).list() == []


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_edit_keeps_the_stored_secrets_when_the_fields_stay_empty(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    backend = real_keyring
    service = harness.service(backend)
    record = await service.create(
        ConnectionDraft(name="Binance", exchange="binance"), Credentials("KEYold1234", "SECRETold1234")
    )
    panel = await harness.panel(service, backend)
    panel.select_connection(record.id)

    click(qtbot, panel.edit_button)
    dialog = panel.dialog
    assert dialog is not None and dialog.is_edit
    assert dialog.name_edit.text() == "Binance" and dialog.exchange() == "binance"
    for edit in dialog.secret_edits()[:2]:
        assert edit.text() == "" and edit.placeholderText() == KEEP_SECRET_PLACEHOLDER
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "Binance renamed")
    dialog.live_factor_spin.setValue(0.7)
    click(qtbot, dialog.save_button)
    await wait_for(lambda: names(panel) == ["Binance renamed"])

    stored = await service.get(record.id)
    assert stored.live_volume_factor == 0.7
    assert await service.credentials(record.id) == Credentials("KEYold1234", "SECRETold1234")

    # New secrets typed: replaced.
    panel.select_connection(record.id)
    click(qtbot, panel.edit_button)
    dialog = panel.dialog
    qtbot.keyClicks(dialog.api_key_edit, "KEYnew1234")
    qtbot.keyClicks(dialog.api_secret_edit, "SECRETnew1234")
    click(qtbot, dialog.save_button)
    await wait_for(lambda: not dialog.isVisible())
    assert await service.credentials(record.id) == Credentials("KEYnew1234", "SECRETnew1234")
    assert [edit.text() for edit in dialog.secret_edits()] == ["", "", ""]


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_secrets_saved_through_the_dialog_land_in_the_os_keyring(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    service = harness.service(real_keyring)
    panel = await harness.panel(service, real_keyring)
    dialog = await add_via_dialog(
        qtbot, panel, "Real keyring", api_key="KEYreal12345", api_secret="SECRETreal12345"
    )
    await wait_for(lambda: names(panel) == ["Real keyring"])
    [record] = await service.list()
    try:
        assert not dialog.isVisible() and dialog.api_secret_edit.text() == ""
        assert real_keyring.get_password("cts-desktop", f"{record.id}:api_secret") == "SECRETreal12345"
        assert NO_API_KEY not in cell(panel, "Real keyring", STATUS)
        database_bytes = Path(str(harness.database.engine.url.database)).read_bytes()
        assert b"SECRETreal12345" not in database_bytes
    finally:
        await service.delete(record.id)
    assert real_keyring.get_password("cts-desktop", f"{record.id}:api_secret") is None


# ------------------------------------------------------------------------------ delete, enable


@pytest.mark.asyncio
async def test_delete_asks_first_then_removes_the_row(harness: Harness, qtbot: QtBot) -> None:
    service = harness.service()
    keep = await service.create(ConnectionDraft(name="Keep", exchange="bybit"))
    gone = await service.create(ConnectionDraft(name="Gone", exchange="bingx"))
    panel = await harness.panel(service)

    panel.select_connection(gone.id)
    click(qtbot, panel.delete_button)
    box = panel.confirm_box
    assert box is not None and box.isVisible() and "Gone" in box.text()
    click(qtbot, box.button(QMessageBox.StandardButton.No))
    await asyncio.sleep(0.1)
    assert names(panel) == ["Gone", "Keep"]

    panel.select_connection(gone.id)
    click(qtbot, panel.delete_button)
    click(qtbot, panel.confirm_box.button(QMessageBox.StandardButton.Yes))
    await wait_for(lambda: names(panel) == ["Keep"])
    assert [r.id for r in await service.list()] == [keep.id]


@pytest.mark.asyncio
async def test_disable_forces_live_and_preset_off_in_the_table(harness: Harness, qtbot: QtBot) -> None:
    service = harness.service()
    record = await service.create(ConnectionDraft(name="Live one", exchange="binance"))
    panel = await harness.panel(service)
    panel.select_connection(record.id)

    click(qtbot, panel.toggle_button)
    await wait_for(lambda: cell(panel, "Live one", ENABLED) == "yes")
    assert panel.toggle_button.text() == "Disable"

    await service.set_live_trade(record.id, True)  # the go-live flow is another issue's UI
    await service.set_preset_trade(record.id, True)
    await wait_for(
        lambda: cell(panel, "Live one", LIVE) == "yes" and cell(panel, "Live one", PRESET) == "yes"
    )
    assert cell(panel, "Live one", LIVE, Qt.ItemDataRole.ForegroundRole).name() == "#d32f2f"
    assert cell(panel, "Live one", LIVE, Qt.ItemDataRole.FontRole).bold()

    click(qtbot, panel.toggle_button)
    await wait_for(lambda: cell(panel, "Live one", ENABLED) == "no")
    assert cell(panel, "Live one", LIVE) == "no" and cell(panel, "Live one", PRESET) == "no"
    assert panel.toggle_button.text() == "Enable"
    stored = await service.get(record.id)
    assert not stored.is_live_trade and not stored.is_preset_trade


# ------------------------------------------------------------------------------ test connection


def make_tester(service: ConnectionService, venue: Any) -> ConnectionTester:
    def factory(record: ConnectionRecord, credentials: Credentials | None) -> Any:
        return venue

    return ConnectionTester(service, factory)


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_failing_test_shows_its_log_and_the_window_stays_responsive(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    backend = real_keyring
    service = harness.service(backend)
    record = await service.create(
        ConnectionDraft(name="Binance bad key", exchange="binance"),
        Credentials("KEYbad1234", "SECRETbad1234"),
    )
    venue = FailingVenue(delay_s=0.4)
    panel = await harness.panel(service, backend, tester=make_tester(service, venue))
    panel.select_connection(record.id)
    assert panel.test_button.isEnabled()

    ticks: list[int] = []
    heartbeat = QTimer()
    heartbeat.setInterval(20)
    heartbeat.timeout.connect(lambda: ticks.append(1))
    heartbeat.start()
    try:
        click(qtbot, panel.test_button)
        assert not panel.test_button.isEnabled() and panel.test_button.text() == "Testing…"
        await wait_for(lambda: panel.test_dialog is not None, timeout=10)
        running_ticks = len(ticks)
    finally:
        heartbeat.stop()

    assert running_ticks >= 10  # 0.2 s connect interval + 0.4 s venue delay at 20 ms per tick
    await wait_for(lambda: panel.test_button.isEnabled())
    assert panel.test_button.text() == "Test connection"
    dialog = panel.test_dialog
    assert dialog is not None and dialog.isVisible()
    assert (
        "FAILED" in dialog.status_label.text()
        and "rejected the API credentials" in dialog.status_label.text()
    )
    assert "font-weight: bold" in dialog.status_label.styleSheet()
    log_text = dialog.log_text()
    assert "start: testing connection 'Binance bad key' on binance" in log_text
    assert "load markets: FAILED" in log_text and "Invalid API-key" in log_text
    assert "connection test failed" in log_text
    assert "SECRETbad1234" not in log_text
    assert dialog.log_view.isReadOnly()
    assert not dialog.withdraw_banner.isVisible()
    assert venue.closed

    await wait_for(lambda: cell(panel, "Binance bad key", STATUS).startswith("test failed "))
    assert cell(panel, "Binance bad key", STATUS, Qt.ItemDataRole.ForegroundRole).name() == "#d32f2f"


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_key_that_can_withdraw_gets_a_red_banner(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    backend = real_keyring
    service = harness.service(backend)
    record = await service.create(
        ConnectionDraft(name="Withdrawing", exchange="binance"), Credentials("KEYw123456", "SECRETw123456")
    )
    panel = await harness.panel(service, backend, tester=make_tester(service, WithdrawingVenue()))
    panel.select_connection(record.id)
    click(qtbot, panel.test_button)
    await wait_for(lambda: panel.test_dialog is not None, timeout=10)

    dialog = panel.test_dialog
    assert dialog.withdraw_banner.isVisible() and dialog.withdraw_banner.text() == WITHDRAW_WARNING
    assert "#c62828" in dialog.withdraw_banner.styleSheet()
    assert "successful" in dialog.status_label.text() and "1,000.00 USDT" in dialog.status_label.text()
    assert WITHDRAW_WARNING in dialog.log_text()

    click(qtbot, dialog.copy_button)
    assert QGuiApplication.clipboard().text() == dialog.log_text()
    await wait_for(lambda: cell(panel, "Withdrawing", STATUS).startswith("test success "))


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_test_that_cannot_start_is_reported_in_the_panel(
    harness: Harness, qtbot: QtBot, real_keyring: Any
) -> None:
    backend = real_keyring
    service = harness.service(backend)
    record = await service.create(ConnectionDraft(name="No venue", exchange="okx"))

    def factory(record: ConnectionRecord, credentials: Credentials | None) -> Any:
        raise ValueError("no exchange adapter for okx in this build")

    panel = await harness.panel(service, backend, tester=ConnectionTester(service, factory))
    panel.select_connection(record.id)
    click(qtbot, panel.test_button)
    await wait_for(lambda: panel.error_text() != "")
    assert "no exchange adapter for okx" in panel.error_text()
    assert panel.test_button.isEnabled() and panel.test_dialog is None


# ------------------------------------------------------------------------------ in the main window


@pytest.mark.asyncio
async def test_the_connections_dock_holds_the_panel_when_given_a_service(
    harness: Harness, cts_home: Path, qtbot: QtBot
) -> None:
    service = harness.service()
    await service.create(ConnectionDraft(name="Docked", exchange="bybit"))
    status = keyring_status(NO_KEYRING)
    window = MainWindow(
        layout_file=cts_home / "layout.ini",
        bus=harness.events,
        mode=TradingMode.PAPER,
        engine_state=EngineState.IDLE,
        database_location=str(cts_home / "cts.db"),
        log_handler=QtLogHandler(),
        connections=service,
        tester=make_tester(service, FailingVenue()),
        keyring=status,
    )
    try:
        window.show()
        panel = window.dock("Connections").widget()
        assert isinstance(panel, ConnectionsPanel) and window.connections_panel is panel
        assert isinstance(window.dock("Market").widget(), TablePanel)  # no market bus given
        await wait_for(lambda: names(panel) == ["Docked"])
        assert not panel.keyring_available
    finally:
        window.finish_close()
        await window.connections_panel._runner.wait_idle()
        shiboken6.delete(window)
