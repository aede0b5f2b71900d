"""Errors of the content store. Each names the CID it is about."""

from __future__ import annotations

from shardex.errors import ShardexError


class StoreError(ShardexError):
    """Root of content-store errors."""


class InvalidCid(StoreError):
    """A string or byte sequence that is not a CID we can read."""


class BlockNotFound(StoreError):
    def __init__(self, cid: object, where: str = "local store") -> None:
        self.cid = cid
        super().__init__(f"block {cid} not found in {where}")


class BlockCorrupted(StoreError):
    """Bytes whose hash does not match their CID: never returned as data."""

    def __init__(self, cid: object, detail: str = "") -> None:
        self.cid = cid
        super().__init__(f"block {cid} is corrupted: its bytes do not hash to its CID" + (f" ({detail})" if detail
                                                                                            else ""))


class NotAFile(StoreError):
    def __init__(self, cid: object, kind: str) -> None:
        self.cid = cid
        super().__init__(f"{cid} is a {kind}, not a file")


class UnsupportedDag(StoreError):
    """A valid DAG using a feature this store does not read (e.g. HAMT shards)."""


class ProviderError(StoreError):
    """A remote provider (HTTP gateway or Kubo RPC) failed or timed out."""


class FetchFailed(StoreError):
    """No provider could deliver a verified copy of a block."""

    def __init__(self, cid: object, attempts: list[str]) -> None:
        self.cid = cid
        self.attempts = attempts
        super().__init__(f"could not fetch {cid} from any provider: " + ("; ".join(attempts) or "none is known"))
