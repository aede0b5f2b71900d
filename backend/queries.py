"""Read models the API serves, computed from the indexed tables.

Synchronous (SQLAlchemy Core, short reads): FastAPI runs the routes that call
these in its thread pool, so the event loop never waits on the database.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from backend import db
from backend.live import public_event
from shardex.chain.models import JobState

PHASES = [s.name for s in JobState if s != JobState.NONE]


def job_summary(row: Any) -> dict[str, Any]:
    total = row.map_tasks + row.reduce_tasks
    return {
        "job_id": row.job_id, "requester": row.requester, "state": JobState(row.state).name,
        "map_tasks": row.map_tasks, "reduce_tasks": row.reduce_tasks, "tasks": total,
        "settled_tasks": row.settled_tasks, "replication": row.replication, "quorum": row.quorum,
        "reward_per_replica_wei": row.reward_per_replica, "escrow_wei": row.escrow, "spec_digest": row.spec_digest,
        "posted_block": row.posted_block, "posted_time": row.posted_time, "updated_block": row.updated_block,
    }


def list_jobs(engine: Engine, *, state: str | None, requester: str | None, before: int | None,
              limit: int) -> dict[str, Any]:
    """Newest first, keyset-paginated: pass ``next_before`` back as ``before``."""
    q = select(db.jobs).order_by(db.jobs.c.job_id.desc()).limit(limit + 1)
    if state is not None:
        q = q.where(db.jobs.c.state == int(JobState[state]))
    if requester is not None:
        q = q.where(func.lower(db.jobs.c.requester) == requester.lower())
    if before is not None:
        q = q.where(db.jobs.c.job_id < before)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    page = rows[:limit]
    return {"jobs": [job_summary(r) for r in page],
            "next_before": page[-1].job_id if len(rows) > limit else None}


def job_detail(engine: Engine, job_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(db.jobs).where(db.jobs.c.job_id == job_id)).first()
        if row is None:
            return None
        task_rows = conn.execute(select(db.tasks).where(db.tasks.c.job_id == job_id)
                                 .order_by(db.tasks.c.task_id)).all()
        evs = conn.execute(select(db.events).where(db.events.c.job_id == job_id)
                           .order_by(db.events.c.block_number, db.events.c.log_index)).all()
    out = job_summary(row)
    by_task = {t.task_id: t for t in task_rows}
    replicas: dict[int, dict[tuple[str, int], dict]] = defaultdict(dict)  # task -> (worker, round) -> replica
    current_round: dict[int, int] = defaultdict(int)
    paid = refunded = slashed = 0
    payouts: dict[str, int] = defaultdict(int)
    slashes = []
    txs: set[str] = set()
    for e in evs:
        a = e.args_json
        txs.add(e.tx_hash)
        if e.name == "TaskClaimed":
            current_round[e.task_id] = a["round"]
            replicas[e.task_id][(a["worker"], a["round"])] = {
                "worker": a["worker"], "round": a["round"], "state": "claimed", "digest": None,
                "lease_deadline": a["lease_deadline"], "outcome": None, "amount_wei": None}
        elif e.name in ("ResultCommitted", "ResultRevealed", "ReplicaResolved"):
            rep = _latest_replica(replicas[e.task_id], a["worker"])
            if rep is None:
                continue
            if e.name == "ResultCommitted":
                rep["state"] = "committed"
            elif e.name == "ResultRevealed":
                rep["state"], rep["digest"] = "revealed", a["digest"]
            else:
                outcome = a["outcome"].lower()
                rep["state"], rep["outcome"], rep["amount_wei"] = outcome, outcome, str(a["amount"])
                if outcome == "paid":
                    paid += a["amount"]
                    payouts[a["worker"]] += a["amount"]
                elif outcome == "slashed":
                    slashed += a["amount"]
                    slashes.append({"worker": a["worker"], "task_id": e.task_id, "round": rep["round"],
                                    "collateral_wei": str(a["amount"]), "tx_hash": e.tx_hash})
        elif e.name == "TaskReopened":
            current_round[e.task_id] = a["round"]
        elif e.name == "Refunded":
            refunded += a["amount"]
    tasks = []
    for task_id in range(row.map_tasks + row.reduce_tasks):
        t = by_task.get(task_id)
        reps = sorted(replicas[task_id].values(), key=lambda r: (r["round"], r["worker"]))
        if t is not None and t.settled:
            state = "settled"
        elif row.state in (int(JobState.FAILED), int(JobState.EXPIRED), int(JobState.CANCELLED)):
            state = "abandoned"
        elif t is None or t.claimed == 0:
            state = "open"
        elif t.revealed:
            state = "revealing"
        elif t.committed:
            state = "committing"
        else:
            state = "claimed"
        tasks.append({
            "task_id": task_id, "kind": "map" if task_id < row.map_tasks else "reduce", "state": state,
            "round": t.round if t is not None else 0, "digest": t.digest if t is not None else None,
            "claimed": t.claimed if t is not None else 0, "committed": t.committed if t is not None else 0,
            "revealed": t.revealed if t is not None else 0, "replicas": reps})
    escrow = int(row.escrow)
    out.update({
        "tasks_detail": tasks,
        "costs": {"escrow_wei": str(escrow), "paid_wei": str(paid), "refunded_wei": str(refunded),
                  "owed_or_open_wei": str(escrow - paid - refunded),
                  "slashed_collateral_to_requester_wei": str(slashed), "transactions": len(txs)},
        "payouts": [{"worker": w, "amount_wei": str(v)} for w, v in sorted(payouts.items())],
        "slashes": slashes,
        "result_available": row.state == int(JobState.COMPLETED),
    })
    return out


def _latest_replica(by_key: dict[tuple[str, int], dict], worker: str) -> dict | None:
    mine = [r for (w, _), r in by_key.items() if w == worker and r["outcome"] is None]
    return max(mine, key=lambda r: r["round"]) if mine else None


def settled_digests(engine: Engine, job_id: int) -> dict[int, str]:
    with engine.connect() as conn:
        return {r.task_id: r.digest for r in conn.execute(
            select(db.tasks.c.task_id, db.tasks.c.digest)
            .where(db.tasks.c.job_id == job_id, db.tasks.c.settled.is_(True)))}


def job_events(engine: Engine, job_id: int, limit: int = 1000, after: tuple[int, int] | None = None) -> list[dict]:
    """The job's newest ``limit`` events (only those after the event id ``after``), in chain order."""
    q = select(db.events).where(db.events.c.job_id == job_id)
    if after is not None:
        q = q.where(or_(db.events.c.block_number > after[0],
                        and_(db.events.c.block_number == after[0], db.events.c.log_index > after[1])))
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(db.events.c.block_number.desc(), db.events.c.log_index.desc())
                            .limit(limit)).all()
    return [public_event(r) for r in reversed(rows)]


