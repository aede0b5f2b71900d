"""Run one task's program in a sandboxed subprocess, within its limits.

Each run gets its own scratch directory, a clean environment whose thread
pools are sized to the task's cores, and, when the machine can build one, the
bubblewrap sandbox of ``worker.sandbox``. Limits, and what a task meets when it
crosses one (deterministic, so honest replicas agree on the error):

- memory: its resident memory, through its own cgroup v2 ``memory.max`` where
  the worker has one (``worker.cgroup``), else a watchdog summing the RSS of
  its process tree. Never ``RLIMIT_AS``: CUDA and OpenBLAS reserve address
  space far beyond any RAM cap. -> ``memory: …``
- wall-clock time, and CPU time (``RLIMIT_CPU``, cores × timeout) -> ``timeout: …``
- bytes written: ``RLIMIT_FSIZE`` per file and a watchdog over its writable
  directories -> ``disk: …``
- processes and open files (``RLIMIT_NPROC``, cgroup ``pids.max``, ``RLIMIT_NOFILE``):
  the program sees the failed fork or open, as on any busy machine.

A runner that cannot start or dies for reasons of its own (bad install,
missing sandbox) raises ``RunnerFailure``: not the program's outcome, never
committed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker import proctree
from worker.cgroup import CgroupParent, TaskCgroup
from shardex.errors import ShardexError
from shardex.programs.run import READY_LINE
from worker.sandbox import TASK_DIR, Sandbox, pythonpath

ROOT = Path(__file__).resolve().parent.parent
#: Environment variables read by the thread pools of BLAS, OpenMP, torch and friends.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "RAYON_NUM_THREADS", "SHARDEX_CPUS")
STDERR_KEEP = 64 * 1024  # a program may print gigabytes to stderr: keep its tail only
#: How often the watchdogs look: resident memory every tick, bytes written every 3rd.
#: A look costs ~1.6 ms of CPU (a /proc scan), in a thread, not on the agent's loop.
WATCH_INTERVAL_S = 0.1


class RunnerFailure(ShardexError):
    """The task could not run on this machine; says nothing about the job."""


@dataclass(frozen=True)
class RunResult:
    outputs: list[Path]  # partition files (map) or [output] (reduce); empty on error
    error: str | None  # deterministic error text, or None on success


@dataclass(frozen=True)
class TaskLimits:
    memory_mb: int
    timeout_s: float
    cpus: int = 1
    disk_mb: int = 4096
    max_processes: int = 256
    max_open_files: int = 1024


def thread_env(cpus: int) -> dict[str, str]:
    n = str(max(1, cpus))
    return {**dict.fromkeys(THREAD_VARS, n), "TOKENIZERS_PARALLELISM": "false"}


def clean_env(home: str, cpus: int = 1, path: str = str(ROOT)) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1", "HF_HOME": f"{home}/hf",
            # Fixed, so a user program iterating over a set emits the same order on
            # every machine; honest replicas must produce identical bytes.
            "PYTHONHASHSEED": "0", **thread_env(cpus)}


#: Tasks are batch work: at this niceness the agent's own loop (its deadlines on chain) and anything
#: latency-bound on the machine (a gateway, an online service) keep their CPU when both want it; on a
#: machine with cores to spare a task runs as fast as it would at 0. (Offline work beside online
#: work is reniced further, to 19, by the colocation controller.)
TASK_NICE = 10


def _preexec(limits: TaskLimits, cgroup: TaskCgroup | None, nproc_base: int):
    """Runs in the child between fork and exec: limits that the sandbox and the
    program inherit."""
    cpu_s = int(limits.timeout_s * max(1, limits.cpus)) + 5
    fsize = limits.disk_mb * 1024 * 1024
    nproc = nproc_base + limits.max_processes
    procs = cgroup.procs if cgroup else None

    def apply() -> None:
        os.setsid()  # no controlling terminal; one process group to signal
        if procs:
            with open(procs, "w") as f:
                f.write("0")
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # under memory pressure the kernel kills tasks, never the agent
        os.nice(TASK_NICE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return apply


def _count_processes_of(uid: int) -> int:
    """Processes (threads included, as RLIMIT_NPROC counts them) of a uid now."""
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}")
                if st.st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return n


def _bytes_under(paths: list[Path], limit: int) -> int:
    total = 0
    todo = [str(p) for p in paths]
    while todo and total <= limit:
        try:
            with os.scandir(todo.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512 + 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _resident(pid: int) -> int:
    return proctree.resident_bytes(proctree.descendants(pid))


async def _drain(stream: asyncio.StreamReader, head: bool = False) -> bytes:
    """Read a pipe to its end, keeping its tail (or its head) only."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[:STDERR_KEEP] if head else (kept + chunk)[-STDERR_KEEP:]
    return kept


