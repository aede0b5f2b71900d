// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {IRandomness} from "../../contracts/interfaces/IRandomness.sol";
import {MarketFixture, MarketVm, vm} from "./MarketBase.sol";

/// @notice Attack 5: whoever holds many addresses does not hold the task.
/// Seats follow the stake-weighted draw; an attacker's share of seats is its
/// share of stake however it splits it; nothing done after the seed is known
/// changes who is seated.
contract JobMarketSybilSeatsTest is MarketFixture {
    uint256 internal constant K = 8; // attacker addresses
    uint256 internal constant HONEST_BIG = 75 ether; // 8 honest: 600 ether
    uint256 internal constant ATTACKER_EACH = 18.75 ether; // 8 x 18.75 = 150 ether: f = 0.2
    uint256 internal constant F_PPM = 200_000;

    address[] internal attackers;
    mapping(address => bool) internal isAttacker;

    function _enlistAttackers(uint256 each) internal {
        for (uint256 i; i < K; ++i) {
            address a = address(uint160(0xBAD00 + i));
            attackers.push(a);
            isAttacker[a] = true;
            _enlist(a, each);
        }
    }

    function _attackerSeats(address[] memory seats) internal view returns (uint256 n) {
        for (uint256 i; i < seats.length; ++i) {
            if (isAttacker[seats[i]]) n++;
        }
    }

    /// @notice 240 tasks (12 jobs, each with its own seed block whose hash is
    /// set with vm.setBlockhash to a keccak value) drawn from a blockhash
    /// market. The attacker holds f = 20 % of the stake over 8 addresses.
    /// Its share of the 960 seats stays near f (draws without replacement
    /// from a pool of chunky honest stakes put it a little above: about
    /// 0.22), and it holds every seat of a task about f^4 of the time.
    function test_attack_sybilSeats_shareOfSeatsFollowsStake() public {
        _deploy(IRandomness(address(0)), EPOCH_BLOCKS);
        for (uint256 i; i < honest.length; ++i) {
            _stake(honest[i], HONEST_BIG);
            vm.prank(honest[i]);
            pool.optIn(0);
        }
        _enlistAttackers(ATTACKER_EACH);
        _nextEpoch();
        assertEq(pool.poolWeight(0), 750 ether, "pool weight");

        JobMarket.JobParams memory p = _params();
        p.mapTasks = 20;
        uint256 seats;
        uint256 attackerSeats;
        uint256 captured;
        for (uint256 j; j < 12; ++j) {
            uint256 id = _post(p, M);
            _toSeed(id, 0);
            vm.setBlockhash(_seedBlockOf(id, 0), keccak256(abi.encode("seed", j)));
            vm.prank(attackers[j % K]);
            market.draw(id, _range(0, 20));
            for (uint256 t; t < 20; ++t) {
                address[] memory ss = _seats(id, t);
                uint256 a = _attackerSeats(ss);
                seats += ss.length;
                attackerSeats += a;
                if (a == M) captured++;
            }
            _mine(1);
        }
        assertEq(seats, 240 * uint256(M), "every seat drawn");
        uint256 sharePpm = attackerSeats * 1e6 / seats;
        // sigma of the share over 960 seats is about 13,000 ppm: +-60,000 is over 4 sigma.
        assertLe(sharePpm, F_PPM + 60_000, "attacker share of seats above f");
        assertGe(sharePpm, F_PPM - 60_000, "attacker share of seats below f");
        // f^4 * 240 = 0.38 tasks expected; 4 would be far in the tail.
        assertLe(captured, 4, "too many tasks whose every seat is the attacker's");
    }

    /// @notice With a mock randomness source: whatever the attacker's
    /// addresses do (who calls draw, how often), it holds exactly the seats
    /// the draw gives it, computed here from the rules; an address the draw
    /// did not seat cannot commit.
    function test_attack_sybilSeats_attackerHoldsOnlyTheSeatsDrawn() public {
        _enlistAttackers(10 ether);
        _nextEpoch();
        for (uint256 s; s < 16; ++s) {
            uint256 id = _postDefault();
            _toSeed(id, 0);
            bytes32 random = keccak256(abi.encode("mock", s));
            rng.set(_seedBlockOf(id, 0), random);
            address[] memory predicted = _predict(id, 0, random);
            for (uint256 i; i < K; ++i) {
                vm.prank(attackers[i]);
                try market.draw(id, _ids(0)) {} catch {}
            }
            assertTrue(_sameSet(_seats(id, 0), predicted), "seats = the draw written out here");
            for (uint256 i; i < K; ++i) {
                if (_contains(predicted, attackers[i])) continue;
                vm.expectRevert(_wrongState(id, 0, attackers[i], JobMarket.ReplicaState.None));
                _commit(attackers[i], id, 0, _garbage(id, 0, i));
            }
            _mine(1);
        }
    }

    // ------------------------------------------------------------ steering

    /// @dev Seats of task `taskId` after drawing it with `random`, in a
    /// world that is thrown away afterwards.
    function _seatsIn(uint256 id, uint256 taskId, bytes32 random) internal returns (address[] memory seats) {
        uint256 snap = vm.snapshotState();
        rng.set(_seedBlockOf(id, taskId), random);
        vm.prank(stranger);
        market.draw(id, _ids(taskId));
        seats = _seats(id, taskId);
        vm.revertToStateAndDelete(snap);
    }

    /// @notice After the seed is known the attacker stakes more, opts new
    /// addresses in, opts out, unbonds some stake: none of it moves a seat in
    /// this epoch (pool weights are epoch-fixed and every address stays eligible).
    function test_attack_steer_weightsFixedAfterTheSeedIsKnown() public {
        _enlistAttackers(ATTACKER_EACH);
        _nextEpoch();
        uint256 id = _postDefault();
        _toSeed(id, 0);
        for (uint256 s; s < 16; ++s) {
            bytes32 random = keccak256(abi.encode("steer", s));
            address[] memory before = _seatsIn(id, 0, random);
            for (uint256 action; action < 4; ++action) {
                uint256 snap = vm.snapshotState();
                for (uint256 i; i < K; ++i) {
                    address a = attackers[i];
                    if (action == 0) {
                        _stake(a, 40 ether);
                    } else if (action == 1) {
                        _enlist(address(uint160(0xFEED00 + i)), 40 ether);
                    } else if (action == 2) {
                        vm.prank(a);
                        pool.optOut(0);
                    } else {
                        vm.prank(a);
                        pool.requestUnbond(ATTACKER_EACH - JOB_MIN_STAKE); // still at the job's minimum
                    }
                }
                address[] memory afterwards = _seatsIn(id, 0, random);
                assertTrue(_sameSet(before, afterwards), "a stake change after the seed moved a seat");
                vm.revertToStateAndDelete(snap);
            }
        }
    }

    // ------------------------------------------------ waiting, not skipping

    /// @dev Workers seated on `taskId` by the recorded TaskAssigned logs, in order.
    function _assigned(MarketVm.Log[] memory logs, uint256 id, uint256 taskId)
        internal
        view
        returns (address[] memory out)
    {
        address[] memory buf = new address[](logs.length);
        uint256 n;
        for (uint256 i; i < logs.length; ++i) {
            MarketVm.Log memory l = logs[i];
            if (l.emitter != address(market) || l.topics.length != 4) continue;
            if (l.topics[0] != JobMarket.TaskAssigned.selector) continue;
            if (uint256(l.topics[1]) != id || uint256(l.topics[2]) != taskId) continue;
            buf[n++] = address(uint160(uint256(l.topics[3])));
        }
        out = new address[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = buf[i];
        }
    }

    /// @dev Calls draw on `taskIds` until a call changes nothing (at most 16 calls).
    function _drawUntilStuck(uint256 id, uint256[] memory taskIds) internal returns (uint256 calls) {
        for (; calls < 16; ++calls) {
            vm.prank(stranger);
            try market.draw(id, taskIds) {}
            catch (bytes memory err) {
                assertEq(
                    bytes32(bytes4(err)), bytes32(JobMarket.JobMarketNothingToDraw.selector), "draw: unexpected revert"
                );
                return calls;
            }
        }
    }

    function _sameSeq(address[] memory a, address[] memory b) internal pure returns (bool) {
        if (a.length != b.length) return false;
        for (uint256 i; i < a.length; ++i) {
            if (a[i] != b[i]) return false;
        }
        return true;
    }

    /// @dev Whether `a` is the first `a.length` entries of `b`.
    function _isPrefix(address[] memory a, address[] memory b) internal pure returns (bool) {
        if (a.length > b.length) return false;
        for (uint256 i; i < a.length; ++i) {
            if (a[i] != b[i]) return false;
        }
        return true;
    }

    /// @dev The order in which the task's current round would seat workers if
    /// every candidate could sit: candidate k in order, skipping for good only
    /// the requester, workers already on the task, and workers whose weight
    /// in this epoch is below the job's minimum stake (written out here from
    /// the rules). Stakes, free stakes and the order of draw calls can only
    /// make the draw wait, that is cut this sequence short.
    function _seatOrder(uint256 id, uint256 taskId, bytes32 random, uint256 want)
        internal
        view
        returns (address[] memory out)
    {
        JobMarket.Job memory j = market.job(id);
        address[] memory buf = new address[](want);
        uint256 n;
        for (uint256 k; k < 256 && n < want; ++k) {
            address w = _candidate(id, taskId, random, k);
            if (w == address(0)) break;
            if (w == j.requester || _contains(buf, w)) continue;
            if (market.replica(id, taskId, w).state != JobMarket.ReplicaState.None) continue;
            if (pool.weightOf(j.resourceClass, w) < j.minStake) continue;
            buf[n++] = w;
        }
        out = new address[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = buf[i];
        }
    }

    /// @dev A dormant attacker world: 0 never unbonded; 1 unbonded below the
    /// job's minimum before the seed, restakes after seeing it, before any
    /// draw; 2 the same, restaking only after a draw waited on it; 3 dormant
    /// and never restakes. Returns the seats in the order they were taken,
    /// how many were taken before the restake (world 2) and whether the first
    /// draw call could do nothing at all.
    function _dormantWorld(uint256 id, bytes32 random, uint256 world)
        internal
        returns (address[] memory seats, uint256 beforeRestake, bool firstCallStuck)
    {
        uint256 snap = vm.snapshotState();
        if (world != 0) {
            for (uint256 i; i < K; ++i) {
                vm.prank(attackers[i]);
                pool.requestUnbond(ATTACKER_EACH - 0.5 ether); // weight 18.75 this epoch, stake 0.5
            }
        }
        if (world == 1) _restakeAttackers();
        rng.set(_seedBlockOf(id, 0), random);
        vm.recordLogs();
        firstCallStuck = _drawUntilStuck(id, _ids(0)) == 0;
        beforeRestake = _task(id, 0).seated;
        if (world == 2) {
            _restakeAttackers();
            _drawUntilStuck(id, _ids(0));
        }
        seats = _assigned(vm.getRecordedLogs(), id, 0);
        assertTrue(_sameSet(seats, _seats(id, 0)), "the logs tell the seats");
        vm.revertToStateAndDelete(snap);
    }

    function _restakeAttackers() internal {
        for (uint256 i; i < K; ++i) {
            _stake(attackers[i], 1 ether); // back above the job's minimum
        }
    }

    /// @notice docs/protocol.md: "staking ... after seeing the seed changes
    /// nothing until the seed is no longer usable". An attacker's addresses
    /// have weight in this epoch (their stake at its start) but unbonded
    /// below the job's minimum before the seed was known. Seeing the seed,
    /// the attacker stakes them back up wherever that wins it a seat. What
    /// it gets is exactly what the addresses' epoch weight gave them anyway:
    /// the seats are those of the world where it never unbonded (restaking
    /// before the first draw, or after a draw waited). And if it does not
    /// restake, the draw waits on the first dormant address it meets: the
    /// seat is not handed to the next candidate (the draw can do nothing at
    /// all when that address is the first candidate).
    function test_attack_steer_stakingUpAfterTheSeedDoesNotSeatADormantAddress() public {
        _enlistAttackers(ATTACKER_EACH);
        _nextEpoch();
        uint256 id = _postDefault();
        _toSeed(id, 0);
        uint256 waited;
        uint256 stuck;
        for (uint256 s; s < 24; ++s) {
            bytes32 random = keccak256(abi.encode("dormant", s));
            (address[] memory never,,) = _dormantWorld(id, random, 0);
            assertEq(never.length, M, "a full round where nobody unbonded");
            assertTrue(_sameSeq(never, _seatOrder(id, 0, random, M)), "seats follow the candidate order");

            (address[] memory before,,) = _dormantWorld(id, random, 1);
            assertTrue(_sameSeq(before, never), "restaking after the seed changed the seats");
            (address[] memory late, uint256 beforeRestake,) = _dormantWorld(id, random, 2);
            assertTrue(_sameSeq(late, never), "restaking after a wait changed the seats");

            // Never restaked: the seats stop before the first attacker the draw meets.
            uint256 p;
            while (p < never.length && !isAttacker[never[p]]) p++;
            (address[] memory dormant,, bool firstStuck) = _dormantWorld(id, random, 3);
            assertEq(dormant.length, p, "a seat went past a dormant candidate");
            assertTrue(_isPrefix(dormant, never), "the seats taken are those of the world without dormancy");
            assertEq(_attackerSeats(dormant), 0, "a dormant address sat");
            assertEq(beforeRestake, p, "before the restake the draw waited at the same place");
            assertEq(firstStuck, p == 0, "a draw that can do nothing reverts");
            if (p < never.length) waited++;
            if (p == 0) stuck++;
        }
        assertGe(waited, 1, "some draw waited on a dormant address");
        assertGe(stuck, 1, "some draw met a dormant address first");
    }

    /// @notice docs/protocol.md: "the candidate sequence of a draw is fixed by
    /// the seed; batching does not change it". Honest workers here can afford
    /// one seat at a time (collateral 1 ether, stake 1.5 ether); the attacker
    /// has three addresses that can hold three each. Seeing the seeds, a
    /// caller picks the order of the tasks in its draw calls (one call with
    /// both tasks, either way round, or one call per task, either first) so
    /// that an honest worker's only free collateral is spent on the other
    /// task, hoping the round it would have sat in goes to the attacker.
    /// The order may change how many seats are filled now (a task waits for
    /// a stake-constrained honest worker), never who sits: in every order each
    /// task's seats are a prefix of the same seat order, so no order hands the
    /// attacker a round. Over 48 seeds.
    function test_attack_steer_drawOrderCannotHandTheAttackerARound() public {
        _deploy(IRandomness(address(rng)), EPOCH_BLOCKS);
        address[] memory small = new address[](6);
        for (uint256 i; i < 6; ++i) {
            small[i] = address(uint160(0xC000 + i));
            _enlist(small[i], 1.5 ether);
        }
        for (uint256 i; i < 3; ++i) {
            address a = address(uint160(0xBAD00 + i));
            attackers.push(a);
            isAttacker[a] = true;
            _enlist(a, 3 ether);
        }
        _nextEpoch();
        JobMarket.JobParams memory p = _params();
        p.mapTasks = 2;
        p.epsilonPpm = 20_000; // f = 0.1, epsilon = 2 %: m = 2
        p.collateral = 1 ether;
        p.minStake = 1 ether;
        assertEq(market.marginFor(p.epsilonPpm, p.adversaryPpm), 2, "m = 2");
        uint256 id = _post(p, 2);
        _toSeed(id, 0);

        uint256 waits; // seeds where some order left a seat waiting
        uint256 handed; // seeds where one order gave the attacker a full round another order did not
        for (uint256 s; s < 48; ++s) {
            bytes32 random = keccak256(abi.encode("order", s));
            address[] memory order0 = _seatOrder(id, 0, random, 2);
            address[] memory order1 = _seatOrder(id, 1, random, 2);
            bool waited;
            uint256 caps; // bit (2 * task + capture): some order gave / denied the attacker the round
            for (uint256 o; o < 4; ++o) {
                (address[] memory s0, address[] memory s1) = _drawInOrder(id, random, o);
                assertTrue(_isPrefix(s0, order0), "task 0: a seat went to someone out of the seat order");
                assertTrue(_isPrefix(s1, order1), "task 1: a seat went to someone out of the seat order");
                if (s0.length < 2 || s1.length < 2) waited = true;
                if (s0.length == 2) caps |= 1 << (_attackerSeats(s0) == 2 ? 1 : 0);
                if (s1.length == 2) caps |= 1 << (2 + (_attackerSeats(s1) == 2 ? 1 : 0));
            }
            if (waited) waits++;
            if (caps & 3 == 3 || caps & 12 == 12) handed++;
        }
        assertEq(handed, 0, "seeds where the order of the draw calls handed the attacker a whole round");
        assertGe(waits, 1, "no seed made a task wait: the test does not exercise the stake constraint");
    }

    /// @dev Seats of tasks 0 and 1 (in the order taken) after drawing with
    /// `random` in order `o`: 0 one call [0, 1], 1 one call [1, 0], 2 calls
    /// for task 0 then task 1, 3 calls for task 1 then task 0; each repeated
    /// until it changes nothing. The world is thrown away afterwards.
    function _drawInOrder(uint256 id, bytes32 random, uint256 o)
        internal
        returns (address[] memory s0, address[] memory s1)
    {
        uint256 snap = vm.snapshotState();
        rng.set(_seedBlockOf(id, 0), random);
        vm.recordLogs();
        if (o == 0) {
            _drawUntilStuck(id, _ids(0, 1));
        } else if (o == 1) {
            _drawUntilStuck(id, _ids(1, 0));
        } else {
            _drawUntilStuck(id, _ids(o == 2 ? 0 : 1));
            _drawUntilStuck(id, _ids(o == 2 ? 1 : 0));
        }
        MarketVm.Log[] memory logs = vm.getRecordedLogs();
        s0 = _assigned(logs, id, 0);
        s1 = _assigned(logs, id, 1);
        vm.revertToStateAndDelete(snap);
    }
}
