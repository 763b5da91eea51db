"""Connection rules (DOMAIN §5) on a real SQLite file and, for credentials, the real OS keyring."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import keyring.backends.fail
import pytest
import pytest_asyncio

from cts_desktop.domain.enums import Actor
from cts_desktop.domain.market import ApiType
from cts_desktop.engine.connections import (
    DEFAULT_CONNECTION_SETTINGS,
    ConnectionChanged,
    ConnectionDraft,
    ConnectionRuleError,
    ConnectionService,
)
from cts_desktop.engine.events import EventBus
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRepository
from cts_desktop.storage.secrets import Credentials, KeyringUnavailableError, SecretStore


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'connections.db'}")
    yield db
    await db.close()


def _service(
    database: Database, backend: Any, running: set[str] | None = None
) -> tuple[ConnectionService, list]:
    bus = EventBus()
    events: list[ConnectionChanged] = []
    bus.subscribe(ConnectionChanged, events.append)
    service = ConnectionService(
        ConnectionRepository(database),
        SecretStore(Redactor(), backend),
        AuditRepository(database),
        bus,
        is_engine_running=lambda cid: cid in (running or set()),
    )
    return service, events


NO_KEYRING = keyring.backends.fail.Keyring()


@pytest.mark.asyncio
async def test_predefined_connections_exist_from_the_first_start_only(database: Database) -> None:
    service, _ = _service(database, NO_KEYRING)
    created = await service.ensure_predefined()
    assert [(c.name, c.exchange, c.api_type, c.is_testnet) for c in created] == [
        ("Bybit X03", "bybit", "unified", True),
        ("BingX X01", "bingx", "perpetual_futures", False),
        ("Simulated market", "simulated", "spot", False),  # runs with no account and no network
    ]
    for record in created:
        assert record.is_enabled and record.is_predefined
        assert not record.is_live_trade and not record.is_preset_trade
        assert record.settings["pf_min_base_live"] == 0.6 and record.settings["trailing"] is True
    assert [c.settings["max_leverage"] for c in created] == [125, 150, 100]
    await service.delete(created[0].id)
    assert await service.ensure_predefined() == []  # a deleted template does not come back
    assert [c.name for c in await service.list()] == ["BingX X01", "Simulated market"]


@pytest.mark.asyncio
async def test_an_older_database_gets_the_simulated_market_once(database: Database) -> None:
    """A database from before the built-in connection existed gets it on the next start; once the
    user deletes it, it stays deleted."""
    service, _ = _service(database, NO_KEYRING)
    await service.create(ConnectionDraft(name="My Bybit", exchange="bybit"))
    (added,) = await service.ensure_predefined()
    assert (added.name, added.exchange, added.is_enabled, added.is_predefined) == (
        "Simulated market",
        "simulated",
        True,
        True,
    )
    assert await service.ensure_predefined() == []
    await service.delete(added.id)
    assert await service.ensure_predefined() == []
    assert [c.name for c in await service.list()] == ["My Bybit"]


@pytest.mark.asyncio
async def test_the_simulated_market_is_paper_only_needs_no_key_and_cannot_be_added_again(
    database: Database,
) -> None:
    service, _ = _service(database, NO_KEYRING)
    simulated = next(c for c in await service.ensure_predefined() if c.exchange == "simulated")
    with pytest.raises(
        ConnectionRuleError, match="Simulated market trades on the simulated market and is paper only"
    ):
        await service.set_live_trade(simulated.id, True)
    assert not (await service.get(simulated.id)).is_live_trade
    await service.set_live_trade(simulated.id, False)  # switching it off is always fine
    with pytest.raises(ConnectionRuleError, match="needs no API key"):
        await service.set_credentials(simulated.id, Credentials("KEY1234567", "SECRET1234567"))
    with pytest.raises(ConnectionRuleError, match="built into cts-desktop"):
        await service.create(ConnectionDraft(name="Another simulation", exchange="simulated"))
    other = await service.create(ConnectionDraft(name="Bybit", exchange="bybit"))
    with pytest.raises(ConnectionRuleError, match="built into cts-desktop"):
        await service.update(other.id, {"exchange": "simulated"})
    assert len(await service.list()) == 4


@pytest.mark.asyncio
async def test_live_trade_requires_enabled_and_disabling_forces_live_and_preset_off(
    database: Database,
) -> None:
    service, events = _service(database, NO_KEYRING)
    record = await service.create(ConnectionDraft(name="Binance main", exchange="binance"))
    assert not record.is_enabled and not record.is_live_trade  # new connections are off and paper-only
    with pytest.raises(ConnectionRuleError, match="enable the connection Binance main before turning live"):
        await service.set_live_trade(record.id, True)
    with pytest.raises(ConnectionRuleError, match="before turning preset trade on"):
        await service.set_preset_trade(record.id, True)
    await service.set_enabled(record.id, True)
    record = await service.set_live_trade(record.id, True)
    record = await service.set_preset_trade(record.id, True)
    assert record.is_live_trade and record.is_preset_trade
    record = await service.set_enabled(record.id, False)
    assert not record.is_enabled and not record.is_live_trade and not record.is_preset_trade
    assert [e.change for e in events] == ["created"] + ["updated"] * 4
    audit = await AuditRepository(database).recent(10)
    assert audit[0].action == "connection.disable" and audit[0].before["is_live_trade"] is True
    assert audit[0].after["is_live_trade"] is False


@pytest.mark.asyncio
async def test_first_live_switch_starts_at_volume_factor_0_1(database: Database) -> None:
    service, _ = _service(database, NO_KEYRING)
    record = await service.create(ConnectionDraft(name="OKX", exchange="okx", live_volume_factor=2.5))
    await service.set_enabled(record.id, True)
    record = await service.set_live_trade(record.id, True)
    assert record.live_volume_factor == 0.1
    await service.set_live_trade(record.id, False)
    await service.update(record.id, {"live_volume_factor": 1.5})
    record = await service.set_live_trade(record.id, True)
    assert record.live_volume_factor == 1.5  # only the first switch is capped


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.05, "between 0.1 and 10.0"),
        (10.1, "between 0.1 and 10.0"),
        (0.15, "multiple of 0.1"),
        (float("nan"), "between 0.1 and 10.0"),
    ],
)
async def test_volume_factor_bounds(database: Database, value: float, message: str) -> None:
    service, _ = _service(database, NO_KEYRING)
    record = await service.create(ConnectionDraft(name="B", exchange="binance"))
    with pytest.raises(ConnectionRuleError, match=message):
        await service.update(record.id, {"live_volume_factor": value})
    assert (await service.get(record.id)).live_volume_factor == 1.0  # nothing changed
    for ok in (0.1, 10.0, 0.3):
        assert (await service.update(record.id, {"preset_volume_factor": ok})).preset_volume_factor == ok


@pytest.mark.asyncio
@pytest.mark.parametrize("exchange", ["pionex", "orangex"])
async def test_pionex_and_orangex_say_not_supported_yet(database: Database, exchange: str) -> None:
    service, _ = _service(database, NO_KEYRING)
    with pytest.raises(ConnectionRuleError, match="not supported yet"):
        await service.create(ConnectionDraft(name="x", exchange=exchange))
    with pytest.raises(ConnectionRuleError, match="unknown exchange 'kraken'"):
        await service.create(ConnectionDraft(name="x", exchange="kraken"))
    assert await service.list() == []


@pytest.mark.asyncio
async def test_settings_change_while_running_marks_restart_required(database: Database) -> None:
    running: set[str] = set()
    service, events = _service(database, NO_KEYRING, running)
    record = await service.create(ConnectionDraft(name="B", exchange="bybit", api_type=ApiType.UNIFIED))
    record = await service.update(record.id, {"margin_mode": "isolated"})
    assert not record.restart_required  # not running: takes effect at the next start
    running.add(record.id)
    record = await service.update(record.id, {"name": "Bybit renamed"})
    assert not record.restart_required  # a name is not an engine setting
    record = await service.update(record.id, {"position_mode": "one_way"})
    assert record.restart_required and events[-1].restart_required
    record = await service.mark_restarted(record.id)
    assert not record.restart_required
    with pytest.raises(ConnectionRuleError, match="margin_mode must be one of cross, isolated"):
        await service.update(record.id, {"margin_mode": "portfolio"})
    with pytest.raises(ConnectionRuleError, match="cannot be edited here: is_live_trade"):
        await service.update(record.id, {"is_live_trade": True})


@pytest.mark.asyncio
async def test_settings_merge_with_defaults(database: Database) -> None:
    service, _ = _service(database, NO_KEYRING)
    record = await service.create(ConnectionDraft(name="B", exchange="binance", settings={"dca": True}))
    assert record.settings == {**DEFAULT_CONNECTION_SETTINGS, "dca": True}
    record = await service.update(record.id, {"settings": {"trailing": False}})
    assert record.settings["dca"] is True and record.settings["trailing"] is False


@pytest.mark.asyncio
async def test_no_keyring_refuses_credentials_and_creates_nothing(database: Database) -> None:
    service, _ = _service(database, NO_KEYRING)
    with pytest.raises(KeyringUnavailableError, match="gnome-keyring"):
        await service.create(
            ConnectionDraft(name="B", exchange="binance"), Credentials("KEY1234567", "SECRET1234567")
        )
    assert await service.list() == []  # nothing half-created


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_credentials_live_in_the_keyring_and_restart_when_running(
    database: Database, real_keyring: Any
) -> None:
    running: set[str] = set()
    service, _ = _service(database, real_keyring, running)
    with pytest.raises(ConnectionRuleError, match="passphrase"):
        await service.create(
            ConnectionDraft(name="O", exchange="okx"), Credentials("KEY1234567", "SECRET1234567")
        )
    record = await service.create(
        ConnectionDraft(name="B", exchange="binance"), Credentials("KEYabcdef123", "SECRETabcdef123")
    )
    try:
        assert await service.has_credentials(record.id)
        assert await service.credentials(record.id) == Credentials("KEYabcdef123", "SECRETabcdef123")
        running.add(record.id)
        record = await service.set_credentials(record.id, Credentials("KEYnew456789", "SECRETnew456789"))
        assert record.restart_required
        database_bytes = Path(str(database.engine.url.database)).read_bytes()
        assert b"SECRETnew456789" not in database_bytes and b"SECRETabcdef123" not in database_bytes
        audit = await AuditRepository(database).recent(5)
        assert audit[0].action == "connection.credentials" and "SECRET" not in repr(audit[0])
    finally:
        await service.delete(record.id, actor=Actor.USER)
    assert real_keyring.get_password("cts-desktop", f"{record.id}:api_key") is None
