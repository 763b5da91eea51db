"""State of the paper trading venue: accounts, balances, orders, fills, positions.

The paper venue keeps its account in memory and writes every change through :meth:`PaperRepository.apply`:
one transaction holding everything one event changed (an order fill updates the order, adds the
fill, moves the balances and the position together), so a crash never leaves a fill without its
balance change, and a restart continues exactly where the last committed event left it.

Records are frozen dataclasses with domain enums; the venue replaces them, never mutates them.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from cts_desktop.domain.market import (
    MarginMode,
    OrderSide,
    OrderType,
    PositionMode,
    PositionSide,
    TimeInForce,
    VenueOrderStatus,
)
from cts_desktop.storage.database import Database, dialect_insert
from cts_desktop.storage.models import metadata, new_id, utc_now

_accounts = metadata.tables["paper_accounts"]
_balances = metadata.tables["paper_balances"]
_symbol_settings = metadata.tables["paper_symbol_settings"]
_orders = metadata.tables["paper_orders"]
_fills = metadata.tables["paper_fills"]
_positions = metadata.tables["paper_positions"]

OPEN_STATUSES: frozenset[VenueOrderStatus] = frozenset(
    {VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED}
)
_OPEN_VALUES = tuple(status.value for status in OPEN_STATUSES)


@dataclass(frozen=True, slots=True)
class PaperAccountRecord:
    """A paper account and its matching rules (see ``AccountSettings`` in the paper venue)."""

    id: str
    connection_id: str | None
    name: str
    quote: str
    starting_balance: float
    position_mode: PositionMode
    margin_mode: MarginMode
    maker_fee: float | None
    taker_fee: float | None
    slippage_bps: float
    max_slippage_bps: float
    volume_impact_bps: float
    partial_fill_ratio: float
    volume_share: float | None
    default_leverage: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaperBalanceRecord:
    asset: str
    free: float
    used: float

    @property
    def total(self) -> float:
        return self.free + self.used


@dataclass(frozen=True, slots=True)
class PaperSymbolSettingRecord:
    symbol: str
    leverage: float
    margin_mode: MarginMode


@dataclass(frozen=True, slots=True)
class PaperOrderRecord:
    id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    status: VenueOrderStatus
    amount: float
    filled: float
    price: float | None
    stop_price: float | None
    average: float | None
    fee: float
    fee_currency: str | None
    reduce_only: bool
    position_side: PositionSide | None
    time_in_force: TimeInForce
    leverage: float | None
    take_profit: float | None
    stop_loss: float | None
    reserved: float
    reject_reason: str | None
    created_ms: int
    updated_ms: int
    parent_id: str | None = None

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class PaperFillRecord:
    """One execution. ``symbol`` and ``side`` are the order's (read through a join, not stored
    twice); ``id`` is None until the database has numbered it."""

    id: int | None
    order_id: str
    symbol: str
    side: OrderSide
    price: float
    amount: float
    fee: float
    fee_currency: str | None
    maker: bool
    realized_pnl: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class PaperPositionRecord:
    symbol: str
    side: PositionSide
    contracts: float
    entry_price: float
    leverage: float
    margin_mode: MarginMode
    margin: float
    realized_pnl: float


@dataclass(frozen=True, slots=True)
class PaperAccountState:
    """Everything the venue needs in memory: the account and its live (non-final) state."""

    account: PaperAccountRecord
    balances: dict[str, PaperBalanceRecord]
    open_orders: list[PaperOrderRecord]  # oldest first
    positions: list[PaperPositionRecord]
    symbol_settings: dict[str, PaperSymbolSettingRecord]


PositionKey = tuple[str, PositionSide]


@dataclass(slots=True)
class PaperChanges:
    """What one event changed; :meth:`PaperRepository.apply` writes it in one transaction.

    Keyed by identity so that an order touched twice in one event is written once, in its
    final form. A position mapped to None is deleted (it went flat).
    """

    orders: dict[str, PaperOrderRecord] = field(default_factory=dict)
    fills: list[PaperFillRecord] = field(default_factory=list)
    balances: dict[str, PaperBalanceRecord] = field(default_factory=dict)
    positions: dict[PositionKey, PaperPositionRecord | None] = field(default_factory=dict)
    symbol_settings: dict[str, PaperSymbolSettingRecord] = field(default_factory=dict)
    account: PaperAccountRecord | None = None

    def __bool__(self) -> bool:
        return bool(
            self.orders
            or self.fills
            or self.balances
            or self.positions
            or self.symbol_settings
            or self.account is not None
        )


class PaperRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    # ----------------------------------------------------------------------- accounts

    async def create_account(
        self, account: PaperAccountRecord, balances: Sequence[PaperBalanceRecord] = ()
    ) -> PaperAccountRecord:
        """Insert an account with its opening balances in one transaction."""
        async with self._database.engine.begin() as connection:
            await connection.execute(insert(_accounts), [_account_row(account)])
            if balances:
                await connection.execute(
                    insert(_balances),
                    [{"account_id": account.id, **_balance_row(balance)} for balance in balances],
                )
        return account

    async def get_account(self, account_id: str) -> PaperAccountRecord | None:
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(select(_accounts).where(_accounts.c.id == account_id))).first()
        return _account(row._asdict()) if row is not None else None

    async def list_accounts(self) -> builtins.list[PaperAccountRecord]:
        statement = select(_accounts).order_by(_accounts.c.created_at, _accounts.c.id)
        async with self._database.engine.connect() as connection:
            return [_account(row._asdict()) for row in await connection.execute(statement)]

    async def delete_account(self, account_id: str) -> bool:
        """Delete an account and all its paper state (a reset starts from a new account)."""
        async with self._database.engine.begin() as connection:
            result = await connection.execute(delete(_accounts).where(_accounts.c.id == account_id))
        return result.rowcount > 0

    async def load_account(self, account_id: str) -> PaperAccountState | None:
        """The account with its balances, open orders, positions and symbol settings, read in
        one transaction so they are consistent with each other."""
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(select(_accounts).where(_accounts.c.id == account_id))).first()
            if row is None:
                return None
            balances = await connection.execute(
                select(_balances).where(_balances.c.account_id == account_id).order_by(_balances.c.asset)
            )
            orders = await connection.execute(
                select(_orders)
                .where(_orders.c.account_id == account_id, _orders.c.status.in_(_OPEN_VALUES))
                .order_by(_orders.c.created_ms, _orders.c.id)
            )
            positions = await connection.execute(
                select(_positions)
                .where(_positions.c.account_id == account_id)
                .order_by(_positions.c.symbol, _positions.c.side)
            )
            settings = await connection.execute(
                select(_symbol_settings).where(_symbol_settings.c.account_id == account_id)
            )
            balance_records = [_balance(r._asdict()) for r in balances]
            order_records = [_order(r._asdict()) for r in orders]
            position_records = [_position(r._asdict()) for r in positions]
            setting_records = [_symbol_setting(r._asdict()) for r in settings]
        return PaperAccountState(
            account=_account(row._asdict()),
            balances={balance.asset: balance for balance in balance_records},
            open_orders=order_records,
            positions=position_records,
            symbol_settings={setting.symbol: setting for setting in setting_records},
        )

    # ----------------------------------------------------------------------- writes

    async def apply(self, account_id: str, changes: PaperChanges) -> None:
        """Write one event's changes atomically: all of them or (on any error) none."""
        if not changes:
            return
        backend = self._database.backend
        async with self._database.engine.begin() as connection:
            # Writes only, and the first statement is a write (see storage.database).
            if changes.account is not None:
                await connection.execute(
                    update(_accounts)
                    .where(_accounts.c.id == account_id)
                    .values(
                        position_mode=changes.account.position_mode.value,
                        margin_mode=changes.account.margin_mode.value,
                        name=changes.account.name,
                    )
                )
            if changes.orders:
                # Parents before children: a child's foreign key needs its parent's row.
                rows = sorted(
                    (_order_row(account_id, order) for order in changes.orders.values()),
                    key=lambda row: row["parent_id"] is not None,
                )
                await _upsert(connection, backend, _orders, rows, ["id"])
            if changes.fills:
                await connection.execute(insert(_fills), [_fill_row(fill) for fill in changes.fills])
            if changes.balances:
                rows = [{"account_id": account_id, **_balance_row(b)} for b in changes.balances.values()]
                await _upsert(connection, backend, _balances, rows, ["account_id", "asset"])
            gone = [key for key, position in changes.positions.items() if position is None]
            kept = [position for position in changes.positions.values() if position is not None]
            for symbol, side in gone:
                await connection.execute(
                    delete(_positions).where(
                        _positions.c.account_id == account_id,
                        _positions.c.symbol == symbol,
                        _positions.c.side == side.value,
                    )
                )
            if kept:
                rows = [_position_row(account_id, position) for position in kept]
                await _upsert(connection, backend, _positions, rows, ["account_id", "symbol", "side"])
            if changes.symbol_settings:
                rows = [
                    {
                        "account_id": account_id,
                        "symbol": s.symbol,
                        "leverage": s.leverage,
                        "margin_mode": s.margin_mode.value,
                    }
                    for s in changes.symbol_settings.values()
                ]
                await _upsert(connection, backend, _symbol_settings, rows, ["account_id", "symbol"])

    # ----------------------------------------------------------------------- reads

    async def get_order(self, account_id: str, order_id: str) -> PaperOrderRecord | None:
        return await self._one_order(_orders.c.id == order_id, account_id)

    async def get_order_by_client_id(self, account_id: str, client_order_id: str) -> PaperOrderRecord | None:
        return await self._one_order(_orders.c.client_order_id == client_order_id, account_id)

    async def _one_order(self, condition: ColumnElement[bool], account_id: str) -> PaperOrderRecord | None:
        statement = select(_orders).where(_orders.c.account_id == account_id, condition)
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _order(row._asdict()) if row is not None else None

    async def list_orders(
        self,
        account_id: str,
        *,
        symbol: str | None = None,
        open_only: bool = False,
        limit: int | None = None,
    ) -> builtins.list[PaperOrderRecord]:
        """Orders newest first (open and final), optionally for one symbol."""
        statement = select(_orders).where(_orders.c.account_id == account_id)
        if symbol is not None:
            statement = statement.where(_orders.c.symbol == symbol)
        if open_only:
            statement = statement.where(_orders.c.status.in_(_OPEN_VALUES))
        statement = statement.order_by(_orders.c.created_ms.desc(), _orders.c.id.desc()).limit(limit)
        async with self._database.engine.connect() as connection:
            return [_order(row._asdict()) for row in await connection.execute(statement)]

    async def list_fills(
        self,
        account_id: str,
        *,
        symbol: str | None = None,
        order_id: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> builtins.list[PaperFillRecord]:
        """Fills in the order they happened (by their database number)."""
        statement = (
            select(_fills, _orders.c.symbol, _orders.c.side)
            .join(_orders, _fills.c.order_id == _orders.c.id)
            .where(_orders.c.account_id == account_id)
        )
        if symbol is not None:
            statement = statement.where(_orders.c.symbol == symbol)
        if order_id is not None:
            statement = statement.where(_fills.c.order_id == order_id)
        if since_ms is not None:
            statement = statement.where(_fills.c.ts_ms >= since_ms)
        statement = statement.order_by(_fills.c.id).limit(limit)
        async with self._database.engine.connect() as connection:
            return [_fill(row._asdict()) for row in await connection.execute(statement)]

    async def fill_stats(self, account_id: str) -> tuple[int, int | None]:
        """How many fills the account has and when the first one happened (``ts_ms``; None
        without fills), counted by the database instead of loading every fill."""
        statement = (
            select(func.count(_fills.c.id), func.min(_fills.c.ts_ms))
            .join(_orders, _fills.c.order_id == _orders.c.id)
            .where(_orders.c.account_id == account_id)
        )
        async with self._database.engine.connect() as connection:
            count, first = (await connection.execute(statement)).one()
        return int(count), None if first is None else int(first)


# --------------------------------------------------------------------------- helpers


async def _upsert(
    connection: AsyncConnection, backend: str, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """Insert or replace rows by primary key in one statement (no read first)."""
    statement = dialect_insert(backend, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[key] for key in keys],
        set_={name: statement.excluded[name] for name in rows[0] if name not in keys},
    )
    await connection.execute(statement, rows)


def new_account_record(
    *,
    name: str,
    quote: str,
    starting_balance: float,
    position_mode: PositionMode,
    margin_mode: MarginMode,
    maker_fee: float | None,
    taker_fee: float | None,
    slippage_bps: float,
    max_slippage_bps: float,
    volume_impact_bps: float,
    partial_fill_ratio: float,
    volume_share: float | None,
    default_leverage: float,
    connection_id: str | None = None,
    id: str | None = None,
) -> PaperAccountRecord:
    return PaperAccountRecord(
        id=id or new_id(),
        connection_id=connection_id,
        name=name,
        quote=quote,
        starting_balance=starting_balance,
        position_mode=position_mode,
        margin_mode=margin_mode,
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        slippage_bps=slippage_bps,
        max_slippage_bps=max_slippage_bps,
        volume_impact_bps=volume_impact_bps,
        partial_fill_ratio=partial_fill_ratio,
        volume_share=volume_share,
        default_leverage=default_leverage,
        created_at=utc_now(),
    )


def _account_row(account: PaperAccountRecord) -> dict[str, Any]:
    return {
        "id": account.id,
        "connection_id": account.connection_id,
        "name": account.name,
        "quote": account.quote,
        "starting_balance": account.starting_balance,
        "position_mode": account.position_mode.value,
        "margin_mode": account.margin_mode.value,
        "maker_fee": account.maker_fee,
        "taker_fee": account.taker_fee,
        "slippage_bps": account.slippage_bps,
        "max_slippage_bps": account.max_slippage_bps,
        "volume_impact_bps": account.volume_impact_bps,
        "partial_fill_ratio": account.partial_fill_ratio,
        "volume_share": account.volume_share,
        "default_leverage": account.default_leverage,
        "created_at": account.created_at,
    }


def _account(row: Mapping[str, Any]) -> PaperAccountRecord:
    return PaperAccountRecord(
        id=row["id"],
        connection_id=row["connection_id"],
        name=row["name"],
        quote=row["quote"],
        starting_balance=row["starting_balance"],
        position_mode=PositionMode(row["position_mode"]),
        margin_mode=MarginMode(row["margin_mode"]),
        maker_fee=row["maker_fee"],
        taker_fee=row["taker_fee"],
        slippage_bps=row["slippage_bps"],
        max_slippage_bps=row["max_slippage_bps"],
        volume_impact_bps=row["volume_impact_bps"],
        partial_fill_ratio=row["partial_fill_ratio"],
        volume_share=row["volume_share"],
        default_leverage=row["default_leverage"],
        created_at=row["created_at"],
    )


def _balance_row(balance: PaperBalanceRecord) -> dict[str, Any]:
    return {"asset": balance.asset, "free": balance.free, "used": balance.used}


def _balance(row: Mapping[str, Any]) -> PaperBalanceRecord:
    return PaperBalanceRecord(asset=row["asset"], free=row["free"], used=row["used"])


def _symbol_setting(row: Mapping[str, Any]) -> PaperSymbolSettingRecord:
    return PaperSymbolSettingRecord(
        symbol=row["symbol"], leverage=row["leverage"], margin_mode=MarginMode(row["margin_mode"])
    )


def _order_row(account_id: str, order: PaperOrderRecord) -> dict[str, Any]:
    return {
        "id": order.id,
        "account_id": account_id,
        "parent_id": order.parent_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "status": order.status.value,
        "amount": order.amount,
        "filled": order.filled,
        "price": order.price,
        "stop_price": order.stop_price,
        "average": order.average,
        "fee": order.fee,
        "fee_currency": order.fee_currency,
        "reduce_only": order.reduce_only,
        "position_side": order.position_side.value if order.position_side is not None else None,
        "time_in_force": order.time_in_force.value,
        "leverage": order.leverage,
        "take_profit": order.take_profit,
        "stop_loss": order.stop_loss,
        "reserved": order.reserved,
        "reject_reason": order.reject_reason,
        "created_ms": order.created_ms,
        "updated_ms": order.updated_ms,
    }


def _order(row: Mapping[str, Any]) -> PaperOrderRecord:
    position_side = row["position_side"]
    return PaperOrderRecord(
        id=row["id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        type=OrderType(row["type"]),
        status=VenueOrderStatus(row["status"]),
        amount=row["amount"],
        filled=row["filled"],
        price=row["price"],
        stop_price=row["stop_price"],
        average=row["average"],
        fee=row["fee"],
        fee_currency=row["fee_currency"],
        reduce_only=bool(row["reduce_only"]),
        position_side=PositionSide(position_side) if position_side is not None else None,
        time_in_force=TimeInForce(row["time_in_force"]),
        leverage=row["leverage"],
        take_profit=row["take_profit"],
        stop_loss=row["stop_loss"],
        reserved=row["reserved"],
        reject_reason=row["reject_reason"],
        created_ms=row["created_ms"],
        updated_ms=row["updated_ms"],
        parent_id=row["parent_id"],
    )


def _fill_row(fill: PaperFillRecord) -> dict[str, Any]:
    return {
        "order_id": fill.order_id,
        "price": fill.price,
        "amount": fill.amount,
        "fee": fill.fee,
        "fee_currency": fill.fee_currency,
        "maker": fill.maker,
        "realized_pnl": fill.realized_pnl,
        "ts_ms": fill.ts_ms,
    }


def _fill(row: Mapping[str, Any]) -> PaperFillRecord:
    return PaperFillRecord(
        id=row["id"],
        order_id=row["order_id"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        price=row["price"],
        amount=row["amount"],
        fee=row["fee"],
        fee_currency=row["fee_currency"],
        maker=bool(row["maker"]),
        realized_pnl=row["realized_pnl"],
        ts_ms=row["ts_ms"],
    )


def _position_row(account_id: str, position: PaperPositionRecord) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "symbol": position.symbol,
        "side": position.side.value,
        "contracts": position.contracts,
        "entry_price": position.entry_price,
        "leverage": position.leverage,
        "margin_mode": position.margin_mode.value,
        "margin": position.margin,
        "realized_pnl": position.realized_pnl,
    }


def _position(row: Mapping[str, Any]) -> PaperPositionRecord:
    return PaperPositionRecord(
        symbol=row["symbol"],
        side=PositionSide(row["side"]),
        contracts=row["contracts"],
        entry_price=row["entry_price"],
        leverage=row["leverage"],
        margin_mode=MarginMode(row["margin_mode"]),
        margin=row["margin"],
        realized_pnl=row["realized_pnl"],
    )
