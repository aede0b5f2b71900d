"""`make demo` runs the product; its own accounting check doubles as a smoke test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_a_job_and_every_wei_is_accounted_for() -> None:
    proc = subprocess.run([sys.executable, "-m", "shardex_cli", "demo", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # narration goes to stderr with --json
    # Margin 4 (the default error target) x 8 tasks, plus 2 escalation seats per task + 4, at 0.001 ETH a seat.
    assert summary["paid"] + summary["refunded"] == summary["escrow"] == (4 * 8 + 2 * 8 + 4) * 10**15
    workers = [a for role, a in summary["accounts"].items() if role.startswith("worker")]
    assert sum(w["earned"] for w in workers) == summary["paid"]
    assert all(w["slashed"] == 0 and w["net_incl_gas"] > 0 for w in workers)  # honest workers come out ahead


def test_protocol_tour_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "shardex_cli", "demo", "--protocol", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["paid"] + summary["refunded"] == summary["escrow"]
