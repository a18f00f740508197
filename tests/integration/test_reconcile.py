"""Reconciliation end to end on the real stack (gateway, broker, stream, sink on PostgreSQL, and
``paynotify reconcile``): ``paynotify simulate --verify`` loses every webhook of some payments,
plays the providers' query APIs, and every order must end as planned, each paid exactly once
(``late`` orders: the webhook is held until the reconciler asked, so webhook and query of one
payment both arrive, in either order); an order nobody pays is reported
``unconfirmed`` once, at its (shortened) horizon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from paynotify.broker import free_port
from sinks.rows import anomalies
from tests.support import alipay as signer
from tests.support import wechatpay_signer
from tests.support.keys import write_private_pem
from tests.support.stack import Service, wait_http, write_providers_config

pytestmark = pytest.mark.integration

STRIPE_KEY = "sk_test_reconcile_0123456789abcdef"
PROVIDERS = {"alipay", "wechatpay", "stripe"}
MIX = {
    "--orders": "45",
    "--lost": "0.2",
    "--late": "0.2",
    "--duplicates": "0.3",
    "--burst-ratio": "0.2",
    "--mismatches": "0.1",
    "--forged": "0.1",
    "--refunds": "0.3",
    "--closes": "0.1",
    "--time-factor": "1000",
    "--seed": "7",
    "--rate": "100",
    "--concurrency": "8",
    "--verify-timeout": "120",
}
# The accounts' reconciliation settings, inserted after each account's last line. shop-late is
# an Alipay account the simulator does not play (no --signing-key): its order is never paid.
RECONCILE = {
    'alipay_public_keys = ["keys/alipay_public.pem"]\n': (
        'app_private_key = "file:keys/merchant.pem"\nreconcile_after_seconds = 2\n'
        'query_url = "http://127.0.0.1:{port}/alipay/shop/gateway.do"\n'
    ),
    'platform_public_keys = { "PUB_KEY_ID_0000000000000024101100397200000006" = '
    '"keys/wechat_public.pem" }\n': (
        'merchant_private_key = "keys/merchant.pem"\nmerchant_serial_no = "5157F09EFDC096DE"\n'
        'reconcile_after_seconds = 2\nquery_url = "http://127.0.0.1:{port}/wechatpay/shop-wechat"\n'
    ),
    'signing_secrets = ["file:keys/stripe.secret"]\n': (
        'api_key = "env:RECONCILE_TEST_STRIPE_KEY"\nreconcile_after_seconds = 2\n'
        'query_url = "http://127.0.0.1:{port}/stripe/shop-stripe"\n'
    ),
}
LATE = """
[[accounts]]
name = "shop-late"
provider = "alipay"
app_id = "{app_id}"
alipay_public_keys = ["keys/alipay_public.pem"]
app_private_key = "keys/merchant.pem"
reconcile_after_seconds = 1
reconcile_horizon_seconds = 3
query_url = "http://127.0.0.1:{port}/alipay/shop-late/gateway.do"
"""


def _configure(config: Path) -> None:
    text, port = config.read_text(), free_port()
    for anchor, lines in RECONCILE.items():
        assert text.count(anchor) == 1, anchor
        text = text.replace(anchor, anchor + lines.format(port=port))
    config.write_text(text + LATE.format(app_id=signer.APP_ID, port=port))
    write_private_pem(signer.key(5), config.parent / "keys" / "merchant.pem")


@pytest.fixture
def stack(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> Iterator[tuple[Path, dict[str, Path], dict[str, Service]]]:
    os.environ["SIM_TEST_APIV3_KEY"] = wechatpay_signer.APIV3_KEY
    os.environ["RECONCILE_TEST_STRIPE_KEY"] = STRIPE_KEY
    config, port, _prefix, private = write_providers_config(tmp_path, kafka_bootstrap, database_url)
    _configure(config)
    _cli(config, "db", "upgrade")
    services = {n: Service(n, config) for n in ("gateway", "stream", "sink", "reconcile")}
    for service in services.values():
        service.start()
    wait_http(f"http://127.0.0.1:{port}/healthz", service=services["gateway"])
    yield config, private, services
    for name, service in services.items():
        service.stop()
        assert "Traceback" not in service.output(), f"{name}:\n{service.output()[-4000:]}"


def _cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paynotify.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_reconcile_recovers_lost_payments_and_pays_nothing_twice(
    stack: tuple[Path, dict[str, Path], dict[str, Service]], tmp_path: Path, database_url: str
) -> None:
    config, private, services = stack
    late = _cli(config, "orders", "add", "--out-trade-no", "late-1", "--account", "shop-late",
                "--amount-minor", "100")  # fmt: skip
    assert late.returncode == 0, late.stderr
    report = tmp_path / "simulate.json"
    keys = [f"--signing-key={account}={path}" for account, path in private.items()]
    options = [f"{name}={value}" for name, value in MIX.items()]
    done = _cli(config, "simulate", *keys, *options, "--verify", "--json", str(report), timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    data = json.loads(report.read_text())
    verification = data["verification"]
    assert verification["ok"] and verification["checked"] == 45, verification
    assert verification["paid_events_on_topic"] == data["expected"]["order.paid events"]
    lost = [o for o in data["orders"] if o["scenario"][0] == "lost"]
    late = [o for o in data["orders"] if o["scenario"][0] == "late"]
    assert {o["provider"] for o in lost} == {o["provider"] for o in late} == PROVIDERS
    assert data["total"]["lost"] == len(lost)
    log = services["reconcile"].output()
    for order in lost + late:
        assert f'"out_trade_no":"{order["out_trade_no"]}"' in log, order
    assert "payment proven by query" in log
    reasons = _anomalies(database_url)
    assert ("late-1", "unconfirmed") in reasons
    assert not [r for r in reasons if r[1] in ("duplicate_payment", "notify_id_conflict")]


def _anomalies(database_url: str, wait_s: float = 30.0) -> list[tuple[str, str]]:
    """Return (order, reason) of every anomaly row, once late-1's has arrived (or time is up)."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(select(anomalies.c.out_trade_no, anomalies.c.reason)).all()
            found = [(str(a), str(b)) for a, b in rows]
            if ("late-1", "unconfirmed") in found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
    finally:
        engine.dispose()
