"""Job specs, input splitting, task manifests: what requesters and workers share.

A job spec is canonical JSON stored as one raw block, so its CID is
``CID(1, raw, specDigest)`` and anyone can find it from the on-chain digest.
A task's result is a small canonical JSON *manifest* (also one raw block): the
on-chain result digest is its sha2-256, so the manifest's CID follows from the
settled digest, and the manifest names the outputs by CID.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from shardex.errors import ShardexError
from shardex.storage.cid import CID, RAW
from shardex.storage.importer import CHUNK_SIZE

SPEC_VERSION = 1


class JobSpecError(ShardexError):
    """A job spec or manifest that is malformed or too large."""


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Resources:
    timeout_s: float = 600.0
    memory_mb: int = 2048
    gpus: int = 0
    gpu_memory_mb: int = 0
    gpu_share: float = 1.0  # the part of each of its cards' compute a task needs (0, 1]
    disk_mb: int = 4096  # bytes a task may write (outputs and temporary files)


@dataclass(frozen=True)
class JobSpec:
    program: str | None  # a built-in name, or None with program_cid
    program_cid: str | None
    params: dict
    map_shards: list[str]  # CIDs
    reduce_shards: int
    input_bytes: int
    resources: Resources = field(default_factory=Resources)

    def to_bytes(self) -> bytes:
        data = canonical_json({
            "version": SPEC_VERSION, "program": self.program, "program_cid": self.program_cid,
            "params": self.params, "map_shards": self.map_shards, "reduce_shards": self.reduce_shards,
            "input_bytes": self.input_bytes, "resources": self.resources.__dict__,
        })
        if len(data) > CHUNK_SIZE:
            raise JobSpecError(f"job spec is {len(data)} bytes; at most {CHUNK_SIZE} (use fewer map shards)")
        return data

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> JobSpec:
        try:
            raw = json.loads(data)
            if raw.get("version") != SPEC_VERSION:
                raise JobSpecError(f"unsupported job spec version {raw.get('version')!r}")
            spec = cls(raw["program"], raw["program_cid"], dict(raw["params"]), list(raw["map_shards"]),
                       int(raw["reduce_shards"]), int(raw["input_bytes"]), Resources(**raw["resources"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise JobSpecError(f"malformed job spec: {exc}") from None
        for cid in spec.map_shards:
            CID.parse(cid)
        return spec


def spec_cid(spec_digest: bytes) -> CID:
    return CID(1, RAW, bytes(spec_digest))


# ------------------------------------------------------------------ manifests

def map_manifest(partitions: list[CID]) -> bytes:
    return canonical_json({"kind": "map", "partitions": [str(c) for c in partitions]})


def reduce_manifest(output: CID, size: int) -> bytes:
    return canonical_json({"kind": "reduce", "output": str(output), "size": size})


def error_manifest(message: str) -> bytes:
    """A deterministic failure (the program raised, or hit its time or memory
    limit): honest replicas agree on it, so the task settles instead of hanging."""
    return canonical_json({"kind": "error", "error": message[:500]})


def manifest_cid(digest: bytes) -> CID:
    return CID(1, RAW, bytes(digest))


def parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
        kind = manifest["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        raise JobSpecError(f"malformed task manifest: {exc}") from None
    if kind not in ("map", "reduce", "error"):
        raise JobSpecError(f"unknown manifest kind {kind!r}")
    return manifest


# ------------------------------------------------------------------ input splitting

def split_records(stream: BinaryIO, total: int, shards: int, *, read_size: int = 1 << 20) -> Iterator[bytes]:
    """Yields ``shards`` pieces of about ``total / shards`` bytes each, cut only
    after a ``\\n`` (a record is never split); a piece may be empty when the
    input has fewer lines than shards. Streams: holds one piece at a time."""
    if shards < 1:
        raise JobSpecError("map shards must be at least 1")
    target = max(1, -(-total // shards))
    buf = bytearray()
    eof = False

    def read_more() -> None:
        nonlocal eof
        chunk = stream.read(read_size)
        if chunk:
            buf.extend(chunk)
        else:
            eof = True

    for _ in range(shards - 1):
        while not eof and len(buf) < target:
            read_more()
        pos = target - 1
        while True:
            nl = buf.find(b"\n", pos)
            if nl >= 0:
                cut = nl + 1
                break
            if eof:
                cut = len(buf)
                break
            pos = len(buf)
            read_more()
        yield bytes(buf[:cut])
        del buf[:cut]
    while not eof:
        read_more()
    yield bytes(buf)


def sample_input(stream: BinaryIO, total: int, *, pieces: int = 64, piece_size: int = 16 * 1024) -> bytes:
    """Evenly spaced whole lines from the input, for planning range partitions."""
    if total <= pieces * piece_size:
        stream.seek(0)
        return stream.read()
    out = []
    for i in range(pieces):
        stream.seek(i * total // pieces)
        block = stream.read(piece_size)
        start = block.find(b"\n") + 1 if i else 0
        end = block.rfind(b"\n") + 1
        if end > start:
            out.append(block[start:end])
    stream.seek(0)
    return b"".join(out)
