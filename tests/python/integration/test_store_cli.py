"""`shardex store` as a user runs it: embedded by default, a Kubo RPC node with --ipfs-api."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shardex.storage import hash_path

pytestmark = pytest.mark.integration


def shardex(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "shardex_cli", *args], capture_output=True,
                          env=os.environ.copy(), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"shardex {' '.join(args)}: {proc.stderr.decode()}")
    return proc


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub dir").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(600_000))
    (root / "sub dir" / "ñ.txt").write_bytes("héllo\n".encode())
    return root


def test_add_cat_get_round_trip_in_the_embedded_store(tree: Path, tmp_path: Path) -> None:
    f = tree / "big.bin"
    hashed = json.loads(shardex("store", "add", str(f), "--only-hash", "--json").stdout)
    assert hashed["stored"] is False
    assert shardex("store", "cat", hashed["cid"], check=False).returncode == 1  # only hashed: nothing stored
    cid = shardex("store", "add", str(f)).stdout.decode().strip()
    assert cid == hashed["cid"] == str(hash_path(f))
    assert shardex("store", "cat", cid).stdout == f.read_bytes()

    dir_cid = json.loads(shardex("store", "add", str(tree), "--json").stdout)["cid"]
    out = tmp_path / "restored"
    shardex("store", "get", dir_cid, "-o", str(out))
    assert (out / "big.bin").read_bytes() == f.read_bytes()
    assert (out / "sub dir" / "ñ.txt").read_text() == "héllo\n"


def test_errors_name_the_cid_and_are_json_with_flag() -> None:
    missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    proc = shardex("store", "cat", missing, "--json", check=False)
    assert proc.returncode == 1
    error = json.loads(proc.stderr)["error"]
    assert error["name"] == "BlockNotFound" and missing in error["message"]
    bad = shardex("store", "cat", "not-a-cid", check=False)
    assert bad.returncode == 1 and b"InvalidCid" not in bad.stderr and b"not-a-cid" in bad.stderr


def test_pin_unpin_gc(tree: Path) -> None:
    cid = shardex("store", "add", str(tree / "big.bin")).stdout.decode().strip()
    shardex("store", "unpin", cid)
    assert json.loads(shardex("store", "gc", "--json").stdout)["removed"] == 4  # root + 3 leaves
    assert shardex("store", "cat", cid, check=False).returncode == 1


def test_same_commands_against_an_ipfs_node(ipfs_node, tree: Path) -> None:
    f = tree / "big.bin"
    cid = shardex("--ipfs-api", ipfs_node.api_url, "store", "add", str(f)).stdout.decode().strip()
    assert cid == str(hash_path(f))
    assert shardex("--ipfs-api", ipfs_node.api_url, "store", "cat", cid).stdout == f.read_bytes()
