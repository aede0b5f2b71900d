"""bench/gpu_check.py runs unchanged everywhere: without a GPU it says so and exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.gpu import detect_backend

SCRIPT = Path(__file__).resolve().parents[4] / "bench" / "gpu_check.py"


@pytest.mark.skipif(detect_backend() is not None, reason="a GPU is present: the script exercises it instead")
def test_without_a_gpu_it_says_so_and_exits_zero() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "no NVIDIA GPU" in proc.stdout
    assert json.loads(proc.stdout.splitlines()[-1]) == {"gpu": False}
