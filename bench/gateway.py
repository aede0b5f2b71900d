"""Gateway read path under load: GET /v1/jobs/{id} with wrk, idle vs while workers settle a job.

    python bench/gateway.py [--db sqlite|postgresql] [--seconds 10] [--connections 32] [--threads 2]
                            [--map-shards 160] [--mb 8]

``--db postgresql`` runs the whole benchmark twice, the index on SQLite and
then on a real PostgreSQL server (a throwaway cluster, deploy/postgres.py),
and prints the two side by side with PostgreSQL's ratios to SQLite.

Real processes, as an operator runs them: a private devnet (``shardex devnet
up``), ``shardex gateway --dev-sign`` (one uvicorn process with its indexer,
polling every 0.2 s) and two ``shardex worker run`` processes (dev keys 0 and
1). A requester (dev key 8) signs in through the API (SIWE) and submits
wordcount jobs of real text (the .py files of this Python's stdlib) with
adversary 0 (margin 1: one drawn worker per task), signing and relaying their
transactions through POST /v1/tx:

* the polled job: 1 MB in ``--polled-map-shards`` map + 2 reduce shards, run to
  completion first. wrk reads this one in every phase, so every answer is the
  same bytes and the ratio measures settlement's effect, not a growing answer
  (the detail of a job being settled grows with each of its events: its cost
  would change under the load for a reason other than the load). It is posted
  before the workers start: they stake, opt in, and draw its seats from the
  next epoch on (mining the blocks to it on the devnet);
* the settled job: ``--mb`` MB in ``--map-shards`` map + 2 reduce shards,
  posted once the polled job is done; the workers take it up at once.

Load: ``wrk -t THREADS -c CONNECTIONS -d SECONDS --latency --timeout 10s``
against ``GET /v1/jobs/{polled id}`` on loopback (keep-alive connections; a
request slower than 10 s would be a wrk timeout, reported, not lost).

Phases:

1. under settlement: once the settled job's first task has settled, the lag
   is sampled for ``--lag-seconds`` without HTTP load (the lag's reference),
   then wrk runs while the workers draw, commit, reveal and settle its
   tasks. Tasks settled in the window are read from its ``settled_tasks``
   (GET /v1/jobs/{id}) before and after, so the load is seen to overlap
   settlement;
   Then wrk reads the job being settled itself for as long: its detail is
   re-rendered from the index whenever an event of it arrives, and why it
   waits is read from the index on every request, so this is the figure that
   exercises the database (an ended, unchanged job is answered from memory);
2. idle (the ratio's baseline): the workers are killed, the indexer has caught
   up, nothing is mined any more; the same wrk run again.

Indexer lag under load: a background thread with one keep-alive client reads
``/healthz`` every 0.2 s (``lag_blocks``: the gateway's own view, with the head
as of its indexer's last poll) and, just after each answer, the chain head from
Anvil (``eth_blockNumber``) for ``head - indexed_block`` seen from outside (an
upper bound: blocks mined during the /healthz request count too).

Prints the figures with the ratios under settlement / idle, then ONE line with
all figures as JSON. Nothing is asserted on wall-clock figures; non-2xx
answers (expected 0) are reported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx

from deploy.devnet import free_port
from shardex.api_client import GatewayClient
from shardex.serving import wait_http

WORKERS = (0, 1)  # dev key indices
#: Error target of both jobs: adversary 0 gives margin 1 (any one drawn worker's
#: result settles a task), as v1's r = 1, q = 1 did.
ERROR_TARGET = {"epsilon": 0.001, "adversary": 0}
GATEWAY_KEY = 5
REQUESTER_KEY = 8
CLI = [sys.executable, "-m", "shardex_cli"]


# ------------------------------------------------------------------ input

def build_input(path: Path, target: int) -> int:
    """``target`` bytes of real text: the stdlib's .py files, whole lines, no file repeated."""
    size = 0
    with path.open("wb") as out:
        for f in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
            try:
                data = f.read_bytes()
                data.decode()
            except (OSError, UnicodeDecodeError):
                continue
            if not data.endswith(b"\n"):
                data += b"\n"
            if size + len(data) > target:
                data = data[:target - size].rsplit(b"\n", 1)[0] + b"\n"
            out.write(data)
            size += len(data)
            if size >= target - 200:
                return size
    raise SystemExit(f"only {size} bytes of stdlib text found, need {target}")


