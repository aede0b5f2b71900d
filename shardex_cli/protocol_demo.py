"""``shardex demo --protocol``: one job through its whole on-chain lifecycle, narrated.

Starts a private Anvil, deploys, and plays a requester and four staked
workers (one of them dishonest) through post → draw → commit → (escalate on
dissent) → reveal (which pays) → settle (map, then reduce) → collect (the
slashes) → refund → withdraw,
then accounts for every wei. The "computation" is a real word count over
Python's own documentation text, so the digests the workers agree on are real.
Who is drawn for which task is the lottery's: the narration says what happened.
"""

from __future__ import annotations

import asyncio
import hashlib
import io

from deploy.deploy import deploy
from deploy.devnet import Anvil, rpc_call
from shardex import jobs
from shardex.chain import ChainClient, JobParams, ReplicaState, result_of, seal_of
from shardex.chain.errors import ChainError
from shardex.devnet import dev_accounts
from shardex.programs import MapContext, ReduceContext, load_program
from shardex.units import format_eth

GWEI = 10**9
ETH = 10**18
WORDCOUNT = load_program(name="wordcount")


def corpus() -> bytes:
    """Real English text every Python install has: the pydoc topic help."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics)).encode()


def map_shard(shard: bytes, index: int, shards: int) -> bytes:
    """The built-in wordcount's map, one reduce partition: what an honest worker computes."""
    return WORDCOUNT.map_shard(shard, MapContext(index, shards, 1, {}))[0]


def reduce_outputs(outputs: list[bytes]) -> bytes:
    return WORDCOUNT.reduce_partition(outputs, ReduceContext(0, len(outputs), 1, {}))


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Narrator:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.step = 0

    def __call__(self, text: str) -> None:
        if not self.quiet:
            self.step += 1
            print(f"[{self.step:>2}] {text}", flush=True)

    def detail(self, text: str) -> None:
        if not self.quiet:
            print(f"       {text}", flush=True)


async def run_demo(quiet: bool = False) -> dict:
    say = Narrator(quiet)
    anvil = Anvil.start()
    try:
        return await _lifecycle(anvil, say)
    finally:
        anvil.stop()


async def _fast_forward(rpc_url: str, seconds: int) -> None:
    await asyncio.to_thread(rpc_call, rpc_url, "evm_increaseTime", seconds)
    await asyncio.to_thread(rpc_call, rpc_url, "evm_mine")


