"""CARv1: a DAG as one stream (header, then varint-framed CID + block sections)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shardex.storage.cid import CID, decode_varint, encode_varint
from shardex.storage.errors import BlockCorrupted, StoreError


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    if n < 256:
        return bytes([major << 5 | 24, n])
    return bytes([major << 5 | 25]) + n.to_bytes(2, "big")


def header(roots: list[CID]) -> bytes:
    """dag-cbor ``{"roots": [CID…], "version": 1}`` (keys in dag-cbor order)."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for root in roots:
        raw = b"\x00" + root.to_bytes()  # CIDs are tag 42 over a 0x00-prefixed byte string
        out += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return encode_varint(len(out)) + bytes(out)


def write(roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    yield header(roots)
    for cid, block in blocks:
        raw = cid.to_bytes()
        yield encode_varint(len(raw) + len(block)) + raw + block


def read(data: bytes) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """Parse a CAR and verify every block (roots are returned as found)."""
    try:
        length, pos = decode_varint(data, 0)
        head = data[pos:pos + length]
        pos += length
        roots = _roots(head)
        blocks = []
        while pos < len(data):
            section, pos = decode_varint(data, pos)
            body = data[pos:pos + section]
            if len(body) != section:
                raise ValueError("truncated section")
            pos += section
            cid, block = split_section(body)
            if not cid.verify(block):
                raise BlockCorrupted(cid, "in CAR stream")
            blocks.append((cid, block))
    except ValueError as exc:
        raise StoreError(f"malformed CAR: {exc}") from None
    return roots, blocks


def split_section(body: bytes) -> tuple[CID, bytes]:
    if body[:2] == b"\x12\x20":  # CIDv0: a bare multihash
        return CID.from_bytes(body[:34]), body[34:]
    _, pos = decode_varint(body, 0)  # version
    _, pos = decode_varint(body, pos)  # codec
    _, pos = decode_varint(body, pos)  # multihash code
    size, pos = decode_varint(body, pos)
    return CID.from_bytes(body[:pos + size]), body[pos + size:]


def _roots(head: bytes) -> list[CID]:
    """Finds the tag-42 CIDs in our own header shape (enough to read CARs we and Kubo write)."""
    roots = []
    pos = 0
    while True:
        pos = head.find(b"\xd8\x2a", pos)
        if pos < 0:
            return roots
        info = head[pos + 2] & 0x1F
        start, size = (pos + 4, head[pos + 3]) if info == 24 else (pos + 3, info)
        roots.append(CID.from_bytes(head[start + 1:start + size]))
        pos = start + size
