"""The relational schema: one table per concept, a type column plus JSON parameters (D24).

The original kept about 70 tables, many of them per-type copies of one shape, and its schema
contradicted its code (integer vs text connection ids, ``side`` vs ``direction``). Here:

* Entities have text UUID primary keys, so ids can be created before the row is written (an
  order's intent is recorded before it is sent) and never collide across databases.
  Append-only logs use integer keys: nothing refers to them and they are written in bulk.
* Every datetime is timezone-aware UTC (:class:`UTCDateTime`); naive datetimes are refused,
  because a local time stored as UTC silently shifts every report by the UTC offset.
* Closed vocabularies are text with a CHECK constraint, not native enums: adding a value is
  then one migration on both SQLite and PostgreSQL, and the database itself refuses a typo.
* Tables holding money history (orders, fills, positions) refer to ``connections`` with
  ``ON DELETE RESTRICT``: deleting a connection must never take its trading record with it.
* No column holds an API key, secret or passphrase: those live in the OS keyring only.

The Alembic migrations under ``migrations/versions`` are handwritten copies of this file;
``tests/storage/test_migrations.py`` proves they produce exactly these tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

from cts_desktop.domain.enums import EngineState, TradingMode

# Stable constraint names: Alembic can only alter or drop a constraint it can name, and SQLite
# batch migrations rebuild tables, so an unnamed constraint would get a different name each time.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Closed vocabularies. The migrations repeat these values literally (a migration is a frozen
# snapshot and must not change when this module does).
ENGINE_STATES: tuple[str, ...] = tuple(state.value for state in EngineState)
TRADING_MODES: tuple[str, ...] = tuple(mode.value for mode in TradingMode)
MARGIN_MODES: tuple[str, ...] = ("cross", "isolated")
POSITION_MODES: tuple[str, ...] = ("hedge", "one_way")
SIGNAL_MODES: tuple[str, ...] = ("main", "preset")
DIRECTIONS: tuple[str, ...] = ("long", "short")
SET_LEVELS: tuple[str, ...] = ("base", "main", "real", "preset")
ORDER_SIDES: tuple[str, ...] = ("buy", "sell")
ORDER_TYPES: tuple[str, ...] = ("market", "limit", "stop_loss", "take_profit")
TIMES_IN_FORCE: tuple[str, ...] = ("GTC", "IOC", "FOK")
ORDER_STATUSES: tuple[str, ...] = (
    "pending_create",
    "open",
    "partially_filled",
    "pending_cancel",
    "filled",
    "cancelled",
    "rejected",
    "failed",
    "lost",
)

TP_SL_MODES: tuple[str, ...] = ("attached", "engine")
"""How an order's take-profit/stop-loss is carried: attached to it on the exchange, or placed by
the engine as separate reduce-only orders once the entry has filled."""

GLOBAL_ENGINE_SCOPE = "global"
"""``engine_states.scope`` of the global row; connection rows use the connection id."""

ID_LENGTH = 36


def new_id() -> str:
    """A text UUID (D24): generated client-side so callers know the id before the insert."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


def one_of(column: str, values: Iterable[str], name: str | None = None) -> CheckConstraint:
    """A CHECK that ``column`` holds one of ``values`` (NULL passes, as SQL defines)."""
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend.

    SQLite has no timezone type: SQLAlchemy stores the wall-clock digits and returns naive
    values. Converting to UTC on the way in and tagging UTC on the way out gives the same
    aware values from SQLite and PostgreSQL, and the stored text sorts chronologically.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware (UTC) datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON that stores Python None as SQL NULL, for optional documents (audit before/after).
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _id_column() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)


def _connection_fk(ondelete: str, *, nullable: bool = False) -> Mapped[Any]:
    return mapped_column(
        String(ID_LENGTH), ForeignKey("connections.id", ondelete=ondelete), nullable=nullable
    )


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utc_now)


def _updated_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utc_now, onupdate=utc_now)


# --------------------------------------------------------------------------- 0001: core


