// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IWorkerRegistry} from "./IWorkerRegistry.sol";

/// @title IJobMarket
/// @notice Escrowed map/reduce jobs settled by replicated, commit-reveal
/// quorum. A requester posts a job with its full escrow; staked workers claim
/// task replicas (leases), commit `keccak256(abi.encode(digest, salt, worker,
/// jobId, taskId))`, reveal once every replica has committed, and the first
/// digest to reach `quorum` matching reveals settles the task. Map tasks are
/// `0..mapTasks-1`; reduce tasks `mapTasks..mapTasks+reduceTasks-1` open when
/// every map task has settled.
///
/// Every outcome is a pull payment: a worker (or anyone, for a no-show)
/// resolves a finished replica to `Paid`, `Slashed` or `Released`; ETH leaves
/// only through `withdraw`. A job pays at most `replication` rewards per task,
/// so its escrow is exactly `rewardPerReplica * replication * tasks`; what was
/// not earned returns to the requester through `refund`.
///
/// Every state has a deadline: a claim must commit within its lease, a
/// replica must reveal within the task's reveal window, the job must finish
/// before its own deadline. Anyone may push an expired state forward.
interface IJobMarket {
    /// @notice Job lifecycle. `Map` and `Reduce` are the active phases.
    enum JobState {
        None,
        Map,
        Reduce,
        Completed,
        Failed,
        Expired,
        Cancelled
    }

    /// @notice Life of one worker's replica of one task.
    enum ReplicaState {
        None,
        Claimed,
        Committed,
        Revealed,
        Slashed
    }

    /// @notice How a replica ended.
    enum Outcome {
        Paid,
        Slashed,
        Released
    }

    /// @notice What a requester chooses when posting a job.
    /// @param specDigest sha2-256 digest of the job spec stored in IPFS.
    /// @param mapTasks Number of map shards (>= 1).
    /// @param reduceTasks Number of reduce partitions (may be 0).
    /// @param replication Distinct workers per task (1..MAX_REPLICATION).
    /// @param quorum Matching reveals that settle a task (1..replication).
    /// @param maxRounds Rounds a task may take to reach quorum before the job fails.
    /// @param rewardPerReplica Wei paid to each agreeing replica.
    /// @param collateral Wei of stake locked per claim and lost on a slash.
    /// @param minStake Minimum total stake a worker needs to claim.
    /// @param leaseDuration Seconds from claim to commit deadline.
    /// @param revealWindow Seconds to reveal once every replica has committed.
    /// @param jobTimeout Seconds from posting after which the job can be expired.
    struct JobParams {
        bytes32 specDigest;
        uint32 mapTasks;
        uint32 reduceTasks;
        uint8 replication;
        uint8 quorum;
        uint8 maxRounds;
        uint96 rewardPerReplica;
        uint96 collateral;
        uint96 minStake;
        uint32 leaseDuration;
        uint32 revealWindow;
        uint32 jobTimeout;
    }

    /// @notice A job as stored (six slots, hot fields first).
    /// @param deadline Time after which an active job can be expired; once the
    /// job has failed, the time it failed. Replica duties are judged up to it.
    /// @param hasClaims Whether any task was ever claimed (cancel is then closed).
    /// @param settledTasks Tasks settled so far, map and reduce together.
    /// @param horizon Latest reveal deadline of any task: refunds wait for it,
    /// because a late agreeing reveal still earns its reward.
    /// @param paid Rewards already credited to workers.
    /// @param owed Rewards earned by agreeing reveals but not yet collected.
    /// @param refunded Escrow credited back to the requester.
    struct Job {
        address requester;
        JobState state;
        uint8 replication;
        uint8 quorum;
        uint8 maxRounds;
        uint32 leaseDuration;
        uint32 revealWindow;
        uint96 rewardPerReplica;
        uint96 collateral;
        uint40 deadline;
        bool hasClaims;
        uint96 minStake;
        uint32 mapTasks;
        uint32 reduceTasks;
        uint32 settledTasks;
        uint40 horizon;
        uint128 paid;
        uint128 owed;
        uint128 escrow;
        uint128 refunded;
        bytes32 specDigest;
    }

