"""compose/compose.yaml for real: docker-compose starts Kafka, PostgreSQL, the migrations and the
three services from the images ``./dev images`` built, with compose/paynotify.toml at free ports;
the demo's burst (``paynotify up --demo``'s) goes through the gateway container, and the
database and the ``order-paid`` topic must show exactly one effect per order."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.settings import load_settings
from paynotify.broker import free_port
from paynotify.demo import run_demo, write_key_pair
from sinks.settings import load_sink_settings
from tests.support.stack import wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"
PORTS = (
    "KAFKA",
    "KAFKA_CONTROLLER",
    "POSTGRES",
    "GATEWAY",
    "STREAM_METRICS",
    "SINK_METRICS",
    "CONSOLE",
)
SHIPPED_PORTS = {
    "KAFKA": 9092,
    "GATEWAY": 8000,
    "STREAM_METRICS": 9109,
    "SINK_METRICS": 9108,
    "CONSOLE": 8001,
}
TOKEN = "compose-test-console-token-0123456789"


@dataclass
class ComposeStack:
    command: list[str]
    env: dict[str, str]
    config: Path
    private_key: Path
    console_url: str

    def run(self, *args: str, timeout: float = 300.0) -> str:
        done = subprocess.run(
            [*self.command, "-f", str(COMPOSE_FILE), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr


def compose_commands() -> list[list[str]]:
    """Return the compose commands this machine has: docker-compose and/or docker compose."""
    found = [["docker-compose"]] if shutil.which("docker-compose") else []
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            found.append(["docker", "compose"])
    return found or [["docker-compose"]]  # none: the test fails on it, it does not skip


def write_config(folder: Path, ports: dict[str, int]) -> Path:
    """Write compose/paynotify.toml with this run's ports, and a key pair playing Alipay."""
    text = (ROOT / "compose" / "paynotify.toml").read_text()
    for name, shipped in SHIPPED_PORTS.items():
        text = text.replace(f"127.0.0.1:{shipped}", f"127.0.0.1:{ports[name]}")
    keys = folder / "keys"
    write_key_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048), keys)
    (keys / "alipay_public.pem").chmod(0o644)
    for item in (folder, keys):
        item.chmod(0o755)
    config = folder / "paynotify.toml"
    config.write_text(text)
    config.chmod(0o644)
    return config


@pytest.fixture(params=compose_commands(), ids=lambda c: " ".join(c))
def compose_stack(
    request: pytest.FixtureRequest, images: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ComposeStack]:
    ports = {name: free_port() for name in PORTS}
    config = write_config(tmp_path, ports)
    env = {f"PAYNOTIFY_{name}_PORT": str(port) for name, port in ports.items()}
    env |= {
        "COMPOSE_PROJECT_NAME": f"paynotify-test-{uuid.uuid4().hex[:8]}",
        "PAYNOTIFY_COMPOSE_CONFIG": str(config),
        "PAYNOTIFY_COMPOSE_KEYS": str(tmp_path / "keys"),
        "PAYNOTIFY_POSTGRES_PASSWORD": "compose-test",
        "PAYNOTIFY_CONSOLE_TOKEN": TOKEN,
    }
    database = (
        f"postgresql+psycopg://paynotify:compose-test@127.0.0.1:{ports['POSTGRES']}/paynotify"
    )
    monkeypatch.setenv("PAYNOTIFY_DATABASE_URL", database)  # the config says env:PAYNOTIFY_...
    stack = ComposeStack(
        request.param,
        {**os.environ, **env},
        config,
        tmp_path / "keys" / "alipay_private.pem",
        f"http://127.0.0.1:{ports['CONSOLE']}",
    )
    try:
        stack.run("up", "-d", "--no-build")
        try:
            wait_http(f"http://127.0.0.1:{ports['GATEWAY']}/readyz", timeout=180)
        except AssertionError:
            print(stack.run("ps"), stack.run("logs", "--tail", "40"))
            raise
        yield stack
    finally:
        stack.run("down", "--volumes", "--remove-orphans", "--timeout", "20")


def test_compose_demo_burst_one_effect_per_order_console_profile_shows_it(
    compose_stack: ComposeStack,
) -> None:
    gateway = load_settings(compose_stack.config)
    sink = load_sink_settings(compose_stack.config)
    result = asyncio.run(run_demo(gateway, sink, compose_stack.private_key, wait_s=120))
    if not result.ok:
        print(compose_stack.run("logs", "--tail", "60"))
    assert result.stats.answers == {"200 success": 102, "400 fail": 1}, result.stats.answers
    assert result.ok, result

    compose_stack.run("--profile", "console", "up", "-d", "--no-build", "console")
    wait_http(f"{compose_stack.console_url}/healthz", timeout=90)
    api = f"{compose_stack.console_url}/api/anomalies"
    assert httpx.get(api, timeout=10).status_code == 401
    answer = httpx.get(api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    reasons = {(a["out_trade_no"].rsplit("-", 1)[-1], a["reason"]) for a in answer.json()}
    assert ("mismatch", "amount_mismatch") in reasons, answer.text
