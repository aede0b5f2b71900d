"""The Shardex gateway: the /v1 job API, the chain indexer, live events,
metrics, the trustless IPFS gateway and the dashboard, in one FastAPI app.

``create_app(config)`` builds it; ``shardex gateway`` serves it with uvicorn.
The chain stays the source of truth: everything read here comes from the
indexer's copy of the contracts' events, every write is a transaction the
requester signed (or, in dev mode on the dev chain, the gateway's own key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from backend import db, live, queries
from backend import schemas as S
from backend.auth import Session, Sessions
from backend.cache import JobDetailCache
from backend.indexer import Indexer
from backend.limits import BodyLimit
from backend.metrics import Metrics, TimedRequests
from backend.problems import ApiProblem, responses
from backend.problems import install as install_problems
from backend.submit import check_funds, decode_signed, parse_wei, save_upload, unsigned_transactions
from shardex import jobs, siwe
from shardex.chain import ChainClient, Deployment
from shardex.chain.models import JobState
from shardex.devnet import DEV_CHAIN_ID
from shardex.requester import SubmitRequest, job_params, prepare, result_parts
from shardex.storage import CID, EmbeddedStore
from shardex.storage.errors import BlockNotFound, FetchFailed
from shardex.storage.fetcher import Fetcher, HttpProvider
from shardex.storage.gateway import gateway_app

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
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


@dataclass
class GatewayState:
    config: GatewayConfig
    engine: Engine
    store: EmbeddedStore
    client: ChainClient
    indexer: Indexer
    hub: live.Hub
    sessions: Sessions
    worker_cache: dict[str, tuple[float, dict | None]] = field(default_factory=dict)
    announce_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _gateway(request: Request) -> GatewayState:
    return request.app.state.gateway


def _session(request: Request, authorization: Annotated[str | None, Header(
        description="Bearer <token> from POST /v1/auth/siwe")] = None) -> Session:
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiProblem(401, "unauthenticated", "sign in first: GET /v1/auth/nonce, sign an EIP-4361 message, "
                         "POST /v1/auth/siwe, then send Authorization: Bearer <token>",
                         headers={"WWW-Authenticate": 'Bearer realm="shardex"'})
    found = _gateway(request).sessions.lookup(authorization.removeprefix("Bearer ").strip())
    if found is None:
        raise ApiProblem(401, "unauthenticated", "unknown or expired session token: sign in again",
                         headers={"WWW-Authenticate": 'Bearer realm="shardex", error="invalid_token"'})
    return found


Authed = Annotated[Session, Depends(_session)]
JobIdPath = PathParam(ge=1, le=2**63 - 1, description="The job's on-chain id.")


def create_app(config: GatewayConfig) -> FastAPI:
    if config.dev_account is not None and config.deployment.chain_id != DEV_CHAIN_ID:
        raise ValueError(f"dev-mode signing is for the dev chain ({DEV_CHAIN_ID}) only, "
                         f"not chain {config.deployment.chain_id}")
    engine = db.make_engine(config.db_url)
    store = EmbeddedStore(config.store_dir)
    client = ChainClient(config.rpc_url, config.deployment, config.dev_account)
    hub = live.Hub()
    job_cache = JobDetailCache(engine, queries.job_detail)

    def on_commit(rows: list[dict], rolled_back_to: int | None) -> None:
        job_cache.on_commit(rows, rolled_back_to)
        hub.publish(rows, rolled_back_to)

    indexer = Indexer(engine, client, config.confirmations, on_commit=on_commit)
    # The routes below are closures over this one state.
    s = GatewayState(config, engine, store, client, indexer, hub,
                     Sessions(config.deployment.chain_id, config.siwe_domains))
    metrics = Metrics(s)

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
            await client.aclose()
            engine.dispose()

    app = FastAPI(title="Shardex gateway", version="1.0.0", lifespan=lifespan,
                  description="Post map/reduce jobs, follow them live, fetch verified results. Every error is "
                              "`application/problem+json` with a stable `code`; contract reverts carry the "
                              "custom error's name and arguments in `error`. Wei amounts are decimal strings.")
    app.state.gateway = s
    install_problems(app)

    # ------------------------------------------------------------ operations

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/healthz", response_model=S.Health, responses=responses(503), tags=["operations"])
    def healthz() -> Any:
        """Liveness and indexer freshness: 503 while the indexer's last sync failed."""
        cursor = s.indexer.cursor()
        head = s.indexer.head
        body = {"status": "degraded" if s.indexer.last_error else "ok", "chain_id": s.config.deployment.chain_id,
                "market": s.config.deployment.market, "registry": s.config.deployment.registry,
                "head_block": head, "indexed_block": cursor[0] if cursor else None,
                "lag_blocks": s.indexer.lag_blocks(),
                "indexer_error": s.indexer.last_error,
                "dev_signer": s.config.dev_account.address if s.config.dev_account else None}
        if s.indexer.last_error:
            raise ApiProblem(503, "indexer-failing", f"indexer: {s.indexer.last_error}", health=body)
        return body

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}})
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------ auth

    @app.get("/v1/auth/nonce", response_model=S.Nonce, tags=["auth"])
    def auth_nonce(request: Request) -> Any:
        """A single-use nonce (10 minutes) for an EIP-4361 Sign-In with Ethereum message."""
        nonce, expires = s.sessions.new_nonce()
        return {"nonce": nonce, "expires_at": expires, "domain": request.headers.get("host", ""),
                "chain_id": s.config.deployment.chain_id, "statement": siwe.STATEMENT}

    @app.post("/v1/auth/siwe", response_model=S.SessionInfo, responses=responses(400, 401, 413, 422), tags=["auth"])
    def auth_siwe(body: S.SiweLogin, request: Request) -> Any:
        """Exchange a signed EIP-4361 message for a bearer token acting as its address."""
        token, sess = s.sessions.sign_in(body.message, body.signature, request.headers.get("host", ""))
        return {"token": token, "address": sess.address, "expires_at": sess.expires_at}

    @app.get("/v1/auth/me", response_model=S.Me, responses=responses(401), tags=["auth"])
    def auth_me(who: Authed) -> Any:
        return {"address": who.address, "expires_at": who.expires_at}

    @app.post("/v1/auth/logout", status_code=204, responses=responses(400, 401, 413), tags=["auth"])
    def auth_logout(who: Authed, authorization: Annotated[str | None, Header()] = None) -> Response:
        s.sessions.sign_out((authorization or "").removeprefix("Bearer ").strip())
        return Response(status_code=204)

    # ------------------------------------------------------------ jobs

    @app.get("/v1/jobs", response_model=S.JobPage, responses=responses(422), tags=["jobs"])
    def list_jobs(state: Annotated[S.Phase | None, Query(description="Only jobs in this phase.")] = None,
                  requester: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
                  before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Jobs older than this id."
                                                      )] = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
        """Newest first; follow `next_before` for older pages."""
        return queries.list_jobs(s.engine, state=state, requester=requester, before=before, limit=limit)

    def _not_found(job_id: int) -> ApiProblem:
        return ApiProblem(404, "job-not-found", f"no job {job_id} indexed (yet): the indexer is at block "
                          f"{(s.indexer.cursor() or (None,))[0]}")

    def _job_or_404(job_id: int) -> dict:
        found = job_cache.get(job_id)
        if found is None:
            raise _not_found(job_id)
        return json.loads(found[1])

    @app.get("/v1/jobs/{job_id}", response_model=S.JobDetail, tags=["jobs"],
             responses={304: {"description": "Not modified since the ETag sent in If-None-Match."},
                        **responses(404, 422)})
    def get_job(job_id: Annotated[int, JobIdPath],
                if_none_match: Annotated[str | None, Header(max_length=200)] = None) -> Any:
        """Phase, every task with its replicas and reveals, payouts, slashes and costs. Carries an ETag:
        send it back as If-None-Match to get a 304 while the job has not changed."""
        found = job_cache.get(job_id)
        if found is None:
            raise _not_found(job_id)
        tag, body = found
        headers = {"etag": tag, "cache-control": "no-cache"}
        if if_none_match is not None and tag in (t.strip() for t in if_none_match.split(",")):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @app.get("/v1/jobs/{job_id}/events", response_model=S.EventList, responses=responses(404, 422), tags=["jobs"])
    def get_job_events(job_id: Annotated[int, JobIdPath],
                       limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
                       after: Annotated[str | None, Query(max_length=40, pattern=r"^\d+-\d+$",
                                                          description="Only events after this event id.")] = None
                       ) -> Any:
        """The job's contract events in chain order (the newest `limit`, optionally only those after `after`)."""
        _job_or_404(job_id)
        since = live.parse_event_id(after) if after else None
        return {"events": queries.job_events(s.engine, job_id, limit, since)}

    @app.get("/v1/jobs/{job_id}/result", response_class=StreamingResponse, tags=["jobs"],
             responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}},
                              "description": "The reduce outputs concatenated in partition order, verified."},
                        **responses(404, 409, 422, 502)})
    async def get_result(job_id: Annotated[int, JobIdPath]) -> StreamingResponse:
        """Fetched from the workers that announced endpoints, every block verified against its CID, streamed."""
        job = await asyncio.to_thread(_job_or_404, job_id)
        if job["state"] != JobState.COMPLETED.name and (await s.client.job(job_id)).state == JobState.COMPLETED:
            # The chain is ahead of the index (a requester who watched the chain asks the moment it completes):
            # wait for the indexer to reach the chain's head rather than refuse a completed job.
            await _indexed(s, await s.client.block_number())
            job = await asyncio.to_thread(_job_or_404, job_id)
        if job["state"] != JobState.COMPLETED.name:
            raise ApiProblem(409, "job-not-completed", f"job {job_id} is {job['state']}: no result to serve")
        digests = await asyncio.to_thread(queries.settled_digests, s.engine, job_id)
        reduce_digests = [bytes.fromhex(digests[job["map_tasks"] + p][2:]) for p in range(job["reduce_tasks"])]
        parts = await result_parts(s.store, await _fetcher(s), job_id, reduce_digests)

        def body():
            for cid in parts:
                yield from s.store.cat_sync(cid)  # re-verifies every block as it reads it

        return StreamingResponse(body(), media_type="application/octet-stream", headers={
            "content-disposition": f'attachment; filename="job-{job_id}-result"',
            "x-shardex-partitions": ",".join(str(c) for c in parts)})

    @app.post("/v1/jobs", status_code=201, tags=["jobs"],
              response_model=None,
              responses={200: {"model": S.JobPrepared,
                               "description": "Non-custodial: the transactions to sign and send to POST /v1/tx."},
                         201: {"model": S.JobPostedOut, "description": "Dev mode: the job is posted."},
                         **responses(400, 401, 409, 413, 422, 502)})
    async def submit_job(
        who: Authed, response: Response,
        program: Annotated[str | None, Form(max_length=64, description="Built-in program name.")] = None,
        map_shards: Annotated[int, Form(ge=1, le=10_000)] = 4,
        reduce_shards: Annotated[int, Form(ge=1, le=1_000)] = 1,
        replication: Annotated[int, Form(ge=1, le=16)] = 1,
        quorum: Annotated[int, Form(ge=1, le=16)] = 1,
        reward_wei: Annotated[str, Form(max_length=40, description="Per replica, wei.")] = "1000000000000000",
        collateral_wei: Annotated[str, Form(max_length=40, description="Per claim, wei.")] = "10000000000000000",
        min_stake_wei: Annotated[str, Form(max_length=40)] = "0",
        pattern: Annotated[str | None, Form(max_length=1000, description="Regex, for grep.")] = None,
        lease_s: Annotated[int, Form(ge=10, le=30 * 86400)] = 600,
        reveal_window_s: Annotated[int, Form(ge=10, le=7 * 86400)] = 120,
        job_timeout_s: Annotated[int, Form(ge=60, le=365 * 86400)] = 3600,
        max_rounds: Annotated[int, Form(ge=1, le=255)] = 3,
        task_timeout_s: Annotated[float, Form(ge=1, le=86400)] = 600.0,
        memory_mb: Annotated[int, Form(ge=16, le=1 << 20)] = 2048,
        disk_mb: Annotated[int, Form(ge=1, le=1 << 24)] = 4096,
        gpus: Annotated[int, Form(ge=0, le=64)] = 0,
        gpu_memory_mb: Annotated[int, Form(ge=0, le=10_000_000)] = 0,
        gpu_share: Annotated[float, Form(ge=0.01, le=1.0)] = 1.0,
        input_cid: Annotated[str | None, Form(max_length=200, description="Instead of a file: a CID.")] = None,
        signing: Annotated[Literal["wallet", "gateway"], Form(
            description="wallet (default): get unsigned transactions; gateway: dev mode, the gateway signs.")]
        = "wallet",
        input: Annotated[UploadFile | None, File(description="A file of records (lines).")] = None,
        program_file: Annotated[UploadFile | None, File(description="A Python map/reduce program.")] = None,
    ) -> Any:
        """Store, shard and plan the input, store the spec, then post the job (see `signing`)."""
        if (input is None) == (input_cid is None):
            raise ApiProblem(422, "invalid-job", "give exactly one of the `input` file or `input_cid`")
        if (program is None) == (program_file is None):
            raise ApiProblem(422, "invalid-job", "give exactly one of `program` or `program_file`")
        if quorum > replication:
            raise ApiProblem(422, "invalid-job", f"quorum {quorum} exceeds replication {replication}")
        if signing == "gateway" and s.config.dev_account is None:
            raise ApiProblem(409, "dev-mode-off", "this gateway does not sign (start it with --dev-sign on a "
                             "devnet); use signing=wallet")
        reward, collateral = parse_wei(reward_wei, "reward_wei"), parse_wei(collateral_wei, "collateral_wei")
        min_stake = parse_wei(min_stake_wei, "min_stake_wei")
        requester = s.config.dev_account.address if signing == "gateway" else who.address
        scratch = Path(tempfile.mkdtemp(prefix="shardex-upload-"))
        try:
            program_path = None
            if program_file is not None:
                program_path = await save_upload(program_file, 1 << 20, scratch / "program")
            if input is not None:
                input_ref = str(await save_upload(input, s.config.max_upload_bytes, _mkdir(scratch / "input")))
            else:
                input_ref = str(CID.parse(input_cid or ""))  # InvalidCid -> 400
            req = SubmitRequest(program=program, program_file=program_path, input=input_ref, map_shards=map_shards,
                                reduce_shards=reduce_shards, replication=replication, quorum=quorum, reward=reward,
                                collateral=collateral, params={"pattern": pattern} if pattern is not None else {},
                                min_stake=min_stake, max_rounds=max_rounds, lease_duration=lease_s,
                                reveal_window=reveal_window_s, job_timeout=job_timeout_s, timeout_s=task_timeout_s,
                                memory_mb=memory_mb, disk_mb=disk_mb, gpus=gpus, gpu_memory_mb=gpu_memory_mb,
                                gpu_share=gpu_share)
            # Before any work is stored: the escrow does not depend on the spec's digest.
            await check_funds(s.client, requester, job_params(req, bytes(32)).escrow)
            try:
                spec = await prepare(req, s.store, await _fetcher(s) if input is None else None)
            except (FetchFailed, BlockNotFound) as exc:
                raise ApiProblem(422, "input-unavailable", f"input_cid {input_cid}: no provider serves it ({exc})"
                                 ) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        digest = spec.digest  # re-serialises the spec on every access: once is enough
        params = job_params(req, digest)
        info = {"spec_cid": str(jobs.spec_cid(digest)), "spec_digest": "0x" + digest.hex(),
                "input_bytes": spec.input_bytes, "escrow_wei": str(params.escrow), "requester": requester}
        announce = await _announce_needed(s, requester)
        if signing == "gateway":
            async with s.announce_lock:
                if announce is not None:
                    await s.client.announce(announce)
                receipt = await s.client.post_job(params)
            job_id = receipt.events_named("JobPosted")[0].job_id
            await _indexed(s, receipt.block_number)
            return {**info, "job_id": job_id, "tx_hash": receipt.tx_hash}
        response.status_code = 200
        txs = await unsigned_transactions(s.client, requester, params, announce)
        return {**info, "map_shards": list(spec.map_shards), "transactions": txs}

    @app.post("/v1/tx", response_model=S.TxResult, responses=responses(400, 409, 413, 422, 502), tags=["jobs"])
    async def send_tx(body: S.SignedTx,
                      wait_s: Annotated[float, Query(ge=0, le=120, description="How long to wait to be mined.")]
                      = 60) -> Any:
        """Relay a transaction the requester signed (to this gateway's contracts only) and report what it did."""
        allowed = {s.config.deployment.market.lower(), s.config.deployment.registry.lower()}
        raw, decoded = decode_signed(body.raw, s.config.deployment.chain_id, allowed)
        pending = await s.client.send_raw(raw, decoded, "signed transaction")
        receipt = await pending.receipt(timeout=max(wait_s, 0.1))  # ChainError (502) names the tx if not mined
        posted = receipt.events_named("JobPosted")
        await _indexed(s, receipt.block_number)
        return {"tx_hash": receipt.tx_hash, "block_number": receipt.block_number, "gas_used": receipt.gas_used,
                "sender": decoded["from"], "job_id": posted[0].job_id if posted else None,
                "events": [e.to_json() | {"block_number": e.block_number} for e in receipt.events]}

    # ------------------------------------------------------------ workers, stats, live

    @app.get("/v1/workers", response_model=S.WorkerList, tags=["workers"])
    async def list_workers() -> Any:
        """Every staked worker: stake and locks (read from the chain), earnings and outcomes (indexed), and
        what it offers (GPUs, memory, programs) as its announced endpoint describes it."""
        activity = await asyncio.to_thread(queries.worker_activity, s.engine)
        infos = await asyncio.gather(*(s.client.worker(a) for a in activity))
        described = await asyncio.gather(*(_describe(s, w["endpoint"]) for w in activity.values()))
        out = []
        for (address, w), info, desc in zip(activity.items(), infos, described, strict=True):
            out.append({"address": address, "stake_wei": str(info.stake), "locked_wei": str(info.locked),
                        "unbonding_wei": str(info.unbonding), "settled": info.settled, "slashed": info.slashed,
                        "earned_wei": str(w["earned_wei"]), "slashed_wei": str(w["slashed_wei"]),
                        "claims": w["claims"], "endpoint": w["endpoint"], "online": desc is not None,
                        "resources": desc})
        return {"workers": out}

    @app.get("/v1/stats/jobs", response_model=S.JobStats, tags=["stats"])
    def stats_jobs() -> Any:
        """How many jobs are in each phase, and how many tasks have settled, as indexed."""
        phases = queries.phase_counts(s.engine)
        return {"phases": phases, "total": sum(phases.values()), "tasks_settled": queries.settled_total(s.engine)}

    @app.get("/v1/stats/throughput", response_model=S.Throughput, responses=responses(422), tags=["stats"])
    def stats_throughput(bucket_s: Annotated[int, Query(ge=1, le=86400)] = 10,
                         buckets: Annotated[int, Query(ge=1, le=500)] = 60) -> Any:
        """Tasks settled per bucket of chain time, ending at the newest indexed event."""
        return queries.throughput(s.engine, bucket_s, buckets)

    @app.get("/v1/events", tags=["live"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "Server-Sent Events: `event` (a ChainEvent) and `reorg`."},
                        **responses(422)})
    async def events(request: Request,
                     job_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Only this job's events."
                                                         )] = None,
                     last_event_id: Annotated[str | None, Header(max_length=40)] = None,
                     since: Annotated[str | None, Query(max_length=40, pattern=r"^\d+-\d+$",
                                                        description="Replay after this event id.")] = None
                     ) -> StreamingResponse:
        """Every indexed state change, live. Reconnect with `Last-Event-ID` (browsers do) to replay what was
        missed; `since=0-0` replays everything first."""
        resume = last_event_id or since
        after = live.parse_event_id(resume) if resume else None
        if resume and after is None:
            raise ApiProblem(422, "invalid-request", f"bad event id {resume!r}: expected <block>-<log index>")
        return StreamingResponse(live.stream(s.hub, s.engine, job_id, after, request.is_disconnected),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    # ------------------------------------------------------------ content, dashboard

    app.mount("/ipfs", gateway_app(store), name="ipfs")
    app.mount("/dashboard", StaticFiles(directory=STATIC, html=True), name="dashboard")

    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + (4 << 20))
    app.add_middleware(TimedRequests, metrics=metrics)
    return app



