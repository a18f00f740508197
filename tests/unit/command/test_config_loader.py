"""One reader of the configuration file and one [kafka] section for every service; each service
reads only its own sections and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import KafkaSettings, kafka_settings, read_toml
from gateway.errors import ConfigError
from gateway.settings import load_settings
from sinks.errors import SinkConfigError
from sinks.settings import load_sink_settings
from stream.errors import StreamConfigError
from stream.settings import load_stream_settings

CONFIG = """
[kafka]
bootstrap_servers = "127.0.0.1:19092"
partitions = 4
topic_prefix = "t-"

[database]
url = "sqlite:///var/x.db"

[[accounts]]
name = "shop"
provider = "stripe"
signing_secrets = ["env:PAYNOTIFY_TEST_UNSET_SECRET"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "paynotify.toml"
    path.write_text(text)
    return path


def test_stream_and_sink_never_read_the_gateways_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYNOTIFY_TEST_UNSET_SECRET", raising=False)
    path = _write(tmp_path, CONFIG)
    with pytest.raises(ConfigError, match="PAYNOTIFY_TEST_UNSET_SECRET"):
        load_settings(path)  # the gateway needs the secret ...
    want = KafkaSettings("127.0.0.1:19092", 4, "t-")
    assert load_stream_settings(path).kafka == want  # ... the stream and the sink do not
    assert load_sink_settings(path).kafka == want


def test_every_service_reads_the_same_kafka_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_UNSET_SECRET", "whsec_" + "a" * 32)
    path = _write(tmp_path, CONFIG)
    kafka = kafka_settings(read_toml(path), path)
    assert load_settings(path).kafka == kafka
    assert load_stream_settings(path).kafka == kafka
    assert load_sink_settings(path).kafka == kafka
    assert kafka.topic("orders") == "t-orders"


@pytest.mark.parametrize("bad", ["partitions = 0", 'partitions = "eight"', "brokers = 1"])
def test_a_bad_kafka_section_is_refused_by_every_service(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path, f"[kafka]\n{bad}\n")
    with pytest.raises(ConfigError, match=r"\[kafka\]"):
        kafka_settings(read_toml(path), path)
    with pytest.raises(StreamConfigError, match=r"\[kafka\]"):
        load_stream_settings(path)
    with pytest.raises(SinkConfigError, match=r"\[kafka\]"):
        load_sink_settings(path)
