from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardex.units import AmountError, format_eth, parse_amount


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_format_then_parse_is_exact(wei: int) -> None:
    assert parse_amount(format_eth(wei).removesuffix(" ETH")) == wei


@pytest.mark.parametrize(("text", "wei"), [
    ("10000000000.000000000000000001", 10**28 + 1),  # 29 significant digits: past decimal's default precision
    ("1", 10**18), ("1.5eth", 15 * 10**17), ("0.000000000000000001", 1), ("20gwei", 20 * 10**9),
    ("7 wei", 7), ("1_000wei", 1000), ("2 ETH", 2 * 10**18),
])
def test_parse_units(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize("text", ["", "abc", "-1", "0.0000000000000000001", "1.5wei", "1e-30"])
def test_parse_rejects_non_wei_amounts(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)
