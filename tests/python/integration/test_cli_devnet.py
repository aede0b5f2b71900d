"""`shardex devnet up/down` and the CLI as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.devnet import rpc_call
from shardex.devnet import pid_alive

pytestmark = pytest.mark.integration


def shardex(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "shardex_cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"shardex {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def devnet_down_after():
    yield
    shardex("devnet", "down")


def test_devnet_up_is_found_by_every_command_and_survives_restart_with_state(tmp_path: Path,
                                                                             devnet_down_after) -> None:
    state = tmp_path / "chain.json"
    up = json.loads(shardex("devnet", "up", "--state", str(state), "--json").stdout)
    assert up["chain_id"] == 31337 and up["rpc_url"].startswith("http://127.0.0.1:")
    assert pid_alive(up["pid"])

    # No flags anywhere: the running devnet supplies RPC, addresses and a dev key.
    staked = json.loads(shardex("stake", "add", "1.25", "--json").stdout)
    assert staked["stake"] == 1_250_000_000_000_000_000
    shown = json.loads(shardex("stake", "show", "--json").stdout)
    assert shown["address"] == up["dev_addresses"][0] and shown["stake"] == staked["stake"]

    # A revert reaches the user as the custom error's name and arguments.
    err = shardex("job", "show", "42", "--json", check=False)
    assert err.returncode == 1
    assert json.loads(err.stderr) == {"error": {"name": "JobMarketUnknownJob", "args": {"jobId": 42}}}
    text_err = shardex("job", "cancel", "42", check=False)
    assert text_err.returncode == 1 and "JobMarketUnknownJob(jobId=42)" in text_err.stderr

    # Time warped forward (as tests and `job refund` demos do) stays warped across the restart.
    rpc_call(up["rpc_url"], "evm_increaseTime", 3600)
    rpc_call(up["rpc_url"], "evm_mine")
    warped = int(rpc_call(up["rpc_url"], "eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    assert json.loads(shardex("devnet", "down", "--json").stdout)["stopped"] is True
    assert not pid_alive(up["pid"])
    assert json.loads(shardex("devnet", "status", "--json").stdout) == {"running": False}

    again = json.loads(shardex("devnet", "up", "--state", str(state), "--json").stdout)
    assert (again["market"], again["registry"]) == (up["market"], up["registry"])
    assert again["rpc_url"] == up["rpc_url"]  # the same address: running workers carry on
    assert json.loads(shardex("stake", "show", "--json").stdout)["stake"] == staked["stake"]
    rpc_call(again["rpc_url"], "evm_mine")
    after = rpc_call(again["rpc_url"], "eth_getBlockByNumber", "latest", False)
    assert int(after["timestamp"], 16) > warped  # never a block older than its parent


def test_second_devnet_up_is_refused_clearly(devnet_down_after) -> None:
    shardex("devnet", "up", "--json")
    second = shardex("devnet", "up", "--json", check=False)
    assert second.returncode == 1
    assert json.loads(second.stderr)["error"]["name"] == "DevnetError"
    assert "already running" in json.loads(second.stderr)["error"]["message"]


def test_commands_without_a_chain_say_how_to_get_one() -> None:
    proc = shardex("stake", "show", "0x" + "00" * 20, check=False)
    assert proc.returncode == 1 and "shardex devnet up" in proc.stderr


def test_deploy_to_any_rpc_writes_deployment_file(anvil, tmp_path: Path) -> None:
    from shardex.devnet import dev_accounts

    key = "0x" + dev_accounts(8)[7].key.hex()
    proc = shardex("--rpc-url", anvil.rpc_url, "--private-key", key, "deploy", "--out-dir", str(tmp_path), "--json")
    out = json.loads(proc.stdout)
    written = json.loads((tmp_path / "31337.json").read_text())
    assert written == {k: out[k] for k in ("chain_id", "market", "registry", "block")}
    env_proc = subprocess.run(
        [sys.executable, "-m", "shardex_cli", "job", "show", "1", "--json"], capture_output=True, text=True,
        env={**os.environ, "SHARDEX_RPC_URL": anvil.rpc_url, "SHARDEX_CHAIN_ID": "31337",
             "SHARDEX_MARKET": out["market"], "SHARDEX_REGISTRY": out["registry"]}, timeout=60)
    assert json.loads(env_proc.stderr)["error"]["name"] == "JobMarketUnknownJob"  # configured by env alone