class Setting(Base):
    """Validated application settings; ``value`` is any JSON document."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = _updated_at()
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)


class Connection(Base):
    """An exchange account as configured by the user (DOMAIN §5), without its credentials."""

    __tablename__ = "connections"
    __table_args__ = (
        one_of("margin_mode", MARGIN_MODES),
        one_of("position_mode", POSITION_MODES),
        # DOMAIN §5: live trade requires the connection to be enabled, and disabling it forces
        # live and preset trade off. Enforced here so no code path can half-apply it.
        CheckConstraint(
            "is_enabled OR NOT (is_live_trade OR is_preset_trade)", name="trading_requires_enabled"
        ),
    )

    id: Mapped[str] = _id_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    exchange: Mapped[str] = mapped_column(String(32), nullable=False)
    api_type: Mapped[str] = mapped_column(String(32), nullable=False)
    connection_method: Mapped[str] = mapped_column(String(32), nullable=False)
    margin_mode: Mapped[str] = mapped_column(String(16), nullable=False, default="cross")
    position_mode: Mapped[str] = mapped_column(String(16), nullable=False, default="hedge")
    is_testnet: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_live_trade: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_preset_trade: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_predefined: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    live_volume_factor: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    preset_volume_factor: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    preset_type_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    last_test_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_test_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_test_balance: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_test_log: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_capabilities: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    restart_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class EngineStateRow(Base):
    """The one persisted engine state (D15): one row per connection plus one global row.

    ``scope`` is the primary key, equal to the connection id or ``'global'``: a nullable
    ``connection_id`` alone cannot be unique (SQL treats NULLs as distinct), and a partial
    unique index is not portable. The CHECK keeps ``scope`` and ``connection_id`` in step.
    """

    __tablename__ = "engine_states"
    __table_args__ = (
        one_of("state", ENGINE_STATES),
        CheckConstraint(
            f"(connection_id IS NULL AND scope = '{GLOBAL_ENGINE_SCOPE}') OR scope = connection_id",
            name="scope_matches_connection",
        ),
    )

    scope: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    # Engine state is derived from the connection: it goes when the connection goes.
    connection_id: Mapped[str | None] = _connection_fk("CASCADE", nullable=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[datetime] = _updated_at()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AuditLog(Base):
    """Who (actor), what (action, entity, before/after), why (reason) and when of each change.

    ``connection_id`` deliberately has no foreign key: the log is append-only history and must
    outlive what it describes, including the record of a connection's own deletion.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "entity_type", "entity_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)
    actor: Mapped[str] = mapped_column(String(32), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(64), nullable=False)
    entity_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    connection_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")


class SystemLog(Base):
    """Application log records kept for the log panel and for support.

    ``level`` is the level name (``"WARNING"``), readable in any SQL tool; the repository maps a
    numeric threshold to names. No foreign key, for the same reason as the audit log.
    """

    __tablename__ = "system_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    logger: Mapped[str] = mapped_column(String(128), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    connection_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)


# --------------------------------------------------------------------------- 0002: trading


class Candle(Base):
    """OHLCV bars. The natural key is the primary key: candles are bulk data, and a surrogate
    id would only add an index that no query uses."""

    __tablename__ = "candles"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[float] = mapped_column(Float, nullable=False)
    high: Mapped[float] = mapped_column(Float, nullable=False)
    low: Mapped[float] = mapped_column(Float, nullable=False)
    close: Mapped[float] = mapped_column(Float, nullable=False)
    volume: Mapped[float] = mapped_column(Float, nullable=False)


class IndicationSignal(Base):
    """Every indication type in one table (the original had one table per type)."""

    __tablename__ = "indication_signals"
    __table_args__ = (
        one_of("mode", SIGNAL_MODES),
        one_of("direction", DIRECTIONS),
        Index(None, "connection_id", "symbol", "calculated_at"),
    )

    id: Mapped[str] = _id_column()
    connection_id: Mapped[str] = _connection_fk("CASCADE")
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    indication_type: Mapped[str] = mapped_column(String(32), nullable=False)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    profit_factor: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    calculated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)


