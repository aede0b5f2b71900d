"""Response and request bodies of the /v1 API (they make up /openapi.json).

Wei amounts are decimal strings: uint256 values do not survive JSON numbers
in JavaScript. Addresses are EIP-55 checksummed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from backend.queries import PHASES

Phase = Literal[tuple(PHASES)]  # type: ignore[valid-type]
Wei = str
HexStr = str


class JobSummary(BaseModel):
    job_id: int
    requester: str
    state: Phase
    map_tasks: int
    reduce_tasks: int
    tasks: int
    settled_tasks: int
    margin: int = Field(description="A task settles when one result leads all others by this many agreeing, "
                                    "independently drawn workers (the first round is unanimity of `margin`).")
    resource_class: int = Field(description="The pool its seats are drawn from: 0 CPU, 1 GPU.")
    epsilon_ppm: int | None = Field(description="The chance of a wrong result being accepted for a task that the "
                                                "requester accepts, in parts per million.")
    adversary_ppm: int | None = Field(description="The stake share the requester assumes an adversary holds, ppm.")
    reward_per_replica_wei: Wei
    escrow_wei: Wei
    token: str | None = Field(description="The ERC-20 this job pays in: its amounts (reward, escrow, payouts, "
                                          "refunds) are in that token's smallest unit, not wei. Null: ETH.")
    spec_digest: HexStr
    posted_block: int
    posted_time: int
    updated_block: int


class JobPage(BaseModel):
    jobs: list[JobSummary]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null on the last page.")


class Replica(BaseModel):
    """One drawn seat of a task (a worker holds at most one per task, in any round)."""

    worker: str
    round: int
    state: Literal["assigned", "declined", "committed", "paid", "slashed", "released"]
    result: HexStr | None = Field(description="The committed result (first 12 bytes: what the market compares).")
    digest: HexStr | None = Field(description="The digest it opened, once revealed.")
    agrees: bool | None = Field(description="Whether its result is the settled one (known once the task settled).")
    lease_deadline: int
    outcome: Literal["paid", "slashed", "released"] | None
    amount_wei: Wei | None


class TaskDetail(BaseModel):
    task_id: int
    kind: Literal["map", "reduce"]
    state: Literal["open", "assigned", "committing", "revealing", "settled", "abandoned"]
    round: int
    seats: int = Field(description="Seats of the current round (the job's margin in round 0).")
    seated: int = Field(description="Seats of the current round held by drawn workers.")
    committed: int = Field(description="Commits in the current round.")
    lead_count: int = Field(description="Commits of the leading result in the task's tally.")
    total: int = Field(description="Commits in the task's tally, all results.")
    declined: int
    reveal_deadline: int | None = Field(description="Set while a result has won: its committers may open it until.")
    settled: bool
    digest: HexStr | None
    replicas: list[Replica]


class Costs(BaseModel):
    escrow_wei: Wei
    paid_wei: Wei
    refunded_wei: Wei
    owed_or_open_wei: Wei = Field(description="Escrow neither paid out nor refunded yet.")
    slashed_collateral_burned_wei: Wei = Field(description="Collateral slashed on this job: burned, owed to no one.")
    transactions: int


class Payout(BaseModel):
    worker: str
    amount_wei: Wei


class Slash(BaseModel):
    worker: str
    task_id: int
    round: int
    reason: Literal["no-show", "dissent", "unopened"] | None = Field(
        description="no-show: never committed; dissent: committed another result than the settled one; "
                    "unopened: committed the winner but did not open it.")
    result: HexStr | None
    collateral_wei: Wei
    tx_hash: HexStr


class UnavailableInput(BaseModel):
    task_id: int
    reports: int = Field(description="Drawn workers that reported the input unreachable (at the margin, the job fails).")


class WaitingReason(BaseModel):
    code: Literal["no-workers", "joining", "too-few-workers", "no-free-stake", "seed-pending", "seats-open",
                  "inputs-unreachable", "declined", "escalated"]
    message: str


class JobDetail(JobSummary):
    max_rounds: int | None
    extra_seats: int | None = Field(description="Escalation seats the escrow prefunds.")
    extra_seats_used: int
    escalations: int
    seats_drawn: int
    declines: int
    collateral_wei: Wei | None
    min_stake_wei: Wei | None
    lease_duration: int | None
    reveal_window: int | None
    seed_block: int = Field(description="Round 0's seats are drawn with this block's randomness.")
    tasks_detail: list[TaskDetail]
    costs: Costs
    payouts: list[Payout]
    slashes: list[Slash]
    result_available: bool
    unavailable_inputs: list[UnavailableInput] = Field(
        description="Tasks whose input drawn workers could not fetch from any provider, with how many reported it.")
    failure: str | None = Field(description="Why the job failed, in words a requester can act on; null unless FAILED.")
    waiting: list[WaitingReason] = Field(description="While the job is live: why its tasks wait (no worker in its "
                                                     "pool, seats to draw, declines, ...). Empty once it ended.")


class ChainEvent(BaseModel):
    id: str = Field(description="`<block>-<log index>`; send it back as Last-Event-ID to resume a stream.")
    event: str
    contract: Literal["JobMarket", "WorkerPool"]
    block_number: int
    block_time: int
    tx_hash: HexStr
    log_index: int
    job_id: int | None
    task_id: int | None
    args: dict


class EventList(BaseModel):
    events: list[ChainEvent]


class WorkerView(BaseModel):
    address: str
    stake_wei: Wei
    locked_wei: Wei
    unbonding_wei: Wei
    settled: int = Field(description="Seats paid, as the pool counts them.")
    slashed: int
    earned_wei: Wei
    slashed_wei: Wei
    seats: int = Field(description="Seats it was drawn for (indexed).")
    declined: int = Field(description="Seats it gave back (indexed).")
    classes: list[int] = Field(description="Resource classes it opted in to (0 CPU, 1 GPU).")
    endpoint: str | None
    online: bool = Field(description="Its announced endpoint answered just now.")
    resources: dict | None = Field(description="What the worker describes at /shardex/worker: GPUs, memory, programs.")


class WorkerList(BaseModel):
    workers: list[WorkerView]


class JobStats(BaseModel):
    phases: dict[str, int] = Field(description="Jobs per phase (MAP, REDUCE, COMPLETED, FAILED, EXPIRED, CANCELLED).")
    total: int
    tasks_settled: int


class ThroughputBucket(BaseModel):
    start_time: int
    settled: int


class Throughput(BaseModel):
    bucket_s: int
    end_time: int
    buckets: list[ThroughputBucket]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    chain_id: int
    market: str
    registry: str = Field(description="The WorkerPool's address (the deployment's `registry`).")
    head_block: int | None
    indexed_block: int | None
    lag_blocks: int | None
    indexer_error: str | None
    index_writer: bool = Field(description="Whether this gateway writes the index; the others over the same "
                                           "database follow it, and one takes over within seconds if it dies.")
    dev_signer: str | None


class Nonce(BaseModel):
    nonce: str
    expires_at: float
    domain: str
    chain_id: int
    statement: str


class SiweLogin(BaseModel):
    message: str = Field(max_length=4096, description="The EIP-4361 message, exactly as signed.")
    signature: str = Field(max_length=200, description="0x-hex EIP-191 signature (personal_sign).")


class SessionInfo(BaseModel):
    token: str
    address: str
    expires_at: float


class Me(BaseModel):
    address: str
    expires_at: float


class UnsignedTx(BaseModel):
    from_: str = Field(alias="from")
    to: str
    data: HexStr
    value: Wei
    chainId: int
    nonce: int
    gas: int
    type: int
    maxFeePerGas: Wei
    maxPriorityFeePerGas: Wei


class TxToSign(BaseModel):
    purpose: Literal["announce", "approve_token", "post_job"]
    description: str
    tx: UnsignedTx


class JobPrepared(BaseModel):
    """Non-custodial submit: sign these in order, send each to POST /v1/tx."""

    spec_cid: str
    spec_digest: HexStr
    input_bytes: int
    map_shards: list[str]
    escrow_wei: Wei
    requester: str
    transactions: list[TxToSign]


class JobPostedOut(BaseModel):
    """Dev-mode submit: the gateway signed and the job is on chain."""

    job_id: int
    tx_hash: HexStr
    spec_cid: str
    spec_digest: HexStr
    input_bytes: int
    escrow_wei: Wei
    requester: str


class SignedTx(BaseModel):
    raw: str = Field(max_length=262_144, description="0x-hex signed transaction (EIP-1559, EIP-2930 or EIP-155).")


class TxResult(BaseModel):
    tx_hash: HexStr
    block_number: int
    gas_used: int
    sender: str
    job_id: int | None = Field(description="Set when the transaction posted a job.")
    events: list[dict]
