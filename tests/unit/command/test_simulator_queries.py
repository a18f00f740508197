"""The simulator's query APIs: what the reconciler asks, the simulator answers as the provider
would, and the gateway's own verifiers accept it; a wrongly signed request is refused."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from gateway.accounts import QUERIES
from gateway.errors import QueryFailedError
from gateway.providers.alipay import AlipayAccount
from gateway.providers.query import QueryAnswer, QueryOutcome, Reconcilable
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from paynotify.reconcile.loop import http_sender
from paynotify.simulator.answers import Asked
from paynotify.simulator.keys import plan_accounts, signing_keys_for
from paynotify.simulator.plan import Options, Plan, PlannedOrder, plan
from paynotify.simulator.queries import QueryServer, played_accounts, reply
from paynotify.simulator.runner import Target, simulate
from paynotify.simulator.signers import SigningKeys
from tests.support import alipay as alipay_signer
from tests.support import stripe_signer
from tests.support import wechatpay_signer as wx

NOW = 1795687200.0
MERCHANT = alipay_signer.key(5)  # the merchant's key (app key, merchant API key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accounts(port: int) -> dict[tuple[str, str], Reconcilable]:
    base = f"http://127.0.0.1:{port}"
    provider_key = alipay_signer.key(0).public_key()
    return {
        ("alipay", "shop"): AlipayAccount(
            name="shop",
            app_id=alipay_signer.APP_ID,
            alipay_public_keys=(provider_key,),
            app_private_key=MERCHANT,
            query_url=f"{base}/alipay/shop/gateway.do",
        ),
        ("wechatpay", "shop"): WechatPayAccount(
            name="shop",
            mchid=wx.MCHID,
            appid=wx.APPID,
            apiv3_key=SecretStr(wx.APIV3_KEY),
            platform_public_keys={wx.PUB_KEY_ID: provider_key},
            merchant_private_key=MERCHANT,
            merchant_serial_no="5157F0",
            query_url=f"{base}/wechatpay/shop",
        ),
        ("stripe", "shop"): StripeAccount(
            name="shop",
            signing_secrets=(SecretStr(stripe_signer.SECRET),),
            api_key=SecretStr("sk_test_0123456789abcdefghijklmn"),
            query_url=f"{base}/stripe/shop",
        ),
    }


def keys(port: int) -> dict[tuple[str, str], SigningKeys]:
    private = alipay_signer.key(0)
    return {
        where: signing_keys_for(account, private if where[0] != "stripe" else None)
        for where, account in accounts(port).items()
    }


def the_plan(port: int) -> Plan:
    signing = keys(port)
    options = Options(orders=30, seed=3, run_id="q", lost=0.3, forged=0.1, refunds=0)
    return plan(options, plan_accounts(signing, played_accounts(signing)))


def ask(order: PlannedOrder, port: int, account: Reconcilable | None = None) -> QueryOutcome:
    """Build the reconciler's request, answer it in memory, verify the answer."""
    account = account or accounts(port)[(order.provider, order.account)]
    query = QUERIES[order.provider]
    request = query.request(account, order.out_trade_no, now=NOW, nonce="abc123")
    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    asked = Asked(request.method, target, dict(request.headers), request.body)
    orders = {o.out_trade_no: o for o in the_plan(port).orders}
    _, answer = reply(asked, keys(port), orders, NOW)
    return query.verify(
        QueryAnswer(answer.status, answer.headers, answer.body),
        account,
        order.out_trade_no,
        now=NOW,
    )


def test_plan_loses_webhooks_only_of_played_accounts() -> None:
    lost = [o for o in the_plan(8700).orders if o.scenario[0] == "lost"]
    assert {o.provider for o in lost} == {"alipay", "wechatpay", "stripe"}
    assert all(not m.deliveries for o in lost for m in o.messages)
    assert all(o.expected.status == "paid" and o.expected.paid_events == 1 for o in lost)


