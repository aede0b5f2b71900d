// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {IJobMarket} from "../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../contracts/interfaces/IWorkerRegistry.sol";

/// @dev The cheatcodes this suite uses (there is no forge-std here).
interface Vm {
    function warp(uint256 timestamp) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function deal(address account, uint256 balance) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(bool topic1, bool topic2, bool topic3, bool data, address emitter) external;
    function label(address account, string calldata name) external;
}

Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

/// @dev Assertions that revert with a readable message, so a failing test says what differed.
abstract contract Assertions {
    function assertEq(uint256 actual, uint256 expected, string memory what) internal pure {
        if (actual != expected) revert(string.concat(what, ": got ", _dec(actual), ", want ", _dec(expected)));
    }

    function assertEq(bytes32 actual, bytes32 expected, string memory what) internal pure {
        if (actual != expected) {
            revert(string.concat(what, ": got ", _hex(uint256(actual)), ", want ", _hex(uint256(expected))));
        }
    }

    function assertEq(address actual, address expected, string memory what) internal pure {
        if (actual != expected) {
            revert(string.concat(what, ": got ", _hex(uint160(actual)), ", want ", _hex(uint160(expected))));
        }
    }

    function assertEq(bool actual, bool expected, string memory what) internal pure {
        if (actual != expected) revert(string.concat(what, ": got ", actual ? "true" : "false"));
    }

    function assertTrue(bool condition, string memory what) internal pure {
        if (!condition) revert(what);
    }

    function assertLe(uint256 a, uint256 b, string memory what) internal pure {
        if (a > b) revert(string.concat(what, ": ", _dec(a), " > ", _dec(b)));
    }

    /// @dev Maps `x` into [lo, hi] (fuzz inputs); keeps small values unchanged.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        uint256 size = hi - lo;
        if (size == type(uint256).max) return x;
        return lo + (x % (size + 1));
    }

    function _dec(uint256 v) internal pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + (v % 10))), b);
            v /= 10;
        }
        return string(b);
    }

    function _hex(uint256 v) internal pure returns (string memory) {
        bytes16 digits = "0123456789abcdef";
        bytes memory b = new bytes(66);
        b[0] = "0";
        b[1] = "x";
        for (uint256 i; i < 64; ++i) {
            b[65 - i] = digits[v & 0xf];
            v >>= 4;
        }
        return string(b);
    }
}

