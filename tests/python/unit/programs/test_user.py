"""User programs: canonical JSON, stable hash partitions, load-time errors."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.programs import MapContext, Program, ProgramError, ReduceContext, load_program, plan
from tests.python.unit.programs.harness import cut, lines_of, mixed_input, run_job

WORDCOUNT = b'''
def map(record):
    for word in record.split():
        yield word, 1

def reduce(key, values):
    yield key, sum(values)
'''


def canon(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape")


@settings(max_examples=60)
@given(data=mixed_input, m=st.integers(1, 4), r=st.integers(1, 5), picks=st.lists(st.integers(0, 999), min_size=3))
def test_user_wordcount_matches_an_independent_count(data: bytes, m: int, r: int, picks: list[int]) -> None:
    program = load_program(source=WORDCOUNT)
    assert isinstance(program, Program)
    params = plan(program, data, r, {"a": 1})
    assert params == {"a": 1}
    outputs = run_job(program, cut(data, picks[: m - 1]), r, params)
    counts = Counter(w for line in lines_of(data) for w in line.decode("utf-8", "surrogateescape").split())
    # Each partition is ordered by canonical key bytes; partitions are hash-assigned.
    got = []
    for p, out in enumerate(outputs):
        keys = []
        for line in lines_of(out):
            key, count = json.loads(line.decode("utf-8", "surrogateescape"))
            keys.append(canon(key))
            assert int.from_bytes(hashlib.blake2b(canon(key), digest_size=8).digest(), "big") % r == p
            got.append((key, count))
        assert keys == sorted(keys)
    assert sorted(got) == sorted(counts.items())


def test_intermediate_is_sorted_json_lines_in_stable_hash_partitions() -> None:
    program = load_program(source=WORDCOUNT)
    parts = program.map_shard(b"b a b\nc\xff a\n", MapContext(0, 1, 3, {}))
    seen = {}
    for p, part in enumerate(parts):
        lines = lines_of(part)
        assert lines == sorted(lines)
        for line in lines:
            key = json.loads(line.decode("utf-8", "surrogateescape"))[0]
            digest = hashlib.blake2b(canon(key), digest_size=8).digest()
            assert int.from_bytes(digest, "big") % 3 == p
            seen[key] = line
    assert seen == {"a": b'["a",[1,1]]', "b": b'["b",[1,1]]', "c\udcff": b'["c\xff",[1]]'}


def test_values_arrive_in_map_task_then_emission_order() -> None:
    source = b'''
def map(record):
    for i, word in enumerate(record.split()):
        yield len(word) % 2, [word, i]

def reduce(key, values):
    yield key, values
'''
    program = load_program(source=source)
    shards = [b"aa b ccc\n", b"", b"dd e\nf gg"]
    for r in (1, 2, 3):
        outputs = run_job(program, shards, r, {})
        assert b"".join(sorted(outputs)).count(b"\n") == 2
        result = {}
        for out in outputs:
            for line in lines_of(out):
                key, values = json.loads(line)
                result[key] = values
        assert result == {
            0: [["aa", 0], ["dd", 0], ["gg", 1]],
            1: [["b", 1], ["ccc", 2], ["e", 1], ["f", 0]],
        }


def test_keys_are_canonical_json() -> None:
    source = b'''
def map(record):
    yield 1, "int"
    yield 1.0, "float"
    yield True, "bool"
    yield "1", "str"
    yield ("t", 2), {"b": 1, "a": [None]}
    yield ["t", 2], "list"

def reduce(key, values):
    yield key, values
    yield "plain " + type(key).__name__ + "\\nsecond line"
'''
    out = run_job(load_program(source=source), [b"x"], 1, {})[0]
    # Ordered by canonical key bytes: "1" (the str) < 1 < 1.0 < ["t",2] < true.
    assert out == (
        b'["1",["str"]]\nplain str\nsecond line\n'
        b'[1,["int"]]\nplain int\nsecond line\n'
        b'[1.0,["float"]]\nplain float\nsecond line\n'
        b'[["t",2],[{"a":[null],"b":1},"list"]]\nplain list\nsecond line\n'
        b'[true,["bool"]]\nplain bool\nsecond line\n'
    )


def test_undecodable_bytes_round_trip_and_records_keep_their_cr() -> None:
    source = b'''
def map(record):
    yield record, None

def reduce(key, values):
    for _ in values:
        yield key
'''
    data = b"\xff\xfeab\r\n\nok\n\xff\xfeab\r"
    out = b"".join(run_job(load_program(source=source), [data[:7], data[7:]], 2, {}))
    assert sorted(lines_of(out)) == sorted(lines_of(data))


@pytest.mark.parametrize(
    ("map_body", "reduce_body", "match"),
    [
        ("yield 1", "yield k", "map must yield"),
        ("yield 1, 2, 3", "yield k", "map must yield"),
        ("yield r, 1", "yield 5", "reduce must yield"),
        ("yield r, 1", "yield [k, v]", "reduce must yield"),
    ],
)
def test_wrong_shapes_raise_program_errors(map_body: str, reduce_body: str, match: str) -> None:
    source = f"def map(r):\n    {map_body}\n\ndef reduce(k, v):\n    {reduce_body}\n".encode()
    with pytest.raises(ProgramError, match=match):
        run_job(load_program(source=source), [b"x\n"], 1, {})


def test_user_code_exceptions_propagate() -> None:
    program = load_program(source=b"def map(r):\n    yield r, 1 / len(r)\n\ndef reduce(k, v):\n    yield k\n")
    with pytest.raises(ZeroDivisionError):
        program.map_shard(b"a\n\nb\n", MapContext(0, 1, 2, {}))
    source = b"def map(r):\n    yield r, 1\n\ndef reduce(k, v):\n    raise KeyError(k)\n    yield\n"
    program = load_program(source=source)
    parts = program.map_shard(b"a\n", MapContext(0, 1, 1, {}))
    with pytest.raises(KeyError):
        program.reduce_partition(parts, ReduceContext(0, 1, 1, {}))


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (b"def map(r):\n    yield r, 1\ndef reduce(k, v)\n    yield k\n", "does not compile: SyntaxError"),
        (b"def reduce(k, v):\n    yield k\n", r"generator function map\(record\)"),
        (b"def map(r):\n    yield r, 1\n", r"generator function reduce\(key, values\)"),
        (b"def map(r):\n    return [(r, 1)]\ndef reduce(k, v):\n    yield k\n", "'map' must be a generator"),
        (b"def map(r):\n    yield r, 1\ndef reduce(k, v):\n    return [k]\n", "'reduce' must be a generator"),
        (b"map = lambda r: [(r, 1)]\ndef reduce(k, v):\n    yield k\n", "'map' must be a generator"),
        (b"map = 5\ndef reduce(k, v):\n    yield k\n", "'map' must be a generator"),
        (b"import no_such_module_xyz\n", "failed while loading: ModuleNotFoundError"),
        (b"x = 1\x00\n", "does not compile"),
        (b"", r"generator function map"),
    ],
)
def test_load_errors(source: bytes, match: str) -> None:
    with pytest.raises(ProgramError, match=match):
        load_program(source=source)


def test_same_source_same_program_behaviour_and_a_digest() -> None:
    a, b = load_program(source=WORDCOUNT), load_program(source=WORDCOUNT)
    assert a.digest == b.digest == hashlib.blake2b(WORDCOUNT).hexdigest()
    data = b"x y z x\n" * 50
    assert run_job(a, [data, data], 4, {}) == run_job(b, [data, data], 4, {})
