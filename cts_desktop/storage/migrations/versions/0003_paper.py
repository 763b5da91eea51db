"""Paper trading state: accounts, balances, symbol settings, orders, fills, positions.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-02

Handwritten, see 0001. Only new tables: existing rows are not touched. A paper account refers
to its connection with ON DELETE RESTRICT (NULL = the default offline paper account); the rest
of the paper state belongs to its account and goes with it (CASCADE).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
ID = sa.String(36)


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["paper_accounts.id"],
        name=f"fk_{table}_account_id_paper_accounts",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "paper_accounts",
        sa.Column("id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("quote", sa.String(16), nullable=False),
        sa.Column("starting_balance", sa.Float(), nullable=False),
        sa.Column("position_mode", sa.String(16), nullable=False),
        sa.Column("margin_mode", sa.String(16), nullable=False),
        sa.Column("maker_fee", sa.Float(), nullable=True),
        sa.Column("taker_fee", sa.Float(), nullable=True),
        sa.Column("slippage_bps", sa.Float(), nullable=False),
        sa.Column("max_slippage_bps", sa.Float(), nullable=False),
        sa.Column("volume_impact_bps", sa.Float(), nullable=False),
        sa.Column("partial_fill_ratio", sa.Float(), nullable=False),
        sa.Column("volume_share", sa.Float(), nullable=True),
        sa.Column("default_leverage", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_paper_accounts"),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_paper_accounts_connection_id_connections",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "position_mode IN ('hedge', 'one_way')", name=op.f("ck_paper_accounts_position_mode")
        ),
        sa.CheckConstraint(
            "margin_mode IN ('cross', 'isolated')", name=op.f("ck_paper_accounts_margin_mode")
        ),
    )
    op.create_index("ix_paper_accounts_connection_id", "paper_accounts", ["connection_id"])

    op.create_table(
        "paper_balances",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("asset", sa.String(16), nullable=False),
        sa.Column("free", sa.Float(), nullable=False),
        sa.Column("used", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "asset", name="pk_paper_balances"),
        _account_fk("paper_balances"),
    )

    op.create_table(
        "paper_symbol_settings",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("leverage", sa.Float(), nullable=False),
        sa.Column("margin_mode", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "symbol", name="pk_paper_symbol_settings"),
        _account_fk("paper_symbol_settings"),
        sa.CheckConstraint(
            "margin_mode IN ('cross', 'isolated')", name=op.f("ck_paper_symbol_settings_margin_mode")
        ),
    )

    op.create_table(
        "paper_orders",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("client_order_id", sa.String(72), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("filled", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("stop_price", sa.Float(), nullable=True),
        sa.Column("average", sa.Float(), nullable=True),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("fee_currency", sa.String(16), nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("position_side", sa.String(8), nullable=True),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("leverage", sa.Float(), nullable=True),
        sa.Column("take_profit", sa.Float(), nullable=True),
        sa.Column("stop_loss", sa.Float(), nullable=True),
        sa.Column("reserved", sa.Float(), nullable=False),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_paper_orders"),
        _account_fk("paper_orders"),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["paper_orders.id"],
            name="fk_paper_orders_parent_id_paper_orders",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "account_id", "client_order_id", name="uq_paper_orders_account_id_client_order_id"
        ),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_paper_orders_side")),
        sa.CheckConstraint(
            "type IN ('market', 'limit', 'stop_loss', 'take_profit')", name=op.f("ck_paper_orders_type")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')",
            name=op.f("ck_paper_orders_status"),
        ),
        sa.CheckConstraint(
            "time_in_force IN ('GTC', 'IOC', 'FOK')", name=op.f("ck_paper_orders_time_in_force")
        ),
        sa.CheckConstraint("position_side IN ('long', 'short')", name=op.f("ck_paper_orders_position_side")),
    )
    op.create_index("ix_paper_orders_account_id_status", "paper_orders", ["account_id", "status"])
    op.create_index("ix_paper_orders_parent_id", "paper_orders", ["parent_id"])

    op.create_table(
        "paper_fills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("fee_currency", sa.String(16), nullable=True),
        sa.Column("maker", sa.Boolean(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_paper_fills"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["paper_orders.id"], name="fk_paper_fills_order_id_paper_orders", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_paper_fills_order_id", "paper_fills", ["order_id"])

    op.create_table(
        "paper_positions",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("contracts", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("leverage", sa.Float(), nullable=False),
        sa.Column("margin_mode", sa.String(16), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "symbol", "side", name="pk_paper_positions"),
        _account_fk("paper_positions"),
        sa.CheckConstraint("side IN ('long', 'short')", name=op.f("ck_paper_positions_side")),
        sa.CheckConstraint(
            "margin_mode IN ('cross', 'isolated')", name=op.f("ck_paper_positions_margin_mode")
        ),
    )


def downgrade() -> None:
    op.drop_table("paper_positions")
    op.drop_index("ix_paper_fills_order_id", table_name="paper_fills")
    op.drop_table("paper_fills")
    op.drop_index("ix_paper_orders_parent_id", table_name="paper_orders")
    op.drop_index("ix_paper_orders_account_id_status", table_name="paper_orders")
    op.drop_table("paper_orders")
    op.drop_table("paper_symbol_settings")
    op.drop_table("paper_balances")
    op.drop_index("ix_paper_accounts_connection_id", table_name="paper_accounts")
    op.drop_table("paper_accounts")
