"""The gateway's librdkafka partitioner must place keys where faust (aiokafka) and Quix Streams
place them: ``murmur2_random``. Its actual placement is checked against the Java partitioner on
the real broker (tests/integration/test_kafka.py, test_gateway.py): confluent-kafka 2.12 has no
public ``murmur2`` to compare with here."""

from __future__ import annotations

from gateway.publisher import producer_config


def test_producer_config_uses_java_compatible_partitioner_and_durability() -> None:
    config = producer_config("127.0.0.1:9092", 4000)
    assert config["partitioner"] == "murmur2_random"
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")
    assert config["message.timeout.ms"] == 4000
