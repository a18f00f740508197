"""The Quix worker's metrics: records in and out by logical topic, errors, assignment and lag
read from librdkafka's statistics document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from stream.engines.failfast import FailFast
from stream.engines.metrics import StreamMetrics
from stream.errors import StreamConfigError
from stream.settings import load_stream_settings


def value(metrics: StreamMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_count_names_topics_without_their_prefix() -> None:
    metrics = StreamMetrics("t-")
    metrics.count("t-payment-notifications", ["order-paid", "notification-decisions"])
    metrics.count("t-payment-notifications", ["notification-decisions"])
    metrics.count("t-orders", [])
    assert value(metrics, "paynotify_stream_records_total", topic="payment-notifications") == 2
    assert value(metrics, "paynotify_stream_records_total", topic="orders") == 1
    assert value(metrics, "paynotify_stream_outputs_total", topic="notification-decisions") == 2
    assert value(metrics, "paynotify_stream_outputs_total", topic="order-paid") == 1


def test_statistics_give_assignment_and_lag_of_assigned_partitions_only() -> None:
    metrics = StreamMetrics("t-")
    stats = {
        "cgrp": {"join_state": "steady", "assignment_size": 2},
        "topics": {
            "t-orders": {
                "partitions": {
                    "0": {"ls_offset": 17, "app_offset": 10, "committed_offset": -1001},
                    "1": {"ls_offset": -1, "app_offset": -1001},  # not assigned here
                    "-1": {"ls_offset": -1, "app_offset": -1001},  # librdkafka's own
                    "2": {"ls_offset": 5, "app_offset": -1001, "committed_offset": 2},
                }
            },
            "t-payment-notifications": {"partitions": {"0": {"ls_offset": 3, "app_offset": 3}}},
        },
    }
    metrics.statistics(json.dumps(stats))
    assert value(metrics, "paynotify_stream_assigned_partitions") == 2
    assert value(metrics, "paynotify_stream_consumer_lag", topic="orders", partition="0") == 7
    assert value(metrics, "paynotify_stream_consumer_lag", topic="orders", partition="1") is None
    assert value(metrics, "paynotify_stream_consumer_lag", topic="orders", partition="2") == 3
    lag = value(
        metrics, "paynotify_stream_consumer_lag", topic="payment-notifications", partition="0"
    )
    assert lag == 0
    stats["topics"] = {}
    metrics.statistics(json.dumps(stats))  # partitions gone: their lag goes too
    assert b"paynotify_stream_consumer_lag{" not in generate_latest(metrics.registry)


def test_failfast_tells_the_metrics_where_the_error_came_from() -> None:
    metrics = StreamMetrics()
    failures = FailFast(75, grace_s=3600, on_error=metrics.error)
    assert failures.on_consumer_error(RuntimeError("broker gone"), None, None) is False
    failures.disarm()
    assert value(metrics, "paynotify_stream_errors_total", where="consumer") == 1
    assert b"process_start_time_seconds" in generate_latest(metrics.registry)


def test_metrics_listen_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "paynotify.toml"
    kafka = '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n\n[stream]\n'
    path.write_text(kafka + 'metrics_listen = "127.0.0.1:9109"\n')
    assert load_stream_settings(path).metrics_listen == "127.0.0.1:9109"
    path.write_text(kafka + 'metrics_listen = "nope"\n')
    with pytest.raises(StreamConfigError, match="metrics_listen must be"):
        load_stream_settings(path)
