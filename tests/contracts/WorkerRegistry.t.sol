// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";
import {MarketFixture, vm} from "./Base.sol";

/// @notice Stake custody: stake, unbonding, market-only lock/release/slash, credits.
contract WorkerRegistryTest is MarketFixture {
    bytes internal constant UNDERFLOW = abi.encodeWithSignature("Panic(uint256)", 0x11);

    function test_constructor_bindsMarketAndDelay() public view {
        assertEq(registry.market(), address(market), "market");
        assertEq(registry.unbondingDelay(), UNBONDING_DELAY, "delay");
        assertEq(address(registry).balance, 5 * WORKER_STAKE, "five stakes held");
    }

    // -------------------------------------------------------------- stake

    function test_stake_addsToStake() public {
        vm.deal(w1, 3 ether);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.Staked(w1, 3 ether, WORKER_STAKE + 3 ether);
        vm.prank(w1);
        registry.stake{value: 3 ether}();
        IWorkerRegistry.Worker memory info = registry.workers(w1);
        assertEq(info.stake, 13 ether, "stake");
        assertEq(info.locked, 0, "locked");
        assertEq(registry.freeStake(w1), 13 ether, "free");
        assertEq(address(registry).balance, 53 ether, "balance");
    }

    function test_stake_revertsIfZero() public {
        vm.expectRevert(_err(IWorkerRegistry.WorkerRegistryZeroAmount.selector));
        vm.prank(w1);
        registry.stake{value: 0}();
    }

    function test_stake_acceptsUpToUint96Max() public {
        uint256 room = uint256(type(uint96).max) - WORKER_STAKE;
        vm.deal(w1, room);
        vm.prank(w1);
        registry.stake{value: room}();
        assertEq(registry.workers(w1).stake, type(uint96).max, "full");
    }

    function test_stake_revertsIfStakeOverflows() public {
        uint256 tooMuch = uint256(type(uint96).max) - WORKER_STAKE + 1;
        vm.deal(w1, tooMuch);
        vm.expectRevert(
            abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryStakeOverflow.selector, WORKER_STAKE, tooMuch)
        );
        vm.prank(w1);
        registry.stake{value: tooMuch}();
    }

    // ---------------------------------------------------------- unbonding

    function test_requestUnbond_movesFreeStakeToUnbonding() public {
        vm.warp(START + 100);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.UnbondRequested(w1, 4 ether, START + 100 + UNBONDING_DELAY);
        vm.prank(w1);
        registry.requestUnbond(4 ether);
        assertEq(registry.workers(w1).stake, 6 ether, "stake");
        assertEq(registry.freeStake(w1), 6 ether, "free");
        IWorkerRegistry.Unbonding memory u = registry.unbonding(w1);
        assertEq(u.amount, 4 ether, "amount");
        assertEq(u.readyAt, START + 100 + UNBONDING_DELAY, "readyAt");
        assertEq(address(registry).balance, 50 ether, "ETH stays");
    }

    function test_requestUnbond_revertsIfZero() public {
        vm.expectRevert(_err(IWorkerRegistry.WorkerRegistryZeroAmount.selector));
        vm.prank(w1);
        registry.requestUnbond(0);
    }

    function test_requestUnbond_revertsIfAboveFreeStake() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryInsufficientFreeStake.selector, w1, WORKER_STAKE, WORKER_STAKE + 1
            )
        );
        vm.prank(w1);
        registry.requestUnbond(WORKER_STAKE + 1);
    }

    function test_requestUnbond_revertsIfCollateralLocked() public {
        uint256 jobId = _post(_params());
        vm.prank(w1);
        market.claim(jobId, _ids(0, 1)); // locks 2 * COLLATERAL
        uint256 free = WORKER_STAKE - 2 * COLLATERAL;
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryInsufficientFreeStake.selector, w1, free, WORKER_STAKE
            )
        );
        vm.prank(w1);
        registry.requestUnbond(WORKER_STAKE);
        vm.prank(w1);
        registry.requestUnbond(free); // everything but the collateral may go
        assertEq(registry.workers(w1).stake, 2 * COLLATERAL, "collateral stays bonded");
        assertEq(registry.freeStake(w1), 0, "nothing free");
    }

    function test_requestUnbond_restartsDelayForWholeAmount() public {
        vm.prank(w1);
        registry.requestUnbond(1 ether);
        vm.warp(START + 6 days);
        vm.prank(w1);
        registry.requestUnbond(2 ether);
        IWorkerRegistry.Unbonding memory u = registry.unbonding(w1);
        assertEq(u.amount, 3 ether, "amounts add up");
        assertEq(u.readyAt, START + 6 days + UNBONDING_DELAY, "delay restarted");
        vm.warp(START + UNBONDING_DELAY); // the first request's original readiness
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryUnbondingNotReady.selector, w1, START + 6 days + UNBONDING_DELAY
            )
        );
        vm.prank(w1);
        registry.withdrawUnbonded();
    }

    function test_withdrawUnbonded_revertsIfNothingUnbonding() public {
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryNothingToWithdraw.selector, w1));
        vm.prank(w1);
        registry.withdrawUnbonded();
    }

    function test_withdrawUnbonded_revertsIfDelayNotPassed() public {
        vm.prank(w1);
        registry.requestUnbond(1 ether);
        vm.warp(START + UNBONDING_DELAY - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryUnbondingNotReady.selector, w1, START + UNBONDING_DELAY)
        );
        vm.prank(w1);
        registry.withdrawUnbonded();
    }

    function test_withdrawUnbonded_sendsAmountOnceDelayPassed() public {
        vm.prank(w1);
        registry.requestUnbond(4 ether);
        vm.warp(START + UNBONDING_DELAY);
        uint256 before = w1.balance;
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.Unbonded(w1, 4 ether);
        vm.prank(w1);
        registry.withdrawUnbonded();
        assertEq(w1.balance, before + 4 ether, "received");
        assertEq(registry.unbonding(w1).amount, 0, "cleared");
        assertEq(registry.workers(w1).stake, 6 ether, "rest bonded");
        assertEq(address(registry).balance, 46 ether, "balance");
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryNothingToWithdraw.selector, w1));
        vm.prank(w1);
        registry.withdrawUnbonded();
    }

    function test_claim_revertsIfUnbondingLeftStakeBelowMinimum() public {
        uint256 jobId = _post(_params());
        vm.prank(w1);
        registry.requestUnbond(WORKER_STAKE - 0.5 ether);
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryStakeBelowMinimum.selector, w1, 0.5 ether, MIN_STAKE
            )
        );
        _claim(w1, jobId, 0);
    }

    // ------------------------------------------------------------ onlyMarket

    function test_lock_revertsIfNotMarket() public {
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryNotMarket.selector, w1));
        vm.prank(w1);
        registry.lock(w1, 1, 0);
    }

    function test_release_revertsIfNotMarket() public {
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryNotMarket.selector, requester));
        vm.prank(requester);
        registry.release(w1, 0, 1);
    }

    function test_slash_revertsIfNotMarket() public {
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryNotMarket.selector, stranger));
        vm.prank(stranger);
        registry.slash(w1, 1 ether, 1, stranger);
    }

    // ------------------------------------- lock/release/slash, as the market

    function test_lock_locksFreeStake() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.CollateralLocked(w1, 3 ether);
        vm.prank(address(market));
        registry.lock(w1, 3 ether, WORKER_STAKE); // minimum equal to stake is enough
        assertEq(_locked(w1), 3 ether, "locked");
        assertEq(registry.freeStake(w1), 7 ether, "free");
    }

    function test_lock_revertsIfStakeBelowMinimum() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryStakeBelowMinimum.selector, w1, WORKER_STAKE, WORKER_STAKE + 1
            )
        );
        vm.prank(address(market));
        registry.lock(w1, 1, WORKER_STAKE + 1);
    }

    function test_lock_revertsIfAboveFreeStake() public {
        vm.prank(address(market));
        registry.lock(w1, 6 ether, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryInsufficientFreeStake.selector, w1, 4 ether, 5 ether)
        );
        vm.prank(address(market));
        registry.lock(w1, 5 ether, 0);
    }

    function test_release_unlocksAndCountsSettled() public {
        vm.startPrank(address(market));
        registry.lock(w1, 3 ether, 0);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.CollateralReleased(w1, 2 ether, 2);
        registry.release(w1, 2 ether, 2);
        vm.stopPrank();
        IWorkerRegistry.Worker memory info = registry.workers(w1);
        assertEq(info.locked, 1 ether, "locked");
        assertEq(info.stake, WORKER_STAKE, "stake");
        assertEq(info.settled, 2, "settled");
    }

    function test_release_revertsIfMoreThanLocked() public {
        vm.startPrank(address(market));
        registry.lock(w1, 1 ether, 0);
        vm.expectRevert(UNDERFLOW);
        registry.release(w1, 1 ether + 1, 0);
        vm.stopPrank();
    }

    function test_slash_movesCollateralToBeneficiaryCredit() public {
        vm.startPrank(address(market));
        registry.lock(w1, 3 ether, 0);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.Slashed(w1, requester, 2 ether, 2);
        registry.slash(w1, 2 ether, 2, requester);
        vm.stopPrank();
        IWorkerRegistry.Worker memory info = registry.workers(w1);
        assertEq(info.stake, 8 ether, "stake");
        assertEq(info.locked, 1 ether, "locked");
        assertEq(info.slashed, 2, "slashed counter");
        assertEq(registry.credits(requester), 2 ether, "credit");
        assertEq(address(registry).balance, 50 ether, "ETH only changes hands");
    }

    function test_slash_revertsIfMoreThanLocked() public {
        vm.startPrank(address(market));
        registry.lock(w1, 1 ether, 0);
        vm.expectRevert(UNDERFLOW);
        registry.slash(w1, 2 ether, 1, requester);
        vm.stopPrank();
    }

    // ------------------------------------------------- through the market

    function test_slash_creditsRequesterOfTheFailedJob() public {
        // Two requesters; w1 fails the second one's job: only that requester is credited.
        address other = address(0x0BB);
        vm.deal(other, 1 ether);
        IJobMarket.JobParams memory p = _singleParams();
        _post(p);
        vm.prank(other);
        uint256 jobId = market.postJob{value: REWARD}(p);
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE + 1);
        market.resolve(jobId, 0, w1);
        assertEq(registry.credits(other), COLLATERAL, "job's requester credited");
        assertEq(registry.credits(requester), 0, "other requester not credited");
        assertEq(market.credits(other), 0, "slash is not a market credit");
    }

    function test_collect_countsSettledAndSlashedInRegistry() public {
        uint256 jobId = _post(_params());
        bytes32 x = _honest(jobId, 0);
        _play(jobId, 0, _addrs(w1, w2, w3), _words(x, _bad(jobId, 0, 1), x));
        _collect(w1, jobId, 0);
        _collect(w2, jobId, 0);
        _collect(w3, jobId, 0);
        assertEq(registry.workers(w1).settled, 1, "w1 settled");
        assertEq(registry.workers(w3).settled, 1, "w3 settled");
        assertEq(registry.workers(w2).settled, 0, "w2 settled");
        assertEq(registry.workers(w2).slashed, 1, "w2 slashed");
        assertEq(registry.workers(w1).slashed + registry.workers(w3).slashed, 0, "no other slash");
    }

    // ------------------------------------------------------------ announce

    function test_announce_emitsEndpoint() public {
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.EndpointAnnounced(w1, "http://127.0.0.1:8080");
        vm.prank(w1);
        registry.announce("http://127.0.0.1:8080");
    }

    function test_announce_revertsIfTooLong() public {
        bytes memory long = new bytes(257);
        vm.expectRevert(abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryEndpointTooLong.selector, 257, 256));
        vm.prank(w1);
        registry.announce(string(long));
    }
}
