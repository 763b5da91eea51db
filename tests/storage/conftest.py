"""Storage fixtures: real SQLite files in ``tmp_path`` and a throwaway PostgreSQL server.

The PostgreSQL server is started the way PITFALLS.md describes (initdb refuses to run as
root, hence ``su postgres``). Without the server binaries the PostgreSQL tests skip, unless
``CTS_REQUIRE_POSTGRES=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from alembic import command
from sqlalchemy.pool import NullPool

from cts_desktop.storage.database import Database, alembic_config, make_engine

REQUIRE_POSTGRES_ENV = "CTS_REQUIRE_POSTGRES"


# --------------------------------------------------------------------------- SQLite


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database file in a folder that does not exist yet (``Database.open`` creates it)."""
    return tmp_path / "data" / "cts.db"


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest_asyncio.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(str(db_path))
    try:
        yield database
    finally:
        await database.close()


async def create_at_revision(path: Path, revision: str) -> None:
    """An SQLite database migrated only up to ``revision``, as an older release left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite+aiosqlite:///{path}", foreign_keys=False, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
    finally:
        await engine.dispose()


def sqlite_revision(path: Path) -> str | None:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        connection.close()
    return None if row is None else str(row[0])


# --------------------------------------------------------------------------- PostgreSQL


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bindir() -> Path | None:
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"postgresql/([\d.]+)/bin", path)
        return tuple(int(part) for part in match.group(1).split(".")) if match else (0,)

    if not candidates:
        return None
    return Path(max(candidates, key=version)).parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on a free loopback port for this test session; yields the URL of
    its ``postgres`` database (user ``test``, trust authentication)."""
    bindir = _postgres_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
            "install them with 'apt-get install postgresql' to run these tests"
        )
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {reason}")
        pytest.skip(reason)

    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="cts-pg-"))
    data, logfile = root / "data", root / "log"
    if as_root:
        shutil.chown(root, user="postgres")

    def run(*args: str) -> None:
        command_line = shlex.join(args)
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", command_line] if as_root else list(args)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = logfile.read_text(errors="replace") if logfile.exists() else ""
            raise RuntimeError(f"{command_line} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    port = _free_port()
    pg_ctl = str(bindir / "pg_ctl")
    try:
        run(
            str(bindir / "initdb"),
            "-D", str(data), "-U", "test", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        run(
            pg_ctl, "-D", str(data), "-w", "-l", str(logfile),
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL server: {exc}")
    try:
        yield f"postgresql+asyncpg://test@127.0.0.1:{port}/postgres"
    finally:
        try:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    import asyncpg

    name = f"cts_{uuid.uuid4().hex[:12]}"
    admin_dsn = postgres_server.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
