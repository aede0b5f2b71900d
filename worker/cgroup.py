"""A cgroup v2 of its own for each task, where the worker may create one.

``memory.max`` limits what a task holds in RAM (page cache and tmpfs included)
without limiting its address space, which CUDA and OpenBLAS reserve far beyond
any RAM cap; ``memory.swap.max = 0`` keeps it from paging instead; ``pids.max``
bounds its processes and threads. The kernel counts ``oom_kill`` events, so a
task killed over its limit is told apart from one killed for any other reason.

The worker needs a cgroup it may write to. As root in a container (its own
cgroup namespace) that is the namespace's root. Elsewhere, delegate one:

    systemd-run --user -p Delegate=yes --scope shardex worker run     # or, in a unit:
    [Service]
    Delegate=memory pids

The worker then moves itself into a leaf (``<its cgroup>/agent-<pid>``) and
puts tasks under ``<its cgroup>/tasks-<pid>/``. Where none of this works,
``CgroupParent.detect`` says why and the executor falls back to a
resident-memory watchdog.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "pids")


class CgroupUnavailable(RuntimeError):
    pass


def _cgroup2_mount() -> Path | None:
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ")[0] == "cgroup2":
                return Path(left.split(" ")[4])
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        return None
    return None


def _enable(path: Path) -> None:
    (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))


@dataclass
class TaskCgroup:
    path: Path

    @property
    def procs(self) -> str:
        """The file a process writes "0" to, to enter this cgroup (from the task's preexec)."""
        return str(self.path / "cgroup.procs")

    def oom_killed(self) -> bool:
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def peak_bytes(self) -> int | None:
        try:
            return int((self.path / "memory.peak").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # still draining: the next task's create() of the same name will retry


@dataclass
class CgroupParent:
    """The directory task cgroups are created in, with memory and pids enabled."""

    path: Path

    @classmethod
    def detect(cls, root: Path | None = None, own: str | None = None) -> CgroupParent:
        mount = root or _cgroup2_mount()
        rel = own if own is not None else _own_cgroup()
        if mount is None or rel is None:
            raise CgroupUnavailable("no cgroup v2 hierarchy is mounted")
        here = mount / rel.lstrip("/")
        available = (here / "cgroup.controllers").read_text().split() if (here / "cgroup.controllers").exists() \
            else []
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise CgroupUnavailable(f"cgroup v2 {here} lacks the {', '.join(missing)} controller(s) "
                                    "(cgroup v1 holds them, or they are not delegated)")
        if not os.access(here, os.W_OK):
            raise CgroupUnavailable(f"cgroup {here} is not writable by this user: delegate it (see worker/cgroup.py)")
        tasks = here / f"tasks-{os.getpid()}"
        try:
            try:
                _enable(here)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                # "No internal processes": leave for a leaf of our own, then enable.
                leaf = here / f"agent-{os.getpid()}"
                leaf.mkdir(exist_ok=True)
                (leaf / "cgroup.procs").write_text("0")
                _enable(here)
            tasks.mkdir(exist_ok=True)
            _enable(tasks)
        except OSError as e:
            raise CgroupUnavailable(f"cannot set up task cgroups under {here}: {e}") from None
        return cls(tasks)

    def create(self, name: str, *, memory_bytes: int, max_pids: int) -> TaskCgroup:
        path = self.path / name
        path.mkdir(exist_ok=True)
        (path / "memory.max").write_text(str(memory_bytes))
        try:
            (path / "memory.swap.max").write_text("0")
        except OSError:
            pass  # no swap accounting on this kernel: nothing to disable
        (path / "pids.max").write_text(str(max_pids))
        return TaskCgroup(path)
