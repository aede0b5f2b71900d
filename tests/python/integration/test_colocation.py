"""The colocation controller with real processes on this machine's CPUs.

An online CPU-bound service (a SHA-256 stand-in for the embedding model, served
over HTTP on loopback) runs beside two offline busy-loop processes, each in its
own session. A client process hammers the service; the controller must stop
the offline groups (``T`` in /proc/<pid>/stat), record how long that took, and
continue them once the load is gone. No assertion is about speed: timeouts
only keep a broken run from hanging.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.python.serve import serve
from worker.colocation.controller import PAUSED, RUNNING, THROTTLED, ColocationController, Thresholds
from worker.colocation.online import create_app, standin_embed_fn

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")

BUSY = "import os\nwhile True:\n    pass\n"

HAMMER = textwrap.dedent(
    """
    import json, sys, threading, time, urllib.request
    url, seconds, conc = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    body = json.dumps({"texts": ["hammer"]}).encode()
    end = time.monotonic() + seconds
    def loop():
        while time.monotonic() < end:
            req = urllib.request.Request(url + "/embed", body, {"content-type": "application/json"})
            urllib.request.urlopen(req, timeout=30).read()
    threads = [threading.Thread(target=loop) for _ in range(conc)]
    for t in threads: t.start()
    for t in threads: t.join()
    """
)


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def kill_tree(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGKILL, signal.SIGCONT):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover - cannot happen after SIGKILL
        pass


@pytest.fixture
def offline() -> Iterator[list[subprocess.Popen]]:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True) for _ in range(2)]
    try:
        yield procs
    finally:
        for p in procs:
            kill_tree(p)


def hammer(url: str, seconds: float, conc: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HAMMER, url, str(seconds), str(conc)], start_new_session=True)


def post_embed(url: str, texts: list[str]) -> dict:
    req = urllib.request.Request(url + "/embed", json.dumps({"texts": texts}).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def online() -> Iterator[tuple[ColocationController, str]]:
    # ~4 ms of GIL-free CPU per text; 8 clients queueing on one worker thread take ~30+ ms.
    controller = ColocationController(
        slo_p99_ms=25.0, window_s=1.0,
        thresholds=Thresholds(resume_hold_s=0.3, kill_after_s=3600.0),
    )
    app = create_app(controller, standin_embed_fn(mb_per_text=8))
    controller.start_in_thread()
    try:
        with serve(app) as url:
            yield controller, url
    finally:
        controller.stop()


def test_yields_to_online_load_and_resumes(online, offline) -> None:
    controller, url = online
    for p in offline:
        controller.register(p.pid, requeue=None)
    pids = [p.pid for p in offline]
    # Registration lowered their priority.
    assert all(os.getpriority(os.PRIO_PROCESS, pid) == 19 for pid in pids)
    assert all(proc_state(pid) not in (None, "T") for pid in pids)

    out = post_embed(url, ["hello", "world"])
    assert len(out["vectors"]) == 2 and len(out["vectors"][0]) == 384

    client = hammer(url, seconds=3.0, conc=8)
    try:
        wait_for(lambda: all(proc_state(pid) == "T" for pid in pids), 20, "both offline groups stopped")
        assert controller.state == PAUSED
        assert not controller.admit()  # nothing new starts while online work struggles
        wait_for(lambda: controller.metrics()["time_to_yield_samples"] >= 1, 10, "a time-to-yield sample")
        client.wait(30)
    finally:
        kill_tree(client)

    # The load is gone: after the hold the offline groups run again.
    wait_for(lambda: all(proc_state(pid) not in (None, "T") for pid in pids), 20, "both offline groups continued")
    m = controller.metrics()
    assert m["offline_admitted"] == 2
    assert m["pause_events"] >= 1 and m["offline_paused"] >= 2
    assert m["offline_resumed"] >= 2 and m["resume_events"] >= 1
    assert m["offline_killed"] == 0
    assert m["time_to_yield_samples"] >= 1 and m["time_to_yield_p99_ms"] >= 0
    assert m["online_requests"] > 10 and 0 <= m["slo_attainment"] < 1
    text = controller.render_metrics()
    assert 'shardex_colocation_time_to_yield_ms{quantile="0.99"}' in text
    assert "shardex_colocation_offline_paused_total" in text
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert b"shardex_colocation_slo_attainment_ratio" in r.read()

    # Stopping the controller never leaves a process stopped.
    controller.unregister(pids[0])
    assert controller.metrics()["offline_tasks"] == 1


def test_kills_and_requeues_when_pausing_does_not_help(offline) -> None:
    # The online service alone cannot meet this SLO under the hammer: pausing does
    # not help, so after kill_after_s the controller kills and requeues the tasks.
    controller = ColocationController(
        slo_p99_ms=10.0, window_s=1.0,
        thresholds=Thresholds(resume_hold_s=0.3, kill_after_s=0.5, kill_interval_s=0.2),
    )
    requeued: list[int] = []
    for p in offline:
        controller.register(p.pid, requeue=lambda pid=p.pid: requeued.append(pid))
    app = create_app(controller, standin_embed_fn(mb_per_text=8))
    controller.start_in_thread()
    try:
        with serve(app) as url:
            client = hammer(url, seconds=30.0, conc=8)
            try:
                wait_for(lambda: len(requeued) == 2, 30, "both tasks requeued")
            finally:
                kill_tree(client)
        for p in offline:
            assert p.wait(10) == -signal.SIGKILL
        m = controller.metrics()
        assert m["offline_killed"] == 2 and m["offline_requeued"] == 2 and m["offline_tasks"] == 0
        assert sorted(requeued) == sorted(p.pid for p in offline)
    finally:
        controller.stop()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_thresholds_and_hysteresis_with_a_fake_clock() -> None:
    """The decision logic alone (a sleeping process stands in for an offline task)."""
    clock = FakeClock()
    c = ColocationController(slo_p99_ms=100.0, window_s=2.0, clock=clock,
                             thresholds=Thresholds(resume_hold_s=0.5, kill_after_s=3600.0))
    task = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        c.register(task.pid)

        def feed(ms: float, n: int = 20, dt: float = 0.01) -> None:
            for _ in range(n):
                clock.t += dt
                c.record_latency(ms)
                c.tick()

        feed(20)  # slack 0.8
        assert c.state == RUNNING and c.admit()
        feed(55, n=200)  # p99 55: slack 0.45 < 0.5 -> stop admitting, keep running
        assert c.state == THROTTLED and not c.admit() and proc_state(task.pid) != "T"
        feed(85, n=200)  # slack 0.15 < 0.2 -> pause
        assert c.state == PAUSED
        wait_for(lambda: proc_state(task.pid) == "T", 10, "the task stopped")
        for _ in range(100):  # the yield is confirmed on a tick
            c.tick()
            if c.metrics()["time_to_yield_samples"]:
                break
            time.sleep(0.001)
        assert c.metrics()["time_to_yield_samples"] == 1
        feed(70, n=100)  # slack 0.3: better, but below resume_slack 0.4 -> stays paused
        assert c.state == PAUSED
        feed(30, n=100)  # 1 s of slack 0.7 -> resume (hold 0.5 s), but the window still says throttle
        assert c.state in (RUNNING, THROTTLED) and proc_state(task.pid) != "T"
        assert c.metrics()["offline_resumed"] == 1
        feed(30, n=300)  # old samples leave the window -> admitting again
        assert c.state == RUNNING and c.admit()
        c.record_latency(150)  # one request over the SLO pauses at once
        assert c.state == PAUSED
        feed(30, n=100)
        assert c.state == RUNNING
        assert c.metrics()["pause_events"] == 2
        # A flap (paused again right after resuming) doubles the hold.
        c.record_latency(150)
        assert c.metrics()["flaps"] == 1 and c.metrics()["resume_hold_s"] == 1.0
        c.release_all()
        wait_for(lambda: proc_state(task.pid) != "T", 10, "the task continued")
    finally:
        kill_tree(task)


def test_register_own_group_signals_only_the_pid_and_cgroup_is_optional(tmp_path) -> None:
    c = ColocationController(slo_p99_ms=50.0, cgroup_path="/proc/definitely/not/writable")
    assert c.cgroup_path is None  # skipped silently
    task = subprocess.Popen(["sleep", "60"])  # same process group as the test
    try:
        c.register(task.pid)
        assert c._tasks[task.pid].pgid is None
        c.record_latency(500)  # pause: must not stop the test process itself
        wait_for(lambda: proc_state(task.pid) == "T", 10, "the task stopped")
        c.release_all()
        wait_for(lambda: proc_state(task.pid) != "T", 10, "the task continued")
    finally:
        task.kill()
        task.wait(10)
