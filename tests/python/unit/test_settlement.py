"""The settlement half of a worker's tick: what it asks the chain, and what it sends."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from shardex.chain import JobState, Replica, ReplicaState, result_of
from shardex.chain.models import Task
from worker.settlement import Settlement
from worker.state import AsyncState

ME = "0x" + "aa" * 20
DIGEST = b"\x07" * 32


@pytest.fixture
async def state(tmp_path: Path):
    s = AsyncState(tmp_path / "worker.sqlite")
    yield s
    await s.close()


def task(settled: bool = False, winner: bytes = bytes(12), reveal_deadline: int = 0) -> Task:
    return Task(winner, winner, 0, 1, 1, 1, settled, 1, 1, 0, reveal_deadline, 0, 1, 0)


@dataclass
class CountingChain:
    """Job 1's tasks as given; counts every request settlement makes."""

    tasks: dict[int, Task]
    replicas: dict[int, Replica]
    calls: Counter = field(default_factory=Counter)
    collected: list = field(default_factory=list)

    async def task(self, job_id: int, task_id: int, block: int | str = "latest") -> Task:
        self.calls["task"] += 1
        return self.tasks[task_id]

    async def replica(self, job_id: int, task_id: int, worker: str) -> Replica:
        self.calls["replica"] += 1
        return self.replicas[task_id]

    async def job(self, job_id: int):
        self.calls["job"] += 1
        return SimpleNamespace(state=JobState.MAP, deadline=10**9)

    async def reveal(self, job_id: int, task_ids: list[int], digests: list[bytes]) -> None:
        self.calls["reveal"] += 1

    async def collect(self, job_id: int, task_ids: list[int]) -> None:
        self.collected += task_ids


async def test_a_tick_reads_each_waiting_task_once_and_collects_only_what_has_a_verdict(state: AsyncState) -> None:
    """Committed seats wait for their rounds to be won; reveal and collect share one view of each task per
    tick, so a waiting seat costs one request a tick, not three, and only a seat whose task has a verdict it
    lost is collected (one that opened the winner was paid by its reveal)."""
    mine = result_of(1, 0, DIGEST)[:12]
    other = b"\x01" * 12
    chain = CountingChain(
        tasks={0: task(), 1: task(), 2: task(settled=True, winner=other, reveal_deadline=10**9)},
        replicas={t: Replica(mine, b"\x02" * 12, 0, ReplicaState.COMMITTED, 0) for t in range(3)})
    for t in range(3):
        await state.upsert(1, t, 0, "committed", digest=DIGEST)
    settlement = Settlement(chain, state, ME)
    now = 100
    await settlement.reveal(now)
    await settlement.collect(now, {})
    assert chain.calls["task"] == 3  # one view per task, shared by reveal and collect
    assert chain.calls["replica"] == 1  # only the settled task's seat was looked at
    assert chain.calls["reveal"] == 0  # nothing this worker committed has won
    assert chain.collected == [2]  # another result won task 2: its seat is slashed, and collected
    assert {r.task_id: r.status for r in await state.replicas()} == {0: "committed", 1: "committed", 2: "resolved"}
