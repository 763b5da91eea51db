"""The handwritten migrations produce exactly the models, and upgrades keep (and back up) data."""

# Setting up and inspecting small files on disk is the point of these tests; blocking there is fine.

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from cts_desktop.storage.database import (
    HEAD_REVISION,
    KNOWN_REVISIONS,
    Database,
    DatabaseError,
    alembic_config,
    current_revision,
    make_engine,
)
from cts_desktop.storage.models import metadata
from cts_desktop.storage.repositories import AuditRepository, ConnectionRepository, SettingsRepository
from cts_desktop.storage.repositories.pseudo import PseudoRepository
from tests.storage.conftest import create_at_revision, sqlite_revision

CORE_TABLES = {"settings", "connections", "engine_states", "audit_log", "system_log"}


def schema_diff(connection: Connection, target: sa.MetaData = metadata) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, target))


def _normalise_sql(text: str) -> str:
    return re.sub(r'[\s()"]', "", text)


def constraint_rules(connection: Connection, with_sql: bool = True) -> dict[str, Any]:
    """CHECK constraints and ON DELETE rules as the database has them. Alembic's comparison
    does not look at either, and both carry meaning here (RESTRICT keeps trading history).
    PostgreSQL rewrites CHECK expressions (``IN`` becomes ``= ANY (ARRAY[...])``), so there
    only the names are compared."""
    inspector = sa.inspect(connection)
    rules: dict[str, Any] = {}
    for table in metadata.tables:
        rules[table] = {
            "checks": {
                (c["name"], _normalise_sql(c["sqltext"]) if with_sql else "")
                for c in inspector.get_check_constraints(table)
            },
            "fks": {
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    (fk["options"].get("ondelete") or "").upper(),
                )
                for fk in inspector.get_foreign_keys(table)
            },
        }
    return rules


def model_rules(dialect: sa.Dialect, with_sql: bool = True) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for name, table in metadata.tables.items():
        checks = set()
        fks = set()
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                sql = str(constraint.sqltext.compile(dialect=dialect))
                checks.add((constraint.name, _normalise_sql(sql) if with_sql else ""))
            elif isinstance(constraint, sa.ForeignKeyConstraint):
                fks.add(
                    (
                        constraint.name,
                        tuple(constraint.column_keys),
                        constraint.referred_table.name,
                        (constraint.ondelete or "").upper(),
                    )
                )
        rules[name] = {"checks": checks, "fks": fks}
    return rules


def test_head_revision_is_the_last_migration() -> None:
    assert max(KNOWN_REVISIONS) == HEAD_REVISION
    assert sorted(KNOWN_REVISIONS) == [f"{n:04d}" for n in range(1, int(HEAD_REVISION) + 1)]


@pytest.mark.asyncio
async def test_an_empty_database_reaches_head_and_matches_the_models(db: Database) -> None:
    assert await current_revision(db.engine) == HEAD_REVISION
    async with db.engine.connect() as connection:
        assert await connection.run_sync(schema_diff) == []
        tables = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert tables == set(metadata.tables) | {"alembic_version"}


@pytest.mark.asyncio
async def test_the_schema_comparison_does_notice_differences(db: Database) -> None:
    """Guards the test above against comparing nothing."""
    changed = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["orders"].append_column(sa.Column("extra", sa.Integer()))
    sa.Index("ix_fills_at", changed.tables["fills"].c.at)
    changed.tables["candles"].c.volume.type = sa.String(10)
    async with db.engine.connect() as connection:
        diff = await connection.run_sync(schema_diff, changed)
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff}
    assert {"add_column", "add_index", "modify_type"} <= kinds


@pytest.mark.asyncio
async def test_check_constraints_and_delete_rules_match_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        in_database = await connection.run_sync(constraint_rules)
    assert in_database == model_rules(db.engine.dialect)
    assert ("fk_orders_connection_id_connections", ("connection_id",), "connections", "RESTRICT") in (
        in_database["orders"]["fks"]
    )


def test_no_column_can_hold_a_credential() -> None:
    forbidden = re.compile(r"api_?key|secret|passphrase|password|private")
    columns = [
        f"{table.name}.{column.name}" for table in metadata.tables.values() for column in table.columns
    ]
    assert not [column for column in columns if forbidden.search(column)]


@pytest.mark.asyncio
async def test_downgrade_and_upgrade_again(db_path: Path) -> None:
    await create_at_revision(db_path, "head")
    engine = make_engine(f"sqlite+aiosqlite:///{db_path}", foreign_keys=False, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: command.downgrade(alembic_config(c), "0001"))
        assert sqlite_revision(db_path) == "0001"
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
        assert tables == CORE_TABLES | {"alembic_version"}
    finally:
        await engine.dispose()
    database = await Database.open(str(db_path))
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(schema_diff) == []
    finally:
        await database.close()


