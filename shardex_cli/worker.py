"""Worker, key and demo commands."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from shardex.devnet import FIRST_WORKER_DEV_KEY
from shardex.errors import ShardexError
from shardex_cli.base import (
    JsonOpt,
    amount_arg,
    app,
    emit,
    fail,
    key_app,
    settings,
    worker_app,
)

# ------------------------------------------------------------------ worker

def _without(args: list[str], *options: str) -> list[str]:
    """``args`` less each ``--option VALUE`` and ``--option=VALUE`` of these options."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            out.append(arg)
    return out


@worker_app.command("run")
def worker_run(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(help="Run N independent workers (devnet: consecutive dev keys).")] = 1,
    data_dir: Annotated[Path | None, typer.Option(help="State, store and scratch (default: <home>/worker-<address>).")]
    = None,
    stake: Annotated[str, typer.Option(help="Keep at least this much staked.")] = "1",
    max_tasks: Annotated[int, typer.Option(help="Tasks computed at once.")] = 2,
    programs: Annotated[str | None, typer.Option(help="Allow-list of built-in programs, comma separated.")] = None,
    user_programs: Annotated[bool, typer.Option(help="Accept jobs with user-supplied programs.")] = True,
    memory_mb: Annotated[int, typer.Option(help="Memory cap per task (resident memory, not address space).")] = 4096,
    min_window_blocks: Annotated[int, typer.Option(help="Refuse jobs whose lease or reveal window spans fewer of "
                                                        "this chain's blocks (a trap for timely workers).")] = 5,
    max_collateral_ratio: Annotated[float, typer.Option(help="Refuse jobs whose collateral exceeds this many times "
                                                             "the reward per replica.")] = 100.0,
    cpus_per_task: Annotated[int | None, typer.Option(help="Cores each task's thread pools are sized to "
                                                      "(default: this machine's cores / --max-tasks).")] = None,
    disk_mb: Annotated[int, typer.Option(help="Bytes a task may write, at most (jobs ask up to this).")] = 16384,
    sandbox: Annotated[bool, typer.Option(help="Run tasks in a bubblewrap sandbox (without one, user programs "
                                               "are refused).")] = True,
    port: Annotated[int, typer.Option(help="Port serving this worker's outputs (0: free port).")] = 0,
    host: Annotated[str, typer.Option(help="Interface serving this worker's outputs and /metrics.")] = "127.0.0.1",
    public_url: Annotated[str | None, typer.Option(
        help="URL others reach this worker at, announced on chain (default: http://HOST:PORT as bound).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between chain polls.")] = 0.25,
    confirmations: Annotated[int, typer.Option(
        min=0, help="Blocks a won round must be deep before this worker reveals its result (which publishes it): "
                    "on a chain that can reorg, a win on a vanished branch would leak it. 0 on a devnet.")] = 0,
    follow_heads: Annotated[bool, typer.Option(help="Learn of new blocks by subscription (eth_subscribe over the "
                                                    "RPC address's WebSocket) where the node offers it; "
                                                    "otherwise one eth_blockNumber per poll.")] = True,
    gpus: Annotated[str, typer.Option(help="auto (NVML), none, or a fake pool such as fake:2x80GB.")] = "auto",
    gpu_policy: Annotated[str, typer.Option(help="binpack or spread.")] = "binpack",
    mps: Annotated[bool, typer.Option(help="Start and supervise an MPS control daemon so GPU compute shares are "
                                           "enforced (otherwise tasks on a card are time-sliced).")] = False,
    mps_control: Annotated[str, typer.Option(hidden=True)] = "nvidia-cuda-mps-control",
    online_slo_ms: Annotated[float | None, typer.Option(help="Also serve online /embed with this p99 SLO; offline "
                                                        "tasks yield to it.")] = None,
    online_port: Annotated[int, typer.Option(help="Port of the online service (0: free port).")] = 0,
    accept_token: Annotated[list[str] | None, typer.Option(help="Also take jobs paid in this ERC-20 (its address; "
                                                                 "repeat for several). Jobs in other tokens are "
                                                                 "refused.")] = None,
) -> None:
    """Stake, opt in to the lottery, compute the tasks you are drawn for, commit, reveal, collect, withdraw."""
    import logging
    import subprocess
    import sys

    s = settings(ctx)
    explicit = "account_index" in (ctx.obj or {}) or "SHARDEX_ACCOUNT_INDEX" in os.environ
    if not explicit and not s.private_key and not s.keystore and s.on_devnet:
        # Requesters default to dev key 0: workers start at 1, so the two never share a nonce.
        s = s.model_copy(update={"account_index": FIRST_WORKER_DEV_KEY})
    if count > 1:
        if s.private_key or s.keystore or not s.on_devnet:
            raise fail(False, ShardexError("--count > 1 uses consecutive devnet dev keys; elsewhere start one "
                                           "process per key"))
        child_args = _without(sys.argv[1:], "--count", "--account-index")
        children = [subprocess.Popen([sys.executable, "-m", "shardex_cli", "--account-index",
                                      str(s.account_index + i), *child_args]) for i in range(count)]
        import signal as signals

        def forward(signum, _frame) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)  # each worker drains, withdraws and exits on its own

        signals.signal(signals.SIGTERM, forward)
        signals.signal(signals.SIGINT, forward)
        for child in children:
            child.wait()
        return

    from shardex.chain import ChainClient
    from worker.agent import Agent, WorkerOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        account = s.account()
        from shardex.secrets import scrub_environ

        scrub_environ()  # read once: out of this process's environment before any task starts
        opts = WorkerOptions(
            data_dir=data_dir or s.home / f"worker-{account.address.lower()}", stake=amount_arg(stake),
            max_tasks=max_tasks, programs=frozenset(programs.split(",")) if programs else None,
            allow_user_programs=user_programs, memory_mb=memory_mb, cpus_per_task=cpus_per_task, disk_mb=disk_mb,
            sandbox=sandbox, min_window_blocks=min_window_blocks, max_collateral_ratio=max_collateral_ratio,
            port=port, host=host, confirmations=confirmations, public_url=public_url.rstrip("/") if public_url else None, poll_interval=poll, follow_heads=follow_heads, gpus=gpus, gpu_policy=gpu_policy, mps=mps,
            mps_control=mps_control, online_slo_ms=online_slo_ms, online_port=online_port,
            accept_tokens=frozenset(t.lower() for t in accept_token or ()))
        deployment = s.deployment()
        chain = ChainClient(s.rpc_url or "", deployment, account, **s.chain_options())
        asyncio.run(Agent(s.rpc_url or "", deployment, account, opts, chain=chain).run())
    except ShardexError as exc:
        raise fail(False, exc) from None


