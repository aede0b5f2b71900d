"""The gateway's chain-event indexer against a real Anvil: derived rows match the
chain's views, incremental/crashed indexing equals a rebuild, reorgs are undone,
and a job that does not start says why."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from backend import db, queries
from deploy.deploy import deploy
from deploy.devnet import Anvil
from backend.indexer import Indexer
from shardex.chain import ChainClient, JobParams, JobState, ReplicaState, result_of, seal_of
from shardex.chain import errors as chain_errors
from shardex.devnet import dev_accounts
from tests.python.conftest import Chain, IndexDb, rpc

ETH = 10**18
pytestmark = pytest.mark.integration


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def params(**overrides) -> JobParams:
    # epsilon 2% against an adversary with 10% of the stake: a margin of 2 agreeing drawn workers.
    base = {"spec_digest": sha(b"spec"), "map_tasks": 2, "reduce_tasks": 1, "epsilon_ppm": 20_000,
            "adversary_ppm": 100_000, "reward_per_replica": ETH // 100, "collateral": ETH // 10,
            "min_stake": ETH // 2, "max_rounds": 3, "lease_duration": 600, "reveal_window": 300,
            "job_timeout": 3600}
    return JobParams(**(base | overrides))


def engine_at(url: str) -> Engine:
    return db.make_engine(url)


def dump(engine: Engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in (db.cursor, db.events, db.jobs, db.tasks, db.members):
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted(tuple(repr(v) for v in r) for r in rows)
    return out


async def rebuilt(net: Chain, url: str) -> dict[str, list[tuple]]:
    engine = engine_at(url)
    await Indexer(engine, net.reader()).rebuild()
    return dump(engine)


# ------------------------------------------------------------------ driving the market directly

async def next_epoch(net: Chain, client: ChainClient) -> None:
    """Mine until the pool's epoch changes: stakes and opt-ins count from the next epoch on."""
    epoch = await client.epoch()
    while await client.epoch() == epoch:
        rpc(net.rpc_url, "evm_mine")


async def join_pool(net: Chain, workers: list[ChainClient]) -> None:
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    await asyncio.gather(*(w.opt_in(0) for w in workers))
    await next_epoch(net, workers[0])


async def draw_seats(net: Chain, drawer: ChainClient, job_id: int, task_ids: list[int]) -> dict[int, list[str]]:
    """Draw until every open seat of the tasks' current rounds is held; who was drawn, per task."""
    margin = (await drawer.job(job_id)).margin
    drawn: dict[int, list[str]] = {t: [] for t in task_ids}
    for _ in range(40):
        tasks = await asyncio.gather(*(drawer.task(job_id, t) for t in task_ids))
        need = [t for t, task in zip(task_ids, tasks, strict=True) if task.open_seats(margin)]
        if not need:
            return drawn
        rpc(net.rpc_url, "evm_mine")  # the seed is the block that armed it: draws use it from the next one on
        try:
            receipt = await drawer.draw(job_id, need)
        except chain_errors.JobMarketNothingToDraw:
            # This seed's next candidates are all ineligible (already on the task): a new epoch re-arms it.
            await next_epoch(net, drawer)
            continue
        for e in receipt.events_named("TaskAssigned"):
            drawn[e.task_id].append(e.worker)
    raise AssertionError(f"seats of job {job_id} tasks {task_ids} not filled")


Honesty = Callable[[ChainClient, int], bytes]


async def commit_drawn(workers: list[ChainClient], job_id: int, drawn: dict[int, list[str]],
                       digest_of: Honesty) -> list:
    """Every drawn worker commits its result for the tasks it was drawn for (one transaction each)."""
    by_address = {w.address: w for w in workers}
    mine: dict[str, list[int]] = {}
    for t, addresses in drawn.items():
        for a in addresses:
            mine.setdefault(a, []).append(t)
    receipts = []
    for address, ts in mine.items():
        w = by_address[address]
        ds = [digest_of(w, t) for t in ts]
        receipts.append(await w.commit(job_id, ts, [result_of(job_id, t, d) for t, d in zip(ts, ds, strict=True)],
                                       [seal_of(w.address, job_id, t, d) for t, d in zip(ts, ds, strict=True)]))
    return receipts


