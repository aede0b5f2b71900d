"""``shardex demo --protocol``: one job through its whole on-chain lifecycle, narrated.

Starts a private Anvil, deploys, and plays a requester and three staked
workers (one of them dishonest) through post → claim → commit → reveal →
settle (map, then reduce) → collect → refund → withdraw, then accounts for
every wei. The "computation" is a real word count over Python's own
documentation text, so the digests the workers agree on are real.
"""

from __future__ import annotations

import asyncio
import hashlib
import io

from deploy.deploy import deploy
from deploy.devnet import Anvil, rpc_call
from shardex import jobs
from shardex.chain import ChainClient, JobParams, commitment_of, new_salt
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
    deployer, requester_acct, *worker_accts = dev_accounts(5)
    say(f"Anvil is up at {anvil.rpc_url}; deploying JobMarket (it creates its WorkerRegistry)")
    deployment = await deploy(anvil.rpc_url, deployer, unbonding_delay=3600)
    say.detail(f"JobMarket {deployment.market}   WorkerRegistry {deployment.registry}")

    requester = ChainClient(anvil.rpc_url, deployment, requester_acct)
    workers = [ChainClient(anvil.rpc_url, deployment, a) for a in worker_accts]
    names = {c.address: n for c, n in zip(workers, ("alice", "bob", "mallory"), strict=True)}
    names[requester.address] = "requester"
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
    say(f"alice, bob and mallory each stake {format_eth(stake)} in the registry")

    text = corpus()
    shards = list(jobs.split_records(io.BytesIO(text), len(text), 3))
    params = JobParams(spec_digest=digest(b"wordcount over pydoc topics, 3 map shards, 1 reduce"),
                       map_tasks=len(shards), reduce_tasks=1, replication=3, quorum=2,
                       reward_per_replica=10_000_000 * GWEI, collateral=100_000_000 * GWEI,
                       lease_duration=600, reveal_window=300, job_timeout=3600)
    receipt = await paid_by(requester, requester.post_job(params))
    spent("post", receipt)
    job_id = receipt.events_named("JobPosted")[0].job_id
    say(f"requester posts job {job_id}: wordcount over {len(text):,} bytes of Python docs, "
        f"{params.map_tasks} map + {params.reduce_tasks} reduce tasks, r={params.replication} q={params.quorum}")
    say.detail(f"escrow {format_eth(params.escrow)} = reward {format_eth(params.reward_per_replica)} "
               f"x {params.replication} replicas x {params.tasks} tasks; collateral per claim "
               f"{format_eth(params.collateral)}")

    async def phase(task_ids: list[int], outputs: dict[int, bytes], liar: ChainClient | None) -> None:
        spent("claim", *await asyncio.gather(*(paid_by(w, w.claim(job_id, task_ids)) for w in workers)))
        say(f"each worker claims tasks {task_ids} in one batched transaction")
        salts = {w.address: [new_salt() for _ in task_ids] for w in workers}
        digests: dict[str, list[bytes]] = {}
        for w in workers:
            honest = [digest(outputs[t]) for t in task_ids]
            # mallory "saves work" on the first task by returning garbage.
            digests[w.address] = [digest(b"garbage")] + honest[1:] if w is liar else honest
        commits = [paid_by(w, w.commit(job_id, task_ids, [commitment_of(d, s, w.address, job_id, t)
                                                for d, s, t in zip(digests[w.address], salts[w.address], task_ids,
                                                                   strict=True)]))
                   for w in workers]
        spent("commit", *await asyncio.gather(*commits))
        say("each worker commits keccak(digest, salt, worker, job, task) for its results; reveal opens")
        for w in workers:  # in turn, so the narrative shows who settles what
            r = await paid_by(w, w.reveal(job_id, task_ids, digests[w.address], salts[w.address]))
            spent("reveal", r)
            settled = [e.task_id for e in r.events_named("TaskSettled")]
            say.detail(f"{names[w.address]} reveals" + (f" -> tasks {settled} reach quorum and settle" if settled
                                                         else ""))

    map_ids = list(range(params.map_tasks))
    map_out = {t: map_shard(shards[t], t, len(shards)) for t in map_ids}
    say("MAP phase")
    await phase(map_ids, map_out, liar=workers[2])
    job = await requester.job(job_id)
    say(f"all map tasks settled: job is now {job.state.name}")

    reduce_id = params.map_tasks
    reduce_out = reduce_outputs(list(map_out.values()))
    say("REDUCE phase")
    await phase([reduce_id], {reduce_id: reduce_out}, liar=None)
    job = await requester.job(job_id)
    say(f"job {job_id} is {job.state.name}; accepted result digest {digest(reduce_out).hex()[:16]}…")

    all_ids = map_ids + [reduce_id]
    for w in workers:
        r = await paid_by(w, w.collect(job_id, all_ids))
        spent("collect", r)
        outcomes = [e.outcome.name.lower() for e in r.events_named("ReplicaResolved")]
        say.detail(f"{names[w.address]} collects: {', '.join(outcomes)}")

    try:
        await requester.refund(job_id)
    except ChainError as exc:
        say(f"refund too early is refused: {exc}")
    await _fast_forward(anvil.rpc_url, params.reveal_window + 1)
    say("(dev chain fast-forwarded past the last reveal window)")
    spent("refund", await paid_by(requester, requester.refund(job_id)))
    job = await requester.job(job_id)
    say(f"requester refund: {format_eth(job.refunded)} of escrow was not earned")

    for c in (requester, *workers):
        receipts = []
        if await c.credits():
            receipts.append(await paid_by(c, c.withdraw()))
        if await c.slash_credits():
            receipts.append(await paid_by(c, c.withdraw_slash_credits()))
        spent("withdraw", *receipts)
    say("everyone withdraws their credits (pull payments)")

    # Where every wei went: each account's balance change, with gas fees and
    # stake still bonded added back, is its economic result under the rules.
    say("where the money went (net of gas; stake still bonded counted as held)")
    summary = {"job_id": job_id, "escrow": job.escrow, "paid": job.paid, "refunded": job.refunded,
               "accounts": {}, "gas": gas}
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
               f" + still held {format_eth(job.open_escrow)}")
    say.detail(f"contracts now hold: market {format_eth(market_balance)} (nothing owed), registry "
               f"{format_eth(registry_balance)} (= remaining stakes)")
    nets = {n: a["net_wei"] for n, a in summary["accounts"].items()}
    expected = {"requester": -job.escrow + job.refunded + params.collateral,  # mallory's slash goes to the requester
                "alice": 4 * params.reward_per_replica, "bob": 4 * params.reward_per_replica,
                "mallory": 3 * params.reward_per_replica - params.collateral}
    if nets != expected or job.paid + job.refunded != job.escrow or market_balance != 0:
        raise ChainError("accounting does not add up")  # the demo doubles as a smoke test
    say.detail("gas: " + ", ".join(f"{k} {v:,}" for k, v in gas.items()))
    for c in (requester, *workers):
        await c.aclose()
    return summary


if __name__ == "__main__":
    asyncio.run(run_demo())