    /// @notice One task's current round, in one slot.
    /// @param winner First 24 bytes of the accepted digest; zero until settled.
    /// @param revealDeadline Zero until every replica of the round has committed.
    /// @param round Current round (0-based); a round without quorum reopens the task.
    /// @param claimed Replica slots held in this round.
    /// @param committed Replicas that committed in this round.
    /// @param revealed Replicas that revealed in this round.
    struct Task {
        bytes24 winner;
        uint32 revealDeadline;
        uint8 round;
        uint8 claimed;
        uint8 committed;
        uint8 revealed;
    }

    /// @notice One worker's replica of one task, in one slot reused through its
    /// life: the lease deadline while claimed, then the first 24 bytes of the
    /// commitment, then of the revealed digest. 192 bits keep both binding
    /// (collisions need ~2^96 work) while saving a fresh 20k-gas slot per replica.
    struct Replica {
        bytes24 hash;
        uint40 deadline;
        ReplicaState state;
        uint8 round;
    }

    // ----- errors: parameters -----
    error JobMarketInvalidTaskCounts(uint256 mapTasks, uint256 reduceTasks);
    error JobMarketInvalidQuorum(uint256 replication, uint256 quorum);
    error JobMarketInvalidMaxRounds(uint256 maxRounds);
    error JobMarketInvalidWindows(uint256 leaseDuration, uint256 revealWindow, uint256 jobTimeout);
    error JobMarketEscrowMismatch(uint256 required, uint256 provided);
    error JobMarketLengthMismatch(uint256 expected, uint256 actual);
    error JobMarketEmptyBatch();
    /// @notice A commitment or digest whose first 24 bytes (the stored part) are zero.
    error JobMarketZeroHash(uint256 jobId, uint256 taskId);
    // ----- errors: state -----
    error JobMarketUnknownJob(uint256 jobId);
    error JobMarketNotRequester(uint256 jobId, address caller);
    error JobMarketJobHasClaims(uint256 jobId);
    error JobMarketJobNotActive(uint256 jobId, JobState state);
    error JobMarketJobNotExpired(uint256 jobId, uint256 deadline);
    error JobMarketJobNotFinished(uint256 jobId, JobState state);
    error JobMarketRefundNotReady(uint256 jobId, uint256 readyAt);
    error JobMarketNothingToRefund(uint256 jobId);
    error JobMarketTaskOutOfRange(uint256 jobId, uint256 taskId, uint256 taskCount);
    error JobMarketTaskNotInPhase(uint256 jobId, uint256 taskId, JobState state);
    error JobMarketTaskSettled(uint256 jobId, uint256 taskId);
    error JobMarketTaskFull(uint256 jobId, uint256 taskId, uint256 replication);
    error JobMarketAlreadyClaimed(uint256 jobId, uint256 taskId, address worker);
    error JobMarketWrongReplicaState(uint256 jobId, uint256 taskId, address worker, ReplicaState state);
    error JobMarketLeaseExpired(uint256 jobId, uint256 taskId, uint256 deadline);
    error JobMarketRevealNotOpen(uint256 jobId, uint256 taskId);
    error JobMarketRevealClosed(uint256 jobId, uint256 taskId, uint256 deadline);
    error JobMarketCommitmentMismatch(uint256 jobId, uint256 taskId, address worker);
    error JobMarketNotResolvable(uint256 jobId, uint256 taskId, address worker, ReplicaState state);
    error JobMarketRoundNotStale(uint256 jobId, uint256 taskId);
    error JobMarketNothingToWithdraw(address account);
    error JobMarketTransferFailed(address to, uint256 amount);

