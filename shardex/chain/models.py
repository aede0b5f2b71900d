"""Typed models of on-chain state and events.

web3 returns ``AttributeDict``s keyed by Solidity names; everything here is
converted once, at the boundary, into frozen dataclasses with snake_case fields
and Python enums, so no web3 type leaks past :mod:`shardex.chain`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, ClassVar


class JobState(IntEnum):
    NONE = 0
    MAP = 1
    REDUCE = 2
    COMPLETED = 3
    FAILED = 4
    EXPIRED = 5
    CANCELLED = 6

    @property
    def active(self) -> bool:
        return self in (JobState.MAP, JobState.REDUCE)


class ReplicaState(IntEnum):
    NONE = 0
    CLAIMED = 1
    COMMITTED = 2
    REVEALED = 3
    SLASHED = 4


class Outcome(IntEnum):
    PAID = 0
    SLASHED = 1
    RELEASED = 2


@dataclass(frozen=True)
class JobParams:
    """What a requester chooses; mirrors ``IJobMarket.JobParams``."""

    spec_digest: bytes
    map_tasks: int
    reduce_tasks: int
    replication: int
    quorum: int
    reward_per_replica: int
    collateral: int
    min_stake: int = 0
    max_rounds: int = 3
    lease_duration: int = 600
    reveal_window: int = 300
    job_timeout: int = 86_400

    @property
    def tasks(self) -> int:
        return self.map_tasks + self.reduce_tasks

    @property
    def escrow(self) -> int:
        """Exact wei ``postJob`` requires: every replica of every task, paid once."""
        return self.reward_per_replica * self.replication * self.tasks

    def as_abi_tuple(self) -> tuple:
        return (
            self.spec_digest, self.map_tasks, self.reduce_tasks, self.replication, self.quorum,
            self.max_rounds, self.reward_per_replica, self.collateral, self.min_stake,
            self.lease_duration, self.reveal_window, self.job_timeout,
        )


@dataclass(frozen=True)
class Job:
    job_id: int
    requester: str
    state: JobState
    replication: int
    quorum: int
    max_rounds: int
    lease_duration: int
    reveal_window: int
    reward_per_replica: int
    collateral: int
    deadline: int
    has_claims: bool
    min_stake: int
    map_tasks: int
    reduce_tasks: int
    settled_tasks: int
    horizon: int
    paid: int
    owed: int
    escrow: int
    refunded: int
    spec_digest: bytes

    @property
    def open_escrow(self) -> int:
        """Wei the market still holds for this job."""
        return self.escrow - self.paid - self.refunded

    @property
    def tasks(self) -> int:
        return self.map_tasks + self.reduce_tasks

    @classmethod
    def from_abi(cls, job_id: int, raw: Any) -> Job:
        (requester, state, replication, quorum, max_rounds, lease, reveal, reward, collateral, deadline,
         has_claims, min_stake, map_tasks, reduce_tasks, settled, horizon, paid, owed, escrow, refunded,
         spec) = tuple(raw)
        return cls(job_id, requester, JobState(state), replication, quorum, max_rounds, lease, reveal, reward,
                   collateral, deadline, has_claims, min_stake, map_tasks, reduce_tasks, settled, horizon, paid,
                   owed, escrow, refunded, bytes(spec))


@dataclass(frozen=True)
class Task:
    winner: bytes  # first 24 bytes of the accepted digest, zeros until settled
    reveal_deadline: int
    round: int
    claimed: int
    committed: int
    revealed: int

    @property
    def settled(self) -> bool:
        return any(self.winner)

    @classmethod
    def from_abi(cls, raw: Any) -> Task:
        winner, deadline, rnd, claimed, committed, revealed = tuple(raw)
        return cls(bytes(winner), deadline, rnd, claimed, committed, revealed)


@dataclass(frozen=True)
class Replica:
    hash: bytes
    deadline: int
    state: ReplicaState
    round: int

    @classmethod
    def from_abi(cls, raw: Any) -> Replica:
        h, deadline, state, rnd = tuple(raw)
        return cls(bytes(h), deadline, ReplicaState(state), rnd)


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    stake: int
    locked: int
    settled: int
    slashed: int
    unbonding: int
    unbonding_ready_at: int

    @property
    def free_stake(self) -> int:
        return self.stake - self.locked


# ------------------------------------------------------------------ events

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


@dataclass(frozen=True)
class Event:
    """Common envelope of every decoded contract event."""

    name: ClassVar[str]
    block_number: int
    tx_hash: str
    log_index: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.name}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = "0x" + v.hex() if isinstance(v, bytes) else (v.name if isinstance(v, IntEnum) else v)
        return out


@dataclass(frozen=True)
class JobPosted(Event):
    name = "JobPosted"
    job_id: int
    requester: str
    spec_digest: bytes
    map_tasks: int
    reduce_tasks: int
    replication: int
    quorum: int
    reward_per_replica: int
    escrow: int


@dataclass(frozen=True)
class JobStateChanged(Event):
    name = "JobStateChanged"
    job_id: int
    state: JobState


@dataclass(frozen=True)
class TaskClaimed(Event):
    name = "TaskClaimed"
    job_id: int
    task_id: int
    worker: str
    round: int
    lease_deadline: int


@dataclass(frozen=True)
class ResultCommitted(Event):
    name = "ResultCommitted"
    job_id: int
    task_id: int
    worker: str
    commitment: bytes


@dataclass(frozen=True)
class RevealOpened(Event):
    name = "RevealOpened"
    job_id: int
    task_id: int
    round: int
    reveal_deadline: int


@dataclass(frozen=True)
class ResultRevealed(Event):
    name = "ResultRevealed"
    job_id: int
    task_id: int
    worker: str
    digest: bytes


@dataclass(frozen=True)
class TaskSettled(Event):
    name = "TaskSettled"
    job_id: int
    task_id: int
    round: int
    digest: bytes


@dataclass(frozen=True)
class TaskReopened(Event):
    name = "TaskReopened"
    job_id: int
    task_id: int
    round: int


@dataclass(frozen=True)
class ReplicaResolved(Event):
    name = "ReplicaResolved"
    job_id: int
    task_id: int
    worker: str
    outcome: Outcome
    amount: int


@dataclass(frozen=True)
class Refunded(Event):
    name = "Refunded"
    job_id: int
    requester: str
    amount: int


@dataclass(frozen=True)
class Withdrawn(Event):
    """Emitted by both contracts; ``contract`` tells which paid."""

    name = "Withdrawn"
    account: str
    amount: int
    contract: str = ""


@dataclass(frozen=True)
class Staked(Event):
    name = "Staked"
    worker: str
    amount: int
    stake: int


@dataclass(frozen=True)
class UnbondRequested(Event):
    name = "UnbondRequested"
    worker: str
    amount: int
    ready_at: int


@dataclass(frozen=True)
class Unbonded(Event):
    name = "Unbonded"
    worker: str
    amount: int


@dataclass(frozen=True)
class CollateralLocked(Event):
    name = "CollateralLocked"
    worker: str
    amount: int


@dataclass(frozen=True)
class CollateralReleased(Event):
    name = "CollateralReleased"
    worker: str
    amount: int
    settled: int


@dataclass(frozen=True)
class Slashed(Event):
    name = "Slashed"
    worker: str
    beneficiary: str
    amount: int
    count: int


@dataclass(frozen=True)
class EndpointAnnounced(Event):
    name = "EndpointAnnounced"
    worker: str
    endpoint: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (JobPosted, JobStateChanged, TaskClaimed, ResultCommitted, RevealOpened, ResultRevealed,
                TaskSettled, TaskReopened, ReplicaResolved, Refunded, Withdrawn, Staked, UnbondRequested,
                Unbonded, CollateralLocked, CollateralReleased, Slashed, EndpointAnnounced)
}

_ENUM_FIELDS = {("JobStateChanged", "state"): JobState, ("ReplicaResolved", "outcome"): Outcome}


def event_from_log(name: str, args: dict[str, Any], block_number: int, tx_hash: str, log_index: int,
                   contract: str) -> Event:
    """Build the typed event from a web3-decoded log's ``args``."""
    cls = EVENT_TYPES[name]
    values: dict[str, Any] = {}
    for key, value in args.items():
        field = snake(key)
        enum = _ENUM_FIELDS.get((name, field))
        if enum is not None:
            value = enum(value)
        elif isinstance(value, (bytes, bytearray)):
            value = bytes(value)
        values[field] = value
    if cls is Withdrawn:
        values["contract"] = contract
    return cls(block_number=block_number, tx_hash=tx_hash, log_index=log_index, **values)
