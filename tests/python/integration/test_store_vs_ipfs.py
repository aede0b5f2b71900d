"""The embedded store computes the same CIDs as a real IPFS node, and the Kubo
RPC store round-trips against it (js-ipfs 0.66, speaking the Kubo RPC API)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from shardex.storage import CID, BlockCorrupted, BlockNotFound, EmbeddedStore, ProviderError, hash_bytes, hash_path
from shardex.storage.cid import RAW
from shardex.storage.fetcher import Fetcher
from shardex.storage.kubo import KuboStore
from shardex.storage.importer import CHUNK_SIZE

pytestmark = pytest.mark.integration


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def node_add(api_url: str, files: list[tuple[str, bytes]]) -> list[dict]:
    r = httpx.post(f"{api_url}/api/v0/add",
                   params={"cid-version": "1", "raw-leaves": "true", "cid-base": "base32",
                           "wrap-with-directory": "false", "pin": "false"},
                   files=[("file", (name, data, "application/octet-stream")) for name, data in files], timeout=120)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 174 * CHUNK_SIZE + 1,
                                  10_000_000, 3 * 174 * CHUNK_SIZE + 5])
def test_file_cids_equal_the_nodes(ipfs_node, size: int) -> None:
    data = pattern(size) if size != 10_000_000 else os.urandom(size)  # real entropy too
    [entry] = node_add(ipfs_node.api_url, [("blob", data)])
    assert str(hash_bytes(data)) == entry["Hash"]


def test_directory_cids_equal_the_nodes(ipfs_node, tmp_path: Path) -> None:
    files = {"root/a.txt": b"hello\n", "root/ünï/b.txt": b"world\n", "root/ünï/c d.txt": b"",
             "root/ünï/deeper/日本語.bin": pattern(CHUNK_SIZE * 2 + 3), "root/Zed.md": b"# z\n"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    entries = {e["Name"]: e["Hash"] for e in node_add(ipfs_node.api_url, sorted(files.items()))}
    assert str(hash_path(tmp_path / "root")) == entries["root"]
    assert str(hash_path(tmp_path / "root" / "ünï")) == entries["root/ünï"]


async def test_kubo_store_round_trip_and_pins(ipfs_node, tmp_path: Path) -> None:
    async with KuboStore(ipfs_node.api_url, timeout=5) as kubo:
        assert await kubo.version()
        data = os.urandom(3 * CHUNK_SIZE + 11)
        cid = await kubo.add_bytes(data, pin=False)
        assert cid == hash_bytes(data)
        assert await kubo.cat_bytes(cid) == data  # walked with block/get, every block verified
        await kubo.pin(cid)
        assert cid in await kubo.pins()
        await kubo.unpin(cid)
        assert cid not in await kubo.pins()
        with pytest.raises(ProviderError, match="not pinned"):
            await kubo.unpin(cid)

        # Blocks go both ways between the embedded store and the node.
        local = EmbeddedStore(tmp_path / "local")
        await Fetcher([kubo], local).fetch(cid)
        assert await local.cat_bytes(cid) == data
        mine = local.add_bytes_sync(b"made locally\n")
        await kubo.put_block(mine, local.get_block_sync(mine))
        assert await kubo.cat_bytes(mine) == b"made locally\n"
        with pytest.raises(BlockCorrupted):
            await kubo.put_block(mine, b"other bytes")

        src = tmp_path / "tree"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "x.txt").write_bytes(b"x\n")
        (src / "y.txt").write_bytes(b"y\n")
        assert await kubo.add_path(src) == hash_path(src)


async def test_cat_of_a_cid_nobody_has_fails_after_its_timeout(ipfs_node) -> None:
    async with KuboStore(ipfs_node.api_url, timeout=2) as kubo:
        with pytest.raises(BlockNotFound, match="within 2s"):
            await kubo.cat_bytes(CID.of(RAW, b"nobody has this " + os.urandom(8)))


async def test_kubo_bad_input_is_typed(ipfs_node) -> None:
    from shardex.storage import InvalidCid

    async with KuboStore(ipfs_node.api_url, timeout=2) as kubo:
        with pytest.raises(InvalidCid):
            await kubo.get_block("not-a-cid")
    async with KuboStore("http://127.0.0.1:9", timeout=2) as nowhere:
        with pytest.raises(ProviderError):
            await nowhere.version()
