// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {IRandomness} from "../../contracts/interfaces/IRandomness.sol";
import {MarketFixture, MarketVm, vm} from "./MarketBase.sol";

/// @notice The mechanics of JobMarket one at a time: the margin formula,
/// parameters and escrow, seeds, draws, the tally and its escalations,
/// decline, commit/reveal errors, refunds, and money to the wei.
contract JobMarketMechanicsTest is MarketFixture {
    uint256 internal constant PPM = 1_000_000;
    uint256 internal constant ESCROW = uint256(REWARD) * (M + EXTRA);

    address internal x0 = address(0xD150);
    address internal x1 = address(0xD151);
    address internal x2 = address(0xD152);
    address internal x3 = address(0xD153);

    function setUp() public override {
        super.setUp();
        _enlist(x0, HONEST_STAKE);
        _enlist(x1, HONEST_STAKE);
        _enlist(x2, HONEST_STAKE);
        _enlist(x3, HONEST_STAKE);
        _nextEpoch();
    }

    function _four(uint256 a, uint256 b, uint256 c, uint256 d) internal view returns (address[] memory xs) {
        xs = new address[](4);
        (xs[0], xs[1], xs[2], xs[3]) = (honest[a], honest[b], honest[c], honest[d]);
    }

    function _postWith(JobMarket.JobParams memory p) internal returns (uint256) {
        return _post(p, market.marginFor(p.epsilonPpm, p.adversaryPpm));
    }

    // ===================================================== the margin

    /// @notice The least m with f^m / (f^m + (1-f)^m) <= epsilon; the table of docs/protocol.md.
    function test_marginFor_table() public view {
        assertEq(market.marginFor(1_000, 100_000), 4, "f = 0.1, eps = 1e-3");
        assertEq(market.marginFor(10_000, 100_000), 3, "f = 0.1, eps = 1e-2");
        assertEq(market.marginFor(1_000, 200_000), 5, "f = 0.2, eps = 1e-3");
        assertEq(market.marginFor(1_000, 330_000), 10, "f = 0.33, eps = 1e-3");
        assertEq(market.marginFor(1_000, 0), 1, "f = 0: one seat");
        assertEq(market.marginFor(1, 0), 1, "f = 0, eps = 1e-6: one seat");
        assertEq(market.marginFor(100_000, 100_000), 1, "f = 0.1, eps = 0.1: one seat");
        assertEq(market.marginFor(1, 490_000), 0, "unreachable within 16");
    }

    /// @dev The least m <= 11 with f^m * (PPM - eps) <= eps * (PPM - f)^m in
    /// exact integers (both sides of the inequality times PPM^m); 0 if none.
    function _exactMargin(uint256 eps, uint256 f) internal pure returns (uint256) {
        uint256 bad = 1;
        uint256 good = 1;
        for (uint256 m = 1; m <= 11; ++m) {
            bad *= f;
            good *= PPM - f;
            if (bad * (PPM - eps) <= eps * good) return m;
        }
        return 0;
    }

    /// @notice marginFor is never below the exact margin, and at most one above it
    /// (it rounds f^m up and (1-f)^m down).
    function testFuzz_marginFor_matchesExactArithmetic(uint256 eps, uint256 f) public view {
        eps = bound(eps, 1, PPM - 1);
        f = bound(f, 0, PPM / 2 - 1);
        uint256 exact = _exactMargin(eps, f);
        uint256 m = market.marginFor(eps, f);
        if (exact == 0) {
            assertTrue(m == 0 || m > 11, "no margin <= 11 exists");
            return;
        }
        assertGe(m, exact, "margin never too small");
        assertLe(m, exact + 1, "margin at most one above the exact one");
    }

    // ============================================ parameters and escrow

    function test_postJob_escrowMustMatchExactly() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 3;
        p.reduceTasks = 2;
        uint256 required = uint256(REWARD) * (M * 5 + EXTRA);
        assertEq(_escrow(p, M), required, "escrow rule");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketEscrowMismatch.selector, required, required - 1));
        vm.prank(requester);
        market.postJob{value: required - 1}(p);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketEscrowMismatch.selector, required, required + 1));
        vm.prank(requester);
        market.postJob{value: required + 1}(p);
        vm.expectEmit(true, true, false, true, address(market));
        emit JobMarket.JobPosted(1, requester, SPEC, 3, 2, M, 0, REWARD, required);
        uint256 id = _post(p, M);
        JobMarket.Job memory j = _job(id);
        assertEq(j.escrow, required, "escrow held");
        assertEq(j.margin, M, "margin stored");
        assertEq(j.seedBlock, block.number + DRAW_DELAY, "seed armed drawDelay ahead");
        assertEq(address(market).balance, required, "market holds it");
    }

    function test_postJob_invalidParametersRefused() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 0;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidTaskCounts.selector, 0, 0));
        p = _params();
        p.epsilonPpm = 0;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidErrorTarget.selector, 0, ADV));
        p.epsilonPpm = uint32(PPM);
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidErrorTarget.selector, PPM, ADV));
        p = _params();
        p.adversaryPpm = uint32(PPM / 2);
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidErrorTarget.selector, EPS, PPM / 2));
        p = _params();
        p.epsilonPpm = 1;
        p.adversaryPpm = 490_000;
        _expectPostRevert(
            p, abi.encodeWithSelector(JobMarket.JobMarketErrorTargetUnreachable.selector, 1, 490_000, 16)
        );
        p = _params();
        p.maxRounds = 0;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidRounds.selector, 0, EXTRA));
        p.maxRounds = 1;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidRounds.selector, 1, EXTRA));
        p = _params();
        p.maxRounds = 65; // one bit per round in Task.voidRounds
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidRounds.selector, 65, EXTRA));
        p = _params();
        p.resourceClass = 8;
        _expectPostRevert(p, abi.encodeWithSelector(JobMarket.JobMarketInvalidClass.selector, 8));
        assertEq(market.jobCount(), 0, "nothing posted");
    }

    function _expectPostRevert(JobMarket.JobParams memory p, bytes memory err) internal {
        uint256 m = market.marginFor(p.epsilonPpm, p.adversaryPpm);
        uint256 value = _escrow(p, m == 0 ? 1 : m);
        vm.expectRevert(err);
        vm.prank(requester);
        market.postJob{value: value}(p);
    }

    // ============================================================ seeds

    function test_draw_nothingBeforeTheSeedBlockIsMined() public {
        uint256 id = _postDefault();
        uint256 sb = _job(id).seedBlock;
        _mine(sb - block.number); // the seed block itself: its hash is not known yet
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(stranger, id, 0);
        _mine(1);
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, M, "seated once the seed block is mined");
    }

    /// @notice A seed whose epoch has passed is re-armed to a future block:
    /// weights may have changed since it was known.
    function test_draw_reArmsASeedFromAnEarlierEpoch() public {
        uint256 id = _postDefault();
        _nextEpoch();
        _mine(1);
        uint256 expected = block.number + DRAW_DELAY;
        vm.expectEmit(true, true, false, true, address(market));
        emit JobMarket.SeedArmed(id, type(uint256).max, expected);
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, 0, "nothing drawn from a stale seed");
        assertEq(_job(id).seedBlock, expected, "job seed re-armed");
        assertEq(_job(id).hasDraws, false, "a re-arm is not a draw");
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, M, "drawn from the new seed");
    }

    /// @notice With blockhash randomness a seed block more than 256 blocks
    /// old (hash no longer readable) is re-armed too.
    function test_draw_reArmsASeedWhoseBlockhashIsTooOld() public {
        _deploy(IRandomness(address(0)), 10_000);
        for (uint256 i; i < honest.length; ++i) {
            _enlist(honest[i], HONEST_STAKE);
        }
        _nextEpoch();
        uint256 id = _postDefault();
        uint256 sb = _job(id).seedBlock;
        _mine(sb + 300 - block.number); // same epoch, 300 blocks later
        assertEq(pool.epochOf(sb), pool.epoch(), "still the seed's epoch");
        assertEq(blockhash(sb), bytes32(0), "hash too old to read");
        uint256 expected = block.number + DRAW_DELAY;
        vm.expectEmit(true, true, false, true, address(market));
        emit JobMarket.SeedArmed(id, type(uint256).max, expected);
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, 0, "nothing drawn");
        _toSeed(id, 0);
        vm.setBlockhash(_job(id).seedBlock, keccak256("fresh"));
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, M, "drawn from the new seed");
    }

    /// @notice An escalation round has its own seed; it is re-armed alone.
    function test_draw_escalationRoundReArmsItsOwnSeed() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _commitAll(_addrs(seats[0], seats[1], seats[2]), id, 0, d);
        _commit(seats[3], id, 0, _garbage(id, 0, 0));
        uint256 own = _task(id, 0).seedBlock;
        assertEq(own, block.number + DRAW_DELAY, "round 1 seed armed at the split");
        _nextEpoch();
        _mine(1);
        uint256 expected = block.number + DRAW_DELAY;
        vm.expectEmit(true, true, false, true, address(market));
        emit JobMarket.SeedArmed(id, 0, expected);
        _draw(stranger, id, 0);
        assertEq(_task(id, 0).seedBlock, expected, "task seed re-armed");
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, 2, "round 1 drawn: m - lead = 2 seats");
    }

    // ====================================================== draws

    /// @notice Never the same worker twice on a task: with six workers, a
    /// round-0 split leaves exactly two fresh ones for round 1, whatever the
    /// randomness; a further escalation seats nobody, however often drawn.
    function test_draw_neverTheSameWorkerTwiceOnATask() public {
        _deploy(IRandomness(address(rng)), EPOCH_BLOCKS);
        for (uint256 i; i < 6; ++i) {
            _enlist(honest[i], HONEST_STAKE);
        }
        _nextEpoch();
        uint256 id = _postDefault();
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        address[] memory round0 = _seats(id, 0);
        assertEq(round0.length, M, "round 0 full");
        bytes32 d = _truth(id, 0);
        _commitAll(_addrs(round0[0], round0[1], round0[2]), id, 0, d);
        _commit(round0[3], id, 0, _garbage(id, 0, 0));
        _toSeed(id, 0);
        uint256 sb = _seedBlockOf(id, 0);
        uint256 full = type(uint256).max; // a world where both fresh seats were drawn
        for (uint256 s; s < 8; ++s) {
            uint256 snap = vm.snapshotState();
            _drawFresh(id, sb, s);
            address[] memory round1 = _seats(id, 0);
            assertGe(round1.length, 1, "a fresh seat drawn");
            for (uint256 i; i < round1.length; ++i) {
                assertTrue(!_contains(round0, round1[i]), "a round-0 worker drawn again");
            }
            if (round1.length == 2 && full == type(uint256).max) full = s;
            vm.revertToStateAndDelete(snap);
        }
        assertTrue(full != type(uint256).max, "some world drew both fresh workers");
        _drawFresh(id, sb, full);
        address[] memory r1 = _seats(id, 0);
        _commit(r1[0], id, 0, d);
        _commit(r1[1], id, 0, _garbage(id, 0, 1)); // 4 : 1 : 1, lead 2: two more seats
        _toSeed(id, 0);
        for (uint256 k; k < 3; ++k) {
            vm.prank(stranger);
            try market.draw(id, _ids(0)) {} catch {}
        }
        assertEq(_task(id, 0).seated, 0, "nobody left who never served the task");
        assertEq(_seats(id, 0).length, 0, "no seat given to a worker who served");
    }

    /// @dev Draws round 1 with randomness number `s` (a call looks at no more
    /// than 4 candidates per open seat, so it may take a few).
    function _drawFresh(uint256 id, uint256 sb, uint256 s) internal {
        rng.set(sb, keccak256(abi.encode("fresh", s)));
        for (uint256 k; k < 4; ++k) {
            vm.prank(stranger);
            try market.draw(id, _ids(0)) {}
            catch {
                break;
            }
        }
    }

    /// @notice A declined seat, or a no-show's, is redrawn but never to them.
    function test_draw_declinedAndNoShowAreNeverRedrawn() public {
        uint256 id = _postDefault();
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        vm.prank(seats[0]);
        market.decline(id, _ids(0));
        _skip(LEASE + 1);
        _commitAllExpectingExpired(seats, id);
        assertEq(uint256(_resolve(id, 0, seats[1])), uint256(JobMarket.Outcome.Slashed), "no-show slashed");
        assertEq(_task(id, 0).seated, 2, "two seats open");
        for (uint256 k; k < 6; ++k) {
            vm.prank(stranger);
            try market.draw(id, _ids(0)) {}
            catch {
                break;
            }
        }
        address[] memory now_ = _seats(id, 0);
        assertTrue(!_contains(now_, seats[0]), "declined worker redrawn");
        assertTrue(!_contains(now_, seats[1]), "no-show redrawn");
        assertEq(uint256(_rep(id, 0, seats[0]).state), uint256(JobMarket.ReplicaState.Declined), "marker kept");
        assertEq(uint256(_rep(id, 0, seats[1]).state), uint256(JobMarket.ReplicaState.Slashed), "marker kept");
    }

    function _commitAllExpectingExpired(address[] memory seats, uint256 id) internal {
        uint256 deadline = _rep(id, 0, seats[1]).deadline;
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketLeaseExpired.selector, id, 0, deadline));
        _commit(seats[1], id, 0, _truth(id, 0));
    }

    // ======================================================= the tally

    /// @notice Round 0 has m = 4 seats; k of them commit garbage. k = 0: the
    /// truth wins; k = 4: garbage wins (every seat); otherwise the task
    /// escalates by m - lead fresh seats: lead 2 -> 2, lead 0 -> 4.
    function test_tally_escalationSeatsAreMarginMinusLead() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        bytes32 g = _garbage(id, 0, 0);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        uint256[5] memory wantSeats = [uint256(0), 2, 4, 2, 0];
        for (uint256 k; k <= 4; ++k) {
            uint256 snap = vm.snapshotState();
            for (uint256 i; i < 4; ++i) {
                _commit(seats[i], id, 0, i < k ? g : d);
            }
            JobMarket.Task memory t = _task(id, 0);
            if (k == 0 || k == 4) {
                assertEq(bytes32(t.winner), bytes32(bytes12(_result(id, 0, k == 0 ? d : g))), "winner");
                assertEq(t.round, 0, "no escalation");
            } else {
                assertEq(bytes32(t.winner), bytes32(0), "no winner");
                assertEq(t.round, 1, "escalated");
                assertEq(t.seats, wantSeats[k], "m - lead seats");
                assertEq(_job(id).extraSeatsUsed, wantSeats[k], "extra seats used");
            }
            vm.revertToStateAndDelete(snap);
        }
    }

    /// @notice The verdict of a round depends on its counts only, not on the
    /// order its commits arrived in: every permutation, every mix of three results.
    function testFuzz_tally_verdictIndependentOfCommitOrder(uint256 seed) public {
        uint256 id = _postDefault();
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        address[] memory seats = _seats(id, 0);
        assertEq(seats.length, M, "round 0 full");
        (bytes32[] memory pick, bytes32 wantWinner, uint256 wantSeats) = _mix(id, seed);
        uint256[2] memory got0 = _playOrder(id, seats, pick, (seed >> 40) % 4, false);
        uint256[2] memory got1 = _playOrder(id, seats, pick, (seed >> 48) % 4, true);
        assertEq(bytes32(got0[0]), wantWinner, "winner");
        if (wantWinner == 0) assertEq(got0[1], wantSeats, "m - lead seats");
        assertEq(got1[0], got0[0], "order changed the winner");
        assertEq(got1[1], got0[1], "order changed the escalation");
    }

    /// @dev Four results drawn from {truth, g1, g2} by `seed`, and the verdict
    /// computed here: leader = most commits, lead = 2 * leader - total; a win
    /// at lead >= m, else m - lead fresh seats.
    function _mix(uint256 id, uint256 seed)
        internal
        pure
        returns (bytes32[] memory pick, bytes32 winner, uint256 nextSeats)
    {
        bytes32[3] memory results = [_truth(id, 0), _garbage(id, 0, 1), _garbage(id, 0, 2)];
        pick = new bytes32[](4);
        uint256[3] memory counts;
        for (uint256 i; i < 4; ++i) {
            uint256 r = (seed >> (8 * i)) % 3;
            pick[i] = results[r];
            counts[r]++;
        }
        uint256 best;
        for (uint256 r = 1; r < 3; ++r) {
            if (counts[r] > counts[best]) best = r;
        }
        int256 lead = 2 * int256(counts[best]) - 4;
        if (lead >= int256(uint256(M))) winner = bytes32(bytes12(_result(id, 0, results[best])));
        else nextSeats = uint256(int256(uint256(M)) - lead);
    }

    /// @dev Commits `pick[k]` for `seats[k]` in a rotated (maybe reversed)
    /// order, reads the verdict (winner, next round's seats), and throws the world away.
    function _playOrder(uint256 id, address[] memory seats, bytes32[] memory pick, uint256 start, bool reverse)
        internal
        returns (uint256[2] memory got)
    {
        uint256 snap = vm.snapshotState();
        for (uint256 i; i < 4; ++i) {
            uint256 k = reverse ? (start + 4 - i) % 4 : (start + i) % 4;
            _commit(seats[k], id, 0, pick[k]);
        }
        got[0] = uint256(bytes32(_task(id, 0).winner));
        got[1] = _task(id, 0).seats;
        vm.revertToStateAndDelete(snap);
    }

    /// @notice A tally that continues across rounds: 3 : 1 in round 0, then
    /// round 1's two seats agree with the leader: 5 : 1, lead 4 wins, and
    /// round 0's dissenter loses.
    function test_tally_continuesAcrossRounds() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        _seatWith(id, 0, _four(0, 1, 2, 3));
        _commitAll(_addrs(honest[0], honest[1], honest[2]), id, 0, d);
        _commit(honest[3], id, 0, _garbage(id, 0, 0));
        _seatWith(id, 0, _addrs(honest[4], honest[5]));
        _commit(honest[4], id, 0, d);
        vm.expectEmit(true, true, false, false, address(market));
        emit JobMarket.RevealOpened(id, 0, 1, 0);
        _commit(honest[5], id, 0, d);
        JobMarket.Task memory t = _task(id, 0);
        assertEq(t.leadCount, 5, "leader count");
        assertEq(t.total, 6, "total");
    }

    // ============================================= escalation budget

    /// @notice A 2 : 2 tie needs 4 more seats; the job prefunded only 2: it
    /// fails at once, everyone is released, the escrow comes back to the wei.
    function test_escalation_budgetExhaustionFailsAndRefundsExactly() public {
        JobMarket.JobParams memory p = _params();
        p.extraSeats = 2;
        uint256 escrow = _escrow(p, M);
        uint256 id = _post(p, M);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _commitAll(_addrs(seats[0], seats[1]), id, 0, _truth(id, 0));
        _commit(seats[2], id, 0, _garbage(id, 0, 0));
        vm.expectEmit(true, false, false, true, address(market));
        emit JobMarket.JobStateChanged(id, JobMarket.JobState.Failed);
        _commit(seats[3], id, 0, _garbage(id, 0, 0));
        JobMarket.Job memory j = _job(id);
        assertEq(uint256(j.state), uint256(JobMarket.JobState.Failed), "failed");
        assertEq(j.deadline, block.timestamp, "failed now");
        assertEq(j.extraSeatsUsed, 0, "no seat spent");
        for (uint256 i; i < 4; ++i) {
            _collect(seats[i], id, 0);
            assertEq(market.credits(seats[i]), 0, "released, no reward");
            assertEq(_stakeOf(seats[i]), HONEST_STAKE, "stake intact");
            assertEq(_lockedOf(seats[i]), 0, "nothing locked");
        }
        assertEq(pool.burned(), 0, "nothing burned");
        _skip(1);
        vm.prank(stranger);
        assertEq(market.refund(id), escrow, "refund = the whole escrow");
        assertEq(market.credits(requester), escrow, "credited to the requester");
        assertEq(address(market).balance, escrow, "market holds only that");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToRefund.selector, id));
        market.refund(id);
    }

    /// @notice maxRounds binds even with extra seats left: 3 : 1 then 1 : 1
    /// with maxRounds 2 fails the job; money back exactly.
    function test_escalation_maxRoundsExhaustionFails() public {
        JobMarket.JobParams memory p = _params();
        p.maxRounds = 2;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        _seatWith(id, 0, _four(0, 1, 2, 3));
        _commitAll(_addrs(honest[0], honest[1], honest[2]), id, 0, d);
        _commit(honest[3], id, 0, _garbage(id, 0, 0));
        _seatWith(id, 0, _addrs(honest[4], honest[5]));
        _commit(honest[4], id, 0, d);
        _commit(honest[5], id, 0, _garbage(id, 0, 0));
        JobMarket.Job memory j = _job(id);
        assertEq(uint256(j.state), uint256(JobMarket.JobState.Failed), "failed: no third round");
        assertEq(j.extraSeatsUsed, 2, "round 1's two seats");
        for (uint256 i; i < 6; ++i) {
            assertEq(uint256(_resolve(id, 0, honest[i])), uint256(JobMarket.Outcome.Released), "released");
        }
        _skip(1);
        vm.prank(stranger);
        assertEq(market.refund(id), ESCROW, "whole escrow back");
    }

    // ====================================================== void rounds

    /// @notice A won round whose window closes with no opening is void: the
    /// tally resets and m fresh seats are drawn, paid from the prefunded extra
    /// seats. The void round's committers can never open, even when the next
    /// round wins the same result, and are slashed once the task settles.
    function test_voidRound_reopensMFreshSeatsFromTheBudget() public {
        JobMarket.JobParams memory p = _params();
        p.extraSeats = M;
        p.maxRounds = 2;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        address[] memory round0 = _four(0, 1, 2, 3);
        _seatWith(id, 0, round0);
        _commitAll(round0, id, 0, d);
        uint256 closes = _task(id, 0).revealDeadline;
        vm.warp(closes);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRoundNotStale.selector, id, 0));
        market.poke(id, 0);
        vm.warp(closes + 1);
        vm.expectEmit(true, true, false, false, address(market));
        emit JobMarket.TaskEscalated(id, 0, 1, M, 0);
        market.poke(id, 0);
        JobMarket.Task memory t = _task(id, 0);
        assertEq(t.round, 1, "round 1");
        assertEq(t.seats, M, "m fresh seats");
        assertEq(t.voidRounds, 1, "round 0 void");
        assertEq(t.tally, 1, "a new tally");
        assertEq(t.total, 0, "tally reset");
        assertEq(t.leadCount, 0, "no leader");
        assertEq(bytes32(t.winner), bytes32(0), "no winner");
        assertEq(_job(id).extraSeatsUsed, M, "m extra seats charged");
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Map), "job live");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealNotOpen.selector, id, 0));
        _reveal(round0[0], id, 0, d);
        // A void round's committers missed their opening: slashable at once.
        assertEq(uint256(_resolve(id, 0, round0[0])), uint256(JobMarket.Outcome.Slashed), "void committer slashed");

        address[] memory round1 = _four(4, 5, 6, 7);
        _seatWith(id, 0, round1);
        _commitAll(round1, id, 0, d);
        assertTrue(_task(id, 0).winner != bytes12(0), "round 1 won the same result");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketVoidRound.selector, id, 0, 0));
        _reveal(round0[1], id, 0, d);
        _reveal(round1[0], id, 0, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketVoidRound.selector, id, 0, 0));
        _reveal(round0[2], id, 0, d); // settled or not: never
        for (uint256 i; i < 4; ++i) {
            if (i > 0) {
                assertEq(uint256(_resolve(id, 0, round0[i])), uint256(JobMarket.Outcome.Slashed), "void committer");
            }
            if (i > 0) _reveal(round1[i], id, 0, d);
            assertEq(market.credits(round1[i]), REWARD, "round 1 paid");
        }
        assertEq(pool.burned(), 4 * COLLATERAL, "four collaterals burned");
        assertEq(_pastRefund(id), uint256(REWARD) * M, "refund = escrow - round 1's rewards");
    }

    /// @notice With no prefunded seats (or no round) left for the m fresh
    /// seats, a void round leaves the task dead: no winner, nothing to draw,
    /// but the job does not fail: it runs to its deadline. The void round's
    /// committers missed their opening while the job was live: slashed, at
    /// once or after the deadline alike.
    function test_voidRound_withoutSeatsLeftTheTaskIsDeadUntilTheDeadline() public {
        JobMarket.JobParams memory p = _params();
        p.extraSeats = M - 1; // one short of a new round
        p.maxRounds = 2;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        address[] memory round0 = _four(0, 1, 2, 3);
        _seatWith(id, 0, round0);
        _commitAll(round0, id, 0, d);
        _skip(REVEAL + 1);
        market.poke(id, 0);
        JobMarket.Task memory t = _task(id, 0);
        assertEq(t.voidRounds, 1, "round 0 void");
        assertEq(t.round, 0, "no new round");
        assertEq(bytes32(t.winner), bytes32(0), "winner cleared");
        assertEq(_job(id).extraSeatsUsed, 0, "nothing charged");
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Map), "the job does not fail");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(stranger, id, 0);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRoundNotStale.selector, id, 0));
        market.poke(id, 0);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealNotOpen.selector, id, 0));
        _reveal(round0[0], id, 0, d);
        assertEq(uint256(_resolve(id, 0, round0[0])), uint256(JobMarket.Outcome.Slashed), "slashed at once");
        vm.warp(_job(id).deadline + 1);
        for (uint256 i = 1; i < 4; ++i) {
            assertEq(uint256(_resolve(id, 0, round0[i])), uint256(JobMarket.Outcome.Slashed), "slashed after");
        }
        assertEq(pool.burned(), 4 * COLLATERAL, "their collateral burned");
        assertEq(_pastRefund(id), _escrow(p, M), "the whole escrow back");
    }

    /// @notice When the job ends before the task settles, the void round's
    /// committers are still slashed (they missed their opening while the job
    /// was live), and so are the next round's no-shows, whose leases ran out
    /// before the deadline.
    function test_voidRound_committersSlashedEvenWhenTheJobEndsFirst() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory round0 = _four(0, 1, 2, 3);
        _seatWith(id, 0, round0);
        _commitAll(round0, id, 0, d);
        _skip(REVEAL + 1);
        _draw(stranger, id, 0); // voids round 0 and arms round 1's seed
        assertEq(_task(id, 0).voidRounds, 1, "round 0 void");
        address[] memory round1 = _four(4, 5, 6, 7);
        _seatWith(id, 0, round1);
        vm.warp(_job(id).deadline + 1);
        for (uint256 i; i < 4; ++i) {
            assertEq(uint256(_resolve(id, 0, round0[i])), uint256(JobMarket.Outcome.Slashed), "void: slashed");
            assertEq(_stakeOf(round0[i]), HONEST_STAKE - COLLATERAL, "its collateral burned");
            assertEq(uint256(_resolve(id, 0, round1[i])), uint256(JobMarket.Outcome.Slashed), "no-show slashed");
        }
        assertEq(_pastRefund(id), ESCROW, "the whole escrow back");
    }

    // ============================================================ money

    mapping(address => uint256) internal _paidTo;
    mapping(address => uint256) internal _slashedOf;
    uint256 internal _paidCount;
    uint256 internal _slashCount;

    function _expectPaid(address w) internal {
        _paidTo[w] += 1;
        _paidCount += 1;
    }

    function _expectSlashed(address w) internal {
        _slashedOf[w] += 1;
        _slashCount += 1;
    }

    /// @notice One job, every outcome: a split round, a silent winner, a
    /// no-show redrawn, a copier, a reduce phase. Money is computed here
    /// from the outcomes and compared to the wei: credits + refund = escrow;
    /// burned = slashed collateral; every stake = its start - its slashes.
    function test_money_exactAcrossEveryOutcome() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        p.reduceTasks = 1;
        uint256 escrow = _escrow(p, M); // 4 * 3 + 8 = 20 rewards
        uint256 id = _post(p, M);
        _moneyTask0(id);
        _moneyTask1(id);
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Reduce), "reduce phase");
        _moneyTask2(id);
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Completed), "completed");

        // Everyone collects after the windows.
        _skip(REVEAL + 1);
        for (uint256 i; i < actors.length; ++i) {
            for (uint256 t; t < 3; ++t) {
                JobMarket.ReplicaState s = _rep(id, t, actors[i]).state;
                if (s == JobMarket.ReplicaState.Committed) {
                    _collect(actors[i], id, t);
                }
            }
        }
        uint256 refund = _pastRefund(id);
        _checkBooks(id, escrow, refund);
    }

    /// @dev Task 0: round 0 {h0..h3}, h3 commits garbage (3 : 1); round 1
    /// {x0, x1} agree; x1 never opens.
    function _moneyTask0(uint256 id) internal {
        bytes32 d0 = _truth(id, 0);
        _seatWith(id, 0, _four(0, 1, 2, 3));
        _commitAll(_addrs(honest[0], honest[1], honest[2]), id, 0, d0);
        _commit(honest[3], id, 0, _garbage(id, 0, 0));
        _expectSlashed(honest[3]);
        _seatWith(id, 0, _addrs(x0, x1));
        _commitAll(_addrs(x0, x1), id, 0, d0);
        address[] memory open0 = _cat3(honest[0], honest[1], honest[2], x0);
        for (uint256 i; i < open0.length; ++i) {
            _reveal(open0[i], id, 0, d0);
            _expectPaid(open0[i]);
        }
        _expectSlashed(x1);
    }

    /// @dev Task 1 (same job seed): whoever is drawn; one seat never shows up
    /// and is replaced.
    function _moneyTask1(uint256 id) internal {
        _draw(stranger, id, 1);
        address[] memory s1 = _seats(id, 1);
        bytes32 d1 = _truth(id, 1);
        _commitAll(_addrs(s1[0], s1[1], s1[2]), id, 1, d1);
        _skip(LEASE + 1);
        _resolve(id, 1, s1[3]);
        _expectSlashed(s1[3]);
        _draw(stranger, id, 1);
        address[] memory s1b = _seats(id, 1);
        address late;
        for (uint256 i; i < s1b.length; ++i) {
            if (!_contains(s1, s1b[i])) late = s1b[i];
        }
        assertTrue(late != address(0), "no-show replaced");
        _commit(late, id, 1, d1);
        address[] memory all1 = _cat3(s1[0], s1[1], s1[2], late);
        for (uint256 i; i < 4; ++i) {
            _reveal(all1[i], id, 1, d1);
            _expectPaid(all1[i]);
        }
    }

    /// @dev Task 2 (reduce): one seat copies another's result and cannot open it.
    function _moneyTask2(uint256 id) internal {
        _toSeed(id, 2);
        for (uint256 k; k < 3; ++k) {
            vm.prank(stranger);
            try market.draw(id, _ids(2)) {}
            catch {
                break;
            }
        }
        address[] memory s2 = _seats(id, 2);
        assertEq(s2.length, M, "reduce task seated");
        bytes32 d2 = _truth(id, 2);
        _commitAll(_addrs(s2[0], s2[1], s2[2]), id, 2, d2);
        _commitRaw(s2[3], id, 2, bytes32(_rep(id, 2, s2[0]).result), keccak256("no seal"));
        for (uint256 i; i < 3; ++i) {
            _reveal(s2[i], id, 2, d2);
            _expectPaid(s2[i]);
        }
        _expectSlashed(s2[3]);
    }

    /// @dev The books, computed here from the outcomes the test caused.
    function _checkBooks(uint256 id, uint256 escrow, uint256 refund) internal view {
        assertEq(_paidCount, 11, "eleven paid replicas");
        assertEq(_slashCount, 4, "four slashed replicas");
        uint256 credited;
        uint256 stakes;
        for (uint256 i; i < actors.length; ++i) {
            address a = actors[i];
            assertEq(market.credits(a), _paidTo[a] * REWARD, "credit = rewards earned");
            assertEq(_stakeOf(a), HONEST_STAKE - _slashedOf[a] * COLLATERAL, "stake = start - slashes");
            assertEq(_lockedOf(a), 0, "nothing left locked");
            credited += market.credits(a);
            stakes += _stakeOf(a);
        }
        assertEq(refund, escrow - _paidCount * REWARD, "refund = escrow - rewards");
        assertEq(credited + refund, escrow, "credits + refund = escrow");
        assertEq(pool.burned(), _slashCount * COLLATERAL, "burned = slashed collateral");
        assertEq(stakes + pool.burned(), actors.length * HONEST_STAKE, "stakes + burned = all staked");
        assertEq(address(market).balance, credited + refund, "market holds the credits");
        assertEq(address(pool).balance, stakes + pool.burned(), "pool holds stakes + burned");
        JobMarket.Job memory j = _job(id);
        assertEq(j.paid, _paidCount * REWARD, "job.paid");
        assertEq(j.extraSeatsUsed, 2, "two extra seats");
    }

    function _cat3(address a, address b, address c, address d) internal pure returns (address[] memory xs) {
        xs = new address[](4);
        (xs[0], xs[1], xs[2], xs[3]) = (a, b, c, d);
    }

    function _pastRefund(uint256 id) internal returns (uint256) {
        JobMarket.Job memory j = _job(id);
        uint256 t = j.horizon > j.deadline ? j.horizon : j.deadline;
        if (block.timestamp <= t) vm.warp(t + 1);
        vm.prank(stranger);
        return market.refund(id);
    }

    // =========================================================== cancel

    function test_cancel_beforeAnyDrawRefundsAll() public {
        uint256 id = _postDefault();
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNotRequester.selector, id, stranger));
        vm.prank(stranger);
        market.cancelJob(id);
        _nextEpoch();
        _mine(1);
        _draw(stranger, id, 0); // only re-arms the stale seed
        vm.prank(requester);
        market.cancelJob(id);
        assertEq(market.credits(requester), ESCROW, "whole escrow credited");
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Cancelled), "cancelled");
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketJobNotActive.selector, id, JobMarket.JobState.Cancelled)
        );
        _draw(stranger, id, 0);
    }

    function test_cancel_refusedOnceSeatsAreDrawn() public {
        uint256 id = _postDefault();
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketJobHasDraws.selector, id));
        vm.prank(requester);
        market.cancelJob(id);
    }

    // ========================================================== decline

    function test_decline_releasesTheSeatWithoutSlash() public {
        uint256 id = _postDefault();
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        address w = seats[0];
        assertEq(_lockedOf(w), COLLATERAL, "locked while seated");
        vm.expectEmit(true, true, true, true, address(market));
        emit JobMarket.TaskDeclined(id, 0, w, 0);
        vm.prank(w);
        market.decline(id, _ids(0));
        assertEq(_lockedOf(w), 0, "released");
        assertEq(_stakeOf(w), HONEST_STAKE, "not slashed");
        assertEq(_task(id, 0).seated, 3, "seat open again");
        vm.expectRevert(_wrongState(id, 0, w, JobMarket.ReplicaState.Declined));
        _commit(w, id, 0, _truth(id, 0));
        vm.expectRevert(_wrongState(id, 0, w, JobMarket.ReplicaState.Declined));
        vm.prank(w);
        market.decline(id, _ids(0));
        // A committed seat cannot be declined; neither can one past the first
        // quarter of its lease (let alone past the lease).
        _commit(seats[1], id, 0, _truth(id, 0));
        vm.expectRevert(_wrongState(id, 0, seats[1], JobMarket.ReplicaState.Committed));
        vm.prank(seats[1]);
        market.decline(id, _ids(0));
        uint256 deadline = _rep(id, 0, seats[2]).deadline;
        uint256 until = _declineUntil(id, 0, seats[2]);
        vm.warp(until + 1);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketDeclineClosed.selector, id, 0, until));
        vm.prank(seats[2]);
        market.decline(id, _ids(0));
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketDeclineClosed.selector, id, 0, until));
        vm.prank(seats[2]);
        market.decline(id, _ids(0));
    }

    /// @dev The last second `w` may decline its seat: its lease began at
    /// `deadline - LEASE`, and a seat may be declined in the first quarter of it.
    function _declineUntil(uint256 id, uint256 taskId, address w) internal view returns (uint256) {
        uint256 leased = _rep(id, taskId, w).deadline - LEASE;
        return leased + LEASE / 4;
    }

    /// @notice A seat may be declined up to the last second of the first
    /// quarter of its lease, not one second later. A late decline changes
    /// nothing: the seat stays the worker's (locked, counted, not redrawn),
    /// and the worker either commits in time or is slashed as a no-show.
    function test_decline_lateDeclineIsRefusedAndTheSeatStays() public {
        uint256 id = _postDefault();
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        address w = seats[0];
        uint256 until = _declineUntil(id, 0, w);
        assertEq(until, block.timestamp + LEASE / 4, "a quarter of the lease from the draw");

        uint256 snap = vm.snapshotState();
        vm.warp(until); // the last second it may
        vm.prank(w);
        market.decline(id, _ids(0));
        assertEq(uint256(_rep(id, 0, w).state), uint256(JobMarket.ReplicaState.Declined), "declined in time");
        assertEq(_task(id, 0).seated, M - 1, "seat open again");
        vm.revertToStateAndDelete(snap);

        vm.warp(until + 1);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketDeclineClosed.selector, id, 0, until));
        vm.prank(w);
        market.decline(id, _ids(0));
        assertEq(uint256(_rep(id, 0, w).state), uint256(JobMarket.ReplicaState.Assigned), "still assigned");
        assertEq(_task(id, 0).seated, M, "the seat stays counted");
        assertEq(_lockedOf(w), COLLATERAL, "collateral still locked");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(stranger, id, 0); // nothing to redraw

        // It may still commit, and is paid like any other seat...
        snap = vm.snapshotState();
        bytes32 d = _truth(id, 0);
        _commitAll(seats, id, 0, d);
        assertEq(_reveal(w, id, 0, d), REWARD, "late decliner that computed is paid");
        vm.revertToStateAndDelete(snap);

        // ...or it is a no-show: slashed once its lease is over.
        _commitAll(_addrs(seats[1], seats[2], seats[3]), id, 0, _truth(id, 0));
        vm.expectRevert(
            abi.encodeWithSelector(
                JobMarket.JobMarketNotResolvable.selector, id, 0, w, JobMarket.ReplicaState.Assigned
            )
        );
        _resolve(id, 0, w);
        vm.warp(_rep(id, 0, w).deadline + 1);
        assertEq(uint256(_resolve(id, 0, w)), uint256(JobMarket.Outcome.Slashed), "no-show slashed");
        assertEq(_stakeOf(w), HONEST_STAKE - COLLATERAL, "lost one collateral");
        assertEq(pool.burned(), COLLATERAL, "burned");
    }

    // ================================================ commit and reveal

    function test_commit_refusesBadInput() public {
        uint256 id = _postDefault();
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        address w = seats[0];
        bytes32 d = _truth(id, 0);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketZeroHash.selector, id, 0));
        _commitRaw(w, id, 0, bytes32(0), _seal(w, id, 0, d));
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketZeroHash.selector, id, 0));
        _commitRaw(w, id, 0, _result(id, 0, d), bytes32(uint256(1))); // zero in the 12 bytes a commit carries
        bytes12[] memory two = new bytes12[](2);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketLengthMismatch.selector, 1, 2));
        vm.prank(w);
        market.commit(id, _ids(0), two, _short(d));
        vm.expectRevert(_err(JobMarket.JobMarketEmptyBatch.selector));
        vm.prank(w);
        market.commit(id, new uint256[](0), new bytes12[](0), new bytes12[](0));
        _commit(w, id, 0, d);
        vm.expectRevert(_wrongState(id, 0, w, JobMarket.ReplicaState.Committed));
        _commit(w, id, 0, d);
        uint256 deadline = _rep(id, 0, seats[1]).deadline;
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketLeaseExpired.selector, id, 0, deadline));
        _commit(seats[1], id, 0, d);
    }

    function test_reveal_refusesBadOpenings() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _commitAll(_addrs(seats[0], seats[1], seats[2]), id, 0, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealNotOpen.selector, id, 0));
        _reveal(seats[0], id, 0, d);
        _commit(seats[3], id, 0, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketCommitmentMismatch.selector, id, 0, seats[0]));
        _reveal(seats[0], id, 0, _garbage(id, 0, 0));
        vm.expectRevert(_wrongState(id, 0, stranger, JobMarket.ReplicaState.None));
        _reveal(stranger, id, 0, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketLengthMismatch.selector, 1, 2));
        vm.prank(seats[0]);
        market.reveal(id, _ids(0), _words(d, d));
        _reveal(seats[0], id, 0, d);
        vm.expectRevert(_wrongState(id, 0, seats[0], JobMarket.ReplicaState.None)); // paid: the seat is gone
        _reveal(seats[0], id, 0, d);
        uint256 until = _task(id, 0).revealDeadline;
        vm.warp(until + 1);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRevealClosed.selector, id, 0, until));
        _reveal(seats[1], id, 0, d);
    }

    /// @notice Opening the winner is a seat's last duty, so the reveal pays it
    /// at once: one reward credited and one collateral released per task
    /// opened, and the seat is gone. A seat cannot be paid twice: not by a
    /// second reveal, not by naming a task twice in one call, not by a
    /// collect or anyone's resolve afterwards.
    function test_reveal_paysAtOnceAndOnlyOnce() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 3; // task 2 keeps the job live
        uint256 id = _post(p, M);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _seatWith(id, 1, seats);
        bytes32 d0 = _truth(id, 0);
        bytes32 d1 = _truth(id, 1);
        _commitAll(seats, id, 0, d0);
        _commitAll(seats, id, 1, d1);
        address w = seats[0];
        uint256 stake = _stakeOf(w);
        assertEq(_lockedOf(w), 2 * COLLATERAL, "two seats locked");

        vm.expectRevert(_wrongState(id, 0, w, JobMarket.ReplicaState.None));
        vm.prank(w);
        market.reveal(id, _ids(0, 0), _words(d0, d0)); // the second opening finds the seat already paid
        vm.prank(w);
        assertEq(market.reveal(id, _ids(0, 1), _words(d0, d1)), 2 * REWARD, "two rewards");
        assertEq(market.credits(w), 2 * REWARD, "credited");
        assertEq(_lockedOf(w), 0, "both collaterals released");
        assertEq(_stakeOf(w), stake, "stake intact");
        assertEq(pool.workers(w).settled, 2, "two settled seats");
        assertEq(_job(id).paid, 2 * REWARD, "job.paid");
        assertEq(uint256(_rep(id, 0, w).state), uint256(JobMarket.ReplicaState.None), "the seat is gone");

        vm.expectRevert(_wrongState(id, 0, w, JobMarket.ReplicaState.None));
        _reveal(w, id, 0, d0);
        vm.expectRevert(_wrongState(id, 1, w, JobMarket.ReplicaState.None));
        _collect(w, id, 1);
        vm.expectRevert(_wrongState(id, 0, w, JobMarket.ReplicaState.None));
        _resolve(id, 0, w);
        // The task has its result and never draws again: the deleted seat
        // cannot hand `w` a second seat on it.
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(stranger, id, 0);
        assertEq(market.credits(w), 2 * REWARD, "still exactly two rewards");
    }

    /// @notice A winner not yet opened cannot be opened once the job has ended.
    function test_reveal_unsettledTaskOfAnEndedJobCannotSettle() public {
        JobMarket.JobParams memory p = _params();
        p.jobTimeout = LEASE + REVEAL;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _skip(LEASE - 60);
        _commitAll(seats, id, 0, d);
        vm.warp(_job(id).deadline + 1); // inside the reveal window, past the job's deadline
        assertTrue(block.timestamp <= _task(id, 0).revealDeadline, "window still open");
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketJobNotActive.selector, id, JobMarket.JobState.Map)
        );
        _reveal(seats[0], id, 0, d);
        assertEq(uint256(_resolve(id, 0, seats[0])), uint256(JobMarket.Outcome.Released), "released");
    }

    function test_refund_waitsForTheJobAndItsLastWindow() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _commitAll(seats, id, 0, d);
        _reveal(seats[0], id, 0, d); // completed; three more may still open
        uint256 horizon = _job(id).horizon;
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRefundNotReady.selector, id, horizon));
        market.refund(id);
        vm.warp(horizon + 1);
        assertEq(market.refund(id), ESCROW - REWARD, "refund = escrow - the one opening");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToRefund.selector, id));
        market.refund(id);
        uint256 id2 = _postDefault();
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketJobNotFinished.selector, id2, JobMarket.JobState.Map)
        );
        market.refund(id2);
    }

    function test_withdraw_paysTheCreditOnce() public {
        uint256 id = _postDefault();
        bytes32 d = _truth(id, 0);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _commitAll(seats, id, 0, d);
        _reveal(seats[0], id, 0, d);
        uint256 before = seats[0].balance;
        vm.prank(seats[0]);
        market.withdraw();
        assertEq(seats[0].balance - before, REWARD, "reward sent");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToWithdraw.selector, seats[0]));
        vm.prank(seats[0]);
        market.withdraw();
    }

    /// @notice maxRounds may be up to MAX_ROUNDS = 64 (one bit per round in Task.voidRounds).
    function test_postJob_maxRoundsUpToSixtyFour() public {
        assertEq(market.MAX_ROUNDS(), 64, "MAX_ROUNDS");
        JobMarket.JobParams memory p = _params();
        p.maxRounds = 64;
        uint256 id = _post(p, M);
        assertEq(_job(id).maxRounds, 64, "accepted");
    }

    /// @notice Epochs of fewer than two blocks are refused: a seed block is
    /// mined before a draw can read it, so with one block per epoch it would
    /// always be an epoch behind. Two blocks per epoch draw fine.
    function test_config_epochsOfFewerThanTwoBlocksRefused() public {
        for (uint32 e; e < 2; ++e) {
            vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketInvalidEpoch.selector, e));
            new JobMarket(_config(e), IRandomness(address(rng)));
        }
        _deploy(IRandomness(address(rng)), 2);
        for (uint256 i; i < honest.length; ++i) {
            _enlist(honest[i], HONEST_STAKE);
        }
        _nextEpoch();
        uint256 id = _postDefault();
        uint256 sb = _job(id).seedBlock;
        assertEq(pool.epochOf(sb), pool.epochOf(sb + 1), "seed and next block share an epoch");
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        assertEq(_seats(id, 0).length, M, "drawn with two-block epochs");
    }

    // ======================================================== bugs

    /// @notice The escrow covers every reward a job can owe, void rounds
    /// included. A void round that follows a split has fewer than m seats
    /// (m - lead), and the split round's committers of the same result are
    /// not in a void round: when that result wins again later they open and
    /// are paid too. Had the void round's m fresh seats been free (taking the
    /// places of the void round's, never paid), here (m = 4) round 0 splits
    /// 3 : 1 (the three are offline when their result wins), round 1's two
    /// seats win it and stay silent (void), round 2's four seats win it
    /// again, and the three of round 0 open in round 2's window: 7 rewards
    /// owed on an escrow of 6, the excess paid from other jobs' escrow and the
    /// requester's refund underflowing. The fresh seats are charged: the
    /// escrow (4 + 2 + 4 seats) pays the 7 rewards and refunds the rest.
    function test_voidRound_escrowCoversEveryRewardAfterASplit() public {
        JobMarket.JobParams memory p = _params();
        p.extraSeats = 2 + M;
        p.maxRounds = 3;
        uint256 id = _post(p, M);
        bytes32 d = _truth(id, 0);
        address[] memory round0 = _four(0, 1, 2, 3);
        _seatWith(id, 0, round0);
        _commitAll(_addrs(round0[0], round0[1], round0[2]), id, 0, d);
        _commit(round0[3], id, 0, _garbage(id, 0, 0)); // 3 : 1, lead 2: two seats
        address[] memory round1 = _addrs(honest[4], honest[5]);
        _seatWith(id, 0, round1);
        _commitAll(round1, id, 0, d); // 5 : 1, lead 4: d wins; nobody opens in time
        _skip(REVEAL + 1);
        market.poke(id, 0); // round 1 void: round 2 has m seats
        assertEq(_job(id).extraSeatsUsed, 2 + M, "round 1's two seats and round 2's m");
        address[] memory round2 = _cat3(honest[6], honest[7], x0, x1);
        _seatWith(id, 0, round2);
        _commitAll(round2, id, 0, d);
        for (uint256 i; i < 4; ++i) {
            _reveal(round2[i], id, 0, d);
        }
        // Round 0 is not void: its committers of d may open in round 2's window.
        for (uint256 i; i < 3; ++i) {
            vm.prank(round0[i]);
            (bool opened,) = address(market).call(abi.encodeCall(JobMarket.reveal, (id, _ids(0), _words(d))));
            opened; // either way the books must balance
        }
        JobMarket.Job memory j = _job(id);
        assertLe(j.paid, j.escrow, "the job paid more rewards than its escrow holds");
        uint256 refund = _pastRefund(id);
        assertEq(refund + j.paid, j.escrow, "refund + rewards paid = escrow");
    }

    /// @notice A batch commit whose first task fails the job (its tie needs
    /// seats the job has not funded) must not go on committing the next tasks
    /// of the dead job: one of them would win and open a reveal window nobody
    /// can use (an unsettled task of an ended job cannot be opened), pushing
    /// the job's horizon out and holding the requester's refund back. The
    /// batch stops at the commit that failed the job.
    function test_commitBatch_doesNotOpenWindowsOnAFailedJob() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        p.extraSeats = 0;
        p.maxRounds = 1;
        uint256 id = _post(p, M);
        (address x, address[] memory s0, address[] memory s1) = _sharedSeat(id);
        for (uint256 i; i < 4; ++i) {
            if (s0[i] != x && s0[i] != s0[0]) _commit(s0[i], id, 0, _garbage(id, 0, 0));
            else if (s0[i] != x) _commit(s0[i], id, 0, _truth(id, 0));
            if (s1[i] != x) _commit(s1[i], id, 1, _truth(id, 1));
        }
        // Task 0 cannot reach a lead of 4 whatever x commits (it holds at least
        // two garbage commits): x's commit fails the job (no round left).
        // Task 1 stands 3 : 0 and x's commit makes it 4 : 0, a win.
        vm.prank(x);
        (bool ok,) = address(market)
            .call(
                abi.encodeCall(
                    JobMarket.commit,
                    (
                        id,
                        _ids(0, 1),
                        _short(_result(id, 0, _truth(id, 0)), _result(id, 1, _truth(id, 1))),
                        _short(_seal(x, id, 0, _truth(id, 0)), _seal(x, id, 1, _truth(id, 1)))
                    )
                )
            );
        assertTrue(ok, "the batch is accepted up to the commit that fails the job");
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Failed), "task 0 failed the job");
        assertEq(uint256(_rep(id, 0, x).state), uint256(JobMarket.ReplicaState.Committed), "task 0 committed");
        assertEq(uint256(_rep(id, 1, x).state), uint256(JobMarket.ReplicaState.Assigned), "the batch stopped there");
        assertEq(bytes32(_task(id, 1).winner), bytes32(0), "a task of a failed job won");
        assertEq(_job(id).horizon, 0, "a dead job's horizon moved");
        _skip(1);
        vm.prank(stranger);
        assertEq(market.refund(id), _escrow(p, M), "refund held back by a window nobody can use");
    }

    /// @dev Draws tasks 0 and 1 of `id` with randomness that seats one worker on both.
    function _sharedSeat(uint256 id) internal returns (address x, address[] memory s0, address[] memory s1) {
        _toSeed(id, 0);
        for (uint256 k;; ++k) {
            bytes32 random = keccak256(abi.encode("shared", k));
            s0 = _predict(id, 0, random);
            s1 = _predict(id, 1, random);
            if (s0.length != M || s1.length != M) continue;
            for (uint256 i; i < M && x == address(0); ++i) {
                if (_contains(s1, s0[i]) && i != 0) x = s0[i];
            }
            if (x == address(0)) continue;
            rng.set(_seedBlockOf(id, 0), random);
            vm.prank(stranger);
            market.draw(id, _ids(0, 1));
            s0 = _seats(id, 0);
            s1 = _seats(id, 1);
            require(_contains(s0, x) && _contains(s1, x), "prediction off");
            return (x, s0, s1);
        }
    }
}
