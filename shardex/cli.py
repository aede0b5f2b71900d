"""The ``shardex`` command line.

Every command takes ``--json`` for machine-readable output. Errors are printed
as the contract's custom error name and arguments (``JobMarketTaskFull(...)``)
and exit with status 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from shardex.chain import ChainClient
from shardex.chain.errors import ContractRevert
from shardex.chain.models import Job
from shardex.config import Settings
from shardex.errors import ShardexError
from shardex.units import AmountError, format_eth, parse_amount

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
        account = s.account() if need_account else (s.account() if s.private_key or s.on_devnet else None)
        async with ChainClient(s.rpc_url or "", s.deployment(), account) as client:
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


# ------------------------------------------------------------------ devnet

@devnet_app.command("up")
def devnet_up_cmd(ctx: typer.Context,
                  state: Annotated[Path | None, typer.Option(help="Persist the chain in FILE across restarts.")] = None,
                  as_json: JsonOpt = False) -> None:
    """Start Anvil on a free loopback port and deploy the contracts."""
    from shardex.devnet import devnet_up

    try:
        info = devnet_up(settings(ctx).home, state_file=state.resolve() if state else None)
    except ShardexError as exc:
        raise fail(as_json, exc) from None
    data = {k: v for k, v in info.public_json().items()}
    emit(as_json, data, json.dumps({k: data[k] for k in ("rpc_url", "chain_id", "market", "registry", "pid")},
                                   indent=2))


@devnet_app.command("down")
def devnet_down_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Stop the running devnet (its --state file keeps the chain)."""
    from shardex.devnet import devnet_down

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
               unbonding_delay: Annotated[int, typer.Option(help="Seconds stake waits before it can leave.")] = 7 * 24 * 3600,
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
    emit(as_json, data, f"JobMarket {deployment.market}\nWorkerRegistry {deployment.registry}\nwrote {path}")


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
    """Stake, locked collateral, unbonding and reputation counters of a worker."""
    async def body(c: ChainClient):
        w = await c.worker(address)
        text = (f"worker {w.address}\n  stake {format_eth(w.stake)} (locked {format_eth(w.locked)})\n"
                f"  unbonding {format_eth(w.unbonding)} ready at {w.unbonding_ready_at}\n"
                f"  settled {w.settled}  slashed {w.slashed}")
        return asdict(w), text
    run(ctx, as_json, body, need_account=address is None)


# ------------------------------------------------------------------ jobs

def job_json(job: Job) -> dict[str, Any]:
    data = asdict(job)
    data["state"] = job.state.name
    data["open_escrow"] = job.open_escrow
    return data


