"""A database URL's password appears in no repr and no configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.errors import SinkConfigError
from sinks.settings import load_sink_settings


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "paynotify.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    return path


def test_sink_settings_repr_hides_database_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://paynotify:hunter2-secret@db.example:5432/paynotify"
    settings = load_sink_settings(_config(tmp_path, url))
    assert settings.database_url == url
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://paynotify:hunter2-secret@db.example:notaport/paynotify",
        "not a url hunter2-secret",
    ],
)
def test_sink_settings_bad_url_error_hides_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(SinkConfigError) as caught:
        load_sink_settings(_config(tmp_path, url))
    assert "hunter2-secret" not in str(caught.value)
