"""Trading tables: candles, indications, pseudo sets and entries, positions, orders, fills,
exchange positions, backtests.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01

Handwritten, see 0001. Orders, fills and positions refer to connections with ON DELETE
RESTRICT: deleting a connection must never take its trading record with it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
ID = sa.String(36)


def _connection_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["connection_id"],
        ["connections.id"],
        name=f"fk_{table}_connection_id_connections",
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "candles",
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("ts", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "ts", name="pk_candles"),
    )

    op.create_table(
        "indication_signals",
        sa.Column("id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("indication_type", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("profit_factor", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("calculated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_indication_signals"),
        _connection_fk("indication_signals", "CASCADE"),
        sa.CheckConstraint("mode IN ('main', 'preset')", name=op.f("ck_indication_signals_mode")),
        sa.CheckConstraint("direction IN ('long', 'short')", name=op.f("ck_indication_signals_direction")),
    )
    op.create_index(
        "ix_indication_signals_connection_id_symbol_calculated_at",
        "indication_signals",
        ["connection_id", "symbol", "calculated_at"],
    )

    op.create_table(
        "pseudo_sets",
        sa.Column("id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("indication_type", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("config_key", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("gross_profit", sa.Float(), nullable=False),
        sa.Column("gross_loss", sa.Float(), nullable=False),
        sa.Column("sum_result_steps", sa.Float(), nullable=False),
        sa.Column("max_drawdown", sa.Float(), nullable=False),
        sa.Column("drawdown_time_s", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pseudo_sets"),
        _connection_fk("pseudo_sets", "CASCADE"),
        sa.UniqueConstraint(
            "connection_id",
            "symbol",
            "level",
            "config_key",
            "direction",
            name="uq_pseudo_sets_connection_id_symbol_level_config_key_direction",
        ),
        sa.CheckConstraint("level IN ('base', 'main', 'real', 'preset')", name=op.f("ck_pseudo_sets_level")),
        sa.CheckConstraint("direction IN ('long', 'short')", name=op.f("ck_pseudo_sets_direction")),
    )

    op.create_table(
        "pseudo_entries",
        sa.Column("id", ID, nullable=False),
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
    op.create_index("ix_pseudo_entries_set_id_closed_at", "pseudo_entries", ["set_id", "closed_at"])

    op.create_table(
        "real_positions",
        sa.Column("id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("set_id", ID, nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("take_profit", sa.Float(), nullable=True),
        sa.Column("stop_loss", sa.Float(), nullable=True),
        sa.Column("trailing", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("fees", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_real_positions"),
        _connection_fk("real_positions", "RESTRICT"),
        sa.ForeignKeyConstraint(
            ["set_id"], ["pseudo_sets.id"], name="fk_real_positions_set_id_pseudo_sets", ondelete="SET NULL"
        ),
        sa.CheckConstraint("side IN ('long', 'short')", name=op.f("ck_real_positions_side")),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_real_positions_mode")),
    )
    op.create_index("ix_real_positions_connection_id_status", "real_positions", ["connection_id", "status"])
    op.create_index("ix_real_positions_set_id", "real_positions", ["set_id"])

    op.create_table(
        "orders",
        sa.Column("id", ID, nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("real_position_id", ID, nullable=True),
        sa.Column("exchange_order_id", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("filled", sa.Float(), nullable=False),
        sa.Column("average_price", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("take_profit", sa.Float(), nullable=True),
        sa.Column("stop_loss", sa.Float(), nullable=True),
        sa.Column("intent_price", sa.Float(), nullable=True),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("acknowledged_at", UTC_DATETIME, nullable=True),
        sa.Column("filled_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        _connection_fk("orders", "RESTRICT"),
        sa.ForeignKeyConstraint(
            ["real_position_id"],
            ["real_positions.id"],
            name="fk_orders_real_position_id_real_positions",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side")),
        sa.CheckConstraint(
            "order_type IN ('market', 'limit', 'stop_loss', 'take_profit')", name=op.f("ck_orders_order_type")
        ),
        sa.CheckConstraint("time_in_force IN ('GTC', 'IOC', 'FOK')", name=op.f("ck_orders_time_in_force")),
        sa.CheckConstraint(
            "status IN ('pending_create', 'open', 'partially_filled', 'pending_cancel', 'filled', "
            "'cancelled', 'rejected', 'failed', 'lost')",
            name=op.f("ck_orders_status"),
        ),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_orders_mode")),
    )
    op.create_index("ix_orders_connection_id_status", "orders", ["connection_id", "status"])
    op.create_index("ix_orders_real_position_id", "orders", ["real_position_id"])

    op.create_table(
        "fills",
        sa.Column("id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("exchange_trade_id", sa.String(64), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("fee_currency", sa.String(16), nullable=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_fills_order_id_orders", ondelete="RESTRICT"
        ),
        sa.UniqueConstraint("order_id", "exchange_trade_id", name="uq_fills_order_id_exchange_trade_id"),
    )

    op.create_table(
        "exchange_positions",
        sa.Column("id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("contracts", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=True),
        sa.Column("mark_price", sa.Float(), nullable=True),
        sa.Column("leverage", sa.Float(), nullable=True),
        sa.Column("margin_mode", sa.String(16), nullable=True),
        sa.Column("unrealized_pnl", sa.Float(), nullable=True),
        sa.Column("realized_pnl", sa.Float(), nullable=True),
        sa.Column("real_position_id", ID, nullable=True),
        sa.Column("synced_at", UTC_DATETIME, nullable=False),
        sa.Column("sync_status", sa.String(16), nullable=False),
        sa.Column("sync_error", sa.Text(), nullable=True),
        sa.Column("sync_retry_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_positions"),
        _connection_fk("exchange_positions", "RESTRICT"),
        sa.ForeignKeyConstraint(
            ["real_position_id"],
            ["real_positions.id"],
            name="fk_exchange_positions_real_position_id_real_positions",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint("side IN ('long', 'short')", name=op.f("ck_exchange_positions_side")),
        sa.CheckConstraint(
            "margin_mode IN ('cross', 'isolated')", name=op.f("ck_exchange_positions_margin_mode")
        ),
    )
    op.create_index(
        "ix_exchange_positions_connection_id_symbol", "exchange_positions", ["connection_id", "symbol"]
    )

    op.create_table(
        "backtest_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_runs"),
    )

    op.create_table(
        "backtest_results",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("config_key", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("net_return", sa.Float(), nullable=False),
        sa.Column("pf_gross", sa.Float(), nullable=True),
        sa.Column("avg_result_steps", sa.Float(), nullable=True),
        sa.Column("max_drawdown", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_results"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["backtest_runs.id"],
            name="fk_backtest_results_run_id_backtest_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_backtest_results_run_id", "backtest_results", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_backtest_results_run_id", table_name="backtest_results")
    op.drop_table("backtest_results")
    op.drop_table("backtest_runs")
    op.drop_index("ix_exchange_positions_connection_id_symbol", table_name="exchange_positions")
    op.drop_table("exchange_positions")
    op.drop_table("fills")
    op.drop_index("ix_orders_real_position_id", table_name="orders")
    op.drop_index("ix_orders_connection_id_status", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_real_positions_set_id", table_name="real_positions")
    op.drop_index("ix_real_positions_connection_id_status", table_name="real_positions")
    op.drop_table("real_positions")
    op.drop_index("ix_pseudo_entries_set_id_closed_at", table_name="pseudo_entries")
    op.drop_table("pseudo_entries")
    op.drop_table("pseudo_sets")
    op.drop_index("ix_indication_signals_connection_id_symbol_calculated_at", table_name="indication_signals")
    op.drop_table("indication_signals")
    op.drop_table("candles")
