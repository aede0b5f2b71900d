// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IWorkerRegistry} from "./interfaces/IWorkerRegistry.sol";
import {ReentrancyGuard} from "./utils/ReentrancyGuard.sol";

/// @title WorkerRegistry
/// @notice Holds worker stake. ETH balance == sum of stakes + unbonding + credits.
contract WorkerRegistry is IWorkerRegistry, ReentrancyGuard {
    /// @notice Longest endpoint `announce` accepts.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    /// @inheritdoc IWorkerRegistry
    address public immutable market;
    /// @inheritdoc IWorkerRegistry
    uint256 public immutable unbondingDelay;

    mapping(address => Worker) private _workers;
    mapping(address => Unbonding) private _unbonding;
    /// @inheritdoc IWorkerRegistry
    mapping(address => uint256) public credits;

    modifier onlyMarket() {
        if (msg.sender != market) revert WorkerRegistryNotMarket(msg.sender);
        _;
    }

    /// @param unbondingDelay_ Seconds stake waits between unbond request and withdrawal.
    constructor(uint256 unbondingDelay_) {
        market = msg.sender;
        unbondingDelay = unbondingDelay_;
    }

    /// @inheritdoc IWorkerRegistry
    function workers(address worker) external view returns (Worker memory) {
        return _workers[worker];
    }

    /// @inheritdoc IWorkerRegistry
    function freeStake(address worker) external view returns (uint256) {
        Worker storage w = _workers[worker];
        return w.stake - w.locked;
    }

    /// @inheritdoc IWorkerRegistry
    function unbonding(address worker) external view returns (Unbonding memory) {
        return _unbonding[worker];
    }

    /// @inheritdoc IWorkerRegistry
    function stake() external payable {
        if (msg.value == 0) revert WorkerRegistryZeroAmount();
        Worker storage w = _workers[msg.sender];
        uint256 total = uint256(w.stake) + msg.value;
        if (total > type(uint96).max) revert WorkerRegistryStakeOverflow(w.stake, msg.value);
        w.stake = uint96(total);
        emit Staked(msg.sender, msg.value, total);
    }

    /// @inheritdoc IWorkerRegistry
    function requestUnbond(uint256 amount) external {
        if (amount == 0) revert WorkerRegistryZeroAmount();
        Worker storage w = _workers[msg.sender];
        uint256 free = w.stake - w.locked;
        if (amount > free) revert WorkerRegistryInsufficientFreeStake(msg.sender, free, amount);
        w.stake -= uint96(amount);
        Unbonding storage u = _unbonding[msg.sender];
        // The delay restarts for the whole pending amount: one timer per worker
        // keeps the state a single slot and the rule easy to reason about.
        uint64 readyAt = uint64(block.timestamp + unbondingDelay);
        u.amount += uint128(amount);
        u.readyAt = readyAt;
        emit UnbondRequested(msg.sender, amount, readyAt);
    }

    /// @inheritdoc IWorkerRegistry
    function withdrawUnbonded() external nonReentrant {
        Unbonding memory u = _unbonding[msg.sender];
        if (u.amount == 0) revert WorkerRegistryNothingToWithdraw(msg.sender);
        if (block.timestamp < u.readyAt) revert WorkerRegistryUnbondingNotReady(msg.sender, u.readyAt);
        delete _unbonding[msg.sender];
        emit Unbonded(msg.sender, u.amount);
        _send(msg.sender, u.amount);
    }

    /// @inheritdoc IWorkerRegistry
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert WorkerRegistryNothingToWithdraw(msg.sender);
        credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @inheritdoc IWorkerRegistry
    function announce(string calldata endpoint) external {
        uint256 length = bytes(endpoint).length;
        if (length > MAX_ENDPOINT_LENGTH) revert WorkerRegistryEndpointTooLong(length, MAX_ENDPOINT_LENGTH);
        emit EndpointAnnounced(msg.sender, endpoint);
    }

    /// @inheritdoc IWorkerRegistry
    function lock(address worker, uint256 amount, uint256 minStake) external onlyMarket {
        Worker storage w = _workers[worker];
        (uint96 staked, uint96 locked) = (w.stake, w.locked);
        if (staked < minStake) revert WorkerRegistryStakeBelowMinimum(worker, staked, minStake);
        uint256 free = staked - locked;
        if (amount > free) revert WorkerRegistryInsufficientFreeStake(worker, free, amount);
        // amount <= free <= stake < 2**96, so the cast cannot truncate.
        w.locked = locked + uint96(amount);
        emit CollateralLocked(worker, amount);
    }

    /// @inheritdoc IWorkerRegistry
    function release(address worker, uint256 amount, uint256 settledCount) external onlyMarket {
        Worker storage w = _workers[worker];
        // The market only releases what it locked: underflow here is a market bug
        // and reverts by checked arithmetic.
        w.locked -= uint96(amount);
        w.settled += uint32(settledCount);
        emit CollateralReleased(worker, amount, settledCount);
    }

    /// @inheritdoc IWorkerRegistry
    function slash(address worker, uint256 amount, uint256 count, address beneficiary) external onlyMarket {
        Worker storage w = _workers[worker];
        w.locked -= uint96(amount);
        w.stake -= uint96(amount);
        w.slashed += uint32(count);
        credits[beneficiary] += amount;
        emit Slashed(worker, beneficiary, amount, count);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert WorkerRegistryTransferFailed(to, amount);
    }
}
