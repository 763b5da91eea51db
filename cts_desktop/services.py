"""The headless half of the composition root: everything the GUI, the self-test and a headless
run share. Built once per process; nothing else constructs these objects.

No Qt here: ``app.py`` adds the event loop and the window on top of what this returns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cts_desktop.domain.engine import desk_mode
from cts_desktop.domain.enums import EngineState, TradingMode
from cts_desktop.engine.connection_test import ConnectionTester
from cts_desktop.engine.connections import ConnectionService
from cts_desktop.engine.coordinator import Coordinator
from cts_desktop.engine.events import EventBus
from cts_desktop.engine.execution_component import ExecutionTradingComponent
from cts_desktop.engine.live_arming import LiveArming
from cts_desktop.engine.market_bus import MarketBus
from cts_desktop.engine.market_service import MarketService
from cts_desktop.engine.settings_service import SettingsService
from cts_desktop.engine.venues import ReplayFeed, VenueFactory
from cts_desktop.exchanges.factory import create_venue_for_connection
from cts_desktop.exchanges.simulated import DEFAULT_SIMULATED_SYMBOLS, SimulatedExchange
from cts_desktop.logging_setup import LoggingHandles, configure_logging
from cts_desktop.paths import AppPaths, resolve_paths
from cts_desktop.redaction import Redactor
from cts_desktop.storage.database import Database, DatabaseInfo, resolve_database_url
from cts_desktop.storage.log_sink import DatabaseLogHandler
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRepository
from cts_desktop.storage.repositories.engine_state import EngineStateRepository
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
    coordinator: Coordinator
    live_arming: LiveArming
    startup_warnings: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def mode(self) -> TradingMode:
        """PAPER, or LIVE while any live engine is up (what the status bar shows)."""
        return desk_mode(self.coordinator.snapshots())

    @property
    def engine_state(self) -> EngineState:
        """The global engine state (the status bar's), owned by the coordinator."""
        return self.coordinator.global_state

    async def start(self, *, auto_start: bool | None = None) -> None:
        """Start the background parts (the market stream), then restore the engines: states left
        running by a crash become stopped, and the enabled connections start when ``auto_start``
        says so (None: the ``engine.auto_start`` setting). The window may already be showing."""
        await self.market.start()
        await self.coordinator.restore(auto_start=auto_start)

    async def aclose(self) -> None:
        """Graceful shutdown: engines first (they use the market, the venues and the database),
        then the stream, pending log writes and the database. Safe twice."""
        if self.closed:
            return
        self.closed = True
        log.info("shutting down")
        try:
            await self.coordinator.shutdown()
        except Exception:
            log.exception("the engines did not stop cleanly")
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
    replay: ReplayFeed | None = None,
    force_paper: bool = False,
) -> AppServices:
    """Open storage, settings and secrets; raise ``DatabaseError`` with a clear message on a bad database.

    ``replay`` makes every engine's market data come from those candle files (headless runs and
    crash tests); ``force_paper`` runs every engine in paper mode whatever its connection says.
    """
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
    venues = VenueFactory(
        database=database,
        redactor=redactor,
        credentials=connections.credentials,
        simulated=simulated,
        replay=replay,
    )
    # Live orders: only through a confirmation given in this session (LiveArming), checked again
    # before a live engine starts and before every live order.
    arming = LiveArming(connections, bus)
    coordinator = Coordinator(
        connections=connections,
        settings=settings,
        states=EngineStateRepository(database),
        audit=audit,
        bus=bus,
        market_bus=market.bus,
        venue_factory=venues,
        trading_factory=ExecutionTradingComponent.factory(live_permission=arming.permit),
        live_permitted=arming.permit,
        force_paper=force_paper,
        database=database,
        redactor=redactor,
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
        coordinator=coordinator,
        live_arming=arming,
        startup_warnings=warnings,
    )
