"""The running devnet as the rest of Shardex sees it: ``<home>/devnet.json``.

``shardex devnet up`` (``deploy.devnet``) starts Anvil, deploys the contracts
and writes this record (RPC URL, chain id, addresses, dev keys, pid); every
other command reads it through :class:`shardex.config.Settings`, so nothing
needs flags while it runs. Nothing here starts a process.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from shardex.chain.client import Deployment

#: Anvil's well-known development mnemonic: its keys are public, so they are
#: only ever used against a dev chain (chain id 31337).
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 31337
DEV_ACCOUNTS = 10
#: With no key given, commands act as dev key 0 and workers take keys from this
#: one on: a worker and a requester on their defaults never share a nonce.
FIRST_WORKER_DEV_KEY = 1


def dev_accounts(count: int = DEV_ACCOUNTS) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (not yet reaped by us) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class DevnetInfo:
    pid: int
    rpc_url: str
    chain_id: int
    market: str
    registry: str
    block: int
    dev_keys: list[str]
    dev_addresses: list[str]
    state_file: str | None
    log: str

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.chain_id, self.market, self.registry, self.block)

    def public_json(self) -> dict:
        """What `devnet up --json` prints: keys included, they are public dev keys."""
        return asdict(self)


def devnet_file(home: Path) -> Path:
    return home / "devnet.json"


def _recorded_devnet(home: Path) -> DevnetInfo | None:
    """The devnet record in ``home``, running or not."""
    try:
        return DevnetInfo(**json.loads(devnet_file(home).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def load_devnet(home: Path) -> DevnetInfo | None:
    """The running devnet, or None (a file left by a dead devnet is ignored)."""
    info = _recorded_devnet(home)
    return info if info is not None and pid_alive(info.pid) else None


def stopped_devnet_note(home: Path) -> str:
    """Why a devnet's settings are missing when its record is there but its Anvil is not
    (it died, or is restarting): a sentence to add to the error, or ''."""
    info = _recorded_devnet(home)
    if info is None or pid_alive(info.pid):
        return ""
    return (f" (the devnet recorded in {devnet_file(home)} is not running: its Anvil, pid {info.pid}, has exited; "
            "`shardex devnet up`, with --state FILE if it had one, starts it again)")
