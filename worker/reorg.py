"""When the chain goes back: a reorg, or a node restored from an older state.

The agent reads the chain's events block range by block range and keeps a
cursor. It also remembers the hashes of the heads it synced to
(:class:`Checkpoints`). When the newest of them is no longer on the chain,
every block after the newest one that still is has gone, with what it held:
seats drawn there, this worker's commits and reveals, even jobs (a job id may
then name another job). The agent then

* rewinds its cursor to that block, so the events after it are read again
  (applying an event twice is harmless);
* makes its local state agree with the chain (:func:`reconcile`): a seat the
  chain no longer has is forgotten (a redraw on the new branch brings it
  back), a commit or reveal the chain lost is sent again from the stored
  digest, a job the chain no longer has, or whose id now names another job,
  is forgotten with its seats; every other job is looked at again.

What it never does is act on its memory of the lost branch: that would be
committing to a seat nobody holds, or worse, to another job's task.
"""

from __future__ import annotations

import hashlib
import json
import logging

from shardex.chain import ChainClient, ReplicaState
from shardex.chain.errors import ContractRevert
from worker.state import OPEN, AsyncState

log = logging.getLogger("shardex.worker")

#: Heads remembered: a reorg deeper than this many syncs rewinds to the deployment block.
KEEP = 64


class Checkpoints:
    """(block, hash) of the last ``KEEP`` heads synced to, newest first, in the state's meta table."""

    def __init__(self, chain: ChainClient, state: AsyncState) -> None:
        self.chain = chain
        self.state = state

    async def _load(self) -> list[tuple[int, str]]:
        return [tuple(p) for p in json.loads(await self.state.get("checkpoints") or "[]")]

    async def record(self, number: int, block_hash: str) -> None:
        kept = [p for p in await self._load() if p[0] < number]
        await self.state.put("checkpoints", json.dumps([(number, block_hash), *kept][:KEEP]))

    async def fork(self, head: tuple[int, str] | None = None) -> int | None:
        """None while the newest checkpoint is on the chain; else the newest block that still is
        (the deployment block minus one when none is), after dropping the checkpoints above it.
        ``head``: the chain's (number, hash) if known (an idle chain needs no further question)."""
        points = await self._load()
        if not points or (points[0] == head if head and head[0] == points[0][0]
                          else await self.chain.block_hash(points[0][0]) == points[0][1]):
            return None
        for i, (number, block_hash) in enumerate(points[1:], start=1):
            if await self.chain.block_hash(number) == block_hash:
                await self.state.put("checkpoints", json.dumps(points[i:]))
                return number
        await self.state.put("checkpoints", "[]")
        return self.chain.deployment.block - 1


async def reconcile(chain: ChainClient, state: AsyncState, address: str, running: set[tuple[int, int, int]]) -> dict:
    """Make the local jobs and replicas agree with the chain after it went back; returns counts."""
    counts = {"jobs_forgotten": 0, "seats_forgotten": 0, "resent": 0}
    known = await chain.job_count()
    for job_id, _status, spec in await state.all_jobs():
        if job_id > known:
            gone = True
        elif spec is not None:
            # The spec this worker accepted is the job's only while the chain names the same digest.
            gone = hashlib.sha256(spec).digest() != (await chain.job(job_id)).spec_digest
        else:
            gone = False
        if gone and not any(key[0] == job_id for key in running):
            await state.forget_job(job_id)
            counts["jobs_forgotten"] += 1
        elif not gone:
            await state.set_job(job_id, "new")  # looked at again: it may be live again, or over
    live: dict[int, bool] = {}
    for row in await state.replicas():
        key = (row.job_id, row.task_id, row.round)
        if key in running:
            continue  # its commit learns what the chain has (Settlement._commit_rows_individually)
        if row.status not in OPEN:
            # Done with (collected, declined, given up on) on the branch that went away: on a live
            # job the seat may be this worker's again, uncollected or not even committed.
            if row.job_id not in live:
                live[row.job_id] = row.job_id <= known and (await chain.job(row.job_id)).state.active
            if not live[row.job_id]:
                continue
        try:
            rep = await chain.replica(row.job_id, row.task_id, address)
        except ContractRevert:  # the job is not on this chain
            rep = None
        if rep is None or rep.state == ReplicaState.NONE or rep.round != row.round:
            await state.forget_replica(*key)  # not this worker's seat here: a draw on this branch brings it back
            counts["seats_forgotten"] += 1
            continue
        target = {ReplicaState.ASSIGNED: "computed" if row.digest else "assigned",
                  ReplicaState.COMMITTED: "committed",
                  ReplicaState.DECLINED: "declined", ReplicaState.SLASHED: "lost"}[rep.state]
        if row.status == target or (target == "computed" and row.status in ("assigned", "computed")):
            continue
        if target == "lost" and row.status == "resolved":
            continue  # slashed and collected
        # A commit, reveal or collect the chain lost is sent again from the stored digest.
        await state.upsert(*key, target, error=None)
        counts["resent"] += target in ("computed", "committed")
    return counts
