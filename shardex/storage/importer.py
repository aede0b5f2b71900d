"""Cut bytes into a UnixFS DAG exactly as ``ipfs add --cid-version=1 --raw-leaves``.

Fixed 256 KiB chunks become raw leaves; leaves are grouped into dag-pb file
nodes of at most 174 links (Kubo's balanced layout: every leaf at the same
depth, nodes full from the left), level by level, as the bytes stream in. At
most 174 links per level are held in memory, so adding 1 GB needs no more
memory than adding 1 MB. A file of one chunk is that raw leaf itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardex.storage.cid import CID, DAG_PB, RAW
from shardex.storage.dagpb import DIRECTORY, FILE, Link, PBNode, UnixFSData, encode_node

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174

#: Receives every block of a DAG as it is built (children before parents).
BlockSink = Callable[[CID, bytes], None]


@dataclass(frozen=True)
class Node:
    """A built DAG node as its parent links to it."""

    cid: CID
    tsize: int  # cumulative serialized size of the DAG under (and incl.) this node
    filesize: int  # bytes of file content under it (0 for directories)


class FileBuilder:
    """Feed chunks with ``add_chunk``; ``finish`` returns the root."""

    def __init__(self, sink: BlockSink) -> None:
        self.sink = sink
        self.levels: list[list[Node]] = [[]]

    def add_chunk(self, chunk: bytes) -> None:
        cid = CID.of(RAW, chunk)
        self.sink(cid, chunk)
        self._push(0, Node(cid, len(chunk), len(chunk)))

    def _push(self, level: int, node: Node) -> None:
        if level == len(self.levels):
            self.levels.append([])
        siblings = self.levels[level]
        siblings.append(node)
        if len(siblings) == MAX_LINKS:
            self.levels[level] = []
            self._push(level + 1, self._parent(siblings))

    def _parent(self, children: list[Node]) -> Node:
        data = UnixFSData(FILE, filesize=sum(c.filesize for c in children),
                          blocksizes=[c.filesize for c in children])
        block = encode_node(PBNode([Link(c.cid, "", c.tsize) for c in children], data))
        cid = CID.of(DAG_PB, block)
        self.sink(cid, block)
        return Node(cid, len(block) + sum(c.tsize for c in children), data.filesize or 0)

    def finish(self) -> Node:
        if not any(self.levels):
            self.add_chunk(b"")  # an empty file is one empty raw leaf
        level = 0
        while True:
            children = self.levels[level]
            higher = any(self.levels[level + 1:])
            if not higher and len(children) == 1:
                return children[0]
            self.levels[level] = []
            if children:
                self._push(level + 1, self._parent(children))
            level += 1


def import_stream(stream: BinaryIO, sink: BlockSink) -> Node:
    builder = FileBuilder(sink)
    while True:
        chunk = _read_exactly(stream, CHUNK_SIZE)
        if not chunk:
            break
        builder.add_chunk(chunk)
        if len(chunk) < CHUNK_SIZE:
            break
    return builder.finish()


def import_bytes(data: bytes, sink: BlockSink) -> Node:
    builder = FileBuilder(sink)
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_SIZE):
        builder.add_chunk(bytes(view[start:start + CHUNK_SIZE]))
    return builder.finish()


def import_directory(entries: Iterable[tuple[str, Node]], sink: BlockSink) -> Node:
    """A flat UnixFS directory; links sorted by the names' UTF-8 bytes (dag-pb order)."""
    links = sorted((Link(node.cid, name, node.tsize) for name, node in entries), key=lambda link: link.name.encode())
    block = encode_node(PBNode(links, UnixFSData(DIRECTORY)))
    cid = CID.of(DAG_PB, block)
    sink(cid, block)
    return Node(cid, len(block) + sum(link.tsize for link in links), 0)


def import_path(path: Path, sink: BlockSink) -> Node:
    """A file, or a directory tree (recursively; hidden files included, symlinks not followed)."""
    if path.is_dir():
        children = []
        for child in path.iterdir():
            if child.is_symlink():
                continue
            children.append((child.name, import_path(child, sink)))
        return import_directory(children, sink)
    with path.open("rb") as f:
        return import_stream(f, sink)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes unless the stream ends first (pipes return short reads)."""
    first = stream.read(size)
    if not first or len(first) == size:
        return first
    parts = [first]
    got = len(first)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
