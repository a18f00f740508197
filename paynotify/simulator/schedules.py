"""How each provider retries, and which answer makes it stop (docs/operations.md, "Simulator").

A provider resends a notification whenever the answer is not its exact success form, waiting the
intervals below between attempts, and gives up when they run out. Sources: the reference notes in
docs/providers.md and the providers' own pages (Alipay: ``success`` in plain text, 8 notifications
in 25 h; WeChat Pay: 200/204, 15 retries over 24 h 4 min; Stripe: any 2xx, exponential backoff for
up to 3 days, intervals unpublished; Standard Webhooks: any 2xx, the spec's example schedule;
Adyen: ``[accepted]``, 2m..8h then every 8 h for 30 days).
"""

from __future__ import annotations

from collections.abc import Mapping

MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR


def _every(interval: float, until: float, start: float) -> tuple[float, ...]:
    """Return ``interval`` repeated while the running total stays within ``until``."""
    count = int((until - start) // interval)
    return (interval,) * max(count, 0)


_ADYEN_FIRST: tuple[float, ...] = (2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE)
_ADYEN_FIRST += (HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR)
_STRIPE = tuple(5 * MINUTE * 2**n for n in range(9))  # 5 min ... 21.3 h, 42.6 h in all

# Seconds to wait before each retry (the first attempt is not listed).
RETRY_INTERVALS: Mapping[str, tuple[float, ...]] = {
    "alipay": (4 * MINUTE, 10 * MINUTE, 10 * MINUTE, HOUR, 2 * HOUR, 6 * HOUR, 15 * HOUR),
    "wechatpay": (
        15.0,
        15.0,
        30.0,
        3 * MINUTE,
        10 * MINUTE,
        20 * MINUTE,
        30 * MINUTE,
        30 * MINUTE,
        30 * MINUTE,
        60 * MINUTE,
        3 * HOUR,
        3 * HOUR,
        3 * HOUR,
        6 * HOUR,
        6 * HOUR,
    ),
    # Stripe publishes only "exponential backoff, up to 3 days": doubling from 5 minutes, then
    # one last attempt at the 3-day mark.
    "stripe": (*_STRIPE, 3 * DAY - sum(_STRIPE)),
    "standardwebhooks": (
        5.0,
        5 * MINUTE,
        30 * MINUTE,
        2 * HOUR,
        5 * HOUR,
        10 * HOUR,
        14 * HOUR,
        20 * HOUR,
        24 * HOUR,
    ),
    "adyen": _ADYEN_FIRST + _every(8 * HOUR, 30 * DAY, sum(_ADYEN_FIRST)),
}


def is_success(provider: str, status: int, text: str) -> bool:
    """Return whether ``provider`` would take this answer as "received" and stop retrying."""
    if provider == "alipay":
        return status == 200 and text == "success"
    if provider == "wechatpay":
        return status in (200, 204)
    if provider == "adyen":
        return 200 <= status < 300 and text.strip() == "[accepted]"
    return 200 <= status < 300


def compressed(provider: str, time_factor: float) -> tuple[float, ...]:
    """Return the provider's retry intervals divided by ``time_factor`` (real seconds)."""
    return tuple(interval / time_factor for interval in RETRY_INTERVALS[provider])
