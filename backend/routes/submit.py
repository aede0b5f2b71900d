"""Posting jobs: upload, shard, plan and store, then unsigned transactions (or, in
dev mode, the gateway's own); relaying the transactions the requester signed."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from backend import queries
from backend import schemas as S
from backend.problems import ApiProblem, responses
from backend.state import Authed, Gateway, GatewayState
from backend.submit import check_funds, decode_signed, parse_wei, save_upload, unsigned_transactions
from shardex import jobs
from shardex.requester import SubmitRequest, bounds, fund_token_escrow, job_params, prepare
from shardex.storage import CID
from shardex.storage.errors import BlockNotFound, FetchFailed

router = APIRouter()
MAX_UINT32 = 2**32 - 1  # JobParams.extraSeats


@router.post("/v1/jobs", status_code=201, tags=["jobs"],
          response_model=None,
          responses={200: {"model": S.JobPrepared,
                           "description": "Non-custodial: the transactions to sign and send to POST /v1/tx."},
                     201: {"model": S.JobPostedOut, "description": "Dev mode: the job is posted."},
                     **responses(400, 401, 409, 413, 422, 502)})
async def submit_job(
    s: Gateway, who: Authed, response: Response,
    program: Annotated[str | None, Form(max_length=64, description="Built-in program name.")] = None,
    map_shards: Annotated[int, Form(**bounds("map_shards"))] = 4,
    reduce_shards: Annotated[int, Form(**bounds("reduce_shards"))] = 1,
    epsilon: Annotated[float, Form(**bounds("epsilon"), description=(
        "The chance of a wrong result being accepted for a task that you accept; with `adversary` it sets "
        "the margin of agreeing drawn workers that settles a task."))] = 1e-3,
    adversary: Annotated[float, Form(**bounds("adversary"), description=(
        "The share of the workers' stake you assume an adversary holds."))] = 0.1,
    extra_seats: Annotated[int | None, Form(ge=0, le=MAX_UINT32, description=(
        "Escalation seats the escrow prefunds (seats beyond margin x tasks, drawn when workers disagree); "
        "default: two per task plus one round."))] = None,
    reward_wei: Annotated[str, Form(max_length=40, description="Per seat that opens the settled result, wei.")
                          ] = "1000000000000000",
    collateral_wei: Annotated[str, Form(max_length=40, description="Locked per drawn seat, wei.")
                              ] = "10000000000000000",
    min_stake_wei: Annotated[str, Form(max_length=40)] = "0",
    token: Annotated[str | None, Form(pattern=r"^0x[0-9a-fA-F]{40}$", description=(
        "Pay in this ERC-20 instead of ETH: `reward_wei` is then in its smallest unit, the escrow is taken "
        "from your balance of it (an `approve_token` transaction comes first when needed), and rewards and "
        "refunds are paid in it. Collateral stays staked ETH."))] = None,
    pattern: Annotated[str | None, Form(max_length=1000, description="Regex, for grep.")] = None,
    lease_s: Annotated[int, Form(**bounds("lease_duration"))] = 600,
    reveal_window_s: Annotated[int, Form(**bounds("reveal_window"))] = 120,
    job_timeout_s: Annotated[int, Form(**bounds("job_timeout"))] = 3600,
    max_rounds: Annotated[int, Form(**bounds("max_rounds"))] = 8,
    task_timeout_s: Annotated[float, Form(**bounds("timeout_s"))] = 600.0,
    memory_mb: Annotated[int, Form(**bounds("memory_mb"))] = 2048,
    disk_mb: Annotated[int, Form(**bounds("disk_mb"))] = 4096,
    gpus: Annotated[int, Form(**bounds("gpus"))] = 0,
    gpu_memory_mb: Annotated[int, Form(**bounds("gpu_memory_mb"))] = 0,
    gpu_share: Annotated[float, Form(**bounds("gpu_share"))] = 1.0,
    input_cid: Annotated[str | None, Form(max_length=200, description="Instead of a file: a CID.")] = None,
    signing: Annotated[Literal["wallet", "gateway"], Form(
        description="wallet (default): get unsigned transactions; gateway: dev mode, the gateway signs.")]
    = "wallet",
    input: Annotated[UploadFile | None, File(description="A file of records (lines).")] = None,
    program_file: Annotated[UploadFile | None, File(description="A Python map/reduce program.")] = None,
) -> Any:
    """Store, shard and plan the input, store the spec, then post the job (see `signing`)."""
    if (input is None) == (input_cid is None):
        raise ApiProblem(422, "invalid-job", "give exactly one of the `input` file or `input_cid`")
    if (program is None) == (program_file is None):
        raise ApiProblem(422, "invalid-job", "give exactly one of `program` or `program_file`")
    if max_rounds == 1 and extra_seats:
        raise ApiProblem(422, "invalid-job", f"extra_seats {extra_seats} needs max_rounds >= 2: escalation seats are "
                         "drawn in later rounds")
    if signing == "gateway" and s.config.dev_account is None:
        raise ApiProblem(409, "dev-mode-off", "this gateway does not sign (start it with --dev-sign on a "
                         "devnet); use signing=wallet")
    reward, collateral = parse_wei(reward_wei, "reward_wei"), parse_wei(collateral_wei, "collateral_wei")
    min_stake = parse_wei(min_stake_wei, "min_stake_wei")
    requester = s.config.dev_account.address if signing == "gateway" else who.address
    scratch = Path(tempfile.mkdtemp(prefix="shardex-upload-"))
    try:
        program_path = None
        if program_file is not None:
            program_path = await save_upload(program_file, 1 << 20, scratch / "program")
        if input is not None:
            input_ref = str(await save_upload(input, s.config.max_upload_bytes, _mkdir(scratch / "input")))
        else:
            input_ref = str(CID.parse(input_cid or ""))  # InvalidCid -> 400
        req = SubmitRequest(program=program, program_file=program_path, input=input_ref, map_shards=map_shards,
                            reduce_shards=reduce_shards, epsilon=epsilon, adversary=adversary, extra_seats=extra_seats, reward=reward,
                            collateral=collateral, params={"pattern": pattern} if pattern is not None else {},
                            min_stake=min_stake, max_rounds=max_rounds, lease_duration=lease_s,
                            reveal_window=reveal_window_s, job_timeout=job_timeout_s, timeout_s=task_timeout_s,
                            memory_mb=memory_mb, disk_mb=disk_mb, gpus=gpus, gpu_memory_mb=gpu_memory_mb,
                            gpu_share=gpu_share, token=token)
        # Before any work is stored: the escrow does not depend on the spec's digest.
        await check_funds(s.client, requester, job_params(req, bytes(32)).escrow, token)
        try:
            spec = await prepare(req, s.store, await s.fetcher() if input is None else None)
        except (FetchFailed, BlockNotFound) as exc:
            raise ApiProblem(422, "input-unavailable", f"input_cid {input_cid}: no provider serves it ({exc})"
                             ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    digest = spec.digest  # re-serialises the spec on every access: once is enough
    params = job_params(req, digest)
    info = {"spec_cid": str(jobs.spec_cid(digest)), "spec_digest": "0x" + digest.hex(),
            "input_bytes": spec.input_bytes, "escrow_wei": str(params.escrow), "requester": requester}
    announce = await _announce_needed(s, requester)
    if signing == "gateway":
        async with s.announce_lock:
            if announce is not None:
                await s.client.announce(announce)
            if params.token is not None:
                await fund_token_escrow(s.client, params)
            receipt = await s.client.post_job(params)
        job_id = receipt.events_named("JobPosted")[0].job_id
        await s.indexed(receipt.block_number)
        return {**info, "job_id": job_id, "tx_hash": receipt.tx_hash}
    response.status_code = 200
    txs = await unsigned_transactions(s.client, requester, params, announce)
    return {**info, "map_shards": list(spec.map_shards), "transactions": txs}


@router.post("/v1/tx", response_model=S.TxResult, responses=responses(400, 409, 413, 422, 502), tags=["jobs"])
async def send_tx(s: Gateway, body: S.SignedTx,
                  wait_s: Annotated[float, Query(ge=0, le=120, description="How long to wait to be mined.")]
                  = 60) -> Any:
    """Relay a transaction the requester signed (to this gateway's contracts only) and report what it did."""
    allowed = {s.config.deployment.market.lower(), s.config.deployment.registry.lower()}
    raw, decoded = decode_signed(body.raw, s.config.deployment.chain_id, allowed, s.config.deployment.market)
    pending = await s.client.send_raw(raw, decoded, "signed transaction")
    receipt = await pending.receipt(timeout=max(wait_s, 0.1))  # ChainError (502) names the tx if not mined
    posted = receipt.events_named("JobPosted")
    await s.indexed(receipt.block_number)
    return {"tx_hash": receipt.tx_hash, "block_number": receipt.block_number, "gas_used": receipt.gas_used,
            "sender": decoded["from"], "job_id": posted[0].job_id if posted else None,
            "events": [e.to_json() | {"block_number": e.block_number} for e in receipt.events]}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _announce_needed(s: GatewayState, requester: str) -> str | None:
    """The gateway's URL, unless the requester's latest announcement already names it."""
    if s.config.public_url is None:
        return None
    current = await asyncio.to_thread(queries.announced_endpoints, s.engine, requester)
    return None if current.get(requester) == s.config.public_url else s.config.public_url
