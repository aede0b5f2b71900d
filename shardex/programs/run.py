"""Run one map or reduce task of a program: the worker's sandboxed subprocess.

    python -m shardex.programs.run --phase map|reduce
        (--program NAME | --program-file PATH) [--params-file PARAMS.json]
        --index I --map-shards M --reduce-shards R --out OUTDIR INPUT...

map: one INPUT (the shard, index I); writes ``OUTDIR/part-00000`` ..
``OUTDIR/part-{R-1:05d}``. reduce: M INPUTs, partition I of every map task in
map-task order; writes ``OUTDIR/output``. Files are written only once the whole
task succeeded.

Before it loads the program, the runner writes ``READY_LINE`` to stdout: from
then on the process is the program's, and whatever ends it is the program's
outcome. An exit without that line is the worker's own failure.

Exit status: 0 done; 2 bad invocation (arguments, unreadable inputs or params
file, unwritable OUTDIR: the caller's fault); 1 a crash that says nothing about
the job (e.g. MemoryError, with a traceback); 3 the program failed, to load or while running
(deterministic for the job: report it as the task's error result), with one
line ``ERROR <ExceptionType>: <message>`` (at most 500 characters) on stderr.

Imports stay light: this starts once per task.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

USAGE_ERROR = 2
PROGRAM_ERROR = 3
MAX_ERROR_LINE = 500
READY_LINE = b"shardex-runner: program starting\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own default, made explicit: exit 2
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m shardex.programs.run", description="Run one map or reduce task.")
    p.add_argument("--phase", required=True, choices=("map", "reduce"))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--program", help="a built-in program's name")
    source.add_argument("--program-file", help="a user program's Python source")
    p.add_argument("--params-file", help="the job's params, a JSON object (default: {})")
    p.add_argument("--index", type=int, required=True, help="map: shard index; reduce: partition")
    p.add_argument("--map-shards", type=int, required=True)
    p.add_argument("--reduce-shards", type=int, required=True)
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    return p


def _usage(message: str) -> int:
    print(f"python -m shardex.programs.run: error: {message}", file=sys.stderr)
    return USAGE_ERROR


class _Joined(io.RawIOBase):
    """Files read one after another as one stream, each opened only when its turn comes."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = iter(paths)
        self._file = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._file is None:
                path = next(self._paths, None)
                if path is None:
                    return 0
                self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed when drained
            n = self._file.readinto(buffer)
            if n:
                return n
            self._file.close()
            self._file = None


def _read(path: str) -> bytes:
    """A file's bytes; a directory's: its files' in numeric name order, joined (the worker stages
    a file of many blocks as hard links of the blocks themselves rather than copying them out).
    The parts are read straight into the one bytes object returned: no second copy in memory."""
    if os.path.isdir(path):
        names = sorted(os.listdir(path), key=lambda n: (len(n), n))  # 999999 before 1000000
        paths = [os.path.join(path, n) for n in names]
        total = sum(os.path.getsize(p) for p in paths)
        with io.BufferedReader(_Joined(paths)) as joined:
            data = joined.read(total)
        if len(data) != total:
            raise OSError(f"{path}: its parts changed while read")
        return data
    with open(path, "rb") as f:
        return f.read()


def error_line(exc: BaseException) -> str:
    """``ERROR <ExceptionType>: <message>`` on one line, at most 500 characters."""
    message = " ".join(str(exc).split())
    line = f"ERROR {type(exc).__name__}: {message}"
    return line if len(line) <= MAX_ERROR_LINE else line[: MAX_ERROR_LINE - 3] + "..."


def _write_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    m, r, index = args.map_shards, args.reduce_shards, args.index
    if m < 1 or r < 1:
        return _usage("--map-shards and --reduce-shards must be >= 1")
    if args.phase == "map":
        if not 0 <= index < m:
            return _usage(f"--index {index} is outside 0..{m - 1} for map")
        if len(args.inputs) != 1:
            return _usage(f"map takes one INPUT (the shard), got {len(args.inputs)}")
    else:
        if not 0 <= index < r:
            return _usage(f"--index {index} is outside 0..{r - 1} for reduce")
        if len(args.inputs) != m:
            return _usage(f"reduce takes {m} INPUTs (one per map task), got {len(args.inputs)}")
    try:
        params = json.loads(_read(args.params_file)) if args.params_file else {}
        source = _read(args.program_file) if args.program_file else None
        inputs = [_read(path) for path in args.inputs]
    except (OSError, ValueError) as e:
        return _usage(f"cannot read inputs: {e}")
    if not isinstance(params, dict):
        return _usage("the params file must hold a JSON object")

    from shardex.programs import MapContext, ReduceContext, load_program

    os.write(1, READY_LINE)
    try:
        program = load_program(name=args.program) if source is None else load_program(source=source)
        if args.phase == "map":
            outputs = program.map_shard(inputs[0], MapContext(index, m, r, params))
            if not isinstance(outputs, list) or len(outputs) != r or not all(isinstance(o, bytes) for o in outputs):
                raise TypeError(f"map_shard must return a list of {r} bytes objects")
            files = [(f"part-{i:05d}", data) for i, data in enumerate(outputs)]
        else:
            output = program.reduce_partition(inputs, ReduceContext(index, m, r, params))
            if not isinstance(output, bytes):
                raise TypeError("reduce_partition must return bytes")
            files = [("output", output)]
    except MemoryError:
        raise  # this machine's limit, not the job's result: crash with status 1
    except (Exception, SystemExit) as e:  # a user program calling sys.exit() is a failed program too
        print(error_line(e), file=sys.stderr)
        return PROGRAM_ERROR

    try:
        os.makedirs(args.out, exist_ok=True)
        for name, data in files:
            _write_atomically(os.path.join(args.out, name), data)
    except OSError as e:
        return _usage(f"cannot write outputs: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
