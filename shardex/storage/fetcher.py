"""Fetch a DAG from untrusted providers, verifying every block.

Providers are tried in order for each block: a provider that fails, times
out or serves bytes that do not hash to the CID is skipped for that block and
the next one is asked. Verified blocks go into the local store, so a fetch
that is interrupted resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import httpx

from shardex.storage import car, reader
from shardex.storage.cid import CID, decode_varint
from shardex.storage.embedded import EmbeddedStore
from shardex.storage.errors import BlockCorrupted, BlockNotFound, FetchFailed, ProviderError, StoreError


class BlockProvider(Protocol):
    name: str

    async def get_block(self, cid: CID) -> bytes:
        """The block's bytes (unverified: the fetcher checks them)."""
        ...


class HttpProvider:
    """A trustless gateway: ``GET {base}/ipfs/{cid}?format=raw``."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = self.base_url
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def get_block(self, cid: CID) -> bytes:
        url = f"{self.base_url}/ipfs/{cid}?format=raw"
        try:
            r = await self._client.get(url, headers={"accept": "application/vnd.ipld.raw"})
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if r.status_code == 404:
            raise BlockNotFound(cid, self.name)
        if r.status_code != 200:
            raise ProviderError(f"{self.name}: HTTP {r.status_code} for {cid}")
        return r.content

    async def get_dag(self, cid: CID):
        """Yield (cid, bytes) for the DAG under ``cid`` from one CAR response,
        parsed as it streams (unverified: the fetcher checks every block)."""
        url = f"{self.base_url}/ipfs/{cid}?format=car"
        try:
            async with self._client.stream("GET", url, headers={"accept": "application/vnd.ipld.car"}) as r:
                if r.status_code != 200:
                    raise ProviderError(f"{self.name}: HTTP {r.status_code} for {cid} (car)")
                buf = bytearray()
                header_done = False
                async for chunk in r.aiter_bytes(1 << 20):
                    buf += chunk
                    while True:
                        try:
                            length, pos = decode_varint(buf, 0)
                        except ValueError:
                            break  # need more bytes
                        if len(buf) < pos + length:
                            break
                        body = bytes(buf[pos:pos + length])
                        del buf[:pos + length]
                        if not header_done:
                            header_done = True
                            continue
                        yield car.split_section(body)
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class Fetcher:
    def __init__(self, providers: list[BlockProvider], store: EmbeddedStore, *, concurrency: int = 8,
                 on_corrupt: Callable[[BlockProvider, CID], None] | None = None) -> None:
        # No providers is allowed (nobody announced yet): only blocks already local are found.
        self.providers = providers
        self.store = store
        self.concurrency = concurrency
        # Told of every block a provider served that does not match its CID (it is skipped either way).
        self.on_corrupt = on_corrupt

    def _corrupt(self, provider: BlockProvider, cid: CID) -> None:
        if self.on_corrupt is not None:
            self.on_corrupt(provider, cid)

    async def block(self, cid: CID) -> bytes:
        """One verified block: from the local store, else the first provider that serves it right."""
        try:
            return self.store.blocks.get(cid)
        except BlockNotFound:
            pass
        except BlockCorrupted:
            self.store.blocks.delete(cid)  # repair from providers below
        attempts = []
        for provider in self.providers:
            try:
                data = await provider.get_block(cid)
            except StoreError as exc:
                attempts.append(str(exc))
                continue
            if not cid.verify(data):
                attempts.append(f"{provider.name} served bytes that do not match {cid}")
                self._corrupt(provider, cid)
                continue
            self.store.blocks.put(cid, data, verified=True)
            return data
        raise FetchFailed(cid, attempts)

    async def _try_car(self, root: CID) -> bool:
        """Fast path: the whole DAG in one streamed CAR from the first provider
        that can send one. Every block is verified as it arrives. True when the
        CAR carried the complete DAG (every link of every block it held); else
        the block-by-block walk fills in what is missing."""
        if self.store.blocks.has(root):
            return False
        for provider in self.providers:
            get_dag = getattr(provider, "get_dag", None)
            if get_dag is None:
                continue
            missing, received = {root}, set()
            try:
                async for cid, block in get_dag(root):
                    if not cid.verify(block):
                        self._corrupt(provider, cid)
                        break  # a lying provider: stop reading it
                    await asyncio.to_thread(self.store.blocks.put, cid, block, verified=True)
                    received.add(cid)
                    missing.discard(cid)
                    missing.update(c for c in reader.children(cid, block) if c not in received)
            except StoreError:
                continue
            if not missing:
                return True
            if self.store.blocks.has(root):
                return False
        return False

    async def fetch(self, cid: CID | str, *, pin: bool = True) -> CID:
        """Fetch the whole DAG under ``cid`` into the local store."""
        root = CID.parse(cid)
        # A complete, verified CAR needs no second pass over the blocks it wrote.
        pending = [] if await self._try_car(root) else [root]
        while pending:
            batch, pending = pending[:self.concurrency], pending[self.concurrency:]
            blocks = await asyncio.gather(*(self.block(c) for c in batch))
            for c, block in zip(batch, blocks, strict=True):
                pending.extend(reader.children(c, block))
        if pin:
            self.store.blocks.pin(root)
        return root
