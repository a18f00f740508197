"""The container tests run the images that ``./dev images`` builds; without a Docker engine or
those images they skip, or fail when ``CI`` is set (.ci/run builds the images first)."""

from __future__ import annotations

import os

import pytest

from paynotify.containers import KAFKA_IMAGE, PAYNOTIFY_IMAGE, POSTGRES_IMAGE, require_images
from paynotify.errors import ContainerError


@pytest.fixture(scope="session")
def images() -> None:
    """Check that the engine answers and has paynotify's three images."""
    try:
        require_images(PAYNOTIFY_IMAGE, KAFKA_IMAGE, POSTGRES_IMAGE)
    except ContainerError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the container tests must run when CI is set: {exc}")
        pytest.skip(str(exc))
