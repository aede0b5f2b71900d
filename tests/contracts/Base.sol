// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;


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
