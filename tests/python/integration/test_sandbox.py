"""The task sandbox against hostile programs: real bubblewrap, real processes.

Each test plays a requester whose user program tries to reach what a worker
must keep: its key, its files, its network, its processes, its machine. The
test process stands in for the agent (it holds the secret in its environment).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from worker import proctree
from worker.executor import RunnerFailure, TaskLimits, run_program
from worker.gpu import FakeBackend, GpuPool, GpuRequest
from worker.gpu.watchdog import GpuWatchdog
from worker.executor import kill_group
from worker.sandbox import DEFAULT_UID_BASE, SandboxUnavailable, detect, python_paths

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration

SECRET = "0x" + "5ec2e7" * 10 + "abcd"


@pytest.fixture(scope="module")
def sandbox():
    try:
        return detect()
    except SandboxUnavailable as exc:  # make install puts bubblewrap here; say so loudly if it is missing
        pytest.fail(f"no sandbox on this machine: {exc}")


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDEX_PRIVATE_KEY", SECRET)


def _files(tmp_path: Path, source: str, params: dict | None = None, shard: bytes = b"probe\n") -> dict:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o755)
    (scratch / "program.py").write_text(textwrap.dedent(source))
    (scratch / "params.json").write_text(json.dumps(params or {}))
    (scratch / "input").write_bytes(shard)
    return dict(phase="map", program=None, program_file=scratch / "program.py", params_file=scratch / "params.json",
                index=0, map_shards=1, reduce_shards=1, inputs=[scratch / "input"], scratch=scratch)


async def _run(tmp_path: Path, sandbox, source: str, *, params: dict | None = None, limits: TaskLimits | None = None,
               **kw):
    result = await run_program(**_files(tmp_path, source, params), sandbox=sandbox,
                               limits=limits or TaskLimits(memory_mb=1024, timeout_s=60), **kw)
    output = result.outputs[0].read_text() if result.outputs else None
    return result, output


# A program that reports what it could reach, one finding per output line.
PROBE = '''
import json, os, socket, signal

def attempt(what, fn):
    try:
        return f"{what}: OK {fn()!r}"[:4000]
    except BaseException as e:
        return f"{what}: DENIED {type(e).__name__}"

def read(path):
    with open(path, "rb") as f:
        return f.read()

def map(record):
    p = PARAMS
    yield "env", attempt("env", lambda: dict(os.environ))
    yield "uid", attempt("uid", lambda: (os.getuid(), os.geteuid(), os.getgid()))
    yield "parent-environ", attempt("parent-environ", lambda: read(f"/proc/{os.getppid()}/environ"))
    yield "agent-environ", attempt("agent-environ", lambda: read(f"/proc/{p['agent_pid']}/environ"))
    for pid in sorted(int(x) for x in os.listdir("/proc") if x.isdigit()):
        yield f"proc-{pid}", attempt(f"environ {pid}", lambda: read(f"/proc/{pid}/environ"))
    yield "procs", attempt("procs", lambda: sorted(int(x) for x in os.listdir("/proc") if x.isdigit()))
    for path in p["files"]:
        yield path, attempt(f"read {path}", lambda: read(path))
    for path in p["dirs"]:
        yield path, attempt(f"list {path}", lambda: os.listdir(path))
    yield "home", attempt("home", lambda: os.listdir(os.path.expanduser("~")))
    yield "root", attempt("root", lambda: os.listdir("/root"))
    for port in p["ports"]:
        yield f"tcp {port}", attempt(f"tcp {port}", lambda: socket.create_connection(("127.0.0.1", port), 2).close())
    yield "dns", attempt("dns", lambda: socket.getaddrinfo("example.com", 80))
    yield "kill-agent", attempt("kill-agent", lambda: os.kill(p["agent_pid"], signal.SIGTERM))
    for path in p["writes"]:
        yield f"write {path}", attempt(f"write {path}", lambda: open(path, "w").write("pwned"))
    yield "devices", attempt("devices", lambda: sorted(os.listdir("/dev")))
    yield "sys", attempt("sys", lambda: os.listdir("/sys"))

def reduce(key, values):
    yield from values
'''.replace("PARAMS", "__import__('json').load(open('params.json'))")


async def test_a_program_reaches_nothing_of_the_host(tmp_path: Path, sandbox, secret_env) -> None:
    home = tmp_path / "home"
    data = home / ".shardex" / "worker-0xabc"
    data.mkdir(parents=True)
    (data / "state.sqlite").write_text(f"salt {SECRET}")
    keystore = home / "key.json"
    keystore.write_text(json.dumps({"crypto": SECRET}))
    keystore.chmod(0o600)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    port = listener.getsockname()[1]
    params = {"agent_pid": os.getpid(), "ports": [port],
              "files": [str(keystore), str(data / "state.sqlite"), "/etc/shadow", f"/proc/{os.getpid()}/environ"],
              "dirs": [str(home), str(data), str(tmp_path), "/home", str(REPO)],
              "writes": ["/usr/pwned", "/tmp/pwned", "/task/pwned", str(tmp_path / "pwned"), "/pwned"]}
    result, out = await _run(tmp_path, sandbox, PROBE, params=params)
    listener.close()

    assert result.error is None, result.error
    assert SECRET not in out and SECRET.removeprefix("0x") not in out
    # A map partition: one JSON line [key, [values]] per key.
    found = dict(json.loads(line)[1][0].split(": ", 1) for line in out.splitlines())
    # The environment is the clean one, with thread caps; nothing of the agent's.
    env = eval(found["env"].removeprefix("OK "))  # noqa: S307 - our own probe's repr of a dict of str
    assert "SHARDEX_PRIVATE_KEY" not in env and env["HOME"] == "/task/tmp" and env["OMP_NUM_THREADS"] == "1"
    uid = eval(found["uid"].removeprefix("OK "))  # noqa: S307
    assert uid[0] != 0 and uid[1] != 0 and uid[2] != 0
    # Its own PID namespace: bwrap's init and the program, nothing of ours.
    assert found["procs"].startswith("OK ") and eval(found["procs"].removeprefix("OK ")) == [1, 2]  # noqa: S307
    assert found["agent-environ"].startswith("DENIED")
    # Of the project and of /root, only the way to the interpreter and the shardex package is there (read-only).
    for where, what in ((REPO, f"list {REPO}"), (Path("/root"), "root")):
        if found[what].startswith("OK "):
            entries = eval(found.pop(what).removeprefix("OK "))  # noqa: S307
            assert all(any(str(where / e) == b or b.startswith(f"{where / e}/") for b in python_paths())
                       for e in entries), (where, entries)
    for what in [f"read {f}" for f in params["files"]] + [f"list {d}" for d in params["dirs"][:-1]]:
        assert found[what].startswith("DENIED"), (what, found[what])
    assert found["home"] == "OK []"  # its home is its own empty scratch
    assert found[f"tcp {port}"] == "DENIED ConnectionRefusedError" and not accepted
    assert found["dns"].startswith("DENIED")
    assert found["kill-agent"] == "DENIED ProcessLookupError"
    for path in params["writes"]:
        assert found[f"write {path}"].startswith("DENIED"), path
    assert not (tmp_path / "pwned").exists()
    assert found["sys"].startswith("DENIED")
    devices = eval(found["devices"].removeprefix("OK "))  # noqa: S307
    assert not [d for d in devices if d.startswith(("vd", "loop", "kvm", "nvidia", "kmsg"))], devices


async def test_only_the_leased_device_nodes_are_visible(tmp_path: Path, sandbox) -> None:
    source = "import os\ndef map(r):\n    yield 'dev', sorted(os.listdir('/dev'))\ndef reduce(k, v):\n    yield k, v\n"
    existing = [d for d in ("/dev/kvm", "/dev/vda", "/dev/loop0") if os.path.exists(d)]
    if len(existing) < 2:
        pytest.skip("needs two device nodes on this machine to tell them apart")
    granted, other = existing[0], existing[1]
    result, out = await _run(tmp_path, sandbox, source, devices=[granted, "/dev/nvidia-absent"])
    seen = json.loads(out)[1][0]
    assert os.path.basename(granted) in seen and os.path.basename(other) not in seen


async def test_a_task_runs_niced_below_the_agent(tmp_path: Path, sandbox) -> None:
    """Batch work yields the CPU to the agent and to latency-bound neighbours (a gateway, online work)."""
    from worker.executor import TASK_NICE

    source = "import os\ndef map(r):\n    yield 'nice', os.nice(0)\ndef reduce(k, v):\n    yield k, v\n"
    _, out = await _run(tmp_path, sandbox, source)
    assert json.loads(out)[1][0] == os.nice(0) + TASK_NICE


async def test_signalling_everything_it_can_kills_only_the_task(tmp_path: Path, sandbox) -> None:
    source = "import os, signal\ndef map(r):\n    os.kill(-1, signal.SIGKILL)\n    yield r, 1\n" \
             "def reduce(k, v):\n    yield k\n"
    result, _ = await _run(tmp_path, sandbox, source)
    # Nothing it may signal but itself (a uid of its own: not even that), and never us.
    assert result.error in ("ProcessLookupError: [Errno 3] No such process",
                            "memory: the program exceeded its 1024 MB limit"), result.error
    assert os.getpid() and proctree.stat(os.getpid()) is not None  # we (the agent) are alive


def _task_processes() -> list[int]:
    """Live processes running under a task uid."""
    found = []
    for pid in proctree.parents():
        try:
            if os.stat(f"/proc/{pid}").st_uid >= DEFAULT_UID_BASE:
                found.append(pid)
        except OSError:
            continue
    return found


async def test_a_fork_bomb_is_contained_and_leaves_nothing_behind(tmp_path: Path, sandbox) -> None:
    source = """
        import os, time
        def map(record):
            while True:
                os.fork()
            yield record, 1
        def reduce(k, v):
            yield k
    """
    result, _ = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=1024, timeout_s=20,
                                                                         max_processes=64))
    assert result.error is not None and result.error.startswith(("BlockingIOError", "timeout", "memory")), result.error
    await asyncio.sleep(0.2)
    assert _task_processes() == []  # nothing of the task is left


async def test_sleeping_forever_times_out_and_kills_the_daemons_it_left(tmp_path: Path, sandbox) -> None:
    source = """
        import os, time
        def map(record):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(3600)
                os._exit(0)
            time.sleep(3600)
            yield record, 1
        def reduce(k, v):
            yield k
    """
    pids: list[int] = []
    result, _ = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=1024, timeout_s=1.5),
                           on_spawn=pids.append)
    assert result.error == "timeout: the program ran longer than 1.5s"
    await asyncio.sleep(0.2)
    assert proctree.descendants(pids[0]) == []


async def test_filling_the_disk_stops_at_its_budget(tmp_path: Path, sandbox) -> None:
    source = """
        import os
        def map(record):
            chunk = os.urandom(1 << 20)
            for i in range(10_000):
                with open(f"/task/tmp/fill-{i}", "wb") as f:
                    f.write(chunk)
            yield record, 1
        def reduce(k, v):
            yield k
    """
    result, _ = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=1024, timeout_s=60, disk_mb=64))
    assert result.error == "disk: the program wrote more than 64 MB"


async def test_one_big_file_stops_at_its_budget(tmp_path: Path, sandbox) -> None:
    source = """
        def map(record):
            with open("/task/out/big", "wb") as f:
                for _ in range(1000):
                    f.write(b"x" * (1 << 20))
            yield record, 1
        def reduce(k, v):
            yield k
    """
    result, _ = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=1024, timeout_s=60, disk_mb=32))
    # RLIMIT_FSIZE: Python ignores SIGXFSZ, so the write fails at the same byte everywhere.
    assert result.error in ("OSError: [Errno 27] File too large", "disk: the program wrote more than 32 MB")


async def test_memory_over_the_limit_is_a_deterministic_memory_error(tmp_path: Path, sandbox) -> None:
    source = """
        def map(record):
            hog = []
            while True:
                hog.append(bytearray(16 << 20))
            yield record, 1
        def reduce(k, v):
            yield k
    """
    result, _ = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=256, timeout_s=60))
    assert result.error == "memory: the program exceeded its 256 MB limit"


async def test_address_space_is_not_limited_only_resident_memory(tmp_path: Path, sandbox) -> None:
    """CUDA reserves far more address space than RAM; so does a big mmap: it must not fail."""
    source = """
        import mmap
        def map(record):
            m = mmap.mmap(-1, 64 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)  # MAP_NORESERVE
            m[0] = 1
            yield "reserved_gb", len(m) >> 30
        def reduce(k, v):
            yield k, v
    """
    result, out = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=512, timeout_s=60))
    assert result.error is None and json.loads(out) == ["reserved_gb", [64]]


async def test_blas_with_16_threads_under_4_gb_succeeds(tmp_path: Path, sandbox) -> None:
    """The OpenBLAS failure seen on a 16-core machine under RLIMIT_AS 4 GB: its
    per-thread buffers are address space, not resident memory."""
    pytest.importorskip("numpy")
    source = """
        import os
        import numpy as np
        def map(record):
            rng = np.random.default_rng(7)
            a = rng.standard_normal((1024, 1024))
            yield "sum", round(float((a @ a.T).trace()), 3)
            yield "threads", os.environ["OPENBLAS_NUM_THREADS"]
        def reduce(k, v):
            yield k, v
    """
    result, out = await _run(tmp_path, sandbox, source, limits=TaskLimits(memory_mb=4096, timeout_s=120, cpus=16))
    assert result.error is None, result.error
    import numpy as np

    a = np.random.default_rng(7).standard_normal((1024, 1024))
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [["sum", [round(float((a @ a.T).trace()), 3)]], ["threads", ["16"]]]


async def test_an_output_swapped_for_a_symlink_to_a_host_file_is_not_read(tmp_path: Path, sandbox) -> None:
    secret = tmp_path / "agent-secret"
    secret.write_text(SECRET)
    source = f"""
        import atexit, os
        def swap():
            os.remove("/task/out/part-00000")
            os.symlink({str(secret)!r}, "/task/out/part-00000")
        atexit.register(swap)
        def map(record):
            yield record, 1
        def reduce(k, v):
            yield k
    """
    result, _ = await _run(tmp_path, sandbox, source)
    assert result.outputs == [] and result.error == "crashed: the program exited before its outputs were written"


async def test_exiting_with_a_strange_status_is_the_programs_outcome_not_the_machines(tmp_path: Path,
                                                                                     sandbox) -> None:
    """Else a requester could make every honest worker refuse to commit, and
    farm their collateral when their leases run out."""
    source = "import os\ndef map(r):\n    os._exit(1)\n    yield r, 1\ndef reduce(k, v):\n    yield k\n"
    result, _ = await _run(tmp_path, sandbox, source)
    assert result.error == "crashed: the program exited with status 1"


async def test_a_runner_that_cannot_start_is_the_machines_failure(tmp_path: Path, sandbox) -> None:
    files = _files(tmp_path, "def map(r):\n    yield r, 1\ndef reduce(k, v):\n    yield k\n")
    files["inputs"] = [files["scratch"] / "missing-input"]
    with pytest.raises(RunnerFailure, match="before the program started"):
        await run_program(**files, sandbox=sandbox, limits=TaskLimits(memory_mb=512, timeout_s=30))


async def test_a_sandboxed_gpu_process_is_held_to_its_lease(tmp_path: Path, sandbox) -> None:
    """NVML reports the task's own CUDA process, a descendant of the bwrap the
    worker started: the watchdog must find its lease and kill the whole task."""
    backend = FakeBackend("fake:1x16GB", track_liveness=True)
    pool = GpuPool(backend)
    lease = pool.allocate(GpuRequest(gpus=1, memory_mb=4096), owner="job1:task0")
    roots: list[int] = []

    def spawned(pid: int) -> None:
        roots.append(pid)
        pool.attach(lease, [pid])

    source = "import time\ndef map(r):\n    time.sleep(60)\n    yield r, 1\ndef reduce(k, v):\n    yield k\n"
    run = asyncio.create_task(run_program(**_files(tmp_path, source), sandbox=sandbox, extra_env=lease.env(),
                                          devices=pool.device_nodes(lease), on_spawn=spawned,
                                          limits=TaskLimits(memory_mb=1024, timeout_s=60)))
    while not roots or len(proctree.descendants(roots[0])) < 3:  # bwrap, its init, the program
        await asyncio.sleep(0.02)
    program = max(proctree.descendants(roots[0]))
    assert program != roots[0]
    backend.set_process(backend.uuid(0), program, 6000)  # over its 4096 MB lease
    watchdog = GpuWatchdog(pool, kill_group)
    assert [o.pid for o in watchdog.check()] == roots
    result = await asyncio.wait_for(run, 20)
    assert result.error == "memory: the program exceeded its 1024 MB limit or its GPU memory lease"
    pool.release(lease, roots)
    await asyncio.sleep(0.1)
    assert pool.reap() == [lease] or pool.state(lease) is None


async def test_a_program_cannot_change_the_store_blocks_its_input_is_linked_to(tmp_path: Path, sandbox) -> None:
    """Inputs are staged as hard links of the worker's own verified blocks (no copy): a program that
    finds them and tries to write, truncate, rename or delete them changes nothing in the store."""
    from shardex.storage import EmbeddedStore
    from shardex.storage.importer import CHUNK_SIZE

    store = EmbeddedStore(tmp_path / "store")
    data = bytes(i % 251 for i in range(3 * CHUNK_SIZE))
    cid = store.add_bytes_sync(data)
    files = _files(tmp_path, """
        import os
        def attempt(fn):
            try:
                fn()
                return "OK"
            except OSError as e:
                return type(e).__name__
        def map(record):
            part = "input/000000"  # the task's directory is its working directory
            yield "write", attempt(lambda: open(part, "r+b").write(b"pwned"))
            yield "truncate", attempt(lambda: os.truncate(part, 0))
            yield "chmod", attempt(lambda: os.chmod(part, 0o666))
            yield "rename", attempt(lambda: os.rename(part, "input/x"))
            yield "unlink", attempt(lambda: os.unlink(part))
        def reduce(key, values):
            yield key, values
    """)
    (files["scratch"] / "input").unlink()
    store.stage_sync(cid, files["scratch"] / "input")
    result = await run_program(**files, sandbox=sandbox, limits=TaskLimits(memory_mb=1024, timeout_s=60))
    assert result.error is None, result.error
    found = dict(json.loads(line) for line in result.outputs[0].read_text().splitlines())
    assert sorted(found) == ["chmod", "rename", "truncate", "unlink", "write"]
    # Refused (a read-only view: OSError for EROFS, or PermissionError), not missing, never done.
    assert {outcome for outcomes in found.values() for outcome in outcomes} <= {"OSError", "PermissionError"}, found
    assert b"".join(store.cat_sync(cid)) == data  # every block still verifies, the bytes unchanged
