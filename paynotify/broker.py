"""A local Apache Kafka broker from Maven Central jars, no Docker: resolve the jars into a cache,
format a single-node KRaft (broker + controller) log directory, start the JVM on loopback and
return only when a client can list topics.

The Maven project, the broker configuration and its log4j2 configuration are in ``compose/kafka``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from paynotify.errors import BrokerError

# Not 4.4.0: killed between a transaction's "prepare commit" and its markers, a restarted single
# node of that version can drop the markers and leave the transaction open for ever
# (docs/reliability.md, "A broker kill that hung the stream"; bench/broker_kill_markers.py).
KAFKA_VERSION = os.environ.get("PAYNOTIFY_KAFKA_VERSION", "4.1.2")
KAFKA_PROJECT = Path(__file__).resolve().parents[1] / "compose" / "kafka"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def cache_dir() -> Path:
    """Return the folder kept across runs (jars): ``$PAYNOTIFY_CACHE`` or ``~/.cache/paynotify``."""
    return Path(os.environ.get("PAYNOTIFY_CACHE", Path.home() / ".cache" / "paynotify"))


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker's runtime classpath with Maven (once) and return the jar folder.

    Raises:
        BrokerError: Maven is missing or the resolution failed.
    """
    lib = cache_dir() / f"kafka-{version}" / "lib"
    marker = lib.parent / ".complete"
    if marker.is_file():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars; install it first")
    print(
        f"paynotify: fetching Apache Kafka {version} jars from Maven Central into {lib}", flush=True
    )
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(KAFKA_PROJECT / "pom.xml"),
        "package",
        f"-Dkafka.version={version}",
        f"-Dkafka.lib.dir={lib}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"mvn failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    marker.write_text(version)
    return lib


def is_loopback(bootstrap_servers: str) -> bool:
    """Return whether every bootstrap address is on this machine."""
    hosts = [hp.rpartition(":")[0] for hp in bootstrap_servers.split(",")]
    return all(h in LOOPBACK or h.startswith("127.") for h in hosts)


def answers(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    """Return whether a broker at ``bootstrap_servers`` answers a metadata request."""
    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError:
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalBroker:
    """One single-node KRaft broker whose files all live under ``data_dir``."""

    data_dir: Path
    port: int = 9092
    host: str = "127.0.0.1"
    heap: str = "512m"
    version: str = KAFKA_VERSION
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def start(self, timeout: float = 90.0) -> float:
        """Format (first time only), start the JVM, wait until it answers; return seconds taken.

        Raises:
            BrokerError: the JVM exited or did not answer within ``timeout``.
        """
        started = time.monotonic()
        if self.pid() is not None:
            raise BrokerError(f"a broker is already running from {self.data_dir}")
        lib = ensure_jars(self.version)
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17+ is needed to run the local Kafka broker")
        config = self._write_config()
        base = [java, *self._jvm_options(), "-cp", f"{lib}/*"]
        if not (self.data_dir / "kraft" / "meta.properties").is_file():
            self._format(base, config)
        with (self.data_dir / "logs" / "stdout.log").open("ab") as log:
            process = subprocess.Popen(
                [*base, "kafka.Kafka", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._process = process
        self.pid_file.write_text(str(process.pid))
        self._wait_ready(process, started + timeout)
        return time.monotonic() - started

    def _jvm_options(self) -> list[str]:
        return [
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={KAFKA_PROJECT / 'log4j2.properties'}",
        ]

    def _write_config(self) -> Path:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        controller_port = free_port()
        text = Template((KAFKA_PROJECT / "server.properties").read_text()).substitute(
            host=self.host,
            port=self.port,
            controller_port=controller_port,
            data_dir=self.data_dir / "kraft",
        )
        config = self.data_dir / "server.properties"
        config.write_text(text)
        return config

    def _format(self, base: list[str], config: Path) -> None:
        cluster = subprocess.run(
            [*base, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        done = subprocess.run(
            [*base, "kafka.tools.StorageTool", "format", "-g", "-t", cluster, "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(f"formatting the KRaft log failed:\n{done.stdout}{done.stderr}")

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the Kafka JVM exited ({process.returncode}):\n{self.log_tail()}"
                )
            if answers(self.bootstrap_servers, timeout=1.0):
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not answer in time:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the broker's output, for error messages."""
        path = self.data_dir / "logs" / "stdout.log"
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def pid(self) -> int | None:
        """Return the running broker's process id, or None."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM (controlled shutdown), then SIGKILL after ``timeout``."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._reap()
        self.pid_file.unlink(missing_ok=True)

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None

    def kill(self) -> None:
        """Kill the broker at once (``kill -9``), for fault tests."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self._reap()
        self.pid_file.unlink(missing_ok=True)

    def rss_bytes(self) -> int | None:
        """Return the JVM's resident memory, or None when it is not running."""
        pid = self.pid()
        if pid is None:
            return None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped = 0
    if reaped == pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        if state == "Z":
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m paynotify.broker start|stop|status [data_dir] [port]``."""
    args = argv if argv is not None else sys.argv[1:]
    if not args or args[0] not in ("start", "stop", "status"):
        print("usage: python -m paynotify.broker start|stop|status [DATA_DIR] [PORT]")
        return 2
    broker = LocalBroker(
        Path(args[1] if len(args) > 1 else "var/kafka").resolve(),
        port=int(args[2]) if len(args) > 2 else 9092,
    )
    if args[0] == "start":
        seconds = broker.start()
        print(f"kafka {broker.version} ready at {broker.bootstrap_servers} in {seconds:.1f}s")
    elif args[0] == "stop":
        broker.stop()
    else:
        print("running" if broker.pid() else "stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
