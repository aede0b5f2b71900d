"""Gas per settled task-replica (seat) and settlement throughput on a real Anvil.

    python bench/gas.py [--tasks 20] [--throughput-tasks 150] [--pool 5]

Protocol v2: a task's seats are drawn from a staked pool (``draw``, which
anyone may call and pays for), and a task settles when m drawn workers agree
(margin m; with no dissent, round 0 has exactly m seats). A "task-replica" is
one seat. The requester calls ``draw`` here.

Part 1 — gas. For margin m = 1, 3, 5 (keys ``r1``, ``r3``, ``r5``: r is now
the margin; each m from an (epsilon, adversary) pair computed with
``margin_for``: epsilon 1e-3, the SDK's default, and the largest adversary
share in whole percent that m covers, which is 0 for m = 1) a map-only job of
``--tasks`` tasks runs draw → commit → reveal with honest workers
from a pool of ``--pool`` staked workers, once with one task per transaction
("unbatched") and once with every task in one transaction ("batched": one
draw for all tasks, and each drawn worker commits and reveals all the tasks
it was drawn for in one transaction each). Reported per seat: gas of each
phase (``draw`` is the requester's, or any keeper's, cost of seating the
workers and locking their collateral; the task settles inside the first
reveal of its winning result, and each reveal of the winner credits its
reward and unlocks its collateral: an honest seat needs no ``collect``,
which only slashed or released seats call), the 21k base cost of each
transaction included. Baseline: the issue's aim of 60k gas per task-replica,
batched.

With a pool of 5 and m = 5 every worker sits on every task, so the draw
rejects many candidates (never the same worker twice on a task): its
``tries_per_seat`` (draw candidates tried per seat filled) shows that cost;
a large pool approaches 1 try per seat. With m = 1 the tasks are spread over
the pool, so "batched" commits are ~tasks / pool per transaction
(``seats_per_worker_tx``). A draw call that seats nobody reverts
(``JobMarketNothingToDraw``) and its retry would draw the same candidates: in
a pool of exactly m = 5, the 4 candidates a task's last open seat gets are all
already seated with probability (4/5)^4 = 41%, and when that happens to every
task of the call the draw must wait for a new epoch to re-arm the seed
(``stuck_draws``: such waits, gas-free as the call reverts in estimation). Re-arming calls (a new epoch began: after a stuck draw, or
because the devnet mines one block per transaction and 20 unbatched draws
outlast a 16-block epoch) are reported apart (``rearm_txs``, ``rearm_gas``)
and not counted in the per-seat draw figure.

Part 1b — batch size. For m = 1, 3 and 5, gas per seat with 1 (the
unbatched run), 16, 64 and 256 tasks per transaction (draws in chunks of at most 64 tasks:
a draw seats every worker of its tasks and must fit a block). Every run also
reports calldata per seat (raw, zlib-compressed, and EIP-2028 data gas),
because on an OP Stack or Arbitrum chain the L1 data fee is charged on
compressed calldata, and an example cost per seat in wei at stated example
prices (see ``l2_cost_wei``).

Part 2 — throughput. Settled tasks per second for m = 1 (adversary 0), one
worker in the pool, one task per transaction (draw, commit, reveal), when
each transaction waits for its receipt before the next is sent, versus
keeping every transaction of a phase in flight (pipelined nonces). The worker
learns its seats only once the draws are mined, so the pipelined run has one
barrier: the requester's draws in flight, then the worker's commits and
reveals in flight. The clock starts once the job is posted and includes
waiting for the seed block (drawDelay) and any re-drawn re-armed seeds.
Measured on Anvil mining each transaction as it arrives (automine: the
client's own speed is the limit), and on Anvil mining a block every second
(like a real chain, where a transaction that waits for its receipt waits for
a block).

Both throughput runs end with the batched case the issue's aim (500 replica
settlements/s) is about: 64 tasks per transaction, every transaction of a
phase in flight (``batched_pipelined_tasks_per_s``; with m = 1 a task is one
replica settlement).

Ends with one JSON line holding all figures: ``gas`` (per seat, by phase:
``draw`` replaces v1's ``claim``), ``draw`` (per run: draw transactions,
re-arms, tries per seat, seats per worker transaction, the (epsilon_ppm,
adversary_ppm) used), ``throughput``, ``aim_gas_per_task_replica`` and
``batched_total_vs_aim``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import zlib
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.deploy import deploy  # noqa: E402
from deploy.devnet import Anvil, rpc_call  # noqa: E402
from shardex.chain import ChainClient, JobParams, JobState, result_of, seal_of  # noqa: E402
from shardex.chain.errors import ChainError, JobMarketNothingToDraw  # noqa: E402
from shardex.chain.models import PPM, margin_for  # noqa: E402
from shardex.devnet import DEV_ACCOUNTS, dev_accounts  # noqa: E402

ETH = 10**18
AIM = 60_000
THROUGHPUT_AIM = 500  # replica settlements per second
PHASES = ("draw", "commit", "reveal")
MARGINS = (1, 3, 5)
EPSILON_PPM = 1_000  # the SDK's default epsilon, 1e-3
REWARD = 10**12
COLLATERAL = 10**13
MIN_STAKE = 10**15  # >= collateral and >= the pool's minimum stake
# Tasks per draw call in batched runs: a draw seats all the workers of its
# tasks, so 256 tasks at once would not fit in a 30M-gas block.
DRAW_CHUNK = 64
BATCH_SIZES = (1, 16, 64, 256)
# An example rollup price, to turn gas and calldata into wei: an OP Stack-like
# fee = L2 gas x L2 gas price + compressed calldata bytes x 16 x L1 base fee x
# scalar (post-Fjord chains estimate the compressed size with FastLZ; zlib -9
# stands in for it here). The prices are examples, not quotes.
L2_GAS_PRICE_WEI = 10**7  # 0.01 gwei
L1_BASE_FEE_WEI = 10 * 10**9  # 10 gwei
L1_FEE_SCALAR = 0.7


def l2_cost_wei(gas: float, compressed_bytes: float) -> int:
    return round(gas * L2_GAS_PRICE_WEI + compressed_bytes * 16 * L1_BASE_FEE_WEI * L1_FEE_SCALAR)


# Fixed gas limits for pipelined transactions: estimation is a dry run, and a
# dependent transaction cannot be estimated before its predecessor is mined.
GAS_DRAW, GAS_COMMIT, GAS_REVEAL = 400_000, 200_000, 250_000
GAS_DRAW_PER_TASK, GAS_COMMIT_PER_TASK, GAS_REVEAL_PER_TASK = 120_000, 60_000, 80_000
THROUGHPUT_CHUNK = 64


def error_target(m: int) -> tuple[int, int]:
    """(epsilon_ppm, adversary_ppm) giving margin ``m``: epsilon 1e-3 and the
    largest adversary share, in whole percent, that ``m`` agreeing workers cover."""
    shares = [f * PPM // 100 for f in range(50) if margin_for(EPSILON_PPM, f * PPM // 100) == m]
    if not shares:
        raise SystemExit(f"no adversary share gives margin {m} at epsilon {EPSILON_PPM / PPM:g}")
    return EPSILON_PPM, max(shares)


def job_params(tasks: int, m: int, resource_class: int = 0) -> JobParams:
    epsilon_ppm, adversary_ppm = error_target(m)
    p = JobParams(spec_digest=b"\x01" * 32, map_tasks=tasks, reduce_tasks=0, epsilon_ppm=epsilon_ppm,
                  adversary_ppm=adversary_ppm, reward_per_replica=REWARD, collateral=COLLATERAL,
                  min_stake=MIN_STAKE, resource_class=resource_class, lease_duration=3600, reveal_window=3600,
                  job_timeout=86_400)
    assert p.margin == m, (m, p)
    return p


# ------------------------------------------------------------------ chain plumbing

async def mine(rpc_url: str) -> None:
    await asyncio.to_thread(rpc_call, rpc_url, "evm_mine")


async def next_epoch(client: ChainClient, automine: bool) -> None:
    """Wait (mine, on automine) until the pool's epoch changes: weights staked or
    opted in now take effect then, and a job posted just after has the most of
    its epoch left to draw in."""
    epoch = await client.epoch()
    while await client.epoch() == epoch:
        if automine:
            await mine(client.rpc_url)
        else:
            await asyncio.sleep(0.25)


async def seed_ready(client: ChainClient, job_id: int, automine: bool) -> None:
    """A draw needs a block after the job's seed block (mine one on automine)."""
    while (await client.job(job_id)).seed_block >= await client.block_number():
        if automine:
            await mine(client.rpc_url)
        else:
            await asyncio.sleep(0.1)


