"""The fault-injection suite: while the simulator plays every provider at load (duplicates,
bursts, out-of-order, refunds, closes, mismatches, forged and tampered requests), kill -9 and
restart the gateway, the stream worker, the sink, the Kafka broker, or stop and start PostgreSQL;
then every acknowledged order must be paid exactly once in the database, with exactly one
``order.paid`` on the topic (read_committed), nothing forged, tampered or mismatched may have an
effect (anomalies recorded instead), and no service may log an unhandled error.

The short form runs in CI (``./dev test``); the long form, more orders and the fault three times:
``.venv/bin/python -m pytest -m faults --faults=long tests/integration/test_faults.py``.
Each test prints its figures line to the terminal, passed or failed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paynotify.broker import LocalBroker, free_port
from stream.engines.quix import READY_TEXT
from tests.support.faults import SIZES, Fault, FaultStack, Outcome, Size, run_with_faults
from tests.support.postgres import LocalPostgres

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def size(request: pytest.FixtureRequest) -> Size:
    return SIZES[str(request.config.getoption("--faults"))]


@pytest.fixture
def private_broker() -> Iterator[LocalBroker]:
    """A broker of this test's own, to kill -9 and restart on the same folder and port."""
    folder = Path(tempfile.mkdtemp(prefix="paynotify-faults-kafka-"))
    broker = LocalBroker(folder, port=free_port())
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own, to stop and start."""
    server = LocalPostgres()
    server.init()
    yield server
    server.destroy()


def play(
    stack: FaultStack,
    name: str,
    fault: Fault,
    size: Size,
    seed: int,
    capsys: pytest.CaptureFixture[str],
    at: list[float] | None = None,
) -> Outcome:
    """Start the stack, run the simulator with the fault, stop; print and return the counts."""
    import asyncio

    stack.start()
    try:
        outcome = asyncio.run(run_with_faults(stack, name, fault, size, seed, at))
    finally:
        stack.stop()
    outcome.unhandled = stack.unhandled()
    outcome.trouble = stack.trouble()
    report(outcome, capsys)
    return outcome


def report(outcome: Outcome, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the figures to the terminal; append them to $PAYNOTIFY_FAULTS_RESULTS if set."""
    with capsys.disabled():
        print(f"\n{outcome.figures()}", flush=True)
    results = os.environ.get("PAYNOTIFY_FAULTS_RESULTS")
    if results:
        record = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **outcome.as_json()}
        with open(results, "a") as out:
            out.write(json.dumps(record) + "\n")


def assert_invariants(outcome: Outcome, size: Size) -> None:
    total = outcome.report.total()
    detail = "\n".join(
        [
            outcome.figures(),
            *(
                f"{d.out_trade_no}: {d.problem} ({d.detail})"
                for d in outcome.verification.discrepancies[:20]
            ),
            *outcome.trouble,
        ]
    )
    assert not outcome.exited, f"services died by themselves: {outcome.exited}\n{detail}"
    assert outcome.injected == outcome.injected_under_load == size.faults, detail
    assert total.gave_up == 0, detail
    assert outcome.lost == 0, detail
    assert outcome.duplicated == 0, detail
    assert outcome.forged_effects == 0, detail
    # (a late cumulative refund total once left a spurious refund_invalid anomaly: see
    # docs/reliability.md, "Fault matrix"; the sink now takes it as adding nothing)
    assert not outcome.verification.discrepancies, detail
    assert not outcome.unhandled, {k: v[:5] for k, v in outcome.unhandled.items()}
    assert outcome.verification.paid_events == sum(
        o.expected.paid_events for o in outcome.plan.orders
    )
    # A forged or tampered request that got no answer at all (the gateway was dead) is counted
    # "not refused" by the simulator; any other answer but a 4xx would be a defect.
    assert outcome.refused_or_unreached[1] <= unreachable(outcome), detail


def unreachable(outcome: Outcome) -> int:
    """Return requests that got no HTTP answer (connection refused or reset, timeout)."""
    return sum(n for answer, n in outcome.report.total().answers.items() if answer.startswith("0"))


@pytest.mark.parametrize(("service", "seed"), [("gateway", 61), ("stream", 62), ("sink", 63)])
def test_faults_service_kill9_restart_loses_and_duplicates_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    database_url: str,
    size: Size,
    capsys: pytest.CaptureFixture[str],
    service: str,
    seed: int,
) -> None:
    stack = FaultStack(tmp_path, kafka_bootstrap, database_url)
    outcome = play(stack, service, lambda s: s.restart(service, size.down_s), size, seed, capsys)
    assert_invariants(outcome, size)
    if service == "gateway":
        assert unreachable(outcome) > 0, "the kill did not hit any request"


def kill9_and_restart(broker: LocalBroker, down_s: float) -> None:
    """kill -9 the broker, leave it down ``down_s``, start it again on its folder and port."""
    broker.kill()
    time.sleep(down_s)
    broker.start()


def test_faults_kafka_kill9_restart_loses_and_duplicates_nothing(
    tmp_path: Path,
    private_broker: LocalBroker,
    database_url: str,
    size: Size,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fault(_stack: FaultStack) -> None:
        kill9_and_restart(private_broker, size.down_s)

    stack = FaultStack(tmp_path, private_broker.bootstrap_servers, database_url)
    outcome = play(stack, "kafka", fault, size, 64, capsys)
    assert_invariants(outcome, size)


def test_faults_kafka_kill9_as_the_stream_first_settles_loses_nothing(
    tmp_path: Path,
    private_broker: LocalBroker,
    database_url: str,
    size: Size,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The broker dies just as the stream worker's first assignment settles (twice in CI, by
    chance: the worker's consume failed, its close hung, and the restarted worker then waited
    for its dead predecessor's session; docs/reliability.md). Here that moment is chosen."""

    def fault(stack: FaultStack) -> None:
        stream = stack.services["stream"]
        deadline = time.monotonic() + 120
        while READY_TEXT not in stream.output():
            assert time.monotonic() < deadline, "the stream worker never got its partitions"
            time.sleep(0.005)
        kill9_and_restart(private_broker, size.down_s)

    stack = FaultStack(tmp_path, private_broker.bootstrap_servers, database_url)
    outcome = play(stack, "kafka-at-ready", fault, size, 66, capsys, at=[0.0])
    assert_invariants(outcome, size)


def test_faults_postgres_stop_start_loses_and_duplicates_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    private_postgres: LocalPostgres,
    size: Size,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fault(_stack: FaultStack) -> None:
        private_postgres.stop("fast")
        time.sleep(size.down_s)
        private_postgres.start()

    stack = FaultStack(tmp_path, kafka_bootstrap, private_postgres.url())
    outcome = play(stack, "postgres", fault, size, 65, capsys)
    assert_invariants(outcome, size)
