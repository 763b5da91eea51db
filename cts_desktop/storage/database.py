"""Opening the database: where it is, making it safe to write to, and bringing its schema up to date.

The trading history is the one thing this application must never lose, so opening is careful:

* SQLite runs in WAL mode with ``synchronous=FULL`` (PITFALLS: with ``NORMAL`` a commit may roll
  back after a power loss), foreign keys on and a busy timeout. The pragmas are set when each
  connection is made, outside any transaction, where SQLite honours them.
* SQLAlchemy, not the ``sqlite3`` module, emits ``BEGIN``: the module's legacy mode runs DDL
  outside the transaction, so a failed migration would leave half a schema behind.
* An existing SQLite file is inspected read-only before anything writes to it. A file that is
  not a database, is truncated, or was written by a newer version of the program is refused
  with a message saying so, and left byte for byte as it was.
* A database behind the current schema is copied to the backup folder first and then upgraded
  in one transaction; it is never dropped and recreated.

Write transactions should start with their write: with SQLAlchemy's deferred ``BEGIN`` a
transaction that reads first and writes later can fail with ``database is locked`` when another
pooled connection commits in between (SQLite cannot upgrade a stale read snapshot).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from uuid import UUID

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool, Pool

from cts_desktop.paths import AppPaths

log = logging.getLogger(__name__)

DB_ENV: Final = "CTS_DESKTOP_DB"
BOOTSTRAP_URL_KEY: Final = "database_url"
MIGRATIONS_DIR: Final = Path(__file__).resolve().with_name("migrations")

BUSY_TIMEOUT_MS: Final = 5000
POSTGRES_CONNECT_TIMEOUT_S: Final = 10.0
# Serialises concurrent upgrades of one PostgreSQL database (two instances starting at once).
_POSTGRES_MIGRATION_LOCK: Final = 0x63747364  # "ctsd"

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SQLITE_HEADER_SIZE: Final = 100
_SQLITE_SCHEMES: Final = frozenset({"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"})
_POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
_URL_HELP: Final = (
    "use a file path, sqlite:///path/to/file.db or postgresql://user:password@host:port/database"
)


class DatabaseError(Exception):
    """The database cannot be used; the message says what happened and what to do.

    Messages are shown to the user as they are, so they never contain a password.
    """


# --------------------------------------------------------------------------- URLs


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def _without_secret(message: str, url: str) -> str:
    """Belt and braces: drivers quote parts of the URL in their errors."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return message
    if password:
        message = message.replace(str(password), "***")
    return message


def normalise_database_url(raw: str, *, base_dir: Path, source: str | None = None) -> str:
    """The SQLAlchemy async URL for a user-supplied location.

    Relative SQLite paths are resolved against ``base_dir`` (the working directory for the
    command line and the environment, the application home for the bootstrap file), so the
    same setting always means the same file.
    """
    origin = f" (from {source})" if source else ""
    value = raw.strip()
    if not value:
        raise DatabaseError(f"the database location{origin} is empty: {_URL_HELP}")
    if "://" not in value:
        # A bare path; also covers Windows paths such as C:\data\cts.db.
        return _sqlite_url(Path(value), base_dir)
    scheme, rest = value.split("://", 1)
    scheme = scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        normalised = f"postgresql+asyncpg://{rest}"
        try:
            parsed = make_url(normalised)
        except (ArgumentError, ValueError) as exc:
            # The parser's own message is not shown: it could quote the URL, password included.
            raise DatabaseError(
                f"cannot read the database URL {redact_url(value)!r}{origin}: "
                "write it as postgresql://user:password@host:port/database"
            ) from exc
        if not parsed.host and "host" not in parsed.query:
            raise DatabaseError(
                f"the PostgreSQL URL {redact_url(value)!r}{origin} names no server: "
                "write it as postgresql://user:password@host:port/database"
            )
        return normalised
    if scheme in _SQLITE_SCHEMES:
        try:
            parsed = make_url(value)
        except (ArgumentError, ValueError) as exc:
            raise DatabaseError(
                f"cannot read the database URL {redact_url(value)!r}{origin}: {_URL_HELP}"
            ) from exc
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise DatabaseError(
                f"an in-memory SQLite database{origin} would lose all trading history on exit: "
                "give a file path instead"
            )
        return _sqlite_url(Path(database), base_dir, query=parsed.query)
    raise DatabaseError(
        f"unsupported database URL {redact_url(value)!r}{origin}: cts-desktop supports SQLite and "
        f"PostgreSQL; {_URL_HELP}"
    )


