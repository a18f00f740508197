"""Run the seed article's Go handler (``bench/peers/seed-gin``) as a peer to measure.

``SeedPeer`` builds the Go binary (cached under ``$PAYNOTIFY_CACHE``, keyed by the sources; Go
itself is fetched by ``go_toolchain`` when no new enough one is installed), starts
a private Redis (Debian's ``redis-server``, persistence off) and a private PostgreSQL
(``tests.support.postgres.LocalPostgres``), creates the ``orders`` and ``payment_effects`` tables
and serves the handler on a free port. Its hooks inject faults: ``kill_server`` (kill -9),
``serve`` (restart, optionally with a slow database), ``stop_redis``/``start_redis`` and
``stop_postgres``/``start_postgres``.

``python -m tests.support.seed_peer.gin`` runs the scenarios of ``scenarios`` against it and
prints what the seed answered, paid, lost and duplicated.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psycopg

from paynotify.broker import cache_dir, free_port
from tests.support.apt import AptUnavailable, apt_install
from tests.support.postgres import LocalPostgres
from tests.support.seed_peer.go_toolchain import ToolchainUnavailable, ensure_go, log

SOURCES = Path(__file__).resolve().parents[3] / "bench" / "peers" / "seed-gin"
NOTIFY_PATH = "/notify/alipay"
SCHEMA = """
CREATE TABLE orders (
    out_trade_no text PRIMARY KEY,
    amount_minor bigint NOT NULL,
    status text NOT NULL DEFAULT 'unpaid',
    paid_at timestamptz
);
-- Instrumentation, not the article's: one row per business effect the handler set off.
CREATE TABLE payment_effects (
    id bigserial PRIMARY KEY,
    out_trade_no text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""


class PeerUnavailable(RuntimeError):
    """Go or redis-server could not be found or installed, or the peer did not start."""


def build() -> Path:
    """Build the peer once per version of its sources and return the binary.

    Raises:
        PeerUnavailable: no Go toolchain, or ``go build`` failed.
    """
    digest = hashlib.sha256()
    for path in [*sorted(SOURCES.glob("*.go")), SOURCES / "go.mod", SOURCES / "go.sum"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    binary = cache_dir() / "seed-gin" / digest.hexdigest()[:16] / "seed-gin"
    if binary.is_file():
        return binary
    try:
        go = ensure_go(SOURCES / "go.mod")
    except ToolchainUnavailable as exc:
        raise PeerUnavailable(str(exc)) from exc
    log(f"building the peer with {go}")
    done = subprocess.run(
        [str(go), "build", "-o", str(binary), "."],
        cwd=SOURCES,
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "PATH": f"{go.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "GOTOOLCHAIN": "local",
        },
    )
    if done.returncode != 0:
        raise PeerUnavailable(f"go build failed:\n{done.stderr[-3000:]}")
    return binary


def install_redis() -> Path:
    """Return ``redis-server``, installed from Debian's packages when missing (root only).

    Raises:
        PeerUnavailable: not installed and not installable here.
    """
    found = shutil.which("redis-server")
    if found is not None:
        return Path(found)
    try:
        apt_install("redis-server")
    except AptUnavailable as exc:
        raise PeerUnavailable(str(exc)) from exc
    found = shutil.which("redis-server")
    if found is None:
        raise PeerUnavailable("redis-server installed, but not found on PATH")
    return Path(found)


def wait_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0
) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections.

    Raises:
        PeerUnavailable: the process exited or the port stayed closed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PeerUnavailable(
                f"{process.args!r} exited:\n{log.read_text(errors='replace')[-2000:]}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise PeerUnavailable(f"nothing listens on port {port} after {timeout}s")


@dataclass
class Process:
    """One child process with its output in a log file."""

    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_port(port, self.process, self.log)

    def stop(self, kill: bool = False) -> None:
        """Terminate (or kill -9) the process and reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Counts:
    """What the database says: which orders are paid, how many effects each order set off."""

    paid: set[str]
    effects: dict[str, int]


@dataclass
class SeedPeer:
    """The seed's handler with its own Redis and PostgreSQL; a context manager."""

    public_key: Path
    db_delay: float = 0.0
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="paynotify-seed-")))
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    postgres: LocalPostgres | None = None
    server: Process | None = None
    redis: Process | None = None
    success_answer: str = "200 SUCCESS"  # what the handler answers when it takes a notification

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{NOTIFY_PATH}"

    @property
    def dsn(self) -> str:
        assert self.postgres is not None
        return f"postgres://paynotify@127.0.0.1:{self.postgres.port}/paynotify?sslmode=disable"

    def __enter__(self) -> SeedPeer:
        try:
            binary = build()
            self.redis = Process(
                [
                    str(install_redis()),
                    *("--port", str(self.redis_port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
                ],
                self.folder / "redis.log",
            )
            self.start_redis()
            self.postgres = LocalPostgres()
            self.postgres.init()
            with self.connect() as conn:
                conn.execute(SCHEMA)
            self.server = Process([str(binary)], self.folder / "seed-gin.log")
            self.serve(self.db_delay)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything and delete the folder."""
        for process in (self.server, self.redis):
            if process is not None:
                process.stop(kill=True)
        if self.postgres is not None:
            self.postgres.destroy()
        shutil.rmtree(self.folder, ignore_errors=True)

    def serve(self, db_delay: float | None = None) -> None:
        """(Re)start the Go server, with ``db_delay`` seconds of database sleep before updates."""
        assert self.server is not None
        self.server.stop()
        self.db_delay = self.db_delay if db_delay is None else db_delay
        self.server.args[1:] = [
            *("-listen", f"127.0.0.1:{self.port}", "-dsn", self.dsn),
            *("-redis", f"127.0.0.1:{self.redis_port}"),
            *("-alipay-public-key", str(self.public_key), "-db-delay", f"{self.db_delay}s"),
        ]
        self.server.start(self.port)

    def kill_server(self) -> None:
        """kill -9 the Go server."""
        assert self.server is not None
        self.server.stop(kill=True)

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def start_redis(self) -> None:
        assert self.redis is not None
        self.redis.start(self.redis_port)

    def stop_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop("fast")

    def start_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.start()

    def redis_exists(self, key: str) -> bool:
        """Return whether ``key`` exists in the peer's Redis."""
        command = f"*2\r\n$6\r\nEXISTS\r\n${len(key.encode())}\r\n{key}\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as sock:
            sock.sendall(command)
            return sock.recv(64).startswith(b":1")

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """Open an autocommit connection to the peer's database."""
        assert self.postgres is not None
        return self.postgres.connect()

    def add_orders(self, orders: list[tuple[str, int]]) -> None:
        """Insert unpaid orders (out_trade_no, amount in minor units)."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO orders (out_trade_no, amount_minor) VALUES (%s, %s)", orders
            )

    def counts(self) -> Counts:
        """Return the paid orders and the effects per order."""
        with self.connect() as conn:
            paid = conn.execute("SELECT out_trade_no FROM orders WHERE status = 'paid'")
            effects = conn.execute(
                "SELECT out_trade_no, count(*) FROM payment_effects GROUP BY out_trade_no"
            )
            return Counts(
                paid={str(row[0]) for row in paid},
                effects={str(no): int(str(n)) for no, n in effects},
            )


def main(argv: list[str] | None = None) -> int:
    """Run every scenario against a fresh peer and print the measurements."""
    from paynotify.demo import write_key_pair
    from tests.support.seed_peer import scenarios as seed_scenarios
    from tests.support.seed_peer.scenarios import generate_key

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--flood-orders", type=int, default=20, help="orders under forged flood")
    args = parser.parse_args(argv)
    key = generate_key()
    with tempfile.TemporaryDirectory(prefix="paynotify-seed-keys-") as keys:
        _, public = write_key_pair(key, Path(keys))
        with SeedPeer(public) as peer:
            for result in seed_scenarios.run_all(peer, key, flood_orders=args.flood_orders):
                print(result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
