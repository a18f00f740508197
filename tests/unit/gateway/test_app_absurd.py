"""The review's reproductions (issue 12), genuinely signed or not, through the served app: each
is refused with its 4xx, nothing is published; and the reshaped-signing-string attacks fail."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import pytest
from pydantic import SecretStr

from gateway.accounts import PROVIDERS
from gateway.asgi import LeanGateway
from gateway.providers import adyen, alipay
from gateway.providers.adyen import AdyenAccount
from gateway.providers.stripe import StripeAccount
from gateway.publisher import MemoryPublisher
from gateway.records import Notification
from tests.support import adyen_signer, stripe_signer, wechatpay_signer
from tests.support import alipay as alipay_signer
from tests.support import gateway_requests as reqs
from tests.support import standardwebhooks_signer as sw_signer


class Gateway:
    def __init__(self) -> None:
        self.publisher = MemoryPublisher()
        self.settings = reqs.settings()
        accounts = dict(self.settings.accounts)
        accounts[("adyen", "pinned")] = AdyenAccount(
            name="pinned",
            hmac_keys=(SecretStr(adyen_signer.KEY),),
            merchant_account_codes=frozenset({"ShopECOM"}),
        )
        accounts[("alipay", "rsa2")] = accounts[("alipay", "shop")].model_copy(
            update={"name": "rsa2", "sign_types": frozenset({"RSA2"})}
        )
        # Built around the account model's checks, as a configuration file could no longer be.
        accounts[("stripe", "empty")] = StripeAccount.model_construct(
            name="empty", signing_secrets=(SecretStr(""),)
        )
        self.settings = replace(self.settings, accounts=accounts)
        app = reqs.build(self.settings, self.publisher)
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


def _sw(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()  # ensure_ascii: a lone surrogate stays an escape
    return body, sw_signer.headers(body, reqs.NOW)


def _stripe(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, stripe_signer.headers(body, reqs.NOW)


def _alipay(**fields: str) -> tuple[bytes, dict[str, str]]:
    return alipay_signer.sign(alipay_signer.payment("absurd-1", **fields)), dict(reqs.FORM)


def _wechat(resource: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = wechatpay_signer.envelope(resource)
    return body, wechatpay_signer.headers(body, reqs.NOW)


def _adyen_unsigned(raw: bytes) -> tuple[bytes, dict[str, str]]:
    return raw, dict(adyen_signer.HEADERS)


BIG_INT = b"1" + b"0" * 4400
SIGNED_ABSURD = {
    "sw_amount_2_64": ("standardwebhooks", "shop", *_sw(sw_signer.payload(amount=2**64))),
    "sw_amount_negative": ("standardwebhooks", "shop", *_sw(sw_signer.payload(amount=-1))),
    "sw_lone_surrogate_order": (
        "standardwebhooks",
        "shop",
        *_sw(sw_signer.payload(out_trade_no="o-\ud800")),
    ),
    "alipay_snan_amount": ("alipay", "shop", *_alipay(total_amount="sNaN")),
    "alipay_infinity_amount": ("alipay", "shop", *_alipay(total_amount="Infinity")),
    "alipay_exponent_amount": ("alipay", "shop", *_alipay(total_amount="1E+999999")),
    "alipay_amount_beyond_int64": ("alipay", "shop", *_alipay(total_amount="9" * 30)),
    "alipay_year_zero_time": ("alipay", "shop", *_alipay(gmt_payment="0000-01-01 00:00:00")),
    "stripe_created_1e30": (
        "stripe",
        "shop",
        *_stripe(stripe_signer.body({**stripe_signer.intent("absurd-2"), "created": 10**30})),
    ),
    "stripe_amount_2_64": (
        "stripe",
        "shop",
        *_stripe(stripe_signer.body(stripe_signer.intent("absurd-3", amount=2**64))),
    ),
    "stripe_deep_nesting": ("stripe", "shop", *_stripe(b'{"a":' * 5000 + b"1" + b"}" * 5000)),
    "stripe_duplicated_id": (
        "stripe",
        "shop",
        *_stripe(stripe_signer.body(stripe_signer.intent("absurd-4"))[:-1] + b', "id": "evt_x"}'),
    ),
    "stripe_nan": ("stripe", "shop", *_stripe(b'{"id": NaN}')),
    "wechat_amount_2_64": (
        "wechatpay",
        "shop",
        *_wechat(wechatpay_signer.transaction("absurd-5", total=2**64)),
    ),
}
UNSIGNED_ABSURD = {
    "adyen_4400_digit_integer": ("adyen", "shop", *_adyen_unsigned(b'{"a": ' + BIG_INT + b"}")),
    "adyen_lone_surrogate": (
        "adyen",
        "shop",
        *_adyen_unsigned(b'{"notificationItems": [{"NotificationRequestItem": {"a": "\\ud800"}}]}'),
    ),
    "adyen_deep_nesting": ("adyen", "shop", *_adyen_unsigned(b"[" * 100_000 + b"]" * 100_000)),
    "wechat_4400_digit_timestamp": (
        "wechatpay",
        "shop",
        b"{}",
        {"content-type": "application/json", "wechatpay-timestamp": BIG_INT.decode()},
    ),
    "content_length_unicode_digit": (
        "alipay",
        "shop",
        b"a=b",
        {**reqs.FORM, "content-length": b"\xb2"},
    ),
}


@pytest.mark.parametrize("case", sorted(SIGNED_ABSURD))
def test_notify_signed_absurd_body_answers_400_and_publishes_nothing(
    gateway: Gateway, case: str
) -> None:
    provider, account, body, headers = SIGNED_ABSURD[case]
    response = gateway.post(f"/notify/{provider}/{account}", body, headers)
    assert response.status_code == 400, response.text
    assert gateway.publisher.records == []


@pytest.mark.parametrize("case", sorted(UNSIGNED_ABSURD))
def test_notify_unsigned_absurd_body_answers_4xx_and_publishes_nothing(
    gateway: Gateway, case: str
) -> None:
    provider, account, body, headers = UNSIGNED_ABSURD[case]
    response = gateway.post(f"/notify/{provider}/{account}", body, headers)
    assert 400 <= response.status_code < 500, response.text
    assert gateway.publisher.records == []


def test_notify_stripe_empty_secret_signature_answers_401(gateway: Gateway) -> None:
    body = stripe_signer.body(stripe_signer.intent("forged-1"))
    response = gateway.post("/notify/stripe/empty", body, stripe_signer.headers(body, reqs.NOW, ""))
    assert response.status_code == 401
    assert gateway.publisher.records == []


def test_notify_alipay_rsa_on_rsa2_pinned_account_answers_400_fail(gateway: Gateway) -> None:
    params = alipay_signer.payment("pinned-1")
    rsa1 = alipay_signer.sign(params, sign_type="RSA")
    assert gateway.post("/notify/alipay/shop", rsa1, dict(reqs.FORM)).status_code == 200
    response = gateway.post("/notify/alipay/rsa2", rsa1, dict(reqs.FORM))
    assert (response.status_code, response.text) == (400, "fail")
    assert gateway.publisher.records == []
    rsa2 = alipay_signer.sign(params)
    assert gateway.post("/notify/alipay/rsa2", rsa2, dict(reqs.FORM)).status_code == 200


def test_notify_adyen_foreign_merchant_account_answers_403(gateway: Gateway) -> None:
    ours = adyen_signer.signed(adyen_signer.item("m-1", merchantAccountCode="ShopECOM"))
    foreign = adyen_signer.signed(adyen_signer.item("m-2", psp="8814073381342285"))
    headers = dict(adyen_signer.HEADERS)
    assert (
        gateway.post("/notify/adyen/pinned", adyen_signer.batch(ours), headers).status_code == 200
    )
    response = gateway.post("/notify/adyen/pinned", adyen_signer.batch(ours, foreign), headers)
    assert response.status_code == 403
    assert gateway.publisher.records == []


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs).encode()


def _reshape_alipay(body: bytes, moved: str, into: str) -> bytes:
    """Move field ``moved`` (as ``&moved=value``) to the end of field ``into``'s value."""
    pairs = parse_qsl(body.decode(), keep_blank_values=True)
    value = dict(pairs)[moved]
    kept = [(k, v + f"&{moved}={value}" if k == into else v) for k, v in pairs if k != moved]
    return _form(kept)


