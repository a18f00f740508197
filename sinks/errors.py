"""The sink's exceptions. Messages never carry the database URL or a record's content.

SinkError
├── SinkConfigError            the [database], [kafka] or [sink] section is invalid (start-up)
├── SchemaError                the database is not at the migrations' head revision
└── DatabaseUnavailableError   the database cannot be written now (down, restarting, or
                               refusing even an anomaly row): the consumer pauses its
                               partitions and retries; ``error`` names the driver's error
"""

from __future__ import annotations


class SinkError(Exception):
    """Base of every sink error."""


class SinkConfigError(SinkError, ValueError):
    """The configuration file's ``[database]``, ``[kafka]`` or ``[sink]`` section is invalid."""


class SchemaError(SinkError):
    """The database is not at the migrations' head revision."""


class DatabaseUnavailableError(SinkError):
    """The database cannot be reached or written; ``error`` is the driver error's class name."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the database cannot be written now ({error})")
        self.error = error
