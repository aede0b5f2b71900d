"""Random allocate / start / exit / release / reap / force-release sequences on
random fake machines. The machine keeps its own record of the leases and
checks the pool against it after every step: nothing is over-committed,
nothing is freed while its processes hold memory, freed capacity is reusable,
and the watchdog flags exactly the processes beyond their grant."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.python.unit.gpu import model
from worker.gpu import FakeBackend, GpuLease, GpuPool, GpuPoolError, GpuRequest

GB = 1024
memories = st.one_of(
    st.integers(1, 200 * GB), st.sampled_from([8 * GB, 24 * GB, 40 * GB, 80 * GB, 80 * GB + 1, 160 * GB])
)


class PoolMachine(RuleBasedStateMachine):
    @initialize(
        sizes=st.lists(st.sampled_from([8, 24, 40, 80]), min_size=1, max_size=4),
        policy=st.sampled_from(["binpack", "spread"]),
    )
    def machine(self, sizes: list[int], policy: str) -> None:
        self.fake = FakeBackend("fake:" + ",".join(f"1x{gb}GB" for gb in sizes))
        self.pool = GpuPool(self.fake, policy)
        self.uuids = [d.uuid for d in self.fake.devices()]
        self.total = {d.uuid: d.memory_total_mb for d in self.fake.devices()}
        self.live: dict[str, GpuLease] = {}  # not yet freed, draining ones included
        self.draining: set[str] = set()
        self.pids: dict[str, set[int]] = {}
        self.next_pid = 1000

    # -- helpers

    def holding(self, lease: GpuLease) -> bool:
        """Some process of the lease still shows on one of its cards (by the fake's own record)."""
        return any(p.pid in self.pids[lease.id] for u in lease.uuids for p in self.fake.processes(u))

    def free(self, lease: GpuLease) -> None:
        del self.live[lease.id]
        self.draining.discard(lease.id)

    def add(self, lease: GpuLease) -> None:
        assert lease.id not in self.live
        self.live[lease.id] = lease
        self.pids[lease.id] = set()

    def assert_reusable(self, lease: GpuLease) -> None:
        """Right after a lease is freed, its own request fits again."""
        again = self.pool.allocate(lease.request, "again")
        assert again is not None, f"{lease.request} does not fit after {lease.id} was freed"
        self.add(again)

    # -- rules

    @rule(gpus=st.integers(0, 3), memory=memories, share=st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 1.0]))
    def allocate(self, gpus: int, memory: int, share: float) -> None:
        request = GpuRequest(gpus=gpus, memory_mb=max(memory, gpus) if gpus else 0, compute_share=share)
        need = model.cards_needed(request, list(self.total.values())) if gpus <= len(self.uuids) else None
        try:
            lease = self.pool.allocate(request, "t")
        except GpuPoolError:
            assert gpus and need is None
            return
        if gpus == 0:
            assert lease is not None and lease.slices == ()
            return self.add(lease)
        assert need is not None
        used, units = model.leased(list(self.live.values()), self.uuids)
        room = {u: self.total[u] - used[u] for u in self.uuids}
        compute = {u: 10_000 - units[u] for u in self.uuids}
        if lease is None:
            assert not model.fits_now(request, need, room, compute)
            return
        assert len(lease.slices) == need == len(set(lease.uuids))
        assert sum(s.memory_mb for s in lease.slices) == request.memory_mb
        self.add(lease)

    @precondition(lambda self: any(lease.slices for lease in self.live.values()))
    @rule(data=st.data(), used=st.integers(0, 100 * GB))
    def start_process(self, data: st.DataObject, used: int) -> None:
        lease = data.draw(st.sampled_from([lease for lease in self.live.values() if lease.slices]))
        card = data.draw(st.sampled_from(self.uuids))  # usually its own card; sometimes one it was not granted
        pid, self.next_pid = self.next_pid, self.next_pid + 1
        self.fake.set_process(card, pid, used)
        self.pool.attach(lease, [pid])
        self.pids[lease.id].add(pid)

    @precondition(lambda self: any(self.pids.values()))
    @rule(data=st.data())
    def process_exits(self, data: st.DataObject) -> None:
        self.fake.remove_process(data.draw(st.sampled_from(sorted(set().union(*self.pids.values())))))

    @precondition(lambda self: len(self.live) > len(self.draining))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        lease = self.live[data.draw(st.sampled_from(sorted(set(self.live) - self.draining)))]
        holding = self.holding(lease)
        freed = self.pool.release(lease)
        assert freed is not holding
        if freed:
            self.free(lease)
            self.assert_reusable(lease)
        else:
            self.draining.add(lease.id)
            assert self.pool.state(lease) == "draining"

    @rule()
    def reap(self) -> None:
        expected = {i for i in self.draining if not self.holding(self.live[i])}
        freed = self.pool.reap()
        assert {lease.id for lease in freed} == expected
        for lease in freed:
            self.free(lease)
        if freed:
            self.assert_reusable(freed[0])

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def force_release(self, data: st.DataObject) -> None:
        lease = self.live[data.draw(st.sampled_from(sorted(self.live)))]
        for pid in self.pids[lease.id]:  # the process group was killed
            self.fake.remove_process(pid)
        assert self.pool.force_release(lease) is True
        assert self.pool.force_release(lease) is False
        self.free(lease)
        self.assert_reusable(lease)

    # -- invariants

    @invariant()
    def never_overcommitted(self) -> None:
        if not hasattr(self, "pool"):
            return
        used, units = model.leased(list(self.live.values()), self.uuids)
        for u in self.uuids:
            assert used[u] <= self.total[u] and units[u] <= 10_000
        # The pool's ledger agrees with the leases it handed out, and it holds exactly those.
        assert {c.device.uuid: c.leased_mb for c in self.pool.cards()} == used
        assert {lease.id for lease in self.pool.leases()} == set(self.live)
        for i, lease in self.live.items():
            assert self.pool.state(lease) == ("draining" if i in self.draining else "active")

    @invariant()
    def watchdog_flags_exactly_overlimit(self) -> None:
        if not hasattr(self, "pool"):
            return
        expected = set()
        for lease in self.live.values():
            for u in self.uuids:
                mine = [p for p in self.fake.processes(u) if p.pid in self.pids[lease.id]]
                granted = sum(s.memory_mb for s in lease.slices if s.uuid == u)
                if sum(p.used_memory_mb for p in mine) > granted:
                    expected |= {(lease.id, p.pid, p.used_memory_mb) for p in mine}
        assert {(o.lease.id, o.pid, o.used_mb) for o in self.pool.over_limit()} == expected


PoolMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_pool_stateful = PoolMachine.TestCase
