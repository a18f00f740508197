"""Per provider: genuinely signed absurd payloads (and the same bodies unsigned) sent to the served
ASGI app. No answer is a 5xx, and every record published decodes with ``Notification.from_bytes``
(which runs the stream's ``check``): nothing reaches the topic that the stream cannot read.

``PAYNOTIFY_FUZZ_EXAMPLES`` sets the examples per test (default 120: a few seconds each);
``PAYNOTIFY_FUZZ_REPORT=path`` writes how many requests were tried, by provider, signed or not
and status, for the "Bad input" table of docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.publisher import MemoryPublisher
from gateway.records import Notification
from paynotify.simulator import signers
from tests.support import adyen_signer, stripe_signer, wechatpay_signer
from tests.support import alipay as alipay_signer
from tests.support import gateway_requests as reqs
from tests.support import standardwebhooks_signer as sw_signer
from tests.support.absurd import ABSURD_TEXT, Pairs, dump, mutated, signing_text

EXAMPLES = int(os.environ.get("PAYNOTIFY_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TRIED: Counter[tuple[str, str, int]] = Counter()


class Defects(logging.Handler):
    """Collect the gateway's error log lines: an unexpected exception is a defect even though
    the request was answered 400."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.getMessage()} {getattr(record, 'error', '')}")


class Gateway:
    def __init__(self) -> None:
        self.defects = Defects()
        self.publisher = MemoryPublisher()
        app = reqs.build(reqs.settings(), self.publisher)
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        )

    def check(self, provider: str, body: bytes, headers: dict[str, str], signed: bool) -> None:
        """Send one request and assert the hardening contract for it."""
        self.publisher.records.clear()
        self.defects.seen.clear()
        request = self.client.post(f"/notify/{provider}/shop", content=body, headers=headers)
        response = self.loop.run_until_complete(request)
        TRIED[(provider, "signed" if signed else "unsigned", response.status_code)] += 1
        assert response.status_code < 500, response.text
        assert self.defects.seen == [], self.defects.seen
        if response.status_code >= 300 or not signed:
            assert self.publisher.records == [], response.status_code
        for _topic, key, value in self.publisher.records:
            note = Notification.from_bytes(value)
            assert key == note.key()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    logger = logging.getLogger("paynotify.gateway")
    logger.addHandler(gw.defects)
    yield gw
    logger.removeHandler(gw.defects)
    gw.loop.run_until_complete(gw.client.aclose())
    gw.loop.close()
    report = os.environ.get("PAYNOTIFY_FUZZ_REPORT")
    if report:
        rows = [
            {"provider": p, "signed": s, "status": c, "requests": n}
            for (p, s, c), n in sorted(TRIED.items())
        ]
        with open(report, "w", encoding="utf-8") as out:
            json.dump({"examples_per_test": EXAMPLES, "rows": rows}, out, indent=1)


def _unsign(headers: dict[str, str], name: str, forged: str) -> dict[str, str]:
    return {**headers, name: forged}


@FUZZ
@given(
    event=st.sampled_from(
        [
            stripe_signer.intent("fz-s"),
            stripe_signer.checkout("fz-s"),
            stripe_signer.refunded("fz-s"),
        ]
    ).flatmap(mutated),
    signed=st.booleans(),
)
def test_stripe_signed_absurd_event_never_5xx_publishes_only_readable(
    gateway: Gateway, event: Any, signed: bool
) -> None:
    body = dump(event)
    header = signers.stripe_header(stripe_signer.SECRET, reqs.NOW, body)
    if not signed:
        header = header[:-4] + "0000"
    headers = {"content-type": "application/json", "stripe-signature": header}
    gateway.check("stripe", body, headers, signed)


@FUZZ
@given(
    payload=st.sampled_from(
        [sw_signer.payload(t, "fz-w") for t in ("payment.succeeded", "refund.succeeded")]
    ).flatmap(mutated),
    msg_id=st.sampled_from(["msg_1", "msg_" + "x" * 300])
    | st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
    signed=st.booleans(),
)
def test_standardwebhooks_signed_absurd_message_never_5xx_publishes_only_readable(
    gateway: Gateway, payload: Any, msg_id: str, signed: bool
) -> None:
    body = dump(payload)
    secret = sw_signer.SECRET if signed else sw_signer.OTHER_SECRET
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(reqs.NOW),
        "webhook-signature": signers.standard_signature(secret, msg_id, reqs.NOW, body),
    }
    gateway.check("standardwebhooks", body, headers, signed)


def _wechat_body(resource: Any, envelope_change: Any, event_type: str) -> bytes:
    nonce, associated = "abcdefghijkl", "transaction"
    sealed = AESGCM(wechatpay_signer.APIV3_KEY.encode()).encrypt(
        nonce.encode(), dump(resource), associated.encode()
    )
    envelope = {
        "id": "EV-fz",
        "create_time": "2026-11-26T18:00:02+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": associated,
            "nonce": nonce,
        },
    }
    return dump(envelope_change(envelope))


