// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {WorkerPool} from "../../contracts/WorkerPool.sol";
import {IRandomness} from "../../contracts/interfaces/IRandomness.sol";
import {Assertions} from "./Base.sol";

/// @dev The cheatcodes the v2 suite uses (there is no forge-std here).
interface MarketVm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256 timestamp) external;
    function roll(uint256 blockNumber) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function deal(address account, uint256 balance) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert() external;
    function expectEmit(bool topic1, bool topic2, bool topic3, bool data, address emitter) external;
    function setBlockhash(uint256 blockNumber, bytes32 blockHash) external;
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
    function revertToStateAndDelete(uint256 snapshotId) external returns (bool success);
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function label(address account, string calldata name) external;
    function record() external;
    function accesses(address target) external returns (bytes32[] memory readSlots, bytes32[] memory writeSlots);
}

MarketVm constant vm = MarketVm(address(uint160(uint256(keccak256("hevm cheat code")))));

/// @notice A randomness source the tests control. For a mined block it answers
/// the value a test set, else a keccak of the block number (like a beacon that
/// always answers); never anything for a block not mined yet.
contract MockRandomness is IRandomness {
    mapping(uint256 => bytes32) internal _values;
    mapping(uint256 => bool) internal _isSet;

    function set(uint256 blockNumber, bytes32 value) external {
        _values[blockNumber] = value;
        _isSet[blockNumber] = true;
    }

    function randomness(uint256 blockNumber) external view returns (bytes32) {
        if (blockNumber >= block.number) return 0;
        if (_isSet[blockNumber]) return _values[blockNumber];
        return keccak256(abi.encode("beacon", blockNumber));
    }
}

/// @dev Extra assertions the v2 suite needs on top of ../Base.sol's.
abstract contract MarketAssertions is Assertions {
    function assertGe(uint256 a, uint256 b, string memory what) internal pure {
        if (a < b) revert(string.concat(what, ": ", _dec(a), " < ", _dec(b)));
    }
}