@pytest.mark.parametrize("provider", ["alipay", "wechatpay", "stripe"])
def test_lost_payment_is_proven_by_the_simulated_query(provider: str) -> None:
    order = next(
        o for o in the_plan(8700).orders if o.scenario[0] == "lost" and o.provider == provider
    )
    outcome = ask(order, 8700)
    (note,) = outcome.notifications
    assert outcome.state == "paid"
    assert (note.out_trade_no, note.amount_minor, note.source) == (
        order.out_trade_no,
        order.amount_minor,
        "query",
    )


@pytest.mark.parametrize("provider", ["alipay", "wechatpay", "stripe"])
def test_forged_order_is_not_paid_by_query(provider: str) -> None:
    order = next(
        o for o in the_plan(8700).orders if o.scenario[0] == "forged" and o.provider == provider
    )
    assert ask(order, 8700).state == "unpaid"


@pytest.mark.parametrize("provider", ["alipay", "wechatpay", "stripe"])
def test_request_with_another_merchant_key_is_refused(provider: str) -> None:
    order = next(o for o in the_plan(8700).orders if o.provider == provider)
    account = accounts(8700)[(provider, "shop")]
    other = {
        "alipay": {"app_private_key": alipay_signer.key(7)},
        "wechatpay": {"merchant_private_key": alipay_signer.key(7)},
        "stripe": {"api_key": SecretStr("sk_test_somebody_elses_key_000000")},
    }[provider]
    impostor = account.model_copy(update=other)
    with pytest.raises(QueryFailedError):
        ask(order, 8700, impostor)


@pytest.fixture
def server() -> Iterator[tuple[QueryServer, int]]:
    port = free_port()
    running = QueryServer(the_plan(port), played_accounts(keys(port)))
    running.start()
    yield running, port
    running.stop()


def test_server_answers_the_reconcilers_http_queries(server: tuple[QueryServer, int]) -> None:
    running, port = server
    lost = [o for o in running.orders.values() if o.scenario[0] == "lost"]
    with httpx.Client(timeout=5) as client:
        send = http_sender(client)
        for order in lost:
            account = accounts(port)[(order.provider, order.account)]
            now = time.time()  # the server signs with its own clock, as a provider does
            answer = send(account, order.out_trade_no, now)
            outcome = QUERIES[order.provider].verify(answer, account, order.out_trade_no, now=now)
            assert outcome.state == "paid"
    assert running.asked == len(lost)


def test_plan_late_webhooks_wait_for_the_query() -> None:
    late = [o for o in the_plan(8700).orders if o.scenario[0] == "late"]
    assert {o.provider for o in late} == {"alipay", "wechatpay", "stripe"}
    assert all(m.after_query and m.deliveries for o in late for m in o.messages)
    assert all(o.expected.paid_events == 1 for o in late)


async def test_runner_holds_a_late_webhook_until_its_order_was_queried() -> None:
    signing = {("alipay", "shop"): keys(8700)[("alipay", "shop")]}
    options = Options(orders=4, seed=3, run_id="h", late=0.5, lost=0, forged=0, mismatches=0,
                      refunds=0, closes=0, duplicates=0, burst_ratio=0, tampered=0)  # fmt: skip
    planned = plan(options, plan_accounts(signing, played_accounts(signing)))
    late = {o.out_trade_no for o in planned.orders if o.scenario[0] == "late"}
    asked: list[str] = []
    sent: list[tuple[str, int]] = []  # (order, how many times it had been asked when sent)

    def queried(number: str) -> bool:
        asked.append(number)
        return asked.count(number) >= 3

    def gateway(request: httpx.Request) -> httpx.Response:
        number = dict(parse_qsl(request.content.decode()))["out_trade_no"]
        sent.append((number, asked.count(number)))
        return httpx.Response(200, text="success")

    await simulate(planned, Target("http://gw"), signing, rate=0, time_factor=1e6,
                   transport=httpx.MockTransport(gateway), queried=queried)  # fmt: skip
    assert late and {n for n, _ in sent} == {o.out_trade_no for o in planned.orders}
    assert all(count >= 3 for number, count in sent if number in late)
    assert all(count == 0 for number, count in sent if number not in late)
