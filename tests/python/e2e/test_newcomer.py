"""The README's commands in its order, with every default, as a newcomer runs them:
a worker and a requester on their default accounts, then a devnet restarted
under the worker's old state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.python.e2e.conftest import Devnet, real_text

pytestmark = pytest.mark.e2e


def _workers(net: Devnet, log: Path) -> subprocess.Popen:
    """`shardex worker run --count 4`, as the README says: no account, no data dir. Four, because a job
    with the default error target (1e-3 against a 10% adversary) seats 4 distinct workers per task."""
    return subprocess.Popen([sys.executable, "-m", "shardex_cli", "worker", "run", "--count", "4"], env=net.env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _submit(net: Devnet, src: Path) -> dict:
    proc = net.cli("job", "submit", "--program", "wordcount", "--input", str(src), "--map-shards", "2",
                   "--reveal-window", "5", "--wait", "--json", account=None, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout)


def test_defaults_do_not_collide_and_a_restarted_devnet_does_not_kill_workers(devnet: Devnet,
                                                                              tmp_path: Path) -> None:
    src = tmp_path / "book.txt"
    src.write_bytes(real_text(200_000))
    log = tmp_path / "worker.log"
    worker = _workers(devnet, log)
    try:
        first = _submit(devnet, src)
        assert first["state"] == "COMPLETED"
        assert worker.poll() is None, log.read_text()[-3000:]
        requester = devnet.json("account", account=None)["address"]
        worker_addresses = [json.loads(devnet.cli("stake", "show", "--json", account=i).stdout)["address"]
                            for i in range(1, 5)]
        assert requester not in worker_addresses  # key 0 requests, keys 1-4 work: no shared nonce
        for i in range(1, 5):  # margin 4 with 4 workers: every worker sat on all 3 tasks, and agreed
            assert devnet.json("stake", "show", account=i)["settled"] == 3

        worker.send_signal(signal.SIGTERM)  # forwarded to every worker: each drains and exits
        assert worker.wait(60) == 0
        devnet.cli("devnet", "down", account=None)
        devnet.cli("devnet", "up", account=None)  # a new chain; the same dev keys and addresses
        worker = _workers(devnet, log)
        second = _submit(devnet, src)
        assert second["state"] == "COMPLETED" and second["job_id"] == 1
        assert worker.poll() is None, log.read_text()[-3000:]
        assert "was another chain's" in log.read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
