// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../../contracts/JobMarket.sol";
import {WorkerPool} from "../../../contracts/WorkerPool.sol";
import {MarketVm, MockRandomness, vm} from "../MarketBase.sol";
import {MockERC20} from "../mocks/Tokens.sol";

/// @notice Drives random sequences against one v2 market: two requesters post
/// small jobs; anyone draws; five honest workers always commit the true
/// digest as soon as they are seated and open it as soon as it wins; four
/// dishonest workers collude on one garbage digest, commit the truth and
/// stay silent, copy a co-replica's result, decline, or never show up;
/// time and blocks move; anyone resolves, pokes, expires, refunds,
/// withdraws; workers stake and unbond. Every call is checked against
/// amounts the handler computes itself, and what it sees is kept in ghost
/// variables for the invariants.
contract MarketHandler {
    uint256 internal constant MAX_JOBS = 8;
    uint256 internal constant INITIAL_STAKE = 20 ether;
    uint96 internal constant MIN_COLLATERAL = 0.01 ether;
    uint32 internal constant MIN_LEASE = 10 minutes;
    uint32 internal constant MIN_REVEAL = 5 minutes;

    JobMarket public immutable market;
    WorkerPool public immutable pool;
    MockRandomness public immutable rng;
    /// @notice About half the jobs pay in this 6-decimal token instead of ETH.
    MockERC20 public immutable usd;

    address[2] internal requesters = [address(0xA1), address(0xA2)];
    address[9] internal workers = [
        address(0xB1),
        address(0xB2),
        address(0xB3),
        address(0xB4),
        address(0xB5), // honest
        address(0xC1),
        address(0xC2),
        address(0xC3),
        address(0xC4) // dishonest
    ];
    uint256 internal constant HONEST = 5;

    uint256[] public jobIds;
    mapping(uint256 => JobMarket.JobParams) internal _params;

    /// @dev The handler's clocks: warps and rolls do not carry over between calls.
    uint256 public time;
    uint256 public blockNo;

    // ------------------------------------------------------------ ghosts
    uint256 public ghostEscrowIn;
    uint256 public ghostMarketOut;
    uint256 public ghostTokenIn;
    uint256 public ghostTokenOut;
    uint256 public ghostStakedIn;
    uint256 public ghostPoolOut;
    uint256 public ghostBurned;
    mapping(uint256 => uint256) public ghostPaid;

    struct Commit {
        address worker;
        bytes12 result;
        uint8 tally;
    }

    mapping(bytes32 => Commit[]) internal _commits; // (job, task)
    mapping(bytes32 => bytes32) internal _digestOf; // (job, task, worker) => digest it committed (0: unknown)
    mapping(bytes32 => bool) public settled; // (job, task)
    mapping(bytes32 => bytes32) public settledDigest; // (job, task)

    /// @dev Each counts a property that failed at the moment it was observed.
    uint256 public honestSlashed; // an honest, timely worker slashed on a task that settled on the truth
    uint256 public settlementViolations; // a win without a lead of m, or on a digest that does not open it
    uint256 public outcomeViolations; // an outcome that moved wrong amounts
    uint256 public secondSeats; // a worker drawn twice for one task (paid seats are deleted: nothing else stops it)
    mapping(bytes32 => bool) internal _everSeated; // (job, task, worker) drawn at least once
    uint256 public refundViolations;
    uint256 public withdrawViolations;
    uint256 public unexpectedReverts; // a call the handler's own pre-checks said must succeed
    uint256 public lateDeclinesAccepted; // a decline after the first quarter of the lease went through

    // ---------------------------------------------------- coverage counters
    uint256 public posted;
    uint256 public seatsDrawn;
    uint256 public commits;
    uint256 public escalations;
    uint256 public settlements;
    uint256 public wrongSettlements;
    uint256 public paidCount;
    uint256 public slashedCount;
    uint256 public releasedCount;
    uint256 public declines;
    uint256 public unavailableReports;
    uint256 public lateDeclinesRefused;
    uint256 public voidRounds;
    uint256 public failedJobs;
    uint256 public refunds;

    constructor(JobMarket market_, MockRandomness rng_) {
        market = market_;
        pool = market_.pool();
        rng = rng_;
        usd = new MockERC20();
        time = block.timestamp;
        blockNo = block.number;
        for (uint256 i; i < workers.length; ++i) {
            vm.deal(workers[i], INITIAL_STAKE);
            vm.prank(workers[i]);
            pool.stake{value: INITIAL_STAKE}();
            vm.prank(workers[i]);
            pool.optIn(0);
            ghostStakedIn += INITIAL_STAKE;
        }
        blockNo = (blockNo / pool.epochBlocks() + 1) * pool.epochBlocks();
        time += 1 hours;
    }

    /// @dev Every action ends with the honest workers' duties, done at the
    /// time the action leaves the clock at; the next action starts there.
    modifier synced() {
        vm.roll(blockNo);
        vm.warp(time);
        _;
        vm.roll(blockNo);
        vm.warp(time);
        _duties();
    }

    // ============================================================ views

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function params(uint256 id) external view returns (JobMarket.JobParams memory) {
        return _params[id];
    }

    function workerList() external view returns (address[] memory ws) {
        ws = new address[](workers.length);
        for (uint256 i; i < workers.length; ++i) {
            ws[i] = workers[i];
        }
    }

    function actors() external view returns (address[] memory xs) {
        xs = new address[](workers.length + requesters.length);
        for (uint256 i; i < workers.length; ++i) {
            xs[i] = workers[i];
        }
        for (uint256 i; i < requesters.length; ++i) {
            xs[workers.length + i] = requesters[i];
        }
    }

    function isHonest(address w) public view returns (bool) {
        for (uint256 i; i < HONEST; ++i) {
            if (workers[i] == w) return true;
        }
        return false;
    }

    function truth(uint256 id, uint256 taskId) public pure returns (bytes32) {
        return keccak256(abi.encode("truth", id, taskId));
    }

    function cartel(uint256 id, uint256 taskId) public pure returns (bytes32) {
        return keccak256(abi.encode("cartel", id, taskId));
    }

    // ============================================================ actions

    function postJob(uint256 seed) external synced {
        if (jobIds.length >= MAX_JOBS) return;
        seed = uint256(keccak256(abi.encode(seed, jobIds.length))); // fuzzers favour 0 and max
        JobMarket.JobParams memory p;
        p.specDigest = keccak256(abi.encode(seed));
        p.mapTasks = uint32(1 + seed % 2);
        p.reduceTasks = uint32((seed >> 8) % 2);
        uint256 kind = (seed >> 16) % 4; // margins 1, 2, 3, 4
        (p.epsilonPpm, p.adversaryPpm) =
            kind == 0 ? (1_000, 0) : kind == 1 ? (20_000, 100_000) : kind == 2 ? (10_000, 100_000) : (1_000, 100_000);
        p.maxRounds = uint8(1 + (seed >> 24) % 4);
        p.extraSeats = p.maxRounds == 1 ? 0 : uint32((seed >> 32) % 9);
        p.rewardPerReplica = uint96(1 + (seed >> 40) % 1e15); // odd wei amounts catch rounding
        uint256 floor = 2 * uint256(p.rewardPerReplica);
        if (floor < MIN_COLLATERAL) floor = MIN_COLLATERAL;
        p.collateral = uint96(floor + (seed >> 96) % 1e16);
        p.minStake = 1 ether;
        p.leaseDuration = MIN_LEASE + uint32((seed >> 160) % 1 hours);
        p.revealWindow = MIN_REVEAL + uint32((seed >> 176) % 30 minutes);
        p.jobTimeout = uint32(2 hours + (seed >> 192) % 6 hours);
        uint256 m = market.marginFor(p.epsilonPpm, p.adversaryPpm);
        uint256 escrow = uint256(p.rewardPerReplica) * (m * (uint256(p.mapTasks) + p.reduceTasks) + p.extraSeats);
        address requester = requesters[(seed >> 224) % requesters.length];
        bool inToken = (seed >> 232) % 2 == 1;
        uint256 value = escrow;
        if (inToken) {
            p.token = address(usd);
            usd.mint(requester, escrow);
            vm.prank(requester);
            usd.approve(address(market), escrow);
            value = 0;
        } else {
            vm.deal(requester, requester.balance + escrow);
        }
        vm.prank(requester);
        try market.postJob{value: value}(p) returns (uint256 id) {
            jobIds.push(id);
            _params[id] = p;
            if (inToken) ghostTokenIn += escrow;
            else ghostEscrowIn += escrow;
            posted++;
        } catch {
            unexpectedReverts++;
        }
    }

    /// @dev Draws every in-phase task of one job, as anyone, once the seed
    /// blocks it waits for are mined (mining them if need be).
    function draw(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickLive(jobSeed);
        if (!ok) return;
        _drawJob(id);
    }

    /// @dev Pushes every live job one step in one call: draw, every dishonest
    /// seat acts (by `seed`), some dishonest winners open, honest duties
    /// (modifier). Reaches escalations, settlements and reduce phases far
    /// more often than single steps.
    function drive(uint256 seed) external synced {
        for (uint256 i; i < jobIds.length; ++i) {
            uint256 id = jobIds[i];
            if (!_live(id)) continue;
            _drawJob(id);
            _duties();
            _driveDishonest(id, uint256(keccak256(abi.encode(seed, id))));
        }
    }

    function _driveDishonest(uint256 id, uint256 seed) internal {
        if (!_live(id)) return;
        (uint256 lo, uint256 hi) = _phase(id);
        for (uint256 t = lo; t < hi; ++t) {
            for (uint256 k = HONEST; k < workers.length; ++k) {
                _dishonest(id, t, workers[k], uint256(keccak256(abi.encode(seed, t, k))) % 8);
            }
        }
        _duties();
        for (uint256 t = lo; t < hi; ++t) {
            for (uint256 k = HONEST; k < workers.length; ++k) {
                if ((seed >> k) & 1 == 0) continue; // only some open
                bytes32 d = _digestOf[_key(id, t, workers[k])];
                if (d != 0) _tryReveal(id, t, workers[k], d);
            }
        }
    }

    function _drawJob(uint256 id) internal {
        (uint256 lo, uint256 hi) = _phase(id);
        for (uint256 t = lo; t < hi; ++t) {
            JobMarket.Task memory before = market.task(id, t);
            uint256 sb = before.seedBlock != 0 ? before.seedBlock : market.job(id).seedBlock;
            if (sb >= blockNo && sb < blockNo + 50) {
                time += (sb + 1 - blockNo) * 12; // mine up to the seed
                blockNo = sb + 1;
                vm.roll(blockNo);
                vm.warp(time);
            }
            vm.recordLogs();
            try market.draw(id, _one(t)) {} catch {}
            _noSecondSeats(vm.getRecordedLogs());
            if (!_live(id)) return;
            JobMarket.Task memory after_ = market.task(id, t);
            if (after_.round != before.round) escalations++;
            if (after_.tally != before.tally) voidRounds++;
            if (after_.seated > before.seated && after_.round == before.round) {
                seatsDrawn += after_.seated - before.seated;
            }
        }
    }

    /// @dev Counts a TaskAssigned that seats a worker on a task it sat on before, in any round.
    function _noSecondSeats(MarketVm.Log[] memory logs) internal {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(market) || logs[i].topics[0] != JobMarket.TaskAssigned.selector) continue;
            bytes32 key = keccak256(abi.encode(logs[i].topics[1], logs[i].topics[2], logs[i].topics[3]));
            if (_everSeated[key]) secondSeats++;
            _everSeated[key] = true;
        }
    }

    /// @dev Moves blocks and time: mostly a few blocks and minutes, now and
    /// then hours (leases, windows and jobs run out). Honest workers did
    /// their duties at the end of the previous action, so they are on time.
    function advance(uint256 blocks, uint256 secs) external synced {
        blockNo += bound(blocks, 0, 6);
        time += secs % 5 == 0 ? bound(secs, 1, 3 hours) : bound(secs, 1, 15 minutes);
    }

    /// @dev One dishonest worker acts on one of its seats.
    function dishonestAct(uint256 jobSeed, uint256 taskSeed, uint256 workerSeed, uint256 mode) external synced {
        (uint256 id, bool ok) = _pickLive(jobSeed);
        if (!ok) return;
        uint256 taskId = taskSeed % _taskCount(id);
        address w = workers[HONEST + workerSeed % (workers.length - HONEST)];
        _dishonest(id, taskId, w, mode % 8);
    }

    /// @dev Modes: 0-3 the cartel's garbage, 4 the truth (opened or not
    /// later), 5 copy the leader's result, 6 decline (refused after the first
    /// quarter of the lease: then a no-show), 7 no-show.
    function _dishonest(uint256 id, uint256 taskId, address w, uint256 mode) internal {
        JobMarket.Replica memory rep = market.replica(id, taskId, w);
        if (rep.state != JobMarket.ReplicaState.Assigned || rep.round != market.task(id, taskId).round) return;
        if (time > rep.deadline || !_live(id)) return;
        if (mode <= 3) {
            _commit(id, taskId, w, cartel(id, taskId));
        } else if (mode == 4) {
            _commit(id, taskId, w, truth(id, taskId));
        } else if (mode == 5) {
            _copy(id, taskId, w);
        } else if (mode == 6) {
            // A seat may be declined only in the first quarter of its lease;
            // later the worker is refused and stays a no-show.
            // Half the time it says the input could not be fetched (a lie: the
            // handler's inputs are always there), which frees the seat the same
            // way and, from enough drawn reporters, fails the job.
            uint256 lease = market.job(id).leaseDuration;
            uint256 until = rep.deadline - lease + lease / 4;
            bool report = uint256(keccak256(abi.encode(id, taskId, w))) & 1 == 1;
            bytes memory call = report
                ? abi.encodeCall(market.reportUnavailable, (id, _one(taskId)))
                : abi.encodeCall(market.decline, (id, _one(taskId)));
            vm.prank(w);
            (bool done, bytes memory err) = address(market).call(call);
            if (done) {
                declines++;
                if (report) unavailableReports++;
                if (time > until) lateDeclinesAccepted++;
            } else {
                if (time <= until) unexpectedReverts++;
                else if (bytes4(err) != JobMarket.JobMarketDeclineClosed.selector) unexpectedReverts++;
                else lateDeclinesRefused++;
            }
        }
    }

    /// @dev One dishonest worker opens what it committed, if it can.
    function dishonestReveal(uint256 jobSeed, uint256 taskSeed, uint256 workerSeed) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        uint256 taskId = taskSeed % _taskCount(id);
        address w = workers[HONEST + workerSeed % (workers.length - HONEST)];
        bytes32 d = _digestOf[_key(id, taskId, w)];
        if (d == 0) d = truth(id, taskId); // a copier guesses
        _tryReveal(id, taskId, w, d);
    }

    /// @dev Resolves every replica of one job it can, as the worker (collect) or anyone (resolve).
    function resolveAll(uint256 jobSeed, bool viaCollect) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        for (uint256 t; t < _taskCount(id); ++t) {
            for (uint256 k; k < workers.length; ++k) {
                JobMarket.ReplicaState s = market.replica(id, t, workers[k]).state;
                if (s == JobMarket.ReplicaState.Assigned || s == JobMarket.ReplicaState.Committed) {
                    _tryResolve(id, t, workers[k], viaCollect);
                }
            }
        }
    }

    function poke(uint256 jobSeed, uint256 taskSeed) external synced {
        (uint256 id, bool ok) = _pickLive(jobSeed);
        if (!ok) return;
        (uint256 lo, uint256 hi) = _phase(id);
        uint256 t = lo + taskSeed % (hi - lo);
        uint8 tallyBefore = market.task(id, t).tally;
        try market.poke(id, t) {
            if (market.task(id, t).tally != tallyBefore) voidRounds++;
        } catch {}
    }

    function expireJob(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        try market.expireJob(id) {} catch {}
    }

    function cancelJob(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickLive(jobSeed);
        if (!ok) return;
        JobMarket.Job memory j = market.job(id);
        uint256 before = _creditOf(j, j.requester);
        vm.prank(j.requester);
        try market.cancelJob(id) {
            if (_creditOf(j, j.requester) - before != j.escrow) refundViolations++;
        } catch {}
    }

    function refund(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        JobMarket.Job memory j = market.job(id);
        uint256 expected = uint256(j.escrow) - j.paid - j.refunded;
        uint256 before = _creditOf(j, j.requester);
        try market.refund(id) returns (uint256 amount) {
            if (amount != expected || amount == 0) refundViolations++;
            if (_creditOf(j, j.requester) - before != amount) refundViolations++;
            refunds++;
        } catch {}
    }

    function withdraw(uint256 actorSeed) external synced {
        uint256 n = workers.length + requesters.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = (actorSeed % n + k) % n;
            address a = i < workers.length ? workers[i] : requesters[i - workers.length];
            if (actorSeed % 2 == 1 && _withdrawToken(a)) return;
            uint256 credit = market.credits(a);
            if (credit == 0) continue;
            uint256 before = a.balance;
            vm.prank(a);
            try market.withdraw() {}
            catch {
                unexpectedReverts++;
                return;
            }
            if (a.balance - before != credit || market.credits(a) != 0) withdrawViolations++;
            ghostMarketOut += a.balance - before;
            return;
        }
    }

    /// @dev Stake more, request an unbond, or withdraw an unbonded amount.
    function bond(uint256 workerSeed, uint256 amount, uint8 action) external synced {
        address w = workers[workerSeed % workers.length];
        if (action % 3 == 0) {
            amount = bound(amount, 1, 5 ether);
            vm.deal(w, w.balance + amount);
            vm.prank(w);
            try pool.stake{value: amount}() {
                ghostStakedIn += amount;
            } catch {
                unexpectedReverts++;
            }
        } else if (action % 3 == 1) {
            WorkerPool.Worker memory info = pool.workers(w);
            uint256 free = info.stake - info.locked;
            uint256 floor = pool.membership(w).floor;
            uint256 most = info.locked == 0 ? free : (info.stake > floor ? info.stake - floor : 0);
            if (most > free) most = free;
            if (most == 0) return;
            amount = bound(amount, 1, most / 4 + 1);
            if (amount > most) amount = most;
            vm.prank(w);
            try pool.requestUnbond(amount) {}
            catch {
                unexpectedReverts++;
            }
        } else {
            WorkerPool.Unbonding memory u = pool.unbonding(w);
            if (u.amount == 0 || time < u.readyAt) return;
            uint256 before = w.balance;
            vm.prank(w);
            try pool.withdrawUnbonded() {}
            catch {
                unexpectedReverts++;
                return;
            }
            if (w.balance - before != u.amount) withdrawViolations++;
            ghostPoolOut += u.amount;
        }
    }

    // ========================================================== internals

    /// @dev Honest workers: commit the truth on every seat they hold, open
    /// every winner they committed, at once.
    function _duties() internal {
        for (uint256 j; j < jobIds.length; ++j) {
            uint256 id = jobIds[j];
            // An ended job whose last window closed leaves an honest worker nothing to do.
            if (!_live(id) && time > market.job(id).horizon) continue;
            uint256 n = _taskCount(id);
            for (uint256 t; t < n; ++t) {
                // Again until nobody acts: an honest commit that wins the task
                // is opened at once by every honest committer of the winner,
                // including those the pass went by before the win.
                for (uint256 pass; pass < 4; ++pass) {
                    bool acted;
                    for (uint256 k; k < HONEST; ++k) {
                        if (_honestDuty(id, t, workers[k])) acted = true;
                    }
                    if (!acted) break;
                }
            }
        }
    }

    /// @dev Returns whether the worker committed or opened something.
    function _honestDuty(uint256 id, uint256 taskId, address w) internal returns (bool) {
        JobMarket.Replica memory rep = market.replica(id, taskId, w);
        if (rep.state == JobMarket.ReplicaState.Assigned) {
            JobMarket.Task memory t = market.task(id, taskId);
            if (rep.round != t.round || time > rep.deadline || !_live(id)) return false;
            _commit(id, taskId, w, truth(id, taskId));
            return true;
        } else if (rep.state == JobMarket.ReplicaState.Committed) {
            JobMarket.Task memory t = market.task(id, taskId);
            if (t.winner == 0 || rep.result != t.winner || time > t.revealDeadline) return false;
            if (!t.settled && !_live(id)) return false;
            _tryReveal(id, taskId, w, truth(id, taskId));
            // Opened in time: paid, and the seat is gone.
            if (market.replica(id, taskId, w).state != JobMarket.ReplicaState.None) unexpectedReverts++;
            return true;
        }
        return false;
    }

    function _commit(uint256 id, uint256 taskId, address w, bytes32 digest) internal {
        bytes32 result = keccak256(abi.encode(id, taskId, digest));
        bytes32 seal = keccak256(abi.encode(w, id, taskId, digest));
        _commitRaw(id, taskId, w, result, seal, digest);
    }

    /// @dev A lazy seat copies the current leader's result and makes up a seal.
    function _copy(uint256 id, uint256 taskId, address w) internal {
        bytes12 lead = market.task(id, taskId).lead;
        if (lead == 0) return;
        _commitRaw(id, taskId, w, bytes32(lead), keccak256(abi.encode("junk", w)), 0);
    }

    function _commitRaw(uint256 id, uint256 taskId, address w, bytes32 result, bytes32 seal, bytes32 digest) internal {
        JobMarket.Task memory before = market.task(id, taskId);
        bool wasLive = _live(id);
        vm.prank(w);
        try market.commit(id, _one(taskId), _short(result), _short(seal)) {
            commits++;
            _commits[_pair(id, taskId)].push(Commit(w, bytes12(result), before.tally));
            _digestOf[_key(id, taskId, w)] = digest;
            JobMarket.Task memory after_ = market.task(id, taskId);
            if (after_.round != before.round) escalations++;
            if (!_live(id) && wasLive) failedJobs++;
        } catch {
            unexpectedReverts++;
        }
    }

    function _tryReveal(uint256 id, uint256 taskId, address w, bytes32 digest) internal {
        JobMarket.Replica memory rep = market.replica(id, taskId, w);
        if (rep.state != JobMarket.ReplicaState.Committed) return;
        bool wasSettled = market.task(id, taskId).settled;
        JobMarket.Job memory j = market.job(id);
        WorkerPool.Worker memory before = pool.workers(w);
        uint256 creditBefore = _creditOf(j, w);
        vm.prank(w);
        try market.reveal(id, _one(taskId), _word(digest)) returns (uint256 reward) {
            // The reveal pays one reward and releases one collateral, nothing else.
            WorkerPool.Worker memory afterInfo = pool.workers(w);
            if (reward != j.rewardPerReplica || market.job(id).paid - j.paid != reward) outcomeViolations++;
            if (_creditOf(j, w) - creditBefore != reward) outcomeViolations++;
            if (afterInfo.locked != before.locked - j.collateral || afterInfo.stake != before.stake) {
                outcomeViolations++;
            }
            paidCount++;
            ghostPaid[id] += reward;
            if (!wasSettled) _onSettled(id, taskId, digest);
        } catch {}
    }

    /// @dev The task just settled on `digest`: check the win against the
    /// handler's own record of the tally.
    function _onSettled(uint256 id, uint256 taskId, bytes32 digest) internal {
        bytes32 pk = _pair(id, taskId);
        settled[pk] = true;
        settledDigest[pk] = digest;
        settlements++;
        JobMarket.Task memory t = market.task(id, taskId);
        if (!t.settled) settlementViolations++;
        if (bytes12(keccak256(abi.encode(id, taskId, digest))) != t.winner) settlementViolations++;
        Commit[] storage cs = _commits[pk];
        uint256 forWinner;
        uint256 others;
        bool honestForWinner;
        for (uint256 i; i < cs.length; ++i) {
            if (cs[i].tally != t.tally) continue;
            if (cs[i].result == t.winner) {
                forWinner++;
                if (isHonest(cs[i].worker)) honestForWinner = true;
                for (uint256 k; k < i; ++k) {
                    if (cs[k].worker == cs[i].worker) settlementViolations++; // not distinct
                }
            } else {
                others++;
            }
        }
        uint256 m = market.job(id).margin;
        if (forWinner < others + m) settlementViolations++; // no lead of m
        if (digest != truth(id, taskId)) {
            wrongSettlements++;
            // Only the cartel can carry a wrong result, never an honest worker.
            if (honestForWinner) settlementViolations++;
        }
    }

    /// @dev Whether `a` had token credits to withdraw (and withdrew them).
    function _withdrawToken(address a) internal returns (bool) {
        uint256 credit = market.tokenCredits(address(usd), a);
        if (credit == 0) return false;
        uint256 before = usd.balanceOf(a);
        vm.prank(a);
        try market.withdrawToken(address(usd)) {}
        catch {
            unexpectedReverts++;
            return true;
        }
        uint256 got = usd.balanceOf(a) - before;
        if (got != credit || market.tokenCredits(address(usd), a) != 0) withdrawViolations++;
        ghostTokenOut += got;
        return true;
    }

    /// @dev What the market owes `a` in the currency of job `j`.
    function _creditOf(JobMarket.Job memory j, address a) internal view returns (uint256) {
        return j.token == address(0) ? market.credits(a) : market.tokenCredits(j.token, a);
    }

    function _tryResolve(uint256 id, uint256 taskId, address w, bool viaCollect) internal {
        JobMarket.Job memory j = market.job(id);
        WorkerPool.Worker memory before = pool.workers(w);
        uint256 creditBefore = _creditOf(j, w);
        uint256 burnedBefore = pool.burned();
        bool slashed;
        if (viaCollect) {
            vm.prank(w);
            try market.collect(id, _one(taskId)) {
                slashed = pool.workers(w).stake < before.stake;
            } catch {
                return;
            }
        } else {
            try market.resolve(id, taskId, w) returns (JobMarket.Outcome o) {
                slashed = o == JobMarket.Outcome.Slashed;
            } catch {
                return;
            }
        }
        WorkerPool.Worker memory afterInfo = pool.workers(w);
        uint256 c = j.collateral;
        if (afterInfo.locked != before.locked - c) outcomeViolations++;
        // Only a reveal pays: collect and resolve slash or release.
        if (slashed) {
            slashedCount++;
            ghostBurned += c;
            if (before.stake - afterInfo.stake != c || pool.burned() - burnedBefore != c) outcomeViolations++;
            if (_creditOf(j, w) != creditBefore) outcomeViolations++;
            if (isHonest(w)) {
                bytes32 pk = _pair(id, taskId);
                // Honest workers are always on time: a slash is only right
                // when the task settled on something other than the truth.
                if (!settled[pk] || settledDigest[pk] == truth(id, taskId)) honestSlashed++;
            }
        } else {
            releasedCount++;
            if (afterInfo.stake != before.stake || _creditOf(j, w) != creditBefore) outcomeViolations++;
        }
    }

    function _live(uint256 id) internal view returns (bool) {
        JobMarket.Job memory j = market.job(id);
        bool active = j.state == JobMarket.JobState.Map || j.state == JobMarket.JobState.Reduce;
        return active && time <= j.deadline;
    }

    function _phase(uint256 id) internal view returns (uint256 lo, uint256 hi) {
        JobMarket.Job memory j = market.job(id);
        if (j.state == JobMarket.JobState.Reduce) return (j.mapTasks, uint256(j.mapTasks) + j.reduceTasks);
        return (0, j.mapTasks);
    }

    function _taskCount(uint256 id) internal view returns (uint256) {
        JobMarket.JobParams storage p = _params[id];
        return uint256(p.mapTasks) + p.reduceTasks;
    }

    function _pickAny(uint256 seed) internal view returns (uint256 id, bool ok) {
        if (jobIds.length == 0) return (0, false);
        return (jobIds[seed % jobIds.length], true);
    }

    function _pickLive(uint256 seed) internal view returns (uint256 id, bool ok) {
        uint256 n = jobIds.length;
        for (uint256 k; k < n; ++k) {
            id = jobIds[(seed % n + k) % n];
            if (_live(id)) return (id, true);
        }
        return (0, false);
    }

    function _pair(uint256 id, uint256 taskId) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, taskId));
    }

    function _key(uint256 id, uint256 taskId, address w) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, taskId, w));
    }

    function _one(uint256 x) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](1);
        xs[0] = x;
    }

    function _short(bytes32 x) internal pure returns (bytes12[] memory xs) {
        xs = new bytes12[](1);
        xs[0] = bytes12(x);
    }

    function _word(bytes32 x) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](1);
        xs[0] = x;
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (x >= lo && x <= hi) return x;
        return lo + (x % (hi - lo + 1));
    }
}
