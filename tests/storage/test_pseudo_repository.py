"""PseudoRepository on real SQLite files and on a throwaway PostgreSQL server (see conftest)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from cts_desktop.engine.pseudo.closed import ClosedBatch
from cts_desktop.engine.pseudo.geometry import ExitReason
from cts_desktop.engine.pseudo.rolling import trigger_count
from cts_desktop.engine.pseudo.stats import SetStats
from cts_desktop.storage.database import Database
from cts_desktop.storage.models import PseudoEntry
from cts_desktop.storage.repositories import ConnectionRepository
from cts_desktop.storage.repositories.pseudo import (
    CLOSE_REASONS,
    ClosedColumns,
    PseudoRepository,
    PseudoSetSpec,
    SetAggregates,
)
from tests.engine.pseudo.test_stats import closed

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """A real SQLite file, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(db_path)
    return str(request.getfixturevalue("postgres_url"))


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = await Database.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def connection_id(database: Database) -> str:
    return (await ConnectionRepository(database).create(name="test", exchange="bybit")).id


def specs(conn: str, count: int, *, level: str = "base", prefix: str = "cfg") -> list[PseudoSetSpec]:
    return [
        PseudoSetSpec(conn, "BTCUSDT", level, "direction", "long", f"{prefix}-{i:05d}", {"tp": i})
        for i in range(count)
    ]


def entries_for(set_index: int, count: int, *, start_ms: int = T0_MS, step_ms: int = 1000) -> ClosedBatch:
    times = [start_ms + i * step_ms for i in range(count)]
    return closed([set_index] * count, [1.0] * count, closed_ms=times)


# --------------------------------------------------------------------------- sets


