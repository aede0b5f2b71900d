"""A failing tick never ends the agent: it backs off and recovers (no chain needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shardex.chain import Deployment
from shardex.errors import ConfigError
from worker.agent import Agent
from worker.options import WorkerOptions

NOWHERE = Deployment(31337, "0x" + "1" * 40, "0x" + "2" * 40, 0)


class _Account:
    address = "0x" + "3" * 40


def _agent(tmp_path: Path) -> Agent:
    return Agent("http://127.0.0.1:9", NOWHERE, _Account(), WorkerOptions(data_dir=tmp_path, poll_interval=0.25))


async def test_transient_failures_back_off_and_recover(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = _agent(tmp_path)
    outcomes = [ConnectionRefusedError("node restarting"), ConnectionRefusedError("node restarting"),
                TimeoutError("rpc timed out"), None, None]

    async def tick() -> None:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure
    agent.tick = tick
    pauses = [await agent.tick_safely() for _ in range(5)]
    assert pauses == [0.5, 1.0, 2.0, 0.25, 0.25]  # backoff, then the poll interval again
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # once per kind of failure, not once per tick
    await agent.state.close()


async def test_a_configuration_error_still_ends_the_agent(tmp_path: Path) -> None:
    agent = _agent(tmp_path)

    async def tick() -> None:
        raise ConfigError("no key")
    agent.tick = tick
    with pytest.raises(ConfigError):
        await agent.tick_safely()
    await agent.state.close()


async def test_a_second_agent_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = _agent(tmp_path)
    with pytest.raises(ConfigError, match=r"in use by a running worker \(pid \d+\)"):
        _agent(tmp_path)
    await first.state.close()


async def test_seats_it_cannot_compute_before_their_lease_ends_are_declined(tmp_path: Path) -> None:
    """The lottery does not know how busy a worker is: with tasks of a job taking ~100 s here and 2 slots,
    the seats whose turn comes after their lease ends are given back (refused jobs' seats always are)."""
    agent = Agent("http://127.0.0.1:9", NOWHERE, _Account(), WorkerOptions(data_dir=tmp_path, max_tasks=2))
    declined: list[tuple[int, list[int]]] = []

    class Chain:
        async def decline(self, job_id: int, task_ids: list[int]) -> None:
            declined.append((job_id, list(task_ids)))
    agent.chain = Chain()
    now = 1_000
    for task_id in range(6):  # each with a 400 s lease
        await agent.state.upsert(1, task_id, 0, "assigned", lease_deadline=now + 400)
    await agent.state.set_job(1, "accepted")
    await agent.state.upsert(2, 0, 0, "assigned", lease_deadline=now + 400)
    await agent.state.set_job(2, "rejected", reason="unknown program")
    await agent._decline_refused(now)
    assert declined == [(2, [0])]  # nothing measured yet for job 1: its seats are kept
    agent.task_seconds[1] = 100.0
    declined.clear()
    await agent._decline_refused(now)
    # Two slots, 150 s a turn with headroom: seats 0-1 end by 150 s, 2-3 by 300 s, 4-5 by 450 s > 400 s.
    assert declined == [(1, [4, 5])]
    statuses = {r.task_id: r.status for r in await agent.state.replicas(job_id=1)}
    assert statuses == {0: "assigned", 1: "assigned", 2: "assigned", 3: "assigned", 4: "declined", 5: "declined"}
    await agent.state.close()


async def test_on_an_on_demand_chain_a_block_is_mined_once_a_no_shows_lease_has_run_out(tmp_path: Path) -> None:
    """Anvil's automine: chain time stands still while nobody transacts, so a dead
    worker's seat would be held forever. The agent mines one block when the wall
    clock (loop time) says the earliest lease it waits out has ended, not before."""
    agent = _agent(tmp_path)
    mined: list[int] = []

    class Chain:
        async def mine_empty_blocks(self, count: int = 1) -> None:
            mined.append(count)
    agent.chain = Chain()
    agent.admission.block_time_s = 0.0
    agent.others_seats[(1, 0, 0)]["0x" + "4" * 40] = 1_030  # its lease ends at chain time 1,030
    await agent._advance_idle_clock(1_000, loop_time=50.0)  # chain time first seen at loop time 50
    await agent._advance_idle_clock(1_000, loop_time=70.0)  # 20 s later: the lease still runs
    assert mined == []
    await agent._advance_idle_clock(1_000, loop_time=81.5)  # 31.5 s later: it has run out
    assert mined == [1]
    agent.admission.block_time_s = 2.0  # a chain with a block time moves on by itself
    await agent._advance_idle_clock(1_000, loop_time=200.0)
    assert mined == [1]
    await agent.state.close()


async def test_a_token_that_refuses_withdrawal_stops_nothing_else(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from shardex.chain.errors import ContractRevert

    agent = _agent(tmp_path)
    frozen, good = "0x" + "a" * 40, "0x" + "b" * 40
    withdrawn: list[str] = []

    class Refused(ContractRevert):
        error_name = "JobMarketTokenTransferFailed"

    class Chain:
        async def credits(self) -> int:
            return 0

        async def token_credits(self, token: str) -> int:
            return 5

        async def withdraw_token(self, token: str) -> None:
            if token == frozen:
                raise Refused()
            withdrawn.append(token)
    agent.chain = Chain()
    for job_id, token in ((1, frozen), (2, good), (3, "0x" + "0" * 40)):
        agent.jobs[job_id] = SimpleNamespace(info=SimpleNamespace(token=token, pays_in_token=int(token, 16) != 0))
    await agent._maybe_withdraw(loop_time=None)
    await agent._maybe_withdraw(loop_time=None)
    assert withdrawn == [good, good]  # the good token's credits, each time; the frozen one does not stop it
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and frozen in warnings[0]  # logged once
    await agent.state.close()


async def test_an_idle_agent_asks_only_for_the_head_until_there_is_news(tmp_path: Path) -> None:
    """No seats, no running task, no new block: one head query per poll, no full
    tick. A new block, a task that ended, a draw backoff or the idle interval
    running out each bring the full tick back."""
    agent = _agent(tmp_path)
    asked: list[str] = []
    head = [10]

    class Chain:
        async def block_number(self) -> int:
            asked.append("eth_blockNumber")
            return head[0]
    agent.chain = Chain()
    agent.heads.poll = agent.chain.block_number
    loop_time = asyncio.get_running_loop().time
    agent._holding, agent._retry, agent._ticked_head, agent._ticked_at = False, False, 10, loop_time()
    assert [await agent._tick_due() for _ in range(3)] == [False] * 3
    assert asked == ["eth_blockNumber"] * 3  # and nothing else: no logs, no views, no SQLite
    head[0] = 11
    assert await agent._tick_due()  # a new block: events to read
    head[0] = 10
    agent._wake.set()
    assert await agent._tick_due()  # a task ended: its result to commit
    agent._wake.clear()
    agent._draw_backoff[7] = loop_time() - 0.01
    agent._ticked_at = loop_time() - 1.0
    assert await agent._tick_due()  # a draw waited out its backoff
    agent._draw_backoff.clear()
    agent._ticked_at = loop_time() - agent.opts.idle_tick_s
    assert await agent._tick_due()  # the safety net
    agent._ticked_at, agent._holding = loop_time(), True
    assert not await agent._tick_due()  # seats held, a task running, nothing new: still one question
    agent.running[(1, 0, 0)] = None
    assert not await agent._tick_due()
    agent._ticked_at = loop_time() - agent.opts.busy_tick_s
    assert await agent._tick_due()  # holding seats, the safety net comes sooner
    agent._ticked_at, agent._retry = loop_time(), True
    assert await agent._tick_due()  # the last tick failed: what it left undone is done now
    await agent.state.close()


async def test_a_worker_the_lottery_gave_most_seats_hands_queued_ones_to_an_idle_peer(tmp_path: Path) -> None:
    """r = 1, two workers: this one holds six seats of job 1, the peer committed its own and holds none.
    The tail of the queue is declined (redrawn, never to this worker) until the two are about even."""
    from types import SimpleNamespace

    agent = Agent("http://127.0.0.1:9", NOWHERE, _Account(), WorkerOptions(data_dir=tmp_path, max_tasks=1))
    declined: list[tuple[int, list[int]]] = []

    from shardex.chain.models import ReplicaState

    sat_before: set[int] = set()  # tasks the peer sat on while this agent was down (it never saw the events)

    class Chain:
        async def decline(self, job_id: int, task_ids: list[int]) -> None:
            declined.append((job_id, list(task_ids)))

        async def replica(self, job_id: int, task_id: int, worker: str):
            return SimpleNamespace(state=ReplicaState.DECLINED if task_id in sat_before else ReplicaState.NONE)
    agent.chain = Chain()
    now, peer = 1_000, "0x" + "4" * 40
    agent.jobs[1] = SimpleNamespace(info=SimpleNamespace(lease_duration=400, margin=3))
    await agent.state.set_job(1, "accepted")
    for task_id in range(6):
        await agent.state.upsert(1, task_id, 0, "assigned", lease_deadline=now + 400)
        agent.seated_in[(1, task_id)].add(agent.address)
    agent.running[(1, 0, 0)] = None
    await agent._decline_refused(now)
    assert declined == []  # the peer never committed on the job: it may be gone
    agent.committers[1][peer] = asyncio.get_running_loop().time() - 200  # long ago: it may be gone
    await agent._decline_refused(now)
    assert declined == []
    agent.committers[1][peer] = asyncio.get_running_loop().time()  # it just committed
    agent.others_seats[(1, 7, 0)][peer] = now + 400  # it holds one seat still
    await agent._decline_refused(now)
    # Margin 3: only honest workers shed, so their seats would be redrawn and an adversary's stay.
    assert declined == []
    agent.jobs[1].info.margin = 1
    sat_before.add(5)  # the chain says the peer sat on task 5 already: nobody could take it
    await agent._decline_refused(now)
    assert declined == [(1, [4])]
    assert peer in agent.seated_in[(1, 5)]
    sat_before.clear()
    declined.clear()
    agent._shed_pending.clear()
    agent.others_seats[(1, 4, 0)].pop(peer, None)
    await agent.state.upsert(1, 4, 0, "assigned", lease_deadline=now + 400)
    agent.seated_in[(1, 5)].discard(peer)
    await agent._decline_refused(now)
    # 6 vs 1 -> 5 vs 2 -> 4 vs 3: seats 5 and 4 go; seats past their decline window would stay.
    assert declined == [(1, [4, 5])]
    declined.clear()
    await agent._decline_refused(now)  # before the seats given back are seen redrawn, judge nothing
    assert declined == []
    for task_id in (4, 5):  # redrawn to the peer
        agent.others_seats[(1, task_id, 0)][peer] = now + 400
        agent._shed_pending.pop((1, task_id))
    await agent.state.upsert(1, 6, 0, "assigned", lease_deadline=now + 400)
    agent.seated_in[(1, 6)].add(agent.address)
    agent.others_seats[(1, 7, 0)].pop(peer)
    agent.others_seats[(1, 5, 0)].pop(peer)  # the peer is done with two of its three: 5 vs 1 now
    await agent._decline_refused(now + 99)  # ...but the decline window (a quarter of the lease) is about to close
    assert declined == []
    await agent._decline_refused(now + 90)
    assert declined == [(1, [3, 6])]
    await agent.state.close()


async def test_the_next_seats_shard_is_fetched_while_the_running_task_computes(tmp_path: Path) -> None:
    """max_tasks 1, two seats: while the first computes, the second's program and shard are fetched,
    once; a reduce seat's inputs (partitions of every map task) are left to the task itself."""
    from types import SimpleNamespace

    from shardex.jobs import JobSpec
    from worker.agent import _Job

    agent = Agent("http://127.0.0.1:9", NOWHERE, _Account(), WorkerOptions(data_dir=tmp_path, max_tasks=1))
    fetched: list[str] = []

    class Fetcher:
        async def fetch(self, cid: str) -> None:
            fetched.append(cid)

    async def fetcher(requester=None):
        return Fetcher()
    agent.fetcher = fetcher
    spec = JobSpec(program=None, program_cid="program", params={}, map_shards=["shard-0", "shard-1"],
                   reduce_shards=1, input_bytes=2)
    agent.jobs[1] = _Job(spec, SimpleNamespace(job_id=1, requester="0x" + "5" * 40))
    await agent.state.set_job(1, "accepted")
    for task_id in (0, 1):
        await agent.state.upsert(1, task_id, 0, "assigned", lease_deadline=10_000)
    agent.running[(1, 0, 0)] = asyncio.get_running_loop().create_future()  # task 0 computes
    await agent._start_computations()
    await agent._start_computations()  # a second tick while it still runs: nothing fetched twice
    await agent._prefetch[1]
    assert fetched == ["program", "shard-1"]
    agent._prefetch_input((1, 2, 0))  # a reduce seat
    assert agent._prefetch[0] == (1, 1, 0)
    await agent.state.close()
