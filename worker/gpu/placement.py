"""Where a GPU request goes: pure functions over what each card has left.

1. The number of cards is fixed by the machine, not by the moment: the fewest
   cards, at least `request.gpus`, that could hold the request on an idle
   machine. A request one card could hold is never split, even when it must
   wait for that card.
2. Memory splits evenly over those cards; the `memory_mb % k` leftover MB go
   one each to the cards with the most room (ties: lower index).
3. Among the k-card sets that fit now, the closest by topology wins (smallest
   worst pairwise level), then the policy: binpack leaves the least memory
   free on the chosen cards, spread the most; then the same for compute; then
   the lowest indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

from shardex.errors import ShardexError

Policy = Literal["binpack", "spread"]
POLICIES: tuple[Policy, ...] = ("binpack", "spread")

#: Compute shares are kept in integer units so that sums are exact (0.1 + 0.2 + 0.7 fits in 1.0).
SHARE_UNITS = 10_000


class GpuPoolError(ShardexError, ValueError):
    """A request this worker can never serve, or a lease the pool does not hold."""


@dataclass(frozen=True, kw_only=True)
class GpuRequest:
    """`gpus` is a minimum: more cards are used when `memory_mb` (the total over
    all cards) needs them. `compute_share` is per card. gpus=0 is a CPU-only task."""

    gpus: int = 1
    memory_mb: int
    compute_share: float = 1.0
    share_units: int = field(init=False, repr=False, compare=False)  # compute_share in SHARE_UNITS

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.memory_mb < 0:
            raise ValueError(f"gpus ({self.gpus}) and memory_mb ({self.memory_mb}) must be >= 0")
        if self.gpus == 0 and self.memory_mb:
            raise ValueError(f"a CPU-only request (gpus=0) cannot ask for {self.memory_mb} MB of GPU memory")
        if self.gpus and self.memory_mb < self.gpus:
            raise ValueError(f"memory_mb ({self.memory_mb}) must give at least 1 MB to each of {self.gpus} GPUs")
        if not 0 < self.compute_share <= 1 or round(self.compute_share * SHARE_UNITS) == 0:
            raise ValueError(f"compute_share {self.compute_share} must be in (0, 1], at least {1 / SHARE_UNITS}")
        object.__setattr__(self, "share_units", round(self.compute_share * SHARE_UNITS))


@dataclass(frozen=True)
class Room:
    """What one card can still give: MB of memory and compute in SHARE_UNITS."""

    memory_mb: int
    compute: int = SHARE_UNITS


def split_memory(memory_mb: int, rooms: Sequence[int]) -> list[int] | None:
    """The per-card amounts of an even split over cards with `rooms` MB free, or None if it does not fit."""
    per, extra = divmod(memory_mb, len(rooms))
    amounts = [per] * len(rooms)
    for i in sorted(range(len(rooms)), key=lambda i: (-rooms[i], i))[:extra]:
        amounts[i] += 1
    return None if any(a > r for a, r in zip(amounts, rooms, strict=True)) else amounts


def cards_needed(request: GpuRequest, totals: Sequence[int]) -> int:
    """How many cards the request takes on this machine (cards' total MB); raises if it can never fit."""
    if not totals:
        raise GpuPoolError("no GPUs on this worker")
    if request.gpus > len(totals):
        raise GpuPoolError(f"request for {request.gpus} GPUs; this worker has {len(totals)}")
    biggest = sorted(totals, reverse=True)
    for k in range(max(request.gpus, 1), len(totals) + 1):
        # The k biggest cards are the best k-set for an even split: if they cannot, none can.
        if split_memory(request.memory_mb, biggest[:k]) is not None:
            return k
    raise GpuPoolError(
        f"request for {request.memory_mb} MB of GPU memory can never fit: this worker's cards hold {totals} MB"
    )


def place(
    request: GpuRequest,
    k: int,
    rooms: Sequence[Room],
    levels: Sequence[Sequence[int]],
    policy: Policy,
) -> list[tuple[int, int]] | None:
    """[(card index, MB)] for the best k-card set that fits now, or None."""
    floor = request.memory_mb // k
    candidates = [i for i, r in enumerate(rooms) if r.compute >= request.share_units and r.memory_mb >= floor]
    sign = 1 if policy == "binpack" else -1
    best: tuple[tuple[int, int, int, tuple[int, ...]], list[int]] | None = None
    for cards in combinations(candidates, k):
        amounts = split_memory(request.memory_mb, [rooms[i].memory_mb for i in cards])
        if amounts is None:
            continue
        worst = max((levels[a][b] for a, b in combinations(cards, 2)), default=0)
        memory_left = sum(rooms[i].memory_mb for i in cards) - request.memory_mb
        compute_left = sum(rooms[i].compute for i in cards) - k * request.share_units
        key = (worst, sign * memory_left, sign * compute_left, cards)
        if best is None or key < best[0]:
            best = (key, amounts)
    if best is None:
        return None
    return list(zip(best[0][3], best[1], strict=True))
