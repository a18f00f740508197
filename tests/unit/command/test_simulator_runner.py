"""The simulator's runner against the real gateway application in memory (no network): what it
sends is accepted or rejected as planned, and it retries exactly as each provider does."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.publisher import MemoryPublisher
from paynotify.simulator.keys import signing_keys_for
from paynotify.simulator.plan import PROVIDERS, Account, Options, Plan, plan
from paynotify.simulator.report import Report, format_summary
from paynotify.simulator.runner import Target, simulate
from paynotify.simulator.signers import SigningKeys
from tests.support import alipay as alipay_signer
from tests.support import gateway_requests as reqs

NOW = float(reqs.NOW)
TARGET = Target("http://gw")


def all_keys() -> dict[tuple[str, str], SigningKeys]:
    private = alipay_signer.key(0)
    return {
        key: signing_keys_for(account, private if key[0] in ("alipay", "wechatpay") else None)
        for key, account in reqs.accounts().items()
    }


def small_plan(orders: int = 40, **options: float) -> Plan:
    accounts = [Account(p, "shop", "CNY" if p == "alipay" else "EUR") for p in PROVIDERS]
    return plan(Options(orders=orders, seed=11, run_id="u", **options), accounts)  # type: ignore[arg-type]


async def run_in_memory(the_plan: Plan, publisher: MemoryPublisher) -> Report:
    app = reqs.build(reqs.settings(), publisher)
    async with reqs.serving(app):
        return await simulate(
            the_plan,
            TARGET,
            all_keys(),
            rate=0,
            concurrency=8,
            time_factor=1e6,
            transport=httpx.ASGITransport(app=app),
            clock=lambda: NOW,
        )


async def test_simulate_against_the_gateway_acknowledges_genuine_and_rejects_the_rest() -> None:
    publisher = MemoryPublisher()
    the_plan = small_plan()
    report = await run_in_memory(the_plan, publisher)
    total = report.total()
    assert total.gave_up == 0 and total.retried == 0
    assert report.defects == 0
    genuine = sum(
        d.copies for o in the_plan.orders for m in o.messages if m.genuine for d in m.deliveries
    )
    judged = sum(1 for o in the_plan.orders for m in o.messages if not m.genuine)
    assert total.acknowledged == genuine == len(publisher.records)
    assert total.forged_rejected + total.tampered_rejected == judged > 0
    assert total.requests == genuine + judged
    assert total.duplicates > 0
    published = Counter(json.loads(v)["out_trade_no"] for _t, _k, v in publisher.records)
    forged = {o.out_trade_no for o in the_plan.orders if "forged" in o.scenario}
    assert forged and not forged & set(published)
    assert "total" in format_summary(report)


QUIET = Options(
    orders=1,
    seed=1,
    run_id="r",
    duplicates=0,
    burst_ratio=0,
    forged=0,
    mismatches=0,
    closes=0,
    tampered=0,
    refunds=0,
    out_of_order=0,
)


async def one_payment(provider: str, handler: Callable[[httpx.Request], httpx.Response]) -> Report:
    """Send one payment of ``provider`` to ``handler``, its retry schedule compressed 10^7 times."""
    return await simulate(
        plan(QUIET, [Account(provider, "shop", "CNY")]),
        TARGET,
        all_keys(),
        rate=0,
        time_factor=1e7,
        transport=httpx.MockTransport(handler),
        clock=lambda: NOW,
    )


async def test_simulate_alipay_keeps_retrying_an_uppercase_success_then_gives_up() -> None:
    report = await one_payment("alipay", lambda request: httpx.Response(200, text="SUCCESS"))
    tally = report.tallies["alipay"]
    assert (tally.requests, tally.retried, tally.gave_up, tally.acknowledged) == (8, 7, 1, 0)
    assert tally.answers == Counter({"200 SUCCESS": 8})


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_simulate_retries_until_the_success_form(provider: str) -> None:
    success = "[accepted]" if provider == "adyen" else "success"
    answers = iter([(503, "busy"), (500, "busy"), (200, success)])

    def handler(request: httpx.Request) -> httpx.Response:
        status, text = next(answers)
        return httpx.Response(status, text=text)

    tally = (await one_payment(provider, handler)).tallies[provider]
    assert (tally.requests, tally.retried, tally.acknowledged, tally.gave_up) == (3, 2, 1, 0)


@pytest.mark.parametrize(("status", "accepted"), [(200, 1), (503, 1), (401, 0), (400, 0)])
async def test_simulate_forged_request_counts_as_accepted_unless_refused_with_a_4xx(
    status: int, accepted: int
) -> None:
    forged_only = Options(orders=1, seed=1, run_id="f", forged=1.0, mismatches=0, closes=0)
    report = await simulate(
        plan(forged_only, [Account("alipay", "shop", "CNY")]),
        TARGET,
        all_keys(),
        rate=0,
        transport=httpx.MockTransport(lambda request: httpx.Response(status, text="SUCCESS")),
        clock=lambda: NOW,
    )
    tally = report.tallies["alipay"]
    assert (tally.requests, tally.forged_accepted, tally.forged_rejected) == (
        1,
        accepted,
        1 - accepted,
    )
    assert report.defects == accepted


async def test_simulate_connection_errors_are_retried_and_counted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    tally = (await one_payment("wechatpay", handler)).tallies["wechatpay"]
    assert (tally.requests, tally.gave_up) == (16, 1)
    assert tally.answers == Counter({"0 ConnectError": 16})


def test_target_url_default_path_and_overrides() -> None:
    target = Target(
        "http://gw:8000/",
        {"alipay": "http://peer:9000/alipay/notify", "stripe": "/hooks/{account}"},
    )
    assert target.url("wechatpay", "a") == "http://gw:8000/notify/wechatpay/a"
    assert target.url("alipay", "a") == "http://peer:9000/alipay/notify"
    assert target.url("stripe", "s") == "http://gw:8000/hooks/s"


def test_report_json_holds_every_orders_expected_state(tmp_path: Path) -> None:
    the_plan = small_plan(orders=10)
    report = Report(the_plan)
    report.tally("alipay").requests = 3
    path = tmp_path / "r.json"
    report.write_json(path, {"verification": None})
    data = json.loads(path.read_text())
    assert len(data["orders"]) == 10 and data["total"]["requests"] == 3
    assert data["orders"][0]["expected"]["status"] in (
        "paid",
        "created",
        "closed",
        "partially_refunded",
        "refunded",
    )
