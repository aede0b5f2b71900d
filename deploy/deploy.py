"""Deploy JobMarket (which creates its WorkerPool) to any EVM RPC endpoint.

    python -m deploy.deploy --rpc-url http://127.0.0.1:8545 --private-key 0x...

writes ``deployments/<chainId>.json`` with both addresses and the deployment
block, which is where event scans (workers, indexer) start.

The market's floors (shortest lease and reveal window, least collateral and
stake, epoch length, draw delay) are fixed at deployment. By default they are
derived from the chain's block time, measured before deploying: a window must
span enough blocks that a timely worker's transaction lands in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from shardex.chain.artifacts import load_artifact
from shardex.chain.client import ChainClient, Deployment
from shardex.chain.errors import ChainError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "deployments"
#: One week: long enough that a worker cannot escape a slash for a job it
#: still holds (job timeouts are shorter), short enough to get money out.
DEFAULT_UNBONDING_DELAY = 7 * 24 * 3600
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class MarketConfig:
    """``JobMarket.Config``: chain-wide floors every job must meet."""

    unbonding_delay: int = DEFAULT_UNBONDING_DELAY
    min_stake: int = 10**15  # 0.001 ETH to enter a pool: members cost sybils something
    min_collateral: int = 10**9
    min_lease_duration: int = 10
    min_reveal_window: int = 5
    epoch_blocks: int = 16
    draw_delay: int = 0
    randomness: str = ZERO_ADDRESS  # an IRandomness source; zero: blockhash

    @classmethod
    def for_block_time(cls, block_time: float, **overrides) -> MarketConfig:
        """Windows of at least 10 blocks (10 s / 5 s when blocks are mined on
        demand); a seed block 2 blocks after posting on a chain with a block
        time (0 on an on-demand devnet, where the posting block's hash is the
        seed); epochs long enough to draw in (64 blocks; 16 on demand)."""
        if block_time <= 0:
            return cls(**overrides)
        fields = dict(min_lease_duration=max(10, math.ceil(10 * block_time)),
                      min_reveal_window=max(5, math.ceil(10 * block_time)), epoch_blocks=64, draw_delay=2)
        return cls(**(fields | overrides))

    def as_abi_tuple(self) -> tuple:
        return (self.unbonding_delay, self.min_stake, self.min_collateral, self.min_lease_duration,
                self.min_reveal_window, self.epoch_blocks, self.draw_delay)


async def deploy(rpc_url: str, account: LocalAccount, *, unbonding_delay: int = DEFAULT_UNBONDING_DELAY,
                 config: MarketConfig | None = None, timeout: float = 120.0) -> Deployment:
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        chain_id = await w3.eth.chain_id
        if config is None:
            config = MarketConfig.for_block_time(await _block_time(rpc_url, chain_id),
                                                 unbonding_delay=unbonding_delay)
        artifact = load_artifact("JobMarket")
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = await factory.constructor(config.as_abi_tuple(), config.randomness).build_transaction({
            "from": account.address,
            "nonce": await w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": chain_id,
        })
        signed = account.sign_transaction(tx)
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.05)
        if receipt["status"] != 1:
            raise ChainError(f"JobMarket deployment transaction {tx_hash.hex()} failed")
        market_address = receipt["contractAddress"]
        market = w3.eth.contract(address=market_address, abi=artifact["abi"])
        registry_address = await market.functions.pool().call()
        return Deployment(chain_id, market_address, registry_address, receipt["blockNumber"])
    finally:
        await w3.provider.disconnect()


async def _block_time(rpc_url: str, chain_id: int) -> float:

    client = ChainClient(rpc_url, Deployment(chain_id, ZERO_ADDRESS, ZERO_ADDRESS))
    try:
        return await client.block_time()
    finally:
        await client.aclose()


def write_deployment(deployment: Deployment, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{deployment.chain_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(deployment.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy the Shardex contracts.")
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--private-key", default=os.environ.get("SHARDEX_PRIVATE_KEY"),
                        help="deployer key (default: $SHARDEX_PRIVATE_KEY)")
    parser.add_argument("--unbonding-delay", type=int, default=DEFAULT_UNBONDING_DELAY)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    if not args.private_key:
        parser.error("--private-key or SHARDEX_PRIVATE_KEY is required")
    deployment = asyncio.run(deploy(args.rpc_url, Account.from_key(args.private_key),
                                    unbonding_delay=args.unbonding_delay))
    path = write_deployment(deployment, args.out_dir)
    print(json.dumps({**deployment.to_json(), "file": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
