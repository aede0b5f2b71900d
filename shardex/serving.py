"""Serve a local store over HTTP (trustless gateway) and announce it on chain,
so workers can fetch a requester's inputs and each other's outputs."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from shardex.chain import ChainClient
from shardex.chain.models import EndpointAnnounced
from shardex.storage import EmbeddedStore


@dataclass
class RunningServer:
    """An ASGI app served by uvicorn inside the current event loop."""

    server: Any
    task: asyncio.Task
    url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` until ``stop()``. Port 0: the kernel picks a free port at
    bind time (no race with other processes); the URL has the real one. The
    caller keeps its own signal handling."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # raises why it could not start (e.g. the port is taken)
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(server, task, f"http://{host}:{bound}")


@asynccontextmanager
async def serving(store: EmbeddedStore, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """The store's trustless gateway, for the duration of the block."""
    from shardex.storage.trustless import gateway_app

    running = await start_server(gateway_app(store), host, port)
    try:
        yield running.url
    finally:
        await running.stop()


async def announced_endpoints(client: ChainClient) -> dict[str, str]:
    """Address -> the latest endpoint it announced on chain."""
    return {e.worker: e.endpoint for e in await client.events(names=["EndpointAnnounced"])
            if isinstance(e, EndpointAnnounced)}


async def announced_endpoint(client: ChainClient, address: str) -> str | None:
    return (await announced_endpoints(client)).get(address)


async def serves(url: str, cid: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            r = await http.get(f"{url}/ipfs/{cid}?format=raw")
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> bool:
    """Block until ``GET url`` answers 200 (e.g. a just-started gateway's
    /healthz). False if ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
