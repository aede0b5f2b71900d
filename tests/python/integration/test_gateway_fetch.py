"""Trustless gateway over real HTTP, and the fetcher's verification and fallback."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from shardex.storage import CID, BlockNotFound, EmbeddedStore, FetchFailed, ProviderError
from shardex.storage import car
from shardex.storage.cid import RAW
from shardex.storage.fetcher import Fetcher, HttpProvider
from shardex.storage.trustless import gateway_app
from shardex.storage.importer import CHUNK_SIZE
from tests.python.serve import serve

pytestmark = pytest.mark.integration


def lying_app(inner):
    """A provider that serves every raw block with one byte flipped."""
    async def app(scope, receive, send):
        async def send_flipped(message):
            if message["type"] == "http.response.body" and message.get("body"):
                body = bytearray(message["body"])
                body[len(body) // 2] ^= 0x01
                message = {**message, "body": bytes(body)}
            await send(message)
        await inner(scope, receive, send_flipped)
    return app


@pytest.fixture
def source(tmp_path: Path) -> tuple[EmbeddedStore, CID, bytes]:
    store = EmbeddedStore(tmp_path / "source")
    data = os.urandom(5 * CHUNK_SIZE + 17)
    return store, store.add_bytes_sync(data), data


def test_raw_and_car_over_http(source) -> None:
    store, root, data = source
    with serve(gateway_app(store)) as url:
        r = httpx.get(f"{url}/ipfs/{root}?format=raw")
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.ipld.raw"
        assert root.verify(r.content)
        r = httpx.get(f"{url}/ipfs/{root}", headers={"accept": "application/vnd.ipld.car"})
        assert r.status_code == 200
        roots, blocks = car.read(r.content)
        assert roots == [root] and len(blocks) == 1 + 6
        leaves = b"".join(b for c, b in blocks if c.codec == RAW)
        assert leaves == data
        assert httpx.get(f"{url}/ipfs/{CID.of(RAW, b'nope')}?format=raw").status_code == 404
        assert httpx.get(f"{url}/ipfs/not-a-cid?format=raw").status_code == 400
        assert httpx.get(f"{url}/ipfs/{root}").status_code == 406  # a trustless gateway never guesses


async def test_fetcher_falls_back_past_missing_and_lying_providers(source, tmp_path: Path) -> None:
    store, root, data = source
    empty = EmbeddedStore(tmp_path / "empty")
    local = EmbeddedStore(tmp_path / "local")
    with serve(gateway_app(empty)) as missing, serve(lying_app(gateway_app(store))) as liar, \
            serve(gateway_app(store)) as honest:
        providers = [HttpProvider(missing), HttpProvider(liar), HttpProvider("http://127.0.0.1:9"),
                     HttpProvider(honest)]
        await Fetcher(providers, local).fetch(root)
        for p in providers:
            await p.aclose()
    assert await local.cat_bytes(root) == data
    assert root in local.pins()


async def test_fetch_fails_clearly_when_no_provider_serves_good_bytes(source, tmp_path: Path) -> None:
    store, root, _ = source
    local = EmbeddedStore(tmp_path / "local")
    with serve(lying_app(gateway_app(store))) as liar:
        providers = [HttpProvider(liar), HttpProvider("http://127.0.0.1:9", timeout=2)]
        with pytest.raises(FetchFailed) as info:
            await Fetcher(providers, local).fetch(root)
        for p in providers:
            await p.aclose()
    message = str(info.value)
    assert str(root) in message and "do not match" in message and "ConnectError" in message
    with pytest.raises(BlockNotFound):
        local.get_block_sync(root)  # nothing unverified was stored


async def test_missing_provider_is_a_typed_error() -> None:
    provider = HttpProvider("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ProviderError):
        await provider.get_block(CID.of(RAW, b"x"))
    await provider.aclose()


async def test_gateway_never_serves_a_corrupted_block_and_fetch_repairs_from_another(source, tmp_path: Path) -> None:
    store, root, data = source
    mirror = EmbeddedStore(tmp_path / "mirror")
    mirror.add_bytes_sync(data)
    leaf = CID.of(RAW, data[CHUNK_SIZE:2 * CHUNK_SIZE])
    path = mirror.blocks.path(leaf)
    raw = bytearray(path.read_bytes())
    raw[7] ^= 0x80
    path.write_bytes(bytes(raw))
    local = EmbeddedStore(tmp_path / "local")
    with serve(gateway_app(mirror)) as damaged, serve(gateway_app(store)) as good:
        r = httpx.get(f"{damaged}/ipfs/{leaf}?format=raw")
        assert r.status_code == 502 and str(leaf) in r.text
        providers = [HttpProvider(damaged), HttpProvider(good)]
        await Fetcher(providers, local).fetch(root)
        for p in providers:
            await p.aclose()
    assert await local.cat_bytes(root) == data
