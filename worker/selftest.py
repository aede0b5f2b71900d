"""Prove, before taking any seat, that a task runs on this worker as configured.

A worker whose runner cannot start (a broken install, a sandbox the kernel
refuses) would otherwise find out on its first seat and lose that lease.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from worker.executor import RunnerFailure, TaskLimits, run_program

_INPUT = b"to be or not to be\n"
_EXPECTED = b"be\t2\nnot\t1\nor\t1\nto\t2\n"


async def self_test(scratch_root: Path, run_options: dict) -> None:
    """Run a one-line wordcount map and reduce; raise RunnerFailure unless both give the known answer."""
    scratch = scratch_root / "self-test"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    scratch.chmod(0o755)
    try:
        (scratch / "params.json").write_bytes(b"{}")
        (scratch / "input").write_bytes(_INPUT)
        limits = TaskLimits(memory_mb=512, timeout_s=60)
        common = dict(program="wordcount", program_file=None, params_file=scratch / "params.json", map_shards=1,
                      reduce_shards=1, scratch=scratch, limits=limits, **run_options)
        mapped = await run_program(phase="map", index=0, inputs=[scratch / "input"], **common)
        if mapped.error:
            raise RunnerFailure(f"self-test map failed: {mapped.error}")
        partition = scratch / "partition"
        shutil.copyfile(mapped.outputs[0], partition)
        reduced = await run_program(phase="reduce", index=0, inputs=[partition], **common)
        if reduced.error:
            raise RunnerFailure(f"self-test reduce failed: {reduced.error}")
        got = reduced.outputs[0].read_bytes()
        if got != _EXPECTED:
            raise RunnerFailure(f"self-test gave {got!r}, not {_EXPECTED!r}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
