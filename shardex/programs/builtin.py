"""The built-in programs: wordcount, grep, sort, inverted-index.

Output formats (a job's result is the reduce outputs concatenated in partition
order):

``wordcount``
    ``word\\tcount\\n`` per distinct word (``re.findall(r"\\w+", line.lower())``),
    globally sorted by the word's UTF-8 bytes: words are range-partitioned by
    ``params["split_points"]``.
``grep``
    The lines matching ``params["pattern"]`` (``re.search``), exact input bytes
    plus ``\\n``, in input order: map shard ``i`` sends everything to partition
    ``i * R // M``.
``sort``
    Every input line, exact bytes plus ``\\n``, sorted by bytes; range-partitioned.
``inverted-index``
    ``word\\tdoc,doc,...\\n`` per word, a doc being ``"{shard}:{line}"`` (0-based
    line within the shard), docs ordered by (shard, line), words ordered as in
    wordcount; range-partitioned.

Words never contain surrogates (``\\w`` does not match them), so ordering them
as ``str`` is ordering their UTF-8 bytes; lines may hold undecodable bytes, so
sort compares raw bytes.
"""

from __future__ import annotations

import re
from collections import Counter

from shardex.programs.base import (
    MapContext,
    ProgramError,
    ReduceContext,
    check_map_context,
    check_partition,
    concat_partitions,
    decode,
    encode,
    quantiles,
    range_cuts,
    split_lines,
    split_points,
    split_text_lines,
    utf8_boundary,
)

WORD = re.compile(r"\w+")


def _text_records(part: bytes) -> list[str]:
    """Lines of an intermediate partition written by our own map (strict UTF-8)."""
    return split_text_lines(check_partition(part).decode("utf-8"))


def _split_record(line: str) -> tuple[str, str]:
    key, tab, value = line.partition("\t")
    if not tab:
        raise ProgramError(f"malformed intermediate record {line[:80]!r}")
    return key, value


def _range_plan(keys: list[str], reduce_shards: int, params: dict) -> dict:
    return {**params, "split_points": quantiles(keys, reduce_shards)}


class WordCount:
    name = "wordcount"

    def plan_params(self, sample: bytes, reduce_shards: int, params: dict) -> dict:
        # Map and reduce work, and the output, grow with the distinct words of a
        # range, not with how often they occur: balance the distinct words.
        return _range_plan(list(set(WORD.findall(decode(sample).lower()))), reduce_shards, params)

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        check_map_context(ctx)
        points = split_points(ctx.params, ctx.reduce_shards)
        # \w never matches "\n", so one findall over the whole text equals one per line.
        counts = Counter(WORD.findall(decode(data).lower()))
        words = sorted(counts)
        cuts = range_cuts(words, points)
        return [
            "".join([f"{w}\t{counts[w]}\n" for w in words[a:b]]).encode("utf-8")
            for a, b in zip(cuts, cuts[1:])
        ]

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        totals: dict[str, int] = {}
        get = totals.get
        for part in parts:
            for line in _text_records(part):
                word, count = _split_record(line)
                totals[word] = get(word, 0) + int(count)
        return "".join([f"{w}\t{totals[w]}\n" for w in sorted(totals)]).encode("utf-8")


class Grep:
    name = "grep"

    @staticmethod
    def _pattern(params: dict) -> re.Pattern:
        pattern = params.get("pattern")
        if not isinstance(pattern, str):
            raise ProgramError("grep needs params['pattern'], a Python regular expression string")
        try:
            return re.compile(pattern)
        except re.error as e:
            raise ProgramError(f"invalid grep pattern {pattern!r}: {e}") from None

    def plan_params(self, sample: bytes, reduce_shards: int, params: dict) -> dict:
        self._pattern(params)
        return dict(params)

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        check_map_context(ctx)
        search = self._pattern(ctx.params).search
        matched = [line for line in split_text_lines(decode(data)) if search(line)]
        parts = [b""] * ctx.reduce_shards
        if matched:
            matched.append("")
            parts[ctx.order_partition] = encode("\n".join(matched))
        return parts

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        return concat_partitions(parts)


def _join_lines(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""


class Sort:
    name = "sort"

    def plan_params(self, sample: bytes, reduce_shards: int, params: dict) -> dict:
        return _range_plan([utf8_boundary(line) for line in split_lines(sample)], reduce_shards, params)

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        check_map_context(ctx)
        points = [p.encode("utf-8") for p in split_points(ctx.params, ctx.reduce_shards)]
        lines = split_lines(data)
        lines.sort()
        cuts = range_cuts(lines, points)
        return [_join_lines(lines[a:b]) for a, b in zip(cuts, cuts[1:])]

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        lines: list[bytes] = []
        for part in parts:
            lines += split_lines(check_partition(part))
        lines.sort()  # sorted runs: timsort merges them in about linear time
        return _join_lines(lines)


def _doc_key(doc: str) -> tuple[int, int]:
    shard, colon, line = doc.partition(":")
    if not colon:
        raise ProgramError(f"malformed document id {doc!r}")
    return int(shard), int(line)


class InvertedIndex:
    name = "inverted-index"

    def plan_params(self, sample: bytes, reduce_shards: int, params: dict) -> dict:
        # The output grows with the postings of a range: one per (word, line).
        findall = WORD.findall
        keys = [w for line in decode(sample).lower().split("\n") for w in set(findall(line))]
        return _range_plan(keys, reduce_shards, params)

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        check_map_context(ctx)
        points = split_points(ctx.params, ctx.reduce_shards)
        findall = WORD.findall
        postings: dict[str, list[int]] = {}
        get = postings.get
        for number, line in enumerate(decode(data).lower().split("\n")):
            for word in set(findall(line)):
                docs = get(word)
                if docs is None:
                    postings[word] = [number]
                else:
                    docs.append(number)
        words = sorted(postings)
        cuts = range_cuts(words, points)
        prefix = f"{ctx.shard_index}:"
        return [
            "".join([f"{w}\t{prefix}{f',{prefix}'.join(map(str, postings[w]))}\n" for w in words[a:b]]).encode(
                "utf-8"
            )
            for a, b in zip(cuts, cuts[1:])
        ]

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        # Each intermediate line holds one shard's docs, ascending. Parts come in
        # map-task order, so joining them is already ordered; anything else is
        # parsed and sorted.
        segments: dict[str, list[tuple[int, str]]] = {}
        for part in parts:
            for line in _text_records(part):
                word, docs = _split_record(line)
                shard = int(docs.partition(":")[0])
                segments.setdefault(word, []).append((shard, docs))
        out = []
        for word in sorted(segments):
            segs = segments[word]
            if all(a[0] < b[0] for a, b in zip(segs, segs[1:])):
                docs = ",".join([s for _, s in segs])
            else:
                unique = {_doc_key(d) for _, s in segs for d in s.split(",")}
                docs = ",".join([f"{s}:{n}" for s, n in sorted(unique)])
            out.append(f"{word}\t{docs}\n")
        return "".join(out).encode("utf-8")


BUILTIN = {p.name: p for p in (WordCount(), Grep(), Sort(), InvertedIndex())}
