"""Speed of the pseudo-entry storage path (``cts_desktop.storage.repositories.pseudo``).

    python benchmarks/storage.py --runs 5

Everything runs on real SQLite files (WAL, ``synchronous=FULL``, foreign keys on: the pragmas
``Database.open`` sets) in a temporary folder. Each run starts from a byte copy of the same prepared
file, so every run sees the same table. Prints medians over ``--runs`` runs as ``name=value``:

- ``write_closed_rows_per_s=``: rows per second through ``PseudoRepository.write_closed`` — the
  whole call, including id generation and timestamp rendering — writing ``--batches`` batches of
  ``--batch-rows`` closed entries over ``--sets`` sets into a table already holding
  ``--prefill`` entries per set (target ≥ 250k rows/s). Batches look like the live book's: every
  entry of a batch closes on one of a few ticks, entries open on trigger ticks.
- ``write_closed_distinct_times_rows_per_s=``: the same with every timestamp distinct (worst case
  for the once-per-distinct-millisecond rendering).
- ``sqlite3_executemany_rows_per_s=``: the floor: the same rows, already prepared as tuples,
  through the ``sqlite3`` module directly on the same file and pragmas.
- ``core_insert_dicts_rows_per_s=``: the conventional Core path, ``connection.execute(insert(t),
  list_of_dicts)`` with datetime values, on a ``--baseline-rows`` sample.
- ``orm_add_all_rows_per_s=``: ``session.add_all(PseudoEntry(...))`` + commit on the same sample.
- ``prune_rolling_ms=``: ``PseudoRepository.prune_rolling(250, 0.2)`` on ``--sets`` sets holding
  300 entries each (written through ``write_closed``, one batch per round of closes) → 250 each
  (target ≤ 250 ms).
- ``delete_floor_ms=``: for context, deleting the same number of rows by rowid range with the
  ``sqlite3`` module (no ranking at all) on the same file.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import insert

from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.storage.database import Database
from cts_desktop.storage.models import PseudoEntry, metadata
from cts_desktop.storage.repositories import ConnectionRepository
from cts_desktop.storage.repositories.pseudo import CLOSE_REASONS, PseudoRepository, PseudoSetSpec

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


I64 = npt.NDArray[np.int64]


def entries(rng: np.random.Generator, set_index: I64, opened_ms: I64, closed_ms: I64) -> ClosedBatch:
    """Closed entries of the given sets and times with plausible prices, results and reasons."""
    rows = set_index.shape[0]
    entry = 100.0 * np.exp(rng.normal(0.0, 0.01, rows))
    result = rng.normal(0.2, 3.0, rows)
    return ClosedBatch(
        set_index=set_index.astype(np.int64),
        opened_ms=opened_ms.astype(np.int64),
        closed_ms=closed_ms.astype(np.int64),
        entry_price=entry,
        exit_price=entry * (1 + result * 0.001),
        result_steps=result,
        pnl_fraction=result * 0.001 - 0.0011,
        fees_fraction=np.full(rows, 0.0011),
        reason=rng.integers(1, len(CLOSE_REASONS), rows).astype(np.int8),
        drawdown_time_ms=rng.integers(0, 600_000, rows).astype(np.int64),
        hold_time_ms=(closed_ms - opened_ms).astype(np.int64),
    )


def make_batch(
    rng: np.random.Generator, rows: int, n_sets: int, start_ms: int, *, distinct_times: bool
) -> ClosedBatch:
    """``rows`` closed entries over ``n_sets`` sets; closes on 10 ticks 100 ms apart, opens on 50
    trigger ticks of the preceding hour (or every timestamp distinct)."""
    set_index: I64 = rng.integers(0, n_sets, rows)
    closed: I64
    opened: I64
    if distinct_times:
        closed = start_ms + np.arange(rows, dtype=np.int64)
        opened = closed - 1 - rng.integers(0, 3_600_000, rows)
    else:
        closed = start_ms + 100 * rng.integers(0, 10, rows)
        opened = start_ms - 72_000 * rng.integers(1, 51, rows)
    return entries(rng, set_index, opened, closed)


async def prepare(path: Path, n_sets: int, per_set: int, rng: np.random.Generator) -> list[str]:
    """A database with ``n_sets`` base sets and ``per_set`` entries each, written round by round."""
    database = await Database.open(str(path))
    try:
        connection = await ConnectionRepository(database).create(name="bench", exchange="bybit")
        repo = PseudoRepository(database)
        set_ids = await repo.upsert_sets(
            [
                PseudoSetSpec(connection.id, "BTCUSDT", "base", "direction", "long", f"cfg-{i:05d}")
                for i in range(n_sets)
            ]
        )
        rounds_per_batch = max(1, 50_000 // n_sets)
        for first in range(0, per_set, rounds_per_batch):
            rounds = min(rounds_per_batch, per_set - first)
            # Every set closes exactly once per round; round r closes at T0 + r seconds.
            closed = T0_MS + 1000 * np.repeat(np.arange(first, first + rounds, dtype=np.int64), n_sets)
            set_index = np.tile(np.arange(n_sets, dtype=np.int64), rounds)
            await repo.write_closed(entries(rng, set_index, closed - 60_000, closed), set_ids)
        async with database.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return set_ids
    finally:
        await database.close()


def fresh_copy(template: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def bench_write_closed(
    template: Path, work: Path, set_ids: list[str], args: argparse.Namespace, *, distinct: bool
) -> float:
    rates = []
    for run in range(args.runs):
        fresh_copy(template, work)
        rng = np.random.default_rng(100 + run)
        batches = [
            make_batch(rng, args.batch_rows, len(set_ids), T0_MS + 10**9 + i * 1000, distinct_times=distinct)
            for i in range(args.batches)
        ]
        database = await Database.open(str(work))
        try:
            repo = PseudoRepository(database)
            async with database.engine.connect() as warm:  # a pooled connection, as in the app
                await warm.exec_driver_sql("SELECT count(*) FROM pseudo_entries")

            async def write_all(repo: PseudoRepository = repo, batches: list[ClosedBatch] = batches) -> None:
                for batch in batches:
                    await repo.write_closed(batch, set_ids)

            seconds = await timed(write_all)
        finally:
            await database.close()
        rates.append(args.batches * args.batch_rows / seconds)
    return float(statistics.median(rates))


def sqlite_text(ms: I64) -> list[str]:
    """UTC timestamps as SQLite stores UTCDateTime values."""
    text = np.datetime_as_string(ms.astype("datetime64[ms]").astype("datetime64[us]"), unit="us")
    rendered: list[str] = np.strings.replace(text, "T", " ").tolist()
    return rendered


def entry_tuples(batch: ClosedBatch, set_ids: list[str]) -> list[tuple[Any, ...]]:
    """The rows ``write_closed`` would write, prepared up front (for the floor measurement);
    the database assigns the integer ids, as in ``write_closed``."""
    order = np.lexsort((batch.closed_ms, batch.set_index))
    names = np.asarray(set_ids, dtype=object)
    return list(
        zip(
            names[batch.set_index[order]].tolist(),
            sqlite_text(batch.opened_ms[order]),
            sqlite_text(batch.closed_ms[order]),
            batch.entry_price[order].tolist(),
            batch.exit_price[order].tolist(),
            batch.result_steps[order].tolist(),
            batch.pnl_fraction[order].tolist(),
            batch.fees_fraction[order].tolist(),
            np.asarray(CLOSE_REASONS, dtype=object)[batch.reason[order]].tolist(),
            (batch.hold_time_ms[order] / 1000).tolist(),
            (batch.drawdown_time_ms[order] / 1000).tolist(),
            strict=True,
        )
    )


def bench_sqlite_floor(template: Path, work: Path, set_ids: list[str], args: argparse.Namespace) -> float:
    rates = []
    sql = (
        "INSERT INTO pseudo_entries (set_id, opened_at, closed_at, entry_price, exit_price, result_steps, "
        "pnl, fees, close_reason, hold_time_s, drawdown_time_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for run in range(args.runs):
        fresh_copy(template, work)
        rng = np.random.default_rng(100 + run)
        rows = [
            entry_tuples(
                make_batch(
                    rng, args.batch_rows, len(set_ids), T0_MS + 10**9 + i * 1000, distinct_times=False
                ),
                set_ids,
            )
            for i in range(args.batches)
        ]
        connection = sqlite3.connect(work, isolation_level=None)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                connection.execute(f"PRAGMA {pragma}")
            start = time.perf_counter()
            for chunk in rows:
                connection.execute("BEGIN")
                connection.executemany(sql, chunk)
                connection.execute("COMMIT")
            seconds = time.perf_counter() - start
        finally:
            connection.close()
        rates.append(args.batches * args.batch_rows / seconds)
    return float(statistics.median(rates))


def orm_objects(batch: ClosedBatch, set_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "set_id": set_ids[batch.set_index[i]],
            "opened_at": EPOCH + timedelta(milliseconds=int(batch.opened_ms[i])),
            "closed_at": EPOCH + timedelta(milliseconds=int(batch.closed_ms[i])),
            "entry_price": float(batch.entry_price[i]),
            "exit_price": float(batch.exit_price[i]),
            "result_steps": float(batch.result_steps[i]),
            "pnl": float(batch.pnl_fraction[i]),
            "fees": float(batch.fees_fraction[i]),
            "close_reason": CLOSE_REASONS[int(batch.reason[i])],
            "hold_time_s": batch.hold_time_ms[i] / 1000,
            "drawdown_time_s": batch.drawdown_time_ms[i] / 1000,
        }
        for i in range(len(batch))
    ]


async def bench_baselines(
    template: Path, work: Path, set_ids: list[str], args: argparse.Namespace
) -> tuple[float, float]:
    """(Core insert with dicts, ORM add_all) rows per second on ``--baseline-rows`` rows."""
    core_rates, orm_rates = [], []
    table = metadata.tables["pseudo_entries"]
    for run in range(args.runs):
        fresh_copy(template, work)
        rng = np.random.default_rng(200 + run)
        batch = make_batch(rng, args.baseline_rows, len(set_ids), T0_MS + 10**9, distinct_times=False)
        database = await Database.open(str(work))
        try:

            async def core(database: Database = database, batch: ClosedBatch = batch) -> None:
                values = orm_objects(batch, set_ids)  # the dict building is part of this path
                async with database.engine.begin() as connection:
                    await connection.execute(insert(table), values)

            core_rates.append(args.baseline_rows / await timed(core))

            async def orm(database: Database = database, batch: ClosedBatch = batch) -> None:
                async with database.sessions() as session, session.begin():
                    session.add_all([PseudoEntry(**row) for row in orm_objects(batch, set_ids)])

            orm_rates.append(args.baseline_rows / await timed(orm))
        finally:
            await database.close()
    return float(statistics.median(core_rates)), float(statistics.median(orm_rates))


async def bench_prune(template: Path, work: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """(prune_rolling ms, delete-by-rowid floor ms, rows deleted per run)."""
    prune_ms, floor_ms = [], []
    deleted = 0
    for _ in range(args.runs):
        fresh_copy(template, work)
        database = await Database.open(str(work))
        try:
            repo = PseudoRepository(database)
            async with database.engine.connect() as warm:  # a pooled connection, as in the app
                await warm.exec_driver_sql("SELECT count(*) FROM pseudo_entries")
            start = time.perf_counter()
            deleted = await repo.prune_rolling(250, 0.2)
            prune_ms.append((time.perf_counter() - start) * 1000)
            counts = set((await repo.entry_counts()).values())
            if counts != {250}:
                raise AssertionError(f"prune left set sizes {sorted(counts)}, expected 250 each")
        finally:
            await database.close()
        fresh_copy(template, work)
        connection = sqlite3.connect(work, isolation_level=None)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                connection.execute(f"PRAGMA {pragma}")
            start = time.perf_counter()
            connection.execute("BEGIN")
            connection.execute(
                "DELETE FROM pseudo_entries WHERE rowid IN "
                "(SELECT rowid FROM pseudo_entries ORDER BY rowid LIMIT ?)",
                (deleted,),
            )
            connection.execute("COMMIT")
            floor_ms.append((time.perf_counter() - start) * 1000)
        finally:
            connection.close()
    return float(statistics.median(prune_ms)), float(statistics.median(floor_ms)), deleted


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--prefill", type=int, default=250, help="entries per set before the write runs")
    parser.add_argument("--batch-rows", type=int, default=25_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database files")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cts-bench-", dir=args.dir))
    try:
        rng = np.random.default_rng(7)
        write_template = folder / "write-template.db"
        set_ids = await prepare(write_template, args.sets, args.prefill, rng)
        prune_template = folder / "prune-template.db"
        await prepare(prune_template, args.sets, 300, rng)
        work = folder / "work.db"

        print(f"sets={args.sets}")
        print(f"prefill_rows={args.sets * args.prefill}")
        print(f"batch_rows={args.batch_rows}")
        print(f"batches_per_run={args.batches}")
        print(f"runs={args.runs}")
        print(f"sqlite_version={sqlite3.sqlite_version}")
        rate = await bench_write_closed(write_template, work, set_ids, args, distinct=False)
        print(f"write_closed_rows_per_s={rate:.0f}")
        rate = await bench_write_closed(write_template, work, set_ids, args, distinct=True)
        print(f"write_closed_distinct_times_rows_per_s={rate:.0f}")
        print(f"sqlite3_executemany_rows_per_s={bench_sqlite_floor(write_template, work, set_ids, args):.0f}")
        core, orm = await bench_baselines(write_template, work, set_ids, args)
        print(f"baseline_rows={args.baseline_rows}")
        print(f"core_insert_dicts_rows_per_s={core:.0f}")
        print(f"orm_add_all_rows_per_s={orm:.0f}")
        prune_ms, floor_ms, deleted = await bench_prune(prune_template, work, args)
        print(f"prune_rows_before={args.sets * 300}")
        print(f"prune_rows_deleted={deleted}")
        print(f"prune_rolling_ms={prune_ms:.0f}")
        print(f"delete_floor_ms={floor_ms:.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
