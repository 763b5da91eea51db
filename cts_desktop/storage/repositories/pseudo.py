"""Pseudo sets and their closed entries: batched writes, aggregate updates and the D8 rolling prune.

Only closed results and set aggregates are stored (D17); the live book is in memory. The write path
is built for volume — a tick can close tens of thousands of entries — so:

* :meth:`PseudoRepository.write_closed` writes a whole batch with **one** Core ``insert()`` executed
  once (executemany), never the ORM. The statement is compiled once per dialect and its parameter
  rows go to the driver as plain tuples: SQLAlchemy's per-row parameter processing costs about
  4 µs per row, more than SQLite's own insert, and the values need no processing because they are
  prepared column-wise here. Timestamps are rendered the way :class:`~cts_desktop.storage.models.
  UTCDateTime` stores them (text ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC on SQLite, aware datetimes on
  PostgreSQL), once per distinct millisecond: a tick closes many entries at the same instant.
* Entries have an integer key the database assigns (the rowid on SQLite; migration 0005 says
  why this table is the exception to text UUIDs). Rows are written sorted by set and close time,
  so the (set_id, closed_at, id) index grows set by set instead of splitting pages all over, and
  "newest" ties on ``closed_at`` break by id, which is write order.
* :meth:`PseudoRepository.update_set_aggregates` is one executemany ``UPDATE`` of the stats columns.
* :meth:`PseudoRepository.prune_rolling`: for every set holding at least ⌈L·(1+T)⌉ entries, all
  but the newest L go (D8) — one executemany ``DELETE`` of each such set's entries past its newest
  L, ordered by the (set_id, closed_at, id) index. The same statements run on SQLite and PostgreSQL.

This module must not import the engine (dependencies point engine → storage): a closed batch is
accepted through the :class:`ClosedColumns` protocol, which the engine's ``ClosedBatch`` satisfies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import Dialect, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from cts_desktop.storage.database import Database, dialect_insert
from cts_desktop.storage.models import metadata, new_id, utc_now

_sets = metadata.tables["pseudo_sets"]
_entries = metadata.tables["pseudo_entries"]

CLOSE_REASONS: tuple[str | None, ...] = (None, "takeprofit", "stoploss", "trailing_stop", "timeout", "manual")
"""``close_reason`` text by the engine's integer exit reason (0 = still open, stored as NULL);
the names are DOMAIN §2.3's close reasons."""

_ENTRY_COLUMNS = tuple(column.name for column in _entries.columns if column.name != "id")
_KEY_COLUMNS = ("connection_id", "symbol", "level", "config_key", "direction")
_KEYS_PER_SELECT = 4000  # 5 parameters per key: below SQLite's 32766 and asyncpg's 32767 limits
_IDS_PER_SELECT = 20_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ClosedColumns(Protocol):
    """The columns of a closed batch (``cts_desktop.engine.pseudo.closed.ClosedBatch``)."""

    @property
    def set_index(self) -> npt.NDArray[np.int64]: ...
    @property
    def opened_ms(self) -> npt.NDArray[np.int64]: ...
    @property
    def closed_ms(self) -> npt.NDArray[np.int64]: ...
    @property
    def entry_price(self) -> npt.NDArray[np.float64]: ...
    @property
    def exit_price(self) -> npt.NDArray[np.float64]: ...
    @property
    def result_steps(self) -> npt.NDArray[np.float64]: ...
    @property
    def pnl_fraction(self) -> npt.NDArray[np.float64]: ...
    @property
    def fees_fraction(self) -> npt.NDArray[np.float64]: ...
    @property
    def reason(self) -> npt.NDArray[np.int8]: ...
    @property
    def drawdown_time_ms(self) -> npt.NDArray[np.int64]: ...
    @property
    def hold_time_ms(self) -> npt.NDArray[np.int64]: ...
    def __len__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PseudoSetSpec:
    """A configuration set to register; the five key fields identify it (the unique constraint)."""

    connection_id: str
    symbol: str
    level: str
    indication_type: str
    direction: str
    config_key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    status: str = "evaluating"
    phase: int = 1


