"""The operator's fee strategy and the L1 data fee, without a chain."""

from __future__ import annotations

import zlib

import pytest

from shardex.chain.fees import FeeAboveCap, FeeStrategy, L1Pricing, reported_l1_fee
from shardex.config import Settings
from shardex.errors import ConfigError

GWEI = 10**9


def test_fees_leave_headroom_over_the_base_fee_and_never_pass_the_cap() -> None:
    assert FeeStrategy().fees(7 * GWEI) == (14 * GWEI + 1_000_000, 1_000_000)  # today's default: 2x base + 0.001 gwei
    strategy = FeeStrategy(priority_fee_wei=GWEI, base_fee_multiplier=1.5, max_fee_per_gas_wei=20 * GWEI)
    assert strategy.fees(10 * GWEI) == (16 * GWEI, GWEI)
    assert strategy.fees(15 * GWEI) == (20 * GWEI, GWEI)  # capped, still enough for this block
    with pytest.raises(FeeAboveCap) as caught:
        strategy.fees(19_500_000_001)  # base + tip above the cap: wait rather than overpay
    assert (caught.value.base_fee, caught.value.tip, caught.value.cap) == (19_500_000_001, GWEI, 20 * GWEI)


@pytest.mark.parametrize("bad", [{"priority_fee_wei": -1}, {"base_fee_multiplier": 0.5},
                                 {"priority_fee_wei": 5, "max_fee_per_gas_wei": 4}])
def test_nonsense_fee_settings_are_refused_by_name(bad: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        FeeStrategy(**bad)
    for key, value in bad.items():
        monkeypatch.setenv(f"SHARDEX_{key.upper()}", str(value))
    with pytest.raises(ConfigError, match="fee settings"):
        Settings().chain_options()


def test_the_l1_fee_is_the_receipts_where_reported_else_an_estimate_at_the_given_prices() -> None:
    assert reported_l1_fee({"l1Fee": "0x10"}) == 16 and reported_l1_fee({"l1Fee": 17}) == 17
    assert reported_l1_fee({"gasUsed": 21_000}) is None
    data = bytes(range(256)) * 4
    pricing = L1Pricing(10 * GWEI, 0.7)
    assert pricing.estimate(data) == round(len(zlib.compress(data, 9)) * 16 * 10 * GWEI * 0.7)


def test_settings_carry_the_strategy_and_pricing_to_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDEX_PRIORITY_FEE_WEI", "3")
    monkeypatch.setenv("SHARDEX_MAX_FEE_PER_GAS_WEI", "100")
    monkeypatch.setenv("SHARDEX_L1_BASE_FEE_WEI", "7")
    options = Settings().chain_options()
    assert options["fees"] == FeeStrategy(3, 2.0, 100) and options["l1_pricing"] == L1Pricing(7, 1.0)
    monkeypatch.delenv("SHARDEX_L1_BASE_FEE_WEI")
    assert Settings().chain_options()["l1_pricing"] is None