async def run_phase(net: Chain, drawer: ChainClient, workers: list[ChainClient], job_id: int, task_ids: list[int],
                    digest: bytes, lie_on: int | None = None) -> dict[int, list[tuple[ChainClient, bytes]]]:
    """Draw, commit (the first worker to commit on task ``lie_on`` commits garbage: its round splits and
    escalates), and once a result won on every task, its committers open it. Who committed what, per task."""
    committed: dict[int, list[tuple[ChainClient, bytes]]] = {t: [] for t in task_ids}
    waiting = set(task_ids)

    def digest_of(w: ChainClient, t: int) -> bytes:
        d = sha(b"garbage") if t == lie_on and not committed[t] else digest
        committed[t].append((w, d))
        return d

    while waiting:
        drawn = await draw_seats(net, drawer, job_id, sorted(waiting))
        for receipt in await commit_drawn(workers, job_id, drawn, digest_of):
            waiting -= {e.task_id for e in receipt.events_named("RevealOpened")}
    for w in workers:
        ts = [t for t in task_ids if (w, digest) in committed[t]]
        if ts:
            await w.reveal(job_id, ts, [digest] * len(ts))
    return committed


async def collect_unpaid(workers: list[ChainClient], job_id: int, committed: dict[int, list]) -> None:
    """Collect the committed seats their reveal did not pay (the ones that lost)."""
    for w in workers:
        ts = sorted({t for t, cs in committed.items() for c, _ in cs if c is w})
        ts = [t for t in ts if (await w.replica(job_id, t, w.address)).state is ReplicaState.COMMITTED]
        if ts:
            await w.collect(job_id, ts)


async def complete_job(net: Chain, requester: ChainClient, workers: list[ChainClient],
                       lie_on: int | None = None) -> int:
    receipt = await requester.post_job(params())
    job_id = receipt.events_named("JobPosted")[0].job_id
    committed = await run_phase(net, requester, workers, job_id, [0, 1], sha(b"map"), lie_on=lie_on)
    committed |= await run_phase(net, requester, workers, job_id, [2], sha(b"reduce"))
    await collect_unpaid(workers, job_id, committed)
    return job_id


# ------------------------------------------------------------------ tests

