"""``paynotify up``: with nothing answering at a loopback bootstrap address it starts its own
broker, creates the topics, migrates the database, runs the three services (and the console,
the configuration having a ``[console]`` section) and, with --demo, shows one effect per order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paynotify.broker import free_port
from paynotify.demo import write_demo_config

pytestmark = pytest.mark.integration


def test_up_demo_starts_its_own_broker_and_applies_each_payment_once(tmp_path: Path) -> None:
    config = write_demo_config(
        tmp_path / "demo", port=free_port(), bootstrap=f"127.0.0.1:{free_port()}"
    )
    (config.parent / "console-token").write_text("up-test-console-token-0123456789\n")
    with config.open("a") as file:
        file.write(
            f'\n[console]\nlisten = "127.0.0.1:{free_port()}"\ntoken = "file:console-token"\n'
        )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paynotify.cli",
            "--config",
            str(config),
            "up",
            "--demo",
            "--demo-orders",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "local Kafka" in output
    assert "order-paid events on the topic  6 for 6 orders" in output
    assert "OK: one effect per order" in output
    assert "paynotify: console at http://127.0.0.1:" in output
    assert (tmp_path / "demo" / "logs" / "console.log").exists()
    for log in (tmp_path / "demo" / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.name
