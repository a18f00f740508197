"""The container path without a Docker engine: the image's lock, compose.yaml's shape, the
testing fixture's signed notifications, and when the test services choose containers."""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from gateway.accounts import PROVIDERS
from gateway.settings import load_settings
from paynotify import containers
from paynotify.testing import ACCOUNTS, PaynotifyStack
from tests.support import services

ROOT = Path(__file__).resolve().parents[3]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)", re.MULTILINE)


def _pins(path: Path) -> dict[str, str]:
    return {name.lower(): version for name, version in PIN.findall(path.read_text())}


def test_image_lock_same_pins_as_requirements_lock_and_every_runtime_dependency() -> None:
    image, full = _pins(ROOT / "compose" / "requirements.lock"), _pins(ROOT / "requirements.lock")
    assert {name: full.get(name) for name in image} == image  # else: ./dev lock
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[\[<>=; ]", d)[0].lower() for d in project["dependencies"]}
    assert wanted <= set(image)
    assert not {"pytest", "mypy", "ruff", "testcontainers"} & set(image)


def test_compose_every_container_on_host_network_from_project_images() -> None:
    compose = yaml.safe_load((ROOT / "compose" / "compose.yaml").read_text())
    assert "name" not in compose  # docker-compose 1.29 (Debian bookworm) refuses it
    for name, service in compose["services"].items():
        assert service["network_mode"] == "host", name
        assert re.fullmatch(
            r"paynotify(-kafka|-postgres)?:\$\{PAYNOTIFY_IMAGE_TAG:-local\}", service["image"]
        ), name
        assert "ports" not in service, name  # host networking: the config names the ports


def test_compose_ports_overridable_and_shipped_config_agrees() -> None:
    text = (ROOT / "compose" / "compose.yaml").read_text()
    config = (ROOT / "compose" / "paynotify.toml").read_text()
    for variable, port in (("KAFKA", 9092), ("GATEWAY", 8000), ("POSTGRES", 5432)):
        assert f"${{PAYNOTIFY_{variable}_PORT:-{port}}}" in text
    for variable, port in (("KAFKA", 9092), ("GATEWAY", 8000), ("STREAM_METRICS", 9109)):
        assert f"127.0.0.1:{port}" in config, variable


@pytest.mark.parametrize("provider", sorted(ACCOUNTS))
def test_testing_notification_provider_signed_gateway_verifies(
    provider: str, tmp_path: Path
) -> None:
    stack = PaynotifyStack()
    accounts = load_settings(stack.write_config(tmp_path, 9092, 8000)).accounts
    signed = stack.notification("T-1", provider, 1234, "EUR")
    account = accounts[(provider, ACCOUNTS[provider])]
    notes = PROVIDERS[provider].verify(signed.body, signed.headers, account, now=time.time())
    assert [(n.out_trade_no, n.kind, n.amount_minor) for n in notes] == [("T-1", "payment", 1234)]
    assert signed.url == f"/notify/{provider}/{ACCOUNTS[provider]}"
    assert not (tmp_path / "keys" / "alipay_private.pem").exists()  # never handed to a container


def test_testing_config_fresh_secrets_each_stack(tmp_path: Path) -> None:
    first = PaynotifyStack().write_config(tmp_path / "a", 1, 2).read_text()
    second = PaynotifyStack().write_config(tmp_path / "b", 1, 2).read_text()
    secret = re.compile(r'signing_secrets = \["([^"]+)"\]')
    assert secret.findall(first) and set(secret.findall(first)).isdisjoint(secret.findall(second))


@pytest.mark.parametrize(
    ("engine", "missing", "chosen"),
    [(False, [], "local"), (True, ["paynotify-kafka:local"], "local"), (True, [], "containers")],
)
def test_services_auto_containers_only_with_engine_and_images(
    monkeypatch: pytest.MonkeyPatch, engine: bool, missing: list[str], chosen: str
) -> None:
    monkeypatch.delenv("PAYNOTIFY_TEST_SERVICES", raising=False)
    monkeypatch.setattr(services, "docker_answers", lambda: engine)
    monkeypatch.setattr(services, "missing_images", lambda *images: missing)
    assert services.mode() == chosen


def test_require_images_no_engine_names_the_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers, "docker_answers", lambda: False)
    with pytest.raises(containers.ContainerError, match=r"\./dev images"):
        containers.require_images(containers.PAYNOTIFY_IMAGE)
