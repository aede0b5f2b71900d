// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";
import {MarketFixture, vm} from "./Base.sol";

/// @notice Property tests over random parameters, digests, salts and amounts.
contract JobMarketFuzzTest is MarketFixture {
    // ------------------------------------------------------------- escrow

    function testFuzz_postJob_requiresEscrowOfEveryReplicaReward(
        uint96 reward,
        uint32 mapTasks,
        uint32 reduceTasks,
        uint8 replication,
        uint8 quorum
    ) public {
        IJobMarket.JobParams memory p = _params();
        p.rewardPerReplica = reward;
        p.mapTasks = uint32(bound(mapTasks, 1, 1_000_000));
        p.reduceTasks = uint32(bound(reduceTasks, 0, 1_000_000));
        p.replication = uint8(bound(replication, 1, 16));
        p.quorum = uint8(bound(quorum, 1, p.replication));
        // Written out independently: every task pays `replication` rewards.
        uint256 expected = uint256(reward) * uint256(p.replication) * (uint256(p.mapTasks) + uint256(p.reduceTasks));
        vm.deal(requester, expected + 1);

        if (expected > 0) {
            vm.expectRevert(
                abi.encodeWithSelector(IJobMarket.JobMarketEscrowMismatch.selector, expected, expected - 1)
            );
            vm.prank(requester);
            market.postJob{value: expected - 1}(p);
        }
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketEscrowMismatch.selector, expected, expected + 1));
        vm.prank(requester);
        market.postJob{value: expected + 1}(p);

        vm.prank(requester);
        uint256 jobId = market.postJob{value: expected}(p);
        assertEq(_job(jobId).escrow, expected, "escrow");
        assertEq(address(market).balance, expected, "market balance");
        assertEq(requester.balance, 1, "requester keeps the extra wei");
    }

    function testFuzz_postJob_revertsIfQuorumInvalid(uint8 replication, uint8 quorum) public {
        bool valid = replication >= 1 && replication <= 16 && quorum >= 1 && quorum <= replication;
        IJobMarket.JobParams memory p = _params();
        p.replication = replication;
        p.quorum = quorum;
        p.rewardPerReplica = 0;
        if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketInvalidQuorum.selector, replication, quorum));
        }
        vm.prank(requester);
        market.postJob(p);
    }

    // ------------------------------------------------------- commit-reveal

    function testFuzz_reveal_settlesOnAnyDigestAndSalt(bytes32 digest, bytes32 salt) public {
        if (bytes24(digest) == 0) digest |= bytes32(uint256(1) << 255); // stored prefix must be non-zero
        uint256 jobId = _post(_singleParams());
        _claim(w1, jobId, 0);
        vm.prank(w1);
        market.commit(jobId, _ids(0), _words(keccak256(abi.encode(digest, salt, w1, jobId, uint256(0)))));
        vm.prank(w1);
        market.reveal(jobId, _ids(0), _words(digest), _words(salt));
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(bytes24(digest)), "winner");
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Completed), "completed");
        assertEq(_collect(w1, jobId, 0), REWARD, "paid");
    }

    function testFuzz_reveal_rejectsAnyOtherOpening(bytes32 digest, bytes32 salt, bytes32 otherDigest, bytes32 otherSalt)
        public
    {
        if (bytes24(digest) == 0) digest |= bytes32(uint256(1) << 255);
        if (bytes24(otherDigest) == 0) otherDigest |= bytes32(uint256(1) << 255);
        if (otherDigest == digest) otherDigest = ~digest;
        if (otherSalt == salt) otherSalt = ~salt;
        uint256 jobId = _post(_singleParams());
        _claim(w1, jobId, 0);
        vm.prank(w1);
        market.commit(jobId, _ids(0), _words(keccak256(abi.encode(digest, salt, w1, jobId, uint256(0)))));

        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketCommitmentMismatch.selector, jobId, 0, w1));
        vm.prank(w1);
        market.reveal(jobId, _ids(0), _words(otherDigest), _words(salt));
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketCommitmentMismatch.selector, jobId, 0, w1));
        vm.prank(w1);
        market.reveal(jobId, _ids(0), _words(digest), _words(otherSalt));
        assertEq(bytes32(_task(jobId, 0).winner), bytes32(0), "unsettled");
    }

    function testFuzz_commit_opensRevealWindowFromCommitTime(uint32 revealWindow, uint32 delay) public {
        IJobMarket.JobParams memory p = _singleParams();
        p.revealWindow = uint32(bound(revealWindow, 1, type(uint32).max));
        p.leaseDuration = type(uint32).max;
        uint256 jobId = _post(p);
        _claim(w1, jobId, 0);
        vm.warp(START + bound(delay, 0, 30 days));
        _commit(w1, jobId, 0, _honest(jobId, 0));
        // The window runs from the commit that completed the replica set; it can
        // be cut by the uint32 clock, never wrapped into the past.
        uint256 want = block.timestamp + p.revealWindow;
        if (want > type(uint32).max) want = type(uint32).max;
        assertEq(_task(jobId, 0).revealDeadline, want, "reveal deadline");
        assertEq(_job(jobId).horizon, want, "horizon");
        _reveal(w1, jobId, 0, _honest(jobId, 0));
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Completed), "settled at once");
    }

    // --------------------------------------------------------------- stake

    function testFuzz_withdrawUnbonded_sendsExactAmountOnlyAfterDelay(uint96 amount, uint96 unbond, uint32 wait) public {
        address w = address(0xF00D);
        uint256 staked = bound(amount, 1, type(uint96).max);
        uint256 out = bound(unbond, 1, staked);
        uint256 waited = bound(wait, 0, 2 * UNBONDING_DELAY);
        _stake(w, staked);
        vm.prank(w);
        registry.requestUnbond(out);
        assertEq(registry.workers(w).stake, staked - out, "bonded");
        assertEq(registry.freeStake(w), staked - out, "free");
        assertEq(registry.unbonding(w).amount, out, "unbonding");
        vm.warp(START + waited);
        if (waited < UNBONDING_DELAY) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IWorkerRegistry.WorkerRegistryUnbondingNotReady.selector, w, START + UNBONDING_DELAY
                )
            );
            vm.prank(w);
            registry.withdrawUnbonded();
            return;
        }
        vm.prank(w);
        registry.withdrawUnbonded();
        assertEq(w.balance, out, "received exactly");
        assertEq(address(registry).balance, 5 * WORKER_STAKE + staked - out, "registry keeps the rest");
    }

    function testFuzz_requestUnbond_revertsIfAmountTouchesCollateral(uint96 collateral, uint8 claims, uint96 unbond) public {
        IJobMarket.JobParams memory p = _params();
        p.mapTasks = 4;
        p.collateral = uint96(bound(collateral, 0, WORKER_STAKE / 4));
        uint256 jobId = _post(p);
        uint256 n = bound(claims, 1, 4);
        uint256[] memory ids = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            ids[i] = i;
        }
        vm.prank(w1);
        market.claim(jobId, ids);
        uint256 locked = n * p.collateral;
        assertEq(_locked(w1), locked, "locked per task");
        uint256 free = WORKER_STAKE - locked;
        uint256 amount = bound(unbond, 1, WORKER_STAKE);
        if (amount > free) {
            vm.expectRevert(
                abi.encodeWithSelector(IWorkerRegistry.WorkerRegistryInsufficientFreeStake.selector, w1, free, amount)
            );
        }
        vm.prank(w1);
        registry.requestUnbond(amount);
        assertLe(_locked(w1), registry.workers(w1).stake, "locked within stake");
        assertEq(_locked(w1), locked, "collateral untouched");
    }

    // ----------------------------------------------------- money to the wei

    struct Tally {
        uint256 paid;
        uint256 slashed;
    }

    /// @dev One task, `rep` replicas. The first `q` reveal the honest digest and
    /// settle it; each later replica (by `fate` bits) agrees late, dissents or stays silent.
    function testFuzz_collect_movesRewardsAndCollateralToTheWei(
        uint96 reward,
        uint96 collateral,
        uint8 replication,
        uint8 quorum,
        uint16 fate
    ) public {
        address[5] memory ws = [w1, w2, w3, w4, w5];
        IJobMarket.JobParams memory p = _singleParams();
        p.rewardPerReplica = uint96(bound(reward, 0, 100 ether));
        p.collateral = uint96(bound(collateral, 0, WORKER_STAKE));
        p.replication = uint8(bound(replication, 1, 5));
        p.quorum = uint8(bound(quorum, 1, p.replication));
        uint256 jobId = _post(p);
        bytes32 x = _honest(jobId, 0);

        uint8[5] memory kind; // 0 agree, 1 dissent, 2 silent
        for (uint256 i; i < p.replication; ++i) {
            kind[i] = i < p.quorum ? 0 : uint8((fate >> (2 * i)) % 3);
            _claimCommit(ws[i], jobId, 0, kind[i] == 1 ? _bad(jobId, 0, i) : x);
        }
        uint256 horizon = block.timestamp + p.revealWindow;
        // Dissenters reveal before quorum where one vote cannot settle (q > 1),
        // then the quorum settles, then late agreeing replicas; silent ones never.
        if (p.quorum > 1) _revealKind(ws, kind, jobId, 1, p.replication, 1, x);
        _revealKind(ws, kind, jobId, 0, p.quorum, 0, x);
        _revealKind(ws, kind, jobId, p.quorum, p.replication, 0, x);
        if (p.quorum == 1) _revealKind(ws, kind, jobId, 1, p.replication, 1, x);
        assertEq(_state(jobId), uint256(IJobMarket.JobState.Completed), "completed");
        vm.warp(horizon + 1);

        Tally memory t;
        for (uint256 i; i < p.replication; ++i) {
            uint256 got = _collect(ws[i], jobId, 0);
            if (kind[i] == 0) {
                t.paid += 1;
                assertEq(got, p.rewardPerReplica, "agreeing replica paid its reward");
                assertEq(registry.workers(ws[i]).stake, WORKER_STAKE, "stake intact");
            } else {
                t.slashed += 1;
                assertEq(got, 0, "no reward");
                assertEq(registry.workers(ws[i]).stake, WORKER_STAKE - p.collateral, "collateral lost");
            }
            assertEq(_locked(ws[i]), 0, "nothing locked");
        }
        uint256 escrow = uint256(p.rewardPerReplica) * p.replication;
        uint256 refund = escrow - t.paid * p.rewardPerReplica;
        if (refund == 0) {
            vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarketNothingToRefund.selector, jobId));
        }
        assertEq(market.refund(jobId), refund, "refund");
        assertEq(market.credits(requester), refund, "requester market credit");
        assertEq(registry.credits(requester), t.slashed * p.collateral, "requester registry credit");
        assertEq(address(market).balance, escrow, "escrow still held as credits");
        assertEq(
            address(registry).balance,
            5 * WORKER_STAKE,
            "slashed collateral moved from stake to credit, not out"
        );
    }

    function _revealKind(
        address[5] memory ws,
        uint8[5] memory kind,
        uint256 jobId,
        uint256 from,
        uint256 to,
        uint8 which,
        bytes32 x
    ) internal {
        for (uint256 i = from; i < to; ++i) {
            if (kind[i] == which) _reveal(ws[i], jobId, 0, which == 1 ? _bad(jobId, 0, i) : x);
        }
    }

    function testFuzz_resolve_slashesNoShowOnlyAfterLease(uint32 elapsed) public {
        uint256 jobId = _post(_params());
        _claim(w1, jobId, 0);
        uint256 dt = bound(elapsed, 0, TIMEOUT);
        vm.warp(START + dt);
        if (dt <= LEASE) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IJobMarket.JobMarketNotResolvable.selector, jobId, 0, w1, IJobMarket.ReplicaState.Claimed
                )
            );
            market.resolve(jobId, 0, w1);
            return;
        }
        assertEq(uint256(market.resolve(jobId, 0, w1)), uint256(IJobMarket.Outcome.Slashed), "slashed");
        assertEq(registry.credits(requester), COLLATERAL, "requester credited");
        assertEq(_task(jobId, 0).claimed, 0, "slot freed");
    }
}
