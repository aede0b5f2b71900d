"""Typed models mirror the ABI exactly, so a contract change cannot drift silently."""

from __future__ import annotations

from dataclasses import fields

from shardex.chain.artifacts import abi
from shardex.chain.models import EVENT_TYPES, JobParams, margin_for, snake


def test_every_event_has_a_model_with_the_same_fields() -> None:
    seen = set()
    for contract in ("JobMarket", "WorkerPool"):
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
    params = JobParams(spec_digest=b"\x01" * 32, map_tasks=2, reduce_tasks=3, resource_class=1, epsilon_ppm=4,
                       adversary_ppm=5, reward_per_replica=6, collateral=7, min_stake=8, max_rounds=9, extra_seats=13,
                       lease_duration=10, reveal_window=11, job_timeout=12, token="0x" + "14" * 20)
    assert list(params.as_abi_tuple()) == [getattr(params, c) for c in components]
    eth = JobParams(spec_digest=b"\x01" * 32, map_tasks=1, reduce_tasks=0, reward_per_replica=1, collateral=2)
    assert eth.as_abi_tuple()[-1] == "0x" + "00" * 20  # no token: ETH


def test_margin_and_escrow_follow_the_error_target() -> None:
    """The margin is the least m with f^m / (f^m + (1-f)^m) <= epsilon, computed here in floats."""
    for eps, f in ((1e-3, 0.1), (1e-3, 0.2), (1e-3, 0.33), (1e-2, 0.1), (0.02, 0.1), (1e-3, 0.0), (0.5, 0.3)):
        expected = next(m for m in range(1, 17) if f**m / (f**m + (1 - f) ** m) <= eps)
        assert margin_for(round(eps * 1e6), round(f * 1e6)) == expected, (eps, f)
    assert [margin_for(1000, f) for f in (100_000, 200_000, 330_000)] == [4, 5, 10]
    assert margin_for(1, 490_000) == 0  # unreachable within 16 seats
    params = JobParams(spec_digest=b"\x01" * 32, map_tasks=2, reduce_tasks=3, reward_per_replica=6, collateral=12)
    assert params.margin == 4 and params.seats == 2 * 5 + 4  # default escalation budget
    assert params.escrow == 6 * (4 * 5 + 14)
    assert JobParams(spec_digest=b"\x01" * 32, map_tasks=1, reduce_tasks=0, reward_per_replica=1, collateral=2,
                     max_rounds=1).escrow == 4  # one round: no escalation to pay for
