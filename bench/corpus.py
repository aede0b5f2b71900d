"""Real text for the benchmarks: this Python installation's own sources, no file repeated."""

from __future__ import annotations

import sysconfig
from pathlib import Path


def real_text(mb: int) -> bytes:
    """About ``mb`` MB of the stdlib's .py files, concatenated, cut after a line."""
    out, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        data = path.read_bytes()
        out.append(data)
        size += len(data)
        if size >= mb << 20:
            break
    return b"".join(out)[: mb << 20].rsplit(b"\n", 1)[0] + b"\n"