@job_app.command("show")
def job_show(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """A job's phase, money and every task's state."""
    async def body(c: ChainClient):
        job = await c.job(job_id)
        tasks = await asyncio.gather(*(c.task(job_id, t) for t in range(job.tasks)))
        data = job_json(job)
        data["tasks"] = [{"task_id": i, "round": t.round, "claimed": t.claimed, "committed": t.committed,
                          "revealed": t.revealed, "settled": t.settled, "reveal_deadline": t.reveal_deadline}
                         for i, t in enumerate(tasks)]
        lines = [f"job {job_id}: {job.state.name}  tasks {job.settled_tasks}/{job.tasks} settled  "
                 f"r={job.replication} q={job.quorum}",
                 f"  escrow {format_eth(job.escrow)}  paid {format_eth(job.paid)}  owed {format_eth(job.owed)}  "
                 f"refunded {format_eth(job.refunded)}"]
        for t in data["tasks"]:
            kind = "map" if t["task_id"] < job.map_tasks else "reduce"
            state = "settled" if t["settled"] else f"claimed {t['claimed']} committed {t['committed']}"
            lines.append(f"  task {t['task_id']:>3} {kind:<6} round {t['round']}  {state}")
        return data, "\n".join(lines)
    run(ctx, as_json, body, need_account=False)


@job_app.command("submit")
def job_submit(
    ctx: typer.Context,
    input: Annotated[str, typer.Option("--input", help="A file of records (lines) or a CID.")],
    program: Annotated[str | None, typer.Option(help="Built-in: wordcount, grep, sort, inverted-index, embed.")] = None,
    program_file: Annotated[Path | None, typer.Option(help="A Python file defining map(record) and reduce(key, values)."
                                                       )] = None,
    map_shards: Annotated[int, typer.Option("--map-shards")] = 4,
    reduce_shards: Annotated[int, typer.Option("--reduce-shards")] = 1,
    replication: Annotated[int, typer.Option("--replication")] = 1,
    quorum: Annotated[int, typer.Option("--quorum")] = 1,
    reward: Annotated[str, typer.Option(help="Per replica, e.g. 0.001 or 1000gwei.")] = "0.001",
    collateral: Annotated[str, typer.Option(help="Stake a worker risks per claim.")] = "0.01",
    pattern: Annotated[str | None, typer.Option(help="Regex for grep.")] = None,
    lease: Annotated[int, typer.Option(help="Seconds a claim has to commit.")] = 600,
    reveal_window: Annotated[int, typer.Option(help="Seconds to reveal once all replicas committed.")] = 120,
    timeout: Annotated[int, typer.Option(help="Seconds before the job can be expired.")] = 3600,
    task_timeout: Annotated[float, typer.Option(help="Wall-clock limit per task run.")] = 600.0,
    memory_mb: Annotated[int, typer.Option(help="Memory a task may use.")] = 2048,
    gpus: Annotated[int, typer.Option(help="GPUs each task needs (only fitting workers claim).")] = 0,
    gpu_memory_mb: Annotated[int, typer.Option(help="GPU memory each task needs, across its GPUs.")] = 0,
    escrow: Annotated[str | None, typer.Option(hidden=True)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Serve the inputs and show progress until the job ends.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Split and store the input, post the job with its escrow; --wait follows it to the end."""
    from shardex.requester import SubmitRequest, post, prepare
    from shardex.serving import announced_endpoint, serves, serving
    from shardex.storage import EmbeddedStore

    req = SubmitRequest(program=program, program_file=program_file, input=input, map_shards=map_shards,
                        reduce_shards=reduce_shards, replication=replication, quorum=quorum,
                        reward=amount_arg(reward), collateral=amount_arg(collateral),
                        params={"pattern": pattern} if pattern is not None else {}, lease_duration=lease,
                        reveal_window=reveal_window, job_timeout=timeout, timeout_s=task_timeout,
                        memory_mb=memory_mb, gpus=gpus, gpu_memory_mb=gpu_memory_mb,
                        escrow=amount_arg(escrow) if escrow is not None else None)

    async def go() -> dict:
        s = settings(ctx)
        store = EmbeddedStore(s.content_dir)
        async with ChainClient(s.rpc_url or "", s.deployment(), s.account()) as c:
            spec = await prepare(req, store)
            spec_cid = str(__import__("shardex.jobs", fromlist=["spec_cid"]).spec_cid(spec.digest))
            if not wait:
                url = await announced_endpoint(c, c.address)
                if url is None or not await serves(url, spec_cid):
                    raise ShardexError("nobody serves this job's inputs: run `shardex store serve` in another "
                                       "terminal (it announces your endpoint), or submit with --wait")
                job_id = await post(c, req, spec)
                return {"job_id": job_id, "spec_cid": spec_cid, "map_shards": spec.map_shards}
            async with serving(store) as url:
                await c.announce(url)
                job_id = await post(c, req, spec)
                if not as_json:
                    typer.echo(f"posted job {job_id} (spec {spec_cid}); serving inputs at {url}")
                final = await follow(c, job_id, quiet=as_json)
            return {"job_id": job_id, "spec_cid": spec_cid, "state": final}

    try:
        data = asyncio.run(go())
    except (ShardexError, AmountError) as exc:
        raise fail(as_json, exc) from None
    emit(as_json, data, f"job {data['job_id']}" + (f" {data['state']}" if "state" in data else " posted"))


async def follow(c: ChainClient, job_id: int, quiet: bool = False) -> str:
    """Progress bars per phase until the job ends; returns the final state name."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    job = await c.job(job_id)
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), disable=quiet,
                  transient=False) as bars:
        phases = {"map": (0, job.map_tasks), "reduce": (job.map_tasks, job.tasks)}
        rows = {}
        for name, (lo, hi) in phases.items():
            total = (hi - lo) * job.replication
            rows[name] = (bars.add_task(f"{name}: claimed", total=total), bars.add_task(f"{name}: committed",
                          total=total), bars.add_task(f"{name}: settled tasks", total=hi - lo))
        while True:
            job = await c.job(job_id)
            tasks = await asyncio.gather(*(c.task(job_id, t) for t in range(job.tasks)))
            for name, (lo, hi) in phases.items():
                claimed_row, committed_row, settled_row = rows[name]
                part = tasks[lo:hi]
                bars.update(claimed_row, completed=sum(t.claimed if not t.settled else job.replication for t in part))
                bars.update(committed_row,
                            completed=sum(t.committed if not t.settled else job.replication for t in part))
                bars.update(settled_row, completed=sum(t.settled for t in part))
            if not job.state.active:
                return job.state.name
            await asyncio.sleep(0.5)


@job_app.command("status")
def job_status(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Phase, every task's state, who did what, money and gas."""
    from shardex.requester import status

    async def body(c: ChainClient):
        data = await status(c, job_id)
        lines = [f"job {job_id}: {data['state']}  {data['tasks_settled']}/{data['tasks']} tasks settled  "
                 f"r={data['replication']} q={data['quorum']}",
                 f"  escrow {format_eth(data['escrow'])}  paid {format_eth(data['paid'])}  "
                 f"owed {format_eth(data['owed'])}  refunded {format_eth(data['refunded'])}  "
                 f"slashes {data['slashes']}  gas (all parties) {data['gas_used_all_parties']:,}"]
        for t in data["task_list"]:
            who = ", ".join(f"{w[:10]}…:{a}" for w, a in t["workers"].items()) or "-"
            state = "settled" if t["settled"] else f"round {t['round']} claimed {t['claimed']}"
            lines.append(f"  task {t['task_id']:>4} {t['kind']:<6} {state:<26} {who}")
        return data, "\n".join(lines)
    run(ctx, as_json, body, need_account=False)


@job_app.command("result")
def job_result(ctx: typer.Context, job_id: int,
               output: Annotated[Path, typer.Option("-o", "--output", help="File to write the result to.")],
               as_json: JsonOpt = False) -> None:
    """Fetch, verify and assemble the reduce outputs (in partition order) into OUTPUT."""
    from shardex.requester import result
    from shardex.storage import EmbeddedStore

    async def body(c: ChainClient):
        store = EmbeddedStore(settings(ctx).content_dir)
        data = await result(c, store, job_id, output)
        return data, f"wrote {data['bytes']:,} verified bytes to {output}"
    run(ctx, as_json, body, need_account=False)


def _simple_tx(ctx: typer.Context, as_json: bool, make, verb: str) -> None:
    async def body(c: ChainClient):
        receipt = await make(c)
        return {"tx": receipt.tx_hash, "gas_used": receipt.gas_used}, f"{verb} (tx {receipt.tx_hash})"
    run(ctx, as_json, body)


@job_app.command("cancel")
def job_cancel(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Cancel your job before any claim; the escrow is credited back."""
    _simple_tx(ctx, as_json, lambda c: c.cancel_job(job_id), f"cancelled job {job_id}")


@job_app.command("expire")
def job_expire(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Mark a job past its deadline as expired."""
    _simple_tx(ctx, as_json, lambda c: c.expire_job(job_id), f"expired job {job_id}")


@job_app.command("refund")
def job_refund(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Credit the requester what a finished job did not spend."""
    _simple_tx(ctx, as_json, lambda c: c.refund(job_id), f"refunded job {job_id}")


# ------------------------------------------------------------------ money

@app.command("withdraw")
def withdraw(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Withdraw everything credited to you: rewards, refunds and slashed collateral."""
    async def body(c: ChainClient):
        market, registry = await c.credits(), await c.slash_credits()
        txs = []
        if market:
            txs.append((await c.withdraw()).tx_hash)
        if registry:
            txs.append((await c.withdraw_slash_credits()).tx_hash)
        total = market + registry
        return ({"market": market, "registry": registry, "total": total, "txs": txs},
                f"withdrew {format_eth(total)}" if total else "nothing to withdraw")
    run(ctx, as_json, body)


@app.command("account")
def account(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Your address, balance and withdrawable credits."""
    async def body(c: ChainClient):
        data = {"address": c.address, "balance": await c.balance(), "market_credits": await c.credits(),
                "registry_credits": await c.slash_credits()}
        text = (f"{data['address']}\n  balance {format_eth(data['balance'])}\n"
                f"  withdrawable {format_eth(data['market_credits'] + data['registry_credits'])}")
        return data, text
    run(ctx, as_json, body)


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
                async with ChainClient(s.rpc_url or "", s.deployment(), s.account()) as c:
                    await c.announce(url)
            typer.echo(url, err=False)
            await asyncio.Event().wait()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass
    except ShardexError as exc:
        raise fail(False, exc) from None


# ------------------------------------------------------------------ worker

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
    memory_mb: Annotated[int, typer.Option(help="Memory cap per task.")] = 4096,
    port: Annotated[int, typer.Option(help="Port serving this worker's outputs (0: free port).")] = 0,
    poll: Annotated[float, typer.Option(help="Seconds between chain polls.")] = 0.25,
    gpus: Annotated[str, typer.Option(help="auto (NVML), none, or a fake pool such as fake:2x80GB.")] = "auto",
    gpu_policy: Annotated[str, typer.Option(help="binpack or spread.")] = "binpack",
    online_slo_ms: Annotated[float | None, typer.Option(help="Also serve online /embed with this p99 SLO; offline "
                                                        "tasks yield to it.")] = None,
    online_port: Annotated[int, typer.Option(help="Port of the online service (0: free port).")] = 0,
    online_standin: Annotated[bool, typer.Option(hidden=True)] = False,
    test_corrupt_output: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Stake, follow the chain, claim fitting tasks, compute, commit, reveal, collect, withdraw."""
    import logging
    import subprocess
    import sys

    s = settings(ctx)
    if count > 1:
        if s.private_key or s.keystore or not s.on_devnet:
            raise fail(False, ShardexError("--count > 1 uses consecutive devnet dev keys; elsewhere start one "
                                           "process per key"))
        base = s.account_index
        args = [a for a in sys.argv[1:]]
        children = []
        for i in range(count):
            child_args = [a for a in args if not a.startswith("--count")]
            if "--count" in args:
                idx = args.index("--count")
                child_args = args[:idx] + args[idx + 2:]
            children.append(subprocess.Popen([sys.executable, "-m", "shardex.cli", "--account-index",
                                              str(base + i), *child_args]))
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

    from worker.agent import Agent, WorkerOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        account = s.account()
        opts = WorkerOptions(
            data_dir=data_dir or s.home / f"worker-{account.address.lower()}", stake=amount_arg(stake),
            max_tasks=max_tasks, programs=frozenset(programs.split(",")) if programs else None,
            allow_user_programs=user_programs, memory_mb=memory_mb, port=port, poll_interval=poll,
            gpus=gpus, gpu_policy=gpu_policy, online_slo_ms=online_slo_ms, online_port=online_port,
            online_standin=online_standin, corrupt_output=test_corrupt_output)
        asyncio.run(Agent(s.rpc_url or "", s.deployment(), account, opts).run())
    except ShardexError as exc:
        raise fail(False, exc) from None


# ------------------------------------------------------------------ keys

@key_app.command("new")
def key_new(path: Annotated[Path, typer.Argument(help="Where to write the encrypted keystore.")],
            as_json: JsonOpt = False) -> None:
    """Create a new key in an encrypted keystore (password: SHARDEX_KEYSTORE_PASSWORD or prompt)."""
    import os

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
         as_json: JsonOpt = False) -> None:
    """The product on one machine: devnet, 3 workers, a wordcount job, the money trail."""
    if protocol:
        from shardex.protocol_demo import run_demo as run_protocol

        summary = asyncio.run(run_protocol(quiet=as_json))
    else:
        from shardex.demo import run_demo

        summary = run_demo(quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary))


if __name__ == "__main__":
    app()
