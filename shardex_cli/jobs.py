"""Requester commands: submit a job, follow it, inspect it, get its result."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from shardex import jobs
from shardex.chain import ChainClient
from shardex.chain.models import Job
from shardex.errors import ShardexError
from shardex.units import AmountError, format_eth

from shardex_cli.base import (
    JsonOpt,
    amount_arg,
    emit,
    fail,
    job_app,
    run,
    settings,
    token_units_arg,
)


# ------------------------------------------------------------------ jobs

def job_json(job: Job) -> dict[str, Any]:
    data = asdict(job)
    data["state"] = job.state.name
    data["open_escrow"] = job.open_escrow
    return data


def money(job: Job, amount: int) -> str:
    """An amount of the job's currency: ETH, or units of its token."""
    return f"{amount} units of {job.token}" if job.pays_in_token else format_eth(amount)


@job_app.command("show")
def job_show(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """A job's phase, money and every task's state."""
    async def body(c: ChainClient):
        job = await c.job(job_id)
        tasks = await asyncio.gather(*(c.task(job_id, t) for t in range(job.tasks)))
        data = job_json(job)
        data["tasks"] = [{"task_id": i, "round": t.round, "seats": t.seats or job.margin, "seated": t.seated,
                          "committed": t.committed, "settled": t.settled, "reveal_deadline": t.reveal_deadline}
                         for i, t in enumerate(tasks)]
        lines = [f"job {job_id}: {job.state.name}  tasks {job.settled_tasks}/{job.tasks} settled  "
                 f"margin {job.margin} (epsilon {job.epsilon_ppm / 1e6:g} vs adversary {job.adversary_ppm / 1e6:g})",
                 f"  escrow {money(job, job.escrow)}  paid {money(job, job.paid)}  "
                 f"refunded {money(job, job.refunded)}"]
        for t in data["tasks"]:
            kind = "map" if t["task_id"] < job.map_tasks else "reduce"
            state = "settled" if t["settled"] else f"seated {t['seated']}/{t['seats']} committed {t['committed']}"
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
    epsilon: Annotated[float, typer.Option(help="The chance of a wrong result being accepted for a task that you "
                                                "accept.")] = 1e-3,
    adversary: Annotated[float, typer.Option(help="The share of the workers' stake you assume dishonest (< 0.5); "
                                                  "with --epsilon it sets how many drawn workers must agree. "
                                                  "0 trusts any one worker.")] = 0.1,
    extra_seats: Annotated[int | None, typer.Option(help="Escalation seats to prefund (paid only if used); "
                                                         "default two per task plus one round.")] = None,
    reward: Annotated[str, typer.Option(help="Per replica, e.g. 0.001 or 1000gwei; with --token, in the "
                                             "token's smallest unit (2500000 is 2.5 of a 6-decimal token).")]
    = "0.001",
    token: Annotated[str | None, typer.Option(help="Pay in this ERC-20 (its address) instead of ETH; the escrow "
                                                   "is approved and taken from your balance of it.")] = None,
    collateral: Annotated[str, typer.Option(help="Stake a drawn worker risks per seat (at least 2x the reward).")]
    = "0.01",
    pattern: Annotated[str | None, typer.Option(help="Regex for grep.")] = None,
    lease: Annotated[int, typer.Option(help="Seconds a drawn worker has to commit.")] = 600,
    max_rounds: Annotated[int, typer.Option(help="Rounds a task may take before the job fails.")] = 8,
    reveal_window: Annotated[int, typer.Option(help="Seconds to open a winning result.")] = 120,
    timeout: Annotated[int, typer.Option(help="Seconds before the job can be expired.")] = 3600,
    task_timeout: Annotated[float, typer.Option(help="Wall-clock limit per task run.")] = 600.0,
    memory_mb: Annotated[int, typer.Option(help="Memory a task may use.")] = 2048,
    disk_mb: Annotated[int, typer.Option(help="Bytes a task may write (outputs and temporary files).")] = 4096,
    gpus: Annotated[int, typer.Option(help="GPUs each task needs (drawn from workers with GPUs).")] = 0,
    gpu_memory_mb: Annotated[int, typer.Option(help="GPU memory each task needs, across its GPUs.")] = 0,
    gpu_share: Annotated[float, typer.Option(help="Part of each card's compute a task needs, (0, 1]: two tasks "
                                                  "of 0.5 share one card.")] = 1.0,
    wait: Annotated[bool, typer.Option("--wait", help="Serve the inputs and show progress until the job ends.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Split and store the input, post the job with its escrow; --wait follows it to the end."""
    from shardex.requester import SubmitRequest, post, prepare
    from shardex.serving import announced_endpoint, serves, serving
    from shardex.storage import EmbeddedStore

    req = SubmitRequest(program=program, program_file=program_file, input=input, map_shards=map_shards,
                        reduce_shards=reduce_shards, epsilon=epsilon, adversary=adversary, extra_seats=extra_seats,
                        reward=amount_arg(reward) if token is None else token_units_arg(reward),
                        collateral=amount_arg(collateral), token=token,
                        params={"pattern": pattern} if pattern is not None else {}, lease_duration=lease,
                        max_rounds=max_rounds,
                        reveal_window=reveal_window, job_timeout=timeout, timeout_s=task_timeout,
                        memory_mb=memory_mb, disk_mb=disk_mb, gpus=gpus, gpu_memory_mb=gpu_memory_mb,
                        gpu_share=gpu_share)

    async def go() -> dict:
        s = settings(ctx)
        store = EmbeddedStore(s.content_dir)
        async with ChainClient(s.rpc_url or "", s.deployment(), s.account(), **s.chain_options()) as c:
            spec = await prepare(req, store)
            spec_cid = str(jobs.spec_cid(spec.digest))
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

    from shardex.requester import status

    job = await c.job(job_id)
    started, explained = asyncio.get_running_loop().time(), False
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), disable=quiet,
                  transient=False) as bars:
        phases = {"map": (0, job.map_tasks), "reduce": (job.map_tasks, job.tasks)}
        rows = {}
        for name, (lo, hi) in phases.items():
            total = (hi - lo) * job.margin
            rows[name] = (bars.add_task(f"{name}: drawn", total=total), bars.add_task(f"{name}: committed",
                          total=total), bars.add_task(f"{name}: settled tasks", total=hi - lo))
        while True:
            job = await c.job(job_id)
            tasks = await asyncio.gather(*(c.task(job_id, t) for t in range(job.tasks)))
            for name, (lo, hi) in phases.items():
                drawn_row, committed_row, settled_row = rows[name]
                part = tasks[lo:hi]
                done = [t.settled or t.has_winner for t in part]
                bars.update(drawn_row, completed=sum(job.margin if d else min(t.seated, job.margin)
                                                     for t, d in zip(part, done, strict=True)))
                bars.update(committed_row, completed=sum(job.margin if d else min(t.committed, job.margin)
                                                         for t, d in zip(part, done, strict=True)))
                bars.update(settled_row, completed=sum(t.settled for t in part))
            if not job.state.active:
                if job.state.name == "FAILED" and not quiet:
                    bars.console.print(f"failed: {(await status(c, job_id))['failure']}")
                return job.state.name
            idle = not any(t.seated or t.settled for t in tasks)
            if idle and not quiet and not explained and asyncio.get_running_loop().time() - started > 10:
                explained = True  # say once why no worker has been drawn yet
                data = await status(c, job_id)
                for reason in data["waiting"]:
                    bars.console.print(f"waiting: {reason}")
                if not data["waiting"]:
                    bars.console.print("no worker drawn yet, and none has refused the job: are workers running?")
            await asyncio.sleep(0.5)


@job_app.command("status")
def job_status(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Phase, every task's state, who did what, money and gas."""
    from shardex.requester import status

    async def body(c: ChainClient):
        data = await status(c, job_id)
        lines = [f"job {job_id}: {data['state']}  {data['tasks_settled']}/{data['tasks']} tasks settled  "
                 f"margin {data['margin']} (epsilon {data['epsilon']:g} vs adversary {data['adversary_share']:g})",
                 f"  escrow {format_eth(data['escrow'])}  paid {format_eth(data['paid'])}  "
                 f"refunded {format_eth(data['refunded'])}  "
                 f"slashes {data['slashes']}  gas (all parties) {data['gas_used_all_parties']:,}",
                 f"  fees (all parties) {format_eth(data['fees_wei_all_parties'])}: L2 execution "
                 f"{format_eth(data['l2_fees_wei'])}, L1 data {format_eth(data['l1_data_fees_wei'])} "
                 f"({data['l1_fee_source']})"]
        for address, why in data["refusals"].items():
            lines.append(f"  refused by {address}: {why}")
        for why in data["waiting"]:
            lines.append(f"  waiting: {why}")
        if data["failure"]:
            lines.append(f"  failed: {data['failure']}")
        for t in data["task_list"]:
            who = ", ".join(f"{w[:10]}…:{a}" for w, a in t["workers"].items()) or "-"
            state = "settled" if t["settled"] else f"round {t['round']} seated {t['seated']}/{t['seats']}"
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
    """Cancel your job before any worker was drawn; the escrow is credited back."""
    _simple_tx(ctx, as_json, lambda c: c.cancel_job(job_id), f"cancelled job {job_id}")


@job_app.command("expire")
def job_expire(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Mark a job past its deadline as expired."""
    _simple_tx(ctx, as_json, lambda c: c.expire_job(job_id), f"expired job {job_id}")


@job_app.command("refund")
def job_refund(ctx: typer.Context, job_id: int, as_json: JsonOpt = False) -> None:
    """Credit the requester what a finished job did not spend."""
    _simple_tx(ctx, as_json, lambda c: c.refund(job_id), f"refunded job {job_id}")
