"""The gateway's chain-event indexer against a real Anvil: derived rows match the
chain's views, incremental/crashed indexing equals a rebuild, reorgs are undone."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from backend import db
from backend.indexer import Indexer
from shardex.chain import ChainClient, JobParams, JobState, commitment_of, new_salt
from tests.python.conftest import Chain, rpc

ETH = 10**18
pytestmark = pytest.mark.integration


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def params(**overrides) -> JobParams:
    base = {"spec_digest": sha(b"spec"), "map_tasks": 2, "reduce_tasks": 1, "replication": 2, "quorum": 2,
            "reward_per_replica": ETH // 100, "collateral": ETH // 10, "min_stake": ETH // 2, "max_rounds": 2,
            "lease_duration": 600, "reveal_window": 300, "job_timeout": 3600}
    return JobParams(**(base | overrides))


def engine_at(path: Path) -> Engine:
    return db.make_engine(f"sqlite:///{path}")


def dump(engine: Engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in (db.cursor, db.events, db.jobs, db.tasks):
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted(tuple(repr(v) for v in r) for r in rows)
    return out


async def rebuilt(net: Chain, path: Path) -> dict[str, list[tuple]]:
    engine = engine_at(path)
    await Indexer(engine, net.reader()).rebuild()
    return dump(engine)


async def run_task_round(workers: list[ChainClient], job_id: int, task_ids: list[int], digest: bytes) -> None:
    await asyncio.gather(*(w.claim(job_id, task_ids) for w in workers))
    salts = {w.address: [new_salt() for _ in task_ids] for w in workers}
    await asyncio.gather(*(w.commit(job_id, task_ids, [commitment_of(digest, s, w.address, job_id, t)
                                                       for s, t in zip(salts[w.address], task_ids, strict=True)])
                           for w in workers))
    for w in workers:
        await w.reveal(job_id, task_ids, [digest] * len(task_ids), salts[w.address])


async def complete_job(requester: ChainClient, workers: list[ChainClient]) -> int:
    receipt = await requester.post_job(params())
    job_id = receipt.events_named("JobPosted")[0].job_id
    await run_task_round(workers, job_id, [0, 1], sha(b"map"))
    await run_task_round(workers, job_id, [2], sha(b"reduce"))
    for w in workers:
        await w.collect(job_id, [0, 1, 2])
    return job_id


async def test_derived_rows_match_chain_views(net: Chain, tmp_path: Path) -> None:
    requester, workers = net.client(1), [net.client(2), net.client(3)]
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    done = await complete_job(requester, workers)
    open_job = (await requester.post_job(params(map_tasks=3, reduce_tasks=0))).events_named("JobPosted")[0].job_id
    await workers[0].claim(open_job, [1])

    engine = engine_at(tmp_path / "idx.db")
    reader = net.reader()
    assert await Indexer(engine, reader).sync_once() > 0
    with engine.connect() as conn:
        jobs = {r.job_id: r for r in conn.execute(select(db.jobs))}
        tasks = {(r.job_id, r.task_id): r for r in conn.execute(select(db.tasks))}
    assert set(jobs) == {done, open_job}
    assert JobState(jobs[done].state) is JobState.COMPLETED
    for job_id, row in jobs.items():
        job = await reader.job(job_id)
        assert (row.requester.lower(), JobState(row.state), row.map_tasks, row.reduce_tasks, row.replication,
                row.quorum, int(row.escrow), row.settled_tasks) == (
            job.requester.lower(), job.state, job.map_tasks, job.reduce_tasks, job.replication, job.quorum,
            job.escrow, job.settled_tasks)
        for task_id in range(job.tasks):
            t = await reader.task(job_id, task_id)
            r = tasks.get((job_id, task_id))
            if r is None:  # never touched: the chain's task is pristine
                assert (t.round, t.settled, t.claimed, t.committed, t.revealed) == (0, False, 0, 0, 0)
                continue
            assert (r.round, r.settled, r.claimed, r.committed, r.revealed) == (
                t.round, t.settled, t.claimed, t.committed, t.revealed)
            if r.settled:
                assert bytes.fromhex(r.digest[2:])[:len(t.winner)] == t.winner
    assert tasks[(open_job, 1)].claimed == 1 and not tasks[(open_job, 1)].settled


async def test_incremental_and_crashed_indexing_equal_rebuild(net: Chain, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    requester, workers = net.client(1), [net.client(2), net.client(3)]
    engine = engine_at(tmp_path / "idx.db")
    indexer = Indexer(engine, net.reader(), chunk_blocks=3)
    await indexer.sync_once()
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    await indexer.sync_once()
    job_id = (await requester.post_job(params())).events_named("JobPosted")[0].job_id
    await indexer.sync_once()
    await run_task_round(workers, job_id, [0, 1], sha(b"map"))
    await indexer.sync_once()

    # Crash inside the second chunk's transaction, after its events were inserted.
    await run_task_round(workers, job_id, [2], sha(b"reduce"))
    for w in workers:
        await w.collect(job_id, [0, 1, 2])
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
    assert final == await rebuilt(net, tmp_path / "fresh.db")
    with engine.connect() as conn:
        assert JobState(conn.execute(select(db.jobs.c.state)).scalar_one()) is JobState.COMPLETED


async def test_reorg_removes_orphaned_events(net: Chain, tmp_path: Path) -> None:
    workers = [net.client(2), net.client(3)]
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    kept = (await net.client(1).post_job(params())).events_named("JobPosted")[0].job_id
    engine = engine_at(tmp_path / "idx.db")
    indexer = Indexer(engine, net.reader())
    await indexer.sync_once()

    snapshot = rpc(net.rpc_url, "evm_snapshot")
    orphan_client = net.client(1)
    orphan = await orphan_client.post_job(params(map_tasks=5))
    orphan_job = orphan.events_named("JobPosted")[0].job_id
    await run_task_round(workers, kept, [0], sha(b"orphaned"))
    await indexer.sync_once()
    with engine.connect() as conn:
        assert conn.execute(select(db.events).where(db.events.c.tx_hash == orphan.tx_hash)).first() is not None
        assert conn.execute(select(db.tasks).where(db.tasks.c.job_id == kept)).first() is not None
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
    assert dump(engine) == await rebuilt(net, tmp_path / "fresh.db")


async def test_reorg_to_a_shorter_chain(net: Chain, tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "idx.db")
    indexer = Indexer(engine, net.reader())
    await indexer.sync_once()
    snapshot = rpc(net.rpc_url, "evm_snapshot")
    await net.client(2).stake(ETH)
    await net.client(3).stake(ETH)
    await indexer.sync_once()
    rpc(net.rpc_url, "evm_revert", snapshot)
    await indexer.sync_once()
    assert dump(engine) == await rebuilt(net, tmp_path / "fresh.db")
    with engine.connect() as conn:
        assert conn.execute(select(db.events).where(db.events.c.name == "Staked")).first() is None


async def test_confirmations_hold_back_recent_blocks(net: Chain, tmp_path: Path) -> None:
    requester = net.client(1)
    engine = engine_at(tmp_path / "idx.db")
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
