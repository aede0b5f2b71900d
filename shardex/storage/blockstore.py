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
import threading
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
        self._shards: set[str] = set()  # shard directories known to exist (saves a mkdir per block)

    @staticmethod
    def key(cid: CID) -> str:
        # v0 and v1 of the same multihash name the same bytes: one file.
        return str(cid.to_v1())

    def path(self, cid: CID) -> Path:
        key = self.key(cid)
        return self.blocks / key[-3:-1] / key

    def has(self, cid: CID) -> bool:
        return self.path(cid).exists()

    def put(self, cid: CID, data: bytes | memoryview, *, verified: bool = False) -> None:
        """Store ``data`` under ``cid``; unless the caller just hashed it, check it first."""
        if not verified and not cid.verify(data):
            raise BlockCorrupted(cid, "refusing to store bytes that do not match")
        key = self.key(cid)
        shard = self.blocks / key[-3:-1]
        path = shard / key
        if path.exists():
            return
        if key[-3:-1] not in self._shards:
            shard.mkdir(exist_ok=True)
            self._shards.add(key[-3:-1])
        # Unique per writer thread and process, so concurrent writers of the
        # same block never share a temporary file.
        tmp = shard / f".tmp-{key}-{os.getpid()}-{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written:])
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise

    def get(self, cid: CID) -> bytes:
        path = self.path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(cid) from None
        if not cid.verify(data):
            raise BlockCorrupted(cid, f"on disk at {path}")
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
        try:
            (self.pins_dir / self.key(cid)).unlink()
        except FileNotFoundError:
            return False
        return True

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
