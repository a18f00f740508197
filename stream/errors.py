"""The stream's exceptions (records that cannot be decoded are ``gateway.records.RecordError``,
the contracts' error, and never escape a worker: they become ``undecodable_record`` anomalies).

    StreamError
    └── StreamConfigError   the [kafka] or [stream] section is invalid (raised at start-up)
"""

from __future__ import annotations


class StreamError(Exception):
    """Base of every stream error."""


class StreamConfigError(StreamError, ValueError):
    """The configuration file's ``[kafka]`` or ``[stream]`` section is invalid."""
