"""Compute one task: fetch verified inputs, run the program, store the outputs,
and return the canonical manifest whose digest the worker commits to."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shardex import jobs
from shardex.jobs import JobSpec
from shardex.storage import CID, EmbeddedStore
from shardex.storage.fetcher import Fetcher
from worker.executor import TaskLimits, run_program


@dataclass
class TaskInput:
    job_id: int
    task_id: int
    round: int
    spec: JobSpec
    settled: dict[int, bytes]  # map task -> accepted manifest digest (reduce tasks need all of them)
    #: Where the task's time went, in seconds: fetch (from providers, verified),
    #: stage (into the sandbox's directory), run (the program) and store (outputs).
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timed(self, part: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - started


async def _fetch_into(task: TaskInput, fetcher: Fetcher, store: EmbeddedStore, cid, path: Path) -> None:
    """Fetches (and verifies) a file into the store, then stages it at path (hard links of its
    blocks where it can: the task reads the store's own files), timing each."""
    with task.timed("fetch"):
        await fetcher.fetch(cid)
    with task.timed("stage"):
        await store.stage(cid, path)


async def compute(task: TaskInput, store: EmbeddedStore, fetcher: Fetcher, scratch_root: Path, *,
                  limits: TaskLimits, **run) -> bytes:
    """The manifest bytes for this task (a map, reduce or deterministic error manifest).
    ``run``: the sandbox, cgroups, GPU environment and devices, on_spawn (see run_program)."""
    spec = task.spec
    m = len(spec.map_shards)
    scratch = scratch_root / f"{task.job_id}-{task.task_id}-{task.round}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    scratch.chmod(0o755)  # a task running under a uid of its own reads its inputs here
    try:
        params_file = scratch / "params.json"
        params_file.write_bytes(jobs.canonical_json(spec.params))
        program_file = None
        if spec.program_cid:
            program_file = scratch / "program.py"
            await _fetch_into(task, fetcher, store, spec.program_cid, program_file)
        if task.task_id < m:
            phase, index = "map", task.task_id
            shard = CID.parse(spec.map_shards[index])
            inputs = [scratch / "input"]
            await _fetch_into(task, fetcher, store, shard, inputs[0])
        else:
            phase, index = "reduce", task.task_id - m
            inputs = []
            for map_task in range(m):
                manifest_cid = jobs.manifest_cid(task.settled[map_task])
                with task.timed("fetch"):
                    await fetcher.fetch(manifest_cid)
                manifest = jobs.parse_manifest(await store.cat_bytes(manifest_cid))
                if manifest["kind"] == "error":
                    return jobs.error_manifest(f"map task {map_task} failed: {manifest['error']}")
                part = CID.parse(manifest["partitions"][index])
                path = scratch / f"in-{map_task:05d}"
                await _fetch_into(task, fetcher, store, part, path)
                inputs.append(path)
        with task.timed("run"):
            result = await run_program(
                phase=phase, program=spec.program, program_file=program_file, params_file=params_file, index=index,
                map_shards=m, reduce_shards=spec.reduce_shards, inputs=inputs, scratch=scratch, limits=limits,
                **run)
        if result.error is not None:
            return jobs.error_manifest(result.error)
        with task.timed("store"):
            cids = [await store.add_path(path) for path in result.outputs]
        if phase == "map":
            return jobs.map_manifest(cids)
        return jobs.reduce_manifest(cids[0], result.outputs[0].stat().st_size)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
