"""The Shardex gateway: the /v1 job API, the chain indexer, live events,
metrics, the trustless IPFS gateway and the dashboard, in one FastAPI app.

``create_app(config)`` builds it; ``shardex gateway`` serves it with uvicorn.
The chain stays the source of truth: everything read here comes from the
indexer's copy of the contracts' events, every write is a transaction the
requester signed (or, in dev mode on the dev chain, the gateway's own key).
The routes live in ``backend/routes/``, one router per resource; they reach
the one shared state through the ``Gateway`` dependency (``backend/state.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from backend import db, live, queries
from backend.auth import Sessions
from backend.cache import JobDetailCache
from backend.indexer import Indexer
from backend.limits import BodyLimit
from backend.metrics import Metrics, TimedRequests
from backend.problems import install as install_problems
from backend.routes import auth, jobs, operations, submit, workers
from backend.state import DEFAULT_MAX_UPLOAD, GatewayConfig, GatewayState
from shardex.chain import ChainClient
from shardex.devnet import DEV_CHAIN_ID
from shardex.storage import EmbeddedStore
from shardex.storage.trustless import gateway_app
from shardex.storage.providers import Providers

__all__ = ["DEFAULT_MAX_UPLOAD", "GatewayConfig", "GatewayState", "create_app"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


def create_app(config: GatewayConfig) -> FastAPI:
    if config.dev_account is not None and config.deployment.chain_id != DEV_CHAIN_ID:
        raise ValueError(f"dev-mode signing is for the dev chain ({DEV_CHAIN_ID}) only, "
                         f"not chain {config.deployment.chain_id}")
    engine = db.make_engine(config.db_url)
    store = EmbeddedStore(config.store_dir)
    client = ChainClient(config.rpc_url, config.deployment, config.dev_account, **config.chain_options)
    hub = live.Hub()
    job_cache = JobDetailCache(engine, queries.job_detail)

    def on_commit(rows: list[dict], rolled_back_to: int | None) -> None:
        job_cache.on_commit(rows, rolled_back_to)
        hub.publish(rows, rolled_back_to)

    indexer = Indexer(engine, client, config.confirmations, on_commit=on_commit)
    # Unique per process: two gateways given the same name (cloned hosts) must not share a lease.
    indexer.holder = f"{config.instance or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    s = GatewayState(config, engine, store, client, indexer, hub,
                     Sessions(engine, config.deployment.chain_id, config.siwe_domains),
                     Providers(exclude=[config.public_url]), job_cache)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(indexer.run(config.poll_s))
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await asyncio.to_thread(indexer.release)  # another gateway may write at once
            await client.aclose()
            await s.providers.aclose()
            engine.dispose()

    app = FastAPI(title="Shardex gateway", version="1.0.0", lifespan=lifespan,
                  description="Post map/reduce jobs, follow them live, fetch verified results. Every error is "
                              "`application/problem+json` with a stable `code`; contract reverts carry the "
                              "custom error's name and arguments in `error`. Wei amounts are decimal strings.")
    app.state.gateway = s
    app.state.metrics = metrics = Metrics(s)
    install_problems(app)
    for router in (operations.router, auth.router, jobs.router, submit.router, workers.router):
        app.include_router(router)
    app.mount("/ipfs", gateway_app(store), name="ipfs")
    app.mount("/dashboard", StaticFiles(directory=STATIC, html=True), name="dashboard")
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + (4 << 20))
    app.add_middleware(TimedRequests, metrics=metrics)
    return app
