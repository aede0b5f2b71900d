// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {MarketFixture, MarketVm, vm} from "./MarketBase.sol";

/// @notice The attacks that worked against v1 (issue #13), each played
/// against v2. A test passes when the attacker does not profit and no honest
/// worker loses; money is checked to the wei against amounts computed here.
/// Default job: f = 0.1, epsilon = 1e-3, so margin m = 4 (round 0 has 4
/// seats, a result wins when it leads all others together by 4), 8 extra
/// seats prefunded: escrow = 12 rewards.
contract JobMarketAttackTest is MarketFixture {
    // A cartel of staked addresses, and the requester's own sybils.
    address internal m1 = address(0xBAD1);
    address internal m2 = address(0xBAD2);
    address internal m3 = address(0xBAD3);
    address internal m4 = address(0xBAD4);
    address internal s1 = address(0x5B1);
    address internal s2 = address(0x5B2);
    address internal s3 = address(0x5B3);

    address internal h0;
    address internal h1;
    address internal h2;
    address internal h3;
    address internal h4;
    address internal h5;
    address internal h6;
    address internal h7;

    uint256 internal constant ACTORS = 15; // 8 honest, 4 cartel, 3 sybils, 10 ether each
    uint256 internal constant ESCROW = uint256(REWARD) * (M + EXTRA);

    function setUp() public override {
        super.setUp();
        (h0, h1, h2, h3) = (honest[0], honest[1], honest[2], honest[3]);
        (h4, h5, h6, h7) = (honest[4], honest[5], honest[6], honest[7]);
        address[7] memory cast = [m1, m2, m3, m4, s1, s2, s3];
        for (uint256 i; i < cast.length; ++i) {
            _enlist(cast[i], HONEST_STAKE);
        }
        _nextEpoch();
    }

    // ------------------------------------------------------------ helpers

    function _expectPostRevert(JobMarket.JobParams memory p, bytes memory err) internal {
        uint256 value = _escrow(p, market.marginFor(p.epsilonPpm, p.adversaryPpm));
        vm.deal(requester, requester.balance + value);
        vm.expectRevert(err);
        vm.prank(requester);
        market.postJob{value: value}(p);
    }

    function _assertUntouched(address w) internal view {
        WorkerPool.Worker memory info = pool.workers(w);
        assertEq(info.stake, HONEST_STAKE, "honest stake intact");
        assertEq(info.locked, 0, "nothing left locked");
        assertEq(info.slashed, 0, "never slashed");
    }

    function _assertPaidOnce(address w) internal view {
        _assertUntouched(w);
        assertEq(market.credits(w), REWARD, "paid exactly one reward");
        assertEq(pool.workers(w).settled, 1, "one settled assignment");
    }

    function _assertSlashedOnce(address w) internal view {
        WorkerPool.Worker memory info = pool.workers(w);
        assertEq(info.stake, HONEST_STAKE - COLLATERAL, "lost exactly one collateral");
        assertEq(info.locked, 0, "nothing left locked");
        assertEq(info.slashed, 1, "one slash");
        assertEq(market.credits(w), 0, "no reward");
    }

    /// @dev `w`'s seat on task 0 was paid one reward by its reveal: the seat is
    /// gone (nothing left to collect) and its collateral released.
    function _assertPaid(address w, uint256 id) internal view {
        assertEq(uint256(_rep(id, 0, w).state), uint256(JobMarket.ReplicaState.None), "paid seat is gone");
        _assertPaidOnce(w);
    }

    function _assertAllPaid(address[] memory ws, uint256 id) internal view {
        for (uint256 i; i < ws.length; ++i) {
            _assertPaid(ws[i], id);
        }
    }

    function _revealAll(address[] memory ws, uint256 id, bytes32 d) internal {
        for (uint256 i; i < ws.length; ++i) {
            _reveal(ws[i], id, 0, d);
        }
    }

    /// @dev Refunds the job once its deadline and its last reveal window are behind.
    function _pastHorizonRefund(uint256 id) internal returns (uint256) {
        uint256 horizon = _job(id).horizon;
        uint256 deadline = _job(id).deadline;
        uint256 t = horizon > deadline ? horizon : deadline;
        if (block.timestamp <= t) vm.warp(t + 1);
        vm.prank(stranger);
        return market.refund(id);
    }

    function _addrs4(address a, address b, address c, address d) internal pure returns (address[] memory xs) {
        xs = new address[](4);
        (xs[0], xs[1], xs[2], xs[3]) = (a, b, c, d);
    }

    function _cat(address[] memory a, address[] memory b) internal pure returns (address[] memory xs) {
        xs = new address[](a.length + b.length);
        for (uint256 i; i < a.length; ++i) {
            xs[i] = a[i];
        }
        for (uint256 i; i < b.length; ++i) {
            xs[a.length + i] = b[i];
        }
    }

    // ================================================== 1. trap windows

    /// @notice v1: a requester posted a 1-second lease so nobody could meet
    /// it and every claimant's collateral went to the requester.
    function test_attack_trapWindows_oneSecondLeaseRefused() public {
        JobMarket.JobParams memory p = _params();
        p.leaseDuration = 1;
        _expectPostRevert(
            p, abi.encodeWithSelector(JobMarket.JobMarketWindowTooShort.selector, 1, REVEAL, MIN_LEASE, MIN_REVEAL)
        );
        p.leaseDuration = MIN_LEASE - 1;
        _expectPostRevert(
            p,
            abi.encodeWithSelector(
                JobMarket.JobMarketWindowTooShort.selector, MIN_LEASE - 1, REVEAL, MIN_LEASE, MIN_REVEAL
            )
        );
        assertEq(market.jobCount(), 0, "nothing posted");
    }

    /// @notice The same with a 1-second reveal window, or a job timeout too
    /// short for one lease and one window.
    function test_attack_trapWindows_oneSecondRevealRefused() public {
        JobMarket.JobParams memory p = _params();
        p.revealWindow = 1;
        _expectPostRevert(
            p, abi.encodeWithSelector(JobMarket.JobMarketWindowTooShort.selector, LEASE, 1, MIN_LEASE, MIN_REVEAL)
        );
        p.revealWindow = MIN_REVEAL - 1;
        _expectPostRevert(
            p,
            abi.encodeWithSelector(
                JobMarket.JobMarketWindowTooShort.selector, LEASE, MIN_REVEAL - 1, MIN_LEASE, MIN_REVEAL
            )
        );
        p = _params();
        p.jobTimeout = LEASE + REVEAL - 1;
        _expectPostRevert(
            p, abi.encodeWithSelector(JobMarket.JobMarketInvalidTimeout.selector, LEASE + REVEAL - 1, LEASE + REVEAL)
        );
        assertEq(market.jobCount(), 0, "nothing posted");
    }

    /// @notice With the floors met, honest workers that commit at the last
    /// second of the minimum lease and open at the last second of the
    /// minimum window are paid.
    function test_attack_trapWindows_minimumWindowsSufficeForHonestWorkers() public {
        JobMarket.JobParams memory p = _params();
        p.leaseDuration = MIN_LEASE;
        p.revealWindow = MIN_REVEAL;
        p.jobTimeout = MIN_LEASE + MIN_REVEAL + 10 minutes;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        uint256 leaseEnd = _rep(id, 0, h0).deadline;
        assertEq(leaseEnd, block.timestamp + MIN_LEASE, "lease = minimum");
        vm.warp(leaseEnd); // the last second of the lease
        _commitAll(seats, id, 0, d);
        uint256 revealEnd = _task(id, 0).revealDeadline;
        assertEq(revealEnd, leaseEnd + MIN_REVEAL, "window = minimum");
        vm.warp(revealEnd); // the last second of the window
        _revealAll(seats, id, d);
        _assertAllPaid(seats, id);
        assertEq(pool.burned(), 0, "nothing burned");
        assertEq(_pastHorizonRefund(id), ESCROW - 4 * REWARD, "refund = unspent escrow");
    }

    /// @notice A requester withholds its inputs so the drawn workers cannot
    /// compute (v1: it then collected their collateral). The slashes of
    /// workers that stay silent are burned: the requester gets back exactly
    /// its escrow, not a wei more.
    function test_attack_trapWindows_provokedSlashesAreBurnedNotCredited() public {
        JobMarket.JobParams memory p = _params();
        p.leaseDuration = MIN_LEASE;
        p.revealWindow = MIN_REVEAL;
        p.jobTimeout = MIN_LEASE + MIN_REVEAL;
        uint256 wealthBefore = requester.balance + market.credits(requester);
        uint256 id = _post(p, M);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        _skip(MIN_LEASE + 1); // nobody could compute: four no-shows
        for (uint256 i; i < 4; ++i) {
            assertEq(uint256(_resolve(id, 0, seats[i])), uint256(JobMarket.Outcome.Slashed), "no-show slashed");
        }
        assertEq(pool.burned(), 4 * COLLATERAL, "every slash burned");
        assertEq(market.credits(requester), 0, "no slash credited to the requester");

        assertEq(_pastHorizonRefund(id), ESCROW, "refund = the escrow");
        assertEq(market.credits(requester), ESCROW, "requester credit = its refund, nothing more");
        assertEq(requester.balance + market.credits(requester), wealthBefore, "requester gained nothing");
        assertEq(address(market).balance, ESCROW, "the market holds no slashed wei");
        assertEq(address(pool).balance, ACTORS * HONEST_STAKE, "the pool keeps what it burned");
        for (uint256 i; i < actors.length; ++i) {
            assertEq(market.credits(actors[i]), 0, "no staker credited");
        }
    }

    /// @notice Workers that cannot run the job (inputs withheld) decline
    /// their seats early in the lease instead (a seat may be declined in the
    /// first quarter of its lease): nobody loses anything, the requester
    /// still gets exactly its escrow back.
    function test_attack_trapWindows_workersThatCannotRunItDeclineUnslashed() public {
        JobMarket.JobParams memory p = _params();
        p.leaseDuration = MIN_LEASE;
        p.revealWindow = MIN_REVEAL;
        p.jobTimeout = MIN_LEASE + MIN_REVEAL;
        uint256 id = _post(p, M);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        _skip(MIN_LEASE / 4); // the last second a seat may be declined
        for (uint256 i; i < 4; ++i) {
            vm.prank(seats[i]);
            market.decline(id, _ids(0));
            assertEq(uint256(_rep(id, 0, seats[i]).state), uint256(JobMarket.ReplicaState.Declined), "declined");
            _assertUntouched(seats[i]);
        }
        assertEq(_task(id, 0).seated, 0, "the seats are open again");
        assertEq(pool.burned(), 0, "nothing burned");
        assertEq(_pastHorizonRefund(id), ESCROW, "refund = the escrow");
    }

    // ================================================ 2. requester sybils

    /// @notice The requester stakes as much as everyone else together and
    /// opts in: the lottery picks it about half the time; the market never seats it.
    function test_attack_requesterSybils_requesterItselfIsNeverSeated() public {
        _enlist(requester, ACTORS * HONEST_STAKE);
        _nextEpoch();
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 8;
        uint256 id = _post(p, M);
        _toSeed(id, 0);
        bytes32 random = keccak256("requester-heavy");
        rng.set(_seedBlockOf(id, 0), random);

        // The lottery does pick the requester (its weight is half the pool).
        uint256 picked;
        for (uint256 t; t < 8; ++t) {
            for (uint256 k; k < 16; ++k) {
                if (_candidate(id, t, random, k) == requester) picked++;
            }
        }
        assertGe(picked, 40, "the lottery picks the requester often");

        for (uint256 k; k < 6; ++k) {
            vm.prank(requester);
            try market.draw(id, _range(0, 8)) {}
            catch {
                break;
            }
        }
        uint256 seats;
        for (uint256 t; t < 8; ++t) {
            assertEq(uint256(_rep(id, t, requester).state), 0, "requester never seated");
            seats += _seats(id, t).length;
        }
        assertEq(seats, 8 * M, "every seat went to someone else");
        assertEq(_lockedOf(requester), 0, "nothing of the requester locked");
    }

    /// @notice The requester's sybil calls draw itself, as often as it likes:
    /// it gets no seat the draw did not give it, and without a seat it cannot commit.
    function test_attack_requesterSybils_sybilGetsNoSeatItWasNotDrawnFor() public {
        uint256 id = _postDefault();
        // Before the seed block exists nobody can draw: no picking early.
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(s1, id, 0);

        _toSeed(id, 0);
        bytes32 random;
        address[] memory predicted;
        for (uint256 k;; ++k) {
            random = keccak256(abi.encode("no-sybil", k));
            predicted = _predict(id, 0, random);
            if (
                predicted.length == M && !_contains(predicted, s1) && !_contains(predicted, s2)
                    && !_contains(predicted, s3)
            ) break;
        }
        rng.set(_seedBlockOf(id, 0), random);
        _draw(s1, id, 0);
        assertTrue(_sameSet(_seats(id, 0), predicted), "seats = the draw written out independently");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(s2, id, 0); // seats full: calling again changes nothing

        bytes32 d = _truth(id, 0);
        vm.expectRevert(_wrongState(id, 0, s1, JobMarket.ReplicaState.None));
        _commit(s1, id, 0, d);
        vm.expectRevert(_wrongState(id, 0, requester, JobMarket.ReplicaState.None));
        _commit(requester, id, 0, d);
        assertEq(_lockedOf(s1) + _lockedOf(s2) + _lockedOf(s3), 0, "no sybil holds a seat");
    }

    /// @notice Seats depend on the randomness, never on who calls draw, how
    /// often, or in which batch: every caller and order gives the same seats.
    function test_attack_requesterSybils_seatsFollowTheDrawNotTheCaller() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        uint256 id = _post(p, M);
        _toSeed(id, 0);
        bytes32 random = keccak256("caller-independence");
        rng.set(_seedBlockOf(id, 0), random);
        address[] memory want0 = _predict(id, 0, random);
        address[] memory want1 = _predict(id, 1, random);
        assertEq(want0.length, M, "predicted a full round for task 0");
        assertEq(want1.length, M, "predicted a full round for task 1");

        address[5] memory callers = [s1, requester, h0, m1, stranger];
        for (uint256 i; i < callers.length; ++i) {
            for (uint256 order; order < 3; ++order) {
                uint256 snap = vm.snapshotState();
                vm.startPrank(callers[i]);
                if (order == 0) {
                    market.draw(id, _ids(0, 1));
                } else if (order == 1) {
                    market.draw(id, _ids(1, 0));
                } else {
                    market.draw(id, _ids(1));
                    market.draw(id, _ids(0));
                }
                vm.stopPrank();
                assertTrue(_sameSet(_seats(id, 0), want0), "task 0 seats follow the draw");
                assertTrue(_sameSet(_seats(id, 1), want1), "task 1 seats follow the draw");
                vm.revertToStateAndDelete(snap);
            }
        }
    }

    // ============================================== 3. no-quorum rounds

    /// @notice (a) A garbage seat splits round 0 (3 true, 1 garbage: lead 2).
    /// The task escalates by m - lead = 2 fresh seats, settles on the true
    /// digest, the garbage committer is slashed (burned) and the honest
    /// workers of the split round are paid when they open.
    function test_attack_splitRound_garbageSlashedAndSplitRoundHonestPaid() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        bytes32 g = _garbage(id, 0, 1);
        _seatWith(id, 0, _addrs4(h0, m1, h1, h2));
        _commit(h0, id, 0, d);
        _commit(m1, id, 0, g);
        _commit(h1, id, 0, d);
        vm.expectEmit(true, true, false, false, address(market));
        emit JobMarket.TaskEscalated(id, 0, 1, 2, 0);
        _commit(h2, id, 0, d);
        JobMarket.Task memory t = _task(id, 0);
        assertEq(t.round, 1, "escalated to round 1");
        assertEq(t.seats, 2, "m - lead = 4 - 2 fresh seats");
        assertEq(bytes32(t.winner), bytes32(0), "no winner from a split round");
        assertEq(_job(id).extraSeatsUsed, 2, "two extra seats used");

        _seatWith(id, 0, _addrs(h3, h4));
        _commitAll(_addrs(h3, h4), id, 0, d);
        vm.expectEmit(true, true, false, true, address(market));
        emit JobMarket.TaskSettled(id, 0, 1, d);
        _reveal(h3, id, 0, d);
        address[] memory paid = _addrs4(h3, h4, h0, h1);
        paid = _cat(paid, _addrs(h2));
        _revealAll(_addrs4(h4, h0, h1, h2), id, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNotTheWinner.selector, id, 0, m1));
        _reveal(m1, id, 0, g);
        assertEq(uint256(_resolve(id, 0, m1)), uint256(JobMarket.Outcome.Slashed), "dissent slashed");
        _assertSlashedOnce(m1);
        assertEq(pool.burned(), COLLATERAL, "its collateral burned");

        _assertAllPaid(paid, id);
        assertEq(_pastHorizonRefund(id), ESCROW - 5 * REWARD, "refund = escrow - five rewards");
        assertEq(market.credits(requester), ESCROW - 5 * REWARD, "requester credit = its refund only");
    }

    /// @notice (b) The requester's sybil splits the round on purpose, hoping
    /// to learn the digest without paying, or to take its escrow back for
    /// work done. Nothing is published before a result wins; the honest
    /// workers are paid; the refund is exactly the escrow nobody earned.
    function test_attack_splitRound_revealsNothingAndRequesterPaysForTheWork() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        _seatWith(id, 0, _addrs4(h0, h1, h2, s1));
        vm.recordLogs();
        _commitAll(_addrs(h0, h1, h2), id, 0, d);
        _commit(s1, id, 0, _garbage(id, 0, 7));
        MarketVm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(_count(logs, address(market), JobMarket.ResultCommitted.selector), 4, "four commits");
        assertEq(_count(logs, address(market), JobMarket.TaskEscalated.selector), 1, "escalated");
        assertEq(_count(logs, address(market), JobMarket.RevealOpened.selector), 0, "no window opened");
        assertEq(_count(logs, address(market), JobMarket.ResultRevealed.selector), 0, "nothing revealed");
        assertEq(_count(logs, address(market), JobMarket.TaskSettled.selector), 0, "nothing settled");
        for (uint256 i; i < logs.length; ++i) {
            assertTrue(keccak256(logs[i].data) != keccak256(abi.encode(d)), "no log carries the digest");
            for (uint256 k; k < logs[i].topics.length; ++k) {
                assertTrue(logs[i].topics[k] != d, "no topic carries the digest");
            }
        }
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealNotOpen.selector, id, 0));
        _reveal(h0, id, 0, d);
        // The requester can neither cancel nor take its escrow back now.
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketJobHasDraws.selector, id));
        vm.prank(requester);
        market.cancelJob(id);
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketJobNotFinished.selector, id, JobMarket.JobState.Map)
        );
        market.refund(id);

        _seatWith(id, 0, _addrs(h3, h4));
        _commitAll(_addrs(h3, h4), id, 0, d);
        address[] memory paid = _cat(_addrs4(h3, h4, h0, h1), _addrs(h2));
        _revealAll(paid, id, d);
        _assertAllPaid(paid, id);
        assertEq(uint256(_resolve(id, 0, s1)), uint256(JobMarket.Outcome.Slashed), "sybil slashed");
        uint256 refund = _pastHorizonRefund(id);
        assertEq(refund, ESCROW - 5 * REWARD, "refund = exactly the unspent escrow");
        assertEq(market.credits(requester), refund, "requester got its refund, nothing more");
        assertEq(market.credits(s1), 0, "sybil earned nothing");
        assertEq(_stakeOf(s1), HONEST_STAKE - COLLATERAL, "sybil lost its collateral");
        assertEq(pool.burned(), COLLATERAL, "burned, not paid to the requester");
    }

    /// @notice (b') Sybils dissent in every round until the job runs out of
    /// rounds. The job fails and the escrow comes back, but the requester has
    /// learned nothing: no digest was ever published. No honest worker loses stake.
    function test_attack_splitRound_splittingEveryRoundBuysTheRequesterNothing() public {
        JobMarket.JobParams memory p = _params();
        p.maxRounds = 3;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        vm.recordLogs();
        _seatWith(id, 0, _addrs4(h0, h1, h2, s1)); // 3 : 1, lead 2 -> 2 seats
        _commitAll(_addrs(h0, h1, h2), id, 0, d);
        _commit(s1, id, 0, _garbage(id, 0, 0));
        _seatWith(id, 0, _addrs(h3, s2)); // 4 : 2, lead 2 -> 2 seats
        _commit(h3, id, 0, d);
        _commit(s2, id, 0, _garbage(id, 0, 0));
        _seatWith(id, 0, _addrs(h4, s3)); // 5 : 3, lead 2, no round left
        _commit(h4, id, 0, d);
        _commit(s3, id, 0, _garbage(id, 0, 0));
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Failed), "out of rounds: failed");
        MarketVm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(_count(logs, address(market), JobMarket.ResultRevealed.selector), 0, "nothing revealed");
        assertEq(_count(logs, address(market), JobMarket.RevealOpened.selector), 0, "no window opened");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealNotOpen.selector, id, 0));
        _reveal(h0, id, 0, d);
        for (uint256 i; i < 5; ++i) {
            assertEq(uint256(_resolve(id, 0, honest[i])), uint256(JobMarket.Outcome.Released), "released");
            _assertUntouched(honest[i]);
        }
        assertEq(_pastHorizonRefund(id), ESCROW, "the escrow comes back whole");
        assertEq(address(market).balance, ESCROW, "market holds exactly the refund");
    }

    /// @notice (c) A lazy seat copies a co-replica's result (public in
    /// ResultCommitted) and even its seal (public in storage). The round is
    /// unanimous, but the copier can never open: its seal needs the digest
    /// and its own address. It is slashed; the honest seats are paid.
    function test_attack_copy_resultCopiedFromTheLogCannotBeOpened() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        _seatWith(id, 0, _addrs4(h0, h1, h2, m1));
        vm.recordLogs();
        _commit(h0, id, 0, d);
        MarketVm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 copied;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == JobMarket.ResultCommitted.selector) {
                copied = abi.decode(logs[i].data, (bytes32));
            }
        }
        assertEq(copied, bytes32(bytes12(_result(id, 0, d))), "the log shows the result (12 bytes), not the digest");
        _commitRaw(m1, id, 0, copied, bytes32(_rep(id, 0, h0).seal));
        _commit(h1, id, 0, d);
        vm.expectEmit(true, true, false, false, address(market));
        emit JobMarket.RevealOpened(id, 0, 0, 0);
        _commit(h2, id, 0, d);

        // Guessing fails; so does the true digest once h0's opening made it public.
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketCommitmentMismatch.selector, id, 0, m1));
        _reveal(m1, id, 0, copied);
        _reveal(h0, id, 0, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketCommitmentMismatch.selector, id, 0, m1));
        _reveal(m1, id, 0, d);
        _revealAll(_addrs(h1, h2), id, d);

        // While the window is open the copier is not judged yet; then it is slashed.
        vm.expectRevert(
            abi.encodeWithSelector(
                JobMarket.JobMarketNotResolvable.selector, id, 0, m1, JobMarket.ReplicaState.Committed
            )
        );
        _resolve(id, 0, m1);
        _skip(REVEAL + 1);
        assertEq(uint256(_resolve(id, 0, m1)), uint256(JobMarket.Outcome.Slashed), "copier slashed");
        _assertSlashedOnce(m1);
        _assertAllPaid(_addrs(h0, h1, h2), id);
        assertEq(pool.burned(), COLLATERAL, "copier's collateral burned");
        assertEq(_pastHorizonRefund(id), ESCROW - 3 * REWARD, "refund = escrow - three rewards");
    }

    /// @notice (c') v1: a round-1 worker copied the digest round 0 had
    /// revealed. In v2 round 0's split published only result hashes; a lazy
    /// round-1 seat that copies the leading one cannot open it and is slashed.
    function test_attack_copy_earlierRoundResultCannotBeOpened() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        _seatWith(id, 0, _addrs4(h0, h1, h2, m1));
        _commitAll(_addrs(h0, h1, h2), id, 0, d);
        _commit(m1, id, 0, _garbage(id, 0, 0));
        // Round 1: m2 copies round 0's leading result from the log; h3 computes.
        bytes32 leading = bytes32(_rep(id, 0, h0).result);
        _seatWith(id, 0, _addrs(m2, h3));
        _commitRaw(m2, id, 0, leading, keccak256("made-up seal"));
        _commit(h3, id, 0, d);
        assertTrue(_task(id, 0).winner != bytes12(0), "d won");
        _reveal(h3, id, 0, d); // d is public now
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketCommitmentMismatch.selector, id, 0, m2));
        _reveal(m2, id, 0, d);
        _revealAll(_addrs(h0, h1, h2), id, d);
        _skip(REVEAL + 1);
        assertEq(uint256(_resolve(id, 0, m2)), uint256(JobMarket.Outcome.Slashed), "copier slashed");
        assertEq(uint256(_resolve(id, 0, m1)), uint256(JobMarket.Outcome.Slashed), "dissent slashed");
        _assertSlashedOnce(m2);
        _assertAllPaid(_addrs4(h0, h1, h2, h3), id);
        assertEq(pool.burned(), 2 * COLLATERAL, "both burned");
        assertEq(_pastHorizonRefund(id), ESCROW - 4 * REWARD, "refund = escrow - four rewards");
    }

    // ========================================== 4. minority quorums are gone

    /// @notice v1: 2 colluders of 5 seats settled garbage with quorum 2. In
    /// v2 there is no quorum parameter: two garbage seats against two honest
    /// ones tie (lead 0) in any order of commits, the task escalates by m,
    /// settles the true digest, and both colluders are slashed.
    function test_attack_minority_twoAttackersCannotSettleGarbage() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        bytes32 g = _garbage(id, 0, 0);
        _seatWith(id, 0, _addrs4(m1, m2, h0, h1));
        for (uint256 o; o < 4; ++o) {
            uint256 snap = vm.snapshotState();
            _splitTwoTwo(id, o);
            if (o + 1 < 4) vm.revertToStateAndDelete(snap);
        }
        address[] memory round1 = _addrs4(h2, h3, h4, h5);
        _seatWith(id, 0, round1);
        _commitAll(round1, id, 0, d);
        _revealAll(round1, id, d);
        _revealAll(_addrs(h0, h1), id, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNotTheWinner.selector, id, 0, m2));
        _reveal(m2, id, 0, g);
        _resolve(id, 0, m1);
        _resolve(id, 0, m2);
        _assertSlashedOnce(m1);
        _assertSlashedOnce(m2);
        _assertAllPaid(_cat(round1, _addrs(h0, h1)), id);
        assertEq(pool.burned(), 2 * COLLATERAL, "both colluders burned");
        assertEq(_pastHorizonRefund(id), ESCROW - 6 * REWARD, "refund = escrow - six rewards");
    }

    /// @dev Commits m1, m2 (garbage) and h0, h1 (true) in order `o` and checks the tie escalates.
    function _splitTwoTwo(uint256 id, uint256 o) internal {
        address[4][4] memory orders = [[m1, m2, h0, h1], [h0, m1, h1, m2], [h0, h1, m1, m2], [m1, h0, m2, h1]];
        vm.recordLogs();
        for (uint256 i; i < 4; ++i) {
            address w = orders[o][i];
            _commit(w, id, 0, w == h0 || w == h1 ? _truth(id, 0) : _garbage(id, 0, 0));
        }
        MarketVm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(_count(logs, address(market), JobMarket.RevealOpened.selector), 0, "no window for a tie");
        assertEq(_count(logs, address(market), JobMarket.TaskEscalated.selector), 1, "dissent escalates");
        assertEq(_task(id, 0).seats, M, "a tie needs m fresh seats");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealNotOpen.selector, id, 0));
        _reveal(m1, id, 0, _garbage(id, 0, 0));
    }

    /// @notice Even 3 garbage seats of 4 cannot settle garbage: a lead of 2 is
    /// not the margin. The honest seats of the next rounds catch up and win.
    function test_attack_minority_threeOfFourGarbageSeatsCannotSettle() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        bytes32 g = _garbage(id, 0, 0);
        _seatWith(id, 0, _addrs4(m1, m2, m3, h0));
        _commitAll(_addrs(m1, m2, m3), id, 0, g);
        _commit(h0, id, 0, d);
        assertEq(_task(id, 0).seats, 2, "garbage leads 3 : 1, lead 2: two more seats");
        assertEq(bytes32(_task(id, 0).winner), bytes32(0), "no winner");
        _seatWith(id, 0, _addrs(h1, h2));
        _commitAll(_addrs(h1, h2), id, 0, d); // 3 : 3, lead 0
        assertEq(_task(id, 0).seats, M, "a tie: m more seats");
        address[] memory round2 = _addrs4(h3, h4, h5, h6);
        _seatWith(id, 0, round2);
        _commitAll(round2, id, 0, d); // 7 : 3, lead 4
        assertEq(bytes32(_task(id, 0).winner), bytes32(bytes12(_result(id, 0, d))), "the true result won");
        address[] memory paid = _cat(round2, _addrs(h0, h1, h2));
        _revealAll(paid, id, d);
        _resolve(id, 0, m1);
        _resolve(id, 0, m2);
        _resolve(id, 0, m3);
        _assertSlashedOnce(m1);
        _assertSlashedOnce(m2);
        _assertSlashedOnce(m3);
        _assertAllPaid(paid, id);
        assertEq(pool.burned(), 3 * COLLATERAL, "three colluders burned");
        assertEq(_pastHorizonRefund(id), ESCROW - 7 * REWARD, "refund = escrow - seven rewards");
    }

    // ====================================================== 6. smaller ones

    function test_attack_floors_zeroCollateralRefused() public {
        JobMarket.JobParams memory p = _params();
        p.collateral = 0;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketCollateralTooLow.selector, 0, MIN_COLLATERAL));
    }

    function test_attack_floors_collateralBelowTwiceRewardRefused() public {
        JobMarket.JobParams memory p = _params();
        p.rewardPerReplica = 1 ether;
        p.collateral = 2 ether - 1;
        p.minStake = 2 ether;
        _expectPostRevert(
            p, abi.encodeWithSelector(JobMarket.JobMarketCollateralTooLow.selector, 2 ether - 1, 2 ether)
        );
        p.collateral = 2 ether; // exactly the floor is accepted
        uint256 value = _escrow(p, M);
        vm.deal(requester, requester.balance + value);
        vm.prank(requester);
        market.postJob{value: value}(p);
        assertEq(market.jobCount(), 1, "posted at the floor");
    }

    function test_attack_floors_collateralBelowChainMinimumRefused() public {
        JobMarket.JobParams memory p = _params();
        p.rewardPerReplica = 1; // 2 * reward is far below the chain's floor
        p.collateral = MIN_COLLATERAL - 1;
        _expectPostRevert(
            p,
            abi.encodeWithSelector(JobMarket.JobMarketCollateralTooLow.selector, MIN_COLLATERAL - 1, MIN_COLLATERAL)
        );
    }

    function test_attack_floors_zeroMinStakeRefused() public {
        JobMarket.JobParams memory p = _params();
        p.minStake = 0;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketStakeTooLow.selector, 0, POOL_MIN_STAKE));
        // Below the collateral is refused too: a seat must be able to lose its collateral.
        p.collateral = 3 ether;
        p.minStake = 3 ether - 1;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketStakeTooLow.selector, 3 ether - 1, 3 ether));
    }

    /// @notice A seated worker tries to pull its stake below the job's
    /// minimum (the stake it was drawn for) while its seat is open.
    function test_attack_unbond_belowJobMinStakeWhileAssignedRefused() public {
        JobMarket.JobParams memory p = _params();
        p.minStake = 5 ether;
        uint256 id = _post(p, M);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolBelowFloor.selector, h0, 4 ether, 5 ether));
        vm.prank(h0);
        pool.requestUnbond(6 ether);
        vm.prank(h0);
        pool.requestUnbond(5 ether); // down to exactly the floor is fine
        assertEq(_stakeOf(h0), 5 ether, "stake at the floor");
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolBelowFloor.selector, h0, 5 ether - 1, 5 ether));
        vm.prank(h0);
        pool.requestUnbond(1);

        // Once the seat ends the floor is gone.
        bytes32 d = _truth(id, 0);
        _commitAll(seats, id, 0, d);
        assertEq(_reveal(h0, id, 0, d), REWARD, "paid by the reveal");
        vm.prank(h0);
        pool.requestUnbond(4 ether);
        assertEq(_stakeOf(h0), 1 ether, "unbonded after the seat ended");
    }

    /// @notice v1 kept times in uint32, which wraps in 2106; v2's clocks are
    /// uint40. A job posted a minute before 2**32 runs to the end.
    function test_attack_clock_jobPostedNear2Pow32DoesNotWrap() public {
        uint256 t0 = (uint256(1) << 32) - 60;
        vm.warp(t0);
        uint256 id = _postDefault();
        JobMarket.Job memory j = _job(id);
        assertEq(j.deadline, t0 + TIMEOUT, "deadline past 2**32");
        assertTrue(j.deadline > type(uint32).max, "no wrap");
        bytes32 d = _truth(id, 0);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        uint256 leaseEnd = _rep(id, 0, h0).deadline;
        assertEq(leaseEnd, block.timestamp + LEASE, "lease deadline");
        assertTrue(leaseEnd > type(uint32).max, "lease past 2**32");
        _commitAll(seats, id, 0, d);
        assertEq(_task(id, 0).revealDeadline, block.timestamp + REVEAL, "reveal deadline past 2**32");
        assertEq(_job(id).horizon, block.timestamp + REVEAL, "horizon past 2**32");
        _revealAll(_addrs(h0, h1, h2), id, d);
        _skip(REVEAL + 1);
        assertEq(uint256(_resolve(id, 0, h3)), uint256(JobMarket.Outcome.Slashed), "silent winner slashed");
        _assertAllPaid(_addrs(h0, h1, h2), id);
        assertEq(_pastHorizonRefund(id), ESCROW - 3 * REWARD, "refund exact");
    }

    // ---------------------------------------- outcomes read time, not calls

    struct Result {
        uint256 outcome;
        uint256 stake;
        uint256 credits;
        uint256 burned;
        uint256 refund;
    }

    function _outcomeOf(uint256 id, uint256 taskId, address w) internal returns (Result memory r) {
        r.outcome = uint256(_resolve(id, taskId, w));
        r.stake = _stakeOf(w);
        r.credits = market.credits(w);
        r.burned = pool.burned();
        r.refund = _pastHorizonRefund(id);
    }

    function _assertSameResult(Result memory a, Result memory b, string memory what) internal pure {
        assertEq(a.outcome, b.outcome, string.concat(what, ": outcome"));
        assertEq(a.stake, b.stake, string.concat(what, ": stake"));
        assertEq(a.credits, b.credits, string.concat(what, ": credits"));
        assertEq(a.burned, b.burned, string.concat(what, ": burned"));
        assertEq(a.refund, b.refund, string.concat(what, ": refund"));
    }

    /// @notice A no-show's outcome is the same whether the job was expired
    /// first, never, or the replica was resolved while the job still ran.
    function test_attack_order_noShowOutcomeIndependentOfExpire() public {
        uint256 id = _postDefault();
        _seatWith(id, 0, _addrs4(h0, h1, h2, h3));
        uint256 deadline = _job(id).deadline;
        Result[3] memory rs;
        for (uint256 world; world < 3; ++world) {
            uint256 snap = vm.snapshotState();
            if (world == 0) {
                vm.warp(deadline + 1);
                market.expireJob(id);
            } else if (world == 1) {
                vm.warp(deadline + 1 days);
            } else {
                _skip(LEASE + 1);
            }
            rs[world] = _outcomeOf(id, 0, h0);
            vm.revertToStateAndDelete(snap);
        }
        assertEq(rs[0].outcome, uint256(JobMarket.Outcome.Slashed), "a no-show is slashed");
        assertEq(rs[0].stake, HONEST_STAKE - COLLATERAL, "one collateral");
        _assertSameResult(rs[0], rs[1], "expired vs not expired");
        _assertSameResult(rs[0], rs[2], "expired vs resolved while live");
    }

    /// @notice A committer of the winner that never opens is slashed once the
    /// window closes, whether the job was expired first, poked, or neither.
    function test_attack_order_silentCommitterOutcomeIndependentOfExpireAndPoke() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        _commitAll(seats, id, 0, d);
        _revealAll(_addrs(h0, h1, h2), id, d);
        uint256 closes = _task(id, 0).revealDeadline;
        uint256 deadline = _job(id).deadline;
        Result[4] memory rs;
        for (uint256 world; world < 4; ++world) {
            uint256 snap = vm.snapshotState();
            if (world == 0) {
                vm.warp(closes + 1);
            } else if (world == 1) {
                vm.warp(deadline + 1);
                vm.expectRevert(); // a completed job cannot be expired
                market.expireJob(id);
            } else if (world == 2) {
                vm.warp(closes + 1);
                vm.expectRevert(); // nor poked
                market.poke(id, 0);
                vm.warp(deadline + 1);
            } else {
                vm.warp(deadline + 30 days);
            }
            rs[world] = _outcomeOf(id, 0, h3);
            vm.revertToStateAndDelete(snap);
        }
        assertEq(rs[0].outcome, uint256(JobMarket.Outcome.Slashed), "silent committer slashed");
        for (uint256 w = 1; w < 4; ++w) {
            _assertSameResult(rs[0], rs[w], "silent committer across orders");
        }
    }

    /// @notice A winning round nobody opens, with no round (and no prefunded
    /// seat) left: the round is void and the task dead, but the job runs on
    /// to its deadline, where every duty is judged by time. A silent
    /// committer's outcome, and the requester's refund, do not depend on
    /// whether or when anyone poked the task, expired the job, or tried to
    /// resolve the committer early (while the job is live it has no verdict yet).
    function test_attack_order_silentRoundOutcomeIndependentOfPokeAndExpire() public {
        JobMarket.JobParams memory p = _params();
        p.extraSeats = 0;
        p.maxRounds = 1;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        address[] memory seats = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats);
        _commitAll(seats, id, 0, d);
        uint256 closes = _task(id, 0).revealDeadline;
        uint256 deadline = _job(id).deadline;
        assertTrue(closes + 1 < deadline, "the window closes well before the job's deadline");
        Result[6] memory rs;
        for (uint256 world; world < 6; ++world) {
            uint256 snap = vm.snapshotState();
            if (world == 0) {
                vm.warp(closes + 1);
                market.poke(id, 0);
                _assertDeadTask(id);
                vm.warp(deadline + 1);
            } else if (world == 1) {
                vm.warp(deadline + 1);
                market.expireJob(id);
            } else if (world == 2) {
                vm.warp(deadline + 1);
            } else if (world == 3) {
                vm.warp(closes + 1); // the job still runs, and the silent round's verdict is already due
                _resolve(id, 0, h1);
                vm.warp(deadline + 1);
            } else if (world == 4) {
                vm.warp(closes + 1);
                market.poke(id, 0);
                vm.warp(deadline + 1);
                market.expireJob(id);
                _resolve(id, 0, h1); // another committer first
            } else {
                vm.warp(deadline + 30 days);
            }
            // Every world resolves a second silent committer (worlds 3 and 4 already did, at other moments),
            // so the burned totals compare.
            if (world != 3 && world != 4) _resolve(id, 0, h1);
            rs[world] = _outcomeOf(id, 0, h0);
            vm.revertToStateAndDelete(snap);
        }
        // Its round won and nobody opened it while the job was live: slashed, in every order.
        assertEq(rs[0].outcome, uint256(JobMarket.Outcome.Slashed), "a silent winner is slashed");
        assertEq(rs[0].stake, HONEST_STAKE - COLLATERAL, "its collateral burned");
        assertEq(rs[0].refund, ESCROW - EXTRA * REWARD, "the whole escrow comes back");
        for (uint256 w = 1; w < 6; ++w) {
            _assertSameResult(rs[0], rs[w], "silent round across orders");
        }
    }

    /// @dev Task 0's round 0 is void and nothing is left for a new round: dead, the job live.
    function _assertDeadTask(uint256 id) internal {
        JobMarket.Task memory t = _task(id, 0);
        assertEq(t.voidRounds, 1, "round 0 void");
        assertEq(bytes32(t.winner), bytes32(0), "winner cleared");
        assertEq(t.round, 0, "no new round");
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Map), "the job does not fail");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(stranger, id, 0);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRoundNotStale.selector, id, 0));
        market.poke(id, 0);
    }

    /// @notice A no-show's outcome must not depend on whether (or when)
    /// someone poked ANOTHER task of the job whose winning round went
    /// unopened. Both worlds have the same worker actions at the same times;
    /// they differ only in one permissionless poke.
    function test_attack_order_noShowOutcomeIndependentOfPokeOnAnotherTask() public {
        (uint256 id, address noShow, uint256 closes, uint256 leaseEnd) = _staleTaskAndNoShow();
        Result[2] memory rs;
        for (uint256 world; world < 2; ++world) {
            uint256 snap = vm.snapshotState();
            if (world == 0) {
                vm.warp(closes + 1);
                vm.prank(stranger);
                market.poke(id, 0); // no round left: task 0 is dead, the job runs on
            }
            vm.warp(leaseEnd + 1);
            rs[world] = _outcomeOf(id, 1, noShow);
            vm.revertToStateAndDelete(snap);
        }
        _assertSameResult(rs[0], rs[1], "no-show with vs without a poke on task 0");
    }

    /// @dev A two-task job: task 0's winning round is never opened (its
    /// window closes at `closes`); task 1 has a no-show whose lease ends later.
    function _staleTaskAndNoShow() internal returns (uint256 id, address noShow, uint256 closes, uint256 leaseEnd) {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        p.extraSeats = 0;
        p.maxRounds = 1;
        id = _post(p, M);
        address[] memory seats0 = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, seats0);
        _draw(stranger, id, 1); // same seed: whoever it draws
        address[] memory seats1 = _seats(id, 1);
        assertEq(seats1.length, M, "task 1 seated");
        _commitAll(seats0, id, 0, _truth(id, 0));
        closes = _task(id, 0).revealDeadline; // now + REVEAL
        for (uint256 i; i < 3; ++i) {
            _commit(seats1[i], id, 1, _truth(id, 1));
        }
        noShow = seats1[3];
        leaseEnd = _rep(id, 1, noShow).deadline;
        assertTrue(leaseEnd > closes + 1, "the no-show's lease outlives task 0's window");
    }

    /// @notice A cartel holds every seat of a round, commits the true digest
    /// and stays silent: the window closes with no opening, the round is
    /// void and the task escalates with m fresh seats paid from the
    /// requester's escrow. The cartel missed its opening; it must not be paid
    /// later by opening in the next round's window (and is slashed), else
    /// forcing an escalation costs it nothing.
    function test_attack_staleRound_silentCartelIsNotPaidInALaterWindow() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory cartel = _addrs4(m1, m2, m3, m4);
        _seatWith(id, 0, cartel);
        _commitAll(cartel, id, 0, d);
        _skip(REVEAL + 1);
        market.poke(id, 0);
        assertEq(_task(id, 0).round, 1, "void round escalated");

        address[] memory round1 = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, round1);
        _commitAll(round1, id, 0, d);
        _revealAll(round1, id, d);

        // The cartel tries to open now, in the window of the round it voided.
        vm.prank(m1);
        (bool opened,) = address(market).call(abi.encodeCall(JobMarket.reveal, (id, _ids(0), _words(d))));
        assertTrue(!opened, "a committer of a void round opened in a later round's window and is owed a reward");
        _skip(REVEAL + 1);
        assertEq(uint256(_resolve(id, 0, m2)), uint256(JobMarket.Outcome.Slashed), "void-round committer slashed");
        _assertAllPaid(round1, id);
        assertEq(_pastHorizonRefund(id), ESCROW - 4 * REWARD, "only round 1 was paid");
    }

    // ======================================== inputs nobody can fetch (#15)

    /// @notice A worker says a task's input could not be fetched although it
    /// could (here it is always there): the seat is freed as a decline is, it
    /// is never drawn for the task again, the task settles with others, and
    /// the liar ends with exactly what it had: no reward, no slash, nothing
    /// locked. One report fails nothing.
    function test_attack_unavailableInput_aLyingReporterGainsNothing() public {
        uint256 id = _postDefault();
        _seatWith(id, 0, _addrs4(m1, h1, h2, h3));
        vm.expectEmit(true, true, true, true, address(market));
        emit JobMarket.InputUnavailable(id, 0, m1, 1);
        vm.prank(m1);
        market.reportUnavailable(id, _ids(0));
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Map), "one report fails nothing");
        assertEq(uint256(_rep(id, 0, m1).state), uint256(JobMarket.ReplicaState.Declined), "its seat is given back");
        assertEq(_task(id, 0).seated, 3, "and open again");
        for (uint256 k; k < 6 && _task(id, 0).seated < M; ++k) {
            vm.prank(stranger);
            try market.draw(id, _ids(0)) {} catch {}
        }
        address[] memory seated = _seats(id, 0);
        assertEq(seated.length, M, "the seat was redrawn");
        assertTrue(!_contains(seated, m1), "never to the reporter");
        _commitAll(seated, id, 0, _truth(id, 0));
        for (uint256 i; i < seated.length; ++i) {
            assertEq(_reveal(seated[i], id, 0, _truth(id, 0)), REWARD, "each computing seat paid one reward");
        }
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Completed), "settled without it");
        _assertUntouched(m1);
        assertEq(market.credits(m1), 0, "the reporter earned nothing");
        // Reporting is declining: only an assigned seat, only in the first quarter of its lease.
        vm.expectRevert(_wrongState(id, 0, m1, JobMarket.ReplicaState.Declined));
        vm.prank(m1);
        market.reportUnavailable(id, _ids(0));
    }

    /// @notice When as many distinct drawn workers as the margin say a
    /// task's input cannot be fetched, the job fails at the requester's cost:
    /// work already settled is paid, nobody is slashed or paid for reporting,
    /// and the requester gets back only what was not earned.
    function test_attack_unavailableInput_marginReportersFailTheJobAtTheRequestersCost() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        uint256 id = _post(p, M);
        uint256 escrow = _escrow(p, M);
        address[] memory reporters = _addrs4(h0, h1, h2, h3);
        _seatWith(id, 0, reporters);
        for (uint256 k; k < 6 && _task(id, 1).seated < M; ++k) {
            vm.prank(stranger);
            try market.draw(id, _ids(1)) {} catch {}
        }
        address[] memory computed = _seats(id, 1);
        assertEq(computed.length, M, "task 1 drawn");
        _commitAll(computed, id, 1, _truth(id, 1)); // task 1's input was there: it settles
        for (uint256 i; i < M; ++i) {
            assertEq(_reveal(computed[i], id, 1, _truth(id, 1)), REWARD, "settled work is paid");
        }
        _skip(LEASE / 8); // inside the first quarter of the lease
        for (uint256 i; i < M; ++i) {
            vm.prank(reporters[i]);
            market.reportUnavailable(id, _ids(0));
            JobMarket.JobState expected = i + 1 < M ? JobMarket.JobState.Map : JobMarket.JobState.Failed;
            assertEq(uint256(_job(id).state), uint256(expected), "fails at the margin-th report, not before");
        }
        for (uint256 i; i < M; ++i) {
            _assertUntouched(reporters[i]);
            // A reporter that also computed task 1 has that reward, and nothing for reporting.
            assertEq(market.credits(reporters[i]), _contains(computed, reporters[i]) ? REWARD : 0, "reporting pays nothing");
        }
        assertEq(pool.burned(), 0, "nobody slashed");
        assertEq(_pastHorizonRefund(id), escrow - 4 * REWARD, "refund = escrow - what was earned");
        assertEq(address(market).balance, 4 * REWARD + market.credits(requester), "every wei accounted for");
    }
}
