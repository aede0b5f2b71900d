// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {Sortition} from "../../contracts/utils/Sortition.sol";
import {MarketFixture, vm} from "./MarketBase.sol";

/// @notice WorkerPool on its own: stake, opt in/out, epoch-fixed weights, the
/// lottery's proportions, unbonding, the market-only entry points, burning,
/// and the sortition tree's capacity.
contract WorkerPoolV2Test is MarketFixture {
    address internal w = address(0x7001);
    uint8 internal constant GPU = 1;

    function test_pool_weightsTakeEffectNextEpoch() public {
        assertEq(pool.poolWeight(GPU), 0, "empty class");
        _enlistIn(w, 5 ether, GPU);
        assertEq(pool.poolWeight(GPU), 0, "not in this epoch");
        assertEq(pool.drawFrom(GPU, 123), address(0), "nobody to draw yet");
        _nextEpoch();
        assertEq(pool.poolWeight(GPU), 5 ether, "in force next epoch");
        assertEq(pool.drawFrom(GPU, 123), w, "the only member");
        _stake(w, 3 ether);
        assertEq(pool.poolWeight(GPU), 5 ether, "more stake: next epoch");
        vm.prank(w);
        pool.requestUnbond(1 ether);
        assertEq(pool.poolWeight(GPU), 5 ether, "unbond: next epoch");
        _nextEpoch();
        assertEq(pool.poolWeight(GPU), 7 ether, "stake - unbonded");
        vm.prank(w);
        pool.optOut(GPU);
        assertEq(pool.drawFrom(GPU, 1), w, "still drawn this epoch");
        _nextEpoch();
        assertEq(pool.poolWeight(GPU), 0, "out next epoch");
        assertEq(pool.drawFrom(GPU, 1), address(0), "nobody left");
    }

    function _enlistIn(address a, uint256 amount, uint8 cls) internal {
        _stake(a, amount);
        vm.prank(a);
        pool.optIn(cls);
    }

    function test_pool_optInNeedsMinStakeAndAKnownClass() public {
        _stake(w, POOL_MIN_STAKE - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                WorkerPool.WorkerPoolStakeBelowMinimum.selector, w, POOL_MIN_STAKE - 1, POOL_MIN_STAKE
            )
        );
        vm.prank(w);
        pool.optIn(0);
        _stake(w, 1);
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolUnknownClass.selector, 8));
        vm.prank(w);
        pool.optIn(8);
        vm.prank(w);
        pool.optIn(0);
        assertEq(pool.membership(w).classes, 1, "class 0 bit");
    }

    /// @notice Each member is drawn in proportion to its stake (1 : 2 : 5).
    function test_pool_drawIsProportionalToStake() public {
        (address a, address b, address c) = _oneTwoFive(0x7101);
        uint256[3] memory hits;
        uint256 n = 4_000;
        for (uint256 i; i < n; ++i) {
            address got = pool.drawFrom(GPU, uint256(keccak256(abi.encode("p", i))));
            if (got == a) hits[0]++;
            else if (got == b) hits[1]++;
            else if (got == c) hits[2]++;
        }
        assertEq(hits[0] + hits[1] + hits[2], n, "always a member");
        // Expected 500, 1000, 2500; sigma about 21, 27, 31.
        assertLe(_dist(hits[0], 500), 100, "1/8");
        assertLe(_dist(hits[1], 1000), 130, "2/8");
        assertLe(_dist(hits[2], 2500), 150, "5/8");
        // The boundaries of the cumulative ranges are exact.
        assertEq(pool.drawFrom(GPU, 0), a, "first wei is a's");
        assertEq(pool.drawFrom(GPU, 1 ether - 1), a, "last wei of a");
        assertEq(pool.drawFrom(GPU, 1 ether), b, "first wei of b");
        assertEq(pool.drawFrom(GPU, 3 ether - 1), b, "last wei of b");
        assertEq(pool.drawFrom(GPU, 3 ether), c, "first wei of c");
        assertEq(pool.drawFrom(GPU, 8 ether - 1), c, "last wei of c");
        assertEq(pool.drawFrom(GPU, 8 ether), a, "wraps modulo the total");
    }

    /// @notice drawCandidate (what the market's draw calls) picks what drawFrom
    /// picks, with that member's weight this epoch, at every range boundary,
    /// including around a member that left (weight 0 between two others).
    function test_pool_drawCandidateIsDrawFromWithTheWeight() public {
        (address a, address b, address c) = _oneTwoFive(0x7201);
        vm.prank(b);
        pool.optOut(GPU);
        _nextEpoch(); // b's index stays, weighing 0
        assertEq(pool.poolWeight(GPU), 6 ether, "a + c");
        uint256[6] memory probes = [uint256(0), 1 ether - 1, 1 ether, 6 ether - 1, 6 ether, 123_456_789 ether];
        for (uint256 i; i < probes.length + 200; ++i) {
            uint256 r = i < probes.length ? probes[i] : uint256(keccak256(abi.encode("c", i)));
            (address got, uint256 weight) = pool.drawCandidate(GPU, r);
            address expected = pool.drawFrom(GPU, r);
            assertEq(got, expected, "same member as drawFrom");
            assertEq(weight, pool.weightOf(GPU, got), "its weight this epoch");
            assertTrue(got != b, "a member that left is never drawn");
            // Independently of the tree: a holds [0, 1 ether) of the total, c the rest.
            assertEq(got, r % 6 ether < 1 ether ? a : c, "the range that holds r % total");
        }
    }

    /// @dev Three GPU members staking 1, 2 and 5 ether, at addresses base..base+2, in force.
    function _oneTwoFive(uint160 base) internal returns (address a, address b, address c) {
        (a, b, c) = (address(base), address(base + 1), address(base + 2));
        _enlistIn(a, 1 ether, GPU);
        _enlistIn(b, 2 ether, GPU);
        _enlistIn(c, 5 ether, GPU);
        _nextEpoch();
    }

    function _dist(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a - b : b - a;
    }

    function test_pool_unbondWaitsForTheDelay() public {
        _stake(w, 5 ether);
        vm.expectRevert(
            abi.encodeWithSelector(WorkerPool.WorkerPoolInsufficientFreeStake.selector, w, 5 ether, 6 ether)
        );
        vm.prank(w);
        pool.requestUnbond(6 ether);
        vm.expectRevert(_err(WorkerPool.WorkerPoolZeroAmount.selector));
        vm.prank(w);
        pool.requestUnbond(0);
        vm.prank(w);
        pool.requestUnbond(2 ether);
        uint256 readyAt = block.timestamp + UNBONDING_DELAY;
        assertEq(pool.unbonding(w).amount, 2 ether, "queued");
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolUnbondingNotReady.selector, w, readyAt));
        vm.prank(w);
        pool.withdrawUnbonded();
        vm.warp(readyAt);
        uint256 before = w.balance;
        vm.prank(w);
        pool.withdrawUnbonded();
        assertEq(w.balance - before, 2 ether, "paid out");
        assertEq(_stakeOf(w), 3 ether, "rest bonded");
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolNothingToWithdraw.selector, w));
        vm.prank(w);
        pool.withdrawUnbonded();
    }

    function test_pool_marketOnlyEntryPoints() public {
        vm.startPrank(stranger);
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolNotMarket.selector, stranger));
        pool.tryLock(w, 1, 0);
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolNotMarket.selector, stranger));
        pool.release(w, 1, 0);
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolNotMarket.selector, stranger));
        pool.slash(w, 1, 1);
        vm.stopPrank();
        vm.expectRevert(_err(WorkerPool.WorkerPoolZeroAmount.selector));
        vm.prank(w);
        pool.stake{value: 0}();
        string memory long = string(new bytes(257));
        vm.expectRevert(abi.encodeWithSelector(WorkerPool.WorkerPoolEndpointTooLong.selector, 257, 256));
        vm.prank(w);
        pool.announce(long);
    }

    /// @notice A slash burns: the pool keeps the wei (stakes + unbonding +
    /// burned = balance), the slashed worker's weight drops next epoch, and
    /// nobody is credited.
    function test_pool_slashBurnsAndReweighs() public {
        uint256 id = _postDefault();
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        address[] memory seats = _seats(id, 0);
        _skip(LEASE + 1);
        uint256 weightBefore = pool.poolWeight(0);
        _resolve(id, 0, seats[0]);
        assertEq(pool.burned(), COLLATERAL, "burned");
        assertEq(_stakeOf(seats[0]), HONEST_STAKE - COLLATERAL, "stake cut");
        assertEq(pool.poolWeight(0), weightBefore, "weight unchanged this epoch");
        _nextEpoch();
        assertEq(pool.poolWeight(0), weightBefore - COLLATERAL, "weight cut next epoch");
        uint256 held;
        for (uint256 i; i < actors.length; ++i) {
            held += _stakeOf(actors[i]) + pool.unbonding(actors[i]).amount;
            assertEq(market.credits(actors[i]), 0, "nobody credited");
        }
        assertEq(address(pool).balance, held + pool.burned(), "balance = stakes + unbonding + burned");
        assertEq(market.credits(requester), 0, "not the requester either");
    }

    // ------------------------------------------------------------ capacity

    uint256 internal constant CAPACITY = 4096;

    /// @dev Opts `n` fresh addresses (0x100000 + i, index i + 1) with 1 ether each into `cls`.
    function _fill(uint8 cls, uint256 n) internal returns (address[] memory ms) {
        ms = new address[](n);
        for (uint256 i; i < n; ++i) {
            address s = address(uint160(0x100000 + i));
            ms[i] = s;
            vm.deal(s, POOL_MIN_STAKE);
            vm.startPrank(s);
            pool.stake{value: POOL_MIN_STAKE}();
            pool.optIn(cls);
            vm.stopPrank();
        }
    }

    function _leave(address a) internal {
        uint256 amount = _stakeOf(a);
        vm.prank(a);
        pool.requestUnbond(amount); // weight 0 from the next epoch
    }

    function _full() internal pure returns (bytes memory) {
        return abi.encodeWithSelector(Sortition.SortitionFull.selector, CAPACITY);
    }

    /// @notice A class holds 4,096 members at a time. Sybils that opt in and
    /// then leave (unbond everything) must not lock the class against honest
    /// newcomers forever: each sybil needs minStake only for the moment it
    /// opts in, so the same capital, unbonded and restaked, could otherwise
    /// fill the class over a few unbonding periods. A newcomer takes the place
    /// of a member that left; it weighs nothing in the epoch it joins.
    function test_pool_sybilsThatLeaveDoNotFillAClassForever() public {
        uint8 cls = 3;
        for (uint256 i; i < 4096; ++i) {
            address s = address(uint160(0x100000 + i));
            vm.deal(s, POOL_MIN_STAKE);
            vm.startPrank(s);
            pool.stake{value: POOL_MIN_STAKE}();
            pool.optIn(cls);
            pool.requestUnbond(POOL_MIN_STAKE); // leaves: weight 0 from the next epoch
            vm.stopPrank();
        }
        _nextEpoch();
        assertEq(pool.poolWeight(cls), 0, "every sybil left");
        _stake(w, 10 ether);
        vm.prank(w);
        (bool ok,) = address(pool).call(abi.encodeCall(WorkerPool.optIn, (cls)));
        assertTrue(ok, "an honest worker cannot opt in: the class is full of members that left");
        assertEq(pool.weightOf(cls, w), 0, "a newcomer weighs nothing in the epoch it joins");
        assertEq(pool.drawFrom(cls, 0), address(0), "nobody to draw this epoch");
        assertEq(pool.weightOf(cls, address(0x100000)), 0, "the sybil whose place it took is unmapped");
        _nextEpoch();
        assertEq(pool.poolWeight(cls), 10 ether, "the newcomer's weight in force");
        assertEq(pool.drawFrom(cls, 123), w, "the newcomer is drawn");
    }

    /// @notice A member that left (unbond everything) keeps its place through
    /// the epoch in which its weight is still in force: a newcomer cannot take
    /// it then. From the next epoch (weight 0 now and next) a newcomer can;
    /// in that epoch the place weighs 0, so no draw can return the newcomer or
    /// the member that left, and every other member keeps its range.
    function test_pool_aPlaceIsReusedOnlyOnceItWeighsNothingNowAndNext() public {
        uint8 cls = 2;
        address[] memory ms = _fill(cls, CAPACITY);
        _nextEpoch();
        assertEq(pool.poolWeight(cls), CAPACITY * 1 ether, "class full, in force");
        _stake(w, 10 ether);
        vm.expectRevert(_full());
        vm.prank(w);
        pool.optIn(cls);

        address x = ms[100]; // index 101: range [100, 101) ether
        _leave(x);
        assertEq(pool.drawFrom(cls, 100 ether), x, "x is still drawn in the epoch it left");
        vm.expectRevert(_full()); // x's place still weighs this epoch
        vm.prank(w);
        pool.optIn(cls);

        _nextEpoch();
        vm.prank(w);
        pool.optIn(cls); // takes x's place
        assertEq(pool.weightOf(cls, w), 0, "the newcomer weighs 0 this epoch");
        assertEq(pool.weightOf(cls, x), 0, "x is unmapped");
        assertEq(pool.poolWeight(cls), (CAPACITY - 1) * 1 ether, "this epoch's total unchanged by the swap");
        for (uint256 k; k < CAPACITY - 1; ++k) {
            address got = pool.drawFrom(cls, k * 1 ether);
            assertEq(got, ms[k < 100 ? k : k + 1], "every other member keeps its range this epoch");
        }
        _nextEpoch();
        assertEq(pool.poolWeight(cls), (CAPACITY - 1) * 1 ether + 10 ether, "the newcomer's weight in force");
        assertEq(pool.drawFrom(cls, 100 ether), w, "the newcomer holds x's place");
        assertEq(pool.drawFrom(cls, 110 ether - 1), w, "with its own weight");
        assertEq(pool.drawFrom(cls, 110 ether), ms[101], "and the next member follows");
        assertEq(pool.weightOf(cls, w), 10 ether, "weight in force");
    }

    /// @notice A member that leaves and comes back before anyone took its place
    /// keeps its place: with a, b, c (1, 2, 5 ether), b leaves and returns
    /// and is drawn on the same range as before.
    function test_pool_aMemberThatComesBackKeepsItsPlace() public {
        (, address b, address c) = _oneTwoFive(0x7101);
        _leave(b);
        _nextEpoch();
        assertEq(pool.drawFrom(GPU, 1 ether), c, "b out: c follows a");
        _stake(b, 2 ether);
        _nextEpoch();
        assertEq(pool.drawFrom(GPU, 1 ether), b, "b back at its place");
        assertEq(pool.drawFrom(GPU, 3 ether - 1), b, "last wei of b");
        assertEq(pool.drawFrom(GPU, 3 ether), c, "c after b, as before");
    }

    /// @notice In a full class: a member that left and comes back keeps its
    /// place if nobody took it. One whose place was taken gets another place
    /// that is free, or, when none is, is out of the class (OptedOut; its
    /// stake() does not revert) and may opt in again once a place frees up.
    function test_pool_aMemberWhosePlaceWasTakenInAFullClass() public {
        uint8 cls = 4;
        address[] memory ms = _fill(cls, CAPACITY);
        _nextEpoch();
        (address y, address z, address v) = (ms[7], ms[9], ms[11]); // indexes 8, 10, 12
        _leave(y);
        _leave(z);
        _leave(v);
        _nextEpoch();
        _stake(w, 10 ether);
        vm.prank(w);
        pool.optIn(cls); // the lowest free place: y's
        assertEq(pool.weightOf(cls, y), 0, "y unmapped");

        // v comes back to its own place (still its own).
        _stake(v, 1 ether);
        assertEq(pool.membership(v).classes, uint8(1 << cls), "v still in the class");
        // y comes back: its place is taken, z's is free: y gets it.
        _stake(y, 3 ether);
        assertEq(pool.membership(y).classes, uint8(1 << cls), "y in again, at z's place");
        // z comes back: its place is taken and no other is free: z is out.
        vm.expectEmit(true, true, false, true, address(pool));
        emit WorkerPool.OptedOut(z, cls, pool.epoch() + 1);
        _stake(z, 5 ether);
        assertEq(pool.membership(z).classes, 0, "z out of the class");
        assertEq(_stakeOf(z), 5 ether, "its stake is taken all the same");
        vm.expectRevert(_full());
        vm.prank(z);
        pool.optIn(cls);

        _nextEpoch();
        assertEq(pool.drawFrom(cls, 7 ether), w, "w at y's place");
        // Ranges: ms[0..6] [0, 7), w [7, 17), ms[8] [17, 18), y [18, 21), ms[10] [21, 22), v [22, 23).
        assertEq(pool.drawFrom(cls, 17 ether), ms[8], "ms[8] between w and y");
        assertEq(pool.drawFrom(cls, 18 ether), y, "y at z's place");
        assertEq(pool.drawFrom(cls, 21 ether - 1), y, "with its 3 ether");
        assertEq(pool.drawFrom(cls, 22 ether), v, "v back at its own place");
        assertEq(pool.weightOf(cls, z), 0, "z weighs nothing");
        assertEq(pool.poolWeight(cls), (CAPACITY - 3) * 1 ether + 10 ether + 3 ether + 1 ether, "total");

        // Another member leaves; once its weight is 0 now and next, z may opt in again.
        _leave(ms[0]);
        _nextEpoch();
        vm.prank(z);
        pool.optIn(cls);
        _nextEpoch();
        assertEq(pool.weightOf(cls, z), 5 ether, "z back in");
        assertEq(pool.drawFrom(cls, 0), z, "at ms[0]'s place");
    }

    /// @dev Distinct storage slots of the pool written since vm.record().
    function _poolWrites() internal returns (uint256 n) {
        (, bytes32[] memory ws) = vm.accesses(address(pool));
        for (uint256 i; i < ws.length; ++i) {
            bool seen;
            for (uint256 k; k < i && !seen; ++k) {
                seen = ws[k] == ws[i];
            }
            if (!seen) n++;
        }
    }

    /// @dev Slots of a weight change: the Fenwick nodes from `index` up and the index's own weight.
    function _treeSlots(uint256 index) internal pure returns (uint256 n) {
        for (uint256 i = index; i <= CAPACITY; i += i & (~i + 1)) {
            n++;
        }
        n += 1;
    }

    /// @notice Reusing places costs one slot more than the tree at most:
    /// leaving and coming back write the tree, the membership and one
    /// vacancy word; a newcomer at a reused place writes what a fresh one
    /// does, with the old member's unmapping and the vacancy word in place
    /// of the size counter.
    function test_pool_placeReuseWritesAtMostOneSlotMore() public {
        _stake(w, 5 ether);
        vm.record();
        vm.prank(w);
        pool.optIn(GPU);
        // membership, indexOf, members, size
        assertEq(_poolWrites(), _treeSlots(1) + 4, "fresh join");
        vm.record();
        vm.prank(w);
        pool.optOut(GPU);
        assertEq(_poolWrites(), _treeSlots(1) + 1 + 1, "leave: tree, membership, one vacancy word");
        vm.record();
        vm.prank(w);
        pool.optIn(GPU);
        assertEq(_poolWrites(), _treeSlots(1) + 1 + 1, "come back: tree, membership, one vacancy word");

        uint8 cls = 5;
        address[] memory ms = _fill(cls, CAPACITY);
        _nextEpoch();
        _leave(ms[40]); // index 41
        _nextEpoch();
        address n = address(0x7777);
        _stake(n, 5 ether);
        vm.record();
        vm.prank(n);
        pool.optIn(cls);
        // membership, indexOf (new), members, indexOf (old, deleted), vacancy word
        assertEq(_poolWrites(), _treeSlots(41) + 5, "reuse join: one slot more than a fresh one");
    }
}

