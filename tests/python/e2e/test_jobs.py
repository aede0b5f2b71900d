"""The whole job loop with real worker processes, a real Anvil and the CLI."""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from shardex.api_client import GatewayClient, GatewayError
from tests.python.conftest import rpc
from tests.python.e2e.conftest import REQUESTER, Devnet, Gateway, real_text

pytestmark = pytest.mark.e2e


def wordcount_reference(data: bytes) -> bytes:
    counts: Counter = Counter()
    for line in data.decode().split("\n"):
        counts.update(re.findall(r"\w+", line.lower()))
    return "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items(), key=lambda kv: kv[0].encode())).encode()


def submit(net: Devnet, *args: str, **kw) -> dict:
    return net.json("job", "submit", "--wait", "--reveal-window", "5", *args, **kw)


def test_wordcount_three_workers_margin_3_is_correct_and_accounted_to_the_wei(devnet: Devnet, tmp_path: Path) -> None:
    text = real_text(3_000_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    for i in range(3):
        devnet.start_worker(i)
    # epsilon 1e-2 against a 10% adversary: f^3 / (f^3 + (1-f)^3) = 1.4e-3 <= 1e-2 < the same for 2.
    out = submit(devnet, "--program", "wordcount", "--input", str(src), "--map-shards", "4", "--reduce-shards",
                 "3", "--epsilon", "0.01", "--adversary", "0.1", "--reward", "0.001", "--collateral", "0.01")
    assert out["state"] == "COMPLETED"
    job_id = out["job_id"]
    result = tmp_path / "result.txt"
    devnet.cli("job", "result", str(job_id), "-o", str(result))
    assert result.read_bytes() == wordcount_reference(text)

    # Three workers, margin 3: each of the 7 tasks seated all three (never one twice), all agreed and were paid;
    # the escrow also prefunded 2 escalation seats per task + one round (3), unused and refunded.
    reward, seats, extra = 10**15, 3 * 7, 2 * 7 + 3
    escrow = reward * (seats + extra)
    devnet.wait_for(lambda: devnet.json("job", "show", str(job_id))["paid"] == reward * seats,
                    what="every seat paid by its reveal")
    status = devnet.json("job", "status", str(job_id))
    assert status["payouts"] == 21 and status["slashes"] == 0 and status["escalations"] == 0
    devnet.warp(60)
    devnet.cli("job", "refund", str(job_id))
    job = devnet.json("job", "show", str(job_id))
    assert job["escrow"] == escrow and job["paid"] == reward * seats and job["refunded"] == reward * extra
    for i in range(3):
        worker = devnet.json("stake", "show", account=i)
        assert (worker["settled"], worker["slashed"], worker["locked"]) == (7, 0, 0)


def test_sort_output_is_globally_sorted_and_a_permutation(devnet: Devnet, tmp_path: Path) -> None:
    text = real_text(1_500_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    devnet.start_worker(0)
    devnet.start_worker(1)
    out = submit(devnet, "--program", "sort", "--input", str(src), "--map-shards", "3", "--reduce-shards", "3",
                 "--adversary", "0")
    result = tmp_path / "sorted.txt"
    devnet.cli("job", "result", str(out["job_id"]), "-o", str(result))
    lines = result.read_bytes().split(b"\n")[:-1]
    assert lines == sorted(lines)
    assert Counter(lines) == Counter(text.split(b"\n")[:-1])


def test_dishonest_worker_forces_escalation_is_outvoted_and_slashed(devnet: Devnet, tmp_path: Path) -> None:
    text = real_text(800_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    for i in range(4):
        devnet.start_worker(i)
    # The liar stakes 100x more, so the lottery seats it in (almost) every task's first round.
    devnet.start_worker(4, "--stake", "100", fault="liar")
    # Its weight counts from the epoch after it opts in (16 blocks on the devnet): be there before the job.
    devnet.wait_for(lambda: "opted in to resource class 0" in devnet.log(4), what="the liar in the pool")
    for _ in range(16):
        rpc(devnet.info["rpc_url"], "evm_mine")
    requester_before = devnet.json("account")["balance"]
    # epsilon 0.02 against 10%: margin 2. A split first round (1 honest, the liar) escalates to 2 fresh seats.
    out = submit(devnet, "--program", "wordcount", "--input", str(src), "--map-shards", "2", "--reduce-shards",
                 "1", "--epsilon", "0.02", "--adversary", "0.1", "--collateral", "0.05")
    assert out["state"] == "COMPLETED"
    result = tmp_path / "result.txt"
    devnet.cli("job", "result", str(out["job_id"]), "-o", str(result))
    assert result.read_bytes() == wordcount_reference(text)
    status = devnet.json("job", "status", str(out["job_id"]))
    liar_address = devnet.json("stake", "show", account=4)["address"]
    liar_tasks = sum(liar_address in t["workers"] for t in status["task_list"])
    assert liar_tasks >= 1 and status["escalations"] == liar_tasks  # each seat it took split its round
    devnet.wait_for(lambda: devnet.json("stake", "show", account=4)["slashed"] == liar_tasks,
                    what="the liar slashed once per task it sat on")
    liar = devnet.json("stake", "show", account=4)
    assert liar["stake"] == 100 * 10**18 - liar_tasks * 5 * 10**16 and liar["settled"] == 0
    for i in range(4):
        assert devnet.json("stake", "show", account=i)["slashed"] == 0
    # Every honest seat, in split rounds too, is paid; the slashed collateral is burned, not the requester's.
    devnet.wait_for(lambda: devnet.json("job", "status", str(out["job_id"]))["payouts"]
                    == sum(len(t["workers"]) for t in status["task_list"]) - liar_tasks, what="honest seats paid")
    assert devnet.json("account")["market_credits"] == 0
    assert devnet.json("account")["balance"] < requester_before


SLOW_MAP = '''
import time
def map(record):
    time.sleep(0.002)
    yield record[:1], 1
def reduce(key, values):
    yield key + "\\t" + str(sum(values))
'''


def test_worker_killed_mid_task_loses_the_lease_and_recovers_from_sqlite(devnet: Devnet, tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_bytes(real_text(60_000))
    program = tmp_path / "slow.py"
    program.write_text(SLOW_MAP)
    victim = devnet.start_worker(0)
    serve = devnet.home / "serve.out"
    import subprocess
    import sys
    server = subprocess.Popen([sys.executable, "-m", "shardex_cli", "--account-index", str(REQUESTER), "store",
                               "serve"], env=devnet.env, stdout=open(serve, "wb"), stderr=subprocess.STDOUT)
    try:
        devnet.wait_for(lambda: serve.exists() and serve.read_text().startswith("http"), what="store serve")
        posted = devnet.json("job", "submit", "--program-file", str(program), "--input", str(src), "--map-shards",
                             "1", "--reduce-shards", "1", "--lease", "30", "--reveal-window", "5", "--adversary", "0")
        job_id = posted["job_id"]
        devnet.wait_for(lambda: devnet.json("job", "show", str(job_id))["tasks"][0]["seated"] == 1,
                        what="the first worker drawn")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        devnet.workers.pop(0)
        devnet.warp(31)  # the victim's lease runs out
        devnet.start_worker(1)
        # Its weight counts from the epoch after it opts in; nobody else transacts on this devnet meanwhile.
        devnet.wait_for(lambda: "opted in to resource class 0" in devnet.log(1), what="worker 1 in the pool")
        for _ in range(16):
            rpc(devnet.info["rpc_url"], "evm_mine")
        devnet.wait_for(lambda: devnet.json("job", "show", str(job_id))["state"] == "COMPLETED", timeout=120,
                        what="the job to complete without the victim")
        # Slashed as a no-show by the other worker: for task 0, and again for the
        # reduce task whenever the lottery drew the dead victim for it too (its
        # weight stays in the pool; the other agent mines the devnet past its lease).
        victim_stake = devnet.json("stake", "show", account=0)
        assert victim_stake["slashed"] >= 1 and victim_stake["settled"] == 0
        # Restarted, the victim finds its seat in SQLite, sees it was lost, and carries on.
        devnet.start_worker(0)
        state_db = devnet.home / "worker-0" / "state.sqlite"
        import sqlite3

        def victim_reconciled() -> bool:
            with sqlite3.connect(state_db) as db:
                return db.execute("SELECT status FROM replicas WHERE job_id=? AND task_id=0",
                                  (job_id,)).fetchone() == ("lost",)
        devnet.wait_for(victim_reconciled, what="the victim to reconcile its seat")
        assert devnet.workers[0].poll() is None  # still running
        result = tmp_path / "out.txt"
        devnet.cli("job", "result", str(job_id), "-o", str(result))
        assert result.read_bytes()
    finally:
        server.terminate()
        server.wait(10)


def test_bad_jobs_fail_clearly_and_never_strand_funds(devnet: Devnet, tmp_path: Path) -> None:
    missing = devnet.cli("job", "submit", "--program", "wordcount", "--input", str(tmp_path / "nope.txt"), "--wait",
                         "--json", check=False)
    assert missing.returncode == 1 and "nope.txt" in json.loads(missing.stderr)["error"]["message"]
    unknown_cid = devnet.cli("job", "submit", "--program", "wordcount", "--input",
                             "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--wait", "--json",
                             check=False)
    assert json.loads(unknown_cid.stderr)["error"]["name"] == "BlockNotFound"

    src = tmp_path / "input.txt"
    src.write_bytes(real_text(50_000))
    cheap = devnet.cli("job", "submit", "--program", "wordcount", "--input", str(src), "--map-shards", "2",
                       "--reward", "0.001", "--adversary", "0", "--wait", "--json", check=False,
                       fault=f"underpay={19 * 10**14}")
    error = json.loads(cheap.stderr)["error"]
    # Margin 1 (nobody assumed dishonest): a seat per task (3) + escalation seats (2 per task + 1).
    assert error == {"name": "JobMarketEscrowMismatch", "args": {"required": (3 + 7) * 10**15,
                                                                 "provided": 19 * 10**14}}
    assert devnet.cli("job", "show", "1", check=False).returncode == 1  # nothing was posted

    devnet.start_worker(0)
    raising = tmp_path / "raising.py"
    raising.write_text("def map(record):\n    raise ValueError('bad record')\n    yield\n"
                       "def reduce(key, values):\n    yield key\n")
    out = submit(devnet, "--program-file", str(raising), "--input", str(src), "--map-shards", "2", "--adversary", "0")
    assert out["state"] == "COMPLETED"  # the deterministic error settled: nobody is stuck, nobody slashed
    failed = devnet.cli("job", "result", str(out["job_id"]), "-o", str(tmp_path / "x"), "--json", check=False)
    assert "ValueError: bad record" in json.loads(failed.stderr)["error"]["message"]

    endless = tmp_path / "endless.py"
    endless.write_text("def map(record):\n    while True:\n        pass\n    yield\n"
                       "def reduce(key, values):\n    yield key\n")
    out = submit(devnet, "--program-file", str(endless), "--input", str(src), "--map-shards", "1",
                 "--task-timeout", "2", "--adversary", "0")
    assert out["state"] == "COMPLETED"
    failed = devnet.cli("job", "result", str(out["job_id"]), "-o", str(tmp_path / "y"), "--json", check=False)
    assert "timeout" in json.loads(failed.stderr)["error"]["message"]
    assert devnet.json("stake", "show", account=0)["slashed"] == 0


def test_embed_job_end_to_end(devnet: Devnet, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")  # the optional extra; `make test` installs it
    lines = ["The cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply today.",
             "Quarterly earnings beat expectations.", "unicode: naïve café ☕"]
    src = tmp_path / "sentences.txt"
    src.write_text("\n".join(lines) + "\n")
    devnet.start_worker(0)
    out = submit(devnet, "--program", "embed", "--input", str(src), "--map-shards", "2", "--reduce-shards", "1",
                 "--adversary", "0")
    assert out["state"] == "COMPLETED"
    result = tmp_path / "vectors.jsonl"
    devnet.cli("job", "result", str(out["job_id"]), "-o", str(result))
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert len(rows) == len(lines) and all(len(vec) == 384 for _, vec in rows)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))  # vectors are unit length

    vecs = [vec for _, vec in rows]
    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2])  # cat/kitten closer than cat/stocks


def test_only_workers_with_fitting_gpus_take_a_gpu_job(devnet: Devnet, tmp_path: Path) -> None:
    import httpx

    src = tmp_path / "input.txt"
    src.write_bytes(real_text(200_000))
    devnet.start_worker(0, "--gpus", "none")
    devnet.start_worker(1, "--gpus", "fake:1x16GB")
    out = submit(devnet, "--program", "wordcount", "--input", str(src), "--map-shards", "3", "--gpus", "1",
                 "--gpu-memory-mb", "8000", "--adversary", "0")
    assert out["state"] == "COMPLETED"
    status = devnet.json("job", "status", str(out["job_id"]))
    workers = {w for t in status["task_list"] for w in t["workers"]}
    gpu_worker = devnet.json("stake", "show", account=1)["address"]
    assert workers == {gpu_worker}
    assert "needs 1 GPUs; this worker has 0" in devnet.log(0)
    # The GPU worker describes its pool at /shardex/worker (the URL it logs and announces).
    url = next(line.split("serving ")[1].split(";")[0] for line in devnet.log(1).splitlines() if "serving http" in line)
    described = httpx.get(f"{url}/shardex/worker").json()
    assert described["gpus"]["gpu_count"] == 1 and described["gpus"]["memory_mb"] == [16 * 1024]


def test_worker_serves_online_embed_beside_offline_tasks(devnet: Devnet, tmp_path: Path) -> None:
    import httpx

    src = tmp_path / "input.txt"
    src.write_bytes(real_text(300_000))
    devnet.start_worker(0, "--online-slo-ms", "2000", fault="standin-embed")
    devnet.wait_for(lambda: "online embed service at" in devnet.log(0), what="the online service")
    url = next(line.split("serving ")[1].split(";")[0] for line in devnet.log(0).splitlines() if "serving http" in line)
    online = httpx.get(f"{url}/shardex/worker").json()["online"]
    r = httpx.post(f"{online['url']}/embed", json={"texts": ["hello", "world"]}, timeout=30)
    assert r.status_code == 200 and len(r.json()["vectors"]) == 2
    out = submit(devnet, "--program", "wordcount", "--input", str(src), "--map-shards", "3", "--adversary", "0")
    assert out["state"] == "COMPLETED"
    metrics = httpx.get(f"{url}/shardex/worker").json()["online"]["metrics"]
    assert metrics["online_requests"] >= 1 and metrics["offline_admitted"] >= 1


def test_a_task_that_cannot_reach_its_margin_fails_the_job_and_refunds_everything(devnet: Devnet,
                                                                                  tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_bytes(real_text(100_000))
    devnet.start_worker(0)
    devnet.start_worker(1, fault="liar")
    out = submit(devnet, "--program", "wordcount", "--input", str(src), "--map-shards", "1", "--epsilon", "0.02",
                 "--adversary", "0.1", "--max-rounds", "1", "--reward", "0.001", "--collateral", "0.01")
    assert out["state"] == "FAILED"  # margin 2, one round allowed: the round split, no escalation left
    job_id = str(out["job_id"])
    for i in (0, 1):  # nobody can be blamed: both are released, not slashed
        devnet.wait_for(lambda i=i: devnet.json("stake", "show", account=i)["locked"] == 0, what=f"worker {i} released")
        assert devnet.json("stake", "show", account=i)["slashed"] == 0
    devnet.warp(30)
    devnet.cli("job", "refund", job_id)
    job = devnet.json("job", "show", job_id)
    assert job["paid"] == 0 and job["refunded"] == job["escrow"] == 2 * 2 * 10**15


def test_inputs_nobody_can_fetch_fail_the_job_and_slash_nobody(devnet: Devnet, tmp_path: Path) -> None:
    """The requester serves its spec but lost its shards: every drawn worker tries,
    then gives its seat back as unavailable instead of waiting out its lease to
    be slashed as a no-show; at the margin-th report on a task the job fails,
    nobody loses stake, and the requester gets its whole escrow back."""
    src = tmp_path / "input.txt"
    src.write_bytes(real_text(50_000))
    for i in range(3):
        devnet.start_worker(i)
    out = submit(devnet, "--program", "wordcount", "--input", str(src), "--map-shards", "2", "--epsilon", "0.01",
                 "--adversary", "0.1", "--lease", "80", "--reward", "0.001", "--collateral", "0.01",
                 fault="withhold-inputs")
    assert out["state"] == "FAILED"
    job_id = str(out["job_id"])
    status = devnet.json("job", "status", job_id)
    assert status["margin"] == 3
    assert max(status["unavailable_inputs"].values()) == 3  # the third report on a task failed the job
    assert "could not fetch the input" in status["failure"]
    for i in range(3):
        devnet.wait_for(lambda i=i: devnet.json("stake", "show", account=i)["locked"] == 0, what=f"worker {i} released")
        assert devnet.json("stake", "show", account=i)["slashed"] == 0
    assert sum("reported its input unavailable" in devnet.log(i) for i in range(3)) == 3
    gateway = Gateway(devnet)  # the API (and the dashboard, which shows `failure`) says it in the same words
    try:
        with GatewayClient(gateway.url) as reader:
            def indexed() -> dict:
                try:
                    return reader.get(f"/v1/jobs/{job_id}")
                except GatewayError:  # 404 until the indexer reaches the job
                    return {}
            devnet.wait_for(lambda: indexed().get("state") == "FAILED", what="job indexed")
            shown = indexed()
        assert shown["failure"] == status["failure"]
        assert max(u["reports"] for u in shown["unavailable_inputs"]) == 3
    finally:
        gateway.stop()
    devnet.warp(30)
    devnet.cli("job", "refund", job_id)
    job = devnet.json("job", "show", job_id)
    assert job["paid"] == 0 and job["refunded"] == job["escrow"]


def test_a_provider_serving_corrupt_bytes_is_skipped_and_named_and_the_job_completes(devnet: Devnet,
                                                                                   tmp_path: Path) -> None:
    """The requester's own announced server lies (flips a byte of every block, raw or in a CAR); another
    account serves an honest copy of the same store. Workers ask the requester first: they verify, skip
    it, take the honest copy, and name the liar; the result is right and nobody is slashed."""
    import subprocess
    import sys

    import httpx

    from tests.python.e2e.conftest import ROOT

    text = real_text(300_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    servers = []
    try:
        for account, command in ((REQUESTER, ["-m", "tests.python.e2e.faults", "corrupt-serve"]),
                                 (8, ["-m", "shardex_cli"])):
            out = devnet.home / f"serve-{account}.out"
            servers.append(subprocess.Popen([sys.executable, *command, "--account-index", str(account), "store",
                                             "serve"], env={**devnet.env, "PYTHONPATH": str(ROOT)},
                                            stdout=open(out, "wb"), stderr=subprocess.STDOUT))  # noqa: SIM115
            devnet.wait_for(lambda out=out: out.exists() and out.read_text().startswith("http"), what="store serve")
        liar = (devnet.home / f"serve-{REQUESTER}.out").read_text().split()[0]
        for i in range(2):
            devnet.start_worker(i)
        # Posted without --wait: the requester's announced endpoint (the liar) is what serves its inputs.
        posted = devnet.json("job", "submit", "--program", "wordcount", "--input", str(src), "--map-shards", "3",
                             "--reduce-shards", "1", "--epsilon", "0.02", "--adversary", "0.1", "--reveal-window", "5")
        job_id = str(posted["job_id"])
        devnet.wait_for(lambda: devnet.json("job", "show", job_id)["state"] == "COMPLETED", timeout=180,
                        what="the job to complete from the honest copy")
        result = tmp_path / "result.txt"
        devnet.cli("job", "result", job_id, "-o", str(result))
        assert result.read_bytes() == wordcount_reference(text)
        named = 0
        for i in range(2):
            endpoint = re.search(r"serving (http://\S+);", devnet.log(i)).group(1)
            seen = httpx.get(f"{endpoint}/shardex/worker").json()["corrupt_providers"]
            metrics = httpx.get(f"{endpoint}/metrics").text
            blocks = float(re.search(r"^shardex_worker_corrupt_blocks (\S+)$", metrics, re.MULTILINE).group(1))
            assert set(seen) <= {liar} and blocks == sum(seen.values())
            named += bool(seen)
            assert devnet.json("stake", "show", account=i)["slashed"] == 0
        assert named == 2  # both fetched inputs, both from the liar first
        assert all(f"provider {liar} served bytes that do not match" in devnet.log(i) for i in range(2))
    finally:
        for server in servers:
            server.kill()
            server.wait(10)


def test_the_requester_goes_offline_after_upload_and_the_job_completes_from_worker_copies(devnet: Devnet,
                                                                                       tmp_path: Path) -> None:
    """The requester serves its inputs only until one worker has fetched them (and committed every map task);
    then its server is gone for good. A second worker, joining later, is drawn for the other seats and fetches
    the inputs from the first worker's copy (workers serve what they fetched); the job completes, right."""
    import subprocess
    import sys
    import time

    text = real_text(200_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    out = devnet.home / "serve.out"
    server = subprocess.Popen([sys.executable, "-m", "shardex_cli", "--account-index", str(REQUESTER), "store",
                               "serve"], env=devnet.env, stdout=open(out, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        devnet.wait_for(lambda: out.exists() and out.read_text().startswith("http"), what="store serve")
        devnet.start_worker(0)
        devnet.wait_for(lambda: "opted in to resource class 0" in devnet.log(0), what="worker 0 in the pool")
        # A margin of 2: worker 0 alone holds one seat of each task, the other waits for a second worker.
        posted = devnet.json("job", "submit", "--program", "wordcount", "--input", str(src), "--map-shards", "3",
                             "--reduce-shards", "1", "--epsilon", "0.02", "--adversary", "0.1", "--reveal-window", "5")
        job_id = str(posted["job_id"])

        def map_committed() -> bool:
            status = devnet.json("job", "status", job_id)
            return all("committed" in t["workers"].values() for t in status["task_list"][:3])

        for _ in range(80):  # epochs pass only as blocks are mined: the devnet mines on demand
            if map_committed():
                break
            rpc(devnet.info["rpc_url"], "evm_mine")
            time.sleep(0.5)
        assert map_committed(), devnet.log(0)[-3000:]
    finally:
        server.kill()  # the requester is offline from here on
        server.wait(10)
    devnet.start_worker(1)
    devnet.wait_for(lambda: "opted in to resource class 0" in devnet.log(1), what="worker 1 in the pool")

    def completed() -> bool:
        rpc(devnet.info["rpc_url"], "evm_mine")
        return devnet.json("job", "show", job_id)["state"] == "COMPLETED"

    devnet.wait_for(completed, timeout=240, what="the job to complete without its requester")
    result = tmp_path / "result.txt"
    devnet.cli("job", "result", job_id, "-o", str(result))
    assert result.read_bytes() == wordcount_reference(text)
    status = devnet.json("job", "status", job_id)
    assert status["slashes"] == 0 and status["unavailable_inputs"] == {}
    # Worker 1 computed a seat of every map task after the requester was gone: its inputs came from worker 0.
    late = devnet.info["dev_addresses"][1].lower()
    for t in status["task_list"][:3]:
        assert {w.lower() for w in t["workers"]} == {devnet.info["dev_addresses"][0].lower(), late}, t
        assert t["settled"] and status["declines"] == 0
