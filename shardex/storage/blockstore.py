"""Blocks on disk in a plain layout, written atomically, verified on read.

    <root>/blocks/<2 chars>/<cidv1>   one file per block (next-to-last-2 sharding, like Kubo's flatfs)
    <root>/pins/<cidv1>               one empty file per recursive pin

A block becomes visible only by ``os.replace`` of a fully written temporary
file, so a crash mid-add leaves no half block under a CID; and every read
re-hashes the bytes, so even a block damaged on disk later is reported as
corrupted, never served.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shardex.storage.cid import CID
from shardex.storage.errors import BlockCorrupted, BlockNotFound, InvalidCid


class BlockStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blocks = self.root / "blocks"
        self.pins_dir = self.root / "pins"
        self.blocks.mkdir(parents=True, exist_ok=True)
        self.pins_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(cid: CID) -> str:
        # v0 and v1 of the same multihash name the same bytes: one file.
        return str(CID(1, cid.codec, cid.digest))

    def path(self, cid: CID) -> Path:
        key = self.key(cid)
        return self.blocks / key[-3:-1] / key

    def has(self, cid: CID) -> bool:
        return self.path(cid).exists()

    def put(self, cid: CID, data: bytes | memoryview, *, verified: bool = False) -> None:
        """Store ``data`` under ``cid``; unless the caller just hashed it, check it first."""
        if not verified and not cid.verify(data):
            raise BlockCorrupted(cid, "refusing to store bytes that do not match")
        path = self.path(cid)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, cid: CID) -> bytes:
        try:
            data = self.path(cid).read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(cid) from None
        if not cid.verify(data):
            raise BlockCorrupted(cid, f"on disk at {self.path(cid)}")
        return data

    def delete(self, cid: CID) -> None:
        self.path(cid).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[CID]:
        for shard in self.blocks.iterdir():
            for entry in shard.iterdir():
                if not entry.name.startswith(".tmp-"):
                    yield CID.parse(entry.name)

    # ------------------------------------------------------------ pins

    def pin(self, cid: CID) -> None:
        (self.pins_dir / self.key(cid)).touch()

    def unpin(self, cid: CID) -> bool:
        path = self.pins_dir / self.key(cid)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def pins(self) -> list[CID]:
        out = []
        for entry in self.pins_dir.iterdir():
            try:
                out.append(CID.parse(entry.name))
            except InvalidCid:
                continue
        return out

    def sweep_temporaries(self) -> int:
        """Removes temporary files a crash left behind; returns how many."""
        removed = 0
        for shard in self.blocks.iterdir():
            for entry in shard.glob(".tmp-*"):
                entry.unlink(missing_ok=True)
                removed += 1
        return removed
