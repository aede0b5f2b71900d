"""What idle workers cost: CPU of worker agents with no jobs, and of the node answering them.

    python bench/idle.py [--workers 3] [--seconds 30]

A private devnet (Anvil, automine) and ``--workers`` real worker processes
started as the README starts them (``shardex worker run --count N``), with no
job posted. After they have staked and settled in, their CPU time (user +
system, from /proc) is read over ``--seconds``, twice: following new heads by
subscription (the default, over the RPC address's WebSocket) and polling
(``--no-follow-heads``: one eth_blockNumber per poll). Prints % of one core
per worker and for Anvil, against the aim (an idle worker under 1% of a core)
and against the figure measured before idle ticks existed (15% per worker, in
the data-plane issue); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AIM_PCT = 1.0
BEFORE_PCT = 15.0  # the data-plane issue: 6.8 s of CPU in 45 s, polling every 0.25 s with a full tick each time
TICKS = os.sysconf("SC_CLK_TCK")


def _sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop the workers and the devnet started here


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def measure(cli_env: dict, workers: int, seconds: float, follow: bool, anvil_pid: int) -> dict:
    flag = "--follow-heads" if follow else "--no-follow-heads"
    log = open(Path(cli_env["SHARDEX_HOME"]) / f"workers-{flag}.log", "w")
    parent = subprocess.Popen([sys.executable, "-m", "shardex_cli", "worker", "run", "--count", str(workers), flag,
                               "--gpus", "none"], env=cli_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while _read(log.name).count(" serving http") < workers:  # each agent logs it once it is up
            if time.monotonic() > deadline or parent.poll() is not None:
                raise SystemExit(f"workers did not start; see {log.name}:\n{_read(log.name)[-2000:]}")
            time.sleep(0.5)
        kids = children(parent.pid) if workers > 1 else [parent.pid]  # --count 1 runs in the process itself
        time.sleep(10)  # past start-up: staking, opting in, the first full ticks
        before = {pid: cpu_seconds(pid) for pid in kids}
        anvil_before = cpu_seconds(anvil_pid)
        time.sleep(seconds)
        per_worker = [(cpu_seconds(pid) - before[pid]) / seconds * 100 for pid in kids]
        anvil = (cpu_seconds(anvil_pid) - anvil_before) / seconds * 100
    finally:
        parent.send_signal(signal.SIGTERM)
        try:
            parent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            parent.kill()
        log.close()
    subscribed = _read(log.name).count("following new heads")
    return {"worker_cpu_pct": round(sum(per_worker) / len(per_worker), 2),
            "worker_cpu_pct_max": round(max(per_worker), 2), "anvil_cpu_pct": round(anvil, 2),
            "workers_subscribed": subscribed}


def _read(path: str) -> str:
    return Path(path).read_text(errors="replace")


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SHARDEX_HOME": str(Path(tmp) / "home"), "PYTHONUNBUFFERED": "1"}
        up = subprocess.run([sys.executable, "-m", "shardex_cli", "devnet", "up", "--json"], env=env, check=True,
                            capture_output=True, text=True)
        anvil_pid = json.loads(up.stdout)["pid"]
        try:
            results = {"subscribed": measure(env, args.workers, args.seconds, True, anvil_pid),
                       "polling": measure(env, args.workers, args.seconds, False, anvil_pid)}
        finally:
            subprocess.run([sys.executable, "-m", "shardex_cli", "devnet", "down"], env=env, capture_output=True)
    print(f"{args.workers} idle workers on an automining devnet, CPU over {args.seconds:g} s "
          f"(% of one core; aim: under {AIM_PCT:g}% per worker; before idle ticks: {BEFORE_PCT:g}%):")
    for mode, r in results.items():
        print(f"  {mode:<11} per worker {r['worker_cpu_pct']:5.2f}% (max {r['worker_cpu_pct_max']:.2f}%), "
              f"Anvil {r['anvil_cpu_pct']:.2f}%; vs aim {r['worker_cpu_pct'] / AIM_PCT:.2f}x, "
              f"vs before {r['worker_cpu_pct'] / BEFORE_PCT:.3f}x; {r['workers_subscribed']} subscribed")
    print(json.dumps({"workers": args.workers, "seconds": args.seconds, "aim_pct": AIM_PCT, "before_pct": BEFORE_PCT,
                      **{f"idle_{mode}": r for mode, r in results.items()},
                      "idle_worker_cpu_pct": results["subscribed"]["worker_cpu_pct"]}))


if __name__ == "__main__":
    main()
