"""Opening databases: pragmas, refusing bad files without touching them, URL resolution."""

# Setting up and inspecting small files on disk is the point of these tests; blocking there is fine.

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from cts_desktop.paths import AppPaths
from cts_desktop.storage.database import (
    HEAD_REVISION,
    Database,
    DatabaseError,
    redact_url,
    resolve_database_url,
)
from tests.storage.conftest import create_at_revision


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def _make_populated_database(path: Path, rows: int = 3000) -> None:
    """A valid, checkpointed database of several hundred pages."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    connection.executemany(
        "INSERT INTO filler (payload) VALUES (?)", [(f"row {i} " + "x" * 200,) for i in range(rows)]
    )
    connection.commit()
    connection.close()


# --------------------------------------------------------------------------- opening


@pytest.mark.asyncio
async def test_a_new_database_is_created_migrated_and_configured(db_path: Path) -> None:
    assert not db_path.parent.exists()
    database = await Database.open(str(db_path))
    try:
        info = await database.info()
        assert info.backend == "sqlite"
        assert info.revision == HEAD_REVISION
        assert info.journal_mode == "wal"
        assert info.path == str(db_path.resolve())
        assert info.url == f"sqlite+aiosqlite:///{db_path.resolve()}"
        async with database.engine.connect() as connection:
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}
    finally:
        await database.close()


@pytest.mark.asyncio
async def test_every_pooled_connection_gets_the_pragmas(db: Database) -> None:
    """The pragmas are per connection: two connections held at once must both have them."""
    async with db.engine.connect() as first, db.engine.connect() as second:
        for connection in (first, second):
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
            assert (await connection.exec_driver_sql("PRAGMA synchronous")).scalar_one() == 2


@pytest.mark.asyncio
async def test_reopening_a_current_database_makes_no_backup(db_path: Path, backup_dir: Path) -> None:
    await (await Database.open(str(db_path), backup_dir=backup_dir)).close()
    await (await Database.open(str(db_path), backup_dir=backup_dir)).close()
    assert not backup_dir.exists() or not any(backup_dir.iterdir())


@pytest.mark.asyncio
async def test_an_empty_file_is_treated_as_a_new_database(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    database = await Database.open(str(db_path))
    try:
        assert (await database.info()).revision == HEAD_REVISION
    finally:
        await database.close()


@pytest.mark.asyncio
async def test_migrate_false_leaves_an_empty_database_empty(db_path: Path) -> None:
    database = await Database.open(str(db_path), migrate=False)
    try:
        assert (await database.info()).revision is None
    finally:
        await database.close()


@pytest.mark.asyncio
async def test_database_is_an_async_context_manager(db_path: Path) -> None:
    async with await Database.open(str(db_path)) as database:
        assert (await database.info()).revision == HEAD_REVISION


# --------------------------------------------------------------------------- refusing files


@pytest.mark.asyncio
async def test_random_bytes_are_refused_and_left_unchanged(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(os.urandom(16384))
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError) as caught:
        await Database.open(str(db_path))
    message = str(caught.value)
    assert str(db_path) in message
    assert "not an SQLite database" in message
    assert "left unchanged" in message
    assert db_path.read_bytes() == before
    assert _siblings(db_path) == {db_path.name}  # no -wal or -shm was created either


@pytest.mark.asyncio
async def test_a_half_written_database_is_refused_and_left_unchanged(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    _make_populated_database(db_path)
    data = db_path.read_bytes()
    db_path.write_bytes(data[: len(data) // 2])
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError) as caught:
        await Database.open(str(db_path))
    message = str(caught.value)
    assert str(db_path) in message
    assert "truncated" in message
    assert db_path.read_bytes() == before
    assert _siblings(db_path) == {db_path.name}


@pytest.mark.asyncio
async def test_a_file_shorter_than_the_header_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00")
    with pytest.raises(DatabaseError, match="truncated"):
        await Database.open(str(db_path))


@pytest.mark.asyncio
async def test_damage_inside_a_database_is_found_before_an_upgrade(db_path: Path, backup_dir: Path) -> None:
    """A sound header but damaged pages: the integrity check runs before backing up and upgrading."""
    await create_at_revision(db_path, "0001")
    connection = sqlite3.connect(db_path)
    connection.executemany(
        "INSERT INTO system_log (at, level, logger, message) "
        "VALUES ('2024-01-01 00:00:00.000000', 'INFO', 'x', ?)",
        [("m" * 300,) for _ in range(2000)],
    )
    connection.commit()
    connection.close()
    data = bytearray(db_path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for offset in range(page_size * 3, len(data) - page_size, page_size * 7):
        data[offset : offset + 64] = os.urandom(64)
    db_path.write_bytes(bytes(data))
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError) as caught:
        await Database.open(str(db_path), backup_dir=backup_dir)
    assert str(db_path) in str(caught.value)
    assert "damaged" in str(caught.value)
    assert db_path.read_bytes() == before
    assert not backup_dir.exists()


@pytest.mark.asyncio
@pytest.mark.parametrize("migrate", [True, False])
async def test_a_database_from_a_newer_version_is_refused_untouched(db_path: Path, migrate: bool) -> None:
    await (await Database.open(str(db_path))).close()
    connection = sqlite3.connect(db_path)
    connection.execute("UPDATE alembic_version SET version_num = '9999'")
    connection.commit()
    connection.close()
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError) as caught:
        await Database.open(str(db_path), migrate=migrate, backup_dir=db_path.parent / "backups")
    message = str(caught.value)
    assert "created by a newer version of cts-desktop" in message
    assert "update the application" in message
    assert "'9999'" in message
    assert db_path.read_bytes() == before
    assert not (db_path.parent / "backups").exists()


@pytest.mark.asyncio
async def test_a_foreign_sqlite_database_is_refused_untouched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT)")
    connection.commit()
    connection.close()
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError, match="not a cts-desktop one"):
        await Database.open(str(db_path))
    assert db_path.read_bytes() == before


@pytest.mark.asyncio
async def test_a_folder_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="is a folder"):
        await Database.open(str(tmp_path))


@pytest.mark.asyncio
async def test_an_unreachable_postgres_server_gives_a_clear_error_without_the_password() -> None:
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DatabaseError) as caught:
        await Database.open(f"postgresql://trader:Sup3rSecretPw@127.0.0.1:{port}/cts")
    message = str(caught.value)
    assert "Sup3rSecretPw" not in message
    assert "PostgreSQL" in message
    assert f"trader:***@127.0.0.1:{port}/cts" in message


# --------------------------------------------------------------------------- URLs


def _paths(tmp_path: Path) -> AppPaths:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return AppPaths(home)


def test_url_precedence_cli_then_env_then_bootstrap_then_default(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    default = f"sqlite+aiosqlite:///{paths.database_file.resolve()}"
    assert resolve_database_url(None, {}, paths) == default

    paths.bootstrap_file.write_text(json.dumps({"database_url": str(tmp_path / "boot.db")}))
    assert resolve_database_url(None, {}, paths) == f"sqlite+aiosqlite:///{tmp_path / 'boot.db'}"

    env = {"CTS_DESKTOP_DB": str(tmp_path / "env.db")}
    assert resolve_database_url(None, env, paths) == f"sqlite+aiosqlite:///{tmp_path / 'env.db'}"

    cli = str(tmp_path / "cli.db")
    assert resolve_database_url(cli, env, paths) == f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def test_blank_settings_fall_through(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.bootstrap_file.write_text(json.dumps({"other": 1}))
    assert resolve_database_url("  ", {"CTS_DESKTOP_DB": ""}, paths) == (
        f"sqlite+aiosqlite:///{paths.database_file.resolve()}"
    )


def test_sqlite_forms_are_normalised_to_absolute_aiosqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _paths(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    expected = {
        "relative.db": work / "relative.db",
        "sub/dir/x.db": work / "sub" / "dir" / "x.db",
        "sqlite:///rel.db": work / "rel.db",
        f"sqlite:///{tmp_path}/abs.db": tmp_path / "abs.db",
        f"sqlite+aiosqlite:///{tmp_path}/abs.db": tmp_path / "abs.db",
        f"sqlite+pysqlite:///{tmp_path}/abs.db": tmp_path / "abs.db",
        "~/data/cts.db": tmp_path / "user" / "data" / "cts.db",
        f"  {tmp_path}/spaced.db  ": tmp_path / "spaced.db",
    }
    for given, path in expected.items():
        assert resolve_database_url(given, {}, paths) == f"sqlite+aiosqlite:///{path}", given


def test_relative_paths_in_the_bootstrap_file_are_relative_to_the_home(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.bootstrap_file.write_text(json.dumps({"database_url": "trading.db"}))
    assert resolve_database_url(None, {}, paths) == f"sqlite+aiosqlite:///{paths.home / 'trading.db'}"


def test_postgres_urls_are_normalised_to_asyncpg(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    for scheme in ("postgresql", "postgres", "postgresql+asyncpg", "POSTGRESQL"):
        url = f"{scheme}://trader:pw@db.example:5433/cts?ssl=require"
        assert (
            resolve_database_url(url, {}, paths)
            == "postgresql+asyncpg://trader:pw@db.example:5433/cts?ssl=require"
        )
    env = {"CTS_DESKTOP_DB": "postgres://u@localhost/cts"}
    assert resolve_database_url(None, env, paths) == "postgresql+asyncpg://u@localhost/cts"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://trader:hunter2pw@localhost/cts",
        "postgresql+psycopg2://trader:hunter2pw@localhost/cts",
        "oracle://trader:hunter2pw@localhost/cts",
        "https://example.com/db",
    ],
)
def test_unsupported_urls_are_refused_without_showing_the_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        resolve_database_url(url, {}, _paths(tmp_path))
    message = str(caught.value)
    assert "hunter2pw" not in message
    assert "unsupported database URL" in message
    assert "the command line" in message


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"])
def test_in_memory_sqlite_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(DatabaseError, match="in-memory"):
        resolve_database_url(url, {}, _paths(tmp_path))


def test_a_postgres_url_without_a_server_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="names no server"):
        resolve_database_url("postgresql:///cts", {}, _paths(tmp_path))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"database_url": ', "is not valid JSON"),
        ("", "is not valid JSON"),
        ('["postgresql://x@y/z"]', "must hold a JSON object"),
        ('{"database_url": 42}', "must be a non-empty string"),
        ('{"database_url": "  "}', "must be a non-empty string"),
        (b"\xff\xfe{}", "is not UTF-8"),
    ],
)
def test_a_malformed_bootstrap_file_is_an_error_naming_it(
    tmp_path: Path, content: str | bytes, problem: str
) -> None:
    paths = _paths(tmp_path)
    if isinstance(content, bytes):
        paths.bootstrap_file.write_bytes(content)
    else:
        paths.bootstrap_file.write_text(content)
    with pytest.raises(DatabaseError) as caught:
        resolve_database_url(None, {}, paths)
    assert str(paths.bootstrap_file) in str(caught.value)
    assert problem in str(caught.value)


def test_the_json_error_says_where(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.bootstrap_file.write_text('{\n  "database_url": "x.db",\n}\n')
    # the wording and position differ between Python versions; a line and column must be there
    with pytest.raises(DatabaseError, match=r"line \d+, column \d+"):
        resolve_database_url(None, {}, paths)


def test_a_malformed_bootstrap_file_does_not_matter_when_overridden(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.bootstrap_file.write_text("{not json")
    assert resolve_database_url(None, {"CTS_DESKTOP_DB": "x.db"}, paths).endswith("/x.db")


def test_redact_url() -> None:
    assert (
        redact_url("postgresql+asyncpg://trader:s3cret@db:5432/cts")
        == "postgresql+asyncpg://trader:***@db:5432/cts"
    )
    assert redact_url("postgresql://trader:p%40ss%3Aword@db/cts") == "postgresql://trader:***@db/cts"
    assert redact_url("postgresql+asyncpg://trader@db/cts") == "postgresql+asyncpg://trader@db/cts"
    assert redact_url("sqlite+aiosqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert "s3cret" not in redact_url("not a url://user:s3cret@host")
    assert redact_url("postgresql://u:p@ss@db:notaport/cts") == "postgresql://u:***@db:notaport/cts"


def test_an_unparsable_postgres_url_is_refused_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as caught:
        resolve_database_url("postgresql://trader:hunter2pw@db:notaport/cts", {}, _paths(tmp_path))
    assert "hunter2pw" not in str(caught.value)
    assert "trader:***@db:notaport/cts" in str(caught.value)


def test_unusual_characters_in_a_path_survive_the_url(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    for name in ("my#db.db", "a?b.db", "x%41.db", "ü €.db"):
        url = resolve_database_url(str(tmp_path / name), {}, _paths(tmp_path))
        assert make_url(url).database == str(tmp_path / name)
