"""Placement properties on random machines, each checked against the
independent model in `model.py` rather than the pool's own arithmetic."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.python.unit.gpu import model
from worker.gpu import FakeBackend, GpuPool, GpuPoolError, GpuRequest

GB = 1024
card_sizes = st.lists(st.sampled_from([8 * GB, 16 * GB, 24 * GB, 40 * GB, 80 * GB]), min_size=1, max_size=5)
shares = st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.7, 1.0])
small = st.builds(lambda mb, share: GpuRequest(memory_mb=mb, compute_share=share), st.integers(1, 30 * GB), shares)


def machine(sizes: list[int], **kwargs) -> FakeBackend:
    return FakeBackend("fake:" + ",".join(f"1x{mb}MB" for mb in sizes), **kwargs)


def loaded(sizes: list[int], policy: str, before: list[GpuRequest]) -> tuple[GpuPool, list[str]]:
    fake = machine(sizes)
    pool = GpuPool(fake, policy)
    for i, request in enumerate(before):
        if request.memory_mb <= max(sizes):  # bigger ones would be split over cards
            pool.allocate(request, f"before-{i}")
    return pool, [d.uuid for d in fake.devices()]


@settings(max_examples=150)
@given(sizes=card_sizes, policy=st.sampled_from(["binpack", "spread"]), before=st.lists(small, max_size=8), new=small)
def test_singleCard_policyPicksFullestOrEmptiestFit(sizes, policy, before, new) -> None:
    pool, uuids = loaded(sizes, policy, before)
    used, units = model.leased(pool.leases(), uuids)
    total = dict(zip(uuids, sizes, strict=True))
    if new.memory_mb > max(sizes):
        return
    # The cards the request fits on now, and the memory each would have left.
    left = {
        u: total[u] - used[u] - new.memory_mb
        for u in uuids
        if total[u] - used[u] >= new.memory_mb and units[u] + round(new.compute_share * 10_000) <= 10_000
    }
    lease = pool.allocate(new, "new")
    if not left:
        assert lease is None
        return
    assert lease is not None and len(lease.slices) == 1, "a request one card can hold is never split"
    assert lease.slices[0].memory_mb == new.memory_mb
    want = min(left.values()) if policy == "binpack" else max(left.values())
    assert left[lease.uuids[0]] == want


@settings(max_examples=150)
@given(sizes=card_sizes, policy=st.sampled_from(["binpack", "spread"]), gpus=st.integers(1, 5), data=st.data())
def test_aggregation_usesFewestCardsAndSplitsEvenly(sizes, policy, gpus, data) -> None:
    memory_mb = data.draw(st.integers(gpus, sum(sizes) + GB), label="memory_mb")
    request = GpuRequest(gpus=gpus, memory_mb=memory_mb, compute_share=0.5)
    pool = GpuPool(machine(sizes), policy)
    need = model.cards_needed(request, sizes) if gpus <= len(sizes) else None
    try:
        lease = pool.allocate(request, "t")
    except GpuPoolError:
        assert need is None
        return
    assert need is not None and lease is not None  # an idle machine places whatever can ever fit
    assert len(lease.slices) == need == len(set(lease.uuids))
    amounts = [s.memory_mb for s in lease.slices]
    assert sum(amounts) == memory_mb and max(amounts) - min(amounts) <= 1
    if gpus == 1 and memory_mb <= max(sizes):
        assert len(lease.slices) == 1


levels = st.sampled_from([0, 10, 20, 30, 40, 50])


@settings(max_examples=150)
@given(n=st.integers(2, 5), k=st.integers(2, 4), data=st.data(), policy=st.sampled_from(["binpack", "spread"]))
def test_topology_choosesClosestSet(n, k, data, policy) -> None:
    k = min(k, n)
    matrix = [[0] * n for _ in range(n)]
    for a, b in combinations(range(n), 2):
        matrix[a][b] = matrix[b][a] = data.draw(levels, label=f"level {a}-{b}")
    fake = machine([80 * GB] * n, topology=matrix)
    lease = GpuPool(fake, policy).allocate(GpuRequest(gpus=k, memory_mb=k * GB), "t")
    index = {d.uuid: d.index for d in fake.devices()}
    chosen = [index[u] for u in lease.uuids]

    def worst(cards) -> int:
        return max(matrix[a][b] for a, b in combinations(cards, 2))

    assert worst(chosen) == min(worst(s) for s in combinations(range(n), k))
