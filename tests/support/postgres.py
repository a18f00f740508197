"""A throw-away PostgreSQL server from Debian's packages, for the integration tests.

The cluster lives in a temporary folder, listens on a free loopback port, and is owned by a
non-root user when the tests run as root (the server refuses to run as root). When no server
binaries are installed and the tests run as root, they are installed with apt-get.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from paynotify.broker import free_port
from tests.support.apt import AptUnavailable, apt_install


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries could be found or installed."""


def find_bindir() -> Path | None:
    """Return the folder holding initdb/pg_ctl of the newest installed PostgreSQL, or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def install() -> Path:
    """Install Debian's PostgreSQL server when missing (root only); return its bin folder.

    Raises:
        PostgresUnavailable: not root, no apt-get, or the installation failed.
    """
    found = find_bindir()
    if found is not None:
        return found
    try:
        apt_install("postgresql")
    except AptUnavailable as exc:
        raise PostgresUnavailable(str(exc)) from exc
    found = find_bindir()
    if found is None:
        raise PostgresUnavailable("postgresql installed, but initdb was not found")
    return found


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresUnavailable("running as root and no non-root user to own the cluster")


@dataclass
class LocalPostgres:
    """One cluster in a temporary folder; ``start``/``stop`` may be called repeatedly."""

    bindir: Path = field(default_factory=install)
    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="paynotify-pg-")))
    user: str | None = field(default_factory=_server_user)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "paynotify") -> str:
        return f"postgresql+psycopg://paynotify@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")

    def connect(self, database: str = "paynotify") -> psycopg.Connection[tuple[object, ...]]:
        """Open an autocommit connection as the ``paynotify`` user."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="paynotify", dbname=database, autocommit=True
        )

    def init(self) -> None:
        """Create the cluster and the ``paynotify`` database."""
        if self.user is not None:
            shutil.chown(self.folder, self.user)
            self.folder.chmod(0o700)
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "paynotify",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{done.stderr[-2000:]}")
        self.start()
        done = subprocess.run(
            [
                str(self.bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "paynotify",
                "paynotify",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"createdb failed:\n{done.stderr[-2000:]}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode != 0:
            log = (self.folder / "server.log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(f"pg_ctl start failed:\n{done.stderr}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode`` fast or immediate)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and delete the cluster."""
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