def worker_activity(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per staked address: earnings, replica outcomes and announced endpoint, from events."""
    acc: dict[str, dict[str, Any]] = {}
    q = (select(db.events.c.name, db.events.c.account, db.events.c.args_json)
         .where(db.events.c.name.in_(["Staked", "ReplicaResolved", "EndpointAnnounced", "TaskClaimed"]))
         .order_by(db.events.c.block_number, db.events.c.log_index))
    endpoints: dict[str, str] = {}
    with engine.connect() as conn:
        for name, account, a in conn.execute(q):
            if name == "EndpointAnnounced":
                endpoints[account] = a["endpoint"]
                continue
            w = acc.setdefault(account, {"earned_wei": 0, "paid": 0, "slashed": 0, "released": 0, "claims": 0,
                                         "slashed_wei": 0})
            if name == "TaskClaimed":
                w["claims"] += 1
            elif name == "ReplicaResolved":
                outcome = a["outcome"].lower()
                w[outcome] += 1
                if outcome == "paid":
                    w["earned_wei"] += a["amount"]
                elif outcome == "slashed":
                    w["slashed_wei"] += a["amount"]
    for address, w in acc.items():
        w["endpoint"] = endpoints.get(address)
    return acc


def phase_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = dict(conn.execute(select(db.jobs.c.state, func.count()).group_by(db.jobs.c.state)).all())
    return {name: counts.get(int(JobState[name]), 0) for name in PHASES}


def settled_total(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(db.events)
                            .where(db.events.c.name == "TaskSettled")).scalar_one()


def throughput(engine: Engine, bucket_s: int, buckets: int, now: int | None = None) -> dict[str, Any]:
    """Tasks settled per bucket of chain time, the newest bucket last."""
    with engine.connect() as conn:
        if now is None:
            now = conn.execute(select(func.max(db.events.c.block_time))).scalar() or 0
        start = now - bucket_s * buckets
        times = conn.execute(select(db.events.c.block_time)
                             .where(db.events.c.name == "TaskSettled", db.events.c.block_time > start)).scalars()
        counts = [0] * buckets
        for t in times:
            i = min(buckets - 1, (t - start - 1) // bucket_s)
            counts[i] += 1
    return {"bucket_s": bucket_s, "end_time": now,
            "buckets": [{"start_time": start + i * bucket_s, "settled": c} for i, c in enumerate(counts)]}


def announced_endpoints(engine: Engine, account: str | None = None) -> dict[str, str]:
    """Every address's (or only ``account``'s) latest announced endpoint: workers, requesters, gateways."""
    q = (select(db.events.c.account, db.events.c.args_json).where(db.events.c.name == "EndpointAnnounced")
         .order_by(db.events.c.block_number, db.events.c.log_index))
    if account is not None:
        q = q.where(db.events.c.account == account)
    with engine.connect() as conn:
        return {who: a["endpoint"] for who, a in conn.execute(q)}
