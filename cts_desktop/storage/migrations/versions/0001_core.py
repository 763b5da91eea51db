"""Core tables: settings, connections, engine states, audit log, system log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Handwritten: every type, constraint name and ON DELETE rule is spelled out, and the models are
not imported (a migration is a frozen snapshot). ``test_migrations.py`` checks that head
matches ``cts_desktop.storage.models``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
ID = sa.String(36)


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )

    op.create_table(
        "connections",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("api_type", sa.String(32), nullable=False),
        sa.Column("connection_method", sa.String(32), nullable=False),
        sa.Column("margin_mode", sa.String(16), nullable=False),
        sa.Column("position_mode", sa.String(16), nullable=False),
        sa.Column("is_testnet", sa.Boolean(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("is_live_trade", sa.Boolean(), nullable=False),
        sa.Column("is_preset_trade", sa.Boolean(), nullable=False),
        sa.Column("is_predefined", sa.Boolean(), nullable=False),
        sa.Column("live_volume_factor", sa.Float(), nullable=False),
        sa.Column("preset_volume_factor", sa.Float(), nullable=False),
        sa.Column("preset_type_id", ID, nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("last_test_at", UTC_DATETIME, nullable=True),
        sa.Column("last_test_status", sa.String(16), nullable=True),
        sa.Column("last_test_balance", sa.Float(), nullable=True),
        sa.Column("last_test_log", sa.Text(), nullable=True),
        sa.Column("api_capabilities", sa.JSON(), nullable=False),
        sa.Column("restart_required", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        sa.CheckConstraint("margin_mode IN ('cross', 'isolated')", name=op.f("ck_connections_margin_mode")),
        sa.CheckConstraint(
            "position_mode IN ('hedge', 'one_way')", name=op.f("ck_connections_position_mode")
        ),
        sa.CheckConstraint(
            "is_enabled OR NOT (is_live_trade OR is_preset_trade)",
            name=op.f("ck_connections_trading_requires_enabled"),
        ),
    )

    op.create_table(
        "engine_states",
        sa.Column("scope", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_engine_states"),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_engine_states_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "state IN ('idle', 'starting', 'running', 'paused', 'stopping', 'stopped', 'error')",
            name=op.f("ck_engine_states_state"),
        ),
        sa.CheckConstraint(
            "(connection_id IS NULL AND scope = 'global') OR scope = connection_id",
            name=op.f("ck_engine_states_scope_matches_connection"),
        ),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=True),
        sa.Column("connection_id", ID, nullable=True),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_entity_type_entity_id", "audit_log", ["entity_type", "entity_id"])

    op.create_table(
        "system_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("logger", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("connection_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_system_log"),
    )
    op.create_index("ix_system_log_at", "system_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_system_log_at", table_name="system_log")
    op.drop_table("system_log")
    op.drop_index("ix_audit_log_entity_type_entity_id", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("engine_states")
    op.drop_table("connections")
    op.drop_table("settings")
