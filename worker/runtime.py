"""Where this worker's tasks run: the sandbox, task cgroups, the CPU share of
each task, and the GPU machinery around them (the pool, MPS) — found and proven
once at start-up, then handed to every task run."""

from __future__ import annotations

import asyncio
import logging
import os

from shardex.errors import ShardexError
from worker.cgroup import CgroupParent, CgroupUnavailable
from worker.executor import RunnerFailure
from worker.gpu import GpuPool
from worker.gpu.mps import MpsDaemon, MpsError
from worker.options import WorkerOptions
from worker.sandbox import Sandbox, SandboxUnavailable
from worker.sandbox import detect as sandbox_detect
from worker.selftest import self_test

log = logging.getLogger("shardex.worker")


class TaskRuntime:
    def __init__(self, opts: WorkerOptions, gpu_pool: GpuPool) -> None:
        self.opts = opts
        self.gpu_pool = gpu_pool
        self.cpus_per_task = opts.cpus_per_task or max(1, (os.cpu_count() or 1) // max(1, opts.max_tasks))
        self.sandbox: Sandbox | None = None
        self.sandbox_problem: str | None = "not checked yet"
        self.cgroups: CgroupParent | None = None
        self.memory_enforcement = "resident-memory watchdog"
        self.mps: MpsDaemon | None = None
        self._mps_checked = 0.0

    async def set_up(self) -> None:
        """Find the sandbox and the cgroups this machine allows, prove that a task
        runs under them before any seat is taken, and start MPS if asked."""
        if not self.opts.sandbox:
            self.sandbox_problem = "disabled by --no-sandbox"
        else:
            try:
                self.sandbox = await asyncio.to_thread(sandbox_detect, uid_base=self.opts.task_uid_base)
                self.sandbox_problem = None
            except SandboxUnavailable as exc:
                self.sandbox_problem = str(exc)
        try:
            self.cgroups = await asyncio.to_thread(CgroupParent.detect)
            self.memory_enforcement = "cgroup v2 memory.max"
        except (CgroupUnavailable, OSError) as exc:
            log.info("task memory: resident-memory watchdog (%s)", exc)
        scratch = self.opts.data_dir / "scratch"
        try:
            await self_test(scratch, self.run_options(None))
        except RunnerFailure as exc:
            if self.sandbox is None:
                raise ShardexError(f"this worker cannot run any task: {exc}") from None
            self.sandbox, self.sandbox_problem = None, f"a task failed to run in the sandbox: {exc}"
            await self_test(scratch, self.run_options(None))
        if self.sandbox is not None:
            log.info("tasks run in %s; memory limited by %s", self.sandbox.description, self.memory_enforcement)
        elif self.opts.allow_user_programs:
            log.warning("NO SANDBOX (%s): refusing user programs; built-in programs run unsandboxed",
                        self.sandbox_problem)
        await self._start_mps()

    async def _start_mps(self) -> None:
        if not self.opts.mps:
            return
        if not self.gpu_pool.cards():
            log.warning("--mps: this worker has no GPU; nothing to share")
            return
        self.mps = MpsDaemon(self.opts.data_dir / "mps", self.opts.mps_control)
        await asyncio.to_thread(self.mps.start)  # MpsError (a ShardexError): the worker exits saying why

    async def supervise(self, now: float) -> None:
        """Restart the MPS daemon if it died (checked every 5 s)."""
        if self.mps is None or now - self._mps_checked < 5.0:
            return
        self._mps_checked = now
        try:
            await asyncio.to_thread(self.mps.ensure)
        except MpsError as exc:
            log.error("MPS control daemon cannot be restarted: %s", exc)

    async def close(self) -> None:
        if self.mps is not None:
            await asyncio.to_thread(self.mps.stop)

    def run_options(self, lease) -> dict:
        """What run_program needs besides the task: the sandbox and, for a GPU lease, its
        cards (and, under MPS, the daemon's pipes and the GPU tasks' shared uid)."""
        options = {"sandbox": self.sandbox, "cgroups": self.cgroups, "extra_env": None, "devices": []}
        if lease is not None and lease.slices:
            options["extra_env"] = lease.env()
            options["devices"] = self.gpu_pool.device_nodes(lease)
            if self.mps is not None:
                options["extra_env"].update(self.mps.env())
                options["bind_rw"] = [str(self.mps.pipe_dir)]
                options["shared_uid"] = True
        elif lease is not None:
            options["extra_env"] = lease.env()  # a CPU-only lease: every card hidden
        return options

    @property
    def gpu_sharing(self) -> str:
        if not self.gpu_pool.cards():
            return "none"
        return "mps" if self.mps is not None else "time-sliced (compute shares are advisory)"

    @property
    def user_programs(self) -> bool:
        return self.opts.allow_user_programs and self.sandbox is not None

    def describe(self) -> dict:
        return {"enabled": self.sandbox is not None,
                "description": self.sandbox.description if self.sandbox else None,
                "problem": self.sandbox_problem, "memory_limit": self.memory_enforcement,
                "cpus_per_task": self.cpus_per_task, "disk_mb": self.opts.disk_mb}
