// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {MarketFixture, vm} from "./MarketBase.sol";
import {MockERC20} from "./mocks/Tokens.sol";

/// @notice A reveal of the winner pays its seat on the spot (reward credited,
/// collateral released, seat deleted). These are the ways that could pay a
/// seat twice, pay one that must not be paid, reopen a settled task or leave
/// the books short, tried through escalations, void rounds, failed and
/// expired jobs and token jobs (written by an adversarial review of the
/// change; none of them breaks it).
contract JobMarketPaymentTest is MarketFixture {
    uint256 internal constant ESCROW = uint256(REWARD) * (M + EXTRA);
    uint256[] internal jobIds;

    function _four(uint256 a, uint256 b, uint256 c, uint256 d) internal view returns (address[] memory xs) {
        xs = new address[](4);
        (xs[0], xs[1], xs[2], xs[3]) = (honest[a], honest[b], honest[c], honest[d]);
    }

    function _postT(JobMarket.JobParams memory p) internal returns (uint256 id) {
        id = _post(p, M);
        jobIds.push(id);
    }

    /// @dev The market's ETH balance == open escrow (escrow - paid - refunded) + every ETH credit.
    function _assertEthSolvent() internal view {
        uint256 open;
        for (uint256 i; i < jobIds.length; ++i) {
            JobMarket.Job memory j = _job(jobIds[i]);
            if (j.token != address(0)) continue;
            open += uint256(j.escrow) - j.paid - j.refunded;
        }
        uint256 cr = market.credits(requester) + market.credits(stranger);
        for (uint256 i; i < actors.length; ++i) {
            cr += market.credits(actors[i]);
        }
        assertEq(address(market).balance, open + cr, "balance == open escrow + credits");
    }

    function _assertNothingLocked() internal view {
        for (uint256 i; i < actors.length; ++i) {
            assertEq(_lockedOf(actors[i]), 0, "nothing left locked");
        }
    }

    /// @notice A void round's committers of the result that wins the next round
    /// are never paid (their Committed marker also keeps them out of the
    /// redraw); the next round's seats are paid once each.
    function test_payment_voidRoundThenSameWinnerPaysOnlyTheNextRoundOnce() public {
        uint256 id = _postT(_params());
        bytes32 d = _truth(id, 0);
        address[] memory r0 = _four(0, 1, 2, 3);
        _seatWith(id, 0, r0);
        _commitAll(r0, id, 0, d);
        _skip(REVEAL + 1); // nobody opens round 0
        market.poke(id, 0); // void, round 1 with m fresh seats
        address[] memory r1 = _four(4, 5, 6, 7);
        _seatWith(id, 0, r1);
        _commitAll(r1, id, 0, d);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketVoidRound.selector, id, 0, 0));
        _reveal(r0[0], id, 0, d);
        for (uint256 i; i < 4; ++i) {
            assertEq(_reveal(r1[i], id, 0, d), REWARD, "round-1 seat paid");
            vm.expectRevert(_wrongState(id, 0, r1[i], JobMarket.ReplicaState.None));
            _reveal(r1[i], id, 0, d);
        }
        for (uint256 i; i < 4; ++i) {
            assertEq(uint256(_resolve(id, 0, r0[i])), uint256(JobMarket.Outcome.Slashed), "void committer slashed");
        }
        assertEq(_job(id).paid, 4 * REWARD, "four rewards");
        _assertEthSolvent();
        _assertNothingLocked();
        vm.warp(uint256(_job(id).horizon) + 1);
        assertEq(market.refund(id), ESCROW - 4 * REWARD, "refund exact");
        _assertEthSolvent();
    }

    /// @notice Late reveals on a settled task of a job that input-unavailable
    /// reports failed are paid once each; the refund waits for them and is exact.
    function test_payment_lateRevealsOfAFailedJobAndAnExactRefund() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        uint256 id = _postT(p);
        address[][] memory want = new address[][](2);
        want[0] = _four(0, 1, 2, 3);
        want[1] = _four(4, 5, 6, 7);
        _seatWithMany(id, _ids(0, 1), want);
        bytes32 d = _truth(id, 0);
        _commitAll(want[0], id, 0, d);
        _reveal(want[0][0], id, 0, d); // settles task 0
        for (uint256 i; i < 4; ++i) {
            vm.prank(want[1][i]);
            market.reportUnavailable(id, _ids(1));
        }
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Failed), "failed");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRefundNotReady.selector, id, _job(id).horizon));
        market.refund(id);
        for (uint256 i = 1; i < 4; ++i) {
            assertEq(_reveal(want[0][i], id, 0, d), REWARD, "late reveal paid");
        }
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketJobNotActive.selector, id, JobMarket.JobState.Failed));
        _draw(stranger, id, 0);
        _assertEthSolvent();
        _assertNothingLocked();
        vm.warp(uint256(_job(id).horizon) + 1);
        assertEq(market.refund(id), uint256(REWARD) * (2 * M + EXTRA) - 4 * REWARD, "refund exact");
        _assertEthSolvent();
    }

    /// @notice A split round escalates; committers of the winner in both rounds
    /// are paid once each (a batch naming a task twice reverts whole), the
    /// dissenter is slashed once, a settled task never reopens (poke, draw)
    /// after its window, and each seat's collateral is released exactly once.
    function test_payment_splitAndEscalationPayOnceAndNeverReopen() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2; // task 1 keeps the job live
        uint256 id = _postT(p);
        bytes32 d = _truth(id, 0);
        address[] memory r0 = _four(0, 1, 2, 3);
        _seatWith(id, 0, r0);
        _commit(r0[0], id, 0, d);
        _commit(r0[1], id, 0, d);
        _commit(r0[2], id, 0, d);
        _commit(r0[3], id, 0, _garbage(id, 0, 1)); // lead 2: 2 fresh seats
        assertEq(_task(id, 0).round, 1, "escalated");
        address[] memory r1 = _addrs(honest[4], honest[5]);
        _seatWith(id, 0, r1);
        _commitAll(r1, id, 0, d);
        vm.prank(r0[0]);
        vm.expectRevert(_wrongState(id, 0, r0[0], JobMarket.ReplicaState.None));
        market.reveal(id, _ids(0, 0), _words(d, d));
        address[5] memory winners = [r0[0], r0[1], r0[2], r1[0], r1[1]];
        for (uint256 i; i < 5; ++i) {
            uint256 stake = _stakeOf(winners[i]);
            assertEq(_reveal(winners[i], id, 0, d), REWARD, "paid");
            assertEq(_lockedOf(winners[i]), 0, "released");
            assertEq(_stakeOf(winners[i]), stake, "stake intact");
            assertEq(pool.workers(winners[i]).settled, 1, "one settled");
        }
        assertEq(uint256(_resolve(id, 0, r0[3])), uint256(JobMarket.Outcome.Slashed), "dissenter slashed");
        _skip(REVEAL + 1);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketRoundNotStale.selector, id, 0));
        market.poke(id, 0);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToDraw.selector, id));
        _draw(stranger, id, 0);
        assertTrue(_task(id, 0).winner != 0 && _task(id, 0).settled, "still won and settled");
        for (uint256 i; i < 5; ++i) {
            vm.expectRevert(_wrongState(id, 0, winners[i], JobMarket.ReplicaState.None));
            _resolve(id, 0, winners[i]);
        }
        assertEq(_job(id).paid, 5 * REWARD, "five rewards");
        _assertEthSolvent();
        _assertNothingLocked();
    }

    /// @notice The stake floor a job's minimum stake set holds while another
    /// seat is still locked, and the reveal that releases the last lock clears it.
    function test_payment_stakeFloorHeldUntilTheLastSeatIsReleased() public {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        p.minStake = 5 ether;
        uint256 id = _postT(p);
        address[][] memory want = new address[][](2);
        want[0] = _four(0, 1, 2, 3);
        want[1] = _four(0, 1, 2, 3);
        _seatWithMany(id, _ids(0, 1), want);
        address w = honest[0];
        bytes32 d0 = _truth(id, 0);
        _commitAll(want[0], id, 0, d0);
        _reveal(w, id, 0, d0);
        assertEq(_lockedOf(w), COLLATERAL, "task 1 still locked");
        assertEq(pool.membership(w).floor, 5 ether, "floor kept");
        vm.prank(w);
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolBelowFloor.selector, w, 4 ether, 5 ether));
        pool.requestUnbond(HONEST_STAKE - 4 ether);
        bytes32 d1 = _truth(id, 1);
        _commitAll(want[1], id, 1, d1);
        _reveal(w, id, 1, d1);
        assertEq(pool.membership(w).floor, 0, "floor cleared with the last lock");
        _assertEthSolvent();
    }

    /// @notice A token job's late reveals after it expired are paid in the token,
    /// and the market's token balance equals the credits after the refund.
    function test_payment_tokenJobLateRevealsAfterExpiryStaySolvent() public {
        MockERC20 usd = new MockERC20();
        JobMarket.JobParams memory p = _params();
        p.token = address(usd);
        p.rewardPerReplica = 2_500_000;
        p.mapTasks = 2;
        p.jobTimeout = LEASE + REVEAL;
        uint256 escrow = _escrow(p, M);
        usd.mint(requester, escrow);
        vm.prank(requester);
        usd.approve(address(market), escrow);
        vm.prank(requester);
        uint256 id = market.postJob(p);
        address[] memory seats = _four(0, 1, 2, 3);
        _seatWith(id, 0, seats);
        _skip(LEASE - 60);
        bytes32 d = _truth(id, 0);
        _commitAll(seats, id, 0, d);
        _reveal(seats[0], id, 0, d);
        vm.warp(uint256(_job(id).deadline) + 1); // job expired, window still open
        assertTrue(block.timestamp <= _task(id, 0).revealDeadline, "window open");
        market.expireJob(id);
        for (uint256 i = 1; i < 4; ++i) {
            assertEq(_reveal(seats[i], id, 0, d), p.rewardPerReplica, "late paid");
        }
        vm.warp(uint256(_job(id).horizon) + 1);
        uint256 r = market.refund(id);
        uint256 cr = market.tokenCredits(address(usd), requester);
        for (uint256 i; i < 4; ++i) {
            cr += market.tokenCredits(address(usd), seats[i]);
        }
        assertEq(r, escrow - 4 * uint256(p.rewardPerReplica), "refund exact");
        assertEq(usd.balanceOf(address(market)), cr, "token balance == credits");
        assertEq(market.credits(seats[0]), 0, "no ETH credit");
    }
}
