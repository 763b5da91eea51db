"""Alembic environment.

``Database.open`` runs migrations inside its own transaction and hands the live connection in
``config.attributes["connection"]``, so the upgrade and its checks commit or roll back as one.
The fallbacks (a URL in ``sqlalchemy.url``, offline ``--sql`` mode) exist for developers
running the ``alembic`` command by hand.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from cts_desktop.storage.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    from cts_desktop.storage.database import make_engine

    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    live_connection = config.attributes.get("connection")
    if live_connection is not None:
        _run(live_connection)
    else:
        configured_url = config.get_main_option("sqlalchemy.url")
        if not configured_url:
            raise RuntimeError(
                "no database for the migrations: pass a connection in config.attributes['connection'] "
                "or set sqlalchemy.url"
            )
        asyncio.run(_run_with_own_engine(configured_url))