def _insert_0001_rows(path: Path) -> None:
    """Rows as release 0001 wrote them, with plain SQL (no models: they describe head)."""
    connection = sqlite3.connect(path)
    stamp = "2024-05-01 12:00:00.000000"
    connection.execute(
        "INSERT INTO settings (key, value, updated_at, updated_by) "
        "VALUES ('ui.theme', '\"dark\"', ?, 'user')",
        (stamp,),
    )
    connection.execute(
        """INSERT INTO connections (id, name, exchange, api_type, connection_method, margin_mode,
               position_mode, is_testnet, is_enabled, is_live_trade, is_preset_trade, is_predefined,
               live_volume_factor, preset_volume_factor, settings, api_capabilities, restart_required,
               created_at, updated_at)
           VALUES ('c-1', 'Bybit X03', 'bybit', 'unified', 'library', 'cross', 'hedge', 1, 1, 0, 0, 1,
                   1.0, 0.5, '{"pf_min_base": 0.6}', '["spot"]', 0, ?, ?)""",
        (stamp, stamp),
    )
    connection.execute(
        """INSERT INTO audit_log (at, actor, action, entity_type, entity_id, connection_id, before, after,
                                  reason)
           VALUES (?, 'user', 'connection.create', 'connection', 'c-1', 'c-1', NULL, '{"name": "Bybit X03"}',
                   'setup')""",
        (stamp,),
    )
    connection.commit()
    connection.close()


