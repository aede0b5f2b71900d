"""A real, fully offline IPFS node for integration tests: js-ipfs (npm ``ipfs@0.66.1``).

No Kubo binary can be installed here (see /work/shared/TOOLCHAIN.md, "IPFS"),
so tests run ``node_modules/.bin/jsipfs daemon``, which serves the same
``/api/v0`` RPC as Kubo. Each node gets a fresh repo (``IPFS_PATH``) and random
loopback ports, and is configured so that nothing tries to reach the network:

* ``Addresses.Swarm=[]``: no libp2p listeners. Also required on Node 20, where
  the daemon otherwise hangs during start-up.
* ``Bootstrap=[]``, ``Addresses.Delegates=[]`` (delegated routing would call
  ``*.delegate.ipfs.io`` over HTTPS), ``Discovery.MDNS.Enabled=false``,
  ``Discovery.webRTCStar.Enabled=false``, ``Swarm.DisableNatPortMap=true``
  (no UPnP/SSDP), ``Routing.Type="none"`` (no DHT).
* ``Addresses.RPC=""``: no gRPC-over-websocket server.
* ``jsipfs daemon --offline --enable-preload=false``: no preload requests to
  ``*.preload.ipfs.io``. (``--offline`` only changes IPNS in 0.66; libp2p still
  starts, which is why the config above matters.)

``promise_polyfill.cjs`` is loaded with ``NODE_OPTIONS=--require`` because
js-ipfs's dependencies call ``Promise.withResolvers`` (Node >= 22 only).

The daemon runs in its own session so that :meth:`JsIpfsNode.stop` can signal
the whole process group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from deploy.devnet import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
JSIPFS = REPO_ROOT / "node_modules" / ".bin" / "jsipfs"
POLYFILL = Path(__file__).resolve().parent / "promise_polyfill.cjs"


class IpfsNodeError(RuntimeError):
    """The js-ipfs node could not be initialised or started."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


def _node_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["IPFS_PATH"] = str(repo)
    # Keep whatever NODE_OPTIONS the caller had; quote the path (NODE_OPTIONS
    # understands double-quoted values) in case it contains spaces.
    require = f'--require "{POLYFILL}"'
    env["NODE_OPTIONS"] = f"{env['NODE_OPTIONS']} {require}" if env.get("NODE_OPTIONS") else require
    env.pop("DEBUG", None)  # libp2p's debug logging would flood the log
    return env


def _offline_config(config: dict, api_port: int, gateway_port: int | None) -> dict:
    addresses = config.setdefault("Addresses", {})
    addresses["Swarm"] = []
    addresses["Announce"] = []
    addresses["NoAnnounce"] = []
    addresses["API"] = f"/ip4/127.0.0.1/tcp/{api_port}"
    addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{gateway_port}" if gateway_port else []
    addresses["RPC"] = ""
    addresses["Delegates"] = []
    config["Bootstrap"] = []
    config["Discovery"] = {"MDNS": {"Enabled": False, "Interval": 10}, "webRTCStar": {"Enabled": False}}
    config.setdefault("Swarm", {})["DisableNatPortMap"] = True
    config["Routing"] = {"Type": "none"}
    return config


class JsIpfsNode:
    """A running ``jsipfs daemon``; use :meth:`start`, then :meth:`stop`."""

    def __init__(self, process: subprocess.Popen, repo: Path, log_path: Path, api_port: int,
                 gateway_port: int | None) -> None:
        self.process = process
        self.repo = repo
        self.log_path = log_path
        self.api_port = api_port
        self.gateway_port = gateway_port
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.gateway_url = f"http://127.0.0.1:{gateway_port}" if gateway_port else None
        #: Seconds from spawning the daemon until ``/api/v0/version`` answered.
        self.startup_seconds: float | None = None

    @classmethod
    def start(cls, tmp_dir: Path | str, *, gateway: bool = True, timeout: float = 60.0,
              attempts: int = 3) -> JsIpfsNode:
        """Initialise a fresh repo under ``tmp_dir`` and start a daemon on it.

        Free ports are picked before the daemon binds them, so another process
        can take one in between; the start is then retried with new ports.
        """
        node = shutil.which("node")
        if node is None:
            raise IpfsNodeError("`node` is not on PATH (js-ipfs needs Node.js)")
        if not JSIPFS.exists():
            raise IpfsNodeError(f"{JSIPFS} not found: run `npm ci` in {REPO_ROOT} (devDependency `ipfs`)")
        tmp_dir = Path(tmp_dir)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="jsipfs-", dir=tmp_dir))
        repo = base / "repo"
        env = _node_env(repo)

        init_log = base / "init.log"
        with open(init_log, "wb") as out:
            rc = subprocess.run([node, str(JSIPFS), "init", "--emptyRepo"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout).returncode
        if rc != 0:
            raise IpfsNodeError(f"`jsipfs init` failed with exit code {rc}:\n{_tail(init_log)}")
        config_path = repo / "config"
        base_config = json.loads(config_path.read_text(encoding="utf-8"))

        last_error: IpfsNodeError | None = None
        for attempt in range(attempts):
            api_port = free_port()
            gateway_port = free_port() if gateway else None
            while gateway_port == api_port:
                gateway_port = free_port()
            config = _offline_config(json.loads(json.dumps(base_config)), api_port, gateway_port)
            config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
            (repo / "api").unlink(missing_ok=True)
            log_path = base / f"daemon-{attempt}.log"
            with open(log_path, "wb") as out:
                process = subprocess.Popen(
                    [node, str(JSIPFS), "daemon", "--offline", "--enable-preload=false"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, cwd=base)
            ipfs = cls(process, repo, log_path, api_port, gateway_port)
            try:
                ipfs._wait_ready(timeout)
                return ipfs
            except IpfsNodeError as e:
                ipfs.stop()
                last_error = e
                if "EADDRINUSE" not in _tail(log_path):
                    raise
        assert last_error is not None
        raise last_error

    def _wait_ready(self, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise IpfsNodeError(f"jsipfs daemon exited with code {self.process.returncode} before its API "
                                    f"answered; log {self.log_path}:\n{_tail(self.log_path)}")
            try:
                r = httpx.post(f"{self.api_url}/api/v0/version", timeout=2.0)
                if r.status_code == 200 and "Version" in r.json():
                    self.startup_seconds = time.monotonic() - started
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise IpfsNodeError(f"jsipfs daemon did not answer POST {self.api_url}/api/v0/version within "
                            f"{timeout:.0f}s; log {self.log_path}:\n{_tail(self.log_path)}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the daemon's process group (it shuts down cleanly), SIGKILL it if that is not enough."""
        if self.process.returncode is not None:
            return
        pgid = self.process.pid  # start_new_session=True: the daemon leads its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # Also reached after a clean exit: kill anything left in the group.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout)

    def __enter__(self) -> JsIpfsNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"JsIpfsNode(api_url={self.api_url!r}, gateway_url={self.gateway_url!r}, pid={self.process.pid})"
