"""The program interface the worker runs, and the helpers the built-ins share.

A program turns one input shard into ``R`` partition byte strings (map) and the
partitions ``p`` of every map task into one output byte string (reduce).
Replicas on different machines must agree byte for byte, so everything here is
canonical: UTF-8, ``\\n`` line ends, deterministic order, and no salted
``hash()`` anywhere.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from shardex.errors import ShardexError


class ProgramError(ShardexError):
    """A program cannot be loaded, or its parameters are unusable."""


@dataclass(frozen=True)
class MapContext:
    """What a map task knows besides its shard's bytes."""

    shard_index: int
    map_shards: int
    reduce_shards: int
    params: dict

    @property
    def order_partition(self) -> int:
        """The partition an order-preserving program (grep, embed) writes this
        shard's output to: shards map to partitions in input order."""
        return self.shard_index * self.reduce_shards // self.map_shards


@dataclass(frozen=True)
class ReduceContext:
    """What a reduce task knows besides its partitions' bytes."""

    partition: int
    map_shards: int
    reduce_shards: int
    params: dict


@runtime_checkable
class Program(Protocol):
    """A map/reduce program.

    Programs may also define ``plan_params(sample, reduce_shards, params) -> dict``;
    :func:`shardex.programs.plan` calls it when present.
    """

    name: str

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        """Exactly ``ctx.reduce_shards`` canonical partitions (index = partition)."""
        ...

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        """The canonical output of partition ``ctx.partition``; ``parts`` in map-task order."""
        ...


def split_lines(data: bytes) -> list[bytes]:
    """Records of a shard: split on ``\\n`` only; no empty record after a final ``\\n``."""
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return lines


def split_text_lines(text: str) -> list[str]:
    """:func:`split_lines` for decoded text."""
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()
    return lines


def check_partition(part: bytes) -> bytes:
    """An intermediate partition as written by a map task: empty or whole lines."""
    if part and not part.endswith(b"\n"):
        raise ProgramError("malformed intermediate partition: it does not end with a newline")
    return part


def concat_partitions(parts: list[bytes]) -> bytes:
    """Reduce of an order-preserving program: the parts arrive in map-task order
    and each holds its shard's lines in order, so concatenation is the output."""
    return b"".join(check_partition(p) for p in parts)


def decode(data: bytes) -> str:
    """Decode a shard; undecodable bytes survive as surrogate escapes and never raise."""
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    """Inverse of :func:`decode`: escaped bytes come back exactly."""
    return text.encode("utf-8", "surrogateescape")


def check_reduce_shards(reduce_shards: Any) -> int:
    if isinstance(reduce_shards, bool) or not isinstance(reduce_shards, int) or reduce_shards < 1:
        raise ProgramError(f"reduce_shards must be an integer >= 1, got {reduce_shards!r}")
    return reduce_shards


def check_map_context(ctx: MapContext) -> None:
    """A map task's context is usable: ``R >= 1`` and ``0 <= shard_index < M``."""
    check_reduce_shards(ctx.reduce_shards)
    if not 0 <= ctx.shard_index < ctx.map_shards:
        raise ProgramError(f"shard_index {ctx.shard_index} is outside 0..{ctx.map_shards - 1}")


def split_points(params: dict, reduce_shards: int) -> list[str]:
    """The validated ``split_points`` of a range-partitioned job.

    They are ``reduce_shards - 1`` strings that encode as strict UTF-8 and are
    non-decreasing; equal neighbours just leave the partition between them empty.
    Because they hold no surrogates, comparing them as ``str`` with other
    surrogate-free strings orders exactly as comparing their UTF-8 bytes.
    """
    check_reduce_shards(reduce_shards)
    points = params.get("split_points")
    if points is None:
        if reduce_shards == 1:
            return []
        raise ProgramError(
            f"params lack 'split_points' ({reduce_shards - 1} needed for {reduce_shards} partitions); "
            "compute them with shardex.programs.plan()"
        )
    if not isinstance(points, list) or not all(isinstance(p, str) for p in points):
        raise ProgramError("'split_points' must be a list of strings")
    if len(points) != reduce_shards - 1:
        raise ProgramError(
            f"'split_points' has {len(points)} entries; {reduce_shards} partitions need {reduce_shards - 1}"
        )
    for p in points:
        try:
            p.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ProgramError(f"'split_points' entry {p!r} is not valid Unicode: {e}") from None
    if any(a > b for a, b in zip(points, points[1:])):
        raise ProgramError("'split_points' must be sorted (non-decreasing)")
    return points


def range_cuts(sorted_keys: list, points: list) -> list[int]:
    """Slice bounds of ``R`` partitions over ascending keys.

    Partition ``i`` is ``sorted_keys[cuts[i]:cuts[i + 1]]``: the keys ``k`` with
    ``points[i - 1] <= k < points[i]``. ``points`` must be comparable with the
    keys in the same order as their UTF-8 bytes.
    """
    return [0, *(bisect_left(sorted_keys, p) for p in points), len(sorted_keys)]


def utf8_boundary(line: bytes, max_bytes: int = 256) -> str:
    """A valid string no greater (in UTF-8 byte order) than ``line``, near it.

    The longest prefix of ``line`` that is valid UTF-8, cut to ``max_bytes`` at a
    character boundary. Split points must be valid Unicode to survive a JSON job
    spec; any value works as a split point, closeness only helps the balance.
    """
    head = line[:max_bytes]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as e:
        return head[: e.start].decode("utf-8")


def quantiles(keys: list[str], reduce_shards: int) -> list[str]:
    """``reduce_shards - 1`` split points at evenly spaced quantiles of ``keys``.

    ``keys`` are surrogate-free strings (so ``str`` order is UTF-8 byte order).
    A quantile that does not exceed the previous split point (or is ``""``)
    moves to the next larger distinct key, so one frequent key never spans
    several partitions; when the distinct keys run out the last point repeats
    (empty partitions).
    Deterministic: depends only on the multiset of keys.
    """
    check_reduce_shards(reduce_shards)
    if reduce_shards == 1:
        return []
    keys = sorted(keys)
    n = len(keys)
    if n == 0:
        return [""] * (reduce_shards - 1)
    points: list[str] = []
    floor = ""  # the least key there is: a split point "" would only make partition 0 empty
    for i in range(1, reduce_shards):
        candidate = keys[i * n // reduce_shards]
        if candidate <= floor:
            j = bisect_right(keys, floor)
            candidate = keys[j] if j < n else floor
        points.append(candidate)
        floor = candidate
    return points

