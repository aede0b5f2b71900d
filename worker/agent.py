"""The worker agent: follows the chain, claims tasks that fit, computes them in
sandboxed subprocesses, commits, reveals, collects and withdraws.

State that matters after a crash (claims, digests, salts) is in SQLite before
any transaction acts on it; on restart every open replica is reconciled with
the chain and carried on. The chain is the source of truth: the local tables
only remember what this worker intends and what it has already seen.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import random
import signal
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from shardex import jobs
from shardex.chain import ChainClient, Deployment, JobState, ReplicaState, new_salt
from shardex.chain.errors import ChainError, ContractRevert
from shardex.chain.models import (
    EndpointAnnounced,
    JobPosted,
    ResultCommitted,
    TaskClaimed,
    TaskSettled,
)
from shardex.errors import ConfigError
from shardex.programs import BUILTIN
from shardex.serving import start_server
from shardex.storage import EmbeddedStore, StoreError
from shardex.storage.fetcher import Fetcher
from shardex.storage.providers import Providers
from worker.admission import Admission, gpu_request
from worker.executor import RunnerFailure, TaskLimits, kill_group
from worker.gpu import FakeBackend, GpuPool, GpuPoolError, detect_backend
from worker.gpu.watchdog import GpuWatchdog
from worker.http import worker_app
from worker.loopstats import LoopStats
from worker.options import WorkerOptions
from worker.runtime import TaskRuntime
from worker.settlement import Settlement
from worker.state import OPEN, AsyncState
from worker.tasks import TaskInput, compute

log = logging.getLogger("shardex.worker")


@dataclass
class _Job:
    spec: jobs.JobSpec
    info: object  # shardex.chain.Job


def _lock_data_dir(data_dir: Path):
    """One agent per data dir (and so per key, by default): a second would race the
    first for nonces and state. The lock goes with the process, however it ends."""
    lock = (data_dir / "agent.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise ConfigError(f"{data_dir} is in use by a running worker (pid {holder}): one worker per key and "
                          "data dir") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _gpu_backend(spec: str):
    if spec == "none":
        return None
    if spec.startswith("fake:"):
        return FakeBackend(spec, track_liveness=True)
    if spec == "auto":
        return detect_backend()  # None without a GPU: a CPU-only pool, not an error
    raise ValueError(f"--gpus must be auto, none or fake:NxSIZE, not {spec!r}")


class Agent:
    def __init__(self, rpc_url: str, deployment: Deployment, account: LocalAccount, opts: WorkerOptions, *,
                 chain: ChainClient | None = None, state: AsyncState | None = None,
                 store: EmbeddedStore | None = None) -> None:
        """``chain``, ``state`` and ``store`` default to the real ones for ``opts``;
        pass others to run the agent against something else."""
        self.opts = opts
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        opts.data_dir.chmod(0o700)  # salts before reveal, keys' neighbours: nobody else's to read
        self._lock = _lock_data_dir(opts.data_dir)
        self.runner_failures: dict[int, int] = defaultdict(int)
        self.loop_stats = LoopStats()
        self._block_time_at = 0.0
        self._tick_failures = 0
        self.refused: dict[int, str] = {}  # job -> why this worker will not take it (GET /shardex/worker)
        self._last_failure: str | None = None
        self.chain = chain or ChainClient(rpc_url, deployment, account)
        self.state = state or AsyncState(opts.data_dir / "state.sqlite")
        self.store = store or EmbeddedStore(opts.data_dir / "store")
        self.address = account.address
        self.stopping = asyncio.Event()
        self.running: dict[tuple[int, int, int], asyncio.Task] = {}
        self.jobs: dict[int, _Job] = {}
        self.providers = Providers(timeout=10)
        self.others_claims: dict[tuple[int, int, int], dict[str, int]] = defaultdict(dict)
        self.endpoint: str | None = None
        self._last_withdraw = 0.0
        self.gpu_pool = GpuPool(_gpu_backend(opts.gpus), opts.gpu_policy)
        self.runtime = TaskRuntime(opts, self.gpu_pool)
        self.admission = Admission(opts, self.gpu_pool, self.runtime)
        self.settlement = Settlement(self.chain, self.state, self.address)
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
        await self._adopt_state()
        self.refused = await self.state.rejections()
        await self._measure_block_time(0.0)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.runtime.set_up()
        await self._serve_outputs()
        await self._ensure_stake()
        watchdog = asyncio.create_task(self.watchdog.run())
        lag_monitor = asyncio.create_task(self.loop_stats.watch())
        if self.colocation is not None:
            await self._serve_online()
        log.info("worker %s serving %s; GPUs: %s, sharing: %s", self.address, self.endpoint,
                 self.gpu_pool.advertise(), self.runtime.gpu_sharing)
        try:
            while not self.stopping.is_set():
                started = loop.time()
                pause = await self.tick_safely()
                self.loop_stats.tick_took(loop.time() - started)
                try:
                    await asyncio.wait_for(self.stopping.wait(), pause)
                except TimeoutError:
                    pass
            await self._drain()
        finally:
            watchdog.cancel()
            lag_monitor.cancel()
            if self.colocation is not None:
                await asyncio.to_thread(self.colocation.stop)  # its thread continues every paused task on the way out
                self.colocation.release_all()
                await self._online_server.stop()
            for task in self.running.values():
                task.cancel()
            await self._outputs_server.stop()
            await self.providers.aclose()
            await self.chain.aclose()
            await self.state.close()
            await self.runtime.close()

    async def tick_safely(self) -> float:
        """One tick; seconds until the next. A failing tick (the node restarting, a
        timeout, a nonce someone else used: the client resyncs it) never ends the
        agent: it is logged, once per kind of failure, and retried with backoff.
        Only SIGTERM, or a configuration that cannot work, ends it."""
        try:
            await self.tick()
        except (asyncio.CancelledError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring: nothing transient may end the agent
            self._tick_failures += 1
            kind = f"{type(exc).__name__}: {exc}"[:300]
            if kind != self._last_failure:
                self._last_failure = kind
                log.warning("tick failed (%s); retrying with backoff", kind, exc_info=self._tick_failures == 1)
            return min(30.0, self.opts.poll_interval * 2 ** min(self._tick_failures, 8))
        if self._tick_failures:
            log.info("tick recovered after %d failures", self._tick_failures)
        self._tick_failures, self._last_failure = 0, None
        return self.opts.poll_interval

    async def tick(self) -> None:
        await self.sync()
        now = await self.chain.timestamp()
        await self._evaluate_jobs()
        await self._reconcile(now)
        if not self.stopping.is_set():
            await self._claim()
        await self._start_computations()
        await self.settlement.commit()
        await self.settlement.reveal(now)
        await self.settlement.collect(now, self.jobs)
        await self._janitor(now)
        await self._maybe_withdraw(loop_time=asyncio.get_running_loop().time())
        await self.runtime.supervise(asyncio.get_running_loop().time())
        await self._measure_block_time(asyncio.get_running_loop().time())

    async def _measure_block_time(self, now: float) -> None:
        """How far apart this chain's blocks are: what a window must span (every ~60 s)."""
        if now and now - self._block_time_at < 60:
            return
        self._block_time_at = now or asyncio.get_running_loop().time()
        self.admission.block_time_s = await self.chain.block_time()

    async def _adopt_state(self) -> None:
        """The local state belongs to one deployment on one chain. State left by
        another (a devnet brought down and up again) is set aside, not acted on:
        its jobs do not exist here."""
        identity = await self.chain.deployment_identity()
        owner = await self.state.get("deployment")
        if owner is not None and owner != identity:
            path = self.opts.data_dir / "state.sqlite"
            aside = path.with_name(f"state-{owner.split(':')[0]}-{owner[-12:]}.sqlite")
            await self.state.close()
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            log.warning("state in %s was another chain's (%s): kept as %s, starting fresh", path, owner, aside.name)
            self.state = AsyncState(path)
            self.settlement.state = self.state
        await self.state.put("deployment", identity)

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
            if not self.running and not await self.state.replicas("computed", "committing"):
                break
            await asyncio.sleep(self.opts.poll_interval)
        await self._maybe_withdraw(loop_time=None)

    async def _serve_outputs(self) -> None:
        self._outputs_server = await start_server(worker_app(self.store, self.describe), self.opts.host,
                                                  self.opts.port)
        self.endpoint = self.opts.public_url or self._outputs_server.url

    def describe(self) -> dict:
        """Published at /shardex/worker: what this worker offers."""
        return {"address": self.address, "max_tasks": self.opts.max_tasks, "memory_mb": self.opts.memory_mb,
                "programs": sorted(self.opts.programs) if self.opts.programs else sorted(BUILTIN),
                "user_programs": self.runtime.user_programs,
                "gpus": {**self.gpu_pool.advertise(), "sharing": self.runtime.gpu_sharing},
                "sandbox": self.runtime.describe(), "loop": self.loop_stats.summary(),
                "refused": {str(j): why for j, why in sorted(self.refused.items())[-200:]},
                "terms": {"min_window_s": self.admission.min_window_s(), "block_time_s": self.admission.block_time_s,
                          "max_collateral_ratio": self.opts.max_collateral_ratio},
                "online": None if self.colocation is None else {"url": self.online_url,
                                                                "slo_p99_ms": self.opts.online_slo_ms,
                                                                "metrics": self.colocation.metrics()}}

    def online_embed_fn(self):
        """What serves POST /embed: None is the model (a seam tests replace with a stand-in)."""
        return None

    async def _serve_online(self) -> None:
        """The online embed service and the controller that keeps offline work out of its way."""
        from worker.colocation.online import create_app

        app = create_app(self.colocation, self.online_embed_fn())
        self._online_server = await start_server(app, self.opts.host, self.opts.online_port)
        # Its own thread, ticking every ~5 ms: a busy agent loop (claims, hashing,
        # HTTP) must not delay a yield to online work.
        self.colocation.start_in_thread()
        self.online_url = self._online_server.url
        log.info("online embed service at %s/embed, p99 SLO %g ms", self.online_url, self.opts.online_slo_ms)

    async def _ensure_stake(self) -> None:
        info = await self.chain.worker()
        if info.stake < self.opts.stake:
            await self.chain.stake(self.opts.stake - info.stake)
            log.info("staked %d wei", self.opts.stake - info.stake)
        if await self.state.get("endpoint") != self.endpoint:
            await self.chain.announce(self.endpoint)
            await self.state.put("endpoint", self.endpoint)

    # ------------------------------------------------------------ chain events

    async def sync(self) -> None:
        latest = await self.chain.block_number()
        cursor = await self.state.get_cursor()
        start = cursor + 1 if cursor >= 0 else self.chain.deployment.block
        while start <= latest:
            end = min(latest, start + 4999)
            for event in await self.chain.events(from_block=start, to_block=end):
                await self._on_event(event)
            await self.state.set_cursor(end)
            start = end + 1

    async def _on_event(self, e) -> None:
        if isinstance(e, JobPosted):
            if await self.state.job(e.job_id) is None:
                await self.state.set_job(e.job_id, "new")
        elif isinstance(e, EndpointAnnounced):
            await self.state.set_endpoint(e.worker, e.endpoint)
        elif isinstance(e, TaskSettled):
            await self.state.set_settled(e.job_id, e.task_id, e.round, e.digest)
        elif isinstance(e, TaskClaimed) and e.worker != self.address:
            self.others_claims[(e.job_id, e.task_id, e.round)][e.worker] = e.lease_deadline
        elif isinstance(e, ResultCommitted):
            for key in [k for k in self.others_claims if k[:2] == (e.job_id, e.task_id)]:
                self.others_claims[key].pop(e.worker, None)

    # ------------------------------------------------------------ jobs

    async def fetcher(self, requester: str | None = None) -> Fetcher:
        endpoints = await self.state.endpoints()
        self.providers.exclude = {self.endpoint} if self.endpoint else set()
        return self.providers.fetcher(self.store, endpoints.values(),
                                      first=endpoints.get((requester or "").lower()))

    async def _evaluate_jobs(self) -> None:
        for job_id in await self.state.jobs_with_status("new"):
            info = await self.chain.job(job_id)
            if not info.state.active:
                await self.state.set_job(job_id, "done", reason=info.state.name)
                continue
            try:
                cid = jobs.spec_cid(info.spec_digest)
                await (await self.fetcher(info.requester)).fetch(cid)
                spec = jobs.JobSpec.from_bytes(await self.store.cat_bytes(cid))
            except (StoreError, jobs.JobSpecError) as exc:
                log.info("job %d: spec not available yet (%s)", job_id, exc)
                continue
            reason = self.admission.refuse(spec, info)
            await self.state.set_job(job_id, "rejected" if reason else "accepted", spec.to_bytes(), reason)
            if reason:
                self.refused[job_id] = reason
            log.info("job %d %s%s", job_id, "rejected: " if reason else "accepted", reason or "")
        for job_id in await self.state.jobs_with_status("accepted"):
            job = self.jobs.get(job_id)
            if job is None:
                _, spec_bytes = await self.state.job(job_id)
                self.jobs[job_id] = _Job(jobs.JobSpec.from_bytes(spec_bytes), await self.chain.job(job_id))
            elif job.info.state.active:  # a finished job stays finished: no need to ask the chain again
                job.info = await self.chain.job(job_id)

    # ------------------------------------------------------------ claims

    def _admitting(self) -> bool:
        """Online work first: no new offline work while the controller says so."""
        return self.colocation is None or self.colocation.admit()

    async def _claim(self) -> None:
        if not self._admitting():
            return
        # A claim occupies a slot from the claim until its result is computed
        # (running tasks are among these rows: do not count them twice).
        free = self.opts.max_tasks - len(await self.state.replicas("claiming", "claimed"))
        if free <= 0:
            return
        w = await self.chain.worker()
        for job_id, job in self.jobs.items():
            info = job.info
            if not info.state.active or free <= 0:
                continue
            first, last = (0, info.map_tasks) if info.state == JobState.MAP else (info.map_tasks, info.tasks)
            mine = {(r.task_id) for r in await self.state.replicas(*OPEN, job_id=job_id)}
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
                await self.state.upsert(job_id, task_id, rnd, "claiming")
            try:
                receipt = await self.chain.claim(job_id, [t for t, _ in picked])
            except ContractRevert as exc:
                log.info("job %d: claim of %s refused: %s", job_id, [t for t, _ in picked], exc)
                for task_id, rnd in picked:
                    await self.state.forget(job_id, task_id, rnd)
                continue
            for e in receipt.events:
                if isinstance(e, TaskClaimed):
                    await self.state.upsert(job_id, e.task_id, e.round, "claimed", lease_deadline=e.lease_deadline)
            free -= len(picked)

    async def _start_computations(self) -> None:
        if not self._admitting():
            return
        for row in await self.state.replicas("claimed"):
            key = (row.job_id, row.task_id, row.round)
            if key in self.running or row.job_id not in self.jobs:
                continue
            job = self.jobs[row.job_id]
            inp = TaskInput(row.job_id, row.task_id, row.round, job.spec, await self.state.settled(row.job_id))
            task = asyncio.create_task(self._compute(inp))
            self.running[key] = task
            task.add_done_callback(lambda _t, key=key: self.running.pop(key, None))

    async def _compute(self, inp: TaskInput) -> None:
        fetcher = await self.fetcher(str(self.jobs[inp.job_id].info.requester))
        lease, pids = None, []
        res = inp.spec.resources
        if res.gpus > 0:
            try:
                lease = self.gpu_pool.allocate(gpu_request(res), owner=f"{inp.job_id}:{inp.task_id}")
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

        limits = TaskLimits(memory_mb=res.memory_mb, timeout_s=res.timeout_s, cpus=self.runtime.cpus_per_task,
                            disk_mb=res.disk_mb)
        try:
            manifest = await compute(inp, self.store, fetcher, self.opts.data_dir / "scratch", limits=limits,
                                     on_spawn=spawned, **self.runtime.run_options(lease))
            self.runner_failures.pop(inp.job_id, None)
        except RunnerFailure as exc:
            # This machine, not the job: never commit it. Twice in a row for a
            # job and the worker stops taking its tasks (a claim already held
            # cannot be handed back under this protocol).
            self.runner_failures[inp.job_id] += 1
            log.warning("job %d task %d: the task runner failed on this worker: %s", inp.job_id, inp.task_id, exc)
            if self.runner_failures[inp.job_id] >= 2:
                reason = f"this worker cannot run it: {exc}"[:500]
                await self.state.set_job(inp.job_id, "rejected", reason=reason)
                self.refused[inp.job_id] = reason
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
        # Written before the commit transaction exists: digest and salt survive any crash.
        await self.state.upsert(inp.job_id, inp.task_id, inp.round, "computed", digest=digest, salt=new_salt())

    # ------------------------------------------------------------ commit, reveal, collect

    async def _reconcile(self, now: int) -> None:
        """Claims whose transaction outcome is unknown (a crash between intent and
        receipt), and claims that ran out of lease before committing."""
        for row in await self.state.replicas("claiming", "claimed"):
            if (row.job_id, row.task_id, row.round) in self.running:
                continue
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if row.status == "claiming":
                if rep.state == ReplicaState.CLAIMED and rep.round == row.round:
                    await self.state.upsert(row.job_id, row.task_id, row.round, "claimed", lease_deadline=rep.deadline)
                else:
                    await self.state.forget(row.job_id, row.task_id, row.round)
            elif row.lease_deadline and now > row.lease_deadline:
                await self.state.upsert(row.job_id, row.task_id, row.round, "lost", error="lease expired before commit")

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