async def setup(rpc_url: str, workers: int, automine: bool = True) -> tuple[ChainClient, list[ChainClient]]:
    """Deploy, stake and opt ``workers`` accounts in to class 0; returns once
    their weights count (the next epoch)."""
    accounts = dev_accounts(workers + 1)
    deployment = await deploy(rpc_url, accounts[0], unbonding_delay=3600)
    requester = ChainClient(rpc_url, deployment, accounts[0])
    clients = [ChainClient(rpc_url, deployment, a) for a in accounts[1:]]
    await asyncio.gather(*(c.stake(100 * ETH) for c in clients))
    await asyncio.gather(*(c.opt_in(0) for c in clients))
    await next_epoch(requester, automine)
    return requester, clients


class Draws:
    """Draws a job's round 0 group by group, re-drawing after a re-armed seed
    or when a call ran out of candidate tries before filling every seat."""

    def __init__(self, drawer: ChainClient, job_id: int, margin: int, automine: bool) -> None:
        self.drawer, self.job_id, self.margin, self.automine = drawer, job_id, margin, automine
        self.seats: dict[int, list[str]] = {}  # task -> drawn workers
        self.gas = self.txs = self.rearm_gas = self.rearm_txs = self.stuck = 0
        self.hashes: list[str] = []  # the counted draws (their calldata is part of a seat's cost)

    def open(self, tasks: list[int]) -> list[int]:
        return [t for t in tasks if len(self.seats.get(t, ())) < self.margin]

    def record(self, receipt) -> None:
        assigned = receipt.events_named("TaskAssigned")
        for e in assigned:
            self.seats.setdefault(e.task_id, []).append(e.worker)
        if assigned or not receipt.events_named("SeedArmed"):
            # Seats drawn, or (no event) candidates looked at that had all served
            # the task: the draw moved down its sequence, part of what seats cost.
            self.gas += receipt.gas_used
            self.txs += 1
            self.hashes.append(receipt.tx_hash)
        else:  # the seed had gone stale (a new epoch): re-armed, nothing drawn
            self.rearm_gas += receipt.gas_used
            self.rearm_txs += 1

    async def fill(self, group: list[int], gas: int | None = None) -> None:
        """Draws until every seat of ``group`` is filled. ``gas``: a fixed limit
        (no estimation, which is a dry run: one more round trip per call)."""
        for _ in range(50):
            todo = self.open(group)
            if not todo:
                return
            if gas is None:  # the estimate must not meet a seed block still ahead
                await seed_ready(self.drawer, self.job_id, self.automine)
            try:
                self.record(await self.drawer.draw(self.job_id, todo, gas=gas))
            except JobMarketNothingToDraw:
                if (await self.drawer.job(self.job_id)).seed_block >= await self.drawer.block_number():
                    await seed_ready(self.drawer, self.job_id, self.automine)  # (fixed gas) sent too early
                    continue
                # Nothing to draw now: the pool is empty this epoch, or the next
                # candidate cannot back a seat yet (the draw waits for it).
                self.stuck += 1
                await next_epoch(self.drawer, self.automine)
        raise ChainError(f"job {self.job_id}: tasks {self.open(group)} still have open seats after 50 draws")

    def by_worker(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for t in sorted(self.seats):
            for w in self.seats[t]:
                out.setdefault(w, []).append(t)
        return out


# ------------------------------------------------------------------ part 1: gas

async def calldata(client: ChainClient, tx_hashes: list[str]) -> tuple[int, int, int]:
    """(bytes, zlib-compressed bytes, EIP-2028 data gas) of these transactions' calldata."""
    raw = zipped = data_gas = 0
    for h in tx_hashes:
        data = bytes((await client.w3.eth.get_transaction(h))["input"])
        raw += len(data)
        zipped += len(zlib.compress(data, 9))
        data_gas += sum(4 if b == 0 else 16 for b in data)
    return raw, zipped, data_gas


async def gas_run(requester: ChainClient, workers: list[ChainClient], tasks: int, m: int, batched: bool,
                  draw_chunk: int = DRAW_CHUNK) -> tuple[dict, dict]:
    """``batched``: every task of the job in one transaction per worker and
    phase; the draws in chunks of ``draw_chunk`` tasks (a draw seats every
    worker of its tasks, and 64 tasks at m = 5 is already ~20M gas)."""
    p = job_params(tasks, m)
    await next_epoch(requester, automine=True)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    ids = list(range(tasks))
    used = dict.fromkeys(PHASES, 0)
    hashes: list[str] = []
    digest = {t: hashlib.sha256(b"output %d" % t).digest() for t in ids}
    draws = Draws(requester, job_id, m, automine=True)
    chunk = draw_chunk if batched else 1
    for g in [ids[i:i + chunk] for i in range(0, tasks, chunk)]:
        await draws.fill(g)
    used["draw"] = draws.gas
    hashes += draws.hashes
    by_address = {w.address: w for w in workers}
    mine_of = {by_address[a]: ts for a, ts in draws.by_worker().items()}
    assert sum(len(ts) for ts in mine_of.values()) == tasks * m
    assert all(len(set(ws)) == m for ws in draws.seats.values()), "a worker was seated twice on a task"

    def groups(ts: list[int]) -> list[list[int]]:
        return [ts] if batched else [[t] for t in ts]

    worker_txs = 0
    for w, ts in mine_of.items():
        for g in groups(ts):
            receipt = await w.commit(job_id, g, [result_of(job_id, t, digest[t]) for t in g],
                                     [seal_of(w.address, job_id, t, digest[t]) for t in g])
            used["commit"] += receipt.gas_used
            hashes.append(receipt.tx_hash)
            worker_txs += 1
    for w, ts in mine_of.items():
        for g in groups(ts):
            receipt = await w.reveal(job_id, g, [digest[t] for t in g])
            used["reveal"] += receipt.gas_used
            hashes.append(receipt.tx_hash)
    job = await requester.job(job_id)
    assert job.state == JobState.COMPLETED and job.settled_tasks == tasks, job
    assert job.paid == p.reward_per_replica * tasks * m, f"every seat should have been paid: {job}"
    for w in mine_of:  # paid by the reveals: nothing left locked, nothing left to collect
        assert (await requester.worker(w.address)).locked == 0, f"{w.address} still has collateral locked"
    nonces = [(await requester.task(job_id, t)).draw_nonce for t in ids]
    seats = tasks * m
    per = {k: v / seats for k, v in used.items()}
    per["total"] = sum(per[k] for k in PHASES)
    raw, zipped, data_gas = await calldata(requester, hashes)
    per["calldata_bytes"] = raw / seats
    per["calldata_zlib_bytes"] = zipped / seats
    per["calldata_gas"] = data_gas / seats
    per["example_l2_cost_wei"] = l2_cost_wei(per["total"], zipped / seats)
    info = {"epsilon_ppm": p.epsilon_ppm, "adversary_ppm": p.adversary_ppm, "draw_txs": draws.txs,
            "rearm_txs": draws.rearm_txs, "rearm_gas": draws.rearm_gas, "stuck_draws": draws.stuck,
            "tries_per_seat": round(sum(nonces) / seats, 2), "workers_drawn": len(mine_of),
            "seats_per_worker_tx": round(seats / worker_txs, 2)}
    return per, info


# ------------------------------------------------------------------ part 2: throughput

async def throughput_run(requester: ChainClient, worker: ChainClient, tasks: int, pipelined: bool,
                         automine: bool) -> tuple[float, int]:
    """Settled tasks/s and re-arms, one worker in the pool, m = 1, one task per transaction."""
    p = job_params(tasks, 1)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    ids = list(range(tasks))
    digests = [hashlib.sha256(b"output %d" % t).digest() for t in ids]
    draws = Draws(requester, job_id, 1, automine)

    def commit(t: int):
        return worker.commit(job_id, [t], [result_of(job_id, t, digests[t])],
                             [seal_of(worker.address, job_id, t, digests[t])], gas=GAS_COMMIT)

    def reveal(t: int):
        return worker.reveal(job_id, [t], [digests[t]], gas=GAS_REVEAL)

    start = time.perf_counter()
    await seed_ready(requester, job_id, automine)
    if pipelined:
        # Every draw in flight at once; a draw that met a stale seed (re-armed,
        # or reverted because the re-armed block is not there yet) is redone.
        pending = [await requester.draw(job_id, [t], gas=GAS_DRAW).send() for t in ids]
        for r in await asyncio.gather(*(pd.receipt() for pd in pending), return_exceptions=True):
            if isinstance(r, BaseException):
                if not isinstance(r, JobMarketNothingToDraw):
                    raise r
            else:
                draws.record(r)
        for t in draws.open(ids):
            await draws.fill([t], gas=GAS_DRAW)
        # The worker's commits and reveals in flight: nonce order is execution
        # order, so a reveal can ride in the same block as its commit.
        pending = [await c.send() for c in [*(commit(t) for t in ids), *(reveal(t) for t in ids)]]
        await asyncio.gather(*(pd.receipt() for pd in pending))
    else:
        for t in ids:
            await draws.fill([t], gas=GAS_DRAW)
        for t in ids:
            await commit(t)
        for t in ids:
            await reveal(t)
    elapsed = time.perf_counter() - start
    assert all(draws.seats[t] == [worker.address] for t in ids)
    job = await requester.job(job_id)
    assert job.settled_tasks == tasks, f"only {job.settled_tasks}/{tasks} settled"
    return tasks / elapsed, draws.rearm_txs


async def throughput_batched(requester: ChainClient, worker: ChainClient, tasks: int, chunk: int,
                             automine: bool) -> float:
    """Settled tasks/s for m = 1 with ``chunk`` tasks per transaction, every
    transaction of a phase in flight: the draws, then the worker's commits and
    reveals (nonce order is execution order, so a reveal can ride in the block
    of its commit)."""
    p = job_params(tasks, 1)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    ids = list(range(tasks))
    groups = [ids[i:i + chunk] for i in range(0, tasks, chunk)]
    digests = [hashlib.sha256(b"output %d" % t).digest() for t in ids]
    draws = Draws(requester, job_id, 1, automine)
    start = time.perf_counter()
    await seed_ready(requester, job_id, automine)
    pending = [await requester.draw(job_id, g, gas=GAS_DRAW_PER_TASK * len(g)).send() for g in groups]
    for r in await asyncio.gather(*(pd.receipt() for pd in pending), return_exceptions=True):
        if isinstance(r, BaseException):
            if not isinstance(r, JobMarketNothingToDraw):
                raise r
        else:
            draws.record(r)
    for g in groups:
        if draws.open(g):
            await draws.fill(g, gas=GAS_DRAW_PER_TASK * len(g))
    sends = [worker.commit(job_id, g, [result_of(job_id, t, digests[t]) for t in g],
                           [seal_of(worker.address, job_id, t, digests[t]) for t in g],
                           gas=GAS_COMMIT_PER_TASK * len(g)) for g in groups]
    sends += [worker.reveal(job_id, g, [digests[t] for t in g], gas=GAS_REVEAL_PER_TASK * len(g)) for g in groups]
    pending = [await c.send() for c in sends]
    await asyncio.gather(*(pd.receipt() for pd in pending))
    elapsed = time.perf_counter() - start
    job = await requester.job(job_id)
    assert job.settled_tasks == tasks, f"only {job.settled_tasks}/{tasks} settled"
    return tasks / elapsed


async def batched_figure(into: dict, requester: ChainClient, worker: ChainClient, tasks: int,
                         automine: bool) -> None:
    """The batched pipelined run, printed and added to ``into`` (one chain's throughput figures)."""
    batched = await throughput_batched(requester, worker, tasks, THROUGHPUT_CHUNK, automine)
    into.update(batched_tasks=tasks, batch=THROUGHPUT_CHUNK, batched_pipelined_tasks_per_s=round(batched, 1),
                batched_vs_aim=round(batched / THROUGHPUT_AIM, 2))
    print(f"  pipelined, {THROUGHPUT_CHUNK} tasks per tx: {batched:8.1f} tasks/s ({tasks} tasks; "
          f"aim {THROUGHPUT_AIM}/s: {batched / THROUGHPUT_AIM:.2f}x)")


async def main_async(args: argparse.Namespace) -> dict:
    if not max(MARGINS) <= args.pool < DEV_ACCOUNTS:
        raise SystemExit(f"--pool {args.pool}: a margin-{max(MARGINS)} task needs that many distinct workers, and the "
                         f"devnet funds {DEV_ACCOUNTS} accounts (one is the requester)")
    results: dict = {"gas": {}, "draw": {}, "throughput": {}}
    anvil = Anvil.start()
    try:
        requester, workers = await setup(anvil.rpc_url, args.pool)
        print(f"Gas per task-replica (seat), {args.tasks} tasks per job, pool of {args.pool} workers "
              f"(aim: batched total <= {AIM:,})")

        def row(label: str, per: dict, info: dict, end: str = "\n") -> None:
            print(f"{label:<17}" + "".join(f"{per[k]:>10,.0f}" for k in (*PHASES, "total"))
                  + f"{per['total'] / AIM:>8.2f}x{info['tries_per_seat']:>11.2f}"
                  + f"{info['seats_per_worker_tx']:>9.2f}{info['rearm_txs']:>8}"
                  + f"{per['calldata_bytes']:>8,.0f}{per['calldata_zlib_bytes']:>7,.0f}", end=end)

        header = (f"{'':<17}" + "".join(f"{k:>10}" for k in (*PHASES, "total")) + f"{'vs aim':>9}"
                  + f"{'tries/seat':>11}{'seats/tx':>9}{'re-arms':>8}{'bytes':>8}{'zlib':>7}")
        print(header)
        for m in MARGINS:
            for batched in (False, True):
                per, info = await gas_run(requester, workers, args.tasks, m, batched)
                mode = "batched" if batched else "unbatched"
                results["gas"][f"r{m}_{mode}"] = {k: round(v) for k, v in per.items()}
                results["draw"][f"r{m}_{mode}"] = info
                row(f"m={m} {mode}", per, info)
        print(f"\nBy tasks per transaction (batch 1 is the unbatched run above; draws in chunks of at most "
              f"{DRAW_CHUNK} tasks; 'bytes': calldata per seat; cost: example per seat at 0.01 gwei L2 gas, "
              "10 gwei L1 base fee, scalar 0.7):")
        print(header + f"{'cost/gwei':>11}")
        for m in MARGINS:
            for size in BATCH_SIZES:
                if size == 1:
                    per = {k: float(v) for k, v in results["gas"][f"r{m}_unbatched"].items()}
                    info = results["draw"][f"r{m}_unbatched"]
                else:
                    per, info = await gas_run(requester, workers, size, m, batched=True)
                results["gas"][f"r{m}_batch{size}"] = {k: round(v) for k, v in per.items()}
                results["draw"][f"r{m}_batch{size}"] = info
                row(f"m={m} batch {size}", per, info, end="")
                print(f"{per['example_l2_cost_wei'] / 1e9:>11,.0f}")
        for c in (requester, *workers):
            await c.aclose()
    finally:
        anvil.stop()
    print()

    anvil = Anvil.start()
    try:
        requester, workers = await setup(anvil.rpc_url, 1)
        n = args.throughput_tasks
        waited, rearm_w = await throughput_run(requester, workers[0], n, pipelined=False, automine=True)
        await next_epoch(requester, automine=True)
        piped, rearm_p = await throughput_run(requester, workers[0], n, pipelined=True, automine=True)
        results["throughput"]["automine"] = {"tasks": n, "wait_each_receipt_tasks_per_s": round(waited, 1),
                                             "pipelined_tasks_per_s": round(piped, 1),
                                             "speedup": round(piped / waited, 2),
                                             "rearms_waited": rearm_w, "rearms_pipelined": rearm_p}
        print(f"Settled tasks/s on Anvil, automine (m=1, one worker, {n} tasks, 3 tx per task: draw, commit, reveal):")
        print(f"  waiting for each receipt: {waited:8.1f} tasks/s   ({rearm_w} re-armed seeds)")
        print(f"  pipelined nonces:         {piped:8.1f} tasks/s   ({piped / waited:.2f}x; {rearm_p} re-armed seeds)")
        await next_epoch(requester, automine=True)
        await batched_figure(results["throughput"]["automine"], requester, workers[0], args.batched_tasks, True)
        for c in (requester, *workers):
            await c.aclose()
    finally:
        anvil.stop()

    anvil = Anvil.start(block_time=1)
    try:
        requester, workers = await setup(anvil.rpc_url, 1, automine=False)
        n = args.block_time_tasks
        waited, rearm_w = await throughput_run(requester, workers[0], n, pipelined=False, automine=False)
        piped_n = n * 25
        piped, rearm_p = await throughput_run(requester, workers[0], piped_n, pipelined=True, automine=False)
        results["throughput"]["block_time_1s"] = {"tasks_waited": n, "tasks_pipelined": piped_n,
                                                  "wait_each_receipt_tasks_per_s": round(waited, 2),
                                                  "pipelined_tasks_per_s": round(piped, 2),
                                                  "speedup": round(piped / waited, 1),
                                                  "rearms_waited": rearm_w, "rearms_pipelined": rearm_p}
        print("Settled tasks/s on Anvil with 1 s blocks (m=1, one worker; the seed is 2 blocks after posting):")
        print(f"  waiting for each receipt: {waited:8.2f} tasks/s ({n} tasks; {rearm_w} re-armed seeds)")
        print(f"  pipelined nonces:         {piped:8.2f} tasks/s ({piped_n} tasks, {piped / waited:.0f}x; "
              f"{rearm_p} re-armed seeds)")
        await batched_figure(results["throughput"]["block_time_1s"], requester, workers[0], args.batched_tasks,
                             False)
        for c in (requester, *workers):
            await c.aclose()
    finally:
        anvil.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--pool", type=int, default=5, help="staked workers in the pool of the gas runs (5..9)")
    parser.add_argument("--throughput-tasks", type=int, default=150)
    parser.add_argument("--batched-tasks", type=int, default=512,
                        help=f"tasks of the batched throughput runs ({THROUGHPUT_CHUNK} per transaction)")
    parser.add_argument("--block-time-tasks", type=int, default=4,
                        help="tasks for the 1 s block-time run (waiting costs ~3 blocks per task)")
    results = asyncio.run(main_async(parser.parse_args()))
    batched = {k: v["total"] for k, v in results["gas"].items() if k.endswith("_batched")}
    results["aim_gas_per_task_replica"] = AIM
    results["batched_total_vs_aim"] = {k: round(v / AIM, 3) for k, v in batched.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
