"""Task cgroups, on a directory shaped like a delegated cgroup v2 subtree.

The real files' semantics (the kernel enforcing memory.max) cannot be had on a
cgroup v1 machine; this checks what the worker writes and how it reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cgroup import CgroupParent, CgroupUnavailable


def _delegated(tmp_path: Path, controllers: str = "cpu memory pids") -> Path:
    own = tmp_path / "system.slice" / "shardex.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    return own


def test_task_cgroups_get_memory_swap_and_pids_limits(tmp_path: Path) -> None:
    own = _delegated(tmp_path)
    parent = CgroupParent.detect(root=tmp_path, own="/system.slice/shardex.service")
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert parent.path.parent == own and (parent.path / "cgroup.subtree_control").read_text() == "+memory +pids"
    task = parent.create("7-0-0", memory_bytes=512 << 20, max_pids=64)
    assert (task.path / "memory.max").read_text() == str(512 << 20)
    assert (task.path / "memory.swap.max").read_text() == "0"
    assert (task.path / "pids.max").read_text() == "64"
    assert task.procs == str(task.path / "cgroup.procs")
    assert task.oom_killed() is False  # no events file yet
    (task.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert task.oom_killed() is False
    (task.path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    assert task.oom_killed() is True


def test_without_the_memory_controller_the_worker_says_so(tmp_path: Path) -> None:
    _delegated(tmp_path, "cpu io")
    with pytest.raises(CgroupUnavailable, match="lacks the memory, pids controller"):
        CgroupParent.detect(root=tmp_path, own="/system.slice/shardex.service")


def test_this_machine_either_has_task_cgroups_or_says_why() -> None:
    try:
        parent = CgroupParent.detect()
    except CgroupUnavailable as exc:
        assert str(exc)  # the reason the agent logs and shows
    else:
        assert parent.path.is_dir()
        parent.path.rmdir()
