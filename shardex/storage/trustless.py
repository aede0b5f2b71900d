"""Serve a store's blocks as an IPFS trustless gateway (a small ASGI app).

    GET /ipfs/{cid}?format=raw   one block      (application/vnd.ipld.raw)
    GET /ipfs/{cid}?format=car   the whole DAG  (application/vnd.ipld.car, CARv1, depth-first)

The format can also be asked for with ``Accept``. Clients verify what they
get, so this can be served by anyone; it still never sends a block whose bytes
fail their CID (a corrupted block ends the response with an error instead).
Mount it in the gateway or a worker: ``app.mount("/ipfs", gateway_app(store))``
— or run it on its own, as the tests do.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from urllib.parse import parse_qs

from shardex.storage import car
from shardex.storage.cid import CID
from shardex.storage.embedded import EmbeddedStore
from shardex.storage.errors import BlockCorrupted, BlockNotFound, InvalidCid, StoreError

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"


def gateway_app(store: EmbeddedStore, prefix: str = "/ipfs/") -> Callable:
    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "")
        # Mounted under /ipfs the path arrives relative; standalone it does not.
        rest = path[len(prefix):] if path.startswith(prefix) else path.lstrip("/")
        if scope["method"] not in ("GET", "HEAD"):
            return await _plain(send, 405, "method not allowed")
        if not rest or "/" in rest:
            return await _plain(send, 400, "expected /ipfs/{cid} (paths inside a DAG are not served)")
        query = parse_qs(scope.get("query_string", b"").decode())
        accept = dict(scope.get("headers", [])).get(b"accept", b"").decode()
        fmt = query.get("format", [""])[0] or ("car" if CAR_TYPE in accept else "raw" if RAW_TYPE in accept else "")
        if fmt not in ("raw", "car"):
            return await _plain(send, 406, "this is a trustless gateway: ask for ?format=raw or ?format=car")
        try:
            cid = CID.parse(rest)
        except InvalidCid as exc:
            return await _plain(send, 400, str(exc))
        try:
            if fmt == "raw":
                block = store.get_block_sync(cid)
                return await _respond(send, 200, RAW_TYPE, block, cid, head=scope["method"] == "HEAD")
            walk = store.walk(cid)
            # Read the root now, to fail with a clean status before streaming starts.
            blocks = itertools.chain([next(walk)], walk)
        except BlockNotFound as exc:
            return await _plain(send, 404, str(exc))
        except BlockCorrupted as exc:
            return await _plain(send, 502, str(exc))
        except StoreError as exc:
            return await _plain(send, 500, str(exc))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", CAR_TYPE.encode() + b"; version=1"), (b"x-ipfs-roots", str(cid).encode()),
            (b"cache-control", b"public, max-age=29030400, immutable")]})
        if scope["method"] == "HEAD":
            return await send({"type": "http.response.body", "body": b""})
        try:
            for part in car.write([cid], blocks):
                await send({"type": "http.response.body", "body": part, "more_body": True})
        except StoreError:
            # Headers are gone: cut the stream short so the client sees an incomplete CAR.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.body", "body": b""})

    return app


async def _respond(send, status: int, ctype: str, body: bytes, cid: CID, head: bool = False) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()),
        (b"x-ipfs-roots", str(cid).encode()), (b"etag", f'"{cid}.raw"'.encode()),
        (b"cache-control", b"public, max-age=29030400, immutable")]})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
