"""Install Debian packages the integration tests need, when they run as root on a bare machine."""

from __future__ import annotations

import os
import shutil
import subprocess


class AptUnavailable(RuntimeError):
    """The package is missing and cannot be installed here."""


def apt_install(package: str) -> None:
    """Install ``package`` with apt-get (root only, no recommended extras).

    Raises:
        AptUnavailable: not root, no apt-get, or the installation failed.
    """
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AptUnavailable(f"{package} is not installed and cannot be installed here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AptUnavailable(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
