"""GPU check: real NVML discovery, two concurrent torch tasks under leases, in
the task sandbox, the memory cap and the watchdog acting.

    python bench/gpu_check.py

Runs unchanged on any machine. Without an NVIDIA GPU (or without NVML) it says
so, ends with a JSON line and exits 0. With one it:
1. lists the cards NVML reports (UUID, model, memory, MIG mode, topology);
2. leases two tasks half of card 0 each (memory and a 0.5 compute share), or
   one card each with two cards, and runs them concurrently as user programs
   through the worker's executor: the bubblewrap sandbox (when bwrap is
   there) with only their cards' device nodes, resident-memory limits that
   CUDA survives, CUDA_VISIBLE_DEVICES by UUID;
3. task A caps itself (torch.cuda.set_per_process_memory_fraction) and
   allocates until the cap stops it: the sandboxed task initialised CUDA and
   allocated up to its lease;
4. task B ignores the cap and allocates past its lease; the watchdog, reading
   per-process memory from NVML, finds its process under the sandbox and kills
   the task, which ends with the memory error; both leases are reaped once NVML
   shows their processes gone.
Prints what it measured; the last line is all figures as one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.gpu import GpuPool, GpuRequest, detect_backend  # noqa: E402
from worker.gpu.watchdog import GpuWatchdog  # noqa: E402

from worker.executor import TaskLimits, kill_group, run_program  # noqa: E402
from worker.sandbox import SandboxUnavailable, detect  # noqa: E402

# A user program: one record, "capped" or "uncapped"; yields the MB it allocated.
TASK = """
import os, time

def map(record):
    import torch
    capped = record.strip() == "capped"
    if capped:
        fraction = float(os.environ["SHARDEX_GPU_MEMORY_FRACTION"].split(",")[0])
        torch.cuda.set_per_process_memory_fraction(fraction, 0)
    blocks, mb = [], 0
    try:
        while mb < 1 << 22:
            blocks.append(torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda"))
            mb += 256
            time.sleep(0.02)
    except torch.cuda.OutOfMemoryError:
        pass
    yield "allocated_mb", mb

def reduce(key, values):
    yield key, values
"""


async def run_task(root: Path, name: str, mode: str, lease, pool, sandbox) -> tuple[object, float]:
    scratch = root / name
    scratch.mkdir()
    scratch.chmod(0o755)
    (scratch / "program.py").write_text(TASK)
    (scratch / "params.json").write_text("{}")
    (scratch / "input").write_text(mode + "\n")
    started = time.monotonic()
    result = await run_program(phase="map", program=None, program_file=scratch / "program.py",
                               params_file=scratch / "params.json", index=0, map_shards=1, reduce_shards=1,
                               inputs=[scratch / "input"], scratch=scratch, sandbox=sandbox,
                               limits=TaskLimits(memory_mb=32768, timeout_s=180, cpus=4), extra_env=lease.env(),
                               devices=pool.device_nodes(lease), on_spawn=lambda pid: pool.attach(lease, [pid]))
    return result, time.monotonic() - started


async def exercise(pool, leases, per_task: int, figures: dict) -> None:
    try:
        sandbox = detect()
        print(f"sandbox: {sandbox.description}")
    except SandboxUnavailable as exc:
        sandbox = None
        print(f"NO SANDBOX ({exc}): the tasks run without one")
    figures["sandbox"] = sandbox is not None
    kills: list = []

    def kill(pid: int) -> None:
        kills.append(pid)
        kill_group(pid)

    watchdog = GpuWatchdog(pool, kill, slack_mb=512)  # a CUDA context costs a few hundred MB
    watching = asyncio.create_task(watchdog.run())
    with tempfile.TemporaryDirectory() as tmp:
        (a, a_s), (b, b_s) = await asyncio.gather(run_task(Path(tmp), "A", "capped", leases[0], pool, sandbox),
                                                  run_task(Path(tmp), "B", "uncapped", leases[1], pool, sandbox))
        allocated = json.loads(a.outputs[0].read_text())[1][0] if a.outputs else None
    figures["cap"] = {"lease_mb": per_task, "task_a_allocated_mb": allocated, "task_a_error": a.error,
                      "task_a_s": round(a_s, 2)}
    print(f"memory cap: task A allocated {allocated} MB of a {per_task} MB lease (error: {a.error})")
    figures["watchdog_kill"] = {"killed": bool(kills), "task_b_error": b.error, "after_s": round(b_s, 2)}
    print(f"watchdog: task B {'killed' if kills else 'NOT killed'} after {b_s:.1f}s: {b.error}")
    for lease in leases:
        pool.release(lease)
    deadline = time.monotonic() + 30
    while pool.leases() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    watching.cancel()
    figures["leases_reaped"] = not pool.leases()
    print(f"leases reaped after the processes left the cards: {figures['leases_reaped']}")
    figures["ok"] = bool(allocated and allocated >= per_task * 0.8 and kills and b.error
                         and b.error.startswith("memory") and figures["leases_reaped"])


def main() -> int:
    backend = detect_backend()
    if backend is None:
        print("no NVIDIA GPU found (NVML unavailable or no devices): nothing to check on this machine")
        print(json.dumps({"gpu": False}))
        return 0
    figures: dict = {"gpu": True, "devices": []}
    devices = backend.devices()
    for d in devices:
        figures["devices"].append({"uuid": d.uuid, "name": d.name, "memory_mb": d.memory_total_mb,
                                   "mig": d.mig_enabled, "used_mb": backend.memory_used_mb(d.uuid)})
        print(f"GPU {d.index}: {d.name} {d.memory_total_mb} MB uuid={d.uuid} mig={d.mig_enabled}")
    if len(devices) > 1:
        figures["topology"] = [[backend.topology(a.uuid, b.uuid) for b in devices] for a in devices]
        print(f"topology levels (0 = same board ... 50 = system): {figures['topology']}")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: NVML checked, leases not exercised")
        print(json.dumps(figures))
        return 0

    pool = GpuPool(backend, "spread")
    usable = [d for d in devices if not d.mig_enabled]
    if not usable:
        print("every card is in MIG mode: leases not exercised")
        print(json.dumps(figures))
        return 0
    # One card: half of it each (memory and compute); two or more: one card each.
    share = 0.5 if len(usable) == 1 else 1.0
    per_task = (usable[0].memory_total_mb // 2 if len(usable) == 1 else min(d.memory_total_mb for d in usable[:2])) \
        // 2
    leases = [pool.allocate(GpuRequest(gpus=1, memory_mb=per_task, compute_share=share), owner=name)
              for name in ("A", "B")]
    if None in leases:
        print(f"the two leases did not fit: {leases}")
        print(json.dumps({**figures, "ok": False}))
        return 1
    for name, lease in zip(("A", "B"), leases, strict=True):
        print(f"task {name}: lease {per_task} MB, share {share} on {lease.uuids} env={lease.env()}")
    asyncio.run(exercise(pool, leases, per_task, figures))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
