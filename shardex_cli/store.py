"""Content-store commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from shardex.chain import ChainClient
from shardex.errors import ShardexError

from shardex_cli.base import (
    JsonOpt,
    emit,
    fail,
    settings,
    store_app,
)


# ------------------------------------------------------------------ store

def open_store(ctx: typer.Context):
    from shardex.storage import EmbeddedStore
    from shardex.storage.kubo import KuboStore

    s = settings(ctx)
    if s.ipfs_api:
        return KuboStore(s.ipfs_api, timeout=s.ipfs_timeout)
    return EmbeddedStore(s.content_dir)


def run_store(ctx: typer.Context, as_json: bool, body) -> None:
    from shardex.storage.kubo import KuboStore

    async def go():
        store = open_store(ctx)
        try:
            return await body(store)
        finally:
            if isinstance(store, KuboStore):
                await store.aclose()

    try:
        result = asyncio.run(go())
    except ShardexError as exc:
        raise fail(as_json, exc) from None
    if result is not None:
        emit(as_json, *result)


@store_app.command("add")
def store_add(ctx: typer.Context, path: Annotated[Path, typer.Argument(exists=True, help="File or directory.")],
              only_hash: Annotated[bool, typer.Option("--only-hash", help="Print the CID, store nothing.")] = False,
              as_json: JsonOpt = False) -> None:
    """Add a file or directory; print its CID (same as `ipfs add --cid-version=1 --raw-leaves`)."""
    from shardex.storage import hash_path

    async def body(store):
        cid = hash_path(path) if only_hash else await store.add_path(path)
        return {"cid": str(cid), "path": str(path), "stored": not only_hash}, str(cid)
    run_store(ctx, as_json, body)


@store_app.command("cat")
def store_cat(ctx: typer.Context, cid: str, as_json: JsonOpt = False) -> None:
    """Write a file's verified bytes to stdout (--json: errors as JSON on stderr)."""
    import sys

    async def body(store):
        async for part in store.cat(cid):
            sys.stdout.buffer.write(part)
        sys.stdout.buffer.flush()
    run_store(ctx, as_json, body)


@store_app.command("get")
def store_get(ctx: typer.Context, cid: str,
              output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the file or directory.")],
              as_json: JsonOpt = False) -> None:
    """Write a file or a whole directory tree, verified, to OUTPUT."""
    from shardex.storage import EmbeddedStore

    async def body(store):
        if not isinstance(store, EmbeddedStore):
            raise ShardexError("store get works on the embedded store; fetch from the node first")
        await store.get(cid, output)
        return {"cid": cid, "output": str(output)}, f"wrote {output}"
    run_store(ctx, as_json, body)


@store_app.command("pin")
def store_pin(ctx: typer.Context, cid: str, as_json: JsonOpt = False) -> None:
    """Pin a DAG (all its blocks must be present)."""
    async def body(store):
        await store.pin(cid)
        return {"pinned": cid}, f"pinned {cid}"
    run_store(ctx, as_json, body)


@store_app.command("unpin")
def store_unpin(ctx: typer.Context, cid: str, as_json: JsonOpt = False) -> None:
    """Remove a pin; the blocks go at the next gc."""
    async def body(store):
        await store.unpin(cid)
        return {"unpinned": cid}, f"unpinned {cid}"
    run_store(ctx, as_json, body)


@store_app.command("gc")
def store_gc(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Delete every block of the embedded store that no pin reaches."""
    from shardex.storage import EmbeddedStore

    async def body(store):
        if not isinstance(store, EmbeddedStore):
            raise ShardexError("gc runs on the embedded store (use the node's own repo gc)")
        removed = await store.gc()
        return {"removed": len(removed)}, f"removed {len(removed)} blocks"
    run_store(ctx, as_json, body)


@store_app.command("serve")
def store_serve(ctx: typer.Context, port: Annotated[int, typer.Option(help="0 picks a free port.")] = 0,
                host: str = "127.0.0.1",
                announce: Annotated[bool, typer.Option(help="Publish the URL on chain (needs a key).")] = True) -> None:
    """Serve the embedded store as a trustless gateway until Ctrl-C (so workers can fetch your inputs)."""
    from shardex.serving import serving
    from shardex.storage import EmbeddedStore

    async def go() -> None:
        s = settings(ctx)
        store = EmbeddedStore(s.content_dir)
        async with serving(store, host, port) as url:
            if announce:
                async with ChainClient(s.rpc_url or "", s.deployment(), s.account(), **s.chain_options()) as c:
                    await c.announce(url)
            typer.echo(url, err=False)
            await asyncio.Event().wait()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass
    except ShardexError as exc:
        raise fail(False, exc) from None
