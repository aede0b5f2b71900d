"""Gas per settled task-replica and settlement throughput on a real Anvil.

    python bench/gas.py [--tasks 20] [--throughput-tasks 150]

Part 1 — gas. For replication r = 1, 3, 5 (quorum r//2+1) a map-only job of
``--tasks`` tasks runs claim → commit → reveal → collect, once with one task
per transaction ("unbatched") and once with every task in one transaction per
worker ("batched"). Reported per task-replica: gas of each phase (settlement
happens inside the reveal that reaches quorum; ``collect`` is the pull-payment
resolution that credits rewards and unlocks collateral), the 21k base cost of
each transaction included. Baseline: the issue's aim of 60k gas per
task-replica, batched.

Part 2 — throughput. Settled tasks per second for r = 1 when each transaction
waits for its receipt before the next is sent, versus the client keeping every
transaction of a phase in flight (pipelined nonces). Measured twice: on Anvil
mining each transaction as it arrives (automine: the client's own speed is the
limit), and on Anvil mining a block every second (like a real chain, where a
transaction that waits for its receipt waits for a block).

Ends with one JSON line holding all figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.deploy import deploy  # noqa: E402
from shardex.chain import ChainClient, JobParams, commitment_of, new_salt  # noqa: E402
from deploy.devnet import Anvil  # noqa: E402
from shardex.devnet import dev_accounts  # noqa: E402

ETH = 10**18
AIM = 60_000
PHASES = ("claim", "commit", "reveal", "collect")


def job_params(tasks: int, r: int) -> JobParams:
    return JobParams(spec_digest=b"\x01" * 32, map_tasks=tasks, reduce_tasks=0, replication=r, quorum=r // 2 + 1,
                     reward_per_replica=10**12, collateral=10**13, lease_duration=3600, reveal_window=3600,
                     job_timeout=86_400)


async def setup(rpc_url: str, workers: int) -> tuple:
    accounts = dev_accounts(workers + 1)
    deployment = await deploy(rpc_url, accounts[0], unbonding_delay=3600)
    requester = ChainClient(rpc_url, deployment, accounts[0])
    clients = [ChainClient(rpc_url, deployment, a) for a in accounts[1:]]
    await asyncio.gather(*(c.stake(100 * ETH) for c in clients))
    return requester, clients


async def gas_run(requester: ChainClient, workers: list[ChainClient], tasks: int, r: int, batched: bool) -> dict:
    p = job_params(tasks, r)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    ids = list(range(tasks))
    groups = [ids] if batched else [[t] for t in ids]
    used = dict.fromkeys(PHASES, 0)
    salts = {(w.address, t): new_salt() for w in workers[:r] for t in ids}
    digest = {t: hashlib.sha256(b"output %d" % t).digest() for t in ids}
    for w in workers[:r]:
        for g in groups:
            used["claim"] += (await w.claim(job_id, g)).gas_used
    for w in workers[:r]:
        for g in groups:
            cs = [commitment_of(digest[t], salts[(w.address, t)], w.address, job_id, t) for t in g]
            used["commit"] += (await w.commit(job_id, g, cs)).gas_used
    for w in workers[:r]:
        for g in groups:
            receipt = await w.reveal(job_id, g, [digest[t] for t in g], [salts[(w.address, t)] for t in g])
            used["reveal"] += receipt.gas_used
    for w in workers[:r]:
        for g in groups:
            used["collect"] += (await w.collect(job_id, g)).gas_used
    job = await requester.job(job_id)
    assert job.owed == 0 and job.paid == p.escrow, f"every replica should have been paid: {job}"
    per = {k: v / (tasks * r) for k, v in used.items()}
    per["total"] = sum(per[k] for k in PHASES)
    return per


async def throughput_run(requester: ChainClient, worker: ChainClient, tasks: int, pipelined: bool) -> float:
    """Settled tasks/s, one worker, r = q = 1, one task per transaction."""
    p = job_params(tasks, 1)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    salts = [new_salt() for _ in range(tasks)]
    digests = [hashlib.sha256(b"output %d" % t).digest() for t in range(tasks)]
    # Fixed gas limits: estimation is a dry run per transaction, and a dependent
    # transaction cannot be estimated before its predecessor is mined.
    calls = [
        [worker.claim(job_id, [t], gas=150_000) for t in range(tasks)],
        [worker.commit(job_id, [t], [commitment_of(digests[t], salts[t], worker.address, job_id, t)], gas=150_000)
         for t in range(tasks)],
        [worker.reveal(job_id, [t], [digests[t]], [salts[t]], gas=200_000) for t in range(tasks)],
    ]
    start = time.perf_counter()
    if pipelined:
        # Every transaction of every phase in flight at once: nonce order is
        # execution order, so a commit can ride in the same block as its claim.
        pending = [await c.send() for phase in calls for c in phase]
        await asyncio.gather(*(pd.receipt() for pd in pending))
    else:
        for phase in calls:
            for c in phase:
                await c
    elapsed = time.perf_counter() - start
    job = await requester.job(job_id)
    assert job.settled_tasks == tasks, f"only {job.settled_tasks}/{tasks} settled"
    return tasks / elapsed


async def main_async(args: argparse.Namespace) -> dict:
    anvil = Anvil.start()
    try:
        requester, workers = await setup(anvil.rpc_url, 5)
        results: dict = {"gas": {}, "throughput": {}}
        print(f"Gas per task-replica, {args.tasks} tasks per job (aim: batched total <= {AIM:,})")
        print(f"{'r':>2} {'mode':<10}" + "".join(f"{k:>10}" for k in (*PHASES, "total")) + f"{'vs aim':>9}")
        for r in (1, 3, 5):
            for batched in (False, True):
                per = await gas_run(requester, workers, args.tasks, r, batched)
                mode = "batched" if batched else "unbatched"
                results["gas"][f"r{r}_{mode}"] = {k: round(v) for k, v in per.items()}
                print(f"{r:>2} {mode:<10}" + "".join(f"{per[k]:>10,.0f}" for k in (*PHASES, "total"))
                      + f"{per['total'] / AIM:>8.2f}x")
        print()
        n = args.throughput_tasks
        waited = await throughput_run(requester, workers[0], n, pipelined=False)
        piped = await throughput_run(requester, workers[0], n, pipelined=True)
        results["throughput"]["automine"] = {"tasks": n, "wait_each_receipt_tasks_per_s": round(waited, 1),
                                             "pipelined_tasks_per_s": round(piped, 1),
                                             "speedup": round(piped / waited, 2)}
        print(f"Settled tasks/s on Anvil, automine (r=1, {n} tasks, 3 tx per task):")
        print(f"  waiting for each receipt: {waited:8.1f} tasks/s")
        print(f"  pipelined nonces:         {piped:8.1f} tasks/s   ({piped / waited:.2f}x)")
        for c in (requester, *workers):
            await c.aclose()
    finally:
        anvil.stop()

    anvil = Anvil.start(block_time=1)
    try:
        requester, workers = await setup(anvil.rpc_url, 1)
        n = args.block_time_tasks
        waited = await throughput_run(requester, workers[0], n, pipelined=False)
        piped_n = n * 25
        piped = await throughput_run(requester, workers[0], piped_n, pipelined=True)
        results["throughput"]["block_time_1s"] = {"tasks_waited": n, "tasks_pipelined": piped_n,
                                                  "wait_each_receipt_tasks_per_s": round(waited, 2),
                                                  "pipelined_tasks_per_s": round(piped, 2),
                                                  "speedup": round(piped / waited, 1)}
        print("Settled tasks/s on Anvil with 1 s blocks (r=1):")
        print(f"  waiting for each receipt: {waited:8.2f} tasks/s ({n} tasks)")
        print(f"  pipelined nonces:         {piped:8.2f} tasks/s ({piped_n} tasks, {piped / waited:.0f}x)")
        for c in (requester, *workers):
            await c.aclose()
    finally:
        anvil.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--throughput-tasks", type=int, default=150)
    parser.add_argument("--block-time-tasks", type=int, default=4,
                        help="tasks for the 1 s block-time run (waiting costs ~3 blocks per task)")
    results = asyncio.run(main_async(parser.parse_args()))
    batched = {k: v["total"] for k, v in results["gas"].items() if k.endswith("_batched")}
    results["aim_gas_per_task_replica"] = AIM
    results["batched_total_vs_aim"] = {k: round(v / AIM, 3) for k, v in batched.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
