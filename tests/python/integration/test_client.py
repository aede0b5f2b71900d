"""Client behaviour: named reverts, typed events, pipelined nonces, fresh artifacts."""

from __future__ import annotations

import asyncio

import pytest

from deploy.compile import compile_contracts, stale_artifacts
from shardex.chain import JobParams, errors, result_of, seal_of
from shardex.chain.models import JobPosted, Staked
from tests.python.conftest import Chain, rpc

ETH = 10**18
pytestmark = pytest.mark.integration


def job_params(**kw) -> JobParams:
    base = dict(spec_digest=b"\x07" * 32, map_tasks=3, reduce_tasks=1, epsilon_ppm=20_000, adversary_ppm=100_000,
                reward_per_replica=10**9, collateral=2 * 10**9, min_stake=10**15)
    base.update(kw)
    return JobParams(**base)


async def test_revert_surfaces_as_custom_error_with_arguments(net: Chain) -> None:
    requester = net.client(1)
    p = job_params()
    call = requester.post_job(p)
    call.value = p.escrow - 1
    with pytest.raises(errors.JobMarketEscrowMismatch) as info:
        await call
    assert info.value.args_dict == {"required": p.escrow, "provided": p.escrow - 1}
    assert str(info.value) == f"JobMarketEscrowMismatch(required={p.escrow}, provided={p.escrow - 1})"


async def test_mined_failure_is_replayed_and_decoded(net: Chain) -> None:
    requester = net.client(1)
    # An explicit gas limit skips estimation, so the failing tx is really mined.
    call = requester.post_job(job_params(reveal_window=1), gas=300_000)
    with pytest.raises(errors.JobMarketWindowTooShort) as info:
        await call
    assert info.value.args_dict == {"leaseDuration": 600, "revealWindow": 1, "minLease": 10, "minReveal": 5}
    # The failed send consumed a nonce correctly: the next tx goes through.
    receipt = await requester.post_job(job_params())
    assert receipt.events_named("JobPosted")


async def test_events_decode_to_typed_models(net: Chain) -> None:
    requester, worker = net.client(1), net.client(2)
    start = await requester.block_number()
    await worker.stake(3 * ETH)
    p = job_params()
    await requester.post_job(p)
    events = await requester.events(from_block=start + 1)
    staked = [e for e in events if isinstance(e, Staked)]
    posted = [e for e in events if isinstance(e, JobPosted)]
    assert len(staked) == 1 and staked[0].worker == worker.address and staked[0].stake == 3 * ETH
    assert len(posted) == 1
    e = posted[0]
    assert (e.requester, e.spec_digest, e.map_tasks, e.reduce_tasks, e.escrow) == (
        requester.address, p.spec_digest, 3, 1, p.escrow)
    assert e.to_json()["spec_digest"] == "0x" + "07" * 32


async def test_pipelined_transactions_all_land_in_nonce_order(net: Chain) -> None:
    worker = net.client(5)
    amounts = [ETH + i for i in range(20)]
    pending = [await worker.stake(a).send() for a in amounts]  # nothing awaited in between
    receipts = await asyncio.gather(*(p.receipt() for p in pending))
    assert [p.tx["nonce"] for p in pending] == list(range(pending[0].tx["nonce"], pending[0].tx["nonce"] + 20))
    stakes = [next(e for e in r.events if isinstance(e, Staked)).stake for r in receipts]
    assert stakes == [sum(amounts[: i + 1]) for i in range(20)]


async def test_result_and_seal_match_contract(net: Chain) -> None:
    reader = net.reader()
    import secrets
    for _ in range(5):
        digest = secrets.token_bytes(32)
        worker, job_id, task_id = net.accounts[3].address, secrets.randbelow(2**64), secrets.randbelow(2**32)
        on_chain = await reader.market.functions.resultOf(job_id, task_id, digest).call()
        assert bytes(on_chain) == result_of(job_id, task_id, digest)
        on_chain = await reader.market.functions.sealOf(worker, job_id, task_id, digest).call()
        assert bytes(on_chain) == seal_of(worker, job_id, task_id, digest)


