"""Load the official (and reference-computed) test vectors kept under tests/fixtures/providers/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parent.parent / "fixtures" / "providers"


def load(provider: str) -> dict[str, Any]:
    """Return ``tests/fixtures/providers/<provider>/vectors.json``."""
    data: dict[str, Any] = json.loads((FOLDER / provider / "vectors.json").read_text("utf-8"))
    return data
