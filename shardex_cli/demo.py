"""``make demo``: the real product on one machine.

A devnet, the gateway with its live dashboard, four independent worker
processes renting out this machine, and a requester who signs in to the
gateway with their key (SIWE), submits a word count over Python's own
documentation (nothing is downloaded) and signs the transactions it returns,
watches it with progress bars (or in the dashboard), gets the verified result
from the gateway and sees where every wei went. The gateway stays up until
Ctrl-C so the dashboard can be browsed afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from deploy.devnet import free_port
from shardex.api_client import GatewayClient
from shardex.chain import ChainClient
from shardex.chain.models import ReplicaResolved, ResultRevealed
from shardex.config import Settings
from shardex.devnet import FIRST_WORKER_DEV_KEY
from shardex.serving import wait_http
from shardex.units import format_eth

REQUESTER = 9
WORKERS = 4  # the default error target (1e-3 against a 10% adversary) seats 4 distinct workers per task


def corpus(path: Path) -> int:
    from pydoc_data.topics import topics

    data = "\n".join(topics[k] for k in sorted(topics)).encode()
    path.write_bytes(data)
    return len(data)


_out = sys.stdout  # narration; stderr when --json owns stdout


def say(text: str) -> None:
    print(f"==> {text}", file=_out, flush=True)


def show(text: str) -> None:
    print(text, file=_out, flush=True)


def _port(preferred: int) -> int:
    """``preferred`` if it is free, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
        return s.getsockname()[1]


