"""End-to-end fixtures: a devnet, real worker processes and the CLI, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.devnet import free_port
from shardex.serving import wait_http
from tests.python.conftest import new_database, rpc

REQUESTER = 9  # dev key index used by the requester; workers use 0..
ROOT = Path(__file__).resolve().parents[3]


def real_text(limit: int) -> bytes:
    """Real, varied English-and-code text every Python install has: the stdlib sources."""
    out, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        data = path.read_bytes()
        out.append(data)
        size += len(data)
        if size >= limit:
            break
    return b"".join(out)[:limit].rsplit(b"\n", 1)[0] + b"\n"


class Devnet:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "SHARDEX_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.workers: dict[int, subprocess.Popen] = {}
        self.info: dict = {}

    def cli(self, *args: str, check: bool = True, timeout: float = 180, account: int | None = REQUESTER,
            fault: str | None = None) -> subprocess.CompletedProcess:
        """``fault``: run it as tests.python.e2e.faults does (e.g. "underpay=1900000000000000")."""
        prefix = ["--account-index", str(account)] if account is not None else []
        command = ["-m", "shardex_cli"] if fault is None else ["-m", "tests.python.e2e.faults", fault]
        env = self.env if fault is None else {**self.env, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, *command, *prefix, *args], capture_output=True, env=env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"shardex {' '.join(args)} exited {proc.returncode}:\n{proc.stderr.decode()[-3000:]}")
        return proc

    def json(self, *args: str, **kw) -> dict:
        return json.loads(self.cli(*args, "--json", **kw).stdout)

    def start_worker(self, index: int, *extra: str, env: dict[str, str] | None = None,
                     fault: str | None = None) -> subprocess.Popen:
        """``fault``: run it as tests.python.e2e.faults does (e.g. "liar")."""
        log = open(self.home / f"worker-{index}.log", "ab")  # noqa: SIM115 - owned by the child
        command = ["-m", "shardex_cli"] if fault is None else ["-m", "tests.python.e2e.faults", fault]
        if fault is not None:
            env = {"PYTHONPATH": str(ROOT), **(env or {})}
        proc = subprocess.Popen([sys.executable, *command, "--account-index", str(index), "worker", "run",
                                 "--data-dir", str(self.home / f"worker-{index}"), "--poll", "0.2", *extra],
                                env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        self.workers[index] = proc
        return proc

    def stop_worker(self, index: int, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        proc = self.workers.pop(index)
        proc.send_signal(sig)
        return proc.wait(timeout)

    def log(self, index: int) -> str:
        return (self.home / f"worker-{index}.log").read_text(errors="replace")

    def warp(self, seconds: int) -> None:
        rpc(self.info["rpc_url"], "evm_increaseTime", seconds)
        rpc(self.info["rpc_url"], "evm_mine")

    def wait_for(self, predicate, timeout: float = 120, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.3)
        logs = "\n".join(f"--- worker {i}\n{self.log(i)[-2000:]}" for i in self.workers)
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    net = Devnet(tmp_path / "home")
    net.home.mkdir()
    net.info = json.loads(net.cli("devnet", "up", "--json", account=None).stdout)
    yield net
    for index in list(net.workers):
        proc = net.workers.pop(index)
        proc.kill()
        proc.wait(10)
    net.cli("devnet", "down", account=None, check=False)


class Gateway:
    """``shardex gateway`` as an operator runs it, in its own process."""

    def __init__(self, net: Devnet, *extra: str, account: int = 5, port: int | None = None) -> None:
        self.net = net
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = net.home / f"gateway-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([sys.executable, "-m", "shardex_cli", "--account-index", str(account), "gateway",
                                      "--port", str(self.port),
                                      *(["--poll", "0.2"] if "--poll" not in extra else []), *extra],
                                     env=net.env, stdout=log, stderr=subprocess.STDOUT)
        if not wait_http(f"{self.url}/healthz", self.proc):
            raise AssertionError(f"gateway did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway(request: pytest.FixtureRequest, devnet: Devnet) -> Iterator[Gateway]:
    """``shardex gateway --dev-sign``, its index on SQLite, then on a real PostgreSQL server."""
    extra = []
    if request.param == "postgres":
        extra = ["--db", new_database(request.getfixturevalue("postgres_cluster"), "gateway")]
    gw = Gateway(devnet, "--dev-sign", *extra)
    yield gw
    gw.stop()


def dev_key(net: Devnet, index: int) -> str:
    return net.info["dev_keys"][index]
