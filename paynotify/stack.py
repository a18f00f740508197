"""``paynotify up``: the whole local stack in the foreground — a local broker when nothing
answers at a loopback ``bootstrap_servers``, the topics, the migrations, then the gateway, a
stream worker, the database sink and, when an account configures it, the reconciler as child
processes, and the operators' console when the configuration has a ``[console]`` section, until
interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.settings import GatewaySettings
from paynotify.broker import LocalBroker, answers, is_loopback
from paynotify.console.settings import ConsoleSettings
from paynotify.errors import StackError
from paynotify.topics import ensure_topics
from sinks.schema import create_db_engine, upgrade
from sinks.settings import SinkSettings
from stream.records import ALL_TOPICS

SERVICES = ("gateway", "stream", "sink")
RECONCILE = "reconcile"  # started only when an account configures reconciliation
CONSOLE = "console"  # started when the configuration has a [console] section
STOP_ORDER = (CONSOLE, "gateway", RECONCILE, "stream", "sink")  # what produces stops first


@dataclass
class Stack:
    config: Path
    gateway: GatewaySettings
    sink: SinkSettings
    services: tuple[str, ...] = SERVICES
    log_dir: Path | None = None
    broker: LocalBroker | None = None
    console: ConsoleSettings | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        """Start what is needed, in order, and return once the gateway answers."""
        self._start_broker()
        created = ensure_topics(
            self.gateway.bootstrap_servers,
            [self.gateway.topic_prefix + t for t in ALL_TOPICS],
            self.gateway.partitions,
        )
        if created:
            print(f"paynotify: created topics {', '.join(created)}", flush=True)
        if "sink" in self.services:
            engine = create_db_engine(self.sink.database_url)
            print(f"paynotify: database at revision {upgrade(engine)}", flush=True)
            engine.dispose()
        for name in self.services:
            self.children[name] = self._spawn(name)
        if "gateway" in self.services:
            self._wait_healthz("gateway", f"http://{self.gateway.host}:{self.gateway.port}")
        if self.console is not None and CONSOLE in self.services:
            self._wait_healthz(CONSOLE, f"http://{self.console.host}:{self.console.port}")
            print(
                f"paynotify: console at http://{self.console.host}:{self.console.port}/", flush=True
            )

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "paynotify.cli", "--config", str(self.config), name]
        if self.log_dir is None:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _start_broker(self) -> None:
        servers = self.gateway.bootstrap_servers
        if answers(servers):
            return
        if not is_loopback(servers):
            raise StackError(f"no Kafka broker answers at {servers}")
        port = int(servers.split(",")[0].rpartition(":")[2])
        self.broker = LocalBroker(self.config.parent.resolve() / "var" / "kafka", port=port)
        seconds = self.broker.start()
        print(
            f"paynotify: local Kafka {self.broker.version} ready at {servers} in {seconds:.1f}s",
            flush=True,
        )

    def _wait_healthz(self, name: str, base: str, timeout: float = 60.0) -> None:
        url = f"{base}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StackError(f"the {name} did not answer /healthz in time")

    def check_children(self) -> None:
        """Raise if a service has exited."""
        for name, child in self.children.items():
            if child.poll() is not None:
                raise StackError(f"the {name} service exited with code {child.returncode}")

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM or until a service exits."""
        stop = False

        def on_signal(_signum: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop:
            self.check_children()
            time.sleep(0.3)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the console, the services (gateway and reconciler first, so nothing new
        arrives), then the broker."""
        for name in STOP_ORDER:
            child = self.children.get(name)
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if self.broker is not None:
            self.broker.stop()


def services_from(
    only: str | None, *, reconcile: bool = False, console: bool = False
) -> tuple[str, ...]:
    """Parse ``--only gateway,stream,sink,reconcile,console``; without it, every service, the
    reconciler when ``reconcile`` (some account configures it) and the console when ``console``
    (the configuration has a ``[console]`` section).

    Raises:
        StackError: an unknown service name, or the reconciler with nothing to reconcile.
    """
    known = (*SERVICES, RECONCILE, CONSOLE)
    if not only:
        return (*SERVICES, *((RECONCILE,) if reconcile else ()), *((CONSOLE,) if console else ()))
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    if RECONCILE in names and not reconcile:
        raise StackError("reconcile: no account configures reconciliation")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackError(f"unknown service {', '.join(unknown)}; choose from {', '.join(known)}")
    return names
