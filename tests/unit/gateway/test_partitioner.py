"""The gateway's librdkafka partitioner must place keys where faust (aiokafka) places them."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import murmur2

from gateway.publisher import producer_config


def test_producer_config_uses_java_compatible_partitioner_and_durability() -> None:
    config = producer_config("127.0.0.1:9092", 4000)
    assert config["partitioner"] == "murmur2_random"
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")
    assert config["message.timeout.ms"] == 4000


@pytest.mark.parametrize("partitions", [1, 3, 8, 12, 32])
def test_murmur2_matches_aiokafka_default_partitioner(partitions: int) -> None:
    rng = random.Random(partitions)
    keys = [f"order-{rng.getrandbits(64):x}".encode() for _ in range(2000)]
    keys += ["订单-42".encode(), b"x", b"20261126-000001"]
    java = DefaultPartitioner()
    available = list(range(partitions))
    for key in keys:
        assert murmur2(key, partitions) == java(key, available, available), key