async def _lifecycle(anvil: Anvil, say: Narrator) -> dict:
    deployer, requester_acct, *worker_accts = dev_accounts(6)
    say(f"Anvil is up at {anvil.rpc_url}; deploying JobMarket (it creates its WorkerPool)")
    deployment = await deploy(anvil.rpc_url, deployer, unbonding_delay=3600)
    say.detail(f"JobMarket {deployment.market}   WorkerPool {deployment.registry}")

    requester = ChainClient(anvil.rpc_url, deployment, requester_acct)
    workers = [ChainClient(anvil.rpc_url, deployment, a) for a in worker_accts]
    names = {c.address: n for c, n in zip(workers, ("alice", "bob", "carol", "mallory"), strict=True)}
    names[requester.address] = "requester"
    by_address = {w.address: w for w in workers}
    mallory = workers[3]
    gas: dict[str, int] = {}
    fees: dict[str, int] = {c.address: 0 for c in (requester, *workers)}

    def spent(step: str, *receipts) -> None:
        gas[step] = gas.get(step, 0) + sum(r.gas_used for r in receipts)

    async def paid_by(client: ChainClient, call):
        """Send ``call`` from ``client``, remembering its fee for the final accounting."""
        receipt = await call
        fees[client.address] += receipt.fee
        return receipt

    start_balance = {c.address: await c.balance() for c in (requester, *workers)}

    stake = 1 * ETH
    spent("stake", *await asyncio.gather(*(paid_by(w, w.stake(stake)) for w in workers)))
    spent("opt in", *await asyncio.gather(*(paid_by(w, w.opt_in(0)) for w in workers)))
    epoch = await requester.epoch()
    while await requester.epoch() == epoch:  # weights change only from the next epoch on
        await asyncio.to_thread(rpc_call, anvil.rpc_url, "evm_mine")
    say(f"alice, bob, carol and mallory each stake {format_eth(stake)} and opt in to CPU jobs; "
        "from the next epoch the lottery draws them by stake")

    text = corpus()
    shards = list(jobs.split_records(io.BytesIO(text), len(text), 3))
    params = JobParams(spec_digest=digest(b"wordcount over pydoc topics, 3 map shards, 1 reduce"),
                       map_tasks=len(shards), reduce_tasks=1, epsilon_ppm=20_000, adversary_ppm=100_000,
                       reward_per_replica=10_000_000 * GWEI, collateral=100_000_000 * GWEI, min_stake=ETH // 2,
                       lease_duration=600, reveal_window=300, job_timeout=3600)
    receipt = await paid_by(requester, requester.post_job(params))
    spent("post", receipt)
    job_id = receipt.events_named("JobPosted")[0].job_id
    say(f"requester posts job {job_id}: wordcount over {len(text):,} bytes of Python docs, "
        f"{params.map_tasks} map + {params.reduce_tasks} reduce tasks; it accepts a wrong result with probability "
        f"{params.epsilon_ppm / 1e6:g} against an adversary with {params.adversary_ppm / 1e4:g}% of the stake, so a "
        f"task settles when one result leads by {params.margin} independently drawn workers")
    say.detail(f"escrow {format_eth(params.escrow)} = reward {format_eth(params.reward_per_replica)} x "
               f"({params.margin} seats x {params.tasks} tasks + {params.seats} escalation seats); "
               f"collateral per seat {format_eth(params.collateral)}")

    committed: dict[int, list[tuple[ChainClient, bytes]]] = {}

    async def phase(task_ids: list[int], outputs: dict[int, bytes], liar: ChainClient | None) -> None:
        waiting = set(task_ids)
        while waiting:
            # The seed is the hash of a block after the one that posted the job (or
            # escalated the task): on this on-demand chain, mine that block.
            await asyncio.to_thread(rpc_call, anvil.rpc_url, "evm_mine")
            r = await paid_by(requester, requester.draw(job_id, sorted(waiting)))
            spent("draw", r)
            if not r.events_named("TaskAssigned"):
                continue  # the seed had gone stale (a new epoch) and was re-armed
            seats: dict[str, list[int]] = {}
            for e in r.events_named("TaskAssigned"):
                seats.setdefault(e.worker, []).append(e.task_id)
            say.detail("drawn: " + "; ".join(f"task {t}: " + ", ".join(names[w] for w, ts in seats.items()
                                                                       if t in ts) for t in sorted(waiting)))
            for address, ts in seats.items():
                w = by_address[address]
                # mallory "saves work" by committing garbage wherever it is drawn.
                ds = [digest(b"garbage") if w is liar else digest(outputs[t]) for t in ts]
                r = await paid_by(w, w.commit(job_id, ts, [result_of(job_id, t, d) for t, d in zip(ts, ds, strict=True)],
                                              [seal_of(w.address, job_id, t, d) for t, d in zip(ts, ds, strict=True)]))
                spent("commit", r)
                for t, d in zip(ts, ds, strict=True):
                    committed.setdefault(t, []).append((w, d))
                for e in r.events_named("TaskEscalated"):
                    say.detail(f"task {e.task_id}: results differ -> escalated to round {e.round}, {e.seats} fresh "
                               "seats (nothing revealed: no digest to copy)")
                for e in r.events_named("RevealOpened"):
                    waiting.discard(e.task_id)
        say(f"tasks {task_ids}: one result leads by {params.margin} on each; its committers open it and are paid")
        for w in workers:
            mine = [(t, d) for t in task_ids for c, d in committed.get(t, []) if c is w]
            winners = [(t, d) for t, d in mine if (await requester.task(job_id, t)).winner == result_of(job_id, t, d)[:12]]
            if not winners:
                continue
            r = await paid_by(w, w.reveal(job_id, [t for t, _ in winners], [d for _, d in winners]))
            spent("reveal", r)
            paid_seats[w.address] += len(r.events_named("ResultRevealed"))
            settled = [e.task_id for e in r.events_named("TaskSettled")]
            say.detail(f"{names[w.address]} opens tasks {[t for t, _ in winners]}"
                       + (f" -> {settled} settle" if settled else ""))

    paid_seats = {w.address: 0 for w in workers}  # a reveal pays: the seats that opened the winner
    map_ids = list(range(params.map_tasks))
    map_out = {t: map_shard(shards[t], t, len(shards)) for t in map_ids}
    say("MAP phase")
    await phase(map_ids, map_out, liar=mallory)
    job = await requester.job(job_id)
    say(f"all map tasks settled: job is now {job.state.name}")

    reduce_id = params.map_tasks
    reduce_out = reduce_outputs(list(map_out.values()))
    say("REDUCE phase")
    await phase([reduce_id], {reduce_id: reduce_out}, liar=None)
    job = await requester.job(job_id)
    say(f"job {job_id} is {job.state.name}; accepted result digest {digest(reduce_out).hex()[:16]}…")

    await _fast_forward(anvil.rpc_url, params.reveal_window + 1)
    say("(dev chain fast-forwarded past the last reveal window)")
    slashed_seats = {w.address: 0 for w in workers}
    for w in workers:
        # What is left after the reveals paid: seats that committed a result that lost.
        mine = sorted({t for t, cs in committed.items() for c, _ in cs
                       if c is w and (await requester.replica(job_id, t, w.address)).state == ReplicaState.COMMITTED})
        if not mine:
            continue
        r = await paid_by(w, w.collect(job_id, mine))
        spent("collect", r)
        outcomes = [e.outcome.name.lower() for e in r.events_named("ReplicaResolved")]
        slashed_seats[w.address] = outcomes.count("slashed")
        say.detail(f"{names[w.address]} collects tasks {mine}: {', '.join(outcomes)}")

    spent("refund", await paid_by(requester, requester.refund(job_id)))
    job = await requester.job(job_id)
    say(f"requester refund: {format_eth(job.refunded)} of escrow was not earned")

    for c in (requester, *workers):
        if await c.credits():
            spent("withdraw", await paid_by(c, c.withdraw()))
    say("everyone withdraws their credits (pull payments); slashed collateral is burned, owed to no one")

    # Where every wei went: each account's balance change, with gas fees and
    # stake still bonded added back, is its economic result under the rules.
    say("where the money went (net of gas; stake still bonded counted as held)")
    burned = await requester.burned()
    summary = {"job_id": job_id, "escrow": job.escrow, "paid": job.paid, "refunded": job.refunded,
               "burned": burned, "accounts": {}, "gas": gas}
    for c in (requester, *workers):
        w = await c.worker()
        net = await c.balance() - start_balance[c.address] + fees[c.address] + w.stake
        summary["accounts"][names[c.address]] = {"address": c.address, "net_wei": net, "gas_fees_wei": fees[c.address],
                                                 "stake": w.stake, "settled": w.settled, "slashed": w.slashed}
        line = f"{names[c.address]:<9} net {format_eth(net):>12}   gas fees {format_eth(fees[c.address])}"
        if c is not requester:
            line += f"   stake {format_eth(w.stake)}  settled {w.settled}  slashed {w.slashed}"
        say.detail(line)
    market_balance = await requester.balance(deployment.market)
    registry_balance = await requester.balance(deployment.registry)
    say.detail(f"escrow {format_eth(job.escrow)} = paid {format_eth(job.paid)} + refunded {format_eth(job.refunded)}"
               f" + still held {format_eth(job.open_escrow)}; burned {format_eth(burned)}")
    say.detail(f"contracts now hold: market {format_eth(market_balance)} (nothing owed), pool "
               f"{format_eth(registry_balance)} (= remaining stakes + burned)")
    nets = {n: a["net_wei"] for n, a in summary["accounts"].items()}
    expected = {"requester": -job.paid}  # the requester pays for computed work only, never profits from a slash
    for w in workers:
        expected[names[w.address]] = (paid_seats[w.address] * params.reward_per_replica
                                      - slashed_seats[w.address] * params.collateral)
    stakes = sum(summary["accounts"][names[w.address]]["stake"] for w in workers)
    if (nets != expected or job.paid + job.refunded != job.escrow or market_balance != 0
            or registry_balance != stakes + burned or burned != sum(slashed_seats.values()) * params.collateral):
        raise ChainError("accounting does not add up")  # the demo doubles as a smoke test
    say.detail("gas: " + ", ".join(f"{k} {v:,}" for k, v in gas.items()))
    for c in (requester, *workers):
        await c.aclose()
    return summary


if __name__ == "__main__":
    asyncio.run(run_demo())
