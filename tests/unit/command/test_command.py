from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.settings import METRICS_DIR_ENV
from paynotify.broker import KAFKA_PROJECT, is_loopback
from paynotify.cli import build_parser, main, metrics_dir_for_workers
from paynotify.errors import StackError
from paynotify.stack import SERVICES, services_from


@pytest.mark.parametrize(
    ("servers", "loopback"),
    [
        ("127.0.0.1:9092", True),
        ("localhost:9092", True),
        ("[::1]:9092", True),
        ("127.0.0.1:9092,127.0.0.2:9093", True),
        ("kafka:9092", False),
        ("127.0.0.1:9092,10.0.0.5:9092", False),
    ],
)
def test_is_loopback_only_local_addresses(servers: str, loopback: bool) -> None:
    assert is_loopback(servers) is loopback


def test_services_from_subset_and_unknown() -> None:
    assert services_from(None) == SERVICES
    assert services_from(None, console=True) == (*SERVICES, "console")
    assert services_from("sink,console") == ("sink", "console")
    assert services_from("gateway, sink") == ("gateway", "sink")
    with pytest.raises(StackError, match="unknown service"):
        services_from("gateway,web")


def test_services_from_adds_the_reconciler_only_when_an_account_reconciles() -> None:
    assert services_from(None, reconcile=True) == (*SERVICES, "reconcile")
    assert services_from("gateway,reconcile", reconcile=True) == ("gateway", "reconcile")
    with pytest.raises(StackError, match="no account configures reconciliation"):
        services_from("reconcile")


def test_parser_knows_the_design_commands() -> None:
    parser = build_parser()
    for argv in (
        ["up"],
        ["up", "--only", "gateway,stream"],
        ["gateway"],
        ["stream"],
        ["sink"],
        ["reconcile"],
        ["orders", "add", "--out-trade-no", "o", "--account", "a", "--amount-minor", "1"],
        ["db", "upgrade"],
        ["kafka", "status"],
        ["simulate", "--orders", "5", "--signing-key", "a=k.pem", "--verify"],
    ):
        assert parser.parse_args(argv).func is not None


def test_main_without_config_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("PAYNOTIFY_CONFIG", raising=False)
    assert main(["gateway"]) == 2
    assert "no configuration file" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "db", "upgrade"]) == 2
    assert "not found" in capsys.readouterr().err


def test_kafka_project_files_exist() -> None:
    for name in ("pom.xml", "server.properties", "log4j2.properties"):
        assert (KAFKA_PROJECT / name).is_file()
    properties = (KAFKA_PROJECT / "server.properties").read_text()
    assert "auto.create.topics.enable=false" in properties
    assert "transaction.state.log.min.isr=1" in properties


def _alipay_config(tmp_path: Path) -> Path:
    from tests.support import alipay as signer
    from tests.support.keys import write_public_pem

    write_public_pem(signer.key(0), tmp_path / "keys" / "alipay_public.pem")
    config = tmp_path / "paynotify.toml"
    config.write_text(
        '[[accounts]]\nname = "shop"\nprovider = "alipay"\napp_id = "2021000000000000"\n'
        'alipay_public_keys = ["keys/alipay_public.pem"]\n'
    )
    return config


def test_main_simulate_without_the_alipay_signing_key_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _alipay_config(tmp_path)
    assert main(["--config", str(config), "simulate", "--providers", "alipay"]) == 2
    assert "needs --signing-key" in capsys.readouterr().err
    assert main(["--config", str(config), "simulate"]) == 2  # nothing else to simulate
    assert "no account to simulate" in capsys.readouterr().err


def test_main_simulate_refuses_a_key_the_account_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support import alipay as signer
    from tests.support.keys import write_private_pem

    config = _alipay_config(tmp_path)
    wrong = write_private_pem(signer.key(1), tmp_path / "wrong.pem")
    argv = ["--config", str(config), "simulate", "--signing-key", f"shop={wrong}"]
    assert main(argv) == 2
    assert "matches no public key" in capsys.readouterr().err
    assert main([*argv[:3], "--signing-key", "shop"]) == 2
    assert "ACCOUNT=PATH" in capsys.readouterr().err


def test_simulate_uses_the_demo_key_for_the_demo_configuration(tmp_path: Path) -> None:
    from paynotify.demo import write_demo_config
    from paynotify.simulator.command import _key_paths

    config = write_demo_config(tmp_path / "demo")
    paths = _key_paths([], config)
    assert paths == {"shop-alipay": config.parent / "keys" / "alipay_private.pem"}
    other = tmp_path / "other.pem"
    assert _key_paths([f"shop-alipay={other}"], config) == {"shop-alipay": other}


def test_metrics_dir_for_workers_is_private_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    with metrics_dir_for_workers() as folder:
        assert os.environ[METRICS_DIR_ENV] == str(folder)
        assert folder.name.startswith("paynotify-metrics-")
        assert list(folder.iterdir()) == []
        (folder / "counter_1.db").write_bytes(b"")
    assert not folder.exists()
    assert METRICS_DIR_ENV not in os.environ


def test_metrics_dir_for_workers_empties_the_users_folder_and_keeps_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    (tmp_path / "gauge_livesum_1.db").write_bytes(b"stale")
    (tmp_path / "README").write_text("not prometheus's")
    with metrics_dir_for_workers() as folder:
        assert folder == tmp_path
        assert [p.name for p in folder.iterdir()] == ["README"]
    assert tmp_path.is_dir()
    assert os.environ[METRICS_DIR_ENV] == str(tmp_path)
