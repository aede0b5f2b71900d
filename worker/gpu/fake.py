"""A GPU backend made of numbers, for tests and for trying a worker's GPU paths
on a machine without one (`--gpus fake:2x80GB`).

Cards, uuids and names follow from the spec alone, so two fakes built from
the same spec describe the same machine. Processes, utilization and topology
are whatever the test sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from worker import proctree
from worker.gpu.backend import TOPOLOGY_INTERNAL, TOPOLOGY_MULTIPLE, TOPOLOGY_SINGLE, GpuDevice, GpuProcess

_PREFIX = "fake:"
_GROUP = re.compile(r"(\d+)x(\d+)(GB|GIB|MB|MIB)", re.IGNORECASE)


def parse_gpu_spec(spec: str) -> list[GpuDevice]:
    """`fake:<count>x<size><GB|MB>[,...]`, e.g. `fake:1x24GB,2x80GB`.

    GB here means GiB (1024 MB), as cards count: an "80GB" card reports 81920 MiB.
    Cards are numbered in the order written.
    """
    if not spec.startswith(_PREFIX):
        raise ValueError(f"GPU spec {spec!r} must start with {_PREFIX!r}, e.g. 'fake:2x80GB'")
    body = spec[len(_PREFIX) :]
    if not body.strip():
        raise ValueError(f"GPU spec {spec!r} lists no cards; write e.g. 'fake:2x80GB'")
    devices: list[GpuDevice] = []
    for part in body.split(","):
        m = _GROUP.fullmatch(part.strip())
        if m is None:
            raise ValueError(f"bad part {part!r} in GPU spec {spec!r}: expected <count>x<size>GB|MB, e.g. '2x80GB'")
        count, size, unit = int(m[1]), int(m[2]), m[3].upper()
        if count == 0 or size == 0:
            raise ValueError(f"bad part {part!r} in GPU spec {spec!r}: count and size must be positive")
        memory_mb = size * 1024 if unit in ("GB", "GIB") else size
        label = f"{size}GB" if unit in ("GB", "GIB") else f"{size}MB"
        for _ in range(count):
            i = len(devices)
            devices.append(
                GpuDevice(index=i, uuid=f"GPU-fake-{i:04d}", name=f"Fake GPU {label}", memory_total_mb=memory_mb)
            )
    return devices


class FakeBackend:
    """Implements `GpuBackend` from a spec; tests move the state by hand.

    Default topology: cards 0 and 1 share a PCIe switch (level 10), every other
    pair is across switches (level 20). Pass `topology` (an N x N matrix of
    levels) or call `set_topology` for anything else.
    """

    def __init__(
        self,
        spec: str = "fake:1x80GB",
        *,
        topology: Sequence[Sequence[int]] | None = None,
        mig: Iterable[int] = (),
        track_liveness: bool = False,
    ) -> None:
        # With track_liveness a process that exits leaves every card, as the
        # real driver frees a dead process's memory (used with real processes).
        self.track_liveness = track_liveness
        mig_cards = set(mig)
        self._devices = [
            GpuDevice(d.index, d.uuid, d.name, d.memory_total_mb, mig_enabled=d.index in mig_cards)
            for d in parse_gpu_spec(spec)
        ]
        self._index = {d.uuid: d.index for d in self._devices}
        n = len(self._devices)
        if topology is None:
            self._topology = [[_default_level(i, j) for j in range(n)] for i in range(n)]
        else:
            if len(topology) != n or any(len(row) != n for row in topology):
                raise ValueError(f"topology must be a {n}x{n} matrix for {spec!r}")
            self._topology = [list(row) for row in topology]
        self._procs: dict[str, dict[int, int]] = {d.uuid: {} for d in self._devices}
        self._util: dict[str, int] = {d.uuid: 0 for d in self._devices}

    # -- the GpuBackend protocol

    def devices(self) -> list[GpuDevice]:
        return list(self._devices)

    def memory_used_mb(self, uuid: str) -> int:
        return sum(self._live(uuid).values())

    def utilization(self, uuid: str) -> int:
        self._card(uuid)
        return self._util[uuid]

    def processes(self, uuid: str) -> list[GpuProcess]:
        return [GpuProcess(pid, mb) for pid, mb in sorted(self._live(uuid).items())]

    def topology(self, uuid_a: str, uuid_b: str) -> int:
        a, b = self._uuid_index(uuid_a), self._uuid_index(uuid_b)
        return TOPOLOGY_INTERNAL if a == b else self._topology[a][b]

    def process_parents(self) -> dict[int, int]:
        # Tests that track liveness set real pids; the others make pids up, and
        # a made-up pid must not be taken for a real process's child.
        return proctree.parents() if self.track_liveness else {}

    def _live(self, uuid: str) -> dict[int, int]:
        card = self._card(uuid)
        if self.track_liveness:
            from shardex.devnet import pid_alive

            for pid in [p for p in card if not pid_alive(p)]:
                del card[pid]
        return card

    # -- what tests simulate

    def uuid(self, index: int) -> str:
        return self._devices[index].uuid

    def set_process(self, uuid: str, pid: int, used_mb: int) -> None:
        """`pid` holds `used_mb` on the card (a context with 0 MB still counts as holding)."""
        self._card(uuid)[pid] = used_mb

    def remove_process(self, pid: int) -> None:
        """The process exited: it leaves every card."""
        for procs in self._procs.values():
            procs.pop(pid, None)

    def set_utilization(self, uuid: str, percent: int) -> None:
        self._card(uuid)
        if not 0 <= percent <= 100:
            raise ValueError(f"utilization {percent} is not a percentage")
        self._util[uuid] = percent

    def set_topology(self, index_a: int, index_b: int, level: int) -> None:
        self._topology[index_a][index_b] = self._topology[index_b][index_a] = level

    def _card(self, uuid: str) -> dict[int, int]:
        try:
            return self._procs[uuid]
        except KeyError:
            raise KeyError(f"no GPU {uuid!r} on this worker") from None

    def _uuid_index(self, uuid: str) -> int:
        try:
            return self._index[uuid]
        except KeyError:
            raise KeyError(f"no GPU {uuid!r} on this worker") from None


def _default_level(i: int, j: int) -> int:
    if i == j:
        return TOPOLOGY_INTERNAL
    return TOPOLOGY_SINGLE if {i, j} == {0, 1} else TOPOLOGY_MULTIPLE
