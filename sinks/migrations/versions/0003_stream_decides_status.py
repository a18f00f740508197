"""The stream decides an order's status: events carry it with the order's version.

- ``orders.version``: the version of the event the row's ``status`` comes from (0: none yet); a
  row takes an event's status only from a higher version;
- ``order_events.status`` and ``order_events.version``: the status and version each event
  carries (empty for events recorded before this revision), so that an order row created after
  its events (the ``orders`` topic read later than the events) takes the latest of them;
- ``refunds.refunded_total_minor``: the order's refunded total after the refund, as the stream
  counted it; ``orders.refunded_minor`` is the largest of them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("order_events") as batch:
        batch.add_column(sa.Column("status", sa.String(24)))
        batch.add_column(sa.Column("version", sa.BigInteger))
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("refunded_total_minor", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("refunded_total_minor")
    with op.batch_alter_table("order_events") as batch:
        batch.drop_column("version")
        batch.drop_column("status")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("version")