# ------------------------------------------------------------------ wrk

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(out: str) -> dict:
    def find(pattern: str, default: str | None = None) -> str:
        m = re.search(pattern, out, re.MULTILINE)
        if m is None:
            if default is None:
                raise ValueError(f"wrk output lacks {pattern!r}:\n{out}")
            return default
        return m.group(1)

    pct = {int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.MULTILINE)}
    if 99 not in pct:
        raise ValueError(f"wrk output lacks the 99% line (run with --latency):\n{out}")
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+)(B|KB|MB|GB|TB) read", out, re.MULTILINE)
    if m is None:
        raise ValueError(f"wrk output lacks the request total:\n{out}")
    requests, read = int(m.group(1)), float(m.group(3)) * _UNITS_B[m.group(4)]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(find(r"^Requests/sec:\s+([\d.]+)")),
        "p50_ms": pct.get(50), "p75_ms": pct.get(75), "p90_ms": pct.get(90), "p99_ms": pct[99],
        "mean_ms": _ms(find(r"^\s+Latency\s+(\S+)")), "max_ms": _ms(find(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)")),
        "requests": requests, "bytes_per_response": round(read / requests) if requests else None,
        "non_2xx": int(find(r"Non-2xx or 3xx responses:\s+(\d+)", "0")),
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "timeouts": int(errors.group(4)) if errors else 0,
    }


