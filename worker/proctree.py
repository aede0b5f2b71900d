"""Processes as /proc shows them: a task's whole tree, its resident memory, its signals.

A sandboxed task is a tree under the ``bwrap`` process the worker started: the
PID namespace's init reaps orphans, so whatever a task forks, daemonised or
not, stays a descendant of that process until it dies.
"""

from __future__ import annotations

import os
import signal

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, process group) of a pid, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[1]), int(rest[2])


def parents() -> dict[int, int]:
    """pid -> parent pid, for every process visible now."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := stat(int(name))) is not None:
            out[int(name)] = st[1]
    return out


def descendants(root: int, parent_of: dict[int, int] | None = None) -> list[int]:
    """``root`` and every live process below it."""
    parent_of = parents() if parent_of is None else parent_of
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root] if root in parent_of else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def ancestor_in(pid: int, candidates: set[int] | dict, parent_of: dict[int, int] | None = None) -> int | None:
    """The first of ``pid`` itself and its ancestors that is in ``candidates``."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid in candidates:
            return pid
        if parent_of is not None:
            ppid = parent_of.get(pid)
        else:
            st = stat(pid)
            ppid = st[1] if st else None
        if ppid is None:
            return None
        pid, seen = ppid, seen + 1
    return None


def resident_bytes(pids: list[int]) -> int:
    """Memory these processes hold, each page counted once: the sum of their
    proportional set sizes (a page shared by n of them counts 1/n to each), as a
    cgroup would charge it. Forked children share their parent's pages; summing
    RSS would count those again for every child."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            try:  # no smaps_rollup (old kernel): resident pages, shared ones counted in full
                with open(f"/proc/{pid}/statm", "rb") as f:
                    total += int(f.read().split()[1]) * PAGE_SIZE
            except (OSError, IndexError, ValueError):
                continue
    return total


def signal_tree(root: int, sig: int) -> None:
    """Signal ``root`` and every process below it (parents first, so a stopped
    parent forks no new child between the scan and its signal)."""
    for pid in descendants(root):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(root: int) -> None:
    """SIGKILL a task: its process group, then anything below it that left the group."""
    tree = descendants(root)  # before the kill: once the root dies, its children move to another parent
    try:
        os.killpg(root, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
