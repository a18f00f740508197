from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.publisher import MemoryPublisher
from gateway.records import Notification
from gateway.settings import GatewaySettings
from tests.support import gateway_requests as reqs
from tests.support import stripe_signer

SUCCESS = {
    "alipay": (200, "success"),
    "wechatpay": (204, ""),
    "stripe": (200, '{"received":true}'),
    "standardwebhooks": (200, '{"received":true}'),
    "adyen": (200, "[accepted]"),
}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


async def _client(
    publisher: MemoryPublisher, settings: GatewaySettings
) -> AsyncIterator[httpx.AsyncClient]:
    app = reqs.build(settings, publisher)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with (
        reqs.serving(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(publisher, reqs.settings()):
        yield c


@pytest.mark.parametrize("provider", reqs.PROVIDERS)
async def test_notify_genuine_answers_provider_success_after_publishing(
    client: httpx.AsyncClient, publisher: MemoryPublisher, provider: str
) -> None:
    body, headers = reqs.genuine(provider, f"{provider}-1")
    response = await client.post(f"/notify/{provider}/shop", content=body, headers=headers)
    assert (response.status_code, response.text) == SUCCESS[provider]
    [(_topic, key, value)] = publisher.records
    note = Notification.from_bytes(value)
    assert (key, note.provider, note.raw_body()) == (f"{provider}-1".encode(), provider, body)


@pytest.mark.parametrize("provider", ["wechatpay", "stripe", "standardwebhooks"])
async def test_notify_stale_timestamp_answers_401_and_publishes_nothing(
    client: httpx.AsyncClient, publisher: MemoryPublisher, provider: str
) -> None:
    body, headers = reqs.genuine(provider, "old", now=reqs.NOW - 3600)
    response = await client.post(f"/notify/{provider}/shop", content=body, headers=headers)
    assert response.status_code == 401
    assert publisher.records == []


async def test_notify_wechat_failure_answers_code_fail(client: httpx.AsyncClient) -> None:
    body, headers = reqs.genuine("wechatpay", "wx-bad")
    response = await client.post("/notify/wechatpay/shop", content=body + b" ", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "FAIL"
    assert isinstance(response.json()["message"], str)


async def test_notify_unmapped_event_acknowledged_and_not_published(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    event = {**stripe_signer.intent("st-x"), "type": "customer.created"}
    body = stripe_signer.body(event)
    headers = stripe_signer.headers(body, reqs.NOW)
    response = await client.post("/notify/stripe/shop", content=body, headers=headers)
    assert response.status_code == 200
    assert publisher.records == []
    metrics = (await client.get("/metrics")).text
    assert 'outcome="ignored",provider="stripe"' in metrics


@pytest.mark.parametrize("provider", reqs.PROVIDERS)
async def test_notify_broker_down_answers_503(
    client: httpx.AsyncClient, publisher: MemoryPublisher, provider: str
) -> None:
    publisher.fail = True
    body, headers = reqs.genuine(provider, "down")
    response = await client.post(f"/notify/{provider}/shop", content=body, headers=headers)
    assert response.status_code == 503


async def test_notify_failures_counted_by_reason(client: httpx.AsyncClient) -> None:
    body, headers = reqs.genuine("stripe", "st-bad")
    await client.post("/notify/stripe/shop", content=body + b" ", headers=headers)
    metrics = (await client.get("/metrics")).text
    assert (
        'paynotify_gateway_verification_failures_total{account="shop",provider="stripe",'
        'reason="signature"} 1.0' in metrics
    )
    assert "paynotify_gateway_in_flight 0.0" in metrics


@pytest.mark.parametrize(("cidr", "status"), [("10.1.0.0/16", 200), ("192.0.2.0/24", 403)])
async def test_notify_source_allowlist_admits_only_listed_networks(
    publisher: MemoryPublisher, cidr: str, status: int
) -> None:
    allow = {("stripe", "shop"): reqs.networks(cidr)}
    async for client in _client(publisher, reqs.settings(source_networks=allow)):
        body, headers = reqs.genuine("stripe", "st-ip")
        response = await client.post("/notify/stripe/shop", content=body, headers=headers)
        assert response.status_code == status
        assert len(publisher.records) == (1 if status == 200 else 0)


async def test_notify_log_lines_carry_ids_and_no_body_or_secret(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "paynotify.gateway")
    body, headers = reqs.genuine("stripe", "st-log")
    await client.post("/notify/stripe/shop", content=body, headers=headers)
    await client.post("/notify/stripe/shop", content=body + b" ", headers=headers)
    [accepted, rejected] = [r for r in caplog.records if r.name == "paynotify.gateway"]
    ids = (getattr(accepted, "notify_id", None), getattr(accepted, "out_trade_no", None))
    assert ids == ("evt_pi_st-log", "st-log")
    text = json.dumps([vars(r) for r in caplog.records], default=str)
    assert stripe_signer.SECRET not in text and "livemode" not in text
    assert getattr(rejected, "reason", None) == "signature"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("HEAD", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("POST", "/notify/alipay", 404),
        ("POST", "/notify/alipay/shop/extra", 404),
        ("POST", "/notify/paypal/shop", 404),
        ("GET", "/nowhere", 404),
        # A wrong method on a known path is not found either (no 405 and no Allow header).
        ("GET", "/notify/alipay/shop", 404),
        ("POST", "/healthz", 404),
        ("PUT", "/metrics", 404),
    ],
)
async def test_paths_answer_as_the_contract_says(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    assert (await client.request(method, path)).status_code == status
