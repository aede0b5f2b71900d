// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The part of ERC-20 the market (and its clients) use: the market
/// takes escrow with transferFrom and pays out with transfer; a requester
/// approves the market first.
interface IERC20 {
    function balanceOf(address account) external view returns (uint256);
    function allowance(address owner, address spender) external view returns (uint256);
    function approve(address spender, uint256 amount) external returns (bool);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}