@pytest.mark.asyncio
async def test_upsert_sets_returns_stable_ids_in_order(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    first = await repo.upsert_sets(specs(conn, 3))
    assert len(set(first)) == 3
    await repo.update_set_aggregates(
        SetAggregates([first[1]], ["active"], [3], [60], [30], [30], [45.0], [15.0], [30.0], [0.1], [7.5])
    )
    again = await repo.upsert_sets(list(reversed(specs(conn, 4))))
    assert again[1:] == list(reversed(first)) and again[0] not in first
    (kept,) = await repo.get_sets([first[1]])
    assert (kept.status, kept.phase, kept.entries, kept.gross_profit) == ("active", 3, 60, 45.0)
    assert kept.params == {"tp": 1} and kept.updated_at.tzinfo is not None
    fresh = (await repo.get_sets([again[0]]))[0]
    assert (fresh.status, fresh.phase, fresh.entries, fresh.level) == ("evaluating", 1, 0, "base")
    assert await repo.upsert_sets([]) == []


@pytest.mark.asyncio
async def test_upsert_many_sets_reads_ids_back_in_chunks(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    ids = await repo.upsert_sets(specs(conn, 4500))  # more keys than one read-back query takes
    assert len(set(ids)) == 4500
    assert await repo.upsert_sets(specs(conn, 4500)) == ids


# --------------------------------------------------------------------------- closed entries


@pytest.mark.asyncio
async def test_write_closed_round_trips_every_column(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 2))
    batch = ClosedBatch(
        set_index=np.array([1, 0, 1], dtype=np.int64),
        opened_ms=np.array([T0_MS - 60_000, T0_MS - 1, T0_MS + 7], dtype=np.int64),
        closed_ms=np.array([T0_MS + 1_234, T0_MS + 5, T0_MS + 999_999], dtype=np.int64),
        entry_price=np.array([100.0, 200.0, 300.0]),
        exit_price=np.array([101.0, 199.0, 303.0]),
        result_steps=np.array([10.0, -5.0, 10.0]),
        pnl_fraction=np.array([0.008, -0.006, 0.009]),
        fees_fraction=np.array([0.0011, 0.0012, 0.0013]),
        reason=np.array(
            [ExitReason.TAKE_PROFIT, ExitReason.STOP_LOSS, ExitReason.TRAILING_STOP], dtype=np.int8
        ),
        drawdown_time_ms=np.array([500, 1500, 0], dtype=np.int64),
        hold_time_ms=np.array([61_234, 6, 999_992], dtype=np.int64),
    )
    assert await repo.write_closed(batch, set_ids) == 3
    assert await repo.entry_counts() == {set_ids[0]: 1, set_ids[1]: 2}
    newest = await repo.newest_entries(set_ids[1], 10)
    assert [e.closed_at for e in newest] == [at(T0_MS + 999_999), at(T0_MS + 1_234)]
    latest = newest[0]
    assert latest.opened_at == at(T0_MS + 7) and latest.opened_at.tzinfo is not None
    assert (latest.entry_price, latest.exit_price, latest.result_steps) == (300.0, 303.0, 10.0)
    assert (latest.pnl, latest.fees, latest.close_reason) == (0.009, 0.0013, "trailing_stop")
    assert (latest.hold_time_s, latest.drawdown_time_s) == (999.992, 0.0)
    (loss,) = await repo.newest_entries(set_ids[0], 10)
    assert (loss.close_reason, loss.drawdown_time_s, loss.closed_at) == ("stoploss", 1.5, at(T0_MS + 5))
    # The ORM reads the same rows back (the model's UTCDateTime understands what was written).
    async with database.sessions() as session:
        rows = (await session.execute(select(PseudoEntry).order_by(PseudoEntry.closed_at))).scalars().all()
    assert [row.closed_at for row in rows] == [at(T0_MS + 5), at(T0_MS + 1_234), at(T0_MS + 999_999)]


@pytest.mark.asyncio
async def test_ids_follow_write_order(database: Database) -> None:
    """Integer ids grow with every batch (ties on close time break by write order), and within
    a batch rows go in by close time."""
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 1))
    await repo.write_closed(entries_for(0, 5), set_ids)
    await repo.write_closed(entries_for(0, 5, start_ms=T0_MS - 10**6), set_ids)  # older closes, written later
    async with database.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, closed_at FROM pseudo_entries ORDER BY id"))).all()
    ids = [row[0] for row in rows]
    assert all(isinstance(value, int) for value in ids) and len(set(ids)) == 10
    first, second = rows[:5], rows[5:]
    assert min(row[1] for row in first) > max(row[1] for row in second)  # the first batch closed later
    assert [row[1] for row in first] == sorted(row[1] for row in first)  # within a batch: by close
    assert [row[1] for row in second] == sorted(row[1] for row in second)


@pytest.mark.asyncio
async def test_sqlite_timestamps_are_stored_exactly_as_the_orm_stores_them(db: Database) -> None:
    conn = await connection_id(db)
    repo = PseudoRepository(db)
    set_ids = await repo.upsert_sets(specs(conn, 1))
    ms = T0_MS + 123_456_789
    await repo.write_closed(closed([0], [1.0], closed_ms=[ms]), set_ids)
    async with db.sessions() as session, session.begin():
        session.add(
            PseudoEntry(set_id=set_ids[0], opened_at=at(ms - 60_000), closed_at=at(ms), entry_price=1.0)
        )
    async with db.engine.connect() as connection:
        stored = (await connection.exec_driver_sql("SELECT opened_at, closed_at FROM pseudo_entries")).all()
    assert stored[0] == stored[1] == ("2026-01-02 10:16:36.789000", "2026-01-02 10:17:36.789000")


