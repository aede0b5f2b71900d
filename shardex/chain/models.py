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

#: address(0): in a job's token field, "paid in ETH".
ZERO_ADDRESS = "0x" + "00" * 20


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
    """A seat on chain. A seat that opened the winner was paid by that reveal and is
    gone (NONE): there is no "revealed" state to collect."""
    NONE = 0
    ASSIGNED = 1
    COMMITTED = 2
    SLASHED = 3
    DECLINED = 4


class Outcome(IntEnum):
    """How ``collect`` or ``resolve`` ends a seat that did not open a winner."""
    SLASHED = 0
    RELEASED = 1


#: Fixed-point scale of epsilon and the adversary share (parts per million).
PPM = 1_000_000
#: Largest margin (and most seats per round) the market allows.
MAX_REPLICATION = 16


def margin_for(epsilon_ppm: int, adversary_ppm: int) -> int:
    """``JobMarket.marginFor``, computed here with the same integer rounding:
    the least m with f^m / (f^m + (1-f)^m) <= epsilon; 0 if none up to 16."""
    one = 10**36
    bad = good = one
    for m in range(1, MAX_REPLICATION + 1):
        bad = (bad * adversary_ppm + PPM - 1) // PPM
        good = (good * (PPM - adversary_ppm)) // PPM
        if bad * (PPM - epsilon_ppm) <= good * epsilon_ppm:
            return m
    return 0


@dataclass(frozen=True)
class JobParams:
    """What a requester chooses; mirrors ``JobMarket.JobParams``.

    The requester states the error it accepts (``epsilon_ppm``: the chance a
    wrong result is accepted for a task) and the stake share it assumes an
    adversary holds (``adversary_ppm``); the market derives the margin of
    agreeing drawn workers that settles a task. ``extra_seats`` prefunds
    escalations (seats beyond ``margin`` per task); None: two per task plus one
    round.
    """

    spec_digest: bytes
    map_tasks: int
    reduce_tasks: int
    reward_per_replica: int
    collateral: int
    min_stake: int = 0
    epsilon_ppm: int = 1_000
    adversary_ppm: int = 100_000
    resource_class: int = 0
    max_rounds: int = 8
    extra_seats: int | None = None
    lease_duration: int = 600
    reveal_window: int = 300
    job_timeout: int = 86_400
    #: The ERC-20 the escrow and rewards are in (amounts in its smallest
    #: unit); None: ETH (amounts in wei).
    token: str | None = None

    @property
    def tasks(self) -> int:
        return self.map_tasks + self.reduce_tasks

    @property
    def margin(self) -> int:
        return margin_for(self.epsilon_ppm, self.adversary_ppm)

    @property
    def seats(self) -> int:
        """Extra seats the escrow pays for (the default when none were given)."""
        if self.extra_seats is not None:
            return self.extra_seats
        return 0 if self.max_rounds <= 1 else 2 * self.tasks + self.margin

    @property
    def escrow(self) -> int:
        """Exact amount ``postJob`` takes (wei, or units of ``token``): a reward
        for every seat the job may fill."""
        return self.reward_per_replica * (self.margin * self.tasks + self.seats)

    def as_abi_tuple(self) -> tuple:
        return (
            self.spec_digest, self.map_tasks, self.reduce_tasks, self.resource_class, self.epsilon_ppm,
            self.adversary_ppm, self.max_rounds, self.seats, self.reward_per_replica, self.collateral,
            self.min_stake, self.lease_duration, self.reveal_window, self.job_timeout, self.token or ZERO_ADDRESS,
        )


@dataclass(frozen=True)
class Job:
    job_id: int
    requester: str
    state: JobState
    margin: int
    max_rounds: int
    resource_class: int
    has_draws: bool
    lease_duration: int
    reveal_window: int
    reward_per_replica: int
    collateral: int
    deadline: int
    min_stake: int
    map_tasks: int
    reduce_tasks: int
    settled_tasks: int
    horizon: int
    seed_block: int
    extra_seats: int
    extra_seats_used: int
    epsilon_ppm: int
    adversary_ppm: int
    paid: int  # rewards paid so far (each reveal of a winner pays its reward at once)
    escrow: int
    refunded: int
    spec_digest: bytes
    token: str  # the ERC-20 the job pays in; the zero address: ETH

    @property
    def pays_in_token(self) -> bool:
        return int(self.token, 16) != 0

    @property
    def open_escrow(self) -> int:
        """What the market still holds for this job (wei, or units of its token)."""
        return self.escrow - self.paid - self.refunded

    @property
    def tasks(self) -> int:
        return self.map_tasks + self.reduce_tasks

    @classmethod
    def from_abi(cls, job_id: int, raw: Any) -> Job:
        values = list(raw)
        values[1] = JobState(values[1])
        values[-2] = bytes(values[-2])
        return cls(job_id, *values)


