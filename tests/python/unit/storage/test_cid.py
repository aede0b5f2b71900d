from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardex.storage import CID, InvalidCid
from shardex.storage.cid import DAG_PB, RAW, decode_varint, encode_varint


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(n: int) -> None:
    assert decode_varint(encode_varint(n)) == (n, len(encode_varint(n)))


@given(st.binary(max_size=300), st.sampled_from([RAW, DAG_PB]))
def test_cid_text_and_bytes_round_trip(data: bytes, codec: int) -> None:
    cid = CID.of(codec, data)
    assert CID.parse(str(cid)) == cid
    assert CID.parse(cid.to_bytes()) == cid
    assert str(cid).startswith("bafkrei" if codec == RAW else "bafybei")
    assert cid.digest == hashlib.sha256(data).digest()


def test_well_known_cids() -> None:
    # Published values: the empty raw block, and a Kubo CIDv0 re-read as v1.
    assert str(CID.of(RAW, b"")) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    v0 = CID.parse("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")  # the empty UnixFS directory
    assert v0.version == 0 and str(v0) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    assert str(v0.to_v1()) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


@pytest.mark.parametrize("text", [
    "", "hello", "bafy", "b" + "a" * 10, "zQmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # one char short
    "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-cbor codec: not supported
    "Qm" + "1" * 44,
])
def test_malformed_cids_raise_invalid_cid(text: str) -> None:
    with pytest.raises(InvalidCid):
        CID.parse(text)
