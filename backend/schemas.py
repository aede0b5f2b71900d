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
    replication: int
    quorum: int
    reward_per_replica_wei: Wei
    escrow_wei: Wei
    spec_digest: HexStr
    posted_block: int
    posted_time: int
    updated_block: int


class JobPage(BaseModel):
    jobs: list[JobSummary]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null on the last page.")


class Replica(BaseModel):
    worker: str
    round: int
    state: Literal["claimed", "committed", "revealed", "paid", "slashed", "released"]
    digest: HexStr | None
    lease_deadline: int
    outcome: Literal["paid", "slashed", "released"] | None
    amount_wei: Wei | None


class TaskDetail(BaseModel):
    task_id: int
    kind: Literal["map", "reduce"]
    state: Literal["open", "claimed", "committing", "revealing", "settled", "abandoned"]
    round: int
    digest: HexStr | None
    claimed: int
    committed: int
    revealed: int
    replicas: list[Replica]


class Costs(BaseModel):
    escrow_wei: Wei
    paid_wei: Wei
    refunded_wei: Wei
    owed_or_open_wei: Wei = Field(description="Escrow neither paid out nor refunded yet.")
    slashed_collateral_to_requester_wei: Wei
    transactions: int


class Payout(BaseModel):
    worker: str
    amount_wei: Wei


class Slash(BaseModel):
    worker: str
    task_id: int
    round: int
    collateral_wei: Wei
    tx_hash: HexStr


class JobDetail(JobSummary):
    tasks_detail: list[TaskDetail]
    costs: Costs
    payouts: list[Payout]
    slashes: list[Slash]
    result_available: bool


class ChainEvent(BaseModel):
    id: str = Field(description="`<block>-<log index>`; send it back as Last-Event-ID to resume a stream.")
    event: str
    contract: Literal["JobMarket", "WorkerRegistry"]
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
    settled: int = Field(description="Replicas settled (paid or released), as the registry counts them.")
    slashed: int
    earned_wei: Wei
    slashed_wei: Wei
    claims: int
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
    registry: str
    head_block: int | None
    indexed_block: int | None
    lag_blocks: int | None
    indexer_error: str | None
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
    purpose: Literal["announce", "post_job"]
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
