"""worker.reorg against a chain that went back: which checkpoint is the fork, and how each
local replica is made to agree with what the chain still has."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from shardex.chain import JobState, Replica, ReplicaState
from worker.reorg import Checkpoints, reconcile
from worker.state import AsyncState

ME = "0x" + "aa" * 20
SPEC = b'{"program": "wordcount"}'


@dataclass
class FakeChain:
    """What reconcile and Checkpoints read of a chain: its blocks, jobs and this worker's replicas."""

    hashes: dict[int, str]
    specs: dict[int, bytes]  # job id -> spec digest on chain
    replicas: dict[tuple[int, int], tuple[ReplicaState, int]]
    deployment: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(block=1))

    async def block_hash(self, number: int) -> str | None:
        return self.hashes.get(number)

    async def job_count(self) -> int:
        return len(self.specs)

    async def job(self, job_id: int) -> SimpleNamespace:
        return SimpleNamespace(spec_digest=self.specs[job_id], state=JobState.MAP)

    async def replica(self, job_id: int, task_id: int, worker: str) -> Replica:
        state, rnd = self.replicas.get((job_id, task_id), (ReplicaState.NONE, 0))
        return Replica(b"", b"", 0, state, rnd)


@pytest.fixture
async def state(tmp_path: Path):
    s = AsyncState(tmp_path / "state.sqlite")
    yield s
    await s.close()


async def test_the_fork_is_the_newest_checkpoint_still_on_the_chain(state: AsyncState) -> None:
    chain = FakeChain({n: f"0x{n:02x}" for n in range(1, 30)}, {}, {})
    points = Checkpoints(chain, state)
    for n in (10, 20, 25):
        await points.record(n, f"0x{n:02x}")
    assert await points.fork() is None  # nothing changed
    assert await points.fork((25, "0x19")) is None  # the head itself says so
    assert await points.fork((25, "0xnew")) == 20  # the same height, another block
    await points.record(25, "0x19")
    chain.hashes[25] = "0xother"  # the head was replaced
    chain.hashes.pop(21, None)
    assert await points.fork() == 20
    assert await points.fork() is None  # the checkpoints above the fork are dropped with it
    chain.hashes = {1: "0x01"}  # back past every checkpoint: read from the deployment block again
    assert await points.fork() == 0


async def test_each_replica_ends_where_the_chain_has_it(state: AsyncState) -> None:
    digest = hashlib.sha256(SPEC).digest()
    await state.set_job(1, "accepted", SPEC)
    await state.set_job(2, "accepted", SPEC)  # its id now names another job
    await state.set_job(3, "done")  # gone: the chain has two jobs
    rows = {(1, 0): "committed", (1, 1): "paid", (1, 2): "assigned", (1, 3): "computed", (1, 4): "committed",
            (1, 5): "lost", (1, 6): "lost", (1, 7): "resolved", (2, 0): "committed", (3, 0): "paid"}
    for (job, task), status in rows.items():
        await state.upsert(job, task, 0, status, digest=b"d")
    chain = FakeChain({}, {1: digest, 2: b"\x01" * 32}, {
        (1, 0): (ReplicaState.ASSIGNED, 0),  # its commit was lost
        (1, 1): (ReplicaState.COMMITTED, 0),  # its reveal (and so its payment) was lost
        # (1, 2): the seat itself was lost
        (1, 3): (ReplicaState.ASSIGNED, 0),  # running: left to its commit
        (1, 4): (ReplicaState.COMMITTED, 1),  # another round's seat
        (1, 5): (ReplicaState.ASSIGNED, 0),  # its commit was refused on the lost branch; the seat is back
        (1, 7): (ReplicaState.ASSIGNED, 0),  # released on the lost branch; here it still has to commit
        # (1, 6): given up on, and not this worker's on this branch either: a redraw here brings it back
        (2, 0): (ReplicaState.COMMITTED, 0)})
    counts = await reconcile(chain, state, ME, running={(1, 3, 0)})
    left = {(r.job_id, r.task_id): r.status for r in await state.replicas()}
    assert left == {(1, 0): "computed", (1, 1): "committed", (1, 3): "computed", (1, 5): "computed",
                    (1, 7): "computed"}
    assert counts == {"jobs_forgotten": 2, "seats_forgotten": 3, "resent": 4}
    assert [(j, status) for j, status, _ in await state.all_jobs()] == [(1, "new")]


@dataclass
class WinningChain:
    """A chain on which task 0 of job 1 was just won: at the head, and from ``won_at`` on."""

    head: int
    won_at: int
    winner: bytes
    revealed: list = field(default_factory=list)

    async def block_number(self) -> int:
        return self.head

    async def task(self, job_id: int, task_id: int, block: int | str = "latest"):
        from shardex.chain.models import Task

        won = block == "latest" or block >= self.won_at
        return Task(self.winner if won else bytes(12), self.winner, 0, 2, 2, 2, False, 2, 2, 0, 10**10, 0, 2, 0)

    async def reveal(self, job_id: int, task_ids: list[int], digests: list[bytes]) -> None:
        self.revealed += task_ids


async def test_a_worker_reveals_a_win_only_once_it_is_confirmations_deep(state: AsyncState) -> None:
    """A reveal publishes the digest: a win on a branch a reorg removes must not be opened."""
    from shardex.chain import result_of
    from worker.settlement import Settlement

    digest = b"\x07" * 32
    await state.upsert(1, 0, 0, "committed", digest=digest)
    chain = WinningChain(head=100, won_at=99, winner=result_of(1, 0, digest)[:12])
    settlement = Settlement(chain, state, ME, confirmations=2)
    await settlement.reveal(now=0)
    assert chain.revealed == []  # won one block ago: a reorg could still take it away
    chain.head = 101
    await settlement.reveal(now=0)
    assert chain.revealed == [0]
    assert (await state.replica(1, 0, 0)).status == "paid"  # the reveal paid it: nothing left to collect


async def test_a_reduce_seat_reads_back_map_results_the_worker_lost_track_of(state: AsyncState) -> None:
    """A chain restart took away the block whose TaskSettled told this worker a map result, and the event
    came again where it no longer looked: before computing a reduce seat it reads the results back from
    the chain instead of failing on a missing input (a chaos run spun on KeyError for minutes)."""
    from shardex.chain.models import TaskSettled
    from worker.agent import Agent

    await state.set_settled(1, 1, 0, b"\x01" * 32)  # map task 0's result is missing locally
    asked = []

    class Chain:
        async def events(self, names=None, job_id=None):
            asked.append((tuple(names), job_id))
            return [TaskSettled(7, "0x", 0, job_id=1, task_id=t, round=0, digest=bytes([t]) * 32) for t in (0, 1)]

    me = SimpleNamespace(state=state, chain=Chain())
    digests = await Agent._map_digests(me, 1, 2)
    assert digests == {0: b"\x00" * 32, 1: b"\x01" * 32} and asked == [(("TaskSettled",), 1)]
    assert await Agent._map_digests(me, 1, 2) == digests and len(asked) == 1  # known now: no second read
