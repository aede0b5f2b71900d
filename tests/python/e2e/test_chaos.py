"""Chaos: jobs in flight while workers and the gateway are SIGKILLed and restarted,
Anvil is restarted from its state file and every chain connection is cut; then
every job has ended, its result is right, every wei is where it belongs, no
honest worker lost stake, and the gateway's index equals a rebuild.

Two rounds of every fault here; ``python bench/chaos.py`` runs as many as asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shardex.chain import JobState
from tests.python.e2e.chaos import FAULTS, Chaos
from tests.python.e2e.conftest import real_text

pytestmark = pytest.mark.e2e


def test_jobs_survive_killed_workers_gateway_chain_restarts_and_cut_connections(tmp_path: Path) -> None:
    chaos = Chaos(tmp_path / "home", workers=4, seed=16)
    try:
        text = real_text(1_200_000)
        chaos.submit([text[i * 300_000:(i + 1) * 300_000] for i in range(4)])
        survived = chaos.run(rounds=2)
        assert chaos.injected == {kind: 2 for kind in FAULTS}
        assert chaos.casualties == [] and survived == 2 * len(FAULTS)  # no process died unasked

        states = chaos.wait_ended(timeout=600)
        # Every fault was brief and every worker honest: nothing is a reason for a job to fail.
        assert set(states.values()) == {JobState.COMPLETED}, chaos.tails()
        assert all(chaos.results_match().values())
        # A nonce taken behind a worker's back is named for what it is (another process on its key).
        assert chaos.nonce_clashes_reported() >= 1, chaos.tails()
        chaos.wind_down()
        audit = chaos.audit()
        assert audit["jobs_unaccounted_wei"] == 0 and audit["owed_wei"] == 0, audit  # escrow = paid + refunded
        assert audit["market_balance_minus_credits_wei"] == 0, audit  # the market holds exactly what it owes
        assert audit["pool_balance_minus_stakes_wei"] == 0, audit
        assert audit["slashed_assignments"] == 0 and audit["burned_wei"] == 0, (audit, chaos.tails())
        assert audit["settled_assignments"] >= 4 * 6 * 2  # 4 jobs x 6 tasks x margin 2, each paid
        assert chaos.index_equals_rebuild(tmp_path)
    finally:
        chaos.close()