async def test_derived_rows_match_chain_views(net: Chain, index_db: IndexDb) -> None:
    requester, workers = net.client(1), [net.client(i) for i in (2, 3, 4, 6)]
    await join_pool(net, workers)
    done = await complete_job(net, requester, workers, lie_on=0)  # task 0 splits, escalates, then settles
    open_job = (await requester.post_job(params(map_tasks=3, reduce_tasks=0))).events_named("JobPosted")[0].job_id
    drawn = await draw_seats(net, requester, open_job, [1])
    decliner = next(w for w in workers if w.address == drawn[1][0])
    await decliner.decline(open_job, [1])

    engine = engine_at(index_db("idx"))
    reader = net.reader()
    indexer = Indexer(engine, reader)
    assert await indexer.sync_once() > 0
    with engine.connect() as conn:
        jobs = {r.job_id: r for r in conn.execute(select(db.jobs))}
        tasks = {(r.job_id, r.task_id): r for r in conn.execute(select(db.tasks))}
        members = {r.account: r for r in conn.execute(select(db.members))}
    assert set(jobs) == {done, open_job}
    assert JobState(jobs[done].state) is JobState.COMPLETED
    for job_id, row in jobs.items():
        job = await reader.job(job_id)
        assert (row.requester.lower(), JobState(row.state), row.map_tasks, row.reduce_tasks, row.margin,
                row.resource_class, int(row.escrow), row.settled_tasks, row.extra_seats_used, row.seed_block,
                row.epsilon_ppm, row.adversary_ppm, row.max_rounds, row.extra_seats, int(row.collateral),
                int(row.min_stake)) == (
            job.requester.lower(), job.state, job.map_tasks, job.reduce_tasks, job.margin, job.resource_class,
            job.escrow, job.settled_tasks, job.extra_seats_used, job.seed_block, job.epsilon_ppm,
            job.adversary_ppm, job.max_rounds, job.extra_seats, job.collateral, job.min_stake)
        for task_id in range(job.tasks):
            t = await reader.task(job_id, task_id)
            r = tasks.get((job_id, task_id))
            if r is None:  # never touched: the chain's task is pristine
                assert (t.round, t.seated, t.committed, t.total, t.settled) == (0, 0, 0, 0, False)
                continue
            assert (r.round, r.seats, r.seated, r.committed, r.lead_count, r.total, r.reveal_deadline, r.settled,
                    r.seed_block) == (t.round, t.seats or job.margin, t.seated, t.committed, t.lead_count, t.total,
                                      t.reveal_deadline, t.settled, t.seed_block)
            if r.settled:
                assert result_of(job_id, task_id, bytes.fromhex(r.digest[2:]))[:12] == t.winner
    # The liar's round split 1-1, so task 0 escalated with 2 fresh seats; the other tasks settled in round 0.
    assert (tasks[(done, 0)].round, tasks[(done, 0)].total, tasks[(done, 0)].lead_count) == (1, 4, 3)
    assert jobs[done].escalations == 1 and jobs[done].seats_drawn == 8
    assert tasks[(open_job, 1)].seated == 1 and tasks[(open_job, 1)].declined == 1
    assert jobs[open_job].declines == 1 and jobs[open_job].seats_drawn == 2
    for w in workers:
        info = await reader.worker(w.address)
        m = members[w.address]
        assert (int(m.stake), int(m.locked), m.classes) == (info.stake, info.locked, info.classes)

    # The API's read model of the completed job: every seat, who agreed, who was paid and slashed.
    detail = queries.job_detail(engine, done)
    task0 = detail["tasks_detail"][0]
    assert task0["state"] == "settled" and task0["round"] == 1 and len(task0["replicas"]) == 4
    assert sorted((r["round"], r["agrees"], r["state"]) for r in task0["replicas"]) == [
        (0, False, "slashed"), (0, True, "paid"), (1, True, "paid"), (1, True, "paid")]
    assert [(s["task_id"], s["reason"]) for s in detail["slashes"]] == [(0, "dissent")]
    job = await reader.job(done)
    assert int(detail["costs"]["paid_wei"]) == job.paid == 7 * job.reward_per_replica
    assert int(detail["costs"]["slashed_collateral_burned_wei"]) == job.collateral == await reader.burned()
    assert queries.waiting_reasons(engine, done, indexer.head, indexer.epoch_blocks) == []
    open_detail = queries.job_detail(engine, open_job)
    assert [t["state"] for t in open_detail["tasks_detail"]] == ["open", "assigned", "open"]
    assert sorted(r["state"] for r in open_detail["tasks_detail"][1]["replicas"]) == ["assigned", "declined"]