@pytest.mark.asyncio
async def test_aggregates_are_written_with_the_entries_or_not_at_all(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 2))
    stats = SetStats(2)
    batch = closed([0, 0, 1], [2.0, -1.0, 3.0], pnl=[0.02, -0.01, 0.03])
    stats.apply(batch)
    columns = stats.aggregate_columns(np.array([0, 1]))
    good = SetAggregates(set_ids, ["evaluating", "evaluating"], [1, 1], **columns)
    await repo.write_closed(batch, set_ids, aggregates=good)
    records = await repo.get_sets(set_ids)
    assert [(r.entries, r.wins, r.losses, r.gross_profit, r.gross_loss) for r in records] == [
        (2, 1, 1, 2.0, 1.0),
        (1, 1, 0, 3.0, 0.0),
    ]
    assert records[0].max_drawdown == pytest.approx(0.01 / 1.02)

    bad = SetAggregates(set_ids, [None, "active"], [2, 2], **columns)  # type: ignore[list-item]
    with pytest.raises(IntegrityError):
        await repo.write_closed(batch, set_ids, aggregates=bad)
    assert sum((await repo.entry_counts()).values()) == 3  # the batch was rolled back with it
    assert await repo.write_closed(ClosedBatch.empty(), set_ids) == 0


@pytest.mark.asyncio
async def test_bad_batches_are_refused_before_anything_is_written(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 1))
    with pytest.raises(IndexError):
        await repo.write_closed(closed([1], [1.0]), set_ids)
    bad_reason = closed([0], [1.0])
    object.__setattr__(bad_reason, "reason", np.array([9], dtype=np.int8))
    with pytest.raises(ValueError, match="close reason"):
        await repo.write_closed(bad_reason, set_ids)
    with pytest.raises(IntegrityError):  # an id that names no set: the foreign key refuses it
        await repo.write_closed(closed([0, 1], [1.0, 1.0]), [set_ids[0], str(uuid.uuid4())])
    assert await repo.entry_counts() == {}


def test_close_reasons_follow_the_engines_exit_codes() -> None:
    assert {reason: CLOSE_REASONS[reason] for reason in ExitReason} == {
        ExitReason.OPEN: None,
        ExitReason.TAKE_PROFIT: "takeprofit",
        ExitReason.STOP_LOSS: "stoploss",
        ExitReason.TRAILING_STOP: "trailing_stop",
        ExitReason.TIMEOUT: "timeout",
        ExitReason.MANUAL: "manual",
    }
    batch: ClosedColumns = ClosedBatch.empty()  # the engine's batch satisfies the storage protocol
    assert len(batch) == 0


# --------------------------------------------------------------------------- rolling prune (D8)


@pytest.mark.asyncio
async def test_prune_at_299_does_nothing_and_at_300_keeps_the_newest_250(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 3))
    for index, count in enumerate((299, 300, 310)):
        await repo.write_closed(entries_for(index, count, start_ms=T0_MS + index), set_ids)
    assert await repo.prune_rolling(250, 0.2) == 50 + 60
    assert await repo.entry_counts() == {set_ids[0]: 299, set_ids[1]: 250, set_ids[2]: 250}
    kept = await repo.newest_entries(set_ids[1], 1000)
    assert kept[-1].closed_at == at(T0_MS + 1 + 50 * 1000)  # the 50 oldest went
    assert kept[0].closed_at == at(T0_MS + 1 + 299 * 1000)
    assert await repo.prune_rolling(250, 0.2) == 0  # 250 is far from the next trigger


@pytest.mark.asyncio
async def test_prune_breaks_close_time_ties_by_write_order(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 1))
    await repo.write_closed(entries_for(0, 50, step_ms=0), set_ids)  # 50 closes at one instant
    late = entries_for(0, 5, step_ms=0)
    object.__setattr__(late, "result_steps", np.full(5, 7.0))
    await repo.write_closed(late, set_ids)  # 5 more at the same instant, written later
    assert await repo.prune_rolling(50, 0.1) == 5
    kept = await repo.newest_entries(set_ids[0], 100)
    assert len(kept) == 50 and sum(e.result_steps == 7.0 for e in kept) == 5


