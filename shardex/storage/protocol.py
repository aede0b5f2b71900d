"""The one interface every content store implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from shardex.storage.cid import CID


@runtime_checkable
class ContentStore(Protocol):
    """Content-addressed storage. Guarantees: ``add_*`` returns the CID any
    IPFS node would compute for the same bytes (CIDv1, raw leaves, 256 KiB
    chunks); ``cat``/``get``/``get_block`` only ever yield bytes verified
    against their CID, and raise ``BlockCorrupted``/``BlockNotFound`` naming
    the CID otherwise."""

    async def add_bytes(self, data: bytes, *, pin: bool = True) -> CID: ...

    async def add_path(self, path: Path, *, pin: bool = True) -> CID: ...

    def cat(self, cid: CID | str) -> AsyncIterator[bytes]: ...

    async def get_block(self, cid: CID | str) -> bytes: ...

    async def put_block(self, cid: CID | str, data: bytes) -> None: ...

    async def has_block(self, cid: CID | str) -> bool: ...

    async def pin(self, cid: CID | str) -> None: ...

    async def unpin(self, cid: CID | str) -> None: ...
