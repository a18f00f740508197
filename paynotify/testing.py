"""paynotify in containers for downstream services' own integration tests.

``PaynotifyStack`` starts the Kafka image and the paynotify image (``paynotify up``: gateway,
stream worker, database sink), both on the host's network at free ports, writes a configuration
with one account per provider whose secrets and keys it generates, and plays the providers: it
sends genuinely signed notifications through the simulator's signers, so the gateway verifies
them as it would a provider's. Downstream code reads the output topics at ``bootstrap_servers``::

    from paynotify.testing import PaynotifyStack
    with PaynotifyStack() as stack:
        stack.add_order("A1", amount_minor=1000, currency="CNY")
        stack.pay("A1", provider="alipay")
        event = stack.wait_paid("A1", timeout=60)   # the order-paid event, as a dict

As a pytest plugin (the ``pytest11`` entry point ``paynotify``, or ``pytest_plugins =
["paynotify.testing"]``) it gives the session fixture ``paynotify_stack``. The images come from
``./dev images``; without them, or without a Docker engine, the fixture skips the test, or fails
it when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from paynotify.broker import free_port
from paynotify.containers import (
    KAFKA_IMAGE,
    PAYNOTIFY_IMAGE,
    container,
    require_images,
    start,
    start_kafka,
    stop,
)
from paynotify.demo import write_key_pair
from paynotify.errors import ContainerError
from paynotify.simulator.plan import Delivery, Expected, Message, PlannedOrder
from paynotify.simulator.signers import SigningKeys

if TYPE_CHECKING:
    import httpx
    from testcontainers.core.container import DockerContainer

# The account each provider's notifications go to: POST /notify/{provider}/{account}.
ACCOUNTS = {
    "alipay": "shop-alipay",
    "wechatpay": "shop-wechat",
    "stripe": "shop-stripe",
    "standardwebhooks": "partner",
    "adyen": "shop-adyen",
}
WECHAT_KEY_ID = "PUB_KEY_ID_0000000000000024101100397200000006"
CONFIG = """\
# Written by paynotify.testing for one test stack; every secret here is generated and thrown away.
[gateway]
listen = "127.0.0.1:{gateway_port}"

[kafka]
bootstrap_servers = "127.0.0.1:{kafka_port}"
partitions = {partitions}

[database]
url = "sqlite:////var/lib/paynotify/paynotify.db"

[stream]
engine = "{engine}"
data_dir = "/var/lib/paynotify/stream"

[[accounts]]
name = "shop-alipay"
provider = "alipay"
app_id = "2021000000000000"
alipay_public_keys = ["keys/alipay_public.pem"]

[[accounts]]
name = "shop-wechat"
provider = "wechatpay"
mchid = "1900000000"
appid = "wx8888888888888888"
apiv3_key = "{apiv3_key}"
platform_public_keys = {{ "{wechat_key_id}" = "keys/wechat_public.pem" }}

[[accounts]]
name = "shop-stripe"
provider = "stripe"
signing_secrets = ["{stripe_secret}"]

[[accounts]]
name = "partner"
provider = "standardwebhooks"
signing_secrets = ["{standard_secret}"]

[[accounts]]
name = "shop-adyen"
provider = "adyen"
hmac_keys = ["{adyen_key}"]
merchant_account_codes = ["PaynotifySimulator"]
"""


@dataclass(frozen=True)
class Signed:
    """A signed notification: where to post it, its body and its headers."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class _Order:
    provider: str
    amount_minor: int
    currency: str


