"""Commit, reveal (which pays), collect (what did not): the settlement half of a worker's loop.

Each step reads what to do from the local state (written before any
transaction, so a crash loses nothing), batches one transaction per job, and
when a batch is refused learns from the chain what each replica is.

A worker commits ``result`` (the same for every worker with the same output)
and ``seal`` (its own); once a result has won its task (a margin of agreeing
drawn workers, see docs/protocol.md) every committer of that result opens it
with the digest within the reveal window, whatever round it committed in. The
reveal pays the reward and releases the collateral at once; ``collect`` is
only for seats that did not open a winner (released when the job ended
without a verdict, or slashed).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from shardex.chain import ChainClient, ReplicaState, result_of, seal_of
from shardex.chain.models import Task
from shardex.chain.errors import ContractRevert
from worker.metrics import WorkerMetrics
from worker.state import AsyncState

log = logging.getLogger("shardex.worker")


class Settlement:
    def __init__(self, chain: ChainClient, state: AsyncState, address: str,
                 metrics: WorkerMetrics | None = None, confirmations: int = 0) -> None:
        self.chain = chain
        self.state = state
        self.address = address
        self.metrics = metrics or WorkerMetrics()
        # A reveal publishes the digest: opened on a branch that a reorg then removes, it would
        # hand the result to whoever is drawn for the task next. So a win is acted on only
        # once it is this many blocks deep.
        self.confirmations = confirmations
        # The tasks' views read in this tick: reveal reads every committed row's task, and collect
        # decides from the same views which rows could have a verdict (most have none yet), instead
        # of three requests per committed row per tick.
        self._views: dict[tuple[int, int], Task] = {}

    async def _task(self, job_id: int, task_id: int) -> Task:
        key = (job_id, task_id)
        if key not in self._views:
            self._views[key] = await self.chain.task(job_id, task_id)
        return self._views[key]

    def _commitment(self, row) -> tuple[bytes, bytes]:
        return (result_of(row.job_id, row.task_id, row.digest),
                seal_of(self.address, row.job_id, row.task_id, row.digest))

    async def commit(self) -> None:
        """Commit every computed replica, one transaction per job."""
        by_job = defaultdict(list)
        for row in await self.state.replicas("computed", "committing"):
            by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "committing")
            pairs = [self._commitment(r) for r in rows]
            try:
                await self.chain.commit(job_id, [r.task_id for r in rows], [p[0] for p in pairs],
                                        [p[1] for p in pairs])
            except ContractRevert as exc:
                log.info("job %d: commit refused (%s); checking each replica", job_id, exc)
                await self._commit_rows_individually(rows)
                continue
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "committed")
            self.metrics.replicas["committed"] += len(rows)

    async def _commit_rows_individually(self, rows) -> None:
        """After a batch was refused: learn from the chain what each replica is."""
        for row in rows:
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if rep.state == ReplicaState.COMMITTED and rep.round == row.round:
                await self.state.upsert(row.job_id, row.task_id, row.round, "committed")
            elif rep.state == ReplicaState.ASSIGNED and rep.round == row.round:
                result, seal = self._commitment(row)
                try:
                    await self.chain.commit(row.job_id, [row.task_id], [result], [seal])
                    await self.state.upsert(row.job_id, row.task_id, row.round, "committed")
                    self.metrics.replicas["committed"] += 1
                except ContractRevert as exc:
                    await self.state.upsert(row.job_id, row.task_id, row.round, "lost", error=str(exc))
            else:
                await self.state.upsert(row.job_id, row.task_id, row.round, "lost", error=f"on chain: {rep.state.name}")

    async def reveal(self, now: int) -> None:
        """Open every committed result that has won its task (``confirmations`` blocks deep), while
        its window is open."""
        by_job = defaultdict(list)
        rows = await self.state.replicas("committed")
        self._views = {}  # a new tick: read every task afresh
        deep: int | str = "latest"
        if rows and self.confirmations:
            deep = max(0, await self.chain.block_number() - self.confirmations)
        for row in rows:
            task = await self._task(row.job_id, row.task_id)
            if not task.has_winner or now > task.reveal_deadline:
                continue
            if task.winner != result_of(row.job_id, row.task_id, row.digest)[:12]:
                continue  # another result won: this replica will be slashed when resolved
            if deep != "latest" and (await self.chain.task(row.job_id, row.task_id, block=deep)).winner != task.winner:
                continue  # won too recently: a reorg could still take the win away
            by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            try:
                await self.chain.reveal(job_id, [r.task_id for r in rows], [r.digest for r in rows])
            except ContractRevert as exc:
                log.info("job %d: reveal refused: %s", job_id, exc)
                for row in rows:
                    try:
                        await self.chain.reveal(job_id, [row.task_id], [row.digest])
                    except ContractRevert:
                        continue
                    await self.state.upsert(job_id, row.task_id, row.round, "paid")
                    self.metrics.replicas["revealed"] += 1
                continue
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "paid")
            self.metrics.replicas["revealed"] += len(rows)

    async def collect(self, now: int, jobs: dict) -> None:
        """Collect every committed replica that will not be paid by a reveal: its task has a verdict
        it lost, or its job ended without one (released)."""
        by_job = defaultdict(list)
        for row in await self.state.replicas("committed"):
            # The task's view as this tick's reveal read it (a task it settled reads as not yet
            # settled: collected a tick later). Without a verdict there is nothing to collect.
            task = await self._task(row.job_id, row.task_id)
            job = jobs[row.job_id].info if row.job_id in jobs else await self.chain.job(row.job_id)
            if not task.settled and job.state.active and now <= job.deadline:
                continue
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if rep.state == ReplicaState.NONE or rep.round != row.round:
                await self.state.upsert(row.job_id, row.task_id, row.round, "resolved")
                continue
            if task.settled:
                # Slashed if another result won or the window closed before it was opened (an
                # opened one was paid by its reveal and is gone from the chain).
                ready = rep.result != task.winner or now > task.reveal_deadline
            else:
                ready = not job.state.active or now > job.deadline  # no verdict will come: released
            if ready:
                by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            try:
                await self.chain.collect(job_id, [r.task_id for r in rows])
            except ContractRevert as exc:
                log.info("job %d: collect refused: %s", job_id, exc)
                continue
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "resolved")
            self.metrics.replicas["collected"] += len(rows)