class PseudoSet(Base):
    """One configuration of the position ladder (Base/Main/Real/Preset) and its running
    statistics; the individual simulated entries are :class:`PseudoEntry` rows."""

    __tablename__ = "pseudo_sets"
    __table_args__ = (
        one_of("level", SET_LEVELS),
        one_of("direction", DIRECTIONS),
        UniqueConstraint("connection_id", "symbol", "level", "config_key", "direction"),
    )

    id: Mapped[str] = _id_column()
    connection_id: Mapped[str] = _connection_fk("CASCADE")
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    level: Mapped[str] = mapped_column(String(8), nullable=False)
    indication_type: Mapped[str] = mapped_column(String(32), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    config_key: Mapped[str] = mapped_column(String(128), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    phase: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    entries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    wins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    losses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    gross_profit: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    gross_loss: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    sum_result_steps: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    max_drawdown: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    drawdown_time_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class PseudoEntry(Base):
    """One simulated entry of a pseudo set; removed with its set (it is derived data).

    The key is an integer, not a UUID (migration 0005 says why): on SQLite it is the rowid, so the
    table needs no second B-tree for it, and it orders entries in write order."""

    __tablename__ = "pseudo_entries"
    __table_args__ = (Index(None, "set_id", "closed_at", "id"),)  # newest-first reads are index-only

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    set_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("pseudo_sets.id", ondelete="CASCADE"), nullable=False
    )
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    entry_price: Mapped[float] = mapped_column(Float, nullable=False)
    exit_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_steps: Mapped[float | None] = mapped_column(Float, nullable=True)
    pnl: Mapped[float | None] = mapped_column(Float, nullable=True)
    fees: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    close_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hold_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    drawdown_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class AccountMark(Base):
    """The reference values the risk limits measure from, per connection and trading mode.

    ``day_start_equity`` is the account's value at the first look after 00:00 UTC of ``day``, and
    ``peak_equity`` the highest value seen; both must survive a restart, or restarting the app
    during a bad day would silently reset the daily loss limit and the drawdown (D26).
    """

    __tablename__ = "account_marks"
    __table_args__ = (one_of("mode", TRADING_MODES),)

    connection_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), nullable=False)  # YYYY-MM-DD (UTC)
    day_start_equity: Mapped[float] = mapped_column(Float, nullable=False)
    peak_equity: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[datetime] = _updated_at()


class RealPosition(Base):
    """A position the engine decided to hold (paper or live); outlives the set that spawned it."""

    __tablename__ = "real_positions"
    __table_args__ = (
        one_of("side", DIRECTIONS),
        one_of("mode", TRADING_MODES),
        Index(None, "connection_id", "status"),
        Index(None, "set_id"),
    )

    id: Mapped[str] = _id_column()
    connection_id: Mapped[str] = _connection_fk("RESTRICT")
    set_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("pseudo_sets.id", ondelete="SET NULL"), nullable=True
    )
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    side: Mapped[str] = mapped_column(String(8), nullable=False)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    entry_price: Mapped[float] = mapped_column(Float, nullable=False)
    quantity: Mapped[float] = mapped_column(Float, nullable=False)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    trailing: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    realized_pnl: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    fees: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    # 0006: what the position's PnL arithmetic needs (PnL = price move × quantity × contract size).
    leverage: Mapped[float | None] = mapped_column(Float, nullable=True)
    contract_size: Mapped[float | None] = mapped_column(Float, nullable=True)


class Order(Base):
    """An order from intent to final state (hummingbot's in-flight states plus ``lost``).

    The row is written with its ``client_order_id`` *before* the request is sent, so a crash
    between sending and recording can be reconciled by looking the order up by that id.

    0006 added what execution quality needs (latencies from the intent, signed slippage in basis
    points where positive is worse for us), the request's remaining fields (stop price, position
    side, leverage, contract size), who and why, and ``parent_id``: the take-profit/stop-loss
    orders of an entry, whether the engine placed them or the venue created them (attached).
    """

    __tablename__ = "orders"
    __table_args__ = (
        one_of("side", ORDER_SIDES),
        one_of("order_type", ORDER_TYPES),
        one_of("time_in_force", TIMES_IN_FORCE),
        one_of("status", ORDER_STATUSES),
        one_of("mode", TRADING_MODES),
        one_of("position_side", DIRECTIONS),
        one_of("tp_sl_mode", TP_SL_MODES),
        UniqueConstraint("client_order_id"),
        Index(None, "connection_id", "status"),
        Index(None, "real_position_id"),
        Index(None, "parent_id"),
    )

    id: Mapped[str] = _id_column()
    client_order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    connection_id: Mapped[str] = _connection_fk("RESTRICT")
    real_position_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("real_positions.id", ondelete="RESTRICT"), nullable=True
    )
    exchange_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    side: Mapped[str] = mapped_column(String(8), nullable=False)
    order_type: Mapped[str] = mapped_column(String(16), nullable=False)
    time_in_force: Mapped[str] = mapped_column(String(8), nullable=False, default="GTC")
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    filled: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    average_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending_create")
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    reduce_only: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    intent_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = _created_at()
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = _updated_at()
    # 0006: execution details.
    parent_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("orders.id", ondelete="RESTRICT"), nullable=True
    )
    stop_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    position_side: Mapped[str | None] = mapped_column(String(8), nullable=True)
    leverage: Mapped[float | None] = mapped_column(Float, nullable=True)
    contract_size: Mapped[float | None] = mapped_column(Float, nullable=True)
    tp_sl_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ack_latency_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fill_latency_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    slippage_bps: Mapped[float | None] = mapped_column(Float, nullable=True)


