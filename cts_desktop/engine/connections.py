"""Exchange connections as a service: the rules of DOMAIN §5 in one place, credentials in the keyring.

Every change goes through here (the UI, the command line, the engine), so the rules cannot be
bypassed: live trade requires an enabled connection, disabling forces live and preset trade
off, a credentials or settings change while the connection's engine runs marks it "restart
required", and every change is audited without ever recording a secret.
"""

from __future__ import annotations

import builtins
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cts_desktop.domain.enums import Actor
from cts_desktop.domain.market import ApiType, MarginMode, PositionMode
from cts_desktop.engine.events import Event, EventBus
from cts_desktop.exchanges.catalog import EXCHANGES, is_live_capable
from cts_desktop.storage.repositories.audit import AuditRepository
from cts_desktop.storage.repositories.connections import ConnectionRecord, ConnectionRepository
from cts_desktop.storage.secrets import Credentials, SecretStore

log = logging.getLogger(__name__)

VOLUME_FACTOR_MIN = 0.1
VOLUME_FACTOR_MAX = 10.0
VOLUME_FACTOR_STEP = 0.1
FIRST_LIVE_VOLUME_FACTOR = 0.1  # product requirement: a first live switch starts at 0.1
# The exchange catalogue is the one source of which venues exist and which are supported.
# The built-in simulated market is supported but not offered for new connections: its one
# connection is predefined (see ``ensure_predefined``).
SUPPORTED_EXCHANGES = tuple(spec.id for spec in EXCHANGES.values() if spec.supported and not spec.builtin)
BUILTIN_EXCHANGES = {spec.id: spec.display_name for spec in EXCHANGES.values() if spec.builtin}
UNSUPPORTED_EXCHANGES = {
    spec.id: f"{spec.display_name} is {spec.unsupported_reason or 'not supported yet'}"
    for spec in EXCHANGES.values()
    if not spec.supported
}

# DOMAIN §5 connection_settings defaults (PF minimums 0.6, drawdown time 12 h, trailing and
# block on, DCA off, as in the predefined templates).
DEFAULT_CONNECTION_SETTINGS: dict[str, Any] = {
    "pf_min_base_live": 0.6,
    "pf_min_main_live": 0.6,
    "pf_min_real_live": 0.6,
    "pf_min_base_preset": 0.6,
    "pf_min_main_preset": 0.6,
    "pf_min_real_preset": 0.6,
    "drawdown_time_hours": 12,
    "trailing": True,
    "block": True,
    "dca": False,
    "use_main_symbols": False,
    "arrangement_type": "volume_24h",
    "arrangement_count": 10,
    "volume_range_pct": 20,
    "target_positions": 50,
}

# Fields whose change needs a running engine to restart before it takes effect.
RESTART_FIELDS = frozenset(
    {"exchange", "api_type", "margin_mode", "position_mode", "is_testnet", "settings", "connection_method"}
)
EDITABLE_FIELDS = RESTART_FIELDS | {"name", "live_volume_factor", "preset_volume_factor", "preset_type_id"}


# Product requirement: Bybit X03 and BingX X01 exist from the first start (templates in the catalogue).
# The "Simulated market" connection joins them so that, with no account and no network, there is
# still an engine that runs (paper only, on the seeded simulated market).
SIMULATED = "simulated"
PREDEFINED_EXCHANGES = ("bybit", "bingx", SIMULATED)


@dataclass(frozen=True, slots=True)
class ConnectionChanged(Event):
    """A connection was created, updated or deleted (``change``), for panels and engines."""

    connection_id: str
    change: str
    restart_required: bool = False


class ConnectionRuleError(ValueError):
    """A change that breaks a connection rule; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class ConnectionDraft:
    """What the add/edit dialog submits (never the credentials, which travel separately)."""

    name: str
    exchange: str
    api_type: ApiType = ApiType.PERPETUAL_FUTURES
    margin_mode: MarginMode = MarginMode.CROSS
    position_mode: PositionMode = PositionMode.HEDGE
    is_testnet: bool = False
    live_volume_factor: float = 1.0
    preset_volume_factor: float = 1.0
    settings: Mapping[str, Any] = field(default_factory=dict)


def validate_volume_factor(label: str, value: float) -> float:
    """0.1–10 in steps of 0.1 (DOMAIN §6 Exchange); returns the value rounded to the grid."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not VOLUME_FACTOR_MIN - 1e-9 <= value <= VOLUME_FACTOR_MAX + 1e-9
    ):
        raise ConnectionRuleError(
            f"{label} must be between {VOLUME_FACTOR_MIN} and {VOLUME_FACTOR_MAX} in steps of "
            f"{VOLUME_FACTOR_STEP}; got {value!r}"
        )
    steps = value / VOLUME_FACTOR_STEP
    if abs(steps - round(steps)) > 1e-6:
        raise ConnectionRuleError(
            f"{label} must be a multiple of {VOLUME_FACTOR_STEP} between {VOLUME_FACTOR_MIN} and "
            f"{VOLUME_FACTOR_MAX}; got {value!r}"
        )
    return round(round(steps) * VOLUME_FACTOR_STEP, 10)