ALIPAY_REFUND = alipay_signer.payment(
    "refunded-1",
    out_biz_no="R20261126001",
    refund_fee="0.40",
    gmt_refund="2026-11-26 11:00:00.000",
    passback_params="p1",
)


@pytest.mark.parametrize(
    ("moved", "into"), [("out_biz_no", "notify_type"), ("refund_fee", "passback_params")]
)
def test_notify_alipay_refund_reshaped_into_payment_refused(
    gateway: Gateway, moved: str, into: str
) -> None:
    genuine = alipay_signer.sign(ALIPAY_REFUND)
    response = gateway.post("/notify/alipay/shop", genuine, dict(reqs.FORM))
    assert (response.status_code, response.text) == (200, "success")
    [(_t, _k, value)] = gateway.publisher.records
    assert Notification.from_bytes(value).kind == "refund"

    reshaped = _reshape_alipay(genuine, moved, into)
    original, changed = alipay.parse_form(genuine), alipay.parse_form(reshaped)
    assert moved not in changed  # the field is gone, yet the signed string is the same:
    assert alipay.canonical_string(changed) == alipay.canonical_string(original)
    response = gateway.post("/notify/alipay/shop", reshaped, dict(reqs.FORM))
    assert (response.status_code, response.text) == (400, "fail")
    assert gateway.publisher.records == []