def _sqlite_url(path: Path, base_dir: Path, query: Mapping[str, Any] | None = None) -> str:
    path = path.expanduser()
    if not path.is_absolute():
        path = base_dir / path
    url = URL.create("sqlite+aiosqlite", database=str(path.resolve()), query=query or {})
    return url.render_as_string(hide_password=False)


def _read_bootstrap_url(file: Path) -> str | None:
    """The ``database_url`` of the bootstrap file, None if the file or the key is absent.

    A malformed file is an error rather than a silent fall-back to the default database:
    the user wrote that file to point at a database, and trading against another one
    (with other positions and orders) is worse than not starting.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise DatabaseError(
            f"the bootstrap file {file} is not UTF-8 text ({exc.reason}); fix it or delete it "
            "to use the default database"
        ) from exc
    except OSError as exc:
        raise DatabaseError(
            f"cannot read the bootstrap file {file}: {exc.strerror}; check its permissions"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatabaseError(
            f"the bootstrap file {file} is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}); fix it or delete it to use the default database"
        ) from exc
    if not isinstance(data, dict):
        raise DatabaseError(
            f"the bootstrap file {file} must hold a JSON object such as "
            f'{{"{BOOTSTRAP_URL_KEY}": "..."}}, not {type(data).__name__}; fix it or delete it'
        )
    value = data.get(BOOTSTRAP_URL_KEY)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DatabaseError(
            f'"{BOOTSTRAP_URL_KEY}" in the bootstrap file {file} must be a non-empty string; {_URL_HELP}'
        )
    return value


def resolve_database_url(cli_url: str | None, env: Mapping[str, str], paths: AppPaths) -> str:
    """Where the database is: the command line, then ``CTS_DESKTOP_DB``, then the bootstrap
    file, then the SQLite file in the application home. Returns a normalised async URL."""
    if cli_url is not None and cli_url.strip():
        return normalise_database_url(cli_url, base_dir=Path.cwd(), source="the command line")
    env_url = env.get(DB_ENV, "").strip()
    if env_url:
        return normalise_database_url(env_url, base_dir=Path.cwd(), source=DB_ENV)
    bootstrap_url = _read_bootstrap_url(paths.bootstrap_file)
    if bootstrap_url is not None:
        return normalise_database_url(
            bootstrap_url, base_dir=paths.home, source=f"{paths.bootstrap_file}, {BOOTSTRAP_URL_KEY}"
        )
    return _sqlite_url(paths.database_file, paths.home)


# --------------------------------------------------------------------------- migrations


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configured in code: the migrations ship inside the package, no alembic.ini."""
    config = Config()
    # ConfigParser interpolation would read a "%" in the install path as a placeholder.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _head_revision() -> str:
    head = _script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


HEAD_REVISION: Final[str] = _head_revision()
KNOWN_REVISIONS: Final[frozenset[str]] = frozenset(
    script.revision for script in _script_directory().walk_revisions()
)


