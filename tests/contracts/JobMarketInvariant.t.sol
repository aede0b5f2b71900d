// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {IRandomness} from "../../contracts/interfaces/IRandomness.sol";
import {MockRandomness, MarketAssertions, vm} from "./MarketBase.sol";
import {MarketHandler} from "./handlers/MarketHandler.sol";

/// @notice Solvency, payout and settlement invariants of protocol v2 over
/// random sequences driven by MarketHandler. The handler pre-checks or
/// try/catches every call, so a revert inside it is a bug: fail-on-revert
/// is on for these campaigns.
contract JobMarketInvariantTest is MarketAssertions {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    JobMarket internal market;
    WorkerPool internal pool;
    MarketHandler internal handler;

    function setUp() public {
        vm.roll(10_000);
        vm.warp(1_700_000_000);
        MockRandomness rng = new MockRandomness();
        JobMarket.Config memory c = JobMarket.Config({
            unbondingDelay: 2 days,
            minStake: 1 ether,
            minCollateral: 0.01 ether,
            minLeaseDuration: 10 minutes,
            minRevealWindow: 5 minutes,
            epochBlocks: 20,
            drawDelay: 2
        });
        market = new JobMarket(c, IRandomness(address(rng)));
        pool = market.pool();
        handler = new MarketHandler(market, rng);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @dev Only the handler's actions (not its views) are fuzzed.
    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory s = new bytes4[](13);
        s[0] = MarketHandler.postJob.selector;
        s[1] = MarketHandler.draw.selector;
        s[2] = MarketHandler.drive.selector;
        s[3] = MarketHandler.advance.selector;
        s[4] = MarketHandler.dishonestAct.selector;
        s[5] = MarketHandler.dishonestReveal.selector;
        s[6] = MarketHandler.resolveAll.selector;
        s[7] = MarketHandler.poke.selector;
        s[8] = MarketHandler.expireJob.selector;
        s[9] = MarketHandler.cancelJob.selector;
        s[10] = MarketHandler.refund.selector;
        s[11] = MarketHandler.withdraw.selector;
        s[12] = MarketHandler.bond.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), s);
    }

    /// @dev The books: market, pool, locked collateral and every job's escrow.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_moneyIsAccountedFor() public view {
        _marketHoldsOpenEscrowPlusCredits();
        _poolHoldsStakesUnbondingAndBurned();
        _lockedIsOpenReplicasCollateral();
        _jobPaysAtMostItsEscrow();
    }

    /// @dev Honest workers never lose, and every settlement is earned.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_honestWorkersAndSettlements() public view {
        _noHonestTimelyWorkerSlashed();
        _settlementNeedsAMarginOfDistinctWorkers();
    }

    /// @dev For each currency (ETH, and the handler's token): what the market
    /// holds == sum over that currency's jobs of (escrow - paid - refunded) +
    /// credits not yet withdrawn, and == what came in minus what went out.
    function _marketHoldsOpenEscrowPlusCredits() internal view {
        address usd = address(handler.usd());
        uint256 openEth;
        uint256 openToken;
        for (uint256 i; i < handler.jobCount(); ++i) {
            JobMarket.Job memory j = market.job(handler.jobIds(i));
            uint256 open = uint256(j.escrow) - j.paid - j.refunded;
            if (j.token == address(0)) openEth += open;
            else openToken += open;
            assertTrue(j.token == address(0) || j.token == usd, "a job's token is the one it was posted with");
        }
        address[] memory actors = handler.actors();
        uint256 creditsEth;
        uint256 creditsToken;
        for (uint256 i; i < actors.length; ++i) {
            creditsEth += market.credits(actors[i]);
            creditsToken += market.tokenCredits(usd, actors[i]);
        }
        assertEq(address(market).balance, openEth + creditsEth, "market ETH == open ETH escrow + ETH credits");
        assertEq(address(market).balance, handler.ghostEscrowIn() - handler.ghostMarketOut(), "market ETH in - out");
        uint256 held = handler.usd().balanceOf(address(market));
        assertEq(held, openToken + creditsToken, "market tokens == open token escrow + token credits");
        assertEq(held, handler.ghostTokenIn() - handler.ghostTokenOut(), "market tokens in - out");
    }

    /// @dev pool ETH == stakes + unbonding + burned; burned == every slash the handler saw.
    function _poolHoldsStakesUnbondingAndBurned() internal view {
        address[] memory ws = handler.workerList();
        uint256 held;
        for (uint256 i; i < ws.length; ++i) {
            held += pool.workers(ws[i]).stake + pool.unbonding(ws[i]).amount;
        }
        assertEq(address(pool).balance, held + pool.burned(), "pool balance == stakes + unbonding + burned");
        assertEq(address(pool).balance, handler.ghostStakedIn() - handler.ghostPoolOut(), "pool in - out");
        assertEq(pool.burned(), handler.ghostBurned(), "burned == slashed collateral seen");
    }

    /// @dev Locked collateral == the collateral of every open replica (assigned,
    /// or committed and not yet resolved; an opened one is paid and released at
    /// once); never above stake.
    function _lockedIsOpenReplicasCollateral() internal view {
        address[] memory ws = handler.workerList();
        uint256[] memory expected = new uint256[](ws.length);
        for (uint256 k; k < handler.jobCount(); ++k) {
            uint256 id = handler.jobIds(k);
            JobMarket.Job memory j = market.job(id);
            for (uint256 t; t < uint256(j.mapTasks) + j.reduceTasks; ++t) {
                for (uint256 i; i < ws.length; ++i) {
                    JobMarket.ReplicaState s = market.replica(id, t, ws[i]).state;
                    if (s == JobMarket.ReplicaState.Assigned || s == JobMarket.ReplicaState.Committed) {
                        expected[i] += j.collateral;
                    }
                }
            }
        }
        for (uint256 i; i < ws.length; ++i) {
            WorkerPool.Worker memory info = pool.workers(ws[i]);
            assertEq(info.locked, expected[i], "locked == open replicas' collateral");
            assertLe(info.locked, info.stake, "locked <= stake");
        }
    }

    /// @dev A job pays at most its escrow, which is reward * (m * tasks + extra seats).
    function _jobPaysAtMostItsEscrow() internal view {
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 id = handler.jobIds(i);
            JobMarket.Job memory j = market.job(id);
            JobMarket.JobParams memory p = handler.params(id);
            uint256 m = market.marginFor(p.epsilonPpm, p.adversaryPpm);
            assertEq(j.margin, m, "margin");
            uint256 cap = uint256(p.rewardPerReplica) * (m * (uint256(p.mapTasks) + p.reduceTasks) + p.extraSeats);
            assertEq(j.escrow, cap, "escrow == reward * (m * tasks + extra)");
            assertLe(uint256(j.paid) + j.refunded, j.escrow, "paid + refunded <= escrow");
            assertLe(j.extraSeatsUsed, j.extraSeats, "extra seats used <= funded");
            assertEq(j.paid, handler.ghostPaid(id), "paid == rewards the handler saw its reveals pay");
        }
    }

    /// @dev No honest worker (always commits the true digest in time and opens
    /// it as soon as it wins) is ever slashed, unless its task settled on a
    /// wrong digest the cartel carried by the margin.
    function _noHonestTimelyWorkerSlashed() internal view {
        assertEq(handler.honestSlashed(), 0, "an honest, timely worker was slashed");
    }

    /// @dev Every settled task's winner led all other results of its tally by
    /// the job's margin, with that many distinct committers; its digest opens
    /// the winner; it is the true digest unless only cartel seats carried it.
    function _settlementNeedsAMarginOfDistinctWorkers() internal view {
        assertEq(handler.settlementViolations(), 0, "a task settled without its margin or on another digest");
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 id = handler.jobIds(i);
            JobMarket.Job memory j = market.job(id);
            uint256 settledTasks;
            for (uint256 t; t < uint256(j.mapTasks) + j.reduceTasks; ++t) {
                JobMarket.Task memory task = market.task(id, t);
                if (task.settled) settledTasks++;
                assertEq(task.settled, handler.settled(keccak256(abi.encode(id, t))), "settled as the handler saw");
            }
            assertEq(j.settledTasks, settledTasks, "settledTasks == settled tasks");
            if (j.state == JobMarket.JobState.Completed) {
                assertEq(settledTasks, uint256(j.mapTasks) + j.reduceTasks, "completed: all settled");
            }
            if (j.state == JobMarket.JobState.Reduce) {
                assertEq(settledTasks, j.mapTasks, "reduce: exactly the map tasks settled");
            }
        }
    }

    /// @notice The campaigns above reach token jobs end to end: a fixed run of
    /// the handler posts jobs in both currencies, settles them, and withdraws
    /// token rewards, with the books balanced per currency.
    function test_handler_tokenJobsRunToWithdrawal() public {
        for (uint256 i; i < 40 && handler.ghostTokenOut() == 0; ++i) {
            handler.postJob(i);
            handler.draw(i);
            handler.drive(i);
            handler.advance(30, 2 hours);
            handler.resolveAll(i, true);
            handler.refund(i);
            handler.withdraw(2 * i + 1);
        }
        assertTrue(handler.ghostEscrowIn() > 0, "an ETH job was posted");
        assertTrue(handler.ghostTokenIn() > 0, "a token job was posted");
        assertTrue(handler.ghostTokenOut() > 0, "token credits were withdrawn");
        _marketHoldsOpenEscrowPlusCredits();
        invariant_callsMovedExactAmounts();
    }

    /// @notice The fuzzed dishonest workers do report inputs unavailable
    /// (falsely), and every money check still holds.
    function test_handler_falseUnavailabilityReportsAreExercised() public {
        for (uint256 i; i < 60 && handler.unavailableReports() < 3; ++i) {
            handler.postJob(i);
            handler.draw(i);
            for (uint256 k; k < 24; ++k) {
                handler.dishonestAct(i, k, k * 7 + i, 6);
            }
            handler.drive(i);
            handler.advance(3, 1 hours);
            handler.resolveAll(i, true);
            handler.refund(i);
        }
        assertTrue(handler.unavailableReports() >= 3, "false reports were made");
        _marketHoldsOpenEscrowPlusCredits();
        invariant_callsMovedExactAmounts();
        invariant_honestWorkersAndSettlements();
        invariant_moneyIsAccountedFor();
    }

    /// @dev Everything the handler checked call by call held.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_callsMovedExactAmounts() public view {
        assertEq(handler.outcomeViolations(), 0, "an outcome moved wrong amounts");
        assertEq(handler.refundViolations(), 0, "refund or cancel credited a wrong amount");
        assertEq(handler.withdrawViolations(), 0, "a withdrawal sent a wrong amount");
        assertEq(handler.unexpectedReverts(), 0, "a pre-checked call reverted");
        assertEq(handler.lateDeclinesAccepted(), 0, "a seat was declined after the first quarter of its lease");
        assertEq(handler.secondSeats(), 0, "a worker was drawn twice for one task");
    }
}
