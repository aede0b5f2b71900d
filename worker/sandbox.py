"""Isolate one task's process from the worker that runs it.

A worker runs strangers' code next to its staked key, so every task (built-in
and user programs alike) runs under bubblewrap with:

- no network (its own, empty network namespace), its own PID, IPC and UTS
  namespaces: it cannot see, signal or ptrace the agent;
- a filesystem of its own: read-only system directories, the Python
  interpreter and the ``shardex`` package; the task's inputs read-only at
  ``/task``; ``/task/out`` and ``/task/tmp`` writable; nothing else of the
  host (no home, no data directories, no keystores, no ``/sys``);
- an unprivileged user: a worker running as root starts bubblewrap
  privileged (it may bind anything) and drops the task to a uid of its own per
  slot, with no capabilities and ``no_new_privs``; a worker running as an
  ordinary user gets a user namespace and the task runs as that user, who then
  sees only what is bound;
- a GPU lease's device nodes and nothing more.

Fixed paths inside (``/task``, hostname ``shardex-task``) also make outputs
independent of where each worker keeps its files: honest replicas agree.

Where no sandbox can be built (no bwrap, namespaces disabled), ``detect``
says why; the agent then refuses user programs and shows the reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import shardex

#: Where a task sees its scratch directory, whatever the worker's data dir is.
TASK_DIR = "/task"
#: Uids handed to tasks when the worker runs as root: one per running task, so
#: one task's process count or files never touch another's. Far above the
#: range distributions give to people and to container subuid maps.
DEFAULT_UID_BASE = 1_200_000
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
#: World-readable configuration the dynamic linker, locale and name lookups use; nothing secret.
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group",
              "nsswitch.conf", "os-release")


class SandboxUnavailable(RuntimeError):
    """No sandbox can be built on this machine (the message says why)."""


@dataclass
class Sandbox:
    """How tasks are wrapped on this machine; found once by ``detect``."""

    bwrap: str
    privileged: bool  # running as root: bind as root, then drop to a task uid
    uid_base: int = DEFAULT_UID_BASE
    setpriv: str | None = None
    _free_uids: set[int] = field(default_factory=set)
    _next_uid: int = 0

    @property
    def description(self) -> str:
        who = "a uid of its own per task" if self.privileged else "this worker's uid in a user namespace"
        return f"bubblewrap ({self.bwrap}): no network, own PID namespace, read-only host view, {who}"

    # -- uids (privileged mode)

    def acquire_uid(self, shared: bool = False) -> int | None:
        """A uid for one task; ``shared``: the one uid all GPU tasks share under
        MPS, which serves one uid's clients at a time."""
        if not self.privileged:
            return None
        if shared:
            return self.uid_base - 1
        if self._free_uids:
            return self._free_uids.pop()
        self._next_uid += 1
        return self.uid_base + self._next_uid - 1

    def release_uid(self, uid: int | None) -> None:
        if uid is not None and uid != self.uid_base - 1:
            self._free_uids.add(uid)

    # -- the command

    def wrap(self, argv: list[str], *, scratch: Path, uid: int | None, devices: list[str] = (),
             bind_rw: list[str] = ()) -> list[str]:
        """``argv`` run inside the sandbox. ``scratch`` appears at /task (read-only)
        with its ``out`` and ``tmp`` subdirectories writable; ``devices`` are
        device nodes to expose (a GPU lease's); ``bind_rw`` host directories
        bound writable at the same path (an MPS pipe directory)."""
        cmd = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
               "--unshare-uts", "--unshare-cgroup-try", "--hostname", "shardex-task"]
        if not self.privileged:
            cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
        for d in _SYSTEM_DIRS:
            if os.path.islink(d):
                cmd += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                cmd += ["--ro-bind", d, d]
        for name in _ETC_FILES:
            cmd += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        binds = python_paths()
        # Directories bwrap creates on the way to a bind copy the host's modes (a
        # 0700 /root would hide the interpreter from the task's uid): make them 0755.
        system = tuple(d + os.sep for d in _SYSTEM_DIRS)
        parents = {str(p) for b in [*binds, *bind_rw] for p in Path(b).parents if str(p) != "/"}
        for d in sorted(parents, key=lambda p: p.count(os.sep)):
            if not (d + os.sep).startswith(system) and d not in _SYSTEM_DIRS:
                cmd += ["--perms", "0755", "--dir", d]
        for path in binds:
            cmd += ["--ro-bind", path, path]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        if devices:
            # CUDA reads the cards' PCI topology from sysfs; a CPU task needs none of it.
            cmd += ["--ro-bind", "/sys", "/sys"]
        for node in devices:
            cmd += ["--dev-bind-try", node, node]
        for path in bind_rw:
            cmd += ["--bind", path, path]
        cmd += ["--ro-bind", str(scratch), TASK_DIR,
                "--bind", str(scratch / "out"), f"{TASK_DIR}/out",
                "--bind", str(scratch / "tmp"), f"{TASK_DIR}/tmp",
                "--chdir", TASK_DIR]
        if self.privileged:
            # bwrap keeps root's capabilities for its child unless told: keep only
            # what setpriv needs to drop to the task uid, and setpriv drops those too.
            cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                    "--cap-add", "CAP_SETPCAP", "--", self.setpriv or "setpriv", f"--reuid={uid}", f"--regid={uid}",
                    "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        else:
            cmd += ["--"]
        return cmd + argv

    def prepare(self, scratch: Path, uid: int | None) -> None:
        """Create the task's writable directories, owned by the task's uid."""
        for name in ("out", "tmp"):
            d = scratch / name
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            if uid is not None:
                os.chown(d, uid, uid)


