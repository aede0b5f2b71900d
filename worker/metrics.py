"""A worker's Prometheus metrics, served at ``GET /metrics`` beside its trustless
gateway: what it computed, what it settled on chain, how its loop keeps up.

Counters live in this process (they restart at 0 with it, as Prometheus
counters may); the seats' durable state is the worker's SQLite and the chain.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from shardex.chain.client import RpcTally

#: Steps a replica goes through on chain, as counted by ``replicas``.
STEPS = ("committed", "revealed", "collected", "declined", "reported_unavailable")


class WorkerMetrics:
    def __init__(self) -> None:
        self.replicas: Counter[str] = Counter()  # step -> replicas
        self.task_failures: Counter[str] = Counter()  # "runner" (this machine) | "input" (not fetched, retried)
        self.tasks_computed = 0
        self.task_seconds = 0.0
        self.noshows_resolved = 0

    def computed(self, seconds: float) -> None:
        self.tasks_computed += 1
        self.task_seconds += seconds

    def render(self, gauges: dict[str, tuple[str, float]], extra: Callable[[], str] | None = None,
               rpc: RpcTally | None = None) -> str:
        """The text exposition format; ``gauges``: name -> (help, value), read at scrape time; ``rpc``:
        the chain client's request tally."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP shardex_worker_{name} {help_}")
            lines.append(f"# TYPE shardex_worker_{name} {kind}")
            for labels, value in samples:
                text = "NaN" if isinstance(value, float) and math.isnan(value) else repr(float(value))
                lines.append(f"shardex_worker_{name}{labels} {text}")

        metric("tasks_computed_total", "counter", "Tasks this worker computed.", [("", self.tasks_computed)])
        metric("task_seconds_total", "counter", "Seconds spent computing tasks (fetch, run, store).",
               [("", self.task_seconds)])
        metric("task_failures_total", "counter", "Task attempts that failed: runner (this machine) or input "
               "(not fetched; retried, then reported unavailable).",
               [(f'{{kind="{k}"}}', self.task_failures[k]) for k in ("runner", "input")])
        metric("replicas_total", "counter", "Replicas by the on-chain step this worker took for them.",
               [(f'{{step="{s}"}}', self.replicas[s]) for s in STEPS])
        metric("noshows_resolved_total", "counter", "Other workers' expired seats this worker resolved "
               "(slashed), so they are redrawn.", [("", self.noshows_resolved)])
        if rpc is not None:
            metric("rpc_requests_total", "counter", "JSON-RPC requests sent to the chain.", [("", rpc.requests)])
            metric("rpc_seconds_total", "counter", "Seconds spent in JSON-RPC requests to the chain (requests in "
                   "flight together each count their own time).", [("", rpc.seconds)])
        for name, (help_, value) in gauges.items():
            metric(name, "gauge", help_, [("", value)])
        text = "\n".join(lines) + "\n"
        return text + (extra() if extra is not None else "")
