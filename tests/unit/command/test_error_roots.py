"""One exception root per package, each tree drawn in its module's docstring, and the command
line catching exactly those roots."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import gateway.errors
import paynotify.errors
import sinks.errors
import stream.errors
from paynotify import cli

ROOTS: list[tuple[ModuleType, type[Exception]]] = [
    (gateway.errors, gateway.errors.GatewayError),
    (stream.errors, stream.errors.StreamError),
    (sinks.errors, sinks.errors.SinkError),
    (paynotify.errors, paynotify.errors.PaynotifyError),
]


def _defined(module: ModuleType) -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == module.__name__
    ]


@pytest.mark.parametrize(("module", "root"), ROOTS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_error_of_a_package_is_under_its_root_and_in_its_tree(
    module: ModuleType, root: type[Exception]
) -> None:
    classes = _defined(module)
    assert root in classes
    for cls in classes:
        assert issubclass(cls, root), cls
        assert cls.__name__ in (module.__doc__ or ""), f"{cls.__name__} missing from the tree"


def test_the_command_line_catches_the_four_roots() -> None:
    assert set(cli.EXPECTED) == {root for _, root in ROOTS}


def test_an_error_of_a_root_is_one_line_and_status_2(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"{tmp_path}/nowhere.toml"
    assert cli.main(["stream", "--config", missing]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("paynotify: ")