def _refuse_unknown_revision(revision: str | None, where: str) -> None:
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise DatabaseError(
            f"{where} was created by a newer version of cts-desktop (schema revision {revision!r}; "
            f"this version knows up to {HEAD_REVISION!r}); update the application. "
            "The database was left unchanged."
        )


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision stored in the database; None for an empty database."""
    async with engine.connect() as connection:
        return await connection.run_sync(_read_revision)


def _upgrade_to_head(connection: Connection, where: str) -> str | None:
    """Runs inside the caller's transaction so that the upgrade and its checks are atomic."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_POSTGRES_MIGRATION_LOCK})")
    before = _read_revision(connection)
    _refuse_unknown_revision(before, where)
    if before == HEAD_REVISION:
        return before
    try:
        command.upgrade(alembic_config(connection), "head")
    except (SQLAlchemyError, CommandError) as exc:
        # Raising here rolls the whole upgrade back (DDL is transactional on both backends).
        reason = str(getattr(exc, "orig", None) or exc)
        raise DatabaseError(
            f"upgrading {where} from schema {before or '(empty)'} to {HEAD_REVISION} failed ({reason}); "
            "the upgrade was rolled back and the database is unchanged. Please report this."
        ) from exc
    if connection.dialect.name == "sqlite":
        # Migrations run with foreign keys off (SQLite's documented way to rebuild tables: a
        # batch "drop and recreate" with them on would cascade-delete child rows). Check the
        # result before committing instead.
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise DatabaseError(
                f"upgrading {where} would break {len(problems)} references between tables "
                f"(first: table {problems[0][0]!r} refers to missing {problems[0][2]!r}); "
                "the upgrade was rolled back and the database is unchanged. Please report this."
            )
    return before


# --------------------------------------------------------------------------- engines


def _json_default(value: Any) -> Any:
    """JSON for the values our documents commonly hold (audit snapshots of domain objects)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def _json_dumps(value: Any) -> str:
    # allow_nan=False: PostgreSQL rejects NaN/Infinity in JSON; fail the same way on SQLite.
    return json.dumps(value, default=_json_default, ensure_ascii=False, allow_nan=False)


def make_engine(url: str, *, foreign_keys: bool = True, poolclass: type[Pool] | None = None) -> AsyncEngine:
    """An async engine for a normalised URL, with the SQLite connection setup installed."""
    parsed = make_url(url)
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    if poolclass is not None:
        options["poolclass"] = poolclass
    if parsed.get_backend_name() == "postgresql":
        options["connect_args"] = {"timeout": POSTGRES_CONNECT_TIMEOUT_S}
        options["pool_pre_ping"] = True
    engine = create_async_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        _install_sqlite_setup(engine, foreign_keys=foreign_keys)
    return engine


def _install_sqlite_setup(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (see _on_begin); this also
        # keeps the pragmas below outside a transaction, where journal_mode is honoured.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            (mode,) = cursor.fetchone()
            if str(mode).lower() != "wal":
                log.warning("SQLite refused WAL mode (journal_mode=%s); durability is reduced", mode)
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def dialect_insert(dialect_name: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that supports ``on_conflict_do_update`` on the backend in use.

    Both dialects implement the same ``ON CONFLICT`` upsert, so repositories write one statement
    for both; a read-then-write would need a lock on PostgreSQL and risks ``database is locked``
    on SQLite (see the module docstring).
    """
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"no upsert for the {dialect_name!r} backend")


# --------------------------------------------------------------------------- SQLite files


def _file_problem(path: Path, problem: str) -> DatabaseError:
    return DatabaseError(
        f"the database file {path} {problem}. It was left unchanged: restore it from a backup, "
        "or move it away to start with a new database."
    )


