// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";
import {ReentrancyGuard} from "../../contracts/utils/ReentrancyGuard.sol";
import {MarketFixture, vm} from "./Base.sol";

/// @dev A requester/worker whose receive() re-enters one withdrawal function
/// once and records how that inner call ended.
contract ReentrantAccount {
    JobMarket internal immutable market;
    IWorkerRegistry internal immutable registry;
    address public reentryTarget;
    bytes public reentryCall;
    bool public reentered;
    bool public reentryOk;
    bytes public reentryError;
    uint256 public received;

    constructor(JobMarket market_) {
        market = market_;
        registry = market_.registry();
    }

    function setReentry(address target, bytes calldata data) external {
        (reentryTarget, reentryCall) = (target, data);
    }

    function post(IJobMarket.JobParams calldata p) external payable returns (uint256) {
        return market.postJob{value: msg.value}(p);
    }

    function cancel(uint256 jobId) external {
        market.cancelJob(jobId);
    }

    function stake() external payable {
        registry.stake{value: msg.value}();
    }

    function requestUnbond(uint256 amount) external {
        registry.requestUnbond(amount);
    }

    function withdrawMarket() external {
        market.withdraw();
    }

    function withdrawRegistry() external {
        registry.withdraw();
    }

    function withdrawUnbonded() external {
        registry.withdrawUnbonded();
    }

    receive() external payable {
        received += msg.value;
        if (reentered || reentryCall.length == 0) return;
        reentered = true;
        (reentryOk, reentryError) = reentryTarget.call(reentryCall);
    }
}

/// @dev Refuses every ETH transfer.
contract RejectingAccount {
    JobMarket internal immutable market;

    constructor(JobMarket market_) {
        market = market_;
    }

    function post(IJobMarket.JobParams calldata p) external payable returns (uint256) {
        return market.postJob{value: msg.value}(p);
    }

    function cancel(uint256 jobId) external {
        market.cancelJob(jobId);
    }

    function stake() external payable {
        market.registry().stake{value: msg.value}();
    }

    function requestUnbond(uint256 amount) external {
        market.registry().requestUnbond(amount);
    }

    function withdrawMarket() external {
        market.withdraw();
    }

    function withdrawUnbonded() external {
        market.registry().withdrawUnbonded();
    }
}

