"""The fence around faust's and aiokafka's internals: every private name the faust engine relies
on is still there, with the same parameters, in the versions it was checked against."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from importlib.metadata import version
from typing import Any

import faust
import pytest
from faust.events import Event
from faust.types.tuples import TP, ConsumerMessage

from stream.engines.faust_internals import (
    CHECKED_VERSIONS,
    PRIVATE_NAMES,
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
