"""Pseudo entries: index (set_id, closed_at, id) instead of (set_id, closed_at).

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-03

Handwritten, see 0001. With the id in the index, "the newest L entries of a set" (newest by
close time, ties by id) is read from the index alone, which the rolling prune relies on.
No rows change.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_pseudo_entries_set_id_closed_at_id"), "pseudo_entries", ["set_id", "closed_at", "id"]
    )
    op.drop_index(op.f("ix_pseudo_entries_set_id_closed_at"), table_name="pseudo_entries")


def downgrade() -> None:
    op.create_index(op.f("ix_pseudo_entries_set_id_closed_at"), "pseudo_entries", ["set_id", "closed_at"])
    op.drop_index(op.f("ix_pseudo_entries_set_id_closed_at_id"), table_name="pseudo_entries")
