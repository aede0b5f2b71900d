"""The worker's MPS supervisor against a stand-in control binary (no GPU here).

The stand-in behaves as nvidia-cuda-mps-control does in what the supervisor
relies on: ``-d`` daemonises and creates ``$CUDA_MPS_PIPE_DIRECTORY/control``;
commands arrive on stdin; ``quit`` makes the daemon remove its pipe and exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from worker.executor import TaskLimits, run_program
from worker.gpu.mps import MpsDaemon, MpsError
from worker.sandbox import detect

pytestmark = pytest.mark.integration

STANDIN = textwrap.dedent(f'''\
    #!{sys.executable}
    import os, sys, time
    pipes = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
    control = os.path.join(pipes, "control")
    with open(os.path.join(pipes, "calls"), "a") as f:
        f.write(" ".join(sys.argv[1:]) + "|" + os.environ.get("CUDA_MPS_LOG_DIRECTORY", "") + "\\n")
    if sys.argv[1:] == ["-d"]:
        if os.fork():
            sys.exit(0)          # the caller returns at once, as the real -d does
        os.setsid()
        open(control, "w").close()
        with open(os.path.join(pipes, "daemon.pid"), "w") as f:
            f.write(str(os.getpid()))
        while os.path.exists(control):
            time.sleep(0.02)
        sys.exit(0)
    if not os.path.exists(control):
        sys.exit(1)              # no daemon to talk to
    command = sys.stdin.read().strip()
    if command == "quit":
        os.remove(control)
    print("")
''')


@pytest.fixture
def standin(tmp_path: Path) -> str:
    path = tmp_path / "bin" / "nvidia-cuda-mps-control"
    path.parent.mkdir()
    path.write_text(STANDIN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _daemon_pid(d: MpsDaemon) -> int:
    return int((d.pipe_dir / "daemon.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_start_then_stop_runs_a_daemon_of_our_own(tmp_path: Path, standin: str) -> None:
    d = MpsDaemon(tmp_path / "mps", standin)
    assert not d.running()
    d.start()
    assert d.running() and d.control_pipe.exists()
    pid = _daemon_pid(d)
    assert _alive(pid)
    calls = (d.pipe_dir / "calls").read_text().splitlines()
    assert calls[0] == f"-d|{d.log_dir}"  # its pipe and log directories are the worker's own
    assert d.env() == {"CUDA_MPS_PIPE_DIRECTORY": str(d.pipe_dir), "CUDA_MPS_LOG_DIRECTORY": str(d.log_dir)}
    d.stop()
    assert not d.control_pipe.exists()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)
    assert (d.pipe_dir / "calls").read_text().splitlines()[-1].startswith("|")  # quit came on stdin


def test_a_dead_daemon_is_restarted(tmp_path: Path, standin: str) -> None:
    d = MpsDaemon(tmp_path / "mps", standin)
    d.start()
    assert d.ensure() is False and d.restarts == 0
    first = _daemon_pid(d)
    os.kill(first, signal.SIGKILL)
    d.control_pipe.unlink()  # a killed daemon leaves no one answering
    assert d.ensure() is True and d.restarts == 1 and d.running()
    assert _daemon_pid(d) != first
    d.stop()


def test_a_missing_control_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MpsError, match="nvidia-cuda-mps-control not found"):
        MpsDaemon(tmp_path / "mps", "nvidia-cuda-mps-control").start()


def test_a_daemon_that_never_answers_is_a_clear_error(tmp_path: Path) -> None:
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    with pytest.raises(MpsError, match="did not answer"):
        MpsDaemon(tmp_path / "mps", str(silent), start_timeout_s=0.3).start()


async def test_a_sandboxed_gpu_task_reaches_the_daemons_pipes(tmp_path: Path, standin: str) -> None:
    d = MpsDaemon(tmp_path / "mps", standin)
    d.start()
    try:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        scratch.chmod(0o755)
        (scratch / "p.py").write_text(
            "import os\ndef map(r):\n    d = os.environ['CUDA_MPS_PIPE_DIRECTORY']\n"
            "    open(d + '/client', 'w').write(str(os.getuid()))\n"
            "    yield 'pipes', sorted(os.listdir(d))\n"
            "def reduce(k, v):\n    yield k, v\n")
        (scratch / "params.json").write_text("{}")
        (scratch / "input").write_text("x\n")
        sandbox = detect()
        result = await run_program(phase="map", program=None, program_file=scratch / "p.py",
                                   params_file=scratch / "params.json", index=0, map_shards=1, reduce_shards=1,
                                   inputs=[scratch / "input"], scratch=scratch, sandbox=sandbox,
                                   limits=TaskLimits(memory_mb=512, timeout_s=30), extra_env=d.env(),
                                   bind_rw=[str(d.pipe_dir)], shared_uid=True)
        assert result.error is None, result.error
        assert "control" in json.loads(result.outputs[0].read_text())[1][0]
        client_uid = int((d.pipe_dir / "client").read_text())
        # Under MPS every GPU task runs as one uid (MPS serves one uid's clients at a time).
        assert client_uid == (sandbox.uid_base - 1 if sandbox.privileged else 65534)
    finally:
        d.stop()
    await asyncio.sleep(0)
