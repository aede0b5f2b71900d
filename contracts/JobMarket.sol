// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "./interfaces/IWorkerRegistry.sol";
import {WorkerRegistry} from "./WorkerRegistry.sol";
import {ReentrancyGuard} from "./utils/ReentrancyGuard.sol";

/// @title JobMarket
/// @notice Escrow, leases, commit-reveal and quorum settlement for Shardex jobs.
/// @dev Accounting: ETH balance == sum over jobs of (escrow - paid - refunded)
/// + sum of credits. Loops run only over the caller's own batch arguments;
/// everything per task is bounded by MAX_REPLICATION through uint8 counters.
contract JobMarket is IJobMarket, ReentrancyGuard {
    /// @inheritdoc IJobMarket
    uint8 public constant MAX_REPLICATION = 16;

    /// @inheritdoc IJobMarket
    IWorkerRegistry public immutable registry;
    /// @inheritdoc IJobMarket
    uint256 public jobCount;
    /// @inheritdoc IJobMarket
    mapping(address => uint256) public credits;

    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => mapping(uint256 => Task)) private _tasks;
    mapping(uint256 => mapping(uint256 => mapping(address => Replica))) private _replicas;
    /// @dev Matching reveals per (jobId, taskId, round, digest prefix); only
    /// written when quorum > 1, since a quorum of one settles on first reveal.
    mapping(bytes32 => uint256) private _votes;

    /// @param unbondingDelay Seconds a worker's stake waits before it can leave.
    constructor(uint256 unbondingDelay) {
        // The market creates its registry, so the registry's only privileged
        // caller is fixed at deployment and no one holds an admin key.
        registry = new WorkerRegistry(unbondingDelay);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IJobMarket
    function job(uint256 jobId) external view returns (Job memory) {
        Job storage j = _jobs[jobId];
        if (j.state == JobState.None) revert JobMarketUnknownJob(jobId);
        return j;
    }

    /// @inheritdoc IJobMarket
    function task(uint256 jobId, uint256 taskId) external view returns (Task memory) {
        return _tasks[jobId][taskId];
    }

    /// @inheritdoc IJobMarket
    function replica(uint256 jobId, uint256 taskId, address worker) external view returns (Replica memory) {
        return _replicas[jobId][taskId][worker];
    }

    /// @inheritdoc IJobMarket
    function commitmentOf(bytes32 digest, bytes32 salt, address worker, uint256 jobId, uint256 taskId)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(digest, salt, worker, jobId, taskId));
    }

    // -------------------------------------------------------------- requester

    /// @inheritdoc IJobMarket
    function postJob(JobParams calldata p) external payable returns (uint256 jobId) {
        uint256 tasks = uint256(p.mapTasks) + p.reduceTasks;
        if (p.mapTasks == 0 || tasks > type(uint32).max) revert JobMarketInvalidTaskCounts(p.mapTasks, p.reduceTasks);
        if (p.replication == 0 || p.replication > MAX_REPLICATION || p.quorum == 0 || p.quorum > p.replication) {
            revert JobMarketInvalidQuorum(p.replication, p.quorum);
        }
        if (p.maxRounds == 0) revert JobMarketInvalidMaxRounds(p.maxRounds);
        if (p.leaseDuration == 0 || p.revealWindow == 0 || p.jobTimeout == 0) {
            revert JobMarketInvalidWindows(p.leaseDuration, p.revealWindow, p.jobTimeout);
        }
        uint256 required = uint256(p.rewardPerReplica) * p.replication * tasks;
        // Equality (not >=) so no wei arrives that the job has no use for. It
        // also bounds `required` by the ETH supply, so uint128 cannot truncate.
        if (msg.value != required) revert JobMarketEscrowMismatch(required, msg.value);

        jobId = ++jobCount;
        Job storage j = _jobs[jobId];
        j.requester = msg.sender;
        j.state = JobState.Map;
        j.replication = p.replication;
        j.quorum = p.quorum;
        j.maxRounds = p.maxRounds;
        j.leaseDuration = p.leaseDuration;
        j.revealWindow = p.revealWindow;
        j.rewardPerReplica = p.rewardPerReplica;
        j.collateral = p.collateral;
        j.deadline = uint40(block.timestamp + p.jobTimeout);
        j.minStake = p.minStake;
        j.mapTasks = p.mapTasks;
        j.reduceTasks = p.reduceTasks;
        j.escrow = uint128(msg.value);
        j.specDigest = p.specDigest;
        emit JobPosted(
            jobId, msg.sender, p.specDigest, p.mapTasks, p.reduceTasks, p.replication, p.quorum, p.rewardPerReplica, msg.value
        );
        emit JobStateChanged(jobId, JobState.Map);
    }

    /// @inheritdoc IJobMarket
    function cancelJob(uint256 jobId) external {
        Job storage j = _activeJob(jobId);
        if (msg.sender != j.requester) revert JobMarketNotRequester(jobId, msg.sender);
        if (j.hasClaims) revert JobMarketJobHasClaims(jobId);
        uint128 escrow = j.escrow;
        j.state = JobState.Cancelled;
        j.refunded = escrow;
        credits[msg.sender] += escrow;
        emit JobStateChanged(jobId, JobState.Cancelled);
        emit Refunded(jobId, msg.sender, escrow);
    }

    /// @inheritdoc IJobMarket
    function expireJob(uint256 jobId) external {
        Job storage j = _activeJob(jobId);
        if (block.timestamp <= j.deadline) revert JobMarketJobNotExpired(jobId, j.deadline);
        j.state = JobState.Expired;
        emit JobStateChanged(jobId, JobState.Expired);
    }

    /// @inheritdoc IJobMarket
    function refund(uint256 jobId) external returns (uint256 amount) {
        Job storage j = _jobs[jobId];
        JobState state = j.state;
        if (state == JobState.None) revert JobMarketUnknownJob(jobId);
        if (state == JobState.Map || state == JobState.Reduce) revert JobMarketJobNotFinished(jobId, state);
        // Until the last reveal window closes an agreeing replica may still
        // reveal and earn its reward, so what is owed is not final before then.
        if (block.timestamp <= j.horizon) revert JobMarketRefundNotReady(jobId, j.horizon);
        amount = uint256(j.escrow) - j.paid - j.owed - j.refunded;
        if (amount == 0) revert JobMarketNothingToRefund(jobId);
        j.refunded += uint128(amount);
        address requester = j.requester;
        credits[requester] += amount;
        emit Refunded(jobId, requester, amount);
    }

    // ----------------------------------------------------------------- worker

    /// @inheritdoc IJobMarket
    function claim(uint256 jobId, uint256[] calldata taskIds) external {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        Job storage j = _activeJob(jobId);
        uint40 leaseDeadline = uint40(block.timestamp + j.leaseDuration);
        uint8 replication = j.replication;
        for (uint256 i; i < n; ++i) {
            uint256 taskId = taskIds[i];
            _requireInPhase(jobId, j, taskId);
            Task storage t = _tasks[jobId][taskId];
            _advanceIfStale(jobId, taskId, j, t);
            if (!_isActive(j.state)) revert JobMarketJobNotActive(jobId, j.state);
            if (t.winner != 0) revert JobMarketTaskSettled(jobId, taskId);
            if (t.claimed >= replication) revert JobMarketTaskFull(jobId, taskId, replication);
            Replica storage rep = _replicas[jobId][taskId][msg.sender];
            if (rep.state != ReplicaState.None) {
                // A worker slashed in an earlier round may try again; anything
                // else is either this round's claim or a replica to collect first.
                if (rep.round == t.round) revert JobMarketAlreadyClaimed(jobId, taskId, msg.sender);
                if (rep.state != ReplicaState.Slashed) {
                    revert JobMarketWrongReplicaState(jobId, taskId, msg.sender, rep.state);
                }
            }
            uint8 round = t.round;
            t.claimed += 1;
            _replicas[jobId][taskId][msg.sender] =
                Replica({hash: 0, deadline: leaseDeadline, state: ReplicaState.Claimed, round: round});
            emit TaskClaimed(jobId, taskId, msg.sender, round, leaseDeadline);
        }
        if (!j.hasClaims) j.hasClaims = true;
        registry.lock(msg.sender, uint256(j.collateral) * n, j.minStake);
    }

    /// @inheritdoc IJobMarket
    function commit(uint256 jobId, uint256[] calldata taskIds, bytes32[] calldata commitments) external {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        if (commitments.length != n) revert JobMarketLengthMismatch(n, commitments.length);
        Job storage j = _activeJob(jobId);
        for (uint256 i; i < n; ++i) {
            uint256 taskId = taskIds[i];
            bytes32 commitment = commitments[i];
            // Only the first 24 bytes are stored, so they must not be zero.
            if (bytes24(commitment) == 0) revert JobMarketZeroHash(jobId, taskId);
            Task storage t = _tasks[jobId][taskId];
            Replica storage rep = _replicas[jobId][taskId][msg.sender];
            if (rep.state != ReplicaState.Claimed || rep.round != t.round) {
                revert JobMarketWrongReplicaState(jobId, taskId, msg.sender, rep.state);
            }
            if (block.timestamp > rep.deadline) revert JobMarketLeaseExpired(jobId, taskId, rep.deadline);
            rep.hash = bytes24(commitment);
            rep.state = ReplicaState.Committed;
            emit ResultCommitted(jobId, taskId, msg.sender, commitment);
            uint8 committed = t.committed + 1;
            t.committed = committed;
            if (committed == j.replication) {
                // Saturate, never wrap: a window reaching past the uint32 clock
                // would otherwise wrap into the past and close as it opens.
                uint256 until = block.timestamp + j.revealWindow;
                uint32 revealDeadline = until > type(uint32).max ? type(uint32).max : uint32(until);
                t.revealDeadline = revealDeadline;
                if (revealDeadline > j.horizon) j.horizon = revealDeadline;
                emit RevealOpened(jobId, taskId, t.round, revealDeadline);
            }
        }
    }

    /// @inheritdoc IJobMarket
    function reveal(uint256 jobId, uint256[] calldata taskIds, bytes32[] calldata digests, bytes32[] calldata salts)
        external
    {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        if (digests.length != n) revert JobMarketLengthMismatch(n, digests.length);
        if (salts.length != n) revert JobMarketLengthMismatch(n, salts.length);
        Job storage j = _knownJob(jobId);
        for (uint256 i; i < n; ++i) {
            _revealOne(jobId, j, taskIds[i], digests[i], salts[i]);
        }
    }

    /// @inheritdoc IJobMarket
    function collect(uint256 jobId, uint256[] calldata taskIds) external returns (uint256 reward) {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        Job storage j = _knownJob(jobId);
        uint256[3] memory counts; // indexed by Outcome
        for (uint256 i; i < n; ++i) {
            counts[uint8(_resolve(jobId, j, taskIds[i], msg.sender))] += 1;
        }
        reward = _applyOutcomes(j, msg.sender, counts);
    }

    /// @inheritdoc IJobMarket
    function resolve(uint256 jobId, uint256 taskId, address worker) external returns (Outcome outcome) {
        Job storage j = _knownJob(jobId);
        outcome = _resolve(jobId, j, taskId, worker);
        uint256[3] memory counts;
        counts[uint8(outcome)] = 1;
        _applyOutcomes(j, worker, counts);
    }

    /// @inheritdoc IJobMarket
    function poke(uint256 jobId, uint256 taskId) external {
        Job storage j = _activeJob(jobId);
        _requireInPhase(jobId, j, taskId);
        if (!_advanceIfStale(jobId, taskId, j, _tasks[jobId][taskId])) revert JobMarketRoundNotStale(jobId, taskId);
    }

    /// @inheritdoc IJobMarket
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert JobMarketNothingToWithdraw(msg.sender);
        credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert JobMarketTransferFailed(msg.sender, amount);
    }

    // --------------------------------------------------------------- internal

    function _revealOne(uint256 jobId, Job storage j, uint256 taskId, bytes32 digest, bytes32 salt) private {
        Task storage t = _tasks[jobId][taskId];
        Replica storage rep = _replicas[jobId][taskId][msg.sender];
        if (rep.state != ReplicaState.Committed || rep.round != t.round) {
            revert JobMarketWrongReplicaState(jobId, taskId, msg.sender, rep.state);
        }
        bool settled = t.winner != 0;
        // A settled task still hears its late replicas (they may be owed a
        // reward); an unsettled one can only progress while the job is live.
        if (!settled && !_isActive(j.state)) revert JobMarketJobNotActive(jobId, j.state);
        uint32 revealDeadline = t.revealDeadline;
        if (revealDeadline == 0) revert JobMarketRevealNotOpen(jobId, taskId);
        if (block.timestamp > revealDeadline) revert JobMarketRevealClosed(jobId, taskId, revealDeadline);
        // A zero prefix would read as "no winner": a task settled on it could
        // be settled again and counted twice.
        if (bytes24(digest) == 0) revert JobMarketZeroHash(jobId, taskId);
        if (bytes24(commitmentOf(digest, salt, msg.sender, jobId, taskId)) != rep.hash) {
            revert JobMarketCommitmentMismatch(jobId, taskId, msg.sender);
        }
        bytes24 prefix = bytes24(digest);
        rep.hash = prefix;
        rep.state = ReplicaState.Revealed;
        emit ResultRevealed(jobId, taskId, msg.sender, digest);

        uint128 reward = j.rewardPerReplica;
        if (settled) {
            if (prefix == t.winner) j.owed += reward;
            return;
        }
        uint8 round = t.round;
        uint8 revealed = t.revealed + 1;
        t.revealed = revealed;
        uint256 votes = 1;
        if (j.quorum > 1) votes = ++_votes[keccak256(abi.encode(jobId, taskId, round, prefix))];
        if (votes >= j.quorum) {
            // First digest to reach quorum wins; exactly `votes` replicas have
            // revealed it, and each is now owed its reward.
            t.winner = prefix;
            j.owed += uint128(votes * reward);
            emit TaskSettled(jobId, taskId, round, digest);
            _onTaskSettled(jobId, j);
        } else if (revealed == j.replication) {
            // Everyone revealed and no digest reached quorum: no need to wait
            // for the window to close.
            _failRound(jobId, taskId, j, t);
        }
    }

    /// @dev Decides how a finished replica ends and clears its slot. Reverts if
    /// the replica still has a duty it can fulfil in time.
    function _resolve(uint256 jobId, Job storage j, uint256 taskId, address worker) private returns (Outcome o) {
        Task storage t = _tasks[jobId][taskId];
        _advanceIfStale(jobId, taskId, j, t);
        Replica storage rep = _replicas[jobId][taskId][worker];
        ReplicaState s = rep.state;
        bool current = rep.round == t.round;
        bool settledHere = current && t.winner != 0;
        bool active = _isActive(j.state);
        // Duties are judged up to the moment the job ended: a deadline missed
        // while the job was live is slashed even if nobody noticed before the
        // job expired or failed (so a no-show cannot escape by expiring it).
        uint256 cutoff = block.timestamp;
        if (!active && j.deadline < cutoff) cutoff = j.deadline;

        if (s == ReplicaState.Claimed) {
            if (cutoff > rep.deadline) o = Outcome.Slashed; // missed its commit
            else if (!active) o = Outcome.Released; // the job ended inside its lease
            else revert JobMarketNotResolvable(jobId, taskId, worker, s);
        } else if (s == ReplicaState.Committed) {
            uint32 revealDeadline = t.revealDeadline;
            if (settledHere) {
                if (block.timestamp <= revealDeadline) revert JobMarketNotResolvable(jobId, taskId, worker, s);
                o = Outcome.Slashed; // missed its reveal
            } else if (!current || (revealDeadline != 0 && cutoff > revealDeadline)) {
                o = Outcome.Slashed; // its round's reveal window closed without it
            } else if (!active) {
                o = Outcome.Released; // the job ended before it could reveal
            } else {
                revert JobMarketNotResolvable(jobId, taskId, worker, s);
            }
        } else if (s == ReplicaState.Revealed) {
            if (settledHere) o = rep.hash == t.winner ? Outcome.Paid : Outcome.Slashed;
            else if (!current || !active) o = Outcome.Released; // no quorum, nobody to blame
            else revert JobMarketNotResolvable(jobId, taskId, worker, s);
        } else {
            revert JobMarketWrongReplicaState(jobId, taskId, worker, s);
        }

        uint256 amount;
        if (o == Outcome.Paid) {
            uint128 reward = j.rewardPerReplica;
            j.owed -= reward;
            j.paid += reward;
            amount = reward;
        } else if (o == Outcome.Slashed) {
            amount = j.collateral;
        }
        if (s == ReplicaState.Claimed && o == Outcome.Slashed) {
            // A no-show frees its slot for another worker, but keeps a marker so
            // it cannot claim the same task again in this round.
            t.claimed -= 1;
            rep.state = ReplicaState.Slashed;
        } else {
            delete _replicas[jobId][taskId][worker];
        }
        emit ReplicaResolved(jobId, taskId, worker, o, amount);
    }

    /// @dev One registry call per outcome kind for a whole batch.
    function _applyOutcomes(Job storage j, address worker, uint256[3] memory counts) private returns (uint256 reward) {
        uint256 paid = counts[uint8(Outcome.Paid)];
        uint256 slashed = counts[uint8(Outcome.Slashed)];
        uint256 released = counts[uint8(Outcome.Released)];
        uint256 collateral = j.collateral;
        if (paid > 0) {
            reward = paid * j.rewardPerReplica;
            credits[worker] += reward;
        }
        if (paid + released > 0) registry.release(worker, (paid + released) * collateral, paid);
        if (slashed > 0) registry.slash(worker, slashed * collateral, slashed, j.requester);
    }

    /// @dev Closes a round whose reveal window passed without quorum.
    function _advanceIfStale(uint256 jobId, uint256 taskId, Job storage j, Task storage t) private returns (bool) {
        uint32 revealDeadline = t.revealDeadline;
        if (t.winner != 0 || revealDeadline == 0 || block.timestamp <= revealDeadline || !_isActive(j.state)) {
            return false;
        }
        _failRound(jobId, taskId, j, t);
        return true;
    }

    /// @dev Reopens the task with fresh replica slots, or fails the job once the
    /// task has used all its rounds.
    function _failRound(uint256 jobId, uint256 taskId, Job storage j, Task storage t) private {
        uint8 next = t.round + 1;
        if (next >= j.maxRounds) {
            // Close the round even though none follows: its silent replicas
            // then resolve as missed reveals (slashed) like in any earlier
            // round, instead of being released because the job failed.
            t.round = next;
            j.state = JobState.Failed;
            // From now on `deadline` records when the job ended (see _resolve).
            if (block.timestamp < j.deadline) j.deadline = uint40(block.timestamp);
            emit JobStateChanged(jobId, JobState.Failed);
            return;
        }
        _tasks[jobId][taskId] = Task({winner: 0, revealDeadline: 0, round: next, claimed: 0, committed: 0, revealed: 0});
        emit TaskReopened(jobId, taskId, next);
    }

    function _onTaskSettled(uint256 jobId, Job storage j) private {
        uint32 settled = j.settledTasks + 1;
        j.settledTasks = settled;
        if (settled == j.mapTasks && j.reduceTasks != 0) {
            j.state = JobState.Reduce;
            emit JobStateChanged(jobId, JobState.Reduce);
        } else if (settled == j.mapTasks + j.reduceTasks) {
            j.state = JobState.Completed;
            emit JobStateChanged(jobId, JobState.Completed);
        }
    }

    function _knownJob(uint256 jobId) private view returns (Job storage j) {
        j = _jobs[jobId];
        if (j.state == JobState.None) revert JobMarketUnknownJob(jobId);
    }

    function _activeJob(uint256 jobId) private view returns (Job storage j) {
        j = _knownJob(jobId);
        if (!_isActive(j.state)) revert JobMarketJobNotActive(jobId, j.state);
    }

    function _requireInPhase(uint256 jobId, Job storage j, uint256 taskId) private view {
        uint256 mapTasks = j.mapTasks;
        uint256 total = mapTasks + j.reduceTasks;
        if (taskId >= total) revert JobMarketTaskOutOfRange(jobId, taskId, total);
        JobState phase = taskId < mapTasks ? JobState.Map : JobState.Reduce;
        if (j.state != phase) revert JobMarketTaskNotInPhase(jobId, taskId, j.state);
    }

    function _isActive(JobState state) private pure returns (bool) {
        return state == JobState.Map || state == JobState.Reduce;
    }
}
