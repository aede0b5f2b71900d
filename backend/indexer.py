"""Chain-event indexer: copies both contracts' events into the database and
derives ``jobs``/``tasks``/``members`` rows from them.

The derived rows mirror the contracts' own bookkeeping, computed from events
alone: a task's seats, the seats held, the commits of its current round and
its tally (protocol v2: workers are drawn for seats, a task settles when one
result leads all others by the job's margin; see docs/protocol.md); a pool
member's stake, locked collateral and the resource classes it opted in to.

Every chunk of blocks is written in ONE database transaction (events, the
derived rows of the jobs it touches, and the cursor), so a crash at any point
leaves the database exactly as it was after some whole chunk.

Reorgs: before indexing, the stored cursor hash is compared with the chain's
hash at that height. On a mismatch the indexer walks back over the blocks it
stored events for (newest first, at most ``max_reorg_depth`` blocks below the
cursor) to the newest one whose hash still matches, deletes every event above
it, recomputes the affected jobs' and members' rows from the remaining events and
moves the cursor there -- all in one transaction -- then indexes forward.

Several gateways over one database: exactly one of them writes the index at a
time. ``run()`` holds a lease row (``db.writer_lease``) that the writer renews
in every transaction it writes, and that another gateway takes over once it
has gone ``LEASE_S`` without renewal (the writer died or hangs). Every write
is fenced by the lease: the transaction first renews it *as its holder*, so a
writer that lost the lease (paused past it, then woke) writes nothing, and
the events' primary key refuses a duplicate besides. The lease's clock only
decides how soon a dead writer is replaced, never whether two can write.

The gateways that do not write *follow*: they read the cursor and the events
the writer committed, in order, and hand them to ``on_commit`` exactly as the
writer does, so live streams and caches on every gateway see every event once.
A rollback (a reorg, another chain) is logged (``db.rollback_log``) in the
same transaction that deletes the events, so a follower notices it even when
new events were indexed above the fork before its next look, and goes back
to the lowest block kept by every rollback since.

The database calls are synchronous SQLAlchemy Core (short transactions); the
chain calls are async.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from web3.exceptions import BlockNotFound

from backend import db
from shardex.chain import ChainClient
from shardex.chain.errors import ContractRevert
from shardex.chain.models import Event, JobState, Outcome
from shardex.errors import ShardexError

log = logging.getLogger(__name__)

CHUNK_BLOCKS = 2000
#: ``SeedArmed.taskId`` when the seed is the job's (every task's round 0).
ALL_TASKS = 2**256 - 1
#: JobPosted events whose job views are read at once.
VIEW_BATCH = 32
#: How long the writer's lease lasts without renewal: a dead writer is replaced within about this.
LEASE_S = 5.0
#: Events a follower reads from the database at once.
FOLLOW_BATCH = 5000
#: Jobs whose derived state the writer keeps in memory between chunks (the busiest recent ones).
DERIVATIONS_KEPT = 256
#: Rollbacks remembered for followers (a follower further behind than this replays from scratch).
ROLLBACK_LOG = 1000
#: Failed steps in a row after which a writer gives its lease up for another gateway to take.
WRITER_FAILURES = 3

POOL_EVENTS = {"Staked", "OptedIn", "OptedOut", "UnbondRequested", "Unbonded", "CollateralLocked",
               "CollateralReleased", "Slashed", "EndpointAnnounced"}
#: Pool events that change a member's row (an announcement does not: requesters announce too).
MEMBER_EVENTS = POOL_EVENTS - {"EndpointAnnounced"}
#: The job view's fields that JobPosted does not carry and that never change after posting.
VIEW_FIELDS = ("epsilon_ppm", "adversary_ppm", "max_rounds", "extra_seats", "collateral", "min_stake",
               "lease_duration", "reveal_window", "token")


class ReorgTooDeep(ShardexError):
    """No stored block within the bound matches the chain: run ``rebuild()``."""


class LeaseLost(ShardexError):
    """Another gateway took over writing the index; this one wrote nothing and follows now."""


def _hex(b: bytes | Any) -> str:
    return "0x" + bytes(b).hex()


def _contract_of(e: Event) -> str:
    contract = getattr(e, "contract", "")
    if contract:
        return contract
    return "WorkerPool" if e.name in POOL_EVENTS else "JobMarket"


def event_row(e: Event, block_hash: str, block_time: int, view: dict[str, Any] | None = None) -> dict[str, Any]:
    args = e.to_json()
    for key in ("block_number", "tx_hash", "log_index", "event"):
        args.pop(key, None)
    account = getattr(e, "worker", None) or getattr(e, "account", None)
    task_id = getattr(e, "task_id", None)
    return {
        "block_number": e.block_number, "block_hash": block_hash, "block_time": block_time,
        "log_index": e.log_index, "tx_hash": e.tx_hash,
        "contract": _contract_of(e), "name": e.name, "job_id": getattr(e, "job_id", None),
        # SeedArmed for all of a job's tasks names task 2**256-1: no task row, and no 64-bit column, for it.
        "task_id": None if task_id == ALL_TASKS else task_id, "account": account, "args_json": args,
        "view_json": view,
    }


def _result12(result: str) -> str:
    """A commit's result as the market compares it: its first 12 bytes (0x + 24 hex digits)."""
    return result[:26].lower()


