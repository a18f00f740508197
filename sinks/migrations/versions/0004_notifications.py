"""Every verified notification once, with what the stream decided about it.

``notifications`` holds one row per (account, notify_id), written from the stream's
``notification-decisions`` records: the notification's own fields (not its raw body, which stays
on ``payment-notifications``), how it came (``source``: webhook or query), the stream's
``decision`` and the order's ``version`` after it. A later decision (a notification that waited
and was then applied) replaces an earlier one, never one of a higher version.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("notify_id", sa.String(256), primary_key=True),
        sa.Column("out_trade_no", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(256), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("provider_trade_no", sa.String(128), nullable=False),
        sa.Column("refund_id", sa.String(128)),
        sa.Column("refund_amount_minor", sa.BigInteger),
        sa.Column("refund_total_minor", sa.BigInteger),
        sa.Column("occurred_at", sa.String(40)),
        sa.Column("received_at", sa.String(40), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "decided_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("notifications_order", "notifications", ["out_trade_no"])


def downgrade() -> None:
    op.drop_index("notifications_order", table_name="notifications")
    op.drop_table("notifications")
