"""Which other workers have a free slot right now, in their own words.

The lottery hands seats out by stake, not by how busy a worker is: one worker
can be drawn for more seats than it runs at once while another sits idle, and
the job then waits on the busy one (with one slot per worker and eight seats
between two workers, a 6/2 split is as likely as not). A worker with such a
surplus gives a waiting seat back (decline, in the first quarter of its lease)
only when some peer says it has a slot free, so the redraw has somewhere
better to go. A peer is asked at its announced endpoint (``GET
/shardex/worker``, which every agent serves); one that does not answer in
time, or answers something else (a requester's store), counts as busy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx


@dataclass
class PeerSlots:
    address: str
    free: int  # slots neither running a task nor promised to a seat it holds
    refused: frozenset[int] = field(default_factory=frozenset)  # jobs it will not run


def free_slots(described: dict) -> int:
    """Free slots from a worker's ``/shardex/worker`` document (0 when it does not say)."""
    slots = described.get("slots")
    if not isinstance(slots, dict):
        return 0
    try:
        return max(0, int(slots["max"]) - int(slots["running"]) - int(slots["waiting"]))
    except (KeyError, TypeError, ValueError):
        return 0


class PeerLoad:
    def __init__(self, *, ttl_s: float = 2.0, timeout_s: float = 1.0) -> None:
        self.ttl_s = ttl_s  # answers this fresh are reused: asked at most once per ttl
        self.timeout_s = timeout_s
        self._asked_at: float | None = None
        self._free: list[PeerSlots] = []
        self._client: httpx.AsyncClient | None = None

    async def free_peers(self, endpoints: dict[str, str], me: str, now: float) -> list[PeerSlots]:
        """Peers with a free slot, most free first (``now``: a monotonic clock)."""
        if self._asked_at is not None and now - self._asked_at < self.ttl_s:
            return self._free
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        others = {a: u for a, u in endpoints.items() if a.lower() != me.lower() and u}
        answers = await asyncio.gather(*(self._ask(a, u) for a, u in others.items()))
        self._free = sorted((p for p in answers if p is not None and p.free > 0), key=lambda p: -p.free)
        self._asked_at = now
        return self._free

    async def _ask(self, address: str, url: str) -> PeerSlots | None:
        try:
            r = await self._client.get(f"{url.rstrip('/')}/shardex/worker")
            described = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(described, dict) or str(described.get("address", "")).lower() != address.lower():
            return None  # not a worker, or not the one that announced this endpoint
        refused = described.get("refused") if isinstance(described.get("refused"), dict) else {}
        return PeerSlots(address, free_slots(described),
                         frozenset(int(j) for j in refused if str(j).isdigit()))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
