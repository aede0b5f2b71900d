"""Fast ABI encoding of calls and decoding of logs for our two contracts.

web3's contract layer re-validates and re-normalises the ABI on every call
(about 1.3 ms per encode and 0.5 ms per decoded log, profiled); a worker
pipelining thousands of transactions spends most of its time there. The ABIs
are fixed, so selectors and types are computed once here and eth_abi does the
byte work directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, to_checksum_address

from shardex.chain.artifacts import abi


def abi_type(param: dict) -> str:
    """The canonical type of an ABI parameter: tuples spelled out, ``(uint256,bytes32)[]``."""
    if param["type"].startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return param["type"]


@dataclass(frozen=True)
class EventCodec:
    name: str
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data: tuple[tuple[str, str], ...]

    def decode(self, topics: list[bytes], data: bytes) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for (name, typ), topic in zip(self.indexed, topics[1:], strict=True):
            values[name] = decode([typ], topic)[0]
        for (name, _), value in zip(self.data, decode([t for _, t in self.data], data), strict=True):
            values[name] = value
        for name, typ in (*self.indexed, *self.data):
            if typ == "address":
                values[name] = to_checksum_address(values[name])
        return values


@cache
def _functions(contract: str) -> dict[str, tuple[bytes, list[str]]]:
    return {e["name"]: (function_abi_to_4byte_selector(e), [abi_type(p) for p in e["inputs"]])
            for e in abi(contract) if e["type"] == "function"}


@cache
def events(contract: str) -> dict[bytes, EventCodec]:
    out = {}
    for e in abi(contract):
        if e["type"] != "event":
            continue
        out[event_abi_to_log_topic(e)] = EventCodec(
            e["name"],
            tuple((p["name"], abi_type(p)) for p in e["inputs"] if p["indexed"]),
            tuple((p["name"], abi_type(p)) for p in e["inputs"] if not p["indexed"]),
        )
    return out


@cache
def event_topics() -> dict[str, str]:
    """Event name -> topic0 (hex) over both contracts; ``Withdrawn`` is the same event in each."""
    return {e.name: "0x" + topic.hex() for contract in ("JobMarket", "WorkerPool")
            for topic, e in events(contract).items()}


def encode_call(contract: str, fn: str, args: tuple | list) -> bytes:
    selector, types = _functions(contract)[fn]
    return selector + encode(types, list(args))
