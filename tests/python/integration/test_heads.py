"""Following the chain's head: by subscription on a node that offers it (a real
Anvil), by polling where it does not, and back to the subscription when it returns."""

from __future__ import annotations

import asyncio

from shardex.chain.heads import HeadFollower, ws_url_for
from tests.python.conftest import rpc


async def _until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


def test_ws_url_keeps_host_port_and_path() -> None:
    assert ws_url_for("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert ws_url_for("https://rpc.example/v1/key") == "wss://rpc.example/v1/key"
    assert ws_url_for("ipc:///tmp/node.ipc") is None


async def test_new_heads_arrive_by_subscription_without_asking(chain) -> None:
    polls: list[int] = []

    async def poll() -> int:
        polls.append(1)
        return int(rpc(chain.rpc_url, "eth_blockNumber"), 16)

    follower = HeadFollower(ws_url_for(chain.rpc_url), poll)
    task = asyncio.create_task(follower.run())
    try:
        await _until(lambda: follower.subscribed)
        start = await follower.latest()
        asked = len(polls)
        for i in range(1, 4):
            follower.changed.clear()
            rpc(chain.rpc_url, "evm_mine")
            await asyncio.wait_for(follower.changed.wait(), 10)
            assert await follower.latest() == start + i == int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
        assert len(polls) == asked  # three new heads, and the node was never asked for one
    finally:
        task.cancel()


async def test_without_a_subscription_the_head_is_polled(chain) -> None:
    heads = iter(range(100, 200))

    async def poll() -> int:
        return next(heads)

    follower = HeadFollower("ws://127.0.0.1:9", poll, retry_max_s=0.05)  # nothing listens there
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.sleep(0.3)  # several failed attempts
        assert not follower.subscribed
        assert [await follower.latest() for _ in range(3)] == [100, 101, 102]
    finally:
        task.cancel()
