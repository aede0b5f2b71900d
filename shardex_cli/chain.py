"""Devnet, deployment, stake and money commands."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from deploy.deploy import DEFAULT_UNBONDING_DELAY
from shardex.chain import ChainClient
from shardex.errors import ShardexError
from shardex.units import format_eth

from shardex_cli.base import (
    JsonOpt,
    amount_arg,
    app,
    devnet_app,
    emit,
    fail,
    run,
    settings,
    stake_app,
)


# ------------------------------------------------------------------ devnet

@devnet_app.command("up")
def devnet_up_cmd(ctx: typer.Context,
                  state: Annotated[Path | None, typer.Option(help="Persist the chain in FILE across restarts.")] = None,
                  network: Annotated[str | None, typer.Option(
                      help="Anvil's network mode, e.g. optimism (OP Stack transactions and fees).")] = None,
                  block_time: Annotated[float | None, typer.Option(
                      help="Mine a block every N seconds, as a real chain does (default: one per transaction).")]
                  = None,
                  as_json: JsonOpt = False) -> None:
    """Start Anvil on a free loopback port (with --state, the port it had before if free) and deploy the contracts."""
    from deploy.devnet import devnet_up

    try:
        if network is not None and network not in ("optimism",):
            raise ShardexError(f"--network {network}: Anvil knows only `optimism`")
        info = devnet_up(settings(ctx).home, state_file=state.resolve() if state else None, network=network,
                         block_time=block_time)
    except ShardexError as exc:
        raise fail(as_json, exc) from None
    data = info.public_json()
    emit(as_json, data, json.dumps({k: data[k] for k in ("rpc_url", "chain_id", "market", "registry", "pid")},
                                   indent=2))


@devnet_app.command("down")
def devnet_down_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Stop the running devnet (its --state file keeps the chain)."""
    from deploy.devnet import devnet_down

    info = devnet_down(settings(ctx).home)
    emit(as_json, {"stopped": info is not None, "pid": info.pid if info else None},
         f"stopped devnet pid {info.pid}" if info else "no devnet was running")


@devnet_app.command("status")
def devnet_status_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the running devnet, if any."""
    from shardex.devnet import load_devnet

    info = load_devnet(settings(ctx).home)
    data = {"running": info is not None, **({k: v for k, v in asdict(info).items() if k != "dev_keys"} if info else {})}
    emit(as_json, data, json.dumps(data, indent=2) if info else "no devnet running")


@app.command("deploy")
def deploy_cmd(ctx: typer.Context,
               unbonding_delay: Annotated[int, typer.Option(help="Seconds stake waits before it can leave.")]
               = DEFAULT_UNBONDING_DELAY,
               out_dir: Annotated[Path, typer.Option(help="Where <chainId>.json is written.")] = Path("deployments"),
               as_json: JsonOpt = False) -> None:
    """Deploy the contracts to --rpc-url (or SHARDEX_RPC_URL) with your key."""
    from deploy.deploy import deploy, write_deployment

    s = settings(ctx)
    try:
        if not s.rpc_url:
            raise ShardexError("no RPC URL: pass --rpc-url or set SHARDEX_RPC_URL")
        deployment = asyncio.run(deploy(s.rpc_url, s.account(), unbonding_delay=unbonding_delay))
    except ShardexError as exc:
        raise fail(as_json, exc) from None
    path = write_deployment(deployment, out_dir)
    data = {**deployment.to_json(), "file": str(path)}
    emit(as_json, data, f"JobMarket {deployment.market}\nWorkerPool {deployment.registry}\nwrote {path}")


# ------------------------------------------------------------------ stake

@stake_app.command("add")
def stake_add(ctx: typer.Context, amount: Annotated[str, typer.Argument(help="e.g. 1.5 (ETH), 20gwei")],
              as_json: JsonOpt = False) -> None:
    """Stake ETH as a worker (registers on first use)."""
    wei = amount_arg(amount)

    async def body(c: ChainClient):
        receipt = await c.stake(wei)
        w = await c.worker()
        return ({"tx": receipt.tx_hash, "stake": w.stake, "gas_used": receipt.gas_used},
                f"staked {format_eth(wei)}; total stake {format_eth(w.stake)}")
    run(ctx, as_json, body)


@stake_app.command("unbond")
def stake_unbond(ctx: typer.Context, amount: str, as_json: JsonOpt = False) -> None:
    """Start unbonding free stake; withdraw it after the unbonding delay."""
    wei = amount_arg(amount)

    async def body(c: ChainClient):
        receipt = await c.request_unbond(wei)
        w = await c.worker()
        return ({"tx": receipt.tx_hash, "unbonding": w.unbonding, "ready_at": w.unbonding_ready_at},
                f"unbonding {format_eth(w.unbonding)}, withdrawable at unix time {w.unbonding_ready_at}")
    run(ctx, as_json, body)


@stake_app.command("withdraw")
def stake_withdraw(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Withdraw stake whose unbonding delay has passed."""
    async def body(c: ChainClient):
        w = await c.worker()
        receipt = await c.withdraw_unbonded()
        return ({"tx": receipt.tx_hash, "amount": w.unbonding}, f"withdrew {format_eth(w.unbonding)}")
    run(ctx, as_json, body)


@stake_app.command("show")
def stake_show(ctx: typer.Context, address: Annotated[str | None, typer.Argument()] = None,
               as_json: JsonOpt = False) -> None:
    """Stake, locked collateral, unbonding, lotteries entered and reputation counters of a worker."""
    async def body(c: ChainClient):
        w = await c.worker(address)
        classes = [c for c in range(8) if w.classes & (1 << c)]
        text = (f"worker {w.address}\n  stake {format_eth(w.stake)} (locked {format_eth(w.locked)})\n"
                f"  unbonding {format_eth(w.unbonding)} ready at {w.unbonding_ready_at}\n"
                f"  drawn for resource classes {classes or 'none (not opted in)'}\n"
                f"  settled {w.settled}  slashed {w.slashed}")
        return asdict(w), text
    run(ctx, as_json, body, need_account=address is None)




# ------------------------------------------------------------------ money

@app.command("withdraw")
def withdraw(ctx: typer.Context,
             token: Annotated[str | None, typer.Option(help="Withdraw what you are owed in this ERC-20 "
                                                             "(jobs paid in it) instead of ETH.")] = None,
             as_json: JsonOpt = False) -> None:
    """Withdraw everything credited to you: rewards and refunds. (Slashed collateral is
    burned, credited to no one.)"""
    async def body(c: ChainClient):
        if token is not None:
            total = await c.token_credits(token)
            txs = [(await c.withdraw_token(token)).tx_hash] if total else []
            text = f"withdrew {total} units of {token}" if total else "nothing to withdraw"
            return {"total": total, "token": token, "txs": txs}, text
        total = await c.credits()
        txs = [(await c.withdraw()).tx_hash] if total else []
        return ({"total": total, "txs": txs}, f"withdrew {format_eth(total)}" if total else "nothing to withdraw")
    run(ctx, as_json, body)


@app.command("account")
def account(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Your address, balance and withdrawable credits."""
    async def body(c: ChainClient):
        data = {"address": c.address, "balance": await c.balance(), "market_credits": await c.credits()}
        text = (f"{data['address']}\n  balance {format_eth(data['balance'])}\n"
                f"  withdrawable {format_eth(data['market_credits'])}")
        return data, text
    run(ctx, as_json, body)
