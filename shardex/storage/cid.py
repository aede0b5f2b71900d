"""Content identifiers (CIDv1, and reading CIDv0), without dependencies.

A CID here is ``<version><codec><multihash>`` with sha2-256 multihashes and
two codecs: ``raw`` (0x55, file leaves) and ``dag-pb`` (0x70, UnixFS nodes).
Its text form is multibase base32 (``b`` + lowercase RFC 4648, no padding),
which is what ``ipfs add --cid-version=1`` prints.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from shardex.storage.errors import InvalidCid

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """(value, next position); raises ValueError on truncation or overlong input."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


@dataclass(frozen=True, slots=True)
class CID:
    version: int
    codec: int
    digest: bytes  # sha2-256 digest (32 bytes)

    @classmethod
    def of(cls, codec: int, block: bytes | memoryview) -> CID:
        return cls(1, codec, hashlib.sha256(block).digest())

    @property
    def multihash(self) -> bytes:
        return bytes([SHA2_256, len(self.digest)]) + self.digest

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + base64.b32encode(self.to_bytes()).decode().lower().rstrip("=")

    def __repr__(self) -> str:
        return f"CID({self})"

    def verify(self, block: bytes | memoryview) -> bool:
        return hashlib.sha256(block).digest() == self.digest

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, hex(self.codec))

    @classmethod
    def parse(cls, value: str | bytes | CID) -> CID:
        if isinstance(value, CID):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(value))
        text = value.strip()
        if not text:
            raise InvalidCid("empty CID")
        if len(text) == 46 and text.startswith("Qm"):
            try:
                return cls._from_multihash(0, DAG_PB, _b58decode(text))
            except ValueError as exc:
                raise InvalidCid(f"{value!r} is not a CIDv0: {exc}") from None
        if text[0] not in "bB":
            raise InvalidCid(f"{value!r}: only base32 ('b…') CIDv1 and base58 CIDv0 ('Qm…') are supported")
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:
            raise InvalidCid(f"{value!r} is not valid base32") from None
        return cls.from_bytes(raw, text=value)

    @classmethod
    def from_bytes(cls, raw: bytes, text: object = None) -> CID:
        shown = text if text is not None else "0x" + raw.hex()
        try:
            if len(raw) == 34 and raw[0] == SHA2_256:
                return cls._from_multihash(0, DAG_PB, raw)
            version, pos = decode_varint(raw, 0)
            if version != 1:
                raise ValueError(f"CID version {version}")
            codec, pos = decode_varint(raw, pos)
            return cls._from_multihash(1, codec, raw[pos:])
        except ValueError as exc:
            raise InvalidCid(f"{shown!r} is not a CID: {exc}") from None

    @classmethod
    def _from_multihash(cls, version: int, codec: int, mh: bytes) -> CID:
        code, pos = decode_varint(mh, 0)
        length, pos = decode_varint(mh, pos)
        if code != SHA2_256:
            raise ValueError(f"unsupported multihash 0x{code:x} (only sha2-256)")
        if length != 32 or len(mh) - pos != 32:
            raise ValueError("sha2-256 digest must be 32 bytes")
        if codec not in CODEC_NAMES:
            raise ValueError(f"unsupported codec 0x{codec:x} (only raw and dag-pb)")
        return cls(version, codec, bytes(mh[pos:]))

    def to_v1(self) -> CID:
        return CID(1, self.codec, self.digest)


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body
