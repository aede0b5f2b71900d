"""The seam: the fake's spec and simulation, NVML detection on this GPU-less
machine, and NvmlBackend's conversions against a stand-in driver."""

from __future__ import annotations

from types import SimpleNamespace

import pynvml
import pytest

from worker.gpu import FakeBackend, GpuDevice, GpuProcess, NvmlBackend, detect_backend, parse_gpu_spec
from worker.gpu.backend import GpuBackendError


def test_parse_gpu_spec_buildsCardsInOrderWritten() -> None:
    cards = parse_gpu_spec("fake:1x24GB, 2x80gb,1x512MB")
    assert [c.memory_total_mb for c in cards] == [24576, 81920, 81920, 512]
    assert [c.index for c in cards] == [0, 1, 2, 3]
    assert [c.uuid for c in cards] == ["GPU-fake-0000", "GPU-fake-0001", "GPU-fake-0002", "GPU-fake-0003"]
    assert cards[1].name == "Fake GPU 80GB" and cards[3].name == "Fake GPU 512MB"
    assert not any(c.mig_enabled for c in cards)
    assert parse_gpu_spec("fake:2x80GB") == parse_gpu_spec("fake:2x80GB")  # deterministic


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("2x80GB", "must start with 'fake:'"),
        ("nvml:2x80GB", "must start with 'fake:'"),
        ("fake:", "lists no cards"),
        ("fake:2x80TB", "'2x80TB'"),
        ("fake:1x24GB,,2x80GB", "bad part ''"),
        ("fake:1x24GB,two", "'two'"),
        ("fake:0x80GB", "'0x80GB'"),
        ("fake:2x0GB", "'2x0GB'"),
        ("fake:-1x80GB", "'-1x80GB'"),
    ],
)
def test_parse_gpu_spec_raisesNamingBadPart(spec: str, named: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_gpu_spec(spec)
    assert named in str(err.value) and repr(spec) in str(err.value)


def test_fake_processesAndUtilization_followSetters() -> None:
    fake = FakeBackend("fake:2x80GB")
    a, b = fake.uuid(0), fake.uuid(1)
    fake.set_process(a, 10, 1000)
    fake.set_process(a, 11, 0)
    fake.set_process(b, 10, 500)
    assert fake.processes(a) == [GpuProcess(10, 1000), GpuProcess(11, 0)]
    assert fake.memory_used_mb(a) == 1000 and fake.memory_used_mb(b) == 500
    fake.remove_process(10)
    assert fake.processes(a) == [GpuProcess(11, 0)] and fake.processes(b) == []
    fake.set_utilization(b, 73)
    assert (fake.utilization(a), fake.utilization(b)) == (0, 73)
    with pytest.raises(ValueError):
        fake.set_utilization(b, 101)
    with pytest.raises(KeyError, match="GPU-nope"):
        fake.processes("GPU-nope")


def test_fake_topology_defaultPairsCards0And1() -> None:
    fake = FakeBackend("fake:4x80GB")
    u = [fake.uuid(i) for i in range(4)]
    assert fake.topology(u[0], u[1]) == fake.topology(u[1], u[0]) == 10
    assert fake.topology(u[0], u[0]) == 0
    assert {fake.topology(u[i], u[j]) for i in range(4) for j in range(4) if i != j and {i, j} != {0, 1}} == {20}
    fake.set_topology(2, 3, 0)
    assert fake.topology(u[3], u[2]) == 0


def test_fake_topology_matrixMustBeSquare() -> None:
    matrix = [[0, 50, 10], [50, 0, 20], [10, 20, 0]]
    fake = FakeBackend("fake:3x24GB", topology=matrix)
    assert fake.topology(fake.uuid(0), fake.uuid(2)) == 10
    with pytest.raises(ValueError, match="3x3"):
        FakeBackend("fake:3x24GB", topology=[[0, 1], [1, 0]])


def test_fake_mig_marksCards() -> None:
    fake = FakeBackend("fake:2x80GB", mig=[1])
    assert [d.mig_enabled for d in fake.devices()] == [False, True]


def test_detect_backend_returnsNoneWithoutGpu() -> None:
    # This machine has the bindings but no driver: nvmlInit raises LibraryNotFound.
    with pytest.raises(pynvml.NVMLError):
        pynvml.nvmlInit()
    assert detect_backend() is None
    assert NvmlBackend.available() is False
    with pytest.raises(GpuBackendError, match="nvmlInit"):
        NvmlBackend()


class _Driver:
    """Stands in for libnvidia-ml: two cards, the second MIG-capable and in MIG mode."""

    def __init__(self) -> None:
        self.inits = 0

    def install(self, mp: pytest.MonkeyPatch) -> None:
        # monkeypatch refuses names pynvml lacks, so these are the real API's names.
        for name, fn in {
            "nvmlInit": self.init,
            "nvmlShutdown": self.shutdown,
            "nvmlDeviceGetCount": lambda: 2,
            "nvmlDeviceGetHandleByIndex": lambda i: ("handle", i),
            "nvmlDeviceGetUUID": lambda h: f"GPU-real-{h[1]}",
            "nvmlDeviceGetName": lambda h: [b"NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"][h[1]],
            "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(
                total=[81559 * 2**20, 40960 * 2**20][h[1]], used=(1234 * 2**20 + 5), free=0
            ),
            "nvmlDeviceGetMigMode": self.mig_mode,
            "nvmlDeviceGetMinorNumber": lambda h: [3, 5][h[1]],
            "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=42 + h[1], memory=7),
            "nvmlDeviceGetComputeRunningProcesses": lambda h: [
                SimpleNamespace(pid=4242, usedGpuMemory=3 * 2**30, gpuInstanceId=0, computeInstanceId=0),
                SimpleNamespace(pid=4343, usedGpuMemory=None, gpuInstanceId=0, computeInstanceId=0),
            ],
            "nvmlDeviceGetTopologyCommonAncestor": lambda a, b: pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
        }.items():
            mp.setattr(pynvml, name, fn)

    def init(self) -> None:
        self.inits += 1

    def shutdown(self) -> None:
        self.inits -= 1

    def mig_mode(self, handle: tuple[str, int]) -> list[int]:
        if handle[1] == 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]


