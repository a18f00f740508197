"""The served gateway with one Alipay account: answers, publishing, probes and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.asgi import LeanGateway
from gateway.providers.alipay import AlipayAccount
from gateway.publisher import MemoryPublisher
from gateway.records import NOTIFICATIONS_TOPIC, Notification
from gateway.settings import GatewaySettings
from tests.support import alipay as signer
from tests.support import gateway_requests as reqs

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
URL = "/notify/alipay/shop"


def settings(max_body_bytes: int = 64 * 1024) -> GatewaySettings:
    shop = AlipayAccount(
        name="shop", app_id=signer.APP_ID, public_keys=(signer.key(0).public_key(),)
    )
    return GatewaySettings(
        host="127.0.0.1",
        port=0,
        max_body_bytes=max_body_bytes,
        delivery_timeout_ms=4000,
        bootstrap_servers="unused:9092",
        partitions=8,
        topic_prefix="",
        accounts={("alipay", "shop"): shop},
    )


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[httpx.AsyncClient]:
    app = LeanGateway(settings(max_body_bytes=4096), publisher=publisher, clock=lambda: 1.8e9)
    transport = httpx.ASGITransport(app=app)
    async with (
        reqs.serving(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as test_client,
    ):
        yield test_client


async def test_notify_genuine_answers_success_after_publishing(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    response = await client.post(URL, content=signer.sign(signer.payment("o-1")), headers=FORM)
    assert (response.status_code, response.text) == (200, "success")
    [(topic, key, value)] = publisher.records
    assert (topic, key) == (NOTIFICATIONS_TOPIC, b"o-1")
    assert Notification.from_bytes(value).amount_minor == 100


async def test_notify_duplicate_is_acknowledged_like_the_first(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    body = signer.sign(signer.payment("o-2"))
    answers = [(await client.post(URL, content=body, headers=FORM)).text for _ in range(3)]
    assert answers == ["success"] * 3
    assert len(publisher.records) == 3


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("tampered", 400, "fail"),
        ("wrong_app", 403, "fail"),
        ("malformed", 400, "fail"),
        ("json", 415, "fail"),
        ("too_large", 413, "fail"),
    ],
)
async def test_notify_bad_input_answers_4xx_and_publishes_nothing(
    client: httpx.AsyncClient, publisher: MemoryPublisher, case: str, status: int, text: str
) -> None:
    body, headers = signer.sign(signer.payment("o-3")), FORM
    if case == "tampered":
        body = body.replace(b"total_amount=1.00", b"total_amount=9.00")
    elif case == "wrong_app":
        body = signer.sign(signer.payment("o-3", app_id="2021999999999999"))
    elif case == "malformed":
        body = b"%%%&&="
    elif case == "json":
        headers = {"content-type": "application/json"}
    else:
        body = body + b"&subject=" + b"x" * 5000
    response = await client.post(URL, content=body, headers=headers)
    assert (response.status_code, response.text) == (status, text)
    assert publisher.records == []


@pytest.mark.parametrize("path", ["/notify/alipay/nobody", "/notify/paypal/shop"])
async def test_notify_unknown_provider_or_account_answers_404(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, content=signer.sign(signer.payment()), headers=FORM)
    assert response.status_code == 404


async def test_notify_broker_down_answers_503_so_the_provider_retries(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    publisher.fail = True
    response = await client.post(URL, content=signer.sign(signer.payment()), headers=FORM)
    assert (response.status_code, response.text) == (503, "fail")


async def test_probes_and_metrics_answer(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    await client.post(URL, content=signer.sign(signer.payment()), headers=FORM)
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert (
        'paynotify_gateway_requests_total{account="shop",outcome="accepted",provider="alipay"} 1.0'
        in metrics
    )
    publisher.fail = True
    assert (await client.get("/readyz")).status_code == 503
