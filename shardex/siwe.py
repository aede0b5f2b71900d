"""Sign-In with Ethereum (EIP-4361) messages: built by clients, checked by the gateway.

A SIWE message is plain text a wallet shows its owner and signs with
``personal_sign`` (EIP-191). The gateway hands out single-use nonces, checks
the message names it (domain, chain, nonce, time) and that the signature
recovers to the address in the message, then issues a session token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address

from shardex.errors import ShardexError

STATEMENT = "Sign in to the Shardex gateway to submit jobs as this address."


class SiweError(ShardexError):
    """A sign-in message or signature that does not prove what it claims; the message says what is wrong."""


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None = None
    statement: str | None = STATEMENT
    version: str = "1"

    def text(self) -> str:
        lines = [f"{self.domain} wants you to sign in with your Ethereum account:", self.address, ""]
        if self.statement:
            lines += [self.statement, ""]
        lines += [f"URI: {self.uri}", f"Version: {self.version}", f"Chain ID: {self.chain_id}",
                  f"Nonce: {self.nonce}", f"Issued At: {_iso(self.issued_at)}"]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_iso(self.expiration_time)}")
        return "\n".join(lines)

    def sign(self, private_key: str | bytes) -> str:
        """The EIP-191 signature a wallet's personal_sign would give (for scripts and tests)."""
        signed = Account.sign_message(encode_defunct(text=self.text()), private_key)
        return "0x" + bytes(signed.signature).hex()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str, field: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise SiweError(f"{field} is not an RFC 3339 time: {value!r}") from None
    if t.tzinfo is None:
        raise SiweError(f"{field} has no time zone: {value!r}")
    return t


_HEADER = re.compile(r"^(?P<domain>[^\s/]+) wants you to sign in with your Ethereum account:$")
_FIELDS = {"URI", "Version", "Chain ID", "Nonce", "Issued At", "Expiration Time", "Not Before", "Request ID",
           "Resources"}


def parse(text: str) -> SiweMessage:
    """Parse an EIP-4361 message; SiweError says which line is wrong."""
    if len(text) > 4096:
        raise SiweError("message longer than 4096 characters")
    lines = text.split("\n")
    if len(lines) < 3:
        raise SiweError("not a Sign-In with Ethereum message (too few lines)")
    header = _HEADER.match(lines[0])
    if header is None:
        raise SiweError("first line must be '<domain> wants you to sign in with your Ethereum account:'")
    address = lines[1]
    if not is_checksum_address(address):
        raise SiweError(f"second line must be an EIP-55 checksummed address, got {address!r}")
    fields: dict[str, str] = {}
    statement = None
    rest = lines[2:]
    if rest and rest[0] == "":
        rest = rest[1:]
    if rest and not any(rest[0].startswith(f"{k}: ") for k in _FIELDS):
        statement, rest = rest[0], rest[1:]
        if rest and rest[0] == "":
            rest = rest[1:]
    for line in rest:
        key, sep, value = line.partition(": ")
        if not sep or key not in _FIELDS:
            raise SiweError(f"unexpected line in message: {line!r}")
        if key in fields:
            raise SiweError(f"field {key!r} appears twice")
        fields[key] = value
    for required in ("URI", "Version", "Chain ID", "Nonce", "Issued At"):
        if required not in fields:
            raise SiweError(f"missing field {required!r}")
    if fields["Version"] != "1":
        raise SiweError(f"Version must be 1, got {fields['Version']!r}")
    if not fields["Chain ID"].isdigit():
        raise SiweError(f"Chain ID must be a number, got {fields['Chain ID']!r}")
    if not re.fullmatch(r"[A-Za-z0-9]{8,64}", fields["Nonce"]):
        raise SiweError("Nonce must be 8..64 letters and digits")
    expiration = fields.get("Expiration Time")
    return SiweMessage(
        domain=header["domain"], address=address, uri=fields["URI"], chain_id=int(fields["Chain ID"]),
        nonce=fields["Nonce"], issued_at=_parse_time(fields["Issued At"], "Issued At"),
        expiration_time=_parse_time(expiration, "Expiration Time") if expiration else None, statement=statement)


def recover(text: str, signature: str) -> str:
    """The address whose key signed ``text`` with personal_sign."""
    try:
        sig = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise SiweError("signature is not hex") from None
    if len(sig) != 65:
        raise SiweError(f"signature must be 65 bytes, got {len(sig)}")
    try:
        return Account.recover_message(encode_defunct(text=text), signature=sig)
    except Exception as exc:  # noqa: BLE001 - eth_keys raises BadSignature / ValidationError for malformed (r, s, v)
        raise SiweError(f"signature does not recover: {exc}") from None
