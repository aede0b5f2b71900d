"""GpuPool by example: leases, env, draining, the watchdog, CPU-only workers."""

from __future__ import annotations

import pytest

from worker.gpu import FakeBackend, GpuPool, GpuPoolError, GpuRequest, OverLimit

GB = 1024


def req(memory_mb: int, gpus: int = 1, share: float = 0.25) -> GpuRequest:
    return GpuRequest(gpus=gpus, memory_mb=memory_mb, compute_share=share)


# -- CPU-only workers


def test_allocate_grantsEmptyLeaseIfCpuOnly() -> None:
    pool = GpuPool(None, "binpack")
    leases = [pool.allocate(GpuRequest(gpus=0, memory_mb=0), f"t{i}") for i in range(100)]
    assert all(lease is not None and lease.slices == () for lease in leases)
    assert len({lease.id for lease in leases if lease}) == 100
    assert leases[0] is not None and leases[0].env() == {"CUDA_VISIBLE_DEVICES": ""}
    assert pool.release(leases[0], [123]) is True
    assert pool.advertise() == {"gpu_count": 0, "memory_mb": [], "models": []}
    assert pool.over_limit() == [] and pool.reap() == []


def test_allocate_raisesIfNoGpus() -> None:
    pool = GpuPool(None, "spread")
    with pytest.raises(ValueError, match="^no GPUs on this worker$"):
        pool.allocate(req(1), "t")


