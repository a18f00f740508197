"""``paynotify console``: serve the operators' page and JSON API on ``[console] listen``."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gateway.config import config_path
from paynotify.console.settings import load_console_settings
from sinks.reader import DatabaseReader

log = logging.getLogger("paynotify.console")


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``console`` to the subcommands."""
    parser = sub.add_parser("console", help="serve the operators' page and JSON API")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the settings and the database, then serve until interrupted.

    Raises:
        ConsoleConfigError: the ``[console]`` section is missing or wrong.
        SinkError: the database URL is invalid, the database does not answer or lacks a migration.
    """
    import uvicorn

    from paynotify.console.app import create_app

    settings = load_console_settings(config_path(args.config))
    reader = DatabaseReader(settings.database_url)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its "Context impl" lines: noise here
    try:
        reader.check()
        log.info("console on http://%s:%d/ (bearer token required)", settings.host, settings.port)
        uvicorn.run(
            create_app(settings, reader),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        reader.close()
    return 0