def test_notify_adyen_item_with_colon_moved_refused(gateway: Gateway) -> None:
    # A merchant reference holding a colon makes the signing string ambiguous: the same
    # signature covers a reshaped item for another order.
    original = adyen_signer.signed(adyen_signer.item("shop:order-7"))
    reshaped = {
        **original,
        "merchantAccountCode": "TestMerchant:shop",
        "merchantReference": "order-7",
    }
    assert adyen.signing_string(reshaped) == adyen.signing_string(original)
    key = adyen.hex_key(adyen_signer.KEY)
    assert adyen.item_signature(key, reshaped) == reshaped["additionalData"]["hmacSignature"]
    for item in (original, reshaped):
        response = gateway.post(
            "/notify/adyen/shop", adyen_signer.batch(item), dict(adyen_signer.HEADERS)
        )
        assert response.status_code == 400, response.text
        assert gateway.publisher.records == []


@pytest.mark.parametrize(
    "change",
    [
        {"pspReference": "79140733813422"},
        {"eventCode": "authorisation"},
        {"success": "yes"},
        {"amount": {"value": "100", "currency": "EUR"}},
        {"amount": {"value": 100, "currency": "eur"}},
        {"amount": {"value": 2**63, "currency": "EUR"}},
        {"amount": {"value": -1, "currency": "EUR"}},
        {"originalReference": "x:y"},
    ],
)
def test_notify_adyen_signed_field_outside_its_format_answers_400(
    gateway: Gateway, change: dict[str, Any]
) -> None:
    item = adyen_signer.signed(
        adyen_signer.item("fmt-1", **{k: v for k, v in change.items() if k != "amount"})
        | ({"amount": change["amount"]} if "amount" in change else {})
    )
    response = gateway.post(
        "/notify/adyen/shop", adyen_signer.batch(item), dict(adyen_signer.HEADERS)
    )
    assert response.status_code == 400, response.text
    assert gateway.publisher.records == []


@pytest.mark.parametrize(
    "change",
    [
        {"notify_type": "trade_status_sync&x=1"},
        {"trade_status": "TRADE_PAID"},
        {"out_trade_no": "o&total_amount=1.00"},
        {"trade_no": "2026=1"},
        {"notify_id": "n" * 129},
        {"total_amount": "-1.00"},
        {"total_amount": "1.001"},
        {"refund_fee": "NaN"},
        {"gmt_payment": "tomorrow"},
        {"unknown_field": "a&b"},
        {"bad key": "1"},
    ],
)
def test_notify_alipay_field_outside_its_format_answers_400_fail(
    gateway: Gateway, change: dict[str, str]
) -> None:
    body = alipay_signer.sign({**alipay_signer.payment("fmt-2"), **change})
    response = gateway.post("/notify/alipay/shop", body, dict(reqs.FORM))
    assert (response.status_code, response.text) == (400, "fail")
    assert gateway.publisher.records == []


def test_notify_unexpected_exception_answers_400_and_logs_its_type(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ZeroDivisionError("secret-looking detail")

    monkeypatch.setitem(PROVIDERS, "stripe", replace(PROVIDERS["stripe"], verify=broken))
    body, headers = reqs.genuine("stripe", "defect-1")
    with caplog.at_level(logging.ERROR, logger="paynotify.gateway"):
        response = gateway.post("/notify/stripe/shop", body, headers)
    assert response.status_code == 400
    assert gateway.publisher.records == []
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.error == "ZeroDivisionError"  # type: ignore[attr-defined]
    assert "secret-looking" not in caplog.text and "defect-1" not in caplog.text


async def _answer(app: LeanGateway, receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    _body, headers = reqs.genuine("alipay", "slow-1")
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/notify/alipay/shop",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    return sent


async def test_notify_body_not_arriving_within_read_timeout_answers_408_and_closes() -> None:
    publisher = MemoryPublisher()
    app = LeanGateway(replace(reqs.settings(), read_timeout_seconds=0.2), publisher=publisher)
    started = asyncio.get_running_loop().time()

    async def trickle() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"a", "more_body": True}

    sent = await _answer(app, trickle)
    assert 0.2 <= asyncio.get_running_loop().time() - started < 1.0
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert publisher.records == []


async def test_notify_client_leaving_mid_body_publishes_nothing() -> None:
    publisher = MemoryPublisher()
    app = LeanGateway(reqs.settings(), publisher=publisher)
    body, _headers = reqs.genuine("alipay", "slow-1")
    messages = iter(
        [
            {"type": "http.request", "body": body[:-5], "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent = await _answer(app, receive)
    assert sent[0]["status"] == 400
    assert publisher.records == []