/// @notice withdraw from both contracts, transfer failures and re-entrancy.
contract WithdrawTest is MarketFixture {
    bytes32 internal immutable REENTERED =
        keccak256(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector));

    function _cancelledJobFor(address payable account) internal returns (uint256 jobId) {
        IJobMarket.JobParams memory p = _params();
        vm.deal(address(this), 0.09 ether);
        jobId = ReentrantAccount(account).post{value: 0.09 ether}(p);
        ReentrantAccount(account).cancel(jobId);
    }

    // -------------------------------------------------------------- market

    function test_withdraw_sendsMarketCreditOnce() public {
        uint256 jobId = _post(_params());
        vm.prank(requester);
        market.cancelJob(jobId);
        uint256 before = requester.balance;
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.Withdrawn(requester, 0.09 ether);
        vm.prank(requester);
        market.withdraw();
        assertEq(requester.balance, before + 0.09 ether, "received");
        assertEq(market.credits(requester), 0, "credit cleared");
        assertEq(address(market).balance, 0, "market empty");
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNothingToWithdraw.selector, requester));
        vm.prank(requester);
        market.withdraw();
    }

    function test_withdraw_revertsIfNothingToWithdraw() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNothingToWithdraw.selector, stranger));
        vm.prank(stranger);
        market.withdraw();
    }

    function test_withdraw_paysWorkerRewardToTheWei() public {
        uint256 jobId = _post(_singleParams());
        bytes32 x = _honest(jobId, 0);
        _claimCommit(w1, jobId, 0, x);
        _reveal(w1, jobId, 0, x);
        _collect(w1, jobId, 0);
        uint256 before = w1.balance;
        vm.prank(w1);
        market.withdraw();
        assertEq(w1.balance - before, 0.01 ether, "reward");
        assertEq(address(market).balance, 0, "escrow spent");
    }

    function test_withdraw_blocksReentrantWithdraw() public {
        ReentrantAccount attacker = new ReentrantAccount(market);
        _cancelledJobFor(payable(address(attacker)));
        attacker.setReentry(address(market), abi.encodeCall(IJobMarket.withdraw, ()));
        attacker.withdrawMarket();

        assertEq(attacker.reentered(), true, "re-entry attempted");
        assertEq(attacker.reentryOk(), false, "re-entry failed");
        assertEq(keccak256(attacker.reentryError()), REENTERED, "guard error");
        assertEq(attacker.received(), 0.09 ether, "paid exactly once");
        assertEq(address(attacker).balance, 0.09 ether, "attacker balance");
        assertEq(address(market).balance, 0, "market empty");
        assertEq(market.credits(address(attacker)), 0, "credit cleared");
    }

    function test_withdraw_revertsIfReceiverRejects() public {
        RejectingAccount account = new RejectingAccount(market);
        vm.deal(address(this), 0.09 ether);
        uint256 jobId = account.post{value: 0.09 ether}(_params());
        account.cancel(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketTransferFailed.selector, address(account), 0.09 ether)
        );
        account.withdrawMarket();
        assertEq(market.credits(address(account)), 0.09 ether, "credit kept");
    }

    // ------------------------------------------------------------ registry

    /// @dev Makes `beneficiary` the requester of a job in which w1 is slashed as a no-show.
    function _slashCreditFor(address beneficiary) internal {
        IJobMarket.JobParams memory p = _singleParams();
        vm.deal(beneficiary, 1 ether);
        vm.prank(beneficiary);
        uint256 jobId = market.postJob{value: REWARD}(p);
        _claim(w1, jobId, 0);
        vm.warp(block.timestamp + LEASE + 1);
        market.resolve(jobId, 0, w1);
    }

    function test_registryWithdraw_sendsSlashedCollateralToRequester() public {
        _slashCreditFor(requester);
        assertEq(registry.credits(requester), COLLATERAL, "credited");
        uint256 before = requester.balance;
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.Withdrawn(requester, COLLATERAL);
        vm.prank(requester);
        registry.withdraw();
        assertEq(requester.balance, before + COLLATERAL, "received");
        assertEq(registry.credits(requester), 0, "cleared");
        assertEq(address(registry).balance, 5 * WORKER_STAKE - COLLATERAL, "stakes remain");
    }

    function test_registryWithdraw_revertsIfNothingToWithdraw() public {
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryNothingToWithdraw.selector, w1));
        vm.prank(w1);
        registry.withdraw();
    }

    function test_registryWithdraw_blocksReentrantWithdrawUnbonded() public {
        ReentrantAccount attacker = new ReentrantAccount(market);
        _slashCreditFor(address(attacker));
        vm.deal(address(this), 2 ether);
        attacker.stake{value: 2 ether}();
        attacker.requestUnbond(2 ether);
        vm.warp(block.timestamp + UNBONDING_DELAY);
        // Without the shared guard, the inner call would succeed: the unbonding is ready.
        attacker.setReentry(address(registry), abi.encodeCall(IWorkerRegistry.withdrawUnbonded, ()));
        attacker.withdrawRegistry();

        assertEq(attacker.reentryOk(), false, "re-entry failed");
        assertEq(keccak256(attacker.reentryError()), REENTERED, "guard error");
        assertEq(attacker.received(), COLLATERAL, "only the credit");
        assertEq(registry.unbonding(address(attacker)).amount, 2 ether, "unbonding untouched");

        attacker.withdrawUnbonded(); // a separate call works
        assertEq(attacker.received(), COLLATERAL + 2 ether, "then the unbonded stake");
    }

    function test_withdrawUnbonded_blocksReentrantWithdrawUnbonded() public {
        ReentrantAccount attacker = new ReentrantAccount(market);
        vm.deal(address(this), 3 ether);
        attacker.stake{value: 3 ether}();
        attacker.requestUnbond(3 ether);
        vm.warp(block.timestamp + UNBONDING_DELAY);
        attacker.setReentry(address(registry), abi.encodeCall(IWorkerRegistry.withdrawUnbonded, ()));
        attacker.withdrawUnbonded();
        assertEq(attacker.reentryOk(), false, "re-entry failed");
        assertEq(keccak256(attacker.reentryError()), REENTERED, "guard error");
        assertEq(attacker.received(), 3 ether, "paid once");
        assertEq(address(registry).balance, 5 * WORKER_STAKE, "other stakes intact");
    }

    function test_withdrawUnbonded_revertsIfReceiverRejects() public {
        RejectingAccount account = new RejectingAccount(market);
        vm.deal(address(this), 1 ether);
        account.stake{value: 1 ether}();
        account.requestUnbond(1 ether);
        vm.warp(block.timestamp + UNBONDING_DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryTransferFailed.selector, address(account), 1 ether)
        );
        account.withdrawUnbonded();
        assertEq(registry.unbonding(address(account)).amount, 1 ether, "still unbonding");
    }
}
