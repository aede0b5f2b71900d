"""The ``shardex`` command line: the Typer apps, global options and the helpers
every command uses.

Every command takes ``--json`` for machine-readable output. Errors are printed
as the contract's custom error name and arguments (``JobMarketTaskFull(...)``)
and exit with status 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from shardex.chain import ChainClient
from shardex.chain.errors import ContractRevert
from shardex.config import Settings
from shardex.errors import ShardexError
from shardex.units import AmountError, parse_amount


app = typer.Typer(no_args_is_help=True, add_completion=False, help="Shardex: a decentralized map/reduce exchange.")
devnet_app = typer.Typer(no_args_is_help=True, help="A local Anvil chain with the contracts deployed.")
stake_app = typer.Typer(no_args_is_help=True, help="Worker stake in the registry.")
job_app = typer.Typer(no_args_is_help=True, help="Inspect and manage jobs.")
store_app = typer.Typer(no_args_is_help=True, help="The content store (IPFS-compatible CIDs).")
worker_app = typer.Typer(no_args_is_help=True, help="Run a worker agent: rent out this machine.")
key_app = typer.Typer(no_args_is_help=True, help="Signing keys (encrypted keystores).")
app.add_typer(devnet_app, name="devnet")
app.add_typer(stake_app, name="stake")
app.add_typer(job_app, name="job")
app.add_typer(store_app, name="store")
app.add_typer(worker_app, name="worker")
app.add_typer(key_app, name="key")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.callback()
def main(ctx: typer.Context,
         rpc_url: Annotated[str | None, typer.Option(help="JSON-RPC URL (default: running devnet).")] = None,
         private_key: Annotated[str | None, typer.Option(help="Signing key (prefer SHARDEX_PRIVATE_KEY).")] = None,
         account_index: Annotated[int | None, typer.Option(help="Devnet dev key index.")] = None,
         store_dir: Annotated[Path | None, typer.Option(help="Embedded store directory.")] = None,
         ipfs_api: Annotated[str | None, typer.Option(help="Use a Kubo RPC node instead of the embedded store.")]
         = None,
         keystore: Annotated[Path | None, typer.Option(help="Encrypted keystore (password: SHARDEX_KEYSTORE_PASSWORD)."
                                                       )] = None) -> None:
    overrides = {"rpc_url": rpc_url, "private_key": private_key, "account_index": account_index,
                 "store_dir": store_dir, "ipfs_api": ipfs_api, "keystore": keystore}
    ctx.obj = {k: v for k, v in overrides.items() if v is not None}


def settings(ctx: typer.Context) -> Settings:
    return Settings(**(ctx.obj or {}))


def emit(as_json: bool, data: Any, text: str) -> None:
    typer.echo(json.dumps(data, default=_json_default) if as_json else text)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def fail(as_json: bool, exc: Exception) -> typer.Exit:
    if isinstance(exc, ContractRevert):
        payload = {"error": exc.to_json()}
    else:
        payload = {"error": {"name": type(exc).__name__, "message": str(exc)}}
    typer.echo(json.dumps(payload) if as_json else f"error: {exc}", err=True)
    return typer.Exit(1)


def run(ctx: typer.Context, as_json: bool, body: Callable[[ChainClient], Awaitable[tuple[Any, str]]],
        need_account: bool = True) -> None:
    """Connect with the settings, run ``body``, print its (json, text) result."""
    async def go() -> tuple[Any, str]:
        s = settings(ctx)
        account = s.account() if need_account or s.private_key or s.on_devnet else None
        async with ChainClient(s.rpc_url or "", s.deployment(), account, **s.chain_options()) as client:
            return await body(client)

    try:
        data, text = asyncio.run(go())
    except (ShardexError, AmountError) as exc:
        raise fail(as_json, exc) from None
    emit(as_json, data, text)


def amount_arg(text: str) -> int:
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise typer.BadParameter(str(exc)) from None


def token_units_arg(text: str) -> int:
    """An amount of an ERC-20 in its smallest unit: a whole number (the CLI does
    not guess a token's decimals)."""
    if not text.strip().isdigit() or int(text) <= 0:
        raise typer.BadParameter(f"with --token, amounts are whole numbers of the token's smallest unit, got {text!r}")
    return int(text)

