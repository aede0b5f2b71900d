"""Rendered job details, reused until the job changes.

A job's detail is rebuilt from all of its events, so its cost grows with the
job's history; but it only changes when an event of that job is indexed, and
every indexed event reaches ``on_commit`` (on the gateway that writes the
index and on those that follow it alike). So a job's entry stays good until
an event of that job arrives: a request for an unchanged job costs no
database read at all, on any gateway. A reorg clears everything.

The ETag is a hash of the body: the same job gives the same tag on every
gateway behind a load balancer, and clients that poll get 304s.

Race: a render that started before an event of its job was committed may
finish after it. Each job has a generation, bumped by ``on_commit``; a
render is cached only if the generation it started under is still current,
so it is served once (consistent, a moment old) and never cached stale.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

MAX_ENTRIES = 512
#: Job states whose detail can still change without an event (why it waits depends on the head).
LIVE_STATES = frozenset({"MAP", "REDUCE"})


@dataclass(frozen=True)
class Detail:
    etag: str
    body: bytes  # the JSON object, without `waiting`
    live: bool  # MAP or REDUCE: `waiting` must be computed per request


class JobDetailCache:
    def __init__(self, engine: Engine, render: Callable[[Engine, int], dict | None]) -> None:
        self.engine = engine
        self.render = render
        self._entries: OrderedDict[int, tuple[tuple[int, int], Detail]] = OrderedDict()
        self._generations: dict[int, int] = {}
        self._lock = threading.Lock()  # routes run in FastAPI's thread pool
        self._epoch = 0  # bumped by reorgs
        self.hits = self.misses = 0

    def _key(self, job_id: int) -> tuple[int, int]:
        return self._epoch, self._generations.get(job_id, 0)

    def cached(self, job_id: int) -> Detail | None:
        """The job's detail if it is cached and current: no database read."""
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is None or entry[0] != self._key(job_id):
                return None
            self._entries.move_to_end(job_id)
            self.hits += 1
            return entry[1]

    def get(self, job_id: int) -> Detail | None:
        """The job's detail, rendered from the index on a miss; None if it is not indexed."""
        found = self.cached(job_id)
        if found is not None:
            return found
        with self._lock:
            key = self._key(job_id)
        detail = self.render(self.engine, job_id)
        if detail is None:
            return None
        body = json.dumps(detail, separators=(",", ":")).encode()
        found = Detail(etag(job_id, body), body, detail.get("state") in LIVE_STATES)
        with self._lock:
            self.misses += 1
            if key == self._key(job_id):
                self._entries[job_id] = (key, found)
                self._entries.move_to_end(job_id)
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
        return found

    def on_commit(self, rows: list, rolled_back_to: int | None) -> None:
        with self._lock:
            if rolled_back_to is not None:
                self._epoch += 1
                self._entries.clear()
                self._generations.clear()
            for job_id in {r["job_id"] for r in rows if r["job_id"] is not None}:
                self._generations[job_id] = self._generations.get(job_id, 0) + 1
                self._entries.pop(job_id, None)


def etag(job_id: int, body: bytes) -> str:
    return f'W/"job-{job_id}-{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
