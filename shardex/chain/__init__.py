"""Typed async access to the Shardex contracts."""

from shardex.chain.client import Call, ChainClient, Deployment, PendingTx, Receipt
from shardex.chain.commitment import result_of, seal_of
from shardex.chain.errors import ChainError, ContractRevert, decode_revert
from shardex.chain.models import Job, JobParams, JobState, Outcome, Replica, ReplicaState, Task, WorkerInfo

__all__ = [
    "Call", "ChainClient", "ChainError", "ContractRevert", "Deployment", "Job", "JobParams", "JobState", "Outcome",
    "PendingTx", "Receipt", "Replica", "ReplicaState", "Task", "WorkerInfo", "decode_revert", "result_of", "seal_of",
]
