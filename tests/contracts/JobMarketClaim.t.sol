// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";
import {MarketFixture, vm} from "./Base.sol";

/// @notice claim and commit.
contract JobMarketClaimTest is MarketFixture {
    uint256 internal jobId;

    function setUp() public override {
        super.setUp();
        jobId = _post(_params());
    }

    function _stateOf(IJobMarket.ReplicaState s) internal pure returns (uint256) {
        return uint256(s);
    }

    // -------------------------------------------------------------- claim

    function test_claim_recordsReplicaAndLocksCollateral() public {
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskClaimed(jobId, 0, w1, 0, START + LEASE);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.CollateralLocked(w1, COLLATERAL);
        _claim(w1, jobId, 0);

        IJobMarket.Replica memory r = _rep(jobId, 0, w1);
        assertEq(_stateOf(r.state), _stateOf(IJobMarket.ReplicaState.Claimed), "replica state");
        assertEq(r.deadline, START + LEASE, "lease deadline");
        assertEq(r.round, 0, "round");
        assertEq(bytes32(r.hash), bytes32(0), "no hash yet");
        assertEq(_task(jobId, 0).claimed, 1, "task claimed");
        assertEq(_job(jobId).hasClaims, true, "hasClaims");
        assertEq(_locked(w1), COLLATERAL, "locked");
        assertEq(registry.freeStake(w1), WORKER_STAKE - COLLATERAL, "free stake");
        assertEq(registry.workers(w1).stake, WORKER_STAKE, "stake unchanged");
    }

    function test_claim_locksCollateralPerTaskInBatch() public {
        vm.prank(w1);
        market.claim(jobId, _ids(0, 1));
        assertEq(_locked(w1), 2 * COLLATERAL, "locked for two claims");
        assertEq(_task(jobId, 0).claimed, 1, "task 0");
        assertEq(_task(jobId, 1).claimed, 1, "task 1");
    }

    function test_claim_revertsIfEmptyBatch() public {
        vm.expectRevert(_err(IJobMarket.JobMarketEmptyBatch.selector));
        vm.prank(w1);
        market.claim(jobId, new uint256[](0));
    }

    function test_claim_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 9));
        vm.prank(w1);
        market.claim(9, _ids(0));
    }

    function test_claim_revertsIfJobNotActive() public {
        vm.prank(requester);
        market.cancelJob(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotActive.selector, jobId, IJobMarket.JobState.Cancelled)
        );
        _claim(w1, jobId, 0);
    }

    function test_claim_revertsIfTaskOutOfRange() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketTaskOutOfRange.selector, jobId, 3, 3));
        _claim(w1, jobId, 3);
    }

    function test_claim_revertsIfReduceTaskInMapPhase() public {
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketTaskNotInPhase.selector, jobId, 2, IJobMarket.JobState.Map)
        );
        _claim(w1, jobId, 2);
    }

    function test_claim_revertsIfMapTaskInReducePhase() public {
        _settleHonestly(jobId, 0);
        _settleHonestly(jobId, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketTaskNotInPhase.selector, jobId, 0, IJobMarket.JobState.Reduce)
        );
        _claim(w4, jobId, 0);
    }

    function test_claim_revertsIfTaskSettled() public {
        // Task 0 settles while task 1 keeps the job in the map phase.
        _settleHonestly(jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketTaskSettled.selector, jobId, 0));
        _claim(w4, jobId, 0);
    }

    function test_claim_revertsIfTaskFull() public {
        _claim(w1, jobId, 0);
        _claim(w2, jobId, 0);
        _claim(w3, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketTaskFull.selector, jobId, 0, 3));
        _claim(w4, jobId, 0);
    }

    function test_claim_revertsIfAlreadyClaimed() public {
        _claim(w1, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketAlreadyClaimed.selector, jobId, 0, w1));
        _claim(w1, jobId, 0);
    }

    function test_claim_revertsIfTaskRepeatedInBatch() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketAlreadyClaimed.selector, jobId, 0, w1));
        vm.prank(w1);
        market.claim(jobId, _ids(0, 0));
        assertEq(_task(jobId, 0).claimed, 0, "nothing claimed");
    }

    function test_claim_revertsIfSlashedInSameRound() public {
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE + 1);
        market.resolve(jobId, 0, w1); // no-show: slashed, slot freed
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketAlreadyClaimed.selector, jobId, 0, w1));
        _claim(w1, jobId, 0);
    }

    function test_claim_allowsWorkerSlashedInEarlierRound() public {
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE + 1);
        market.resolve(jobId, 0, w1); // slashed in round 0
        // Round 0 completes without quorum: three different digests.
        _play(jobId, 0, _addrs(w2, w3, w4), _words(_bad(jobId, 0, 1), _bad(jobId, 0, 2), _bad(jobId, 0, 3)));
        assertEq(_task(jobId, 0).round, 1, "round 1");

        _claim(w1, jobId, 0);
        IJobMarket.Replica memory r = _rep(jobId, 0, w1);
        assertEq(_stateOf(r.state), _stateOf(IJobMarket.ReplicaState.Claimed), "claimed again");
        assertEq(r.round, 1, "in round 1");
        assertEq(r.deadline, block.timestamp + LEASE, "fresh lease");
        assertEq(_locked(w1), COLLATERAL, "one collateral locked");
        assertEq(registry.workers(w1).stake, WORKER_STAKE - COLLATERAL, "stake after slash");
    }

    function test_claim_revertsIfEarlierRoundReplicaNotCollected() public {
        _play(jobId, 0, _addrs(w1, w2, w3), _words(_bad(jobId, 0, 1), _bad(jobId, 0, 2), _bad(jobId, 0, 3)));
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarketWrongReplicaState.selector, jobId, 0, w1, IJobMarket.ReplicaState.Revealed
            )
        );
        _claim(w1, jobId, 0);
        _collect(w1, jobId, 0); // released
        _claim(w1, jobId, 0);
        assertEq(_rep(jobId, 0, w1).round, 1, "claimed in round 1");
    }

    function test_claim_revertsIfStakeBelowMinimum() public {
        address poor = address(0xBEEF);
        _stake(poor, MIN_STAKE - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryStakeBelowMinimum.selector, poor, MIN_STAKE - 1, MIN_STAKE
            )
        );
        _claim(poor, jobId, 0);
    }

    function test_claim_revertsIfUnregistered() public {
        vm.expectRevert(
            abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryStakeBelowMinimum.selector, stranger, 0, MIN_STAKE)
        );
        _claim(stranger, jobId, 0);
    }

    function test_claim_revertsIfInsufficientFreeStake() public {
        address thin = address(0xBEEF);
        _stake(thin, MIN_STAKE); // meets the minimum, 1 ether free
        IJobMarket.JobParams memory p = _params();
        p.collateral = 0.6 ether;
        uint256 id = _post(p);
        // Two claims need 1.2 ether of collateral.
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryInsufficientFreeStake.selector, thin, MIN_STAKE, 1.2 ether
            )
        );
        vm.prank(thin);
        market.claim(id, _ids(0, 1));
        // One fits; then the second alone does not (0.4 ether free).
        _claim(thin, id, 0);
        assertEq(_locked(thin), 0.6 ether, "locked");
        vm.expectRevert(
            abi.encodeWithSelector(
                IWorkerRegistry.WorkerRegistryInsufficientFreeStake.selector, thin, 0.4 ether, 0.6 ether
            )
        );
        _claim(thin, id, 1);
    }

    function test_claim_batchIsAllOrNothing() public {
        _claim(w2, jobId, 1);
        _claim(w3, jobId, 1);
        _claim(w4, jobId, 1);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketTaskFull.selector, jobId, 1, 3));
        vm.prank(w1);
        market.claim(jobId, _ids(0, 1));
        assertEq(_stateOf(_rep(jobId, 0, w1).state), 0, "task 0 not claimed");
        assertEq(_task(jobId, 0).claimed, 0, "task 0 count");
        assertEq(_locked(w1), 0, "nothing locked");
    }

    function test_claim_reopensStaleRoundFirst() public {
        _claimCommit(w1, jobId, 0, _honest(jobId, 0));
        _claimCommit(w2, jobId, 0, _bad(jobId, 0, 1));
        _claimCommit(w3, jobId, 0, _bad(jobId, 0, 2));
        uint256 deadline = block.timestamp + REVEAL;
        _reveal(w1, jobId, 0, _honest(jobId, 0));
        vm.warp(deadline + 1);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskReopened(jobId, 0, 1);
        _claim(w4, jobId, 0);
        IJobMarket.Task memory t = _task(jobId, 0);
        assertEq(t.round, 1, "round");
        assertEq(t.claimed, 1, "claimed");
        assertEq(t.committed + t.revealed + t.revealDeadline, 0, "fresh round");
    }

    function test_claim_revertsIfStaleRoundWasTheLast() public {
        uint256 id = _post(_shape(2, 0, 2, 2, 1));
        _claimCommit(w1, id, 0, _honest(id, 0));
        _claimCommit(w2, id, 0, _honest(id, 0));
        vm.warp(block.timestamp + REVEAL + 1);
        // The claim would fail the job; the revert undoes that, poke is the way to do it.
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotActive.selector, id, IJobMarket.JobState.Failed)
        );
        vm.prank(w3);
        market.claim(id, _ids(1, 0));
        assertEq(_state(id), uint256(IJobMarket.JobState.Map), "still map");
    }

    // ------------------------------------------------------------- commit

    function test_commit_recordsCommitmentPrefix() public {
        _claim(w1, jobId, 0);
        bytes32 c = _commitment(_honest(jobId, 0), _salt(w1, 0), w1, jobId, 0);
        assertEq(c, market.commitmentOf(_honest(jobId, 0), _salt(w1, 0), w1, jobId, 0), "commitmentOf");
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ResultCommitted(jobId, 0, w1, c);
        _commit(w1, jobId, 0, _honest(jobId, 0));

        IJobMarket.Replica memory r = _rep(jobId, 0, w1);
        assertEq(_stateOf(r.state), _stateOf(IJobMarket.ReplicaState.Committed), "state");
        assertEq(bytes32(r.hash), bytes32(bytes24(c)), "hash prefix");
        IJobMarket.Task memory t = _task(jobId, 0);
        assertEq(t.committed, 1, "committed");
        assertEq(t.revealDeadline, 0, "reveal not open");
    }

    function test_commit_opensRevealWhenAllReplicasCommitted() public {
        _claimCommit(w1, jobId, 0, _honest(jobId, 0));
        _claimCommit(w2, jobId, 0, _honest(jobId, 0));
        _claim(w3, jobId, 0);
        vm.warp(START + 20 minutes);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.RevealOpened(jobId, 0, 0, START + 20 minutes + REVEAL);
        _commit(w3, jobId, 0, _honest(jobId, 0));
        assertEq(_task(jobId, 0).revealDeadline, START + 20 minutes + REVEAL, "reveal deadline");
        assertEq(_task(jobId, 0).committed, 3, "committed");
        assertEq(_job(jobId).horizon, START + 20 minutes + REVEAL, "horizon");
    }

    function test_commit_horizonIsLatestRevealDeadline() public {
        vm.prank(w1);
        market.claim(jobId, _ids(0, 1));
        vm.prank(w2);
        market.claim(jobId, _ids(0, 1));
        vm.prank(w3);
        market.claim(jobId, _ids(0, 1));
        _commit(w1, jobId, 1, _honest(jobId, 1));
        _commit(w2, jobId, 1, _honest(jobId, 1));
        vm.warp(START + 40 minutes);
        _commit(w3, jobId, 1, _honest(jobId, 1)); // task 1 opens first ...
        _commit(w1, jobId, 0, _honest(jobId, 0));
        _commit(w2, jobId, 0, _honest(jobId, 0));
        vm.warp(START + 50 minutes);
        _commit(w3, jobId, 0, _honest(jobId, 0)); // ... task 0 later
        assertEq(_job(jobId).horizon, START + 50 minutes + REVEAL, "latest deadline");
    }

    function test_commit_acceptsBatchAcrossTasks() public {
        vm.prank(w1);
        market.claim(jobId, _ids(0, 1));
        bytes32 c0 = _commitment(_honest(jobId, 0), bytes32("s0"), w1, jobId, 0);
        bytes32 c1 = _commitment(_honest(jobId, 1), bytes32("s1"), w1, jobId, 1);
        vm.prank(w1);
        market.commit(jobId, _ids(0, 1), _words(c0, c1));
        assertEq(bytes32(_rep(jobId, 0, w1).hash), bytes32(bytes24(c0)), "task 0");
        assertEq(bytes32(_rep(jobId, 1, w1).hash), bytes32(bytes24(c1)), "task 1");
    }

    function test_commit_revertsIfEmptyBatch() public {
        vm.expectRevert(_err(IJobMarket.JobMarketEmptyBatch.selector));
        vm.prank(w1);
        market.commit(jobId, new uint256[](0), new bytes32[](0));
    }

    function test_commit_revertsIfLengthMismatch() public {
        _claim(w1, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketLengthMismatch.selector, 1, 2));
        vm.prank(w1);
        market.commit(jobId, _ids(0), _words(bytes32("a"), bytes32("b")));
    }

    function test_commit_revertsIfZeroHash() public {
        _claim(w1, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketZeroHash.selector, jobId, 0));
        vm.prank(w1);
        market.commit(jobId, _ids(0), _words(bytes32(0)));
    }

    function test_commit_revertsIfStoredPrefixZero() public {
        // Only the first 24 bytes are stored: a commitment must not read as empty there.
        _claim(w1, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketZeroHash.selector, jobId, 0));
        vm.prank(w1);
        market.commit(jobId, _ids(0), _words(bytes32(uint256(type(uint64).max))));
    }

    function test_commit_revertsIfNotClaimed() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarketWrongReplicaState.selector, jobId, 0, w1, IJobMarket.ReplicaState.None
            )
        );
        _commit(w1, jobId, 0, _honest(jobId, 0));
    }

    function test_commit_revertsIfAlreadyCommitted() public {
        _claimCommit(w1, jobId, 0, _honest(jobId, 0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarketWrongReplicaState.selector, jobId, 0, w1, IJobMarket.ReplicaState.Committed
            )
        );
        _commit(w1, jobId, 0, _bad(jobId, 0, 1));
    }

    function test_commit_acceptsAtLeaseDeadline() public {
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE);
        _commit(w1, jobId, 0, _honest(jobId, 0));
        assertEq(_task(jobId, 0).committed, 1, "committed");
    }

    function test_commit_revertsIfLeaseExpired() public {
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE + 1);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketLeaseExpired.selector, jobId, 0, START + LEASE));
        _commit(w1, jobId, 0, _honest(jobId, 0));
    }

    function test_commit_revertsIfJobNotActive() public {
        _claim(w1, jobId, 0);
        vm.warp(START + TIMEOUT + 1);
        market.expireJob(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotActive.selector, jobId, IJobMarket.JobState.Expired)
        );
        _commit(w1, jobId, 0, _honest(jobId, 0));
    }

    function test_commit_revertsIfClaimFromEarlierRound() public {
        // w1 slashed as a no-show in round 0 keeps a Slashed marker: it cannot commit.
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE + 1);
        market.resolve(jobId, 0, w1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarketWrongReplicaState.selector, jobId, 0, w1, IJobMarket.ReplicaState.Slashed
            )
        );
        _commit(w1, jobId, 0, _honest(jobId, 0));
    }
}
