"""A job paid in an ERC-20, as a requester and two operators run it: the CLI
approves and posts the escrow in the token, the worker whose operator accepts
the token computes every task and its agent withdraws its reward in the token,
the worker whose operator does not declines, and the refund comes back in the
token. The token is the tests' 6-decimal mock."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from shardex.api_client import GatewayClient, GatewayError
from tests.python.e2e.conftest import REQUESTER, Devnet, Gateway, dev_key, real_text
from tests.python.tokens import deploy_mock_erc20, token_balance

pytestmark = pytest.mark.e2e

REWARD = 2_500_000  # 2.5 units of a 6-decimal token


def test_a_token_job_is_paid_in_its_token_only_by_workers_who_accept_it(devnet: Devnet, tmp_path: Path) -> None:
    rpc_url = devnet.info["rpc_url"]
    requester = devnet.json("account")["address"]
    minted = 10**12
    token = deploy_mock_erc20(rpc_url, devnet.json("account", account=8)["address"], requester, minted)
    accepting = devnet.json("stake", "show", account=0)["address"]
    devnet.start_worker(0, "--accept-token", token.lower())
    devnet.start_worker(1)  # accepts ETH jobs only
    text = real_text(200_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    out = devnet.json("job", "submit", "--wait", "--reveal-window", "5", "--program", "wordcount", "--input",
                      str(src), "--map-shards", "2", "--reduce-shards", "1", "--adversary", "0", "--token", token,
                      "--reward", str(REWARD), "--collateral", "0.01")
    assert out["state"] == "COMPLETED"
    job_id = out["job_id"]
    result = tmp_path / "result.txt"
    devnet.cli("job", "result", str(job_id), "-o", str(result))
    counts = Counter(line.split("\t")[0] for line in result.read_text().splitlines())
    assert counts and max(counts.values()) == 1  # one line per word: a real reduce ran

    job = devnet.json("job", "show", str(job_id))
    assert job["token"].lower() == token.lower()
    seats, extra = 3, 2 * 3 + 1  # margin 1; the default prefunds two seats per task plus one round
    assert job["escrow"] == REWARD * (seats + extra)
    # Every seat went to the worker that accepts the token; the other declined its draws.
    devnet.wait_for(lambda: token_balance(rpc_url, token, accepting) == REWARD * seats, timeout=120,
                    what="the accepting worker's agent to withdraw its reward in the token")
    assert "which this worker does not accept" in devnet.log(1)
    assert devnet.json("stake", "show", account=1)["slashed"] == 0  # declining in time costs nothing
    assert devnet.json("account", account=0)["market_credits"] == 0  # nothing in ETH

    devnet.warp(3700)  # past the job's deadline and its last reveal window
    devnet.cli("job", "refund", str(job_id))
    withdrawn = devnet.json("withdraw", "--token", token)
    assert withdrawn["total"] == REWARD * extra
    assert token_balance(rpc_url, token, requester) == minted - REWARD * seats
    assert token_balance(rpc_url, token, devnet.info["market"]) == 0


def test_a_wallet_posts_a_token_job_through_the_gateway(devnet: Devnet, gateway: Gateway, tmp_path: Path) -> None:
    """Non-custodial: the gateway hands the wallet an approval of exactly the
    escrow, then the post; it relays an approval of its own market and no
    other; the index shows the job's currency."""
    rpc_url = devnet.info["rpc_url"]
    requester = Account.from_key(dev_key(devnet, REQUESTER))
    src = tmp_path / "input.txt"
    src.write_bytes(real_text(50_000))
    fields = dict(program="wordcount", map_shards=2, reduce_shards=1, adversary=0, extra_seats=0,
                  reward_wei=REWARD, reveal_window_s=30)
    escrow = REWARD * 3
    token = deploy_mock_erc20(rpc_url, devnet.json("account", account=8)["address"], requester.address, escrow - 1)
    with GatewayClient(gateway.url, requester.key.hex()) as client:
        client.sign_in()
        with pytest.raises(GatewayError) as short:
            client.submit(src, token=token, **fields)
        assert short.value.problem["code"] == "insufficient-funds"
        assert f"holds {escrow - 1} units of token {token}" in short.value.problem["detail"]

        # Another token, approving someone other than the market: not relayed.
        other = deploy_mock_erc20(rpc_url, devnet.json("account", account=8)["address"], requester.address, 1)
        tx = {"to": other, "data": "0x095ea7b3" + "00" * 12 + "11" * 20 + f"{5:064x}", "value": 0, "gas": 100_000,
              "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "type": 2, "chainId": devnet.info["chain_id"],
              "nonce": 0}
        raw = "0x" + bytes(requester.sign_transaction(tx).raw_transaction).hex()
        refused = httpx.post(f"{gateway.url}/v1/tx", json={"raw": raw}, timeout=30)
        assert refused.status_code == 422 and refused.json()["code"] == "invalid-transaction", refused.text

        token = deploy_mock_erc20(rpc_url, devnet.json("account", account=8)["address"], requester.address, escrow)
        posted = client.submit(src, token=token, **fields)
        assert [t["purpose"] for t in posted["transactions"]][-2:] == ["approve_token", "post_job"]
        job = client.get(f"/v1/jobs/{posted['job_id']}")
        assert job["token"].lower() == token.lower() and job["escrow_wei"] == str(escrow)
    assert token_balance(rpc_url, token, devnet.info["market"]) == escrow
    assert token_balance(rpc_url, token, requester.address) == 0
