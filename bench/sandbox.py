"""What the task sandbox costs: task start latency and a wordcount shard, with and without it.

    python bench/sandbox.py [--starts 30] [--mb 20] [--runs 5]

* start latency: a map task of the built-in wordcount over one short line,
  from spawning the runner to its result (the interpreter's start dominates),
  ``--starts`` times each way; median and p90.
* wordcount shard: one map task over ``--mb`` MB of real text (this Python
  installation's sources), ``--runs`` times each way; median.

"bare" is the same runner without bubblewrap (what a worker without a sandbox
runs for built-in programs): same limits, same watchdogs, same environment.
The baseline the issue names is the unsandboxed run; ratios are sandboxed / bare.
Ends with one JSON line holding all figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from corpus import real_text  # noqa: E402 (bench/ is on the path: run as python bench/NAME.py)
from worker.executor import TaskLimits, run_program  # noqa: E402
from worker.sandbox import SandboxUnavailable, detect  # noqa: E402


async def one_map(scratch: Path, sandbox, data: bytes) -> float:
    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o755)
    (scratch / "params.json").write_bytes(b"{}")
    (scratch / "input").write_bytes(data)
    start = time.perf_counter()
    result = await run_program(phase="map", program="wordcount", program_file=None,
                               params_file=scratch / "params.json", index=0, map_shards=1, reduce_shards=1,
                               inputs=[scratch / "input"], scratch=scratch,
                               limits=TaskLimits(memory_mb=4096, timeout_s=600), sandbox=sandbox)
    elapsed = time.perf_counter() - start
    if result.error:
        raise SystemExit(f"wordcount failed: {result.error}")
    return elapsed


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.9 * len(xs))) - 1)]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    try:
        box = detect()
    except SandboxUnavailable as exc:
        print(f"no sandbox on this machine: {exc}")
        print(json.dumps({"sandbox": False}))
        return
    print(f"sandbox: {box.description}")
    figures: dict = {"sandbox": True}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        line = b"to be or not to be\n"
        for name, sb in (("bare", None), ("sandboxed", box)):  # warm the page cache once each way
            await one_map(root / f"warm-{name}", sb, line)
        starts: dict[str, list[float]] = {"bare": [], "sandboxed": []}
        for i in range(args.starts):  # interleaved, so drift hits both alike
            for name, sb in (("bare", None), ("sandboxed", box)):
                starts[name].append(await one_map(root / f"s-{name}-{i}", sb, line))
        for name, xs in starts.items():
            figures[f"start_{name}_median_ms"] = round(statistics.median(xs) * 1000, 1)
            figures[f"start_{name}_p90_ms"] = round(p90(xs) * 1000, 1)
        figures["start_overhead_ms"] = round(figures["start_sandboxed_median_ms"] - figures["start_bare_median_ms"], 1)
        figures["start_ratio"] = round(figures["start_sandboxed_median_ms"] / figures["start_bare_median_ms"], 3)
        print(f"task start, median (p90): bare {figures['start_bare_median_ms']} ms "
              f"({figures['start_bare_p90_ms']}), sandboxed {figures['start_sandboxed_median_ms']} ms "
              f"({figures['start_sandboxed_p90_ms']}): +{figures['start_overhead_ms']} ms, "
              f"{figures['start_ratio']}x")

        data = real_text(args.mb)
        shard: dict[str, list[float]] = {"bare": [], "sandboxed": []}
        for i in range(args.runs):
            for name, sb in (("bare", None), ("sandboxed", box)):
                shard[name].append(await one_map(root / f"w-{name}-{i}", sb, data))
        for name, xs in shard.items():
            figures[f"wordcount_{name}_s"] = round(statistics.median(xs), 3)
        figures["wordcount_mb"] = round(len(data) / 2**20, 1)
        figures["wordcount_ratio"] = round(figures["wordcount_sandboxed_s"] / figures["wordcount_bare_s"], 3)
        print(f"wordcount map over {figures['wordcount_mb']} MB, median of {args.runs}: bare "
              f"{figures['wordcount_bare_s']} s, sandboxed {figures['wordcount_sandboxed_s']} s: "
              f"{figures['wordcount_ratio']}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