    // ----- events -----
    event JobPosted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 specDigest,
        uint256 mapTasks,
        uint256 reduceTasks,
        uint256 replication,
        uint256 quorum,
        uint256 rewardPerReplica,
        uint256 escrow
    );
    event JobStateChanged(uint256 indexed jobId, JobState state);
    event TaskClaimed(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, uint256 round, uint256 leaseDeadline);
    event ResultCommitted(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, bytes32 commitment);
    event RevealOpened(uint256 indexed jobId, uint256 indexed taskId, uint256 round, uint256 revealDeadline);
    event ResultRevealed(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, bytes32 digest);
    event TaskSettled(uint256 indexed jobId, uint256 indexed taskId, uint256 round, bytes32 digest);
    event TaskReopened(uint256 indexed jobId, uint256 indexed taskId, uint256 round);
    event ReplicaResolved(
        uint256 indexed jobId, uint256 indexed taskId, address indexed worker, Outcome outcome, uint256 amount
    );
    event Refunded(uint256 indexed jobId, address indexed requester, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    /// @notice Largest replication a job may ask for; bounds every per-task count.
    function MAX_REPLICATION() external view returns (uint8);

    /// @notice The stake registry this market created and controls.
    function registry() external view returns (IWorkerRegistry);

    /// @notice Number of jobs posted; job ids are 1..jobCount.
    function jobCount() external view returns (uint256);

    function job(uint256 jobId) external view returns (Job memory);

    function task(uint256 jobId, uint256 taskId) external view returns (Task memory);

    function replica(uint256 jobId, uint256 taskId, address worker) external view returns (Replica memory);

    /// @notice Wei credited to `account`, withdrawable with `withdraw`.
    function credits(address account) external view returns (uint256);

    /// @notice The commitment a worker must submit for `digest` and `salt`.
    function commitmentOf(bytes32 digest, bytes32 salt, address worker, uint256 jobId, uint256 taskId)
        external
        pure
        returns (bytes32);

    /// @notice Posts a job; `msg.value` must equal `rewardPerReplica * replication * (mapTasks + reduceTasks)`.
    function postJob(JobParams calldata params) external payable returns (uint256 jobId);

    /// @notice Requester only, before any claim: cancels and credits back the whole escrow.
    function cancelJob(uint256 jobId) external;

    /// @notice Claims one replica of each task in `taskIds` for the caller, locking
    /// `collateral` per task from its free stake. All or nothing.
    function claim(uint256 jobId, uint256[] calldata taskIds) external;

    /// @notice Commits the caller's result for each claimed task, within its lease.
    function commit(uint256 jobId, uint256[] calldata taskIds, bytes32[] calldata commitments) external;

    /// @notice Reveals the caller's committed digests. The reveal that brings a
    /// digest to `quorum` settles the task; a reveal after settlement is judged
    /// against the accepted digest.
    function reveal(uint256 jobId, uint256[] calldata taskIds, bytes32[] calldata digests, bytes32[] calldata salts)
        external;

    /// @notice Resolves the caller's finished replicas of `taskIds`: pays agreeing
    /// ones, slashes dissenting or late ones, releases the rest. Returns wei credited.
    function collect(uint256 jobId, uint256[] calldata taskIds) external returns (uint256 reward);

    /// @notice Resolves any worker's finished replica, e.g. to slash a no-show
    /// and reopen its slot.
    function resolve(uint256 jobId, uint256 taskId, address worker) external returns (Outcome outcome);

    /// @notice Reopens a task whose reveal window closed without quorum (or fails
    /// the job if the task used all its rounds).
    function poke(uint256 jobId, uint256 taskId) external;

    /// @notice Marks an active job past its deadline as expired.
    function expireJob(uint256 jobId) external;

    /// @notice Credits the requester the escrow its finished job did not spend.
    function refund(uint256 jobId) external returns (uint256 amount);

    /// @notice Sends the caller its credited wei.
    function withdraw() external;
}
