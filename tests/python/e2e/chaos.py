"""The chaos harness: jobs in flight through a real gateway and real worker
processes while faults hit every part, then an audit that nothing was lost.

Faults (one of each per round, in a seeded random order, at random gaps):

* ``kill-worker``: SIGKILL one worker process; restart it on the same data dir.
* ``kill-gateway``: SIGKILL the gateway (the requester's input server and the
  index); restart it on the same port and database.
* ``restart-chain``: ``shardex devnet down`` (Anvil dumps its state file),
  then ``shardex devnet up --state`` from that file (at the same address).
* ``drop-connections``: cut every open connection to the chain at once.
* ``spend-nonce``: send a transaction from a running worker's key behind its
  back (another process using the same key): the nonce the worker holds next
  is taken.

Every process reaches the chain through :class:`Relay`, a TCP relay the
harness owns and where it cuts connections.

Used by ``tests/python/e2e/test_chaos.py`` (two rounds) and
``bench/chaos.py`` (as many as asked).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account

from deploy.devnet import rpc_call
from shardex.api_client import GatewayClient, GatewayError
from shardex.chain import ChainClient, Deployment, JobState
from shardex.chain.errors import ContractRevert
from shardex.devnet import pid_alive
from shardex.errors import DevnetError
from tests.python.e2e.conftest import REQUESTER, Devnet, Gateway, dev_key
from tests.python.e2e.test_jobs import wordcount_reference

FAULTS = ("kill-worker", "kill-gateway", "restart-chain", "drop-connections", "spend-nonce")
#: Not in a round unless asked for: SIGKILL Anvil, losing what it mined since its last dump (up to
#: 2 s): every process sees the chain go back, as in a reorg (the scale-out issue's reorg-safe workers).
KILL_CHAIN = "kill-chain"
ENDED = (JobState.COMPLETED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED)


class Relay:
    """A TCP relay to ``upstream_port``: accepts on its own port, pipes bytes both ways."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()  # the chain is down: the caller sees its connection closed
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._cut(src)
            self._cut(dst)

    def _cut(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def drop(self) -> int:
        """Cut every open connection; returns how many there were (pairs)."""
        with self._lock:
            victims = list(self._open)
        for sock in victims:
            self._cut(sock)
        return len(victims) // 2

    def close(self) -> None:
        self._listener.close()
        self.drop()


@dataclass
class Chaos:
    """A devnet with its chain state in a file, behind a relay; a gateway; ``workers`` workers."""

    home: Path
    workers: int = 4
    seed: int = 0
    net: Devnet = field(init=False)
    injected: Counter = field(default_factory=Counter)
    jobs: dict[int, bytes] = field(default_factory=dict)  # job id -> its input
    log: list[str] = field(default_factory=list)
    #: Processes that exited without being killed (each is restarted, so the run goes on).
    casualties: list[str] = field(default_factory=list)
    #: Inputs of jobs whose posting the chain lost (see job_states).
    lost: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.home.mkdir(parents=True, exist_ok=True)
        self.net = Devnet(self.home)
        self.state_file = self.home / "chain.json"
        info = json.loads(self.net.cli("devnet", "up", "--state", str(self.state_file), "--json", account=None).stdout)
        self.relay = Relay(int(info["rpc_url"].rsplit(":", 1)[1]))
        self._rewrite_record(rpc_url=self.relay.url)
        self.net.info = {**info, "rpc_url": self.relay.url}
        self.chain_url = info["rpc_url"]  # straight to Anvil: the audit's view, never cut
        self.gateway = Gateway(self.net, "--dev-sign")
        for i in range(self.workers):
            self._start_worker(i)

    def _rewrite_record(self, **fields: object) -> None:
        path = self.home / "devnet.json"
        record = json.loads(path.read_text()) | fields
        path.write_text(json.dumps(record, indent=2))

    # ------------------------------------------------------------ work

    def submit(self, inputs: list[bytes]) -> list[int]:
        """Post one wordcount job per input through the gateway's wallet flow (margin 2)."""
        ids = []
        with GatewayClient(self.gateway.url, dev_key(self.net, REQUESTER)) as client:
            client.sign_in()
            for n, text in enumerate(inputs):
                src = self.home / f"input-{len(self.jobs) + len(self.lost)}-{n}-{time.monotonic_ns()}.txt"
                src.write_bytes(text)
                job_id = client.submit(src, program="wordcount", map_shards=4, reduce_shards=2, epsilon=0.02,
                                       adversary=0.1)["job_id"]
                if job_id in self.jobs:  # the chain lost the post that had this id first (kill-chain)
                    self.lost.append(self.jobs[job_id])
                self.jobs[job_id] = text
                ids.append(job_id)
        return ids

    # ------------------------------------------------------------ faults

    def inject(self, kind: str) -> None:
        if kind == "kill-worker":
            index = self.rng.choice(sorted(self.net.workers))
            self.net.stop_worker(index, signal.SIGKILL, timeout=10)
            self._start_worker(index)
            what = f"worker {index}"
        elif kind == "kill-gateway":
            port = self.gateway.port
            self.gateway.proc.send_signal(signal.SIGKILL)
            self.gateway.proc.wait(10)
            self.gateway = Gateway(self.net, "--dev-sign", port=port)
            what = f"gateway :{port}"
        elif kind == "restart-chain":
            # As an operator does it: `devnet down` (Anvil dumps its state), `devnet up --state`.
            self.net.cli("devnet", "down", account=None)
            info = json.loads(self.net.cli("devnet", "up", "--state", str(self.state_file), "--json",
                                           account=None).stdout)
            assert info["rpc_url"] == self.chain_url, "a restored devnet comes back at its old address"
            self._rewrite_record(rpc_url=self.relay.url)
            what = f"anvil (pid {info['pid']})"
        elif kind == KILL_CHAIN:
            pid = json.loads((self.home / "devnet.json").read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.05)
            info = json.loads(self.net.cli("devnet", "up", "--state", str(self.state_file), "--json",
                                           account=None).stdout)
            self._rewrite_record(rpc_url=self.relay.url)
            what = f"anvil SIGKILLed, restarted from its last dump (pid {info['pid']})"
        elif kind == "drop-connections":
            what = f"{self.relay.drop()} connections"
        elif kind == "spend-nonce":
            index = self.rng.choice(sorted(self.net.workers))
            what = f"worker {index}'s nonce {self._spend_nonce(dev_key(self.net, index))}"
        else:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        self.injected[kind] += 1
        self.log.append(f"{time.strftime('%H:%M:%S')} {kind}: {what}")

    def count_casualties(self) -> int:
        """Workers or the gateway that exited on their own since the last look; restarts them."""
        before = len(self.casualties)
        for index, proc in list(self.net.workers.items()):
            if proc.poll() is not None:
                self.casualties.append(f"worker {index} exited {proc.returncode}: {self.net.log(index)[-1500:]}")
                self._start_worker(index)
        if self.gateway.proc.poll() is not None:
            self.casualties.append(f"gateway exited {self.gateway.proc.returncode}: {self.gateway.log()[-1500:]}")
            self.gateway = Gateway(self.net, "--dev-sign", port=self.gateway.port)
        return len(self.casualties) - before

    def _start_worker(self, index: int) -> None:
        """Start a worker and wait until it has read its settings (it holds its data dir's lock):
        a devnet restart in the moments before would leave it no devnet record to read."""
        proc = self.net.start_worker(index)
        lock = self.home / f"worker-{index}" / "agent.lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if lock.exists() and lock.read_text().strip() == str(proc.pid):
                return
            time.sleep(0.05)

    def _spend_nonce(self, key: str) -> int:
        account = Account.from_key(key)
        for _ in range(20):  # the worker may take the nonce first: then the next one
            nonce = int(rpc_call(self.chain_url, "eth_getTransactionCount", account.address, "pending"), 16)
            tx = account.sign_transaction({"to": account.address, "value": 0, "gas": 21_000, "gasPrice": 10**10,
                                           "nonce": nonce, "chainId": self.net.info["chain_id"]})
            try:
                rpc_call(self.chain_url, "eth_sendRawTransaction", "0x" + bytes(tx.raw_transaction).hex())
                return nonce
            except DevnetError as exc:
                if "nonce" not in str(exc):
                    raise
        raise AssertionError("could not send from the worker's key: it always took the nonce first")

    def run(self, rounds: int, gap: tuple[float, float] = (0.3, 1.5),
            each_round: Callable[[int], object] | None = None, faults: tuple[str, ...] = FAULTS) -> int:
        """``rounds`` rounds of every fault, each after a random gap; ``each_round(n)`` before
        round n. Returns how many faults were survived: followed by no casualty."""
        survived = 0
        for n in range(rounds):
            if each_round is not None:
                each_round(n)
            for kind in self.rng.sample(faults, len(faults)):
                time.sleep(self.rng.uniform(*gap))
                self.inject(kind)
                survived += self.count_casualties() == 0
        time.sleep(gap[1])
        return survived - (self.count_casualties() > 0)

    # ------------------------------------------------------------ the audit

    def _chain(self) -> ChainClient:
        d = Deployment.from_json({k: self.net.info[k] for k in ("chain_id", "market", "registry", "block")})
        return ChainClient(self.chain_url, d)

    def job_states(self) -> dict[int, JobState | None]:
        """Each posted job's state; None for one the chain no longer has (posted in blocks a
        ``kill-chain`` took away, and its id not posted again since)."""
        async def read() -> dict[int, JobState | None]:
            out: dict[int, JobState | None] = {}
            async with self._chain() as chain:
                for j in self.jobs:
                    try:
                        out[j] = (await chain.job(j)).state
                    except ContractRevert:
                        out[j] = None
            return out
        return asyncio.run(read())

    def wait_ended(self, timeout: float) -> dict[int, JobState]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.job_states()
            if all(s is None or s in ENDED for s in states.values()):
                for job_id in [j for j, s in states.items() if s is None]:
                    self.lost.append(self.jobs.pop(job_id))
                return {j: s for j, s in states.items() if s is not None}
            time.sleep(0.5)
        raise AssertionError(f"jobs still running after {timeout:.0f} s: {states}\n" + self.tails())

    def results_match(self) -> dict[int, bool]:
        """Each completed job's result, fetched as a requester does, against a local word count."""
        out = {}
        for job_id, state in self.job_states().items():
            if state is JobState.COMPLETED:
                path = self.home / f"result-{job_id}.txt"
                self.net.cli("job", "result", str(job_id), "-o", str(path))
                out[job_id] = path.read_bytes() == wordcount_reference(self.jobs[job_id])
        return out

    def wind_down(self) -> None:
        """Workers drain (collect, withdraw) and exit; the chain passes every job's horizon; the
        requester takes its refunds."""
        for index in list(self.net.workers):
            assert self.net.stop_worker(index) == 0, self.net.log(index)[-3000:]

        async def horizon() -> int:
            async with self._chain() as chain:
                return max([(await chain.job(j)).horizon for j in self.jobs]) - await chain.timestamp()
        self.net.warp(max(1, asyncio.run(horizon()) + 1))
        for job_id in self.jobs:
            proc = self.net.cli("job", "refund", str(job_id), check=False)
            assert proc.returncode == 0 or b"NothingToRefund" in proc.stdout + proc.stderr, proc.stderr.decode()

    def audit(self) -> dict:
        """Every wei where it belongs, after :meth:`wind_down`."""
        async def read() -> dict:
            async with self._chain() as chain:
                jobs = [await chain.job(j) for j in self.jobs]
                accounts = self.net.info["dev_addresses"]
                credits = sum([await chain.credits(a) for a in accounts])
                workers = [await chain.worker(a) for a in accounts[:self.workers]]
                held = await chain.balance(chain.deployment.market)
                pool = await chain.balance(chain.deployment.registry)
                burned = await chain.burned()
            return {
                "jobs_unaccounted_wei": sum(j.escrow - j.paid - j.refunded for j in jobs),
                "market_balance_minus_credits_wei": held - credits,
                "pool_balance_minus_stakes_wei": pool - sum(w.stake + w.unbonding for w in workers) - burned,
                "slashed_assignments": sum(w.slashed for w in workers),
                "burned_wei": burned,
                "settled_assignments": sum(w.settled for w in workers),
                "paid_wei": sum(j.paid for j in jobs),
                "paid_seats_wei": sum(w.settled for w in workers) * jobs[0].reward_per_replica if jobs else 0,
            }
        return asyncio.run(read())

    def index_equals_rebuild(self, tmp: Path) -> bool:
        from backend import db
        from backend.indexer import Indexer
        from tests.python.integration.test_indexer import dump

        async def head() -> int:
            async with self._chain() as chain:
                return await chain.block_number()
        target = asyncio.run(head())
        with GatewayClient(self.gateway.url) as reader:
            def indexed() -> int:
                try:
                    return reader.get("/healthz").get("indexed_block", -1)
                except GatewayError:
                    return -1
            self.net.wait_for(lambda: indexed() >= target, what="the gateway's index caught up")

        async def rebuild() -> dict:
            engine = db.make_engine(f"sqlite:///{tmp / 'rebuilt.db'}")
            async with self._chain() as chain:
                await Indexer(engine, chain).rebuild()
            return dump(engine)
        survived = dump(db.make_engine(f"sqlite:///{self.home / 'gateway.db'}"))
        return bool(survived["events"]) and survived == asyncio.run(rebuild())

    def nonce_clashes_reported(self) -> int:
        """Workers' log lines that name a nonce another process took (ChainClient's NonceTaken)."""
        return sum(self.net.log(i).count("another process signing with this key") for i in range(self.workers))

    def tails(self) -> str:
        parts = [f"--- worker {i}\n{self.net.log(i)[-1500:]}" for i in range(self.workers)]
        return "\n".join([*parts, f"--- gateway\n{self.gateway.log()[-1500:]}", "--- faults", *self.log])

    def close(self) -> None:
        self.gateway.stop()
        for index in list(self.net.workers):
            proc = self.net.workers.pop(index)
            proc.kill()
            proc.wait(10)
        self.net.cli("devnet", "down", account=None, check=False)
        self.relay.close()
