// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Sortition
/// @notice A stake-weighted lottery over at most CAPACITY members at a time
/// whose weights change only from one epoch to the next.
/// @dev A Fenwick tree of weights where every node keeps two versions: its
/// value in the current epoch and the value that takes effect in the next.
/// A draw reads the current epoch only, so nothing anyone does after a draw's
/// randomness is known can change what that draw picks within the epoch: a
/// worker who sees the seed cannot steer it by staking, unbonding, opting in
/// or out (the market refuses seeds from an earlier epoch).
/// Indexes are never swap-removed, so one member leaving never moves another's
/// range. A member keeps its index while it holds it: leaving (weight 0) and
/// coming back before anyone took the index returns it to the same place. Once
/// every index has been handed out, a newcomer takes the index of a member who
/// left: one whose weight is 0 in the current epoch and in the next. That
/// member is unmapped (it comes back, if ever, as a newcomer), and the index
/// weighs 0 in the current epoch, so the swap cannot change any draw of the
/// current epoch, and a draw never returns an address that is not in the
/// lottery this epoch. Which indexes are vacant is kept in a bitmap versioned
/// like the tree, so finding one reads at most VACANCY_WORDS slots.
library Sortition {
    /// @notice Tree height: CAPACITY = 2**DEPTH members per pool.
    uint256 internal constant DEPTH = 12;
    uint256 internal constant CAPACITY = 1 << DEPTH;
    /// @dev Vacancy bits per `vacant` word: a Node's 112-bit value.
    uint256 private constant WORD_BITS = 112;
    uint256 private constant VACANCY_WORDS = (CAPACITY + WORD_BITS - 1) / WORD_BITS;

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
        mapping(uint256 => Node) weights; // each index's own weight, versioned like the tree
        // Bit (i - 1) % WORD_BITS of word (i - 1) / WORD_BITS: index i is held by
        // a member whose weight is 0 (it left), versioned like the tree. Set when
        // a weight drops to 0, cleared when it rises from 0 (its member came back,
        // or a newcomer took the index).
        mapping(uint256 => Node) vacant;
        uint256 size; // indexes ever handed out
    }

    error SortitionFull(uint256 capacity);
    error SortitionWeightOverflow(uint256 weight);

    /// @notice Sets `member`'s weight from epoch `epoch + 1` on (0 removes it
    /// from every draw from then on). A newcomer with a nonzero weight gets an
    /// index, or the call reverts with SortitionFull when none is free.
    function setWeight(Tree storage t, address member, uint256 weight, uint256 epoch) internal {
        if (!_set(t, member, weight, epoch)) revert SortitionFull(CAPACITY);
    }

    /// @notice Like setWeight, but returns false instead of reverting when
    /// `member` holds no index and none is free (nothing changes then).
    function trySetWeight(Tree storage t, address member, uint256 weight, uint256 epoch) internal returns (bool) {
        return _set(t, member, weight, epoch);
    }

    /// @notice `member`'s weight in `epoch` (the current or the next one).
    function weightAt(Tree storage t, address member, uint256 epoch) internal view returns (uint256) {
        uint256 index = t.indexOf[member];
        return index == 0 ? 0 : _at(t.weights[index], epoch);
    }

    /// @notice Total weight in effect in `epoch` (the current or the next one).
    function total(Tree storage t, uint256 epoch) internal view returns (uint256) {
        return _at(t.nodes[CAPACITY], epoch);
    }

    /// @notice Weight of `member` from the next epoch on (what `setWeight` last set).
    function pendingWeight(Tree storage t, address member) internal view returns (uint256) {
        uint256 index = t.indexOf[member];
        return index == 0 ? 0 : t.weights[index].value;
    }

    /// @notice The member whose cumulative weight range (in `epoch`) holds
    /// `random % total`: each member is picked with probability weight / total.
    /// Returns address(0) when the pool is empty.
    function draw(Tree storage t, uint256 epoch, uint256 random) internal view returns (address member) {
        (member,) = drawWithWeight(t, epoch, random);
    }

    /// @notice Like draw, and the drawn member's weight in `epoch` (0 with address(0)).
    function drawWithWeight(Tree storage t, uint256 epoch, uint256 random)
        internal
        view
        returns (address member, uint256 weight)
    {
        uint256 sum = _at(t.nodes[CAPACITY], epoch);
        if (sum == 0) return (address(0), 0);
        uint256 target = random % sum;
        uint256 pos;
        uint256 size = t.size;
        // Binary lifting: find the largest prefix whose sum is <= target. The
        // index after it has a nonzero weight in `epoch`. A prefix ending past
        // the last index ever handed out sums to the total, which is > target:
        // it is never taken, so it need not be read (a pool of n members reads
        // about log2(n) nodes, not DEPTH).
        for (uint256 step = CAPACITY >> 1; step > 0; step >>= 1) {
            if (pos + step > size) continue;
            uint256 v = _at(t.nodes[pos + step], epoch);
            if (v <= target) {
                pos += step;
                target -= v;
            }
        }
        return (t.members[pos + 1], _at(t.weights[pos + 1], epoch));
    }

    /// @dev Returns false, changing nothing, when a newcomer finds no free index.
    function _set(Tree storage t, address member, uint256 weight, uint256 epoch) private returns (bool) {
        if (weight > type(uint112).max) revert SortitionWeightOverflow(weight);
        uint32 next = uint32(epoch + 1);
        uint256 index = t.indexOf[member];
        bool fresh;
        if (index == 0) {
            if (weight == 0) return true; // not in the lottery, and need not be
            (index, fresh) = _place(t, member, epoch);
            if (index == 0) return false;
        }
        uint112 old = t.weights[index].value;
        if (old == weight) return true;
        // An index never held before has no vacancy bit to clear.
        if (weight == 0) _setVacant(t, index, next, true);
        else if (old == 0 && !fresh) _setVacant(t, index, next, false);
        bool up = weight > old;
        uint112 delta = up ? uint112(weight) - old : old - uint112(weight);
        _add(t.weights[index], next, up, delta);
        for (uint256 i = index; i <= CAPACITY; i += i & (~i + 1)) {
            _add(t.nodes[i], next, up, delta);
        }
        return true;
    }

    /// @dev Gives `member` an index: the next one never handed out, else one
    /// vacant in the current epoch and the next (its old member is unmapped).
    /// Returns index 0 when there is none.
    function _place(Tree storage t, address member, uint256 epoch) private returns (uint256 index, bool fresh) {
        uint256 size = t.size;
        if (size < CAPACITY) {
            index = size + 1;
            t.size = index;
            fresh = true;
        } else {
            index = _findVacancy(t, epoch);
            if (index == 0) return (0, false);
            // Its weight is 0 now and next epoch: the old member is out of
            // every draw it could still be part of.
            delete t.indexOf[t.members[index]];
        }
        t.indexOf[member] = index;
        t.members[index] = member;
    }

    /// @dev The lowest index vacant in `epoch` and the next; 0 if none.
    function _findVacancy(Tree storage t, uint256 epoch) private view returns (uint256) {
        for (uint256 w; w < VACANCY_WORDS; ++w) {
            Node storage n = t.vacant[w];
            uint256 both = _at(n, epoch) & n.value;
            if (both != 0) return w * WORD_BITS + _lowestBit(both) + 1;
        }
        return 0;
    }

    function _setVacant(Tree storage t, uint256 index, uint32 next, bool on) private {
        uint256 i = index - 1;
        Node storage n = t.vacant[i / WORD_BITS];
        uint112 bit = uint112(1 << (i % WORD_BITS));
        uint112 v = n.value;
        if (n.since < next) {
            n.prior = v;
            n.since = next;
        }
        n.value = on ? v | bit : v & ~bit;
    }

    /// @dev Position of the lowest set bit of `x` (x != 0).
    function _lowestBit(uint256 x) private pure returns (uint256 r) {
        x &= ~x + 1;
        if (x >> 64 != 0) (x, r) = (x >> 64, r + 64);
        if (x >> 32 != 0) (x, r) = (x >> 32, r + 32);
        if (x >> 16 != 0) (x, r) = (x >> 16, r + 16);
        if (x >> 8 != 0) (x, r) = (x >> 8, r + 8);
        if (x >> 4 != 0) (x, r) = (x >> 4, r + 4);
        if (x >> 2 != 0) (x, r) = (x >> 2, r + 2);
        if (x >> 1 != 0) r += 1;
    }

    /// @dev Changes `n` by `delta` from epoch `next` on, keeping its value for
    /// the epoch before.
    function _add(Node storage n, uint32 next, bool up, uint112 delta) private {
        uint112 v = n.value;
        if (n.since < next) {
            // `value` is in effect now: keep it as this epoch's value.
            n.prior = v;
            n.since = next;
        }
        n.value = up ? v + delta : v - delta;
    }

    function _at(Node storage n, uint256 epoch) private view returns (uint256) {
        return epoch >= n.since ? n.value : n.prior;
    }
}
