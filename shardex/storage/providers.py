"""Announced endpoints as block providers: one HTTP client per URL, reused, closed together.

Workers, requesters and the gateway all turn "who announced which URL" into a
verified :class:`~shardex.storage.fetcher.Fetcher`; this is the one place that does it.
"""

from __future__ import annotations

from collections.abc import Iterable

from shardex.storage.embedded import EmbeddedStore
from shardex.storage.fetcher import Fetcher, HttpProvider


class Providers:
    def __init__(self, *, timeout: float = 15.0, exclude: Iterable[str | None] = ()) -> None:
        self.timeout = timeout
        self.exclude = {u for u in exclude if u}  # our own endpoint: never fetch from ourselves
        self._by_url: dict[str, HttpProvider] = {}

    def fetcher(self, store: EmbeddedStore, urls: Iterable[str], *, first: str | None = None) -> Fetcher:
        """A fetcher over these endpoints (``first`` tried first, duplicates dropped)."""
        ordered = dict.fromkeys([*([first] if first else []), *urls])
        chosen = []
        for url in ordered:
            if url and url not in self.exclude:
                if url not in self._by_url:
                    self._by_url[url] = HttpProvider(url, timeout=self.timeout)
                chosen.append(self._by_url[url])
        return Fetcher(chosen, store)

    async def aclose(self) -> None:
        providers, self._by_url = list(self._by_url.values()), {}
        for provider in providers:
            await provider.aclose()

    async def __aenter__(self) -> Providers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
