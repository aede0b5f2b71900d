"""GPU leases enforced on real task processes, through the fake NVML backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from worker.executor import TaskLimits, kill_group, run_program
from worker.gpu import FakeBackend, GpuPool, GpuRequest
from worker.gpu.watchdog import GpuWatchdog

pytestmark = pytest.mark.integration

SLEEPER = "import time\ndef map(record):\n    time.sleep(30)\n    yield record, 1\ndef reduce(key, values):\n    yield key\n"


def task_files(tmp_path: Path) -> dict:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    program = scratch / "p.py"
    program.write_text(SLEEPER)
    params = scratch / "params.json"
    params.write_text(json.dumps({}))
    shard = scratch / "shard"
    shard.write_text("one line\n")
    return dict(phase="map", program=None, program_file=program, params_file=params, index=0, map_shards=1,
                reduce_shards=1, inputs=[shard], scratch=scratch, limits=TaskLimits(memory_mb=2048, timeout_s=60))


async def test_a_task_over_its_gpu_memory_lease_is_killed_and_its_lease_reclaimed(tmp_path: Path) -> None:
    backend = FakeBackend("fake:1x16GB", track_liveness=True)
    pool = GpuPool(backend)
    lease = pool.allocate(GpuRequest(gpus=1, memory_mb=4096), owner="job1:task0")
    assert lease is not None and lease.env()["CUDA_VISIBLE_DEVICES"] == backend.uuid(0)
    pids: list[int] = []

    def spawned(pid: int) -> None:
        pids.append(pid)
        pool.attach(lease, [pid])

    run = asyncio.create_task(run_program(**task_files(tmp_path), extra_env=lease.env(), on_spawn=spawned))
    while not pids:
        await asyncio.sleep(0.01)
    watchdog = GpuWatchdog(pool, kill_group)
    backend.set_process(backend.uuid(0), pids[0], 3000)  # within its lease
    assert watchdog.check() == []
    backend.set_process(backend.uuid(0), pids[0], 6000)  # 2 GB over
    assert [k.pid for k in watchdog.check()] == pids
    result = await asyncio.wait_for(run, 10)
    assert result.error is not None and "GPU memory lease" in result.error
    assert pool.release(lease, pids)  # the killed process is gone from the card: freed at once
    assert pool.cards()[0].free_mb == 16 * 1024
    assert pool.allocate(GpuRequest(gpus=1, memory_mb=16 * 1024), owner="next") is not None


async def test_a_crashed_tasks_lease_is_released_once_its_process_is_gone(tmp_path: Path) -> None:
    backend = FakeBackend("fake:2x24GB", track_liveness=True)
    pool = GpuPool(backend)
    lease = pool.allocate(GpuRequest(gpus=1, memory_mb=20 * 1024), owner="job1:task0")
    pids: list[int] = []

    def spawned(pid: int) -> None:
        pids.append(pid)
        pool.attach(lease, [pid])
        backend.set_process(lease.uuids[0], pid, 10_000)

    run = asyncio.create_task(run_program(**task_files(tmp_path), extra_env=lease.env(), on_spawn=spawned))
    while not pids:
        await asyncio.sleep(0.01)
    assert not pool.release(lease, pids)  # still running on the card: draining, not free
    assert pool.allocate(GpuRequest(gpus=2, memory_mb=40 * 1024), owner="big") is None
    kill_group(pids[0])  # the task crashes
    await asyncio.wait_for(run, 10)
    assert [freed.id for freed in pool.reap()] == [lease.id]
    assert pool.allocate(GpuRequest(gpus=2, memory_mb=40 * 1024), owner="big") is not None
