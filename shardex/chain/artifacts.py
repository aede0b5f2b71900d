"""Committed ABI and bytecode of the deployable contracts (see deploy/compile.py)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

ABI_DIR = Path(__file__).resolve().parent.parent / "abi"


@cache
def load_artifact(name: str) -> dict:
    """Artifact of contract ``name`` (``JobMarket`` or ``WorkerPool``)."""
    return json.loads((ABI_DIR / f"{name}.json").read_text(encoding="utf-8"))


def abi(name: str) -> list[dict]:
    return load_artifact(name)["abi"]
