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


def dripping(store: EmbeddedStore, name: str, gets: Counter, abandoned: list[int]):
    """Says yes to every HEAD, then answers each GET one byte every 0.2 s, 100 bytes in all of a
    body it says is 100,000: each read is quick, the answer never completes (a per-read timeout
    never trips). ``abandoned``: how many bytes it had sent when a client hung up on it."""
    app = gateway_app(store)

    async def wrapped(scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return await app(scope, receive, send)
        gets[name] += 1
        sent = 0

        async def drip() -> None:
            nonlocal sent
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100000")]})
            for _ in range(100):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                sent += 1
                await asyncio.sleep(0.2)

        async def hung_up() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
        dripper, listener = asyncio.create_task(drip()), asyncio.create_task(hung_up())
        done, _ = await asyncio.wait({dripper, listener}, return_when=asyncio.FIRST_COMPLETED)
        if listener in done:
            abandoned.append(sent)
        dripper.cancel()
        listener.cancel()
    return wrapped


async def test_a_provider_that_drips_or_lied_before_stalls_nothing(tmp_path: Path) -> None:
    data = os.urandom(12 * CHUNK_SIZE + 1)
    origin = EmbeddedStore(tmp_path / "origin")
    root = await origin.add_bytes(data)
    gets: Counter[str] = Counter()
    abandoned: list[int] = []
    drip = await start_server(dripping(origin, "drip", gets, abandoned))
    liar = await start_server(provider(origin, "liar", gets))
    honest = await start_server(provider(origin, "honest", gets, delay=0.01))
    try:
        providers = Providers(timeout=1.0)
        providers.corrupt[liar.url] = 3  # it served corrupt blocks before
        # Alone with the dripper (first: as a requester's endpoint would be) and an honest provider.
        mine = EmbeddedStore(tmp_path / "mine")
        await providers.fetcher(mine, [honest.url, liar.url], first=drip.url).fetch(root)
        assert await mine.cat_bytes(root) == data
        assert gets["drip"] >= 1 and len(abandoned) == gets["drip"], (gets, abandoned)
        assert max(abandoned) < 100  # given up on before it ever finished: the fetch went on without it
        assert gets["liar"] == 0, gets  # never probed, never asked while someone else delivers
        assert gets["honest"] >= 12, gets
        await providers.aclose()
    finally:
        drip.server.force_exit = True  # do not wait for its endless answer to end
        for server in (drip, liar, honest):
            await server.stop()