def run_wrk(url: str, args) -> dict:
    cmd = [args.wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
           "--timeout", "10s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return parse_wrk(out.stdout)


# ------------------------------------------------------------------ indexer lag sampler

class LagSampler:
    """Reads /healthz (one keep-alive client) and Anvil's head every ``period`` seconds, in a thread."""

    def __init__(self, gateway_url: str, rpc_url: str, period: float = 0.2) -> None:
        self.gw = httpx.Client(base_url=gateway_url, timeout=30)
        self.rpc = httpx.Client(timeout=30)
        self.rpc_url, self.period = rpc_url, period
        self.samples: list[tuple[int, int]] = []  # (gateway lag_blocks, chain head - indexed_block)
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _head(self) -> int:
        r = self.rpc.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        return int(r.json()["result"], 16)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                h = self.gw.get("/healthz")
                head = self._head()
                body = h.json() if h.status_code == 200 else h.json().get("health", {})
                if body.get("lag_blocks") is None or body.get("indexed_block") is None:
                    self.failures += 1
                else:
                    self.samples.append((body["lag_blocks"], max(0, head - body["indexed_block"])))
            except (httpx.HTTPError, ValueError, KeyError):
                self.failures += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(35)
        self.gw.close()
        self.rpc.close()

    def figures(self) -> dict:
        def stats(xs: list[int]) -> dict:
            if not xs:
                return {"max": None, "mean": None, "p99": None}
            s = sorted(xs)
            return {"max": s[-1], "mean": round(sum(s) / len(s), 2),
                    "p99": s[min(len(s) - 1, math.ceil(0.99 * len(s)) - 1)]}

        return {"samples": len(self.samples), "failures": self.failures,
                "gateway": stats([g for g, _ in self.samples]), "chain": stats([c for _, c in self.samples])}


# ------------------------------------------------------------------ processes

class Cluster:
    """The devnet, the gateway and the workers, all owned here and all stopped in ``close``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "SHARDEX_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.info: dict = {}
        self.devnet_up = False
        self.gateway: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.gateway_url = ""
        self._logs: list = []

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.home / log_name, "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        # own session: a terminal Ctrl-C reaches only this script, whose finally stops them in order
        return subprocess.Popen([*CLI, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_devnet(self) -> None:
        self.devnet_up = True  # `devnet down` in close() even if `up` fails half way
        out = subprocess.run([*CLI, "devnet", "up", "--json"], env=self.env, capture_output=True, text=True,
                             timeout=180, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"devnet up exited {out.returncode}:\n{out.stderr[-3000:]}")
        self.info = json.loads(out.stdout)

    def start_gateway(self, *extra: str) -> str:
        port = free_port()
        self.gateway = self._spawn(["--account-index", str(GATEWAY_KEY), "gateway", "--port", str(port),
                                    "--poll", "0.2", "--dev-sign", *extra], "gateway.log")
        self.gateway_url = f"http://127.0.0.1:{port}"
        if not wait_http(f"{self.gateway_url}/healthz", self.gateway, timeout=90):
            raise RuntimeError(f"gateway did not start:\n{self.tail('gateway.log')}")
        return self.gateway_url

    def start_workers(self) -> None:
        for i in WORKERS:
            self.workers.append(self._spawn(["--account-index", str(i), "worker", "run", "--data-dir",
                                             str(self.home / f"worker-{i}"), "--poll", "0.2"], f"worker-{i}.log"))

    def kill_workers(self) -> None:
        for p in self.workers:
            _signal_group(p, signal.SIGKILL)
        for p in self.workers:
            p.wait(30)

    def tail(self, name: str, n: int = 3000) -> str:
        try:
            return (self.home / name).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        for p in self.workers:
            _signal_group(p, signal.SIGTERM)
        _stop(self.workers, 20)
        if self.gateway is not None:
            _signal_group(self.gateway, signal.SIGINT)
            _stop([self.gateway], 20)
        if self.devnet_up:
            subprocess.run([*CLI, "devnet", "down"], env=self.env, capture_output=True, timeout=60, check=False)
        for log in self._logs:
            log.close()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait(10)


def _sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop every process started here


# ------------------------------------------------------------------ the benchmark

def job(client: httpx.Client, job_id: int) -> dict:
    r = client.get(f"/v1/jobs/{job_id}")
    r.raise_for_status()
    return r.json()


def wait_caught_up(gateway: httpx.Client, rpc_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = int(httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                             "params": []}).json()["result"], 16)
        if gateway.get("/healthz").json().get("indexed_block") == head:
            return
        time.sleep(0.2)
    raise RuntimeError("the indexer did not catch up with the idle chain")


def measure(cluster: Cluster, url: str, args) -> tuple[dict, dict]:
    with LagSampler(cluster.gateway_url, cluster.info["rpc_url"]) as sampler:
        wrk = run_wrk(url, args)
    return wrk, sampler.figures()


def wait_job(api: httpx.Client, job_id: int, cluster: Cluster, done, what: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while not done(j := job(api, job_id)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}; job {job_id}: {j['state']}, "
                               f"{j['settled_tasks']}/{j['tasks']} settled\n{cluster.tail('worker-0.log')}")
        time.sleep(0.2)
    return j


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration of each phase")
    ap.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--map-shards", type=int, default=160, help="map tasks of the job settled under load")
    ap.add_argument("--mb", type=float, default=8, help="MB of input text of the job settled under load")
    ap.add_argument("--lag-seconds", type=float, default=4, help="lag sampled under settlement before wrk starts")
    ap.add_argument("--polled-map-shards", type=int, default=32, help="map tasks of the (completed) polled job")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="wrk binary")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                    help="postgresql: run on SQLite and on a throwaway PostgreSQL server, side by side")
    args = ap.parse_args()
    if not (Path(args.wrk).is_file() and os.access(args.wrk, os.X_OK)):
        print(f"error: wrk not found ({args.wrk}); `make install` installs it (Debian package wrk)", file=sys.stderr)
        raise SystemExit(2)
    signal.signal(signal.SIGTERM, _sigterm)

    if args.db == "sqlite":
        print(json.dumps(run(args, "sqlite"), separators=(",", ":")))
        return
    from deploy.postgres import PostgresCluster

    figures = {}
    for kind in ("sqlite", "postgresql"):
        print(f"--- the index on {kind}", flush=True)
        figures[kind] = run(args, kind, PostgresCluster if kind == "postgresql" else None)
    side_by_side(figures["sqlite"], figures["postgresql"])
    sq, pg = figures["sqlite"], figures["postgresql"]
    out = {**sq, "postgresql": pg,
           "rps_load_postgresql_vs_sqlite": round(pg["rps_load"] / sq["rps_load"], 4),
           "rps_idle_postgresql_vs_sqlite": round(pg["rps_idle"] / sq["rps_idle"], 4),
           "p99_ms_load_postgresql_vs_sqlite": round(pg["p99_ms_load"] / sq["p99_ms_load"], 4),
           "rps_live_job_postgresql_vs_sqlite": round(pg["rps_live_job"] / sq["rps_live_job"], 4)}
    print(json.dumps(out, separators=(",", ":")))


SIDE_BY_SIDE = (("rps_load", "req/s under settlement"), ("rps_idle", "req/s idle"),
                ("rps_live_job", "req/s, the job being settled"), ("p99_ms_live_job", "p99 ms, the job being settled"),
                ("p50_ms_load", "p50 ms under settlement"), ("p99_ms_load", "p99 ms under settlement"),
                ("p99_ms_idle", "p99 ms idle"), ("chain_lag_blocks_max", "indexer lag under load, max blocks"),
                ("tasks_settled_in_window", "tasks settled in the window"), ("non_2xx", "non-2xx answers"))


def side_by_side(sq: dict, pg: dict) -> None:
    print(f"{'':36} {'SQLite':>10} {'PostgreSQL':>11} {'PG / SQLite':>12}")
    for key, label in SIDE_BY_SIDE:
        ratio = f"{pg[key] / sq[key]:.3f}" if isinstance(sq[key], (int, float)) and sq[key] else "-"
        print(f"  {label:34} {sq[key]:>10} {pg[key]:>11} {ratio:>12}")
    print(f"  aim: PostgreSQL req/s under settlement within 1.2x of SQLite's (ratio >= {1 / 1.2:.3f}); "
          f"p99 <= 50 ms for GET /v1/jobs/{{id}} on SQLite")


def run(args, kind: str, postgres=None) -> dict:
    """One whole benchmark with the index on ``kind``; returns its figures."""
    work = Path(tempfile.mkdtemp(prefix="shardex-gateway-bench-"))
    (work / "home").mkdir()
    cluster = Cluster(work / "home")
    cleanup: list = []
    ok = False
    try:
        size = build_input(work / "input.txt", int(args.mb * 1e6))
        polled_size = build_input(work / "polled.txt", int(1e6))
        print(f"polled job: {polled_size / 1e6:.1f} MB, {args.polled_map_shards} map + 2 reduce shards; settled job: "
              f"{size / 1e6:.1f} MB of stdlib text, {args.map_shards} map + 2 reduce shards; margin 1 (adversary 0); "
              f"{len(WORKERS)} workers; {os.cpu_count()} cores; wrk -t{args.threads} -c{args.connections} "
              f"-d{args.seconds}s", flush=True)
        t_start = time.monotonic()
        cluster.start_devnet()
        if postgres is not None:
            pg_dir = Path(tempfile.mkdtemp(prefix="shardex-bench-pg-"))  # the server's user must reach it
            server = postgres.start(pg_dir)
            cleanup += [server.stop, lambda: shutil.rmtree(pg_dir, ignore_errors=True)]
            cluster.start_gateway("--db", server.create_database("bench"))
        else:
            cluster.start_gateway()
        print(f"devnet + gateway up in {time.monotonic() - t_start:.1f} s ({cluster.gateway_url})", flush=True)
        api = httpx.Client(base_url=cluster.gateway_url, timeout=30)
        with GatewayClient(cluster.gateway_url, cluster.info["dev_keys"][REQUESTER_KEY]) as req:
            req.sign_in()
            # the polled job: run to completion first, so its answer is the same bytes in every phase
            polled = int(req.submit(work / "polled.txt", program="wordcount", map_shards=args.polled_map_shards,
                                    reduce_shards=2, **ERROR_TARGET)["job_id"])
            cluster.start_workers()
            t0 = time.monotonic()
            wait_job(api, polled, cluster, lambda j: j["state"] == "COMPLETED", "the polled job to complete")
            print(f"polled job {polled} completed in {time.monotonic() - t0:.1f} s", flush=True)
            # the settled job: the workers take it up as soon as it is posted
            settled_id = int(req.submit(work / "input.txt", program="wordcount", map_shards=args.map_shards,
                                        reduce_shards=2, **ERROR_TARGET)["job_id"])
        url = f"{cluster.gateway_url}/v1/jobs/{polled}"

        # 1. under settlement: wrk on the polled job while the workers settle the other one
        j = wait_job(api, settled_id, cluster, lambda j: j["settled_tasks"] >= 1, "the first task to settle")
        total_tasks = j["tasks"]
        with LagSampler(cluster.gateway_url, cluster.info["rpc_url"]) as quiet:  # lag without the HTTP load
            time.sleep(args.lag_seconds)
        lag_quiet = quiet.figures()
        settled0 = job(api, settled_id)["settled_tasks"]
        load, lag_load = measure(cluster, url, args)
        j = job(api, settled_id)
        settled1, state_after = j["settled_tasks"], j["state"]
        if j.get("margin") != 1:
            raise RuntimeError(f"job {settled_id} has margin {j.get('margin')}, expected 1 (adversary 0)")
        settled_in_window = settled1 - settled0
        window_covered = settled1 < total_tasks  # tasks were still left to settle when wrk stopped
        print(f"under settlement: {load['rps']:8.1f} req/s  p50 {load['p50_ms']:.2f} ms  p99 {load['p99_ms']:.2f} ms"
              f"  {load['bytes_per_response']} B/answer; {settled_in_window} tasks of job {settled_id} settled in "
              f"the window ({settled0} -> {settled1} of {total_tasks}, job {state_after})", flush=True)

        # 1b. the job being settled, read while it settles: its detail changes with every event of it
        # (re-rendered from the index) and says why it waits (read from the index on every request), so
        # this is the figure that reads the database; the polled job's is answered from memory.
        live_url = f"{cluster.gateway_url}/v1/jobs/{settled_id}"
        live_before = job(api, settled_id)["settled_tasks"]
        live = run_wrk(live_url, args)
        live_after = job(api, settled_id)["settled_tasks"]
        print(f"live job {settled_id}:   {live['rps']:8.1f} req/s  p50 {live['p50_ms']:.2f} ms  p99 "
              f"{live['p99_ms']:.2f} ms  ~{live['bytes_per_response']} B/answer; {live_after - live_before} of its "
              f"tasks settled meanwhile", flush=True)

        # 2. idle (the baseline): workers gone, indexer caught up, nothing mined any more
        cluster.kill_workers()
        wait_caught_up(api, cluster.info["rpc_url"])
        idle, lag_idle = measure(cluster, url, args)
        print(f"idle (baseline):  {idle['rps']:8.1f} req/s  p50 {idle['p50_ms']:.2f} ms  p99 {idle['p99_ms']:.2f} ms"
              f"  {idle['bytes_per_response']} B/answer", flush=True)
        api.close()

        rps_ratio = load["rps"] / idle["rps"]
        p99_ratio = load["p99_ms"] / idle["p99_ms"]
        lg, lc = lag_load["gateway"], lag_load["chain"]
        non_2xx = load["non_2xx"] + idle["non_2xx"]
        socket_errors = load["socket_errors"] + idle["socket_errors"]
        print(f"results (GET /v1/jobs/{polled}, a completed job of {args.polled_map_shards + 2} tasks, loopback):")
        print(f"  req/s under settlement / idle   {load['rps']:.1f} / {idle['rps']:.1f} = {rps_ratio:.3f}")
        print(f"  p99 under settlement / idle     {load['p99_ms']:.2f} / {idle['p99_ms']:.2f} ms = {p99_ratio:.3f}")
        print(f"  p50 under settlement / idle     {load['p50_ms']:.2f} / {idle['p50_ms']:.2f} ms")
        print(f"  indexer lag under load, blocks  gateway /healthz lag_blocks: max {lg['max']}, mean {lg['mean']}, "
              f"p99 {lg['p99']}; chain head - indexed_block: max {lc['max']}, mean {lc['mean']}, p99 {lc['p99']} "
              f"({lag_load['samples']} samples, {lag_load['failures']} failed)")
        lq = lag_quiet["chain"]
        print(f"  indexer lag, settlement without HTTP load ({args.lag_seconds:g} s before wrk), blocks: gateway max "
              f"{lag_quiet['gateway']['max']}, mean {lag_quiet['gateway']['mean']}; chain head - indexed_block: max "
              f"{lq['max']}, mean {lq['mean']}, p99 {lq['p99']} ({lag_quiet['samples']} samples)")
        print(f"  indexer lag idle, blocks        max {lag_idle['chain']['max']}")
        print(f"  tasks settled during the window {settled_in_window} ({settled0} -> {settled1} of {total_tasks}; "
              + ("still settling when wrk stopped)" if window_covered else
                 "JOB FINISHED INSIDE THE WINDOW: raise --map-shards)"))
        print(f"  non-2xx answers                 {non_2xx} (expected 0); socket errors {socket_errors}, "
              f"of which timeouts {load['timeouts'] + idle['timeouts']}")
        print(f"  cores                           {os.cpu_count()} (wrk, gateway, 2 workers and Anvil share them)")
        figures = {
            "cores": os.cpu_count(), "seconds": args.seconds, "connections": args.connections,
            "threads": args.threads, "polled_job_tasks": args.polled_map_shards + 2,
            "map_shards": args.map_shards, "input_mb": round(size / 1e6, 2), "settled_job_tasks": total_tasks,
            "margin": j["margin"],
            "rps_idle": round(idle["rps"], 1), "p50_ms_idle": round(idle["p50_ms"], 3),
            "p99_ms_idle": round(idle["p99_ms"], 3),
            "rps_load": round(load["rps"], 1), "p50_ms_load": round(load["p50_ms"], 3),
            "p99_ms_load": round(load["p99_ms"], 3),
            "rps_ratio_load_vs_idle": round(rps_ratio, 4), "p99_ratio_load_vs_idle": round(p99_ratio, 4),
            "bytes_per_response_idle": idle["bytes_per_response"], "bytes_per_response_load": load["bytes_per_response"],
            "lag_blocks_max": lg["max"], "lag_blocks_mean": lg["mean"], "lag_blocks_p99": lg["p99"],
            "chain_lag_blocks_max": lc["max"], "chain_lag_blocks_mean": lc["mean"], "chain_lag_blocks_p99": lc["p99"],
            "lag_samples": lag_load["samples"], "lag_sample_failures": lag_load["failures"],
            "lag_blocks_max_no_http_load": lag_quiet["gateway"]["max"],
            "lag_blocks_mean_no_http_load": lag_quiet["gateway"]["mean"],
            "chain_lag_blocks_max_no_http_load": lq["max"], "chain_lag_blocks_mean_no_http_load": lq["mean"],
            "chain_lag_blocks_max_idle": lag_idle["chain"]["max"],
            "tasks_settled_in_window": settled_in_window, "settled_before": settled0, "settled_after": settled1,
            "settling_through_window": window_covered,
            "non_2xx": non_2xx, "socket_errors": socket_errors, "wrk_timeouts": load["timeouts"] + idle["timeouts"],
            "requests_load": load["requests"], "requests_idle": idle["requests"],
            "rps_live_job": round(live["rps"], 1), "p50_ms_live_job": round(live["p50_ms"], 3),
            "p99_ms_live_job": round(live["p99_ms"], 3), "non_2xx_live_job": live["non_2xx"],
            "tasks_settled_during_live_job_run": live_after - live_before,
        }
        figures["db"] = kind
        ok = True
        return figures
    except KeyboardInterrupt:
        print("interrupted: stopping workers, gateway and devnet", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        cluster.close()
        for stop in cleanup:
            stop()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
