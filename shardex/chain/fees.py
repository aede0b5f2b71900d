"""What a transaction may cost and what it did cost.

``FeeStrategy`` is the operator's EIP-1559 policy: the tip offered to the
block producer, the headroom over the current base fee (so a transaction
still lands when the base fee rises while it waits), and an optional cap no
transaction may exceed per gas (``FeeAboveCap`` is raised instead of paying
more; the agent retries with backoff, so it waits for cheaper blocks).

On an OP Stack chain a transaction also pays an L1 data fee for its calldata,
which its gas does not show. Such a chain's receipts carry it (``l1Fee``);
where they do not (Anvil's OP Stack mode, a node that omits it) the fee is
estimated at operator-given L1 prices (``L1Pricing``): compressed calldata
bytes x 16 x L1 base fee x scalar, the pre-blob formula with zlib standing in
for the chain's own compressor: an estimate, and reported as one.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from shardex.chain.errors import ChainError

#: The tip when the operator sets none: 0.001 gwei, enough where blocks are not full.
DEFAULT_PRIORITY_FEE_WEI = 1_000_000


class FeeAboveCap(ChainError):
    """The fees a transaction needs now exceed the operator's cap per gas."""

    def __init__(self, base_fee: int, tip: int, cap: int) -> None:
        super().__init__(f"the base fee {base_fee} wei plus the tip {tip} wei exceed the cap of {cap} wei per gas "
                         "(SHARDEX_MAX_FEE_PER_GAS_WEI): not sending until the base fee falls")
        self.base_fee, self.tip, self.cap = base_fee, tip, cap


@dataclass(frozen=True)
class FeeStrategy:
    priority_fee_wei: int = DEFAULT_PRIORITY_FEE_WEI
    base_fee_multiplier: float = 2.0
    max_fee_per_gas_wei: int | None = None

    def __post_init__(self) -> None:
        if self.priority_fee_wei < 0:
            raise ValueError(f"priority fee {self.priority_fee_wei}: must be >= 0")
        if not 1.0 <= self.base_fee_multiplier <= 100.0:
            raise ValueError(f"base fee multiplier {self.base_fee_multiplier}: must be in [1, 100]")
        if self.max_fee_per_gas_wei is not None and self.max_fee_per_gas_wei < self.priority_fee_wei:
            raise ValueError(f"max fee per gas {self.max_fee_per_gas_wei} wei is below the tip "
                             f"{self.priority_fee_wei} wei")

    def fees(self, base_fee: int) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) for a block whose base fee is ``base_fee``."""
        tip = self.priority_fee_wei
        max_fee = math.ceil(base_fee * self.base_fee_multiplier) + tip
        cap = self.max_fee_per_gas_wei
        if cap is not None:
            if base_fee + tip > cap:
                raise FeeAboveCap(base_fee, tip, cap)
            max_fee = min(max_fee, cap)
        return max_fee, tip


@dataclass(frozen=True)
class L1Pricing:
    """L1 prices to estimate an OP Stack chain's data fee with, where receipts do not report it."""

    base_fee_wei: int
    scalar: float = 1.0

    def estimate(self, calldata: bytes) -> int:
        return round(len(zlib.compress(calldata, 9)) * 16 * self.base_fee_wei * self.scalar)

    def describe(self) -> str:
        return f"estimated at an L1 base fee of {self.base_fee_wei} wei, scalar {self.scalar:g}"


def reported_l1_fee(raw_receipt: Any) -> int | None:
    """The L1 data fee an OP Stack node put in a receipt, None where it put none."""
    value = raw_receipt.get("l1Fee") if hasattr(raw_receipt, "get") else None
    if value is None:
        return None
    return int(value, 16) if isinstance(value, str) else int(value)
