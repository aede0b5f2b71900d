"""``/metrics`` in the Prometheus text format.

Request latency is a histogram per route template (``/v1/jobs/{job_id}``, not
one series per job id). Indexer lag, jobs by phase, tasks settled and pool members per
resource class are read
at scrape time from the indexer and the database, so they are never stale;
graph settlement throughput as ``rate(shardex_tasks_settled_total[5m])``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from backend import queries

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayCollector:
    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list:
        return []  # collected lazily: prometheus_client must not call collect() at registration

    def collect(self):
        st = self.state
        indexer = st.indexer
        cursor = indexer.cursor()
        lag = GaugeMetricFamily("shardex_indexer_lag_blocks", "Chain head minus the last indexed block.")
        head = GaugeMetricFamily("shardex_chain_head_block", "Latest chain block the indexer has seen.")
        indexed = GaugeMetricFamily("shardex_indexer_block", "Last block the indexer has stored.")
        if indexer.head is not None:
            head.add_metric([], indexer.head)
            lag.add_metric([], indexer.lag_blocks())
        if cursor is not None:
            indexed.add_metric([], cursor[0])
        yield lag
        yield head
        yield indexed
        healthy = GaugeMetricFamily("shardex_indexer_healthy", "1 when the indexer's last sync succeeded.")
        healthy.add_metric([], 0 if indexer.last_error else 1)
        yield healthy
        writer = GaugeMetricFamily("shardex_indexer_writer", "1 on the one gateway that writes the index "
                                   "(the others over the same database follow it).")
        writer.add_metric([], 1 if indexer.writing else 0)
        yield writer
        phases = GaugeMetricFamily("shardex_jobs", "Jobs by phase.", labels=["phase"])
        for phase, count in queries.phase_counts(st.engine).items():
            phases.add_metric([phase.lower()], count)
        yield phases
        settled = CounterMetricFamily("shardex_tasks_settled", "Tasks settled: a result led by the job's margin "
                                      "of agreeing drawn workers and was opened (indexed).")
        settled.add_metric([], queries.settled_total(st.engine))
        yield settled
        members = GaugeMetricFamily("shardex_pool_members", "Staked workers opted in to each resource class "
                                    "(indexed).", labels=["resource_class"])
        for resource_class, count in sorted(queries.pool_members(st.engine).items()):
            members.add_metric([queries.class_name(resource_class).lower()], count)
        yield members
        subs = GaugeMetricFamily("shardex_sse_subscribers", "Open /v1/events streams.")
        subs.add_metric([], st.hub.subscribers)
        yield subs


class Metrics:
    def __init__(self, state: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram("shardex_http_request_duration_seconds", "HTTP request latency by route.",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(GatewayCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)



class TimedRequests:
    """ASGI middleware: request latency by route template. Pure ASGI, so streams
    such as SSE pass through untouched; times to the end of the response."""

    def __init__(self, app: Callable, metrics: Metrics) -> None:
        self.app = app
        self.latency = metrics.latency

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = getattr(scope.get("route"), "path", None)
            if template is None:
                template = "/ipfs/{cid}" if scope.get("path", "").startswith("/ipfs/") else "other"
            self.latency.labels(scope["method"], template, str(status)).observe(time.perf_counter() - start)
