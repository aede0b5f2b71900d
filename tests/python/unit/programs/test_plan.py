"""plan(): split points that balance range partitions; grep's pattern check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardex.programs import ProgramError, load_program, plan
from tests.python.unit.programs.harness import lines_of, mixed_input, run_job

RANGE = ["wordcount", "sort", "inverted-index"]


@pytest.mark.parametrize("name", RANGE)
@given(sample=mixed_input, r=st.integers(1, 9))
def test_split_points_are_sorted_valid_strings(name: str, sample: bytes, r: int) -> None:
    params = plan(load_program(name), sample, r, {"keep": 1})
    assert params["keep"] == 1
    points = params["split_points"]
    assert len(points) == r - 1
    encoded = [p.encode("utf-8") for p in points]  # strict: no surrogates
    assert encoded == sorted(encoded)
    assert plan(load_program(name), sample, r, {"keep": 1}) == params  # deterministic


@pytest.mark.parametrize("name", RANGE)
def test_one_partition_has_no_split_points(name: str) -> None:
    assert plan(load_program(name), b"a b c\n", 1, {}) == {"split_points": []}


def test_plan_does_not_mutate_params_and_overrides_old_points() -> None:
    params = {"split_points": ["zzz"], "other": [1]}
    out = plan(load_program("wordcount"), b"a b c d", 2, params)
    assert params == {"split_points": ["zzz"], "other": [1]}
    assert out == {"split_points": ["c"], "other": [1]}


@pytest.mark.parametrize("r", [2, 7, 10])
def test_wordcount_partitions_are_balanced(r: int) -> None:
    words = [f"w{i:04d}" for i in range(5000)]
    data = "\n".join(" ".join(words[i : i + 10]) for i in range(0, 5000, 10)).encode()
    program = load_program("wordcount")
    params = plan(program, data, r, {})
    outputs = run_job(program, [data[: len(data) // 2], data[len(data) // 2 :]], r, params)
    sizes = [len(lines_of(out)) for out in outputs]
    assert sum(sizes) == 5000
    assert max(sizes) - min(sizes) <= 1


def test_sort_partitions_are_balanced_from_a_sample() -> None:
    lines = [f"{(i * 7919) % 10007:05d} line".encode() for i in range(10007)]
    data = b"\n".join(lines) + b"\n"
    program = load_program("sort")
    params = plan(program, b"\n".join(lines[::10]), 4, {})  # a 10% sample
    sizes = [len(lines_of(out)) for out in run_job(program, [data], 4, params)]
    assert sum(sizes) == 10007
    assert all(abs(s - 10007 / 4) < 10007 * 0.05 for s in sizes), sizes


def test_repeated_keys_get_one_partition_and_the_rest_stay_empty() -> None:
    program = load_program("wordcount")
    params = plan(program, b"a a a a a a a a b", 4, {})
    assert params["split_points"] == ["a", "b", "b"]
    assert run_job(program, [b"a b a"], 4, params) == [b"", b"a\t2\n", b"", b"b\t1\n"]


def test_sort_split_points_skip_empty_lines_and_invalid_bytes() -> None:
    # Empty lines are the least key: a split point "" would only empty partition 0.
    program = load_program("sort")
    assert plan(program, b"\n\n\n\nb\n", 2, {})["split_points"] == ["b"]
    # A line that is not valid UTF-8 counts as its longest valid prefix (here "").
    assert plan(program, b"a\n\xffz\n\xffz\n\xffz\n", 2, {})["split_points"] == ["a"]
    assert plan(program, b"ab\xff\nab\xfe\nab\xfd\nc\n", 2, {})["split_points"] == ["ab"]
    long = plan(program, b"x" * 10_000 + b"\n", 2, {})["split_points"]
    assert long[0] and len(long[0].encode()) <= 256


def test_grep_plan_validates_the_pattern_only() -> None:
    params = {"pattern": r"^\d+$", "x": 1}
    assert plan(load_program("grep"), b"anything", 5, params) == params
    with pytest.raises(ProgramError, match="unterminated character set"):
        plan(load_program("grep"), b"", 2, {"pattern": "[a-"})


@pytest.mark.parametrize("r", [0, -1, 1.5, True])
def test_plan_rejects_bad_partition_counts(r) -> None:
    with pytest.raises(ProgramError, match="reduce_shards"):
        plan(load_program("sort"), b"", r, {})


def test_wordcount_balances_distinct_words_and_inverted_index_postings() -> None:
    data = b"aaa " * 1000 + b" ".join(f"w{i:03d}".encode() for i in range(99))
    wordcount = load_program("wordcount")
    params = plan(wordcount, data, 2, {})
    assert params == {"split_points": ["w049"]}  # 100 distinct words, 50 on each side
    assert [len(lines_of(out)) for out in run_job(wordcount, [data], 2, params)] == [50, 50]
    lines = b"\n".join([b"aaa"] * 100 + [f"w{i:03d}".encode() for i in range(100)])
    assert plan(load_program("inverted-index"), lines, 2, {}) == {"split_points": ["w000"]}
