"""``paynotify up`` starts the reconciler exactly when an account configures reconciliation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from paynotify import stack
from paynotify.cli import main
from tests.support import alipay as signer
from tests.support.keys import write_private_pem, write_public_pem

ACCOUNT = """
[database]
url = "sqlite:///var/p.db"
[[accounts]]
name = "shop"
provider = "alipay"
app_id = "2021000000000000"
alipay_public_keys = ["keys/alipay_public.pem"]
"""


class FakeStack:
    started: ClassVar[list[tuple[str, ...]]] = []

    def __init__(
        self, config: Path, gateway: Any, sink: Any, services: tuple[str, ...], logs: Any
    ) -> None:
        self.services = services

    def start(self) -> None:
        FakeStack.started.append(self.services)

    def wait(self) -> None:
        return None

    def stop(self) -> None:
        return None


@pytest.mark.parametrize(
    ("extra", "services"),
    [
        ("", ("gateway", "stream", "sink")),
        ('app_private_key = "keys/app.pem"\n', ("gateway", "stream", "sink", "reconcile")),
    ],
)
def test_up_adds_reconcile_only_for_a_reconciling_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, services: tuple[str, ...]
) -> None:
    write_public_pem(signer.key(0), tmp_path / "keys" / "alipay_public.pem")
    write_private_pem(signer.key(5), tmp_path / "keys" / "app.pem")
    config = tmp_path / "paynotify.toml"
    config.write_text(ACCOUNT + extra)
    monkeypatch.setattr(stack, "Stack", FakeStack)
    FakeStack.started = []
    assert main(["--config", str(config), "up"]) == 0
    assert FakeStack.started == [services]


def test_reconcile_without_a_reconciling_account_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_public_pem(signer.key(0), tmp_path / "keys" / "alipay_public.pem")
    config = tmp_path / "paynotify.toml"
    config.write_text(ACCOUNT)
    assert main(["--config", str(config), "reconcile"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "paynotify: no account configures reconciliation (see docs/operations.md)"
