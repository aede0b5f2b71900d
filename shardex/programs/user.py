"""User programs: Python source defining generator functions ``map`` and ``reduce``.

.. code-block:: python

    def map(record):            # record: one input line (str, without its "\\n")
        for word in record.split():
            yield word, 1       # (key, value); both JSON-serializable

    def reduce(key, values):    # values: map-task order, then emission order
        yield key, sum(values)  # or yield a str: written as one output line

Keys and values travel as canonical JSON (``sort_keys``, no spaces, UTF-8), so a
tuple key reaches ``reduce`` as a list, and keys equal in Python but different
in JSON (``1``, ``1.0``, ``True``) stay distinct. The map side groups pairs by
canonical key and sends each key to partition
``blake2b(key_bytes, digest_size=8) % R``; each partition is JSON lines
``[key,[values...]]`` sorted by canonical key bytes. The reduce side merges
them, calls ``reduce`` once per key in canonical key byte order and writes each
yielded ``str`` as-is plus ``\\n`` and each ``(key, value)`` as canonical JSON
``[key,value]`` plus ``\\n``.

Strings holding undecodable input bytes (surrogate escapes) are written back as
those bytes. Exceptions raised by user code propagate to the caller.
"""

from __future__ import annotations

import builtins
import hashlib
import json

from shardex.programs.base import (
    MapContext,
    ProgramError,
    ReduceContext,
    check_partition,
    check_reduce_shards,
    decode,
    encode,
    split_lines,
    split_text_lines,
)

_CO_GENERATOR = 0x20  # inspect.CO_GENERATOR, without importing inspect

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def partition_of(key_bytes: bytes, reduce_shards: int) -> int:
    """The stable partition of a canonical key: never Python's salted ``hash()``."""
    return int.from_bytes(hashlib.blake2b(key_bytes, digest_size=8).digest(), "big") % reduce_shards


def _is_generator_function(fn: object) -> bool:
    code = getattr(fn, "__code__", None)
    return callable(fn) and code is not None and bool(code.co_flags & _CO_GENERATOR)


class UserProgram:
    """A user program's ``map``/``reduce`` wrapped into the :class:`Program` interface."""

    def __init__(self, map_fn, reduce_fn, digest: str) -> None:
        self.name = "user"
        self.digest = digest
        self._map = map_fn
        self._reduce = reduce_fn

    def __repr__(self) -> str:
        return f"UserProgram(blake2b={self.digest[:16]})"

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        reduce_shards = check_reduce_shards(ctx.reduce_shards)
        user_map = self._map
        groups: dict[str, list[str]] = {}
        for record in split_text_lines(decode(data)):
            for pair in user_map(record):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ProgramError(f"map must yield (key, value) pairs, got {_short(pair)}")
                key = _dumps(pair[0])
                values = groups.get(key)
                if values is None:
                    groups[key] = [_dumps(pair[1])]
                else:
                    values.append(_dumps(pair[1]))
        parts: list[list[bytes]] = [[] for _ in range(reduce_shards)]
        for key_bytes, key in sorted((encode(k), k) for k in groups):
            line = encode(f"[{key},[{','.join(groups[key])}]]\n")
            parts[partition_of(key_bytes, reduce_shards)].append(line)
        return [b"".join(p) for p in parts]

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        groups: dict[str, tuple[object, list]] = {}
        for part in parts:
            for line in split_lines(check_partition(part)):
                try:
                    record = _loads(decode(line))
                except ValueError:
                    record = None
                if not isinstance(record, list) or len(record) != 2 or not isinstance(record[1], list):
                    raise ProgramError(f"malformed intermediate record {decode(line)[:80]!r}")
                key, values = record
                canon = _dumps(key)
                group = groups.get(canon)
                if group is None:
                    groups[canon] = (key, values)
                else:
                    group[1].extend(values)
        user_reduce = self._reduce
        out: list[bytes] = []
        for _, canon in sorted((encode(k), k) for k in groups):
            key, values = groups[canon]
            for item in user_reduce(key, values):
                if isinstance(item, str):
                    out.append(encode(item + "\n"))
                elif isinstance(item, tuple) and len(item) == 2:
                    out.append(encode(_dumps([item[0], item[1]]) + "\n"))
                else:
                    raise ProgramError(f"reduce must yield str or (key, value) tuples, got {_short(item)}")
        return b"".join(out)


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def load_user_program(source: bytes | str) -> UserProgram:
    """Compile and run ``source`` in a fresh namespace; check ``map`` and ``reduce``."""
    if isinstance(source, str):
        source = source.encode("utf-8")
    if not isinstance(source, bytes):
        raise ProgramError(f"program source must be bytes, got {type(source).__name__}")
    try:
        code = compile(source, "<user program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes in the source
        raise ProgramError(f"user program does not compile: {type(e).__name__}: {e}") from None
    namespace: dict = {"__name__": "shardex_user_program", "__builtins__": builtins}
    try:
        exec(code, namespace)
    except Exception as e:
        raise ProgramError(f"user program failed while loading: {type(e).__name__}: {e}") from e
    for fn_name, signature in (("map", "map(record)"), ("reduce", "reduce(key, values)")):
        fn = namespace.get(fn_name)
        if fn is None or fn is getattr(builtins, fn_name, None):
            raise ProgramError(f"user program must define a generator function {signature}")
        if not _is_generator_function(fn):
            raise ProgramError(
                f"user program's {fn_name!r} must be a generator function (use 'yield'), got {_short(fn)}"
            )
    return UserProgram(namespace["map"], namespace["reduce"], hashlib.blake2b(source).hexdigest())
