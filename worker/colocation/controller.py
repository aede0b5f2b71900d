"""Keep latency-bound online work within its SLO while offline batch tasks fill the rest.

The online service reports every request's latency (:meth:`ColocationController.record_latency`
or the :meth:`~ColocationController.track` context manager, which also lets the
controller see a request that is *still running* past the SLO). Offline tasks
are OS processes (process groups) registered with
:meth:`~ColocationController.register`; on registration they are reniced to 19
(and optionally put under ``SCHED_IDLE`` and into a cgroup v2 with a low
``cpu.weight``) so the kernel already favours online work.

The control loop (:meth:`~ColocationController.run`, one tick every ~5 ms, or
:meth:`~ColocationController.tick` called by hand) computes the slack
``(SLO - p99) / SLO`` over a sliding window and moves between three states::

    RUNNING  --slack < admit_stop_slack-->  THROTTLED  (admit() is False; running tasks go on)
    THROTTLED --slack >= admit_resume_slack--> RUNNING
    RUNNING/THROTTLED --slack < pause_slack, or one request > SLO
                       (finished, or still in flight)--> PAUSED (SIGSTOP to every group)
    PAUSED --samples of the last resume_hold_s all within SLO and their slack
             >= resume_slack, and paused >= resume_hold_s--> THROTTLED/RUNNING (SIGCONT)
    PAUSED for kill_after_s while the recent slack is still < 0 (pausing did
             not help) --> SIGKILL the newest task's group + requeue, one task
             every kill_interval_s

Hysteresis: pause at slack < 0.2 but resume only at >= 0.4 after a hold; the
slack that can trigger a pause only counts samples taken since the last
resume (samples from before the pause describe a state that no longer holds);
a pause that follows a resume within ``flap_window_s`` doubles the hold (up to
``max_resume_hold_s``), and the hold decays back after a calm period.

Time to yield: from the first observation that calls for a pause (the
violating request's completion, or the instant an in-flight request's age
crossed the SLO, or the tick that saw the slack fall) until ``/proc`` shows
every process of every registered group stopped (``T``/``t``) or gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker import proctree

log = logging.getLogger("shardex.worker.colocation")

RUNNING = "running"
THROTTLED = "throttled"
PAUSED = "paused"
_STATE_CODE = {RUNNING: 0, THROTTLED: 1, PAUSED: 2}
_STOPPED_STATES = {"T", "t", "Z", "X"}  # stopped, traced, zombie, dead: none of them use a CPU


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Thresholds:
    admit_stop_slack: float = 0.5  # stop admitting new offline tasks below this slack
    admit_resume_slack: float = 0.6  # ... and admit again at or above this one
    pause_slack: float = 0.2  # SIGSTOP every offline task below this slack
    pause_on_violation: bool = True  # ... or as soon as one request takes longer than the SLO
    inflight_pause: bool = True  # ... counting a request still running past the SLO
    resume_slack: float = 0.4  # SIGCONT once the recent slack is back at or above this
    resume_hold_s: float = 0.5  # ... held this long (and at least this long after the pause)
    max_resume_hold_s: float = 4.0  # the hold doubles on each flap, up to this
    flap_window_s: float = 2.0  # a pause within this long after a resume counts as a flap
    kill_after_s: float = 10.0  # paused this long with the recent slack still < 0: kill + requeue
    kill_interval_s: float = 1.0  # then one more task every this long
    min_samples: int = 5  # fewer samples than this in a window: slack is not judged (1.0)


def _group_members(pgid: int) -> list[int]:
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proctree.stat(int(name))
            if st is not None and st[2] == pgid:
                members.append(int(name))
    return members


@dataclass
class OfflineTask:
    pid: int  # the pid given to register() (or the pgid itself)
    pgid: int | None  # the group signalled; None: only the pid (it shares our own group)
    requeue: Callable | None
    registered_at: float
    members: list[int] = field(default_factory=list)
    members_at: float = 0.0
    paused: bool = False


class ColocationController:
    def __init__(
        self,
        slo_p99_ms: float,
        window_s: float = 2.0,
        *,
        thresholds: Thresholds | None = None,
        tick_s: float = 0.005,
        nice: int | None = 19,
        sched_idle: bool = True,
        cgroup_path: str | os.PathLike | None = None,
        cpu_weight: int = 1,
        clock: Callable[[], float] = time.monotonic,
        max_yield_samples: int = 10_000,
    ) -> None:
        if slo_p99_ms <= 0:
            raise ValueError("slo_p99_ms must be positive")
        self.slo_ms = float(slo_p99_ms)
        self.window_s = float(window_s)
        self.th = thresholds or Thresholds()
        self.tick_s = tick_s
        self.nice = nice
        self.sched_idle = sched_idle
        self.cpu_weight = cpu_weight
        self.clock = clock
        self._lock = threading.RLock()
        self._samples: deque[tuple[float, float]] = deque()  # (time, ms) within window_s
        self._sorted_cache: tuple[int, list[float]] | None = None
        self._inflight: dict[int, float] = {}
        self._next_token = 0
        self._tasks: dict[int, OfflineTask] = {}
        self.state = RUNNING
        self._state_since = clock()
        self._last_resume = -math.inf
        self._hold_s = self.th.resume_hold_s
        self._last_kill = -math.inf
        self._yield_t0: float | None = None  # pending time-to-yield measurement
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # counters
        self.requests_total = 0
        self.requests_within_slo = 0
        self.counts = {"admitted": 0, "rejected": 0, "paused": 0, "resumed": 0, "killed": 0,
                       "requeued": 0, "pause_events": 0, "resume_events": 0, "flaps": 0}
        self.yield_ms: deque[float] = deque(maxlen=max_yield_samples)
        self.cgroup_path = self._setup_cgroup(cgroup_path)

    # ---------------------------------------------------------------- online side

    def record_latency(self, ms: float, now: float | None = None) -> None:
        """One finished online request took ``ms`` milliseconds."""
        now = self.clock() if now is None else now
        with self._lock:
            self._samples.append((now, float(ms)))
            self._sorted_cache = None
            self.requests_total += 1
            if ms <= self.slo_ms:
                self.requests_within_slo += 1
            elif self.th.pause_on_violation and self.state != PAUSED:
                self._pause(now, f"request took {ms:.1f} ms > SLO {self.slo_ms:g} ms")
                return
            if self.state != PAUSED:  # react now rather than on the next tick
                slack = self._slack_of(self._sorted(self._last_resume))
                if slack < self.th.pause_slack:
                    self._pause(now, f"slack {slack:.2f} < {self.th.pause_slack}")

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Time one online request; the controller also sees it while it is still running."""
        t0 = self.clock()
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._inflight[token] = t0
        try:
            yield
        finally:
            with self._lock:
                self._inflight.pop(token, None)
            self.record_latency((self.clock() - t0) * 1000.0)

    def _window(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._samples and self._samples[0][0] < cutoff:
            self._samples.popleft()
            self._sorted_cache = None

    def _sorted(self, since: float = -math.inf) -> list[float]:
        if since == -math.inf or not self._samples or self._samples[0][0] >= since:
            if self._sorted_cache is None or self._sorted_cache[0] != len(self._samples):
                self._sorted_cache = (len(self._samples), sorted(ms for _, ms in self._samples))
            return self._sorted_cache[1]
        return sorted(ms for t, ms in self._samples if t >= since)

    def _slack_of(self, values: list[float]) -> float:
        if len(values) < self.th.min_samples:
            return 1.0 if not values or max(values) <= self.slo_ms else (self.slo_ms - max(values)) / self.slo_ms
        return (self.slo_ms - percentile(values, 0.99)) / self.slo_ms

    # ---------------------------------------------------------------- offline side

    def admit(self) -> bool:
        """May the agent start another offline task now?"""
        with self._lock:
            ok = self.state == RUNNING
            if not ok:
                self.counts["rejected"] += 1
            return ok

    def register(self, pid_or_pgid: int, requeue: Callable | None = None) -> None:
        """Manage an offline task: its process group (or only the pid, if it shares ours)."""
        now = self.clock()
        pid = int(pid_or_pgid)
        try:
            pgid: int | None = os.getpgid(pid)
        except ProcessLookupError:
            pgid = pid  # not a live pid: take it as a process group id
            if not _group_members(pgid):
                raise ProcessLookupError(f"no process or process group {pid}") from None
        if pgid == os.getpgrp():
            log.warning("offline task %d shares the controller's process group: signalling the pid only", pid)
            pgid = None
        task = OfflineTask(pid=pid, pgid=pgid, requeue=requeue, registered_at=now)
        self._refresh_members(task, now)
        self._lower_priority(task)
        with self._lock:
            self._tasks[pid] = task
            self.counts["admitted"] += 1
            if self.state == PAUSED:
                self._signal(task, signal.SIGSTOP)
                task.paused = True
                self.counts["paused"] += 1

    def unregister(self, pid_or_pgid: int) -> None:
        """The task ended (or the agent took it back): forget it, continuing it first if paused."""
        with self._lock:
            task = self._tasks.pop(int(pid_or_pgid), None)
            if task is not None and task.paused:
                self._signal(task, signal.SIGCONT)

    def _refresh_members(self, task: OfflineTask, now: float) -> None:
        task.members = _group_members(task.pgid) if task.pgid is not None else [task.pid]
        task.members_at = now

    def _lower_priority(self, task: OfflineTask) -> None:
        for pid in task.members or [task.pid]:
            if self.nice is not None:
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, pid, self.nice)
                if task.pgid is not None:
                    # A task in its own session gets its own autogroup (sched_autogroup_enabled):
                    # CFS then shares CPU between groups, and a task's nice counts only inside
                    # its group. Lower the group's nice too.
                    with contextlib.suppress(OSError):
                        with open(f"/proc/{pid}/autogroup", "w") as f:
                            f.write(f"{self.nice}\n")
            if self.sched_idle and hasattr(os, "SCHED_IDLE"):
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
            if self.cgroup_path is not None:
                try:
                    (self.cgroup_path / "cgroup.procs").write_text(f"{pid}\n")
                except OSError:
                    pass

    def _setup_cgroup(self, path) -> Path | None:
        if path is None:
            return None
        p = Path(path)
        try:
            p.mkdir(parents=True, exist_ok=True)
            (p / "cpu.weight").write_text(f"{self.cpu_weight}\n")
            return p
        except OSError as e:
            log.info("cgroup %s is not writable (%s): relying on nice/SCHED_IDLE only", p, e)
            return None

    def _signal(self, task: OfflineTask, sig: int) -> None:
        try:
            if task.pgid is not None:
                os.killpg(task.pgid, sig)
            else:
                os.kill(task.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as e:
            log.warning("cannot signal offline task %d: %s", task.pid, e)

    # ---------------------------------------------------------------- control

    def _set_state(self, state: str, now: float) -> None:
        if state != self.state:
            log.debug("colocation %s -> %s", self.state, state)
            self.state = state
            self._state_since = now

    def _pause(self, now: float, why: str, t0: float | None = None) -> None:
        """SIGSTOP every offline group (lock held)."""
        if now - self._last_resume < self.th.flap_window_s:
            self.counts["flaps"] += 1
            self._hold_s = min(self._hold_s * 2, self.th.max_resume_hold_s)
        for task in self._tasks.values():
            if not task.paused:
                self._signal(task, signal.SIGSTOP)
                task.paused = True
                self.counts["paused"] += 1
        self.counts["pause_events"] += 1
        self._set_state(PAUSED, now)
        self._last_kill = now
        if self._tasks:
            self._yield_t0 = now if t0 is None else t0
            self._check_yielded(self.clock())
        log.info("colocation: pausing %d offline task(s): %s", len(self._tasks), why)

    def _resume(self, now: float, state: str) -> None:
        for task in self._tasks.values():
            if task.paused:
                self._signal(task, signal.SIGCONT)
                task.paused = False
                self.counts["resumed"] += 1
        self.counts["resume_events"] += 1
        self._yield_t0 = None
        self._last_resume = now
        self._set_state(state, now)
        log.info("colocation: resumed offline tasks")

    def _check_yielded(self, now: float) -> None:
        """Record the time to yield once /proc shows every offline process stopped."""
        if self._yield_t0 is None:
            return
        for task in self._tasks.values():
            if now - task.members_at > 0.5:
                self._refresh_members(task, now)
            for pid in task.members:
                st = proctree.stat(pid)
                if st is not None and st[0] not in _STOPPED_STATES:
                    return
        self.yield_ms.append((now - self._yield_t0) * 1000.0)
        self._yield_t0 = None

    def _kill_one(self, now: float) -> None:
        victim = max(self._tasks.values(), key=lambda t: t.registered_at)  # least work lost
        del self._tasks[victim.pid]
        self._signal(victim, signal.SIGKILL)
        if victim.paused:
            self._signal(victim, signal.SIGCONT)  # a stopped process dies only once continued
        self.counts["killed"] += 1
        log.warning("colocation: killed offline task %d (SLO still violated while paused)", victim.pid)
        if victim.requeue is not None:
            try:
                victim.requeue()
                self.counts["requeued"] += 1
            except Exception:  # noqa: BLE001 - the controller must keep running
                log.exception("colocation: requeue of task %d failed", victim.pid)

    def tick(self, now: float | None = None) -> None:
        """One control decision (the loop calls this every tick_s)."""
        now = self.clock() if now is None else now
        th = self.th
        with self._lock:
            self._window(now)
            if self.state == PAUSED:
                self._check_yielded(now)
                recent = self._sorted(now - self._hold_s)
                recent_slack = self._slack_of(recent)
                stuck = any(now - t0 > self.slo_ms / 1000.0 for t0 in self._inflight.values())
                paused_for = now - self._state_since
                if (paused_for >= self._hold_s and not stuck and recent_slack >= th.resume_slack
                        and (not recent or recent[-1] <= self.slo_ms)):
                    whole = self._slack_of(self._sorted(self._last_resume))
                    self._resume(now, RUNNING if whole >= th.admit_resume_slack else THROTTLED)
                elif (self._tasks and paused_for >= th.kill_after_s and (recent_slack < 0 or stuck)
                        and now - self._last_kill >= (th.kill_interval_s if self.counts["killed"] else 0)):
                    self._kill_one(now)
                    self._last_kill = now
                return
            # Only samples since the last resume may pause again: older ones describe the past.
            slack = self._slack_of(self._sorted(self._last_resume))
            if th.inflight_pause and self._inflight:
                oldest = min(self._inflight.values())
                if now - oldest > self.slo_ms / 1000.0:
                    self._pause(now, "a request is running past the SLO", t0=oldest + self.slo_ms / 1000.0)
                    return
            if slack < th.pause_slack:  # the newest sample is the first to show it
                self._pause(now, f"slack {slack:.2f} < {th.pause_slack}",
                            t0=self._samples[-1][0] if self._samples else None)
                return
            if now - self._last_resume > 4 * th.flap_window_s:
                self._hold_s = max(th.resume_hold_s, self._hold_s / 2)  # calm again: forget flaps
            if self.state == RUNNING and slack < th.admit_stop_slack:
                self._set_state(THROTTLED, now)
            elif self.state == THROTTLED and slack >= th.admit_resume_slack:
                self._set_state(RUNNING, now)

    async def run(self) -> None:
        """The control loop: tick every tick_s (every 1 ms while a yield is being confirmed)."""
        self._stop_event.clear()
        try:
            while not self._stop_event.is_set():
                self.tick()
                await asyncio.sleep(0.001 if self._yield_t0 is not None else self.tick_s)
        finally:
            self.release_all()

    def start_in_thread(self) -> threading.Thread:
        """Run the control loop in its own thread (immune to a busy event loop elsewhere)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.run()), name="colocation", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
            self._thread = None

    def release_all(self) -> None:
        """Continue every paused task (on shutdown: never leave processes stopped)."""
        with self._lock:
            for task in self._tasks.values():
                if task.paused:
                    self._signal(task, signal.SIGCONT)
                    task.paused = False
            if self.state == PAUSED:
                self._set_state(RUNNING, self.clock())

    # ---------------------------------------------------------------- visibility

    def metrics(self) -> dict:
        with self._lock:
            now = self.clock()
            self._window(now)
            values = self._sorted()
            ys = sorted(self.yield_ms)
            return {
                "slo_p99_ms": self.slo_ms,
                "window_s": self.window_s,
                "state": self.state,
                "admitting": self.state == RUNNING,
                "online_requests": self.requests_total,
                "online_window_requests": len(values),
                "online_inflight": len(self._inflight),
                "online_p50_ms": percentile(values, 0.50),
                "online_p99_ms": percentile(values, 0.99),
                "slack": self._slack_of(values),
                "slo_attainment": (self.requests_within_slo / self.requests_total) if self.requests_total else 1.0,
                "offline_tasks": len(self._tasks),
                "offline_paused_now": sum(t.paused for t in self._tasks.values()),
                "offline_admitted": self.counts["admitted"],
                "offline_rejected": self.counts["rejected"],
                "offline_paused": self.counts["paused"],
                "offline_resumed": self.counts["resumed"],
                "offline_killed": self.counts["killed"],
                "offline_requeued": self.counts["requeued"],
                "pause_events": self.counts["pause_events"],
                "resume_events": self.counts["resume_events"],
                "flaps": self.counts["flaps"],
                "resume_hold_s": self._hold_s,
                "time_to_yield_samples": len(ys),
                "time_to_yield_p50_ms": percentile(ys, 0.50),
                "time_to_yield_p99_ms": percentile(ys, 0.99),
                "time_to_yield_ms": list(self.yield_ms),
            }

    def render_metrics(self, prefix: str = "shardex_colocation") -> str:
        """The metrics in the Prometheus text exposition format."""
        m = self.metrics()

        def num(v) -> str:
            return "NaN" if isinstance(v, float) and math.isnan(v) else repr(float(v))

        lines: list[str] = []

        def metric(name, kind, help_, samples):
            lines.append(f"# HELP {prefix}_{name} {help_}")
            lines.append(f"# TYPE {prefix}_{name} {kind}")
            for labels, v in samples:
                lines.append(f"{prefix}_{name}{labels} {num(v)}")

        metric("online_latency_ms", "gauge", "Online request latency over the sliding window.",
               [('{quantile="0.5"}', m["online_p50_ms"]), ('{quantile="0.99"}', m["online_p99_ms"])])
        metric("slo_p99_ms", "gauge", "The online p99 latency objective.", [("", m["slo_p99_ms"])])
        metric("slack", "gauge", "(SLO - p99) / SLO over the window.", [("", m["slack"])])
        metric("slo_attainment_ratio", "gauge", "Fraction of online requests within the SLO.",
               [("", m["slo_attainment"])])
        metric("online_requests_total", "counter", "Online requests seen.", [("", m["online_requests"])])
        metric("state", "gauge", "0 running, 1 throttled (not admitting), 2 paused.",
               [("", _STATE_CODE[m["state"]])])
        metric("admitting", "gauge", "1 while new offline tasks are admitted.", [("", int(m["admitting"]))])
        metric("offline_tasks", "gauge", "Offline tasks under management.", [("", m["offline_tasks"])])
        for key in ("admitted", "rejected", "paused", "resumed", "killed", "requeued"):
            metric(f"offline_{key}_total", "counter", f"Offline tasks {key}.", [("", m[f"offline_{key}"])])
        metric("time_to_yield_ms", "summary", "From the first violating observation to every offline process stopped.",
               [('{quantile="0.5"}', m["time_to_yield_p50_ms"]), ('{quantile="0.99"}', m["time_to_yield_p99_ms"])])
        lines.append(f"{prefix}_time_to_yield_ms_count {m['time_to_yield_samples']}")
        lines.append(f"{prefix}_time_to_yield_ms_sum {num(sum(m['time_to_yield_ms']))}")
        return "\n".join(lines) + "\n"
