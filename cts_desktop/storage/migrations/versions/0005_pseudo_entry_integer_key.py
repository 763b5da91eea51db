"""Pseudo entries: an integer key instead of a text UUID.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

Handwritten, see 0001. A deliberate exception to D24's text UUIDs, for the one table that takes
hundreds of thousands of rows a minute: closed pseudo entries are append-only results that
nothing refers to, and a text primary key makes SQLite keep a second B-tree of 36-byte random
keys beside the table. With an integer key the table itself is the primary-key B-tree (the
rowid), which tripled raw insert speed on our machines (benchmarks/storage.py), and the id still
orders entries in write order, which breaks ``closed_at`` ties when the rolling window prunes.

The table is rebuilt (no engine can change a primary key's type in place portably): the old
table is renamed, its index and primary key are renamed out of the way (PostgreSQL index names
are per schema), rows are copied in (set, close time, old id) order so the new ids keep the old
write order within a set, and the old table is dropped. Downgrade copies the ids back as text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
ID = sa.String(36)
OLD = "pseudo_entries_rebuild"
INDEX = "ix_pseudo_entries_set_id_closed_at_id"
DATA_COLUMNS = (
    "set_id",
    "opened_at",
    "closed_at",
    "entry_price",
    "exit_price",
    "result_steps",
    "pnl",
    "fees",
    "close_reason",
    "hold_time_s",
    "drawdown_time_s",
)


def _create(id_column: sa.Column[object]) -> None:
    op.create_table(
        "pseudo_entries",
        id_column,
        sa.Column("set_id", ID, nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("exit_price", sa.Float(), nullable=True),
        sa.Column("result_steps", sa.Float(), nullable=True),
        sa.Column("pnl", sa.Float(), nullable=True),
        sa.Column("fees", sa.Float(), nullable=False),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.Column("hold_time_s", sa.Float(), nullable=True),
        sa.Column("drawdown_time_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pseudo_entries"),
        sa.ForeignKeyConstraint(
            ["set_id"], ["pseudo_sets.id"], name="fk_pseudo_entries_set_id_pseudo_sets", ondelete="CASCADE"
        ),
    )


def _move_old_table_aside() -> None:
    op.drop_index(INDEX, table_name="pseudo_entries")
    op.rename_table("pseudo_entries", OLD)
    if op.get_bind().dialect.name == "postgresql":
        # The primary key's index name is schema-wide there; SQLite's is automatic.
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_pseudo_entries TO pk_{OLD}")
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT fk_pseudo_entries_set_id_pseudo_sets TO fk_{OLD}")


def _finish(copy_sql: str) -> None:
    op.execute(copy_sql)
    op.drop_table(OLD)
    op.create_index(INDEX, "pseudo_entries", ["set_id", "closed_at", "id"])


def upgrade() -> None:
    _move_old_table_aside()
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid
    _create(sa.Column("id", id_type, nullable=False, autoincrement=True))
    columns = ", ".join(DATA_COLUMNS)
    _finish(
        f"INSERT INTO pseudo_entries ({columns}) SELECT {columns} FROM {OLD} ORDER BY set_id, closed_at, id"
    )


def downgrade() -> None:
    _move_old_table_aside()
    _create(sa.Column("id", ID, nullable=False))
    columns = ", ".join(DATA_COLUMNS)
    _finish(
        f"INSERT INTO pseudo_entries (id, {columns}) SELECT CAST(id AS VARCHAR(36)), {columns} FROM {OLD}"
    )
