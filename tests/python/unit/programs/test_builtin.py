"""Every built-in, run as a job over random shards, against an independent computation."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.errors import ShardexError
from shardex.programs import BUILTIN, MapContext, Program, ProgramError, ReduceContext, load_program, plan
from tests.python.unit.programs.harness import cut, lines_of, mixed_input, run_job

shape = st.tuples(st.integers(1, 5), st.integers(1, 5))  # (M, R)
cuts = st.lists(st.integers(0, 10**6), min_size=4, max_size=4)


def shards_of(data: bytes, m: int, picks: list[int]) -> list[bytes]:
    return cut(data, picks[: m - 1])


def words_of(line: bytes) -> list[str]:
    return re.findall(r"\w+", line.decode("utf-8", "surrogateescape").lower())


def sample_for(data: bytes, which: int) -> bytes:
    """The plan's sample: the whole input, a prefix, nothing, or unrelated text."""
    return [data, data[: len(data) // 3], b"", b"zebra apple mango\nkiwi\n\n"][which]


sample_choice = st.integers(0, 3)


def check_range_partitions(outputs: list[bytes], points: list[str], key_of) -> None:
    """Every key of partition i lies in [points[i-1], points[i]) by UTF-8 bytes."""
    bounds = [p.encode("utf-8") for p in points]
    for i, out in enumerate(outputs):
        for line in lines_of(out):
            key = key_of(line)
            assert i == 0 or bounds[i - 1] <= key
            assert i == len(bounds) or key < bounds[i]


def test_the_builtins_are_named_and_are_programs() -> None:
    assert set(BUILTIN) == {"wordcount", "grep", "sort", "inverted-index", "embed"}
    for name, program in BUILTIN.items():
        assert program.name == name
        assert isinstance(program, Program)
        assert load_program(name) is program
        assert load_program(name=name) is program


def test_unknown_program_lists_the_builtins() -> None:
    with pytest.raises(ProgramError) as e:
        load_program("wordcont")
    assert issubclass(ProgramError, ShardexError)
    for name in ("wordcount", "grep", "sort", "inverted-index"):
        assert name in str(e.value)


@pytest.mark.parametrize("kwargs", [{}, {"name": "sort", "source": b"x"}])
def test_load_program_needs_exactly_one_of_name_and_source(kwargs: dict) -> None:
    with pytest.raises(ProgramError):
        load_program(**kwargs)


# --- wordcount ---------------------------------------------------------------------


def expected_wordcount(data: bytes) -> bytes:
    counts: Counter[str] = Counter()
    for line in lines_of(data):
        counts.update(words_of(line))
    ordered = sorted(counts, key=lambda w: w.encode("utf-8"))
    return "".join(f"{w}\t{counts[w]}\n" for w in ordered).encode("utf-8")


def test_wordcount_example() -> None:
    data = b"The cat\r\nthe CAT sat.\n\nna\xc3\xafve cat_2 \xff"
    program = load_program("wordcount")
    params = plan(program, data, 2, {})
    # words by byte order: cat cat cat_2 | naïve sat the the
    assert params == {"split_points": ["naïve"]}
    out = run_job(program, [data[:9], data[9:]], 2, params)
    assert out == [b"cat\t2\ncat_2\t1\n", b"na\xc3\xafve\t1\nsat\t1\nthe\t2\n"]


@settings(max_examples=80)
@given(data=mixed_input, shape=shape, picks=cuts, which=sample_choice)
def test_wordcount_matches_an_independent_count(data: bytes, shape, picks, which) -> None:
    m, r = shape
    program = load_program("wordcount")
    params = plan(program, sample_for(data, which), r, {})
    outputs = run_job(program, shards_of(data, m, picks), r, params)
    assert b"".join(outputs) == expected_wordcount(data)
    check_range_partitions(outputs, params["split_points"], lambda line: line.rsplit(b"\t", 1)[0])
    assert run_job(program, shards_of(data, m, picks), r, params) == outputs


# --- sort --------------------------------------------------------------------------


def test_sort_example() -> None:
    data = b"b\r\n\na\n\xff\xfe\nb\nA"
    program = load_program("sort")
    out = run_job(program, [data[:4], data[4:], b""], 3, {"split_points": ["a", "b"]})
    assert out == [b"\nA\n", b"a\n", b"b\nb\r\n\xff\xfe\n"]


@settings(max_examples=80)
@given(data=mixed_input, shape=shape, picks=cuts, which=sample_choice)
def test_sort_is_a_sorted_permutation_of_the_lines(data: bytes, shape, picks, which) -> None:
    m, r = shape
    program = load_program("sort")
    params = plan(program, sample_for(data, which), r, {})
    outputs = run_job(program, shards_of(data, m, picks), r, params)
    assert b"".join(outputs) == b"".join(line + b"\n" for line in sorted(lines_of(data)))
    check_range_partitions(outputs, params["split_points"], lambda line: line)
    assert run_job(program, shards_of(data, m, picks), r, params) == outputs


@given(data=mixed_input, points=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=3)))
def test_sort_with_any_split_points(data: bytes, points: list[str]) -> None:
    # Any sorted valid strings work as split points, not only plan()'s (duplicates too).
    points.sort(key=lambda p: p.encode("utf-8"))
    r = len(points) + 1
    program = load_program("sort")
    outputs = run_job(program, cut(data, [len(data) // 2]), r, {"split_points": points})
    assert b"".join(outputs) == b"".join(line + b"\n" for line in sorted(lines_of(data)))
    check_range_partitions(outputs, points, lambda line: line)


# --- grep --------------------------------------------------------------------------

PATTERNS = [r"a", r"^$", r"\r$", r"[^\x00-\x7f]", r"\w+\s+\w+", r"^(?!.*e)", r"[\udc80-\udcff]", r"(?i)the\b", "."]


def test_grep_example() -> None:
    data = b"one\nthe two\r\n\xffthe\nthree\nthe end"
    program = load_program("grep")
    shards = [data[:4], data[4:13], data[13:]]  # to partitions 0, 0, 1
    out = run_job(program, shards, 2, {"pattern": "the"})
    assert out == [b"the two\r\n", b"\xffthe\nthe end\n"]


@settings(max_examples=80)
@given(data=mixed_input, shape=shape, picks=cuts, pattern=st.sampled_from(PATTERNS))
def test_grep_keeps_matching_lines_in_input_order(data: bytes, shape, picks, pattern: str) -> None:
    m, r = shape
    program = load_program("grep")
    params = plan(program, data, r, {"pattern": pattern})
    assert params == {"pattern": pattern}
    shards = shards_of(data, m, picks)
    outputs = run_job(program, shards, r, params)
    expected = [line + b"\n" for line in lines_of(data) if re.search(pattern, line.decode("utf-8", "surrogateescape"))]
    assert b"".join(outputs) == b"".join(expected)
    # Shard i's matches all land in partition i * R // M.
    for i, shard in enumerate(shards):
        parts = program.map_shard(shard, MapContext(i, m, r, params))
        assert all(not part for p, part in enumerate(parts) if p != i * r // m)
    assert run_job(program, shards, r, params) == outputs


def test_grep_pattern_errors() -> None:
    program = load_program("grep")
    with pytest.raises(ProgramError, match="missing \\)"):
        plan(program, b"", 2, {"pattern": "(unclosed"})
    with pytest.raises(ProgramError, match="pattern"):
        plan(program, b"", 2, {})
    with pytest.raises(ProgramError, match="pattern"):
        program.map_shard(b"x\n", MapContext(0, 1, 1, {"pattern": "["}))


# --- inverted-index ----------------------------------------------------------------


def expected_index(shards: list[bytes]) -> bytes:
    docs: dict[str, set[tuple[int, int]]] = {}
    for s, shard in enumerate(shards):
        for n, line in enumerate(lines_of(shard)):
            for w in words_of(line):
                docs.setdefault(w, set()).add((s, n))
    out = []
    for w in sorted(docs, key=lambda w: w.encode("utf-8")):
        out.append(f"{w}\t{','.join(f'{s}:{n}' for s, n in sorted(docs[w]))}\n")
    return "".join(out).encode("utf-8")


def test_inverted_index_example() -> None:
    data = b"the cat\nThe dog the\n\ncat\r\n"
    program = load_program("inverted-index")
    out = run_job(program, [data[:8], data[8:]], 1, {})
    assert out == [b"cat\t0:0,1:2\ndog\t1:0\nthe\t0:0,1:0\n"]


@settings(max_examples=80)
@given(data=mixed_input, shape=shape, picks=cuts, which=sample_choice)
def test_inverted_index_matches_an_independent_index(data: bytes, shape, picks, which) -> None:
    m, r = shape
    program = load_program("inverted-index")
    params = plan(program, sample_for(data, which), r, {})
    shards = shards_of(data, m, picks)
    outputs = run_job(program, shards, r, params)
    assert b"".join(outputs) == expected_index(shards)
    check_range_partitions(outputs, params["split_points"], lambda line: line.split(b"\t")[0])
    assert run_job(program, shards, r, params) == outputs


def test_inverted_index_reduce_orders_docs_whatever_the_part_order() -> None:
    program = load_program("inverted-index")
    parts = [b"a\t2:0,2:5\n", b"a\t0:3\nb\t0:1\n", b"a\t10:1\n", b"a\t0:3\n"]
    out = program.reduce_partition(parts, ReduceContext(0, 4, 1, {}))
    assert out == b"a\t0:3,2:0,2:5,10:1\nb\t0:1\n"


# --- params checks -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["wordcount", "sort", "inverted-index"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"split_points": ["a"]},
        {"split_points": ["b", "a", "c"]},
        {"split_points": [1, 2, 3]},
        {"split_points": "abc"},
        {"split_points": ["a", "\udcff", "z"]},
    ],
)
def test_range_programs_reject_bad_split_points(name: str, params: dict) -> None:
    with pytest.raises(ProgramError, match="split_points"):
        load_program(name).map_shard(b"a b\n", MapContext(0, 1, 4, params))


@pytest.mark.parametrize("name", ["wordcount", "sort", "inverted-index"])
def test_one_partition_needs_no_split_points(name: str) -> None:
    program = load_program(name)
    assert run_job(program, [b"b a\n", b"a"], 1, {}) == run_job(program, [b"b a\n", b"a"], 1, {"split_points": []})


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_empty_input_gives_empty_outputs(name: str) -> None:
    program = load_program(name)
    params = plan(program, b"", 3, {"pattern": "x"})
    assert run_job(program, [b"", b""], 3, params) == [b"", b"", b""]
