"""Typed models mirror the ABI exactly, so a contract change cannot drift silently."""

from __future__ import annotations

from dataclasses import fields

from shardex.chain.artifacts import abi
from shardex.chain.models import EVENT_TYPES, JobParams, snake


def test_every_event_has_a_model_with_the_same_fields() -> None:
    seen = set()
    for contract in ("JobMarket", "WorkerRegistry"):
        for entry in abi(contract):
            if entry["type"] != "event":
                continue
            seen.add(entry["name"])
            model = EVENT_TYPES[entry["name"]]
            names = {f.name for f in fields(model)} - {"block_number", "tx_hash", "log_index", "contract"}
            assert names == {snake(i["name"]) for i in entry["inputs"]}, entry["name"]
    assert seen == set(EVENT_TYPES)


def test_job_params_tuple_matches_abi_struct_order() -> None:
    post = next(e for e in abi("JobMarket") if e.get("name") == "postJob")
    components = [snake(c["name"]) for c in post["inputs"][0]["components"]]
    params = JobParams(spec_digest=b"\x01" * 32, map_tasks=2, reduce_tasks=3, replication=5, quorum=4,
                       reward_per_replica=6, collateral=7, min_stake=8, max_rounds=9, lease_duration=10,
                       reveal_window=11, job_timeout=12)
    assert list(params.as_abi_tuple()) == [getattr(params, c) for c in components]
    assert params.escrow == 6 * 5 * (2 + 3)
