"""A requester's user programs try to escape a real worker's sandbox, as real jobs on the devnet.

The worker runs as an operator would run it: its key in SHARDEX_PRIVATE_KEY,
its files under the devnet's home. Every attack must leave the worker running,
its stake intact, and the job settled with a deterministic error or with output
that holds nothing of the host.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shardex import jobs
from shardex.storage import EmbeddedStore
from tests.python.e2e.conftest import REQUESTER, Devnet, dev_key
from tests.python.e2e.test_jobs import submit

pytestmark = pytest.mark.e2e

SNOOP = '''
import json, os, signal, socket

TARGETS = json.loads(TARGETS_JSON)

def attempt(what, fn):
    try:
        return f"{what}: OK {fn()!r}"
    except BaseException as e:
        return f"{what}: DENIED {type(e).__name__}"

def read(path):
    with open(path, "rb") as f:
        return f.read()

def map(record):
    yield 0, attempt("own-environ", lambda: dict(os.environ))
    yield 1, attempt("parent-environ", lambda: read(f"/proc/{os.getppid()}/environ"))
    yield 2, attempt("agent-environ", lambda: read(f"/proc/{TARGETS['agent_pid']}/environ"))
    yield 3, attempt("all-environs", lambda: [read(f"/proc/{p}/environ") for p in os.listdir("/proc") if p.isdigit()])
    yield 4, attempt("home", lambda: os.listdir(TARGETS["home"]))
    yield 5, attempt("data-dir", lambda: os.listdir(TARGETS["data_dir"]))
    yield 6, attempt("worker-state", lambda: read(TARGETS["state"]))
    yield 7, attempt("devnet-keys", lambda: read(TARGETS["devnet"]))
    yield 8, attempt("keystore", lambda: read(TARGETS["keystore"]))
    yield 9, attempt("rpc", lambda: socket.create_connection(("127.0.0.1", TARGETS["rpc_port"]), 2).close())
    yield 10, attempt("worker-gateway", lambda: socket.create_connection(("127.0.0.1", TARGETS["gw_port"]), 2).close())
    yield 11, attempt("kill-agent", lambda: os.kill(TARGETS["agent_pid"], signal.SIGKILL))
    yield 12, attempt("write-home", lambda: open(TARGETS["home"] + "/pwned", "w").write("x"))
    yield 13, attempt("write-scratch-parent", lambda: open("/task/pwned", "w").write("x"))

def reduce(key, values):
    for v in values:
        yield v
'''

WRECKER = '''
import os, time

def map(record):
    attack = record.strip()
    if attack == "forkbomb":
        while True:
            os.fork()
    elif attack == "filldisk":
        chunk = os.urandom(1 << 20)
        for i in range(1_000_000):
            with open(f"/task/tmp/fill-{i}", "wb") as f:
                f.write(chunk)
    elif attack == "sleep":
        time.sleep(10 ** 6)
    elif attack == "memory":
        hog = []
        while True:
            hog.append(bytearray(32 << 20))
    yield attack, 1

def reduce(key, values):
    yield key
'''


def _worker_url(net: Devnet, index: int) -> str:
    return next(line.split("serving ")[1].split(";")[0] for line in net.log(index).splitlines()
                if "serving http" in line)


def test_a_snooping_program_gets_nothing_of_the_worker(devnet: Devnet, tmp_path: Path) -> None:
    key = dev_key(devnet, 0)
    keystore = devnet.home / "operator-key.json"
    keystore.write_text(json.dumps({"secret": key}))
    keystore.chmod(0o600)
    worker = devnet.start_worker(0, env={"SHARDEX_PRIVATE_KEY": key})
    devnet.wait_for(lambda: "serving http" in devnet.log(0), what="the worker to start")
    gw_port = int(_worker_url(devnet, 0).rsplit(":", 1)[1])
    targets = {"agent_pid": worker.pid, "home": str(devnet.home), "data_dir": str(devnet.home / "worker-0"),
               "state": str(devnet.home / "worker-0" / "state.sqlite"), "devnet": str(devnet.home / "devnet.json"),
               "keystore": str(keystore), "rpc_port": int(devnet.info["rpc_url"].rsplit(":", 1)[1]),
               "gw_port": gw_port}
    program = tmp_path / "snoop.py"
    program.write_text(SNOOP.replace("TARGETS_JSON", repr(json.dumps(targets))))
    src = tmp_path / "input.txt"
    src.write_text("x\n")
    out = submit(devnet, "--program-file", str(program), "--input", str(src), "--map-shards", "1", "--adversary", "0")
    assert out["state"] == "COMPLETED"
    result = tmp_path / "result.txt"
    devnet.cli("job", "result", str(out["job_id"]), "-o", str(result))
    text = result.read_text()
    assert key.removeprefix("0x").lower() not in text.lower()
    assert not any(k.removeprefix("0x").lower() in text.lower() for k in devnet.info["dev_keys"])
    found = dict(line.split(": ", 1) for line in text.splitlines())
    own = found["own-environ"]
    assert own.startswith("OK ") and "SHARDEX_PRIVATE_KEY" not in own and "SHARDEX_HOME" not in own
    for what in ("agent-environ", "home", "data-dir", "worker-state", "devnet-keys", "keystore", "kill-agent",
                 "write-home", "write-scratch-parent"):
        assert found[what].startswith("DENIED"), (what, found[what])
    assert found["rpc"] == found["worker-gateway"] == "DENIED ConnectionRefusedError"
    # What a task can see of /proc is its own namespace: bwrap's init and itself.
    assert "SHARDEX_PRIVATE_KEY" not in found["parent-environ"] + found["all-environs"]
    assert not (devnet.home / "pwned").exists()
    assert worker.poll() is None  # the worker is alive and well
    stake = devnet.json("stake", "show", account=0)
    assert stake["stake"] == 10**18 and stake["slashed"] == 0


def test_programs_that_wreck_the_machine_are_contained(devnet: Devnet, tmp_path: Path) -> None:
    worker = devnet.start_worker(0)
    program = tmp_path / "wrecker.py"
    program.write_text(WRECKER)
    attacks = ["forkbomb", "filldisk", "sleep", "memory"]
    src = tmp_path / "input.txt"
    src.write_text("".join(f"{a:<15}\n" for a in attacks))  # equal lines: one attack per map shard
    out = submit(devnet, "--program-file", str(program), "--input", str(src), "--map-shards", str(len(attacks)),
                 "--task-timeout", "8", "--memory-mb", "512", "--disk-mb", "200", "--adversary", "0")
    assert out["state"] == "COMPLETED"  # every task settled on its deterministic error

    status = devnet.json("job", "status", str(out["job_id"]))
    store = EmbeddedStore(devnet.home / "worker-0" / "store")

    def error_of(task: dict) -> str:
        cid = jobs.manifest_cid(bytes.fromhex(task["digest"].removeprefix("0x")))
        return jobs.parse_manifest(asyncio.run(store.cat_bytes(cid)))["error"]

    errors = {attack: error_of(t) for attack, t in zip(attacks, status["task_list"][: len(attacks)], strict=True)}
    # A fork bomb races its own processes: it ends on its process limit, or on
    # its memory limit when 256 interpreters' private pages outgrow 512 MB first
    # (or, on a machine slow enough, its time limit).
    assert errors["forkbomb"].startswith(("BlockingIOError", "memory: ", "timeout: ")), errors
    assert errors["filldisk"] == "disk: the program wrote more than 200 MB", errors
    assert errors["sleep"] == "timeout: the program ran longer than 8s", errors
    assert errors["memory"] == "memory: the program exceeded its 512 MB limit", errors
    assert worker.poll() is None
    stake = devnet.json("stake", "show", account=0)
    assert stake["stake"] == 10**18 and stake["slashed"] == 0
    assert not list((devnet.home / "worker-0" / "scratch").glob("*-*-*"))  # scratch cleaned up


def test_without_a_sandbox_user_programs_are_refused_and_the_worker_says_why(devnet: Devnet, tmp_path: Path) -> None:
    import httpx

    devnet.start_worker(0, "--no-sandbox")
    devnet.wait_for(lambda: "serving http" in devnet.log(0), what="the worker to start")
    assert "NO SANDBOX (disabled by --no-sandbox): refusing user programs" in devnet.log(0)
    described = httpx.get(f"{_worker_url(devnet, 0)}/shardex/worker").json()
    assert described["user_programs"] is False
    assert described["sandbox"]["enabled"] is False and described["sandbox"]["problem"] == "disabled by --no-sandbox"
    # A user-program job is refused with that reason.
    program = tmp_path / "p.py"
    program.write_text("def map(r):\n    yield r, 1\ndef reduce(k, v):\n    yield k\n")
    src = tmp_path / "input.txt"
    src.write_text("a\nb\n")
    serve_log = devnet.home / "serve.out"
    server = subprocess.Popen([sys.executable, "-m", "shardex_cli", "--account-index", str(REQUESTER), "store",
                               "serve"], env=devnet.env, stdout=open(serve_log, "wb"), stderr=subprocess.STDOUT)
    try:
        devnet.wait_for(lambda: serve_log.read_text().startswith("http"), what="store serve")
        posted = devnet.json("job", "submit", "--program-file", str(program), "--input", str(src), "--adversary", "0")
        devnet.wait_for(lambda: f"job {posted['job_id']} rejected: user programs need a sandbox" in devnet.log(0),
                        what="the job to be refused")
        # The requester hears why from the worker itself ("why is my job not running?").
        status = devnet.json("job", "status", str(posted["job_id"]))
        assert status["refusals"] == {described["address"]: "user programs need a sandbox, and this worker has "
                                                             "none: disabled by --no-sandbox"}
        assert "refused by " in devnet.cli("job", "status", str(posted["job_id"])).stdout.decode()
    finally:
        server.terminate()
        server.wait(10)
