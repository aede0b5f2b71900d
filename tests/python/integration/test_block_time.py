"""What a worker takes for the chain's block time: the floor of its window rule."""

from __future__ import annotations

import asyncio

import pytest

from deploy.devnet import Anvil, rpc_call
from shardex.chain import ChainClient, Deployment

pytestmark = pytest.mark.integration

NOWHERE = Deployment(31337, "0x" + "1" * 40, "0x" + "2" * 40, 0)


async def test_a_chain_with_a_block_time_reports_it() -> None:
    anvil = Anvil.start(block_time=2)
    try:
        client = ChainClient(anvil.rpc_url, NOWHERE)
        while await client.block_number() < 3:
            await asyncio.sleep(0.5)
        assert await client.block_time() == 2.0
        await client.aclose()
    finally:
        anvil.stop()


async def test_an_on_demand_chain_lands_transactions_at_once_whatever_its_timestamps() -> None:
    anvil = Anvil.start()  # automine: a block per transaction, at once
    try:
        for gap in (3, 7, 3, 30, 3, 5):  # sparse transactions: every gap a few seconds or more
            rpc_call(anvil.rpc_url, "evm_increaseTime", gap)
            rpc_call(anvil.rpc_url, "evm_mine")
        client = ChainClient(anvil.rpc_url, NOWHERE)
        assert await client.block_time() == 0.0
        await client.aclose()
    finally:
        anvil.stop()