def run_demo(quiet: bool = False, keep: bool = False, port: int = 8080) -> dict:
    global _out
    _out = sys.stderr if quiet else sys.stdout
    home = Path(tempfile.mkdtemp(prefix="shardex-demo-"))
    env = {**os.environ, "SHARDEX_HOME": str(home)}
    cli = [sys.executable, "-m", "shardex_cli"]
    info = json.loads(subprocess.run([*cli, "devnet", "up", "--json"], env=env, check=True, capture_output=True,
                                     text=True).stdout)
    say(f"devnet up: Anvil at {info['rpc_url']}, JobMarket {info['market']}")
    gw_log = open(home / "gateway.log", "wb")  # noqa: SIM115 - handed to the child
    gw_port = _port(port)
    gateway = subprocess.Popen([*cli, "gateway", "--port", str(gw_port), "--poll", "0.25"], env=env, stdout=gw_log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{gw_port}"
    log = open(home / "workers.log", "wb")  # noqa: SIM115 - handed to the children
    workers = None
    try:
        if not wait_http(f"{url}/healthz", gateway):
            raise SystemExit(f"the gateway did not start; see {home / 'gateway.log'}")
        say(f"gateway up: dashboard {url}/dashboard/  API docs {url}/docs  metrics {url}/metrics")
        workers = subprocess.Popen([*cli, "worker", "run", "--count", str(WORKERS)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        say(f"{WORKERS} worker agents started (dev keys 0-{WORKERS - 1}), each staking 1 ETH; "
            f"log: {home / 'workers.log'}")
        os.environ["SHARDEX_HOME"] = str(home)  # this process is the requester of the demo
        summary = asyncio.run(_requester(home, info, workers, url))
        summary["dashboard"] = f"{url}/dashboard/"
        if keep:
            say(f"dashboard: {url}/dashboard/#/jobs/{summary['job_id']}  (Ctrl-C to stop)")
            try:
                gateway.wait()
            except KeyboardInterrupt:
                pass
        return summary
    finally:
        if workers is not None and workers.poll() is None:
            os.killpg(workers.pid, signal.SIGTERM)
            workers.wait(60)
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGINT)
            try:
                gateway.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(gateway.pid, signal.SIGKILL)
        log.close()
        gw_log.close()
        subprocess.run([*cli, "devnet", "down"], env=env, capture_output=True)
        say(f"devnet down; everything this run wrote is in {home}")


async def _requester(home: Path, info: dict, workers: subprocess.Popen, url: str) -> dict:
    settings = Settings(account_index=REQUESTER)
    text = home / "pydoc.txt"
    size = corpus(text)
    async with ChainClient(info["rpc_url"], settings.deployment(), settings.account()) as c:
        # `worker run --count N` takes dev keys from FIRST_WORKER_DEV_KEY on.
        addresses = info["dev_addresses"][FIRST_WORKER_DEV_KEY:FIRST_WORKER_DEV_KEY + WORKERS] + [c.address]
        before = {a: await c.balance(a) for a in addresses}
        gateway = GatewayClient(url, settings.account().key.hex())
        try:
            await asyncio.to_thread(gateway.sign_in)
            say(f"signed in to the gateway as {c.address} (Sign-In with Ethereum)")
            posted = await asyncio.to_thread(
                gateway.submit, text, program="wordcount", map_shards=6, reduce_shards=2, reward_wei=10**15,
                collateral_wei=10**16, reveal_window_s=10)
            job_id = posted["job_id"]
            margin = (await c.job(job_id)).margin
            say(f"job {job_id} posted through the gateway (signed {len(posted['transactions'])} transactions "
                f"locally): wordcount over {size:,} bytes of Python's docs, 6 map + 2 reduce tasks; a wrong result "
                f"accepted with probability at most 1e-3 against a 10% adversary, so each task settles when one "
                f"result leads by {margin} drawn workers; escrow {format_eth(int(posted['escrow_wei']))} held by "
                f"the contract (unused escalation seats are refunded)")
            say(f"watch it live: {url}/dashboard/#/jobs/{job_id}")
            from shardex_cli.jobs import follow

            state = await follow(c, job_id, quiet=_out is sys.stderr)
            say(f"job {job_id} {state}")
            out = home / "wordcount.txt"
            response = await asyncio.to_thread(gateway.http.get, f"/v1/jobs/{job_id}/result")
            if response.status_code != 200:
                raise SystemExit(f"result: {response.status_code} {response.text[:500]}")
            out.write_bytes(response.content)
        finally:
            gateway.close()
        counts = [line.split("\t") for line in out.read_text().splitlines()]
        top = sorted(counts, key=lambda wc: -int(wc[1]))[:10]
        say(f"verified result: {len(counts):,} distinct words; top ten:")
        for word, n in top:
            show(f"      {word:<12} {int(n):>7,}")

        job = await c.job(job_id)
        now = await c.timestamp()
        if job.horizon >= now:
            await asyncio.sleep(job.horizon - now + 1.5)  # the last reveal window must close before a refund
            await c.mine_empty_blocks(1)  # the devnet mines on demand: let its clock see that time
        if job.escrow - job.paid - job.refunded:
            await c.refund(job_id)
        if await c.credits():
            await c.withdraw()
        os.killpg(workers.pid, signal.SIGTERM)  # workers finish, withdraw their earnings and exit
        await asyncio.to_thread(workers.wait, 60)

        job = await c.job(job_id)
        earned: dict[str, int] = defaultdict(int)
        slashed: dict[str, int] = defaultdict(int)
        for e in await c.events(names=["ResultRevealed", "ReplicaResolved"]):
            if isinstance(e, ResultRevealed) and e.job_id == job_id:  # a reveal is paid on the spot
                earned[e.worker] += job.reward_per_replica
            elif isinstance(e, ReplicaResolved) and e.job_id == job_id and e.outcome.name == "SLASHED":
                slashed[e.worker] += e.amount
        say("where every wei went")
        show(f"      escrow {format_eth(job.escrow)} = paid to workers {format_eth(job.paid)} + refunded "
              f"{format_eth(job.refunded)} + still held {format_eth(job.escrow - job.paid - job.refunded)}")
        summary = {"job_id": job_id, "escrow": job.escrow, "paid": job.paid, "refunded": job.refunded,
                   "accounts": {}}
        for i, address in enumerate(addresses):
            w = await c.worker(address)
            # Wallet change plus stake still bonded: what this participant gained or paid, gas included.
            net = await c.balance(address) - before[address] + w.stake
            role = "requester" if address == c.address else f"worker {i}"
            summary["accounts"][role] = {"address": address, "earned": earned[address], "slashed": slashed[address],
                                         "net_incl_gas": net, "stake": w.stake}
            detail = (f"earned {format_eth(earned[address])}, slashed {format_eth(slashed[address])}"
                      if address != c.address else
                      f"paid {format_eth(job.escrow)} escrow, {format_eth(job.refunded)} refunded")
            show(f"      {role:<9} {address[:12]}…  {detail:<38} net incl. gas {format_eth(net)}")
        if job.paid + job.refunded != job.escrow or sum(earned.values()) != job.paid:
            raise SystemExit("accounting does not add up")  # the demo doubles as a smoke test
        show("      every wei accounted for: escrow = payouts + refund, payouts = sum of rewards earned")
        return summary
