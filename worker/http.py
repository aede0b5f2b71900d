"""What a worker serves: its outputs (trustless gateway at /ipfs/), a
description of itself at /shardex/worker (address, programs, GPU pool) and
its Prometheus metrics at /metrics."""

from __future__ import annotations

import json
from collections.abc import Callable

from shardex.storage import EmbeddedStore
from shardex.storage.trustless import gateway_app


def worker_app(store: EmbeddedStore, describe: Callable[[], dict],
               metrics: Callable[[], str] | None = None) -> Callable:
    gateway = gateway_app(store)

    async def app(scope, receive, send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path == "/shardex/worker" or (path == "/metrics" and metrics is not None):
            if path == "/metrics":
                body, kind = metrics().encode(), b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, kind = json.dumps(describe(), sort_keys=True).encode(), b"application/json"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await gateway(scope, receive, send)

    return app
