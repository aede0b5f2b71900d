"""Dishonest parties for the e2e tests: the real `shardex` command with one fault
injected through a seam, never through a flag of the product.

    python -m tests.python.e2e.faults liar ARGS...        a worker whose every
        committed result is a lie: a well-formed digest of a manifest no honest
        replica produced (worker.agent's compute seam)
    python -m tests.python.e2e.faults standin-embed ARGS...  a worker whose online
        POST /embed is a CPU-bound stand-in, not the model (the agent's
        online_embed_fn seam): tests the serving path without the weights
    python -m tests.python.e2e.faults underpay=WEI ARGS...  a requester whose
        postJob sends WEI as escrow instead of the exact amount (the chain
        client's post_job seam): the contract's check must refuse it
    python -m tests.python.e2e.faults withhold-inputs ARGS...  a requester that
        serves its job spec but has lost its map shards (deleted from its store
        once the spec is prepared: shardex.requester's prepare seam), so no
        drawn worker can fetch them from anyone
    python -m tests.python.e2e.faults corrupt-serve ARGS...  `store serve` whose
        trustless gateway flips the first byte of every block it serves, raw or
        in a CAR (the EmbeddedStore read seam): a provider that lies
"""

from __future__ import annotations

import sys


def _liar() -> None:
    import worker.agent

    honest = worker.agent.compute

    async def lie(*args, **kwargs) -> bytes:
        return await honest(*args, **kwargs) + b"\n"  # other bytes, so another digest

    worker.agent.compute = lie


def _standin_embed() -> None:
    from worker.agent import Agent
    from worker.colocation.online import standin_embed_fn

    Agent.online_embed_fn = lambda self: standin_embed_fn()


def _underpay(wei: int) -> None:
    from shardex.chain.client import ChainClient

    honest = ChainClient.post_job

    def post_job(self, params):
        call = honest(self, params)
        call.value = wei
        return call

    ChainClient.post_job = post_job


def _withhold_inputs() -> None:
    import shardex.requester
    from shardex.storage import CID

    honest = shardex.requester.prepare

    async def prepare(req, store):
        spec = await honest(req, store)
        for shard in spec.map_shards:
            store.blocks.delete(CID.parse(shard))  # a shard of a small input is one block
        return spec

    shardex.requester.prepare = prepare


def _corrupt_serve() -> None:
    from shardex.storage.embedded import EmbeddedStore

    get, walk = EmbeddedStore.get_block_sync, EmbeddedStore.walk

    def flip(block: bytes) -> bytes:
        return bytes([block[0] ^ 0xFF]) + block[1:]

    EmbeddedStore.get_block_sync = lambda self, cid: flip(get(self, cid))
    EmbeddedStore.walk = lambda self, cid: ((c, flip(b)) for c, b in walk(self, cid))


if __name__ == "__main__":
    fault = sys.argv.pop(1)
    if fault == "liar":
        _liar()
    elif fault == "standin-embed":
        _standin_embed()
    elif fault == "withhold-inputs":
        _withhold_inputs()
    elif fault == "corrupt-serve":
        _corrupt_serve()
    elif fault.startswith("underpay="):
        _underpay(int(fault.split("=", 1)[1]))
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    from shardex_cli import app

    app()
