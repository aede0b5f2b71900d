"""``POST /v1/jobs`` and ``POST /v1/tx``: turn an upload into a posted job.

Non-custodial by default: the gateway stores and shards the input, stores the
spec, and answers with the unsigned transactions the requester signs in their
own wallet (announce the gateway as the input server if the requester has not
already, then postJob); ``POST /v1/tx`` relays each signed one and reports what
it did. Dev mode signs with the gateway's own key, and only on the dev chain.

Every limit is checked before anything is stored or sent, and reverts are
dry-run (gas estimation) before a transaction is returned, so a request either
fails with a 4xx saying why or leaves a complete job behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rlp
from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import Web3Exception

from backend.problems import ApiProblem
from shardex.chain import ChainClient
from shardex.chain.errors import ChainError
from shardex.chain.models import JobParams

MAX_UINT96 = 2**96 - 1


def parse_wei(value: str, field: str) -> int:
    text = value.strip()
    if not text.isdigit() or len(text) > 29:
        raise ApiProblem(422, "invalid-request", f"{field} must be a whole number of wei (digits only), got {value!r}",
                         errors=[{"loc": ["body", field], "msg": "not a whole number of wei", "type": "wei"}])
    amount = int(text)
    if amount > MAX_UINT96:
        raise ApiProblem(422, "invalid-request", f"{field} must be at most {MAX_UINT96} wei (uint96), got {amount}",
                         errors=[{"loc": ["body", field], "msg": "above uint96", "type": "wei"}])
    return amount


async def save_upload(upload: Any, limit: int, directory: Path) -> Path:
    """Copy an UploadFile to disk, refusing more than ``limit`` bytes."""
    path = directory / "input"
    size = 0
    with path.open("wb") as f:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise ApiProblem(413, "payload-too-large", f"input is larger than the {limit}-byte limit")
            f.write(chunk)
    return path


async def check_funds(client: ChainClient, sender: str, escrow: int, token: str | None = None) -> None:
    if token is not None:
        try:
            held = await client.token_balance(token, sender)
        except (ChainError, Web3Exception) as exc:  # no code there, or not an ERC-20
            raise ApiProblem(422, "invalid-token", f"{token} does not answer as an ERC-20 on this chain: {exc}"
                             ) from None
        if held < escrow:
            raise ApiProblem(422, "insufficient-funds",
                             f"{sender} holds {held} units of token {token}; the escrow is {escrow} units")
        return
    balance = await client.balance(sender)
    if balance < escrow:
        raise ApiProblem(422, "insufficient-funds", f"{sender} holds {balance} wei; the escrow is {escrow} wei plus gas")


async def unsigned_transactions(client: ChainClient, sender: str, params: JobParams, announce_url: str | None
                                ) -> list[dict[str, Any]]:
    """What the requester signs, in nonce order."""
    out = []
    if announce_url is not None:
        tx = await client.unsigned_tx(client.announce(announce_url), sender)
        out.append({"purpose": "announce", "description": f"announce {announce_url} as where your inputs are served",
                    "tx": _jsonable_tx(tx)})
    approve = params.token is not None and await client.token_allowance(params.token, sender) < params.escrow
    if approve:
        tx = await client.unsigned_tx(client.approve_token(params.token, params.escrow), sender,
                                      nonce_offset=len(out))
        out.append({"purpose": "approve_token", "description": f"let the market take {params.escrow} units of "
                    f"token {params.token} as the job's escrow", "tx": _jsonable_tx(tx)})
    # After an approval the post cannot be dry-run until the approval is mined: a fixed gas limit then.
    tx = await client.unsigned_tx(client.post_job(params), sender, nonce_offset=len(out), estimate=not approve)
    currency = "wei" if params.token is None else f"units of token {params.token}"
    out.append({"purpose": "post_job", "description": f"post the job with {params.escrow} {currency} of escrow",
                "tx": _jsonable_tx(tx)})
    return out


def _jsonable_tx(tx: dict[str, Any]) -> dict[str, Any]:
    # Wei and fees as decimal strings (JavaScript numbers stop being exact at 2**53).
    return {"from": tx["from"], "to": tx["to"], "data": tx["data"], "value": str(tx["value"]),
            "chainId": tx["chainId"], "nonce": tx["nonce"], "gas": tx["gas"], "type": tx["type"],
            "maxFeePerGas": str(tx["maxFeePerGas"]), "maxPriorityFeePerGas": str(tx["maxPriorityFeePerGas"])}


#: approve(address,uint256): the one call to a contract other than its own that the gateway relays.
APPROVE = bytes.fromhex("095ea7b3")


def decode_signed(raw_hex: str, chain_id: int, allowed_to: set[str], market: str | None = None
                  ) -> tuple[bytes, dict[str, Any]]:
    """A signed transaction's bytes and its (from, to, data, value), or a 4xx
    saying what is wrong. Besides ``allowed_to``, an ERC-20 ``approve`` of
    ``market`` (a token job's escrow) is relayed, to any token, without value."""
    try:
        raw = bytes.fromhex(raw_hex.removeprefix("0x"))
    except ValueError:
        raise ApiProblem(422, "invalid-transaction", "raw must be 0x-prefixed hex") from None
    try:
        sender = Account.recover_transaction(raw)
        if raw[:1] in (b"\x01", b"\x02"):
            fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        elif raw[:1] >= b"\xc0":
            fields = rlp.decode(raw, Transaction).as_dict()
            v = fields["v"]
            # Pre-EIP-155 signatures (v 27/28) replay on every chain: refuse them.
            fields["chainId"] = (v - 35) // 2 if v >= 35 else -1
        else:
            raise ValueError(f"unsupported transaction type 0x{raw[0]:02x}")
    except Exception as exc:  # noqa: BLE001 - malformed RLP, bad signature: eth_account and rlp raise several types
        raise ApiProblem(422, "invalid-transaction", f"not a signed transaction: {exc}") from None
    to = fields.get("to") or b""
    to_addr = to_checksum_address(to) if len(to) == 20 else None
    data = bytes(fields.get("data", b""))
    approves_market = (market is not None and len(data) == 68 and data[:4] == APPROVE and data[4:16] == bytes(12)
                       and data[16:36] == bytes.fromhex(market.removeprefix("0x")) and int(fields.get("value", 0)) == 0)
    if to_addr is None or (to_addr.lower() not in allowed_to and not approves_market):
        raise ApiProblem(422, "invalid-transaction",
                         f"this gateway relays only transactions to its contracts, not to {to_addr or 'contract creation'}")
    tx_chain = fields.get("chainId")
    if tx_chain != chain_id:
        raise ApiProblem(422, "invalid-transaction", f"transaction is for chain {tx_chain}, this gateway is {chain_id}")
    decoded = {"from": sender, "to": to_addr, "data": "0x" + bytes(fields.get("data", b"")).hex(),
               "value": int(fields.get("value", 0))}
    return raw, decoded
