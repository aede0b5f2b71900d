"""Settings precedence: flags, then SHARDEX_* env, then the config file, then a running devnet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shardex.config import Settings
from shardex.devnet import dev_accounts
from shardex.errors import ConfigError


def write_devnet(home: Path, pid: int) -> None:
    keys = ["0x" + a.key.hex() for a in dev_accounts(3)]
    home.mkdir(parents=True, exist_ok=True)
    (home / "devnet.json").write_text(json.dumps({
        "pid": pid, "rpc_url": "http://127.0.0.1:1111", "chain_id": 31337,
        "market": "0x" + "11" * 20, "registry": "0x" + "22" * 20, "block": 5,
        "dev_keys": keys, "dev_addresses": [], "state_file": None, "log": "x"}))


@pytest.fixture
def home() -> Path:
    return Path(os.environ["SHARDEX_HOME"])


def test_running_devnet_is_found_without_flags(home: Path) -> None:
    write_devnet(home, os.getpid())
    s = Settings()
    assert s.rpc_url == "http://127.0.0.1:1111"
    assert s.deployment().block == 5
    assert s.account().address == dev_accounts(1)[0].address


def test_dead_devnet_is_ignored_and_named_in_the_error(home: Path) -> None:
    write_devnet(home, 2**22 + 12345)  # no such pid
    s = Settings()
    assert s.rpc_url is None
    for missing in (s.account, s.deployment):
        with pytest.raises(ConfigError, match=r"is not running: its Anvil, pid 4206649, has exited; `shardex devnet up`"):
            missing()
    with pytest.raises(ConfigError, match="devnet up"):
        Settings().deployment()


def test_precedence_flag_over_env_over_file_over_devnet(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_devnet(home, os.getpid())
    (home / "config.toml").write_text('rpc_url = "http://file:1"\nchain_id = 5\n')
    assert Settings().rpc_url == "http://file:1"
    assert Settings().chain_id == 5
    monkeypatch.setenv("SHARDEX_RPC_URL", "http://env:2")
    assert Settings().rpc_url == "http://env:2"
    assert Settings(rpc_url="http://flag:3").rpc_url == "http://flag:3"
    # market still comes from the lowest layer that sets it
    assert Settings().market == "0x" + "11" * 20


def test_dev_keys_only_against_the_devnet(home: Path) -> None:
    write_devnet(home, os.getpid())
    with pytest.raises(ConfigError, match="SHARDEX_PRIVATE_KEY"):
        Settings(rpc_url="http://elsewhere:8545").account()
    assert Settings(account_index=2).account().address == dev_accounts(3)[2].address


def test_explicit_private_key_wins(home: Path) -> None:
    write_devnet(home, os.getpid())
    key = "0x" + dev_accounts(5)[4].key.hex()
    assert Settings(private_key=key).account().address == dev_accounts(5)[4].address