class Fill(Base):
    """One execution of an order; the unique key makes replaying exchange trades idempotent."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("order_id", "exchange_trade_id"),)

    id: Mapped[str] = _id_column()
    order_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("orders.id", ondelete="RESTRICT"), nullable=False
    )
    exchange_trade_id: Mapped[str] = mapped_column(String(64), nullable=False)
    price: Mapped[float] = mapped_column(Float, nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    fee: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    fee_currency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # 0006: the gross PnL of the part of this fill that reduced a position (NULL for opening fills).
    realized_pnl: Mapped[float | None] = mapped_column(Float, nullable=True)


class ExchangePosition(Base):
    """The exchange's view of a position, mirrored for reconciliation with ``real_positions``."""

    __tablename__ = "exchange_positions"
    __table_args__ = (
        one_of("side", DIRECTIONS),
        one_of("margin_mode", MARGIN_MODES),
        Index(None, "connection_id", "symbol"),
    )

    id: Mapped[str] = _id_column()
    connection_id: Mapped[str] = _connection_fk("RESTRICT")
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    side: Mapped[str] = mapped_column(String(8), nullable=False)
    contracts: Mapped[float] = mapped_column(Float, nullable=False)
    entry_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    mark_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    leverage: Mapped[float | None] = mapped_column(Float, nullable=True)
    margin_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    unrealized_pnl: Mapped[float | None] = mapped_column(Float, nullable=True)
    realized_pnl: Mapped[float | None] = mapped_column(Float, nullable=True)
    real_position_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("real_positions.id", ondelete="SET NULL"), nullable=True
    )
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)
    sync_status: Mapped[str] = mapped_column(String(16), nullable=False, default="synced")
    sync_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sync_retry_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class BacktestRun(Base):
    __tablename__ = "backtest_runs"

    id: Mapped[str] = _id_column()
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    source: Mapped[str] = mapped_column(String(128), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BacktestResult(Base):
    """One configuration's outcome within a run; removed with the run."""

    __tablename__ = "backtest_results"
    __table_args__ = (Index(None, "run_id"),)

    id: Mapped[str] = _id_column()
    run_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("backtest_runs.id", ondelete="CASCADE"), nullable=False
    )
    config_key: Mapped[str] = mapped_column(String(128), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    trades: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    wins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    losses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    net_return: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    pf_gross: Mapped[float | None] = mapped_column(Float, nullable=True)
    avg_result_steps: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_drawdown: Mapped[float | None] = mapped_column(Float, nullable=True)


# --------------------------------------------------------------------------- 0003: paper trading

PAPER_ORDER_STATUSES: tuple[str, ...] = (
    "open",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
)
"""What the paper venue answers for an order: the venue's statuses, not our in-flight ones."""


def _paper_account_fk() -> Mapped[str]:
    # Paper state is derived from its account: deleting (resetting) an account removes it.
    return mapped_column(
        String(ID_LENGTH), ForeignKey("paper_accounts.id", ondelete="CASCADE"), nullable=False
    )


class PaperAccount(Base):
    """A simulated exchange account and the rules its matching uses.

    ``connection_id`` NULL is the default offline paper account (no exchange configured); a
    connection's paper account refers to it with RESTRICT, like every other trading record.
    Fee columns left NULL use the market's rates. Leverage and margin mode chosen per symbol
    live in :class:`PaperSymbolSetting`.
    """

    __tablename__ = "paper_accounts"
    __table_args__ = (
        one_of("position_mode", POSITION_MODES),
        one_of("margin_mode", MARGIN_MODES),
        Index(None, "connection_id"),
    )

    id: Mapped[str] = _id_column()
    connection_id: Mapped[str | None] = _connection_fk("RESTRICT", nullable=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    quote: Mapped[str] = mapped_column(String(16), nullable=False)
    starting_balance: Mapped[float] = mapped_column(Float, nullable=False)
    position_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    margin_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    maker_fee: Mapped[float | None] = mapped_column(Float, nullable=True)
    taker_fee: Mapped[float | None] = mapped_column(Float, nullable=True)
    slippage_bps: Mapped[float] = mapped_column(Float, nullable=False)
    max_slippage_bps: Mapped[float] = mapped_column(Float, nullable=False)
    volume_impact_bps: Mapped[float] = mapped_column(Float, nullable=False)
    partial_fill_ratio: Mapped[float] = mapped_column(Float, nullable=False)
    volume_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    default_leverage: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class PaperBalance(Base):
    """Free and used (reserved by orders, held as margin) amount of one asset."""

    __tablename__ = "paper_balances"

    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    asset: Mapped[str] = mapped_column(String(16), primary_key=True)
    free: Mapped[float] = mapped_column(Float, nullable=False)
    used: Mapped[float] = mapped_column(Float, nullable=False)


class PaperSymbolSetting(Base):
    """Leverage and margin mode chosen for one symbol, kept before any position exists."""

    __tablename__ = "paper_symbol_settings"
    __table_args__ = (one_of("margin_mode", MARGIN_MODES),)

    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    leverage: Mapped[float] = mapped_column(Float, nullable=False)
    margin_mode: Mapped[str] = mapped_column(String(16), nullable=False)


class PaperOrder(Base):
    """An order on the paper venue, open or final.

    ``reserved`` is what the order still holds of the balance (margin or quote for a buy, base
    for a spot sell); it is stored rather than recomputed because leverage can change after the
    order was placed. ``parent_id`` links the take-profit/stop-loss children created when an
    entry with attached TP/SL fills. The client id is unique per account, like an exchange's.
    """

    __tablename__ = "paper_orders"
    __table_args__ = (
        one_of("side", ORDER_SIDES),
        one_of("type", ORDER_TYPES),
        one_of("status", PAPER_ORDER_STATUSES),
        one_of("time_in_force", TIMES_IN_FORCE),
        one_of("position_side", DIRECTIONS),
        UniqueConstraint("account_id", "client_order_id"),
        Index(None, "account_id", "status"),
        Index(None, "parent_id"),
    )

    id: Mapped[str] = _id_column()
    account_id: Mapped[str] = _paper_account_fk()
    parent_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("paper_orders.id", ondelete="CASCADE"), nullable=True
    )
    client_order_id: Mapped[str] = mapped_column(String(72), nullable=False)
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    side: Mapped[str] = mapped_column(String(8), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    filled: Mapped[float] = mapped_column(Float, nullable=False)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    average: Mapped[float | None] = mapped_column(Float, nullable=True)
    fee: Mapped[float] = mapped_column(Float, nullable=False)
    fee_currency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reduce_only: Mapped[bool] = mapped_column(Boolean, nullable=False)
    position_side: Mapped[str | None] = mapped_column(String(8), nullable=True)
    time_in_force: Mapped[str] = mapped_column(String(8), nullable=False)
    leverage: Mapped[float | None] = mapped_column(Float, nullable=True)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    reserved: Mapped[float] = mapped_column(Float, nullable=False)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PaperFill(Base):
    """One execution of a paper order; ``realized_pnl`` is the gross PnL of the part that
    reduced a position (0 for an opening fill), so closed-trade history needs no replay.

    An append-only log, hence an integer key: it also orders the fills of one millisecond (a
    fill and the stop it triggers) in the order they happened, which a UUID cannot."""

    __tablename__ = "paper_fills"
    __table_args__ = (Index(None, "order_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("paper_orders.id", ondelete="CASCADE"), nullable=False
    )
    price: Mapped[float] = mapped_column(Float, nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    fee: Mapped[float] = mapped_column(Float, nullable=False)
    fee_currency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    maker: Mapped[bool] = mapped_column(Boolean, nullable=False)
    realized_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    ts_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PaperPosition(Base):
    """An open derivative position of a paper account; the row is removed when it is flat."""

    __tablename__ = "paper_positions"
    __table_args__ = (
        one_of("side", DIRECTIONS),
        one_of("margin_mode", MARGIN_MODES),
    )

    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), primary_key=True)
    contracts: Mapped[float] = mapped_column(Float, nullable=False)
    entry_price: Mapped[float] = mapped_column(Float, nullable=False)
    leverage: Mapped[float] = mapped_column(Float, nullable=False)
    margin_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    margin: Mapped[float] = mapped_column(Float, nullable=False)
    realized_pnl: Mapped[float] = mapped_column(Float, nullable=False)


metadata = Base.metadata
"""The target of migrations and of the schema comparison test."""
