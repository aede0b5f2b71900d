"""Commitments exactly as ``JobMarket.commitmentOf`` computes them."""

from __future__ import annotations

import secrets

from eth_abi import encode
from eth_utils import keccak, to_canonical_address


def commitment_of(digest: bytes, salt: bytes, worker: str, job_id: int, task_id: int) -> bytes:
    """keccak256(abi.encode(digest, salt, worker, jobId, taskId)).

    Binding the worker's address makes a copied commitment useless to anyone else.
    """
    return keccak(encode(
        ["bytes32", "bytes32", "address", "uint256", "uint256"],
        [digest, salt, to_canonical_address(worker), job_id, task_id],
    ))


def new_salt() -> bytes:
    return secrets.token_bytes(32)
