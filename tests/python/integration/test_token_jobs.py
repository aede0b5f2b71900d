"""A job paid in an ERC-20 through the SDK against a real Anvil: the requester's
escrow approved and taken in the token, rewards and the refund credited and
withdrawn in it, ETH untouched; a balance that cannot cover the escrow is a
plain error before anything is sent. The token is the tests' mock
(tests/contracts/mocks/Tokens.sol), compiled here with the project's solc."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from backend import db, queries
from backend.indexer import Indexer
from shardex.chain import JobParams, JobState, result_of, seal_of
from shardex.chain.models import TaskAssigned
from shardex.requester import SubmitError, fund_token_escrow
from tests.python.conftest import Chain
from tests.python.tokens import deploy_mock_erc20

ETH = 10**18
pytestmark = pytest.mark.integration


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def deploy_token(net: Chain, holder: str, amount: int) -> str:
    return deploy_mock_erc20(net.rpc_url, net.accounts[0].address, holder, amount)


async def test_a_job_paid_in_a_token_pays_and_refunds_in_it(net: Chain, tmp_path: Path) -> None:
    requester, reader = net.client(1), net.reader()
    workers = [net.client(i) for i in (2, 3)]
    await asyncio.gather(*(w.stake(ETH) for w in workers))
    await asyncio.gather(*(w.opt_in(0) for w in workers))
    await net.next_epoch()
    reward = 2_500_000  # 2.5 of a 6-decimal token
    p = JobParams(spec_digest=sha(b"token job"), map_tasks=2, reduce_tasks=0, epsilon_ppm=20_000,
                  adversary_ppm=100_000, reward_per_replica=reward, collateral=ETH // 10, min_stake=ETH // 2,
                  max_rounds=2, extra_seats=3, lease_duration=600, reveal_window=300, job_timeout=3600)
    assert p.margin == 2
    token = deploy_token(net, requester.address, p.escrow)
    p = JobParams(**{**p.__dict__, "token": token})
    eth_before = await reader.w3.eth.get_balance(net.deployment.market)

    await fund_token_escrow(requester, p)
    assert await requester.token_allowance(token) == p.escrow
    job_id = (await requester.post_job(p)).events_named("JobPosted")[0].job_id
    job = await reader.job(job_id)
    assert job.pays_in_token and job.token.lower() == token.lower() and job.escrow == p.escrow
    assert await reader.token_balance(token, net.deployment.market) == p.escrow
    assert await requester.token_balance(token) == 0

    seats: dict[int, list[str]] = {0: [], 1: []}
    for _ in range(8):
        net.mine()
        open_tasks = [t for t in seats if len(seats[t]) < 2]
        if not open_tasks:
            break
        for e in (await requester.draw(job_id, open_tasks)).events:
            if isinstance(e, TaskAssigned):
                seats[e.task_id].append(e.worker)
    by_address = {w.address: w for w in workers}
    assert all(sorted(ws) == sorted(by_address) for ws in seats.values()), seats
    for w in workers:
        digests = [sha(b"output %d" % t) for t in (0, 1)]
        await w.commit(job_id, [0, 1], [result_of(job_id, t, d) for t, d in zip((0, 1), digests)],
                       [seal_of(w.address, job_id, t, d) for t, d in zip((0, 1), digests)])
    for w in workers:
        await w.reveal(job_id, [0, 1], [sha(b"output %d" % t) for t in (0, 1)])  # paid on the spot
        assert await w.token_credits(token) == 2 * reward
        assert await w.credits() == 0  # nothing in ETH
        await w.withdraw_token(token)
        assert await w.token_balance(token) == 2 * reward
    assert (await reader.job(job_id)).state == JobState.COMPLETED

    net.warp(3600 + 1)
    await requester.refund(job_id)
    assert await requester.token_credits(token) == 3 * reward  # the three extra seats nobody used
    await requester.withdraw_token(token)
    assert await requester.token_balance(token) == 3 * reward
    assert await reader.token_balance(token, net.deployment.market) == 0
    assert await reader.w3.eth.get_balance(net.deployment.market) == eth_before

    # The gateway's index says which currency the job's amounts are in.
    engine = db.make_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    await Indexer(engine, reader).rebuild()
    summary = queries.job_summary(queries_row(engine, job_id))
    assert summary["token"].lower() == token.lower() and int(summary["escrow_wei"]) == p.escrow


def queries_row(engine, job_id: int):
    from sqlalchemy import select

    with engine.connect() as conn:
        return conn.execute(select(db.jobs).where(db.jobs.c.job_id == job_id)).one()


async def test_a_token_escrow_the_balance_cannot_cover_is_refused_before_sending(net: Chain) -> None:
    requester = net.client(1)
    p = JobParams(spec_digest=sha(b"short"), map_tasks=1, reduce_tasks=0, reward_per_replica=1_000_000,
                  collateral=ETH // 10, min_stake=ETH // 2)
    token = deploy_token(net, requester.address, p.escrow - 1)
    p = JobParams(**{**p.__dict__, "token": token})
    with pytest.raises(SubmitError, match=f"escrow is {p.escrow} units of token {token}; this account holds "
                                          f"{p.escrow - 1}"):
        await fund_token_escrow(requester, p)
    assert await requester.token_allowance(token) == 0
