"""The worker's GPU pool: leases of cards, memory and compute share to tasks.

The pool keeps its own ledger of what it has leased and never over-commits
it: per card, leased memory <= the card's memory and leased compute <= 1.0.
Capacity comes back only once the driver shows the task's processes gone from
the cards (a killed process can hold its memory for a while); until then the
lease is "draining" and still counted. Memory used by processes outside any
lease (another user, a display) is not deducted: a worker is assumed to own
its cards. Cards in MIG mode are left out, since their memory is partitioned
into instances this pool does not manage.

Not thread-safe: the agent calls it from its one event loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from worker import proctree
from worker.gpu.backend import NVIDIA_CONTROL_NODES, GpuBackend, GpuDevice
from worker.gpu.placement import (
    POLICIES,
    SHARE_UNITS,
    GpuPoolError,
    GpuRequest,
    Policy,
    Room,
    cards_needed,
    place,
)


@dataclass(frozen=True)
class GpuSlice:
    """One card's part of a lease."""

    uuid: str
    memory_mb: int
    compute_share: float
    card_memory_mb: int  # the card's total, for the memory fraction a program may take


@dataclass(frozen=True)
class GpuLease:
    id: str
    owner: str
    request: GpuRequest
    slices: tuple[GpuSlice, ...] = ()

    @property
    def uuids(self) -> list[str]:
        return [s.uuid for s in self.slices]

    def env(self) -> dict[str, str]:
        """Environment for the task's process. A CPU-only lease hides every card.

        SHARDEX_GPU_MEMORY_FRACTION is one fraction per card, comma-joined in
        CUDA_VISIBLE_DEVICES order (device i gets the i-th), rounded down, for
        torch.cuda.set_per_process_memory_fraction(fraction, i).
        """
        env = {"CUDA_VISIBLE_DEVICES": ",".join(self.uuids)}
        if not self.slices:
            return env
        units = self.request.share_units
        if units < SHARE_UNITS:
            env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(max(1, units * 100 // SHARE_UNITS))
        env["SHARDEX_GPU_MEMORY_FRACTION"] = ",".join(
            f"{s.memory_mb * 10_000 // s.card_memory_mb / 10_000:.4f}" for s in self.slices
        )
        return env


class OverLimit(NamedTuple):
    lease: GpuLease
    pid: int
    used_mb: int  # what the pid holds on a card where its lease's processes exceed the grant


@dataclass(frozen=True)
class CardUsage:
    device: GpuDevice
    leased_mb: int
    leased_share: float

    @property
    def free_mb(self) -> int:
        return self.device.memory_total_mb - self.leased_mb


LeaseState = Literal["active", "draining"]


@dataclass
class _Held:
    lease: GpuLease
    pids: set[int] = field(default_factory=set)
    descendants: set[int] = field(default_factory=set)  # their processes seen on a card (a sandbox's CUDA process)
    state: LeaseState = "active"


class GpuPool:
    def __init__(self, backend: GpuBackend | None, policy: Policy = "binpack") -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {POLICIES}")
        self._backend = backend
        self._policy: Policy = policy
        self._cards = [d for d in backend.devices() if not d.mig_enabled] if backend else []
        self._position = {d.uuid: i for i, d in enumerate(self._cards)}
        self._levels = [[backend.topology(a.uuid, b.uuid) for b in self._cards] for a in self._cards] if backend else []
        self._leased_mb = [0] * len(self._cards)
        self._leased_units = [0] * len(self._cards)
        self._held: dict[str, _Held] = {}
        self._ids = itertools.count(1)

    # -- leasing

    def allocate(self, request: GpuRequest, owner: str) -> GpuLease | None:
        """A lease, or None when the request does not fit now. Raises GpuPoolError
        (a ValueError) when it can never fit on this worker."""
        if request.gpus == 0:
            return self._hold(GpuLease(self._new_id(), owner, request))
        k = cards_needed(request, [d.memory_total_mb for d in self._cards])
        rooms = [
            Room(d.memory_total_mb - self._leased_mb[i], SHARE_UNITS - self._leased_units[i])
            for i, d in enumerate(self._cards)
        ]
        placed = place(request, k, rooms, self._levels, self._policy)
        if placed is None:
            return None
        slices = []
        for i, mb in placed:
            self._leased_mb[i] += mb
            self._leased_units[i] += request.share_units
            card = self._cards[i]
            slices.append(GpuSlice(card.uuid, mb, request.compute_share, card.memory_total_mb))
        return self._hold(GpuLease(self._new_id(), owner, request, tuple(slices)))

    def never_fits(self, request: GpuRequest) -> str | None:
        """Why this request can never be placed on this worker's cards, or None."""
        if request.gpus == 0:
            return None
        try:
            cards_needed(request, [d.memory_total_mb for d in self._cards])
        except ValueError as exc:
            return str(exc)
        return None

    def attach(self, lease: GpuLease, pids: Iterable[int]) -> None:
        """Record the task's processes, for the watchdog and for draining."""
        self._get(lease).pids.update(pids)

    def release(self, lease: GpuLease, pids: Iterable[int] = ()) -> bool:
        """The task ended. Its capacity comes back once none of its processes (attached
        or `pids`) hold memory on its cards; True if that is already so."""
        held = self._get(lease)
        held.pids.update(pids)
        held.state = "draining"
        return self._reap_one(held, self._snapshot(lease.uuids))

    def reap(self) -> list[GpuLease]:
        """Free the draining leases whose processes are gone; call it periodically."""
        draining = [h for h in self._held.values() if h.state == "draining"]
        seen = self._snapshot({u for h in draining for u in h.lease.uuids})
        return [h.lease for h in draining if self._reap_one(h, seen)]

    def force_release(self, lease: GpuLease) -> bool:
        """Free at once (the task's process group was killed). False if it was already free."""
        if lease.id not in self._held:
            return False
        self._free(lease)
        return True

    # -- watching

    def over_limit(self, slack_mb: int = 0) -> list[OverLimit]:
        """Processes of leases that hold more memory on a card than the lease grants
        there (0 on cards outside the lease), by more than `slack_mb`. A lease's
        processes on one card count together; each of them is reported."""
        owner_of = {pid: h for h in self._held.values() for pid in h.pids}
        if not owner_of:
            return []  # nothing to watch: no driver queries (the watchdog calls this every tick)
        found: list[OverLimit] = []
        parent_of: dict[int, int] | None = None
        for card in self._cards:
            on_card: dict[str, list[tuple[int, int]]] = {}
            for proc in self._backend.processes(card.uuid) if self._backend else []:
                root = proc.pid if proc.pid in owner_of else None
                if root is None:
                    # A sandboxed task's CUDA process is a descendant of the pid
                    # attached (bwrap): attribute it, and remember it, so the lease
                    # stays draining while it holds the card even after bwrap is gone.
                    parent_of = self._backend.process_parents() if parent_of is None else parent_of
                    root = proctree.ancestor_in(proc.pid, owner_of, parent_of)
                    if root is not None:
                        owner_of[root].descendants.add(proc.pid)
                if root is not None:
                    on_card.setdefault(owner_of[root].lease.id, []).append((root, proc.used_memory_mb))
            for lease_id, procs in on_card.items():
                lease = self._held[lease_id].lease
                granted = sum(s.memory_mb for s in lease.slices if s.uuid == card.uuid)
                if sum(mb for _, mb in procs) > granted + slack_mb:
                    found.extend(OverLimit(lease, pid, mb) for pid, mb in procs)
        return found

    def device_nodes(self, lease: GpuLease) -> list[str]:
        """The device nodes a sandboxed task of this lease may open: its cards' and
        the driver's control nodes, no other card's."""
        if not lease.slices:
            return []
        return [*NVIDIA_CONTROL_NODES, *(self._cards[self._position[u]].device_node for u in lease.uuids)]

    def state(self, lease: GpuLease) -> LeaseState | None:
        """ "active", "draining", or None once freed."""
        held = self._held.get(lease.id)
        return held.state if held else None

    def leases(self) -> list[GpuLease]:
        """Every lease not yet freed, draining ones included."""
        return [h.lease for h in self._held.values()]

    def cards(self) -> list[CardUsage]:
        return [
            CardUsage(d, self._leased_mb[i], self._leased_units[i] / SHARE_UNITS) for i, d in enumerate(self._cards)
        ]

    def advertise(self) -> dict[str, object]:
        """What the worker publishes about its GPUs (no uuids)."""
        return {
            "gpu_count": len(self._cards),
            "memory_mb": [d.memory_total_mb for d in self._cards],
            "models": [d.name for d in self._cards],
        }

    # -- internals

    def _new_id(self) -> str:
        return f"gpu-lease-{next(self._ids)}"

    def _hold(self, lease: GpuLease) -> GpuLease:
        self._held[lease.id] = _Held(lease)
        return lease

    def _get(self, lease: GpuLease) -> _Held:
        try:
            return self._held[lease.id]
        except KeyError:
            raise GpuPoolError(f"lease {lease.id} (owner {lease.owner!r}) is not held by this pool") from None

    def _snapshot(self, uuids: Iterable[str]) -> dict[str, set[int]]:
        """The pids holding a context on each card."""
        if self._backend is None:
            return {}
        return {u: {p.pid for p in self._backend.processes(u)} for u in uuids}

    def _reap_one(self, held: _Held, seen: dict[str, set[int]]) -> bool:
        if any((held.pids | held.descendants) & seen.get(u, set()) for u in held.lease.uuids):
            return False
        self._free(held.lease)
        return True

    def _free(self, lease: GpuLease) -> None:
        del self._held[lease.id]
        for s in lease.slices:
            i = self._position[s.uuid]
            self._leased_mb[i] -= s.memory_mb
            self._leased_units[i] -= lease.request.share_units
