// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IRandomness
/// @notice The seam through which the market gets the randomness of a block
/// that was in the future when a job (or an escalation round) was posted.
/// The market's default, with no source configured, is `blockhash`: fixed by
/// the block's producer and unknown to anyone else before the block exists.
/// A chain whose producer is a party to the market (one sequencer) should
/// plug in a beacon or a VRF here.
interface IRandomness {
    /// @notice Randomness fixed by block `blockNumber`; zero while unavailable
    /// (the block is not mined yet, or is too old to be read).
    function randomness(uint256 blockNumber) external view returns (bytes32);
}
