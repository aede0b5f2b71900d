"""The default content store: in-process, on local disk, no daemon."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from shardex.storage import importer, reader
from shardex.storage.blockstore import BlockStore
from shardex.storage.cid import CID, RAW
from shardex.storage.errors import BlockNotFound, NotAFile, StoreError, UnsupportedDag


def _discard(cid: CID, data: bytes) -> None:
    """Sink for --only-hash: compute CIDs, keep nothing."""


def hash_path(path: Path) -> CID:
    """The CID ``ipfs add --cid-version=1 --raw-leaves --only-hash`` prints."""
    return importer.import_path(Path(path), _discard).cid


def hash_bytes(data: bytes) -> CID:
    return importer.import_bytes(data, _discard).cid


class _BackgroundWriter:
    """Writes blocks on a second thread while the importer hashes the next chunk.

    sha256 and file writes both release the GIL, so on two cores an add costs
    about max(hash, write) instead of their sum. The queue is bounded (16
    blocks, 4 MiB) so memory stays flat however large the file is.
    """

    def __init__(self, blocks: BlockStore, depth: int = 16) -> None:
        self.blocks = blocks
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="block-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.blocks.put(*item, verified=True)  # the importer just hashed it
                except BaseException as exc:  # surfaced to the adding thread
                    self.error = exc

    def __call__(self, cid: CID, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((cid, data))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class EmbeddedStore:
    """A :class:`~shardex.storage.protocol.ContentStore` over a :class:`BlockStore`.

    Disk work runs in a worker thread so a 1 GB add does not stall the event
    loop; reads stream block by block (one 256 KiB block in memory at a time).
    """

    def __init__(self, root: Path) -> None:
        self.blocks = BlockStore(root)

    def _import(self, run, pin: bool) -> CID:
        writer = _BackgroundWriter(self.blocks)
        try:
            cid = run(writer).cid
        finally:
            writer.close()  # every block is on disk before the CID is returned or pinned
        if pin:
            self.blocks.pin(cid)
        return cid

    # ------------------------------------------------------------ add

    def add_bytes_sync(self, data: bytes, *, pin: bool = True) -> CID:
        return self._import(lambda sink: importer.import_bytes(data, sink), pin)

    def add_path_sync(self, path: Path, *, pin: bool = True) -> CID:
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no such file or directory: {path}")
        return self._import(lambda sink: importer.import_path(path, sink), pin)

    async def add_bytes(self, data: bytes, *, pin: bool = True) -> CID:
        return await asyncio.to_thread(self.add_bytes_sync, data, pin=pin)

    async def add_path(self, path: Path, *, pin: bool = True) -> CID:
        return await asyncio.to_thread(self.add_path_sync, path, pin=pin)

    # ------------------------------------------------------------ read

    def get_block_sync(self, cid: CID | str) -> bytes:
        return self.blocks.get(CID.parse(cid))

    # Disk reads, writes and hashing run in a thread: never on the event loop,
    # which serves HTTP and follows the chain in the same process.

    async def get_block(self, cid: CID | str) -> bytes:
        return await asyncio.to_thread(self.get_block_sync, cid)

    async def put_block(self, cid: CID | str, data: bytes) -> None:
        await asyncio.to_thread(self.blocks.put, CID.parse(cid), data)

    async def has_block(self, cid: CID | str) -> bool:
        return await asyncio.to_thread(self.blocks.has, CID.parse(cid))

    def cat_sync(self, cid: CID | str) -> Iterator[bytes]:
        return reader.iter_file(self.blocks.get, CID.parse(cid))

    async def cat(self, cid: CID | str) -> AsyncIterator[bytes]:
        parts = self.cat_sync(cid)
        while (part := await asyncio.to_thread(next, parts, None)) is not None:
            yield part

    async def cat_bytes(self, cid: CID | str) -> bytes:
        return await asyncio.to_thread(lambda: b"".join(self.cat_sync(cid)))

    def kind(self, cid: CID | str) -> str:
        cid = CID.parse(cid)
        return reader.kind(cid, self.blocks.get(cid))

    def ls(self, cid: CID | str) -> list[reader.Entry]:
        cid = CID.parse(cid)
        return reader.list_directory(cid, self.blocks.get(cid))

    def get_sync(self, cid: CID | str, out: Path) -> None:
        """Write a file or a whole directory tree to ``out``."""
        cid, out = CID.parse(cid), Path(out)
        block = self.blocks.get(cid)  # read and verified once, for the kind and the contents
        if reader.kind(cid, block) == "directory":
            out.mkdir(parents=True, exist_ok=True)
            for entry in reader.list_directory(cid, block):
                if not entry.name or entry.name in (".", "..") or "/" in entry.name or "\0" in entry.name:
                    raise UnsupportedDag(f"{cid}: refusing unsafe entry name {entry.name!r}")
                self.get_sync(entry.cid, out / entry.name)
            return
        tmp = out.with_name(f".{out.name}.partial")
        with tmp.open("wb") as f:
            for part in reader.iter_file(self.blocks.get, cid, block):
                f.write(part)
        os.replace(tmp, out)  # a failed (corrupted) read leaves no half file under the name

    async def get(self, cid: CID | str, out: Path) -> None:
        await asyncio.to_thread(self.get_sync, cid, out)

    def leaf_paths_sync(self, cid: CID | str) -> list[Path] | None:
        """The block files that hold a file's bytes, in order, each verified on the way, when all of
        its bytes lie in raw leaves (as this importer, and ``ipfs add --raw-leaves``, cut a file);
        None when some bytes sit inside dag-pb nodes or the CID is a directory: those need a copy."""
        cid = CID.parse(cid)
        block = self.blocks.get(cid)
        if cid.codec == RAW:
            return [self.blocks.path(cid)]
        try:
            data, children = reader.file_parts(cid, block)
        except NotAFile:
            return None
        if data:
            return None
        paths: list[Path] = []
        for child in children:
            below = self.leaf_paths_sync(child)
            if below is None:
                return None
            paths.extend(below)
        return paths

    def stage_sync(self, cid: CID | str, out: Path) -> None:
        """Put a file's bytes where a task reads them, without copying them where it can: a file of
        one raw leaf becomes a hard link of that block at ``out``; a file of several, a directory
        ``out`` of hard links named in order (``000000``, ``000001``, ...), which the task runner
        reads as their concatenation. Every block is verified first. Blocks are never written in
        place (a new block is a new file), so a link cannot change under the task, and the task's
        view of its directory is read-only. Anything else (or a filesystem that refuses links) is
        written out as ``get_sync`` does."""
        out = Path(out)
        paths = self.leaf_paths_sync(cid)
        if paths is not None:
            try:
                if len(paths) == 1:
                    os.link(paths[0], out)
                else:
                    out.mkdir()
                    for i, path in enumerate(paths):
                        os.link(path, out / f"{i:06d}")
                return
            except OSError:
                shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        self.get_sync(cid, out)

    async def stage(self, cid: CID | str, out: Path) -> None:
        await asyncio.to_thread(self.stage_sync, cid, out)

    # ------------------------------------------------------------ pins and GC

    async def pin(self, cid: CID | str) -> None:
        """Recursively pin a DAG; every block must be present (else BlockNotFound)."""
        cid = CID.parse(cid)

        def walk_and_pin() -> None:
            for _ in self.walk(cid):
                pass
            self.blocks.pin(cid)
        await asyncio.to_thread(walk_and_pin)

    async def unpin(self, cid: CID | str) -> None:
        cid = CID.parse(cid)
        if not await asyncio.to_thread(self.blocks.unpin, cid):
            raise StoreError(f"{cid} is not pinned")

    def pins(self) -> list[CID]:
        return self.blocks.pins()

    def gc_sync(self) -> list[CID]:
        """Deletes every block no pin reaches; returns what it removed."""
        keep: set[str] = set()
        for root in self.blocks.pins():
            stack = [root]
            while stack:
                cid = stack.pop()
                key = self.blocks.key(cid)
                if key in keep:
                    continue
                keep.add(key)
                try:
                    stack.extend(reader.children(cid, self.blocks.get(cid)))
                except BlockNotFound:
                    continue  # a pin over an incomplete DAG keeps what exists
        removed = [cid for cid in self.blocks if self.blocks.key(cid) not in keep]
        for cid in removed:
            self.blocks.delete(cid)
        self.blocks.sweep_temporaries()
        return removed

    async def gc(self) -> list[CID]:
        return await asyncio.to_thread(self.gc_sync)

    def walk(self, cid: CID | str) -> Iterator[tuple[CID, bytes]]:
        """Every (cid, verified block) of a DAG, depth first (CAR order)."""
        cid = CID.parse(cid)
        block = self.blocks.get(cid)
        yield cid, block
        for child in reader.children(cid, block):
            yield from self.walk(child)
