"""paynotify's images in containers: what ``./dev images`` (compose/images) builds, and the
starting of those images with testcontainers for ``paynotify.testing`` and the integration tests.

Every container uses the host's network (``network_mode=host``): its service listens on
127.0.0.1 at a port given here, so every connection stays on the loopback interface and two test
runs on one machine only need different ports. Nothing is pulled from a registry:
testcontainers' reaper (Ryuk, itself an image from a registry) is turned off, so whoever starts a
container stops it (``stop``), also when it failed to become ready.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from paynotify.broker import answers
from paynotify.errors import ContainerError

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

TAG = "local"
PAYNOTIFY_IMAGE = f"paynotify:{TAG}"
KAFKA_IMAGE = f"paynotify-kafka:{TAG}"
POSTGRES_IMAGE = f"paynotify-postgres:{TAG}"
BUILD_HINT = "run ./dev images (compose/images) to build them"


def docker_answers() -> bool:
    """Return whether a Docker engine answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def missing_images(*images: str) -> list[str]:
    """Return those of ``images`` that the Docker engine does not have."""
    return [
        image
        for image in images
        if subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, check=False, timeout=20
        ).returncode
        != 0
    ]


def require_images(*images: str) -> None:
    """Check that a Docker engine answers and has every image.

    Raises:
        ContainerError: no engine, or an image is missing.
    """
    if not docker_answers():
        raise ContainerError(f"no Docker engine answers `docker info`; {BUILD_HINT}")
    missing = missing_images(*images)
    if missing:
        raise ContainerError(f"missing images {', '.join(missing)}; {BUILD_HINT}")


def container(
    image: str,
    env: Mapping[str, str],
    *,
    command: list[str] | None = None,
    volumes: Mapping[Path, str] | None = None,
) -> DockerContainer:
    """Return a container of ``image`` on the host's network (not started yet)."""
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True  # Ryuk is an image from a registry
    made = DockerContainer(image).with_kwargs(network_mode="host").with_envs(**env)
    for host, inside in (volumes or {}).items():
        made = made.with_volume_mapping(str(host), inside, "ro")
    return made.with_command(command) if command else made


def start(made: DockerContainer, ready: Callable[[], bool], what: str, timeout: float) -> None:
    """Start a container and wait until ``ready()``; on failure stop it again.

    Raises:
        ContainerError: the container exited, or was not ready within ``timeout`` seconds.
    """
    made.start()
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            made.reload()
            if made.status not in ("created", "running"):
                raise ContainerError(f"{what} exited:\n{logs(made)}")
            if time.monotonic() > deadline:
                raise ContainerError(f"{what} was not ready within {timeout:.0f}s:\n{logs(made)}")
            time.sleep(0.3)
    except BaseException:
        stop(made)
        raise


def logs(made: DockerContainer, lines: int = 40) -> str:
    """Return the end of a container's output."""
    try:
        out, err = made.get_logs()
    except Exception as exc:  # the container may be gone already
        return f"(no logs: {type(exc).__name__})"
    text = (out + err).decode(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def stop(made: DockerContainer) -> None:
    """Remove a container and its anonymous volumes; a container already gone is fine."""
    try:
        made.stop()
    except Exception as exc:  # removed already, or the engine went away: nothing left to do
        print(f"paynotify: stopping a container: {type(exc).__name__}", flush=True)


def start_kafka(port: int, controller_port: int, timeout: float = 120.0) -> DockerContainer:
    """Start the Kafka image on 127.0.0.1:``port`` and wait until it answers.

    Raises:
        ContainerError: the broker exited or did not answer in time.
    """
    made = container(
        KAFKA_IMAGE, {"KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller_port)}
    )
    bootstrap = f"127.0.0.1:{port}"
    start(made, lambda: answers(bootstrap, timeout=1.0), f"Kafka ({KAFKA_IMAGE})", timeout)
    return made


def start_postgres(port: int, timeout: float = 60.0) -> tuple[DockerContainer, str]:
    """Start the PostgreSQL image on 127.0.0.1:``port``; return it and its SQLAlchemy URL.

    Raises:
        ContainerError: the server exited or did not accept connections in time.
    """
    env = {
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": "paynotify",
        "POSTGRES_PASSWORD": "paynotify-test",
        "POSTGRES_FSYNC": "off",  # a throw-away test database
    }
    made = container(POSTGRES_IMAGE, env)
    url = f"postgresql+psycopg://paynotify:paynotify-test@127.0.0.1:{port}/paynotify"
    start(made, lambda: _accepts(url), f"PostgreSQL ({POSTGRES_IMAGE})", timeout)
    return made, url


def _accepts(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False
