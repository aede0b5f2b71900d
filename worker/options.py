"""What a worker operator sets: one object, passed in (the CLI builds it from flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from worker.sandbox import DEFAULT_UID_BASE


@dataclass
class WorkerOptions:
    data_dir: Path
    stake: int = 10**18
    max_tasks: int = 2
    draw_batch: int = 16  # tasks per draw transaction
    programs: frozenset[str] | None = None  # allow-list of built-ins; None = all
    allow_user_programs: bool = True
    memory_mb: int = 4096
    #: Cores each task's thread pools are sized to; None: this machine's cores / max_tasks.
    cpus_per_task: int | None = None
    #: Bytes a task may write, at most (a job asks for its own, up to this).
    disk_mb: int = 16384
    #: Isolate tasks with bubblewrap. Off (or unavailable): built-in programs only.
    sandbox: bool = True
    task_uid_base: int = DEFAULT_UID_BASE
    #: Trap windows: a lease or reveal window must span at least this many of the
    #: chain's blocks (and this many seconds) for a timely worker to land its transaction.
    min_window_blocks: int = 5
    min_window_s: float = 5.0
    #: Collateral a seat may risk, at most, per wei of its reward (more: it declines).
    max_collateral_ratio: float = 100.0
    #: ERC-20 tokens (lower-case addresses) this worker takes as pay. A token
    #: job's reward has no price on chain, so the operator vouches for it here;
    #: jobs in any other token are refused.
    accept_tokens: frozenset[str] = frozenset()
    #: Start and supervise an MPS control daemon so GPU compute shares are enforced.
    mps: bool = False
    mps_control: str = "nvidia-cuda-mps-control"
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    poll_interval: float = 0.25
    # Blocks a won round must be deep before this worker reveals (publishes) its digest.
    confirmations: int = 0
    #: With no seats held and no news on chain, a full tick at least this often
    #: (each poll in between is one eth_blockNumber).
    idle_tick_s: float = 5.0
    #: Holding seats or running tasks, with no new block and no task ended: a full tick at least this often.
    busy_tick_s: float = 1.0
    #: Learn of new blocks by subscription (eth_subscribe over the RPC address's
    #: WebSocket) where the node offers it; polling otherwise.
    follow_heads: bool = True
    grace_s: float = 30.0
    withdraw_every_s: float = 30.0
    #: "auto" (NVML if there is a GPU), "none", or a fake pool like "fake:2x80GB".
    gpus: str = "auto"
    gpu_policy: str = "binpack"
    #: Serve online embed requests beside offline tasks, with this p99 SLO (ms); None: offline only.
    online_slo_ms: float | None = None
    online_port: int = 0
