"""``paynotify simulate --verify`` against the real stack (gateway, broker, stream, sink): every
provider, every scenario (duplicates, concurrent bursts, refund before payment, TRADE_FINISHED
before TRADE_SUCCESS, wrong amounts, forged and tampered requests, partial and full refunds,
closes), and every order ends as planned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wechatpay_signer
from tests.support.stack import Service, wait_http, write_providers_config

pytestmark = pytest.mark.integration

MIX = {
    "--orders": "40",
    "--duplicates": "0.3",
    "--burst-ratio": "0.2",
    "--bursts": "4",
    "--out-of-order": "0.3",
    "--mismatches": "0.1",
    "--forged": "0.1",
    "--tampered": "0.2",
    "--refunds": "0.4",
    "--closes": "0.15",
    "--time-factor": "1000",
    "--seed": "1",
    "--rate": "100",
    "--concurrency": "8",
    "--verify-timeout": "60",
}


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str) -> Iterator[tuple[Path, dict[str, Path]]]:
    os.environ["SIM_TEST_APIV3_KEY"] = wechatpay_signer.APIV3_KEY
    config, port, _prefix, private = write_providers_config(
        tmp_path, kafka_bootstrap, "sqlite:///paynotify.db"
    )
    services = {name: Service(name, config) for name in ("gateway", "stream", "sink")}
    subprocess.run(
        [sys.executable, "-m", "paynotify.cli", "--config", str(config), "db", "upgrade"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for service in services.values():
        service.start()
    wait_http(f"http://127.0.0.1:{port}/healthz", service=services["gateway"])
    yield config, private
    for name, service in services.items():
        service.stop()
        assert "Traceback" not in service.output(), f"{name}:\n{service.output()[-4000:]}"


def test_simulate_every_provider_and_scenario_verifies_one_effect_per_order(
    stack: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    config, private = stack
    report = tmp_path / "simulate.json"
    keys = [f"--signing-key={account}={path}" for account, path in private.items()]
    options = [f"{name}={value}" for name, value in MIX.items()]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paynotify.cli",
            "--config",
            str(config),
            "simulate",
            *keys,
            *options,
            "--verify",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    data = json.loads(report.read_text())
    total, verification = data["total"], data["verification"]
    assert set(data["providers"]) == {"alipay", "wechatpay", "stripe", "standardwebhooks", "adyen"}
    assert verification["ok"] and verification["checked"] == 40, verification
    assert not any(verification["problems"].values())
    assert verification["paid_events_on_topic"] == data["expected"]["order.paid events"]
    assert total["gave_up"] == total["forged_accepted"] == total["tampered_accepted"] == 0
    forged = sum("forged" in o["scenario"] for o in data["orders"])
    tampered = sum("tampered" in o["scenario"] for o in data["orders"])
    assert total["forged_rejected"] == forged >= 5
    assert total["tampered_rejected"] == tampered >= 5
    assert (
        total["duplicates"] > 0 and total["acknowledged"] == total["deliveries"] - forged - tampered
    )
    scenarios = {s for o in data["orders"] for s in o["scenario"]}
    assert scenarios >= {
        "paid",
        "forged",
        "mismatch",
        "closed",
        "tampered",
        "partial_refund",
        "full_refund",
        "full_refund_in_two",
        "refund_before_payment",
        "finished_before_success",
    }
    assert "verify: 40 orders checked" in done.stdout and ": OK" in done.stdout
