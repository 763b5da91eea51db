"""The headless composition root, end to end on real parts (SQLite file, OS keyring, log files)."""

import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from cts_desktop.services import build_services
from cts_desktop.storage.repositories.connections import ConnectionRepository
from cts_desktop.storage.secrets import Credentials


@pytest.mark.asyncio
async def test_services_open_a_migrated_database_in_the_isolated_home(cts_home: Path) -> None:
    services = await build_services(console_logging=False)
    try:
        assert services.paths.home == cts_home.resolve()
        assert services.database_info.journal_mode == "wal"
        assert services.database_info.path == str(services.paths.database_file)
        assert services.settings.values()  # defaults are loaded
    finally:
        await services.aclose()
    assert services.closed
    await services.aclose()  # idempotent


@pytest.mark.asyncio
async def test_log_records_reach_the_database_and_the_file(cts_home: Path) -> None:
    services = await build_services(console_logging=False)
    logging.getLogger("cts_desktop.test").warning("marker %s", "7f3a")
    await services.aclose()
    rows = sqlite3.connect(services.paths.database_file).execute("select message from system_log").fetchall()
    assert ("marker 7f3a",) in rows
    assert "marker 7f3a" in (services.paths.logs_dir / "cts-desktop.log").read_text()


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_stored_secret_appears_in_no_log_line_exception_text_or_database_byte(
    real_keyring: Any, cts_home: Path
) -> None:
    services = await build_services(console_logging=False, log_level=logging.DEBUG)
    tag = uuid.uuid4().hex[:8]
    creds = Credentials(f"APIKEY{tag}abcdef", f"APISECRET{tag}ghijkl", f"PASSPHRASE{tag}")
    secrets = [creds.api_key, creds.api_secret, creds.passphrase]
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    capture = Capture()
    services.logging.add(capture)
    connections = ConnectionRepository(services.database)
    record = await connections.create(name=f"Binance {tag}", exchange="binance")
    try:
        await services.secrets.asave(record.id, creds)
        loaded = await services.secrets.aload(record.id)
        assert loaded == creds
        app_log = logging.getLogger("cts_desktop.exchanges.test")
        app_log.info(
            "connecting %s with key %s and passphrase %s", record.id, creds.api_key, creds.passphrase
        )
        # what ccxt writes: headers and a signed URL (PITFALLS: even without verbose)
        logging.getLogger("ccxt.base.exchange").warning(
            "POST https://fapi.binance.com/fapi/v1/order?signature=%s %s",
            "ab12cd34ef56",
            {"X-MBX-APIKEY": creds.api_key},
        )
        try:
            raise PermissionError(f"binance {{'code': -2015, 'msg': 'Invalid API-key {creds.api_key}'}}")
        except PermissionError as exc:
            app_log.exception("order failed")
            exception_text = services.redactor.redact_exception(exc)
        assert "Invalid API-key ***" in exception_text
        assert not any(secret in exception_text for secret in secrets)
        assert logging.getLogger("ccxt.base.exchange").getEffectiveLevel() >= logging.INFO
    finally:
        await services.secrets.adelete(record.id)
        await services.aclose()

    assert any("with key ***" in line for line in records)  # the record itself survived redaction
    assert not [line for line in records if any(secret in line for secret in secrets)]
    files = [path for path in cts_home.rglob("*") if path.is_file()]
    assert any(path.name == "cts-desktop.db" for path in files)
    assert any(path.name == "cts-desktop.log" for path in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"secret found in {path}"
    messages = (
        sqlite3.connect(services.paths.database_file).execute("select message from system_log").fetchall()
    )
    assert any("with key ***" in message for (message,) in messages)


@pytest.mark.asyncio
async def test_services_own_the_coordinator_and_shut_the_engines_down_first(cts_home: Path) -> None:
    from cts_desktop.domain.enums import EngineState
    from cts_desktop.storage.database import Database
    from cts_desktop.storage.repositories.audit import AuditRepository
    from cts_desktop.storage.repositories.engine_state import EngineStateRepository

    services = await build_services(console_logging=False)
    await services.start()
    coordinator = services.coordinator
    assert [s.name for s in coordinator.snapshots()] == ["BingX X01", "Bybit X03", "Simulated market"]
    (simulated,) = [s for s in coordinator.snapshots() if s.exchange == "simulated"]
    await coordinator.start(simulated.connection_id)
    assert services.engine_state is EngineState.RUNNING  # the status bar's state is the coordinator's
    engine = coordinator.engine(simulated.connection_id)
    assert engine is not None
    await services.aclose()
    assert not engine.running and coordinator.closed
    # The services closed their database: reopen the file to read what the shutdown left behind.
    database = await Database.open(f"sqlite+aiosqlite:///{services.paths.database_file}")
    try:
        row = await EngineStateRepository(database).get(simulated.connection_id)
        assert row is not None and (row.state, row.reason) == (EngineState.STOPPED, "application shutdown")
        entries = [e for e in await AuditRepository(database).recent(50) if e.entity_type == "engine"]
        assert (entries[0].actor, entries[0].action) == ("shutdown", "engine.stopped")
        global_row = await EngineStateRepository(database).get(None)
        assert global_row is not None and global_row.state is EngineState.STOPPED
    finally:
        await database.close()


@pytest.mark.asyncio
async def test_the_go_live_checklist_is_the_live_guards_fed_with_the_paper_record(cts_home: Path) -> None:
    from datetime import UTC, datetime

    from cts_desktop.engine.live_guard import build_checklist

    services = await build_services(console_logging=False)
    try:
        await services.start()
        (bybit,) = [r for r in await services.connections.list() if r.exchange == "bybit"]
        checklist = await services.coordinator.go_live_checklist(bybit.id)
        expected = build_checklist(
            bybit,
            services.settings.values(),
            first_paper_trade_at=None,
            paper_trade_count=0,
            now=datetime.now(UTC),
        )
        assert [item.key for item in checklist.items] == [item.key for item in expected.items]
        assert not checklist.ready  # no paper trade yet, nothing ticked
    finally:
        await services.aclose()