async def test_incremental_and_crashed_indexing_equal_rebuild(net: Chain, index_db: IndexDb,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    requester, workers = net.client(1), [net.client(2), net.client(3)]
    engine = engine_at(index_db("idx"))
    indexer = Indexer(engine, net.reader(), chunk_blocks=3)
    await indexer.sync_once()
    await join_pool(net, workers)
    await indexer.sync_once()
    job_id = (await requester.post_job(params())).events_named("JobPosted")[0].job_id
    await indexer.sync_once()
    map_commits = await run_phase(net, requester, workers, job_id, [0, 1], sha(b"map"))
    await indexer.sync_once()

    # Crash inside the second chunk's transaction, after its events were inserted.
    reduce_commits = await run_phase(net, requester, workers, job_id, [2], sha(b"reduce"))
    await collect_unpaid(workers, job_id, map_commits | reduce_commits)
    before = indexer.cursor()
    original = Indexer._write_chunk
    calls = 0

    def crashing(self, conn, rows, hi, hi_hash):
        nonlocal calls
        calls += 1
        if calls == 2:
            from sqlalchemy import insert
            if rows:
                conn.execute(insert(db.events), rows)
            raise RuntimeError("killed mid-transaction")
        return original(self, conn, rows, hi, hi_hash)

    monkeypatch.setattr(Indexer, "_write_chunk", crashing)
    with pytest.raises(RuntimeError, match="killed"):
        await indexer.sync_once()
    monkeypatch.setattr(Indexer, "_write_chunk", original)
    crashed_at = indexer.cursor()
    assert crashed_at[0] == before[0] + 3  # exactly one whole chunk survived
    with engine.connect() as conn:
        assert max(r.block_number for r in conn.execute(select(db.events.c.block_number))) <= crashed_at[0]

    restarted = Indexer(engine, net.reader(), chunk_blocks=3)
    await restarted.sync_once()
    assert await restarted.sync_once() == 0
    final = dump(engine)
    assert final == await rebuilt(net, index_db("fresh"))
    with engine.connect() as conn:
        assert JobState(conn.execute(select(db.jobs.c.state)).scalar_one()) is JobState.COMPLETED
        assert {r.locked for r in conn.execute(select(db.members.c.locked))} == {"0"}


async def test_reorg_removes_orphaned_events(net: Chain, index_db: IndexDb) -> None:
    workers = [net.client(2), net.client(3)]
    await join_pool(net, workers)
    kept = (await net.client(1).post_job(params())).events_named("JobPosted")[0].job_id
    engine = engine_at(index_db("idx"))
    indexer = Indexer(engine, net.reader())
    await indexer.sync_once()

    snapshot = rpc(net.rpc_url, "evm_snapshot")
    orphan_client = net.client(1)
    orphan = await orphan_client.post_job(params(map_tasks=5))
    orphan_job = orphan.events_named("JobPosted")[0].job_id
    drawn = await draw_seats(net, orphan_client, kept, [0])
    await commit_drawn(workers, kept, drawn, lambda w, t: sha(b"orphaned"))
    await indexer.sync_once()
    with engine.connect() as conn:
        assert conn.execute(select(db.events).where(db.events.c.tx_hash == orphan.tx_hash)).first() is not None
        assert conn.execute(select(db.tasks).where(db.tasks.c.job_id == kept)).first() is not None
        assert {r.locked for r in conn.execute(select(db.members.c.locked))} == {str(ETH // 10)}
    rpc(net.rpc_url, "evm_revert", snapshot)

    # A different history at the same heights (fresh clients: nonces were reverted too).
    replacement = await net.client(4).post_job(params(map_tasks=1, reduce_tasks=0))
    assert replacement.events_named("JobPosted")[0].job_id == orphan_job
    await net.client(5).stake(ETH)
    await indexer.sync_once()

    with engine.connect() as conn:
        assert conn.execute(select(db.events).where(db.events.c.tx_hash == orphan.tx_hash)).first() is None
        assert conn.execute(select(db.tasks).where(db.tasks.c.job_id == kept)).first() is None
        row = conn.execute(select(db.jobs).where(db.jobs.c.job_id == orphan_job)).one()
        assert row.map_tasks == 1 and row.requester.lower() == net.accounts[4].address.lower()
        assert {r.locked for r in conn.execute(select(db.members.c.locked))} == {"0"}
    assert dump(engine) == await rebuilt(net, index_db("fresh"))


async def test_reorg_to_a_shorter_chain(net: Chain, index_db: IndexDb) -> None:
    engine = engine_at(index_db("idx"))
    indexer = Indexer(engine, net.reader())
    await indexer.sync_once()
    snapshot = rpc(net.rpc_url, "evm_snapshot")
    worker = net.client(2)
    await worker.stake(ETH)
    await worker.opt_in(0)
    await net.client(3).stake(ETH)
    await indexer.sync_once()
    with engine.connect() as conn:
        assert conn.execute(select(db.members)).first() is not None
    rpc(net.rpc_url, "evm_revert", snapshot)
    await indexer.sync_once()
    assert dump(engine) == await rebuilt(net, index_db("fresh"))
    with engine.connect() as conn:
        assert conn.execute(select(db.events).where(db.events.c.name == "Staked")).first() is None
        assert conn.execute(select(db.members)).first() is None


async def test_an_index_of_another_chain_is_forgotten_not_walked_back(index_db: IndexDb) -> None:
    """A devnet brought down and up again: the same chain id and contract addresses, other blocks.
    A reorg walk (bounded to 5 blocks here) would find no block the two share and give up.
    Two fresh chains, each deployed by the same key at nonce 0, are the before and the after."""
    engine = engine_at(index_db("idx"))
    deployer, first, second = dev_accounts(4)[0], dev_accounts(4)[2], dev_accounts(4)[3]
    chains = [Anvil.start(), Anvil.start()]
    try:
        # Brought up later: its deployment block has another timestamp, and so another hash.
        rpc(chains[1].rpc_url, "evm_setTime", int(time.time()) + 3600)
        deployments = [await deploy(c.rpc_url, deployer, unbonding_delay=3600) for c in chains]
        assert deployments[0] == deployments[1]  # the same addresses and deployment block on both
        for chain, worker in zip(chains, (first, second), strict=True):
            async with ChainClient(chain.rpc_url, deployments[0], worker) as client:
                await client.stake(ETH)
        for _ in range(10):
            rpc(chains[0].rpc_url, "evm_mine")
        async with ChainClient(chains[0].rpc_url, deployments[0]) as reader:
            await Indexer(engine, reader, max_reorg_depth=5).sync_once()
        async with ChainClient(chains[1].rpc_url, deployments[0]) as reader:
            await Indexer(engine, reader, max_reorg_depth=5).sync_once()
            fresh = engine_at(index_db("fresh"))
            await Indexer(fresh, reader).rebuild()
        assert dump(engine) == dump(fresh)
        with engine.connect() as conn:
            staked = conn.execute(select(db.events.c.account).where(db.events.c.name == "Staked")).all()
        assert [r.account.lower() for r in staked] == [second.address.lower()]  # nothing of the old chain
    finally:
        for chain in chains:
            chain.stop()


async def test_confirmations_hold_back_recent_blocks(net: Chain, index_db: IndexDb) -> None:
    requester = net.client(1)
    engine = engine_at(index_db("idx"))
    indexer = Indexer(engine, net.reader(), confirmations=2)
    first = await requester.post_job(params())
    second = await requester.post_job(params())
    third = await requester.post_job(params())
    latest = await requester.block_number()
    assert third.block_number == latest and second.block_number == latest - 1
    await indexer.sync_once()
    assert indexer.cursor()[0] == latest - 2
    with engine.connect() as conn:
        indexed = {r.tx_hash for r in conn.execute(select(db.events.c.tx_hash))}
        job_ids = {r.job_id for r in conn.execute(select(db.jobs.c.job_id))}
    assert first.tx_hash in indexed and second.tx_hash not in indexed and third.tx_hash not in indexed
    assert job_ids == {first.events_named("JobPosted")[0].job_id}

    rpc(net.rpc_url, "evm_mine")
    rpc(net.rpc_url, "evm_mine")
    await indexer.sync_once()
    with engine.connect() as conn:
        assert len({r.job_id for r in conn.execute(select(db.jobs.c.job_id))}) == 3


async def test_a_job_that_does_not_start_says_why(net: Chain, index_db: IndexDb) -> None:
    requester = net.client(1)
    job_id = (await requester.post_job(params())).events_named("JobPosted")[0].job_id
    engine = engine_at(index_db("idx"))
    indexer = Indexer(engine, net.reader())

    async def why() -> dict[str, str]:
        await indexer.sync_once()
        return {r["code"]: r["message"] for r in
                queries.waiting_reasons(engine, job_id, indexer.head, indexer.epoch_blocks)}

    reasons = await why()
    assert set(reasons) == {"no-workers", "seats-open"}, reasons
    assert "CPU" in reasons["no-workers"] and "2 task(s) have 4 seat(s)" in reasons["seats-open"]

    alone = net.client(2)
    await alone.stake(ETH)
    await alone.opt_in(0)
    reasons = await why()
    assert "joining" in reasons and "from epoch" in reasons["joining"], reasons  # opt-ins count next epoch

    await next_epoch(net, requester)
    reasons = await why()
    assert "needs 2 distinct drawn workers" in reasons["too-few-workers"], reasons
    assert "only 1 CPU worker(s)" in reasons["too-few-workers"]

    await requester.stake(ETH)  # the requester in the pool does not help: it is never drawn for its own job
    await requester.opt_in(0)
    await next_epoch(net, requester)
    reasons = await why()
    assert "requester is never drawn" in reasons["too-few-workers"], reasons

    second = net.client(3)
    await join_pool(net, [second])
    assert set(await why()) == {"seats-open"}
    drawn = await draw_seats(net, requester, job_id, [0])
    assert sorted(drawn[0]) == sorted([alone.address, second.address])
    await alone.decline(job_id, [0])
    reasons = await why()
    assert set(reasons) == {"seats-open", "declined"}, reasons
    assert alone.address in reasons["declined"] and "2 task(s) have 3 seat(s)" in reasons["seats-open"]
    await second.report_unavailable(job_id, [0])  # a lone report: the seat goes back, the job goes on
    reasons = await why()
    assert set(reasons) == {"seats-open", "inputs-unreachable", "declined"}, reasons
    assert "task(s) 0 (1 report(s))" in reasons["inputs-unreachable"] and "at 2 reports" in reasons["inputs-unreachable"]
    detail = queries.job_detail(engine, job_id)
    assert detail["unavailable_inputs"] == [{"task_id": 0, "reports": 1}] and detail["failure"] is None

    # A job that ended has nothing to wait for.
    cancelled = (await requester.post_job(params())).events_named("JobPosted")[0].job_id
    await requester.cancel_job(cancelled)
    await indexer.sync_once()
    assert queries.waiting_reasons(engine, cancelled, indexer.head, indexer.epoch_blocks) == []


class Follower:
    """What a gateway's live stream makes of ``on_commit``: events appended, a rollback cutting
    off everything above the block it kept. It must end equal to the index's own events."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, str]] = []  # (block, log index, transaction): which event, not just where
        self.rollbacks = 0

    def __call__(self, rows: list[dict], rolled_back_to: int | None) -> None:
        if rolled_back_to is not None:
            self.rollbacks += 1
            self.events = [e for e in self.events if e[0] <= rolled_back_to]
        self.events += [(r["block_number"], r["log_index"], r["tx_hash"]) for r in rows]


def indexed_events(engine: Engine, after: tuple = (-1, -1)) -> list[tuple[int, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(db.events.c.block_number, db.events.c.log_index, db.events.c.tx_hash)
                            .order_by(db.events.c.block_number, db.events.c.log_index)).all()
    return [tuple(r) for r in rows if tuple(r)[:2] > after[:2]]


async def test_two_indexers_over_one_index_one_writes_the_other_follows_and_takes_over(
        net: Chain, index_db: IndexDb, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gateways' indexers over one database: one holds the writer lease, the other hands on the
    writer's events as its own; when the writer stops renewing (it died mid-settlement) the other
    takes over, and the old writer, waking up, is fenced out and writes nothing. Every event reaches
    each follower once, in order, through a reorg too, and the index equals a rebuild."""
    from backend import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "LEASE_S", 1.0)
    url = index_db("shared")
    seen_a, seen_b = Follower(), Follower()
    a = Indexer(engine_at(url), net.reader(), on_commit=seen_a)
    b = Indexer(engine_at(url), net.reader(), on_commit=seen_b)
    a.holder, b.holder = "gateway-a", "gateway-b"
    await a.step()
    await b.step()
    assert a.writing and not b.writing
    start = (indexed_events(a.engine) or [(-1, -1)])[-1]  # b is live from here: history is in the database

    workers = [net.client(2), net.client(3)]
    await join_pool(net, workers)
    requester = net.client(1)
    job_id = (await requester.post_job(params())).events_named("JobPosted")[0].job_id
    committed = await run_phase(net, requester, workers, job_id, [0, 1], sha(b"map"))
    await a.step()
    await b.step()
    assert b.cursor() == a.cursor() and seen_b.events == indexed_events(a.engine, start) != []

    # A reorg while b follows: a rolls back and indexes the new branch before b looks again.
    snapshot = rpc(net.rpc_url, "evm_snapshot")
    await net.client(4).post_job(params(map_tasks=5))
    await a.step()
    rpc(net.rpc_url, "evm_revert", snapshot)
    await net.client(5).stake(ETH)
    rpc(net.rpc_url, "evm_mine")
    await a.step()
    await b.step()
    assert seen_b.rollbacks == 1 and seen_b.events == indexed_events(a.engine, start)

    # The writer dies mid-settlement: it stops renewing, and b takes over once the lease runs out.
    committed |= await run_phase(net, requester, workers, job_id, [2], sha(b"reduce"))
    await b.step()
    assert not b.writing  # the lease has not run out yet
    await asyncio.sleep(1.2)
    await collect_unpaid(workers, job_id, committed)
    await b.step()
    assert b.writing
    with a.engine.connect() as conn:
        assert JobState(conn.execute(select(db.jobs.c.state)
                                     .where(db.jobs.c.job_id == job_id)).scalar_one()) is JobState.COMPLETED
    # The old writer wakes up with a sync in flight: fenced, it writes nothing, then follows.
    rpc(net.rpc_url, "evm_mine")
    before = indexed_events(a.engine)
    with pytest.raises(indexer_module.LeaseLost):
        await a.sync_once()
    assert indexed_events(a.engine) == before and not a.writing
    await a.step()
    assert not a.writing
    await b.step()
    await a.step()
    assert seen_b.events == indexed_events(b.engine, start)
    assert seen_a.events == indexed_events(a.engine)  # a saw everything, as writer and then as follower
    assert dump(b.engine) == await rebuilt(net, index_db("fresh"))


async def test_a_writer_that_lost_its_term_unnoticed_catches_up_before_it_writes_again(
        net: Chain, index_db: IndexDb, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer a stalls past its lease; b takes over, writes, and shuts down (releasing the lease). a's next
    step finds the lease free again: it must not carry on from its stale cursor and memory as if nothing
    happened, but take the lease in a new term, hand on what b wrote, and index from where b stopped."""
    from backend import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "LEASE_S", 1.0)
    url = index_db("shared")
    seen_a = Follower()
    a = Indexer(engine_at(url), net.reader(), on_commit=seen_a)
    b = Indexer(engine_at(url), net.reader())
    a.holder, b.holder = "gateway-a", "gateway-b"
    workers = [net.client(2), net.client(3)]
    await a.step()
    await join_pool(net, workers)
    await a.step()
    await asyncio.sleep(1.2)  # a stalls: its lease runs out
    await net.client(1).post_job(params())
    await b.step()  # b takes over and indexes the job
    assert b.writing
    b.release()  # and shuts down cleanly
    await net.client(4).post_job(params(map_tasks=1))
    await a.step()
    assert a.writing
    assert seen_a.events == indexed_events(a.engine)  # b's events reached a's streams, then a's own
    assert dump(a.engine) == await rebuilt(net, index_db("fresh"))


async def test_a_follower_that_slept_through_two_rollbacks_goes_back_to_the_lower_one(
        net: Chain, index_db: IndexDb) -> None:
    """Two reorgs between a follower's looks, the second keeping more than the first: the follower must go
    back to the lower block, or it would keep the old branch's events there and miss the new one's."""
    url = index_db("shared")
    seen = Follower()
    a = Indexer(engine_at(url), net.reader())
    b = Indexer(engine_at(url), net.reader(), on_commit=seen)
    a.holder, b.holder = "gateway-a", "gateway-b"
    await a.step()
    await b.step()
    start = (indexed_events(a.engine) or [(-1, -1)])[-1]
    first = rpc(net.rpc_url, "evm_snapshot")
    for i in (2, 3, 4):
        await net.client(i).stake(ETH)  # the old branch: three blocks with events
    await a.step()
    await b.step()
    assert seen.events  # b has followed the old branch
    rpc(net.rpc_url, "evm_revert", first)
    await net.client(5).stake(ETH)
    second = rpc(net.rpc_url, "evm_snapshot")
    await net.client(6).stake(ETH)
    await a.step()  # rollback 1: back to the fork, then the new branch
    rpc(net.rpc_url, "evm_revert", second)
    await net.client(7).stake(ETH)
    rpc(net.rpc_url, "evm_mine")
    await a.step()  # rollback 2 keeps more than rollback 1 did
    await b.step()  # b looks only now
    assert seen.rollbacks == 1 and seen.events == indexed_events(a.engine, start)


async def test_a_job_with_uint32_extremes_is_indexed_on_both_databases(net: Chain, index_db: IndexDb) -> None:
    """A job may carry any uint32 the market accepts; PostgreSQL's INTEGER is 32-bit signed, and one such
    job must not stop the index (it did: 'integer out of range' on every retry)."""
    big = 2**31 + 7
    job_id = (await net.client(1).post_job(params(lease_duration=big, max_rounds=1, extra_seats=0,
                                                  job_timeout=big + 400))).events_named("JobPosted")[0].job_id
    engine = engine_at(index_db("idx"))
    await Indexer(engine, net.reader()).sync_once()
    with engine.connect() as conn:
        assert conn.execute(select(db.jobs.c.lease_duration).where(db.jobs.c.job_id == job_id)).scalar_one() == big
    assert len(queries.job_detail(engine, job_id)["tasks_detail"]) == 3
