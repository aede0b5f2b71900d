"""Enforce GPU leases: kill a task whose processes use more GPU memory than its
lease grants, and free leases once NVML shows their processes gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from worker.gpu.pool import GpuPool, OverLimit

log = logging.getLogger("shardex.worker.gpu")


class GpuWatchdog:
    """``kill(pid)`` is called for each process over its lease (the agent passes a
    process-group kill). ``check()`` is one pass; ``run()`` loops until cancelled."""

    def __init__(self, pool: GpuPool, kill: Callable[[int], None], *, interval_s: float = 0.2,
                 slack_mb: int = 0) -> None:
        self.pool = pool
        self.kill = kill
        self.interval_s = interval_s
        self.slack_mb = slack_mb

    def check(self) -> list[OverLimit]:
        over = self.pool.over_limit(self.slack_mb)
        for item in over:
            log.warning("lease %s: pid %d uses %d MB over its GPU lease; killing it", item.lease.id, item.pid,
                        item.used_mb)
            self.kill(item.pid)
        self.pool.reap()  # a lease is free again only when its processes are gone from every card
        return over

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.interval_s)
