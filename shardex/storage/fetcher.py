"""Fetch a DAG from untrusted providers, verifying every block.

Providers are tried in order for each block: a provider that fails, times
out or serves bytes that do not hash to the CID is skipped for that block and
the next one is asked. Verified blocks go into the local store, so a fetch
that is interrupted resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import httpx

from shardex.storage import car, reader
from shardex.storage.cid import CID, RAW, decode_varint
from shardex.storage.embedded import EmbeddedStore
from shardex.storage.errors import BlockCorrupted, BlockNotFound, FetchFailed, ProviderError, StoreError


#: Providers asked whether they hold a DAG before a fetch (the requester's first), and how long the
#: others may take to answer once one has said yes.
SWARM_WIDTH = 8
SWARM_GRACE_S = 0.25
#: How long a provider may take to say whether it holds a DAG.
PROBE_TIMEOUT_S = 0.5


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
        # httpx's timeout bounds each read, not a request: a provider dripping a byte a second never
        # trips it. So every request also has a deadline of its own, and a CAR one per block.
        self.timeout = timeout
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def get_block(self, cid: CID) -> bytes:
        url = f"{self.base_url}/ipfs/{cid}?format=raw"
        try:
            r = await asyncio.wait_for(self._client.get(url, headers={"accept": "application/vnd.ipld.raw"}),
                                       self.timeout)
        except TimeoutError:
            raise ProviderError(f"{self.name}: no whole block within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if r.status_code == 404:
            raise BlockNotFound(cid, self.name)
        if r.status_code != 200:
            raise ProviderError(f"{self.name}: HTTP {r.status_code} for {cid}")
        return r.content

    async def has(self, cid: CID, timeout: float = PROBE_TIMEOUT_S) -> bool:
        """Whether it says it holds the block (a HEAD request, like Bitswap's want-have)."""
        try:
            r = await asyncio.wait_for(self._client.head(f"{self.base_url}/ipfs/{cid}?format=raw",
                                                         headers={"accept": "application/vnd.ipld.raw"}), timeout)
        except (TimeoutError, httpx.HTTPError):
            return False
        return r.status_code == 200

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
                loop = asyncio.get_running_loop()
                due = loop.time() + self.timeout  # the next whole block (or the header) by then
                async for chunk in r.aiter_bytes(1 << 20):
                    if loop.time() > due:
                        raise ProviderError(f"{self.name}: no whole block within {self.timeout:g} s (car)")
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
                        due = loop.time() + self.timeout
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
                 on_corrupt: Callable[[BlockProvider, CID], None] | None = None,
                 suspects: set[str] = frozenset()) -> None:
        """``suspects``: providers known to have served corrupt blocks before; a swarm asks them
        only for what nobody else delivers."""
        # No providers is allowed (nobody announced yet): only blocks already local are found.
        self.providers = providers
        self.suspects = set(suspects)
        # Providers that failed, timed out or lied in this fetcher's life: asked after the others.
        self._strikes: Counter[str] = Counter()
        self.store = store
        self.concurrency = concurrency
        # Told of every block a provider served that does not match its CID (it is skipped either way).
        self.on_corrupt = on_corrupt
        self._inflight: Counter[str] = Counter()  # requests in flight, per provider
        self._seconds: dict[str, float] = {}  # recent seconds per verified block, per provider

    def _corrupt(self, provider: BlockProvider, cid: CID) -> None:
        if self.on_corrupt is not None:
            self.on_corrupt(provider, cid)

    async def block(self, cid: CID, providers: list[BlockProvider] | None = None) -> bytes:
        """One verified block: from the local store, else the first provider (of ``providers``, in
        that order; default: all, in theirs) that serves it right."""
        try:
            return self.store.blocks.get(cid)
        except BlockNotFound:
            pass
        except BlockCorrupted:
            self.store.blocks.delete(cid)  # repair from providers below
        attempts = []
        for provider in self.providers if providers is None else providers:
            started = time.perf_counter()
            self._inflight[provider.name] += 1
            try:
                data = await provider.get_block(cid)
            except StoreError as exc:
                attempts.append(str(exc))
                self._strikes[provider.name] += 1
                continue
            finally:
                self._inflight[provider.name] -= 1
            if not cid.verify(data):
                attempts.append(f"{provider.name} served bytes that do not match {cid}")
                self._strikes[provider.name] += 1
                self._corrupt(provider, cid)
                continue
            took = time.perf_counter() - started
            seen = self._seconds.get(provider.name)
            self._seconds[provider.name] = took if seen is None else 0.8 * seen + 0.2 * took
            self.store.blocks.put(cid, data, verified=True)
            return data
        raise FetchFailed(cid, attempts)

    async def _holders(self, root: CID) -> list[BlockProvider]:
        """The providers (the first ``SWARM_WIDTH``) that say they hold ``root``, fastest answer first.
        All are asked at once; once one said yes the others get ``SWARM_GRACE_S`` more, so a provider
        that is gone or slow to answer delays nothing."""
        holders: list[BlockProvider] = []
        found = asyncio.Event()

        async def ask(provider) -> None:
            if await provider.has(root):
                holders.append(provider)
                found.set()
        asks = [asyncio.create_task(ask(p)) for p in self.providers[:SWARM_WIDTH]
                if hasattr(p, "has") and p.name not in self.suspects]
        if not asks:
            return holders
        everyone = asyncio.gather(*asks, return_exceptions=True)
        first = asyncio.create_task(found.wait())
        try:
            await asyncio.wait([everyone, first], return_when=asyncio.FIRST_COMPLETED)
            if not everyone.done():
                await asyncio.wait([everyone], timeout=SWARM_GRACE_S)
        finally:
            first.cancel()
            for a in asks:
                a.cancel()
        return list(holders)

    async def _try_car(self, root: CID, first: list[BlockProvider] = ()) -> bool:
        """Fast path: the whole DAG in one streamed CAR from the first provider
        that can send one. Every block is verified as it arrives. True when the
        CAR carried the complete DAG (every link of every block it held); else
        the block-by-block walk fills in what is missing."""
        if self.store.blocks.has(root):
            return False
        for provider in self._then_the_rest(first):
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

    def _swarm_order(self, holders: list[BlockProvider]) -> list[BlockProvider]:
        """Who to ask for the next block: the holder that would answer soonest (its requests in
        flight, plus this one, times its recent seconds per block), then the other holders, then
        everyone else (a holder may lack a block of a DAG it holds the root of)."""
        fastest = min((s for s in self._seconds.values()), default=0.01)

        def soonest(p: BlockProvider) -> tuple[int, float]:
            # Any provider that failed, was slow past its deadline or lied in this fetch goes last.
            return self._strikes[p.name], (self._inflight[p.name] + 1) * self._seconds.get(p.name, fastest)
        return self._then_the_rest(sorted(holders, key=soonest))

    def _then_the_rest(self, front: list[BlockProvider]) -> list[BlockProvider]:
        """``front``, then every other provider in the fetcher's own order."""
        return [*front, *(p for p in self.providers if p not in front)]

    async def fetch(self, cid: CID | str, *, pin: bool = True) -> CID:
        """Fetch the whole DAG under ``cid`` into the local store. From one provider: a streamed
        CAR where it offers one. From several that hold it (a requester and workers that fetched or
        produced it): a swarm, each block asked of the holder that would answer it soonest, so
        the load spreads over them, faster ones take more and a slow or missing one stalls nothing."""
        root = CID.parse(cid)
        holders = []
        # A raw root is one block (a manifest, a partition, a small file): nothing to spread.
        if len(self.providers) > 1 and root.codec != RAW and not self.store.blocks.has(root):
            holders = await self._holders(root)
        if len(holders) > 1:
            await self._walk(root, lambda: self._swarm_order(holders))
        else:
            # A complete, verified CAR needs no second pass over the blocks it wrote.
            if not await self._try_car(root, first=holders):
                await self._walk(root, lambda: None)
        if pin:
            self.store.blocks.pin(root)
        return root

    async def _walk(self, root: CID, order: Callable[[], list[BlockProvider] | None]) -> None:
        """Every block under ``root``, ``concurrency`` requests at a time, children as soon as their
        parent is verified; the first failure (after every provider was tried) is raised."""
        queue: asyncio.Queue[CID] = asyncio.Queue()
        queue.put_nowait(root)
        failures: list[BaseException] = []

        async def fetcher() -> None:
            while True:
                cid = await queue.get()
                try:
                    if not failures:
                        block = await self.block(cid, order())
                        for child in reader.children(cid, block):
                            queue.put_nowait(child)
                except Exception as exc:  # noqa: BLE001 - raised below, after the others stop
                    failures.append(exc)
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(fetcher()) for _ in range(self.concurrency)]
        try:
            await queue.join()
        finally:
            for w in workers:
                w.cancel()
        if failures:
            raise failures[0]
