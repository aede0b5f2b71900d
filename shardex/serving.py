"""Serve a local store over HTTP (trustless gateway) and announce it on chain,
so workers can fetch a requester's inputs and each other's outputs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from shardex.chain import ChainClient
from shardex.chain.models import EndpointAnnounced
from shardex.storage import EmbeddedStore


@asynccontextmanager
async def serving(store: EmbeddedStore, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    import uvicorn

    from shardex.storage.gateway import gateway_app

    # Port 0: the kernel picks a free port at bind time (no race with other processes).
    server = uvicorn.Server(uvicorn.Config(gateway_app(store), host=host, port=port, log_level="warning",
                                           lifespan="off"))
    server.install_signal_handlers = lambda: None
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


async def announced_endpoint(client: ChainClient, address: str) -> str | None:
    latest = None
    for e in await client.events(names=["EndpointAnnounced"]):
        if isinstance(e, EndpointAnnounced) and e.worker == address:
            latest = e.endpoint
    return latest


async def serves(url: str, cid: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            r = await http.get(f"{url}/ipfs/{cid}?format=raw")
        return r.status_code == 200
    except httpx.HTTPError:
        return False
