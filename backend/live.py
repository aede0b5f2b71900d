"""Live state changes for ``GET /v1/events`` (Server-Sent Events).

The indexer publishes each committed chunk of events here; every subscriber
has a bounded queue. A subscriber that falls behind is dropped rather than
letting memory grow: its client reconnects with ``Last-Event-ID`` and replays
what it missed from the database, so no event is lost either way. Event ids
are ``<block>-<log index>``, which orders them and survives restarts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from backend import db

QUEUE_SIZE = 1000
REPLAY_LIMIT = 5000
KEEPALIVE_S = 15.0


def event_id(block_number: int, log_index: int) -> str:
    return f"{block_number}-{log_index}"


#: Block numbers and log indexes are stored as SQL BIGINT.
MAX_BIGINT = 2**63 - 1


def parse_event_id(value: str) -> tuple[int, int] | None:
    """``block-logindex``; an id past what the index can hold is past every event
    (clamped, so a query with it finds nothing after it instead of failing)."""
    block, sep, index = value.partition("-")
    if not sep or not block.isdigit() or not index.isdigit() or len(value) > 40:
        return None
    return min(int(block), MAX_BIGINT), min(int(index), MAX_BIGINT)


def public_event(row: Any) -> dict[str, Any]:
    """An indexed event as the API shows it (REST and SSE alike)."""
    r = row if isinstance(row, dict) else row._mapping
    return {"id": event_id(r["block_number"], r["log_index"]), "event": r["name"], "contract": r["contract"],
            "block_number": r["block_number"], "block_time": r["block_time"], "tx_hash": r["tx_hash"],
            "log_index": r["log_index"], "job_id": r["job_id"], "task_id": r["task_id"],
            "args": _stringify_big(r["args_json"])}


def _stringify_big(args: dict[str, Any]) -> dict[str, Any]:
    # JavaScript numbers lose precision above 2**53: send wei and other big values as strings.
    return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53 else v)
            for k, v in args.items()}


@dataclass(eq=False)  # identity semantics: subscribers live in a set
class Subscriber:
    matches: Callable[[dict], bool]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, rows: list[dict], rolled_back_to: int | None) -> None:
        """Called by the indexer after each commit (in the event loop's thread)."""
        messages = [("event", public_event(r)) for r in rows]
        if rolled_back_to is not None:
            messages.append(("reorg", {"rolled_back_to_block": rolled_back_to}))
        for sub in list(self._subs):
            for kind, data in messages:
                if kind == "event" and not sub.matches(data):
                    continue
                try:
                    sub.queue.put_nowait((kind, data))
                except asyncio.QueueFull:
                    sub.dropped = True
                    self._subs.discard(sub)
                    break

    def subscribe(self, matches: Callable[[dict], bool]) -> Subscriber:
        sub = Subscriber(matches)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)


def replay(engine: Engine, after: tuple[int, int], job_id: int | None, limit: int = REPLAY_LIMIT) -> list[dict]:
    block, index = after
    q = (select(db.events)
         .where(or_(db.events.c.block_number > block,
                    and_(db.events.c.block_number == block, db.events.c.log_index > index)))
         .order_by(db.events.c.block_number, db.events.c.log_index).limit(limit))
    if job_id is not None:
        q = q.where(db.events.c.job_id == job_id)
    with engine.connect() as conn:
        return [public_event(r) for r in conn.execute(q)]


def sse(kind: str, data: dict, ident: str | None = None) -> bytes:
    head = f"id: {ident}\n" if ident else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(hub: Hub, engine: Engine, job_id: int | None, last_id: tuple[int, int] | None,
                 is_disconnected: Callable[[], Any]) -> AsyncIterator[bytes]:
    """The SSE byte stream: a replay after ``last_id`` (if any), then live events."""

    def matches(e: dict) -> bool:
        return job_id is None or e["job_id"] == job_id

    sub = hub.subscribe(matches)  # subscribe first: nothing committed during the replay is missed
    try:
        yield b"retry: 2000\n\n"
        seen = last_id
        if last_id is not None:
            for e in await asyncio.to_thread(replay, engine, last_id, job_id):
                seen = (e["block_number"], e["log_index"])
                yield sse("event", e, e["id"])
        while True:
            try:
                kind, data = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                if sub.dropped or await is_disconnected():
                    return
                yield b": keepalive\n\n"
                continue
            if kind == "event":
                key = (data["block_number"], data["log_index"])
                if seen is not None and key <= seen:
                    continue  # already sent by the replay
                seen = key
                yield sse(kind, data, data["id"])
            else:
                seen = (data["rolled_back_to_block"], 1 << 30) if data["rolled_back_to_block"] >= 0 else None
                yield sse(kind, data)
            if sub.dropped and sub.queue.empty():
                return  # fell behind: the client reconnects with Last-Event-ID
    finally:
        hub.unsubscribe(sub)