@dataclass(frozen=True)
class Task:
    winner: bytes  # first 12 bytes of the result that reached the margin; zeros until then
    lead: bytes
    round: int
    seats: int  # seats of the current round (0 until round 0 is first drawn)
    seated: int
    committed: int
    settled: bool  # the winner was opened: the digest is known
    lead_count: int
    total: int
    tally: int
    reveal_deadline: int
    seed_block: int
    draw_nonce: int
    void_rounds: int  # bit k: round k won but was never opened (its committers cannot be paid)

    @property
    def has_winner(self) -> bool:
        return any(self.winner)

    def open_seats(self, margin: int) -> int:
        """Seats of the current round still to draw (0 once a result won, or the task is dead)."""
        if self.has_winner or self.settled or (self.void_rounds >> self.round) & 1:
            return 0
        return (self.seats or margin) - self.seated

    @classmethod
    def from_abi(cls, raw: Any) -> Task:
        winner, lead, *rest = tuple(raw)
        return cls(bytes(winner), bytes(lead), *rest)


@dataclass(frozen=True)
class Replica:
    result: bytes
    seal: bytes
    deadline: int
    state: ReplicaState
    round: int

    @classmethod
    def from_abi(cls, raw: Any) -> Replica:
        result, seal, deadline, state, rnd = tuple(raw)
        return cls(bytes(result), bytes(seal), deadline, ReplicaState(state), rnd)


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    stake: int
    locked: int
    settled: int
    slashed: int
    unbonding: int
    unbonding_ready_at: int
    classes: int = 0  # bitmask of the resource classes it opted in to

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
    margin: int
    resource_class: int
    reward_per_replica: int
    escrow: int


@dataclass(frozen=True)
class JobStateChanged(Event):
    name = "JobStateChanged"
    job_id: int
    state: JobState


@dataclass(frozen=True)
class SeedArmed(Event):
    """Draws wait for this block's randomness (task_id 2**256-1: the job's round 0)."""

    name = "SeedArmed"
    job_id: int
    task_id: int
    seed_block: int


@dataclass(frozen=True)
class TaskAssigned(Event):
    name = "TaskAssigned"
    job_id: int
    task_id: int
    worker: str
    round: int
    lease_deadline: int


@dataclass(frozen=True)
class TaskDeclined(Event):
    name = "TaskDeclined"
    job_id: int
    task_id: int
    worker: str
    round: int


@dataclass(frozen=True)
class InputUnavailable(Event):
    """A drawn worker gave its seat back because the task's input could not be
    fetched; ``reports`` counts such workers on the task (at the margin, the job fails)."""
    name = "InputUnavailable"
    job_id: int
    task_id: int
    worker: str
    reports: int


@dataclass(frozen=True)
class ResultCommitted(Event):
    name = "ResultCommitted"
    job_id: int
    task_id: int
    worker: str
    result: bytes


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
class TaskEscalated(Event):
    name = "TaskEscalated"
    job_id: int
    task_id: int
    round: int
    seats: int
    seed_block: int


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
    name = "Withdrawn"
    account: str
    amount: int
    contract: str = ""


@dataclass(frozen=True)
class TokenWithdrawn(Event):
    name = "TokenWithdrawn"
    token: str
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
class OptedIn(Event):
    name = "OptedIn"
    worker: str
    class_: int
    from_epoch: int


@dataclass(frozen=True)
class OptedOut(Event):
    name = "OptedOut"
    worker: str
    class_: int
    from_epoch: int


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
    """Collateral burned (protocol v2 credits slashes to no one)."""

    name = "Slashed"
    worker: str
    amount: int
    count: int


@dataclass(frozen=True)
class EndpointAnnounced(Event):
    name = "EndpointAnnounced"
    worker: str
    endpoint: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (JobPosted, JobStateChanged, SeedArmed, TaskAssigned, TaskDeclined, InputUnavailable, ResultCommitted, RevealOpened,
                ResultRevealed, TaskSettled, TaskEscalated, ReplicaResolved, Refunded, Withdrawn, TokenWithdrawn, Staked, OptedIn,
                OptedOut, UnbondRequested, Unbonded, CollateralLocked, CollateralReleased, Slashed,
                EndpointAnnounced)
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