# ------------------------------------------------------------------ keys

@key_app.command("new")
def key_new(path: Annotated[Path, typer.Argument(help="Where to write the encrypted keystore.")],
            as_json: JsonOpt = False) -> None:
    """Create a new key in an encrypted keystore (password: SHARDEX_KEYSTORE_PASSWORD or prompt)."""

    from eth_account import Account

    password = os.environ.get("SHARDEX_KEYSTORE_PASSWORD") or typer.prompt("password", hide_input=True,
                                                                             confirmation_prompt=True)
    if path.exists():
        raise fail(as_json, ShardexError(f"{path} exists; refusing to overwrite a key"))
    account = Account.create()
    path.write_text(json.dumps(Account.encrypt(account.key, password)), encoding="utf-8")
    path.chmod(0o600)
    emit(as_json, {"address": account.address, "keystore": str(path)}, f"{account.address} -> {path}")


@app.command("demo")
def demo(protocol: Annotated[bool, typer.Option("--protocol", help="Only the narrated on-chain lifecycle.")] = False,
         keep: Annotated[bool | None, typer.Option(
             "--keep/--no-keep", help="Keep the gateway and its dashboard up until Ctrl-C (default: yes, "
                                      "unless --json).")] = None,
         port: Annotated[int, typer.Option(help="Gateway port (0: any free port).")] = 8080,
         as_json: JsonOpt = False) -> None:
    """The product on one machine: devnet, gateway and dashboard, 3 workers, a wordcount job, the money trail."""
    if protocol:
        from shardex_cli.protocol_demo import run_demo as run_protocol

        summary = asyncio.run(run_protocol(quiet=as_json))
    else:
        from shardex_cli.demo import run_demo

        summary = run_demo(quiet=as_json, keep=(not as_json) if keep is None else keep, port=port)
    if as_json:
        typer.echo(json.dumps(summary))
