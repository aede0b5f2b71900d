"""Sign-In with Ethereum (EIP-4361): nonces, sessions, sign-out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from backend import schemas as S
from backend.problems import responses
from backend.state import Authed, Gateway
from shardex import siwe

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.get("/nonce", response_model=S.Nonce)
def auth_nonce(s: Gateway, request: Request) -> Any:
    """A single-use nonce (10 minutes) for an EIP-4361 Sign-In with Ethereum message."""
    nonce, expires = s.sessions.new_nonce()
    return {"nonce": nonce, "expires_at": expires, "domain": request.headers.get("host", ""),
            "chain_id": s.config.deployment.chain_id, "statement": siwe.STATEMENT}


@router.post("/siwe", response_model=S.SessionInfo, responses=responses(400, 401, 413, 422))
def auth_siwe(s: Gateway, body: S.SiweLogin, request: Request) -> Any:
    """Exchange a signed EIP-4361 message for a bearer token acting as its address."""
    token, sess = s.sessions.sign_in(body.message, body.signature, request.headers.get("host", ""))
    return {"token": token, "address": sess.address, "expires_at": sess.expires_at}


@router.get("/me", response_model=S.Me, responses=responses(401))
def auth_me(who: Authed) -> Any:
    return {"address": who.address, "expires_at": who.expires_at}


@router.post("/logout", status_code=204, responses=responses(400, 401, 413))
def auth_logout(s: Gateway, who: Authed, authorization: Annotated[str | None, Header()] = None) -> Response:
    s.sessions.sign_out((authorization or "").removeprefix("Bearer ").strip())
    return Response(status_code=204)
