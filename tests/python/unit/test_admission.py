"""The worker's admission policy, without a chain: which jobs it takes and why not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from shardex import jobs
from worker.admission import Admission
from worker.gpu import FakeBackend, GpuPool
from worker.options import WorkerOptions
from worker.runtime import TaskRuntime
from worker.sandbox import Sandbox

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _spec(program="wordcount", program_cid=None, **resources) -> jobs.JobSpec:
    return jobs.JobSpec(program, program_cid, {}, [CID, CID], 1, 10, jobs.Resources(**resources))


def _admission(tmp_path: Path, gpus: str | None = None, sandboxed: bool = True, **opts) -> Admission:
    options = WorkerOptions(data_dir=tmp_path, **opts)
    pool = GpuPool(FakeBackend(gpus) if gpus else None)
    runtime = TaskRuntime(options, pool)
    if sandboxed:
        runtime.sandbox, runtime.sandbox_problem = Sandbox("/usr/bin/bwrap", privileged=False), None
    else:
        runtime.sandbox_problem = "bubblewrap (bwrap) is not installed"
    return Admission(options, pool, runtime)


TERMS = dict(lease_duration=600, reveal_window=120, reward_per_replica=10**15, collateral=10**16,
             pays_in_token=False, token="0x" + "00" * 20)
USDC = "0x" + "ab" * 20
ON_CHAIN = SimpleNamespace(map_tasks=2, reduce_tasks=1, min_stake=0, **TERMS)


def test_a_fitting_job_is_taken(tmp_path: Path) -> None:
    assert _admission(tmp_path).refuse(_spec(), ON_CHAIN) is None
    assert _admission(tmp_path).refuse(_spec(program=None, program_cid=CID), ON_CHAIN) is None


def test_user_programs_without_a_sandbox_are_refused_with_the_reason(tmp_path: Path) -> None:
    why = _admission(tmp_path, sandboxed=False).refuse(_spec(program=None, program_cid=CID), ON_CHAIN)
    assert why == "user programs need a sandbox, and this worker has none: bubblewrap (bwrap) is not installed"
    assert _admission(tmp_path, sandboxed=False).refuse(_spec(), ON_CHAIN) is None  # built-ins still run


def test_resources_beyond_the_offer_are_refused(tmp_path: Path) -> None:
    a = _admission(tmp_path, memory_mb=1024, disk_mb=100)
    assert a.refuse(_spec(memory_mb=2048), ON_CHAIN) == "needs 2048 MB; this worker offers 1024 MB"
    assert a.refuse(_spec(memory_mb=512, disk_mb=200), ON_CHAIN) == "writes up to 200 MB; this worker offers 100 MB"


def test_gpu_requests_the_pool_can_never_place_are_refused(tmp_path: Path) -> None:
    a = _admission(tmp_path, gpus="fake:1x16GB")
    assert a.refuse(_spec(gpus=1, gpu_memory_mb=8000, gpu_share=0.5), ON_CHAIN) is None
    assert a.refuse(_spec(gpus=2, gpu_memory_mb=8000), ON_CHAIN) == "needs 2 GPUs; this worker has 1"
    assert a.refuse(_spec(gpus=1, gpu_memory_mb=8000, gpu_share=1.5), ON_CHAIN).startswith(
        "its GPU request is invalid: compute_share 1.5 must be in (0, 1]")
    assert _admission(tmp_path).refuse(_spec(gpus=1, gpu_memory_mb=10), ON_CHAIN) == "needs 1 GPUs; this worker has 0"


def test_a_spec_that_disagrees_with_the_chain_is_refused(tmp_path: Path) -> None:
    wrong = SimpleNamespace(map_tasks=3, reduce_tasks=1, min_stake=0, **TERMS)
    assert _admission(tmp_path).refuse(_spec(), wrong) == "spec does not match the job on chain"
    rich = SimpleNamespace(map_tasks=2, reduce_tasks=1, min_stake=10**19, **TERMS)
    assert _admission(tmp_path).refuse(_spec(), rich) == "minimum stake above ours"


def _terms(**overrides) -> SimpleNamespace:
    return SimpleNamespace(map_tasks=2, reduce_tasks=1, min_stake=0, **(TERMS | overrides))


def test_trap_windows_are_refused_with_the_chains_block_time_in_mind(tmp_path: Path) -> None:
    """A requester who posts 1-second windows farms the collateral of every honest
    replica that needs a block to commit or reveal: workers do not walk into it."""
    a = _admission(tmp_path)
    assert a.refuse(_spec(), _terms(reveal_window=1)).startswith("its reveal window (1 s) is shorter than 5 s")
    assert a.refuse(_spec(), _terms(lease_duration=2)).startswith("its lease (2 s) is shorter than 5 s")
    assert a.refuse(_spec(), _terms(reveal_window=5)) is None  # an instant-mining devnet: 5 s is enough
    a.block_time_s = 12.0  # a chain with 12-second blocks: five of them
    assert a.refuse(_spec(), _terms(reveal_window=30)) == (
        "its reveal window (30 s) is shorter than 60 s (5 blocks of this chain at ~12 s): a timely worker could "
        "miss it and be slashed")
    assert a.refuse(_spec(), _terms(reveal_window=60)) is None


def test_collateral_out_of_proportion_to_the_reward_is_refused(tmp_path: Path) -> None:
    a = _admission(tmp_path)
    assert a.refuse(_spec(), _terms(collateral=100 * 10**15)) is None
    assert a.refuse(_spec(), _terms(collateral=100 * 10**15 + 1)).startswith("its collateral")
    assert _admission(tmp_path, max_collateral_ratio=1000).refuse(_spec(), _terms(collateral=10**18)) is None


def test_a_token_job_is_taken_only_in_a_token_the_operator_accepts(tmp_path: Path) -> None:
    """A reward in a token has no price on chain (collateral is ETH): the operator
    names the tokens it takes, and the collateral ratio in wei does not apply."""
    in_usdc = _terms(pays_in_token=True, token=USDC.upper().replace("0X", "0x"), reward_per_replica=1,
                     collateral=10**18)
    assert _admission(tmp_path).refuse(_spec(), in_usdc) == (
        f"it pays in token {in_usdc.token}, which this worker does not accept (its operator lists the tokens it "
        "takes: --accept-token)")
    assert _admission(tmp_path, accept_tokens=frozenset({USDC})).refuse(_spec(), in_usdc) is None
    other = _terms(pays_in_token=True, token="0x" + "cd" * 20)
    assert _admission(tmp_path, accept_tokens=frozenset({USDC})).refuse(_spec(), other).startswith("it pays in token")
