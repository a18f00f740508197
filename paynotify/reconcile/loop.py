"""``paynotify reconcile``: ask the providers about orders whose payment was never confirmed.

Every round (``interval_s``) reads the ``created`` orders of the accounts that configure
reconciliation from the sink's database, queries those due by the stateless schedule
(``paynotify.reconcile.schedule``), verifies each answer with the provider's pure query part
(``gateway.providers.*_query``) and publishes what it proves to ``payment-notifications`` as
ordinary notifications (``source="query"``): the stream decides, as for a webhook. An order still
not proven paid by the query at its deadline gets an ``unconfirmed`` anomaly on
``payment-anomalies``, with an id derived from the order (the sink writes it once).

Each account's queries are paced (``reconcile_queries_per_second``), each answer's proof is
published as soon as it is verified, and a long round (a restart asks every open order once)
logs its progress and ends early, having published what it proved, when asked to stop. A query is
signed with the time it is sent, not the round's start.

An answer that proves nothing (an HTTP error, an unsigned or forged answer) is logged and the
order asked again at its next attempt. Log lines carry the order, account, provider and the
answer's state, never a key, a signature or a body.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from confluent_kafka import Producer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.accounts import QUERIES, reconciling
from gateway.config import KafkaSettings
from gateway.errors import GatewayError
from gateway.providers.query import QueryAnswer, QueryOutcome, Reconcilable
from gateway.publisher import producer_config
from gateway.records import NOTIFICATIONS_TOPIC
from gateway.settings import load_settings
from paynotify.errors import ReconcileError
from paynotify.orders import Record, deliver
from paynotify.reconcile.orders import OpenOrder, open_orders
from paynotify.reconcile.schedule import GRACE_S, Schedule
from sinks.settings import load_sink_settings
from stream.records import ANOMALIES_TOPIC, Anomaly, event_id

log = logging.getLogger("paynotify.reconcile")
REQUEST_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 30.0  # a long round (a restart, a backlog) says how far it got
Send = Callable[[Reconcilable, str, float], QueryAnswer]


@dataclass(frozen=True)
class ReconcileSettings:
    """The accounts that reconcile, where the orders are, and where to publish."""

    accounts: Mapping[str, Reconcilable]
    database_url: str = field(repr=False)
    kafka: KafkaSettings
    interval_s: float

    def schedule(self, account: Reconcilable) -> Schedule:
        """Return an account's schedule (its horizon: configured, or the provider's)."""
        horizon = account.reconcile_horizon_seconds or QUERIES[account.provider].horizon_seconds
        return Schedule(float(account.reconcile_after_seconds), float(horizon))


def load_reconcile_settings(path: Path) -> ReconcileSettings:
    """Build the reconciler's settings from the configuration file.

    Raises:
        ConfigError, SinkConfigError: the file is invalid.
        ReconcileError: no account configures reconciliation.
    """
    gateway = load_settings(path)
    accounts = {a.name: a for a in reconciling(gateway.accounts.values())}
    if not accounts:
        raise ReconcileError("no account configures reconciliation (see docs/operations.md)")
    sink = load_sink_settings(path)
    shortest = min(a.reconcile_after_seconds for a in accounts.values())
    return ReconcileSettings(
        accounts=accounts,
        database_url=sink.database_url,
        kafka=gateway.kafka,
        interval_s=min(max(shortest / 4, 0.5), 30.0),
    )


def http_sender(client: httpx.Client) -> Send:
    """Return the function that sends an account's query for one order and returns the answer.

    Its errors are ``httpx.HTTPError`` (no answer at all).
    """

    def send(account: Reconcilable, out_trade_no: str, now: float) -> QueryAnswer:
        query = QUERIES[account.provider]
        request = query.request(account, out_trade_no, now=now, nonce=secrets.token_hex(16))
        response = client.request(
            request.method, request.url, headers=dict(request.headers), content=request.body
        )
        return QueryAnswer(response.status_code, dict(response.headers), response.content)

    return send


class Pace:
    """Space one account's queries at least ``1 / per_second`` apart (monotonic seconds)."""

    def __init__(self, per_second: float) -> None:
        self.gap_s = 1.0 / per_second
        self.next_at = float("-inf")

    def book(self, now: float) -> float:
        """Book the next query; return how long to wait for it."""
        at = max(now, self.next_at)
        self.next_at = at + self.gap_s
        return at - now