/// @notice A v2 market (mock randomness by default), eight honest workers staked
/// and opted in to class 0 with their weights in force, a funded requester.
abstract contract MarketFixture is MarketAssertions {
    // Chain-wide floors (Config).
    uint256 internal constant UNBONDING_DELAY = 7 days;
    uint96 internal constant POOL_MIN_STAKE = 1 ether;
    uint96 internal constant MIN_COLLATERAL = 0.1 ether;
    uint32 internal constant MIN_LEASE = 10 minutes;
    uint32 internal constant MIN_REVEAL = 5 minutes;
    uint32 internal constant EPOCH_BLOCKS = 100;
    uint32 internal constant DRAW_DELAY = 5;

    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant START_BLOCK = 10_000;
    uint256 internal constant BLOCK_TIME = 12;
    uint256 internal constant HONEST_STAKE = 10 ether;

    // Default job: one map task, f = 10 %, epsilon = 0.1 % -> margin m = 4
    // (round 0 has 4 seats), up to 4 rounds, escrow for 8 extra seats.
    uint32 internal constant EPS = 1_000;
    uint32 internal constant ADV = 100_000;
    uint8 internal constant M = 4;
    uint32 internal constant EXTRA = 8;
    uint96 internal constant REWARD = 0.01 ether;
    uint96 internal constant COLLATERAL = 0.1 ether;
    uint96 internal constant JOB_MIN_STAKE = 1 ether;
    uint32 internal constant LEASE = 1 hours;
    uint32 internal constant REVEAL = 30 minutes;
    uint32 internal constant TIMEOUT = 1 days;
    bytes32 internal constant SPEC = keccak256("spec-v2");

    uint256 internal constant TASKS_ALL = type(uint256).max;

    JobMarket internal market;
    WorkerPool internal pool;
    MockRandomness internal rng;

    address internal requester = address(0xA11CE);
    address internal stranger = address(0x5742);
    address[] internal honest;
    /// @dev Every address that ever staked in this fixture (seat scans walk it).
    address[] internal actors;
    mapping(address => bool) internal _isActor;

    function setUp() public virtual {
        vm.roll(START_BLOCK);
        vm.warp(START);
        rng = new MockRandomness();
        _deploy(IRandomness(address(rng)), EPOCH_BLOCKS);
        vm.deal(requester, 1_000 ether);
        for (uint256 i; i < 8; ++i) {
            address w = address(uint160(0x1001 + i));
            honest.push(w);
            _enlist(w, HONEST_STAKE);
        }
        _nextEpoch();
    }

    function _deploy(IRandomness source, uint32 epochBlocks) internal {
        market = new JobMarket(_config(epochBlocks), source);
        pool = market.pool();
    }

    function _config(uint32 epochBlocks) internal pure returns (JobMarket.Config memory c) {
        c = JobMarket.Config({
            unbondingDelay: UNBONDING_DELAY,
            minStake: POOL_MIN_STAKE,
            minCollateral: MIN_COLLATERAL,
            minLeaseDuration: MIN_LEASE,
            minRevealWindow: MIN_REVEAL,
            epochBlocks: epochBlocks,
            drawDelay: DRAW_DELAY
        });
    }

    // ------------------------------------------------------------- params

    function _params() internal pure returns (JobMarket.JobParams memory p) {
        p = JobMarket.JobParams({
            specDigest: SPEC,
            mapTasks: 1,
            reduceTasks: 0,
            resourceClass: 0,
            epsilonPpm: EPS,
            adversaryPpm: ADV,
            maxRounds: 4,
            extraSeats: EXTRA,
            rewardPerReplica: REWARD,
            collateral: COLLATERAL,
            minStake: JOB_MIN_STAKE,
            leaseDuration: LEASE,
            revealWindow: REVEAL,
            jobTimeout: TIMEOUT,
            token: address(0)
        });
    }

    /// @dev The escrow rule written out here, independently of the contract:
    /// one reward for each of the m seats of every task's first round, plus
    /// one for each extra (escalation) seat the requester prefunds.
    function _escrow(JobMarket.JobParams memory p, uint256 m) internal pure returns (uint256) {
        return uint256(p.rewardPerReplica) * (m * (uint256(p.mapTasks) + p.reduceTasks) + p.extraSeats);
    }

    // ------------------------------------------------------------ chain

    /// @dev Mines `n` blocks, BLOCK_TIME seconds each.
    function _mine(uint256 n) internal {
        vm.roll(block.number + n);
        vm.warp(block.timestamp + n * BLOCK_TIME);
    }

    /// @dev Moves to the first block of the next epoch (weights set before now take effect).
    function _nextEpoch() internal {
        uint256 next = (block.number / pool.epochBlocks() + 1) * pool.epochBlocks();
        _mine(next - block.number);
    }

    function _skip(uint256 secs) internal {
        vm.warp(block.timestamp + secs);
    }

    /// @dev The block whose randomness the task's current round waits for.
    function _seedBlockOf(uint256 jobId, uint256 taskId) internal view returns (uint256) {
        uint256 own = market.task(jobId, taskId).seedBlock;
        return own != 0 ? own : market.job(jobId).seedBlock;
    }

    /// @dev Mines up to the block after the task's seed block (when it is still ahead).
    function _toSeed(uint256 jobId, uint256 taskId) internal {
        uint256 sb = _seedBlockOf(jobId, taskId);
        if (block.number <= sb) _mine(sb + 1 - block.number);
    }

    // ------------------------------------------------------------ actors

    function _enlist(address w, uint256 amount) internal {
        _stake(w, amount);
        vm.prank(w);
        pool.optIn(0);
    }

    function _stake(address w, uint256 amount) internal {
        if (!_isActor[w]) {
            _isActor[w] = true;
            actors.push(w);
        }
        vm.deal(w, w.balance + amount);
        vm.prank(w);
        pool.stake{value: amount}();
    }

    // ------------------------------------------------------------ actions

    function _post(JobMarket.JobParams memory p, uint256 m) internal returns (uint256 jobId) {
        vm.prank(requester);
        jobId = market.postJob{value: _escrow(p, m)}(p);
    }

    function _postDefault() internal returns (uint256) {
        return _post(_params(), M);
    }

    function _draw(address caller, uint256 jobId, uint256 taskId) internal {
        vm.prank(caller);
        market.draw(jobId, _ids(taskId));
    }

    function _commit(address w, uint256 jobId, uint256 taskId, bytes32 digest) internal {
        vm.prank(w);
        market.commit(
            jobId, _ids(taskId), _short(_result(jobId, taskId, digest)), _short(_seal(w, jobId, taskId, digest))
        );
    }

    function _commitRaw(address w, uint256 jobId, uint256 taskId, bytes32 result, bytes32 seal) internal {
        vm.prank(w);
        market.commit(jobId, _ids(taskId), _short(result), _short(seal));
    }

    /// @dev Opens `w`'s result on the task; returns what the reveal paid it.
    function _reveal(address w, uint256 jobId, uint256 taskId, bytes32 digest) internal returns (uint256) {
        vm.prank(w);
        return market.reveal(jobId, _ids(taskId), _words(digest));
    }

    function _collect(address w, uint256 jobId, uint256 taskId) internal {
        vm.prank(w);
        market.collect(jobId, _ids(taskId));
    }

    function _resolve(uint256 jobId, uint256 taskId, address w) internal returns (JobMarket.Outcome) {
        vm.prank(stranger);
        return market.resolve(jobId, taskId, w);
    }

    /// @dev Each of `ws` commits `digest` on the task.
    function _commitAll(address[] memory ws, uint256 jobId, uint256 taskId, bytes32 digest) internal {
        for (uint256 i; i < ws.length; ++i) {
            _commit(ws[i], jobId, taskId, digest);
        }
    }

    // ------------------------------------------------------------ seats

    /// @dev Holders of a seat (assigned or committed) in the task's current round.
    function _seats(uint256 jobId, uint256 taskId) internal view returns (address[] memory out) {
        uint8 round = market.task(jobId, taskId).round;
        address[] memory buf = new address[](actors.length);
        uint256 n;
        for (uint256 i; i < actors.length; ++i) {
            JobMarket.Replica memory rep = market.replica(jobId, taskId, actors[i]);
            if (
                rep.round == round
                    && (rep.state == JobMarket.ReplicaState.Assigned
                        || rep.state == JobMarket.ReplicaState.Committed)
            ) buf[n++] = actors[i];
        }
        out = new address[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = buf[i];
        }
    }

    function _setRandom(uint256 blockNumber, bytes32 value) internal virtual {
        rng.set(blockNumber, value);
    }

    /// @dev Chooses the randomness of the task's seed block so that its round
    /// draws exactly `wanted`, then draws. The seats are still whatever the
    /// contract's draw picks: the test only chooses which of many possible
    /// worlds (beacon values) it plays in. Candidates are found with the
    /// rules written out here (_predictFast) and confirmed by a real draw under
    /// a snapshot; if the rules here ever disagree with the contract's, it
    /// falls back to trying real draws.
    function _seatWith(uint256 jobId, uint256 taskId, address[] memory wanted) internal returns (bytes32) {
        address[][] memory ws = new address[][](1);
        ws[0] = wanted;
        return _seatWithMany(jobId, _ids(taskId), ws);
    }

    /// @dev Like _seatWith for several tasks sharing one seed block (drawn in one call).
    function _seatWithMany(uint256 jobId, uint256[] memory taskIds, address[][] memory wanted)
        internal
        returns (bytes32 value)
    {
        _toSeed(jobId, taskIds[0]);
        uint256 sb = _seedBlockOf(jobId, taskIds[0]);
        Search[] memory ss = new Search[](taskIds.length);
        for (uint256 i; i < taskIds.length; ++i) {
            ss[i] = _search(jobId, taskIds[i], wanted[i]);
        }
        bytes32 base = keccak256(abi.encode("search", jobId, taskIds, sb));
        for (uint256 k; k < 400_500; ++k) {
            value = _hash2(base, bytes32(k));
            // Past 400,000 predictions, try real draws only.
            if (k < 400_000 && !_predictAll(ss, value)) continue;
            if (_tryWorld(jobId, taskIds, sb, value, wanted)) return value;
        }
        revert("no randomness draws the wanted seats");
    }

    /// @dev What a search needs about one task, read once (no allocation per try).
    struct Search {
        uint256 jobId;
        uint256 taskId;
        uint256 round;
        uint256 open;
        uint256 nonce;
        uint8 cls;
        uint8[] kind; // per actors[i]: SEAT, SKIP or WAIT by the rules written out here
        bool[] wanted; // per actors[i]
        address[] buf;
    }

    function _search(uint256 jobId, uint256 taskId, address[] memory wanted) internal view returns (Search memory s) {
        s.jobId = jobId;
        s.taskId = taskId;
        s.round = market.task(jobId, taskId).round;
        s.open = _openSeats(jobId, taskId);
        s.nonce = market.task(jobId, taskId).drawNonce;
        s.cls = market.job(jobId).resourceClass;
        s.kind = new uint8[](actors.length);
        s.wanted = new bool[](actors.length);
        for (uint256 i; i < actors.length; ++i) {
            s.kind[i] = _seating(jobId, taskId, actors[i]);
            s.wanted[i] = _contains(wanted, actors[i]);
        }
        s.buf = new address[](s.open);
        if (wanted.length != s.open) s.open = type(uint256).max; // can never match
    }

    function _predictAll(Search[] memory ss, bytes32 value) internal view returns (bool) {
        for (uint256 i; i < ss.length; ++i) {
            if (!_predictFast(ss[i], value)) return false;
        }
        return true;
    }

    /// @dev _predict(...) == wanted as sets, stopping at the first seat outside `wanted`.
    function _predictFast(Search memory s, bytes32 random) internal view returns (bool) {
        if (s.open == type(uint256).max) return false;
        bytes32 seed = _hash3(_hash2(random, bytes32(s.jobId)), bytes32(s.taskId), bytes32(s.round));
        uint256 n;
        for (uint256 tries; tries < s.open * 4 && n < s.open; ++tries) {
            address w = pool.drawFrom(s.cls, uint256(_hash2(seed, bytes32(s.nonce + tries))));
            if (w == address(0)) return false;
            uint256 a = _actorIndex(w);
            if (s.kind[a] == SKIP) continue;
            bool dup;
            for (uint256 i; i < n; ++i) {
                if (s.buf[i] == w) dup = true;
            }
            if (dup) continue;
            if (s.kind[a] == WAIT) return false; // the draw stops here: the seats stay open
            if (!s.wanted[a]) return false;
            s.buf[n++] = w;
        }
        return n == s.open;
    }

    function _actorIndex(address w) internal view returns (uint256 i) {
        while (actors[i] != w) ++i;
    }

    function _hash2(bytes32 a, bytes32 b) internal pure returns (bytes32 r) {
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, b)
            r := keccak256(0x00, 0x40)
        }
    }

    function _hash3(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32 r) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, a)
            mstore(add(p, 0x20), b)
            mstore(add(p, 0x40), c)
            r := keccak256(p, 0x60)
        }
    }

    /// @dev Draws with `value` as the seed block's randomness; keeps the world
    /// if the seats are `wanted`, else reverts to before.
    function _tryWorld(uint256 jobId, uint256[] memory taskIds, uint256 sb, bytes32 value, address[][] memory wanted)
        internal
        returns (bool ok)
    {
        uint256 snap = vm.snapshotState();
        _setRandom(sb, value);
        vm.prank(stranger);
        try market.draw(jobId, taskIds) {
            ok = true;
            for (uint256 i; i < taskIds.length && ok; ++i) {
                ok = _sameSet(_seats(jobId, taskIds[i]), wanted[i]);
            }
        } catch {}
        if (!ok) vm.revertToStateAndDelete(snap);
    }

    function _sameSet(address[] memory a, address[] memory b) internal pure returns (bool) {
        if (a.length != b.length) return false;
        for (uint256 i; i < a.length; ++i) {
            if (!_contains(b, a[i])) return false;
        }
        return true;
    }

    function _contains(address[] memory xs, address x) internal pure returns (bool) {
        for (uint256 i; i < xs.length; ++i) {
            if (xs[i] == x) return true;
        }
        return false;
    }

    /// @dev Candidate `k` of the task's current round for randomness `random`:
    /// drawFrom(class, keccak(keccak(keccak(random, jobId), taskId, round), k)).
    function _candidate(uint256 jobId, uint256 taskId, bytes32 random, uint256 k) internal view returns (address) {
        uint8 round = market.task(jobId, taskId).round;
        bytes32 seed = keccak256(abi.encode(keccak256(abi.encode(random, jobId)), taskId, round));
        return pool.drawFrom(market.job(jobId).resourceClass, uint256(keccak256(abi.encode(seed, k))));
    }

    /// @dev What a draw does with a candidate (by the rules written out here).
    uint8 internal constant SEAT = 0;
    uint8 internal constant SKIP = 1; // for good: the next candidate is tried
    uint8 internal constant WAIT = 2; // the draw stops: the seat waits for this candidate

    /// @dev What a draw of the task would do with candidate `w` now: skip for
    /// good the requester, anyone with a replica on the task, and anyone whose
    /// weight in this epoch (fixed at its start) is below the job's minimum
    /// stake; wait for anyone whose current stake is below the minimum or
    /// whose free stake is below the collateral; else seat it.
    function _seating(uint256 jobId, uint256 taskId, address w) internal view returns (uint8) {
        JobMarket.Job memory j = market.job(jobId);
        if (w == address(0) || w == j.requester) return SKIP;
        if (market.replica(jobId, taskId, w).state != JobMarket.ReplicaState.None) return SKIP;
        if (pool.weightOf(j.resourceClass, w) < j.minStake) return SKIP;
        WorkerPool.Worker memory info = pool.workers(w);
        if (info.stake < j.minStake || info.stake - info.locked < j.collateral) return WAIT;
        return SEAT;
    }

    function _openSeats(uint256 jobId, uint256 taskId) internal view returns (uint256) {
        JobMarket.Task memory t = market.task(jobId, taskId);
        uint256 seats = t.seats == 0 ? market.job(jobId).margin : t.seats;
        return seats - t.seated;
    }

    /// @dev The seats one draw call of the task's current round would fill
    /// with randomness `random`, in the order it fills them, written out here
    /// from the rules (candidate k in order; skip the requester, anyone with a
    /// replica on the task, anyone whose weight this epoch is below the job's
    /// minimum stake; stop at a candidate whose stake is below the minimum or
    /// whose free stake is below the collateral; at most DRAW_TRIES_PER_SEAT
    /// = 4 candidates per open seat), independently of the market's own draw code.
    function _predict(uint256 jobId, uint256 taskId, bytes32 random) internal view returns (address[] memory seats) {
        uint256 open = _openSeats(jobId, taskId);
        uint256 nonce = market.task(jobId, taskId).drawNonce;
        address[] memory buf = new address[](open);
        uint256 n;
        for (uint256 tries; tries < open * 4 && n < open; ++tries) {
            address w = _candidate(jobId, taskId, random, nonce + tries);
            if (w == address(0)) break;
            if (_contains(buf, w)) continue;
            uint8 kind = _seating(jobId, taskId, w);
            if (kind == WAIT) break;
            if (kind == SKIP) continue;
            buf[n++] = w;
        }
        seats = new address[](n);
        for (uint256 i; i < n; ++i) {
            seats[i] = buf[i];
        }
    }

    // ------------------------------------------------------------ values

    /// @dev result = keccak256(abi.encode(jobId, taskId, digest)), written out here.
    function _result(uint256 jobId, uint256 taskId, bytes32 digest) internal pure returns (bytes32) {
        return keccak256(abi.encode(jobId, taskId, digest));
    }

    /// @dev seal = keccak256(abi.encode(worker, jobId, taskId, digest)), written out here.
    function _seal(address w, uint256 jobId, uint256 taskId, bytes32 digest) internal pure returns (bytes32) {
        return keccak256(abi.encode(w, jobId, taskId, digest));
    }

    function _truth(uint256 jobId, uint256 taskId) internal pure returns (bytes32) {
        return keccak256(abi.encode("truth", jobId, taskId));
    }

    function _garbage(uint256 jobId, uint256 taskId, uint256 n) internal pure returns (bytes32) {
        return keccak256(abi.encode("garbage", jobId, taskId, n));
    }

    function _ids(uint256 a) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](1);
        xs[0] = a;
    }

    function _ids(uint256 a, uint256 b) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](2);
        (xs[0], xs[1]) = (a, b);
    }

    function _range(uint256 lo, uint256 hi) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](hi - lo);
        for (uint256 i; i < xs.length; ++i) {
            xs[i] = lo + i;
        }
    }

    /// @dev A commit's one-element results or seals: the hash's first 12 bytes.
    function _short(bytes32 a) internal pure returns (bytes12[] memory xs) {
        xs = new bytes12[](1);
        xs[0] = bytes12(a);
    }

    function _short(bytes32 a, bytes32 b) internal pure returns (bytes12[] memory xs) {
        xs = new bytes12[](2);
        (xs[0], xs[1]) = (bytes12(a), bytes12(b));
    }

    function _words(bytes32 a) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](1);
        xs[0] = a;
    }

    function _words(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](2);
        (xs[0], xs[1]) = (a, b);
    }

    function _addrs(address a) internal pure returns (address[] memory xs) {
        xs = new address[](1);
        xs[0] = a;
    }

    function _addrs(address a, address b) internal pure returns (address[] memory xs) {
        xs = new address[](2);
        (xs[0], xs[1]) = (a, b);
    }

    function _addrs(address a, address b, address c) internal pure returns (address[] memory xs) {
        xs = new address[](3);
        (xs[0], xs[1], xs[2]) = (a, b, c);
    }

    // ------------------------------------------------------------ reads

    function _job(uint256 jobId) internal view returns (JobMarket.Job memory) {
        return market.job(jobId);
    }

    function _task(uint256 jobId, uint256 taskId) internal view returns (JobMarket.Task memory) {
        return market.task(jobId, taskId);
    }

    function _rep(uint256 jobId, uint256 taskId, address w) internal view returns (JobMarket.Replica memory) {
        return market.replica(jobId, taskId, w);
    }

    function _stakeOf(address w) internal view returns (uint256) {
        return pool.workers(w).stake;
    }

    function _lockedOf(address w) internal view returns (uint256) {
        return pool.workers(w).locked;
    }

    /// @dev Counts the recorded logs of `emitter` whose first topic is `sig`.
    function _count(MarketVm.Log[] memory logs, address emitter, bytes32 sig) internal pure returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == emitter && logs[i].topics.length != 0 && logs[i].topics[0] == sig) n++;
        }
    }

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    function _wrongState(uint256 jobId, uint256 taskId, address w, JobMarket.ReplicaState s)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(JobMarket.JobMarketWrongReplicaState.selector, jobId, taskId, w, s);
    }
}
