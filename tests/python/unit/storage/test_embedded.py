"""The embedded store: streaming import, verified reads, corruption, pins and GC."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.storage import (
    CID,
    BlockCorrupted,
    BlockNotFound,
    EmbeddedStore,
    NotAFile,
    hash_bytes,
    hash_path,
)
from shardex.storage import car
from shardex.storage.cid import DAG_PB, RAW
from shardex.storage.dagpb import FILE, decode_node
from shardex.storage.importer import CHUNK_SIZE, MAX_LINKS


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3 * CHUNK_SIZE + 7))
def test_add_then_cat_returns_the_bytes(tmp_path_factory, data: bytes) -> None:
    store = EmbeddedStore(tmp_path_factory.mktemp("s"))
    cid = store.add_bytes_sync(data)
    assert b"".join(store.cat_sync(cid)) == data
    assert cid == hash_bytes(data)


def test_single_chunk_file_is_its_raw_leaf() -> None:
    data = pattern(CHUNK_SIZE)
    assert hash_bytes(data) == CID.of(RAW, data)


def test_dag_shape_is_balanced_with_174_links(store: EmbeddedStore) -> None:
    # 175 leaves: root -> [node of 174 leaves, node of 1 leaf]; every leaf at depth 2.
    data = pattern(MAX_LINKS * CHUNK_SIZE + 1)
    root = store.add_bytes_sync(data)
    node = decode_node(store.get_block_sync(root))
    assert root.codec == DAG_PB and node.data.type == FILE
    assert node.data.filesize == len(data)
    assert [store_links(store, link.cid) for link in node.links] == [MAX_LINKS, 1]
    assert node.data.blocksizes == [MAX_LINKS * CHUNK_SIZE, 1]
    first_leaf = decode_node(store.get_block_sync(node.links[0].cid)).links[0]
    assert first_leaf.cid == CID.of(RAW, data[:CHUNK_SIZE]) and first_leaf.tsize == CHUNK_SIZE


def store_links(store: EmbeddedStore, cid: CID) -> int:
    return len(decode_node(store.get_block_sync(cid)).links)


def test_add_path_streams_a_file_identically(store: EmbeddedStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 123)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert store.add_path_sync(f) == hash_bytes(data) == hash_path(f)


def test_directory_round_trip_with_unicode_names(store: EmbeddedStore, tmp_path: Path) -> None:
    src = tmp_path / "root"
    (src / "ünï").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"hello\n")
    (src / "ünï" / "b.txt").write_bytes(b"world\n")
    (src / "ünï" / "c d.txt").write_bytes(b"")
    cid = store.add_path_sync(src)
    assert store.kind(cid) == "directory"
    assert [e.name for e in store.ls(cid)] == ["a.txt", "ünï"]
    out = tmp_path / "out"
    store.get_sync(cid, out)
    assert (out / "a.txt").read_bytes() == b"hello\n"
    assert (out / "ünï" / "b.txt").read_bytes() == b"world\n"
    assert (out / "ünï" / "c d.txt").read_bytes() == b""
    with pytest.raises(NotAFile):
        list(store.cat_sync(cid))


def _block_file(store: EmbeddedStore, cid: CID) -> Path:
    return store.blocks.path(cid)


def test_flipped_byte_is_detected_and_never_returned(store: EmbeddedStore) -> None:
    data = pattern(3 * CHUNK_SIZE)
    root = store.add_bytes_sync(data)
    leaf = CID.of(RAW, data[CHUNK_SIZE:2 * CHUNK_SIZE])
    path = _block_file(store, leaf)
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0x01
    path.write_bytes(bytes(raw))
    received = []
    with pytest.raises(BlockCorrupted) as info:
        for part in store.cat_sync(root):
            received.append(part)
    assert str(leaf) in str(info.value)
    assert b"".join(received) == data[:CHUNK_SIZE]  # nothing of the bad block came out
    out = store.blocks.root.parent / "out.bin"
    with pytest.raises(BlockCorrupted):
        store.get_sync(root, out)
    assert not out.exists()  # no half-written file under the name


def test_truncated_block_is_corrupted(store: EmbeddedStore) -> None:
    root = store.add_bytes_sync(pattern(2 * CHUNK_SIZE))
    path = _block_file(store, root)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(BlockCorrupted, match=str(root)):
        store.get_block_sync(root)


def test_unknown_cid_is_block_not_found(store: EmbeddedStore) -> None:
    cid = CID.of(RAW, b"nobody stored this")
    with pytest.raises(BlockNotFound, match=str(cid)):
        list(store.cat_sync(cid))


def test_put_block_refuses_wrong_bytes(store: EmbeddedStore) -> None:
    import asyncio

    with pytest.raises(BlockCorrupted):
        asyncio.run(store.put_block(CID.of(RAW, b"x"), b"y"))
    assert not store.blocks.has(CID.of(RAW, b"x"))


def test_gc_keeps_pinned_dags_and_removes_the_rest(store: EmbeddedStore) -> None:
    import asyncio

    kept = store.add_bytes_sync(pattern(2 * CHUNK_SIZE + 1))
    dropped = store.add_bytes_sync(os.urandom(2 * CHUNK_SIZE + 1))
    asyncio.run(store.unpin(dropped))
    removed = store.gc_sync()
    assert len(removed) == 4  # root + 3 leaves of the unpinned file
    assert b"".join(store.cat_sync(kept)) == pattern(2 * CHUNK_SIZE + 1)
    with pytest.raises(BlockNotFound):
        store.get_block_sync(dropped)


def test_crash_leftovers_are_invisible_and_swept(store: EmbeddedStore) -> None:
    cid = store.add_bytes_sync(b"x")
    shard = _block_file(store, cid).parent
    (shard / ".tmp-crashed").write_bytes(b"half a blo")
    assert [str(c) for c in store.blocks] == [str(cid)]
    store.gc_sync()
    assert not (shard / ".tmp-crashed").exists()


def test_car_round_trip_verifies_blocks(store: EmbeddedStore) -> None:
    root = store.add_bytes_sync(pattern(3 * CHUNK_SIZE))
    data = b"".join(car.write([root], store.walk(root)))
    roots, blocks = car.read(data)
    assert roots == [root]
    assert [c for c, _ in blocks] == [c for c, _ in store.walk(root)]
    tampered = bytearray(data)
    tampered[-5] ^= 0xFF
    with pytest.raises(BlockCorrupted):
        car.read(bytes(tampered))


def test_only_hash_stores_nothing(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(pattern(CHUNK_SIZE + 5))
    assert hash_path(f).digest != hashlib.sha256(f.read_bytes()).digest()  # a DAG root, not the file hash
    assert not (tmp_path / "store").exists()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 4 * CHUNK_SIZE + 3))
def test_staging_links_the_stores_own_blocks_and_the_runner_reads_them_as_the_file(tmp_path_factory, size: int) -> None:
    """Zero copy: a file of raw leaves is staged as hard links of its verified blocks (one leaf: a
    link at the path; several: a directory of links in order), which the task runner reads back as
    exactly the file's bytes."""
    from shardex.programs.run import _read

    tmp = tmp_path_factory.mktemp("stage")
    store = EmbeddedStore(tmp / "store")
    data = os.urandom(size)
    cid = store.add_bytes_sync(data)
    out = tmp / "input"
    store.stage_sync(cid, out)
    assert _read(str(out)) == data
    staged = sorted(out.iterdir()) if out.is_dir() else [out]
    assert len(staged) == max(1, -(-size // CHUNK_SIZE))
    leaves = {os.stat(p).st_ino for p in store.leaf_paths_sync(cid)}
    assert {os.stat(p).st_ino for p in staged} == leaves  # the same files, not copies


def test_a_file_with_bytes_inside_dag_pb_nodes_is_staged_as_a_copy(store: EmbeddedStore, tmp_path: Path) -> None:
    """Kubo's default (CIDv0) puts a file's bytes inside dag-pb leaves: no block is the bytes alone."""
    from shardex.storage.dagpb import Link, PBNode, UnixFSData, encode_node

    parts = [b"first half\n", b"second half\n"]
    leaves = []
    for part in parts:
        block = encode_node(PBNode([], UnixFSData(FILE, data=part, filesize=len(part))))
        leaf = CID.of(DAG_PB, block)
        store.blocks.put(leaf, block)
        leaves.append(Link(leaf, "", len(block)))
    root_block = encode_node(PBNode(leaves, UnixFSData(FILE, filesize=sum(map(len, parts)),
                                                       blocksizes=[len(p) for p in parts])))
    root = CID.of(DAG_PB, root_block)
    store.blocks.put(root, root_block)
    assert store.leaf_paths_sync(root) is None
    store.stage_sync(root, tmp_path / "input")
    assert (tmp_path / "input").read_bytes() == b"".join(parts)
    assert os.stat(tmp_path / "input").st_nlink == 1


def test_staging_a_damaged_block_stages_nothing(store: EmbeddedStore, tmp_path: Path) -> None:
    cid = store.add_bytes_sync(pattern(3 * CHUNK_SIZE))
    victim = store.leaf_paths_sync(cid)[1]
    victim.write_bytes(b"rot" + victim.read_bytes()[3:])
    with pytest.raises(BlockCorrupted):
        store.stage_sync(cid, tmp_path / "input")
    assert not (tmp_path / "input").exists()
