"""How responsive the agent's event loop is: tick durations and scheduling lag.

The loop serves the worker's gateway, follows the chain and drives every
task; anything blocking it (disk, SQLite fsyncs, hashing) shows up as lag: a
coroutine that asks to sleep ``interval`` wakes that much later than asked.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque


def _percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


class LoopStats:
    # Sampled every 100 ms: each sample is a wakeup, and at 20 ms sampling alone
    # was ~0.45% of a core on an idle worker (bench/idle.py).
    def __init__(self, window: int = 2048, interval_s: float = 0.1) -> None:
        self.ticks: deque[float] = deque(maxlen=window)
        self.lags: deque[float] = deque(maxlen=window)
        self.interval_s = interval_s

    def tick_took(self, seconds: float) -> None:
        self.ticks.append(seconds)

    async def watch(self) -> None:
        """Sample the loop's lag until cancelled."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.lags.append(max(0.0, time.perf_counter() - asked - self.interval_s))

    def summary(self) -> dict:
        ms = 1000.0
        return {"ticks": len(self.ticks),
                "tick_p50_ms": round(_percentile(self.ticks, 0.5) * ms, 2),
                "tick_p99_ms": round(_percentile(self.ticks, 0.99) * ms, 2),
                "lag_p50_ms": round(_percentile(self.lags, 0.5) * ms, 2),
                "lag_p99_ms": round(_percentile(self.lags, 0.99) * ms, 2),
                "lag_max_ms": round(max(self.lags, default=math.nan) * ms, 2)}
