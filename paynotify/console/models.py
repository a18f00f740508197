"""The console API's answers, as Pydantic models so that ``/docs`` documents them.

They describe the shapes ``sinks/timeline.py`` and ``sinks/stats.py`` return; none has room for
a provider's raw body (the anomalies' stored records are left out by the sink's reader).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Order(BaseModel):
    """The order's row in ``orders``: what the merchant expected and where its status is."""

    model_config = ConfigDict(extra="ignore")

    out_trade_no: str
    account: str
    amount_minor: int
    currency: str
    status: str = Field(description="created, paid, partially_refunded, refunded or closed")
    version: int = Field(description="the order's change counter (the stream's)")
    refunded_minor: int
    created_at: str | None = None
    paid_at: str | None = None
    closed_at: str | None = None
    provider: str | None = None
    provider_trade_no: str | None = None
    updated_at: str | None = None


class TimelineEntry(BaseModel):
    """One line of the story: a notification, an event or an anomaly, and its columns.

    Besides the fields below, an entry carries the columns of its row (a notification's
    ``provider``, ``kind``, ``amount_minor``, ``source``; an event's ``event_id``, ...).
    """

    model_config = ConfigDict(extra="allow")

    at: str = Field(description="ISO-8601: received (notification) or recorded (event, anomaly)")
    what: Literal["notification", "event", "anomaly"]
    summary: str
    decision: str | None = Field(None, description="a notification's: what the stream decided")
    type: str | None = Field(None, description="an event's type, e.g. order.paid")
    reason: str | None = Field(None, description="an anomaly's reason, e.g. amount_mismatch")
    detail: str | None = Field(None, description="an anomaly's explanation")


class OrderStory(BaseModel):
    """Everything on record about one order number, in time order."""

    out_trade_no: str
    order: Order | None = Field(description="null when no expected order is on record")
    timeline: list[TimelineEntry]


class AnomalyRow(BaseModel):
    """One recorded anomaly (its stored record, with any provider body, is not served)."""

    model_config = ConfigDict(extra="ignore")

    anomaly_id: str
    out_trade_no: str
    reason: str
    detail: str
    source: str
    recorded_at: str


class LastHour(BaseModel):
    """What the sink recorded in the window that ends at the answer's time."""

    since: datetime
    window_seconds: int
    notifications_received: int
    orders_paid: int
    anomalies: int


class StatsAnswer(BaseModel):
    """Orders by status (statuses without orders are absent) and the last hour's counts."""

    at: datetime
    orders_by_status: dict[str, int]
    orders_total: int
    last_hour: LastHour


class Problem(BaseModel):
    """An error answer: one line for people (no payment data)."""

    detail: str


def story_answer(data: dict[str, Any]) -> OrderStory:
    """Return ``Story.as_json()`` as the API's model."""
    return OrderStory.model_validate(data)
