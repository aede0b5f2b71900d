// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {DefaultJobFixture, vm} from "./Base.sol";

/// @notice reveal, quorum settlement, rounds, phases and poke.
contract JobMarketRevealTest is DefaultJobFixture {

    function _expectWrongState(uint256 id, uint256 taskId, address w, IJobMarket.ReplicaState s) internal {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketWrongReplicaState.selector, id, taskId, w, s));
    }

    // ------------------------------------------------------------ reveal: checks

    function test_reveal_revertsIfRevealNotOpen() public {
        _claimCommit(w1, jobId, 0, d);
        _claimCommit(w2, jobId, 0, d);
        _claim(w3, jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRevealNotOpen.selector, jobId, 0));
        _reveal(w1, jobId, 0, d);
    }

    function test_reveal_acceptsAtRevealDeadline() public {
        uint256 deadline = _commitThree(d, d, d);
        vm.warp(deadline);
        _reveal(w1, jobId, 0, d);
        assertEq(_task(jobId, 0).revealed, 1, "revealed");
    }

    function test_reveal_revertsIfRevealClosed() public {
        uint256 deadline = _commitThree(d, d, d);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRevealClosed.selector, jobId, 0, deadline));
        _reveal(w1, jobId, 0, d);
    }

    function test_reveal_revertsIfSaltDiffers() public {
        _commitThree(d, d, d);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketCommitmentMismatch.selector, jobId, 0, w1));
        vm.prank(w1);
        market.reveal(jobId, _ids(0), _words(d), _words(bytes32(uint256(_salt(w1, 0)) ^ 1)));
    }

    function test_reveal_revertsIfDigestDiffers() public {
        _commitThree(d, d, d);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketCommitmentMismatch.selector, jobId, 0, w1));
        _reveal(w1, jobId, 0, _bad(jobId, 0, 1));
    }

    function test_reveal_revertsIfCommitmentCopiedFromAnotherWorker() public {
        // w2 copies w1's commitment and later w1's revealed digest and salt.
        bytes32 c1 = _commitment(d, _salt(w1, 0), w1, jobId, 0);
        _claimCommit(w1, jobId, 0, d);
        _claim(w2, jobId, 0);
        vm.prank(w2);
        market.commit(jobId, _ids(0), _words(c1));
        _claimCommit(w3, jobId, 0, _bad(jobId, 0, 1));
        _reveal(w1, jobId, 0, d);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketCommitmentMismatch.selector, jobId, 0, w2));
        vm.prank(w2);
        market.reveal(jobId, _ids(0), _words(d), _words(_salt(w1, 0)));
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(0), "copy did not count");
    }

    function test_reveal_revertsIfDigestZero() public {
        bytes32 zeroCommit = _commitment(bytes32(0), _salt(w1, 0), w1, jobId, 0);
        _claim(w1, jobId, 0);
        vm.prank(w1);
        market.commit(jobId, _ids(0), _words(zeroCommit));
        _claimCommit(w2, jobId, 0, d);
        _claimCommit(w3, jobId, 0, d);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketZeroHash.selector, jobId, 0));
        _reveal(w1, jobId, 0, bytes32(0));
    }

    function test_reveal_revertsIfDigestPrefixZero() public {
        // A digest whose stored 24-byte prefix is zero would settle a task on a
        // winner that reads as "unsettled"; it is refused like a zero digest.
        bytes32 lowOnly = bytes32(uint256(0xdead));
        _claimCommit(w1, jobId, 0, lowOnly);
        _claimCommit(w2, jobId, 0, lowOnly);
        _claimCommit(w3, jobId, 0, d);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketZeroHash.selector, jobId, 0));
        _reveal(w1, jobId, 0, lowOnly);
    }

    function test_reveal_revertsIfNotCommitted() public {
        _commitThree(d, d, d);
        _expectWrongState(jobId, 0, w4, IJobMarket.ReplicaState.None);
        _reveal(w4, jobId, 0, d);
    }

    function test_reveal_revertsIfAlreadyRevealed() public {
        _commitThree(d, _bad(jobId, 0, 1), d);
        _reveal(w1, jobId, 0, d);
        _expectWrongState(jobId, 0, w1, IJobMarket.ReplicaState.Revealed);
        _reveal(w1, jobId, 0, d);
    }

    function test_reveal_revertsIfEmptyBatch() public {
        vm.expectRevert(_err(IJobMarket.JobMarketEmptyBatch.selector));
        vm.prank(w1);
        market.reveal(jobId, new uint256[](0), new bytes32[](0), new bytes32[](0));
    }

    function test_reveal_revertsIfDigestCountMismatch() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketLengthMismatch.selector, 1, 2));
        vm.prank(w1);
        market.reveal(jobId, _ids(0), _words(d, d), _words(d));
    }

    function test_reveal_revertsIfSaltCountMismatch() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketLengthMismatch.selector, 2, 1));
        vm.prank(w1);
        market.reveal(jobId, _ids(0, 1), _words(d, d), _words(d));
    }

    function test_reveal_revertsIfUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketUnknownJob.selector, 5));
        vm.prank(w1);
        market.reveal(5, _ids(0), _words(d), _words(d));
    }

    function test_reveal_revertsIfUnsettledTaskAndJobExpired() public {
        IJobMarket.JobParams memory p = _shape(1, 0, 2, 2, 1);
        p.jobTimeout = 1 hours;
        uint256 id = _post(p);
        vm.warp(START + 50 minutes);
        _claimCommit(w4, id, 0, _honest(id, 0));
        _claimCommit(w5, id, 0, _honest(id, 0)); // reveal window until START + 80 minutes
        vm.warp(START + 1 hours + 1);
        market.expireJob(id);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotActive.selector, id, IJobMarket.JobState.Expired)
        );
        _reveal(w4, id, 0, _honest(id, 0));
    }

    // ------------------------------------------------------- reveal: settlement

    function test_reveal_settlesTaskOnQuorum() public {
        _commitThree(d, d, _bad(jobId, 0, 1));
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ResultRevealed(jobId, 0, w1, d);
        _reveal(w1, jobId, 0, d);
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(0), "one vote does not settle");
        assertEq(_job(jobId).owed, 0, "nothing owed yet");

        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ResultRevealed(jobId, 0, w2, d);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskSettled(jobId, 0, 0, d);
        _reveal(w2, jobId, 0, d);

        IJobMarket.Task memory t = _task(jobId, 0);
        assertEq(bytes32(t.winner), bytes32(bytes24(d)), "winner prefix");
        assertEq(t.revealed, 2, "revealed");
        assertEq(_job(jobId).owed, 2 * REWARD, "two rewards owed");
        assertEq(_job(jobId).settledTasks, 1, "settledTasks");
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Map), "still map: task 1 open");
        IJobMarket.Replica memory r = _rep(jobId, 0, w2);
        assertEq(uint256(r.state), uint256(IJobMarket.ReplicaState.Revealed), "replica revealed");
        assertEq(bytes32(r.hash), bytes32(bytes24(d)), "replica holds digest prefix");
    }

    function test_reveal_quorumOfOneSettlesOnFirstReveal() public {
        uint256 id = _post(_singleParams());
        bytes32 x = _honest(id, 0);
        _claimCommit(w1, id, 0, x);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskSettled(id, 0, 0, x);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(id, IJobMarket.JobState.Completed);
        _reveal(w1, id, 0, x);
        assertEq(_job(id).owed, REWARD, "owed");
    }

    function test_reveal_firstDigestToReachQuorumWins() public {
        uint256 id = _post(_shape(1, 0, 4, 2, 1));
        bytes32 a = _honest(id, 0);
        bytes32 b = _bad(id, 0, 1);
        _claimCommit(w1, id, 0, b);
        _claimCommit(w2, id, 0, a);
        _claimCommit(w3, id, 0, a);
        _claimCommit(w4, id, 0, b);
        _reveal(w1, id, 0, b); // b first, but ...
        _reveal(w2, id, 0, a);
        _reveal(w3, id, 0, a); // ... a reaches two votes first
        assertEq(bytes32(_task(id, 0).winner), bytes32(bytes24(a)), "a wins");
        _reveal(w4, id, 0, b); // b would now have two votes too: too late
        assertEq(bytes32(_task(id, 0).winner), bytes32(bytes24(a)), "still a");
        assertEq(_job(id).owed, 2 * REWARD, "only a's replicas owed");
        assertEq(_job(id).settledTasks, 1, "settled once");
        assertEq(uint256(market.resolve(id, 0, w1)), uint256(IJobMarket.Outcome.Slashed), "w1");
        assertEq(uint256(market.resolve(id, 0, w2)), uint256(IJobMarket.Outcome.Paid), "w2");
        assertEq(uint256(market.resolve(id, 0, w3)), uint256(IJobMarket.Outcome.Paid), "w3");
        assertEq(uint256(market.resolve(id, 0, w4)), uint256(IJobMarket.Outcome.Slashed), "w4");
    }

    function test_reveal_owesLateAgreeingReveal() public {
        _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        _reveal(w3, jobId, 0, d);
        assertEq(_job(jobId).owed, 3 * REWARD, "three owed");
        assertEq(_job(jobId).settledTasks, 1, "settled once");
        assertEq(_task(jobId, 0).revealed, 2, "late reveal not counted in the round");
        assertEq(_collect(w3, jobId, 0), REWARD, "late replica paid");
    }

    function test_reveal_doesNotOweLateDissent() public {
        _commitThree(d, d, _bad(jobId, 0, 1));
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        _reveal(w3, jobId, 0, _bad(jobId, 0, 1));
        assertEq(_job(jobId).owed, 2 * REWARD, "two owed");
        assertEq(uint256(market.resolve(jobId, 0, w3)), uint256(IJobMarket.Outcome.Slashed), "dissent slashed");
    }

    function test_reveal_hearsLateReplicaAfterJobCompleted() public {
        uint256 id = _post(_shape(1, 0, 3, 2, 1));
        bytes32 x = _honest(id, 0);
        _claimCommit(w1, id, 0, x);
        _claimCommit(w2, id, 0, x);
        _claimCommit(w3, id, 0, x);
        _reveal(w1, id, 0, x);
        _reveal(w2, id, 0, x);
        assertEq(_state(id), uint256(IJobMarket.JobState.Completed), "completed");
        _reveal(w3, id, 0, x);
        assertEq(_job(id).owed, 3 * REWARD, "late reveal owed");
    }

    // ------------------------------------------------------------- rounds

    function test_reveal_reopensTaskIfAllRevealedWithoutQuorum() public {
        _commitThree(_bad(jobId, 0, 1), _bad(jobId, 0, 2), _bad(jobId, 0, 3));
        _reveal(w1, jobId, 0, _bad(jobId, 0, 1));
        _reveal(w2, jobId, 0, _bad(jobId, 0, 2));
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskReopened(jobId, 0, 1);
        _reveal(w3, jobId, 0, _bad(jobId, 0, 3));
        IJobMarket.Task memory t = _task(jobId, 0);
        assertEq(t.round, 1, "round");
        assertEq(uint256(t.claimed) + t.committed + t.revealed + t.revealDeadline, 0, "fresh slots");
        assertEq(bytes32(t.winner), bytes32(0), "no winner");
        assertEq(_job(jobId).owed, 0, "nothing owed");
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Map), "job goes on");
    }

    function test_reveal_countsVotesPerRound() public {
        bytes32 a = _bad(jobId, 0, 1);
        _commitThree(a, _bad(jobId, 0, 2), _bad(jobId, 0, 3));
        _reveal(w1, jobId, 0, a);
        _reveal(w2, jobId, 0, _bad(jobId, 0, 2));
        _reveal(w3, jobId, 0, _bad(jobId, 0, 3));
        // Round 1: one more vote for `a` must not join round 0's vote.
        _claimCommit(w4, jobId, 0, a);
        _claimCommit(w5, jobId, 0, d);
        _collect(w1, jobId, 0);
        _claimCommit(w1, jobId, 0, d);
        _reveal(w4, jobId, 0, a);
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(0), "a has one vote in round 1");
        _reveal(w5, jobId, 0, d);
        _reveal(w1, jobId, 0, d);
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(bytes24(d)), "d settles round 1");
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.ReplicaResolved(jobId, 0, w4, IJobMarket.Outcome.Slashed, COLLATERAL);
        market.resolve(jobId, 0, w4);
    }

    function test_reveal_failsJobIfLastRoundEndsWithoutQuorum() public {
        uint256 id = _post(_shape(1, 1, 2, 2, 1));
        _claimCommit(w1, id, 0, _bad(id, 0, 1));
        _claimCommit(w2, id, 0, _bad(id, 0, 2));
        _reveal(w1, id, 0, _bad(id, 0, 1));
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(id, IJobMarket.JobState.Failed);
        _reveal(w2, id, 0, _bad(id, 0, 2));
        assertEq(_state(id), uint256(IJobMarket.JobState.Failed), "failed");
    }

    // ------------------------------------------------------------- phases

    function test_reveal_opensReducePhaseWhenAllMapTasksSettle() public {
        _settleHonestly(jobId, 0);
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Map), "map after one");
        bytes32 x = _honest(jobId, 1);
        _claimCommit(w1, jobId, 1, x);
        _claimCommit(w2, jobId, 1, x);
        _claimCommit(w3, jobId, 1, x);
        _reveal(w1, jobId, 1, x);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.JobStateChanged(jobId, IJobMarket.JobState.Reduce);
        _reveal(w2, jobId, 1, x); // w3 stays silent on task 1
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Reduce), "reduce");
        assertEq(_job(jobId).settledTasks, 2, "settled");

        _settleHonestly(jobId, 2);
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Completed), "completed");
        assertEq(_job(jobId).settledTasks, 3, "all settled");
        assertEq(_job(jobId).owed, 8 * REWARD, "eight of nine owed");
    }

    function test_reveal_completesJobWithoutReduceTasks() public {
        uint256 id = _post(_shape(2, 0, 3, 2, 1));
        _settleHonestly(id, 0);
        assertEq(_state(id), uint256(IJobMarket.JobState.Map), "map");
        _settleHonestly(id, 1);
        assertEq(_state(id), uint256(IJobMarket.JobState.Completed), "completed, no reduce phase");
    }

    // --------------------------------------------------------------- poke

    function test_poke_revertsIfRevealWindowOpen() public {
        uint256 deadline = _commitThree(d, _bad(jobId, 0, 1), _bad(jobId, 0, 2));
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRoundNotStale.selector, jobId, 0));
        market.poke(jobId, 0);
    }

    function test_poke_revertsIfRevealNeverOpened() public {
        _claimCommit(w1, jobId, 0, d);
        vm.warp(START + TIMEOUT);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRoundNotStale.selector, jobId, 0));
        market.poke(jobId, 0);
    }

    function test_poke_revertsIfTaskSettled() public {
        uint256 deadline = _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d);
        _reveal(w2, jobId, 0, d);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketRoundNotStale.selector, jobId, 0));
        market.poke(jobId, 0);
    }

    function test_poke_revertsIfTaskNotInPhase() public {
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketTaskNotInPhase.selector, jobId, 2, IJobMarket.JobState.Map)
        );
        market.poke(jobId, 2);
    }

    function test_poke_revertsIfTaskOutOfRange() public {
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketTaskOutOfRange.selector, jobId, 3, 3));
        market.poke(jobId, 3);
    }

    function test_poke_revertsIfJobNotActive() public {
        vm.prank(requester);
        market.cancelJob(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarketJobNotActive.selector, jobId, IJobMarket.JobState.Cancelled)
        );
        market.poke(jobId, 0);
    }

    function test_poke_reopensRoundAfterRevealWindow() public {
        uint256 deadline = _commitThree(d, d, d);
        _reveal(w1, jobId, 0, d); // one vote, quorum two, the others stay silent
        vm.warp(deadline + 1);
        vm.expectEmit(true, true, true, true, address(market));
        emit IJobMarket.TaskReopened(jobId, 0, 1);
        vm.prank(stranger);
        market.poke(jobId, 0);
        assertEq(_task(jobId, 0).round, 1, "round");
        assertEq(_task(jobId, 0).claimed, 0, "slots free");
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Map), "job goes on");
    }

    function test_poke_failsJobIfRoundsExhausted() public {
        uint256 id = _post(_shape(1, 0, 2, 2, 2));
        for (uint256 round; round < 2; ++round) {
            _claimCommit(w1, id, 0, _bad(id, 0, round));
            _claimCommit(w2, id, 0, _bad(id, 0, round));
            vm.warp(block.timestamp + REVEAL + 1);
            if (round == 0) {
                vm.expectEmit(true, true, true, true, address(market));
                emit IJobMarket.TaskReopened(id, 0, 1);
            } else {
                vm.expectEmit(true, true, true, true, address(market));
                emit IJobMarket.JobStateChanged(id, IJobMarket.JobState.Failed);
            }
            market.poke(id, 0);
            if (round == 0) {
                market.resolve(id, 0, w1); // missed reveals: slashed, so they may play again
                market.resolve(id, 0, w2);
            }
        }
        assertEq(_state(id), uint256(IJobMarket.JobState.Failed), "failed");
    }
}
