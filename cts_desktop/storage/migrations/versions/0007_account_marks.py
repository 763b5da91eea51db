"""Account marks: the day-start and peak equity the daily-loss and drawdown limits measure from.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21

Handwritten, see 0001. A new table only. The marks are derived from the account, so they go
with their connection (CASCADE); the trading record itself (orders, fills, positions) does not.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_marks",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("day_start_equity", sa.Float(), nullable=False),
        sa.Column("peak_equity", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "mode", name="pk_account_marks"),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_account_marks_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_account_marks_mode")),
    )


def downgrade() -> None:
    op.drop_table("account_marks")
