"""Liveness, indexer freshness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from backend import schemas as S
from backend.problems import ApiProblem, responses
from backend.state import Gateway

router = APIRouter(tags=["operations"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/healthz", response_model=S.Health, responses=responses(503))
def healthz(s: Gateway) -> Any:
    """Liveness and indexer freshness: 503 while the indexer's last sync failed."""
    cursor = s.indexer.cursor()
    head = s.indexer.head
    body = {"status": "degraded" if s.indexer.last_error else "ok", "chain_id": s.config.deployment.chain_id,
            "market": s.config.deployment.market, "registry": s.config.deployment.registry,
            "head_block": head, "indexed_block": cursor[0] if cursor else None,
            "lag_blocks": s.indexer.lag_blocks(),
            "indexer_error": s.indexer.last_error, "index_writer": s.indexer.writing,
            "dev_signer": s.config.dev_account.address if s.config.dev_account else None}
    if s.indexer.last_error:
        raise ApiProblem(503, "indexer-failing", f"indexer: {s.indexer.last_error}", health=body)
    return body


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
def prometheus_metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
