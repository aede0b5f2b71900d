// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {MarketFixture, vm} from "./MarketBase.sol";

/// @dev forge's gas snapshot cheatcodes (written to snapshots/<group>.json;
/// with FORGE_SNAPSHOT_CHECK=true a run fails when a value differs from it).
interface GasVm {
    function snapshotGasLastCall(string calldata group, string calldata name) external returns (uint256 gasUsed);
    function snapshotValue(string calldata group, string calldata name, uint256 value) external;
}

GasVm constant gasVm = GasVm(address(uint160(uint256(keccak256("hevm cheat code")))));

/// @notice Gas of every entry point, kept in snapshots/ so that a change that
/// costs gas shows in the diff (CI checks it). Figures are the callee's
/// execution gas (no 21k base, no calldata): bench/gas.py measures whole
/// transactions on Anvil. Each figure is a plain scenario with no fuzzing, so
/// it is the same under every forge profile.
contract JobMarketGasTest is MarketFixture {
    string internal constant MARKET = "JobMarket";
    string internal constant POOL = "WorkerPool";
    uint32 internal constant ADV_M3 = 50_000; // f = 5 %, epsilon = 0.1 % -> margin 3

    function _postTasks(uint32 tasks) internal returns (uint256 id) {
        JobMarket.JobParams memory p = _params();
        p.mapTasks = tasks;
        p.adversaryPpm = ADV_M3;
        p.extraSeats = 0;
        id = _post(p, 3);
    }

    function test_gas_postJob() public {
        _postTasks(16);
        gasVm.snapshotGasLastCall(MARKET, "postJob_16_tasks");
        _postTasks(16); // the second job: jobCount and the requester are warm in a real chain too
        gasVm.snapshotGasLastCall(MARKET, "postJob_16_tasks_again");
    }

    /// @notice One job of `n` tasks at margin 3 from draw to payment, batched as
    /// the agent batches: one draw for all tasks, and one commit and one reveal
    /// (which pays) per worker for all the seats it holds. Reports each call
    /// and the per-seat sum of each phase.
    function _lifecycle(uint32 n, string memory tag) internal {
        uint256 id = _postTasks(n);
        uint256[] memory all = _range(0, n);
        _toSeed(id, 0);
        uint256[3] memory used; // draw, commit, reveal (and payment)
        for (uint256 calls; calls < 8 && _openAny(id, n); ++calls) {
            vm.prank(stranger);
            market.draw(id, all);
            used[0] += gasVm.snapshotGasLastCall(MARKET, string.concat("draw_", tag, "_call", _dec(calls)));
        }
        assertTrue(!_openAny(id, n), "every seat drawn");
        for (uint256 i; i < honest.length; ++i) {
            uint256[] memory mine = _heldBy(id, n, honest[i]);
            if (mine.length == 0) continue;
            bytes12[] memory results = new bytes12[](mine.length);
            bytes12[] memory seals = new bytes12[](mine.length);
            for (uint256 k; k < mine.length; ++k) {
                results[k] = bytes12(_result(id, mine[k], _truth(id, mine[k])));
                seals[k] = bytes12(_seal(honest[i], id, mine[k], _truth(id, mine[k])));
            }
            vm.prank(honest[i]);
            market.commit(id, mine, results, seals);
            used[1] += gasVm.snapshotGasLastCall(MARKET, string.concat("commit_", tag, "_worker", _dec(i)));
        }
        for (uint256 i; i < honest.length; ++i) {
            uint256[] memory mine = _committedBy(id, n, honest[i]);
            if (mine.length == 0) continue;
            bytes32[] memory digests = new bytes32[](mine.length);
            for (uint256 k; k < mine.length; ++k) {
                digests[k] = _truth(id, mine[k]);
            }
            vm.prank(honest[i]);
            market.reveal(id, mine, digests);
            used[2] += gasVm.snapshotGasLastCall(MARKET, string.concat("reveal_", tag, "_worker", _dec(i)));
            assertEq(_committedBy(id, n, honest[i]).length, 0, "every opened seat is paid and gone");
        }
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Completed), "job completed");
        uint256 seats = uint256(n) * 3;
        gasVm.snapshotValue(MARKET, string.concat("per_seat_", tag, "_draw"), used[0] / seats);
        gasVm.snapshotValue(MARKET, string.concat("per_seat_", tag, "_commit"), used[1] / seats);
        gasVm.snapshotValue(MARKET, string.concat("per_seat_", tag, "_reveal"), used[2] / seats);
        gasVm.snapshotValue(MARKET, string.concat("per_seat_", tag, "_total"), (used[0] + used[1] + used[2]) / seats);
    }

    function test_gas_lifecycle_m3_batch1() public {
        _lifecycle(1, "m3_b1");
    }

    function test_gas_lifecycle_m3_batch16() public {
        _lifecycle(16, "m3_b16");
    }

    /// @notice The paths off the happy one: decline, an input reported
    /// unavailable, a no-show slashed and
    /// redrawn, a silent winner poked, expiry, refund, cancel and withdraw.
    function test_gas_otherPaths() public {
        uint256 id = _postTasks(1);
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        address[] memory seats = _seats(id, 0);
        vm.prank(seats[0]);
        market.decline(id, _ids(0));
        gasVm.snapshotGasLastCall(MARKET, "decline_1");
        vm.prank(seats[1]);
        market.reportUnavailable(id, _ids(0));
        gasVm.snapshotGasLastCall(MARKET, "reportUnavailable_1");
        _draw(stranger, id, 0);
        gasVm.snapshotGasLastCall(MARKET, "draw_redraw_2_seats");
        seats = _seats(id, 0);
        _skip(LEASE + 1);
        vm.prank(stranger);
        market.resolve(id, 0, seats[0]);
        gasVm.snapshotGasLastCall(MARKET, "resolve_no_show");

        // A winner nobody opens: the poke voids the round.
        uint256 silent = _postTasks(1);
        _toSeed(silent, 0);
        _draw(stranger, silent, 0);
        seats = _seats(silent, 0);
        _commitAll(seats, silent, 0, _truth(silent, 0));
        _skip(REVEAL + 1);
        vm.prank(stranger);
        market.poke(silent, 0);
        gasVm.snapshotGasLastCall(MARKET, "poke_void_round");

        uint256 cancelled = _postTasks(4);
        vm.prank(requester);
        market.cancelJob(cancelled);
        gasVm.snapshotGasLastCall(MARKET, "cancelJob");

        _skip(TIMEOUT + 1);
        vm.prank(stranger);
        market.expireJob(id);
        gasVm.snapshotGasLastCall(MARKET, "expireJob");
        _skip(TIMEOUT);
        vm.prank(requester);
        market.refund(id);
        gasVm.snapshotGasLastCall(MARKET, "refund");
        vm.prank(requester);
        market.withdraw();
        gasVm.snapshotGasLastCall(MARKET, "withdraw");
    }

    function test_gas_workerPool() public {
        address w = address(0xBEEF);
        vm.deal(w, 10 ether);
        vm.startPrank(w);
        pool.stake{value: 5 ether}();
        gasVm.snapshotGasLastCall(POOL, "stake_first");
        pool.stake{value: 1 ether}();
        gasVm.snapshotGasLastCall(POOL, "stake_more");
        pool.announce("http://worker.example:8000");
        gasVm.snapshotGasLastCall(POOL, "announce");
        pool.optIn(0);
        gasVm.snapshotGasLastCall(POOL, "optIn");
        pool.optOut(0);
        gasVm.snapshotGasLastCall(POOL, "optOut");
        pool.requestUnbond(1 ether);
        gasVm.snapshotGasLastCall(POOL, "requestUnbond");
        vm.stopPrank();
        _skip(UNBONDING_DELAY + 1);
        vm.prank(w);
        pool.withdrawUnbonded();
        gasVm.snapshotGasLastCall(POOL, "withdrawUnbonded");
    }

    // ------------------------------------------------------------ helpers

    function _openAny(uint256 id, uint256 n) internal view returns (bool) {
        for (uint256 t; t < n; ++t) {
            JobMarket.Task memory task = market.task(id, t);
            if (task.seats == 0 || task.seated < task.seats) return true; // seats is set by the first draw
        }
        return false;
    }

    function _heldBy(uint256 id, uint256 n, address w) internal view returns (uint256[] memory) {
        return _withState(id, n, w, JobMarket.ReplicaState.Assigned);
    }

    function _committedBy(uint256 id, uint256 n, address w) internal view returns (uint256[] memory) {
        return _withState(id, n, w, JobMarket.ReplicaState.Committed);
    }

    function _withState(uint256 id, uint256 n, address w, JobMarket.ReplicaState s)
        internal
        view
        returns (uint256[] memory out)
    {
        uint256[] memory buf = new uint256[](n);
        uint256 k;
        for (uint256 t; t < n; ++t) {
            if (market.replica(id, t, w).state == s) buf[k++] = t;
        }
        out = new uint256[](k);
        for (uint256 i; i < k; ++i) {
            out[i] = buf[i];
        }
    }
}
