"""The fast codec agrees with web3's own contract encoding, byte for byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from web3 import Web3

from shardex.chain import codec
from shardex.chain.artifacts import abi

MARKET = Web3().eth.contract(address="0x" + "12" * 20, abi=abi("JobMarket"))
uint32s = st.integers(min_value=0, max_value=2**32 - 1)
words = st.binary(min_size=32, max_size=32)


@given(job=st.integers(min_value=0, max_value=2**256 - 1), tasks=st.lists(uint32s, max_size=8), data=st.data())
def test_encode_call_matches_web3(job: int, tasks: list[int], data: st.DataObject) -> None:
    ws = data.draw(st.lists(words, min_size=len(tasks), max_size=len(tasks)))
    short = [w[:12] for w in ws]  # a commit carries the first 12 bytes of each result and seal
    for fn, args in (("draw", (job, tasks)), ("commit", (job, tasks, short, short)), ("reveal", (job, tasks, ws)),
                     ("withdraw", ())):
        assert "0x" + codec.encode_call("JobMarket", fn, args).hex() == MARKET.encode_abi(fn, args=list(args))


@given(job=st.integers(min_value=0, max_value=2**256 - 1), task=uint32s, worker=st.binary(min_size=20, max_size=20),
       digest=words)
def test_event_decode_matches_web3(job: int, task: int, worker: bytes, digest: bytes) -> None:
    from eth_abi import encode
    from eth_utils import event_abi_to_log_topic, to_checksum_address

    entry = next(e for e in abi("JobMarket") if e.get("name") == "ResultRevealed")
    log = {"address": MARKET.address, "topics": [event_abi_to_log_topic(entry), encode(["uint256"], [job]),
                                                  encode(["uint256"], [task]), encode(["address"], [worker])],
           "data": encode(["bytes32"], [digest]), "blockNumber": 1, "transactionHash": b"\x01" * 32,
           "logIndex": 0, "transactionIndex": 0, "blockHash": b"\x02" * 32}
    ours = codec.events("JobMarket")[log["topics"][0]].decode(log["topics"], log["data"])
    theirs = dict(MARKET.events.ResultRevealed().process_log(log)["args"])
    assert ours == theirs
    assert ours["worker"] == to_checksum_address(worker)
