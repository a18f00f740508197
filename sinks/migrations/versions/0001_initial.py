"""orders, order_events and anomalies.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("out_trade_no", sa.String(128), primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("paid_at", sa.String(40)),
        sa.Column("provider", sa.String(32)),
        sa.Column("provider_trade_no", sa.String(128)),
        sa.Column("paid_event_id", sa.String(36), unique=True),
        sa.Column("created_at", sa.String(40)),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "status in ('created', 'paid', 'refunded', 'partially_refunded', 'closed')",
            name="orders_status_known",
        ),
    )
    op.create_table(
        "order_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("out_trade_no", sa.String(128), nullable=False, index=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "anomalies",
        sa.Column("anomaly_id", sa.String(64), primary_key=True),
        sa.Column("out_trade_no", sa.String(128), nullable=False, index=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("source", sa.String(256), nullable=False, server_default=""),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("anomalies")
    op.drop_table("order_events")
    op.drop_table("orders")
