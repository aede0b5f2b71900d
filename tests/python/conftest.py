"""Fixtures shared by every Python test.

Integration tests run against one real Anvil node per session (random
loopback port) with the contracts deployed once; every test runs inside an
``evm_snapshot`` that is reverted afterwards, so tests never see each other.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a red CI is then reproducible);
# local runs explore new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

from shardex.chain import ChainClient, Deployment
from deploy.devnet import Anvil, rpc_call
from shardex.devnet import dev_accounts


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's ~/.shardex or config."""
    home = tmp_path_factory.mktemp("shardex-home")
    monkeypatch.setenv("SHARDEX_HOME", str(home))
    for key in list(os.environ):
        if key.startswith("SHARDEX_") and key not in ("SHARDEX_HOME", "SHARDEX_ANVIL"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = Anvil.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator:
    """One throwaway PostgreSQL server per session (deploy/postgres.py); each test makes its own databases."""
    from deploy.postgres import PostgresCluster

    directory = Path(tempfile.mkdtemp(prefix="shardex-pg-"))
    cluster = PostgresCluster.start(directory)
    yield cluster
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


_databases = itertools.count()

#: A factory of fresh, empty index databases: name -> SQLAlchemy URL.
IndexDb = Callable[[str], str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def index_db(request: pytest.FixtureRequest, tmp_path: Path) -> IndexDb:
    """Runs a test once on SQLite and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return lambda name: new_database(cluster, name)


def new_database(cluster, name: str) -> str:
    """A fresh database on the session's PostgreSQL server, named after ``name``; its URL."""
    return cluster.create_database(f"{name}_{os.getpid()}_{next(_databases)}")


rpc = rpc_call  # tests drive Anvil's evm_* methods with the devnet's own helper


@pytest.fixture(scope="session")
def deployment(anvil: Anvil) -> Deployment:
    import asyncio

    from deploy.deploy import deploy

    return asyncio.run(deploy(anvil.rpc_url, dev_accounts(1)[0], unbonding_delay=3600))


@pytest.fixture
def chain(anvil: Anvil, deployment: Deployment) -> Iterator[Chain]:
    snapshot = rpc(anvil.rpc_url, "evm_snapshot")
    yield Chain(anvil.rpc_url, deployment)
    rpc(anvil.rpc_url, "evm_revert", snapshot)


class Chain:
    """Handle on the test chain: clients per dev account and time travel."""

    def __init__(self, rpc_url: str, deployment: Deployment) -> None:
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.accounts = dev_accounts()
        self._clients: list[ChainClient] = []

    def client(self, index: int) -> ChainClient:
        c = ChainClient(self.rpc_url, self.deployment, self.accounts[index])
        self._clients.append(c)
        return c

    def reader(self) -> ChainClient:
        c = ChainClient(self.rpc_url, self.deployment)
        self._clients.append(c)
        return c

    def warp(self, seconds: int) -> None:
        rpc(self.rpc_url, "evm_increaseTime", seconds)
        rpc(self.rpc_url, "evm_mine")

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            rpc(self.rpc_url, "evm_mine")

    async def next_epoch(self) -> None:
        """Mine until the pool's next epoch, when stakes and opt-ins made now count."""
        reader = self.reader()
        epoch = await reader.epoch()
        while await reader.epoch() == epoch:
            self.mine()

    async def close(self) -> None:
        for c in self._clients:
            await c.aclose()


@pytest.fixture
async def net(chain: Chain) -> AsyncIterator[Chain]:
    yield chain
    await chain.close()
