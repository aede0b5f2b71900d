"""Fetch a DAG from untrusted providers, verifying every block.

Providers are tried in order for each block: a provider that fails, times
out or serves bytes that do not hash to the CID is skipped for that block and
the next one is asked. Verified blocks go into the local store, so a fetch
that is interrupted resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httpx

from shardex.storage import reader
from shardex.storage.cid import CID
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

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class Fetcher:
    def __init__(self, providers: list[BlockProvider], store: EmbeddedStore, *, concurrency: int = 8) -> None:
        if not providers:
            raise StoreError("no providers to fetch from")
        self.providers = providers
        self.store = store
        self.concurrency = concurrency

    async def block(self, cid: CID) -> bytes:
        """One verified block: from the local store, else the first provider that serves it right."""
        if self.store.blocks.has(cid):
            try:
                return self.store.blocks.get(cid)
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
                continue
            self.store.blocks.put(cid, data, verified=True)
            return data
        raise FetchFailed(cid, attempts)

    async def fetch(self, cid: CID | str, *, pin: bool = True) -> CID:
        """Fetch the whole DAG under ``cid`` into the local store."""
        root = CID.parse(cid)
        pending = [root]
        while pending:
            batch, pending = pending[:self.concurrency], pending[self.concurrency:]
            blocks = await asyncio.gather(*(self.block(c) for c in batch))
            for c, block in zip(batch, blocks, strict=True):
                pending.extend(reader.children(c, block))
        if pin:
            self.store.blocks.pin(root)
        return root


async def fetch(cid: CID | str, providers: list[BlockProvider], store: EmbeddedStore, **kw) -> CID:
    return await Fetcher(providers, store, **kw).fetch(cid)
