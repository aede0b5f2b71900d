"""Jobs as indexed: lists, details (ETag-cached), events, verified results."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse

from backend import live, queries
from backend import schemas as S
from backend.problems import ApiProblem, responses
from backend.state import Gateway, GatewayState, JobIdPath
from shardex.chain.models import JobState
from shardex.requester import result_parts

router = APIRouter()


@router.get("/v1/jobs", response_model=S.JobPage, responses=responses(422), tags=["jobs"])
def list_jobs(s: Gateway, state: Annotated[S.Phase | None, Query(description="Only jobs in this phase.")] = None,
              requester: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
              before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Jobs older than this id."
                                                  )] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    """Newest first; follow `next_before` for older pages."""
    return queries.list_jobs(s.engine, state=state, requester=requester, before=before, limit=limit)


def _not_found(s: GatewayState, job_id: int) -> ApiProblem:
    return ApiProblem(404, "job-not-found", f"no job {job_id} indexed (yet): the indexer is at block "
                      f"{(s.indexer.cursor() or (None,))[0]}")


def _job_or_404(s: GatewayState, job_id: int) -> dict:
    found = s.job_cache.get(job_id)
    if found is None:
        raise _not_found(s, job_id)
    return json.loads(found.body)


@router.get("/v1/jobs/{job_id}", response_model=S.JobDetail, tags=["jobs"],
         responses={304: {"description": "Not modified since the ETag sent in If-None-Match."},
                    **responses(404, 422)})
async def get_job(s: Gateway, job_id: Annotated[int, JobIdPath],
                  if_none_match: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    """Phase, every task with its seats, replicas and reveals, payouts, slashes and costs, and, while the
    job is live, why its tasks wait (`waiting`). Carries an ETag: send it back as If-None-Match to get a
    304 while the job has not changed."""
    # A job unchanged since it was last rendered, and ended, is answered from memory, here on the
    # event loop: no thread hop, no database read. Anything else reads the index in a thread.
    found = s.job_cache.cached(job_id)
    if found is None or found.live:
        return await asyncio.to_thread(_job_detail_response, s, job_id, if_none_match)
    return _detail_response(found, b"[]", if_none_match)


def _job_detail_response(s: GatewayState, job_id: int, if_none_match: str | None) -> Response:
    found = s.job_cache.get(job_id)
    if found is None:
        raise _not_found(s, job_id)
    waiting: list = []
    if found.live:
        # Why it waits depends on more than the job's own events (the pool, the chain's head): computed
        # on every request, outside the cached body, and folded into the ETag.
        waiting = queries.waiting_reasons(s.engine, job_id, s.indexer.head, s.indexer.epoch_blocks)
    return _detail_response(found, json.dumps(waiting, separators=(",", ":")).encode(), if_none_match)


def _detail_response(found, waiting: bytes, if_none_match: str | None) -> Response:
    tag = found.etag if waiting == b"[]" else f'{found.etag[:-1]}-w{zlib.crc32(waiting):08x}"'
    headers = {"etag": tag, "cache-control": "no-cache"}
    if if_none_match is not None and tag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(found.body[:-1] + b',"waiting":' + waiting + b"}", media_type="application/json",
                    headers=headers)


@router.get("/v1/jobs/{job_id}/events", response_model=S.EventList, responses=responses(404, 422), tags=["jobs"])
def get_job_events(s: Gateway, job_id: Annotated[int, JobIdPath],
                   limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
                   after: Annotated[str | None, Query(max_length=40, pattern=r"^\d+-\d+$",
                                                      description="Only events after this event id.")] = None
                   ) -> Any:
    """The job's contract events in chain order (the newest `limit`, optionally only those after `after`)."""
    _job_or_404(s, job_id)
    since = live.parse_event_id(after) if after else None
    return {"events": queries.job_events(s.engine, job_id, limit, since)}


@router.get("/v1/jobs/{job_id}/result", response_class=StreamingResponse, tags=["jobs"],
         responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                              "format": "binary"}}},
                          "description": "The reduce outputs concatenated in partition order, verified."},
                    **responses(404, 409, 422, 502)})
async def get_result(s: Gateway, job_id: Annotated[int, JobIdPath]) -> StreamingResponse:
    """Fetched from the workers that announced endpoints, every block verified against its CID, streamed."""
    job = await asyncio.to_thread(_job_or_404, s, job_id)
    if job["state"] != JobState.COMPLETED.name and (await s.client.job(job_id)).state == JobState.COMPLETED:
        # The chain is ahead of the index (a requester who watched the chain asks the moment it completes):
        # wait for the indexer to reach the chain's head rather than refuse a completed job.
        await s.indexed(await s.client.block_number())
        job = await asyncio.to_thread(_job_or_404, s, job_id)
    if job["state"] != JobState.COMPLETED.name:
        raise ApiProblem(409, "job-not-completed", f"job {job_id} is {job['state']}: no result to serve")
    digests = await asyncio.to_thread(queries.settled_digests, s.engine, job_id)
    reduce_digests = [bytes.fromhex(digests[job["map_tasks"] + p][2:]) for p in range(job["reduce_tasks"])]
    parts = await result_parts(s.store, await s.fetcher(), job_id, reduce_digests)

    def body():
        for cid in parts:
            yield from s.store.cat_sync(cid)  # re-verifies every block as it reads it

    return StreamingResponse(body(), media_type="application/octet-stream", headers={
        "content-disposition": f'attachment; filename="job-{job_id}-result"',
        "x-shardex-partitions": ",".join(str(c) for c in parts)})