def validate_exchange(exchange: str) -> str:
    exchange = exchange.strip().lower()
    if exchange in BUILTIN_EXCHANGES:
        raise ConnectionRuleError(
            f"the {BUILTIN_EXCHANGES[exchange]} is built into cts-desktop: its one connection is created "
            "on first start and cannot be added again or chosen for another connection"
        )
    if exchange in UNSUPPORTED_EXCHANGES:
        raise ConnectionRuleError(UNSUPPORTED_EXCHANGES[exchange])
    if exchange not in SUPPORTED_EXCHANGES:
        raise ConnectionRuleError(
            f"unknown exchange {exchange!r}; supported: {', '.join(SUPPORTED_EXCHANGES)}"
        )
    return exchange


def _public(record: ConnectionRecord) -> dict[str, Any]:
    """The audit view of a connection: every column (none of them is a secret)."""
    return {
        "name": record.name,
        "exchange": record.exchange,
        "api_type": record.api_type,
        "margin_mode": record.margin_mode,
        "position_mode": record.position_mode,
        "is_testnet": record.is_testnet,
        "is_enabled": record.is_enabled,
        "is_live_trade": record.is_live_trade,
        "is_preset_trade": record.is_preset_trade,
        "live_volume_factor": record.live_volume_factor,
        "preset_volume_factor": record.preset_volume_factor,
        "restart_required": record.restart_required,
    }