async def test_margin_matches_contract(net: Chain) -> None:
    from shardex.chain.models import margin_for

    reader = net.reader()
    for eps, f in ((1000, 100_000), (1000, 200_000), (1000, 330_000), (10_000, 100_000), (1, 0), (1, 490_000),
                   (999_999, 499_999), (123, 45_678)):
        assert await reader.market.functions.marginFor(eps, f).call() == margin_for(eps, f), (eps, f)


async def test_client_refuses_wrong_chain(net: Chain) -> None:
    from dataclasses import replace

    from shardex.chain import ChainClient, ChainError

    client = ChainClient(net.rpc_url, replace(net.deployment, chain_id=1))
    with pytest.raises(ChainError, match="chain 31337"):
        await client.check_chain()
    await client.aclose()


def test_committed_artifacts_match_a_fresh_compile() -> None:
    assert stale_artifacts(compile_contracts()) == []


def test_forge_builds_the_same_bytecode_as_deploy(tmp_path) -> None:
    """forge (and Hardhat, same settings) and deploy/compile.py agree byte for byte."""
    import json
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PATH": f"{root / 'node_modules' / '.bin'}:{os.environ['PATH']}"}
    subprocess.run(["forge", "build", "--skip", "test", "--out", str(tmp_path / "out"), "--cache-path",
                    str(tmp_path / "cache")], cwd=root, env=env, check=True, capture_output=True, timeout=300)
    fresh = compile_contracts()
    for name in ("JobMarket", "WorkerPool"):
        forge = json.loads((tmp_path / "out" / f"{name}.sol" / f"{name}.json").read_text())
        assert "0x" + forge["deployedBytecode"]["object"].removeprefix("0x") == fresh[name]["deployedBytecode"]


async def test_a_nonce_used_by_another_process_on_the_same_key_is_named_and_resynced(net: Chain) -> None:
    mine, other = net.client(6), net.client(6)  # two processes, one key
    await mine.stake(ETH)  # `mine` now holds the next nonce itself
    await other.stake(ETH)  # ... which `other` spends
    with pytest.raises(errors.NonceTaken) as info:
        await mine.stake(ETH)
    assert mine.address in str(info.value) and "one process per key" in str(info.value)
    await mine.stake(ETH)  # resynced: the next send goes through
    assert (await mine.worker()).stake == 3 * ETH


async def test_a_transaction_the_node_dropped_is_reported_not_waited_for(net: Chain) -> None:
    """A node that restarted (or a reorg) forgets a sent transaction: waiting out the receipt's
    timeout would stall a worker past its reveal windows."""
    client = net.client(7)
    rpc(net.rpc_url, "evm_setAutomine", False)
    try:
        pending = await client.stake(ETH).send()
        rpc(net.rpc_url, "anvil_dropTransaction", pending.tx_hash)
        with pytest.raises(errors.TransactionDropped, match="no longer has it"):
            await pending.receipt(timeout=60)
    finally:
        rpc(net.rpc_url, "evm_setAutomine", True)
    await client.stake(ETH)  # the nonce was resynced: the next send lands
    assert (await client.worker()).stake == ETH


async def test_the_client_counts_its_requests_to_the_chain(net: Chain) -> None:
    """Every JSON-RPC request goes through the client's tally (a worker's /metrics and bench/e2e.py's
    chain time read it): a call that needs one request counts one, a transaction counts its own."""
    c = net.client(2)
    before = (c.rpc.requests, c.rpc.seconds)
    await c.block_number()
    assert c.rpc.requests == before[0] + 1 and c.rpc.seconds > before[1]
    sent = c.rpc.requests
    await c.stake(10**18)
    assert c.rpc.requests > sent  # nonce, fees, estimate, send, receipt: each one counted
