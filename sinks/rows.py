"""The database tables (SQLAlchemy Core). The schema itself is created by the Alembic migrations
in ``sinks/migrations``; these definitions must match them (a unit test compares them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from stream.records import ORDER_STATUSES

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("out_trade_no", String(128), primary_key=True),
    Column("account", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(24), nullable=False),
    Column("paid_at", String(40)),
    Column("provider", String(32)),
    Column("provider_trade_no", String(128)),
    Column("paid_event_id", String(36), unique=True),
    Column("created_at", String(40)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("closed_at", String(40)),
    Column("closed_event_id", String(36), unique=True),
    Column("version", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "status in (" + ", ".join(f"'{status}'" for status in ORDER_STATUSES) + ")",
        name="orders_status_known",
    ),
    CheckConstraint(
        "refunded_minor >= 0 AND refunded_minor <= amount_minor", name="orders_refunds_within_paid"
    ),
    CheckConstraint("amount_minor >= 0", name="orders_amount_not_negative"),
)

order_events = Table(
    "order_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("out_trade_no", String(128), nullable=False, index=True),
    Column("type", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status", String(24)),
    Column("version", BigInteger),
)

anomalies = Table(
    "anomalies",
    metadata,
    Column("anomaly_id", String(64), primary_key=True),
    Column("out_trade_no", String(128), nullable=False, index=True),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("source", String(256), nullable=False, server_default=""),
    Column("payload", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

refunds = Table(
    "refunds",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("out_trade_no", String(128), nullable=False),
    Column("refund_id", String(128), nullable=False),
    Column("account", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("refunded_at", String(40)),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("refunded_total_minor", BigInteger),
    UniqueConstraint("out_trade_no", "refund_id", name="refunds_one_per_refund_id"),
    CheckConstraint("amount_minor > 0", name="refunds_amount_positive"),
    CheckConstraint("state in ('pending', 'applied', 'rejected')", name="refunds_state_known"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("notify_id", String(256), primary_key=True),
    Column("out_trade_no", String(128), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(256), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("provider_trade_no", String(128), nullable=False),
    Column("refund_id", String(128)),
    Column("refund_amount_minor", BigInteger),
    Column("refund_total_minor", BigInteger),
    Column("occurred_at", String(40)),
    Column("received_at", String(40), nullable=False),
    Column("source", String(16), nullable=False),
    Column("decision", String(32), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index("refunds_pending", refunds.c.out_trade_no, refunds.c.state)
Index("notifications_order", notifications.c.out_trade_no)
Index("anomalies_reason", anomalies.c.reason)
