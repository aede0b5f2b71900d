"""A whole job through the typed client against a real Anvil, accounted to the wei."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from shardex.chain import JobParams, JobState, Outcome, ReplicaState, commitment_of, errors, new_salt
from shardex.chain.models import ReplicaResolved, TaskSettled
from tests.python.conftest import Chain

ETH = 10**18
pytestmark = pytest.mark.integration


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def params(**overrides) -> JobParams:
    base = dict(spec_digest=sha(b"spec"), map_tasks=2, reduce_tasks=1, replication=3, quorum=2,
                reward_per_replica=ETH // 100, collateral=ETH // 10, min_stake=ETH // 2, max_rounds=2,
                lease_duration=600, reveal_window=300, job_timeout=3600)
    base.update(overrides)
    return JobParams(**base)


async def commit_and_reveal(workers, job_id, task_ids, digests_by_worker):
    salts = {w.address: [new_salt() for _ in task_ids] for w in workers}
    await asyncio.gather(*(w.commit(job_id, task_ids, [commitment_of(d, s, w.address, job_id, t) for d, s, t in
                                                       zip(digests_by_worker[w.address], salts[w.address], task_ids,
                                                           strict=True)]) for w in workers))
    receipts = []
    for w in workers:
        receipts.append(await w.reveal(job_id, task_ids, digests_by_worker[w.address], salts[w.address]))
    return receipts


async def total_held(net: Chain, reader, job_ids, accounts) -> tuple[int, int]:
    """(market side, registry side) computed from views, to compare with balances."""
    market = sum([(await reader.job(j)).open_escrow for j in job_ids])
    market += sum([await reader.credits(a) for a in accounts])
    registry = 0
    for a in accounts:
        w = await reader.worker(a)
        registry += w.stake + w.unbonding + await reader.slash_credits(a)
    return market, registry


async def test_job_lifecycle_pays_agreeing_slashes_dissent_refunds_rest(net: Chain) -> None:
    requester, *workers = net.client(1), net.client(2), net.client(3), net.client(4)
    reader = net.reader()
    accounts = [c.address for c in (requester, *workers)]
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    p = params()
    receipt = await requester.post_job(p)
    job_id = receipt.events_named("JobPosted")[0].job_id
    assert (await reader.job(job_id)).escrow == p.escrow == 3 * 3 * ETH // 100

    honest = {0: sha(b"map 0"), 1: sha(b"map 1"), 2: sha(b"reduce")}
    liar = workers[2]
    await asyncio.gather(*(w.claim(job_id, [0, 1]) for w in workers))
    assert (await reader.worker(liar.address)).locked == 2 * p.collateral
    receipts = await commit_and_reveal(workers, job_id, [0, 1], {
        w.address: [sha(b"wrong") if w is liar else honest[0], honest[1]] for w in workers})
    settled = [e for r in receipts for e in r.events if isinstance(e, TaskSettled)]
    assert sorted((e.task_id, e.digest) for e in settled) == [(0, honest[0]), (1, honest[1])]
    assert (await reader.job(job_id)).state is JobState.REDUCE

    await asyncio.gather(*(w.claim(job_id, [2]) for w in workers))
    await commit_and_reveal(workers, job_id, [2], {w.address: [honest[2]] for w in workers})
    job = await reader.job(job_id)
    assert job.state is JobState.COMPLETED
    assert job.owed == 8 * p.reward_per_replica  # 9 replicas, one dissent

    outcomes = {}
    for w in workers:
        r = await w.collect(job_id, [0, 1, 2])
        outcomes[w.address] = [e.outcome for e in r.events if isinstance(e, ReplicaResolved)]
    assert outcomes[liar.address] == [Outcome.SLASHED, Outcome.PAID, Outcome.PAID]
    assert outcomes[workers[0].address] == [Outcome.PAID] * 3
    assert (await reader.replica(job_id, 0, liar.address)).state is ReplicaState.NONE

    with pytest.raises(errors.JobMarketRefundNotReady):
        await requester.refund(job_id)
    net.warp(p.reveal_window + 1)
    await requester.refund(job_id)
    job = await reader.job(job_id)
    assert job.refunded == p.escrow - 8 * p.reward_per_replica
    assert job.paid + job.refunded == job.escrow and job.owed == 0

    liar_info = await reader.worker(liar.address)
    assert (liar_info.stake, liar_info.locked, liar_info.slashed, liar_info.settled) == (ETH - p.collateral, 0, 1, 2)
    assert await reader.slash_credits(requester.address) == p.collateral
    assert await reader.credits(workers[0].address) == 3 * p.reward_per_replica

    # Contract balances equal what the views say they owe, to the wei.
    market_side, registry_side = await total_held(net, reader, [job_id], accounts)
    assert await reader.balance(net.deployment.market) == market_side
    assert await reader.balance(net.deployment.registry) == registry_side

    before = await workers[0].balance()
    r = await workers[0].withdraw()
    assert await workers[0].balance() == before + 3 * p.reward_per_replica - r.fee
    with pytest.raises(errors.JobMarketNothingToWithdraw):
        await workers[0].withdraw()


async def test_no_show_is_slashed_by_anyone_and_its_slot_reopens(net: Chain) -> None:
    requester, a, b, c = net.client(1), net.client(2), net.client(3), net.client(4)
    await asyncio.gather(*(w.stake(ETH) for w in (a, b, c)))
    p = params(map_tasks=1, reduce_tasks=0, replication=2, quorum=2)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    await a.claim(job_id, [0])
    await b.claim(job_id, [0])
    with pytest.raises(errors.JobMarketTaskFull):
        await c.claim(job_id, [0])
    with pytest.raises(errors.JobMarketNotResolvable):
        await requester.resolve(job_id, 0, b.address)
    net.warp(p.lease_duration + 1)
    with pytest.raises(errors.JobMarketLeaseExpired) as info:
        await b.commit(job_id, [0], [b"\x01" * 32])
    assert info.value.args_dict["taskId"] == 0
    r = await requester.resolve(job_id, 0, b.address)  # anyone may poke a no-show
    assert [e.outcome for e in r.events if isinstance(e, ReplicaResolved)] == [Outcome.SLASHED]
    assert (await requester.task(job_id, 0)).claimed == 1
    with pytest.raises(errors.JobMarketAlreadyClaimed):
        await b.claim(job_id, [0])  # not again in this round
    await c.claim(job_id, [0])
    assert (await requester.worker(b.address)).slashed == 1