def _read_only_uri(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro"


def _check_sqlite_header(path: Path, size: int) -> None:
    """Cheap structural checks that catch foreign and half-written files without reading them."""
    with path.open("rb") as handle:
        header = handle.read(_SQLITE_HEADER_SIZE)
    if not header.startswith(_SQLITE_MAGIC):
        raise _file_problem(path, "is not an SQLite database (another kind of file, or damaged)")
    if len(header) < _SQLITE_HEADER_SIZE:
        raise _file_problem(path, f"is truncated: only {size} bytes, less than an SQLite header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise _file_problem(path, "has a damaged header (invalid page size)")
    page_count = int.from_bytes(header[28:32], "big")
    # The page count is trustworthy when the change counter matches "version valid for".
    count_valid = header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    # During an interrupted checkpoint the file may be short while the -wal holds the pages;
    # SQLite recovers that itself, so only judge the size when there is no -wal.
    wal_has_frames = wal.exists() and wal.stat().st_size > 0
    if count_valid and not wal_has_frames and page_count * page_size > size:
        raise _file_problem(
            path,
            f"is truncated: it should be {page_count * page_size} bytes but has {size} "
            "(an interrupted copy or a full disk?)",
        )


def _inspect_sqlite_file(path: Path, *, check_if_behind: bool) -> str | None:
    """Read-only look at an existing file: is it ours and intact; returns its schema revision
    (None for a missing, empty or never-migrated file)."""
    try:
        if path.is_dir():
            raise DatabaseError(f"{path} is a folder, not a database file; give a file path")
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DatabaseError(f"cannot read the database file {path}: {exc.strerror}") from exc
    if size == 0:  # SQLite treats an empty file as a new database
        return None
    try:
        _check_sqlite_header(path, size)
    except OSError as exc:
        raise DatabaseError(f"cannot read the database file {path}: {exc.strerror}") from exc
    try:
        connection = sqlite3.connect(_read_only_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            listing = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {row[0] for row in listing}
            revision: str | None = None
            if "alembic_version" in tables:
                rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
                if len(rows) > 1:
                    raise _file_problem(path, f"has several schema revisions ({sorted(r[0] for r in rows)})")
                revision = str(rows[0][0]) if rows else None
            else:
                foreign = sorted(name for name in tables if not name.startswith("sqlite_"))
                if foreign:
                    raise DatabaseError(
                        f"{path} is an SQLite database but not a cts-desktop one (it holds tables "
                        f"such as {', '.join(foreign[:5])} and no cts-desktop schema version). "
                        "It was left unchanged; choose another file."
                    )
            _refuse_unknown_revision(revision, f"the database file {path}")
            if check_if_behind and revision is not None and revision != HEAD_REVISION:
                # Before an upgrade (and its backup), make sure there is something sound to
                # upgrade. Not done on every start: it reads the whole file.
                result = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
                if result != ["ok"]:
                    raise _file_problem(path, f"is damaged ({'; '.join(map(str, result))})")
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise _sqlite_error(path, exc) from exc
    return revision


def _sqlite_error(path: Path, exc: BaseException) -> DatabaseError:
    text = str(getattr(exc, "orig", None) or exc)
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return _file_problem(path, f"is damaged or not a database (SQLite: {text})")
    if "locked" in lowered or "busy" in lowered:
        return DatabaseError(
            f"the database file {path} is locked by another program (perhaps another cts-desktop); "
            "close it and try again"
        )
    if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        return DatabaseError(
            f"cannot open the database file {path} for writing (SQLite: {text}); check the "
            "permissions of the file and its folder, and the free disk space"
        )
    return DatabaseError(f"cannot use the database file {path} (SQLite: {text})")


def _backup_sqlite(path: Path, backup_dir: Path, revision: str) -> Path:
    """Copy the database (with whatever its -wal holds) before an upgrade touches it.

    The SQLite backup API reads through a normal connection, so committed pages still in the
    -wal are included; copying the .db file alone would miss them. The copy is written under
    a temporary name and renamed, so a half-written backup never looks like a good one.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        target = backup_dir / f"{path.stem}-pre-{revision}-{stamp}.db"
        counter = 1
        while target.exists():
            target = backup_dir / f"{path.stem}-pre-{revision}-{stamp}-{counter}.db"
            counter += 1
        partial = target.with_name(target.name + ".partial")
        source = sqlite3.connect(_read_only_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            destination = sqlite3.connect(partial)
            try:
                source.backup(destination)
            finally:
                destination.close()
        finally:
            source.close()
        if os.name == "posix":
            partial.chmod(0o600)
        partial.replace(target)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DatabaseError(
            f"could not back up {path} to {backup_dir} before upgrading it ({reason}); the database "
            "was not upgraded. Free some disk space or choose another backup folder."
        ) from exc
    return target


# --------------------------------------------------------------------------- Database


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """What the status bar and the "about" dialog show; ``url`` is redacted."""

    url: str
    backend: str
    revision: str | None
    journal_mode: str | None
    path: str | None


class Database:
    """The application's one database: an async engine and its session factory.

    Build it with :meth:`open`; ``app.py`` owns the instance and closes it at shutdown.
    """

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    def __init__(self, engine: AsyncEngine, *, url: str, path: Path | None) -> None:
        self.engine = engine
        # expire_on_commit=False: with asyncio an expired attribute cannot lazy-load later.
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._url = url
        self._path = path

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The redacted URL."""
        return redact_url(self._url)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, backup_dir: Path | None = None) -> Database:
        """Open (creating if needed) and, unless ``migrate`` is False, upgrade to the current schema.

        With ``backup_dir``, an existing SQLite database that is behind is first copied there as
        ``<name>-pre-<revision>-<UTC time>.db``. Raises :class:`DatabaseError`, leaving the
        file unchanged, for a file that is not a database, is damaged, or is newer than this
        program.
        """
        normalised = normalise_database_url(url, base_dir=Path.cwd())
        parsed = make_url(normalised)
        path: Path | None = None
        if parsed.get_backend_name() == "sqlite":
            path = Path(str(parsed.database))
            where = f"the database file {path}"
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the folder {path.parent} for the database: {exc.strerror}; "
                    "choose another location"
                ) from exc
            found = await asyncio.to_thread(_inspect_sqlite_file, path, check_if_behind=migrate)
            if migrate and backup_dir is not None and found is not None and found != HEAD_REVISION:
                backup = await asyncio.to_thread(_backup_sqlite, path, backup_dir, found)
                log.info("backed up %s (schema %s) to %s before upgrading it", path, found, backup)
        else:
            where = f"the database {redact_url(normalised)}"

        engine = make_engine(normalised)
        database = cls(engine, url=normalised, path=path)
        try:
            if migrate:
                await database._migrate(where)
            else:
                _refuse_unknown_revision(await current_revision(engine), where)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, SQLAlchemyError | OSError | CommandError):
                raise database._error(exc) from exc
            raise
        return database

    async def _migrate(self, where: str) -> None:
        if self.backend == "sqlite":
            # A separate engine with foreign keys off (SQLite's table-rebuild procedure);
            # _upgrade_to_head runs foreign_key_check before the commit.
            engine = make_engine(self._url, foreign_keys=False, poolclass=NullPool)
        else:
            engine = self.engine
        try:
            async with engine.begin() as connection:
                before = await connection.run_sync(_upgrade_to_head, where)
        finally:
            if engine is not self.engine:
                await engine.dispose()
        if before != HEAD_REVISION:
            log.info("upgraded %s from schema %s to %s", where, before or "(empty)", HEAD_REVISION)

    def _error(self, exc: BaseException) -> DatabaseError:
        if self._path is not None:
            return _sqlite_error(self._path, exc)
        reason = _without_secret(str(getattr(exc, "orig", None) or exc), self._url)
        return DatabaseError(
            f"could not open the PostgreSQL database {self.url}: {reason}. Check that the server "
            "is running and that the host, port, user, password and database name are right."
        )

    async def info(self) -> DatabaseInfo:
        journal_mode: str | None = None
        if self.backend == "sqlite":
            async with self.engine.connect() as connection:
                journal_mode = str((await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one())
        return DatabaseInfo(
            url=self.url,
            backend=self.backend,
            revision=await current_revision(self.engine),
            journal_mode=journal_mode,
            path=str(self._path) if self._path is not None else None,
        )

    async def close(self) -> None:
        """Close all connections; SQLite then checkpoints the WAL into the main file."""
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