def test_allocate_raisesIfItCanNeverFit() -> None:
    pool = GpuPool(FakeBackend("fake:1x24GB,1x80GB"), "binpack")
    with pytest.raises(GpuPoolError, match="3 GPUs; this worker has 2"):
        pool.allocate(req(3 * GB, gpus=3), "t")
    # 24 + 80 GB is 104 GB, but an even split of 100 GB puts 50 GB on the 24 GB card.
    with pytest.raises(ValueError, match="never fit"):
        pool.allocate(req(100 * GB), "t")
    assert pool.allocate(req(48 * GB + 1, gpus=2), "t") is not None  # 24 GB + the odd MB on the 80 GB card


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"gpus": -1, "memory_mb": 1}, ">= 0"),
        ({"gpus": 0, "memory_mb": 5}, "CPU-only"),
        ({"gpus": 2, "memory_mb": 1}, "at least 1 MB"),
        ({"memory_mb": 10, "compute_share": 0}, r"\(0, 1\]"),
        ({"memory_mb": 10, "compute_share": 1.5}, r"\(0, 1\]"),
        ({"memory_mb": 10, "compute_share": float("nan")}, r"\(0, 1\]"),
    ],
)
def test_request_raisesIfMalformed(kwargs: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        GpuRequest(**kwargs)


# -- placement


def test_allocate_binpackFillsOneCardSpreadBalances() -> None:
    for policy, expected in [("binpack", [0, 0, 0, 0]), ("spread", [0, 1, 2, 0])]:
        fake = FakeBackend("fake:3x80GB")
        pool = GpuPool(fake, policy)
        index = {d.uuid: d.index for d in fake.devices()}
        leases = [pool.allocate(req(10 * GB), "t") for _ in range(4)]
        assert [index[lease.uuids[0]] for lease in leases] == expected


def test_allocate_binpackPicksTightestCard() -> None:
    pool = GpuPool(FakeBackend("fake:1x80GB,1x24GB,1x40GB"), "binpack")
    assert pool.allocate(req(20 * GB), "t").uuids == ["GPU-fake-0001"]
    assert pool.allocate(req(30 * GB), "t").uuids == ["GPU-fake-0002"]
    assert pool.allocate(req(3 * GB), "t").uuids == ["GPU-fake-0001"]  # 4 GB left there, 10 GB on the 40 GB card
    spread = GpuPool(FakeBackend("fake:1x24GB,1x80GB,1x40GB"), "spread")
    assert spread.allocate(req(20 * GB), "t").uuids == ["GPU-fake-0001"]


def test_allocate_waitsRatherThanSplitIfOneCardCouldHoldIt() -> None:
    pool = GpuPool(FakeBackend("fake:2x80GB"), "spread")
    assert pool.allocate(req(50 * GB), "a") is not None
    assert pool.allocate(req(50 * GB), "b") is not None
    # 60 GB is free in total, but one card could hold 40 GB: it waits instead of splitting.
    assert pool.allocate(req(40 * GB), "c") is None


def test_allocate_splitsEvenlyWithLeftoverOnRoomiestCards() -> None:
    pool = GpuPool(FakeBackend("fake:3x80GB"), "binpack")
    assert pool.allocate(req(30 * GB), "a").uuids == ["GPU-fake-0000"]  # 50 GB left there
    assert pool.allocate(req(200 * GB + 2, gpus=3), "b") is None  # 66.7 GB on each of three cards: not now
    lease = pool.allocate(req(100 * GB + 1), "b")  # > 80 GB: two cards, 50 GB and 50 GB + 1 MB
    assert lease is not None
    # binpack: cards 0 and 1 leave 30 GB free, cards 1 and 2 would leave 60 GB.
    assert {s.uuid: s.memory_mb for s in lease.slices} == {"GPU-fake-0000": 50 * GB, "GPU-fake-0001": 50 * GB + 1}


def test_allocate_prefersClosestCards() -> None:
    levels = [[0, 40, 20, 20], [40, 0, 20, 20], [20, 20, 0, 10], [20, 20, 10, 0]]
    fake = FakeBackend("fake:4x80GB", topology=levels)
    pool = GpuPool(fake, "spread")
    first = pool.allocate(req(20 * GB, gpus=2), "a")
    assert sorted(first.uuids) == ["GPU-fake-0002", "GPU-fake-0003"]
    assert sorted(pool.allocate(req(120 * GB, gpus=2), "b").uuids) == ["GPU-fake-0002", "GPU-fake-0003"]
    assert sorted(pool.allocate(req(140 * GB, gpus=2), "c").uuids) == ["GPU-fake-0000", "GPU-fake-0001"]
    # Without card 3 (in MIG mode), the closest pairs are those with card 2 (level 20), not 0-1 (level 40).
    pool = GpuPool(FakeBackend("fake:4x80GB", topology=levels, mig=[3]), "spread")
    assert sorted(pool.allocate(req(20 * GB, gpus=2), "a").uuids) == ["GPU-fake-0000", "GPU-fake-0002"]


def test_allocate_neverOvercommitsCompute() -> None:
    pool = GpuPool(FakeBackend("fake:1x80GB"), "binpack")
    for share in (0.1, 0.2, 0.7):  # sums to 1.0 exactly, though not in floating point
        assert pool.allocate(req(GB, share=share), "t") is not None
    assert pool.allocate(req(GB, share=0.01), "t") is None
    assert pool.cards()[0].leased_share == 1.0


def test_allocate_skipsMigCards() -> None:
    pool = GpuPool(FakeBackend("fake:2x80GB,1x40GB", mig=[0]), "binpack")
    assert pool.advertise() == {
        "gpu_count": 2,
        "memory_mb": [81920, 40960],
        "models": ["Fake GPU 80GB", "Fake GPU 40GB"],
    }
    assert pool.allocate(req(80 * GB), "t").uuids == ["GPU-fake-0001"]


def test_env_describesLease() -> None:
    pool = GpuPool(FakeBackend("fake:1x24GB,1x80GB"), "binpack")
    lease = pool.allocate(req(20 * GB, gpus=2, share=0.5), "t")
    assert lease.env() == {
        "CUDA_VISIBLE_DEVICES": "GPU-fake-0000,GPU-fake-0001",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "50",
        "SHARDEX_GPU_MEMORY_FRACTION": "0.4166,0.1250",
    }
    whole = GpuPool(FakeBackend("fake:1x80GB"), "binpack").allocate(req(30 * GB, share=1.0), "u")
    assert whole.env() == {"CUDA_VISIBLE_DEVICES": "GPU-fake-0000", "SHARDEX_GPU_MEMORY_FRACTION": "0.3750"}
    assert pool.allocate(req(GB, share=0.29), "v").env()["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "29"


# -- release, draining, reaping


def test_release_keepsCapacityWhilePidHoldsMemory() -> None:
    fake = FakeBackend("fake:1x80GB")
    pool = GpuPool(fake, "binpack")
    big = req(60 * GB)
    lease = pool.allocate(big, "t")
    fake.set_process(fake.uuid(0), 4242, 61 * GB)
    assert pool.release(lease, [4242]) is False
    assert pool.state(lease) == "draining"
    for _ in range(3):
        assert pool.reap() == []
        assert pool.allocate(big, "u") is None
    fake.set_process(fake.uuid(0), 4242, 0)  # a context with no memory still holds the card
    assert pool.reap() == []
    fake.remove_process(4242)
    assert pool.reap() == [lease]
    assert pool.state(lease) is None and pool.cards()[0].leased_mb == 0
    assert pool.allocate(big, "u") is not None


def test_release_freesAtOnceIfProcessesGone() -> None:
    fake = FakeBackend("fake:1x80GB")
    pool = GpuPool(fake, "binpack")
    lease = pool.allocate(req(80 * GB), "t")
    fake.set_process(fake.uuid(0), 7, GB)  # someone else's process: not the lease's
    assert pool.release(lease, [4242]) is True
    assert pool.allocate(req(80 * GB), "u") is not None
    with pytest.raises(GpuPoolError, match=f"{lease.id} .*'t'"):
        pool.release(lease)


def test_release_waitsForAttachedPids() -> None:
    fake = FakeBackend("fake:2x80GB")
    pool = GpuPool(fake, "binpack")
    lease = pool.allocate(req(100 * GB), "t")
    pool.attach(lease, [11])
    fake.set_process(fake.uuid(1), 11, GB)
    assert pool.release(lease, [12]) is False  # 11 was attached earlier and still holds card 1
    fake.remove_process(11)
    assert pool.reap() == [lease]


def test_forceRelease_freesDrainingLease() -> None:
    fake = FakeBackend("fake:1x80GB")
    pool = GpuPool(fake, "binpack")
    lease = pool.allocate(req(80 * GB), "t")
    fake.set_process(fake.uuid(0), 99, GB)
    pool.release(lease, [99])
    assert pool.force_release(lease) is True
    assert pool.force_release(lease) is False
    assert pool.leases() == [] and pool.allocate(req(80 * GB), "u") is not None


# -- the watchdog


def test_overLimit_reportsProcessesBeyondTheirGrant() -> None:
    fake = FakeBackend("fake:2x80GB")
    pool = GpuPool(fake, "binpack")
    a = pool.allocate(req(10 * GB), "a")
    b = pool.allocate(req(10 * GB), "b")
    assert a.uuids == b.uuids == [fake.uuid(0)]
    pool.attach(a, [1, 2])
    pool.attach(b, [3])
    fake.set_process(fake.uuid(0), 1, 6 * GB)
    fake.set_process(fake.uuid(0), 3, 10 * GB)  # exactly its grant
    fake.set_process(fake.uuid(0), 50, 70 * GB)  # no lease's: not the pool's to judge
    assert pool.over_limit() == []
    fake.set_process(fake.uuid(0), 2, 5 * GB)  # a's two processes: 11 GB > 10 GB
    assert sorted(pool.over_limit(), key=lambda o: o.pid) == [OverLimit(a, 1, 6 * GB), OverLimit(a, 2, 5 * GB)]
    assert pool.over_limit(slack_mb=GB) == []
    fake.set_process(fake.uuid(1), 3, 1)  # b on a card it was not granted: its grant there is 0
    assert pool.over_limit(slack_mb=GB) == []
    assert set(pool.over_limit()) == {OverLimit(a, 1, 6 * GB), OverLimit(a, 2, 5 * GB), OverLimit(b, 3, 1)}
