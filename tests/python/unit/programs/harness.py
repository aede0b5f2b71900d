"""Drive programs the way a job does, and build inputs for them.

Nothing here reuses shardex.programs' own helpers: expected results in the
tests are computed independently from these plain definitions.
"""

from __future__ import annotations

import io

from hypothesis import strategies as st

from shardex.programs import MapContext, ReduceContext


def lines_of(data: bytes) -> list[bytes]:
    """Records of ``data``, by the stdlib: BytesIO splits on b"\\n" only."""
    return [line[:-1] if line.endswith(b"\n") else line for line in io.BytesIO(data).readlines()]


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in ``len(cuts) + 1`` shards at line boundaries; ``cuts`` pick boundaries."""
    starts = sorted({0, len(data)} | {i + 1 for i, b in enumerate(data) if b == 0x0A})
    offsets = sorted(starts[c % len(starts)] for c in cuts)
    bounds = [0, *offsets, len(data)]
    shards = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    assert b"".join(shards) == data
    return shards


def run_job(program, shards: list[bytes], reduce_shards: int, params: dict) -> list[bytes]:
    """Map every shard, reduce every partition; the reduce outputs in partition order."""
    m = len(shards)
    mapped = []
    for i, shard in enumerate(shards):
        parts = program.map_shard(shard, MapContext(i, m, reduce_shards, params))
        assert isinstance(parts, list) and len(parts) == reduce_shards
        assert all(type(p) is bytes for p in parts)
        mapped.append(parts)
    outputs = []
    for p in range(reduce_shards):
        out = program.reduce_partition([parts[p] for parts in mapped], ReduceContext(p, m, reduce_shards, params))
        assert type(out) is bytes
        outputs.append(out)
    return outputs


VOCAB = ["the", "The", "THE", "cat", "naïve", "straße", "İstanbul", "日本語", "ΣΊΣΥΦΟΣ"]
VOCAB += ["a_b", "x1", "42", "", "\r", "\t", "\x00", "\u2028", "\x85"]

text_token = st.one_of(
    st.sampled_from(VOCAB),
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=8),
)
text_line = st.lists(text_token, max_size=6).map(" ".join).map(lambda s: s.encode("utf-8"))
# Any bytes but a newline: invalid UTF-8, lone continuation bytes, truncated sequences.
raw_line = st.binary(max_size=8).map(lambda b: b.replace(b"\n", b""))


def inputs(lines: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Whole inputs: lines joined by b"\\n", with or without a final newline."""
    return st.builds(
        lambda ls, trailing: b"\n".join(ls) + (b"\n" if trailing and ls else b""),
        st.lists(lines, max_size=25),
        st.booleans(),
    )


mixed_input = inputs(st.one_of(text_line, raw_line))
