"""Run one task's program in a sandboxed subprocess.

Each run gets its own scratch directory as working directory, a clean
environment, an address-space cap (RLIMIT_AS) and a wall-clock timeout; it
runs in its own session so a timeout kills everything it started. A program
that raises, hangs or blows its memory fails that task — with a deterministic
error that honest replicas agree on — never the agent.
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

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunResult:
    outputs: list[Path]  # partition files (map) or [output] (reduce); empty on error
    error: str | None  # deterministic error text, or None on success


def _limits(memory_mb: int):
    def apply() -> None:
        os.setsid()
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def clean_env(scratch: Path) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
            # Fixed, so a user program iterating over a set emits the same order on
            # every machine; honest replicas must produce identical bytes.
            "PYTHONHASHSEED": "0"}


async def run_program(*, phase: str, program: str | None, program_file: Path | None, params_file: Path,
                      index: int, map_shards: int, reduce_shards: int, inputs: list[Path], scratch: Path,
                      timeout_s: float, memory_mb: int, extra_env: dict[str, str] | None = None,
                      on_spawn: Callable[[int], None] | None = None) -> RunResult:
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "shardex.programs.run", "--phase", phase, "--params-file", str(params_file),
           "--index", str(index), "--map-shards", str(map_shards), "--reduce-shards", str(reduce_shards),
           "--out", str(out)]
    cmd += ["--program-file", str(program_file)] if program_file else ["--program", str(program)]
    cmd += [str(p) for p in inputs]
    env = {**clean_env(scratch), **(extra_env or {})}  # e.g. a GPU lease: CUDA_VISIBLE_DEVICES, memory fraction
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=scratch, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                                                preexec_fn=_limits(memory_mb))
    if on_spawn is not None:
        on_spawn(proc.pid)  # the process group id too (setsid): what a watchdog kills
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        kill_group(proc.pid)
        await proc.wait()
        return RunResult([], f"timeout: the program ran longer than {timeout_s:g}s")
    except asyncio.CancelledError:
        kill_group(proc.pid)
        raise
    text = stderr.decode(errors="replace")
    if proc.returncode == 0:
        names = [f"part-{p:05d}" for p in range(reduce_shards)] if phase == "map" else ["output"]
        return RunResult([out / n for n in names], None)
    error_line = next((line[6:] for line in text.splitlines() if line.startswith("ERROR ")), None)
    if proc.returncode == 3 and error_line:
        return RunResult([], error_line)
    if "MemoryError" in text or proc.returncode in (-signal.SIGKILL, -signal.SIGSEGV):
        limit = f"{memory_mb} MB" + (" or its GPU memory lease" if extra_env and extra_env.get("CUDA_VISIBLE_DEVICES")
                                      else "")
        return RunResult([], f"memory: the program exceeded its {limit} limit")
    # Anything else (a bad install, a bug in the runner) is not the program's
    # deterministic outcome: the caller must not commit it.
    raise RuntimeError(f"program runner failed (exit {proc.returncode}): {text[-500:]}")


def kill_group(pid: int) -> None:
    """Kill a task's whole process group (it was started with setsid)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
