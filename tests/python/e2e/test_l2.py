"""The whole job loop on an OP Stack-shaped chain: Anvil in its optimism mode,
mining a block a second as a real chain does, with the operator's fee strategy
and L1 prices set, and workers that reveal only wins two blocks deep."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.python.e2e.conftest import REQUESTER, Devnet, real_text
from tests.python.e2e.test_jobs import wordcount_reference

pytestmark = pytest.mark.e2e

GWEI = 10**9
FEES = {"SHARDEX_PRIORITY_FEE_WEI": str(2 * GWEI), "SHARDEX_BASE_FEE_MULTIPLIER": "3",
        "SHARDEX_L1_BASE_FEE_WEI": str(10 * GWEI), "SHARDEX_L1_FEE_SCALAR": "0.7"}


@pytest.fixture
def op_devnet(tmp_path: Path) -> Iterator[Devnet]:
    net = Devnet(tmp_path / "home")
    net.home.mkdir()
    net.env.update(FEES)
    net.info = json.loads(net.cli("devnet", "up", "--network", "optimism", "--block-time", "1", "--json",
                                  account=None).stdout)
    yield net
    for index in list(net.workers):
        net.workers.pop(index).kill()
    net.cli("devnet", "down", account=None, check=False)


def _rpc(net: Devnet, method: str, *params) -> dict:
    return httpx.post(net.info["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                 "params": list(params)}).json()["result"]


def test_a_job_on_an_op_stack_chain_pays_the_operators_fees_and_reports_its_l1_data_fee(op_devnet: Devnet,
                                                                                      tmp_path: Path) -> None:
    net = op_devnet
    text = real_text(200_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    net.start_worker(0, "--confirmations", "2")
    net.start_worker(1, "--confirmations", "2")
    # A margin of 2 (epsilon 2% against a 10% adversary): both workers on every task.
    out = net.json("job", "submit", "--wait", "--program", "wordcount", "--input", str(src), "--map-shards", "2",
                   "--reduce-shards", "1", "--epsilon", "0.02", "--adversary", "0.1", "--reveal-window", "30",
                   timeout=300)
    assert out["state"] == "COMPLETED"
    result = tmp_path / "result.txt"
    net.cli("job", "result", str(out["job_id"]), "-o", str(result))
    assert result.read_bytes() == wordcount_reference(text)

    status = net.json("job", "status", str(out["job_id"]))
    assert status["slashes"] == 0 and status["payouts"] >= 0
    # Every transaction of the job, from the chain itself: what the report must add up to.
    receipts, l1 = [], 0
    logs = _rpc(net, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": net.info["market"]})
    for tx_hash in dict.fromkeys(log["transactionHash"] for log in logs):
        r = _rpc(net, "eth_getTransactionReceipt", tx_hash)
        tx = _rpc(net, "eth_getTransactionByHash", tx_hash)
        if int(r["blockNumber"], 16) and any(int(log["topics"][1], 16) == out["job_id"] for log in r["logs"]
                                             if len(log["topics"]) > 1 and log["address"].lower()
                                             == net.info["market"].lower()):
            receipts.append((r, tx))
            l1 += round(len(zlib.compress(bytes.fromhex(tx["input"][2:]), 9)) * 16 * 10 * GWEI * 0.7)
    l2 = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r, _ in receipts)
    assert status["l2_fees_wei"] == l2 and status["l1_data_fees_wei"] == l1 > 0
    assert status["fees_wei_all_parties"] == l1 + l2 and "estimated" in status["l1_fee_source"]
    # Every party sent its transactions with the operator's tip and headroom over the base fee.
    for r, tx in receipts:
        assert int(tx["maxPriorityFeePerGas"], 16) == 2 * GWEI, tx
        base = int(_rpc(net, "eth_getBlockByNumber", hex(int(r["blockNumber"], 16) - 1), False)["baseFeePerGas"], 16)
        assert int(tx["maxFeePerGas"], 16) >= base + 2 * GWEI
    assert any(tx["from"].lower() == net.info["dev_addresses"][REQUESTER].lower() for _, tx in receipts)
