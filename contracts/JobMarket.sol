// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "./interfaces/IERC20.sol";
import {IRandomness} from "./interfaces/IRandomness.sol";
import {WorkerPool} from "./WorkerPool.sol";
import {ReentrancyGuard} from "./utils/ReentrancyGuard.sol";

/// @title JobMarket
/// @notice Protocol v2: escrowed map/reduce jobs whose task replicas go to
/// workers drawn by a stake-weighted lottery and settle by a margin of
/// agreeing, independently drawn workers: unanimity of the first round, and
/// on any dissent escalation to fresh drawn workers until one result leads
/// all others by the margin. The design, its formulas and the attacks it
/// answers are in docs/protocol.md.
///
/// A requester states the error it accepts (epsilonPpm: the probability that
/// a wrong result is accepted for a task) and the stake share it assumes an
/// adversary holds (adversaryPpm, f); the margin m is the least m with
/// f^m / (f^m + (1-f)^m) <= epsilon, the chance that an adversary who
/// dissents whenever it is drawn wins the race to a lead of m. The first
/// round draws m workers; a round that leaves the leader d votes ahead draws
/// m - d more, so the task stops exactly when a result leads by m.
/// Each seat commits `result = keccak256(abi.encode(jobId, taskId, digest))`
/// and `seal = keccak256(abi.encode(worker, jobId, taskId, digest))`. Results
/// are compared at commit time, so no digest is published before a result
/// has won: a split round leaks nothing a later worker could copy, and a
/// result copied from a co-replica cannot be opened (its seal needs the
/// digest). Winning opens a reveal window; the first opening settles the
/// task. Every committer of the winner who opens it is paid; everyone else
/// who committed on the task, in any round, is slashed.
contract JobMarket is ReentrancyGuard {
    uint8 public constant MAX_REPLICATION = 16;
    uint256 internal constant PPM = 1_000_000;
    /// @notice collateral >= DETERRENCE * reward (see the deterrence inequality).
    uint256 internal constant DETERRENCE = 2;
    /// @notice Candidates a draw may look at per open seat before it stops.
    uint256 internal constant DRAW_TRIES_PER_SEAT = 4;
    /// @notice Most rounds a task may take (one bit each in Task.voidRounds).
    uint8 public constant MAX_ROUNDS = 64;
    /// @notice A drawn worker may decline only in the first 1/DECLINE_PART of its
    /// lease: long enough to judge a job, too short to hold a seat hostage.
    uint256 internal constant DECLINE_PART = 4;

    enum JobState {
        None,
        Map,
        Reduce,
        Completed,
        Failed,
        Expired,
        Cancelled
    }

    enum ReplicaState {
        None,
        Assigned,
        Committed,
        Slashed, // a no-show's marker: it is never drawn for this task again
        Declined // declined its seat in time: never drawn for this task again
    }

    /// @notice What a draw does with a candidate.
    enum Seating {
        Seated,
        Skip, // requester, served this task before, or under the minimum weight: next candidate
        Wait // cannot sit now (stake or free stake): the seat waits for it
    }

    /// @notice How `collect` or `resolve` ends a seat. A seat that opens the
    /// winner is paid by the reveal itself and never comes here.
    enum Outcome {
        Slashed,
        Released
    }

    /// @notice Chain-wide floors, fixed at deployment from the chain's block time.
    struct Config {
        uint256 unbondingDelay;
        uint96 minStake;
        uint96 minCollateral;
        uint32 minLeaseDuration;
        uint32 minRevealWindow;
        uint32 epochBlocks;
        uint32 drawDelay;
    }

    struct JobParams {
        bytes32 specDigest;
        uint32 mapTasks;
        uint32 reduceTasks;
        uint8 resourceClass;
        uint32 epsilonPpm;
        uint32 adversaryPpm;
        uint8 maxRounds;
        uint32 extraSeats;
        uint96 rewardPerReplica;
        uint96 collateral;
        uint96 minStake;
        uint32 leaseDuration;
        uint32 revealWindow;
        uint32 jobTimeout;
        /// @dev The ERC-20 the escrow, rewards and refunds are in; address(0): ETH.
        address token;
    }

    struct Job {
        address requester;
        JobState state;
        uint8 margin; // lead (in distinct drawn workers) that settles a task
        uint8 maxRounds;
        uint8 resourceClass;
        bool hasDraws;
        uint32 leaseDuration;
        uint32 revealWindow;
        uint96 rewardPerReplica;
        uint96 collateral;
        uint40 deadline; // when an active job expires; once failed, when it failed
        uint96 minStake;
        uint32 mapTasks;
        uint32 reduceTasks;
        uint32 settledTasks;
        uint40 horizon; // latest reveal deadline: refunds wait for it
        uint40 seedBlock; // round 0's randomness comes from this block
        uint32 extraSeats; // seats beyond margin * tasks the escrow pays for
        uint32 extraSeatsUsed;
        uint32 epsilonPpm;
        uint32 adversaryPpm;
        uint128 paid;
        uint128 escrow;
        uint128 refunded;
        bytes32 specDigest;
        address token; // address(0): ETH
    }

    /// @notice A task as `task()` reports it.
    struct Task {
        bytes12 winner; // result that reached the margin; zero while none
        bytes12 lead; // result with the most commits in the current tally
        uint8 round;
        uint8 seats; // seats of the current round
        uint8 seated; // seats held in the current round (assigned or committed)
        uint8 committed; // commits in the current round
        bool settled; // the winner was opened: the task's digest is known
        uint16 leadCount; // commits of `lead` in the tally
        uint16 total; // commits in the tally, all results
        uint8 tally; // bumped when a void round discards the tally
        uint40 revealDeadline;
        uint40 seedBlock; // escalation rounds draw from this block (0: the job's)
        uint32 drawNonce; // candidates looked at in the current round
        uint64 voidRounds; // bit k: round k's winner was never opened (its committers cannot be paid)
    }

    /// @dev A task as it is stored. A task whose rounds go as they should
    /// (drawn, committed, won, opened) lives in its first slot alone: one
    /// fresh slot per task, not two, and one cold read per transaction that
    /// touches it. The second slot is written only when a round escalates
    /// or is void, and read only when `extended` says it was.
    struct TaskSlots {
        // slot 0
        bytes12 lead;
        uint8 round;
        uint8 seats;
        uint8 seated;
        uint8 committed;
        bool won; // `lead` reached the margin in the current round: it is the winner
        bool settled;
        bool extended; // slot 1 holds something: an own seed block, a void round, a discarded tally
        uint16 leadCount;
        uint16 total;
        uint32 drawNonce;
        uint40 revealDeadline;
        // slot 1
        uint8 tally;
        uint8 unavailable; // drawn workers who reported the input missing (each sits once per task)
        uint40 seedBlock;
        uint64 voidRounds;
    }

    struct Replica {
        bytes12 result;
        bytes12 seal;
        uint40 deadline; // commit deadline while assigned
        ReplicaState state;
        uint8 round;
    }

    WorkerPool public immutable pool;
    IRandomness public immutable randomnessSource;
    uint96 public immutable minCollateral;
    uint32 public immutable minLeaseDuration;
    uint32 public immutable minRevealWindow;
    uint32 public immutable drawDelay;
    uint256 public jobCount;
    mapping(address => uint256) public credits;
    /// @notice Rewards and refunds owed in each ERC-20: token => account => amount.
    mapping(address => mapping(address => uint256)) public tokenCredits;

    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => mapping(uint256 => TaskSlots)) private _tasks;
    mapping(uint256 => mapping(uint256 => mapping(address => Replica))) private _replicas;
    /// @dev Commits per (job, task, tally, result) for results other than the leader.
    mapping(bytes32 => uint16) private _votes;

    // ----- errors: parameters -----
    error JobMarketInvalidTaskCounts(uint256 mapTasks, uint256 reduceTasks);
    error JobMarketInvalidErrorTarget(uint256 epsilonPpm, uint256 adversaryPpm);
    error JobMarketErrorTargetUnreachable(uint256 epsilonPpm, uint256 adversaryPpm, uint256 maxReplication);
    error JobMarketInvalidRounds(uint256 maxRounds, uint256 extraSeats);
    error JobMarketInvalidClass(uint256 resourceClass);
    error JobMarketWindowTooShort(uint256 leaseDuration, uint256 revealWindow, uint256 minLease, uint256 minReveal);
    error JobMarketInvalidTimeout(uint256 jobTimeout, uint256 needed);
    error JobMarketInvalidEpoch(uint256 epochBlocks);
    error JobMarketCollateralTooLow(uint256 collateral, uint256 minimum);
    error JobMarketStakeTooLow(uint256 minStake, uint256 minimum);
    error JobMarketEscrowMismatch(uint256 required, uint256 provided);
    error JobMarketEscrowTooLarge(uint256 escrow, uint256 maximum);
    error JobMarketLengthMismatch(uint256 expected, uint256 actual);
    error JobMarketEmptyBatch();
    error JobMarketZeroHash(uint256 jobId, uint256 taskId);
    // ----- errors: state -----
    error JobMarketUnknownJob(uint256 jobId);
    error JobMarketNotRequester(uint256 jobId, address caller);
    error JobMarketJobHasDraws(uint256 jobId);
    error JobMarketJobNotActive(uint256 jobId, JobState state);
    error JobMarketJobNotExpired(uint256 jobId, uint256 deadline);
    error JobMarketJobNotFinished(uint256 jobId, JobState state);
    error JobMarketRefundNotReady(uint256 jobId, uint256 readyAt);
    error JobMarketNothingToRefund(uint256 jobId);
    error JobMarketTaskOutOfRange(uint256 jobId, uint256 taskId, uint256 taskCount);
    error JobMarketTaskNotInPhase(uint256 jobId, uint256 taskId, JobState state);
    /// @notice Nothing to draw: the seats are full, the seed block is not mined
    /// yet, or the pool is empty this epoch.
    error JobMarketNothingToDraw(uint256 jobId);
    error JobMarketWrongReplicaState(uint256 jobId, uint256 taskId, address worker, ReplicaState state);
    error JobMarketLeaseExpired(uint256 jobId, uint256 taskId, uint256 deadline);
    error JobMarketRevealNotOpen(uint256 jobId, uint256 taskId);
    error JobMarketRevealClosed(uint256 jobId, uint256 taskId, uint256 deadline);
    error JobMarketNotTheWinner(uint256 jobId, uint256 taskId, address worker);
    /// @notice The replica's round won but nobody opened it in time: it can no longer be opened.
    error JobMarketVoidRound(uint256 jobId, uint256 taskId, uint256 round);
    /// @notice Seats may be declined only early in their lease (see DECLINE_PART).
    error JobMarketDeclineClosed(uint256 jobId, uint256 taskId, uint256 deadline);
    error JobMarketCommitmentMismatch(uint256 jobId, uint256 taskId, address worker);
    error JobMarketNotResolvable(uint256 jobId, uint256 taskId, address worker, ReplicaState state);
    error JobMarketRoundNotStale(uint256 jobId, uint256 taskId);
    error JobMarketNothingToWithdraw(address account);
    error JobMarketTransferFailed(address to, uint256 amount);
    error JobMarketTokenTransferFailed(address token, address to, uint256 amount);
    /// @notice The market received `received` of `token` where `expected` was
    /// sent: a token that charges a fee on transfer (or rebases) cannot back
    /// an exact escrow.
    error JobMarketTokenAmountMismatch(address token, uint256 expected, uint256 received);

    // ----- events -----
    event JobPosted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 specDigest,
        uint256 mapTasks,
        uint256 reduceTasks,
        uint256 margin,
        uint256 resourceClass,
        uint256 rewardPerReplica,
        uint256 escrow
    );
    event JobStateChanged(uint256 indexed jobId, JobState state);
    /// @notice Draws for the task's round (all tasks' round 0 when taskId is
    /// type(uint256).max) wait for this block's randomness.
    event SeedArmed(uint256 indexed jobId, uint256 indexed taskId, uint256 seedBlock);
    event TaskAssigned(
        uint256 indexed jobId, uint256 indexed taskId, address indexed worker, uint256 round, uint256 leaseDeadline
    );
    event TaskDeclined(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, uint256 round);
    event InputUnavailable(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, uint256 reports);
    event ResultCommitted(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, bytes32 result);
    event RevealOpened(uint256 indexed jobId, uint256 indexed taskId, uint256 round, uint256 revealDeadline);
    event TaskEscalated(uint256 indexed jobId, uint256 indexed taskId, uint256 round, uint256 seats, uint256 seedBlock);
    event ResultRevealed(uint256 indexed jobId, uint256 indexed taskId, address indexed worker, bytes32 digest);
    event TaskSettled(uint256 indexed jobId, uint256 indexed taskId, uint256 round, bytes32 digest);
    event ReplicaResolved(
        uint256 indexed jobId, uint256 indexed taskId, address indexed worker, Outcome outcome, uint256 amount
    );
    event Refunded(uint256 indexed jobId, address indexed requester, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event TokenWithdrawn(address indexed token, address indexed account, uint256 amount);

    constructor(Config memory c, IRandomness source) {
        // A seed block is mined before any draw can read it: with one block per
        // epoch it would always be an epoch behind, and nothing could be drawn.
        if (c.epochBlocks < 2) revert JobMarketInvalidEpoch(c.epochBlocks);
        pool = new WorkerPool(c.unbondingDelay, c.minStake, c.epochBlocks);
        randomnessSource = source;
        minCollateral = c.minCollateral;
        minLeaseDuration = c.minLeaseDuration;
        minRevealWindow = c.minRevealWindow;
        drawDelay = c.drawDelay;
    }

    // ------------------------------------------------------------------ views

    function job(uint256 jobId) external view returns (Job memory) {
        return _knownJob(jobId);
    }

    function task(uint256 jobId, uint256 taskId) external view returns (Task memory v) {
        TaskSlots storage t = _tasks[jobId][taskId];
        v.winner = _winner(t);
        v.lead = t.lead;
        v.round = t.round;
        v.seats = t.seats;
        v.seated = t.seated;
        v.committed = t.committed;
        v.settled = t.settled;
        v.leadCount = t.leadCount;
        v.total = t.total;
        v.tally = t.tally;
        v.revealDeadline = t.revealDeadline;
        v.seedBlock = t.seedBlock;
        v.drawNonce = t.drawNonce;
        v.voidRounds = t.voidRounds;
    }

    function replica(uint256 jobId, uint256 taskId, address worker) external view returns (Replica memory) {
        return _replicas[jobId][taskId][worker];
    }

    /// @notice The margin that meets `epsilonPpm` against an adversary holding
    /// `adversaryPpm` of the stake: the least m with
    /// f^m * (1 - epsilon) <= epsilon * (1 - f)^m, i.e. f^m / (f^m + (1-f)^m)
    /// <= epsilon (f^m rounded up and (1-f)^m down at every step, so m is
    /// never too small). 0 if none up to MAX_REPLICATION does.
    function marginFor(uint256 epsilonPpm, uint256 adversaryPpm) public pure returns (uint8) {
        uint256 one = 1e36;
        uint256 bad = one; // f^m
        uint256 good = one; // (1 - f)^m
        for (uint8 m = 1; m <= MAX_REPLICATION; ++m) {
            bad = (bad * adversaryPpm + PPM - 1) / PPM;
            good = (good * (PPM - adversaryPpm)) / PPM;
            if (bad * (PPM - epsilonPpm) <= good * epsilonPpm) return m;
        }
        return 0;
    }

    function resultOf(uint256 jobId, uint256 taskId, bytes32 digest) public pure returns (bytes32) {
        return keccak256(abi.encode(jobId, taskId, digest));
    }

    function sealOf(address worker, uint256 jobId, uint256 taskId, bytes32 digest) public pure returns (bytes32) {
        return keccak256(abi.encode(worker, jobId, taskId, digest));
    }

    // -------------------------------------------------------------- requester

    /// @notice Posts a job and takes its escrow: `msg.value` for an ETH job,
    /// or (with no ETH sent) a transferFrom of the job's token, which the
    /// caller must have approved. The escrow is reward x (m x tasks + extra
    /// seats), exactly.
    function postJob(JobParams calldata p) external payable nonReentrant returns (uint256 jobId) {
        uint8 m = _validate(p);
        uint256 seats = uint256(m) * (uint256(p.mapTasks) + p.reduceTasks) + p.extraSeats;
        uint256 required = uint256(p.rewardPerReplica) * seats;
        // A token's units are not bounded by ETH's supply: what the books hold must fit them.
        if (required > type(uint128).max) revert JobMarketEscrowTooLarge(required, type(uint128).max);
        address token = p.token;
        if (token == address(0)) {
            if (msg.value != required) revert JobMarketEscrowMismatch(required, msg.value);
        } else {
            if (msg.value != 0) revert JobMarketEscrowMismatch(0, msg.value);
            _pullExactly(IERC20(token), required);
        }

        jobId = ++jobCount;
        Job storage j = _jobs[jobId];
        j.requester = msg.sender;
        j.state = JobState.Map;
        j.margin = m;
        j.maxRounds = p.maxRounds;
        j.resourceClass = p.resourceClass;
        j.leaseDuration = p.leaseDuration;
        j.revealWindow = p.revealWindow;
        j.rewardPerReplica = p.rewardPerReplica;
        j.collateral = p.collateral;
        j.deadline = uint40(block.timestamp + p.jobTimeout);
        j.minStake = p.minStake;
        j.mapTasks = p.mapTasks;
        j.reduceTasks = p.reduceTasks;
        j.extraSeats = p.extraSeats;
        j.epsilonPpm = p.epsilonPpm;
        j.adversaryPpm = p.adversaryPpm;
        j.escrow = uint128(required);
        j.specDigest = p.specDigest;
        if (token != address(0)) j.token = token;
        uint40 seedBlock = _armBlock();
        j.seedBlock = seedBlock;
        emit JobPosted(
            jobId, msg.sender, p.specDigest, p.mapTasks, p.reduceTasks, m, p.resourceClass, p.rewardPerReplica, required
        );
        emit JobStateChanged(jobId, JobState.Map);
        emit SeedArmed(jobId, type(uint256).max, seedBlock);
    }

    /// @dev Checks a job's parameters against the chain-wide floors; returns
    /// the margin its error target needs.
    function _validate(JobParams calldata p) private view returns (uint8 m) {
        uint256 tasks = uint256(p.mapTasks) + p.reduceTasks;
        if (p.mapTasks == 0 || tasks > type(uint32).max) revert JobMarketInvalidTaskCounts(p.mapTasks, p.reduceTasks);
        if (p.epsilonPpm == 0 || p.epsilonPpm >= PPM || p.adversaryPpm >= PPM / 2) {
            revert JobMarketInvalidErrorTarget(p.epsilonPpm, p.adversaryPpm);
        }
        m = marginFor(p.epsilonPpm, p.adversaryPpm);
        if (m == 0) revert JobMarketErrorTargetUnreachable(p.epsilonPpm, p.adversaryPpm, MAX_REPLICATION);
        if (p.maxRounds == 0 || p.maxRounds > MAX_ROUNDS || (p.maxRounds == 1 && p.extraSeats != 0)) {
            revert JobMarketInvalidRounds(p.maxRounds, p.extraSeats);
        }
        if (p.resourceClass >= pool.CLASSES()) revert JobMarketInvalidClass(p.resourceClass);
        if (p.leaseDuration < minLeaseDuration || p.revealWindow < minRevealWindow) {
            revert JobMarketWindowTooShort(p.leaseDuration, p.revealWindow, minLeaseDuration, minRevealWindow);
        }
        uint256 oneRound = uint256(p.leaseDuration) + p.revealWindow;
        if (p.jobTimeout < oneRound) revert JobMarketInvalidTimeout(p.jobTimeout, oneRound);
        // Deterrence: a replica caught cheating loses more than it could earn.
        // Collateral is staked ETH: a reward in a token has no price here, so
        // for a token job only the chain-wide floor applies and each worker
        // judges the reward (the agent takes tokens its operator accepts).
        uint256 floor = p.token == address(0) ? uint256(p.rewardPerReplica) * DETERRENCE : 0;
        if (floor < minCollateral) floor = minCollateral;
        if (floor == 0) floor = 1;
        if (p.collateral < floor) revert JobMarketCollateralTooLow(p.collateral, floor);
        uint256 stakeFloor = pool.minStake();
        if (p.collateral > stakeFloor) stakeFloor = p.collateral;
        if (p.minStake < stakeFloor) revert JobMarketStakeTooLow(p.minStake, stakeFloor);
    }

    function cancelJob(uint256 jobId) external {
        Job storage j = _liveJob(jobId);
        if (msg.sender != j.requester) revert JobMarketNotRequester(jobId, msg.sender);
        if (j.hasDraws) revert JobMarketJobHasDraws(jobId);
        uint128 escrow = j.escrow;
        j.state = JobState.Cancelled;
        j.refunded = escrow;
        _credit(j, msg.sender, escrow);
        emit JobStateChanged(jobId, JobState.Cancelled);
        emit Refunded(jobId, msg.sender, escrow);
    }

    /// @notice Records that an active job is past its deadline. Nothing
    /// depends on whether or when anyone calls this: every rule reads time.
    function expireJob(uint256 jobId) external {
        Job storage j = _knownJob(jobId);
        if (!_isActive(j.state)) revert JobMarketJobNotActive(jobId, j.state);
        if (block.timestamp <= j.deadline) revert JobMarketJobNotExpired(jobId, j.deadline);
        j.state = JobState.Expired;
        emit JobStateChanged(jobId, JobState.Expired);
    }

    function refund(uint256 jobId) external returns (uint256 amount) {
        Job storage j = _knownJob(jobId);
        if (_live(j)) revert JobMarketJobNotFinished(jobId, j.state);
        if (_isActive(j.state)) {
            j.state = JobState.Expired;
            emit JobStateChanged(jobId, JobState.Expired);
        }
        // Until the last reveal window closes an agreeing replica may still
        // open its result and earn its reward.
        if (block.timestamp <= j.horizon) revert JobMarketRefundNotReady(jobId, j.horizon);
        amount = uint256(j.escrow) - j.paid - j.refunded;
        if (amount == 0) revert JobMarketNothingToRefund(jobId);
        j.refunded += uint128(amount);
        address requester = j.requester;
        _credit(j, requester, amount);
        emit Refunded(jobId, requester, amount);
    }

    // ------------------------------------------------------------------ draws

    /// @notice Fills the open seats of `taskIds` (current round) with workers
    /// drawn from the job's class. Anyone may call it; what it draws depends
    /// only on randomness fixed after the job (or round) was posted and on
    /// pool weights fixed before that randomness existed. A seed that is no
    /// longer usable (from an earlier epoch, or too old to read) is re-armed
    /// to a future block and the task waits for it.
    function draw(uint256 jobId, uint256[] calldata taskIds) external {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        Job storage j = _liveJob(jobId);
        bool progressed;
        for (uint256 i; i < n; ++i) {
            uint256 taskId = taskIds[i];
            _requireInPhase(jobId, j, taskId);
            TaskSlots storage t = _tasks[jobId][taskId];
            if (_advanceIfStale(jobId, taskId, j, t)) progressed = true;
            if (!_live(j)) return; // the escalation failed the job
            if (_drawSeats(jobId, taskId, j, t)) progressed = true;
        }
        // A call that changed nothing says why, instead of burning gas quietly.
        if (!progressed) revert JobMarketNothingToDraw(jobId);
    }

    // ----------------------------------------------------------------- worker

    /// @dev Results and seals are the first 12 bytes of resultOf and sealOf:
    /// what is stored and compared, and no more calldata than that (on a
    /// rollup the random tail of a hash is the most expensive thing sent).
    function commit(uint256 jobId, uint256[] calldata taskIds, bytes12[] calldata results, bytes12[] calldata seals)
        external
    {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        if (results.length != n) revert JobMarketLengthMismatch(n, results.length);
        if (seals.length != n) revert JobMarketLengthMismatch(n, seals.length);
        Job storage j = _liveJob(jobId);
        for (uint256 i; i < n; ++i) {
            _commitOne(jobId, j, taskIds[i], results[i], seals[i]);
            // A commit that failed the job (a split with no escalation left)
            // ends the batch: the rest would act on a dead job.
            if (!_live(j)) return;
        }
    }

    /// @notice Opens the caller's committed results that won their tasks, and
    /// pays for them at once: the reward is credited and the collateral of
    /// every opened seat released in this call. Opening the winner in time
    /// is the last duty a seat has, so there is nothing left to wait for, and
    /// an honest worker never needs a `collect`.
    function reveal(uint256 jobId, uint256[] calldata taskIds, bytes32[] calldata digests)
        external
        returns (uint256 reward)
    {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        if (digests.length != n) revert JobMarketLengthMismatch(n, digests.length);
        Job storage j = _knownJob(jobId);
        for (uint256 i; i < n; ++i) {
            _revealOne(jobId, j, taskIds[i], digests[i]);
        }
        reward = n * uint256(j.rewardPerReplica);
        j.paid += uint128(reward);
        _credit(j, msg.sender, reward);
        pool.release(msg.sender, n * uint256(j.collateral), n);
    }

    /// @notice Ends the caller's seats that did not open a winner: slashed
    /// (a no-show, a losing result, a winner left unopened) or released (the
    /// job ended before the task had a verdict).
    function collect(uint256 jobId, uint256[] calldata taskIds) external {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        Job storage j = _knownJob(jobId);
        uint256[2] memory counts;
        for (uint256 i; i < n; ++i) {
            counts[uint8(_resolve(jobId, j, taskIds[i], msg.sender))] += 1;
        }
        _applyOutcomes(j, msg.sender, counts);
    }

    /// @notice Gives back seats the caller was drawn for and has not committed
    /// to, in the first quarter of their lease: the collateral is released, the seat is
    /// redrawn, and the caller is never drawn for that task again. This is how
    /// a worker refuses a job it cannot run (a program it does not support,
    /// terms it does not accept) without being slashed as a no-show. It cannot
    /// help an adversary: giving up a seat only hands it to a random draw.
    function decline(uint256 jobId, uint256[] calldata taskIds) external {
        _giveBack(jobId, taskIds, false);
    }

    /// @notice Gives back seats, as `decline`, because the task's input could
    /// not be fetched from anyone. A lone report only frees the seat (no
    /// reward, no slash). When as many distinct drawn workers as the job's
    /// margin report a task's input unavailable, the job fails: the requester
    /// did not keep its data available, and gets back only what was not
    /// earned. Reaching that count takes as many independently drawn seats as
    /// settling a wrong result does, and a reporter earns nothing either way.
    function reportUnavailable(uint256 jobId, uint256[] calldata taskIds) external {
        _giveBack(jobId, taskIds, true);
    }

    /// @notice Resolves any worker's finished replica (e.g. a no-show, which
    /// frees its seat for a redraw).
    function resolve(uint256 jobId, uint256 taskId, address worker) external returns (Outcome outcome) {
        Job storage j = _knownJob(jobId);
        outcome = _resolve(jobId, j, taskId, worker);
        uint256[2] memory counts;
        counts[uint8(outcome)] = 1;
        _applyOutcomes(j, worker, counts);
    }

    /// @notice Moves on a task whose unanimous round's reveal window closed
    /// without a single opening: the round is void and escalates.
    function poke(uint256 jobId, uint256 taskId) external {
        Job storage j = _liveJob(jobId);
        _requireInPhase(jobId, j, taskId);
        if (!_advanceIfStale(jobId, taskId, j, _tasks[jobId][taskId])) revert JobMarketRoundNotStale(jobId, taskId);
    }

    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert JobMarketNothingToWithdraw(msg.sender);
        credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert JobMarketTransferFailed(msg.sender, amount);
    }

    function withdrawToken(address token) external nonReentrant {
        uint256 amount = tokenCredits[token][msg.sender];
        if (amount == 0) revert JobMarketNothingToWithdraw(msg.sender);
        tokenCredits[token][msg.sender] = 0;
        emit TokenWithdrawn(token, msg.sender, amount);
        if (!_tokenCall(token, abi.encodeCall(IERC20.transfer, (msg.sender, amount)))) {
            revert JobMarketTokenTransferFailed(token, msg.sender, amount);
        }
    }

    // --------------------------------------------------------------- internal

    function _credit(Job storage j, address account, uint256 amount) private {
        address token = j.token;
        if (token == address(0)) credits[account] += amount;
        else tokenCredits[token][account] += amount;
    }

    /// @dev transferFrom the caller exactly `amount`, measured by the market's
    /// balance (fee-on-transfer tokens fail here, not later as a shortfall).
    function _pullExactly(IERC20 token, uint256 amount) private {
        if (address(token).code.length == 0) revert JobMarketTokenTransferFailed(address(token), address(this), amount);
        uint256 before = token.balanceOf(address(this));
        if (!_tokenCall(address(token), abi.encodeCall(IERC20.transferFrom, (msg.sender, address(this), amount)))) {
            revert JobMarketTokenTransferFailed(address(token), address(this), amount);
        }
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert JobMarketTokenAmountMismatch(address(token), amount, received);
    }

    /// @dev Calls a token, accepting both ERC-20 styles: returns true, or returns nothing.
    function _tokenCall(address token, bytes memory data) private returns (bool) {
        if (token.code.length == 0) return false;
        (bool ok, bytes memory ret) = token.call(data);
        return ok && (ret.length == 0 || (ret.length >= 32 && abi.decode(ret, (bool))));
    }

    /// @dev Returns whether anything changed (candidates looked at, or a seed re-armed).
    function _drawSeats(uint256 jobId, uint256 taskId, Job storage j, TaskSlots storage t) private returns (bool) {
        // The task has its result (and once settled, its paid seats are
        // deleted: a draw must never seat their workers again), or is dead.
        if (t.won || t.settled || _isVoid(t, t.round)) return false;
        uint8 seats = t.seats;
        if (seats == 0) seats = t.seats = j.margin; // round 0
        uint256 open = seats - t.seated;
        if (open == 0) return false;
        bytes32 seed;
        {
            bool armed;
            (seed, armed) = _seed(jobId, taskId, j, t);
            if (seed == 0) return armed;
        }
        // Candidate k of this round is fixed by (seed, task, round, k): who
        // calls, when, or in which batch does not change the sequence.
        seed = keccak256(abi.encode(seed, taskId, t.round));
        uint32 nonce = t.drawNonce;
        uint256 budget = open * DRAW_TRIES_PER_SEAT;
        for (uint256 tries; tries < budget && open != 0; ++tries) {
            (address w, uint256 weight) = pool.drawCandidate(j.resourceClass, uint256(keccak256(abi.encode(seed, nonce))));
            if (w == address(0)) break; // nobody to draw from
            Seating s = _seat(jobId, taskId, j, t, w, weight);
            if (s == Seating.Wait) break;
            ++nonce;
            if (s == Seating.Seated) --open;
        }
        // Candidates looked at are used up even when none could sit (all had
        // served the task): the next call goes on down the same fixed sequence
        // instead of retrying the same candidates forever.
        bool moved = nonce != t.drawNonce;
        t.drawNonce = nonce;
        uint8 seated = uint8(seats - open);
        bool drew = seated != t.seated;
        t.seated = seated;
        if (drew && !j.hasDraws) j.hasDraws = true;
        return moved;
    }

    /// @dev Seats `w` if it is eligible: not the requester, never on this
    /// task before (in any round), with the job's minimum stake and enough
    /// free stake for the collateral, which is locked here.
    function _seat(uint256 jobId, uint256 taskId, Job storage j, TaskSlots storage t, address w, uint256 epochWeight)
        private
        returns (Seating)
    {
        // Skipped for good: facts fixed for this task and epoch.
        if (w == j.requester) return Seating.Skip;
        Replica storage rep = _replicas[jobId][taskId][w];
        if (rep.state != ReplicaState.None) return Seating.Skip;
        uint256 minStake = j.minStake;
        if (epochWeight < minStake) return Seating.Skip;
        // Waited for: the candidate's stake or free stake can change at any
        // time (its own unbonding and staking, collateral locked by other
        // draws). Skipping it would let whoever stakes or orders draws after
        // the seed is known move the seat down the sequence to a candidate of
        // their choosing; waiting keeps the seat the candidate's until it can
        // sit or a new seed is armed.
        if (!pool.tryLock(w, j.collateral, minStake)) return Seating.Wait;
        uint40 leaseDeadline = uint40(block.timestamp + j.leaseDuration);
        rep.deadline = leaseDeadline;
        rep.state = ReplicaState.Assigned;
        uint8 round = t.round;
        rep.round = round;
        emit TaskAssigned(jobId, taskId, w, round, leaseDeadline);
        return Seating.Seated;
    }

    /// @dev The round's seed; (0, false) while its block is still ahead,
    /// (0, true) after re-arming a seed that can no longer be used.
    function _seed(uint256 jobId, uint256 taskId, Job storage j, TaskSlots storage t)
        private
        returns (bytes32 seed, bool armed)
    {
        uint256 seedBlock = t.extended ? t.seedBlock : 0;
        bool own = seedBlock != 0;
        if (!own) seedBlock = j.seedBlock;
        if (seedBlock >= block.number) return (0, false);
        bytes32 random = _randomness(seedBlock);
        // Weights fixed before the seed existed are only guaranteed within
        // the seed block's epoch: after it, anyone could have re-weighted.
        if (random == 0 || pool.epochOf(seedBlock) != pool.epoch()) {
            uint40 next = _armBlock();
            if (own) {
                t.seedBlock = next;
                emit SeedArmed(jobId, taskId, next);
            } else {
                j.seedBlock = next;
                emit SeedArmed(jobId, type(uint256).max, next);
            }
            return (0, true);
        }
        return (keccak256(abi.encode(random, jobId)), false);
    }

    /// @dev A block `drawDelay` ahead whose successor is in the same epoch.
    function _armBlock() private view returns (uint40) {
        uint256 b = block.number + drawDelay;
        uint256 epochBlocks = pool.epochBlocks();
        if (epochBlocks > 1 && b % epochBlocks == epochBlocks - 1) b += 1;
        return uint40(b);
    }

    function _randomness(uint256 blockNumber) private view returns (bytes32) {
        if (address(randomnessSource) == address(0)) return blockhash(blockNumber);
        return randomnessSource.randomness(blockNumber);
    }

    function _commitOne(uint256 jobId, Job storage j, uint256 taskId, bytes12 result, bytes12 seal) private {
        if (result == 0 || seal == 0) revert JobMarketZeroHash(jobId, taskId);
        TaskSlots storage t = _tasks[jobId][taskId];
        Replica storage rep = _replicas[jobId][taskId][msg.sender];
        if (rep.state != ReplicaState.Assigned || rep.round != t.round) {
            revert JobMarketWrongReplicaState(jobId, taskId, msg.sender, rep.state);
        }
        if (block.timestamp > rep.deadline) revert JobMarketLeaseExpired(jobId, taskId, rep.deadline);
        rep.result = result;
        rep.seal = seal;
        rep.state = ReplicaState.Committed;
        emit ResultCommitted(jobId, taskId, msg.sender, bytes32(result));
        _count(jobId, taskId, t, result);
        uint8 committed = t.committed + 1;
        t.committed = committed;
        if (committed < t.seats) return;
        // The round is complete: judge the tally only now, so a round's
        // outcome does not depend on the order its commits arrived in.
        int256 lead = 2 * int256(uint256(t.leadCount)) - int256(uint256(t.total));
        uint8 margin = j.margin;
        if (lead >= int256(uint256(margin))) {
            t.won = true;
            uint40 until = uint40(block.timestamp + j.revealWindow);
            t.revealDeadline = until;
            if (until > j.horizon) j.horizon = until;
            emit RevealOpened(jobId, taskId, t.round, until);
        } else {
            // Just enough fresh seats for the leader to reach the margin if
            // they all agree with it.
            uint256 need = uint256(int256(uint256(margin)) - lead);
            _escalate(jobId, taskId, j, t, need > MAX_REPLICATION ? MAX_REPLICATION : need, true);
        }
    }

    function _revealOne(uint256 jobId, Job storage j, uint256 taskId, bytes32 digest) private {
        TaskSlots storage t = _tasks[jobId][taskId];
        Replica storage rep = _replicas[jobId][taskId][msg.sender];
        if (rep.state != ReplicaState.Committed) revert JobMarketWrongReplicaState(jobId, taskId, msg.sender, rep.state);
        if (!t.won) revert JobMarketRevealNotOpen(jobId, taskId);
        bytes12 winner = t.lead;
        bool settled = t.settled;
        // A settled task hears its late openings (they are owed a reward);
        // an unsettled one can only settle while the job is live.
        if (!settled && !_live(j)) revert JobMarketJobNotActive(jobId, j.state);
        uint40 until = t.revealDeadline;
        if (block.timestamp > until) revert JobMarketRevealClosed(jobId, taskId, until);
        if (rep.result != winner) revert JobMarketNotTheWinner(jobId, taskId, msg.sender);
        if (_isVoid(t, rep.round)) revert JobMarketVoidRound(jobId, taskId, rep.round);
        if (bytes12(resultOf(jobId, taskId, digest)) != winner || bytes12(sealOf(msg.sender, jobId, taskId, digest)) != rep.seal) {
            revert JobMarketCommitmentMismatch(jobId, taskId, msg.sender);
        }
        // Paid by the caller (`reveal`): nothing is left to decide for this
        // seat. The task has its result, so it is never drawn again and the
        // marker that keeps a worker from a second seat is not needed.
        delete _replicas[jobId][taskId][msg.sender];
        emit ResultRevealed(jobId, taskId, msg.sender, digest);
        if (!settled) {
            t.settled = true;
            emit TaskSettled(jobId, taskId, t.round, digest);
            _onTaskSettled(jobId, j);
        }
    }

    /// @dev Decides how a finished replica ends. Reverts while it still has a
    /// duty it can fulfil in time. Reads only time and state, never whether
    /// someone already called expireJob or poke, so the outcome does not
    /// depend on the order of permissionless calls.
    function _resolve(uint256 jobId, Job storage j, uint256 taskId, address worker) private returns (Outcome o) {
        TaskSlots storage t = _tasks[jobId][taskId];
        _advanceIfStale(jobId, taskId, j, t);
        Replica storage rep = _replicas[jobId][taskId][worker];
        ReplicaState s = rep.state;
        bool live = _live(j);
        // Duties are judged up to the moment the job ended.
        uint256 cutoff = block.timestamp;
        if (!live && j.deadline < cutoff) cutoff = j.deadline;

        if (s == ReplicaState.Assigned) {
            if (cutoff > rep.deadline) o = Outcome.Slashed; // never committed
            else if (!live) o = Outcome.Released;
            else revert JobMarketNotResolvable(jobId, taskId, worker, s);
        } else if (s == ReplicaState.Committed) {
            if (_isVoid(t, rep.round) || _silentWinner(t, rep, cutoff)) {
                // Its round won and nobody opened the winner while the job was
                // live (marked void, or not yet noticed: the verdict reads time,
                // not who called poke first).
                o = Outcome.Slashed;
            } else if (t.settled) {
                // A committer of the winner may open it until the window closes;
                // a committer of anything else lost.
                if (rep.result == _winner(t) && block.timestamp <= t.revealDeadline) {
                    revert JobMarketNotResolvable(jobId, taskId, worker, s);
                }
                o = Outcome.Slashed;
            } else if (!live) {
                o = Outcome.Released; // the job ended before the task had a verdict
            } else {
                revert JobMarketNotResolvable(jobId, taskId, worker, s);
            }
        } else {
            // None (never seated, paid by its reveal, or collected), Slashed or
            // Declined: nothing is left to decide.
            revert JobMarketWrongReplicaState(jobId, taskId, worker, s);
        }

        uint256 amount = o == Outcome.Slashed ? j.collateral : 0;
        if (s == ReplicaState.Assigned && o == Outcome.Slashed) {
            // A no-show frees its seat for a redraw and is never drawn for
            // this task again.
            if (rep.round == t.round && !t.won) t.seated -= 1;
            rep.state = ReplicaState.Slashed;
        } else if (t.settled || !live) {
            // No more draws can happen for this task: the slot may go.
            delete _replicas[jobId][taskId][worker];
        } else {
            rep.state = ReplicaState.Slashed;
        }
        emit ReplicaResolved(jobId, taskId, worker, o, amount);
    }

    function _giveBack(uint256 jobId, uint256[] calldata taskIds, bool unavailable) private {
        uint256 n = taskIds.length;
        if (n == 0) revert JobMarketEmptyBatch();
        Job storage j = _knownJob(jobId);
        for (uint256 i; i < n; ++i) {
            uint256 taskId = taskIds[i];
            TaskSlots storage t = _tasks[jobId][taskId];
            Replica storage rep = _replicas[jobId][taskId][msg.sender];
            if (rep.state != ReplicaState.Assigned) {
                revert JobMarketWrongReplicaState(jobId, taskId, msg.sender, rep.state);
            }
            uint256 until = rep.deadline - j.leaseDuration + j.leaseDuration / DECLINE_PART;
            if (block.timestamp > until) revert JobMarketDeclineClosed(jobId, taskId, until);
            rep.state = ReplicaState.Declined;
            if (rep.round == t.round && !t.won) t.seated -= 1;
            emit TaskDeclined(jobId, taskId, msg.sender, rep.round);
            if (unavailable) _reportUnavailable(jobId, taskId, j, t);
        }
        pool.release(msg.sender, n * uint256(j.collateral), 0);
    }

    /// @dev Counts a report of a task's input missing; the margin-th distinct
    /// reporter of a live job fails it, as a split with no escalation left does.
    function _reportUnavailable(uint256 jobId, uint256 taskId, Job storage j, TaskSlots storage t) private {
        if (!_live(j)) return; // the job already ended: nothing left to decide
        t.extended = true;
        uint8 reports = t.unavailable + 1;
        t.unavailable = reports;
        emit InputUnavailable(jobId, taskId, msg.sender, reports);
        if (reports >= j.margin) {
            j.state = JobState.Failed;
            if (block.timestamp < j.deadline) j.deadline = uint40(block.timestamp);
            emit JobStateChanged(jobId, JobState.Failed);
        }
    }

    function _applyOutcomes(Job storage j, address worker, uint256[2] memory counts) private {
        uint256 slashed = counts[uint8(Outcome.Slashed)];
        uint256 released = counts[uint8(Outcome.Released)];
        uint256 collateral = j.collateral;
        if (released > 0) pool.release(worker, released * collateral, 0);
        if (slashed > 0) pool.slash(worker, slashed * collateral, slashed);
    }

    /// @dev A won round whose window closed with no opening is void: nobody
    /// who committed the winner knew its digest. Its committers can never be
    /// paid (they are slashed when resolved), its tally is discarded, and the
    /// task starts over with m fresh seats paid from the prefunded seats.
    /// Nothing was revealed, so nothing leaks.
    function _advanceIfStale(uint256 jobId, uint256 taskId, Job storage j, TaskSlots storage t) private returns (bool) {
        if (!t.won || t.settled || block.timestamp <= t.revealDeadline || !_live(j)) return false;
        t.extended = true;
        t.voidRounds |= uint64(1) << t.round;
        t.tally += 1;
        t.lead = 0;
        t.leadCount = 0;
        t.total = 0;
        uint8 margin = j.margin;
        if (t.round + 1 >= j.maxRounds || uint256(j.extraSeatsUsed) + margin > j.extraSeats) {
            // No round (or prefunded seat) left. Failing the job now would make
            // every other replica's verdict depend on when someone noticed;
            // instead the task stays dead (its current round is void) and the
            // job ends at its deadline, where every duty is judged the same way.
            t.won = false;
            return true;
        }
        _escalate(jobId, taskId, j, t, margin, true);
        return true;
    }

    /// @dev The replica's round is the task's current one, it won, and its
    /// window closed unopened before `cutoff` (the job still live then).
    function _silentWinner(TaskSlots storage t, Replica storage rep, uint256 cutoff) private view returns (bool) {
        return rep.round == t.round && t.won && !t.settled && t.revealDeadline < cutoff;
    }

    function _isVoid(TaskSlots storage t, uint8 round) private view returns (bool) {
        return t.extended && (t.voidRounds >> round) & 1 == 1;
    }

    function _winner(TaskSlots storage t) private view returns (bytes12) {
        return t.won ? t.lead : bytes12(0);
    }

    /// @dev Adds one commit to the task's tally. The leader's count lives in
    /// the task; other results' counts in `_votes`, written only on dissent.
    function _count(uint256 jobId, uint256 taskId, TaskSlots storage t, bytes12 result) private {
        t.total += 1;
        if (t.leadCount == 0 || result == t.lead) {
            t.lead = result;
            t.leadCount += 1;
            return;
        }
        uint8 tally = t.tally;
        uint16 votes = ++_votes[_voteKey(jobId, taskId, tally, result)];
        if (votes > t.leadCount) {
            _votes[_voteKey(jobId, taskId, tally, t.lead)] = t.leadCount;
            t.lead = result;
            t.leadCount = votes;
        }
    }

    function _voteKey(uint256 jobId, uint256 taskId, uint8 tally, bytes12 result) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, taskId, tally, result));
    }

    /// @dev Opens the next round with `seats` fresh seats and its own future
    /// seed, or fails the job when the task used all its rounds or the job's
    /// escrow cannot pay for the seats (`charge`: they are new seats to pay).
    function _escalate(uint256 jobId, uint256 taskId, Job storage j, TaskSlots storage t, uint256 seats, bool charge)
        private
    {
        uint8 next = t.round + 1;
        if (next >= j.maxRounds || (charge && uint256(j.extraSeatsUsed) + seats > j.extraSeats)) {
            j.state = JobState.Failed;
            if (block.timestamp < j.deadline) j.deadline = uint40(block.timestamp);
            emit JobStateChanged(jobId, JobState.Failed);
            return;
        }
        if (charge) j.extraSeatsUsed += uint32(seats);
        uint40 seedBlock = _armBlock();
        t.won = false;
        t.extended = true;
        t.round = next;
        t.seats = uint8(seats);
        t.seated = 0;
        t.committed = 0;
        t.revealDeadline = 0;
        t.seedBlock = seedBlock;
        t.drawNonce = 0;
        emit TaskEscalated(jobId, taskId, next, seats, seedBlock);
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

    /// @dev Active and not past its deadline, whether or not anyone expired it.
    function _liveJob(uint256 jobId) private view returns (Job storage j) {
        j = _knownJob(jobId);
        if (!_live(j)) revert JobMarketJobNotActive(jobId, j.state);
    }

    function _live(Job storage j) private view returns (bool) {
        return _isActive(j.state) && block.timestamp <= j.deadline;
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
