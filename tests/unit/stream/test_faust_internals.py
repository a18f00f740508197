"""The fence around faust's and aiokafka's internals: every private name the faust engine relies
on is still there, with the same parameters, in the versions it was checked against."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.events import Event
from faust.types.tuples import TP, ConsumerMessage

from stream.engines.faust_internals import (
    CHECKED_VERSIONS,
    PRIVATE_NAMES,
    BufferedSends,
    CommitGate,
    PrivateName,
)


def resolve(dotted: str) -> Any:
    """Return the module or class named by a dotted path (the longest importable module)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise ImportError(dotted)


def describe(function: Any) -> str:
    """Return a callable's parameters without annotations, ``*`` before keyword-only ones."""
    parts: list[str] = []
    star = False
    for param in inspect.signature(function).parameters.values():
        if param.kind is param.KEYWORD_ONLY and not star:
            parts.append("*")
        star = star or param.kind in (param.KEYWORD_ONLY, param.VAR_POSITIONAL)
        prefix = "*" if param.kind is param.VAR_POSITIONAL else ""
        prefix = "**" if param.kind is param.VAR_KEYWORD else prefix
        default = "" if param.default is param.empty else f"={param.default!r}"
        parts.append(f"{prefix}{param.name}{default}")
    return f"({', '.join(parts)})"


@pytest.mark.parametrize("dist", sorted(CHECKED_VERSIONS))
def test_faust_internals_installed_version_is_the_checked_one(dist: str) -> None:
    assert version(dist) == CHECKED_VERSIONS[dist], (
        f"{dist} {version(dist)} is installed, the fence was checked against "
        f"{CHECKED_VERSIONS[dist]}: read stream/engines/faust_internals.py against the new "
        "source, re-run the rebalance and kill -9 tests, then update CHECKED_VERSIONS"
    )


@pytest.mark.parametrize("name", PRIVATE_NAMES, ids=lambda n: f"{n.owner}.{n.name}")
def test_faust_internals_private_name_still_exists_with_its_signature(name: PrivateName) -> None:
    owner = resolve(name.owner)
    if name.where == "init":
        source = inspect.getsource(owner.__init__)
        assert f"self.{name.name} =" in source, f"{name.owner}.__init__ no longer sets {name.name}"
        return
    assert hasattr(owner, name.name), f"{name.owner} has no {name.name} ({name.why})"
    if name.params is not None:
        assert describe(getattr(owner, name.name)) == name.params, name.why


def test_faust_internals_transactional_ids_are_the_ones_faust_opens() -> None:
    manager = resolve("faust.transport.consumer.TransactionManager")
    assert manager.transactional_id_format == "{group_id}-{tpg.group}-{tpg.partition}"


def test_faust_internals_every_owner_is_listed_once_per_name() -> None:
    keys = [(n.owner, n.name) for n in PRIVATE_NAMES]
    assert len(keys) == len(set(keys))


async def test_faust_internals_skipped_event_leaves_no_offset_for_faust_to_commit() -> None:
    # As in a revocation: faust has forgotten the partition's committed offset, the agent
    # applied 291 and skipped 292; the stream iterator then acknowledges both.
    app = faust.App("skip-test", broker="kafka://127.0.0.1:1", loop=asyncio.get_running_loop())
    app.topics.acking_topics.add("orders")
    consumer = app.consumer
    tp = TP("orders", 1)
    applied, skipped = (
        ConsumerMessage("orders", 1, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)
        for offset in (291, 292)
    )
    consumer.unacked.update({applied, skipped})
    try:
        CommitGate().skip(Event(app, b"k", b"v", None, skipped))
        assert applied.ack(consumer) and not skipped.ack(consumer)
        assert consumer._acked[tp] == [291]  # a commit can go up to 292, not past it
        assert not consumer.unacked  # faust's wait for the agents does not wait for 292
    finally:  # the consumer thread's own event loop, never started
        consumer._thread.thread_loop.close()


def test_faust_internals_changelog_writes_go_through_the_buffer_put() -> None:
    producer = resolve("faust.transport.producer.Producer")
    assert "self.buffer.put(fut)" in inspect.getsource(producer.send_soon)


async def buffered_app() -> Any:
    """Return the producer buffer of a new app (never connected)."""
    app = faust.App("buffer-test", broker="kafka://127.0.0.1:1", loop=asyncio.get_running_loop())
    return app.producer.buffer


class StuckWrite:
    """A buffered write whose send never finishes (as when a full batch has no room)."""

    def __init__(self) -> None:
        self.message = SimpleNamespace(channel=SimpleNamespace(publish_message=self.publish))
        self.taken = asyncio.Event()

    async def publish(self, _fut: Any, wait: bool = False) -> None:
        self.taken.set()
        await asyncio.Event().wait()


async def test_faust_internals_faust_flush_returns_with_writes_unsent() -> None:
    # Why the commit cannot rely on faust's flush: it ignores the write its task holds, and
    # gives up on the others after 0.1 s without a write sent.
    buffer = await buffered_app()
    await buffer.start()
    try:
        held, queued = StuckWrite(), StuckWrite()
        buffer.put(held)
        await asyncio.wait_for(held.taken.wait(), 5.0)
        await asyncio.wait_for(buffer.flush(), 5.0)  # returns at once: the queue is empty
        buffer.put(queued)
        await asyncio.wait_for(buffer.flush(), 5.0)  # returns after 0.1 s
        assert buffer.size == 1 and not queued.taken.is_set()
    finally:
        while buffer.size:  # a buffer stops by flushing, which refuses a write still queued
            buffer.pending.get_nowait()
        await buffer.stop()


async def test_faust_internals_commit_waits_for_every_buffered_changelog_write() -> None:
    buffer = await buffered_app()
    sends = BufferedSends()
    sends.track(buffer)
    sends.track(buffer)  # the manager is built again after a restart of the consumer
    written = asyncio.get_running_loop().create_future()
    buffer.put(written)  # what a table write does (Producer.send_soon)
    settling = asyncio.create_task(sends.settle())
    await asyncio.sleep(0.3)  # faust's own flush would have given up by now
    assert not settling.done()
    written.set_result(None)
    await settling
    assert buffer.size == 1  # still faust's to send: noted, not taken
    await asyncio.wait_for(sends.settle(), 0.01)  # nothing left to wait for


async def test_faust_internals_commit_fails_on_a_failed_or_late_changelog_write() -> None:
    buffer = await buffered_app()
    sends = BufferedSends()
    sends.track(buffer)
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("ProducerFenced"))
    buffer.put(failed)
    with pytest.raises(RuntimeError, match="ProducerFenced"):
        await asyncio.wait_for(sends.settle(), 1.0)
    buffer.put(asyncio.get_running_loop().create_future())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sends.settle(), 0.05)
