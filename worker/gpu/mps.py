"""The worker's own CUDA MPS control daemon, so compute shares are enforced.

``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` (what a lease's compute share becomes)
does nothing unless an MPS control daemon serves the task's CUDA context:
without one, tasks on a card are time-sliced and shares are advisory. With
``--mps`` the worker starts ``nvidia-cuda-mps-control -d`` with its pipe and
log directories under its data dir (so it never meets another daemon on the
machine), restarts it if it dies, and stops it (``quit``) on exit. Tasks reach
it through ``CUDA_MPS_PIPE_DIRECTORY``, bound into their sandbox.

MPS serves one uid's clients at a time: with MPS on, every GPU task runs
under the same task uid (see ``Sandbox.acquire_uid``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from shardex.errors import ShardexError

log = logging.getLogger("shardex.worker.gpu")
CONTROL_BINARY = "nvidia-cuda-mps-control"


class MpsError(ShardexError):
    """The MPS control daemon could not be started or stopped; the message says why."""


class MpsDaemon:
    def __init__(self, root: Path, binary: str = CONTROL_BINARY, *, start_timeout_s: float = 10.0) -> None:
        self.pipe_dir = root / "pipe"
        self.log_dir = root / "log"
        self.binary = binary
        self.start_timeout_s = start_timeout_s
        self.restarts = 0

    def env(self) -> dict[str, str]:
        """What a task (and this worker's control calls) needs to reach the daemon."""
        return {"CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir), "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir)}

    @property
    def control_pipe(self) -> Path:
        return self.pipe_dir / "control"

    def running(self) -> bool:
        """The daemon answers on its control pipe (it removes the pipe when it quits)."""
        return self.control_pipe.exists() and self._control("get_server_list", check=False) is not None

    def start(self) -> None:
        path = shutil.which(self.binary)
        if path is None:
            raise MpsError(f"{self.binary} not found: install the NVIDIA driver's MPS tools, or run without --mps")
        for d in (self.pipe_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        # Task uids (not this worker's) open the daemon's pipes from inside their sandboxes.
        self.pipe_dir.chmod(0o777)
        if self.running():
            log.info("MPS control daemon already running at %s", self.pipe_dir)
            return
        # Not pipes: the daemon it forks would hold them open, and we would wait for it.
        errors = self.log_dir / "start.err"
        try:
            with errors.open("wb") as err:
                proc = subprocess.run([path, "-d"], env={**os.environ, **self.env()}, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MpsError(f"{self.binary} -d failed to start: {exc}") from None
        if proc.returncode != 0:
            raise MpsError(f"{self.binary} -d exited {proc.returncode}: "
                           f"{errors.read_text(errors='replace')[-300:]}{self._log_tail()}")
        deadline = time.monotonic() + self.start_timeout_s
        while not self.running():
            if time.monotonic() > deadline:
                raise MpsError(f"the MPS control daemon did not answer on {self.control_pipe} within "
                               f"{self.start_timeout_s:g}s{self._log_tail()}")
            time.sleep(0.05)
        log.info("MPS control daemon started: pipes %s, logs %s", self.pipe_dir, self.log_dir)

    def ensure(self) -> bool:
        """Supervision: restart the daemon if it died. True if it had to."""
        if self.running():
            return False
        log.warning("MPS control daemon is gone; restarting it")
        self.restarts += 1
        self.start()
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.control_pipe.exists():
            return
        self._control("quit", check=False)
        deadline = time.monotonic() + timeout_s
        while self.control_pipe.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.control_pipe.exists():
            log.warning("MPS control daemon did not quit within %gs", timeout_s)
        else:
            log.info("MPS control daemon stopped")

    def _control(self, command: str, *, check: bool) -> str | None:
        path = shutil.which(self.binary)
        if path is None:
            return None
        try:
            proc = subprocess.run([path], input=f"{command}\n".encode(), env={**os.environ, **self.env()},
                                  capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            if check:
                raise MpsError(f"MPS control {command!r} failed: {proc.stderr.decode(errors='replace')[-300:]}")
            return None
        return proc.stdout.decode(errors="replace")

    def _log_tail(self) -> str:
        try:
            text = (self.log_dir / "control.log").read_text(errors="replace").strip()
        except OSError:
            return ""
        return f"; control.log: {text[-300:]}" if text else ""
