"""What every gateway route works with: its configuration and its one shared state,
handed to routes as dependencies (``Gateway``, ``Authed``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from eth_account.signers.local import LocalAccount
from fastapi import Depends, Header, Request
from fastapi import Path as PathParam
from sqlalchemy import Engine

from backend import db, live, queries
from backend.auth import Session, Sessions
from backend.cache import JobDetailCache
from backend.indexer import Indexer
from backend.problems import ApiProblem
from shardex.chain import ChainClient, Deployment
from shardex.storage import EmbeddedStore
from shardex.storage.fetcher import Fetcher
from shardex.storage.providers import Providers

DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024


@dataclass
class GatewayConfig:
    rpc_url: str
    deployment: Deployment
    store_dir: Path
    db_url: str = db.DEFAULT_URL
    public_url: str | None = None  # where workers reach /ipfs/ (announced on chain for uploaded inputs)
    dev_account: LocalAccount | None = None  # dev mode: sign with this key (dev chain only)
    confirmations: int = 0
    poll_s: float = 0.5
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    siwe_domains: set[str] | None = None  # None: the request's Host
    probe_workers: bool = True
    # Who this gateway is to the others over one database (names the index's writer lease holder,
    # with the process id). None: the host name.
    instance: str | None = None
    chain_options: dict = field(default_factory=dict)  # ChainClient's fee strategy and L1 pricing


@dataclass
class GatewayState:
    config: GatewayConfig
    engine: Engine
    store: EmbeddedStore
    client: ChainClient
    indexer: Indexer
    hub: live.Hub
    sessions: Sessions
    providers: Providers
    job_cache: JobDetailCache
    worker_cache: dict[str, tuple[float, dict | None]] = field(default_factory=dict)
    announce_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def fetcher(self) -> Fetcher:
        """Every announced endpoint (workers and requesters alike) but our own, as providers."""
        urls = set((await asyncio.to_thread(queries.announced_endpoints, self.engine)).values())
        return self.providers.fetcher(self.store, sorted(urls))

    async def indexed(self, block: int, timeout: float = 10.0) -> None:
        """Read-your-writes: wait (bounded) until the indexer has stored ``block``,
        so a GET right after a submit finds the job."""
        if self.config.confirmations:
            self.indexer.wake()
            return  # confirmations delay indexing by design: don't hold the request for them
        await self.indexer.wait_for_block(block, timeout)


async def _gateway(request: Request) -> GatewayState:  # async: no threadpool hop per request
    return request.app.state.gateway


def _session(request: Request, authorization: Annotated[str | None, Header(
        description="Bearer <token> from POST /v1/auth/siwe")] = None) -> Session:
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiProblem(401, "unauthenticated", "sign in first: GET /v1/auth/nonce, sign an EIP-4361 message, "
                         "POST /v1/auth/siwe, then send Authorization: Bearer <token>",
                         headers={"WWW-Authenticate": 'Bearer realm="shardex"'})
    found = request.app.state.gateway.sessions.lookup(authorization.removeprefix("Bearer ").strip())
    if found is None:
        raise ApiProblem(401, "unauthenticated", "unknown or expired session token: sign in again",
                         headers={"WWW-Authenticate": 'Bearer realm="shardex", error="invalid_token"'})
    return found


Gateway = Annotated[GatewayState, Depends(_gateway)]
Authed = Annotated[Session, Depends(_session)]
JobIdPath = PathParam(ge=1, le=2**63 - 1, description="The job's on-chain id.")
