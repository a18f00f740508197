"""``--config`` is accepted before and after any subcommand, nested ones included."""

from __future__ import annotations

import pytest

from paynotify.cli import build_parser

ORDER = ["--out-trade-no", "o", "--account", "a", "--amount-minor", "1"]
COMMANDS = [
    ["up"],
    ["up", "--only", "gateway,stream"],
    ["gateway"],
    ["stream"],
    ["sink"],
    ["orders", "add", *ORDER],
    ["orders", "show", "o-1"],
    ["anomalies", "list", "--since", "2026-11-30T00:00:00+00:00"],
    ["db", "upgrade"],
    ["topics", "create"],
    ["kafka", "status"],
    ["simulate", "--orders", "5"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_config_before_or_after_the_subcommand_parses_the_same(command: list[str]) -> None:
    before = build_parser().parse_args(["--config", "x.toml", *command])
    after = build_parser().parse_args([*command, "--config", "x.toml"])
    assert before.config == after.config == "x.toml"
    assert vars(before) == vars(after)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_config_absent_is_none(command: list[str]) -> None:
    assert build_parser().parse_args(command).config is None


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_config_in_both_places_the_one_after_the_subcommand_wins(command: list[str]) -> None:
    argv = ["--config", "before.toml", *command, "--config", "after.toml"]
    assert build_parser().parse_args(argv).config == "after.toml"


def test_config_between_a_command_and_its_subcommand_is_accepted() -> None:
    args = build_parser().parse_args(["orders", "--config", "x.toml", "add", *ORDER])
    assert args.config == "x.toml"
    argv = ["orders", "--config", "outer.toml", "add", *ORDER, "--config", "inner.toml"]
    assert build_parser().parse_args(argv).config == "inner.toml"


def test_config_help_says_where_it_goes_and_which_wins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--help"])
    assert "after the subcommand" in " ".join(capsys.readouterr().out.split())
