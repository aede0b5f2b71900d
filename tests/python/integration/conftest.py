"""Fixtures for integration tests that need services beyond the Anvil chain.

The Anvil fixtures live in tests/python/conftest.py; this file only adds the
IPFS node.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.python.ipfs.node import JsIpfsNode


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsIpfsNode]:
    """One offline js-ipfs daemon per session, on random loopback ports."""
    node = JsIpfsNode.start(tmp_path_factory.mktemp("ipfs"))
    try:
        yield node
    finally:
        node.stop()
