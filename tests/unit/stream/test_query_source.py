"""Reconciliation's notifications (``source="query"``) meet the webhooks of the same payment.

A query-proven payment carries its own notify id (``query:...``), so the stream tells "the same
payment again" from "a second payment" by the provider's trade number alone: the same trade is
``already_paid`` (nothing emitted), another trade a ``duplicate_payment``. These tests build the
two notifications with the real verifiers, from a signed webhook and a signed query answer.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest

from gateway.providers import alipay, alipay_query
from gateway.providers.alipay import AlipayAccount
from gateway.providers.query import QueryAnswer
from gateway.records import Notification
from stream.records import Anomaly, ExpectedOrder, OrderPaid
from stream.transitions import Input
from tests.support import alipay as signer
from tests.support.alipay_answers import answer, trade
from tests.unit.stream.cases import emitted, final

NOW = 1795687200.0
TRADE_NO = "2026112722001419720500000001"
ORDER = ExpectedOrder("order-1", "shop", 8888, "CNY", "2026-11-26T10:00:00+08:00")
ACCOUNT = AlipayAccount(
    name="shop",
    app_id=signer.APP_ID,
    alipay_public_keys=(signer.key(0).public_key(),),
    app_private_key=signer.key(5),
)


def webhook(status: str = "TRADE_SUCCESS", trade_no: str = TRADE_NO) -> Notification:
    params = signer.payment("order-1", amount="88.88", trade_no=trade_no, trade_status=status)
    form = {"content-type": "application/x-www-form-urlencoded"}
    return alipay.verify(signer.sign(params), form, ACCOUNT, now=NOW)


def queried(status: str = "TRADE_SUCCESS", trade_no: str = TRADE_NO) -> Notification:
    ans: QueryAnswer = answer(trade(trade_no=trade_no, trade_status=status))
    (note,) = alipay_query.verify(ans, ACCOUNT, "order-1", now=NOW + 600).notifications
    return note


def outputs(*inputs: Input) -> tuple[list[OrderPaid], list[Anomaly]]:
    _, steps = final(*inputs)
    out = emitted(steps)
    return (
        [o for o in out if isinstance(o, OrderPaid)],
        [o for o in out if isinstance(o, Anomaly)],
    )


def test_query_and_webhook_of_one_payment_differ_only_in_source_and_id() -> None:
    hook, query = webhook(), queried()
    assert (hook.source, query.source) == ("webhook", "query")
    assert hook.notify_id != query.notify_id
    assert hook.provider_trade_no == query.provider_trade_no == TRADE_NO


@pytest.mark.parametrize(
    "inputs",
    list(itertools.permutations(["order", "webhook", "query"])),
    ids=lambda p: "-".join(p),
)
def test_same_payment_by_webhook_and_query_pays_once_in_any_order(inputs: tuple[str, ...]) -> None:
    made = {"order": ORDER, "webhook": webhook(), "query": queried()}
    paid, anomalies = outputs(*(made[name] for name in inputs))
    assert len(paid) == 1 and paid[0].status == "paid"
    assert anomalies == []


@pytest.mark.parametrize("first", ["webhook", "query"])
def test_query_finished_after_webhook_success_is_no_second_payment(first: str) -> None:
    hook, query = webhook(), queried("TRADE_FINISHED")
    pair = (hook, query) if first == "webhook" else (query, hook)
    paid, anomalies = outputs(ORDER, *pair)
    assert len(paid) == 1 and anomalies == []


def test_repeated_query_answers_are_duplicates() -> None:
    query = queried()
    again = replace(queried(), received_at="2026-11-26T11:00:00+00:00")
    state, steps = final(ORDER, query, again)
    assert [s.reason for s in steps] == ["order_recorded", "paid", "duplicate"]
    assert state.paid_notify_id == query.notify_id


@pytest.mark.parametrize("first", ["webhook", "query"])
def test_query_of_another_trade_is_still_a_duplicate_payment(first: str) -> None:
    hook, query = webhook(), queried(trade_no="2026112722001419720599999999")
    pair = (hook, query) if first == "webhook" else (query, hook)
    paid, anomalies = outputs(ORDER, *pair)
    assert len(paid) == 1
    assert [a.reason for a in anomalies] == ["duplicate_payment"]


def test_query_answer_body_is_kept_for_audit() -> None:
    body = json.loads(queried().raw_body())
    assert body["alipay_trade_query_response"]["trade_no"] == TRADE_NO