@dataclass(frozen=True, slots=True)
class PseudoSetRecord:
    id: str
    connection_id: str
    symbol: str
    level: str
    indication_type: str
    direction: str
    config_key: str
    params: dict[str, Any]
    status: str
    phase: int
    entries: int
    wins: int
    losses: int
    gross_profit: float
    gross_loss: float
    sum_result_steps: float
    max_drawdown: float
    drawdown_time_s: float
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PseudoEntryRecord:
    id: int
    set_id: str
    opened_at: datetime
    closed_at: datetime | None
    entry_price: float
    exit_price: float | None
    result_steps: float | None
    pnl: float | None
    fees: float
    close_reason: str | None
    hold_time_s: float | None
    drawdown_time_s: float | None


@dataclass(frozen=True, slots=True)
class SetAggregates:
    """New aggregate values of some sets, column-wise (numpy arrays or sequences of equal length).

    The engine's ``SetStats.aggregate_columns`` yields the numeric columns; status and phase come
    from the set evaluator.
    """

    set_ids: Sequence[str]
    status: Sequence[str]
    phase: npt.ArrayLike
    entries: npt.ArrayLike
    wins: npt.ArrayLike
    losses: npt.ArrayLike
    gross_profit: npt.ArrayLike
    gross_loss: npt.ArrayLike
    sum_result_steps: npt.ArrayLike
    max_drawdown: npt.ArrayLike
    drawdown_time_s: npt.ArrayLike

    def __len__(self) -> int:
        return len(self.set_ids)


def rolling_trigger(limit: int, threshold: float) -> int:
    """⌈L·(1+T)⌉ in exact arithmetic (T a fraction, 0.2 = 20 %); the engine's
    ``cts_desktop.engine.pseudo.rolling.trigger_count`` is the same rule (a test keeps them equal)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    fraction = Fraction(repr(float(threshold)))
    if fraction < 0:
        raise ValueError(f"threshold must not be negative, got {threshold}")
    return math.ceil(limit * (1 + fraction))


# --------------------------------------------------------------------------- value preparation


def _sqlite_timestamps(ms: npt.NDArray[np.int64]) -> list[str]:
    """UTC text exactly as UTCDateTime + SQLite's DATETIME store it ('2024-01-02 03:04:05.678000'),
    rendered once per distinct value."""
    unique, inverse = np.unique(ms, return_inverse=True)
    text = np.datetime_as_string(unique.astype("datetime64[ms]").astype("datetime64[us]"), unit="us")
    rendered = np.strings.replace(text, "T", " ").astype(object)
    values: list[str] = rendered[inverse].tolist()
    return values


def _aware_datetimes(ms: npt.NDArray[np.int64]) -> list[datetime]:
    """Timezone-aware UTC datetimes (what asyncpg binds to timestamptz), one object per distinct ms."""
    unique, inverse = np.unique(ms, return_inverse=True)
    objects = np.empty(unique.shape[0], dtype=object)
    objects[:] = [_EPOCH + timedelta(milliseconds=value) for value in unique.tolist()]
    values: list[datetime] = objects[inverse].tolist()
    return values


def _timestamps(dialect: Dialect, ms: npt.NDArray[np.int64]) -> list[Any]:
    if dialect.name == "sqlite":
        return _sqlite_timestamps(ms)
    return _aware_datetimes(ms)


def _now_param(dialect: Dialect) -> Any:
    now = utc_now()
    if dialect.name == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def _compiled(name: str, statement: ClauseElement, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """SQL text and positional parameter order of a Core statement, compiled once per dialect."""
    key = (name, dialect.name)
    cached = _COMPILED.get(key)
    if cached is None:
        compiled = statement.compile(dialect=dialect)
        if (
            not isinstance(compiled, SQLCompiler) or compiled.positiontup is None
        ):  # pragma: no cover - both supported drivers are positional
            raise RuntimeError(f"the {dialect.name} driver does not use positional parameters")
        cached = (compiled.string, tuple(compiled.positiontup))
        _COMPILED[key] = cached
    return cached


async def _execute_many(
    connection: AsyncConnection, name: str, statement: ClauseElement, columns: Mapping[str, list[Any]]
) -> None:
    """Run ``statement`` once for all rows: the compiled Core statement, rows as driver tuples."""
    sql, order = _compiled(name, statement, connection.dialect)
    rows = list(zip(*(columns[key] for key in order), strict=True))
    if rows:
        await connection.exec_driver_sql(sql, rows)


_INSERT_ENTRIES = insert(_entries).values({column: bindparam(column) for column in _ENTRY_COLUMNS})
# One set's entries beyond its newest ``b_keep``. The (set_id, closed_at, id) index serves the
# lookup, the ordering (NULL close times sort last under DESC on both backends' indexes or in a
# small per-set sort) and the range delete without reading the table.
_DELETE_OLDER = delete(_entries).where(
    _entries.c.set_id == bindparam("b_set"),
    _entries.c.id.in_(
        select(_entries.c.id)
        .where(_entries.c.set_id == bindparam("b_set"))
        .order_by(_entries.c.closed_at.desc().nulls_last(), _entries.c.id.desc())
        .offset(bindparam("b_keep"))
    ),
)
_UPDATE_AGGREGATES = (
    update(_sets)
    .where(_sets.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        phase=bindparam("b_phase"),
        entries=bindparam("b_entries"),
        wins=bindparam("b_wins"),
        losses=bindparam("b_losses"),
        gross_profit=bindparam("b_gross_profit"),
        gross_loss=bindparam("b_gross_loss"),
        sum_result_steps=bindparam("b_sum_result_steps"),
        max_drawdown=bindparam("b_max_drawdown"),
        drawdown_time_s=bindparam("b_drawdown_time_s"),
        updated_at=bindparam("b_updated_at"),
    )
)


def _as_list(values: Any, kind: type) -> list[Any]:
    converted: list[Any] = np.asarray(values).astype(kind).tolist()
    return converted


def _chunks[T](items: list[T], size: int) -> list[list[T]]:
    """``items`` in pieces of at most ``size``: an IN list must stay below the drivers' parameter limits."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _set_record(row: Mapping[str, Any]) -> PseudoSetRecord:
    return PseudoSetRecord(**row)


