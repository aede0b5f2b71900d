"""``shardex gateway``: the HTTP API, indexer, live events, metrics and dashboard."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Annotated

import typer

from shardex.errors import ShardexError

from shardex_cli.base import app, fail, settings


@app.command("gateway")
def gateway(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    db: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL of the index (default: sqlite in <home>/gateway.db). Several gateways share one "
             "PostgreSQL index (postgresql+psycopg://USER@HOST/DB, the `postgres` extra): one writes, all serve.")] = None,
    public_url: Annotated[str | None, typer.Option(
        help="URL workers reach this gateway at; announced for uploaded inputs (default http://HOST:PORT).")] = None,
    confirmations: Annotated[int, typer.Option(help="Blocks to wait before indexing a block.")] = 0,
    poll: Annotated[float, typer.Option(help="Seconds between indexer polls.")] = 0.5,
    max_upload_mb: Annotated[int, typer.Option(help="Largest accepted input upload.")] = 256,
    dev_sign: Annotated[bool, typer.Option("--dev-sign", help="Dev mode: sign submitted jobs with this CLI's key "
                                                              "(the dev chain only).")] = False,
) -> None:
    """Serve the job API (/v1, docs at /docs), the dashboard (/dashboard/) and /ipfs/ until Ctrl-C."""
    import uvicorn

    from backend.app import GatewayConfig, create_app
    from shardex.devnet import DEV_CHAIN_ID

    try:
        s = settings(ctx)
        deployment = s.deployment()
        account = None
        if dev_sign:
            if deployment.chain_id != DEV_CHAIN_ID:
                raise ShardexError(f"--dev-sign works on the dev chain ({DEV_CHAIN_ID}) only")
            account = s.account()
        config = GatewayConfig(
            rpc_url=s.rpc_url or "", deployment=deployment, store_dir=s.content_dir,
            db_url=db or f"sqlite:///{Path(s.home) / 'gateway.db'}",
            public_url=(public_url or f"http://{host}:{port}").rstrip("/"), dev_account=account,
            confirmations=confirmations, poll_s=poll, max_upload_bytes=max_upload_mb << 20,
            instance=f"{socket.gethostname()}:{port}", chain_options=s.chain_options())
        application = create_app(config)
    except (ShardexError, ValueError) as exc:
        raise fail(False, exc) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per provider fetch is noise here
    typer.echo(f"Shardex gateway on http://{host}:{port}  (dashboard /dashboard/, API docs /docs)", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")
