"""paynotify's whole stack as a system under test, with the same interface as the seed peer.

``PaynotifyPeer`` starts a private PostgreSQL (``tests.support.postgres.LocalPostgres``, the same
settings as the seed peer's), writes a configuration with one Alipay account holding the given
public key and otherwise the shipped defaults, and runs ``paynotify.stack.Stack``: a local Kafka
broker, the topics, the migrations, the gateway, one stream worker and the database sink, each a
real process. Expected orders go through the ``orders`` topic, as a merchant's would;
``counts`` waits until the stream and the sink have caught up before it reads the database and
the ``order-paid`` topic.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import psycopg

from gateway.records import NOTIFICATIONS_TOPIC
from gateway.settings import load_settings
from paynotify.broker import free_port
from paynotify.demo import count_paid_events
from paynotify.orders import publish_orders
from paynotify.stack import Stack
from sinks.settings import load_sink_settings
from stream.records import ORDER_PAID_TOPIC, ORDERS_TOPIC, ExpectedOrder
from tests.support.alipay import APP_ID
from tests.support.kafka_checks import wait_group_caught_up
from tests.support.postgres import LocalPostgres

ACCOUNT = "shop"
CONFIG = """\
[gateway]
listen = "127.0.0.1:{port}"

[kafka]
bootstrap_servers = "127.0.0.1:{kafka_port}"
partitions = {partitions}

[database]
url = "{database}"

[stream]
data_dir = "stream-data"
{stream_options}

[[accounts]]
name = "{account}"
provider = "alipay"
app_id = "{app_id}"
alipay_public_keys = ["{public_key}"]
"""


@dataclass
class PaidCounts:
    """Paid orders (database) and ``order-paid`` effects per order (the more of topic and table)."""

    paid: set[str]
    effects: dict[str, int]


@dataclass
class PaynotifyPeer:
    """Broker, gateway, stream, sink and PostgreSQL in a temporary folder; a context manager."""

    public_key: Path
    folder: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="paynotify-sbs-stack-"))
    )
    port: int = field(default_factory=free_port)
    kafka_port: int = field(default_factory=free_port)
    success_answer: str = "200 success"
    postgres: LocalPostgres | None = None
    stack: Stack | None = None
    stream_options: dict[str, str | float | int] = field(default_factory=dict)
    partitions: int = 8  # [kafka] partitions: every topic's, so the stream's parallelism too

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify/alipay/{ACCOUNT}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def __enter__(self) -> PaynotifyPeer:
        try:
            self.postgres = LocalPostgres()
            self.postgres.init()
            config = self.folder / "paynotify.toml"
            config.write_text(
                CONFIG.format(
                    port=self.port,
                    kafka_port=self.kafka_port,
                    partitions=self.partitions,
                    database=self.postgres.url(),
                    account=ACCOUNT,
                    app_id=APP_ID,
                    public_key=self.public_key,
                    stream_options="\n".join(
                        f"{k} = {v!r}".replace("'", '"') for k, v in self.stream_options.items()
                    ),
                ),
                encoding="utf-8",
            )
            self.stack = Stack(
                config, load_settings(config), load_sink_settings(config), log_dir=self.logs
            )
            self.stack.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    def close(self) -> None:
        """Stop the services and the broker, destroy the database, delete the folder."""
        if self.stack is not None:
            self.stack.stop()
        if self.postgres is not None:
            self.postgres.destroy()
        shutil.rmtree(self.folder, ignore_errors=True)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """Open an autocommit connection to the sink's database."""
        assert self.postgres is not None
        return self.postgres.connect()

    def add_orders(self, orders: list[tuple[str, int]]) -> None:
        """Publish expected orders (out_trade_no, amount in minor units) to the orders topic."""
        created = datetime.now(UTC).isoformat()
        publish_orders(
            self.bootstrap,
            ORDERS_TOPIC,
            (ExpectedOrder(no, ACCOUNT, amount, "CNY", created) for no, amount in orders),
        )

    def wait_applied(self, timeout: float = 120.0) -> None:
        """Wait until the stream consumed every notification and order, and the sink every event.

        Raises:
            AssertionError: a consumer group did not catch up in time.
        """
        for topic in (ORDERS_TOPIC, NOTIFICATIONS_TOPIC):
            wait_group_caught_up(self.bootstrap, "paynotify-stream", topic, timeout)
        for topic in (ORDERS_TOPIC, ORDER_PAID_TOPIC):
            wait_group_caught_up(self.bootstrap, "paynotify-sink", topic, timeout)

    def counts(self) -> PaidCounts:
        """Return the paid orders and the ``order.paid`` effects per order, once all is applied."""
        self.wait_applied()
        with self.connect() as conn:
            paid = conn.execute("SELECT out_trade_no FROM orders WHERE status = 'paid'")
            rows = conn.execute(
                "SELECT out_trade_no, count(*) FROM order_events WHERE type = 'order.paid' "
                "GROUP BY out_trade_no"
            )
            effects = Counter({str(no): int(str(n)) for no, n in rows})
            paid_orders = {str(row[0]) for row in paid}
        on_topic = count_paid_events(self.bootstrap, ORDER_PAID_TOPIC, "")
        return PaidCounts(paid_orders, dict(effects | on_topic))