# --------------------------------------------------------------------------- repository


class PseudoRepository:
    """Pseudo sets (configuration headers with aggregates) and their closed entries."""

    def __init__(self, database: Database) -> None:
        self._database = database

    # ------------------------------------------------------------------ sets

    async def upsert_sets(self, specs: Sequence[PseudoSetSpec]) -> list[str]:
        """Register sets and return their ids in the order given.

        A set that already exists (same connection, symbol, level, config key and direction) keeps
        its id, status and statistics; only its indication type and parameters are refreshed. One
        ``INSERT … ON CONFLICT DO UPDATE`` for all, then the ids are read back by key.
        """
        if not specs:
            return []
        now = utc_now()
        rows = [
            {
                "id": new_id(),
                "connection_id": spec.connection_id,
                "symbol": spec.symbol,
                "level": spec.level,
                "indication_type": spec.indication_type,
                "direction": spec.direction,
                "config_key": spec.config_key,
                "params": dict(spec.params),
                "status": spec.status,
                "phase": spec.phase,
                "entries": 0,
                "wins": 0,
                "losses": 0,
                "gross_profit": 0.0,
                "gross_loss": 0.0,
                "sum_result_steps": 0.0,
                "max_drawdown": 0.0,
                "drawdown_time_s": 0.0,
                "created_at": now,
                "updated_at": now,
            }
            for spec in specs
        ]
        keys = [tuple(getattr(spec, column) for column in _KEY_COLUMNS) for spec in specs]
        found: dict[tuple[str, ...], str] = {}
        async with self._database.engine.begin() as connection:
            statement = dialect_insert(connection.dialect.name, _sets)
            statement = statement.on_conflict_do_update(
                index_elements=[_sets.c[column] for column in _KEY_COLUMNS],
                set_={
                    "indication_type": statement.excluded.indication_type,
                    "params": statement.excluded.params,
                    "updated_at": statement.excluded.updated_at,
                },
            )
            await connection.execute(statement, rows)
            key_columns = tuple_(*(_sets.c[column] for column in _KEY_COLUMNS))
            for chunk in _chunks(list(dict.fromkeys(keys)), _KEYS_PER_SELECT):
                query = select(_sets.c.id, *(_sets.c[column] for column in _KEY_COLUMNS)).where(
                    key_columns.in_(chunk)
                )
                for row in await connection.execute(query):
                    found[tuple(row[1:])] = row[0]
        return [found[key] for key in keys]

    async def get_sets(self, set_ids: Sequence[str]) -> list[PseudoSetRecord]:
        """The sets with these ids, in the order given (unknown ids are skipped)."""
        by_id: dict[str, PseudoSetRecord] = {}
        async with self._database.engine.connect() as connection:
            for chunk in _chunks(list(dict.fromkeys(set_ids)), _IDS_PER_SELECT):
                result = await connection.execute(select(_sets).where(_sets.c.id.in_(chunk)))
                by_id.update((row.id, _set_record(row._asdict())) for row in result)
        return [by_id[set_id] for set_id in set_ids if set_id in by_id]

    async def update_set_aggregates(self, aggregates: SetAggregates) -> None:
        """Store new status, phase and statistics of many sets with one executemany ``UPDATE``."""
        if len(aggregates) == 0:
            return
        async with self._database.engine.begin() as connection:
            await self._update_aggregates(connection, aggregates)

    async def _update_aggregates(self, connection: AsyncConnection, aggregates: SetAggregates) -> None:
        n = len(aggregates)
        columns: dict[str, list[Any]] = {
            "b_id": list(aggregates.set_ids),
            "b_status": list(aggregates.status),
            "b_phase": _as_list(aggregates.phase, int),
            "b_entries": _as_list(aggregates.entries, int),
            "b_wins": _as_list(aggregates.wins, int),
            "b_losses": _as_list(aggregates.losses, int),
            "b_gross_profit": _as_list(aggregates.gross_profit, float),
            "b_gross_loss": _as_list(aggregates.gross_loss, float),
            "b_sum_result_steps": _as_list(aggregates.sum_result_steps, float),
            "b_max_drawdown": _as_list(aggregates.max_drawdown, float),
            "b_drawdown_time_s": _as_list(aggregates.drawdown_time_s, float),
            "b_updated_at": [_now_param(connection.dialect)] * n,
        }
        await _execute_many(connection, "update_aggregates", _UPDATE_AGGREGATES, columns)

    # ------------------------------------------------------------------ entries

    async def write_closed(
        self, batch: ClosedColumns, set_ids: Sequence[str], *, aggregates: SetAggregates | None = None
    ) -> int:
        """Insert every entry of ``batch`` (``set_ids[set_index]`` names each entry's set) with one
        Core insert; with ``aggregates``, update those sets in the same transaction so the stored
        statistics never disagree with the stored entries. Returns the number of rows written."""
        n = len(batch)
        if n == 0:
            if aggregates is not None:
                await self.update_set_aggregates(aggregates)
            return 0
        set_index = np.asarray(batch.set_index, dtype=np.int64)
        if int(set_index.min()) < 0 or int(set_index.max()) >= len(set_ids):
            raise IndexError(f"set_index out of range for {len(set_ids)} set ids")
        reason = np.asarray(batch.reason, dtype=np.int64)
        if int(reason.min()) < 0 or int(reason.max()) >= len(CLOSE_REASONS):
            raise ValueError(f"unknown close reason code (known: 0..{len(CLOSE_REASONS) - 1})")

        # Sort by (set id text, close time) so both indexes are appended to set by set.
        used, local = np.unique(set_index, return_inverse=True)
        names = np.asarray([set_ids[i] for i in used.tolist()], dtype=object)
        name_rank = np.empty(used.shape[0], dtype=np.int64)
        name_rank[np.argsort(names.astype(str), kind="stable")] = np.arange(used.shape[0], dtype=np.int64)
        order = np.lexsort((batch.closed_ms, name_rank[local]))

        # Everything is prepared before the transaction opens, so it holds the write lock only
        # for the insert itself.
        dialect = self._database.engine.dialect
        columns: dict[str, list[Any]] = {
            "set_id": names[local[order]].tolist(),
            "opened_at": _timestamps(dialect, np.asarray(batch.opened_ms, dtype=np.int64)[order]),
            "closed_at": _timestamps(dialect, np.asarray(batch.closed_ms, dtype=np.int64)[order]),
            "entry_price": np.asarray(batch.entry_price, dtype=np.float64)[order].tolist(),
            "exit_price": np.asarray(batch.exit_price, dtype=np.float64)[order].tolist(),
            "result_steps": np.asarray(batch.result_steps, dtype=np.float64)[order].tolist(),
            "pnl": np.asarray(batch.pnl_fraction, dtype=np.float64)[order].tolist(),
            "fees": np.asarray(batch.fees_fraction, dtype=np.float64)[order].tolist(),
            "close_reason": np.asarray(CLOSE_REASONS, dtype=object)[reason[order]].tolist(),
            "hold_time_s": (np.asarray(batch.hold_time_ms, dtype=np.int64)[order] / 1000.0).tolist(),
            "drawdown_time_s": (np.asarray(batch.drawdown_time_ms, dtype=np.int64)[order] / 1000.0).tolist(),
        }
        async with self._database.engine.begin() as connection:
            await _execute_many(connection, "insert_entries", _INSERT_ENTRIES, columns)
            if aggregates is not None and len(aggregates):
                await self._update_aggregates(connection, aggregates)
        return n

    async def entry_counts(self, set_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Stored entries per set (sets without entries are absent)."""
        query = select(_entries.c.set_id, func.count()).group_by(_entries.c.set_id)
        counts: dict[str, int] = {}
        async with self._database.engine.connect() as connection:
            if set_ids is None:
                return {row[0]: int(row[1]) for row in await connection.execute(query)}
            for chunk in _chunks(list(dict.fromkeys(set_ids)), _IDS_PER_SELECT):
                result = await connection.execute(query.where(_entries.c.set_id.in_(chunk)))
                counts.update((row[0], int(row[1])) for row in result)
        return counts

    async def newest_entries(self, set_id: str, limit: int) -> list[PseudoEntryRecord]:
        """The newest ``limit`` entries of a set, newest first (the order the rolling prune keeps)."""
        query = (
            select(_entries)
            .where(_entries.c.set_id == set_id)
            .order_by(_entries.c.closed_at.desc().nulls_last(), _entries.c.id.desc())
            .limit(limit)
        )
        async with self._database.engine.connect() as connection:
            return [PseudoEntryRecord(**row._asdict()) for row in await connection.execute(query)]

    async def prune_rolling(self, limit_L: int, threshold_T: float, *, level: str | None = None) -> int:
        """D8: for every set holding at least ⌈L·(1+T)⌉ entries, delete all but its newest L.

        ``threshold_T`` is a fraction (0.2 = 20 %). With ``level``, only sets of that level (each
        level has its own position length). "Newest" is by ``closed_at``, ties by id (write order).
        The sets over the trigger are found with one ``GROUP BY … HAVING`` on the
        (set_id, closed_at, id) index, then one executemany ``DELETE`` removes each such set's
        entries beyond its newest L, found by an index-only ``ORDER BY … OFFSET L`` (about 40 % faster
        than ranking every row with ``ROW_NUMBER()``). Returns the number of entries deleted.
        """
        if limit_L < 1:
            raise ValueError(f"limit_L must be at least 1, got {limit_L}")
        trigger = rolling_trigger(limit_L, threshold_T)
        over = (
            select(_entries.c.set_id, func.count())
            .group_by(_entries.c.set_id)
            .having(func.count() >= trigger)
        )
        if level is not None:
            over = over.where(_entries.c.set_id.in_(select(_sets.c.id).where(_sets.c.level == level)))
        # Read outside the write transaction: a deferred SQLite transaction that reads first and
        # writes second fails (SQLITE_BUSY) if another connection commits in between. Counts only
        # grow between the read and the delete, so every set found is still over the trigger.
        async with self._database.engine.connect() as connection:
            counts = {row[0]: int(row[1]) for row in await connection.execute(over)}
        if not counts:
            return 0
        async with self._database.engine.begin() as connection:
            result = await connection.execute(
                _DELETE_OLDER, [{"b_set": set_id, "b_keep": limit_L} for set_id in counts]
            )
        if result.rowcount >= 0:
            return int(result.rowcount)
        return sum(count - limit_L for count in counts.values())  # pragma: no cover - driver without a total
