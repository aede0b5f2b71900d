"""Fetching a DAG several providers hold, over real HTTP: the blocks are spread over every holder,
faster ones serve more, and one that is slow, fails or holds nothing stalls nothing."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

from shardex.serving import start_server
from shardex.storage import EmbeddedStore
from shardex.storage.importer import CHUNK_SIZE
from shardex.storage.providers import Providers
from shardex.storage.trustless import gateway_app


def provider(store: EmbeddedStore, name: str, gets: Counter, *, delay: float = 0.0, fail_after: int | None = None):
    """The store's trustless gateway, counting the blocks asked of it; ``delay`` before each block,
    and after ``fail_after`` blocks every request answered 503 (a provider going away)."""
    app = gateway_app(store)

    async def wrapped(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            gets[name] += 1
            if fail_after is not None and gets[name] > fail_after:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"going away"})
                return
            await asyncio.sleep(delay)
        await app(scope, receive, send)
    return wrapped


async def test_a_dag_several_providers_hold_is_fetched_from_all_of_them_at_once(tmp_path: Path) -> None:
    data = os.urandom(60 * CHUNK_SIZE + 11)  # 61 raw leaves under one root
    origin = EmbeddedStore(tmp_path / "origin")
    root = await origin.add_bytes(data)
    copy = EmbeddedStore(tmp_path / "copy")  # a worker that fetched it earlier: its own verified copy
    await copy.add_bytes(data)
    gets: Counter[str] = Counter()
    apps = {
        "requester": provider(origin, "requester", gets, delay=0.01),
        "worker": provider(copy, "worker", gets, delay=0.01),
        "slow": provider(copy, "slow", gets, delay=0.25),
        "leaving": provider(origin, "leaving", gets, delay=0.01, fail_after=3),
        "empty": provider(EmbeddedStore(tmp_path / "empty"), "empty", gets),
    }
    servers = {name: await start_server(app) for name, app in apps.items()}
    try:
        providers = Providers()
        mine = EmbeddedStore(tmp_path / "mine")
        urls = {s.url: name for name, s in servers.items()}
        fetcher = providers.fetcher(mine, list(urls), first=servers["requester"].url)
        await fetcher.fetch(root)
        assert await mine.cat_bytes(root) == data
        blocks = 62
        # Every block served once by someone (the leaving one's refusals fell through to others).
        assert sum(gets.values()) - max(0, gets["leaving"] - 3) == blocks
        assert gets["requester"] >= 10 and gets["worker"] >= 10, gets  # spread, not one after the other
        assert gets["slow"] < min(gets["requester"], gets["worker"]), gets  # the slow one serves less
        assert gets["empty"] == 0, gets  # it said it holds nothing: never asked for a block
        await providers.aclose()
    finally:
        for s in servers.values():
            await s.stop()


async def test_with_one_holder_the_dag_comes_from_it_in_one_car(tmp_path: Path) -> None:
    data = os.urandom(8 * CHUNK_SIZE)
    origin = EmbeddedStore(tmp_path / "origin")
    root = await origin.add_bytes(data)
    gets: Counter[str] = Counter()
    holder = await start_server(provider(origin, "holder", gets))
    empty = await start_server(provider(EmbeddedStore(tmp_path / "empty"), "empty", gets))
    try:
        providers = Providers()
        mine = EmbeddedStore(tmp_path / "mine")
        await providers.fetcher(mine, [empty.url, holder.url]).fetch(root)
        assert await mine.cat_bytes(root) == data
        assert gets == Counter({"holder": 1}), gets  # asked first, though listed second: it said it holds it
        await providers.aclose()
    finally:
        await holder.stop()
        await empty.stop()
