"""The gateway's exceptions. Every rejected request raises one of these; ``answers.py`` alone maps
them to HTTP answers. Messages never carry a secret or a request body.

    GatewayError
    ├── ConfigError                 the configuration file is wrong (raised at start-up)
    ├── NotFoundError               unknown provider or account                    -> 404
    ├── RequestError                the request is not acceptable as sent
    │   ├── MalformedBodyError      the body or a field cannot be parsed          -> 400
    │   ├── BodyTooLargeError       the body exceeds the configured limit         -> 413
    │   ├── ContentTypeError        the content type is not the provider's        -> 415
    │   ├── RequestTimeoutError     the body did not arrive within the deadline   -> 408
    │   └── ClientDisconnectedError the client left before the body was complete  -> 400
    ├── VerificationError           the request is not proven genuine
    │   ├── SignatureError          missing, unparsable or wrong signature        -> 401
    │   ├── StaleTimestampError     timestamp outside the tolerance               -> 401
    │   ├── AccountMismatchError    app_id / mchid / seller is not this account's -> 403
    │   ├── SourceAddressError      the client address is not in the allowlist    -> 403
    │   └── DecryptionError         a signed resource does not decrypt (WeChat)   -> 401
    ├── QueryFailedError            reconciliation: the provider's answer proves nothing
    │                               (an HTTP error, an unsigned or error answer)
    ├── UnhandledEventError         genuine, but an event paynotify does not map:
    │                               acknowledged as success, nothing published    -> 2xx
    └── PublishError                the broker did not acknowledge the record     -> 503
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every gateway error; ``reason`` is a short machine-readable word for metrics."""

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(GatewayError):
    reason = "config"


class NotFoundError(GatewayError):
    reason = "not_found"


class RequestError(GatewayError):
    reason = "bad_request"


class MalformedBodyError(RequestError):
    reason = "malformed"


class BodyTooLargeError(RequestError):
    reason = "too_large"


class ContentTypeError(RequestError):
    reason = "content_type"


class RequestTimeoutError(RequestError):
    reason = "read_timeout"


class ClientDisconnectedError(RequestError):
    reason = "disconnected"


class VerificationError(GatewayError):
    reason = "unverified"


class SignatureError(VerificationError):
    reason = "signature"


class StaleTimestampError(VerificationError):
    reason = "stale_timestamp"


class AccountMismatchError(VerificationError):
    reason = "account_mismatch"


class SourceAddressError(VerificationError):
    reason = "source_address"


class DecryptionError(VerificationError):
    reason = "decrypt"


class QueryFailedError(GatewayError):
    reason = "query_failed"


class UnhandledEventError(GatewayError):
    reason = "unhandled_event"


class PublishError(GatewayError):
    reason = "publish"