@FUZZ
@given(
    pick=st.sampled_from(
        [
            (wechatpay_signer.transaction("fz-x"), "TRANSACTION.SUCCESS"),
            (wechatpay_signer.refund("fz-x"), "REFUND.SUCCESS"),
        ]
    ).flatmap(lambda p: st.tuples(mutated(p[0]), st.just(p[1]))),
    envelope_too=st.booleans(),
    data=st.data(),
    signed=st.booleans(),
)
def test_wechatpay_signed_absurd_resource_never_5xx_publishes_only_readable(
    gateway: Gateway, pick: tuple[Any, str], envelope_too: bool, data: Any, signed: bool
) -> None:
    resource, event_type = pick
    change = (lambda e: data.draw(mutated(e))) if envelope_too else (lambda e: e)
    body = _wechat_body(resource, change, event_type)
    key = alipay_signer.key(0) if signed else alipay_signer.key(2)
    signature = signers.wechat_signature(key, str(reqs.NOW), "n0nce42", body)
    headers = {
        "content-type": "application/json",
        "wechatpay-timestamp": str(reqs.NOW),
        "wechatpay-nonce": "n0nce42",
        "wechatpay-signature": signature,
        "wechatpay-serial": wechatpay_signer.PUB_KEY_ID,
    }
    gateway.check("wechatpay", body, headers, signed)


def _adyen_sign(item: Any, key: str) -> Any:
    values = dict(item.items) if isinstance(item, Pairs) else item
    if not isinstance(values, dict):
        return item
    amount = values.get("amount")
    amount = amount if isinstance(amount, dict) else {}
    merged = {**values, "value": amount.get("value", ""), "currency": amount.get("currency", "")}
    try:
        text = ":".join(signing_text(merged.get(n, "")) for n in signers.ADYEN_SIGNED)
    except ValueError:  # an integer Python will not write in decimal: no signer could sign it
        return item
    digest = hmac.new(bytes.fromhex(key), text.encode("utf-8", "surrogatepass"), hashlib.sha256)
    signature = base64.b64encode(digest.digest()).decode()
    additional = {"hmacSignature": signature}
    if isinstance(item, Pairs):
        return Pairs(
            (
                *((k, v) for k, v in item.items if k != "additionalData"),
                ("additionalData", additional),
            )
        )
    return {**item, "additionalData": additional}


@FUZZ
@given(
    items=st.lists(
        st.sampled_from(
            [
                adyen_signer.item("fz-a"),
                adyen_signer.item(
                    "fz-a",
                    "REFUND",
                    40,
                    psp="8814073381342285",
                    originalReference="7914073381342284",
                ),
                adyen_signer.item("fz-a", "CANCELLATION"),
            ]
        ).flatmap(mutated),
        min_size=1,
        max_size=3,
    ),
    signed=st.booleans(),
)
def test_adyen_signed_absurd_items_never_5xx_publishes_only_readable(
    gateway: Gateway, items: list[Any], signed: bool
) -> None:
    key = adyen_signer.KEY if signed else adyen_signer.OTHER_KEY
    wrapped = [{"NotificationRequestItem": _adyen_sign(i, key)} for i in items]
    body = dump({"live": "false", "notificationItems": wrapped})
    gateway.check("adyen", body, dict(adyen_signer.HEADERS), signed)


ALIPAY_TEXT = ABSURD_TEXT.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))


@FUZZ
@given(
    base=st.sampled_from(
        [
            alipay_signer.payment("fz-p"),
            alipay_signer.payment(
                "fz-p", out_biz_no="R1", refund_fee="0.40", gmt_refund="2026-11-26 11:00:00.000"
            ),
            alipay_signer.payment("fz-p", trade_status="TRADE_CLOSED"),
        ]
    ),
    changes=st.dictionaries(
        st.sampled_from(
            [
                "total_amount",
                "refund_fee",
                "trade_status",
                "notify_type",
                "out_trade_no",
                "notify_id",
                "out_biz_no",
                "gmt_payment",
                "notify_time",
                "app_id",
                "subject",
                "unknown_field",
            ]
        ),
        ALIPAY_TEXT
        | st.sampled_from(["sNaN", "1" * 4400, "-0.01", "1E+5", "0000-00-00 00:00:00"])
        | st.sampled_from(["2.00", "TRADE_FINISHED", "ok-2", "2026-11-26 10:00:00"]),
        max_size=3,
    ),
    removed=st.lists(
        st.sampled_from(["total_amount", "notify_id", "out_trade_no", "trade_status"]), max_size=2
    ),
    duplicated=st.sampled_from([None, "total_amount", "out_trade_no", "notify_id"]),
    signed=st.booleans(),
)
@example(  # genuine, with free text holding separators: accepted and published
    base=alipay_signer.payment("fz-p"),
    changes={"subject": "a&b=c", "total_amount": "2.00"},
    removed=[],
    duplicated=None,
    signed=True,
)
def test_alipay_signed_absurd_form_never_5xx_publishes_only_readable(
    gateway: Gateway,
    base: dict[str, str],
    changes: dict[str, str],
    removed: list[str],
    duplicated: str | None,
    signed: bool,
) -> None:
    params = {k: v for k, v in {**base, **changes}.items() if k not in removed}
    key = alipay_signer.key(0) if signed else alipay_signer.key(2)
    body = signers.encode_form(signers.sign_alipay(params, key))
    if duplicated:
        body += f"&{duplicated}=9.99".encode()
    gateway.check("alipay", body, dict(reqs.FORM), signed)
    if signed and not (changes or removed or duplicated):
        assert len(gateway.publisher.records) == 1  # the genuine form itself is accepted
