"""Rendered job details, reused until the job changes.

A job's detail is rebuilt from all of its events, so its cost grows with the
job's history; but it only changes when an event of that job is indexed, and
``jobs.updated_block`` records exactly that. A request costs one primary-key
read while the job is unchanged. The version doubles as the ETag, so clients
that poll get 304s. A reorg clears everything (a rolled-back job can come
back with the same ``updated_block`` but other events).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy import Engine, select

from backend import db

MAX_ENTRIES = 512


class JobDetailCache:
    def __init__(self, engine: Engine, render: Callable[[Engine, int], dict | None]) -> None:
        self.engine = engine
        self.render = render
        self._entries: OrderedDict[int, tuple[tuple[int, int], bytes]] = OrderedDict()
        self._lock = threading.Lock()  # routes run in FastAPI's thread pool
        self._epoch = 0  # bumped by reorgs
        self.hits = self.misses = 0

    def version(self, job_id: int) -> tuple[int, int] | None:
        with self.engine.connect() as conn:
            updated = conn.execute(select(db.jobs.c.updated_block).where(db.jobs.c.job_id == job_id)).scalar()
        return None if updated is None else (self._epoch, updated)

    def get(self, job_id: int) -> tuple[str, bytes] | None:
        """(etag, JSON body) of the job, or None if it is not indexed."""
        version = self.version(job_id)
        if version is None:
            return None
        with self._lock:
            entry = self._entries.get(job_id)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(job_id)
                self.hits += 1
                return etag(job_id, version), entry[1]
        detail = self.render(self.engine, job_id)
        if detail is None:
            return None
        body = json.dumps(detail, separators=(",", ":")).encode()
        # Rendered after ``version`` was read, so it is at least that new: cached under the older version it
        # is recomputed once more on the next request, never served stale.
        with self._lock:
            self.misses += 1
            if version[0] == self._epoch:
                self._entries[job_id] = (version, body)
                self._entries.move_to_end(job_id)
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
        return etag(job_id, version), body

    def on_commit(self, _rows: list, rolled_back_to: int | None) -> None:
        if rolled_back_to is not None:
            with self._lock:
                self._epoch += 1
                self._entries.clear()


def etag(job_id: int, version: tuple[int, int]) -> str:
    return f'W/"job-{job_id}-{version[0]}-{version[1]}"'
