"""GPU resources of a worker: the driver seam (`backend`), a fake of it
(`fake`), where requests go (`placement`) and the lease ledger (`pool`).
See DESIGN.md, "Worker resources"."""

from worker.gpu.backend import (
    GpuBackend,
    GpuBackendError,
    GpuDevice,
    GpuProcess,
    NvmlBackend,
    detect_backend,
)
from worker.gpu.fake import FakeBackend, parse_gpu_spec
from worker.gpu.placement import GpuPoolError, GpuRequest, Policy
from worker.gpu.pool import CardUsage, GpuLease, GpuPool, GpuSlice, OverLimit

__all__ = [
    "CardUsage",
    "FakeBackend",
    "GpuBackend",
    "GpuBackendError",
    "GpuDevice",
    "GpuLease",
    "GpuPool",
    "GpuPoolError",
    "GpuProcess",
    "GpuRequest",
    "GpuSlice",
    "NvmlBackend",
    "OverLimit",
    "Policy",
    "detect_backend",
    "parse_gpu_spec",
]
