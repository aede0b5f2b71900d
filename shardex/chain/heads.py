"""The chain's head, followed by subscription where the node offers it.

An agent with nothing to do only needs to know when a new block arrives: that
is when jobs, draws and no-shows can appear. A node that serves WebSockets on
its RPC address (Anvil does, on the same port; so do most nodes on their ws
endpoint) pushes each new head (``eth_subscribe("newHeads")``) and waiting for
one costs nothing. Where it does not, or while the connection is down, the
head is asked for with one ``eth_blockNumber`` per poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import websockets

log = logging.getLogger("shardex.chain.heads")


def ws_url_for(rpc_url: str) -> str | None:
    """The WebSocket address of an HTTP RPC address (same host, port and path)."""
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    return urlunsplit((scheme, *parts[1:])) if scheme else None


class HeadFollower:
    """``changed`` is set on every new head while subscribed; ``latest()`` is the
    head, from the subscription when it is live, else asked of the node."""

    def __init__(self, ws_url: str | None, poll: Callable[[], Awaitable[int]], *, retry_max_s: float = 60.0) -> None:
        self.ws_url = ws_url
        self.poll = poll
        self.retry_max_s = retry_max_s
        self.changed = asyncio.Event()
        self.head: int | None = None  # from the subscription; None while it is not live
        self._said: str | None = None

    @property
    def subscribed(self) -> bool:
        return self.head is not None

    async def latest(self) -> int:
        return self.head if self.head is not None else await self.poll()

    async def run(self) -> None:
        """Keep a subscription up until cancelled; between attempts, polling serves."""
        if self.ws_url is None:
            return
        pause = 1.0
        while True:
            try:
                await self._follow()
                pause = 1.0  # it was up: a dropped connection is retried soon
            except Exception as exc:  # noqa: BLE001 - any failure only means: poll until the next attempt
                self._note(f"no head subscription at {self.ws_url} ({type(exc).__name__}: {exc}); polling")
            finally:
                self.head = None
            await asyncio.sleep(pause)
            pause = min(self.retry_max_s, pause * 2)

    async def _follow(self) -> None:
        async with websockets.connect(self.ws_url, open_timeout=5, max_size=2**20, ping_interval=20) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if "error" in reply:
                raise ValueError(f"eth_subscribe refused: {reply['error']}")
            # The head as of now: a block mined before the subscription took is not missed.
            self.head = await self.poll()
            self.changed.set()
            self._note(f"following new heads at {self.ws_url}")
            async for message in ws:
                header = json.loads(message)["params"]["result"]
                self.head = int(header["number"], 16)  # as pushed: after a reorg it may go back
                self.changed.set()

    def _note(self, what: str) -> None:
        if what != self._said:  # once per change of mind, not once per retry
            self._said = what
            log.info(what)
