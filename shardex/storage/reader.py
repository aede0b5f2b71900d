"""Walk a UnixFS DAG through a block getter that verifies every block."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from shardex.storage.cid import CID, DAG_PB, RAW
from shardex.storage.dagpb import DIRECTORY, FILE, HAMT_SHARD, RAW_TYPE, PBNode, decode_node
from shardex.storage.errors import BlockCorrupted, NotAFile, UnsupportedDag

GetBlock = Callable[[CID], bytes]
AGetBlock = Callable[[CID], Awaitable[bytes]]


@dataclass(frozen=True)
class Entry:
    name: str
    cid: CID
    size: int  # cumulative DAG size from the link (Tsize)


def parse_node(cid: CID, block: bytes) -> PBNode:
    try:
        return decode_node(block)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BlockCorrupted(cid, f"not a dag-pb node: {exc}") from None


def kind(cid: CID, block: bytes) -> str:
    """'file' or 'directory'."""
    if cid.codec == RAW:
        return "file"
    return _node_kind(cid, parse_node(cid, block))


def _node_kind(cid: CID, node: PBNode) -> str:
    if node.data is None:
        raise UnsupportedDag(f"{cid} is a dag-pb node without UnixFS data")
    if node.data.type == DIRECTORY:
        return "directory"
    if node.data.type == HAMT_SHARD:
        raise UnsupportedDag(f"{cid} is a HAMT-sharded directory (not supported yet)")
    if node.data.type in (FILE, RAW_TYPE):
        return "file"
    raise UnsupportedDag(f"{cid}: UnixFS type {node.data.type} not supported")


def file_parts(cid: CID, block: bytes) -> tuple[bytes, list[CID]]:
    """(inline data, children) of a file node."""
    if cid.codec == RAW:
        return block, []
    if cid.codec != DAG_PB:
        raise UnsupportedDag(f"{cid}: codec {cid.codec_name}")
    node = parse_node(cid, block)
    what = _node_kind(cid, node)
    if what != "file":
        raise NotAFile(cid, what)
    return node.data.data, [link.cid for link in node.links]


def iter_file(get: GetBlock, cid: CID, block: bytes | None = None) -> Iterator[bytes]:
    """The file's bytes; ``block``: the root's verified bytes, when the caller already read them."""
    data, children = file_parts(cid, get(cid) if block is None else block)
    if data:
        yield data
    for child in children:
        yield from iter_file(get, child)


async def aiter_file(get: AGetBlock, cid: CID) -> AsyncIterator[bytes]:
    data, children = file_parts(cid, await get(cid))
    if data:
        yield data
    for child in children:
        async for part in aiter_file(get, child):
            yield part


def list_directory(cid: CID, block: bytes) -> list[Entry]:
    node = None if cid.codec == RAW else parse_node(cid, block)
    if node is None or _node_kind(cid, node) != "directory":
        raise UnsupportedDag(f"{cid} is not a directory")
    return [Entry(link.name, link.cid, link.tsize) for link in node.links]


def children(cid: CID, block: bytes) -> list[CID]:
    """Every CID a block links to (for pinning, GC and CAR export)."""
    if cid.codec == RAW:
        return []
    return [link.cid for link in parse_node(cid, block).links]
