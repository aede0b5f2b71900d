// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../../contracts/JobMarket.sol";
import {IJobMarket} from "../../../contracts/interfaces/IJobMarket.sol";
import {IWorkerRegistry} from "../../../contracts/interfaces/IWorkerRegistry.sol";
import {Assertions, vm} from "../Base.sol";

/// @notice Drives random but mostly valid sequences against one market: three
/// requesters post small jobs, five staked workers claim, commit honest or
/// dishonest digests, reveal, get resolved; time moves; everyone withdraws.
/// Every call it makes is checked against values it computes itself, and what
/// it observes is kept in ghost variables for the invariants.
contract MarketHandler is Assertions {
    uint256 internal constant MAX_JOBS = 5;
    uint256 internal constant INITIAL_STAKE = 20 ether;

    JobMarket public immutable market;
    IWorkerRegistry public immutable registry;

    address[3] internal requesters = [address(0xA1), address(0xA2), address(0xA3)];
    address[5] internal workers = [address(0xB1), address(0xB2), address(0xB3), address(0xB4), address(0xB5)];

    uint256[] public jobIds;
    mapping(uint256 => IJobMarket.JobParams) internal _params;

    /// @dev The handler's clock: warps do not carry over between fuzzed calls.
    uint256 public time;

    // ------------------------------------------------------------ ghosts
    uint256 public ghostEscrowIn;
    uint256 public ghostMarketOut;
    uint256 public ghostStakedIn;
    uint256 public ghostRegistryOut;
    mapping(uint256 => uint256) public ghostPaid;
    mapping(address => uint256) public ghostLocked;
    mapping(bytes32 => uint256) public paidCount; // (job, task, worker)
    uint256 public maxPaidCount;
    mapping(bytes32 => address[]) internal _revealers; // (job, task, round, prefix)
    mapping(bytes32 => mapping(address => bool)) internal _hasRevealed;
    /// @dev Each counts a property that failed at the moment it was observed.
    uint256 public settlementViolations;
    uint256 public owedViolations;
    uint256 public outcomeViolations;
    uint256 public refundViolations;
    uint256 public withdrawViolations;
    /// @dev Calls that were valid by the handler's own pre-checks but reverted.
    uint256 public unexpectedReverts;

    struct Opening {
        bytes32 digest;
        bytes32 salt;
    }

    mapping(bytes32 => Opening) internal _openings; // (job, task, worker, round)

    // ---------------------------------------------------- coverage counters
    uint256 public posted;
    uint256 public claims;
    uint256 public commits;
    uint256 public reveals;
    uint256 public settlements;
    uint256 public paid;
    uint256 public slashed;
    uint256 public released;
    uint256 public reopened;
    uint256 public refunds;
    uint256 public withdrawals;

    struct Snap {
        uint256 credit;
        uint256 stake;
        uint256 locked;
        uint256 settled;
        uint256 slashed;
        uint256 requesterCredit;
        uint256 jobPaid;
        uint256 jobOwed;
    }

    constructor(JobMarket market_) {
        market = market_;
        registry = market_.registry();
        time = block.timestamp;
        for (uint256 i; i < workers.length; ++i) {
            vm.deal(workers[i], INITIAL_STAKE);
            vm.prank(workers[i]);
            registry.stake{value: INITIAL_STAKE}();
            ghostStakedIn += INITIAL_STAKE;
        }
    }

    modifier synced() {
        vm.warp(time);
        _;
    }

    // ============================================================ actions

    function postJob(uint256 seed) external synced {
        if (jobIds.length >= MAX_JOBS) return;
        IJobMarket.JobParams memory p;
        p.specDigest = keccak256(abi.encode(seed));
        p.mapTasks = uint32(1 + seed % 2);
        p.reduceTasks = uint32((seed >> 8) % 2);
        p.replication = uint8(1 + (seed >> 16) % 3);
        p.quorum = uint8(1 + (seed >> 24) % p.replication);
        p.maxRounds = uint8(1 + (seed >> 32) % 2);
        p.rewardPerReplica = uint96(1 + (seed >> 40) % 1e15); // odd wei amounts catch rounding
        p.collateral = uint96((seed >> 96) % 1e17);
        p.minStake = (seed >> 160) % 2 == 0 ? 0 : 1 ether;
        p.leaseDuration = 1 hours;
        p.revealWindow = 30 minutes;
        p.jobTimeout = uint32(2 hours + (seed >> 168) % 6 hours);
        uint256 escrow = uint256(p.rewardPerReplica) * p.replication * (p.mapTasks + p.reduceTasks);
        address requester = requesters[(seed >> 200) % requesters.length];
        vm.deal(requester, requester.balance + escrow);
        vm.prank(requester);
        uint256 jobId = market.postJob{value: escrow}(p);
        jobIds.push(jobId);
        _params[jobId] = p;
        ghostEscrowIn += escrow;
        posted++;
    }

    function claim(uint256 jobSeed, uint256 taskSeed, uint256 workerSeed) external synced {
        (uint256 id, bool ok) = _pickActive(jobSeed);
        if (!ok) return;
        uint256 taskId = _pickInPhase(id, taskSeed);
        for (uint256 k; k < workers.length; ++k) {
            if (_tryClaim(id, taskId, workers[_rot(workerSeed, k, workers.length)])) return;
        }
    }

    function commit(uint256 jobSeed, uint256 taskSeed, uint256 workerSeed, uint256 digestSeed) external synced {
        (uint256 id, bool ok) = _pickActive(jobSeed);
        if (!ok) return;
        uint256 taskId = _pickInPhase(id, taskSeed);
        for (uint256 k; k < workers.length; ++k) {
            if (_tryCommit(id, taskId, workers[_rot(workerSeed, k, workers.length)], digestSeed)) return;
        }
    }

    function reveal(uint256 jobSeed, uint256 taskSeed, uint256 workerSeed) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        uint256 taskId = taskSeed % _taskCount(id);
        for (uint256 k; k < workers.length; ++k) {
            if (_tryReveal(id, taskId, workers[_rot(workerSeed, k, workers.length)])) return;
        }
    }

    /// @dev Pushes every open task of one job as far as it goes in one call:
    /// fill the slots, commit, reveal, with the odd no-show. Reaches settled
    /// tasks, reduce phases and completed jobs far more often than single steps.
    function drive(uint256 jobSeed, uint256 seed) external synced {
        (uint256 id, bool ok) = _pickActive(jobSeed);
        if (!ok) return;
        IJobMarket.JobParams memory p = _params[id];
        bool reduce = market.job(id).state == IJobMarket.JobState.Reduce;
        (uint256 lo, uint256 hi) = reduce ? (uint256(p.mapTasks), uint256(p.mapTasks) + p.reduceTasks) : (0, p.mapTasks);
        for (uint256 taskId = lo; taskId < hi; ++taskId) {
            for (uint256 k; k < workers.length; ++k) {
                address w = workers[_rot(seed, k, workers.length)];
                uint256 s = uint256(keccak256(abi.encode(seed, taskId, k)));
                _tryClaim(id, taskId, w);
                if (s % 8 != 0) _tryCommit(id, taskId, w, s >> 8); // 1 in 8 never commits
            }
            for (uint256 k; k < workers.length; ++k) {
                uint256 s = uint256(keccak256(abi.encode(seed, taskId, k, "reveal")));
                if (s % 8 != 0) _tryReveal(id, taskId, workers[_rot(seed, k, workers.length)]); // 1 in 8 stays silent
            }
        }
    }

    /// @dev Resolves every finished replica of one job it can (collect as the
    /// worker, or resolve as anyone).
    function resolve(uint256 jobSeed, uint256 workerSeed, bool viaCollect) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        for (uint256 taskId; taskId < _taskCount(id); ++taskId) {
            for (uint256 k; k < workers.length; ++k) {
                address w = workers[_rot(workerSeed, k, workers.length)];
                IJobMarket.ReplicaState s = market.replica(id, taskId, w).state;
                if (s == IJobMarket.ReplicaState.None || s == IJobMarket.ReplicaState.Slashed) continue;
                _tryResolve(id, taskId, w, viaCollect);
            }
        }
    }

    /// @dev Resolves one replica, as anyone.
    function resolveOne(uint256 jobSeed, uint256 taskSeed, uint256 workerSeed) external synced {
        (uint256 id, bool ok) = _pickAny(jobSeed);
        if (!ok) return;
        uint256 taskId = taskSeed % _taskCount(id);
        for (uint256 k; k < workers.length; ++k) {
            address w = workers[_rot(workerSeed, k, workers.length)];
            IJobMarket.ReplicaState s = market.replica(id, taskId, w).state;
            if (s == IJobMarket.ReplicaState.None || s == IJobMarket.ReplicaState.Slashed) continue;
            if (_tryResolve(id, taskId, w, false)) return;
        }
    }

    function poke(uint256 jobSeed, uint256 taskSeed) external synced {
        (uint256 id, bool ok) = _pickActive(jobSeed);
        if (!ok) return;
        uint256 taskId = _pickInPhase(id, taskSeed);
        uint8 roundBefore = market.task(id, taskId).round;
        try market.poke(id, taskId) {
            if (market.task(id, taskId).round != roundBefore) reopened++;
        } catch {}
    }

    function expireJob(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickActive(jobSeed);
        if (!ok) return;
        try market.expireJob(id) {} catch {}
    }

    function cancelJob(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickActive(jobSeed);
        if (!ok) return;
        address requester = market.job(id).requester;
        uint256 before = market.credits(requester);
        uint256 escrow = market.job(id).escrow;
        vm.prank(requester);
        try market.cancelJob(id) {
            if (market.credits(requester) - before != escrow) refundViolations++;
        } catch {}
    }

    function refund(uint256 jobSeed) external synced {
        (uint256 id, bool ok) = _pickFinished(jobSeed);
        if (!ok) return;
        IJobMarket.Job memory j = market.job(id);
        uint256 expected = uint256(j.escrow) - j.paid - j.owed - j.refunded;
        uint256 before = market.credits(j.requester);
        try market.refund(id) returns (uint256 amount) {
            if (amount != expected || amount == 0) refundViolations++;
            if (market.credits(j.requester) - before != amount) refundViolations++;
            refunds++;
        } catch {}
    }

    /// @dev The first actor from `actorSeed` with a credit withdraws it.
    function withdraw(uint256 actorSeed, bool fromRegistry) external synced {
        uint256 n = requesters.length + workers.length;
        for (uint256 k; k < n; ++k) {
            address a = _actor(_rot(actorSeed, k, n));
            uint256 credit = fromRegistry ? registry.credits(a) : market.credits(a);
            if (credit == 0) continue;
            uint256 before = a.balance;
            vm.prank(a);
            try (fromRegistry ? registry.withdraw : market.withdraw)() {}
            catch {
                unexpectedReverts++;
                return;
            }
            uint256 got = a.balance - before;
            uint256 left = fromRegistry ? registry.credits(a) : market.credits(a);
            if (got != credit || left != 0) withdrawViolations++;
            if (fromRegistry) ghostRegistryOut += got;
            else ghostMarketOut += got;
            withdrawals++;
            return;
        }
    }

    /// @dev Stake, unbonding request or unbonded withdrawal for one worker.
    function bond(uint256 workerSeed, uint256 amount, uint8 action) external synced {
        address w = workers[workerSeed % workers.length];
        if (action % 3 == 0) _stake(w, amount);
        else if (action % 3 == 1) _requestUnbond(w, amount);
        else _withdrawUnbonded(w);
    }

    function _stake(address w, uint256 amount) internal {
        amount = bound(amount, 1, 5 ether);
        vm.deal(w, w.balance + amount);
        vm.prank(w);
        try registry.stake{value: amount}() {
            ghostStakedIn += amount;
        } catch {
            unexpectedReverts++;
        }
    }

    function _requestUnbond(address w, uint256 amount) internal {
        uint256 free = registry.freeStake(w);
        if (free == 0) return;
        amount = bound(amount, 1, free / 4 + 1); // keep most stake bonded so claims go on
        vm.prank(w);
        try registry.requestUnbond(amount) {}
        catch {
            unexpectedReverts++;
        }
    }

    function _withdrawUnbonded(address w) internal {
        IWorkerRegistry.Unbonding memory u = registry.unbonding(w);
        if (u.amount == 0 || block.timestamp < u.readyAt) return;
        uint256 before = w.balance;
        vm.prank(w);
        try registry.withdrawUnbonded() {}
        catch {
            unexpectedReverts++;
            return;
        }
        if (w.balance - before != u.amount) withdrawViolations++;
        ghostRegistryOut += w.balance - before;
        withdrawals++;
    }

    function warp(uint256 secs) external {
        time += bound(secs, 1, 3 hours);
        vm.warp(time);
    }

    // ========================================================== internals

    function _tryClaim(uint256 id, uint256 taskId, address w) internal returns (bool) {
        IJobMarket.Replica memory r = market.replica(id, taskId, w);
        if (r.state != IJobMarket.ReplicaState.None && r.state != IJobMarket.ReplicaState.Slashed) return false;
        uint8 roundBefore = market.task(id, taskId).round;
        vm.prank(w);
        try market.claim(id, _one(taskId)) {
            ghostLocked[w] += market.job(id).collateral;
            claims++;
            if (market.task(id, taskId).round != roundBefore) reopened++;
            return true;
        } catch {
            return false;
        }
    }

    function _tryCommit(uint256 id, uint256 taskId, address w, uint256 digestSeed) internal returns (bool) {
        IJobMarket.Replica memory r = market.replica(id, taskId, w);
        uint8 round = market.task(id, taskId).round;
        if (r.state != IJobMarket.ReplicaState.Claimed || r.round != round || block.timestamp > r.deadline) {
            return false;
        }
        // Mostly honest; sometimes a colluding wrong digest (it can win a small
        // quorum), sometimes a lone dissent.
        bytes32 digest;
        uint256 mode = digestSeed % 8;
        if (mode < 5) digest = keccak256(abi.encode("honest", id, taskId));
        else if (mode < 7) digest = keccak256(abi.encode("colluding", id, taskId));
        else digest = keccak256(abi.encode("lone", id, taskId, w, digestSeed));
        bytes32 salt = keccak256(abi.encode("salt", digestSeed, w));
        bytes32 c = keccak256(abi.encode(digest, salt, w, id, taskId));
        vm.prank(w);
        try market.commit(id, _one(taskId), _word(c)) {
            _openings[_key(id, taskId, w, round)] = Opening(digest, salt);
            commits++;
            return true;
        } catch {
            return false;
        }
    }

    function _tryReveal(uint256 id, uint256 taskId, address w) internal returns (bool) {
        IJobMarket.Replica memory r = market.replica(id, taskId, w);
        IJobMarket.Task memory before = market.task(id, taskId);
        if (r.state != IJobMarket.ReplicaState.Committed || r.round != before.round) return false;
        if (before.revealDeadline == 0 || block.timestamp > before.revealDeadline) return false;
        Opening memory o = _openings[_key(id, taskId, w, before.round)];
        uint256 owedBefore = market.job(id).owed;
        vm.prank(w);
        try market.reveal(id, _one(taskId), _word(o.digest), _word(o.salt)) {
            reveals++;
            _afterReveal(id, taskId, w, bytes24(o.digest), before, owedBefore);
            return true;
        } catch {
            return false;
        }
    }

    function _afterReveal(
        uint256 id,
        uint256 taskId,
        address w,
        bytes24 prefix,
        IJobMarket.Task memory before,
        uint256 owedBefore
    ) internal {
        bytes32 vk = _voteKey(id, taskId, before.round, prefix);
        if (!_hasRevealed[vk][w]) {
            _hasRevealed[vk][w] = true;
            _revealers[vk].push(w);
        }
        IJobMarket.Task memory afterTask = market.task(id, taskId);
        uint256 owedDelta = market.job(id).owed - owedBefore;
        uint256 reward = _params[id].rewardPerReplica;
        if (before.winner == 0 && afterTask.winner != 0) {
            // This reveal settled the task: on its own digest, with a quorum of
            // distinct revealers, each of them now owed a reward.
            settlements++;
            uint256 votes = _revealers[vk].length;
            if (afterTask.winner != prefix || votes < _params[id].quorum) settlementViolations++;
            if (owedDelta != votes * reward) owedViolations++;
        } else if (before.winner != 0) {
            if (owedDelta != (prefix == before.winner ? reward : 0)) owedViolations++;
        } else {
            if (owedDelta != 0) owedViolations++;
            if (afterTask.round != before.round) reopened++;
        }
    }

    struct Resolution {
        uint256 id;
        uint256 taskId;
        address worker;
        bool viaCollect;
        bool agreeing;
        uint256 outcome;
        uint256 returned;
    }

    function _tryResolve(uint256 id, uint256 taskId, address w, bool viaCollect) internal returns (bool) {
        Resolution memory res = Resolution(id, taskId, w, viaCollect, false, 0, 0);
        IJobMarket.Replica memory r = market.replica(id, taskId, w);
        IJobMarket.Task memory t = market.task(id, taskId);
        // A replica that revealed the accepted digest of its round must be paid.
        res.agreeing = r.state == IJobMarket.ReplicaState.Revealed && r.round == t.round && t.winner != 0
            && r.hash == t.winner;
        Snap memory b = _snap(id, w);
        if (viaCollect) {
            vm.prank(w);
            try market.collect(id, _one(taskId)) returns (uint256 got) {
                res.returned = got;
            } catch {
                return false;
            }
            Snap memory a0 = _snap(id, w);
            res.outcome = a0.settled > b.settled ? 0 : a0.slashed > b.slashed ? 1 : 2;
        } else {
            try market.resolve(id, taskId, w) returns (IJobMarket.Outcome o) {
                res.outcome = uint256(o);
            } catch {
                return false;
            }
        }
        _checkOutcome(res, b, _snap(id, w));
        return true;
    }

    function _checkOutcome(Resolution memory res, Snap memory b, Snap memory a) internal {
        uint256 c = _params[res.id].collateral;
        uint256 reward = _params[res.id].rewardPerReplica;
        bool ok = b.locked - a.locked == c;
        if (res.outcome == 0) {
            paid++;
            ok = ok && a.credit - b.credit == reward && a.stake == b.stake && a.settled == b.settled + 1;
            ok = ok && a.slashed == b.slashed && a.jobPaid - b.jobPaid == reward && b.jobOwed - a.jobOwed == reward;
            ok = ok && a.requesterCredit == b.requesterCredit && (!res.viaCollect || res.returned == reward);
            ghostPaid[res.id] += reward;
            uint256 n = ++paidCount[_key(res.id, res.taskId, res.worker, 0)];
            if (n > maxPaidCount) maxPaidCount = n;
        } else if (res.outcome == 1) {
            slashed++;
            ok = ok && a.credit == b.credit && b.stake - a.stake == c && a.slashed == b.slashed + 1;
            ok = ok && a.settled == b.settled && a.requesterCredit - b.requesterCredit == c && res.returned == 0;
            ok = ok && a.jobPaid == b.jobPaid;
        } else {
            released++;
            ok = ok && a.credit == b.credit && a.stake == b.stake && a.settled == b.settled;
            ok = ok && a.slashed == b.slashed && a.requesterCredit == b.requesterCredit && res.returned == 0;
            ok = ok && a.jobPaid == b.jobPaid;
        }
        // Paid exactly when the replica revealed its round's accepted digest.
        if (res.agreeing != (res.outcome == 0)) ok = false;
        if (!ok) outcomeViolations++;
        ghostLocked[res.worker] -= c;
    }

    function _snap(uint256 id, address w) internal view returns (Snap memory s) {
        IWorkerRegistry.Worker memory info = registry.workers(w);
        IJobMarket.Job memory j = market.job(id);
        s = Snap({
            credit: market.credits(w),
            stake: info.stake,
            locked: info.locked,
            settled: info.settled,
            slashed: info.slashed,
            requesterCredit: registry.credits(j.requester),
            jobPaid: j.paid,
            jobOwed: j.owed
        });
    }

    // ---------------------------------------------------------- picking

    function _pickAny(uint256 seed) internal view returns (uint256 id, bool ok) {
        uint256 n = jobIds.length;
        if (n == 0) return (0, false);
        return (jobIds[seed % n], true);
    }

    function _pickActive(uint256 seed) internal view returns (uint256 id, bool ok) {
        uint256 n = jobIds.length;
        for (uint256 k; k < n; ++k) {
            id = jobIds[_rot(seed, k, n)];
            if (_isActive(market.job(id).state)) return (id, true);
        }
        return (0, false);
    }

    function _pickFinished(uint256 seed) internal view returns (uint256 id, bool ok) {
        uint256 n = jobIds.length;
        for (uint256 k; k < n; ++k) {
            id = jobIds[_rot(seed, k, n)];
            IJobMarket.JobState s = market.job(id).state;
            if (s != IJobMarket.JobState.Cancelled && !_isActive(s)) return (id, true);
        }
        return (0, false);
    }

    function _pickInPhase(uint256 id, uint256 seed) internal view returns (uint256) {
        IJobMarket.JobParams memory p = _params[id];
        if (market.job(id).state == IJobMarket.JobState.Map) return seed % p.mapTasks;
        return p.mapTasks + seed % p.reduceTasks;
    }

    /// @dev The k-th index after `seed`, without overflowing on huge seeds.
    function _rot(uint256 seed, uint256 k, uint256 n) internal pure returns (uint256) {
        return (seed % n + k) % n;
    }

    function _taskCount(uint256 id) internal view returns (uint256) {
        return uint256(_params[id].mapTasks) + _params[id].reduceTasks;
    }

    function _isActive(IJobMarket.JobState s) internal pure returns (bool) {
        return s == IJobMarket.JobState.Map || s == IJobMarket.JobState.Reduce;
    }

    function _actor(uint256 seed) internal view returns (address) {
        seed %= requesters.length + workers.length;
        return seed < requesters.length ? requesters[seed] : workers[seed - requesters.length];
    }

    function _key(uint256 id, uint256 taskId, address w, uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, taskId, w, round));
    }

    function _voteKey(uint256 id, uint256 taskId, uint256 round, bytes24 prefix) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, taskId, round, prefix));
    }

    function _one(uint256 x) internal pure returns (uint256[] memory xs) {
        xs = new uint256[](1);
        xs[0] = x;
    }

    function _word(bytes32 x) internal pure returns (bytes32[] memory xs) {
        xs = new bytes32[](1);
        xs[0] = x;
    }

    // ------------------------------------------------------ views for invariants

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function params(uint256 id) external view returns (IJobMarket.JobParams memory) {
        return _params[id];
    }

    function revealerCount(uint256 id, uint256 taskId, uint256 round, bytes24 prefix) external view returns (uint256) {
        return _revealers[_voteKey(id, taskId, round, prefix)].length;
    }

    function actors() external view returns (address[] memory all) {
        all = new address[](requesters.length + workers.length);
        for (uint256 i; i < all.length; ++i) {
            all[i] = _actor(i);
        }
    }

    function workerList() external view returns (address[] memory all) {
        all = new address[](workers.length);
        for (uint256 i; i < all.length; ++i) {
            all[i] = workers[i];
        }
    }
}
