"""Order execution: latencies, slippage, stop price, position side, leverage, TP/SL children.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Handwritten, see 0001. Only nullable columns are added, so existing rows stay valid as they are
(NULL = "not recorded", which is the truth for orders placed before this revision):

* ``orders``: ``parent_id`` (the take-profit/stop-loss orders of an entry, RESTRICT like every
  link in the trading record), ``stop_price``, ``position_side`` and ``tp_sl_mode`` (closed
  vocabularies with CHECKs), ``leverage``, ``contract_size``, ``reason`` and ``actor``, the
  latencies from the intent to the acknowledgement and to the first fill (BIGINT: a resting
  order can fill weeks later), and ``slippage_bps``;
* ``fills``: ``realized_pnl`` of the part that reduced a position;
* ``real_positions``: ``leverage`` and ``contract_size``.

SQLite cannot add a foreign key or a CHECK to an existing table, so ``orders`` goes through
Alembic's batch mode there (the table is rebuilt inside the upgrade's transaction, foreign keys
off, as ``Database`` runs migrations); PostgreSQL gets plain ALTER TABLE statements from the same
code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(36)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("parent_id", ID, nullable=True))
        batch.add_column(sa.Column("stop_price", sa.Float(), nullable=True))
        batch.add_column(sa.Column("position_side", sa.String(8), nullable=True))
        batch.add_column(sa.Column("leverage", sa.Float(), nullable=True))
        batch.add_column(sa.Column("contract_size", sa.Float(), nullable=True))
        batch.add_column(sa.Column("tp_sl_mode", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("actor", sa.String(32), nullable=True))
        batch.add_column(sa.Column("ack_latency_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("fill_latency_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("slippage_bps", sa.Float(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_orders_parent_id_orders"), "orders", ["parent_id"], ["id"], ondelete="RESTRICT"
        )
        batch.create_check_constraint(op.f("ck_orders_position_side"), "position_side IN ('long', 'short')")
        batch.create_check_constraint(op.f("ck_orders_tp_sl_mode"), "tp_sl_mode IN ('attached', 'engine')")
        batch.create_index(op.f("ix_orders_parent_id"), ["parent_id"])

    with op.batch_alter_table("fills") as batch:
        batch.add_column(sa.Column("realized_pnl", sa.Float(), nullable=True))

    with op.batch_alter_table("real_positions") as batch:
        batch.add_column(sa.Column("leverage", sa.Float(), nullable=True))
        batch.add_column(sa.Column("contract_size", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("real_positions") as batch:
        batch.drop_column("contract_size")
        batch.drop_column("leverage")

    with op.batch_alter_table("fills") as batch:
        batch.drop_column("realized_pnl")

    with op.batch_alter_table("orders") as batch:
        batch.drop_index(op.f("ix_orders_parent_id"))
        batch.drop_constraint(op.f("ck_orders_tp_sl_mode"), type_="check")
        batch.drop_constraint(op.f("ck_orders_position_side"), type_="check")
        batch.drop_constraint(op.f("fk_orders_parent_id_orders"), type_="foreignkey")
        for column in (
            "slippage_bps",
            "fill_latency_ms",
            "ack_latency_ms",
            "actor",
            "reason",
            "tp_sl_mode",
            "contract_size",
            "leverage",
            "position_side",
            "stop_price",
            "parent_id",
        ):
            batch.drop_column(column)
