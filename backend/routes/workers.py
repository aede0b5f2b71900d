"""Workers (chain, index and self-description), statistics, and live events over SSE."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from backend import live, queries
from backend import schemas as S
from backend.problems import ApiProblem, responses
from backend.state import Gateway, GatewayState

router = APIRouter()


@router.get("/v1/workers", response_model=S.WorkerList, tags=["workers"])
async def list_workers(s: Gateway) -> Any:
    """Every staked worker: stake, locks and the resource classes it opted in to (read from the chain),
    seats drawn and declined, earnings and outcomes (indexed), and what it offers (GPUs, memory, programs)
    as its announced endpoint describes it."""
    activity = await asyncio.to_thread(queries.worker_activity, s.engine)
    infos = await asyncio.gather(*(s.client.worker(a) for a in activity))
    described = await asyncio.gather(*(_describe(s, w["endpoint"]) for w in activity.values()))
    out = []
    for (address, w), info, desc in zip(activity.items(), infos, described, strict=True):
        out.append({"address": address, "stake_wei": str(info.stake), "locked_wei": str(info.locked),
                    "unbonding_wei": str(info.unbonding), "settled": info.settled, "slashed": info.slashed,
                    "earned_wei": str(w["earned_wei"]), "slashed_wei": str(w["slashed_wei"]),
                    "seats": w["seats"], "declined": w["declined"],
                    "classes": [c for c in range(8) if info.classes & (1 << c)],
                    "endpoint": w["endpoint"], "online": desc is not None, "resources": desc})
    return {"workers": out}


@router.get("/v1/stats/jobs", response_model=S.JobStats, tags=["stats"])
def stats_jobs(s: Gateway) -> Any:
    """How many jobs are in each phase, and how many tasks have settled, as indexed."""
    phases = queries.phase_counts(s.engine)
    return {"phases": phases, "total": sum(phases.values()), "tasks_settled": queries.settled_total(s.engine)}


@router.get("/v1/stats/throughput", response_model=S.Throughput, responses=responses(422), tags=["stats"])
def stats_throughput(s: Gateway, bucket_s: Annotated[int, Query(ge=1, le=86400)] = 10,
                     buckets: Annotated[int, Query(ge=1, le=500)] = 60) -> Any:
    """Tasks settled per bucket of chain time, ending at the newest indexed event."""
    return queries.throughput(s.engine, bucket_s, buckets)


@router.get("/v1/events", tags=["live"], response_class=StreamingResponse,
         responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                          "description": "Server-Sent Events: `event` (a ChainEvent) and `reorg`."},
                    **responses(422)})
async def events(s: Gateway, request: Request,
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
