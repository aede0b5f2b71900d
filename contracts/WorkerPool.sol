// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "./utils/ReentrancyGuard.sol";
import {Sortition} from "./utils/Sortition.sol";

/// @title WorkerPool
/// @notice Protocol v2 stake custody and the lottery that assigns work.
/// A worker stakes ETH and opts in to resource classes (0 = CPU, 1 = GPU,
/// ...); in each class it is drawn with probability proportional to its
/// stake. The market locks collateral for every assignment, releases it when
/// the assignment ends well and slashes it when it ends badly. Slashed stake
/// is burned: no party that can provoke a slash (a requester, a co-replica, a
/// verifier) ever receives it. See docs/protocol.md.
/// @dev Invariant: ETH balance == sum of stakes + unbonding + burned.
contract WorkerPool is ReentrancyGuard {
    using Sortition for Sortition.Tree;

    /// @notice Resource classes are 0..CLASSES-1.
    uint8 public constant CLASSES = 8;
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    struct Worker {
        uint96 stake; // bonded stake (includes `locked`)
        uint96 locked; // collateral held by active assignments
        uint32 settled; // assignments paid
        uint32 slashed; // assignments slashed
    }

    struct Membership {
        uint96 floor; // stake that must stay bonded while anything is locked
        uint8 classes; // bitmask of opted-in classes
    }

    struct Unbonding {
        uint128 amount;
        uint64 readyAt;
    }

    address public immutable market;
    uint256 public immutable unbondingDelay;
    /// @notice Least stake with which a worker may opt in.
    uint256 public immutable minStake;
    /// @notice Blocks per epoch: pool weights change only at epoch boundaries.
    uint256 public immutable epochBlocks;
    /// @notice Slashed wei, burned (held here forever, owed to no one).
    uint256 public burned;

    mapping(address => Worker) private _workers;
    mapping(address => Membership) private _memberships;
    mapping(address => Unbonding) private _unbonding;
    mapping(uint8 => Sortition.Tree) private _pools;

    error WorkerPoolNotMarket(address caller);
    error WorkerPoolZeroAmount();
    error WorkerPoolStakeOverflow(uint256 stake, uint256 added);
    error WorkerPoolInsufficientFreeStake(address worker, uint256 free, uint256 needed);
    error WorkerPoolStakeBelowMinimum(address worker, uint256 stake, uint256 minimum);
    error WorkerPoolBelowFloor(address worker, uint256 remaining, uint256 floor);
    error WorkerPoolUnknownClass(uint256 class_);
    error WorkerPoolUnbondingNotReady(address worker, uint256 readyAt);
    error WorkerPoolNothingToWithdraw(address account);
    error WorkerPoolTransferFailed(address to, uint256 amount);
    error WorkerPoolEndpointTooLong(uint256 length, uint256 maxLength);

    event Staked(address indexed worker, uint256 amount, uint256 stake);
    event OptedIn(address indexed worker, uint8 indexed class_, uint256 fromEpoch);
    event OptedOut(address indexed worker, uint8 indexed class_, uint256 fromEpoch);
    event UnbondRequested(address indexed worker, uint256 amount, uint256 readyAt);
    event Unbonded(address indexed worker, uint256 amount);
    event CollateralLocked(address indexed worker, uint256 amount);
    event CollateralReleased(address indexed worker, uint256 amount, uint256 settled);
    event Slashed(address indexed worker, uint256 amount, uint256 count);
    event EndpointAnnounced(address indexed worker, string endpoint);

    modifier onlyMarket() {
        if (msg.sender != market) revert WorkerPoolNotMarket(msg.sender);
        _;
    }

    constructor(uint256 unbondingDelay_, uint256 minStake_, uint256 epochBlocks_) {
        market = msg.sender;
        unbondingDelay = unbondingDelay_;
        minStake = minStake_;
        epochBlocks = epochBlocks_;
    }

    // ------------------------------------------------------------------ views

    function workers(address worker) external view returns (Worker memory) {
        return _workers[worker];
    }

    function membership(address worker) external view returns (Membership memory) {
        return _memberships[worker];
    }

    function freeStake(address worker) public view returns (uint256) {
        Worker storage w = _workers[worker];
        return w.stake - w.locked;
    }

    function unbonding(address worker) external view returns (Unbonding memory) {
        return _unbonding[worker];
    }

    function epoch() public view returns (uint256) {
        return block.number / epochBlocks;
    }

    function epochOf(uint256 blockNumber) external view returns (uint256) {
        return blockNumber / epochBlocks;
    }

    /// @notice Total stake that can be drawn in `class_` in the current epoch.
    function poolWeight(uint8 class_) external view returns (uint256) {
        return _pools[class_].total(epoch());
    }

    /// @notice `worker`'s weight (stake) in the lottery of `class_` this epoch:
    /// fixed at the epoch's start, whatever it staked or unbonded since.
    function weightOf(uint8 class_, address worker) external view returns (uint256) {
        return _pools[class_].weightAt(worker, epoch());
    }

    /// @notice The worker a draw with `random` picks in `class_` this epoch
    /// (address(0) if nobody can be drawn).
    function drawFrom(uint8 class_, uint256 random) external view returns (address) {
        return _pools[class_].draw(epoch(), random);
    }

    /// @notice drawFrom, and the drawn worker's weight this epoch: what a draw
    /// needs about its candidate, in one call.
    function drawCandidate(uint8 class_, uint256 random) external view returns (address worker, uint256 weight) {
        return _pools[class_].drawWithWeight(epoch(), random);
    }

    // ------------------------------------------------------------------ worker

    function stake() external payable {
        if (msg.value == 0) revert WorkerPoolZeroAmount();
        Worker storage w = _workers[msg.sender];
        uint256 total = uint256(w.stake) + msg.value;
        if (total > type(uint96).max) revert WorkerPoolStakeOverflow(w.stake, msg.value);
        w.stake = uint96(total);
        emit Staked(msg.sender, msg.value, total);
        _reweigh(msg.sender, total);
    }

    /// @notice Enters the lottery of `class_` from the next epoch on. A class
    /// holds 4,096 members; once full, a newcomer takes the place of a member
    /// that left (weight 0 this epoch and the next), else this reverts with
    /// SortitionFull.
    function optIn(uint8 class_) external {
        if (class_ >= CLASSES) revert WorkerPoolUnknownClass(class_);
        uint256 staked = _workers[msg.sender].stake;
        if (staked < minStake) revert WorkerPoolStakeBelowMinimum(msg.sender, staked, minStake);
        Membership storage m = _memberships[msg.sender];
        m.classes |= uint8(1 << class_);
        _pools[class_].setWeight(msg.sender, staked, epoch());
        emit OptedIn(msg.sender, class_, epoch() + 1);
    }

    /// @notice Leaves the lottery of `class_` from the next epoch on; draws in
    /// the current epoch may still pick the caller.
    function optOut(uint8 class_) external {
        if (class_ >= CLASSES) revert WorkerPoolUnknownClass(class_);
        Membership storage m = _memberships[msg.sender];
        m.classes &= ~uint8(1 << class_);
        _pools[class_].setWeight(msg.sender, 0, epoch());
        emit OptedOut(msg.sender, class_, epoch() + 1);
    }

    function requestUnbond(uint256 amount) external {
        if (amount == 0) revert WorkerPoolZeroAmount();
        Worker storage w = _workers[msg.sender];
        uint256 free = w.stake - w.locked;
        if (amount > free) revert WorkerPoolInsufficientFreeStake(msg.sender, free, amount);
        uint256 remaining = w.stake - amount;
        // An assignment was made to a worker with at least its job's minimum
        // stake; that promise holds until the assignment ends.
        uint256 floor = _memberships[msg.sender].floor;
        if (w.locked != 0 && remaining < floor) revert WorkerPoolBelowFloor(msg.sender, remaining, floor);
        w.stake = uint96(remaining);
        Unbonding storage u = _unbonding[msg.sender];
        uint64 readyAt = uint64(block.timestamp + unbondingDelay);
        u.amount += uint128(amount);
        u.readyAt = readyAt;
        emit UnbondRequested(msg.sender, amount, readyAt);
        _reweigh(msg.sender, remaining);
    }

    function withdrawUnbonded() external nonReentrant {
        Unbonding memory u = _unbonding[msg.sender];
        if (u.amount == 0) revert WorkerPoolNothingToWithdraw(msg.sender);
        if (block.timestamp < u.readyAt) revert WorkerPoolUnbondingNotReady(msg.sender, u.readyAt);
        delete _unbonding[msg.sender];
        emit Unbonded(msg.sender, u.amount);
        (bool ok,) = msg.sender.call{value: u.amount}("");
        if (!ok) revert WorkerPoolTransferFailed(msg.sender, u.amount);
    }

    function announce(string calldata endpoint) external {
        uint256 length = bytes(endpoint).length;
        if (length > MAX_ENDPOINT_LENGTH) revert WorkerPoolEndpointTooLong(length, MAX_ENDPOINT_LENGTH);
        emit EndpointAnnounced(msg.sender, endpoint);
    }

    // ------------------------------------------------------------------ market

    /// @notice Locks `amount` for one assignment if `worker` can back it now:
    /// its stake is at least `jobMinStake` and its free stake at least
    /// `amount`. Returns false, changing nothing, when it cannot (the draw
    /// waits for it). One call where a draw would otherwise read and then lock.
    function tryLock(address worker, uint256 amount, uint256 jobMinStake) external onlyMarket returns (bool) {
        Worker storage w = _workers[worker];
        (uint96 staked, uint96 locked) = (w.stake, w.locked);
        if (staked < jobMinStake || staked - locked < amount) return false;
        w.locked = locked + uint96(amount);
        Membership storage m = _memberships[worker];
        if (jobMinStake > m.floor) m.floor = uint96(jobMinStake);
        emit CollateralLocked(worker, amount);
        return true;
    }

    function release(address worker, uint256 amount, uint256 settledCount) external onlyMarket {
        Worker storage w = _workers[worker];
        w.locked -= uint96(amount);
        w.settled += uint32(settledCount);
        if (w.locked == 0) _memberships[worker].floor = 0;
        emit CollateralReleased(worker, amount, settledCount);
    }

    /// @notice Burns `amount` of `worker`'s locked collateral (`count` assignments).
    function slash(address worker, uint256 amount, uint256 count) external onlyMarket {
        Worker storage w = _workers[worker];
        w.locked -= uint96(amount);
        uint256 remaining = w.stake - amount;
        w.stake = uint96(remaining);
        w.slashed += uint32(count);
        burned += amount;
        if (w.locked == 0) _memberships[worker].floor = 0;
        emit Slashed(worker, amount, count);
        _reweigh(worker, remaining);
    }

    // --------------------------------------------------------------- internal

    /// @dev A member's weight is its stake, in every class it opted in to,
    /// from the next epoch on. A member whose index in a class went to a
    /// newcomer after it left (weight 0) gets a new one if the class has room;
    /// if not, it is out of that class (OptedOut) and may opt in again later.
    function _reweigh(address worker, uint256 weight) private {
        Membership storage m = _memberships[worker];
        uint8 classes = m.classes;
        if (classes == 0) return;
        uint256 e = epoch();
        uint8 kept = classes;
        for (uint8 c; c < CLASSES; ++c) {
            if (classes & (1 << c) == 0 || _pools[c].trySetWeight(worker, weight, e)) continue;
            kept &= ~uint8(1 << c);
            emit OptedOut(worker, c, e + 1);
        }
        if (kept != classes) m.classes = kept;
    }
}
