"""The one-shot ``deploy`` service of docker-compose.yml: deploys the contracts
to the compose devnet once and writes the config file every other service
reads (SHARDEX_CONFIG): the RPC URL, chain id and contract addresses.

Run again (``docker compose up`` after a restart), it finds the contracts
already at the recorded addresses and leaves them as they are.

    python -m deploy.compose --rpc-url http://devnet:8545 --out /deployment/config.toml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
from eth_account import Account

from deploy.deploy import DEFAULT_UNBONDING_DELAY, deploy
from deploy.devnet import rpc_call
from shardex.devnet import dev_accounts
from shardex.errors import DevnetError


def wait_for_chain(rpc_url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            rpc_call(rpc_url, "eth_chainId")
            return
        except (httpx.HTTPError, DevnetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def deployed(rpc_url: str, config: Path) -> bool:
    if not config.exists():
        return False
    market = next((line.split("=", 1)[1].strip().strip('"') for line in config.read_text().splitlines()
                   if line.startswith("market")), None)
    return market is not None and rpc_call(rpc_url, "eth_getCode", market, "latest") not in ("0x", "0x0")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rpc-url", required=True)
    ap.add_argument("--out", type=Path, required=True, help="the config file to write (TOML)")
    ap.add_argument("--unbonding-delay", type=int, default=DEFAULT_UNBONDING_DELAY)
    args = ap.parse_args(argv)
    wait_for_chain(args.rpc_url)
    if deployed(args.rpc_url, args.out):
        print(f"contracts already deployed ({args.out})")
        return 0
    key = os.environ.get("SHARDEX_PRIVATE_KEY")
    account = Account.from_key(key) if key else dev_accounts(1)[0]  # the devnet's first dev key
    d = asyncio.run(deploy(args.rpc_url, account, unbonding_delay=args.unbonding_delay))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(f'rpc_url = "{args.rpc_url}"\nchain_id = {d.chain_id}\nmarket = "{d.market}"\n'
                   f'registry = "{d.registry}"\ndeployment_block = {d.block}\n', encoding="utf-8")
    os.replace(tmp, args.out)
    print(json.dumps(d.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
