"""Who is acting: Sign-In with Ethereum sessions for writes.

``GET /v1/auth/nonce`` hands out a single-use nonce; ``POST /v1/auth/siwe``
takes an EIP-4361 message naming it plus the EIP-191 signature, and returns a
bearer token bound to the recovered address. Writes that change the gateway's
state require that token, so nobody can act for an address whose key they do
not hold.

Nonces and sessions live in the gateway's database, not in a process: a
restarted gateway keeps everyone signed in, and every gateway over one
database honours a session any of them issued. A nonce is spent by deleting
its row, so it is single use across gateways too (of two gateways racing to
spend it, one deletes the row and the other finds none). Only a token's
SHA-256 is stored: a copy of the database signs nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select

from backend import db
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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, engine: Engine, chain_id: int, domains: set[str] | None = None) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.domains = domains  # None: the request's own Host is the only accepted domain

    def new_nonce(self) -> tuple[str, float]:
        now = time.time()
        nonce = secrets.token_hex(12)
        t = db.auth_nonces
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.expires_at < now))
            pending = conn.execute(select(func.count()).select_from(select(t.c.nonce).limit(MAX_PENDING_NONCES)
                                                                    .subquery())).scalar_one()
            if pending >= MAX_PENDING_NONCES:  # flood: forget the oldest half
                oldest = select(t.c.nonce).order_by(t.c.expires_at).limit(MAX_PENDING_NONCES // 2)
                conn.execute(delete(t).where(t.c.nonce.in_(oldest.scalar_subquery())))
            conn.execute(insert(t).values(nonce=nonce, expires_at=now + NONCE_TTL_S))
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
        # The nonce is spent last, so a message rejected above can be fixed and re-signed;
        # spending it and opening the session is one transaction.
        token = secrets.token_urlsafe(32)
        until = time.time() + SESSION_TTL_S
        if msg.expiration_time is not None:
            until = min(until, msg.expiration_time.timestamp())
        with self.engine.begin() as conn:
            spent = conn.execute(delete(db.auth_nonces).where(db.auth_nonces.c.nonce == msg.nonce,
                                                              db.auth_nonces.c.expires_at >= time.time())).rowcount
            if spent != 1:
                raise SiweError("unknown, used or expired nonce: get a fresh one from GET /v1/auth/nonce")
            conn.execute(delete(db.sessions).where(db.sessions.c.expires_at < time.time()))
            conn.execute(insert(db.sessions).values(token_sha256=_digest(token), address=msg.address,
                                                    expires_at=until))
        return token, Session(msg.address, until)

    def lookup(self, token: str) -> Session | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.sessions.c.address, db.sessions.c.expires_at)
                               .where(db.sessions.c.token_sha256 == _digest(token))).first()
        if row is None or row.expires_at < time.time():
            return None  # an expired row goes at the next sign-in
        return Session(row.address, row.expires_at)

    def sign_out(self, token: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(db.sessions).where(db.sessions.c.token_sha256 == _digest(token))).rowcount > 0