@pytest.mark.asyncio
async def test_prune_only_the_given_level(database: Database) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    base = await repo.upsert_sets(specs(conn, 1, level="base"))
    main = await repo.upsert_sets(specs(conn, 1, level="main"))
    set_ids = base + main
    await repo.write_closed(closed([0] * 60 + [1] * 60, [1.0] * 120, closed_ms=list(range(120))), set_ids)
    assert await repo.prune_rolling(50, 0.2, level="main") == 10
    assert await repo.entry_counts() == {base[0]: 60, main[0]: 50}
    assert await repo.prune_rolling(50, 0.2) == 10
    with pytest.raises(ValueError):
        await repo.prune_rolling(0, 0.2)


@pytest.mark.asyncio
async def test_prune_keeps_exactly_the_newest_by_close_time_then_id(database: Database) -> None:
    """Close times out of write order, ties, and entries without a close time (they sort oldest)."""
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 3))
    rng = np.random.default_rng(5)
    for _ in range(3):  # three batches whose close times overlap and repeat
        set_index = rng.integers(0, 3, 90)
        times = T0_MS + 1000 * rng.integers(0, 40, 90)
        await repo.write_closed(closed(set_index.tolist(), [1.0] * 90, closed_ms=times.tolist()), set_ids)
    async with database.engine.begin() as connection:  # a few open-ended rows written elsewhere
        await connection.execute(
            PseudoEntry.__table__.insert(),
            [
                {
                    "set_id": set_ids[i % 3],
                    "opened_at": at(T0_MS),
                    "entry_price": 1.0,
                }
                for i in range(6)
            ],
        )
    limit, threshold = 60, 0.2
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(select(PseudoEntry.id, PseudoEntry.set_id, PseudoEntry.closed_at))
        ).all()
    expected: set[int] = set()
    for set_id in set_ids:
        own = [row for row in rows if row.set_id == set_id]
        if len(own) < trigger_count(limit, threshold):
            expected.update(row.id for row in own)
            continue
        own.sort(key=lambda row: (row.closed_at is not None, row.closed_at or at(0), row.id), reverse=True)
        expected.update(row.id for row in own[:limit])
    deleted = await repo.prune_rolling(limit, threshold)
    async with database.engine.connect() as connection:
        left = set((await connection.execute(select(PseudoEntry.id))).scalars())
    assert left == expected and deleted == len(rows) - len(expected) > 0


@pytest.mark.asyncio
async def test_newest_first_is_read_from_the_index_alone(db: Database) -> None:
    """The prune's per-set ordering needs neither the table nor a sort on SQLite."""
    async with db.engine.connect() as connection:
        plan = " | ".join(
            str(row[-1])
            for row in await connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM pseudo_entries WHERE set_id = 'x' "
                "ORDER BY closed_at DESC NULLS LAST, id DESC LIMIT -1 OFFSET 250"
            )
        )
    assert "COVERING INDEX ix_pseudo_entries_set_id_closed_at_id" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(("limit", "threshold"), [(50, 0.1), (100, 0.25), (150, 0.5)])
@pytest.mark.asyncio
async def test_prune_with_lengths_and_thresholds_from_the_ranges(
    database: Database, limit: int, threshold: float
) -> None:
    conn = await connection_id(database)
    repo = PseudoRepository(database)
    set_ids = await repo.upsert_sets(specs(conn, 2))
    trigger = trigger_count(limit, threshold)
    await repo.write_closed(entries_for(0, trigger - 1), set_ids)
    await repo.write_closed(entries_for(1, trigger), set_ids)
    assert await repo.prune_rolling(limit, threshold) == trigger - limit
    assert await repo.entry_counts() == {set_ids[0]: trigger - 1, set_ids[1]: limit}


@pytest.mark.asyncio
async def test_deleting_a_set_takes_its_entries(db: Database) -> None:
    conn = await connection_id(db)
    repo = PseudoRepository(db)
    set_ids = await repo.upsert_sets(specs(conn, 1))
    await repo.write_closed(entries_for(0, 3), set_ids)
    async with db.engine.begin() as connection:
        await connection.execute(text("DELETE FROM pseudo_sets"))
    assert await repo.entry_counts() == {}
