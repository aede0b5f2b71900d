"""The requester's side of a job: submit, watch, assemble the verified result."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from shardex import jobs
from shardex.chain import ChainClient, JobParams, JobState
from shardex.chain.fees import reported_l1_fee
from shardex.chain.models import (
    PPM,
    InputUnavailable,
    OptedIn,
    ReplicaResolved,
    ResultCommitted,
    ResultRevealed,
    TaskAssigned,
    TaskDeclined,
    TaskEscalated,
    TaskSettled,
    margin_for,
)
from shardex.errors import ShardexError
from shardex.serving import announced_endpoints
from shardex.storage import CID, EmbeddedStore, StoreError
from shardex.storage.fetcher import Fetcher
from shardex.storage.providers import Providers


class SubmitError(ShardexError):
    """A job that cannot be submitted as asked; the message says why."""


@dataclass
class SubmitRequest:
    program: str | None
    program_file: Path | None
    input: str  # a path or a CID
    map_shards: int
    reduce_shards: int
    reward: int
    collateral: int
    params: dict = field(default_factory=dict)
    #: The chance of a wrong result being accepted for a task that the requester
    #: accepts, against an adversary holding ``adversary`` of the workers' stake.
    epsilon: float = 1e-3
    adversary: float = 0.1
    extra_seats: int | None = None  # escalation seats prefunded (None: two per task plus one round)
    min_stake: int = 0
    max_rounds: int = 8
    lease_duration: int = 600
    reveal_window: int = 120
    job_timeout: int = 3600
    timeout_s: float = 600.0
    memory_mb: int = 2048
    disk_mb: int = 4096
    gpus: int = 0
    gpu_share: float = 1.0
    gpu_memory_mb: int = 0
    #: Pay in this ERC-20 (``reward`` in its smallest unit) instead of ETH.
    token: str | None = None


#: Every bounded job parameter, (low, high) inclusive: the one set the CLI, the
#: gateway's API (its form fields are declared from these) and submit all use.
BOUNDS: dict[str, tuple[float, float]] = {
    "map_shards": (1, 10_000), "reduce_shards": (1, 1_000), "epsilon": (1e-6, 0.5), "adversary": (0.0, 0.49),
    "max_rounds": (1, 255), "lease_duration": (10, 30 * 86400), "reveal_window": (5, 7 * 86400),
    "job_timeout": (60, 365 * 86400), "timeout_s": (1, 86400), "memory_mb": (16, 1 << 20), "disk_mb": (1, 1 << 24),
    "gpus": (0, 64), "gpu_memory_mb": (0, 10_000_000), "gpu_share": (0.01, 1.0),
}
#: How the CLI names each (the messages speak to whoever typed them).
FLAGS = {"lease_duration": "--lease", "timeout_s": "--task-timeout", "job_timeout": "--timeout"}


def bounds(name: str) -> dict[str, float]:
    """``ge``/``le`` for a pydantic or FastAPI field declaration."""
    low, high = BOUNDS[name]
    return {"ge": low, "le": high}


def _validate(req: SubmitRequest) -> None:
    if (req.program is None) == (req.program_file is None):
        raise SubmitError("give exactly one of --program NAME or --program-file PATH")
    for name, (low, high) in BOUNDS.items():
        value = getattr(req, name)
        if not low <= value <= high:
            flag = FLAGS.get(name, "--" + name.replace("_", "-"))
            raise SubmitError(f"{flag} must be {low}..{high}, got {value}")
    if req.gpu_memory_mb and not req.gpus:
        raise SubmitError("--gpu-memory-mb needs --gpus >= 1")
    if req.gpu_share != 1 and not req.gpus:
        raise SubmitError("--gpu-share needs --gpus >= 1")
    if req.token is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", req.token):
        raise SubmitError(f"--token must be a token contract's address (0x and 40 hex digits), got {req.token!r}")
    if req.extra_seats is not None and req.extra_seats < 0:
        raise SubmitError(f"--extra-seats must be >= 0, got {req.extra_seats}")
    if margin_for(*ppm(req)) == 0:
        raise SubmitError(f"--epsilon {req.epsilon:g} cannot be met against --adversary {req.adversary:g} with at most "
                          "16 agreeing workers: accept a larger epsilon or assume a smaller adversary")


def ppm(req: SubmitRequest) -> tuple[int, int]:
    """(epsilonPpm, adversaryPpm) as the market takes them."""
    return max(1, round(req.epsilon * PPM)), round(req.adversary * PPM)


async def prepare(req: SubmitRequest, store: EmbeddedStore, fetcher: Fetcher | None = None) -> jobs.JobSpec:
    """Split and store the input, plan partitions, store the spec. Nothing on chain yet."""
    from shardex.programs import ProgramError, load_program

    _validate(req)
    source = req.program_file.read_bytes() if req.program_file else None
    try:
        program = load_program(req.program, source)
    except ProgramError as exc:
        raise SubmitError(str(exc)) from None
    path = Path(req.input)
    scratch = None
    if not path.exists():
        try:
            cid = CID.parse(req.input)
        except StoreError:
            raise SubmitError(f"--input {req.input!r} is neither an existing file nor a CID") from None
        if fetcher is not None and not store.blocks.has(cid):
            await fetcher.fetch(cid)
        scratch = Path(tempfile.mkdtemp(prefix="shardex-input-"))
        path = scratch / "input"
    try:
        if scratch is not None:
            await store.get(cid, path)  # BlockNotFound (typed, names the CID) if nobody has it
        return await _store_job(req, store, program, source, path)
    finally:
        if scratch is not None:  # removed whether or not the job could be prepared
            shutil.rmtree(scratch, ignore_errors=True)


async def _store_job(req: SubmitRequest, store: EmbeddedStore, program, source: bytes | None,
                     path: Path) -> jobs.JobSpec:
    from shardex.programs import ProgramError, plan

    if path.is_dir():
        raise SubmitError(f"--input {path} is a directory; give a file of records (lines)")
    total = path.stat().st_size
    with path.open("rb") as f:
        shard_cids = []
        for shard in jobs.split_records(f, total, req.map_shards):
            shard_cids.append(str(await store.add_bytes(shard)))
        sample = jobs.sample_input(f, total)
    try:
        params = plan(program, sample, req.reduce_shards, dict(req.params))
    except ProgramError as exc:
        raise SubmitError(str(exc)) from None
    program_cid = str(await store.add_bytes(source)) if source is not None else None
    spec = jobs.JobSpec(req.program, program_cid, params, shard_cids, req.reduce_shards, total,
                        jobs.Resources(timeout_s=req.timeout_s, memory_mb=req.memory_mb, gpus=req.gpus,
                                       gpu_memory_mb=req.gpu_memory_mb, gpu_share=req.gpu_share,
                                       disk_mb=req.disk_mb))
    await store.add_bytes(spec.to_bytes())
    return spec


def job_params(req: SubmitRequest, spec_digest: bytes) -> JobParams:
    epsilon_ppm, adversary_ppm = ppm(req)
    return JobParams(spec_digest=spec_digest, map_tasks=req.map_shards, reduce_tasks=req.reduce_shards,
                     reward_per_replica=req.reward, collateral=req.collateral,
                     # The market asks every drawn worker to hold at least its collateral.
                     min_stake=max(req.min_stake, req.collateral), epsilon_ppm=epsilon_ppm,
                     adversary_ppm=adversary_ppm, resource_class=1 if req.gpus else 0, max_rounds=req.max_rounds,
                     extra_seats=req.extra_seats, lease_duration=req.lease_duration,
                     reveal_window=req.reveal_window, job_timeout=req.job_timeout, token=req.token)


async def post(client: ChainClient, req: SubmitRequest, spec: jobs.JobSpec) -> int:
    params = job_params(req, spec.digest)
    if params.token is not None:
        await fund_token_escrow(client, params)
    receipt = await client.post_job(params)
    return receipt.events_named("JobPosted")[0].job_id


async def fund_token_escrow(client: ChainClient, params: JobParams) -> None:
    """Let the market take a token job's escrow: say so plainly when the
    balance cannot cover it, and approve only what is missing."""
    token, escrow = params.token, params.escrow
    balance = await client.token_balance(token)
    if balance < escrow:
        raise SubmitError(f"this job's escrow is {escrow} units of token {token}; this account holds {balance}")
    if await client.token_allowance(token) < escrow:
        await client.approve_token(token, escrow)


# ------------------------------------------------------------------ status

@dataclass
class TaskView:
    task_id: int
    kind: str
    round: int
    settled: bool
    seats: int
    seated: int
    committed: int
    workers: dict[str, str] = field(default_factory=dict)  # address -> last action
    digest: str | None = None


async def refusals(client: ChainClient, job_id: int, timeout: float = 2.0) -> dict[str, str]:
    """Why workers will not take this job: each announced worker's own word
    (``GET /shardex/worker`` → ``refused``), by address. Workers that do not
    answer, or have not judged the job yet, are left out."""
    import httpx

    endpoints = await announced_endpoints(client)

    async def ask(http: httpx.AsyncClient, address: str, url: str) -> tuple[str, str | None]:
        try:
            r = await http.get(f"{url}/shardex/worker")
            refused = r.json().get("refused", {}) if r.status_code == 200 else {}
            return address, refused.get(str(job_id)) if isinstance(refused, dict) else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return address, None
    async with httpx.AsyncClient(timeout=timeout) as http:
        answers = await asyncio.gather(*(ask(http, a, u) for a, u in endpoints.items()))
    return {address: why for address, why in answers if why}


async def status(client: ChainClient, job_id: int) -> dict:
    job = await client.job(job_id)
    tasks = await asyncio.gather(*(client.task(job_id, t) for t in range(job.tasks)))
    views = [TaskView(i, "map" if i < job.map_tasks else "reduce", t.round, t.settled, t.seats or job.margin,
                      t.seated, t.committed) for i, t in enumerate(tasks)]
    slashes = payouts = declines = escalations = 0
    unavailable: dict[int, int] = {}  # task -> drawn workers who could not fetch its input
    events = await client.events(job_id=job_id)
    for e in events:
        if isinstance(e, TaskAssigned):
            views[e.task_id].workers[e.worker] = "assigned"
        elif isinstance(e, TaskDeclined):
            views[e.task_id].workers[e.worker] = "declined"
            declines += 1
        elif isinstance(e, TaskEscalated):
            escalations += 1
        elif isinstance(e, InputUnavailable):
            unavailable[e.task_id] = e.reports
        elif isinstance(e, ResultCommitted):
            views[e.task_id].workers[e.worker] = "committed"
        elif isinstance(e, ResultRevealed):  # opening the winner is paid by the reveal itself
            views[e.task_id].workers[e.worker] = "paid"
            payouts += 1
        elif isinstance(e, TaskSettled):
            views[e.task_id].digest = "0x" + e.digest.hex()
        elif isinstance(e, ReplicaResolved):
            views[e.task_id].workers[e.worker] = e.outcome.name.lower()
            slashes += e.outcome.name == "SLASHED"
    receipts = await asyncio.gather(*(client.w3.eth.get_transaction_receipt(tx)
                                      for tx in dict.fromkeys(e.tx_hash for e in events)))
    gas = sum(r["gasUsed"] for r in receipts)
    # What every party paid to send them: L2 execution, and on an OP Stack chain the L1 data fee.
    l2_fees = sum(r["gasUsed"] * r.get("effectiveGasPrice", 0) for r in receipts)
    l1_fees = sum(await asyncio.gather(*(client.l1_fee(r) for r in receipts)))
    if any(reported_l1_fee(r) is not None for r in receipts):
        l1_source = "reported by the chain's receipts"
    elif client.l1_pricing is not None:
        l1_source = client.l1_pricing.describe()
    else:
        l1_source = "none reported (not an OP Stack chain, or set SHARDEX_L1_BASE_FEE_WEI to estimate it)"
    active = job.state.active
    refused = await refusals(client, job_id) if active else {}
    return {
        "job_id": job_id, "state": job.state.name, "requester": job.requester,
        "tasks_settled": job.settled_tasks, "tasks": job.tasks, "margin": job.margin,
        "epsilon": job.epsilon_ppm / PPM, "adversary_share": job.adversary_ppm / PPM,
        "resource_class": job.resource_class, "escrow": job.escrow, "paid": job.paid,
        "refunded": job.refunded, "slashes": slashes, "payouts": payouts, "declines": declines,
        "escalations": escalations, "extra_seats_used": job.extra_seats_used, "extra_seats": job.extra_seats,
        "gas_used_all_parties": gas, "fees_wei_all_parties": l2_fees + l1_fees, "l2_fees_wei": l2_fees,
        "l1_data_fees_wei": l1_fees, "l1_fee_source": l1_source, "task_list": [v.__dict__ for v in views],
        # While it runs: which workers will not take it, and why ("why is my job not running?").
        "refusals": refused,
        "unavailable_inputs": unavailable,
        "waiting": (await waiting_reasons(client, job, views, refused, declines, unavailable)) if active else [],
        "failure": failure_reason(job.margin, unavailable) if job.state == JobState.FAILED else None,
    }


def failure_reason(margin: int, unavailable: dict[int, int]) -> str:
    """Why a job failed, in words a requester can act on; ``unavailable``: task -> workers that
    reported its input unreachable (the CLI and the gateway both say it this way)."""
    lost = sorted(t for t, n in unavailable.items() if n >= margin)
    if lost:
        return (f"{margin} drawn workers could not fetch the input of task(s) {lost} from anyone: keep inputs "
                f"served (job submit --wait, store serve, or the gateway) until the job completes")
    return ("workers disagreed beyond what the job's rounds and prefunded seats could settle "
            "(see the tasks' escalations)")


CLASS_NAMES = {0: "CPU", 1: "GPU"}


async def pool_members(client: ChainClient, resource_class: int) -> set[str]:
    """Workers opted in to ``resource_class`` now (from the pool's events)."""
    members: set[str] = set()
    for e in await client.events(names=["OptedIn", "OptedOut"]):
        if e.class_ == resource_class:
            (members.add if isinstance(e, OptedIn) else members.discard)(e.worker)
    return members


async def waiting_reasons(client: ChainClient, job, views: list[TaskView], refused: dict[str, str],
                          declines: int, unavailable: dict[int, int] | None = None) -> list[str]:
    """Why tasks of a live job are not moving, in words a requester can act on."""
    reasons = []
    phase = [v for v in views if (v.kind == "map") == (job.state == JobState.MAP) and not v.settled]
    if not phase:
        return reasons
    name = CLASS_NAMES.get(job.resource_class, f"class {job.resource_class}")
    members = await pool_members(client, job.resource_class)
    if not members or await client.pool_weight(job.resource_class) == 0:
        reasons.append(f"no worker has opted in to {name} jobs (resource class {job.resource_class}) this epoch")
    elif len(members) < job.margin:
        reasons.append(f"only {len(members)} worker(s) have opted in to {name} jobs, and each task needs "
                       f"{job.margin} distinct drawn workers (--epsilon {job.epsilon_ppm / PPM:g} against "
                       f"--adversary {job.adversary_ppm / PPM:g}): start more workers or accept more risk")
    short = [v for v in phase if v.seated < v.seats]
    if short:
        reasons.append(f"{len(short)} task(s) wait for drawn workers: seats are drawn from the {name} pool by stake, "
                       f"a task needs {job.margin} distinct workers in its first round")
    if unavailable:
        reasons.append("drawn workers could not fetch the input of task(s) "
                       + ", ".join(f"{t} ({n} of {job.margin} reports fail the job)" for t, n in sorted(unavailable.items()))
                       + ": is your input still served?")
    if declines:
        reasons.append(f"drawn workers declined {declines} seat(s)"
                       + (": " + "; ".join(f"{a}: {why}" for a, why in refused.items()) if refused else ""))
    elif refused:
        reasons.append("workers refuse this job: " + "; ".join(f"{a}: {why}" for a, why in refused.items()))
    return reasons


# ------------------------------------------------------------------ result

async def announced_urls(client: ChainClient) -> list[str]:
    """Every endpoint announced on chain, the latest one per address, once each."""
    return list(dict.fromkeys((await announced_endpoints(client)).values()))


async def result(client: ChainClient, store: EmbeddedStore, job_id: int, out: Path,
                 progress: Callable[[str], Awaitable[None] | None] | None = None) -> dict:
    """Fetch every reduce output, verified, and write them concatenated in partition order."""
    job = await client.job(job_id)
    if job.state != JobState.COMPLETED:
        raise ShardexError(f"job {job_id} is {job.state.name}, not COMPLETED: no result to assemble")
    settled = {e.task_id: e.digest for e in await client.events(names=["TaskSettled"], job_id=job_id)
               if isinstance(e, TaskSettled)}
    async with Providers() as providers:
        fetcher = providers.fetcher(store, await announced_urls(client))
        parts = await result_parts(store, fetcher, job_id,
                                   [settled[job.map_tasks + p] for p in range(job.reduce_tasks)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    size = 0
    with tmp.open("wb") as f:
        for cid in parts:
            for piece in store.cat_sync(cid):
                f.write(piece)
                size += len(piece)
    tmp.replace(out)
    return {"job_id": job_id, "output": str(out), "bytes": size, "partitions": [str(c) for c in parts]}


class ProgramFailed(ShardexError):
    """The job completed, but its program raised on some partitions (replicas agreed on the error)."""

    def __init__(self, job_id: int, errors: list[str]) -> None:
        self.job_id, self.errors = job_id, errors
        super().__init__(f"job {job_id} completed with program errors: " + "; ".join(errors))


async def result_parts(store: EmbeddedStore, fetcher: Fetcher, job_id: int, reduce_digests: list[bytes]) -> list[CID]:
    """Fetch (verified) every reduce partition's output into ``store``, in
    partition order, given the digests their tasks settled on."""
    errors = []
    parts: list[CID] = []
    for p, digest in enumerate(reduce_digests):
        manifest_cid = jobs.manifest_cid(digest)
        await fetcher.fetch(manifest_cid)
        manifest = jobs.parse_manifest(await store.cat_bytes(manifest_cid))
        if manifest["kind"] == "error":
            errors.append(f"partition {p}: {manifest['error']}")
            continue
        output = CID.parse(manifest["output"])
        await fetcher.fetch(output)
        parts.append(output)
    if errors:
        raise ProgramFailed(job_id, errors)
    return parts
