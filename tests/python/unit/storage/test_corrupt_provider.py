"""A provider that serves wrong bytes, over real HTTP: every block is verified, so it costs a request and
never a wrong result; it is named, counted, and asked after every clean provider from then on."""

from __future__ import annotations

import os
from pathlib import Path

from shardex.serving import serving
from shardex.storage import EmbeddedStore
from shardex.storage.providers import Providers


def lying(store: EmbeddedStore) -> EmbeddedStore:
    """The same store behind a gateway that flips the first byte of every block it serves, raw or in a CAR."""
    get, walk = store.get_block_sync, store.walk

    def flip(block: bytes) -> bytes:
        return bytes([block[0] ^ 0xFF]) + block[1:]

    store.get_block_sync = lambda cid: flip(get(cid))
    store.walk = lambda cid: ((c, flip(b)) for c, b in walk(cid))
    return store


async def test_a_provider_serving_corrupt_bytes_is_skipped_named_and_asked_last(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several blocks and a DAG root
    honest = EmbeddedStore(tmp_path / "origin")
    root = await honest.add_bytes(data)
    liar = lying(EmbeddedStore(tmp_path / "origin"))
    async with serving(honest) as honest_url, serving(liar) as liar_url:
        providers = Providers()
        mine = EmbeddedStore(tmp_path / "mine")
        # The liar is the one tried first (as a requester's own endpoint is), CAR and blocks alike.
        fetcher = providers.fetcher(mine, [honest_url], first=liar_url)
        assert [p.name for p in fetcher.providers] == [liar_url, honest_url]
        await fetcher.fetch(root)
        assert await mine.cat_bytes(root) == data
        assert providers.corrupt[liar_url] >= 1 and providers.corrupt[honest_url] == 0
        # Named once and for all: the next fetcher asks it last, even when it is meant to go first.
        again = providers.fetcher(EmbeddedStore(tmp_path / "other"), [honest_url], first=liar_url)
        assert [p.name for p in again.providers] == [honest_url, liar_url]
        await providers.aclose()
