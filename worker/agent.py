"""The worker agent: follows the chain, helps draw seats for the jobs it takes,
computes the tasks it is drawn for in sandboxed subprocesses, commits,
reveals, collects and withdraws; declines seats of jobs it refuses.

State that matters after a crash (seats, digests) is in SQLite before
any transaction acts on it; on restart every open replica is reconciled with
the chain and carried on. The chain is the source of truth: the local tables
only remember what this worker intends and what it has already seen.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from shardex import jobs
from shardex.chain import ChainClient, Deployment, JobState
from shardex.chain.errors import ChainError, ContractRevert, NonceTaken
from shardex.chain.heads import HeadFollower, ws_url_for
from shardex.chain.models import (
    EndpointAnnounced,
    JobPosted,
    ReplicaResolved,
    ReplicaState,
    ResultCommitted,
    SeedArmed,
    TaskAssigned,
    TaskDeclined,
    TaskEscalated,
    TaskSettled,
)
from shardex.errors import ConfigError
from shardex.programs import BUILTIN
from shardex.serving import start_server
from shardex.storage import EmbeddedStore, StoreError
from shardex.storage.errors import FetchFailed
from shardex.storage.fetcher import Fetcher
from shardex.storage.providers import Providers
from worker import reorg
from worker.admission import Admission, gpu_request
from worker.executor import RunnerFailure, TaskLimits, kill_group
from worker.gpu import FakeBackend, GpuPool, GpuPoolError, detect_backend
from worker.gpu.watchdog import GpuWatchdog
from worker.http import worker_app
from worker.loopstats import LoopStats
from worker.metrics import WorkerMetrics
from worker.options import WorkerOptions
from worker.runtime import TaskRuntime
from worker.settlement import Settlement
from worker.shedding import QueuedSeat, seats_to_shed
from worker.state import OPEN, AsyncState
from worker.tasks import TaskInput, compute

log = logging.getLogger("shardex.worker")


@dataclass
class _Job:
    spec: jobs.JobSpec
    info: object  # shardex.chain.Job


#: Seconds to wait for seats given back to a peer to be redrawn before judging who is busy again.
SHED_SETTLE_S = 10.0
#: A peer counts as working on a job (seats may be handed to it) this long after its last commit on it.
ACTIVE_PEER_S = 120.0
#: Events read more than this many blocks behind the head are history, not news.
CATCHING_UP_BLOCKS = 64


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
        opts.data_dir.chmod(0o700)  # digests before reveal, keys' neighbours: nobody else's to read
        self._lock = _lock_data_dir(opts.data_dir)
        self.runner_failures: dict[int, int] = defaultdict(int)
        self.loop_stats = LoopStats()
        self.metrics = WorkerMetrics()
        self._block_time_at = 0.0
        self._chain_clock = (0, 0.0)  # (chain time, loop time when it was first seen)
        self._stuck_tokens: set[str] = set()  # tokens whose withdrawal was refused (logged once)
        self._tick_failures = 0
        # Idle ticks (see _tick_due): the head and loop time of the last full
        # tick, what it left to do, and a wake for local news (a task ended).
        self._ticked_head = -1
        self._ticked_at = 0.0
        self._holding = True
        self._retry = True  # the last tick failed (or none ran yet): the next poll ticks in full
        self._wake = asyncio.Event()
        self.refused: dict[int, str] = {}  # job -> why this worker will not take it (GET /shardex/worker)
        self._last_failure: str | None = None
        self.chain = chain or ChainClient(rpc_url, deployment, account)
        self.heads = HeadFollower(ws_url_for(rpc_url) if opts.follow_heads else None, self.chain.block_number)
        self.state = state or AsyncState(opts.data_dir / "state.sqlite")
        self.checkpoints = reorg.Checkpoints(self.chain, self.state)
        self.store = store or EmbeddedStore(opts.data_dir / "store")
        self.address = account.address
        self.stopping = asyncio.Event()
        self.running: dict[tuple[int, int, int], asyncio.Task] = {}
        self.jobs: dict[int, _Job] = {}
        self.providers = Providers(timeout=10)
        self.others_seats: dict[tuple[int, int, int], dict[str, int]] = defaultdict(dict)
        #: Who ever sat on each (job, task), and who committed on each job: where a queued seat may go (shedding).
        self.seated_in: dict[tuple[int, int], set[str]] = defaultdict(set)
        self.committers: dict[int, dict[str, float]] = defaultdict(dict)  # job -> peer -> loop time of its last commit
        #: (job, task) given back to a less busy peer and not seen redrawn yet: loop time it was given back.
        self._shed_pending: dict[tuple[int, int], float] = {}
        self._catching_up = False  # reading events far behind the head (see sync)
        self._forgotten: set[int] = set()  # ended jobs whose seats and committers were forgotten
        #: Tasks whose seats may need drawing, per job (a draw says when not).
        self.draw_wanted: dict[int, set[int]] = defaultdict(set)
        #: Seconds a task of each job took here (moving average): how many seats fit in a lease.
        self.task_seconds: dict[int, float] = {}
        self._undeclinable: set[tuple[int, int, int]] = set()
        self._draw_phase: dict[int, JobState] = {}
        self._draw_backoff: dict[int, float] = {}
        self.endpoint: str | None = None
        self._last_withdraw = 0.0
        self.gpu_pool = GpuPool(_gpu_backend(opts.gpus), opts.gpu_policy)
        self.runtime = TaskRuntime(opts, self.gpu_pool)
        self.admission = Admission(opts, self.gpu_pool, self.runtime)
        self.settlement = Settlement(self.chain, self.state, self.address, self.metrics, opts.confirmations)
        self.colocation = None
        self.online_url: str | None = None
        self._preempted: set[tuple[int, int, int]] = set()
        #: The input of the next seat in line, moving while the running tasks compute (one at a time).
        self._prefetch: tuple[tuple[int, int, int], asyncio.Task] | None = None
        #: Seats whose input no provider could deliver: (loop time of the first failure, why).
        self._unfetchable: dict[tuple[int, int, int], tuple[float, str]] = {}
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
        heads = asyncio.create_task(self.heads.run())
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
                await self._sleep_until_news(pause)
            await self._drain()
        finally:
            watchdog.cancel()
            heads.cancel()
            lag_monitor.cancel()
            if self.colocation is not None:
                await asyncio.to_thread(self.colocation.stop)  # its thread continues every paused task on the way out
                self.colocation.release_all()
                await self._online_server.stop()
            for task in self.running.values():
                task.cancel()
            if self._prefetch is not None:
                self._prefetch[1].cancel()
            await self._outputs_server.stop()
            await self.providers.aclose()
            # What the chain cost this worker's time (bench/e2e.py reads this line).
            log.info("chain: %d RPC requests, %.2f s", self.chain.rpc.requests, self.chain.rpc.seconds)
            await self.chain.aclose()
            await self.state.close()
            await self.runtime.close()

    async def _sleep_until_news(self, pause: float) -> None:
        """Until ``pause`` is over, or earlier: a new head, SIGTERM. (A task that
        ended is seen at the next poll: waking for it could spin on a task that
        ends at once, e.g. one waiting for a busy GPU.)"""
        waits = [asyncio.create_task(e.wait()) for e in (self.stopping, self.heads.changed)]
        try:
            await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self.heads.changed.clear()

    async def tick_safely(self) -> float:
        """One tick; seconds until the next. A failing tick (the node restarting, a
        timeout, a nonce someone else used: the client resyncs it) never ends the
        agent: it is logged, once per kind of failure, and retried with backoff.
        Only SIGTERM, or a configuration that cannot work, ends it."""
        try:
            if await self._tick_due():
                await self.tick()
        except (asyncio.CancelledError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring: nothing transient may end the agent
            self._tick_failures += 1
            self._retry = True  # whatever the failed tick left undone is done by the next full one
            kind = f"{type(exc).__name__}: {exc}"[:300]
            if kind != self._last_failure:
                self._last_failure = kind
                log.warning("tick failed (%s); retrying with backoff", kind,
                            exc_info=self._tick_failures == 1 and not isinstance(exc, NonceTaken))
            return min(30.0, self.opts.poll_interval * 2 ** min(self._tick_failures, 8))
        self._retry = False
        if self._tick_failures:
            log.info("tick recovered after %d failures", self._tick_failures)
        self._tick_failures, self._last_failure = 0, None
        return self.opts.poll_interval

    async def _tick_due(self) -> bool:
        """Whether a full tick has anything to do. Between ticks a worker only
        has news when the chain has a new block (a job, a draw, a commit, a
        no-show to slash, and chain time itself all arrive with blocks), a task
        of its own ended (``_wake``) or a local timer runs out, so it asks the
        node one cheap question per poll instead of a tick's dozen queries: an
        idle worker costs next to nothing, and a busy one leaves its CPU to
        the tasks it runs (a tick every poll while a task ran took a third of
        a core from them)."""
        loop_time = asyncio.get_running_loop().time()
        if self._retry or self._wake.is_set():
            return True
        # A safety net for what waits on the wall clock, not the chain: an
        # input retried before it is reported unfetchable, a spec not served yet.
        every = self.opts.busy_tick_s if self._holding or self.running else self.opts.idle_tick_s
        if loop_time - self._ticked_at >= every:
            return True
        if any(self._ticked_at < until <= loop_time for until in self._draw_backoff.values()):
            return True
        if await self.heads.latest() != self._ticked_head:
            return True
        # Chain time stands still with the head; only the wall clock moves.
        await self._advance_idle_clock(self._chain_clock[0], loop_time)
        return False

    async def tick(self) -> None:
        self._wake.clear()
        self._ticked_at = asyncio.get_running_loop().time()
        self._ticked_head = await self.sync()
        now = await self.chain.timestamp()
        await self._evaluate_jobs()
        await self._reconcile(now)
        if not self.stopping.is_set():
            await self._draw(asyncio.get_running_loop().time())
        await self._decline_refused(now)
        await self._report_unfetchable(now, asyncio.get_running_loop().time())
        await self._start_computations()
        await self.settlement.commit()
        await self.settlement.reveal(now)
        await self.settlement.collect(now, self.jobs)
        await self._janitor(now)
        await self._advance_idle_clock(now, asyncio.get_running_loop().time())
        await self._maybe_withdraw(loop_time=asyncio.get_running_loop().time())
        await self.runtime.supervise(asyncio.get_running_loop().time())
        await self._measure_block_time(asyncio.get_running_loop().time())
        self._holding = bool(self.running) or bool(await self.state.replicas(*OPEN))

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
            self.checkpoints.state = self.state
            self.settlement.state = self.state
        await self.state.put("deployment", identity)

    async def _drain(self) -> None:
        """SIGTERM: leave the lottery (from the next epoch on); decline seats not
        started; finish running tasks, commit, reveal and collect what can be
        done within the grace period, withdraw, exit."""
        log.info("stopping: finishing %d running tasks", len(self.running))
        await self._opt_out()
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
        self._outputs_server = await start_server(worker_app(self.store, self.describe, self.render_metrics),
                                                  self.opts.host, self.opts.port)
        self.endpoint = self.opts.public_url or self._outputs_server.url

    def describe(self) -> dict:
        """Published at /shardex/worker: what this worker offers."""
        return {"address": self.address, "max_tasks": self.opts.max_tasks, "memory_mb": self.opts.memory_mb,
                "programs": sorted(self.opts.programs) if self.opts.programs else sorted(BUILTIN),
                "user_programs": self.runtime.user_programs,
                "gpus": {**self.gpu_pool.advertise(), "sharing": self.runtime.gpu_sharing},
                "sandbox": self.runtime.describe(), "loop": self.loop_stats.summary(),
                "refused": {str(j): why for j, why in sorted(self.refused.items())[-200:]},
                "corrupt_providers": dict(self.providers.corrupt.most_common(50)),
                "terms": {"min_window_s": self.admission.min_window_s(), "block_time_s": self.admission.block_time_s,
                          "max_collateral_ratio": self.opts.max_collateral_ratio},
                "online": None if self.colocation is None else {"url": self.online_url,
                                                                "slo_p99_ms": self.opts.online_slo_ms,
                                                                "metrics": self.colocation.metrics()}}

    def render_metrics(self) -> str:
        """Prometheus text for GET /metrics: the counters, gauges read now, the colocation controller's."""
        loop = self.loop_stats.summary()
        gauges = {
            "running_tasks": ("Tasks computing now.", len(self.running)),
            "max_tasks": ("Tasks this worker runs at once at most.", self.opts.max_tasks),
            "jobs": ("Jobs this worker follows.", len(self.jobs)),
            "refused_jobs": ("Jobs this worker refused (terms, programs, runner failures).", len(self.refused)),
            "tick_failures": ("Consecutive failed agent ticks (0: healthy).", self._tick_failures),
            "loop_lag_p99_ms": ("p99 event-loop lag over the recent window.", loop["lag_p99_ms"]),
            "corrupt_blocks": ("Blocks providers served that did not match their CID (skipped; the providers "
                               "are named at /shardex/worker and in the log).", sum(self.providers.corrupt.values())),
            "tick_p99_ms": ("p99 duration of an agent tick over the recent window.", loop["tick_p99_ms"]),
        }
        extra = None if self.colocation is None else self.colocation.render_metrics
        return self.metrics.render(gauges, extra, rpc=self.chain.rpc)

    def online_embed_fn(self):
        """What serves POST /embed: None is the model (a seam tests replace with a stand-in)."""
        return None

    async def _serve_online(self) -> None:
        """The online embed service and the controller that keeps offline work out of its way."""
        from worker.colocation.online import create_app

        app = create_app(self.colocation, self.online_embed_fn())
        self._online_server = await start_server(app, self.opts.host, self.opts.online_port)
        # Its own thread, ticking every ~5 ms: a busy agent loop (draws, hashing,
        # HTTP) must not delay a yield to online work.
        self.colocation.start_in_thread()
        self.online_url = self._online_server.url
        log.info("online embed service at %s/embed, p99 SLO %g ms", self.online_url, self.opts.online_slo_ms)

    def resource_classes(self) -> list[int]:
        """The lotteries this worker enters: CPU jobs always, GPU jobs with a GPU."""
        return [0, 1] if self.gpu_pool.advertise()["gpu_count"] else [0]

    async def _ensure_stake(self) -> None:
        info = await self.chain.worker()
        if info.stake < self.opts.stake:
            await self.chain.stake(self.opts.stake - info.stake)
            log.info("staked %d wei", self.opts.stake - info.stake)
        if await self.state.get("endpoint") != self.endpoint:
            await self.chain.announce(self.endpoint)
            await self.state.put("endpoint", self.endpoint)
        for resource_class in self.resource_classes():
            if not info.classes & (1 << resource_class):
                await self.chain.opt_in(resource_class)
                log.info("opted in to resource class %d (drawable from the next epoch)", resource_class)

    async def _opt_out(self) -> None:
        try:
            info = await self.chain.worker()
            for resource_class in range(8):
                if info.classes & (1 << resource_class):
                    await self.chain.opt_out(resource_class)
        except ChainError as exc:
            log.warning("could not opt out of the lottery: %s", exc)

    # ------------------------------------------------------------ chain events

    async def sync(self) -> int:
        """Apply the events of every block up to the head; returns the head. When the chain
        went back (worker.reorg), rewind and reconcile first."""
        latest, latest_hash = await self.chain.head()
        cursor = await self.state.get_cursor()
        if cursor >= 0 and (fork := await self.checkpoints.fork((latest, latest_hash))) is not None:
            await self._after_reorg(cursor, fork)
            cursor = fork
        start = cursor + 1 if cursor >= 0 else self.chain.deployment.block
        while start <= latest:
            end = min(latest, start + 4999)
            self._catching_up = latest - start > CATCHING_UP_BLOCKS
            for event in await self.chain.events(from_block=start, to_block=end):
                await self._on_event(event)
            await self.state.set_cursor(end)
            start = end + 1
        if latest > cursor:
            await self.checkpoints.record(latest, latest_hash)
        return latest

    async def _after_reorg(self, cursor: int, fork: int) -> None:
        """Forget what this agent learned from blocks the chain no longer has (see worker.reorg)."""
        await self.state.set_cursor(fork)
        self.chain.forget_nonce()
        self.jobs.clear()
        self.refused.clear()
        self.others_seats.clear()
        self.seated_in.clear()
        self.committers.clear()
        self.draw_wanted.clear()
        self._draw_phase.clear()
        self._draw_backoff.clear()
        self._undeclinable.clear()
        counts = await reorg.reconcile(self.chain, self.state, self.address, set(self.running))
        log.warning("the chain went back: blocks %d..%d are gone (a reorg, or a node restored from older "
                    "state); reading events again from block %d; jobs forgotten %d, seats forgotten %d, commits "
                    "or reveals to send again %d", fork + 1, cursor, fork + 1, counts["jobs_forgotten"],
                    counts["seats_forgotten"], counts["resent"])

    async def _on_event(self, e) -> None:
        if isinstance(e, JobPosted):
            if await self.state.job(e.job_id) is None:
                await self.state.set_job(e.job_id, "new")
        elif isinstance(e, EndpointAnnounced):
            await self.state.set_endpoint(e.worker, e.endpoint)
        elif isinstance(e, TaskSettled):
            await self.state.set_settled(e.job_id, e.task_id, e.round, e.digest)
        elif isinstance(e, TaskAssigned):
            if e.job_id in self.jobs:  # only jobs it works on (who sat elsewhere is checked on chain)
                self.seated_in[(e.job_id, e.task_id)].add(e.worker)
            self._shed_pending.pop((e.job_id, e.task_id), None)
            if e.worker == self.address:
                if await self.state.replica(e.job_id, e.task_id, e.round) is None:
                    await self.state.upsert(e.job_id, e.task_id, e.round, "assigned", lease_deadline=e.lease_deadline)
            else:
                self.others_seats[(e.job_id, e.task_id, e.round)][e.worker] = e.lease_deadline
        elif isinstance(e, (ResultCommitted, TaskDeclined)):
            if isinstance(e, ResultCommitted) and e.worker != self.address and not self._catching_up:
                # Read while catching up (after a restart) a commit is old news, not a sign of life.
                self.committers[e.job_id][e.worker] = asyncio.get_running_loop().time()
            for key in [k for k in self.others_seats if k[:2] == (e.job_id, e.task_id)]:
                self.others_seats[key].pop(e.worker, None)
            if isinstance(e, TaskDeclined):
                self.draw_wanted[e.job_id].add(e.task_id)
        elif isinstance(e, TaskEscalated) or (isinstance(e, ReplicaResolved) and e.outcome.name == "SLASHED"):
            self.draw_wanted[e.job_id].add(e.task_id)
        elif isinstance(e, SeedArmed):
            if e.task_id < 2**255:
                self.draw_wanted[e.job_id].add(e.task_id)
            else:
                self._draw_phase.pop(e.job_id, None)  # round 0 of every task: look at the whole phase again

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

    # ------------------------------------------------------------ draws

    def _admitting(self) -> bool:
        """Online work first: no new offline work while the controller says so."""
        return self.colocation is None or self.colocation.admit()

    async def _draw(self, loop_time: float) -> None:
        """Fill the open seats of the jobs this worker takes. Anyone may draw and
        what a draw picks does not depend on who calls it, so every agent helps
        and no job waits for a keeper. A refusal (seats full, seed block not
        mined yet, nobody eligible) is the answer, not a failure."""
        for job_id, job in self.jobs.items():
            info = job.info
            if not info.state.active or loop_time < self._draw_backoff.get(job_id, 0.0):
                continue
            first, last = (0, info.map_tasks) if info.state == JobState.MAP else (info.map_tasks, info.tasks)
            wanted = self.draw_wanted[job_id]
            if self._draw_phase.get(job_id) != info.state:
                self._draw_phase[job_id] = info.state
                wanted.update(range(first, last))
            wanted.difference_update([t for t in wanted if not first <= t < last])  # the phase moved on
            if not wanted:
                continue
            batch = sorted(wanted)[: self.opts.draw_batch]
            try:
                receipt = await self.chain.draw(job_id, batch)
                if not receipt.events_named("TaskAssigned"):
                    # Every candidate looked at had served these tasks or could not
                    # sit: the next call goes on down the sequence, in a while.
                    self._draw_backoff[job_id] = loop_time + 2.0
            except ContractRevert as exc:
                if exc.error_name != "JobMarketNothingToDraw":
                    log.info("job %d: draw of %s refused: %s", job_id, batch, exc)
                    self._draw_backoff[job_id] = loop_time + 2.0
                    continue
                if await self._seed_pending(job_id, info, batch):
                    continue
                # Full, or nobody eligible to draw now: look again in a while.
                self._draw_backoff[job_id] = loop_time + 5.0
            for task_id in batch:
                task = await self.chain.task(job_id, task_id)
                if task.open_seats(info.margin) == 0:
                    wanted.discard(task_id)

    async def _seed_pending(self, job_id: int, info, batch: list[int]) -> bool:
        """Whether the draw waits for its seed block. On a chain that mines only
        when a transaction arrives (Anvil's automine) that block, or the next
        epoch that brings new members into an empty pool, would never come while
        everyone waits for it: mine empty blocks."""
        latest = await self.chain.block_number()
        job = await self.chain.job(job_id)  # fresh: another agent's draw may have re-armed the seed
        tasks = [await self.chain.task(job_id, t) for t in batch]
        pending = any((t.seed_block or job.seed_block) >= latest for t in tasks)
        if self.admission.block_time_s == 0:
            if pending:
                await self.chain.mine_empty_blocks(1)
            elif await self.chain.pool_weight(info.resource_class) == 0:
                await self.chain.mine_empty_blocks(await self._blocks_to_next_epoch())
        return pending

    async def _blocks_to_next_epoch(self) -> int:
        latest = await self.chain.block_number()
        epoch_blocks = await self.chain.epoch_blocks()
        return epoch_blocks - latest % epoch_blocks

    async def _decline_refused(self, now: int) -> None:
        """Seats drawn for jobs this worker refuses, and seats it could not
        compute before their lease ends (the lottery does not know how busy it
        is), are given back while they may be, so they are redrawn and nobody
        is slashed."""
        by_job: dict[int, list] = defaultdict(list)
        queue = []  # seats waiting to start, in the order they will start
        for row in await self.state.replicas("assigned"):
            key = (row.job_id, row.task_id, row.round)
            if key in self.running or key in self._undeclinable:
                continue
            status = await self.state.job(row.job_id)
            if (status is not None and status[0] == "rejected") or self.stopping.is_set():
                by_job[row.job_id].append(row)
                continue
            seconds = self.task_seconds.get(row.job_id)
            if seconds is not None and row.lease_deadline:
                # Starts after the queue ahead of it drains through max_tasks slots.
                finish = now + (len(queue) // self.opts.max_tasks + 1) * seconds * 1.5
                if finish > row.lease_deadline:
                    by_job[row.job_id].append(row)
                    continue
            queue.append(row)
        for seat in await self._seats_to_shed(queue, now):
            by_job[seat.job_id].append(seat)
        for job_id, rows in by_job.items():
            try:
                await self.chain.decline(job_id, [r.task_id for r in rows])
            except ContractRevert:
                declined = []
                for row in rows:  # one by one: those too late to decline stay ours, to run if we can
                    try:
                        await self.chain.decline(job_id, [row.task_id])
                        declined.append(row)
                    except ContractRevert as exc:
                        self._undeclinable.add((row.job_id, row.task_id, row.round))
                        log.info("job %d task %d: cannot decline: %s", job_id, row.task_id, exc)
                rows = declined
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "declined")
            self.metrics.replicas["declined"] += len(rows)
            log.info("job %d: declined seats %s (%s)", job_id, [r.task_id for r in rows],
                     self.refused.get(job_id, "stopping" if self.stopping.is_set()
                                      else "more than it can run in time, or queued while a peer is less busy"))

    async def _seats_to_shed(self, queue: list, now: int) -> list:
        """Queued seats to give back because a peer working on the same jobs is clearly less busy
        (see worker/shedding.py); only seats still inside their decline window, and only of jobs
        of margin 1. With a larger margin the seats of honest workers would be redrawn while an
        adversary's stay put: shedding would tilt the draw towards it and weaken the margin's
        error bound. Each seat given back is first checked on chain to have a peer still eligible
        for it (this agent's record of who sat where misses what happened while it was down)."""
        loop_time = asyncio.get_running_loop().time()
        for key, since in list(self._shed_pending.items()):
            if loop_time - since > SHED_SETTLE_S:
                del self._shed_pending[key]
        if not queue or self._shed_pending:
            # Seats given back are not redrawn yet: who is how busy is not known until they are
            # (deciding again now gave a peer the whole queue).
            return []
        peers: Counter[str] = Counter()
        for seats in self.others_seats.values():
            peers.update(seats.keys())
        declinable = []
        for row in queue:
            job = self.jobs.get(row.job_id)
            if job is None or not row.lease_deadline or job.info.margin != 1:
                continue
            lease = job.info.lease_duration
            if now < row.lease_deadline - lease + lease // 4 - 2:  # a little before the window closes
                declinable.append(row)
        if not declinable:
            return []
        # Peers that committed on the job lately: one that stopped committing may be gone.
        active = {j: {p for p, at in self.committers[j].items() if loop_time - at <= ACTIVE_PEER_S}
                  for j in {r.job_id for r in declinable}}
        seats = [QueuedSeat(r.job_id, r.task_id, r.round) for r in declinable]
        shed = []
        for seat in seats_to_shed(seats, len(queue) + len(self.running), peers, active, self.seated_in):
            if await self._someone_may_take(seat, active[seat.job_id]):
                shed.append(seat)
        if shed:
            log.info("giving back %d queued seats to less busy peers: %s", len(shed),
                     sorted((s.job_id, s.task_id) for s in shed))
        self._shed_pending.update({(s.job_id, s.task_id): loop_time for s in shed})
        chosen = set(shed)
        return [r for r in declinable if QueuedSeat(r.job_id, r.task_id, r.round) in chosen]

    async def _someone_may_take(self, seat: QueuedSeat, peers: set[str]) -> bool:
        """Whether one of ``peers`` never sat on the seat's task, as the chain says (it never
        draws a worker for a task twice)."""
        for peer in sorted(peers - self.seated_in.get((seat.job_id, seat.task_id), set())):
            if (await self.chain.replica(seat.job_id, seat.task_id, peer)).state == ReplicaState.NONE:
                return True
            self.seated_in[(seat.job_id, seat.task_id)].add(peer)  # it did, while this agent was not looking
        return False

    async def _report_unfetchable(self, now: int, loop_time: float) -> None:
        """Seats whose input nobody could deliver, after retrying for half the
        time a seat may be given back in (the first quarter of its lease), are
        given back as unavailable: no slash for someone else's missing data,
        and enough such reports on a task fail the job at the requester's cost."""
        by_job: dict[int, list] = defaultdict(list)
        for key, (since, _why) in list(self._unfetchable.items()):
            row = await self.state.replica(*key)
            job = self.jobs.get(key[0])
            if row is None or row.status != "assigned" or job is None or key in self.running:
                if row is None or row.status != "assigned":
                    self._unfetchable.pop(key, None)
                continue
            lease = job.info.lease_duration
            retry = lease / 8  # half the window a seat may be given back in
            opened = (row.lease_deadline or now + lease) - lease
            if now - opened >= retry or loop_time - since >= retry:
                by_job[key[0]].append(row)
        for job_id, rows in by_job.items():
            for row in rows:  # one by one: one too late to give back must not keep the others
                key = (row.job_id, row.task_id, row.round)
                why = self._unfetchable.pop(key)[1]
                try:
                    await self.chain.report_unavailable(job_id, [row.task_id])
                except ContractRevert as exc:
                    self._undeclinable.add(key)
                    log.warning("job %d task %d: input unavailable but the seat can no longer be given back: %s",
                                job_id, row.task_id, exc)
                    continue
                await self.state.upsert(job_id, row.task_id, row.round, "declined", error=f"input unavailable: {why}")
                self.metrics.replicas["reported_unavailable"] += 1
                log.warning("job %d task %d: reported its input unavailable (%s)", job_id, row.task_id, why)

    async def _start_computations(self) -> None:
        if not self._admitting():
            return
        for row in await self.state.replicas("assigned"):
            key = (row.job_id, row.task_id, row.round)
            if key in self.running or row.job_id not in self.jobs:
                continue
            if len(self.running) >= self.opts.max_tasks:
                # Drawn for more than it runs at once: the rest wait their turn (leases permitting),
                # and the next one's input moves meanwhile.
                self._prefetch_input(key)
                break
            job = self.jobs[row.job_id]
            m = len(job.spec.map_shards)
            settled = await (self._map_digests(row.job_id, m) if row.task_id >= m else self.state.settled(row.job_id))
            if row.task_id >= m and any(t not in settled for t in range(m)):
                continue  # a reduce seat before this worker knows every map result: a later tick
            inp = TaskInput(row.job_id, row.task_id, row.round, job.spec, settled)
            task = asyncio.create_task(self._compute(inp))
            self.running[key] = task
            task.add_done_callback(lambda _t, key=key: self._task_ended(key))

    def _prefetch_input(self, key: tuple[int, int, int]) -> None:
        """Fetch (and verify) the program and map shard of the seat that starts next, while the running
        tasks compute, so that its slot does not sit waiting on the network when its turn comes. One
        at a time; a failure only means the task fetches (and reports) it itself."""
        if self._prefetch is not None and (self._prefetch[0] == key or not self._prefetch[1].done()):
            return
        job = self.jobs[key[0]]
        if key[1] >= len(job.spec.map_shards):
            return  # a reduce seat's inputs are partitions, small and spread over many providers
        self._prefetch = (key, asyncio.create_task(self._fetch_ahead(job, key[1])))

    async def _fetch_ahead(self, job: _Job, task_id: int) -> None:
        try:
            fetcher = await self.fetcher(str(job.info.requester))
            if job.spec.program_cid:
                await fetcher.fetch(job.spec.program_cid)
            await fetcher.fetch(job.spec.map_shards[task_id])
        except (StoreError, OSError) as exc:
            log.debug("prefetch of job %d task %d failed (the task will fetch it): %s", job.info.job_id, task_id, exc)

    async def _map_digests(self, job_id: int, map_tasks: int) -> dict[int, bytes]:
        """The job's settled task digests as this worker recorded them from TaskSettled events. Any map
        task's it lacks (the event was on blocks a chain restart or a reorg took away, and came again
        where this worker no longer looked) are read back from the chain, the source of truth."""
        settled = await self.state.settled(job_id)
        if all(t in settled for t in range(map_tasks)):
            return settled
        for e in await self.chain.events(names=["TaskSettled"], job_id=job_id):
            await self.state.set_settled(e.job_id, e.task_id, e.round, e.digest)
        return await self.state.settled(job_id)

    def _task_ended(self, key: tuple[int, int, int]) -> None:
        self.running.pop(key, None)
        self._wake.set()  # its result is to be committed, or its seat retried: tick now

    async def _compute(self, inp: TaskInput) -> None:
        ahead = self._prefetch
        if ahead is not None and ahead[0] == (inp.job_id, inp.task_id, inp.round) and not ahead[1].done():
            await asyncio.shield(ahead[1])  # its input is on the way: wait for it rather than fetch it twice
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
                return  # the GPUs are busy: try again next tick, the seat is kept

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
        started = asyncio.get_running_loop().time()
        try:
            manifest = await compute(inp, self.store, fetcher, self.opts.data_dir / "scratch", limits=limits,
                                     on_spawn=spawned, **self.runtime.run_options(lease))
            self.runner_failures.pop(inp.job_id, None)
            took = asyncio.get_running_loop().time() - started
            self.metrics.computed(took)
            log.info("job %d task %d computed in %.2f s (%s)", inp.job_id, inp.task_id, took,
                     ", ".join(f"{part} {s:.2f} s" for part, s in inp.seconds.items()))
            previous = self.task_seconds.get(inp.job_id)
            self.task_seconds[inp.job_id] = took if previous is None else 0.7 * previous + 0.3 * took
        except RunnerFailure as exc:
            # This machine, not the job: never commit it. Twice in a row for a
            # job and the worker refuses it: its seats are declined.
            self.runner_failures[inp.job_id] += 1
            self.metrics.task_failures["runner"] += 1
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
            # not commit; retry on a later tick while the lease lasts. An input
            # no provider could deliver is reported (not slashed) if it stays so.
            self.metrics.task_failures["input"] += 1
            if isinstance(exc, FetchFailed) and key not in self._unfetchable:
                self._unfetchable[key] = (asyncio.get_running_loop().time(), str(exc)[:300])
            log.warning("job %d task %d: compute failed, will retry: %s", inp.job_id, inp.task_id, exc)
            await asyncio.sleep(1.0)
            return
        except Exception:
            # A bug, not the program's outcome: commit nothing, say so once per try, and retry
            # at a walk rather than on every tick.
            log.exception("job %d task %d: computing it failed unexpectedly; will retry", inp.job_id, inp.task_id)
            await asyncio.sleep(5.0)
            return
        finally:
            if lease is not None:
                # Free again only once NVML shows these processes gone (the watchdog reaps).
                self.gpu_pool.release(lease, pids)
            if self.colocation is not None:
                for pid in pids:
                    self.colocation.unregister(pid)
        self._unfetchable.pop(key, None)
        if key in self._preempted:
            self._preempted.discard(key)
            log.info("job %d task %d: preempted for online work; will run again", inp.job_id, inp.task_id)
            return  # not the program's outcome: commit nothing, the seat stays open
        cid = await self.store.add_bytes(manifest)
        digest = cid.digest
        # Written before the commit transaction exists: the digest survives any crash.
        await self.state.upsert(inp.job_id, inp.task_id, inp.round, "computed", digest=digest)

    # ------------------------------------------------------------ commit, reveal, collect

    async def _reconcile(self, now: int) -> None:
        """Seats whose lease ran out before this worker could commit."""
        for row in await self.state.replicas("assigned"):
            if (row.job_id, row.task_id, row.round) in self.running:
                continue
            if row.lease_deadline and now > row.lease_deadline:
                await self.state.upsert(row.job_id, row.task_id, row.round, "lost", error="lease expired before commit")

    async def _janitor(self, now: int) -> None:
        """Slash no-shows whose lease expired, so their seats are redrawn (anyone may); forget who
        sat where on jobs that ended."""
        ended = {j for j, job in self.jobs.items() if not job.info.state.active} - self._forgotten
        if ended:
            for key in [k for k in self.seated_in if k[0] in ended]:
                del self.seated_in[key]
            for job_id in ended:
                self.committers.pop(job_id, None)
            self._forgotten |= ended
        for (job_id, task_id, rnd), seats in list(self.others_seats.items()):
            for worker, lease in list(seats.items()):
                if now <= lease:
                    continue
                seats.pop(worker)
                try:
                    await self.chain.resolve(job_id, task_id, worker)
                    self.metrics.noshows_resolved += 1
                    log.info("job %d task %d: slashed no-show %s", job_id, task_id, worker)
                except ChainError:
                    pass
            if not seats:
                self.others_seats.pop((job_id, task_id, rnd), None)

    async def _advance_idle_clock(self, now: int, loop_time: float) -> None:
        """On a chain that mines only when a transaction arrives (Anvil's
        automine) chain time stands still while nobody transacts, so the lease
        of a no-show this agent waits out would never end and its seat would
        never be redrawn. There, once the wall clock says the earliest such
        lease has run out, mine a block to carry chain time past it."""
        if self.admission.block_time_s != 0:
            return
        if now != self._chain_clock[0]:
            self._chain_clock = (now, loop_time)
            return
        leases = [lease for seats in self.others_seats.values() for lease in seats.values() if lease >= now]
        if leases and now + (loop_time - self._chain_clock[1]) > min(leases) + 1:
            await self.chain.mine_empty_blocks(1)

    async def _maybe_withdraw(self, loop_time: float | None) -> None:
        if loop_time is not None and loop_time - self._last_withdraw < self.opts.withdraw_every_s:
            return
        self._last_withdraw = loop_time or 0.0
        if await self.chain.credits() > 0:
            await self.chain.withdraw()
        for token in {job.info.token for job in self.jobs.values() if job.info.pays_in_token}:
            # A token that stops transferring (paused, blocklisting, hostile)
            # keeps its own credits, and nothing else of this loop.
            try:
                if await self.chain.token_credits(token) > 0:
                    await self.chain.withdraw_token(token)
            except ContractRevert as exc:
                if token not in self._stuck_tokens:
                    log.warning("withdrawing token %s refused: %s; its credits stay in the market", token, exc)
                self._stuck_tokens.add(token)
