"""Announced endpoints as block providers: one HTTP client per URL, reused, closed together.

Workers, requesters and the gateway all turn "who announced which URL" into a
verified :class:`~shardex.storage.fetcher.Fetcher`; this is the one place that does it.

Every block is verified, so a provider that serves wrong bytes costs a
request, never a wrong result. It is also remembered: each block it served
that did not match its CID counts against it (``corrupt``, logged with its
URL), and a provider with such strikes is asked after every clean one, even
when it is the one a fetcher would otherwise try first (the requester).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from shardex.storage.embedded import EmbeddedStore
from shardex.storage.cid import CID
from shardex.storage.fetcher import BlockProvider, Fetcher, HttpProvider

log = logging.getLogger(__name__)


class Providers:
    def __init__(self, *, timeout: float = 15.0, exclude: Iterable[str | None] = ()) -> None:
        self.timeout = timeout
        self.exclude = {u for u in exclude if u}  # our own endpoint: never fetch from ourselves
        self._by_url: dict[str, HttpProvider] = {}
        self.corrupt: Counter[str] = Counter()  # provider URL -> blocks it served that did not match their CID

    def fetcher(self, store: EmbeddedStore, urls: Iterable[str], *, first: str | None = None) -> Fetcher:
        """A fetcher over these endpoints (``first`` tried first, duplicates dropped, any that ever
        served a corrupt block last)."""
        ordered = dict.fromkeys([*([first] if first else []), *urls])
        chosen = []
        for url in sorted((u for u in ordered if u and u not in self.exclude), key=lambda u: self.corrupt[u.rstrip("/")] > 0):
            if url not in self._by_url:
                self._by_url[url] = HttpProvider(url, timeout=self.timeout)
            chosen.append(self._by_url[url])
        return Fetcher(chosen, store, on_corrupt=self._report,
                       suspects={p.name for p in chosen if self.corrupt[p.name] > 0})

    def _report(self, provider: BlockProvider, cid: CID) -> None:
        self.corrupt[provider.name] += 1
        log.warning("provider %s served bytes that do not match %s: skipped (%d corrupt blocks from it so far)",
                    provider.name, cid, self.corrupt[provider.name])

    async def aclose(self) -> None:
        providers, self._by_url = list(self._by_url.values()), {}
        for provider in providers:
            await provider.aclose()

    async def __aenter__(self) -> Providers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
