"""Read models the API serves, computed from the indexed tables.

Synchronous (SQLAlchemy Core, short reads): FastAPI runs the routes that call
these in its thread pool, so the event loop never waits on the database.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select

from backend import db
from backend.live import public_event
from shardex.chain import result_of
from shardex.chain.models import PPM, JobState
from shardex.requester import CLASS_NAMES, failure_reason

PHASES = [s.name for s in JobState if s != JobState.NONE]
ENDED = (int(JobState.FAILED), int(JobState.EXPIRED), int(JobState.CANCELLED))
#: A task's state as the API shows it, in the order a task goes through them.
TASK_STATES = ("open", "assigned", "committing", "revealing", "settled", "abandoned")


def class_name(resource_class: int) -> str:
    return CLASS_NAMES.get(resource_class, f"class {resource_class}")


def job_summary(row: Any) -> dict[str, Any]:
    total = row.map_tasks + row.reduce_tasks
    return {
        "job_id": row.job_id, "requester": row.requester, "state": JobState(row.state).name,
        "map_tasks": row.map_tasks, "reduce_tasks": row.reduce_tasks, "tasks": total,
        "settled_tasks": row.settled_tasks, "margin": row.margin, "resource_class": row.resource_class,
        "epsilon_ppm": row.epsilon_ppm, "adversary_ppm": row.adversary_ppm,
        "reward_per_replica_wei": row.reward_per_replica, "escrow_wei": row.escrow, "token": row.token,
        "spec_digest": row.spec_digest,
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


def task_state(t: Any, job_state: int) -> str:
    """open: no seat of the current round held; assigned: drawn workers are computing; committing:
    some have committed; revealing: a result won, its committers may open it; settled: it was opened."""
    if t is not None and t.settled:
        return "settled"
    if job_state in ENDED:
        return "abandoned"
    if t is None:
        return "open"
    if t.reveal_deadline:
        return "revealing"
    if t.committed:
        return "committing"
    return "assigned" if t.seated else "open"


def _result12(result: str) -> str:
    return result[:26].lower()


#: Tasks of a job listed one by one in its detail, at most (see job_detail).
MAX_LISTED_TASKS = 10_000


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
    # A worker holds at most one seat per task, ever: replicas are keyed by task and worker.
    replicas: dict[int, dict[str, dict]] = defaultdict(dict)
    paid = refunded = slashed = 0
    payouts: dict[str, int] = defaultdict(int)
    slashes = []
    unavailable: dict[int, int] = {}  # task -> drawn workers that reported its input unreachable
    txs: set[str] = set()
    for e in evs:
        a = e.args_json
        txs.add(e.tx_hash)
        if e.name == "TaskAssigned":
            replicas[e.task_id][a["worker"]] = {
                "worker": a["worker"], "round": a["round"], "state": "assigned", "result": None, "digest": None,
                "agrees": None, "lease_deadline": a["lease_deadline"], "outcome": None, "amount_wei": None}
            continue
        rep = replicas[e.task_id].get(a.get("worker")) if e.task_id is not None else None
        if e.name == "TaskDeclined" and rep is not None:
            rep["state"] = "declined"
        elif e.name == "ResultCommitted" and rep is not None:
            rep["state"], rep["result"] = "committed", _result12(a["result"])
        elif e.name == "ResultRevealed" and rep is not None:
            # Opening the winner is paid by the reveal itself: one reward, collateral released.
            reward = int(row.reward_per_replica)
            rep["digest"] = a["digest"]
            rep["state"], rep["outcome"], rep["amount_wei"] = "paid", "paid", str(reward)
            paid += reward
            payouts[a["worker"]] += reward
        elif e.name == "ReplicaResolved" and rep is not None:
            before = rep["state"]
            outcome = a["outcome"].lower()
            rep["state"], rep["outcome"], rep["amount_wei"] = outcome, outcome, str(a["amount"])
            if outcome == "slashed":
                slashed += a["amount"]
                slashes.append({"worker": a["worker"], "task_id": e.task_id, "round": rep["round"],
                                "reason": "no-show" if before == "assigned" else None, "result": rep["result"],
                                "collateral_wei": str(a["amount"]), "tx_hash": e.tx_hash})
        elif e.name == "Refunded":
            refunded += a["amount"]
        elif e.name == "InputUnavailable":
            unavailable[e.task_id] = max(unavailable.get(e.task_id, 0), a["reports"])
    tasks = []
    count = row.map_tasks + row.reduce_tasks
    # A job may name up to 2**32 tasks for nothing but gas: past a size no dashboard shows whole, only the
    # tasks something happened to are listed (the others are open, in round 0, with `margin` seats).
    listed = range(count) if count <= MAX_LISTED_TASKS else sorted(set(by_task) | set(replicas))
    for task_id in listed:
        t = by_task.get(task_id)
        reps = sorted(replicas[task_id].values(), key=lambda r: (r["round"], r["worker"]))
        if t is not None and t.settled and t.digest:
            # The winner's result is computable once its digest is public: who agreed with it, who did not.
            winner = _result12("0x" + result_of(job_id, task_id, bytes.fromhex(t.digest[2:])).hex())
            for rep in reps:
                if rep["result"] is not None:
                    rep["agrees"] = rep["result"] == winner
        tasks.append({
            "task_id": task_id, "kind": "map" if task_id < row.map_tasks else "reduce",
            "state": task_state(t, row.state), "round": t.round if t is not None else 0,
            "seats": t.seats if t is not None else row.margin, "seated": t.seated if t is not None else 0,
            "committed": t.committed if t is not None else 0, "lead_count": t.lead_count if t is not None else 0,
            "total": t.total if t is not None else 0, "declined": t.declined if t is not None else 0,
            "reveal_deadline": (t.reveal_deadline or None) if t is not None else None,
            "settled": bool(t is not None and t.settled), "digest": t.digest if t is not None else None,
            "replicas": reps})
    agreed = {(r["worker"], t["task_id"]): r["agrees"] for t in tasks for r in t["replicas"]}
    for s in slashes:
        if s["reason"] is None:
            agrees = agreed.get((s["worker"], s["task_id"]))
            s["reason"] = "dissent" if agrees is False else "unopened" if agrees else None
    escrow = int(row.escrow)
    out.update({
        "max_rounds": row.max_rounds, "extra_seats": row.extra_seats, "extra_seats_used": row.extra_seats_used,
        "escalations": row.escalations, "seats_drawn": row.seats_drawn, "declines": row.declines,
        "collateral_wei": row.collateral, "min_stake_wei": row.min_stake, "lease_duration": row.lease_duration,
        "reveal_window": row.reveal_window, "seed_block": row.seed_block,
        "tasks_detail": tasks,
        "costs": {"escrow_wei": str(escrow), "paid_wei": str(paid), "refunded_wei": str(refunded),
                  "owed_or_open_wei": str(escrow - paid - refunded),
                  "slashed_collateral_burned_wei": str(slashed), "transactions": len(txs)},
        "payouts": [{"worker": w, "amount_wei": str(v)} for w, v in sorted(payouts.items())],
        "slashes": slashes,
        "result_available": row.state == int(JobState.COMPLETED),
        "unavailable_inputs": [{"task_id": t, "reports": n} for t, n in sorted(unavailable.items())],
        "failure": failure_reason(row.margin, unavailable) if row.state == int(JobState.FAILED) else None,
    })
    return out


def waiting_reasons(engine: Engine, job_id: int, head_block: int | None,
                    epoch_blocks: int | None) -> list[dict[str, str]]:
    """Why the current phase's tasks of a live job are not moving ("why is my job not running?"),
    from the index: the job's pool (workers opted in to its resource class, their stake), the seats
    still to draw and their seed blocks, declines and escalations. Empty for a job that ended."""
    with engine.connect() as conn:
        job = conn.execute(select(db.jobs).where(db.jobs.c.job_id == job_id)).first()
        if job is None or JobState(job.state) not in (JobState.MAP, JobState.REDUCE):
            return []
        lo, hi = (0, job.map_tasks) if job.state == int(JobState.MAP) else (job.map_tasks, job.map_tasks + job.reduce_tasks)
        in_phase = and_(db.tasks.c.job_id == job_id, db.tasks.c.task_id >= lo, db.tasks.c.task_id < hi)
        # Tasks rows exist only for tasks some event touched; the others have all `margin` seats open.
        is_open = and_(db.tasks.c.settled.is_(False), db.tasks.c.reveal_deadline == 0,
                       db.tasks.c.seated < db.tasks.c.seats)
        head = head_block if head_block is not None else -1
        own_seed = and_(is_open, db.tasks.c.seed_block > 0)
        touched, open_tasks, open_seats, open_round0, escalated, own_pending = conn.execute(
            select(func.count(),
                   func.sum(case((is_open, 1), else_=0)),
                   func.sum(case((is_open, db.tasks.c.seats - db.tasks.c.seated), else_=0)),
                   func.sum(case((and_(is_open, db.tasks.c.seed_block == 0), 1), else_=0)),
                   func.sum(case((and_(db.tasks.c.round > 0, db.tasks.c.settled.is_(False)), 1), else_=0)),
                   func.min(case((and_(own_seed, db.tasks.c.seed_block > head), db.tasks.c.seed_block),
                                 else_=None)))
            .where(in_phase)).one()
        members = conn.execute(select(db.members)).all()
        decliners = conn.execute(select(db.events.c.account).distinct().where(
            db.events.c.job_id == job_id, db.events.c.name == "TaskDeclined")).scalars().all() if job.declines else []
        settled = set(conn.execute(select(db.tasks.c.task_id).where(db.tasks.c.job_id == job_id,
                                                                     db.tasks.c.settled.is_(True))).scalars())
        unreachable: dict[int, int] = defaultdict(int)  # unsettled task -> drawn workers that could not fetch it
        for task_id in conn.execute(select(db.events.c.task_id).where(
                db.events.c.job_id == job_id, db.events.c.name == "InputUnavailable")).scalars():
            if task_id not in settled:
                unreachable[task_id] += 1
    untouched = (hi - lo) - touched
    open_tasks = (open_tasks or 0) + untouched
    open_round0 = (open_round0 or 0) + untouched
    open_seats = (open_seats or 0) + untouched * job.margin
    escalated = escalated or 0
    name = class_name(job.resource_class)
    bit = 1 << job.resource_class
    epoch = head_block // epoch_blocks if head_block is not None and epoch_blocks else None
    in_pool = [m for m in members if m.classes & bit and int(m.stake) > 0]
    drawable = [m for m in in_pool if epoch is None or m.joins_json.get(str(job.resource_class), 0) <= epoch]
    min_stake = int(job.min_stake or 0)
    collateral = int(job.collateral or 0)
    eligible = [m for m in drawable if m.account.lower() != job.requester.lower() and int(m.stake) >= min_stake]
    free = [m for m in eligible if int(m.stake) - int(m.locked) >= collateral]
    reasons: list[dict[str, str]] = []

    def say(code: str, message: str) -> None:
        reasons.append({"code": code, "message": message})

    if open_tasks:
        if not in_pool:
            say("no-workers", f"no worker has opted in to {name} jobs (resource class {job.resource_class}): seats "
                "are drawn only from workers who staked and opted in to the job's class")
        elif not drawable:
            joins = min(m.joins_json.get(str(job.resource_class), 0) for m in in_pool)
            say("joining", f"{len(in_pool)} worker(s) opted in to {name} jobs join the draw from epoch {joins}; "
                f"the chain is in epoch {epoch} (an epoch is {epoch_blocks} blocks)")
        elif len(eligible) < job.margin:
            why = []
            if any(m.account.lower() == job.requester.lower() for m in drawable):
                why.append("the requester is never drawn for its own job")
            if any(int(m.stake) < min_stake for m in drawable):
                why.append(f"some hold less than the job's minimum stake of {min_stake} wei")
            say("too-few-workers", f"a task needs {job.margin} distinct drawn workers to settle (the margin "
                f"{_target(job)}), but only {len(eligible)} {name} worker(s) can be drawn for this job"
                + (f": {'; '.join(why)}" if why else ""))
        elif not free:
            say("no-free-stake", f"the {len(eligible)} {name} worker(s) that can be drawn have no free stake for "
                f"this job's collateral of {collateral} wei: their stake is locked by other seats until those end")
        if head_block is not None:
            # A round's seats are drawn with the randomness of its seed block, once that block is mined.
            seeds = ([job.seed_block] if open_round0 and job.seed_block > head_block else []) + \
                ([own_pending] if own_pending is not None else [])
            if seeds:
                say("seed-pending", f"draws wait for the randomness of block {min(seeds)}, not mined yet")
        say("seats-open", f"{open_tasks} task(s) have {open_seats} seat(s) waiting to be drawn from the {name} "
            "pool by stake (anyone may call draw once the seed block is mined; workers do)")
    if unreachable:
        say("inputs-unreachable", "drawn workers could not fetch the input of task(s) "
            + ", ".join(f"{t} ({n} report(s))" for t, n in sorted(unreachable.items()))
            + f" from any provider and gave their seats back; at {job.margin} reports on one task the job fails at "
            "your cost: keep the inputs served (job submit --wait, store serve, or the gateway) or pinned")
    if job.declines:
        say("declined", f"drawn workers declined {job.declines} seat(s) ({', '.join(decliners)}): a worker declines "
            "a job it cannot run (its program, resources or terms) and is never drawn for that task again")
    if escalated:
        budget = f"{job.extra_seats_used} of {job.extra_seats}" if job.extra_seats is not None else \
            f"{job.extra_seats_used}"
        say("escalated", f"{escalated} task(s) escalated to a new round because drawn workers disagreed (or "
            f"nobody opened the winner): fresh seats are drawn; {budget} prefunded extra seats used")
    return reasons


def _target(job: Any) -> str:
    if job.epsilon_ppm is None or job.adversary_ppm is None:
        return f"{job.margin}"
    return (f"{job.margin} for ε = {job.epsilon_ppm / PPM:g} against an adversary with "
            f"{job.adversary_ppm / PPM:.0%} of the stake")


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
    """Per pool member: earnings, seats drawn and declined, replica outcomes and announced endpoint, from events."""
    acc: dict[str, dict[str, Any]] = {}
    q = (select(db.events.c.name, db.events.c.account, db.events.c.args_json, db.events.c.job_id)
         .where(db.events.c.name.in_(["Staked", "ReplicaResolved", "ResultRevealed", "EndpointAnnounced",
                                      "TaskAssigned", "TaskDeclined"]))
         .order_by(db.events.c.block_number, db.events.c.log_index))
    endpoints: dict[str, str] = {}
    with engine.connect() as conn:
        rewards = {job_id: int(r) for job_id, r in conn.execute(select(db.jobs.c.job_id, db.jobs.c.reward_per_replica))}
        for name, account, a, job_id in conn.execute(q):
            if name == "EndpointAnnounced":
                endpoints[account] = a["endpoint"]
                continue
            w = acc.setdefault(account, {"earned_wei": 0, "paid": 0, "slashed": 0, "released": 0, "seats": 0,
                                         "declined": 0, "slashed_wei": 0})
            if name == "TaskAssigned":
                w["seats"] += 1
            elif name == "TaskDeclined":
                w["declined"] += 1
            elif name == "ResultRevealed":  # opening the winner is paid by the reveal itself
                w["paid"] += 1
                w["earned_wei"] += rewards.get(job_id, 0)
            elif name == "ReplicaResolved":
                outcome = a["outcome"].lower()
                w[outcome] += 1
                if outcome == "slashed":
                    w["slashed_wei"] += a["amount"]
    for address, w in acc.items():
        w["endpoint"] = endpoints.get(address)
    return acc


def pool_members(engine: Engine) -> dict[int, int]:
    """Members with stake opted in to each resource class (as indexed; epochs not considered)."""
    with engine.connect() as conn:
        rows = conn.execute(select(db.members.c.classes, db.members.c.stake)).all()
    out: dict[int, int] = defaultdict(int)
    for classes, stake in rows:
        if int(stake) > 0:
            for c in range(8):
                if classes & (1 << c):
                    out[c] += 1
    return dict(out)


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