async def run_program(*, phase: str, program: str | None, program_file: Path | None, params_file: Path,
                      index: int, map_shards: int, reduce_shards: int, inputs: list[Path], scratch: Path,
                      limits: TaskLimits, sandbox: Sandbox | None = None, cgroups: CgroupParent | None = None,
                      extra_env: dict[str, str] | None = None, devices: list[str] = (), bind_rw: list[str] = (),
                      shared_uid: bool = False, on_spawn: Callable[[int], None] | None = None) -> RunResult:
    """Run the task; every file it reads must lie in ``scratch`` (the sandbox sees nothing else).
    ``devices`` and ``bind_rw`` reach into the sandbox (a GPU lease's nodes, the MPS pipes);
    ``shared_uid``: run under the uid GPU tasks share under MPS."""
    uid = sandbox.acquire_uid(shared_uid) if sandbox else None
    try:
        return await _run(phase, program, program_file, params_file, index, map_shards, reduce_shards, inputs,
                          scratch, limits, sandbox, uid, cgroups, extra_env, devices, bind_rw, on_spawn)
    finally:
        if sandbox:
            sandbox.release_uid(uid)


async def _run(phase, program, program_file, params_file, index, map_shards, reduce_shards, inputs, scratch,
               limits: TaskLimits, sandbox: Sandbox | None, uid: int | None, cgroups: CgroupParent | None,
               extra_env, devices, bind_rw, on_spawn) -> RunResult:
    out, tmp = scratch / "out", scratch / "tmp"
    if sandbox:
        sandbox.prepare(scratch, uid)

        def where(p: Path) -> str:
            return f"{TASK_DIR}/{Path(p).relative_to(scratch)}"
        env = clean_env(f"{TASK_DIR}/tmp", limits.cpus, pythonpath())
    else:
        for d in (out, tmp):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)

        def where(p: Path) -> str:
            return str(p)
        env = clean_env(str(tmp), limits.cpus)
    env.update(extra_env or {})  # e.g. a GPU lease: CUDA_VISIBLE_DEVICES, memory fraction
    cmd = [sys.executable, "-m", "shardex.programs.run", "--phase", phase, "--params-file", where(params_file),
           "--index", str(index), "--map-shards", str(map_shards), "--reduce-shards", str(reduce_shards),
           "--out", where(out)]
    cmd += ["--program-file", where(program_file)] if program_file else ["--program", str(program)]
    cmd += [where(p) for p in inputs]
    if sandbox:
        cmd = sandbox.wrap(cmd, scratch=scratch, uid=uid, devices=list(devices), bind_rw=list(bind_rw))

    memory = limits.memory_mb * 1024 * 1024
    cgroup = None
    if cgroups is not None:
        try:
            cgroup = cgroups.create(scratch.name, memory_bytes=memory, max_pids=limits.max_processes)
        except OSError:
            cgroup = None  # fall back to the watchdog for this task
    # RLIMIT_NPROC counts every process of the user: a task uid of its own starts
    # from zero, a user namespace's from what the worker's user already runs.
    nproc_base = 0 if uid is not None else _count_processes_of(os.getuid())
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=scratch, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_preexec(limits, cgroup, nproc_base))
    except (OSError, asyncio.SubprocessError) as e:
        if cgroup:
            cgroup.remove()
        raise RunnerFailure(f"cannot start the task runner: {e}") from None
    if on_spawn is not None:
        on_spawn(proc.pid)  # the process group id too (setsid): what a watchdog kills
    stdout = asyncio.create_task(_drain(proc.stdout, head=True))
    stderr = asyncio.create_task(_drain(proc.stderr))
    verdict = await _watch(proc, limits, scratch, cgroup, memory)
    started = (await stdout).startswith(READY_LINE)
    text = (await stderr).decode(errors="replace")
    if cgroup:
        if verdict is None and cgroup.oom_killed():
            verdict = "memory"
        cgroup.kill()
        cgroup.remove()
    return _outcome(proc.returncode, verdict, started, text, phase, reduce_shards, limits, out, extra_env)


