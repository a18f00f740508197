"""What every provider module holds, and the one object it exports: ``PROVIDER``.

A provider module defines its account model (a subclass of ``Account``: one member of the
discriminated union on ``provider`` that the settings loader parses ``[[accounts]]`` with, keys
and secrets decoded once while it is validated), its pure ``verify``, its success and failure
answers, and the table of its words that are a payment, a refund or a close. ``gateway.accounts``
lists the modules' ``PROVIDER`` objects; nothing else in the gateway names a provider.

Pure: no web framework, no I/O (``env:``/``file:`` references are resolved by the loader that
``gateway.settings`` passes in the validation context, see ``gateway.providers.keys``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import ConfigError, GatewayError
from gateway.records import Notification

Kind = Literal["payment", "refund", "close"]
Verifier = Callable[..., Sequence[Notification]]
log = logging.getLogger("paynotify.gateway")


class Account(BaseModel):
    """The fields every ``[[accounts]]`` table has; each provider's model adds its own."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
        validate_by_name=True,
        validate_by_alias=True,
    )
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    provider: str
    allowed_source_ips: tuple[str, ...] | None = None

    def refuse(self, message: str) -> ConfigError:
        """Return the start-up error for this account (the caller raises it)."""
        return ConfigError(f"account {self.name!r}: {message}")

    def require(self, value: object, name: str) -> None:
        """Refuse an account whose required setting ``name`` is empty.

        Raises:
            ConfigError: naming the account and the setting.
        """
        if not value:
            raise self.refuse(f"{name} is required")

    def require_some(self, values: object, name: str) -> None:
        """Refuse an account with none of the values of a list setting.

        Raises:
            ConfigError: naming the account and the setting.
        """
        if not values:
            raise self.refuse(f"at least one of {name} is required")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as plain values; ``gateway.answers`` sends it."""

    status: int
    body: bytes = b""
    media_type: str | None = None


def text_answer(text: str, status: int = 200) -> Answer:
    """Return a ``text/plain`` answer."""
    return Answer(status, text.encode("utf-8"), "text/plain")


def json_answer(content: object, status: int = 200) -> Answer:
    """Return a compact JSON answer, encoded as Starlette's ``JSONResponse`` encodes it."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Answer(status, body.encode("utf-8"), "application/json")


# The success answer of providers that take any 2xx.
RECEIVED = json_answer({"received": True})


def json_failure(status: int, error: GatewayError) -> Answer:
    """Return the failure answer of providers that only look at the status: ``{"error": ...}``."""
    return json_answer({"error": str(error)}, status)


def one(verify: Callable[..., Notification]) -> Verifier:
    """Return a verifier of one-notification requests as one of batches."""

    def verify_one(*args: Any, **kwargs: Any) -> Sequence[Notification]:
        return (verify(*args, **kwargs),)

    return verify_one


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider: everything the gateway needs to know about it.

    ``verify(body, headers, account, *, now)`` returns the notifications to publish; ``failure``
    turns a refusal's status and error into the answer the provider expects; ``kinds`` maps the
    provider's words to what they are.
    """

    account: type[Account]
    verify: Verifier
    success: Answer
    failure: Callable[[int, GatewayError], Answer] = json_failure
    kinds: Mapping[str, Kind] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Return the provider's name: its account model's ``provider`` tag."""
        return str(self.account.model_fields["provider"].default)
