// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {JobMarket} from "../../contracts/JobMarket.sol";
import {MarketFixture, vm} from "./MarketBase.sol";
import {
    FalseToken, FeeOnTransferToken, FreezableToken, MockERC20, NoReturnToken, ReentrantToken
} from "./mocks/Tokens.sol";

/// @dev What every test token offers (NoReturnToken's approve returns nothing; the extra
/// return data of the others is ignored).
interface MintAndApprove {
    function mint(address to, uint256 amount) external;
    function approve(address spender, uint256 amount) external;
}

/// @notice Jobs paid in an ERC-20: escrow taken by transferFrom and measured
/// by balance, rewards, refunds and cancellations credited in the job's token
/// and withdrawn in it, ETH untouched; tokens that cannot back an exact
/// escrow (fee on transfer, false returns, no code, re-entry) refused with
/// nothing recorded.
contract JobMarketTokenTest is MarketFixture {
    MockERC20 internal usd;
    uint96 internal constant USD_REWARD = 2_500_000; // 2.5 units of a 6-decimal token

    function setUp() public override {
        super.setUp();
        usd = new MockERC20();
    }

    function _tokenParams(address token) internal pure returns (JobMarket.JobParams memory p) {
        p = _params();
        p.token = token;
        p.rewardPerReplica = USD_REWARD;
    }

    function _postToken(JobMarket.JobParams memory p) internal returns (uint256 id) {
        return _postIn(p.token, p);
    }

    /// @dev Mints the escrow in `token` to the requester, approves and posts.
    function _postIn(address token, JobMarket.JobParams memory p) internal returns (uint256 id) {
        uint256 escrow = _escrow(p, M);
        MintAndApprove(token).mint(requester, escrow);
        vm.prank(requester);
        MintAndApprove(token).approve(address(market), escrow);
        vm.prank(requester);
        id = market.postJob(p);
    }

    function test_token_jobPaysRewardsAndRefundsInItsToken() public {
        JobMarket.JobParams memory p = _tokenParams(address(usd));
        uint256 escrow = _escrow(p, M);
        uint256 ethBefore = address(market).balance;
        uint256 id = _postToken(p);
        assertEq(usd.balanceOf(address(market)), escrow, "escrow pulled, exactly");
        assertEq(usd.balanceOf(requester), 0, "from the requester");
        assertEq(_job(id).token, address(usd), "the job records its token");
        assertEq(_job(id).escrow, escrow, "escrow in token units");

        _toSeed(id, 0);
        _draw(stranger, id, 0);
        address[] memory seats = _seats(id, 0);
        assertEq(seats.length, M, "round 0 seated");
        bytes32 d = _truth(id, 0);
        _commitAll(seats, id, 0, d);
        for (uint256 i; i < seats.length; ++i) {
            assertEq(_reveal(seats[i], id, 0, d), USD_REWARD, "reward in token units, paid by the reveal");
            assertEq(market.tokenCredits(address(usd), seats[i]), USD_REWARD, "credited in the token");
            assertEq(market.credits(seats[i]), 0, "no ETH credit for a token job");
        }
        assertEq(uint256(_job(id).state), uint256(JobMarket.JobState.Completed), "completed");

        // The extra seats nobody used come back to the requester, in the token.
        _skip(TIMEOUT + 1);
        uint256 refunded = market.refund(id);
        assertEq(refunded, uint256(USD_REWARD) * EXTRA, "unused extra seats refunded");
        assertEq(market.tokenCredits(address(usd), requester), refunded, "refund credited in the token");
        vm.prank(requester);
        market.withdrawToken(address(usd));
        assertEq(usd.balanceOf(requester), refunded, "requester withdrew its refund");
        for (uint256 i; i < seats.length; ++i) {
            vm.prank(seats[i]);
            market.withdrawToken(address(usd));
            assertEq(usd.balanceOf(seats[i]), USD_REWARD, "worker withdrew its reward");
        }
        assertEq(usd.balanceOf(address(market)), 0, "nothing left: every unit paid or refunded");
        assertEq(address(market).balance, ethBefore, "ETH untouched");
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToWithdraw.selector, requester));
        vm.prank(requester);
        market.withdrawToken(address(usd));
    }

    function test_token_cancelCreditsTheEscrowInTheToken() public {
        JobMarket.JobParams memory p = _tokenParams(address(usd));
        uint256 id = _postToken(p);
        vm.prank(requester);
        market.cancelJob(id);
        assertEq(market.tokenCredits(address(usd), requester), _escrow(p, M), "whole escrow back in the token");
        assertEq(market.credits(requester), 0, "not in ETH");
    }

    function test_token_ethSentWithATokenJobIsRefused() public {
        JobMarket.JobParams memory p = _tokenParams(address(usd));
        usd.mint(requester, _escrow(p, M));
        vm.prank(requester);
        usd.approve(address(market), _escrow(p, M));
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketEscrowMismatch.selector, 0, 1 wei));
        vm.prank(requester);
        market.postJob{value: 1 wei}(p);
    }

    function test_token_feeOnTransferIsRefusedAndNothingRecorded() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        JobMarket.JobParams memory p = _tokenParams(address(fee));
        uint256 escrow = _escrow(p, M);
        fee.mint(requester, escrow);
        vm.prank(requester);
        fee.approve(address(market), escrow);
        uint256 count = market.jobCount();
        vm.expectRevert(
            abi.encodeWithSelector(
                JobMarket.JobMarketTokenAmountMismatch.selector, address(fee), escrow, escrow - escrow / 100
            )
        );
        vm.prank(requester);
        market.postJob(p);
        assertEq(market.jobCount(), count, "no job recorded");
        assertEq(fee.balanceOf(requester), escrow, "the requester keeps its tokens");
    }

    function test_token_aTokenThatReturnsNothingIsAccepted() public {
        NoReturnToken usdt = new NoReturnToken();
        JobMarket.JobParams memory p = _tokenParams(address(usdt));
        uint256 escrow = _escrow(p, M);
        uint256 id = _postIn(address(usdt), p);
        assertEq(usdt.balanceOf(address(market)), escrow, "escrow pulled");
        vm.prank(requester);
        market.cancelJob(id);
        vm.prank(requester);
        market.withdrawToken(address(usdt));
        assertEq(usdt.balanceOf(requester), escrow, "and paid back out");
    }

    function test_token_refusedTransfersRevertWithTheirName() public {
        JobMarket.JobParams memory p = _tokenParams(address(usd));
        uint256 escrow = _escrow(p, M);
        // No allowance.
        usd.mint(requester, escrow);
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketTokenTransferFailed.selector, address(usd), address(market), escrow)
        );
        vm.prank(requester);
        market.postJob(p);
        // A token that says false.
        FalseToken f = new FalseToken();
        p.token = address(f);
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketTokenTransferFailed.selector, address(f), address(market), escrow)
        );
        vm.prank(requester);
        market.postJob(p);
        // An address with no code (a typo, or a token not deployed on this chain).
        p.token = address(0xDEAD);
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketTokenTransferFailed.selector, address(0xDEAD), address(market), escrow)
        );
        vm.prank(requester);
        market.postJob(p);
        assertEq(market.jobCount(), 0, "nothing recorded");
    }

    /// @notice A hostile token that re-enters postJob from transferFrom to have
    /// one deposit counted for two jobs gets neither.
    function test_token_reentryFromTheTokenIsRefused() public {
        ReentrantToken evil = new ReentrantToken();
        JobMarket.JobParams memory p = _tokenParams(address(evil));
        uint256 escrow = _escrow(p, M);
        evil.mint(requester, 2 * escrow);
        vm.prank(requester);
        evil.approve(address(market), 2 * escrow);
        evil.arm(address(market), abi.encodeCall(JobMarket.postJob, (p)));
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketTokenTransferFailed.selector, address(evil), address(market), escrow)
        );
        vm.prank(requester);
        market.postJob(p);
        assertEq(market.jobCount(), 0, "no job from the re-entry either");
        assertEq(evil.balanceOf(address(market)), 0, "nothing taken");
    }

    /// @notice A token's units are not bounded by ETH's supply: an escrow the
    /// books (uint128) cannot hold is refused by name, never truncated.
    function test_token_anEscrowTooLargeForTheBooksIsRefused() public {
        JobMarket.JobParams memory p = _tokenParams(address(usd));
        p.rewardPerReplica = type(uint96).max;
        p.mapTasks = 1 << 31;
        uint256 required = uint256(p.rewardPerReplica) * (uint256(M) * p.mapTasks + p.extraSeats);
        assertTrue(required > type(uint128).max, "the case is real");
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketEscrowTooLarge.selector, required, type(uint128).max)
        );
        vm.prank(requester);
        market.postJob(p);
    }

    /// @notice Collateral is staked ETH; a token reward has no price on chain,
    /// so a token job needs only the chain's collateral floor, while an ETH
    /// job still needs twice its reward.
    function test_token_collateralFloorIsTheChainsForTokenJobs() public {
        JobMarket.JobParams memory p = _tokenParams(address(usd));
        p.rewardPerReplica = 1e24; // a large number of token units
        p.collateral = MIN_COLLATERAL;
        uint256 id = _postToken(p);
        assertEq(_job(id).collateral, MIN_COLLATERAL, "accepted at the floor");
        p.collateral = MIN_COLLATERAL - 1;
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketCollateralTooLow.selector, MIN_COLLATERAL - 1, MIN_COLLATERAL)
        );
        vm.prank(requester);
        market.postJob(p);
        JobMarket.JobParams memory e = _params();
        e.rewardPerReplica = MIN_COLLATERAL;
        e.collateral = MIN_COLLATERAL;
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketCollateralTooLow.selector, MIN_COLLATERAL, 2 * MIN_COLLATERAL)
        );
        vm.prank(requester);
        market.postJob{value: _escrow(e, M)}(e);
    }

    /// @notice A job's token that stops transferring (paused, blocklisting,
    /// hostile) cannot hold a worker's ETH collateral hostage: collect never
    /// calls the token, so the collateral is released and only the token
    /// reward is stuck, in that token alone.
    function test_token_aFrozenTokenCannotHoldCollateralHostage() public {
        FreezableToken t = new FreezableToken();
        uint256 id = _postIn(address(t), _tokenParams(address(t)));
        _toSeed(id, 0);
        _draw(stranger, id, 0);
        address[] memory seats = _seats(id, 0);
        bytes32 d = _truth(id, 0);
        _commitAll(seats, id, 0, d);
        t.freeze();
        address w = seats[0];
        uint256 stakeBefore = _stakeOf(w);
        assertEq(_reveal(w, id, 0, d), USD_REWARD, "paid in the books");
        assertEq(_lockedOf(w), 0, "collateral released although the token is frozen");
        assertEq(_stakeOf(w), stakeBefore, "stake intact");
        vm.expectRevert(
            abi.encodeWithSelector(JobMarket.JobMarketTokenTransferFailed.selector, address(t), w, USD_REWARD)
        );
        vm.prank(w);
        market.withdrawToken(address(t));
        assertEq(market.tokenCredits(address(t), w), USD_REWARD, "the credit stays for when the token thaws");
    }

    /// @notice ETH credits and token credits are separate books: neither
    /// withdrawal reaches the other's.
    function test_token_ethAndTokenCreditsNeverMix() public {
        JobMarket.JobParams memory tp = _tokenParams(address(usd));
        uint256 tokenJob = _postToken(tp);
        uint256 ethJob = _postDefault();
        vm.startPrank(requester);
        market.cancelJob(tokenJob);
        market.cancelJob(ethJob);
        vm.expectRevert(abi.encodeWithSelector(JobMarket.JobMarketNothingToWithdraw.selector, requester));
        market.withdrawToken(address(0)); // ETH is not a token
        uint256 ethBefore = requester.balance;
        market.withdraw();
        assertEq(requester.balance - ethBefore, _escrow(_params(), M), "withdraw pays the ETH escrow only");
        assertEq(market.tokenCredits(address(usd), requester), _escrow(tp, M), "token credit untouched");
        market.withdrawToken(address(usd));
        vm.stopPrank();
        assertEq(usd.balanceOf(requester), _escrow(tp, M), "withdrawToken pays the token escrow only");
        assertEq(address(market).balance, 0, "no ETH left");
    }
}
