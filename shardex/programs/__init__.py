"""Map/reduce programs: the built-ins, user programs and requester-side planning.

The worker runs a program through :mod:`shardex.programs.run` in a subprocess;
the requester calls :func:`plan` once, before posting a job, to store the
parameters (range split points) every task of the job will see.

Every output is canonical bytes (UTF-8, ``\\n`` line ends, deterministic order)
and partitioning never uses Python's salted ``hash()``, so honest replicas on
different machines agree byte for byte.
"""

from __future__ import annotations

from shardex.programs.base import MapContext, Program, ProgramError, ReduceContext, check_reduce_shards
from shardex.programs.builtin import BUILTIN
from shardex.programs.embed import Embed

BUILTIN[Embed.name] = Embed()  # light: torch loads only when a shard is embedded

__all__ = ["BUILTIN", "MapContext", "Program", "ProgramError", "ReduceContext", "load_program", "plan"]


def load_program(name: str | None = None, source: bytes | None = None) -> Program:
    """A built-in program by ``name``, or a user program from Python ``source``.

    Give exactly one of the two. A user program defines generator functions
    ``map(record)`` and ``reduce(key, values)`` (see :mod:`shardex.programs.user`).
    """
    if (name is None) == (source is None):
        raise ProgramError("load_program needs exactly one of name= (a built-in) or source= (a user program)")
    if name is not None:
        program = BUILTIN.get(name)
        if program is None:
            raise ProgramError(f"unknown program {name!r}; the built-ins are: {', '.join(sorted(BUILTIN))}")
        return program
    from shardex.programs.user import load_user_program

    return load_user_program(source)


def plan(program: Program, sample: bytes, reduce_shards: int, params: dict) -> dict:
    """The params to store in the job spec (requester side; deterministic).

    For range-partitioned programs (wordcount, sort, inverted-index) that is
    ``params`` plus ``"split_points"``: ``reduce_shards - 1`` non-decreasing
    strings at evenly spaced quantiles of the keys in ``sample``, so partitions
    come out about equally large (sort: lines; wordcount: distinct words;
    inverted-index: (word, line) postings). Repeated points mean empty
    partitions. grep only checks its pattern; user programs (hash-partitioned)
    take ``params`` unchanged.
    """
    check_reduce_shards(reduce_shards)
    if not isinstance(params, dict):
        raise ProgramError(f"params must be a dict, got {type(params).__name__}")
    if not isinstance(sample, (bytes, bytearray, memoryview)):
        raise ProgramError(f"sample must be bytes, got {type(sample).__name__}")
    planner = getattr(program, "plan_params", None)
    if planner is None:
        return dict(params)
    return planner(bytes(sample), reduce_shards, params)
