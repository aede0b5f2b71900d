"""``python -m shardex.programs.run``: files, exit codes, error lines, hash-seed independence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shardex.programs import load_program, plan
from shardex.programs.run import READY_LINE
from tests.python.unit.programs.harness import run_job

ROOT = Path(__file__).resolve().parents[4]

USER = b'''
def map(record):
    for word in record.split():
        yield [word, len(word)], {"w": word, "n": 1}

def reduce(key, values):
    yield key, sum(v["n"] for v in values)
    yield "seen " + key[0]
'''


def run(args: list, seed: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-m", "shardex.programs.run", *map(str, args)],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def cli(phase: str, program: list, index: int, m: int, r: int, out: Path, inputs: list, params: Path | None = None):
    args = ["--phase", phase, *program, "--index", index, "--map-shards", m, "--reduce-shards", r, "--out", out]
    if params is not None:
        args += ["--params-file", params]
    return [*args, *inputs]


def write_shards(tmp_path: Path, shards: list[bytes]) -> list[Path]:
    paths = []
    for i, shard in enumerate(shards):
        paths.append(tmp_path / f"shard-{i}")
        paths[-1].write_bytes(shard)
    return paths


def run_cli_job(
    tmp_path: Path, program: list, shards: list[bytes], r: int, params: dict, seed: str = "0"
) -> list[bytes]:
    """Every map and reduce task through run.py; the reduce outputs in partition order."""
    m = len(shards)
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    inputs = write_shards(tmp_path, shards)
    for i in range(m):
        done = run(cli("map", program, i, m, r, tmp_path / f"map-{i}", [inputs[i]], params_file), seed)
        assert done.returncode == 0, done.stderr
        assert sorted(os.listdir(tmp_path / f"map-{i}")) == [f"part-{p:05d}" for p in range(r)]
    outputs = []
    for p in range(r):
        parts = [tmp_path / f"map-{i}" / f"part-{p:05d}" for i in range(m)]
        done = run(cli("reduce", program, p, m, r, tmp_path / f"reduce-{p}", parts, params_file), seed)
        assert done.returncode == 0, done.stderr
        assert os.listdir(tmp_path / f"reduce-{p}") == ["output"]
        outputs.append((tmp_path / f"reduce-{p}" / "output").read_bytes())
    return outputs


def test_builtin_job_through_the_cli_matches_in_process(tmp_path: Path) -> None:
    shards = [b"the cat\nsat on\n", b"the mat\r\n\xff", b""]
    params = plan(load_program("wordcount"), b"".join(shards), 2, {})
    outputs = run_cli_job(tmp_path, ["--program", "wordcount"], shards, 2, params)
    assert outputs == run_job(load_program("wordcount"), shards, 2, params)
    assert b"".join(outputs) == b"cat\t1\nmat\t1\non\t1\nsat\t1\nthe\t2\n"


def test_user_program_outputs_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    program_file = tmp_path / "prog.py"
    program_file.write_bytes(USER)
    words = [f"w{i} x{i % 7} naïve" for i in range(300)]
    shards = ["\n".join(words[:150]).encode() + b"\n", "\n".join(words[150:]).encode()]
    results = []
    for seed in ("1", "2"):
        (tmp_path / seed).mkdir()
        results.append(run_cli_job(tmp_path / seed, ["--program-file", program_file], shards, 3, {}, seed))
        maps = [(tmp_path / seed / f"map-{i}" / f"part-{p:05d}").read_bytes() for i in range(2) for p in range(3)]
        results.append(maps)
    assert results[0] == results[2] and results[1] == results[3]
    assert all(results[0]) and all(results[1])
    assert results[0] == run_job(load_program(source=USER), shards, 3, {})


def error_run(
    tmp_path: Path, source: bytes, phase: str = "map", data: bytes = b"a\n\nb\n"
) -> subprocess.CompletedProcess:
    program_file = tmp_path / "prog.py"
    program_file.write_bytes(source)
    [shard] = write_shards(tmp_path, [data])
    return run(cli(phase, ["--program-file", program_file], 0, 1, 2, tmp_path / "out", [shard]))


def test_a_raising_program_exits_3_with_one_error_line_and_no_outputs(tmp_path: Path) -> None:
    done = error_run(tmp_path, b"def map(r):\n    yield r, 1 / len(r)\n\ndef reduce(k, v):\n    yield k\n")
    assert done.returncode == 3
    assert done.stderr == b"ERROR ZeroDivisionError: division by zero\n"
    assert done.stdout == READY_LINE  # the program started; nothing else reaches stdout
    assert not (tmp_path / "out").exists()


def test_a_raising_reduce_exits_3(tmp_path: Path) -> None:
    source = b"def map(r):\n    yield r, 1\n\ndef reduce(k, v):\n    raise KeyError(k)\n    yield\n"
    done = error_run(tmp_path, source, "reduce", b'["a",[1]]\n')
    assert (done.returncode, done.stderr) == (3, b"ERROR KeyError: 'a'\n")
    done = error_run(tmp_path, source, "reduce", b"not json\n")
    assert (done.returncode, done.stderr[:56]) == (3, b"ERROR ProgramError: malformed intermediate record 'not j")


def test_long_multiline_error_messages_are_one_line_of_500_chars(tmp_path: Path) -> None:
    source = b"def map(r):\n    raise ValueError('x\\ny' * 1000)\n    yield\n\ndef reduce(k, v):\n    yield k\n"
    done = error_run(tmp_path, source)
    assert done.returncode == 3
    line = done.stderr.decode()
    assert line.startswith("ERROR ValueError: x y") and line.endswith("\n") and line.count("\n") == 1
    assert len(line) - 1 == 500


@pytest.mark.parametrize(
    ("source", "prefix"),
    [
        (b"def map(r)\n", b"ERROR ProgramError: user program does not compile"),
        (
            b"import sys\ndef map(r):\n    sys.exit(0)\n    yield\ndef reduce(k, v):\n    yield k\n",
            b"ERROR SystemExit: 0",
        ),
    ],
)
def test_load_errors_and_exits_are_program_errors(tmp_path: Path, source: bytes, prefix: bytes) -> None:
    done = error_run(tmp_path, source)
    assert done.returncode == 3
    assert done.stderr.startswith(prefix)


def test_builtin_program_errors_exit_3(tmp_path: Path) -> None:
    [shard] = write_shards(tmp_path, [b"a\n"])
    bad_regex = tmp_path / "params.json"
    bad_regex.write_text('{"pattern": "("}')
    done = run(cli("map", ["--program", "grep"], 0, 1, 1, tmp_path / "o", [shard], bad_regex))
    assert (done.returncode, done.stderr[:36]) == (3, b"ERROR ProgramError: invalid grep pat")
    done = run(cli("map", ["--program", "nope"], 0, 1, 1, tmp_path / "o", [shard]))
    assert done.returncode == 3 and b"wordcount" in done.stderr
    done = run(cli("map", ["--program", "sort"], 0, 1, 2, tmp_path / "o", [shard]))  # no split points
    assert done.returncode == 3 and b"split_points" in done.stderr


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    [shard] = write_shards(tmp_path, [b"a\n"])
    not_object = tmp_path / "list.json"
    not_object.write_text("[1]")
    out = tmp_path / "o"
    wc = ["--program", "wordcount"]
    for args in [
        [],
        ["--phase", "map", *wc, "--index", 0, "--map-shards", 1, "--reduce-shards", 1, shard],  # no --out
        ["--phase", "shuffle", *wc, "--index", 0, "--map-shards", 1, "--reduce-shards", 1, "--out", out, shard],
        cli("map", [*wc, "--program-file", shard], 0, 1, 1, out, [shard]),
        cli("map", wc, 0, 1, 1, out, [shard, shard]),
        cli("map", wc, 1, 1, 1, out, [shard]),
        cli("reduce", wc, 0, 2, 1, out, [shard]),
        cli("reduce", wc, 2, 1, 2, out, [shard]),
        cli("map", wc, 0, 1, 0, out, [shard]),
        cli("map", wc, 0, 1, 1, out, [tmp_path / "missing"]),
        cli("map", wc, 0, 1, 1, out, [shard], not_object),
        cli("map", wc, 0, 1, 1, out, [shard], tmp_path / "missing.json"),
        cli("map", ["--program-file", tmp_path / "missing.py"], 0, 1, 1, out, [shard]),
    ]:
        done = run(args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr
    assert not out.exists()


def test_run_imports_nothing_heavy() -> None:
    code = (
        "import sys, shardex.programs.run, shardex.programs.user\n"
        "heavy = {'web3', 'eth_abi', 'pydantic', 'typer', 'httpx', 'uvicorn', 'asyncio', 'numpy', 'shardex.chain'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"[]\n"


def test_a_staged_directory_of_parts_is_read_in_numeric_order(tmp_path) -> None:
    """The worker names a file's blocks 000000, 000001, ...: past a million parts the names grow a digit."""
    from shardex.programs.run import _read

    for name in ("1000001", "000000", "999999", "1000000", "000001"):
        (tmp_path / name).write_bytes(name.encode() + b"|")
    assert _read(str(tmp_path)) == b"000000|000001|999999|1000000|1000001|"
