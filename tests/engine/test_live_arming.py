"""Arming live trading: the flag is set only with a valid confirmation and tested credentials, the
confirmation lives only in this session, and disarming returns to paper. Real keyring (Secret
Service in CI), real SQLite, the real connection test against the paper venue."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cts_desktop.engine.connections import ConnectionDraft, ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.live_arming import LiveArming
from cts_desktop.engine.live_guard import LiveConfirmation
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database
from cts_desktop.storage.repositories import AuditRepository, ConnectionRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord
from cts_desktop.storage.secrets import Credentials, SecretStore
from tests.engine.test_live_guard import paper_venue, run_test


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest_asyncio.fixture
async def service(tmp_path: Path, real_keyring: Any, bus: EventBus) -> AsyncIterator[ConnectionService]:
    db = await Database.open(str(tmp_path / "cts.db"))
    secrets = SecretStore(Redactor(), real_keyring)
    yield ConnectionService(ConnectionRepository(db), secrets, AuditRepository(db), bus)
    await db.close()


@pytest.fixture
def arming(service: ConnectionService, bus: EventBus) -> LiveArming:
    """The session's arming, listening to the connection service's changes."""
    return LiveArming(service, bus)


async def run_test_again(service: ConnectionService, record: ConnectionRecord) -> ConnectionRecord:
    venue = paper_venue(service._repository._database, f"t-{record.id}")
    try:
        return await run_test(service, record, venue)
    finally:
        await venue.close()


async def prepared_connection(service: ConnectionService, *, credentials: bool = True) -> ConnectionRecord:
    record = await service.create(ConnectionDraft(name=f"Bybit {uuid.uuid4().hex[:6]}", exchange="bybit"))
    await service.set_enabled(record.id, True)
    if credentials:
        await service.set_credentials(
            record.id, Credentials("key-" + uuid.uuid4().hex, "secret-" + uuid.uuid4().hex)
        )
    return await run_test_again(service, record)


def confirmation(record: ConnectionRecord, **changes: Any) -> LiveConfirmation:
    return dataclasses.replace(LiveConfirmation(record.id, record.exchange, 10_000.0, "Bybit"), **changes)


@pytest.mark.asyncio
async def test_arming_sets_the_flag_and_permits_live_orders_in_this_session_only(
    service: ConnectionService, bus: EventBus, arming: LiveArming
) -> None:
    record = await prepared_connection(service)
    assert not (await arming.permit(record)).allowed
    decision = await arming.arm(confirmation(record))
    assert decision.allowed, decision.message
    assert (await service.get(record.id)).is_live_trade and arming.is_armed(record.id)
    assert (await arming.permit(record)).allowed
    # A new session (restart): the flag is stored, the confirmation is not.
    restarted = LiveArming(service, bus)
    refused = await restarted.permit(record)
    assert (refused.allowed, refused.rule) == (False, "confirmation")
    await arming.disarm(record.id)
    assert not (await service.get(record.id)).is_live_trade
    assert (await arming.permit(record)).rule == "live_flag"


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"typed": "binance"}, "confirmation"),
        ({"balance": 0.0}, "confirmation"),
        ({"balance": None}, "confirmation"),
    ],
)
@pytest.mark.asyncio
async def test_a_bad_confirmation_changes_nothing(
    service: ConnectionService, arming: LiveArming, change: dict[str, Any], rule: str
) -> None:
    record = await prepared_connection(service)
    decision = await arming.arm(confirmation(record, **change))
    assert (decision.allowed, decision.rule) == (False, rule)
    assert not (await service.get(record.id)).is_live_trade


@pytest.mark.asyncio
async def test_without_stored_credentials_the_flag_stays_off(
    service: ConnectionService, arming: LiveArming
) -> None:
    record = await prepared_connection(service, credentials=False)
    decision = await arming.arm(confirmation(record))
    assert (decision.allowed, decision.rule) == (False, "credentials")
    assert decision.message == f"live trading: no API key is stored for {record.name}; add one and test it"
    assert not (await service.get(record.id)).is_live_trade and not arming.is_armed(record.id)


@pytest.mark.asyncio
async def test_a_flag_turned_off_elsewhere_revokes_the_confirmation(
    service: ConnectionService, arming: LiveArming
) -> None:
    """An emergency stop clears the live flag through the connection service; switching the flag
    back on by any other path than arming does not bring the old confirmation back."""
    record = await prepared_connection(service)
    assert (await arming.arm(confirmation(record))).allowed
    await service.set_live_trade(record.id, False, reason="emergency stop")
    assert (await arming.permit(record)).rule == "live_flag"
    await service.set_live_trade(record.id, True)
    refused = await arming.permit(record)
    assert (refused.allowed, refused.rule) == (False, "confirmation")


@pytest.mark.asyncio
async def test_credentials_replaced_after_arming_stop_live_orders_until_confirmed_again(
    service: ConnectionService, arming: LiveArming
) -> None:
    """A new key needs a new test (the old key's was cleared) and a new confirmation: testing the
    new key alone does not bring back the confirmation given for the old one."""
    record = await prepared_connection(service)
    assert (await arming.arm(confirmation(record))).allowed
    assert (await arming.permit(record)).allowed

    await service.set_credentials(record.id, Credentials("key-" + uuid.uuid4().hex, "secret-new"))
    refused = await arming.permit(record)
    assert (refused.allowed, refused.rule) == (False, "connection_test")
    assert not arming.is_armed(record.id)

    await run_test_again(service, await service.get(record.id))  # the new key passes its test
    refused = await arming.permit(record)
    assert (refused.allowed, refused.rule) == (False, "confirmation")
    assert (await arming.arm(confirmation(record))).allowed  # confirming again re-arms
    assert (await arming.permit(record)).allowed


@pytest.mark.asyncio
async def test_permit_reads_the_record_and_the_keyring_again_only_after_a_change(
    service: ConnectionService, arming: LiveArming, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = await prepared_connection(service)
    assert (await arming.arm(confirmation(record))).allowed
    reads: list[str] = []
    real_get, real_credentials = service.get, service.credentials

    async def counting_get(connection_id: str) -> ConnectionRecord:
        reads.append("record")
        return await real_get(connection_id)

    async def counting_credentials(connection_id: str) -> Credentials | None:
        reads.append("keyring")
        return await real_credentials(connection_id)

    monkeypatch.setattr(service, "get", counting_get)
    monkeypatch.setattr(service, "credentials", counting_credentials)
    for _ in range(5):
        assert (await arming.permit(record)).allowed
    assert reads == ["record", "keyring"]  # once (arming changed the record), then from the cache
    reads.clear()
    for _ in range(5):
        assert (await arming.permit(record)).allowed
    assert reads == []  # cached

    await service.update(record.id, {"name": record.name + " renamed"})  # a change that does not matter
    reads.clear()  # (the service read the record for the update)
    assert (await arming.permit(record)).allowed
    assert reads == ["record", "keyring"]  # read again once, still armed
    await service.set_enabled(record.id, False)  # one that does
    refused = await arming.permit(record)
    assert (refused.allowed, refused.rule) == (False, "connection_enabled")
    assert not arming.is_armed(record.id)


@pytest.mark.asyncio
async def test_a_deleted_connection_loses_its_confirmation(
    service: ConnectionService, arming: LiveArming
) -> None:
    record = await prepared_connection(service)
    assert (await arming.arm(confirmation(record))).allowed
    await service.delete(record.id)
    assert not arming.is_armed(record.id)
    with pytest.raises(LookupError):
        await arming.permit(record)
