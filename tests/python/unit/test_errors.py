"""Revert data decodes into the exception named after the Solidity error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from shardex.chain import errors

ABI_DIR = Path(errors.__file__).resolve().parent.parent / "abi"


def all_error_abis() -> list[dict]:
    out = []
    for name in ("JobMarket", "WorkerPool"):
        out += [e for e in json.loads((ABI_DIR / f"{name}.json").read_text())["abi"] if e["type"] == "error"]
    return out


def strategy_for(solidity_type: str) -> st.SearchStrategy:
    if solidity_type == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if solidity_type.startswith("uint"):
        return st.integers(min_value=0, max_value=2 ** int(solidity_type[4:] or 256) - 1)
    if solidity_type == "bytes32":
        return st.binary(min_size=32, max_size=32)
    raise AssertionError(f"add a strategy for {solidity_type}")


@pytest.mark.parametrize("error_abi", all_error_abis(), ids=lambda e: e["name"])
@given(data=st.data())
def test_every_custom_error_round_trips(error_abi: dict, data: st.DataObject) -> None:
    types = [p["type"] for p in error_abi["inputs"]]
    values = [data.draw(strategy_for(t)) for t in types]
    selector = keccak(text=f"{error_abi['name']}({','.join(types)})")[:4]
    exc = errors.decode_revert(selector + encode(types, values))
    assert type(exc).__name__ == error_abi["name"]
    assert isinstance(exc, errors.ContractRevert)
    expected = [v.lower() if isinstance(v, str) else v for v in values]
    got = [v.lower() if isinstance(v, str) else v for v in exc.values]
    assert got == expected
    assert str(exc).startswith(error_abi["name"] + "(")
    assert "0x" + selector.hex() not in str(exc)  # never the raw selector


def test_generated_classes_are_importable_by_name() -> None:
    exc = errors.JobMarketTaskNotInPhase(7, 2, 3)
    assert isinstance(exc, errors.ChainError)
    assert exc.args_dict == {"jobId": 7, "taskId": 2, "state": 3}
    assert str(exc) == "JobMarketTaskNotInPhase(jobId=7, taskId=2, state=3)"
    assert exc.to_json() == {"name": "JobMarketTaskNotInPhase", "args": {"jobId": 7, "taskId": 2, "state": 3}}


def test_error_string_and_panic_and_unknown_are_typed() -> None:
    reason = errors.decode_revert(keccak(text="Error(string)")[:4] + encode(["string"], ["nope"]))
    assert isinstance(reason, errors.RevertedWithReason) and str(reason) == "nope"
    panic = errors.decode_revert("0x" + (keccak(text="Panic(uint256)")[:4] + encode(["uint256"], [0x11])).hex())
    assert isinstance(panic, errors.PanicError) and panic.code == 0x11
    assert isinstance(errors.decode_revert(b"\xde\xad\xbe\xef"), errors.UnknownRevert)
    assert isinstance(errors.decode_revert(None), errors.UnknownRevert)