@functools.cache  # the same for the life of the process: not recomputed at every task start
def python_paths() -> list[str]:
    """What the runner needs to import: the interpreter's prefixes and the shardex package."""
    paths = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths.add(os.path.realpath(os.path.dirname(os.path.realpath(sys.executable))))
    paths.add(package_dir())
    # A prefix under another one is bound with it; binding both is harmless but noisy.
    ordered = sorted(paths, key=len)
    return [p for i, p in enumerate(ordered) if not any(p.startswith(q + os.sep) for q in ordered[:i])]


def package_dir() -> str:
    return os.path.realpath(os.path.dirname(shardex.__file__))


def pythonpath() -> str:
    """PYTHONPATH inside the sandbox: the directory holding the bound shardex package."""
    return os.path.dirname(package_dir())


def detect(*, uid_base: int = DEFAULT_UID_BASE) -> Sandbox:
    """The sandbox this machine can build, proven by running a process in it.
    Raises SandboxUnavailable with the reason otherwise."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    privileged = os.geteuid() == 0
    setpriv = shutil.which("setpriv") if privileged else None
    if privileged and setpriv is None:
        raise SandboxUnavailable("running as root needs setpriv (util-linux) to drop tasks to their own uid")
    box = Sandbox(bwrap, privileged, uid_base, setpriv)
    with tempfile.TemporaryDirectory(prefix="shardex-sandbox-probe-") as tmp:
        scratch = Path(tmp)
        uid = box.acquire_uid()
        box.prepare(scratch, uid)
        os.chmod(scratch, 0o755)
        probe = [sys.executable, "-I", "-c", "import os; open('/task/out/ok', 'w').write(str(os.getuid()))"]
        try:
            proc = subprocess.run(box.wrap(probe, scratch=scratch, uid=uid), capture_output=True, timeout=30,
                                  env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SandboxUnavailable(f"bwrap could not start a probe: {e}") from None
        finally:
            box.release_uid(uid)
        out = scratch / "out" / "ok"
        if proc.returncode != 0 or not out.exists():
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise SandboxUnavailable(f"bwrap cannot build a sandbox here (exit {proc.returncode}): "
                                     f"{err[-1] if err else 'no output'}")
        if privileged and out.read_text() == "0":
            raise SandboxUnavailable("the probe ran as root inside the sandbox")
    return box
