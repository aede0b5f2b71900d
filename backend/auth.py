"""Who is acting: Sign-In with Ethereum sessions for writes.

``GET /v1/auth/nonce`` hands out a single-use nonce; ``POST /v1/auth/siwe``
takes an EIP-4361 message naming it plus the EIP-191 signature, and returns a
bearer token bound to the recovered address. Writes that change the gateway's
state require that token, so nobody can act for an address whose key they do
not hold. Sessions live in memory: a restarted gateway asks to sign in again.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shardex import siwe
from shardex.siwe import SiweError

NONCE_TTL_S = 600
SESSION_TTL_S = 24 * 3600
CLOCK_SKEW_S = 60
MAX_PENDING_NONCES = 10_000


@dataclass(frozen=True)
class Session:
    address: str
    expires_at: float


class Sessions:
    def __init__(self, chain_id: int, domains: set[str] | None = None) -> None:
        self.chain_id = chain_id
        self.domains = domains  # None: the request's own Host is the only accepted domain
        self._nonces: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}

    def new_nonce(self) -> tuple[str, float]:
        now = time.time()
        if len(self._nonces) >= MAX_PENDING_NONCES:
            self._nonces = {n: t for n, t in self._nonces.items() if t > now}
            if len(self._nonces) >= MAX_PENDING_NONCES:  # flood: forget the oldest half
                for n in sorted(self._nonces, key=self._nonces.get)[:MAX_PENDING_NONCES // 2]:
                    del self._nonces[n]
        nonce = secrets.token_hex(12)
        self._nonces[nonce] = now + NONCE_TTL_S
        return nonce, now + NONCE_TTL_S

    def sign_in(self, text: str, signature: str, host: str) -> tuple[str, Session]:
        msg = siwe.parse(text)
        allowed = self.domains if self.domains is not None else {host}
        if msg.domain not in allowed:
            raise SiweError(f"message is for domain {msg.domain!r}, this gateway is {min(allowed)!r}")
        if msg.chain_id != self.chain_id:
            raise SiweError(f"message is for chain {msg.chain_id}, this gateway serves chain {self.chain_id}")
        now = datetime.now(UTC)
        if msg.issued_at > now + timedelta(seconds=CLOCK_SKEW_S):
            raise SiweError("Issued At is in the future")
        if msg.expiration_time is not None and msg.expiration_time <= now:
            raise SiweError("message has expired")
        signer = siwe.recover(text, signature)
        if signer != msg.address:
            raise SiweError(f"signature is by {signer}, not by {msg.address}")
        # The nonce is spent last, so a message rejected above can be fixed and re-signed.
        expires = self._nonces.pop(msg.nonce, None)
        if expires is None or expires < time.time():
            raise SiweError("unknown, used or expired nonce: get a fresh one from GET /v1/auth/nonce")
        until = time.time() + SESSION_TTL_S
        if msg.expiration_time is not None:
            until = min(until, msg.expiration_time.timestamp())
        token = secrets.token_urlsafe(32)
        session = Session(msg.address, until)
        self._sessions[token] = session
        return token, session

    def lookup(self, token: str) -> Session | None:
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires_at < time.time():
            del self._sessions[token]
            return None
        return session

    def sign_out(self, token: str) -> bool:
        return self._sessions.pop(token, None) is not None