def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _fetcher(s: GatewayState) -> Fetcher:
    """Every announced endpoint (workers and requesters alike) but our own, as providers."""
    urls = set((await asyncio.to_thread(queries.announced_endpoints, s.engine)).values())
    urls.discard(s.config.public_url)
    providers = [HttpProvider(u, timeout=15) for u in sorted(urls)]
    return Fetcher(providers, s.store)


async def _indexed(s: GatewayState, block: int, timeout: float = 10.0) -> None:
    """Read-your-writes: wait (bounded) until the indexer has stored ``block``,
    so a GET right after a submit finds the job."""
    deadline = time.monotonic() + timeout
    s.indexer.wake()
    while time.monotonic() < deadline:
        cursor = s.indexer.cursor()
        if cursor is not None and cursor[0] >= block:
            return
        if s.config.confirmations:
            return  # confirmations delay indexing by design: don't hold the request for them
        await asyncio.sleep(0.05)


async def _announce_needed(s: GatewayState, requester: str) -> str | None:
    """The gateway's URL, unless the requester's latest announcement already names it."""
    if s.config.public_url is None:
        return None
    current = await asyncio.to_thread(queries.announced_endpoints, s.engine, requester)
    return None if current.get(requester) == s.config.public_url else s.config.public_url


async def _describe(s: GatewayState, endpoint: str | None) -> dict | None:
    """A worker's /shardex/worker self-description, cached for 10 s; None when unreachable."""
    if endpoint is None or not s.config.probe_workers:
        return None
    now = time.monotonic()
    cached = s.worker_cache.get(endpoint)
    if cached is not None and now - cached[0] < 10:
        return cached[1]
    desc = None
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            r = await http.get(f"{endpoint}/shardex/worker")
        if r.status_code == 200 and len(r.content) < 1 << 20:
            body = r.json()
            desc = body if isinstance(body, dict) else None
    except (httpx.HTTPError, json.JSONDecodeError, ValueError):
        desc = None
    s.worker_cache[endpoint] = (now, desc)
    return desc
