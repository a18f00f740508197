"""The command line's own exceptions (the services' are ``gateway.errors.GatewayError``,
``stream.errors.StreamError`` and ``sinks.errors.SinkError``; ``paynotify`` catches these four
roots and prints one line). Messages never carry a secret.

    PaynotifyError
    ├── BrokerError         the local broker could not be built, started or reached
    ├── TopicError          a topic has the wrong partition count, or could not be created
    ├── StackError          a part of the stack did not start
    ├── OrderPublishError   the broker did not acknowledge every order
    ├── UnknownOrderError   nothing is on record for an order number asked for
    ├── ReconcileError      reconciliation cannot run (no account configures it), or a round
    │                       could not read the orders or publish what it proved
    ├── ConsoleConfigError  the ``[console]`` section is missing or wrong (a short token, ...)
    ├── ContainerError      a container cannot start: no Docker engine, an image not built, or
    │                       a service in it did not answer (``paynotify.testing``)
    └── SimulationError     ``paynotify simulate`` cannot run as asked
        ├── PlanError       the options cannot make a plan (no account, a ratio out of range)
        └── SigningKeyError a signing key is missing, unreadable, or not the account's
"""

from __future__ import annotations


class PaynotifyError(Exception):
    """Base of every error of the command line and its local stack."""


class BrokerError(PaynotifyError):
    """The local broker could not be built, started or reached."""


class TopicError(PaynotifyError):
    """A topic exists with the wrong partition count, or could not be created."""


class UnknownOrderError(PaynotifyError):
    """Nothing at all (order, notification, event, anomaly) is on record for an order number."""


class ConsoleConfigError(PaynotifyError):
    """The ``[console]`` section is missing or wrong; the message never quotes the token."""


class StackError(PaynotifyError):
    """A part of the stack did not start."""


class ContainerError(PaynotifyError):
    """A container cannot start: no Docker engine, an image not built, or it did not answer."""


class OrderPublishError(PaynotifyError):
    """The broker did not acknowledge every order."""


class ReconcileError(PaynotifyError):
    """Reconciliation cannot run, or one round could not read the orders or publish."""


class SimulationError(PaynotifyError):
    """``paynotify simulate`` cannot run with these options or keys."""


class PlanError(SimulationError, ValueError):
    """The options cannot make a plan (no account, a ratio out of range, ...)."""


class SigningKeyError(SimulationError, ValueError):
    """A signing key is missing, unreadable, or does not match the account's configured keys."""
