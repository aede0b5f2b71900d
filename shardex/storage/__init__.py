"""Content store: IPFS-compatible CIDs, embedded and Kubo RPC stores, verified retrieval."""

from shardex.storage.cid import CID
from shardex.storage.embedded import EmbeddedStore, hash_bytes, hash_path
from shardex.storage.errors import (
    BlockCorrupted,
    BlockNotFound,
    FetchFailed,
    InvalidCid,
    NotAFile,
    ProviderError,
    StoreError,
    UnsupportedDag,
)
from shardex.storage.protocol import ContentStore

__all__ = [
    "CID", "BlockCorrupted", "BlockNotFound", "ContentStore", "EmbeddedStore", "FetchFailed", "InvalidCid",
    "NotAFile", "ProviderError", "StoreError", "UnsupportedDag", "hash_bytes", "hash_path",
]