/// @dev Deploys a market (and its registry), funds a requester and stakes five workers.
abstract contract MarketFixture is Assertions {
    uint256 internal constant UNBONDING_DELAY = 7 days;
    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant WORKER_STAKE = 10 ether;

    // Default job: 2 map + 1 reduce tasks, 3 replicas, quorum 2, 2 rounds.
    uint96 internal constant REWARD = 0.01 ether;
    uint96 internal constant COLLATERAL = 0.05 ether;
    uint96 internal constant MIN_STAKE = 1 ether;
    uint32 internal constant LEASE = 1 hours;
    uint32 internal constant REVEAL = 30 minutes;
    uint32 internal constant TIMEOUT = 1 days;
    bytes32 internal constant SPEC = keccak256("spec");

    JobMarket internal market;
    IWorkerRegistry internal registry;

    address internal requester = address(0xA11CE);
    address internal stranger = address(0x5742);
    address internal w1 = address(0x1001);
    address internal w2 = address(0x1002);
    address internal w3 = address(0x1003);
    address internal w4 = address(0x1004);
    address internal w5 = address(0x1005);

    function setUp() public virtual {
        vm.warp(START);
        market = new JobMarket(UNBONDING_DELAY);
        registry = market.registry();
        vm.deal(requester, 1_000 ether);
        address[5] memory ws = [w1, w2, w3, w4, w5];
        for (uint256 i; i < ws.length; ++i) {
            _stake(ws[i], WORKER_STAKE);
        }
    }

    // ------------------------------------------------------------- params

    function _params() internal pure returns (IJobMarket.JobParams memory p) {
        p = IJobMarket.JobParams({
            specDigest: SPEC,
            mapTasks: 2,
            reduceTasks: 1,
            replication: 3,
            quorum: 2,
            maxRounds: 2,
            rewardPerReplica: REWARD,
            collateral: COLLATERAL,
            minStake: MIN_STAKE,
            leaseDuration: LEASE,
            revealWindow: REVEAL,
            jobTimeout: TIMEOUT
        });
    }

    /// @dev One map task, no reduce, one replica, quorum one.
    function _singleParams() internal pure returns (IJobMarket.JobParams memory p) {
        p = _params();
        p.mapTasks = 1;
        p.reduceTasks = 0;
        p.replication = 1;
        p.quorum = 1;
    }

    function _shape(uint32 m, uint32 r, uint8 rep, uint8 q, uint8 rounds)
        internal
        pure
        returns (IJobMarket.JobParams memory p)
    {
        p = _params();
        p.mapTasks = m;
        p.reduceTasks = r;
        p.replication = rep;
        p.quorum = q;
        p.maxRounds = rounds;
    }

    /// @dev The escrow rule written out here, independently of the contract.
    function _escrow(IJobMarket.JobParams memory p) internal pure returns (uint256) {
        return uint256(p.rewardPerReplica) * p.replication * (uint256(p.mapTasks) + p.reduceTasks);
    }

    // ------------------------------------------------------------ actions

    function _stake(address w, uint256 amount) internal {
        vm.deal(w, w.balance + amount);
        vm.prank(w);
        registry.stake{value: amount}();
    }

    function _post(IJobMarket.JobParams memory p) internal returns (uint256 jobId) {
        uint256 value = _escrow(p);
        vm.prank(requester);
        jobId = market.postJob{value: value}(p);
    }

    function _claim(address w, uint256 jobId, uint256 taskId) internal {
        vm.prank(w);
        market.claim(jobId, _ids(taskId));
    }

    function _commit(address w, uint256 jobId, uint256 taskId, bytes32 digest) internal {
        bytes32 c = _commitment(digest, _salt(w, taskId), w, jobId, taskId);
        vm.prank(w);
        market.commit(jobId, _ids(taskId), _words(c));
    }

    function _reveal(address w, uint256 jobId, uint256 taskId, bytes32 digest) internal {
        vm.prank(w);
        market.reveal(jobId, _ids(taskId), _words(digest), _words(_salt(w, taskId)));
    }

    function _collect(address w, uint256 jobId, uint256 taskId) internal returns (uint256) {
        vm.prank(w);
        return market.collect(jobId, _ids(taskId));
    }

    function _claimCommit(address w, uint256 jobId, uint256 taskId, bytes32 digest) internal {
        _claim(w, jobId, taskId);
        _commit(w, jobId, taskId, digest);
    }

    /// @dev Claims and commits `digests[i]` for `ws[i]`, then reveals them in order.
    function _play(uint256 jobId, uint256 taskId, address[] memory ws, bytes32[] memory digests) internal {
        for (uint256 i; i < ws.length; ++i) {
            _claimCommit(ws[i], jobId, taskId, digests[i]);
        }
        for (uint256 i; i < ws.length; ++i) {
            _reveal(ws[i], jobId, taskId, digests[i]);
        }
    }

    /// @dev Settles a 3-replica task with three honest, agreeing replicas (w1, w2, w3).
    function _settleHonestly(uint256 jobId, uint256 taskId) internal {
        bytes32 d = _honest(jobId, taskId);
        _play(jobId, taskId, _addrs(w1, w2, w3), _words(d, d, d));
    }

    // ------------------------------------------------------------ values

    function _commitment(bytes32 digest, bytes32 salt, address w, uint256 jobId, uint256 taskId)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(digest, salt, w, jobId, taskId));
    }

    function _salt(address w, uint256 taskId) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", w, taskId));
    }

    function _honest(uint256 jobId, uint256 taskId) internal pure returns (bytes32) {
        return keccak256(abi.encode("honest", jobId, taskId));
    }

    function _bad(uint256 jobId, uint256 taskId, uint256 n) internal pure returns (bytes32) {
        return keccak256(abi.encode("bad", jobId, taskId, n));
    }

    function _ids(uint256 a) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](1);
        xs[0] = a;
    }

    function _ids(uint256 a, uint256 b) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](2);
        (xs[0], xs[1]) = (a, b);
    }

    function _words(bytes32 a) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](1);
        xs[0] = a;
    }

    function _words(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](2);
        (xs[0], xs[1]) = (a, b);
    }

    function _words(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](3);
        (xs[0], xs[1], xs[2]) = (a, b, c);
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

    function _job(uint256 jobId) internal view returns (IJobMarket.Job memory) {
        return market.job(jobId);
    }

    function _task(uint256 jobId, uint256 taskId) internal view returns (IJobMarket.Task memory) {
        return market.task(jobId, taskId);
    }

    function _rep(uint256 jobId, uint256 taskId, address w) internal view returns (IJobMarket.Replica memory) {
        return market.replica(jobId, taskId, w);
    }

    function _state(uint256 jobId) internal view returns (uint256) {
        return uint256(market.job(jobId).state);
    }

    function _locked(address w) internal view returns (uint256) {
        return registry.workers(w).locked;
    }

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }
}

/// @dev The default job posted, with helpers for its task 0 (reveal and settle suites).
abstract contract DefaultJobFixture is MarketFixture {
    uint256 internal jobId;
    bytes32 internal d; // the honest digest of task 0

    function setUp() public virtual override {
        super.setUp();
        jobId = _post(_params());
        d = _honest(jobId, 0);
    }

    /// @dev w1, w2, w3 claim and commit `a`, `b`, `c` on task 0 of the default job.
    function _commitThree(bytes32 a, bytes32 b, bytes32 c) internal returns (uint256 revealDeadline) {
        _claimCommit(w1, jobId, 0, a);
        _claimCommit(w2, jobId, 0, b);
        _claimCommit(w3, jobId, 0, c);
        revealDeadline = block.timestamp + REVEAL;
    }
}
