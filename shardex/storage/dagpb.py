"""dag-pb nodes and UnixFS metadata: the exact bytes Kubo and js-ipfs write.

Only the subset UnixFS files and directories need. Encoding is canonical
dag-pb: every link (field 2) before the data (field 1); link fields in order
Hash, Name, Tsize; UnixFS ``blocksizes`` unpacked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardex.storage.cid import CID, decode_varint, encode_varint

# UnixFS Data.Type
RAW_TYPE, DIRECTORY, FILE, METADATA, SYMLINK, HAMT_SHARD = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Link:
    cid: CID
    name: str
    tsize: int


@dataclass
class UnixFSData:
    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


@dataclass
class PBNode:
    links: list[Link]
    data: UnixFSData | None


def _field(tag: int, payload: bytes) -> bytes:
    return encode_varint(tag) + encode_varint(len(payload)) + payload


def encode_unixfs(d: UnixFSData) -> bytes:
    out = bytearray(encode_varint(0x08) + encode_varint(d.type))
    if d.data:
        out += _field(0x12, d.data)
    if d.filesize is not None:
        out += encode_varint(0x18) + encode_varint(d.filesize)
    for size in d.blocksizes:
        out += encode_varint(0x20) + encode_varint(size)
    return bytes(out)


def encode_node(node: PBNode) -> bytes:
    out = bytearray()
    for link in node.links:
        body = _field(0x0A, link.cid.to_bytes()) + _field(0x12, link.name.encode()) + encode_varint(0x18) + \
            encode_varint(link.tsize)
        out += _field(0x12, body)
    if node.data is not None:
        out += _field(0x0A, encode_unixfs(node.data))
    return bytes(out)


def _fields(buf: bytes):
    pos = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        tag, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(buf, pos)
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield tag, wire, value


def decode_unixfs(buf: bytes) -> UnixFSData:
    d = UnixFSData(type=-1)
    for tag, wire, value in _fields(buf):
        if tag == 1 and wire == 0:
            d.type = value
        elif tag == 2 and wire == 2:
            d.data = bytes(value)
        elif tag == 3 and wire == 0:
            d.filesize = value
        elif tag == 4 and wire == 0:
            d.blocksizes.append(value)
        elif tag == 4 and wire == 2:  # packed form, accepted when reading
            pos = 0
            while pos < len(value):
                size, pos = decode_varint(value, pos)
                d.blocksizes.append(size)
    if d.type < 0:
        raise ValueError("UnixFS data without a type")
    return d


def decode_node(buf: bytes) -> PBNode:
    links: list[Link] = []
    data: UnixFSData | None = None
    for tag, wire, value in _fields(buf):
        if tag == 2 and wire == 2:
            cid, name, tsize = None, "", 0
            for ltag, lwire, lvalue in _fields(bytes(value)):
                if ltag == 1 and lwire == 2:
                    cid = CID.from_bytes(bytes(lvalue))
                elif ltag == 2 and lwire == 2:
                    name = bytes(lvalue).decode("utf-8")
                elif ltag == 3 and lwire == 0:
                    tsize = lvalue
            if cid is None:
                raise ValueError("dag-pb link without a hash")
            links.append(Link(cid, name, tsize))
        elif tag == 1 and wire == 2:
            data = decode_unixfs(bytes(value))
    return PBNode(links, data)
