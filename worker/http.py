"""What a worker serves: its outputs (trustless gateway at /ipfs/) and a
description of itself at /shardex/worker (address, programs, GPU pool)."""

from __future__ import annotations

import json
from collections.abc import Callable

from shardex.storage import EmbeddedStore
from shardex.storage.trustless import gateway_app


def worker_app(store: EmbeddedStore, describe: Callable[[], dict]) -> Callable:
    gateway = gateway_app(store)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/shardex/worker":
            body = json.dumps(describe(), sort_keys=True).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await gateway(scope, receive, send)

    return app
