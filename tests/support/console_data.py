"""A sink database for the console's tests, filled through the sink's own writer."""

from __future__ import annotations

from pathlib import Path

from sinks.schema import create_db_engine, upgrade
from sinks.writer import write_batch
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_PAID_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
)
from tests.support import writer_cases
from tests.support.writer_cases import decided, keyed

TOKEN = "console-test-token-0123456789abcdef"
# A record the sink cannot read: it keeps it (in anomalies.payload) and serves none of it.
RAW_MARKER = "RAW-PROVIDER-BODY-sign=c2VjcmV0"


def fill_database(database: Path) -> None:
    """Write two paid orders, one waiting order, decisions and anomalies into a new database."""
    engine = create_db_engine(f"sqlite:///{database}")
    upgrade(engine)
    records = [
        (ORDERS_TOPIC, writer_cases.expected(1)),
        (ORDERS_TOPIC, writer_cases.expected(3)),
        (ORDERS_TOPIC, writer_cases.expected(4)),
        (DECISIONS_TOPIC, decided(1, "n-1", "awaiting_order", 0)),
        (DECISIONS_TOPIC, decided(1, "n-1", "paid", 1)),
        (DECISIONS_TOPIC, decided(1, "n-2", "already_paid", 1)),
        (DECISIONS_TOPIC, decided(3, "n-3", "paid", 1)),
        (ORDER_PAID_TOPIC, writer_cases.paid(1)),
        (ORDER_PAID_TOPIC, writer_cases.paid(3)),
        (ANOMALIES_TOPIC, Anomaly("a-1", "o-1", "amount_mismatch", "paid 1, expected 101")),
        (ANOMALIES_TOPIC, Anomaly("a-2", "o-2", "order_missing", "no order within 3600s")),
    ]
    keyed_records = [keyed(topic, r.to_bytes()) for topic, r in records]
    garbage = f'{{"out_trade_no": "o-9", "body": "{RAW_MARKER}"'.encode()
    keyed_records.append(keyed(ORDER_PAID_TOPIC, garbage, "order-paid/0/99"))
    with engine.begin() as conn:
        write_batch(conn, keyed_records)
    engine.dispose()


def write_config(folder: Path, database: Path, listen: str = "127.0.0.1:8001") -> Path:
    """Write a configuration file whose console token comes from a file beside it."""
    (folder / "console-token").write_text(TOKEN + "\n")
    path = folder / "paynotify.toml"
    path.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n\n'
        f'[database]\nurl = "sqlite:///{database}"\n\n'
        f'[console]\nlisten = "{listen}"\ntoken = "file:console-token"\n'
    )
    return path
