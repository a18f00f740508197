"""The simulation plan: a pure function of the options and a seed, no I/O, no clock.

``plan(options, accounts)`` returns the orders to create and, for each, what its provider sends:
every notification (payment, Alipay's ``TRADE_FINISHED``, refund, close) with its authenticity
(genuine, forged with a wrong key, or tampered after signing), when it is delivered (in the
provider's own time, seconds after the order starts; the runner compresses it) and how many copies
arrive at once, and the end state the system must reach: status, refunded amount, number of
``order.paid`` events, anomalies. Scenario counts are quotas per provider (``ceil(ratio * n)``),
so a small run still covers every scenario a ratio asks for. A ``lost`` order is paid but every
webhook of it is lost: only reconciliation (the provider's query API, which the simulator also
plays) can recover it, so only accounts that configure reconciliation get such orders. A ``late``
order's payment webhook is held back until the reconciler has asked about the order, so the
query and the webhook of one payment both arrive, in either order: it must be paid once.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from paynotify.errors import PlanError
from stream.records import CLOSED, CREATED, PAID, PARTIALLY_REFUNDED, REFUNDED

PROVIDERS = ("alipay", "wechatpay", "stripe", "standardwebhooks", "adyen")
CLOSING_PROVIDERS = frozenset({"alipay", "standardwebhooks", "adyen"})  # they notify a close
NAMESPACE = uuid.UUID("0b5e1f62-93f4-4a57-8d0c-5b2e7c1a9f31")

REFUND_DELAY = 600.0  # a refund comes 10 minutes after the payment
OUT_OF_ORDER_DELAY = 120.0  # the payment that a refund or TRADE_FINISHED overtook
TAMPER_LEAD = 10.0  # a tampered copy comes this long before the genuine one
DUPLICATE_WINDOW = (30.0, 900.0)  # a provider's spontaneous redelivery, after the first


@dataclass(frozen=True)
class Options:
    """What to simulate. Ratios are shares of orders (of paid orders for the modifiers)."""

    orders: int = 100
    duplicates: float = 0.3
    burst_ratio: float = 0.1
    burst_size: int = 4
    out_of_order: float = 0.1
    mismatches: float = 0.05
    forged: float = 0.05
    tampered: float = 0.05
    refunds: float = 0.2
    closes: float = 0.05
    lost: float = 0.05
    late: float = 0.05
    seed: int = 0
    run_id: str = "sim"

    def check(self) -> None:
        """Raise PlanError unless every value is in range."""
        ratios = {
            "duplicates": self.duplicates,
            "burst-ratio": self.burst_ratio,
            "out-of-order": self.out_of_order,
            "mismatches": self.mismatches,
            "forged": self.forged,
            "tampered": self.tampered,
            "refunds": self.refunds,
            "closes": self.closes,
            "lost": self.lost,
            "late": self.late,
        }
        for name, value in ratios.items():
            if not 0.0 <= value <= 1.0:
                raise PlanError(f"--{name} must be between 0 and 1, got {value}")
        if self.forged + self.mismatches + self.closes > 1.0:  # --lost takes what is left
            raise PlanError("--forged, --mismatches and --closes together exceed 1")
        if self.orders < 1 or self.burst_size < 0:
            raise PlanError("--orders must be at least 1 and --bursts not negative")


@dataclass(frozen=True)
class Account:
    """A configured account the plan sends to."""

    provider: str
    name: str
    currency: str
    reconciles: bool = False  # its query API is played too: some payments lose every webhook


@dataclass(frozen=True)
class Delivery:
    """One delivery of a notification: ``at`` provider-seconds after the order starts."""

    at: float
    copies: int = 1  # more than one: a burst of identical requests sent at the same moment


@dataclass(frozen=True)
class Message:
    """One notification as the provider means it (its copies share ``notify_id``)."""

    kind: str  # payment | finished (Alipay TRADE_FINISHED) | refund | close
    notify_id: str
    amount_minor: int  # payment: the amount claimed; refund: this refund's amount
    deliveries: tuple[Delivery, ...]
    authenticity: str = "genuine"  # genuine | forged | tampered
    refund_id: str | None = None
    refund_total_minor: int = 0  # refunds: the cumulative refunded amount after this one
    full_refund: bool = False  # refunds: this one brings the total to the paid amount
    after_query: bool = False  # held back until the provider's query API was asked (``late``)

    @property
    def genuine(self) -> bool:
        return self.authenticity == "genuine"


@dataclass(frozen=True)
class Expected:
    """The end state one order must reach."""

    status: str  # one of stream.records.ORDER_STATUSES
    refunded_minor: int = 0
    paid_events: int = 0
    anomalies: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedOrder:
    out_trade_no: str
    provider: str
    account: str
    amount_minor: int
    currency: str
    scenario: tuple[str, ...]
    messages: tuple[Message, ...]
    expected: Expected
    payment_ref: str  # the provider's id of the payment (trade no, intent, pspReference)

    @property
    def paid_minor(self) -> int | None:
        """Return what the customer really paid (as the provider's query API says), or None."""
        paid = [m for m in self.messages if m.kind == "payment" and m.genuine]
        return paid[0].amount_minor if paid else None


@dataclass(frozen=True)
class Plan:
    options: Options
    orders: tuple[PlannedOrder, ...] = field(default=())

    @property
    def horizon(self) -> float:
        """Return the last planned delivery, in provider seconds."""
        return max((d.at for o in self.orders for m in o.messages for d in m.deliveries), default=0)


def plan(options: Options, accounts: Sequence[Account]) -> Plan:
    """Make the plan: orders spread round-robin over ``accounts``, scenarios by quota.

    Raises:
        PlanError: an option is out of range or there is no account.
    """
    options.check()
    if not accounts:
        raise PlanError("no account to simulate: check --providers and the configuration")
    rng = random.Random(options.seed)
    drafts = [_draft(options, i, accounts[i % len(accounts)], rng) for i in range(options.orders)]
    by_provider: dict[tuple[str, bool], list[int]] = {}
    for i, draft in enumerate(drafts):
        by_provider.setdefault((draft.provider, draft.reconciles), []).append(i)
    for indexes in by_provider.values():
        _assign(options, [drafts[i] for i in indexes], rng)
    return Plan(options, tuple(_finish(options, d, rng) for d in drafts))


@dataclass
class _Draft:
    """An order while scenarios are being assigned to it."""

    index: int
    provider: str
    account: str
    currency: str
    amount_minor: int
    reconciles: bool = False
    primary: str = "paid"  # paid | forged | mismatch | closed | lost | late
    refunds: tuple[int, ...] = ()
    out_of_order: bool = False
    tampered: bool = False


def _draft(options: Options, i: int, account: Account, rng: random.Random) -> _Draft:
    amount = rng.randrange(100, 100_000)
    return _Draft(i, account.provider, account.name, account.currency, amount, account.reconciles)


def _quota(ratio: float, n: int) -> int:
    return min(n, math.ceil(ratio * n - 1e-9))


def _assign(options: Options, drafts: list[_Draft], rng: random.Random) -> None:
    """Give one provider's orders their scenarios: exact quotas, shuffled with the seed."""
    pool = list(drafts)
    rng.shuffle(pool)
    primaries = [("forged", options.forged), ("mismatch", options.mismatches)]
    if drafts[0].provider in CLOSING_PROVIDERS:
        primaries.append(("closed", options.closes))
    if drafts[0].reconciles:
        primaries += [("lost", options.lost), ("late", options.late)]
    for name, ratio in primaries:
        for draft in pool[: _quota(ratio, len(drafts))]:
            draft.primary = name
        pool = pool[_quota(ratio, len(drafts)) :]
    paid = [d for d in drafts if d.primary == "paid"]
    for k, draft in enumerate(rng.sample(paid, _quota(options.refunds, len(paid)))):
        draft.refunds = _refund_amounts(draft.amount_minor, k, rng)
    for draft in _interleaved(paid, rng)[: _quota(options.out_of_order, len(paid))]:
        draft.out_of_order = True
        if not draft.refunds and draft.provider != "alipay":
            draft.refunds = _refund_amounts(draft.amount_minor, 0, rng)
    for draft in rng.sample(paid, _quota(options.tampered, len(paid))):
        draft.tampered = True


def _interleaved(paid: list[_Draft], rng: random.Random) -> list[_Draft]:
    """Return refunded and other paid orders alternately (refund first or, for Alipay,
    TRADE_FINISHED first: both kinds of reordering), each group shuffled."""
    refunded = [d for d in paid if d.refunds]
    others = [d for d in paid if not d.refunds]
    rng.shuffle(refunded)
    rng.shuffle(others)
    mixed = [d for pair in zip(refunded, others, strict=False) for d in pair]
    rest = refunded[len(others) :] + others[len(refunded) :]
    return mixed + rest


def _refund_amounts(amount: int, k: int, rng: random.Random) -> tuple[int, ...]:
    """Return the refunds of one order: partial (k % 3 == 0), full at once, or full in two."""
    part = max(1, int(amount * rng.uniform(0.1, 0.6)))
    return ((part,), (amount,), (part, amount - part))[k % 3]


def _finish(options: Options, draft: _Draft, rng: random.Random) -> PlannedOrder:
    number = f"{options.run_id}-{draft.index:06d}"
    ids = _Ids(options, number)
    messages = tuple(_add_duplicates(options, m, rng) for m in _messages(draft, ids))
    return PlannedOrder(
        out_trade_no=number,
        provider=draft.provider,
        account=draft.account,
        amount_minor=draft.amount_minor,
        currency=draft.currency,
        scenario=_labels(draft),
        messages=messages,
        expected=_expected(draft),
        payment_ref=ids.make("payment-ref"),
    )


@dataclass(frozen=True)
class _Ids:
    options: Options
    number: str

    def make(self, what: str) -> str:
        """Return a deterministic id (32 hex digits) for ``what`` of this order."""
        seed = f"{self.options.seed}\x1f{self.number}\x1f{what}"
        return uuid.uuid5(NAMESPACE, seed).hex


def _messages(draft: _Draft, ids: _Ids) -> list[Message]:
    amount = draft.amount_minor
    if draft.primary == "forged":
        return [Message("payment", ids.make("forged"), amount, (Delivery(0.0),), "forged")]
    if draft.primary == "mismatch":
        return [Message("payment", ids.make("payment"), amount + 1, (Delivery(0.0),))]
    if draft.primary == "closed":
        return [Message("close", ids.make("close"), amount, (Delivery(0.0),))]
    if draft.primary == "lost":  # paid, but no delivery of any webhook arrives
        return [Message("payment", ids.make("payment"), amount, ())]
    if draft.primary == "late":  # the webhook comes once the reconciler has asked
        return [Message("payment", ids.make("payment"), amount, (Delivery(0.0),), after_query=True)]
    first = 0.0
    messages: list[Message] = []
    if draft.out_of_order:
        first = OUT_OF_ORDER_DELAY
        if not draft.refunds:  # Alipay: TRADE_FINISHED overtakes TRADE_SUCCESS
            messages.append(Message("finished", ids.make("finished"), amount, (Delivery(0.0),)))
    if draft.tampered:
        tampered = Message("payment", ids.make("payment"), amount, (Delivery(first),), "tampered")
        messages.append(tampered)
        first += TAMPER_LEAD
    messages.append(Message("payment", ids.make("payment"), amount, (Delivery(first),)))
    messages.extend(_refund_messages(draft, ids))
    return messages


def _refund_messages(draft: _Draft, ids: _Ids) -> list[Message]:
    total, out = 0, []
    start = 0.0 if draft.out_of_order else REFUND_DELAY
    for n, amount in enumerate(draft.refunds):
        total += amount
        out.append(
            Message(
                "refund",
                ids.make(f"refund-notify-{n}"),
                amount,
                (Delivery(start + n * 60.0),),
                refund_id=ids.make(f"refund-{n}")[:24],
                refund_total_minor=total,
                full_refund=total == draft.amount_minor,
            )
        )
    return out


def _add_duplicates(options: Options, message: Message, rng: random.Random) -> Message:
    """Let the provider redeliver a genuine notification: later copies, or a burst at once."""
    if not message.genuine or not message.deliveries:
        return message
    first = message.deliveries[0]
    if options.burst_size > 1 and rng.random() < options.burst_ratio:
        first = replace(first, copies=options.burst_size)
    later: tuple[Delivery, ...] = ()
    if rng.random() < options.duplicates:
        later = (Delivery(first.at + rng.uniform(*DUPLICATE_WINDOW)),)
    return replace(message, deliveries=(first, *later))


def _labels(draft: _Draft) -> tuple[str, ...]:
    labels = [draft.primary]
    if len(draft.refunds) == 1 and draft.refunds[0] < draft.amount_minor:
        labels.append("partial_refund")
    elif draft.refunds:
        labels.append("full_refund" if len(draft.refunds) == 1 else "full_refund_in_two")
    if draft.out_of_order:
        labels.append("refund_before_payment" if draft.refunds else "finished_before_success")
    if draft.tampered:
        labels.append("tampered")
    return tuple(labels)


def _expected(draft: _Draft) -> Expected:
    if draft.primary == "forged":
        return Expected(CREATED)
    if draft.primary == "mismatch":
        return Expected(CREATED, anomalies=("amount_mismatch",))
    if draft.primary == "closed":
        return Expected(CLOSED)
    if draft.primary in ("lost", "late"):
        return Expected(PAID, paid_events=1)
    refunded = sum(draft.refunds)
    if not refunded:
        return Expected(PAID, paid_events=1)
    status = REFUNDED if refunded == draft.amount_minor else PARTIALLY_REFUNDED
    return Expected(status, refunded_minor=refunded, paid_events=1)