@dataclass
class PaynotifyStack:
    """Kafka and paynotify's services in containers, and the providers played against them."""

    engine: str = "quix"
    partitions: int = 4
    startup_timeout: float = 180.0
    image: str = PAYNOTIFY_IMAGE
    bootstrap_servers: str = ""
    gateway_url: str = ""
    _folder: Path | None = field(default=None, repr=False)
    _containers: list[DockerContainer] = field(default_factory=list, repr=False)
    _keys: dict[str, SigningKeys] = field(default_factory=dict, repr=False)
    _orders: dict[str, _Order] = field(default_factory=dict, repr=False)

    def start(self) -> PaynotifyStack:
        """Start Kafka, then ``paynotify up``; return once the gateway is ready.

        Raises:
            ContainerError: no Docker engine, an image missing, or a container did not start.
        """
        require_images(self.image, KAFKA_IMAGE)
        self._folder = Path(tempfile.mkdtemp(prefix="paynotify-stack-"))
        kafka_port, gateway_port = free_port(), free_port()
        try:
            self._containers.append(start_kafka(kafka_port, free_port()))
            self.bootstrap_servers = f"127.0.0.1:{kafka_port}"
            self.gateway_url = f"http://127.0.0.1:{gateway_port}"
            config = self.write_config(self._folder / "etc", kafka_port, gateway_port)
            app = container(
                self.image, {}, command=["up"], volumes={config.parent: "/etc/paynotify"}
            )
            start(app, self._ready, f"paynotify up ({self.image})", self.startup_timeout)
            self._containers.append(app)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove every container this stack started, and its files."""
        while self._containers:
            stop(self._containers.pop())
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> PaynotifyStack:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def add_order(
        self,
        out_trade_no: str,
        *,
        amount_minor: int,
        currency: str = "CNY",
        provider: str = "alipay",
    ) -> None:
        """Publish the merchant's expected order, for the account of ``provider``.

        Raises:
            ValueError: an unknown provider.
            paynotify.errors.OrderPublishError: the broker did not acknowledge it.
        """
        from paynotify.orders import publish_orders
        from paynotify.simulator.runner import now_iso
        from stream.records import ORDERS_TOPIC, ExpectedOrder

        if provider not in ACCOUNTS:
            raise ValueError(f"unknown provider {provider!r}; choose from {sorted(ACCOUNTS)}")
        order = ExpectedOrder(out_trade_no, ACCOUNTS[provider], amount_minor, currency, now_iso())
        publish_orders(self.bootstrap_servers, ORDERS_TOPIC, [order])
        self._orders[out_trade_no] = _Order(provider, amount_minor, currency)

    def pay(
        self, out_trade_no: str, *, provider: str | None = None, amount_minor: int | None = None
    ) -> httpx.Response:
        """Send a genuinely signed payment notification of an added order; return the answer.

        ``provider`` defaults to the order's (another one pays through its own account, which
        the stream reports as an ``account_mismatch``); ``amount_minor`` to the order's amount.

        Raises:
            KeyError: the order was not added with ``add_order``.
        """
        import httpx

        order = self._orders[out_trade_no]
        amount = order.amount_minor if amount_minor is None else amount_minor
        signed = self.notification(
            out_trade_no, provider or order.provider, amount, order.currency, order.amount_minor
        )
        return httpx.post(signed.url, content=signed.body, headers=signed.headers)

    def notification(
        self,
        out_trade_no: str,
        provider: str,
        amount_minor: int,
        currency: str,
        order_amount_minor: int | None = None,
    ) -> Signed:
        """Return a payment notification of ``provider`` signed as it signs, ready to post.

        Raises:
            KeyError: an unknown provider, or the stack's configuration is not written yet.
        """
        from paynotify.simulator.signers import prepare

        message = Message("payment", uuid.uuid4().hex, amount_minor, (Delivery(0.0),))
        planned = PlannedOrder(
            out_trade_no,
            provider,
            ACCOUNTS[provider],
            amount_minor if order_amount_minor is None else order_amount_minor,
            currency,
            ("testing",),
            (message,),
            Expected("paid", paid_events=1),
            uuid.uuid4().hex,
        )
        prepared = prepare(planned, message, self._keys[provider], now=time.time())
        url = f"{self.gateway_url}/notify/{provider}/{ACCOUNTS[provider]}"
        return Signed(url, prepared.body, prepared.headers(time.time()))

    def wait_paid(self, out_trade_no: str, timeout: float = 60.0) -> dict[str, Any]:
        """Return the ``order-paid`` event of an order, waiting for it at most ``timeout`` s.

        Raises:
            TimeoutError: no such event within ``timeout`` seconds.
        """
        from stream.records import ORDER_PAID_TOPIC

        return self.wait_event(ORDER_PAID_TOPIC, out_trade_no, timeout)

    def wait_event(self, topic: str, out_trade_no: str, timeout: float = 60.0) -> dict[str, Any]:
        """Return the first committed event of ``topic`` about an order (read from the start).

        Raises:
            TimeoutError: no such event within ``timeout`` seconds.
        """
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": f"paynotify-testing-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                record = consumer.poll(0.5)
                if record is None or record.error() is not None:
                    continue
                if record.key() == out_trade_no.encode():
                    event: dict[str, Any] = json.loads(record.value())
                    return event
        finally:
            consumer.close()
        raise TimeoutError(f"no {topic} event for {out_trade_no} within {timeout:.0f}s")

    def _ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.gateway_url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def write_config(self, folder: Path, kafka_port: int, gateway_port: int) -> Path:
        """Write the configuration (one account per provider, fresh secrets and public keys)
        into ``folder``, keep the signing keys; return the file."""
        from gateway.settings import load_settings
        from paynotify.simulator.keys import signing_keys_for

        keys = folder / "keys"
        alipay, wechat = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab"
        )
        write_key_pair(alipay, keys)
        _, wechat_public = write_key_pair(wechat, folder / "wechat")
        wechat_public.rename(keys / "wechat_public.pem")
        shutil.rmtree(folder / "wechat")
        path = folder / "paynotify.toml"
        path.write_text(
            CONFIG.format(
                gateway_port=gateway_port,
                kafka_port=kafka_port,
                partitions=self.partitions,
                engine=self.engine,
                apiv3_key=secrets.token_hex(16),
                wechat_key_id=WECHAT_KEY_ID,
                stripe_secret="whsec_" + secrets.token_hex(24),
                standard_secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
                adyen_key=secrets.token_hex(32).upper(),
            )
        )
        (keys / "alipay_private.pem").unlink()  # the stack signs from memory; none in the image
        for mode, item in ((0o755, folder), (0o755, keys), (0o644, path)):
            item.chmod(mode)
        for public in keys.iterdir():
            public.chmod(0o644)
        accounts = load_settings(path).accounts
        private = {"alipay": alipay, "wechatpay": wechat}
        self._keys = {
            provider: signing_keys_for(accounts[(provider, name)], private.get(provider))
            for provider, name in ACCOUNTS.items()
        }
        return path


@pytest.fixture(scope="session")
def paynotify_stack() -> Iterator[PaynotifyStack]:
    """Yield a started ``PaynotifyStack`` shared by the session's tests."""
    stack = PaynotifyStack()
    try:
        require_images(stack.image, KAFKA_IMAGE)
    except ContainerError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"paynotify_stack cannot run: {exc}")
        pytest.skip(f"paynotify_stack: {exc}")
    with stack:
        yield stack
