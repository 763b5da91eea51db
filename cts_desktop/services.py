"""The headless half of the composition root: everything the GUI, the self-test and a headless
run share. Built once per process; nothing else constructs these objects.

No Qt here: ``app.py`` adds the event loop and the window on top of what this returns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.engine.connection_test import ConnectionTester
from cts_desktop.engine.connections import ConnectionService
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.market_service import MarketService
from cts_desktop.engine.settings_service import SettingsService
from cts_desktop.exchanges.factory import create_venue_for_connection
from cts_desktop.exchanges.simulated import DEFAULT_SIMULATED_SYMBOLS, SimulatedExchange
from cts_desktop.logging_setup import LoggingHandles, configure_logging
from cts_desktop.paths import AppPaths, resolve_paths
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database, DatabaseInfo, resolve_database_url
from cts_desktop.storage.log_sink import DatabaseLogHandler
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRepository
from cts_desktop.storage.repositories.settings import SettingsRepository
from cts_desktop.storage.repositories.system_log import SystemLogRepository
from cts_desktop.storage.secrets import KeyringStatus, SecretStore

log = logging.getLogger(__name__)

SIMULATED_SEED = 20_240_601


@dataclass(slots=True)
class AppServices:
    paths: AppPaths
    redactor: Redactor
    logging: LoggingHandles
    database: Database
    database_info: DatabaseInfo
    bus: EventBus
    settings: SettingsService
    secrets: SecretStore
    keyring: KeyringStatus
    audit: AuditRepository
    log_sink: DatabaseLogHandler
    market: MarketService
    connections: ConnectionService
    tester: ConnectionTester
    mode: TradingMode = TradingMode.PAPER
    engine_state: EngineState = EngineState.IDLE
    startup_warnings: list[str] = field(default_factory=list)
    closed: bool = False

    async def start(self) -> None:
        """Start the background parts (the market stream); the window may already be showing."""
        await self.market.start()

    async def aclose(self) -> None:
        """Graceful shutdown: stop streams, flush pending writes, close the database. Safe twice."""
        if self.closed:
            return
        self.closed = True
        log.info("shutting down")
        try:
            await self.market.stop()
            await self.market.venue.close()
        except Exception:
            log.exception("the market stream did not stop cleanly")
        await self.log_sink.aclose()
        await self.database.close()
        self.logging.close()


async def build_services(
    *,
    db_url: str | None = None,
    env: Mapping[str, str] | None = None,
    console_logging: bool = True,
    log_level: int = logging.INFO,
) -> AppServices:
    """Open storage, settings and secrets; raise ``DatabaseError`` with a clear message on a bad database."""
    environ = os.environ if env is None else env
    paths = resolve_paths(environ).ensure()
    redactor = Redactor()
    handles = configure_logging(paths, redactor, level=log_level, console=console_logging)
    try:
        url = resolve_database_url(db_url, environ, paths)
        database = await Database.open(url, backup_dir=paths.backups_dir)
    except Exception:
        handles.close()
        raise
    log_sink = DatabaseLogHandler(SystemLogRepository(database))
    handles.add(log_sink)
    log_sink.start()
    bus = EventBus()
    settings = SettingsService(SettingsRepository(database), bus)
    warnings = [str(error) for error in await settings.load()]
    secrets = SecretStore(redactor)
    keyring_status = secrets.status()
    if not keyring_status.available:
        warnings.append(f"keyring: {keyring_status.error}")
        log.warning(
            "no secure keyring backend (%s): live connections cannot be added", keyring_status.backend
        )
    info = await database.info()
    log.info("database %s at revision %s", info.url, info.revision)
    audit = AuditRepository(database)
    connections = ConnectionService(ConnectionRepository(database), secrets, audit, bus)
    for record in await connections.ensure_predefined():
        log.info("created the predefined connection %s (paper only, no API key yet)", record.name)
    # The offline default market: always available, so paper mode works without any account.
    simulated = SimulatedExchange(seed=SIMULATED_SEED)
    market = MarketService(MarketBus(bus), simulated, [spec.symbol for spec in DEFAULT_SIMULATED_SYMBOLS])
    tester = ConnectionTester(
        connections, lambda record, creds: create_venue_for_connection(record, creds, redactor)
    )
    return AppServices(
        paths=paths,
        redactor=redactor,
        logging=handles,
        database=database,
        database_info=info,
        bus=bus,
        settings=settings,
        secrets=secrets,
        keyring=keyring_status,
        audit=audit,
        log_sink=log_sink,
        market=market,
        connections=connections,
        tester=tester,
        startup_warnings=warnings,
    )
