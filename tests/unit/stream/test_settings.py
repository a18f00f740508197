"""``[stream]`` settings: the engine choice and the commit interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.errors import StreamConfigError
from stream.settings import load_stream_settings


def write(tmp_path: Path, stream: str) -> Path:
    path = tmp_path / "paynotify.toml"
    path.write_text(f'[kafka]\nbootstrap_servers = "127.0.0.1:9092"\n\n[stream]\n{stream}\n')
    return path


def test_settings_without_engine_choose_quix_and_commit_every_tenth_of_a_second(
    tmp_path: Path,
) -> None:
    settings = load_stream_settings(write(tmp_path, ""))
    assert settings.engine == "quix" and settings.commit_interval_s == 0.1


@pytest.mark.parametrize("engine", ["quix", "faust"])
def test_settings_known_engine_is_kept(tmp_path: Path, engine: str) -> None:
    settings = load_stream_settings(write(tmp_path, f'engine = "{engine}"'))
    assert settings.engine == engine


@pytest.mark.parametrize("engine", ['"flink"', '"Quix"', "1"])
def test_settings_unknown_engine_is_refused_by_name(tmp_path: Path, engine: str) -> None:
    with pytest.raises(StreamConfigError, match=r"\[stream\] engine must be one of"):
        load_stream_settings(write(tmp_path, f"engine = {engine}"))


def test_settings_commit_interval_is_read(tmp_path: Path) -> None:
    settings = load_stream_settings(write(tmp_path, "commit_interval_seconds = 1.5"))
    assert settings.commit_interval_s == 1.5
