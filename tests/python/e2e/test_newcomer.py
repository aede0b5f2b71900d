"""The README's commands in its order, with every default, as a newcomer runs them:
a worker and a requester on their default accounts, then a devnet restarted
under the worker's old state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.python.e2e.conftest import Devnet, real_text

pytestmark = pytest.mark.e2e


def _worker(net: Devnet, log: Path) -> subprocess.Popen:
    """`shardex worker run`: no account, no data dir, nothing but the defaults."""
    return subprocess.Popen([sys.executable, "-m", "shardex_cli", "worker", "run"], env=net.env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _submit(net: Devnet, src: Path) -> dict:
    return net.json("job", "submit", "--program", "wordcount", "--input", str(src), "--map-shards", "2",
                    "--reveal-window", "5", "--wait", account=None)


def test_defaults_do_not_collide_and_a_restarted_devnet_does_not_kill_workers(devnet: Devnet,
                                                                              tmp_path: Path) -> None:
    src = tmp_path / "book.txt"
    src.write_bytes(real_text(200_000))
    log = tmp_path / "worker.log"
    worker = _worker(devnet, log)
    try:
        first = _submit(devnet, src)
        assert first["state"] == "COMPLETED"
        assert worker.poll() is None, log.read_text()[-3000:]
        requester = devnet.json("account", account=None)["address"]
        worker_address = json.loads(devnet.cli("stake", "show", "--json", account=1).stdout)["address"]
        assert requester != worker_address  # key 0 requests, key 1 works: no shared nonce
        assert devnet.json("stake", "show", account=1)["settled"] == 3

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        devnet.cli("devnet", "down", account=None)
        devnet.cli("devnet", "up", account=None)  # a new chain; the same dev keys and addresses
        worker = _worker(devnet, log)
        second = _submit(devnet, src)
        assert second["state"] == "COMPLETED" and second["job_id"] == 1
        assert worker.poll() is None, log.read_text()[-3000:]
        assert "was another chain's" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
