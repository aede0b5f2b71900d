"""Commitments exactly as ``JobMarket.resultOf`` and ``JobMarket.sealOf`` compute them."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak, to_canonical_address


def result_of(job_id: int, task_id: int, digest: bytes) -> bytes:
    """keccak256(abi.encode(jobId, taskId, digest)): the same for every worker
    with the same output, so the market compares results without seeing any
    digest. It does not reveal the digest (a CID's hash)."""
    return keccak(encode(["uint256", "uint256", "bytes32"], [job_id, task_id, digest]))


def seal_of(worker: str, job_id: int, task_id: int, digest: bytes) -> bytes:
    """keccak256(abi.encode(worker, jobId, taskId, digest)): proves the worker knew
    the digest when it committed, so a result copied from someone else's commit
    cannot be opened."""
    return keccak(encode(["address", "uint256", "uint256", "bytes32"],
                         [to_canonical_address(worker), job_id, task_id, digest]))
