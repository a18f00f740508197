"""Malformed, truncated, oversized, wrongly encoded and tampered requests at every route: the
gateway never answers 5xx (there is no broker failure here) and publishes only genuine facts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.publisher import MemoryPublisher
from gateway.records import Notification
from tests.support import gateway_requests as reqs

LIMIT = 4096
GENUINE = {p: reqs.genuine(p, f"fuzz-{p}") for p in reqs.PROVIDERS}
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


class Gateway:
    def __init__(self) -> None:
        self.publisher = MemoryPublisher()
        app = reqs.build(reqs.settings(max_body_bytes=LIMIT), self.publisher)
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        )

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        self.publisher.records.clear()
        return self.loop.run_until_complete(self.client.post(path, content=body, headers=headers))


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    yield gw
    gw.loop.run_until_complete(gw.client.aclose())
    gw.loop.close()


@st.composite
def tampered(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    provider = draw(st.sampled_from(reqs.PROVIDERS))
    body, headers = GENUINE[provider]
    headers = dict(headers)
    action = draw(st.sampled_from(["flip", "truncate", "append", "oversize", "header", "drop"]))
    if action == "flip":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    elif action == "truncate":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif action == "append":
        body = body + draw(st.binary(min_size=1, max_size=64))
    elif action == "oversize":
        body = body + b" " * LIMIT
    elif action == "header":
        headers[draw(st.sampled_from(sorted(headers)))] = draw(HEADER_TEXT)
    else:
        del headers[draw(st.sampled_from(sorted(headers)))]
    return provider, body, headers


def _check(response: httpx.Response, gateway: Gateway, provider: str) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 300:
        assert gateway.publisher.records == []
    for _topic, key, value in gateway.publisher.records:
        note = Notification.from_bytes(value)
        assert (key, note.amount_minor) == (f"fuzz-{provider}".encode(), 100)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=tampered())
def test_notify_tampered_request_never_5xx_and_never_publishes_a_forgery(
    gateway: Gateway, request: tuple[str, bytes, dict[str, str]]
) -> None:
    provider, body, headers = request
    response = gateway.post(f"/notify/{provider}/shop", body, headers)
    _check(response, gateway, provider)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    provider=st.sampled_from([*reqs.PROVIDERS, "paypal"]),
    account=st.sampled_from(["shop", "nobody"]),
    body=st.binary(max_size=LIMIT + 64),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded; charset=gbk", "text/plain", ""]
    ),
    extra=st.dictionaries(
        st.sampled_from(
            [
                "stripe-signature",
                "webhook-signature",
                "webhook-timestamp",
                "webhook-id",
                "wechatpay-serial",
                "wechatpay-timestamp",
                "wechatpay-signature",
                "wechatpay-nonce",
            ]
        ),
        HEADER_TEXT,
    ),
)
def test_notify_random_request_never_5xx_and_publishes_nothing(
    gateway: Gateway,
    provider: str,
    account: str,
    body: bytes,
    content_type: str,
    extra: dict[str, str],
) -> None:
    headers = {"content-type": content_type, **extra}
    response = gateway.post(f"/notify/{provider}/{account}", body, headers)
    assert 400 <= response.status_code < 500
    assert gateway.publisher.records == []