@pytest.mark.asyncio
async def test_an_old_database_is_backed_up_then_upgraded_with_its_rows(
    db_path: Path, backup_dir: Path
) -> None:
    await create_at_revision(db_path, "0001")
    _insert_0001_rows(db_path)

    database = await Database.open(str(db_path), backup_dir=backup_dir)
    try:
        assert (await database.info()).revision == HEAD_REVISION
        assert await SettingsRepository(database).load_all() == {"ui.theme": "dark"}
        connection = await ConnectionRepository(database).get("c-1")
        assert connection is not None
        assert (connection.name, connection.is_enabled, connection.preset_volume_factor) == (
            "Bybit X03",
            True,
            0.5,
        )
        assert connection.settings == {"pf_min_base": 0.6}
        assert connection.created_at.isoformat() == "2024-05-01T12:00:00+00:00"
        (audit,) = await AuditRepository(database).recent()
        assert (audit.action, audit.before, audit.after, audit.reason) == (
            "connection.create",
            None,
            {"name": "Bybit X03"},
            "setup",
        )
        async with database.engine.connect() as conn:
            assert await conn.run_sync(schema_diff) == []
    finally:
        await database.close()

    (backup,) = backup_dir.iterdir()
    assert re.fullmatch(r"cts-pre-0001-\d{8}T\d{6}Z\.db", backup.name), backup.name
    assert sqlite_revision(backup) == "0001"
    check = sqlite3.connect(f"{backup.as_uri()}?mode=ro", uri=True)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("SELECT value FROM settings WHERE key = 'ui.theme'").fetchall() == [('"dark"',)]
        assert "orders" not in {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
    finally:
        check.close()


@pytest.mark.asyncio
async def test_the_backup_includes_commits_still_in_the_wal(tmp_path: Path, backup_dir: Path) -> None:
    """A crash leaves committed rows in the -wal only; copying the .db file would lose them."""
    original = tmp_path / "live" / "cts.db"
    await create_at_revision(original, "0001")
    writer = sqlite3.connect(original)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute(
        """INSERT INTO settings (key, value, updated_at, updated_by)
           VALUES ('k', '"on"', '2024-01-01 00:00:00', 'user')"""
    )
    writer.commit()
    crashed = tmp_path / "crashed" / "cts.db"
    crashed.parent.mkdir()
    for suffix in ("", "-wal"):  # what a power cut leaves behind, taken while the writer is open
        Path(f"{crashed}{suffix}").write_bytes(Path(f"{original}{suffix}").read_bytes())
    writer.close()
    assert Path(f"{crashed}-wal").stat().st_size > 0

    database = await Database.open(str(crashed), backup_dir=backup_dir)
    try:
        assert await SettingsRepository(database).load_all() == {"k": "on"}
    finally:
        await database.close()
    (backup,) = backup_dir.iterdir()
    check = sqlite3.connect(backup)
    try:
        assert check.execute("SELECT key, value FROM settings").fetchall() == [("k", '"on"')]
    finally:
        check.close()


@pytest.mark.asyncio
async def test_a_failed_upgrade_is_rolled_back_completely(db_path: Path, backup_dir: Path) -> None:
    """A table in the way of the last step of 0002 makes the upgrade fail after several tables
    were created: none of them may remain, and the revision stays 0001."""
    await create_at_revision(db_path, "0001")
    _insert_0001_rows(db_path)
    blocker = sqlite3.connect(db_path)
    blocker.execute("CREATE TABLE backtest_results (id INTEGER)")
    blocker.commit()
    blocker.close()

    with pytest.raises(DatabaseError) as caught:
        await Database.open(str(db_path), backup_dir=backup_dir)
    message = str(caught.value)
    assert "rolled back" in message
    assert "backtest_results" in message
    assert sqlite_revision(db_path) == "0001"
    check = sqlite3.connect(db_path)
    try:
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == CORE_TABLES | {"alembic_version", "backtest_results"}
        assert check.execute("SELECT count(*) FROM connections").fetchone() == (1,)
    finally:
        check.close()
    assert len(list(backup_dir.iterdir())) == 1


def _insert_0004_pseudo_rows(path: Path) -> list[tuple[str, str]]:
    """A set with four entries under text ids, written out of close-time order; returns the
    (old id, closed_at) pairs in the order the newest-first reads expect them after 0005."""
    connection = sqlite3.connect(path)
    stamp = "2024-05-01 12:00:00.000000"
    connection.execute(
        """INSERT INTO connections (id, name, exchange, api_type, connection_method, margin_mode,
               position_mode, is_testnet, is_enabled, is_live_trade, is_preset_trade, is_predefined,
               live_volume_factor, preset_volume_factor, settings, api_capabilities, restart_required,
               created_at, updated_at)
           VALUES ('c-1', 'Paper', 'bybit', 'unified', 'library', 'cross', 'hedge', 0, 1, 0, 0, 0,
                   1.0, 1.0, '{}', '[]', 0, ?, ?)""",
        (stamp, stamp),
    )
    connection.execute(
        """INSERT INTO pseudo_sets (id, connection_id, symbol, level, indication_type, direction, config_key,
               params, status, phase, entries, wins, losses, gross_profit, gross_loss, sum_result_steps,
               max_drawdown, drawdown_time_s, created_at, updated_at)
           VALUES ('s-1', 'c-1', 'BTC/USDT', 'base', 'direction', 'long', 'k', '{}', 'evaluating', 1,
                   0, 0, 0, 0, 0, 0, 0, 0, ?, ?)""",
        (stamp, stamp),
    )
    rows = [
        ("b", "2024-05-01 12:00:03.000000", 3.0),
        ("a", "2024-05-01 12:00:01.000000", 1.0),
        ("d", "2024-05-01 12:00:02.000000", 2.0),
        ("c", "2024-05-01 12:00:02.000000", 2.5),  # a tie on close time: the old id breaks it
    ]
    connection.executemany(
        """INSERT INTO pseudo_entries (id, set_id, opened_at, closed_at, entry_price, exit_price,
               result_steps, pnl, fees, close_reason, hold_time_s, drawdown_time_s)
           VALUES (?, 's-1', ?, ?, 100.0, 101.0, ?, 0.01, 0.001, 'takeprofit', 1.0, 0.0)""",
        [(old_id, stamp, closed, steps) for old_id, closed, steps in rows],
    )
    connection.commit()
    connection.close()
    return [("b", rows[0][1]), ("d", rows[2][1]), ("c", rows[3][1]), ("a", rows[1][1])]


@pytest.mark.asyncio
async def test_0005_gives_pseudo_entries_integer_keys_and_keeps_every_row_in_order(
    db_path: Path, backup_dir: Path
) -> None:
    await create_at_revision(db_path, "0004")
    expected = _insert_0004_pseudo_rows(db_path)
    database = await Database.open(str(db_path), backup_dir=backup_dir)
    try:
        newest = await PseudoRepository(database).newest_entries("s-1", 10)
        steps_by_old_id = {"a": 1.0, "b": 3.0, "c": 2.5, "d": 2.0}
        assert [entry.result_steps for entry in newest] == [steps_by_old_id[old] for old, _ in expected]
        assert all(isinstance(entry.id, int) for entry in newest)
        assert [entry.closed_at.strftime("%Y-%m-%d %H:%M:%S.%f") for entry in newest] == [
            closed for _, closed in expected
        ]
        async with database.engine.connect() as conn:
            assert await conn.run_sync(schema_diff) == []
    finally:
        await database.close()
    engine = make_engine(f"sqlite+aiosqlite:///{db_path}", foreign_keys=False, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: command.downgrade(alembic_config(c), "0004"))
            rows = (await connection.exec_driver_sql("SELECT id, result_steps FROM pseudo_entries")).all()
        assert sorted(step for _, step in rows) == [1.0, 2.0, 2.5, 3.0]
        assert all(isinstance(old_id, str) for old_id, _ in rows)
    finally:
        await engine.dispose()
