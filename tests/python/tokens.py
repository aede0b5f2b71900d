"""The tests' mock ERC-20 (tests/contracts/mocks/Tokens.sol) on a real chain:
compiled with the project's solc, deployed and minted from an Anvil dev
account (Anvil keeps them unlocked), balances read with eth_call."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from deploy.compile import SOLC_SHIM
from tests.python.conftest import rpc

SOURCE = Path(__file__).resolve().parents[1] / "contracts" / "mocks" / "Tokens.sol"


@cache
def mock_erc20_bytecode() -> str:
    import solcx

    out = solcx.compile_standard(
        {"language": "Solidity", "sources": {"Tokens.sol": {"content": SOURCE.read_text()}},
         "settings": {"evmVersion": "cancun", "outputSelection": {"*": {"MockERC20": ["evm.bytecode.object"]}}}},
        solc_binary=str(SOLC_SHIM))
    return "0x" + out["contracts"]["Tokens.sol"]["MockERC20"]["evm"]["bytecode"]["object"]


def _call_data(signature: str, types: list[str], args: list) -> str:
    return "0x" + (function_signature_to_4byte_selector(signature) + encode(types, args)).hex()


def deploy_mock_erc20(rpc_url: str, deployer: str, holder: str, amount: int) -> str:
    """A 6-decimal token with ``amount`` minted to ``holder``; returns its address."""
    tx = rpc(rpc_url, "eth_sendTransaction", {"from": deployer, "data": mock_erc20_bytecode(), "gas": hex(3_000_000)})
    address = to_checksum_address(rpc(rpc_url, "eth_getTransactionReceipt", tx)["contractAddress"])
    rpc(rpc_url, "eth_sendTransaction", {"from": deployer, "to": address,
                                         "data": _call_data("mint(address,uint256)", ["address", "uint256"],
                                                            [holder, amount])})
    return address


def token_balance(rpc_url: str, token: str, account: str) -> int:
    raw = rpc(rpc_url, "eth_call", {"to": token, "data": _call_data("balanceOf(address)", ["address"], [account])},
              "latest")
    return decode(["uint256"], bytes.fromhex(raw[2:]))[0]
