"""The seam between the GPU pool and the driver: what a worker can learn about
its cards, as plain dataclasses.

`NvmlBackend` is the real one (NVML through `pynvml`, from the `nvidia-ml-py`
package); `worker.gpu.fake.FakeBackend` stands in for it in tests. No GPU is
not an error: `detect_backend()` then answers None and the pool is CPU-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from worker import proctree
from typing import Protocol, Self

import pynvml

from shardex.errors import ShardexError

_MIB = 1024 * 1024

# nvmlDeviceGetTopologyCommonAncestor levels: lower is closer.
TOPOLOGY_INTERNAL = 0  # same board (multi-GPU card)
TOPOLOGY_SINGLE = 10  # one PCIe switch
TOPOLOGY_MULTIPLE = 20  # several PCIe switches, no host bridge crossed
TOPOLOGY_HOSTBRIDGE = 30  # same host bridge
TOPOLOGY_NODE = 40  # same NUMA node
TOPOLOGY_SYSTEM = 50  # across NUMA nodes (SMP interconnect)


class GpuBackendError(ShardexError):
    """The driver failed to answer a query about a card (it fell off the bus, the driver was unloaded...)."""

    def __init__(self, call: str, reason: str) -> None:
        super().__init__(f"{call} failed: {reason}")
        self.call = call
        self.reason = reason


#: Device nodes every CUDA process needs beside its cards' /dev/nvidia<minor>.
NVIDIA_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")


@dataclass(frozen=True)
class GpuDevice:
    index: int
    uuid: str
    name: str  # the model, e.g. "NVIDIA H100 80GB HBM3"
    memory_total_mb: int  # MiB, as NVML counts them
    mig_enabled: bool = False
    minor: int | None = None  # /dev/nvidia<minor>, the node a sandboxed task needs; None: use index

    @property
    def device_node(self) -> str:
        return f"/dev/nvidia{self.index if self.minor is None else self.minor}"


@dataclass(frozen=True)
class GpuProcess:
    pid: int  # in the driver's (host) pid namespace
    used_memory_mb: int  # 0 when the driver cannot tell


class GpuBackend(Protocol):
    """What the pool needs from the driver. Every answer is a fresh reading;
    `devices()` is the same list for the backend's lifetime (hot-plug is not
    followed). A query about an unknown uuid raises KeyError; a driver failure
    raises GpuBackendError."""

    def devices(self) -> list[GpuDevice]: ...

    def memory_used_mb(self, uuid: str) -> int: ...

    def utilization(self, uuid: str) -> int:
        """Percent of the last sample period in which a kernel ran."""
        ...

    def processes(self, uuid: str) -> list[GpuProcess]:
        """Compute processes that hold a context on the card, with their memory."""
        ...

    def topology(self, uuid_a: str, uuid_b: str) -> int:
        """A TOPOLOGY_* level: lower is closer; a card with itself is 0."""
        ...

    def process_parents(self) -> dict[int, int]:
        """pid -> parent pid in the pid namespace `processes()` reports, to tell
        which task a process belongs to (a sandboxed task's CUDA process is a
        descendant of the process the worker started)."""
        ...


@contextmanager
def _nvml(call: str) -> Iterator[None]:
    try:
        yield
    except pynvml.NVMLError as e:
        raise GpuBackendError(call, str(e)) from e


def _text(value: str | bytes) -> str:
    # pynvml decodes strings on Python 3, but older releases returned bytes.
    return value.decode() if isinstance(value, bytes) else value


class NvmlBackend:
    """Cards seen through NVML. Holds an NVML session (nvmlInit) until close()."""

    def __init__(self) -> None:
        with _nvml("nvmlInit"):
            pynvml.nvmlInit()
        self._open = True
        self._handles: dict[str, object] = {}
        try:
            self._devices = [self._read_device(i) for i in range(self._count())]
        except BaseException:
            self.close()
            raise

    @classmethod
    def available(cls) -> bool:
        """Whether NVML loads and sees at least one card; never raises."""
        backend = detect_backend()
        if backend is None:
            return False
        backend.close()
        return True

    def close(self) -> None:
        if self._open:
            self._open = False
            with _nvml("nvmlShutdown"):
                pynvml.nvmlShutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self) -> int:
        with _nvml("nvmlDeviceGetCount"):
            return int(pynvml.nvmlDeviceGetCount())

    def _read_device(self, index: int) -> GpuDevice:
        with _nvml("nvmlDeviceGetHandleByIndex"):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            name = _text(pynvml.nvmlDeviceGetName(handle))
            total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
            mig = current == pynvml.NVML_DEVICE_MIG_ENABLE
        except pynvml.NVMLError:  # NotSupported: the card has no MIG at all
            mig = False
        try:
            minor: int | None = int(pynvml.nvmlDeviceGetMinorNumber(handle))
        except pynvml.NVMLError:  # not on every platform: /dev/nvidia<index> is the usual node
            minor = None
        self._handles[uuid] = handle
        return GpuDevice(index=index, uuid=uuid, name=name, memory_total_mb=total, mig_enabled=mig, minor=minor)

    def _handle(self, uuid: str) -> object:
        try:
            return self._handles[uuid]
        except KeyError:
            raise KeyError(f"no GPU {uuid!r} on this worker") from None

    def devices(self) -> list[GpuDevice]:
        return list(self._devices)

    def memory_used_mb(self, uuid: str) -> int:
        with _nvml("nvmlDeviceGetMemoryInfo"):
            return int(pynvml.nvmlDeviceGetMemoryInfo(self._handle(uuid)).used) // _MIB

    def utilization(self, uuid: str) -> int:
        with _nvml("nvmlDeviceGetUtilizationRates"):
            return int(pynvml.nvmlDeviceGetUtilizationRates(self._handle(uuid)).gpu)

    def processes(self, uuid: str) -> list[GpuProcess]:
        with _nvml("nvmlDeviceGetComputeRunningProcesses"):
            found = pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle(uuid))
        # usedGpuMemory is None where the driver cannot account per process (WDDM).
        return [GpuProcess(pid=int(p.pid), used_memory_mb=int(p.usedGpuMemory or 0) // _MIB) for p in found]

    def process_parents(self) -> dict[int, int]:
        return proctree.parents()  # the driver reports host pids: this worker's /proc

    def topology(self, uuid_a: str, uuid_b: str) -> int:
        a, b = self._handle(uuid_a), self._handle(uuid_b)
        if uuid_a == uuid_b:
            return TOPOLOGY_INTERNAL
        try:
            return int(pynvml.nvmlDeviceGetTopologyCommonAncestor(a, b))
        except pynvml.NVMLError:  # NotSupported on some platforms: assume the farthest
            return TOPOLOGY_SYSTEM


def detect_backend() -> NvmlBackend | None:
    """NVML when it loads and sees a card; None (a CPU-only worker) otherwise."""
    try:
        backend = NvmlBackend()
    except GpuBackendError:
        return None
    if not backend.devices():
        backend.close()
        return None
    return backend
