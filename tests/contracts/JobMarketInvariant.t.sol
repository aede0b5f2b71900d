// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";
import {Assertions, vm} from "./Base.sol";
import {MarketHandler} from "./handlers/MarketHandler.sol";

/// @notice Solvency, payout and settlement invariants over random sequences
/// driven by MarketHandler. The handler pre-checks or try/catches every call,
/// so a revert inside it is a bug: fail-on-revert is on for these campaigns.
contract JobMarketInvariantTest is Assertions {
    JobMarket internal market;
    IWorkerRegistry internal registry;
    MarketHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        market = new JobMarket(2 days);
        registry = market.registry();
        handler = new MarketHandler(market);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @dev market ETH == open escrow of every job + credits not yet withdrawn,
    /// and == what came in minus what went out, as the handler saw it.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_marketHoldsOpenEscrowPlusCredits() public view {
        uint256 open;
        for (uint256 i; i < handler.jobCount(); ++i) {
            IJobMarket.Job memory j = market.job(handler.jobIds(i));
            open += uint256(j.escrow) - j.paid - j.refunded;
        }
        address[] memory actors = handler.actors();
        uint256 credits;
        for (uint256 i; i < actors.length; ++i) {
            credits += market.credits(actors[i]);
        }
        assertEq(address(market).balance, open + credits, "market balance == open escrow + credits");
        assertEq(address(market).balance, handler.ghostEscrowIn() - handler.ghostMarketOut(), "market in - out");
    }

    /// @dev registry ETH == bonded stakes + unbonding + slashed credits not yet withdrawn.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_registryHoldsStakesPlusCredits() public view {
        address[] memory ws = handler.workerList();
        uint256 held;
        for (uint256 i; i < ws.length; ++i) {
            held += registry.workers(ws[i]).stake + registry.unbonding(ws[i]).amount;
        }
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            held += registry.credits(actors[i]);
        }
        assertEq(address(registry).balance, held, "registry balance == stakes + unbonding + credits");
        assertEq(
            address(registry).balance, handler.ghostStakedIn() - handler.ghostRegistryOut(), "registry in - out"
        );
    }

    /// @dev Collateral locked == collateral of live claims; never above stake.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_lockedCollateralMatchesLiveClaims() public view {
        address[] memory ws = handler.workerList();
        for (uint256 i; i < ws.length; ++i) {
            IWorkerRegistry.Worker memory info = registry.workers(ws[i]);
            assertEq(info.locked, handler.ghostLocked(ws[i]), "locked == live claims' collateral");
            assertLe(info.locked, info.stake, "locked <= stake");
        }
    }

    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_noReplicaPaidTwice() public view {
        assertLe(handler.maxPaidCount(), 1, "a replica was paid twice");
    }

    /// @dev A job pays at most its escrow, and its escrow is exactly r rewards per task.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_jobPaysAtMostItsEscrow() public view {
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 id = handler.jobIds(i);
            IJobMarket.Job memory j = market.job(id);
            IJobMarket.JobParams memory p = handler.params(id);
            uint256 cap = uint256(p.rewardPerReplica) * p.replication * (uint256(p.mapTasks) + p.reduceTasks);
            assertEq(j.escrow, cap, "escrow == reward * r * tasks");
            assertLe(uint256(j.paid) + j.owed + j.refunded, j.escrow, "paid + owed + refunded <= escrow");
            assertLe(j.paid, cap, "paid <= reward * r * tasks");
            assertEq(j.paid, handler.ghostPaid(id), "paid == Paid outcomes seen");
        }
    }

    /// @dev Every settled task has at least `quorum` distinct workers who
    /// revealed its winning digest in its round.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_settlementNeedsQuorumOfDistinctWorkers() public view {
        assertEq(handler.settlementViolations(), 0, "a task settled without quorum or on another digest");
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 id = handler.jobIds(i);
            IJobMarket.Job memory j = market.job(id);
            uint256 settledTasks;
            for (uint256 t; t < uint256(j.mapTasks) + j.reduceTasks; ++t) {
                IJobMarket.Task memory task = market.task(id, t);
                if (task.winner == 0) continue;
                settledTasks++;
                assertLe(j.quorum, handler.revealerCount(id, t, task.round, task.winner), "quorum of revealers");
            }
            assertEq(j.settledTasks, settledTasks, "settledTasks == tasks with a winner");
            if (j.state == IJobMarket.JobState.Completed) {
                assertEq(settledTasks, uint256(j.mapTasks) + j.reduceTasks, "completed: all settled");
            }
            if (j.state == IJobMarket.JobState.Reduce) {
                assertEq(settledTasks, j.mapTasks, "reduce: exactly the map tasks settled");
            }
        }
    }

    /// @dev Everything the handler checked call by call held.
    /// forge-config: default.invariant.fail-on-revert = true
    /// forge-config: ci.invariant.fail-on-revert = true
    function invariant_callsMovedExactAmounts() public view {
        assertEq(handler.owedViolations(), 0, "owed moved by a wrong amount on reveal");
        assertEq(handler.outcomeViolations(), 0, "an outcome moved wrong amounts or slashed an agreeing replica");
        assertEq(handler.refundViolations(), 0, "refund or cancel credited a wrong amount");
        assertEq(handler.withdrawViolations(), 0, "a withdrawal sent a wrong amount");
        assertEq(handler.unexpectedReverts(), 0, "a pre-checked call reverted");
    }
}
