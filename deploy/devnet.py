"""A local Anvil chain with the contracts deployed: ``shardex devnet up/down``.

Writes the record every other command reads (:mod:`shardex.devnet`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from deploy.deploy import DEFAULT_UNBONDING_DELAY, deploy
from shardex.chain.client import Deployment
from shardex.devnet import DEV_ACCOUNTS, DEV_CHAIN_ID, DevnetInfo, dev_accounts, devnet_file, load_devnet, pid_alive
from shardex.errors import DevnetError

ROOT = Path(__file__).resolve().parent.parent


def find_anvil() -> Path:
    candidates = [os.environ.get("SHARDEX_ANVIL"),
                  str(ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"),
                  shutil.which("anvil")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise DevnetError("anvil not found: run `make install` (npm ci installs it) or set SHARDEX_ANVIL")


def rpc_call(url: str, method: str, *params: object, timeout: float = 10.0) -> object:
    """One JSON-RPC call (devnet plumbing: Anvil's evm_* methods, readiness probes)."""
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=timeout)
    body = r.json()
    if "error" in body:
        raise DevnetError(f"{method}: {body['error']}")
    return body["result"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    """A running Anvil process."""

    process: subprocess.Popen
    rpc_url: str
    port: int
    log_path: Path | None

    @classmethod
    def start(cls, *, port: int | None = None, state_file: Path | None = None, log_path: Path | None = None,
              detach: bool = False, block_time: float | None = None, network: str | None = None,
              timeout: float = 20.0) -> Anvil:
        port = port or free_port()
        cmd = [str(find_anvil()), "--host", "127.0.0.1", "--port", str(port), "--accounts", str(DEV_ACCOUNTS),
               "--chain-id", str(DEV_CHAIN_ID)]
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]  # mine on a clock, like a real chain
        if network is not None:
            cmd += ["--network", network]  # e.g. optimism: OP Stack transaction types and fee rules
        restoring = state_file is not None and state_file.exists()
        if state_file is not None:
            # Dump every few seconds as well as on exit, so even a killed devnet
            # loses at most the last few seconds of chain.
            cmd += ["--state", str(state_file), "--state-interval", "2"]
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        try:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=detach)
        finally:
            if log_path:
                out.close()
        anvil = cls(process, f"http://127.0.0.1:{port}", port, log_path)
        anvil.wait_ready(timeout)
        if restoring:
            anvil.keep_time_monotonic()
        return anvil

    def keep_time_monotonic(self) -> None:
        """A restored Anvil stamps new blocks with the wall clock, without the time warps the
        dumped chain had (evm_increaseTime): its next block could be older than its parent, and
        leases and windows would run backwards. Carry the clock on from the last block instead."""
        last = int(rpc_call(self.rpc_url, "eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        if last >= int(time.time()):
            rpc_call(self.rpc_url, "evm_setTime", last + 1)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevnetError(f"anvil exited with code {self.process.returncode}; see {self.log_path}")
            try:
                rpc_call(self.rpc_url, "eth_chainId", timeout=1.0)
                return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        self.stop()
        raise DevnetError(f"anvil did not answer on {self.rpc_url} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        stop_pid(self.process.pid, timeout)
        self.process.wait(timeout)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM (Anvil then dumps its state), SIGKILL if it does not exit."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def devnet_up(home: Path, *, state_file: Path | None = None, unbonding_delay: int | None = None,
              network: str | None = None, block_time: float | None = None) -> DevnetInfo:
    running = load_devnet(home)
    if running is not None:
        raise DevnetError(f"a devnet is already running at {running.rpc_url} (pid {running.pid}); "
                          "`shardex devnet down` first")
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "anvil.log"
    # A chain restored from its state file comes back at its old address where that is free:
    # workers and gateways still running against it reconnect instead of talking to nothing.
    port = _last_port(state_file)
    anvil = Anvil.start(port=port if port and port_free(port) else None, state_file=state_file, log_path=log_path,
                        detach=True, network=network, block_time=block_time)
    if state_file is not None:
        _port_sidecar(state_file).write_text(str(anvil.port), encoding="utf-8")
    try:
        accounts = dev_accounts()
        deployment = _restored_deployment(anvil.rpc_url, state_file)
        if deployment is None:
            deployment = asyncio.run(deploy(anvil.rpc_url, accounts[0],
                                            unbonding_delay=unbonding_delay or DEFAULT_UNBONDING_DELAY))
            if state_file is not None:
                _deployment_sidecar(state_file).write_text(json.dumps(deployment.to_json()), encoding="utf-8")
        info = DevnetInfo(
            pid=anvil.process.pid, rpc_url=anvil.rpc_url, chain_id=deployment.chain_id, market=deployment.market,
            registry=deployment.registry, block=deployment.block, dev_keys=["0x" + a.key.hex() for a in accounts],
            dev_addresses=[a.address for a in accounts], state_file=str(state_file) if state_file else None,
            log=str(log_path),
        )
        tmp = devnet_file(home).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2), encoding="utf-8")
        os.replace(tmp, devnet_file(home))
        return info
    except BaseException:
        anvil.stop()
        raise


def devnet_down(home: Path) -> DevnetInfo | None:
    info = load_devnet(home)
    if info is not None:
        stop_pid(info.pid)
    devnet_file(home).unlink(missing_ok=True)
    return info


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As a server binds (Anvil does): connections of the last one in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_sidecar(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".port")


def _last_port(state_file: Path | None) -> int | None:
    if state_file is None or not state_file.exists():
        return None  # a new chain: any free port
    try:
        return int(_port_sidecar(state_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _deployment_sidecar(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".deployment.json")


def _restored_deployment(rpc_url: str, state_file: Path | None) -> Deployment | None:
    """The deployment recorded beside a restored state file, if its code is on chain."""
    if state_file is None or not _deployment_sidecar(state_file).exists():
        return None
    deployment = Deployment.from_json(json.loads(_deployment_sidecar(state_file).read_text(encoding="utf-8")))
    code = rpc_call(rpc_url, "eth_getCode", deployment.market, "latest", timeout=5.0)
    return deployment if code not in ("0x", "0x0", None) else None
