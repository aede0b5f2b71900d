"""How responsive worker agents' event loops are while they settle a job.

    python bench/agent_loop.py [--mb 20] [--workers 3] [--shards 24]

A private devnet, ``--workers`` real worker processes, and a word count over
``--mb`` MB of real text with epsilon 0.01 against adversary 0.1 (margin 3: a
task settles when 3 drawn workers agree, so ``--workers`` must be at least 3: a
task never seats the same worker twice), ``--shards`` map tasks and 3 reduce
tasks. When the job completes, each worker's ``/shardex/worker`` reports its
loop figures: tick duration (one pass of sync, draw, commit, reveal, collect)
p50/p99 and the event loop's scheduling lag p50/p99/max
(what anything blocking the loop, such as SQLite fsyncs or disk reads, costs
every other coroutine: the worker's HTTP gateway, the chain follower, tasks).
Prints the median over workers of each figure; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from corpus import real_text

ROOT = Path(__file__).resolve().parent.parent
EPSILON, ADVERSARY, MARGIN = "0.01", "0.1", 3  # margin_for(10_000, 100_000) == 3


def _sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop the workers and the devnet started here


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--shards", type=int, default=24)
    args = ap.parse_args()
    if args.workers < MARGIN:
        ap.error(f"--workers {args.workers}: a margin-{MARGIN} task needs {MARGIN} distinct workers")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "SHARDEX_HOME": str(home), "PYTHONUNBUFFERED": "1"}

        def cli(*a: str, account: int | None = 9) -> str:
            pre = ["--account-index", str(account)] if account is not None else []
            return subprocess.run([sys.executable, "-m", "shardex_cli", *pre, *a], env=env, check=True,
                                  capture_output=True, text=True).stdout

        cli("devnet", "up", account=None)
        workers, logs = [], []
        try:
            for i in range(args.workers):
                log = Path(tmp) / f"worker-{i}.log"
                logs.append(log)
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "shardex_cli", "--account-index", str(i), "worker", "run", "--data-dir",
                     str(home / f"worker-{i}")], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT))
            src = Path(tmp) / "input.txt"
            src.write_bytes(real_text(args.mb))
            started = time.perf_counter()
            out = json.loads(cli("job", "submit", "--program", "wordcount", "--input", str(src), "--map-shards",
                                 str(args.shards), "--reduce-shards", "3", "--epsilon", EPSILON, "--adversary", ADVERSARY,
                                 "--reveal-window", "5", "--wait", "--json"))
            elapsed = time.perf_counter() - started
            urls = []
            for log in logs:
                line = next(x for x in log.read_text().splitlines() if "serving http" in x)
                urls.append(line.split("serving ")[1].split(";")[0])
            loops = [httpx.get(f"{u}/shardex/worker", timeout=10).json()["loop"] for u in urls]
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(60)
                except subprocess.TimeoutExpired:
                    w.kill()
            cli("devnet", "down", account=None)
    figures = {"job_state": out["state"], "job_s": round(elapsed, 2), "workers": args.workers,
               "tasks": args.shards + 3, "margin": MARGIN}
    for key in ("tick_p50_ms", "tick_p99_ms", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"):
        figures[key] = round(statistics.median(loop[key] for loop in loops), 2)
    print(f"job {figures['job_state']} in {figures['job_s']} s ({figures['tasks']} tasks, margin {MARGIN}, "
          f"{args.workers} workers)")
    print(f"agent tick: p50 {figures['tick_p50_ms']} ms, p99 {figures['tick_p99_ms']} ms (median over workers)")
    print(f"event loop lag: p50 {figures['lag_p50_ms']} ms, p99 {figures['lag_p99_ms']} ms, "
          f"max {figures['lag_max_ms']} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
