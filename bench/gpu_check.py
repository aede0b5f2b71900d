"""GPU check: real NVML discovery, two concurrent torch tasks under leases, the
memory cap and the watchdog acting.

    python bench/gpu_check.py

Runs unchanged on any machine. Without an NVIDIA GPU (or without NVML) it says
so and exits 0. With one it:
1. lists the cards NVML reports (UUID, model, memory, MIG mode, topology);
2. leases half of card 0's memory (or one card each, with two cards) to two
   concurrent torch tasks, in subprocesses that see only their lease
   (CUDA_VISIBLE_DEVICES by UUID) and cap themselves with
   torch.cuda.set_per_process_memory_fraction;
3. task A allocates until its cap stops it (the cap acting);
4. task B ignores the cap and allocates past its lease; the watchdog, reading
   per-process memory from NVML, kills it (the watchdog acting), and its lease
   is reaped once NVML shows the process gone.
Prints what it measured; the last line is all figures as one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.gpu import GpuPool, GpuRequest, detect_backend  # noqa: E402
from worker.gpu.watchdog import GpuWatchdog  # noqa: E402

TASK = r"""
import os, sys, time, torch
capped = sys.argv[1] == "capped"
fraction = float(os.environ["SHARDEX_GPU_MEMORY_FRACTION"].split(",")[0])
if capped:
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
blocks, mb = [], 0
try:
    while True:
        blocks.append(torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda"))
        mb += 256
        print(f"ALLOC {mb}", flush=True)
        time.sleep(0.05)
except torch.cuda.OutOfMemoryError:
    print(f"CAPPED {mb}", flush=True)
    time.sleep(2)
"""


def kill_group(pid: int) -> None:
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
    per_task = (usable[0].memory_total_mb // 2 if len(usable) == 1 else min(d.memory_total_mb for d in usable[:2])) \
        // 2
    leases = [pool.allocate(GpuRequest(gpus=1, memory_mb=per_task), owner=name) for name in ("A", "B")]
    watchdog = GpuWatchdog(pool, kill_group, slack_mb=512)  # a CUDA context costs a few hundred MB
    procs = {}
    started = time.monotonic()
    for name, lease, mode in (("A", leases[0], "capped"), ("B", leases[1], "uncapped")):
        env = {**os.environ, **lease.env()}
        procs[name] = subprocess.Popen([sys.executable, "-c", TASK, mode], env=env, stdout=subprocess.PIPE,
                                       text=True, start_new_session=True)
        pool.attach(lease, [procs[name].pid])
        print(f"task {name}: lease {per_task} MB on {lease.uuids} env={lease.env()}")
    killed_at = None
    while time.monotonic() - started < 120 and any(p.poll() is None for p in procs.values()):
        over = watchdog.check()
        if over and killed_at is None:
            killed_at = time.monotonic() - started
            figures["watchdog_kill"] = {"pid": over[0].pid, "used_mb": over[0].used_mb, "lease_mb": per_task,
                                        "after_s": round(killed_at, 2)}
            print(f"watchdog: killed pid {over[0].pid} using {over[0].used_mb} MB > lease {per_task} MB")
        time.sleep(0.1)
    out_a = procs["A"].stdout.read() if procs["A"].stdout else ""
    capped = [line for line in out_a.splitlines() if line.startswith("CAPPED")]
    figures["cap"] = {"lease_mb": per_task, "task_a_allocated_mb": int(capped[-1].split()[1]) if capped else None}
    print(f"memory cap: task A stopped at {figures['cap']['task_a_allocated_mb']} MB of a {per_task} MB lease")
    for name, lease in zip(("A", "B"), leases, strict=True):
        pool.release(lease, [procs[name].pid])
    deadline = time.monotonic() + 30
    while pool.leases() and time.monotonic() < deadline:
        pool.reap()
        time.sleep(0.2)
    figures["leases_reaped"] = not pool.leases()
    print(f"leases reaped after the processes left the cards: {figures['leases_reaped']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
