"""The worker's crash-safe memory: a local SQLite file.

Every intent is written (and committed) *before* the transaction that acts
on it is sent, so a worker killed at any instant and restarted knows what it
may have done: which seats it was drawn for, and the digest of every
commitment — without it, it could never open its result, and would be slashed.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    spec BLOB,                -- the job spec bytes, once fetched and accepted
    status TEXT NOT NULL,     -- 'new' | 'accepted' | 'rejected' | 'done'
    reason TEXT
);
CREATE TABLE IF NOT EXISTS replicas (
    job_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    round INTEGER NOT NULL,
    status TEXT NOT NULL,     -- assigned, computed, committing, committed, paid, declined, resolved, lost
    lease_deadline INTEGER,
    digest BLOB,              -- manifest digest (what we commit to)
    salt BLOB,
    error TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (job_id, task_id, round)
);
CREATE INDEX IF NOT EXISTS replicas_status ON replicas(status);
CREATE TABLE IF NOT EXISTS endpoints (address TEXT PRIMARY KEY, url TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settled (
    job_id INTEGER NOT NULL, task_id INTEGER NOT NULL, round INTEGER NOT NULL, digest BLOB NOT NULL,
    PRIMARY KEY (job_id, task_id)
);
"""

#: Statuses of a replica this worker still has to act on.
OPEN = ("assigned", "computed", "committing", "committed")


@dataclass
class ReplicaRow:
    job_id: int
    task_id: int
    round: int
    status: str
    lease_deadline: int | None
    digest: bytes | None
    salt: bytes | None
    error: str | None


class State:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each write is durable at once. Used from one thread at a time
        # (AsyncState's own, for the agent), not necessarily the one that opened it.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ meta

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, value))

    @property
    def cursor(self) -> int:
        return int(self.get("cursor", "-1"))

    @cursor.setter
    def cursor(self, block: int) -> None:
        self.put("cursor", str(block))

    def get_cursor(self) -> int:
        return self.cursor

    def set_cursor(self, block: int) -> None:
        self.cursor = block

    # ------------------------------------------------------------ jobs

    def job(self, job_id: int) -> tuple[str, bytes | None] | None:
        row = self.db.execute("SELECT status, spec FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_job(self, job_id: int, status: str, spec: bytes | None = None, reason: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO jobs(job_id, spec, status, reason) VALUES(?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET "
            "status = excluded.status, spec = COALESCE(excluded.spec, jobs.spec), reason = excluded.reason",
            (job_id, spec, status, reason))

    def jobs_with_status(self, status: str) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT job_id FROM jobs WHERE status = ?", (status,))]

    def rejections(self, limit: int = 200) -> dict[int, str]:
        """The newest jobs this worker refused, with why."""
        return {r[0]: r[1] or "" for r in self.db.execute(
            "SELECT job_id, reason FROM jobs WHERE status = 'rejected' ORDER BY job_id DESC LIMIT ?", (limit,))}

    # ------------------------------------------------------------ chain indexes

    def set_endpoint(self, address: str, url: str) -> None:
        self.db.execute("INSERT INTO endpoints(address, url) VALUES(?, ?) ON CONFLICT(address) DO UPDATE SET "
                        "url = excluded.url", (address.lower(), url))

    def endpoints(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT address, url FROM endpoints"))

    def set_settled(self, job_id: int, task_id: int, rnd: int, digest: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO settled(job_id, task_id, round, digest) VALUES(?, ?, ?, ?)",
                        (job_id, task_id, rnd, digest))

    def all_jobs(self) -> list[tuple[int, str, bytes | None]]:
        """(job_id, status, spec) of every job this worker has seen."""
        return list(self.db.execute("SELECT job_id, status, spec FROM jobs ORDER BY job_id"))

    def forget_job(self, job_id: int) -> None:
        """A job id that now names another job, or none (the chain went back): its seats,
        settled digests and spec are another job's."""
        self.db.execute("DELETE FROM replicas WHERE job_id = ?", (job_id,))
        self.db.execute("DELETE FROM settled WHERE job_id = ?", (job_id,))
        self.db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def forget_replica(self, job_id: int, task_id: int, rnd: int) -> None:
        self.db.execute("DELETE FROM replicas WHERE job_id = ? AND task_id = ? AND round = ?", (job_id, task_id, rnd))

    def settled(self, job_id: int) -> dict[int, bytes]:
        return {t: d for t, d in self.db.execute("SELECT task_id, digest FROM settled WHERE job_id = ?", (job_id,))}

    # ------------------------------------------------------------ replicas

    def upsert(self, job_id: int, task_id: int, rnd: int, status: str, **fields: object) -> None:
        columns = ["status", "updated", *fields]
        values = [status, time.time(), *fields.values()]
        self.db.execute(
            f"INSERT INTO replicas(job_id, task_id, round, {', '.join(columns)}) VALUES(?, ?, ?, "
            f"{', '.join('?' for _ in columns)}) ON CONFLICT(job_id, task_id, round) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in columns),
            (job_id, task_id, rnd, *values))

    def replicas(self, *statuses: str, job_id: int | None = None) -> list[ReplicaRow]:
        query = "SELECT job_id, task_id, round, status, lease_deadline, digest, salt, error FROM replicas"
        clauses, args = [], []
        if statuses:
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args += statuses
        if job_id is not None:
            clauses.append("job_id = ?")
            args.append(job_id)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [ReplicaRow(*row) for row in self.db.execute(query + " ORDER BY job_id, task_id, round", args)]

    def replica(self, job_id: int, task_id: int, rnd: int) -> ReplicaRow | None:
        row = self.db.execute(
            "SELECT job_id, task_id, round, status, lease_deadline, digest, salt, error FROM replicas "
            "WHERE job_id = ? AND task_id = ? AND round = ?", (job_id, task_id, rnd)).fetchone()
        return ReplicaRow(*row) if row else None


class AsyncState:
    """The same State for async code: every call runs on one thread of its own, in
    the order it was made. A write awaited here is on disk (synchronous=FULL)
    before the caller goes on to send the transaction it guards, and the fsync
    no longer stalls the event loop that serves HTTP and follows the chain."""

    def __init__(self, path: Path) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-state")
        self._state = State(path)

    def __getattr__(self, name: str):
        method = getattr(self._state, name)

        async def call(*args, **kwargs):
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, functools.partial(method, *args, **kwargs))
        return call

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._state.close)
        self._thread.shutdown(wait=True)
