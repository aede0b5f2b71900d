"""One settings object for every Shardex command and service.

Precedence, highest first: explicit arguments (CLI flags), ``SHARDEX_*``
environment variables, the config file (TOML: ``$SHARDEX_CONFIG`` or
``<home>/config.toml``), then the running devnet (``<home>/devnet.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shardex.chain.client import Deployment
from shardex.chain.fees import DEFAULT_PRIORITY_FEE_WEI, FeeStrategy, L1Pricing
from shardex.devnet import DEV_CHAIN_ID, load_devnet, stopped_devnet_note
from shardex.errors import ConfigError


def default_home() -> Path:
    return Path(os.environ.get("SHARDEX_HOME", "~/.shardex")).expanduser()


def config_path() -> Path:
    return Path(os.environ.get("SHARDEX_CONFIG", default_home() / "config.toml")).expanduser()


class DevnetSource(PydanticBaseSettingsSource):
    """Fills chain settings from a running devnet; lowest precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        info = load_devnet(default_home())
        if info is None:
            return {}
        return {"rpc_url": info.rpc_url, "chain_id": info.chain_id, "market": info.market,
                "registry": info.registry, "deployment_block": info.block,
                "devnet_rpc_url": info.rpc_url, "dev_keys": info.dev_keys}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHARDEX_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    rpc_url: str | None = None
    chain_id: int | None = None
    market: str | None = None
    registry: str | None = None
    deployment_block: int = 0
    private_key: SecretStr | None = None
    #: An eth-account encrypted keystore file, unlocked with keystore_password.
    keystore: Path | None = None
    keystore_password: SecretStr | None = None
    #: Which Anvil dev key to use on a devnet when no private key is set.
    account_index: int = 0
    #: Embedded content store directory (default: <home>/store).
    store_dir: Path | None = None
    #: A Kubo RPC endpoint (e.g. http://127.0.0.1:5001); replaces the embedded store.
    ipfs_api: str | None = None
    #: Seconds before any call to a remote store gives up.
    ipfs_timeout: float = 30.0
    #: EIP-1559 fees of every transaction sent: the tip, the headroom over the base fee, and a cap
    #: per gas that no transaction exceeds (it waits instead). Wei.
    priority_fee_wei: int = DEFAULT_PRIORITY_FEE_WEI
    base_fee_multiplier: float = 2.0
    max_fee_per_gas_wei: int | None = None
    #: L1 prices to estimate an OP Stack chain's data fee with, where its receipts do not report it.
    l1_base_fee_wei: int | None = None
    l1_fee_scalar: float = 1.0
    # Filled only from a running devnet.
    devnet_rpc_url: str | None = None
    dev_keys: list[str] = Field(default_factory=list, repr=False)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
                DevnetSource(settings_cls))

    @property
    def content_dir(self) -> Path:
        return self.store_dir or self.home / "store"

    @property
    def on_devnet(self) -> bool:
        return self.devnet_rpc_url is not None and self.rpc_url == self.devnet_rpc_url

    def chain_options(self) -> dict:
        """ChainClient's keyword arguments for the fee strategy and L1 pricing set here."""
        try:
            fees = FeeStrategy(self.priority_fee_wei, self.base_fee_multiplier, self.max_fee_per_gas_wei)
        except ValueError as exc:
            raise ConfigError(f"fee settings: {exc}") from None
        pricing = None if self.l1_base_fee_wei is None else L1Pricing(self.l1_base_fee_wei, self.l1_fee_scalar)
        return {"fees": fees, "l1_pricing": pricing}

    def deployment(self) -> Deployment:
        if not self.rpc_url or not self.market or self.chain_id is None:
            raise ConfigError("no chain configured: run `shardex devnet up`, or set SHARDEX_RPC_URL, "
                              "SHARDEX_CHAIN_ID and SHARDEX_MARKET (or the config file)" + stopped_devnet_note(self.home))
        if not self.registry:
            raise ConfigError("SHARDEX_REGISTRY is not set (it is JobMarket.registry())")
        return Deployment.from_json({"chain_id": self.chain_id, "market": self.market, "registry": self.registry,
                                     "block": self.deployment_block})

    def account(self) -> LocalAccount:
        if self.private_key is not None:
            return Account.from_key(self.private_key.get_secret_value())
        if self.keystore is not None:
            if self.keystore_password is None:
                raise ConfigError(f"keystore {self.keystore} needs SHARDEX_KEYSTORE_PASSWORD")
            try:
                encrypted = json.loads(Path(self.keystore).read_text(encoding="utf-8"))
                key = Account.decrypt(encrypted, self.keystore_password.get_secret_value())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot unlock keystore {self.keystore}: {exc}") from None
            return Account.from_key(key)
        # Dev keys are public: use them only against the dev chain they belong to.
        if self.on_devnet and self.chain_id == DEV_CHAIN_ID and self.dev_keys:
            if not 0 <= self.account_index < len(self.dev_keys):
                raise ConfigError(f"account index {self.account_index} out of range 0..{len(self.dev_keys) - 1}")
            return Account.from_key(self.dev_keys[self.account_index])
        raise ConfigError("no key: set SHARDEX_PRIVATE_KEY (or use a devnet, whose dev keys are used by default)"
                          + stopped_devnet_note(self.home))
