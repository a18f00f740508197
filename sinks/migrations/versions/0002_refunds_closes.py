"""refunds, closes and the constraints that make duplicates impossible.

- ``orders.refunded_minor`` (sum of applied refunds) can never exceed ``amount_minor``;
- ``orders.closed_event_id`` is unique like ``paid_event_id``: an order is closed once;
- ``refunds`` has one row per refund event and per (order, refund id), with a positive amount;
  ``state`` is ``pending`` until the order's payment is known, then ``applied`` or ``rejected``.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("closed_at", sa.String(40)))
        batch.add_column(sa.Column("closed_event_id", sa.String(36)))
        batch.create_unique_constraint("orders_closed_event_id_key", ["closed_event_id"])
        batch.create_check_constraint(
            "orders_refunds_within_paid", "refunded_minor >= 0 AND refunded_minor <= amount_minor"
        )
        batch.create_check_constraint("orders_amount_not_negative", "amount_minor >= 0")
    op.create_table(
        "refunds",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("out_trade_no", sa.String(128), nullable=False),
        sa.Column("refund_id", sa.String(128), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("refunded_at", sa.String(40)),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("out_trade_no", "refund_id", name="refunds_one_per_refund_id"),
        sa.CheckConstraint("amount_minor > 0", name="refunds_amount_positive"),
        sa.CheckConstraint(
            "state in ('pending', 'applied', 'rejected')", name="refunds_state_known"
        ),
    )
    op.create_index("refunds_pending", "refunds", ["out_trade_no", "state"])
    op.create_index("anomalies_reason", "anomalies", ["reason"])


def downgrade() -> None:
    op.drop_index("anomalies_reason", "anomalies")
    op.drop_index("refunds_pending", "refunds")
    op.drop_table("refunds")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("orders_amount_not_negative", type_="check")
        batch.drop_constraint("orders_refunds_within_paid", type_="check")
        batch.drop_constraint("orders_closed_event_id_key", type_="unique")
        batch.drop_column("closed_event_id")
        batch.drop_column("closed_at")
        batch.drop_column("refunded_minor")
