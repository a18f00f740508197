"""The simulator's pure core: the plan (scenarios, expected end states, determinism), the
providers' retry schedules and success forms, and the comparison ``--verify`` makes."""

from __future__ import annotations

from collections import Counter

import pytest

from paynotify.simulator.plan import (
    CLOSING_PROVIDERS,
    PROVIDERS,
    Account,
    Options,
    PlanError,
    PlannedOrder,
    plan,
)
from paynotify.simulator.schedules import RETRY_INTERVALS, compressed, is_success
from paynotify.simulator.verification import Observed, compare

ACCOUNTS = [Account(p, f"shop-{p}", "CNY") for p in PROVIDERS]
SMALL = Options(orders=50, seed=7, run_id="t")


def scenarios(order: PlannedOrder) -> set[str]:
    return set(order.scenario)


def test_plan_same_seed_same_plan_other_seed_other_plan() -> None:
    assert plan(SMALL, ACCOUNTS) == plan(SMALL, ACCOUNTS)
    other = plan(Options(orders=50, seed=8, run_id="t"), ACCOUNTS)
    assert other != plan(SMALL, ACCOUNTS)


def test_plan_small_run_covers_every_scenario_for_every_provider() -> None:
    orders = plan(SMALL, ACCOUNTS).orders
    for provider in PROVIDERS:
        labels = Counter(s for o in orders if o.provider == provider for s in o.scenario)
        wanted = {"paid", "forged", "mismatch", "tampered", "partial_refund"}
        wanted |= {"closed"} if provider in CLOSING_PROVIDERS else set()
        assert wanted <= set(labels), (provider, labels)
        assert labels["refund_before_payment"] + labels["finished_before_success"] >= 1
    assert {o.out_trade_no for o in orders} == {f"t-{i:06d}" for i in range(50)}


def test_plan_quotas_are_exact_for_large_runs() -> None:
    options = Options(orders=1000, forged=0.1, mismatches=0.05, closes=0, seed=1)
    orders = plan(options, [Account("stripe", "s", "USD")]).orders
    primaries = Counter(o.scenario[0] for o in orders)
    assert (primaries["forged"], primaries["mismatch"], primaries["paid"]) == (100, 50, 850)


def test_plan_expected_states_follow_the_scenario() -> None:
    for order in plan(Options(orders=200, refunds=0.5, seed=2), ACCOUNTS).orders:
        want, labels = order.expected, scenarios(order)
        refunds = [m for m in order.messages if m.kind == "refund"]
        if "forged" in labels:
            assert (want.status, want.paid_events) == ("created", 0)
            assert [m.authenticity for m in order.messages] == ["forged"]
        elif "mismatch" in labels:
            assert (want.status, want.paid_events, want.anomalies) == (
                "created",
                0,
                ("amount_mismatch",),
            )
            assert order.messages[0].amount_minor != order.amount_minor
        elif "closed" in labels:
            assert (want.status, want.paid_events) == ("closed", 0)
        elif "partial_refund" in labels:
            assert want.status == "partially_refunded" and want.paid_events == 1
            assert want.refunded_minor == refunds[0].amount_minor < order.amount_minor
        elif labels & {"full_refund", "full_refund_in_two"}:
            assert (want.status, want.refunded_minor) == ("refunded", order.amount_minor)
            assert refunds[-1].refund_total_minor == order.amount_minor
            assert refunds[-1].full_refund
        else:
            assert (want.status, want.refunded_minor, want.paid_events) == ("paid", 0, 1)


def test_plan_out_of_order_sends_the_refund_or_trade_finished_before_the_payment() -> None:
    orders = plan(Options(orders=100, out_of_order=0.5, seed=4), ACCOUNTS).orders
    seen = set()
    for order in orders:
        first = {m.kind: min(d.at for d in m.deliveries) for m in reversed(order.messages)}
        if "refund_before_payment" in order.scenario:
            assert first["refund"] < first["payment"]
            seen.add("refund")
        if "finished_before_success" in order.scenario:
            assert order.provider == "alipay" and first["finished"] < first["payment"]
            seen.add("finished")
    assert seen == {"refund", "finished"}


def test_plan_tampered_copy_comes_before_the_genuine_payment() -> None:
    for order in plan(Options(orders=100, tampered=0.3, seed=5), ACCOUNTS).orders:
        if "tampered" in order.scenario:
            tampered = next(m for m in order.messages if m.authenticity == "tampered")
            genuine = next(m for m in order.messages if m.kind == "payment" and m.genuine)
            assert tampered.deliveries[0].at < genuine.deliveries[0].at
            assert len(tampered.deliveries) == 1 and tampered.deliveries[0].copies == 1


def test_plan_duplicates_and_bursts_only_for_genuine_notifications() -> None:
    options = Options(orders=200, duplicates=0.5, burst_ratio=0.3, burst_size=6, seed=6)
    messages = [m for o in plan(options, ACCOUNTS).orders for m in o.messages]
    bursts = [m for m in messages if m.deliveries[0].copies == 6]
    redelivered = [m for m in messages if len(m.deliveries) == 2]
    assert bursts and redelivered
    assert all(m.genuine for m in bursts + redelivered)
    assert all(m.deliveries[1].at > m.deliveries[0].at for m in redelivered)
    none = Options(orders=50, duplicates=0, burst_ratio=0, seed=6)
    assert all(
        m.deliveries == m.deliveries[:1] and m.deliveries[0].copies == 1
        for o in plan(none, ACCOUNTS).orders
        for m in o.messages
    )


