// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Sortition
/// @notice A stake-weighted lottery over at most CAPACITY members whose weights
/// change only from one epoch to the next.
/// @dev A Fenwick tree of weights where every node keeps two versions: its
/// value in the current epoch and the value that takes effect in the next.
/// A draw reads the current epoch only, so nothing anyone does after a draw's
/// randomness is known can change what that draw picks within the epoch: a
/// worker who sees the seed cannot steer it by staking, unbonding, opting in
/// or out (the market refuses seeds from an earlier epoch). Members keep their
/// index for life (no swap-remove), so leaving never moves anyone else.
library Sortition {
    /// @notice Tree height: CAPACITY = 2**DEPTH members per pool.
    uint256 internal constant DEPTH = 12;
    uint256 internal constant CAPACITY = 1 << DEPTH;

    /// @dev `prior` is the value before epoch `since`, `value` from `since` on.
    struct Node {
        uint112 prior;
        uint112 value;
        uint32 since;
    }

    struct Tree {
        mapping(uint256 => Node) nodes;
        mapping(uint256 => address) members; // 1-based index => member
        mapping(address => uint256) indexOf;
        mapping(uint256 => uint112) weights; // weight from the next epoch on
        uint256 size;
    }

    error SortitionFull(uint256 capacity);
    error SortitionWeightOverflow(uint256 weight);

    /// @notice Sets `member`'s weight from epoch `epoch + 1` on (0 removes it
    /// from every draw from then on). Returns false if `member` was never in
    /// the tree and `weight` is 0 (nothing to do).
    function setWeight(Tree storage t, address member, uint256 weight, uint256 epoch) internal returns (bool) {
        if (weight > type(uint112).max) revert SortitionWeightOverflow(weight);
        uint256 index = t.indexOf[member];
        if (index == 0) {
            if (weight == 0) return false;
            index = t.size + 1;
            if (index > CAPACITY) revert SortitionFull(CAPACITY);
            t.size = index;
            t.indexOf[member] = index;
            t.members[index] = member;
        }
        uint112 old = t.weights[index];
        if (old == weight) return true;
        t.weights[index] = uint112(weight);
        uint32 next = uint32(epoch + 1);
        bool up = weight > old;
        uint112 delta = up ? uint112(weight) - old : old - uint112(weight);
        for (uint256 i = index; i <= CAPACITY; i += i & (~i + 1)) {
            Node storage n = t.nodes[i];
            uint112 v = n.value;
            if (n.since < next) {
                // `value` is in effect now: keep it as this epoch's value.
                n.prior = v;
                n.since = next;
            }
            n.value = up ? v + delta : v - delta;
        }
        return true;
    }

    /// @notice Total weight in effect in `epoch` (the current or the next one).
    function total(Tree storage t, uint256 epoch) internal view returns (uint256) {
        return _at(t.nodes[CAPACITY], epoch);
    }

    /// @notice Weight of `member` from the next epoch on (what `setWeight` last set).
    function pendingWeight(Tree storage t, address member) internal view returns (uint256) {
        uint256 index = t.indexOf[member];
        return index == 0 ? 0 : t.weights[index];
    }

    /// @notice The member whose cumulative weight range (in `epoch`) holds
    /// `random % total`: each member is picked with probability weight / total.
    /// Returns address(0) when the pool is empty.
    function draw(Tree storage t, uint256 epoch, uint256 random) internal view returns (address) {
        uint256 sum = _at(t.nodes[CAPACITY], epoch);
        if (sum == 0) return address(0);
        uint256 target = random % sum;
        uint256 pos;
        // Binary lifting: find the largest prefix whose sum is <= target.
        for (uint256 step = CAPACITY >> 1; step > 0; step >>= 1) {
            uint256 v = _at(t.nodes[pos + step], epoch);
            if (v <= target) {
                pos += step;
                target -= v;
            }
        }
        return t.members[pos + 1];
    }

    function _at(Node storage n, uint256 epoch) private view returns (uint256) {
        return epoch >= n.since ? n.value : n.prior;
    }
}
