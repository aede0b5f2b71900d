"""Deploy JobMarket (which creates its WorkerRegistry) to any EVM RPC endpoint.

    python -m deploy.deploy --rpc-url http://127.0.0.1:8545 --private-key 0x...

writes ``deployments/<chainId>.json`` with both addresses and the deployment
block, which is where event scans (workers, indexer) start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from shardex.chain.artifacts import load_artifact
from shardex.chain.client import Deployment
from shardex.chain.errors import ChainError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "deployments"
#: One week: long enough that a worker cannot escape a slash for a job it
#: still holds (job timeouts are shorter), short enough to get money out.
DEFAULT_UNBONDING_DELAY = 7 * 24 * 3600


async def deploy(rpc_url: str, account: LocalAccount, *, unbonding_delay: int = DEFAULT_UNBONDING_DELAY,
                 timeout: float = 120.0) -> Deployment:
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        chain_id = await w3.eth.chain_id
        artifact = load_artifact("JobMarket")
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = await factory.constructor(unbonding_delay).build_transaction({
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
        registry_address = await market.functions.registry().call()
        return Deployment(chain_id, market_address, registry_address, receipt["blockNumber"])
    finally:
        await w3.provider.disconnect()


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
