"""Whole jobs through the typed client against a real Anvil, accounted to the wei:
the draw, a split round escalated and settled, a no-show redrawn, a decline."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from shardex.chain import JobParams, JobState, Outcome, ReplicaState, errors, result_of, seal_of
from shardex.chain.models import ReplicaResolved, TaskAssigned, TaskEscalated, TaskSettled
from tests.python.conftest import Chain

ETH = 10**18
pytestmark = pytest.mark.integration


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def params(**overrides) -> JobParams:
    # epsilon 2% against a 10% adversary: one result must lead by 2 drawn workers.
    base = dict(spec_digest=sha(b"spec"), map_tasks=2, reduce_tasks=1, epsilon_ppm=20_000, adversary_ppm=100_000,
                reward_per_replica=ETH // 100, collateral=ETH // 10, min_stake=ETH // 2, max_rounds=4,
                lease_duration=600, reveal_window=300, job_timeout=3600)
    base.update(overrides)
    return JobParams(**base)


async def staked_pool(net: Chain, indexes) -> list:
    workers = [net.client(i) for i in indexes]
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    await asyncio.gather(*(w.opt_in(0) for w in workers))
    await net.next_epoch()
    return workers


async def draw(net: Chain, client, job_id: int, task_ids: list[int], per_task: int = 2) -> dict[int, list[str]]:
    """Draw until every task in ``task_ids`` has ``per_task`` new seats (a stale seed is re-armed: mine, go on)."""
    seats: dict[int, list[str]] = {t: [] for t in task_ids}
    for _ in range(8):
        net.mine()  # the seed is the hash of a block after the posting (or escalating) one
        receipt = await client.draw(job_id, [t for t in task_ids if len(seats[t]) < per_task])
        for e in receipt.events:
            if isinstance(e, TaskAssigned):
                seats[e.task_id].append(e.worker)
        if all(len(seats[t]) == per_task for t in task_ids):
            return seats
    raise AssertionError(f"seats drawn for {task_ids}: {seats}")


async def commit(by_address, job_id: int, seats: dict[int, list[str]], digest_of) -> list:
    """Each seated worker commits ``digest_of(worker, task)`` for its seats, one transaction each."""
    mine: dict[str, list[int]] = {}
    for task_id, workers in seats.items():
        for w in workers:
            mine.setdefault(w, []).append(task_id)
    receipts = []
    for address, task_ids in mine.items():
        w = by_address[address]
        ds = [digest_of(w, t) for t in task_ids]
        receipts.append(await w.commit(job_id, task_ids, [result_of(job_id, t, d) for t, d in zip(task_ids, ds)],
                                       [seal_of(w.address, job_id, t, d) for t, d in zip(task_ids, ds)]))
    return receipts


async def test_split_round_escalates_the_honest_result_wins_the_liar_is_burned(net: Chain) -> None:
    requester, reader = net.client(1), net.reader()
    workers = await staked_pool(net, range(2, 8))
    by_address = {w.address: w for w in workers}
    p = params()
    assert p.margin == 2
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    assert (await reader.job(job_id)).escrow == p.escrow == (2 * 3 + 2 * 3 + 2) * p.reward_per_replica

    honest = {0: sha(b"map 0"), 1: sha(b"map 1"), 2: sha(b"reduce")}
    seats = await draw(net, requester, job_id, [0, 1])
    assert all(len(set(ws)) == 2 for ws in seats.values())
    liar = by_address[seats[0][0]]  # whoever the lottery seated first on task 0 lies there
    receipts = await commit(by_address, job_id, seats,
                            lambda w, t: sha(b"garbage") if (w, t) == (liar, 0) else honest[t])
    escalated = [e for r in receipts for e in r.events if isinstance(e, TaskEscalated)]
    assert [(e.task_id, e.round, e.seats) for e in escalated] == [(0, 1, 2)]  # 1-1: two fresh seats to lead by 2
    more = await draw(net, requester, job_id, [0])
    assert not set(more[0]) & set(seats[0])  # never the same worker twice on a task
    await commit(by_address, job_id, more, lambda w, t: honest[t])
    task0 = await reader.task(job_id, 0)
    assert task0.winner == result_of(job_id, 0, honest[0])[:12] and (task0.lead_count, task0.total) == (3, 4)

    # The winner's committers open it, the round-0 honest seat included; the liar cannot.
    with pytest.raises(errors.JobMarketNotTheWinner):
        await liar.reveal(job_id, [0], [sha(b"garbage")])
    settled = []
    for address in {*seats[0], *seats[1], *more[0]}:
        w = by_address[address]
        mine = [t for t in (0, 1) if address in seats[t] + (more[0] if t == 0 else []) and (w, t) != (liar, 0)]
        if mine:  # the liar opens its honest seat on task 1, if the lottery gave it one
            r = await w.reveal(job_id, mine, [honest[t] for t in mine])
            settled += [(e.task_id, e.digest) for e in r.events if isinstance(e, TaskSettled)]
    assert sorted(settled) == [(0, honest[0]), (1, honest[1])]
    assert (await reader.job(job_id)).state is JobState.REDUCE

    seats2 = await draw(net, requester, job_id, [2])
    await commit(by_address, job_id, seats2, lambda w, t: honest[t])
    for address in seats2[2]:
        await by_address[address].reveal(job_id, [2], [honest[2]])
    job = await reader.job(job_id)
    assert job.state is JobState.COMPLETED
    paid_seats = 3 + 2 + 2  # task 0: one round-0 seat + two escalation seats; tasks 1 and 2: two each
    assert job.paid == paid_seats * p.reward_per_replica  # each reveal paid its seat on the spot

    net.warp(p.reveal_window + 1)
    outcomes: dict[str, list[Outcome]] = {}
    for w in workers:
        mine = sorted({t for s in (seats, more, seats2) for t, ws in s.items() if w.address in ws})
        # The seats that opened the winner were paid and are gone; what is left is collected.
        left = [t for t in mine if (await reader.replica(job_id, t, w.address)).state is ReplicaState.COMMITTED]
        if left:
            r = await w.collect(job_id, left)
            outcomes[w.address] = [e.outcome for e in r.events if isinstance(e, ReplicaResolved)]
    assert outcomes == {liar.address: [Outcome.SLASHED]}  # its garbage on task 0, and nothing else
    assert (await reader.replica(job_id, 0, liar.address)).state is ReplicaState.NONE
    await requester.refund(job_id)
    job = await reader.job(job_id)
    assert job.paid == paid_seats * p.reward_per_replica and job.paid + job.refunded == job.escrow

    # Slashed collateral is burned: nobody (not the requester) is credited with it; balances equal the views.
    assert await reader.burned() == p.collateral
    liar_info = await reader.worker(liar.address)
    assert (liar_info.stake, liar_info.locked, liar_info.slashed) == (ETH - p.collateral, 0, 1)
    accounts = [requester.address, *by_address]
    market_side = sum([await reader.credits(a) for a in accounts]) + job.open_escrow
    pool_side = await reader.burned()
    for a in by_address:
        info = await reader.worker(a)
        pool_side += info.stake + info.unbonding
    assert await reader.balance(net.deployment.market) == market_side
    assert await reader.balance(net.deployment.registry) == pool_side
    assert await reader.credits(requester.address) == job.refunded


async def one_task_drawn(net: Chain):
    """A one-task job over a pool of four, its two seats drawn."""
    requester = net.client(1)
    workers = await staked_pool(net, range(2, 6))
    p = params(map_tasks=1, reduce_tasks=0)
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    return requester, {w.address: w for w in workers}, p, job_id, await draw(net, requester, job_id, [0])


async def test_no_show_is_slashed_by_anyone_and_its_seat_redrawn(net: Chain) -> None:
    requester, by_address, p, job_id, seats = await one_task_drawn(net)
    present, absent = by_address[seats[0][0]], by_address[seats[0][1]]
    with pytest.raises(errors.JobMarketNothingToDraw):
        await requester.draw(job_id, [0])  # both seats are held
    with pytest.raises(errors.JobMarketNotResolvable):
        await requester.resolve(job_id, 0, absent.address)
    await present.commit(job_id, [0], [result_of(job_id, 0, sha(b"x"))], [seal_of(present.address, job_id, 0,
                                                                                  sha(b"x"))])
    net.warp(p.lease_duration + 1)
    with pytest.raises(errors.JobMarketLeaseExpired) as info:
        await absent.commit(job_id, [0], [b"\x01" * 32], [b"\x02" * 32])
    assert info.value.args_dict["taskId"] == 0
    r = await requester.resolve(job_id, 0, absent.address)  # anyone may slash a no-show
    assert [e.outcome for e in r.events if isinstance(e, ReplicaResolved)] == [Outcome.SLASHED]
    assert (await requester.task(job_id, 0)).seated == 1
    assert (await requester.replica(job_id, 0, absent.address)).state is ReplicaState.SLASHED
    redrawn = await draw(net, requester, job_id, [0], per_task=1)
    assert absent.address not in redrawn[0] and present.address not in redrawn[0]
    assert (await requester.worker(absent.address)).slashed == 1


async def test_a_declined_seat_costs_nothing_and_is_redrawn(net: Chain) -> None:
    requester, by_address, p, job_id, seats = await one_task_drawn(net)
    decliner = by_address[seats[0][0]]
    assert (await decliner.worker()).locked == p.collateral
    r = await decliner.decline(job_id, [0])
    assert r.events_named("TaskDeclined")
    info = await decliner.worker()
    assert (info.locked, info.stake, info.slashed) == (0, ETH, 0)
    with pytest.raises(errors.JobMarketWrongReplicaState):
        await decliner.decline(job_id, [0])
    redrawn = await draw(net, requester, job_id, [0], per_task=1)
    assert decliner.address not in redrawn[0]
