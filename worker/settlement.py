"""Commit, reveal, collect: the settlement half of a worker's loop.

Each step reads what to do from the local state (written before any
transaction, so a crash loses nothing), batches one transaction per job, and
when a batch is refused learns from the chain what each replica is.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from shardex.chain import ChainClient, ReplicaState, commitment_of
from shardex.chain.errors import ContractRevert
from worker.state import AsyncState

log = logging.getLogger("shardex.worker")


class Settlement:
    def __init__(self, chain: ChainClient, state: AsyncState, address: str) -> None:
        self.chain = chain
        self.state = state
        self.address = address

    async def commit(self) -> None:
        """Commit every computed replica, one transaction per job."""
        by_job = defaultdict(list)
        for row in await self.state.replicas("computed", "committing"):
            by_job[row.job_id].append(row)
        for job_id, rows in by_job.items():
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "committing")
            commitments = [commitment_of(r.digest, r.salt, self.address, job_id, r.task_id) for r in rows]
            try:
                await self.chain.commit(job_id, [r.task_id for r in rows], commitments)
            except ContractRevert as exc:
                log.info("job %d: commit refused (%s); checking each replica", job_id, exc)
                await self._settle_rows_individually(rows)
                continue
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "committed")

    async def _settle_rows_individually(self, rows) -> None:
        """After a batch was refused: learn from the chain what each replica is."""
        for row in rows:
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if rep.state == ReplicaState.COMMITTED and rep.round == row.round:
                await self.state.upsert(row.job_id, row.task_id, row.round, "committed")
            elif rep.state == ReplicaState.CLAIMED and rep.round == row.round:
                try:
                    await self.chain.commit(row.job_id, [row.task_id],
                                            [commitment_of(row.digest, row.salt, self.address, row.job_id,
                                                           row.task_id)])
                    await self.state.upsert(row.job_id, row.task_id, row.round, "committed")
                except ContractRevert as exc:
                    await self.state.upsert(row.job_id, row.task_id, row.round, "lost", error=str(exc))
            else:
                await self.state.upsert(row.job_id, row.task_id, row.round, "lost", error=f"on chain: {rep.state.name}")

    async def reveal(self, now: int) -> None:
        """Reveal every committed replica whose round's reveal window is open."""
        by_job = defaultdict(list)
        for row in await self.state.replicas("committed"):
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
                    await self.state.upsert(job_id, row.task_id, row.round, "revealed")
                continue
            for row in rows:
                await self.state.upsert(job_id, row.task_id, row.round, "revealed")

    async def collect(self, now: int, jobs: dict) -> None:
        """Collect (and so release the collateral of) every replica whose round is over."""
        by_job = defaultdict(list)
        for row in await self.state.replicas("revealed", "committed"):
            rep = await self.chain.replica(row.job_id, row.task_id, self.address)
            if rep.state == ReplicaState.NONE or rep.round != row.round:
                await self.state.upsert(row.job_id, row.task_id, row.round, "resolved")
                continue
            task = await self.chain.task(row.job_id, row.task_id)
            job = jobs[row.job_id].info  # read from the chain this tick, by the agent's job evaluation
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
                await self.state.upsert(job_id, row.task_id, row.round, "resolved")