async def _watch(proc, limits: TaskLimits, scratch: Path, cgroup: TaskCgroup | None, memory: int) -> str | None:
    """Wait for the task; kill it at its first limit and say which ("timeout", "memory", "disk")."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout_s
    disk = limits.disk_mb * 1024 * 1024
    writable = [scratch / "out", scratch / "tmp"]
    wait = asyncio.create_task(proc.wait())
    verdict = None
    ticks = 0
    try:
        while True:
            left = deadline - loop.time()
            if left <= 0:
                verdict = "timeout"
                break
            done, _ = await asyncio.wait({wait}, timeout=min(WATCH_INTERVAL_S, left))
            if done:
                return None
            ticks += 1
            if cgroup is None and await asyncio.to_thread(_resident, proc.pid) > memory:
                verdict = "memory"
                break
            if ticks % 3 == 0 and await asyncio.to_thread(_bytes_under, writable, disk) > disk:
                verdict = "disk"
                break
    except asyncio.CancelledError:
        proctree.kill_tree(proc.pid)
        raise
    proctree.kill_tree(proc.pid)
    await wait
    return verdict


def _outcome(code: int, verdict: str | None, started: bool, text: str, phase: str, reduce_shards: int,
             limits: TaskLimits, out: Path, extra_env: dict | None) -> RunResult:
    gpu = bool(extra_env and extra_env.get("CUDA_VISIBLE_DEVICES"))
    memory_error = f"memory: the program exceeded its {limits.memory_mb} MB limit" + (
        " or its GPU memory lease" if gpu else "")
    # Our own verdicts first (each of them ends the task with SIGKILL), then the kernel's.
    timeout = f"timeout: the program ran longer than {limits.timeout_s:g}s"
    disk = f"disk: the program wrote more than {limits.disk_mb} MB"
    if verdict is not None:
        return RunResult([], {"timeout": timeout, "memory": memory_error, "disk": disk}[verdict])
    if code == -signal.SIGXCPU:
        return RunResult([], timeout)
    if code == -signal.SIGXFSZ:
        return RunResult([], disk)
    if code == -signal.SIGKILL:
        # The GPU lease watchdog and the kernel's OOM killer kill with SIGKILL.
        return RunResult([], memory_error)
    if not started:
        # The program never ran: a missing sandbox, a bad install, unreadable
        # inputs. Nothing here says anything about the job.
        raise RunnerFailure(f"the task runner failed before the program started (exit {code}): "
                            f"{text.strip()[-500:]}")
    # From here on the process was the program's: whatever ended it is its outcome.
    if code == 0:
        names = [f"part-{p:05d}" for p in range(reduce_shards)] if phase == "map" else ["output"]
        paths = [out / n for n in names]
        if all(p.is_file() and not p.is_symlink() for p in paths):
            return RunResult(paths, None)
        return RunResult([], "crashed: the program exited before its outputs were written")
    error_line = next((line[6:] for line in text.splitlines() if line.startswith("ERROR ")), None)
    if code == 3 and error_line:
        return RunResult([], error_line)
    if "MemoryError" in text or code == -signal.SIGSEGV:
        return RunResult([], memory_error)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return RunResult([], f"crashed: the program was killed by {name}")
    return RunResult([], f"crashed: the program exited with status {code}")


def kill_group(pid: int) -> None:
    """Kill a task's whole process tree (it was started with setsid)."""
    proctree.kill_tree(pid)
