"""What reconciliation needs of a provider that has an order-query API (``paynotify reconcile``).

A provider's query module builds the signed request for one order (``QueryRequest``: method,
URL, headers, body as plain values) and verifies the answer (``QueryAnswer``: status, headers,
raw body) as strictly as a webhook, returning a ``QueryOutcome``: what the provider proved about
the order, and the notifications to publish (``source="query"``, deterministic notify ids, see
``query_notify_id``). The HTTP call is the reconciler's (``paynotify.reconcile``).

``Reconcilable`` is the account settings every such provider adds: ``reconcile_after_seconds``,
``reconcile_horizon_seconds`` (default the provider's webhook retry horizon),
``reconcile_queries_per_second`` (default 10) and ``query_url`` (default its production API); the
credentials are each provider's own. An account reconciles when its credentials are configured.

Pure: no web framework, no I/O, no clock (``now`` and the nonce are passed in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field

from gateway.providers import fields
from gateway.providers.provider import Account
from gateway.records import Notification, encode_raw_body

# What an answer proved: paid (notifications hold the payment), closed (unpaid and closed: a
# close notification), unpaid (the order exists, nothing paid yet), not_found (the provider
# knows no such order, yet: not terminal).
State = Literal["paid", "closed", "unpaid", "not_found"]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SETTINGS = (
    "reconcile_after_seconds",
    "reconcile_horizon_seconds",
    "reconcile_queries_per_second",
    "query_url",
)


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """One HTTP request to a provider's order-query API, as plain values."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """The provider's HTTP answer, as received: status, headers and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    """What a verified answer proved, and the notifications to publish (paid or closed)."""

    state: State
    notifications: tuple[Notification, ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    """A provider's order-query part: ``request(account, out_trade_no, *, now, nonce)`` and
    ``verify(answer, account, out_trade_no, *, now)``; ``horizon_seconds`` is how long the
    provider retries a webhook (reconciliation's default horizon)."""

    request: Callable[..., QueryRequest]
    verify: Callable[..., QueryOutcome]
    horizon_seconds: int


class Reconcilable(Account):
    """The reconciliation settings of an account whose provider has an order-query API."""

    reconcile_after_seconds: int = Field(default=300, ge=1, le=7 * 86400)
    reconcile_horizon_seconds: int | None = Field(default=None, ge=1, le=30 * 86400)
    # At most this many queries a second for the account (Stripe allows 20 search reads a
    # second for everything the merchant does; a restarted reconciler asks every open order).
    reconcile_queries_per_second: float = Field(default=10.0, gt=0, le=1000)
    query_url: str = ""

    @property
    def reconciles(self) -> bool:
        """Return whether the account's query credentials are configured."""
        return False

    def check_reconcile(self, credentials: Mapping[str, object]) -> None:
        """Refuse half-configured reconciliation and a query URL that is neither HTTPS nor
        loopback HTTP (the simulator).

        Raises:
            ConfigError: naming the account and the setting.
        """
        given = [name for name, value in credentials.items() if value]
        if given and len(given) < len(credentials):
            missing = [name for name in credentials if name not in given]
            raise self.refuse(f"reconciliation needs {' and '.join(missing)} too")
        defaults = {name: type(self).model_fields[name].default for name in SETTINGS}
        if not given and any(getattr(self, n) != defaults[n] for n in SETTINGS):
            names = " and ".join(credentials)
            raise self.refuse(f"reconciliation settings need {names}")
        if self.query_url:
            check_query_url(self, self.query_url)


def check_query_url(account: Account, url: str) -> None:
    """Refuse a query URL that is not ``https://host...`` or ``http://`` to a loopback host.

    Raises:
        ConfigError: naming the account.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise account.refuse("query_url is not a URL") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host in LOOPBACK:
        return
    raise account.refuse("query_url must be https:// (or http:// to a loopback address)")


def query_notify_id(kind: str, status: str, trade_no: str) -> str:
    """Return the notify id of a query-proven fact: the same answer, the same id (so repeated
    queries are duplicates), another status another id (never a notify_id_conflict)."""
    return f"query:{kind}:{status}:{trade_no}"


@dataclass(frozen=True, slots=True)
class Proven:
    """The facts an answer proved about one order, before they become a ``Notification``."""

    kind: str
    status: str
    out_trade_no: str
    amount_minor: int
    currency: str
    trade_no: str
    occurred_at: str | None


def proven_notification(
    facts: Proven, provider: str, account: Account, body: bytes, *, now: float
) -> Notification:
    """Return the ``source="query"`` notification of proven facts (the raw answer kept)."""
    return Notification(
        provider=provider,
        account=account.name,
        notify_id=query_notify_id(facts.kind, facts.status, facts.trade_no or facts.out_trade_no),
        out_trade_no=facts.out_trade_no,
        kind=facts.kind,
        status=facts.status,
        amount_minor=facts.amount_minor,
        currency=facts.currency,
        provider_trade_no=facts.trade_no,
        occurred_at=facts.occurred_at,
        received_at=fields.from_unix(now),
        raw_body_b64=encode_raw_body(body),
        succeeded=True,
        content_type=fields.JSON,
        source="query",
    )
