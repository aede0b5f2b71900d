// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";
import {DefaultJobFixture, vm} from "./Base.sol";

/// @notice collect and resolve: Paid, Slashed and Released outcomes and their money.
contract JobMarketSettleTest is DefaultJobFixture {

    function _outcome(uint256 id, uint256 taskId, address w) internal returns (uint256) {
        return uint256(market.resolve(id, taskId, w));
    }

    function _expectNotResolvable(uint256 id, uint256 taskId, address w, IJobMarket.ReplicaState s) internal {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNotResolvable.selector, id, taskId, w, s));
    }

    function _expectWrongState(uint256 id, uint256 taskId, address w, IJobMarket.ReplicaState s) internal {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketWrongReplicaState.selector, id, taskId, w, s));
    }

    /// @dev Asserts `w` lost exactly one collateral to the requester and holds nothing locked.
    function _assertSlashedOnce(address w) internal view {
        IWorkerRegistry.Worker memory info = registry.workers(w);
        assertEq(info.stake, WORKER_STAKE - COLLATERAL, "stake lost one collateral");
        assertEq(info.locked, 0, "nothing locked");
        assertEq(info.slashed, 1, "slashed counter");
        assertEq(info.settled, 0, "settled counter");
    }

    /// @dev Asserts `w` got its collateral back without reward or penalty.
    function _assertReleased(address w) internal view {
        IWorkerRegistry.Worker memory info = registry.workers(w);
        assertEq(info.stake, WORKER_STAKE, "stake intact");
        assertEq(info.locked, 0, "nothing locked");
        assertEq(info.slashed + info.settled, 0, "no counters");
        assertEq(market.credits(w), 0, "no reward");
    }

    // --------------------------------------------------------------- Paid

    function test_collect_paysAgreeingReplica() public {
        _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);

        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ReplicaResolved(jobId, 0, w1, IJobMarket.Outcome.Paid, REWARD);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.CollateralReleased(w1, COLLATERAL, 1);
        uint256 reward = _collect(w1, jobId, 0);

        assertEq(reward, REWARD, "returned reward");
        assertEq(market.credits(w1), 0.01 ether, "credited");
        IWorkerRegistry.Worker memory info = registry.workers(w1);
        assertEq(info.locked, 0, "collateral released");
        assertEq(info.stake, WORKER_STAKE, "stake intact");
        assertEq(info.settled, 1, "settled counter");
        assertEq(info.slashed, 0, "slashed counter");
        IJobMarket.Job memory j = _job(jobId);
        assertEq(j.paid, REWARD, "paid");
        assertEq(j.owed, REWARD, "w2 still owed");
        assertEq(uint256(_rep(jobId, 0, w1).state), uint256(IJobMarket.ReplicaState.None), "slot cleared");
    }

    function test_collect_revertsIfAlreadyPaid() public {
        _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        _collect(w1, jobId, 0);
        _expectWrongState(jobId, 0, w1, IJobMarket.ReplicaState.None);
        _collect(w1, jobId, 0);
        assertEq(market.credits(w1), REWARD, "paid once");
    }

    function test_collect_sumsBatchAndReleasesOnce() public {
        _settleHonestly(jobId, 0);
        _settleHonestly(jobId, 1);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.CollateralReleased(w2, 2 * COLLATERAL, 2);
        vm.prank(w2);
        uint256 reward = market.collect(jobId, _ids(0, 1));
        assertEq(reward, 0.02 ether, "two rewards");
        assertEq(market.credits(w2), 0.02 ether, "credited");
        assertEq(registry.workers(w2).settled, 2, "settled counter");
        assertEq(_locked(w2), 0, "released");
    }

    function test_collect_isAllOrNothing() public {
        _settleHonestly(jobId, 0);
        _claim(w1, jobId, 1); // lease still running: not resolvable
        _expectNotResolvable(jobId, 1, w1, IJobMarket.ReplicaState.Claimed);
        vm.prank(w1);
        market.collect(jobId, _ids(0, 1));
        assertEq(market.credits(w1), 0, "nothing credited");
        assertEq(_job(jobId).paid, 0, "nothing paid");
    }

    function test_resolve_creditsWorkerNotCaller() public {
        _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        vm.prank(stranger);
        assertEq(_outcome(jobId, 0, w1), uint256(IJobMarket.Outcome.Paid), "paid");
        assertEq(market.credits(w1), REWARD, "worker credited");
        assertEq(market.credits(stranger), 0, "caller not credited");
    }

    function test_collect_revertsIfEmptyBatch() public {
        vm.expectRevert(_err(IJobMarket.JobMarketEmptyBatch.selector));
        vm.prank(w1);
        market.collect(jobId, new uint256[](0));
    }

    function test_collect_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 4));
        vm.prank(w1);
        market.collect(4, _ids(0));
    }

    // ------------------------------------------------------- not resolvable

    function test_resolve_revertsIfNoReplica() public {
        _expectWrongState(jobId, 0, w1, IJobMarket.ReplicaState.None);
        market.resolve(jobId, 0, w1);
    }

    function test_resolve_revertsIfLeaseRunning() public {
        _claim(w1, jobId, 0);
        vm.warp(START + LEASE);
        _expectNotResolvable(jobId, 0, w1, IJobMarket.ReplicaState.Claimed);
        market.resolve(jobId, 0, w1);
    }

    function test_resolve_revertsIfCommittedBeforeReveal() public {
        _claimCommit(w1, jobId, 0, d);
        vm.warp(START + TIMEOUT); // lease is irrelevant once committed
        _expectNotResolvable(jobId, 0, w1, IJobMarket.ReplicaState.Committed);
        market.resolve(jobId, 0, w1);
    }

    function test_resolve_revertsIfRevealedAndRoundOpen() public {
        _commitThree(d, _bad(jobId, 0, 1), d);
        _reveal(w1, jobId, 0, d);
        _expectNotResolvable(jobId, 0, w1, IJobMarket.ReplicaState.Revealed);
        market.resolve(jobId, 0, w1);
    }

    function test_resolve_revertsIfSettledAndRevealWindowOpen() public {
        uint256 deadline = _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        vm.warp(deadline); // w3 may still reveal (and be owed)
        _expectNotResolvable(jobId, 0, w3, IJobMarket.ReplicaState.Committed);
        market.resolve(jobId, 0, w3);
    }

    // ------------------------------------------------------------ Slashed

    function test_resolve_slashesDissentingReplica() public {
        _commitThree(d, d, _bad(jobId, 0, 1));
        _reveal(w3, jobId, 0, _bad(jobId, 0, 1));
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);

        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ReplicaResolved(jobId, 0, w3, IJobMarket.Outcome.Slashed, COLLATERAL);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IWorkerRegistry.Slashed(w3, requester, COLLATERAL, 1);
        assertEq(_outcome(jobId, 0, w3), uint256(IJobMarket.Outcome.Slashed), "outcome");

        _assertSlashedOnce(w3);
        assertEq(registry.credits(requester), COLLATERAL, "requester credited in registry");
        assertEq(market.credits(w3), 0, "no reward");
        assertEq(uint256(_rep(jobId, 0, w3).state), uint256(IJobMarket.ReplicaState.None), "slot cleared");
    }

    function test_collect_returnsZeroForSlashedReplica() public {
        _commitThree(d, d, _bad(jobId, 0, 1));
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        _reveal(w3, jobId, 0, _bad(jobId, 0, 1));
        assertEq(_collect(w3, jobId, 0), 0, "no reward");
        _assertSlashedOnce(w3);
    }

    function test_resolve_slashesMissedCommitAndFreesSlot() public {
        _claim(w1, jobId, 0);
        _claimCommit(w2, jobId, 0, d);
        _claimCommit(w3, jobId, 0, d);
        vm.warp(START + LEASE + 1);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ReplicaResolved(jobId, 0, w1, IJobMarket.Outcome.Slashed, COLLATERAL);
        vm.prank(stranger); // anyone may slash a no-show
        market.resolve(jobId, 0, w1);

        _assertSlashedOnce(w1);
        assertEq(registry.credits(requester), COLLATERAL, "requester credited");
        assertEq(_task(jobId, 0).claimed, 2, "slot freed");
        IJobMarket.Replica memory r = _rep(jobId, 0, w1);
        assertEq(uint256(r.state), uint256(IJobMarket.ReplicaState.Slashed), "marker kept");
        assertEq(r.round, 0, "marker round");
        _expectWrongState(jobId, 0, w1, IJobMarket.ReplicaState.Slashed);
        market.resolve(jobId, 0, w1); // cannot be slashed twice

        // Another worker takes the slot and the task settles.
        _claimCommit(w4, jobId, 0, d);
        assertEq(_task(jobId, 0).revealDeadline, block.timestamp + REVEAL, "reveal opened");
        _reveal(w2, jobId, 0, d);
        _reveal(w4, jobId, 0, d);
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(bytes24(d)), "settled");
    }

    function test_resolve_slashesMissedRevealOnSettledTask() public {
        uint256 deadline = _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        vm.warp(deadline + 1);
        assertEq(_outcome(jobId, 0, w3), uint256(IJobMarket.Outcome.Slashed), "outcome");
        _assertSlashedOnce(w3);
        assertEq(registry.credits(requester), COLLATERAL, "requester credited");
    }

    function test_resolve_slashesMissedRevealOfReopenedRound() public {
        uint256 deadline = _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        vm.warp(deadline + 1);
        // resolve itself closes the stale round.
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskReopened(jobId, 0, 1);
        assertEq(_outcome(jobId, 0, w2), uint256(IJobMarket.Outcome.Slashed), "w2 missed reveal");
        assertEq(_outcome(jobId, 0, w3), uint256(IJobMarket.Outcome.Slashed), "w3 missed reveal");
        assertEq(_outcome(jobId, 0, w1), uint256(IJobMarket.Outcome.Released), "w1 revealed: released");
        _assertSlashedOnce(w2);
        _assertSlashedOnce(w3);
        _assertReleased(w1);
        assertEq(registry.credits(requester), 2 * COLLATERAL, "requester credited twice");
    }

    function test_resolve_slashesMissedRevealOfLastRound() public {
        // One round only: the stale round fails the job, but a replica that sat
        // through its whole reveal window is still a missed reveal.
        uint256 id = _post(_shape(1, 0, 2, 2, 1));
        _claimCommit(w1, id, 0, _honest(id, 0));
        _claimCommit(w2, id, 0, _honest(id, 0));
        _reveal(w1, id, 0, _honest(id, 0));
        vm.warp(block.timestamp + REVEAL + 1);
        market.poke(id, 0);
        assertEq(_state(id), uint256(IJobMarket.JobState.Failed), "failed");
        assertEq(_outcome(id, 0, w2), uint256(IJobMarket.Outcome.Slashed), "silent w2 slashed");
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Released), "w1 released");
        _assertSlashedOnce(w2);
        _assertReleased(w1);
        assertEq(registry.credits(requester), COLLATERAL, "requester credited");
    }

    function test_resolve_slashesMissedRevealEvenIfResolveFailsTheJob() public {
        uint256 id = _post(_shape(1, 0, 2, 2, 1));
        _claimCommit(w1, id, 0, _honest(id, 0));
        _claimCommit(w2, id, 0, _honest(id, 0));
        vm.warp(block.timestamp + REVEAL + 1);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(id, IJobMarket.JobState.Failed);
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Slashed), "w1");
        assertEq(_outcome(id, 0, w2), uint256(IJobMarket.Outcome.Slashed), "w2");
    }

    function test_resolve_cannotSlashThroughWrappedRevealWindow() public {
        // Commit time + reveal window passes the uint32 clock. Wrapped, the
        // deadline would lie in the past: the reveal would close as it opened
        // and the requester could slash every committed worker at once.
        IJobMarket.JobParams memory p = _shape(1, 0, 2, 2, 2);
        p.revealWindow = uint32(uint256(type(uint32).max) - START + 1);
        uint256 id = _post(p);
        bytes32 x = _honest(id, 0);
        vm.warp(START + 10 minutes);
        _claimCommit(w1, id, 0, x);
        _claimCommit(w2, id, 0, x);
        assertEq(_task(id, 0).revealDeadline, type(uint32).max, "deadline saturates");
        vm.warp(START + 20 minutes);
        _expectNotResolvable(id, 0, w1, IJobMarket.ReplicaState.Committed);
        market.resolve(id, 0, w1);
        _reveal(w1, id, 0, x);
        _reveal(w2, id, 0, x);
        assertEq(_state(id), uint256(IJobMarket.JobState.Completed), "settles normally");
    }

    // ----------------------------------------------------------- Released

    function test_resolve_releasesReplicasOfRoundWithoutQuorum() public {
        _commitThree(_bad(jobId, 0, 1), _bad(jobId, 0, 2), _bad(jobId, 0, 3));
        _reveal(w1, jobId, 0, _bad(jobId, 0, 1));
        _reveal(w2, jobId, 0, _bad(jobId, 0, 2));
        _reveal(w3, jobId, 0, _bad(jobId, 0, 3));
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ReplicaResolved(jobId, 0, w1, IJobMarket.Outcome.Released, 0);
        assertEq(_outcome(jobId, 0, w1), uint256(IJobMarket.Outcome.Released), "w1");
        assertEq(_collect(w2, jobId, 0), 0, "w2 collects nothing");
        assertEq(_outcome(jobId, 0, w3), uint256(IJobMarket.Outcome.Released), "w3");
        _assertReleased(w1);
        _assertReleased(w2);
        _assertReleased(w3);
        assertEq(registry.credits(requester), 0, "no slash");
    }

    function test_resolve_releasesReplicasOfFailedJob() public {
        uint256 id = _post(_shape(1, 0, 2, 2, 1));
        _claimCommit(w1, id, 0, _bad(id, 0, 1));
        _claimCommit(w2, id, 0, _bad(id, 0, 2));
        _reveal(w1, id, 0, _bad(id, 0, 1));
        _reveal(w2, id, 0, _bad(id, 0, 2));
        assertEq(_state(id), uint256(IJobMarket.JobState.Failed), "failed");
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Released), "w1");
        assertEq(_outcome(id, 0, w2), uint256(IJobMarket.Outcome.Released), "w2");
        _assertReleased(w1);
        _assertReleased(w2);
    }

    function test_resolve_releasesReplicasOfExpiredJob() public {
        IJobMarket.JobParams memory p = _shape(2, 0, 3, 3, 1);
        p.jobTimeout = 1 hours;
        uint256 id = _post(p);
        bytes32 x = _honest(id, 0);
        vm.warp(START + 40 minutes);
        _claimCommit(w1, id, 0, x);
        _claimCommit(w2, id, 0, x);
        _claimCommit(w3, id, 0, x); // reveal window until START + 70 minutes
        _claim(w4, id, 1); // lease until START + 100 minutes
        _reveal(w1, id, 0, x);
        vm.warp(START + 1 hours + 1);
        market.expireJob(id);
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Released), "revealed");
        assertEq(_outcome(id, 0, w2), uint256(IJobMarket.Outcome.Released), "committed");
        assertEq(_outcome(id, 1, w4), uint256(IJobMarket.Outcome.Released), "claimed");
        _assertReleased(w1);
        _assertReleased(w2);
        _assertReleased(w4);
        // The requester gets the whole escrow back once the reveal window is over.
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRefundNotReady.selector, id, START + 70 minutes));
        market.refund(id);
        vm.warp(START + 70 minutes + 1);
        assertEq(market.refund(id), uint256(REWARD) * 3 * 2, "whole escrow");
    }

    function test_resolve_paysSettledTaskOfExpiredJob() public {
        // Task 0 settles; the job then expires with task 1 open: task 0 still pays.
        IJobMarket.JobParams memory p = _shape(2, 0, 3, 2, 1);
        uint256 id = _post(p);
        _settleHonestly(id, 0);
        vm.warp(START + TIMEOUT + 1);
        market.expireJob(id);
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Paid), "w1 paid");
        assertEq(market.credits(w1), REWARD, "credited");
        vm.warp(START + TIMEOUT + REVEAL + 1);
        assertEq(market.refund(id), uint256(REWARD) * 3 * 2 - 3 * REWARD, "refund excludes owed");
    }

    // ------------------------------------- duties missed before the job ended

    function test_resolve_slashesNoShowEvenIfItExpiresTheJobFirst() public {
        IJobMarket.JobParams memory p = _shape(1, 0, 2, 2, 1);
        p.jobTimeout = 3 hours; // lease (1 hour) ends well before the job does
        uint256 id = _post(p);
        _claim(w1, id, 0);
        vm.warp(START + 3 hours + 1);
        vm.prank(w1);
        market.expireJob(id); // the no-show tries to end the job before anyone resolves it
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Slashed), "missed commit while job was live");
        assertEq(registry.credits(requester), COLLATERAL, "requester gets the collateral");
        assertEq(registry.workers(w1).slashed, 1, "counted");
    }

    function test_resolve_slashesSilentCommitterWhoseWindowClosedBeforeExpiry() public {
        IJobMarket.JobParams memory p = _shape(1, 0, 3, 3, 1);
        p.jobTimeout = 3 hours;
        uint256 id = _post(p);
        bytes32 x = _honest(id, 0);
        _claimCommit(w1, id, 0, x);
        _claimCommit(w2, id, 0, x);
        _claimCommit(w3, id, 0, x); // reveal window closes at START + 30 minutes
        _reveal(w1, id, 0, x);
        _reveal(w2, id, 0, x); // 2 of 3: no quorum yet, nobody pokes the stale round
        vm.warp(START + 3 hours + 1);
        market.expireJob(id);
        assertEq(_outcome(id, 0, w3), uint256(IJobMarket.Outcome.Slashed), "silent committer");
        assertEq(_outcome(id, 0, w1), uint256(IJobMarket.Outcome.Released), "revealer: no quorum, no blame");
    }

    function test_resolve_judgesFailedJobAtTheMomentItFailed() public {
        // Task 0 fails the job at START + 2 hours; w4's lease on task 1 had ended
        // at START + 1 hour (slashed), w5's runs until START + 2.5 hours (released).
        IJobMarket.JobParams memory p = _shape(2, 0, 2, 2, 1);
        uint256 id = _post(p);
        _claim(w4, id, 1);
        vm.warp(START + 90 minutes);
        _claim(w5, id, 1);
        vm.warp(START + 2 hours);
        _claimCommit(w1, id, 0, _bad(id, 0, 1));
        _claimCommit(w2, id, 0, _bad(id, 0, 2));
        _reveal(w1, id, 0, _bad(id, 0, 1));
        _reveal(w2, id, 0, _bad(id, 0, 2));
        assertEq(_state(id), uint256(IJobMarket.JobState.Failed), "failed");
        assertEq(_job(id).deadline, START + 2 hours, "deadline records the failure time");
        vm.warp(START + 5 hours);
        assertEq(_outcome(id, 1, w4), uint256(IJobMarket.Outcome.Slashed), "lease ended while job was live");
        assertEq(_outcome(id, 1, w5), uint256(IJobMarket.Outcome.Released), "job failed inside its lease");
    }
}
