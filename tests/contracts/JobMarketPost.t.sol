// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {MarketFixture, vm} from "./Base.sol";

/// @notice postJob validation and escrow, cancelJob, expireJob, refund.
contract JobMarketPostTest is MarketFixture {
    // ------------------------------------------------------------ postJob

    function test_postJob_storesJobAndTakesExactEscrow() public {
        IJobMarket.JobParams memory p = _params();
        uint256 before = requester.balance;
        vm.prank(requester);
        uint256 jobId = market.postJob{value: 0.09 ether}(p); // 0.01 ether * 3 replicas * 3 tasks

        assertEq(jobId, 1, "first job id");
        assertEq(market.jobCount(), 1, "jobCount");
        assertEq(address(market).balance, 0.09 ether, "market balance");
        assertEq(requester.balance, before - 0.09 ether, "requester paid");
        IJobMarket.Job memory j = _job(jobId);
        assertEq(j.requester, requester, "requester");
        assertEq(uint256(j.state), uint256(IJobMarket.JobState.Map), "state");
        assertEq(j.replication, 3, "replication");
        assertEq(j.quorum, 2, "quorum");
        assertEq(j.maxRounds, 2, "maxRounds");
        assertEq(j.leaseDuration, LEASE, "lease");
        assertEq(j.revealWindow, REVEAL, "reveal window");
        assertEq(j.rewardPerReplica, REWARD, "reward");
        assertEq(j.collateral, COLLATERAL, "collateral");
        assertEq(j.minStake, MIN_STAKE, "minStake");
        assertEq(j.deadline, START + 1 days, "deadline");
        assertEq(j.hasClaims, false, "hasClaims");
        assertEq(j.mapTasks, 2, "mapTasks");
        assertEq(j.reduceTasks, 1, "reduceTasks");
        assertEq(j.settledTasks, 0, "settledTasks");
        assertEq(j.horizon, 0, "horizon");
        assertEq(j.paid + j.owed + j.refunded, 0, "nothing spent");
        assertEq(j.escrow, 0.09 ether, "escrow");
        assertEq(j.specDigest, SPEC, "spec");
    }

    function test_postJob_emitsJobPostedAndStateChanged() public {
        IJobMarket.JobParams memory p = _params();
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobPosted(1, requester, SPEC, 2, 1, 3, 2, REWARD, 0.09 ether);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(1, IJobMarket.JobState.Map);
        _post(p);
    }

    function test_postJob_assignsSequentialIds() public {
        assertEq(_post(_params()), 1, "id 1");
        assertEq(_post(_singleParams()), 2, "id 2");
        assertEq(market.jobCount(), 2, "jobCount");
        assertEq(address(market).balance, 0.09 ether + 0.01 ether, "both escrows held");
    }

    function test_job_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 1));
        market.job(1);
    }

    function test_postJob_revertsIfNoMapTasks() public {
        IJobMarket.JobParams memory p = _params();
        p.mapTasks = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidTaskCounts.selector, 0, 1));
        vm.prank(requester);
        market.postJob{value: 0}(p);
    }

    function test_postJob_revertsIfTaskCountOverflowsUint32() public {
        IJobMarket.JobParams memory p = _params();
        p.mapTasks = type(uint32).max;
        p.reduceTasks = 1;
        p.rewardPerReplica = 0;
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketInvalidTaskCounts.selector, uint256(type(uint32).max), 1)
        );
        vm.prank(requester);
        market.postJob(p);
    }

    function test_postJob_acceptsTaskCountAtUint32Max() public {
        IJobMarket.JobParams memory p = _params();
        p.mapTasks = type(uint32).max - 1;
        p.reduceTasks = 1;
        p.rewardPerReplica = 0; // zero escrow keeps the value small
        vm.prank(requester);
        uint256 jobId = market.postJob(p);
        assertEq(_job(jobId).mapTasks + uint256(_job(jobId).reduceTasks), type(uint32).max, "task count");
    }

    function test_postJob_revertsIfReplicationZero() public {
        IJobMarket.JobParams memory p = _params();
        p.replication = 0;
        p.quorum = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidQuorum.selector, 0, 0));
        vm.prank(requester);
        market.postJob(p);
    }

    function test_postJob_revertsIfReplicationAboveMax() public {
        IJobMarket.JobParams memory p = _params();
        p.replication = 17;
        p.quorum = 9;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidQuorum.selector, 17, 9));
        vm.prank(requester);
        market.postJob{value: uint256(REWARD) * 17 * 3}(p);
    }

    function test_postJob_acceptsMaxReplication() public {
        assertEq(market.MAX_REPLICATION(), 16, "MAX_REPLICATION");
        IJobMarket.JobParams memory p = _params();
        p.replication = 16;
        p.quorum = 16;
        vm.prank(requester);
        uint256 jobId = market.postJob{value: uint256(REWARD) * 16 * 3}(p);
        assertEq(_job(jobId).replication, 16, "replication");
    }

    function test_postJob_revertsIfQuorumZero() public {
        IJobMarket.JobParams memory p = _params();
        p.quorum = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidQuorum.selector, 3, 0));
        vm.prank(requester);
        market.postJob{value: 0.09 ether}(p);
    }

    function test_postJob_revertsIfQuorumAboveReplication() public {
        IJobMarket.JobParams memory p = _params();
        p.quorum = 4;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidQuorum.selector, 3, 4));
        vm.prank(requester);
        market.postJob{value: 0.09 ether}(p);
    }

    function test_postJob_revertsIfMaxRoundsZero() public {
        IJobMarket.JobParams memory p = _params();
        p.maxRounds = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidMaxRounds.selector, 0));
        vm.prank(requester);
        market.postJob{value: 0.09 ether}(p);
    }

    function test_postJob_revertsIfLeaseZero() public {
        IJobMarket.JobParams memory p = _params();
        p.leaseDuration = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidWindows.selector, 0, REVEAL, TIMEOUT));
        vm.prank(requester);
        market.postJob{value: 0.09 ether}(p);
    }

    function test_postJob_revertsIfRevealWindowZero() public {
        IJobMarket.JobParams memory p = _params();
        p.revealWindow = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidWindows.selector, LEASE, 0, TIMEOUT));
        vm.prank(requester);
        market.postJob{value: 0.09 ether}(p);
    }

    function test_postJob_revertsIfJobTimeoutZero() public {
        IJobMarket.JobParams memory p = _params();
        p.jobTimeout = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidWindows.selector, LEASE, REVEAL, 0));
        vm.prank(requester);
        market.postJob{value: 0.09 ether}(p);
    }

    function test_postJob_revertsIfEscrowShort() public {
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketEscrowMismatch.selector, 0.09 ether, 0.09 ether - 1)
        );
        vm.prank(requester);
        market.postJob{value: 0.09 ether - 1}(_params());
    }

    function test_postJob_revertsIfEscrowExcessive() public {
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketEscrowMismatch.selector, 0.09 ether, 0.09 ether + 1)
        );
        vm.prank(requester);
        market.postJob{value: 0.09 ether + 1}(_params());
    }

    // ---------------------------------------------------------- cancelJob

    function test_cancelJob_creditsWholeEscrowIfNoClaims() public {
        uint256 jobId = _post(_params());
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(jobId, IJobMarket.JobState.Cancelled);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.Refunded(jobId, requester, 0.09 ether);
        vm.prank(requester);
        market.cancelJob(jobId);

        IJobMarket.Job memory j = _job(jobId);
        assertEq(uint256(j.state), uint256(IJobMarket.JobState.Cancelled), "state");
        assertEq(j.refunded, 0.09 ether, "refunded");
        assertEq(market.credits(requester), 0.09 ether, "credit");
        assertEq(address(market).balance, 0.09 ether, "ETH stays until withdraw");
    }

    function test_cancelJob_revertsIfNotRequester() public {
        uint256 jobId = _post(_params());
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNotRequester.selector, jobId, stranger));
        vm.prank(stranger);
        market.cancelJob(jobId);
    }

    function test_cancelJob_revertsIfJobHasClaims() public {
        uint256 jobId = _post(_params());
        _claim(w1, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketJobHasClaims.selector, jobId));
        vm.prank(requester);
        market.cancelJob(jobId);
    }

    function test_cancelJob_revertsIfClaimWasResolvedAway() public {
        // A claim that ended (here: a slashed no-show) still closes cancellation.
        uint256 jobId = _post(_params());
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE + 1);
        market.resolve(jobId, 0, w1);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketJobHasClaims.selector, jobId));
        vm.prank(requester);
        market.cancelJob(jobId);
    }

    function test_cancelJob_revertsIfAlreadyCancelled() public {
        uint256 jobId = _post(_params());
        vm.prank(requester);
        market.cancelJob(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarketJobNotActive.selector, jobId, IJobMarket.JobState.Cancelled
            )
        );
        vm.prank(requester);
        market.cancelJob(jobId);
    }

    function test_cancelJob_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 7));
        vm.prank(requester);
        market.cancelJob(7);
    }

    // ---------------------------------------------------------- expireJob

    function test_expireJob_revertsIfDeadlineNotPassed() public {
        uint256 jobId = _post(_params());
        vm.warp(START + TIMEOUT); // the deadline itself is still inside the job's time
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketJobNotExpired.selector, jobId, START + TIMEOUT));
        market.expireJob(jobId);
    }

    function test_expireJob_marksExpiredAfterDeadline() public {
        uint256 jobId = _post(_params());
        vm.warp(START + TIMEOUT + 1);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(jobId, IJobMarket.JobState.Expired);
        vm.prank(stranger);
        market.expireJob(jobId);
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Expired), "state");
    }

    function test_expireJob_revertsIfJobNotActive() public {
        uint256 jobId = _post(_params());
        vm.warp(START + TIMEOUT + 1);
        market.expireJob(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotActive.selector, jobId, IJobMarket.JobState.Expired)
        );
        market.expireJob(jobId);
    }

    function test_expireJob_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 3));
        market.expireJob(3);
    }

    // ------------------------------------------------------------- refund

    function test_refund_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 1));
        market.refund(1);
    }

    function test_refund_revertsIfJobNotFinished() public {
        uint256 jobId = _post(_params());
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotFinished.selector, jobId, IJobMarket.JobState.Map)
        );
        market.refund(jobId);
    }

    function test_refund_revertsIfJobInReducePhase() public {
        uint256 jobId = _post(_params());
        _settleHonestly(jobId, 0);
        _settleHonestly(jobId, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotFinished.selector, jobId, IJobMarket.JobState.Reduce)
        );
        market.refund(jobId);
    }

    function test_refund_creditsWholeEscrowOfExpiredJobWithoutReveals() public {
        uint256 jobId = _post(_params());
        _claimCommit(w1, jobId, 0, _honest(jobId, 0));
        vm.warp(START + TIMEOUT + 1);
        market.expireJob(jobId);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.Refunded(jobId, requester, 0.09 ether);
        vm.prank(stranger); // anyone may trigger it; the credit goes to the requester
        uint256 amount = market.refund(jobId);
        assertEq(amount, 0.09 ether, "amount");
        assertEq(market.credits(requester), 0.09 ether, "requester credit");
        assertEq(market.credits(stranger), 0, "caller credit");
        assertEq(_job(jobId).refunded, 0.09 ether, "refunded");
    }

    function test_refund_revertsIfNothingToRefund() public {
        uint256 jobId = _post(_params());
        vm.warp(START + TIMEOUT + 1);
        market.expireJob(jobId);
        market.refund(jobId);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNothingToRefund.selector, jobId));
        market.refund(jobId);
    }

    function test_refund_revertsIfCancelled() public {
        uint256 jobId = _post(_params());
        vm.prank(requester);
        market.cancelJob(jobId);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNothingToRefund.selector, jobId));
        market.refund(jobId);
    }

    /// @dev Completes the default job with 7 of 9 replicas agreeing: task 0 three
    /// agree, task 1 one dissents, task 2 one never reveals.
    function _completeWithSevenAgreeing() internal returns (uint256 jobId, uint256 lastRevealDeadline) {
        jobId = _post(_params());
        _settleHonestly(jobId, 0);
        bytes32 d1 = _honest(jobId, 1);
        _play(jobId, 1, _addrs(w1, w2, w3), _words(d1, d1, _bad(jobId, 1, 0)));
        vm.warp(block.timestamp + 10 minutes);
        bytes32 d2 = _honest(jobId, 2);
        _claimCommit(w1, jobId, 2, d2);
        _claimCommit(w2, jobId, 2, d2);
        _claimCommit(w3, jobId, 2, d2);
        lastRevealDeadline = block.timestamp + REVEAL;
        _reveal(w1, jobId, 2, d2);
        _reveal(w2, jobId, 2, d2);
    }

    function test_refund_revertsIfBeforeHorizon() public {
        (uint256 jobId, uint256 horizon) = _completeWithSevenAgreeing();
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Completed), "completed");
        assertEq(_job(jobId).horizon, horizon, "horizon is the last reveal deadline");
        vm.warp(horizon);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRefundNotReady.selector, jobId, horizon));
        market.refund(jobId);
    }

    function test_refund_creditsExactlyTheUnearnedEscrow() public {
        (uint256 jobId, uint256 horizon) = _completeWithSevenAgreeing();
        vm.warp(horizon + 1);
        uint256 amount = market.refund(jobId);
        // 9 replica rewards escrowed, 7 earned (6 collected or not, all owed).
        assertEq(amount, 0.09 ether - 7 * 0.01 ether, "refund");
        assertEq(market.credits(requester), 0.02 ether, "credit");
        IJobMarket.Job memory j = _job(jobId);
        assertEq(j.owed, 0.07 ether, "owed stays for the workers");
        assertEq(j.refunded, 0.02 ether, "refunded");
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNothingToRefund.selector, jobId));
        market.refund(jobId);

        // Every owed reward can still be collected after the refund.
        assertEq(_collect(w1, jobId, 0) + _collect(w1, jobId, 1) + _collect(w1, jobId, 2), 0.03 ether, "w1");
        assertEq(_collect(w2, jobId, 0) + _collect(w2, jobId, 1) + _collect(w2, jobId, 2), 0.03 ether, "w2");
        assertEq(_collect(w3, jobId, 0), 0.01 ether, "w3 task 0");
        j = _job(jobId);
        assertEq(j.paid, 0.07 ether, "paid");
        assertEq(j.owed, 0, "owed");
        assertEq(uint256(j.escrow) - j.paid - j.refunded, 0, "escrow fully spent");
        assertEq(address(market).balance, market.credits(requester) + 0.07 ether, "balance == credits");
    }
}