class _Tally:
    """``JobMarket._count``: the leading result of a task's tally and every other result's votes."""

    __slots__ = ("lead", "votes")

    def __init__(self) -> None:
        self.lead: str | None = None
        self.votes: dict[str, int] = {}

    def count(self, t: dict, result: str) -> None:
        t["total"] += 1
        if t["lead_count"] == 0 or result == self.lead:
            self.lead = result
            t["lead_count"] += 1
            return
        votes = self.votes[result] = self.votes.get(result, 0) + 1
        if votes > t["lead_count"]:
            self.votes[self.lead] = t["lead_count"]
            self.lead, t["lead_count"] = result, votes


class Derivation:
    """Jobs and tasks rows computed from events (rows of ``db.events``) fed in chain order, mirroring the
    market's own bookkeeping (``JobMarket.Task``: seats, seated, committed, tally, reveal deadline).
    Fed incrementally, it remembers which rows the events since ``take_dirty`` changed, so the writer
    rewrites only those instead of re-deriving a job from all of its events at every chunk."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict] = {}
        self.tasks: dict[tuple[int, int], dict] = {}
        self.tallies: dict[tuple[int, int], _Tally] = {}
        self.won: set[tuple[int, int]] = set()  # tasks whose current round has a winner (RevealOpened)
        self.replicas: dict[tuple[int, int, str], tuple[str, int]] = {}  # last known (state, round) of each seat
        self.dirty_jobs: set[int] = set()
        self.dirty_tasks: set[tuple[int, int]] = set()
        self.last: tuple[int, int] = (-1, -1)  # (block, log index) of the last event fed

    def task(self, job_id: int, task_id: int) -> dict:
        key = (job_id, task_id)
        self.dirty_tasks.add(key)
        t = self.tasks.get(key)
        if t is None:
            t = self.tasks[key] = {
                "job_id": job_id, "task_id": task_id, "round": 0, "seats": self.jobs[job_id]["margin"], "seated": 0,
                "committed": 0, "lead_count": 0, "total": 0, "reveal_deadline": 0, "settled": False,
                "digest": None, "seed_block": 0, "declined": 0}
            self.tallies[key] = _Tally()
        return t

    def feed(self, job_events: Iterable[Any]) -> Derivation:
        for ev in job_events:
            self._feed(ev)
        return self

    def _feed(self, ev: Any) -> None:
        name, a, job_id = ev.name, ev.args_json, ev.job_id
        self.last = (ev.block_number, getattr(ev, "log_index", -1))
        if name == "JobPosted":
            view = ev.view_json or {}
            self.dirty_jobs.add(job_id)
            self.jobs[job_id] = {
                "job_id": job_id, "requester": a["requester"], "spec_digest": a["spec_digest"],
                "reward_per_replica": str(a["reward_per_replica"]), "state": int(JobState.MAP),
                "map_tasks": a["map_tasks"], "reduce_tasks": a["reduce_tasks"], "margin": a["margin"],
                "resource_class": a["resource_class"], "escrow": str(a["escrow"]), "settled_tasks": 0,
                "seed_block": 0, "extra_seats_used": 0, "escalations": 0, "seats_drawn": 0, "declines": 0,
                **{f: (str(view[f]) if f in ("collateral", "min_stake") else view[f]) if f in view else None
                   for f in VIEW_FIELDS},
                # The currency of every amount of this job: None is ETH (wei), else the ERC-20's units.
                "token": view["token"] if int(view.get("token") or "0x0", 16) else None,
                "posted_block": ev.block_number, "posted_time": ev.block_time, "updated_block": ev.block_number}
            return
        job = self.jobs.get(job_id)
        if job is None:  # an event of a job posted before the indexed range: nothing to derive
            return
        self.dirty_jobs.add(job_id)
        job["updated_block"] = ev.block_number
        key = (job_id, ev.task_id)
        task, won, replicas = self.task, self.won, self.replicas
        if name == "JobStateChanged":
            job["state"] = int(JobState[a["state"]])
        elif name == "SeedArmed":
            if ev.task_id is None:  # the job's seed: every task's round 0
                job["seed_block"] = a["seed_block"]
            else:
                task(job_id, ev.task_id)["seed_block"] = a["seed_block"]
        elif name == "TaskAssigned":
            task(job_id, ev.task_id)["seated"] += 1
            job["seats_drawn"] += 1
            replicas[(job_id, ev.task_id, a["worker"])] = ("assigned", a["round"])
        elif name == "TaskDeclined":
            t = task(job_id, ev.task_id)
            t["declined"] += 1
            job["declines"] += 1
            if a["round"] == t["round"] and key not in won:
                t["seated"] -= 1  # the seat is redrawn
            replicas[(job_id, ev.task_id, a["worker"])] = ("declined", a["round"])
        elif name == "ResultCommitted":
            t = task(job_id, ev.task_id)
            t["committed"] += 1
            self.tallies[key].count(t, _result12(a["result"]))
            replicas[(job_id, ev.task_id, a["worker"])] = ("committed", t["round"])  # only the current round commits
        elif name == "RevealOpened":
            task(job_id, ev.task_id)["reveal_deadline"] = a["reveal_deadline"]
            won.add(key)
        elif name == "TaskSettled":
            task(job_id, ev.task_id).update(settled=True, digest=a["digest"])
            job["settled_tasks"] += 1
        elif name == "TaskEscalated":
            t = task(job_id, ev.task_id)
            if key in won:  # a winner nobody opened: the round is void and its tally discarded
                t.update(lead_count=0, total=0)
                self.tallies[key] = _Tally()
                won.discard(key)
            t.update(round=a["round"], seats=a["seats"], seated=0, committed=0, reveal_deadline=0,
                     seed_block=a["seed_block"])
            job["extra_seats_used"] += a["seats"]
            job["escalations"] += 1
        elif name == "ResultRevealed":  # paid by the reveal: the seat is over
            replicas.pop((job_id, ev.task_id, a["worker"]), None)
        elif name == "ReplicaResolved":
            state, rnd = replicas.pop((job_id, ev.task_id, a["worker"]), ("", -1))
            t = task(job_id, ev.task_id)
            if state == "assigned" and a["outcome"] == Outcome.SLASHED.name and rnd == t["round"] and key not in won:
                t["seated"] -= 1  # a no-show frees its seat for a redraw

    def take_dirty(self) -> tuple[list[dict], list[dict]]:
        """The jobs and tasks rows changed since the last call (of jobs posted in the fed range)."""
        jobs = [self.jobs[j] for j in sorted(self.dirty_jobs) if j in self.jobs]
        tasks = [self.tasks[k] for k in sorted(self.dirty_tasks) if k[0] in self.jobs]
        self.dirty_jobs, self.dirty_tasks = set(), set()
        return jobs, tasks


def derive_members(pool_events: Iterable[Any]) -> dict[str, dict]:
    """Members rows computed from WorkerPool events (rows of ``db.events``) in chain order."""
    members: dict[str, dict] = {}
    for ev in pool_events:
        if ev.name not in MEMBER_EVENTS or ev.account is None:
            continue
        a = ev.args_json
        m = members.setdefault(ev.account, {"account": ev.account, "stake": 0, "locked": 0, "classes": 0,
                                            "joins_json": {}, "updated_block": ev.block_number})
        m["updated_block"] = ev.block_number
        if ev.name == "Staked":
            m["stake"] = int(a["stake"])
        elif ev.name == "UnbondRequested":
            m["stake"] -= int(a["amount"])
        elif ev.name == "CollateralLocked":
            m["locked"] += int(a["amount"])
        elif ev.name == "CollateralReleased":
            m["locked"] -= int(a["amount"])
        elif ev.name == "Slashed":  # burned out of the locked collateral
            m["stake"] -= int(a["amount"])
            m["locked"] -= int(a["amount"])
        elif ev.name == "OptedIn":
            m["classes"] |= 1 << a["class_"]
            m["joins_json"] = m["joins_json"] | {str(a["class_"]): a["from_epoch"]}
        elif ev.name == "OptedOut":
            m["classes"] &= ~(1 << a["class_"])
            m["joins_json"] = {k: v for k, v in m["joins_json"].items() if k != str(a["class_"])}
    for m in members.values():
        m["stake"], m["locked"] = str(m["stake"]), str(m["locked"])
    return members


def recompute(conn: Connection, job_ids: Iterable[int]) -> Derivation:
    """Replace the derived rows of ``job_ids`` with ones computed from all of their events; returns
    the derivation, to be fed what comes next."""
    d = Derivation()
    ids = sorted(set(job_ids))
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        conn.execute(delete(db.tasks).where(db.tasks.c.job_id.in_(part)))
        conn.execute(delete(db.jobs).where(db.jobs.c.job_id.in_(part)))
        d.feed(conn.execute(
            select(db.events.c.block_number, db.events.c.log_index, db.events.c.block_time, db.events.c.name,
                   db.events.c.job_id, db.events.c.task_id, db.events.c.args_json, db.events.c.view_json)
            .where(db.events.c.job_id.in_(part))
            .order_by(db.events.c.block_number, db.events.c.log_index)))
        jobs_rows, tasks_rows = d.take_dirty()  # this part's jobs: those posted in the indexed range
        if jobs_rows:
            conn.execute(insert(db.jobs), jobs_rows)
        if tasks_rows:
            conn.execute(insert(db.tasks), tasks_rows)
    return d


def recompute_members(conn: Connection, accounts: Iterable[str]) -> None:
    """Replace the members rows of ``accounts`` with ones computed from the events table."""
    ids = sorted(set(accounts))
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        conn.execute(delete(db.members).where(db.members.c.account.in_(part)))
        rows = conn.execute(
            select(db.events.c.block_number, db.events.c.name, db.events.c.account, db.events.c.args_json)
            .where(db.events.c.account.in_(part), db.events.c.contract == "WorkerPool",
                   db.events.c.name.in_(sorted(MEMBER_EVENTS)))
            .order_by(db.events.c.block_number, db.events.c.log_index))
        members = derive_members(rows)
        if members:
            conn.execute(insert(db.members), list(members.values()))


def _member_accounts(rows: Iterable[dict]) -> list[str]:
    return [r["account"] for r in rows if r["name"] in MEMBER_EVENTS and r["account"] is not None]


def _set_cursor(conn: Connection, number: int, block_hash: str) -> None:
    done = conn.execute(update(db.cursor).where(db.cursor.c.id == 1)
                        .values(block_number=number, block_hash=block_hash)).rowcount
    if not done:
        conn.execute(insert(db.cursor).values(id=1, block_number=number, block_hash=block_hash))


class Indexer:
    """``on_commit(rows, rolled_back_to)`` is called after every committed chunk
    (the new event rows) and every reorg rollback (``rows == []`` and the block
    kept, -1 for none): the gateway's live event stream hangs off it."""

    def __init__(self, engine: Engine, client: ChainClient, confirmations: int = 0, *,
                 chunk_blocks: int = CHUNK_BLOCKS, max_reorg_depth: int = 1000,
                 on_commit: Callable[[list[dict], int | None], None] | None = None) -> None:
        if not 1 <= chunk_blocks <= CHUNK_BLOCKS:
            raise ValueError(f"chunk_blocks must be in 1..{CHUNK_BLOCKS}")
        self.engine = engine
        self.client = client
        self.confirmations = confirmations
        self.chunk_blocks = chunk_blocks
        self.max_reorg_depth = max_reorg_depth
        self.on_commit = on_commit
        self.head: int | None = None  # the chain's latest block when last asked
        self.epoch_blocks: int | None = None  # the pool's epoch length (immutable), read at the first sync
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()  # set (and replaced) after every commit
        self._adopted = False  # whether the index was checked to be this chain's (see _adopt_chain)
        # The lease's holder name while run() competes for it; None: write unfenced (a lone
        # indexer driven by sync_once, as the tests and `rebuild` do).
        self.holder: str | None = None
        self.writing = False  # whether this indexer holds the lease (run() only)
        self._term: int | None = None  # the lease's term this indexer holds it in; None: not held
        self._rollbacks: int | None = None  # the lease row's rollback counter as last seen
        self._published: tuple[int, int] | None = None  # the last event handed to on_commit
        # The writer's derivations of recently active jobs (see _derive); cleared by any rollback.
        self._derivations: OrderedDict[int, Derivation] = OrderedDict()
        db.ensure_schema(engine)
        # This process is the index's only writer: its cursor is kept here and read
        # from the database only at start, not on every /healthz and read-your-writes poll.
        self._cursor = self._read_cursor()

    # ------------------------------------------------------------ chain

    async def _block(self, number: int) -> tuple[str, int] | None:
        """The chain's (hash, timestamp) at ``number``, or None when the chain is not that long."""
        try:
            block = await self.client.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        return _hex(block["hash"]), int(block["timestamp"])

    async def _hash(self, number: int) -> str | None:
        return await self.client.block_hash(number)

    # ------------------------------------------------------------ state

    def lag_blocks(self) -> int | None:
        """Chain head (as of the last sync) minus the last indexed block; None before the first sync."""
        if self.head is None:
            return None
        cur = self.cursor()
        return max(0, self.head - (cur[0] if cur else self.client.deployment.block - 1))

    def cursor(self) -> tuple[int, str] | None:
        """The last indexed block (number, hash), None before the first."""
        return self._cursor

    def _read_cursor(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.cursor.c.block_number, db.cursor.c.block_hash)
                               .where(db.cursor.c.id == 1)).first()
        return None if row is None else (row.block_number, row.block_hash)

    def _committed_at(self, cursor: tuple[int, str] | None) -> None:
        self._cursor = cursor
        self._committed.set()
        self._committed = asyncio.Event()

    async def wait_for_block(self, block: int, timeout: float) -> bool:
        """Until ``block`` is indexed (True) or ``timeout`` passes (False); wakes the indexer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.wake()
        while self._cursor is None or self._cursor[0] < block:
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._committed.wait(), left)
            except TimeoutError:
                return False
        return True

    # ------------------------------------------------------------ the writer's lease

    def _fence(self, conn: Connection) -> None:
        """Renews the lease, as its holder in the term it took it in, inside a write transaction; or
        aborts the write (LeaseLost) when that term is over. Unfenced without a holder."""
        if self.holder is None:
            return
        if not self._renew(conn):
            self.writing, self._term = False, None
            raise LeaseLost(f"{self.holder} no longer holds the index's writer lease")

    def _take_lease(self) -> bool:
        """Holds the writer lease: renews it in the term this indexer holds it in, or takes it over once
        it expired, which starts a new term. A takeover (and any term this indexer lost in between,
        however briefly) leaves ``writing`` False, so step() first catches up with what others wrote."""
        t = db.writer_lease
        now = time.time()
        with self.engine.begin() as conn:
            if self._term is not None and self._renew(conn):
                return True
            if conn.execute(update(t).where(t.c.id == 1, t.c.expires_at < now)
                            .values(holder=self.holder, expires_at=now + LEASE_S, term=t.c.term + 1)).rowcount:
                self._term = conn.execute(select(t.c.term).where(t.c.id == 1)).scalar_one()
                self.writing = False
                return True
        self._term, self.writing = None, False
        return False

    def _renew(self, conn: Connection) -> bool:
        """Extends the lease if this indexer holds it, in the term it took it in."""
        t = db.writer_lease
        return conn.execute(update(t).where(t.c.id == 1, t.c.holder == self.holder, t.c.term == self._term)
                            .values(expires_at=time.time() + LEASE_S)).rowcount == 1

    def release(self) -> None:
        """Gives the lease up (a clean shutdown, or a writer that keeps failing), so another gateway
        need not wait for it to expire."""
        if self._term is None or self.holder is None:
            return
        t = db.writer_lease
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == 1, t.c.holder == self.holder, t.c.term == self._term)
                         .values(expires_at=0.0))
        self._term, self.writing = None, False

    def _log_rollback(self, conn: Connection, kept: int) -> int:
        """Records a rollback to ``kept`` in the same transaction that deletes the events; its number."""
        t = db.writer_lease
        conn.execute(update(t).where(t.c.id == 1).values(rollbacks=t.c.rollbacks + 1))
        seq = conn.execute(select(t.c.rollbacks).where(t.c.id == 1)).scalar_one()
        conn.execute(insert(db.rollback_log).values(seq=seq, kept=kept))
        conn.execute(delete(db.rollback_log).where(db.rollback_log.c.seq <= seq - ROLLBACK_LOG))
        return seq

    def _rolled_back(self, seq: int, kept: int) -> None:
        """After a rollback committed: what this process remembers of the index goes back with it."""
        self._derivations.clear()
        self._rollbacks = seq
        self._forget_published_after(kept)

    def _forget_published_after(self, kept: int) -> None:
        if self._published is not None and self._published[0] > kept:
            self._published = (kept, 2**31 - 1) if kept >= 0 else None

    def _read_new(self) -> tuple[tuple[int, str] | None, int, int | None, list[dict]] | None:
        """(cursor, rollbacks, the lowest block kept by the rollbacks since the last look (None: none),
        events after the last published) as one consistent read; None when a rollback happened during
        the read (read again)."""
        t, log_ = db.writer_lease, db.rollback_log
        after = self._published or (-1, -1)
        with self.engine.connect() as conn:
            before = conn.execute(select(t.c.rollbacks).where(t.c.id == 1)).scalar_one()
            kept = None
            if self._rollbacks is not None and before != self._rollbacks:
                logged = conn.execute(select(func.min(log_.c.kept), func.min(log_.c.seq))
                                      .where(log_.c.seq > self._rollbacks)).one()
                # Further behind than the log reaches: everything may have changed.
                kept = logged[0] if logged[1] == self._rollbacks + 1 else -1
            row = conn.execute(select(db.cursor.c.block_number, db.cursor.c.block_hash)
                               .where(db.cursor.c.id == 1)).first()
            rows = [dict(r._mapping) for r in conn.execute(
                select(db.events).where(or_(db.events.c.block_number > after[0],
                                            and_(db.events.c.block_number == after[0],
                                                 db.events.c.log_index > after[1])))
                .order_by(db.events.c.block_number, db.events.c.log_index).limit(FOLLOW_BATCH))]
            again = conn.execute(select(t.c.rollbacks).where(t.c.id == 1)).scalar_one()
        if again != before:
            return None
        cursor = None if row is None else (row.block_number, row.block_hash)
        return cursor, before, kept, rows

    def _first_look(self) -> tuple[int, tuple[int, int] | None] | None:
        """(rollbacks, the newest event) read together: live from there on. None if a rollback
        happened between the two reads (look again)."""
        t = db.writer_lease
        with self.engine.connect() as conn:
            before = conn.execute(select(t.c.rollbacks).where(t.c.id == 1)).scalar_one()
            row = conn.execute(select(db.events.c.block_number, db.events.c.log_index)
                               .order_by(db.events.c.block_number.desc(), db.events.c.log_index.desc()).limit(1)).first()
            again = conn.execute(select(t.c.rollbacks).where(t.c.id == 1)).scalar_one()
        if again != before:
            return None
        return before, None if row is None else (row.block_number, row.log_index)

    async def follow_once(self) -> int:
        """Catches up with what the writer committed: the cursor, rollbacks and new events, handed to
        ``on_commit`` in chain order as the writer hands its own. Returns how many events."""
        while self._rollbacks is None:  # the first look: live from here on, history is in the database
            first = await asyncio.to_thread(self._first_look)
            if first is not None:
                self._rollbacks, self._published = first
        read = await asyncio.to_thread(self._read_new)
        if read is None:
            return 0
        cursor, rollbacks, kept, rows = read
        if kept is not None:
            self._forget_published_after(kept)
            if self.on_commit is not None:
                self.on_commit([], kept)
            self._rollbacks = rollbacks
            return await self.follow_once()
        if rows:
            self._published = (rows[-1]["block_number"], rows[-1]["log_index"])
            if self.on_commit is not None:
                self.on_commit(rows, None)
        if len(rows) == FOLLOW_BATCH:
            return len(rows) + await self.follow_once()
        if cursor != self._cursor:
            self._committed_at(cursor)
        return len(rows)

    # ------------------------------------------------------------ reorgs

    async def _adopt_chain(self) -> bool:
        """An index belongs to one deployment on one chain. One written for another (a devnet
        brought down and up again, at the same address and with the same contract addresses)
        is forgotten and re-indexed: no reorg walk would find a block the two chains share.
        Returns whether it was another chain's."""
        try:
            identity = await self.client.deployment_identity()
        except BlockNotFound:
            identity = "a chain shorter than the deployment block"
        owner = await asyncio.to_thread(self._meta, "deployment")
        if owner == identity:
            return False
        if owner is not None:
            log.warning("the index was another chain's (%s); re-indexing this one (%s)", owner, identity)
            await asyncio.to_thread(self._forget)
            self._committed_at(None)
            if self.on_commit is not None:
                self.on_commit([], -1)
        await asyncio.to_thread(self._meta, "deployment", identity)
        return owner is not None

    def _meta(self, key: str, value: str | None = None) -> str | None:
        """Reads ``key`` of the meta table; with ``value``, writes it."""
        with self.engine.begin() as conn:
            if value is not None:
                self._fence(conn)
                conn.execute(delete(db.meta).where(db.meta.c.key == key))
                conn.execute(insert(db.meta).values(key=key, value=value))
            row = conn.execute(select(db.meta.c.value).where(db.meta.c.key == key)).first()
        return None if row is None else row.value

    async def _check_reorg(self) -> None:
        if not self._adopted:
            self._adopted = True
            if await self._adopt_chain():
                return
        cur = self.cursor()
        if cur is None:
            return
        number, stored = cur
        if await self._hash(number) == stored:
            return
        if await self._adopt_chain():  # not a reorg: a new chain behind the same address
            return
        log.warning("reorg: block %d hash changed, walking back", number)
        floor = number - self.max_reorg_depth
        candidates, older = await asyncio.to_thread(self._recent_blocks, number, floor)
        fork: tuple[int, str] | None = None
        for block_number, block_hash in candidates:
            if await self._hash(block_number) == block_hash:
                fork = (block_number, block_hash)
                break
        if fork is None and older is not None:
            raise ReorgTooDeep(f"no stored block within {self.max_reorg_depth} of {number} matches the chain")
        keep = fork[0] if fork else -1
        affected = await asyncio.to_thread(self._roll_back, keep, fork)
        self._committed_at(fork)
        if self.on_commit is not None:
            self.on_commit([], keep)
        log.warning("reorg: rolled back to block %s, %d jobs recomputed", keep if fork else "start", len(affected))

    def _recent_blocks(self, number: int, floor: int) -> tuple[list, Any]:
        with self.engine.connect() as conn:
            candidates = conn.execute(
                select(db.events.c.block_number, db.events.c.block_hash).distinct()
                .where(db.events.c.block_number < number, db.events.c.block_number >= floor)
                .order_by(db.events.c.block_number.desc())).all()
            older = conn.execute(select(db.events.c.block_number)
                                 .where(db.events.c.block_number < floor).limit(1)).first()
        return candidates, older

    def _roll_back(self, keep: int, fork: tuple[int, str] | None) -> list[int]:
        """Delete what came after ``keep`` and recompute the jobs it touched, in one transaction."""
        with self.engine.begin() as conn:
            self._fence(conn)
            seq = self._log_rollback(conn, keep)
            affected = [r.job_id for r in conn.execute(
                select(db.events.c.job_id).distinct()
                .where(db.events.c.block_number > keep, db.events.c.job_id.is_not(None)))]
            accounts = [r.account for r in conn.execute(
                select(db.events.c.account).distinct()
                .where(db.events.c.block_number > keep, db.events.c.name.in_(sorted(MEMBER_EVENTS)),
                       db.events.c.account.is_not(None)))]
            conn.execute(delete(db.events).where(db.events.c.block_number > keep))
            recompute(conn, affected)
            recompute_members(conn, accounts)
            if fork is None:
                conn.execute(delete(db.cursor))
            else:
                _set_cursor(conn, *fork)
        self._rolled_back(seq, keep)
        return affected

    # ------------------------------------------------------------ indexing

    async def sync_once(self) -> int:
        """Index every confirmed block after the cursor; returns how many events were stored."""
        await self._check_reorg()
        await self._read_epoch_blocks()
        cur = self.cursor()
        start = self.client.deployment.block if cur is None else cur[0] + 1
        self.head = await self.client.block_number()
        target = self.head - self.confirmations
        stored = 0
        for lo in range(start, target + 1, self.chunk_blocks):
            hi = min(lo + self.chunk_blocks - 1, target)
            n = await self._index_chunk(lo, hi)
            if n is None:  # the chain changed under us; the next sync handles it
                break
            stored += n
        return stored

    async def _index_chunk(self, lo: int, hi: int) -> int | None:
        top = await self._block(hi)
        if top is None:
            return None
        hi_hash = top[0]
        evs = await self.client.events(lo, hi)
        blocks = {hi: top}
        for b in sorted({e.block_number for e in evs} - {hi}):
            block = await self._block(b)
            if block is None:
                return None
            blocks[b] = block
        if await self._hash(hi) != hi_hash:  # a reorg between the reads: don't store a mix
            return None
        views = await self._job_views([e.job_id for e in evs if e.name == "JobPosted"])
        if views is None:
            return None
        rows = [event_row(e, *blocks[e.block_number], views.get(e.job_id) if e.name == "JobPosted" else None)
                for e in evs]
        await asyncio.to_thread(self._commit_chunk, rows, hi, hi_hash)
        self._committed_at((hi, hi_hash))
        if rows:
            self._published = (rows[-1]["block_number"], rows[-1]["log_index"])
            if self.on_commit is not None:
                self.on_commit(rows, None)
        return len(rows)

    async def _job_views(self, job_ids: list[int]) -> dict[int, dict[str, Any]] | None:
        """The immutable parameters of newly posted jobs, from the market's job view (JobPosted does
        not carry them); None when a job is not on the chain any more (a reorg: the next sync handles it)."""
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(job_ids), VIEW_BATCH):
            part = job_ids[start:start + VIEW_BATCH]
            try:
                jobs = await asyncio.gather(*(self.client.job(j) for j in part))
            except ContractRevert:
                return None
            out.update({j: {f: getattr(job, f) for f in VIEW_FIELDS} for j, job in zip(part, jobs, strict=True)})
        return out

    async def _read_epoch_blocks(self) -> None:
        if self.epoch_blocks is None:
            self.epoch_blocks = int(await self.client.registry.functions.epochBlocks().call())

    def _commit_chunk(self, rows: list[dict], hi: int, hi_hash: str) -> None:
        try:
            with self.engine.begin() as conn:
                self._fence(conn)
                self._write_chunk(conn, rows, hi, hi_hash)
        except BaseException:
            self._derivations.clear()  # they may have been fed events that were never committed
            raise

    def _write_chunk(self, conn: Connection, rows: list[dict], hi: int, hi_hash: str) -> None:
        if rows:
            conn.execute(insert(db.events), rows)
            self._derive(conn, [r for r in rows if r["job_id"] is not None])
            recompute_members(conn, _member_accounts(rows))
        _set_cursor(conn, hi, hi_hash)

    def _derive(self, conn: Connection, rows: list[dict]) -> None:
        """Brings the derived rows of the jobs these new events touch up to date. A job's derivation
        is kept between chunks, fed only the new events, and only the rows they changed are rewritten;
        one not kept (the first chunk, evicted, after a rollback) is derived from all of its events."""
        by_job: dict[int, list[SimpleNamespace]] = defaultdict(list)
        for r in rows:
            by_job[r["job_id"]].append(SimpleNamespace(**r))
        for job_id, evs in by_job.items():
            d = self._derivations.pop(job_id, None)
            if d is not None and d.last < (evs[0].block_number, evs[0].log_index):
                d.feed(evs)
                jobs_rows, tasks_rows = d.take_dirty()
                conn.execute(delete(db.jobs).where(db.jobs.c.job_id == job_id))
                dirty = [t["task_id"] for t in tasks_rows]
                for start in range(0, len(dirty), 500):
                    conn.execute(delete(db.tasks).where(db.tasks.c.job_id == job_id,
                                                        db.tasks.c.task_id.in_(dirty[start:start + 500])))
                if jobs_rows:
                    conn.execute(insert(db.jobs), jobs_rows)
                if tasks_rows:
                    conn.execute(insert(db.tasks), tasks_rows)
            else:  # the whole history, this chunk's events included (the transaction sees them)
                d = recompute(conn, [job_id])
            self._derivations[job_id] = d
            while len(self._derivations) > DERIVATIONS_KEPT:
                self._derivations.popitem(last=False)

    async def step(self) -> None:
        """Writes the index while this indexer holds the writer lease, follows the writer otherwise."""
        if self.holder is None:
            self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        was_writing = self.writing
        if await asyncio.to_thread(self._take_lease):
            if not self.writing:
                # Take over where the last writer stopped: what it committed is handed on first, and
                # whatever this one derived before another wrote is forgotten.
                self._derivations.clear()
                await self.follow_once()
                self._cursor = await asyncio.to_thread(self._read_cursor)
                self.writing = True
                log.info("this gateway writes the index (%s)", self.holder)
            await self.sync_once()
            return
        if was_writing:
            log.warning("another gateway took over writing the index; following it")
        await self.follow_once()
        self.head = await self.client.block_number()

    async def run(self, poll_s: float = 2.0) -> None:
        """Write or follow the index forever; errors are logged and retried on the next poll."""
        failures = 0
        while True:
            try:
                await self.step()
                self.last_error = None
                failures = 0
            except LeaseLost as exc:
                log.warning("%s", exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("indexer sync failed; retrying")
                failures += 1
                if self.writing:
                    # What this process remembers may not be what was committed (a commit whose answer
                    # was lost): the next step catches up from the database first.
                    self.writing = False
                if failures >= WRITER_FAILURES and self._term is not None:
                    # A writer that cannot index (its RPC is down, say) must not hold everyone's index.
                    await asyncio.to_thread(self.release)
            try:
                await asyncio.wait_for(self._wake.wait(), poll_s)
            except TimeoutError:
                pass
            self._wake.clear()

    def wake(self) -> None:
        """Sync now rather than at the next poll (someone is waiting for a block)."""
        self._wake.set()

    def _forget(self) -> None:
        with self.engine.begin() as conn:
            self._fence(conn)
            seq = self._log_rollback(conn, -1)
            for table in (*db.DERIVED, db.events, db.cursor):
                conn.execute(delete(table))
        self._rolled_back(seq, -1)

    async def rebuild(self) -> int:
        """Forget everything and re-index from the deployment block."""
        await asyncio.to_thread(self._forget)
        self._committed_at(None)
        return await self.sync_once()
