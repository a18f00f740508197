"""``/metrics`` with several gateway workers: prometheus_client's multiprocess mode sums them.

prometheus_client picks its value class once, when it is imported (file-backed values when
``PROMETHEUS_MULTIPROC_DIR`` is set). To have two "workers" in one test process, each app here is
built and served while ``values.ValueClass`` writes under its own process identifier, the switch
prometheus_client's own tests make. The real thing, two uvicorn workers, is
``tests/integration/test_gateway.py::test_gateway_two_workers_metrics_sum_both_workers``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import values

from gateway.metrics import shared_metrics_dir
from gateway.publisher import MemoryPublisher
from gateway.settings import METRICS_DIR_ENV
from tests.support import gateway_requests as reqs

TWO_WORKERS = dataclasses.replace(reqs.settings(), workers=2)


@pytest.fixture
def become(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """Switch prometheus_client's values to files of process ``pid`` in the shared folder."""
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    made: list[Any] = []

    def switch(pid: int) -> None:
        value_class = values.MultiProcessValue(lambda: pid)
        made.append(value_class)
        monkeypatch.setattr(values, "ValueClass", value_class)

    yield switch
    for value_class in made:
        value_class.close_all_files()


async def _post(app: Any, *order_ids: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for order_id in order_ids:
            body, headers = reqs.genuine("alipay", order_id)
            response = await client.post("/notify/alipay/shop", content=body, headers=headers)
            assert response.text == "success"


def _counter_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("counter_*.db"))


async def _scrape(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return (await client.get("/metrics")).text


async def test_metrics_of_two_workers_sum_both_counters(
    become: Callable[[int], None], tmp_path: Path
) -> None:
    apps = []
    async with AsyncExitStack() as stack:
        for pid, orders in ((1001, ("w1-a",)), (1002, ("w2-a", "w2-b"))):
            become(pid)
            app = reqs.build(TWO_WORKERS, MemoryPublisher())
            await stack.enter_async_context(reqs.serving(app))
            await _post(app, *orders)
            apps.append(app)
        for app in apps:
            text = await _scrape(app)
            assert f"{reqs.ALIPAY_ACCEPTED} 3.0" in text
            assert "paynotify_gateway_publish_seconds_count 3.0" in text
            assert "# HELP paynotify_gateway_requests_total Notifications by outcome" in text
    assert _counter_files(tmp_path) == ["counter_1001.db", "counter_1002.db"]


async def test_in_flight_sums_live_workers_and_forgets_a_stopped_one(
    become: Callable[[int], None],
) -> None:
    become(1001)
    staying = reqs.build(TWO_WORKERS, MemoryPublisher())
    staying.state.metrics.in_flight.inc()
    become(os.getpid())  # the stopping worker's lifespan marks this process dead
    stopping = reqs.build(TWO_WORKERS, MemoryPublisher())
    async with reqs.serving(stopping):
        stopping.state.metrics.in_flight.inc(2)
        assert "paynotify_gateway_in_flight 3.0" in await _scrape(staying)
    assert "paynotify_gateway_in_flight 1.0" in await _scrape(staying)


def test_one_worker_keeps_its_metrics_in_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    assert shared_metrics_dir(reqs.settings()) is None
    assert shared_metrics_dir(TWO_WORKERS) == str(tmp_path)
    monkeypatch.delenv(METRICS_DIR_ENV)
    assert shared_metrics_dir(TWO_WORKERS) is None
    app = reqs.build(reqs.settings(), MemoryPublisher())
    assert app.state.metrics.multiprocess_dir is None
