// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title ReentrancyGuard
/// @notice Blocks re-entry into functions that move value. The lock lives in
/// transient storage (EIP-1153), so it costs ~200 gas instead of two SSTOREs
/// and can never be left set by a reverted call.
abstract contract ReentrancyGuard {
    error ReentrancyGuardReentrantCall();

    bool private transient _entered;

    modifier nonReentrant() {
        if (_entered) revert ReentrancyGuardReentrantCall();
        _entered = true;
        _;
        _entered = false;
    }
}