class ConnectionService:
    def __init__(
        self,
        repository: ConnectionRepository,
        secrets: SecretStore,
        audit: AuditRepository,
        bus: EventBus,
        *,
        is_engine_running: Callable[[str], bool] = lambda _connection_id: False,
    ) -> None:
        self._repository = repository
        self._secrets = secrets
        self._audit = audit
        self._bus = bus
        self._is_engine_running = is_engine_running

    def set_engine_probe(self, is_engine_running: Callable[[str], bool]) -> None:
        """The coordinator tells the service which engines run (it is built after the service)."""
        self._is_engine_running = is_engine_running

    async def list(self) -> list[ConnectionRecord]:
        return await self._repository.list()

    async def get(self, connection_id: str) -> ConnectionRecord:
        record = await self._repository.get(connection_id)
        if record is None:
            raise LookupError(f"no connection with id {connection_id!r}")
        return record

    async def ensure_predefined(self) -> builtins.list[ConnectionRecord]:
        """First start only (no connection exists yet): create Bybit X03, BingX X01 and the
        Simulated market.

        They are enabled and paper-only; a user who later deletes them does not get them back.
        """
        existing = await self._repository.list()
        if existing:
            return await self._ensure_builtin(existing)
        return await self._create_predefined(PREDEFINED_EXCHANGES, "predefined on first start")

    async def _ensure_builtin(
        self, existing: builtins.list[ConnectionRecord]
    ) -> builtins.list[ConnectionRecord]:
        """A database from before the Simulated market existed gets it once (so the offline app has
        an engine); one the user deleted is not brought back (the audit log remembers)."""
        if any(record.exchange == SIMULATED for record in existing):
            return []
        deleted = await self._audit.recent(10_000, action="connection.delete")
        if any((entry.before or {}).get("exchange") == SIMULATED for entry in deleted):
            return []
        return await self._create_predefined((SIMULATED,), "built-in connection added on upgrade")

    async def _create_predefined(
        self, exchanges: Iterable[str], reason: str
    ) -> builtins.list[ConnectionRecord]:
        created = []
        for exchange in exchanges:
            template = EXCHANGES[exchange].template
            assert template is not None, f"the catalogue has no template for {exchange}"
            settings = dict(
                DEFAULT_CONNECTION_SETTINGS,
                max_leverage=template.max_leverage,
                trailing=template.trailing,
                block=template.block,
                dca=template.dca,
            )
            record = await self._repository.create(
                name=template.name,
                exchange=exchange,
                api_type=template.api_type.value,
                margin_mode=template.margin_mode.value,
                position_mode=template.position_mode.value,
                is_testnet=template.is_testnet,
                is_enabled=True,
                is_predefined=True,
                settings=settings,
            )
            await self._record(Actor.SYSTEM, "connection.create", record, reason=reason)
            created.append(record)
        return created

    async def create(
        self, draft: ConnectionDraft, credentials: Credentials | None = None, *, actor: Actor = Actor.USER
    ) -> ConnectionRecord:
        name = draft.name.strip()
        if not name:
            raise ConnectionRuleError("a connection needs a name")
        exchange = validate_exchange(draft.exchange)
        live = validate_volume_factor("Live trade volume factor", draft.live_volume_factor)
        preset = validate_volume_factor("Preset trade volume factor", draft.preset_volume_factor)
        if credentials is not None:
            # Before the row exists: without a keyring there is nothing half-created to clean up.
            self._check_credentials(exchange, credentials)
        record = await self._repository.create(
            name=name,
            exchange=exchange,
            api_type=ApiType(draft.api_type).value,
            margin_mode=MarginMode(draft.margin_mode).value,
            position_mode=PositionMode(draft.position_mode).value,
            is_testnet=draft.is_testnet,
            live_volume_factor=live,
            preset_volume_factor=preset,
            settings={**DEFAULT_CONNECTION_SETTINGS, **dict(draft.settings)},
        )
        if credentials is not None:
            try:
                await self._secrets.asave(record.id, credentials)
            except Exception:
                await self._repository.delete(record.id)
                raise
        await self._record(actor, "connection.create", record)
        return record

    async def update(
        self, connection_id: str, changes: Mapping[str, Any], *, actor: Actor = Actor.USER
    ) -> ConnectionRecord:
        """Edit settings fields; enable/disable and the live/preset flags have their own methods."""
        unknown = set(changes) - EDITABLE_FIELDS
        if unknown:
            raise ConnectionRuleError(
                f"these fields cannot be edited here: {', '.join(sorted(unknown))} "
                "(use enable/disable and the live or preset trade switches)"
            )
        before = await self.get(connection_id)
        values = dict(changes)
        if "name" in values and not str(values["name"]).strip():
            raise ConnectionRuleError("a connection needs a name")
        if "exchange" in values:
            values["exchange"] = validate_exchange(str(values["exchange"]))
        for key, label in (
            ("live_volume_factor", "Live trade volume factor"),
            ("preset_volume_factor", "Preset trade volume factor"),
        ):
            if key in values:
                values[key] = validate_volume_factor(label, values[key])
        for key, kind in (
            ("api_type", ApiType),
            ("margin_mode", MarginMode),
            ("position_mode", PositionMode),
        ):
            if key in values:
                try:
                    values[key] = kind(values[key]).value
                except ValueError:
                    allowed = ", ".join(member.value for member in kind)
                    raise ConnectionRuleError(
                        f"{key} must be one of {allowed}; got {values[key]!r}"
                    ) from None
        if "settings" in values:
            values["settings"] = {**before.settings, **dict(values["settings"])}
        changed = {key for key, value in values.items() if getattr(before, key) != value}
        if not changed:
            return before
        if changed & RESTART_FIELDS and self._is_engine_running(connection_id):
            values["restart_required"] = True
        record = await self._repository.update(connection_id, **values)
        await self._record(actor, "connection.update", record, before=before)
        return record

    async def set_enabled(
        self, connection_id: str, enabled: bool, *, actor: Actor = Actor.USER
    ) -> ConnectionRecord:
        """Disabling also turns live and preset trade off (DOMAIN §5)."""
        before = await self.get(connection_id)
        values: dict[str, Any] = {"is_enabled": enabled}
        if not enabled:
            values.update(is_live_trade=False, is_preset_trade=False)
        record = await self._repository.update(connection_id, **values)
        await self._record(
            actor, "connection.enable" if enabled else "connection.disable", record, before=before
        )
        return record

    async def set_preset_trade(
        self, connection_id: str, enabled: bool, *, actor: Actor = Actor.USER
    ) -> ConnectionRecord:
        before = await self.get(connection_id)
        if enabled and not before.is_enabled:
            raise ConnectionRuleError(f"enable the connection {before.name} before turning preset trade on")
        record = await self._repository.update(connection_id, is_preset_trade=enabled)
        await self._record(actor, "connection.preset_trade", record, before=before)
        return record

    async def set_live_trade(
        self, connection_id: str, enabled: bool, *, actor: Actor = Actor.USER, reason: str = ""
    ) -> ConnectionRecord:
        """The flag only; the confirmed go-live path (credentials tested, checklist) sits in front of it.

        The first time a connection goes live its live volume factor starts at 0.1.
        """
        before = await self.get(connection_id)
        values: dict[str, Any] = {"is_live_trade": enabled}
        if enabled:
            if not is_live_capable(before.exchange):
                raise ConnectionRuleError(
                    f"{before.name} trades on the simulated market and is paper only: it can never go live"
                )
            if not before.is_enabled:
                raise ConnectionRuleError(f"enable the connection {before.name} before turning live trade on")
            if not before.settings.get("has_been_live"):
                values["live_volume_factor"] = min(before.live_volume_factor, FIRST_LIVE_VOLUME_FACTOR)
                values["settings"] = {**before.settings, "has_been_live": True}
        record = await self._repository.update(connection_id, **values)
        await self._record(actor, "connection.live_trade", record, before=before, reason=reason)
        return record

    async def set_credentials(
        self, connection_id: str, credentials: Credentials, *, actor: Actor = Actor.USER
    ) -> ConnectionRecord:
        """Store new credentials in the keyring; a running engine must restart to use them.

        The stored result of the last connection test is cleared: it proved the *previous* key,
        so the live guard must not trust it for this one (the new key has to be tested).
        """
        record = await self.get(connection_id)
        spec = EXCHANGES.get(record.exchange)
        if spec is not None and not spec.needs_credentials:
            raise ConnectionRuleError(
                f"{record.name} needs no API key: the {spec.display_name} has no account to sign in to"
            )
        self._check_credentials(record.exchange, credentials)
        await self._secrets.asave(connection_id, credentials)
        values: dict[str, Any] = {
            "last_test_status": None,
            "last_test_at": None,
            "last_test_log": None,
            "last_test_balance": None,
        }
        if self._is_engine_running(connection_id):
            values["restart_required"] = True
        record = await self._repository.update(connection_id, **values)
        await self._record(actor, "connection.credentials", record, reason="credentials replaced")
        return record

    async def has_credentials(self, connection_id: str) -> bool:
        return await self._secrets.aload(connection_id) is not None

    async def credentials(self, connection_id: str) -> Credentials | None:
        return await self._secrets.aload(connection_id)

    async def mark_restarted(self, connection_id: str) -> ConnectionRecord:
        return await self._repository.update(connection_id, restart_required=False)

    async def record_test_result(
        self,
        connection_id: str,
        *,
        status: str,
        at: Any,
        balance: float | None,
        log_text: str,
        capabilities: builtins.list[str],
    ) -> ConnectionRecord:
        record = await self._repository.update(
            connection_id,
            last_test_status=status,
            last_test_at=at,
            last_test_balance=balance,
            last_test_log=log_text,
            api_capabilities=capabilities,
        )
        event = ConnectionChanged(
            connection_id=connection_id, change="tested", restart_required=record.restart_required
        )
        self._bus.publish(event)
        return record

    async def delete(self, connection_id: str, *, actor: Actor = Actor.USER) -> None:
        """Delete the connection and its keyring entries; refused while it has orders or positions."""
        record = await self.get(connection_id)
        await self._repository.delete(connection_id)  # raises ConnectionInUseError first
        status = self._secrets.status()
        if status.available:
            await self._secrets.adelete(connection_id)
        await self._audit.record(
            actor=actor.value,
            action="connection.delete",
            entity_type="connection",
            entity_id=connection_id,
            connection_id=connection_id,
            before=_public(record),
        )
        self._bus.publish(ConnectionChanged(connection_id=connection_id, change="deleted"))

    def _check_credentials(self, exchange: str, credentials: Credentials) -> None:
        if not credentials.api_key.strip() or not credentials.api_secret.strip():
            raise ConnectionRuleError("both the API key and the API secret are needed")
        if exchange == "okx" and not (credentials.passphrase or "").strip():
            raise ConnectionRuleError("OKX API keys need their passphrase as well")

    async def _record(
        self,
        actor: Actor,
        action: str,
        record: ConnectionRecord,
        *,
        before: ConnectionRecord | None = None,
        reason: str = "",
    ) -> None:
        await self._audit.record(
            actor=actor.value,
            action=action,
            entity_type="connection",
            entity_id=record.id,
            connection_id=record.id,
            reason=reason,
            before=_public(before) if before is not None else None,
            after=_public(record),
        )
        change = "created" if action == "connection.create" else "updated"
        self._bus.publish(
            ConnectionChanged(
                connection_id=record.id, change=change, restart_required=record.restart_required
            )
        )
        log.info("connection %s (%s): %s by %s", record.name, record.exchange, action, actor.value)