@dataclass(frozen=True, slots=True)
class Due:
    """One order a round queries, and where it stands in its account's schedule."""

    order: OpenOrder
    account: Reconcilable
    final: bool


class Reconciler:
    """One reconciliation loop: rounds of querying due orders and publishing what is proven."""

    def __init__(
        self,
        settings: ReconcileSettings,
        engine: Engine,
        producer: Producer,
        send: Send,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.engine, self.producer, self.send = settings, engine, producer, send
        self.clock, self.monotonic = clock, monotonic
        self.previous: float | None = None
        self.seen: set[tuple[str, str]] = set()  # open orders of the previous round
        self.window_s = max(settings.schedule(a).deadline_s for a in settings.accounts.values())
        self.window_s += GRACE_S
        self.paces = {
            name: Pace(a.reconcile_queries_per_second) for name, a in settings.accounts.items()
        }

    def run(self, stop: threading.Event) -> None:
        """Run rounds until ``stop`` is set."""
        log.info("reconciliation started", extra={"account": ",".join(self.settings.accounts)})
        while not stop.is_set():
            started = self.clock()
            try:
                self.round(started, stop)
            except ReconcileError as exc:
                log.warning("reconciliation round failed", extra={"error": str(exc)})
            stop.wait(max(0.0, self.settings.interval_s - (self.clock() - started)))
        log.info("reconciliation stopped")

    def round(self, now: float, stop: threading.Event | None = None) -> int:
        """Query every due order once, each account at its pace, publishing what each answer
        proves as soon as it is verified; return how many were queried. Returns early, having
        published what it proved, once ``stop`` is set.

        Raises:
            ReconcileError: the database could not be read or the broker did not acknowledge.
        """
        stop = stop or threading.Event()
        at = datetime.fromtimestamp(now, UTC)
        try:
            candidates = open_orders(self.engine, self.settings.accounts, at, self.window_s)
        except SQLAlchemyError as exc:  # a database outage: the next round tries again
            raise ReconcileError(f"cannot read the orders: {type(exc).__name__}") from None
        due = self._due(candidates, now)
        began = reported = self.monotonic()
        queried = 0
        for item in due:
            wait = self.paces[item.account.name].book(self.monotonic())
            if stop.is_set() or (wait > 0 and stop.wait(wait)):
                break
            elapsed = self.monotonic() - began
            outcome = self._ask(item.account, item.order, now + elapsed)  # signed with its time
            records = list(_records(self.settings.kafka, outcome))
            if item.final and (outcome is None or outcome.state != "paid"):
                records.append(
                    _unconfirmed(self.settings.kafka, item.account, item.order, outcome, now)
                )
            self._publish(records)
            queried += 1
            if self.monotonic() - reported >= PROGRESS_EVERY_S:
                reported = self.monotonic()
                log.info(
                    "reconciliation round in progress",
                    extra={"queried": queried, "due": len(due), "seconds": round(elapsed, 1)},
                )
        if due:
            log.info(
                "reconciliation round done",
                extra={
                    "queried": queried,
                    "due": len(due),
                    "seconds": round(self.monotonic() - began, 1),
                },
            )
        self.previous = now
        self.seen = {(order.account, order.out_trade_no) for order in candidates}
        return queried

    def _due(self, candidates: Iterable[OpenOrder], now: float) -> list[Due]:
        """Return the candidates one of whose attempts falls since the previous round."""
        at = datetime.fromtimestamp(now, UTC)
        due = []
        for order in candidates:
            account = self.settings.accounts[order.account]
            schedule = self.settings.schedule(account)
            age = (at - order.created_at).total_seconds()
            # First sight (a restart, or the sink wrote the order late): as if no previous round.
            first = self.previous is None or (order.account, order.out_trade_no) not in self.seen
            previous = None if first or self.previous is None else age - (now - self.previous)
            if schedule.due(age, previous):
                due.append(Due(order, account, schedule.final(age, previous)))
        return due

    def _ask(self, account: Reconcilable, order: OpenOrder, now: float) -> QueryOutcome | None:
        """Send one query and verify the answer; None when it proves nothing."""
        where = {
            "provider": account.provider,
            "account": account.name,
            "out_trade_no": order.out_trade_no,
        }
        try:
            answer = self.send(account, order.out_trade_no, now)
            outcome = QUERIES[account.provider].verify(answer, account, order.out_trade_no, now=now)
        except httpx.HTTPError as exc:
            log.warning("order query got no answer", extra={**where, "error": type(exc).__name__})
            return None
        except GatewayError as exc:
            log.warning(
                "order query answer proves nothing",
                extra={**where, "reason": exc.reason, "error": str(exc)[:200]},
            )
            return None
        message = "payment proven by query" if outcome.notifications else "order queried"
        log.info(message, extra={**where, "status": outcome.state})
        return outcome

    def _publish(self, records: list[Record]) -> None:
        if not records:
            return
        _, unacknowledged = deliver(self.producer, records)
        if unacknowledged:
            raise ReconcileError(f"{unacknowledged} records were not acknowledged by the broker")


def _records(kafka: KafkaSettings, outcome: QueryOutcome | None) -> Iterable[Record]:
    if outcome is None:
        return ()
    topic = kafka.topic(NOTIFICATIONS_TOPIC)
    return [(topic, note.key(), note.to_bytes()) for note in outcome.notifications]


def unconfirmed_anomaly(
    account: Reconcilable, order: OpenOrder, outcome: QueryOutcome | None, now: float
) -> Anomaly:
    """Return the ``unconfirmed`` anomaly of an order still unpaid at its deadline (one id per
    order: published again after a restart, the sink keeps one row)."""
    last = outcome.state if outcome is not None else "no verified answer"
    return Anomaly(
        anomaly_id=event_id(account.name, order.out_trade_no, "anomaly:unconfirmed"),
        out_trade_no=order.out_trade_no,
        reason="unconfirmed",
        detail=(
            f"no payment confirmed by webhook or by querying {account.provider} until the "
            f"provider's retry horizon; last answer: {last}"
        ),
        account=account.name,
        provider=account.provider,
        detected_at=datetime.fromtimestamp(now, UTC).isoformat(),
    )


def _unconfirmed(
    kafka: KafkaSettings,
    account: Reconcilable,
    order: OpenOrder,
    outcome: QueryOutcome | None,
    now: float,
) -> Record:
    anomaly = unconfirmed_anomaly(account, order, outcome, now)
    log.warning(
        "order unconfirmed at the horizon",
        extra={
            "account": account.name,
            "out_trade_no": order.out_trade_no,
            "reason": "unconfirmed",
        },
    )
    return (kafka.topic(ANOMALIES_TOPIC), order.out_trade_no.encode(), anomaly.to_bytes())


def run(settings: ReconcileSettings, engine: Engine, stop: threading.Event) -> None:
    """Run the reconciler with a real HTTP client and Kafka producer until ``stop`` is set."""
    config = {
        **producer_config(settings.kafka.bootstrap_servers, 10000),
        "client.id": "paynotify-reconcile",
    }
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, follow_redirects=False) as client:
        Reconciler(settings, engine, Producer(config), http_sender(client)).run(stop)