def test_nvml_convertsDriverAnswersToDataclasses(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _Driver()
    driver.install(monkeypatch)
    backend = detect_backend()
    assert isinstance(backend, NvmlBackend) and driver.inits == 1
    assert backend.devices() == [
        GpuDevice(0, "GPU-real-0", "NVIDIA H100 80GB HBM3", 81559, mig_enabled=False, minor=3),
        GpuDevice(1, "GPU-real-1", "NVIDIA A100-SXM4-40GB", 40960, mig_enabled=True, minor=5),
    ]
    assert [d.device_node for d in backend.devices()] == ["/dev/nvidia3", "/dev/nvidia5"]
    assert backend.memory_used_mb("GPU-real-0") == 1234
    assert backend.utilization("GPU-real-1") == 43
    assert backend.processes("GPU-real-0") == [GpuProcess(4242, 3072), GpuProcess(4343, 0)]
    assert backend.topology("GPU-real-0", "GPU-real-1") == 30
    assert backend.topology("GPU-real-1", "GPU-real-1") == 0
    with pytest.raises(KeyError, match="GPU-other"):
        backend.processes("GPU-other")
    backend.close()
    backend.close()
    assert driver.inits == 0
    assert NvmlBackend.available() is True and driver.inits == 0


def test_nvml_wrapsDriverFailures(monkeypatch: pytest.MonkeyPatch) -> None:
    _Driver().install(monkeypatch)

    def lost(handle: object) -> object:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", lost)
    with NvmlBackend() as backend, pytest.raises(GpuBackendError, match="nvmlDeviceGetUtilizationRates") as err:
        backend.utilization("GPU-real-0")
    assert isinstance(err.value.__cause__, pynvml.NVMLError)
    assert err.value.__cause__.value == pynvml.NVML_ERROR_GPU_IS_LOST


def test_nvml_noCards_isCpuOnly(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _Driver()
    driver.install(monkeypatch)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 0)
    assert detect_backend() is None
    assert driver.inits == 0
