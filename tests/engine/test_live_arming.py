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


@pytest_asyncio.fixture
async def service(tmp_path: Path, real_keyring: Any) -> AsyncIterator[ConnectionService]:
    db = await Database.open(str(tmp_path / "cts.db"))
    secrets = SecretStore(Redactor(), real_keyring)
    yield ConnectionService(ConnectionRepository(db), secrets, AuditRepository(db), EventBus())
    await db.close()


async def prepared_connection(service: ConnectionService, *, credentials: bool = True) -> ConnectionRecord:
    record = await service.create(ConnectionDraft(name=f"Bybit {uuid.uuid4().hex[:6]}", exchange="bybit"))
    await service.set_enabled(record.id, True)
    if credentials:
        await service.set_credentials(
            record.id, Credentials("key-" + uuid.uuid4().hex, "secret-" + uuid.uuid4().hex)
        )
    venue = paper_venue(service._repository._database, f"t-{record.id}")
    try:
        await run_test(service, record, venue)
    finally:
        await venue.close()
    return await service.get(record.id)


def confirmation(record: ConnectionRecord, **changes: Any) -> LiveConfirmation:
    return dataclasses.replace(LiveConfirmation(record.id, record.exchange, 10_000.0, "Bybit"), **changes)


@pytest.mark.asyncio
async def test_arming_sets_the_flag_and_permits_live_orders_in_this_session_only(
    service: ConnectionService,
) -> None:
    record = await prepared_connection(service)
    arming = LiveArming(service)
    assert not (await arming.permit(record)).allowed
    decision = await arming.arm(confirmation(record))
    assert decision.allowed, decision.message
    assert (await service.get(record.id)).is_live_trade
    assert (await arming.permit(record)).allowed
    # A new session (restart): the flag is stored, the confirmation is not.
    restarted = LiveArming(service)
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
    service: ConnectionService, change: dict[str, Any], rule: str
) -> None:
    record = await prepared_connection(service)
    decision = await LiveArming(service).arm(confirmation(record, **change))
    assert (decision.allowed, decision.rule) == (False, rule)
    assert not (await service.get(record.id)).is_live_trade


@pytest.mark.asyncio
async def test_without_stored_credentials_the_flag_stays_off(service: ConnectionService) -> None:
    record = await prepared_connection(service, credentials=False)
    decision = await LiveArming(service).arm(confirmation(record))
    assert not decision.allowed and decision.rule in {"credentials", "connection_test"}
    assert not (await service.get(record.id)).is_live_trade


@pytest.mark.asyncio
async def test_a_flag_turned_off_elsewhere_revokes_the_confirmation(service: ConnectionService) -> None:
    """An emergency stop clears the live flag through the connection service; switching the flag
    back on by any other path than arming does not bring the old confirmation back."""
    record = await prepared_connection(service)
    arming = LiveArming(service)
    assert (await arming.arm(confirmation(record))).allowed
    await service.set_live_trade(record.id, False, reason="emergency stop")
    assert (await arming.permit(record)).rule == "live_flag"
    await service.set_live_trade(record.id, True)
    refused = await arming.permit(record)
    assert (refused.allowed, refused.rule) == (False, "confirmation")