@pytest.mark.parametrize(
    "options",
    [
        Options(duplicates=1.5),
        Options(forged=0.6, mismatches=0.5),
        Options(orders=0),
        Options(burst_size=-1),
    ],
)
def test_plan_refuses_options_out_of_range(options: Options) -> None:
    with pytest.raises(PlanError):
        plan(options, ACCOUNTS)


def test_plan_without_accounts_is_an_error() -> None:
    with pytest.raises(PlanError, match="no account"):
        plan(SMALL, [])


def test_schedules_are_the_documented_ones_and_compress() -> None:
    assert compressed("alipay", 60) == (4, 10, 10, 60, 120, 360, 900)
    assert sum(RETRY_INTERVALS["wechatpay"]) == 24 * 3600 + 4 * 60
    assert len(RETRY_INTERVALS["wechatpay"]) == 15
    assert sum(RETRY_INTERVALS["stripe"]) == 3 * 24 * 3600
    assert sum(RETRY_INTERVALS["adyen"]) <= 30 * 24 * 3600
    assert compressed("adyen", 1000)[0] == pytest.approx(0.12)


@pytest.mark.parametrize(
    ("provider", "status", "text", "success"),
    [
        ("alipay", 200, "success", True),
        ("alipay", 200, "SUCCESS", False),  # the seed article's answer: Alipay keeps retrying
        ("alipay", 200, "success\n", False),
        ("alipay", 400, "fail", False),
        ("wechatpay", 204, "", True),
        ("wechatpay", 200, '{"code":"SUCCESS"}', True),
        ("wechatpay", 500, '{"code":"FAIL"}', False),
        ("stripe", 200, '{"received":true}', True),
        ("stripe", 302, "", False),
        ("standardwebhooks", 204, "", True),
        ("standardwebhooks", 503, "", False),
        ("adyen", 200, "[accepted]", True),
        ("adyen", 200, "ok", False),
    ],
)
def test_is_success_only_for_the_providers_success_form(
    provider: str, status: int, text: str, success: bool
) -> None:
    assert is_success(provider, status, text) is success


def _order(labels: tuple[str, ...]) -> PlannedOrder:
    orders = plan(Options(orders=200, refunds=0.3, seed=9), ACCOUNTS).orders
    return next(o for o in orders if o.scenario == labels)


def test_compare_as_expected_finds_nothing() -> None:
    order = _order(("paid", "partial_refund"))
    want = order.expected
    genuine = len({m.notify_id for m in order.messages if m.authenticity == "genuine"})
    seen = Observed(want.status, want.refunded_minor, (), 1, genuine)
    assert compare(order, seen) == []
    fewer = Observed(want.status, want.refunded_minor, (), 1, genuine - 1)
    assert [d.problem for d in compare(order, fewer)] == ["unrecorded notification"]
    queried = Observed(want.status, want.refunded_minor, (), 1, genuine, queried=2)
    assert compare(order, queried) == []  # when the reconciler asked does not matter


def test_compare_lost_payment_needs_a_query_notification_and_no_webhook() -> None:
    accounts = [Account("alipay", "shop", "CNY", reconciles=True)]
    lost = next(
        o
        for o in plan(Options(orders=20, lost=0.2, seed=9), accounts).orders
        if o.scenario == ("lost",)
    )
    assert compare(lost, Observed("paid", 0, (), 1, 0, queried=1)) == []
    unqueried = compare(lost, Observed("paid", 0, (), 1, 0, queried=0))
    assert [d.problem for d in unqueried] == ["unrecorded notification"]


@pytest.mark.parametrize(
    ("labels", "seen", "problem"),
    [
        (("paid",), Observed("created", 0, (), 0), "lost payment"),
        (("paid",), Observed("paid", 0, (), 0), "lost payment"),
        (("paid",), Observed("paid", 0, (), 2), "duplicate order.paid"),
        (("forged",), Observed("paid", 0, (), 1), "forged effect"),
        (("mismatch",), Observed("paid", 0, ("amount_mismatch",), 1), "unexpected payment"),
        (("mismatch",), Observed("created", 0, (), 0), "missing anomaly"),
        (("paid",), Observed("paid", 0, ("paid_after_close",), 1), "unexpected anomaly"),
        (("paid", "partial_refund"), Observed("paid", 0, (), 1), "wrong status"),
        (("paid",), Observed(None, 0, (), 0), "missing order"),
        (("closed",), Observed("created", 0, (), 0), "wrong status"),
        (("paid", "full_refund"), Observed("refunded", 5, (), 1), "wrong refunded amount"),
    ],
)
def test_compare_reports_each_kind_of_problem(
    labels: tuple[str, ...], seen: Observed, problem: str
) -> None:
    assert problem in {d.problem for d in compare(_order(labels), seen)}
