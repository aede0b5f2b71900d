"""An independent model of GPU placement, written without the pool's code, for the tests to compare against."""

from __future__ import annotations

from itertools import combinations

from worker.gpu import GpuLease, GpuRequest


def split_fits(memory_mb: int, rooms: list[int]) -> bool:
    """An even split (leftover MB one each to some cards) fits: every card takes the
    floor and enough of them take one more."""
    k = len(rooms)
    per, extra = memory_mb // k, memory_mb % k
    return min(rooms) >= per and sum(r >= per + 1 for r in rooms) >= extra


def cards_needed(request: GpuRequest, totals: list[int]) -> int | None:
    """The fewest cards (>= gpus) that an idle machine could hold the request on; None if none."""
    for k in range(max(request.gpus, 1), len(totals) + 1):
        if any(split_fits(request.memory_mb, list(s)) for s in combinations(totals, k)):
            return k
    return None


def leased(leases: list[GpuLease], uuids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(MB, compute in 1/10000) leased per card, summed from the leases themselves."""
    mb = dict.fromkeys(uuids, 0)
    units = dict.fromkeys(uuids, 0)
    for lease in leases:
        for s in lease.slices:
            mb[s.uuid] += s.memory_mb
            units[s.uuid] += round(s.compute_share * 10_000)
    return mb, units


def fits_now(request: GpuRequest, k: int, rooms: dict[str, int], compute: dict[str, int]) -> bool:
    """Some k cards can take the request at this moment."""
    need = round(request.compute_share * 10_000)
    usable = [u for u in rooms if compute[u] >= need]
    return any(split_fits(request.memory_mb, [rooms[u] for u in s]) for s in combinations(usable, k))
