// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IWorkerRegistry
/// @notice Stake custody for Shardex workers. A worker stakes ETH; the job
/// market locks part of it as collateral for every active claim, releases it
/// when the claim ends well and slashes it when the claim ends badly. Stake
/// leaves only through an unbonding delay, so a worker cannot run from a
/// slash it can see coming. Slashed ETH is credited (pull payment) to the
/// requester of the job the worker failed.
/// @dev The registry is created by the job market's constructor; that market
/// is the only address allowed to lock, release and slash.
interface IWorkerRegistry {
    /// @notice One worker's stake and reputation counters, packed in one slot.
    /// @param stake Bonded stake in wei (includes `locked`).
    /// @param locked Part of `stake` held as collateral for active claims.
    /// @param settled Claims that ended with the worker agreeing with quorum.
    /// @param slashed Claims that ended in a slash (dissent, missed deadline).
    struct Worker {
        uint96 stake;
        uint96 locked;
        uint32 settled;
        uint32 slashed;
    }

    /// @notice Stake on its way out: withdrawable once `readyAt` has passed.
    struct Unbonding {
        uint128 amount;
        uint64 readyAt;
    }

    error WorkerRegistryNotMarket(address caller);
    error WorkerRegistryZeroAmount();
    error WorkerRegistryStakeOverflow(uint256 stake, uint256 added);
    error WorkerRegistryInsufficientFreeStake(address worker, uint256 free, uint256 needed);
    error WorkerRegistryStakeBelowMinimum(address worker, uint256 stake, uint256 minimum);
    error WorkerRegistryUnbondingNotReady(address worker, uint256 readyAt);
    error WorkerRegistryNothingToWithdraw(address account);
    error WorkerRegistryTransferFailed(address to, uint256 amount);
    error WorkerRegistryEndpointTooLong(uint256 length, uint256 maxLength);

    event Staked(address indexed worker, uint256 amount, uint256 stake);
    event UnbondRequested(address indexed worker, uint256 amount, uint256 readyAt);
    event Unbonded(address indexed worker, uint256 amount);
    event CollateralLocked(address indexed worker, uint256 amount);
    event CollateralReleased(address indexed worker, uint256 amount, uint256 settled);
    event Slashed(address indexed worker, address indexed beneficiary, uint256 amount, uint256 count);
    event Withdrawn(address indexed account, uint256 amount);
    event EndpointAnnounced(address indexed worker, string endpoint);

    /// @notice The job market allowed to lock, release and slash.
    function market() external view returns (address);

    /// @notice Seconds between `requestUnbond` and `withdrawUnbonded`.
    function unbondingDelay() external view returns (uint256);

    /// @notice Stake, locked collateral and counters of `worker`.
    function workers(address worker) external view returns (Worker memory);

    /// @notice Stake that is neither locked nor unbonding.
    function freeStake(address worker) external view returns (uint256);

    /// @notice Pending unbonding of `worker`.
    function unbonding(address worker) external view returns (Unbonding memory);

    /// @notice Slashed ETH credited to `account`, withdrawable with `withdraw`.
    function credits(address account) external view returns (uint256);

    /// @notice Adds `msg.value` to the caller's stake (registering it on first use).
    function stake() external payable;

    /// @notice Moves `amount` of free stake into unbonding; restarts the delay
    /// for everything already unbonding.
    function requestUnbond(uint256 amount) external;

    /// @notice Sends the caller its unbonded stake once the delay has passed.
    function withdrawUnbonded() external;

    /// @notice Sends the caller the slashed ETH credited to it.
    function withdraw() external;

    /// @notice Publishes where the caller serves its outputs (a trustless
    /// gateway URL, e.g. `http://host:port`), so reducers and requesters can
    /// fetch what it produced. Kept only in the event log: no storage cost.
    function announce(string calldata endpoint) external;

    /// @notice Market only: locks `amount` of `worker`'s free stake as claim
    /// collateral, if its stake is at least `minStake`.
    function lock(address worker, uint256 amount, uint256 minStake) external;

    /// @notice Market only: unlocks `amount` of collateral and adds `settledCount`
    /// to the worker's settled counter.
    function release(address worker, uint256 amount, uint256 settledCount) external;

    /// @notice Market only: takes `amount` of locked collateral from `worker`
    /// (`count` claims) and credits it to `beneficiary`.
    function slash(address worker, uint256 amount, uint256 count, address beneficiary) external;
}
