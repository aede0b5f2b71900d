"""Contract reverts as Python exceptions named after the Solidity custom error.

Every ``error X(...)`` in the contracts' ABIs becomes a class ``X`` here, a
subclass of :class:`ContractRevert`, so callers can write
``except errors.JobMarketTaskFull as e: e.args_dict["replication"]`` and users
see ``JobMarketTaskFull(jobId=1, taskId=0, replication=3)``, never hex.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from shardex.chain.artifacts import abi
from shardex.chain.codec import abi_type
from shardex.errors import ShardexError


class ChainError(ShardexError):
    """Talking to the chain failed (RPC, transaction, revert)."""


class ContractRevert(ChainError):
    """A contract call reverted with a custom error; subclasses carry its name."""

    error_name: str = "ContractRevert"
    arg_names: tuple[str, ...] = ()

    def __init__(self, *values: Any) -> None:
        self.values = values
        self.args_dict = dict(zip(self.arg_names, values, strict=True))
        super().__init__(self.describe())

    def describe(self) -> str:
        inner = ", ".join(f"{k}={_show(v)}" for k, v in self.args_dict.items())
        return f"{self.error_name}({inner})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.error_name, "args": {k: _jsonable(v) for k, v in self.args_dict.items()}}


class RevertedWithReason(ChainError):
    """A revert with a plain ``Error(string)`` reason (never from our contracts)."""


class PanicError(ChainError):
    """A Solidity panic (assert, overflow, division by zero): a contract bug."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"Panic(0x{code:02x})")


class UnknownRevert(ChainError):
    """Revert data that matches no known error (e.g. a call to the wrong address)."""


class TransactionRejected(ChainError):
    """The node refused a transaction before mining it (e.g. insufficient funds, nonce too low)."""


class NonceTaken(TransactionRejected):
    """The nonce this client held for its account was used by another sender: a second
    process signs with the same key. The client resyncs; the message says what to fix."""


class TransactionDropped(ChainError):
    """A sent transaction that will never be mined (the node forgot it, or its nonce
    waits behind one the chain lost); the next send resyncs the nonce."""


class TransactionFailed(ChainError):
    """A mined transaction failed and the revert could not be reproduced."""


def _show(value: Any) -> str:
    return str(_jsonable(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


#: selector (4 bytes) -> (exception class, ABI input types)
_BY_SELECTOR: dict[bytes, tuple[type[ContractRevert], list[str]]] = {}


def _register(error_abi: dict) -> type[ContractRevert]:
    name = error_abi["name"]
    types = [abi_type(p) for p in error_abi["inputs"]]
    selector = keccak(text=f"{name}({','.join(types)})")[:4]
    cls = globals().get(name)
    if cls is None:
        cls = type(name, (ContractRevert,), {
            "error_name": name,
            "arg_names": tuple(p["name"] for p in error_abi["inputs"]),
            "__doc__": f"Solidity custom error ``{name}``.",
            "__module__": __name__,
        })
        globals()[name] = cls
    _BY_SELECTOR[selector] = (cls, types)
    return cls


for _contract in ("JobMarket", "WorkerPool"):
    for _entry in abi(_contract):
        if _entry["type"] == "error":
            _register(_entry)

_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC = keccak(text="Panic(uint256)")[:4]


def decode_revert(data: bytes | str | None) -> ChainError:
    """Turn raw revert data into the matching exception instance."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    if not data or len(data) < 4:
        return UnknownRevert("execution reverted without data")
    selector, payload = data[:4], data[4:]
    if selector in _BY_SELECTOR:
        cls, types = _BY_SELECTOR[selector]
        values = decode(types, payload)
        # Addresses as users see them everywhere else: EIP-55 checksummed.
        return cls(*(to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)))
    if selector == _ERROR_STRING:
        return RevertedWithReason(decode(["string"], payload)[0])
    if selector == _PANIC:
        return PanicError(decode(["uint256"], payload)[0])
    return UnknownRevert(f"unknown revert data 0x{data.hex()}")


def known_errors() -> dict[str, type[ContractRevert]]:
    return {cls.error_name: cls for cls, _ in _BY_SELECTOR.values()}
