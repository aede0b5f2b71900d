"""Exact ETH amounts: parsing and formatting without floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

from shardex.errors import ShardexError

_UNITS = {"eth": 10**18, "ether": 10**18, "gwei": 10**9, "wei": 1}


class AmountError(ShardexError, ValueError):
    """An amount string that is not a non-negative whole number of wei."""


def parse_amount(text: str) -> int:
    """``"1.5"`` and ``"1.5eth"`` are ETH; ``"20gwei"``, ``"7wei"`` are what they say."""
    raw = text.strip().lower().replace("_", "")
    unit = "eth"
    for name in sorted(_UNITS, key=len, reverse=True):
        if raw.endswith(name):
            raw, unit = raw[: -len(name)].strip(), name
            break
    try:
        # Default decimal precision is 28 digits: 10 billion ETH in wei already
        # needs 29. Amounts must never be rounded.
        with localcontext() as ctx:
            ctx.prec = 200
            value = Decimal(raw) * _UNITS[unit]
    except InvalidOperation:
        raise AmountError(f"not an amount: {text!r} (examples: 0.5, 0.5eth, 20gwei, 1000wei)") from None
    if value < 0 or value != value.to_integral_value():
        raise AmountError(f"{text!r} is not a non-negative whole number of wei")
    return int(value)


def format_eth(wei: int) -> str:
    """Exact decimal ETH, trailing zeros trimmed: 1500000000000000000 -> '1.5 ETH'."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(wei), 10**18)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return f"{sign}{text} ETH"
