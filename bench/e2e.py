"""Word count end to end: Shardex vs multiprocessing.Pool vs dask.bag, one run.

    python bench/e2e.py [--mb 200] [--margins 1,3] [--no-dask]
    python bench/e2e.py --mb 2048 --margins 1 --no-dask     # the big run (text repeated to 2 GB)

Input: ``--mb`` MB of real text (the .py/.txt/.rst/.md files of this Python
installation, concatenated; no file repeats up to 300 MB, above that the text
goes round again). Every contender produces the same canonical output
(``word\\tcount`` lines sorted by UTF-8 bytes), which is checked byte for byte.

* baseline: ``multiprocessing.Pool(2)`` over line-aligned chunks, Counter per chunk, merged.
* dask: ``dask.bag.read_text`` + per-partition Counter, processes scheduler, 2 workers.
* Shardex r = 1: devnet, 2 worker processes, ``job submit``-equivalent from
  input file to verified result file (split, store, post, draw, fetch,
  compute, commit, reveal, settle, fetch result), with ``adversary`` 0: the
  margin is 1, one drawn worker per task.
* Shardex r = 3: the same with ``epsilon`` 0.01 against ``adversary`` 0.1,
  which gives margin 3 (a task settles when 3 drawn workers agree), with 3
  worker processes (a task never seats the same worker twice, so a margin-m
  job needs at least m workers), on the same 2 cores.

r is the number of workers per task (the margin, with no dissent). The job is
posted once every worker is drawable (staked, opted in, and a new epoch begun:
the bench mines the blocks on the devnet). Aims (the issue's): r = 1 within
1.25x of the baseline, r = 3 within 3.3x. Also: seconds from the job being
posted to its first drawn seat (``post_to_first_draw_s``; v1 measured the first
claim), worker-seconds per part of the tasks (fetch with its verification,
stage, run, store), the agents' seconds in requests to the chain and their
count (``chain_s``, ``chain_requests``) and the peak resident memory of every process of each run
(``shardex_r{1,3}_peak_rss_mb``: requester, Anvil, each worker agent, largest
task). Ends with one JSON line holding all figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORD = re.compile(r"\w+")
MAX_TASKS = 1


def build_corpus(path: Path, target: int, repeat: bool = False) -> int:
    """``target`` bytes of real text; ``repeat``: go round the files again when they run out (a
    big run: every word count is still exact, just larger)."""
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    size = 0
    with path.open("wb") as out:
        while True:
            before = size
            for root in sorted(roots):
                for f in sorted(root.rglob("*")):
                    if f.suffix not in (".py", ".txt", ".rst", ".md", ".html") or not f.is_file():
                        continue
                    data = f.read_bytes()
                    try:
                        data.decode()
                    except UnicodeDecodeError:
                        continue
                    if not data.endswith(b"\n"):
                        data += b"\n"
                    out.write(data)
                    size += len(data)
                    if size >= target:
                        return size
            if not repeat or size == before:
                raise SystemExit(f"only {size} bytes of text found, need {target} (a run above 300 MB goes round again)")


class PeakRss:
    """The peak resident memory of every process of a Shardex run, by role, from the kernel's own
    high-water mark (``VmHWM``), sampled every ``interval`` s: the bench process (the requester:
    split, store, serve, result; its mark is reset when the run starts), Anvil, each worker agent
    and the largest task."""

    ROLES = (("shardex.programs.run", "task"), ("--account-index", "worker"), ("worker run", "launcher"),
             ("anvil", "anvil"))

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peaks: Counter = Counter()
        self._roles: dict[int, str | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset this process's high-water mark: Pool and dask ran in it before
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _role(self, pid: int) -> str | None:
        if pid not in self._roles:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                return None
            self._roles[pid] = "requester" if pid == os.getpid() else next(
                (role for needle, role in self.ROLES if needle in cmdline), None)
        return self._roles[pid]

    def _sample(self) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or (role := self._role(int(entry))) is None:
                continue
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            kb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) if "VmHWM" in status else 0
            self.peaks[role] = max(self.peaks[role], kb * 1024)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def megabytes(self) -> dict[str, float]:
        return {role: round(b / 1e6, 1) for role, b in sorted(self.peaks.items())}


def canonical(counts: Counter) -> bytes:
    return "".join(f"{w}\t{c}\n" for w, c in sorted(counts.items(), key=lambda kv: kv[0].encode())).encode()


def count_chunk(args: tuple[str, int, int]) -> Counter:
    path, start, end = args
    with open(path, "rb") as f:
        f.seek(start)
        return Counter(WORD.findall(f.read(end - start).decode().lower()))


def chunks(path: Path, n: int) -> list[tuple[str, int, int]]:
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as f:
        for i in range(1, n):
            f.seek(i * size // n)
            f.readline()
            bounds.append(max(f.tell(), bounds[-1]))
    bounds.append(size)
    return [(str(path), a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def run_pool(path: Path) -> tuple[float, bytes]:
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        total: Counter = Counter()
        for part in pool.imap_unordered(count_chunk, chunks(path, 16)):
            total.update(part)
    out = canonical(total)
    return time.perf_counter() - start, out


def _dask_partition(lines) -> list[Counter]:
    c: Counter = Counter()
    for line in lines:
        c.update(WORD.findall(line.lower()))
    return [c]


def run_dask(path: Path) -> tuple[float, bytes]:
    import dask
    import dask.bag as db

    start = time.perf_counter()
    bag = db.read_text(str(path), blocksize="16MB", linedelimiter="\n")
    with dask.config.set(scheduler="processes", num_workers=2):
        parts = bag.map_partitions(_dask_partition).compute()
    total: Counter = Counter()
    for c in parts:
        total.update(c)
    out = canonical(total)
    return time.perf_counter() - start, out


async def wait_drawable(c, workers: int, timeout: float = 180.0) -> None:
    """Until ``workers`` workers are in the CPU pool's current epoch: a worker
    opts in when it starts and counts from the next epoch, which on the devnet
    (automine) comes only as blocks are mined, so mine them."""
    from deploy.devnet import rpc_call

    deadline = time.monotonic() + timeout
    while True:
        joined: set[str] = set()
        for e in await c.events(names=["OptedIn", "OptedOut"]):
            if e.class_ == 0:
                (joined.add if e.name == "OptedIn" else joined.discard)(e.worker)
        if len(joined) >= workers:
            stakes = sum([(await c.worker(a)).stake for a in joined])
            if await c.pool_weight(0) >= stakes:
                return
            await asyncio.to_thread(rpc_call, c.rpc_url, "evm_mine")
        else:
            await asyncio.sleep(0.2)
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(joined)} of {workers} workers joined the pool in {timeout:.0f} s")


async def run_shardex(path: Path, home: Path, workers: int, epsilon: float, adversary: float,
                      map_shards: int) -> dict:
    from shardex.chain import ChainClient
    from shardex.config import Settings
    from shardex.requester import SubmitRequest, post, prepare, result
    from shardex.serving import serving
    from shardex.storage import EmbeddedStore

    env = {**os.environ, "SHARDEX_HOME": str(home)}
    cli = [sys.executable, "-m", "shardex_cli"]
    info = json.loads(subprocess.run([*cli, "devnet", "up", "--json"], env=env, check=True, capture_output=True,
                                     text=True).stdout)
    os.environ["SHARDEX_HOME"] = str(home)
    log = open(home / "workers.log", "wb")  # noqa: SIM115
    procs = subprocess.Popen([*cli, "worker", "run", "--count", str(workers), "--max-tasks", str(MAX_TASKS), "--poll", "0.1"],
                             env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        settings = Settings(account_index=9)
        store = EmbeddedStore(settings.content_dir)
        async with ChainClient(info["rpc_url"], settings.deployment(), settings.account()) as c:
            await wait_drawable(c, workers)  # workers up, staked and in the lottery
            # min_stake: at least the pool's minimum stake (10**15 wei on the devnet).
            req = SubmitRequest(program="wordcount", program_file=None, input=str(path), map_shards=map_shards,
                                reduce_shards=2, epsilon=epsilon, adversary=adversary, reward=10**12,
                                collateral=10**13, min_stake=10**15, reveal_window=30)
            start = time.perf_counter()
            spec = await prepare(req, store)
            prepared = time.perf_counter()
            async with serving(store) as url:
                await c.announce(url)
                job_id = await post(c, req, spec)
                posted = time.perf_counter()
                first_draw = None
                while True:
                    job = await c.job(job_id)
                    if first_draw is None and job.has_draws:
                        first_draw = time.perf_counter() - posted
                    if not job.state.active:
                        break
                    await asyncio.sleep(0.05)
                ended = time.perf_counter()
                out = home / "result.txt"
                await result(c, store, job_id, out)
            elapsed = time.perf_counter() - start
            split = {"prepare_s": prepared - start, "job_s": ended - prepared, "result_s": start + elapsed - ended}
            return {"seconds": elapsed, "post_to_first_draw_s": first_draw, "output": out.read_bytes(),
                    "state": job.state.name, "margin": job.margin, "split": split}
    finally:
        os.killpg(procs.pid, signal.SIGTERM)
        procs.wait(120)
        log.close()
        subprocess.run([*cli, "devnet", "down"], env=env, capture_output=True)


TASK_LINE = re.compile(r"computed in ([0-9.]+) s \(([^)]*)\)")
CHAIN_LINE = re.compile(r"chain: ([0-9]+) RPC requests, ([0-9.]+) s")


def task_seconds(log: str) -> dict[str, float]:
    """Worker-seconds per part of every computed task (the agents log them):
    fetch, stage, run, store, and the task total; and the agents' seconds in
    requests to the chain (``chain_s``, every agent's exit line: its ticks,
    draws, commits and reveals), with their count (``chain_requests``)."""
    parts: Counter = Counter()
    for total, detail in TASK_LINE.findall(log):
        parts["tasks_s"] += float(total)
        for item in filter(None, detail.split(", ")):
            name, seconds, _ = item.split(" ")
            parts[f"{name}_s"] += float(seconds)
    for requests, seconds in CHAIN_LINE.findall(log):
        parts["chain_s"] += float(seconds)
        parts["chain_requests"] += int(requests)
    return dict(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--map-shards", type=int, default=8)
    parser.add_argument("--margins", default="1,3", help="which Shardex runs: 1, 3 or both")
    parser.add_argument("--no-dask", action="store_true", help="skip dask (e.g. a 2 GB run: --mb 2048)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shardex-e2e-"))
    corpus = work / "corpus.txt"
    size = build_corpus(corpus, args.mb * 1024 * 1024, repeat=args.mb > 300)
    print(f"corpus: {size / 1e6:.1f} MB of real text ({corpus})")
    pool_s, reference = run_pool(corpus)
    print(f"multiprocessing.Pool(2): {pool_s:6.2f} s")
    figures = {"corpus_mb": round(size / 1e6, 1), "pool_s": round(pool_s, 2)}
    dask_s = None
    if not args.no_dask:
        dask_s, dask_out = run_dask(corpus)
        assert dask_out == reference, "dask disagrees"
        print(f"dask.bag (2 processes):  {dask_s:6.2f} s  ({dask_s / pool_s:.2f}x baseline)")
        figures.update(dask_s=round(dask_s, 2), dask_vs_pool=round(dask_s / pool_s, 3))
    # (workers per task, epsilon, adversary, worker processes, aim)
    margins = {int(m) for m in args.margins.split(",")}
    for r, epsilon, adversary, workers, aim in ((1, 1e-3, 0.0, 2, 1.25), (3, 0.01, 0.1, 3, 3.3)):
        if r not in margins:
            continue
        home = work / f"home-r{r}"
        with PeakRss() as rss:
            run = asyncio.run(run_shardex(corpus, home, workers, epsilon, adversary, args.map_shards))
        run["split"].update(task_seconds((home / "workers.log").read_text(errors="replace")))
        assert run["margin"] == r, f"epsilon {epsilon:g} vs adversary {adversary:g} gave margin {run['margin']}"
        assert run["state"] == "COMPLETED" and run["output"] == reference, f"shardex r={r} result differs"
        ratio = run["seconds"] / pool_s
        figures[f"shardex_r{r}_s"] = round(run["seconds"], 2)
        figures[f"shardex_r{r}_vs_pool"] = round(ratio, 3)
        if dask_s:
            figures[f"shardex_r{r}_vs_dask"] = round(run["seconds"] / dask_s, 3)
        figures[f"shardex_r{r}_peak_rss_mb"] = rss.megabytes()
        figures[f"shardex_r{r}_post_to_first_draw_s"] = round(run["post_to_first_draw_s"], 3)
        figures[f"shardex_r{r}_split"] = {k: round(v, 2) for k, v in run["split"].items()}
        vs_dask = f"; {run['seconds'] / dask_s:.2f}x dask" if dask_s else ""
        print(f"shardex margin {r} (epsilon {epsilon:g}, adversary {adversary:g}), {workers} workers: "
              f"{run['seconds']:6.2f} s  ({ratio:.2f}x baseline, aim <= {aim}x{vs_dask}); "
              f"posted -> first draw {run['post_to_first_draw_s']:.2f} s")
        print("  peak RSS (MB): " + ", ".join(f"{k} {v}" for k, v in rss.megabytes().items()))
        wall = ("prepare_s", "job_s", "result_s")
        chain = ("chain_s", "chain_requests")
        print("  wall: " + ", ".join(f"{k[:-2]} {run['split'][k]:.2f} s" for k in wall)
              + "; worker-seconds in tasks: " + ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in run["split"].items()
                                                       if k not in (*wall, *chain))
              + f"; agents in chain requests: {run['split'].get('chain_s', 0):.2f} s "
                f"({run['split'].get('chain_requests', 0):.0f} requests)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