/// @notice Place reuse in a full class, over random sequences of leaving,
/// coming back, staking, opting in and out: within an epoch nothing anyone
/// does changes a draw or a weight in force, and a draw only ever returns an
/// address that weighs something in the current epoch.
contract SortitionReuseTest is MarketFixture {
    uint8 internal constant CLS = 6;
    uint256 internal constant CAPACITY = 4096;
    uint256 internal constant SAMPLES = 12;

    address[] internal cast; // 8 members at indexes 1..8, 4 newcomers

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < CAPACITY; ++i) {
            address s = address(uint160(0x100000 + i));
            vm.deal(s, POOL_MIN_STAKE);
            vm.startPrank(s);
            pool.stake{value: POOL_MIN_STAKE}();
            pool.optIn(CLS);
            vm.stopPrank();
            if (i < 8) {
                cast.push(s);
                vm.deal(s, 100 ether);
            }
        }
        for (uint256 i; i < 4; ++i) {
            address n = address(uint160(0x200000 + i));
            cast.push(n);
            vm.deal(n, 100 ether);
            vm.prank(n);
            pool.stake{value: POOL_MIN_STAKE}();
        }
        _nextEpoch();
    }

    struct Epoch {
        address[SAMPLES] drawn;
        uint256[12] weights;
        uint256 total;
    }

    function _read() internal view returns (Epoch memory e) {
        uint256 sum = pool.poolWeight(CLS);
        e.total = sum;
        for (uint256 k; k < SAMPLES; ++k) {
            // Ranges near the cast's places (the first few ether) and elsewhere.
            uint256 r = k < 8 ? k * 1 ether + 0.5 ether : uint256(keccak256(abi.encode(k)));
            e.drawn[k] = pool.drawFrom(CLS, r);
        }
        for (uint256 i; i < cast.length; ++i) {
            e.weights[i] = pool.weightOf(CLS, cast[i]);
        }
    }

    function _check(Epoch memory e, string memory what) internal view {
        Epoch memory now_ = _read();
        assertEq(now_.total, e.total, string.concat(what, ": this epoch's total moved"));
        for (uint256 k; k < SAMPLES; ++k) {
            assertEq(now_.drawn[k], e.drawn[k], string.concat(what, ": a draw of this epoch moved"));
            assertTrue(pool.weightOf(CLS, now_.drawn[k]) > 0, string.concat(what, ": drew an address not in the pool"));
        }
        for (uint256 i; i < cast.length; ++i) {
            assertEq(now_.weights[i], e.weights[i], string.concat(what, ": a weight in force moved"));
        }
    }

    /// forge-config: default.fuzz.runs = 64
    /// forge-config: ci.fuzz.runs = 128
    function testFuzz_reuse_drawsAndWeightsFixedWithinAnEpoch(uint256 seed) public {
        Epoch memory e = _read();
        for (uint256 step; step < 32; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, step)));
            address a = cast[r % cast.length];
            uint256 action = (r >> 8) % 6;
            vm.startPrank(a);
            if (action == 0) {
                uint256 st = pool.workers(a).stake;
                if (st > 0) pool.requestUnbond(st); // leaves
            } else if (action == 1) {
                pool.stake{value: 1 ether + (r >> 16) % 3 ether}();
            } else if (action == 2) {
                try pool.optIn(CLS) {}
                catch (bytes memory err) {
                    bytes4 sel = bytes4(err);
                    bool expected = sel == Sortition.SortitionFull.selector
                        || sel == WorkerPool.WorkerPoolStakeBelowMinimum.selector;
                    assertTrue(expected, "optIn: unexpected revert");
                }
            } else if (action == 3) {
                pool.optOut(CLS);
            }
            vm.stopPrank();
            if (action >= 4) {
                _nextEpoch();
                e = _read();
                for (uint256 k; k < SAMPLES; ++k) {
                    assertTrue(pool.weightOf(CLS, e.drawn[k]) > 0, "drew an address not in the pool");
                }
            } else {
                _check(e, "same epoch");
            }
        }
        // The tree's total is the sum of every member's weight in force.
        _nextEpoch();
        uint256 sum;
        for (uint256 i = 8; i < CAPACITY; ++i) {
            sum += pool.weightOf(CLS, address(uint160(0x100000 + i)));
        }
        for (uint256 i; i < cast.length; ++i) {
            sum += pool.weightOf(CLS, cast[i]);
        }
        assertEq(pool.poolWeight(CLS), sum, "total == sum of members' weights");
    }
}
