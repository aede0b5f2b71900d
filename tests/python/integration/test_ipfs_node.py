"""Smoke tests for the js-ipfs node fixture (tests/python/ipfs/node.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import httpx
import pytest

from tests.python.ipfs.node import JsIpfsNode

pytestmark = pytest.mark.integration


def raw_cid_v1(data: bytes) -> str:
    """CIDv1, raw codec, sha2-256, base32: the CID of a single-block raw leaf."""
    binary = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def add(api_url: str, data: bytes) -> str:
    r = httpx.post(f"{api_url}/api/v0/add",
                   params={"cid-version": "1", "raw-leaves": "true", "cid-base": "base32"},
                   files={"file": ("blob", data, "application/octet-stream")}, timeout=60)
    assert r.status_code == 200, r.text
    entries = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert len(entries) == 1, entries
    return entries[0]["Hash"]


def cat(api_url: str, cid: str) -> bytes:
    r = httpx.post(f"{api_url}/api/v0/cat", params={"arg": cid, "timeout": "10s"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def test_version_answers(ipfs_node: JsIpfsNode) -> None:
    r = httpx.post(f"{ipfs_node.api_url}/api/v0/version", timeout=10)
    assert r.status_code == 200
    assert r.json()["Version"]  # js-ipfs 0.66.1 reports its ipfs-core version, 0.18.1


@pytest.mark.parametrize("size", [0, 1, 1000, 262_144, 700_000])
def test_add_then_cat_round_trips(ipfs_node: JsIpfsNode, size: int) -> None:
    data = os.urandom(size)
    cid = add(ipfs_node.api_url, data)
    assert cid.startswith("baf")
    if size <= 262_144:  # one chunk: the CID is that of the raw block itself
        assert cid == raw_cid_v1(data)
    assert cat(ipfs_node.api_url, cid) == data


def test_node_is_offline(ipfs_node: JsIpfsNode) -> None:
    r = httpx.post(f"{ipfs_node.api_url}/api/v0/config/show", timeout=10)
    assert r.status_code == 200
    config = r.json()
    assert config["Bootstrap"] == []
    assert config["Addresses"]["Swarm"] == []
    assert config["Addresses"]["Delegates"] == []
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    peers = httpx.post(f"{ipfs_node.api_url}/api/v0/swarm/peers", timeout=10)
    assert peers.status_code == 200
    assert not peers.json().get("Peers")
