"""Chaos, the long run: faults of every kind while jobs are in flight, then an audit.

    python bench/chaos.py [--rounds 10] [--workers 4] [--seed 0]

A devnet with its chain in a state file, a gateway, ``--workers`` worker
processes. Each round posts one more wordcount job (margin 2) through the
gateway, then injects every fault of tests/python/e2e/chaos.py once, in a
random order at random gaps: SIGKILL a worker and restart it, SIGKILL the
gateway and restart it, restart Anvil from its state file, cut every
connection to the chain, spend a worker's next nonce from another process.

Afterwards (every check is the issue's):
* every job completed or refunded, each completed result equal to a local
  word count;
* every wei accounted for: per job escrow == paid + refunded, the market holds
  exactly the credits it owes, the pool exactly its stakes plus burned;
* no honest worker lost stake (every worker here is honest);
* the gateway's index equals a rebuild from the chain.

Prints the faults injected and survived (a fault is survived when no process
the harness did not kill exits after it) and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shardex.chain import JobState  # noqa: E402
from tests.python.e2e.chaos import FAULTS, KILL_CHAIN, Chaos  # noqa: E402
from tests.python.e2e.conftest import real_text  # noqa: E402

JOB_BYTES = 300_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="rounds of every fault (one more job each)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kill-chain", action="store_true",
                    help="also SIGKILL Anvil each round (it loses up to 2 s of blocks: a reorg for everyone)")
    args = ap.parse_args()

    text = real_text(JOB_BYTES * args.rounds)
    with tempfile.TemporaryDirectory(prefix="shardex-chaos-") as tmp:
        started = time.monotonic()
        chaos = Chaos(Path(tmp) / "home", workers=args.workers, seed=args.seed)
        try:
            def post(n: int) -> None:
                piece = text[n * JOB_BYTES:(n + 1) * JOB_BYTES]
                chaos.submit([piece])
                print(f"round {n + 1}/{args.rounds}: job posted; faults so far {dict(chaos.injected)}", flush=True)

            faults = FAULTS + ((KILL_CHAIN,) if args.kill_chain else ())
            survived = chaos.run(args.rounds, each_round=post, faults=faults)
            states = chaos.wait_ended(timeout=900)
            correct = chaos.results_match()
            chaos.wind_down()
            audit = chaos.audit()
            index_ok = chaos.index_equals_rebuild(Path(tmp))
            clashes = chaos.nonce_clashes_reported()
        finally:
            chaos.close()
        wall = time.monotonic() - started

    injected = sum(chaos.injected.values())
    completed = sum(s is JobState.COMPLETED for s in states.values())
    refunded = len(states) - completed
    accounted = (audit["jobs_unaccounted_wei"] == 0
                 and audit["market_balance_minus_credits_wei"] == 0 and audit["pool_balance_minus_stakes_wei"] == 0)
    print(f"faults injected {injected} ({', '.join(f'{k} {n}' for k, n in chaos.injected.items())}), "
          f"survived {survived}; processes that died unasked: {len(chaos.casualties)}")
    for casualty in chaos.casualties:
        print("  casualty:", casualty)
    print(f"jobs {len(states)}: completed {completed} (results correct: {sum(correct.values())}), "
          f"ended otherwise and refunded {refunded}; posts the chain lost (kill-chain): {len(chaos.lost)}")
    print(f"every wei accounted for: {accounted}  {audit}")
    print(f"honest workers slashed: {audit['slashed_assignments']} assignments, {audit['burned_wei']} wei burned")
    print(f"nonce clashes named in worker logs: {clashes}")
    print(f"gateway index equals a rebuild: {index_ok}")
    print(f"wall time {wall:.1f} s")
    figures = {
        "faults_injected": injected, "faults_survived": survived, "faults_by_kind": dict(chaos.injected),
        "casualties": len(chaos.casualties), "jobs": len(states), "jobs_completed": completed,
        "jobs_refunded": refunded, "jobs_lost_with_their_blocks": len(chaos.lost), "results_correct": sum(correct.values()), "wei_accounted": accounted,
        "slashed_assignments": audit["slashed_assignments"], "burned_wei": audit["burned_wei"],
        "nonce_clashes_reported": clashes, "index_equals_rebuild": index_ok, "wall_s": round(wall, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
