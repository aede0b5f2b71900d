"""Every error the gateway returns is ``application/problem+json`` (RFC 9457)
with a stable machine-readable ``code``; contract reverts keep the Solidity
custom error's name and arguments in ``error``."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shardex.chain.errors import ChainError, ContractRevert, TransactionRejected
from shardex.errors import ShardexError
from shardex.requester import ProgramFailed, SubmitError
from shardex.siwe import SiweError
from shardex.storage.errors import (
    BlockCorrupted,
    BlockNotFound,
    FetchFailed,
    InvalidCid,
    NotAFile,
    StoreError,
    UnsupportedDag,
)

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


class RevertInfo(BaseModel):
    name: str
    args: dict[str, Any]


class Problem(BaseModel):
    """RFC 9457 problem details, plus a stable ``code``."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    error: RevertInfo | None = None  # the contract's custom error, for code "contract-revert"
    errors: list[dict[str, Any]] | None = None  # per-field problems, for code "invalid-request"


class ApiProblem(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def problem_body(status: int, code: str, detail: str, instance: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": f"https://shardex.dev/problems/{code}", "title": HTTPStatus(status).phrase, "status": status,
            "code": code, "detail": detail, "instance": instance, **{k: v for k, v in extra.items() if v is not None}}


def problem(request: Request | None, status: int, code: str, detail: str, headers: dict | None = None,
            **extra: Any) -> JSONResponse:
    body = problem_body(status, code, detail, request.url.path if request is not None else None, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    return {s: {"model": Problem, "description": HTTPStatus(s).phrase,
                "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for s in statuses}


_STATUS_CODES = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 406: "not-acceptable", 409: "conflict", 411: "length-required",
                 413: "payload-too-large", 415: "unsupported-media-type", 422: "invalid-request",
                 429: "too-many-requests"}


def _json_safe(errors: list[dict]) -> list[dict]:
    out = []
    for e in errors:
        item = {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        out.append(item)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api(request: Request, exc: ApiProblem):
        headers = exc.extra.pop("headers", None)
        return problem(request, exc.status, exc.code, exc.detail, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = _json_safe(list(exc.errors()))
        # loc is e.g. ["body", "map_shards"]: name the field, not where it came from.
        detail = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'] or ['request'])}: {e['msg']}" for e in errors[:5])
        return problem(request, 422, "invalid-request", detail or "invalid request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "error")
        return problem(request, exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(ContractRevert)
    async def _revert(request: Request, exc: ContractRevert):
        return problem(request, 409, "contract-revert", exc.describe(), error=exc.to_json())

    @app.exception_handler(SiweError)
    async def _siwe(request: Request, exc: SiweError):
        return problem(request, 401, "invalid-signature", str(exc))

    @app.exception_handler(SubmitError)
    async def _submit(request: Request, exc: SubmitError):
        return problem(request, 422, "invalid-job", str(exc))

    @app.exception_handler(ProgramFailed)
    async def _program(request: Request, exc: ProgramFailed):
        return problem(request, 422, "program-failed", str(exc), errors=[{"msg": e} for e in exc.errors])

    @app.exception_handler(InvalidCid)
    async def _cid(request: Request, exc: InvalidCid):
        return problem(request, 400, "invalid-cid", str(exc))

    @app.exception_handler(BlockNotFound)
    async def _missing(request: Request, exc: BlockNotFound):
        return problem(request, 404, "content-not-found", str(exc))

    @app.exception_handler(FetchFailed)
    async def _fetch(request: Request, exc: FetchFailed):
        return problem(request, 502, "fetch-failed", str(exc))

    @app.exception_handler(BlockCorrupted)
    async def _corrupt(request: Request, exc: BlockCorrupted):
        return problem(request, 502, "content-corrupted", str(exc))

    @app.exception_handler(NotAFile)
    async def _not_file(request: Request, exc: NotAFile):
        return problem(request, 422, "not-a-file", str(exc))

    @app.exception_handler(UnsupportedDag)
    async def _unsupported(request: Request, exc: UnsupportedDag):
        return problem(request, 422, "unsupported-dag", str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        return problem(request, 500, "store-error", str(exc))

    @app.exception_handler(TransactionRejected)
    async def _rejected(request: Request, exc: TransactionRejected):
        return problem(request, 422, "transaction-rejected", str(exc))

    @app.exception_handler(ChainError)
    async def _chain(request: Request, exc: ChainError):
        return problem(request, 502, "chain-error", str(exc))

    @app.exception_handler(ShardexError)
    async def _shardex(request: Request, exc: ShardexError):
        return problem(request, 400, "bad-request", str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(request, 500, "internal-error", f"{type(exc).__name__}: the gateway failed; see its log")
