"""Async, typed client for the JobMarket and WorkerPool contracts.

Transactions are signed locally and the client hands out nonces itself, so a
caller can keep many transactions in flight::

    receipt = await client.draw(job_id, [0, 1])               # send and wait
    pending = [await client.stake(10**18).send() for _ in range(5)]
    receipts = await asyncio.gather(*(p.receipt() for p in pending))

Every revert surfaces as the Solidity custom error's class from
:mod:`shardex.chain.errors` with its arguments decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound, Web3RPCError

from shardex.chain import codec, models
from shardex.chain.artifacts import abi
from shardex.chain.errors import (
    ChainError,
    NonceTaken,
    TransactionDropped,
    TransactionFailed,
    TransactionRejected,
    decode_revert,
)
from shardex.chain.fees import FeeStrategy, L1Pricing, reported_l1_fee
from shardex.chain.models import Event, Job, JobParams, Replica, Task, WorkerInfo


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain."""

    chain_id: int
    market: str
    registry: str
    block: int = 0  # deployment block: where event scans start

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "market": self.market, "registry": self.registry, "block": self.block}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        return cls(int(data["chain_id"]), to_checksum_address(data["market"]),
                   to_checksum_address(data["registry"]), int(data.get("block", 0)))


@dataclass(frozen=True)
class Receipt:
    """A mined, successful transaction with its decoded events."""

    tx_hash: str
    block_number: int
    gas_used: int
    effective_gas_price: int
    events: list[Event] = field(default_factory=list)
    #: The L1 data fee on an OP Stack chain (reported by the node or estimated, see fees.py); 0 elsewhere.
    l1_fee: int = 0

    @property
    def fee(self) -> int:
        """Everything the sender paid: L2 execution plus the L1 data fee."""
        return self.gas_used * self.effective_gas_price + self.l1_fee

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]


@dataclass
class RpcTally:
    """How many JSON-RPC requests a client sent and the seconds they took, summed (requests in flight
    together each count their own time): how much of a process's time goes to talking to the chain."""

    requests: int = 0
    seconds: float = 0.0

    def add(self, seconds: float, requests: int = 1) -> None:
        self.requests += requests
        self.seconds += seconds


class _TallyingHTTPProvider(AsyncHTTPProvider):
    """An HTTP provider that counts its requests and their time in a :class:`RpcTally`."""

    def __init__(self, endpoint_uri: str, tally: RpcTally, **kwargs: Any) -> None:
        super().__init__(endpoint_uri, **kwargs)
        self.tally = tally

    async def make_request(self, method: Any, params: Any) -> Any:
        start = time.perf_counter()
        try:
            return await super().make_request(method, params)
        finally:
            self.tally.add(time.perf_counter() - start)

    async def make_batch_request(self, requests: Any) -> Any:
        start = time.perf_counter()
        try:
            return await super().make_batch_request(requests)
        finally:
            self.tally.add(time.perf_counter() - start, len(requests))


class PendingTx:
    """A sent transaction; ``await pending.receipt()`` waits for it to be mined."""

    def __init__(self, client: ChainClient, tx_hash: str, tx: dict[str, Any], label: str) -> None:
        self.client = client
        self.tx_hash = tx_hash
        self.tx = tx
        self.label = label

    async def receipt(self, timeout: float = 120.0) -> Receipt:
        return await self.client.wait_for(self, timeout)


class Call:
    """A contract write not yet sent. ``await call`` sends it and waits for the
    receipt; ``await call.send()`` only sends it (pipelining)."""

    def __init__(self, client: ChainClient, contract: Any, fn: str, args: tuple, value: int, gas: int | None):
        self.client, self.contract, self.fn, self.args, self.value, self.gas = client, contract, fn, args, value, gas

    async def send(self, gas: int | None = None) -> PendingTx:
        return await self.client.send_call(self, gas if gas is not None else self.gas)

    async def _send_and_wait(self) -> Receipt:
        return await (await self.send()).receipt()

    def __await__(self) -> Generator[Any, None, Receipt]:
        return self._send_and_wait().__await__()


class ChainClient:
    """One account's typed view of one deployment."""

    def __init__(self, rpc_url: str, deployment: Deployment, account: LocalAccount | None = None,
                 *, request_timeout: float = 30.0, fees: FeeStrategy | None = None,
                 l1_pricing: L1Pricing | None = None) -> None:
        self.rpc_url = rpc_url
        self.fees = fees or FeeStrategy()
        self.l1_pricing = l1_pricing
        self.deployment = deployment
        self.account = account
        self.rpc = RpcTally()
        self.w3 = AsyncWeb3(_TallyingHTTPProvider(rpc_url, self.rpc, request_kwargs={"timeout": request_timeout}))
        self.market = self.w3.eth.contract(address=deployment.market, abi=abi("JobMarket"))
        self.registry = self.w3.eth.contract(address=deployment.registry, abi=abi("WorkerPool"))
        self._names_by_address = {deployment.market.lower(): "JobMarket", deployment.registry.lower(): "WorkerPool"}
        self._nonce: int | None = None
        self._nonce_lock = asyncio.Lock()
        self._fees: tuple[float, int, int] | None = None  # (fetched_at, max_fee, tip)

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ChainClient:
        await self.check_chain()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.w3.provider.disconnect()

    async def check_chain(self) -> None:
        """Fail early, clearly, when the RPC is a different chain or has no contracts."""
        chain_id, code = await asyncio.gather(self.w3.eth.chain_id, self.w3.eth.get_code(self.deployment.market))
        if chain_id != self.deployment.chain_id:
            raise ChainError(f"RPC {self.rpc_url} is chain {chain_id}, deployment is for {self.deployment.chain_id}")
        if not code:
            raise ChainError(f"no JobMarket contract at {self.deployment.market} on chain {chain_id}")

    async def block_time(self, span: int = 16) -> float:
        """Seconds a transaction may wait for its block: 0.0 on a chain that mines
        on demand (Anvil's or Hardhat's automine says so), else the median gap
        between the last ``span`` blocks. Timestamps alone cannot tell an on-demand
        chain with idle gaps from one with a block time."""
        for method in ("anvil_getAutomine", "hardhat_getAutomine"):  # other chains answer "method not found"
            response = await self.w3.provider.make_request(method, [])
            if "result" in response:
                if response["result"] is True:
                    return 0.0
                break
        latest = int(await self.w3.eth.block_number)
        numbers = list(range(max(0, latest - span), latest + 1))
        if len(numbers) < 2:
            return 0.0
        blocks = await asyncio.gather(*(self.w3.eth.get_block(n) for n in numbers))
        gaps = sorted(int(b["timestamp"]) - int(a["timestamp"]) for a, b in zip(blocks, blocks[1:], strict=False))
        return float(gaps[len(gaps) // 2])

    async def mine_empty_blocks(self, count: int = 1) -> None:
        """Mine empty blocks on a chain that mines on demand (Anvil, Hardhat): a
        draw waiting there for its seed block or a new epoch would wait forever."""
        for _ in range(count):
            await self.w3.provider.make_request("evm_mine", [])

    async def epoch_blocks(self) -> int:
        return await self._view(self.registry, "epochBlocks")

    async def deployment_identity(self) -> str:
        """Names this deployment on this chain instance: chain id, market, and the hash
        of the deployment block (a devnet brought down and up again, same addresses
        and all, has another)."""
        block = await self.w3.eth.get_block(self.deployment.block)
        return f"{self.deployment.chain_id}:{self.deployment.market.lower()}:{self.deployment.block}:" \
               f"{bytes(block['hash']).hex()}"

    @property
    def address(self) -> str:
        return self._signer().address

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise ChainError("this client has no account: pass a private key or keystore to send transactions")
        return self.account

    # ------------------------------------------------------------ views

    async def job_count(self) -> int:
        return await self._view(self.market, "jobCount")

    async def job(self, job_id: int) -> Job:
        return Job.from_abi(job_id, await self._view(self.market, "job", job_id))

    async def task(self, job_id: int, task_id: int, block: int | str = "latest") -> Task:
        """The task as of ``block`` (a number: as it stood there, e.g. some confirmations deep)."""
        return Task.from_abi(await self._view(self.market, "task", job_id, task_id, block=block))

    async def replica(self, job_id: int, task_id: int, worker: str) -> Replica:
        return Replica.from_abi(await self._view(self.market, "replica", job_id, task_id, worker))

    async def credits(self, account: str | None = None) -> int:
        """Wei withdrawable from the market (rewards, refunds)."""
        return await self._view(self.market, "credits", account or self.address)

    async def burned(self) -> int:
        """Wei of slashed collateral burned so far (owed to no one)."""
        return await self._view(self.registry, "burned")

    async def worker(self, address: str | None = None) -> WorkerInfo:
        address = to_checksum_address(address or self.address)
        (stake, locked, settled, slashed), (unbond_amount, ready_at), (_floor, classes) = await asyncio.gather(
            self._view(self.registry, "workers", address), self._view(self.registry, "unbonding", address),
            self._view(self.registry, "membership", address))
        return WorkerInfo(address, stake, locked, settled, slashed, unbond_amount, ready_at, classes)

    async def epoch(self) -> int:
        """The pool's epoch: weights (stakes, opt-ins) change only from one to the next."""
        return await self._view(self.registry, "epoch")

    async def pool_weight(self, resource_class: int) -> int:
        """Stake that can be drawn for jobs of ``resource_class`` this epoch."""
        return await self._view(self.registry, "poolWeight", resource_class)

    async def balance(self, address: str | None = None) -> int:
        return await self.w3.eth.get_balance(to_checksum_address(address or self.address))

    async def block_number(self) -> int:
        return await self.w3.eth.block_number

    async def head(self) -> tuple[int, str]:
        """The latest block's (number, hash)."""
        block = await self.w3.eth.get_block("latest")
        return block["number"], "0x" + bytes(block["hash"]).hex()

    async def block_hash(self, number: int) -> str | None:
        """The hash of block ``number``, None when the chain is not that long."""
        try:
            block = await self.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        return "0x" + bytes(block["hash"]).hex()

    def forget_nonce(self) -> None:
        """Ask the node for the account's next nonce before the next send (the chain went back)."""
        self._nonce = None

    async def timestamp(self) -> int:
        return (await self.w3.eth.get_block("latest"))["timestamp"]

    # ------------------------------------------------------------ writes

    def post_job(self, params: JobParams, *, gas: int | None = None) -> Call:
        """Post a job. An ETH job sends its escrow; a token job sends none and the
        market takes it with transferFrom: ``approve_token`` it first."""
        value = 0 if params.token else params.escrow
        return self._call(self.market, "postJob", params.as_abi_tuple(), value=value, gas=gas)

    def approve_token(self, token: str, amount: int) -> Call:
        """Let the market take ``amount`` of ``token`` from this account (a token job's escrow)."""
        return self._call(self._token(token), "approve", self.deployment.market, amount)

    def withdraw_token(self, token: str) -> Call:
        """Withdraw market credits in ``token`` (rewards and refunds of jobs paid in it)."""
        return self._call(self.market, "withdrawToken", to_checksum_address(token))

    async def token_credits(self, token: str, account: str | None = None) -> int:
        """Units of ``token`` withdrawable from the market."""
        return await self._view(self.market, "tokenCredits", to_checksum_address(token), account or self.address)

    async def token_balance(self, token: str, account: str | None = None) -> int:
        return await self._view(self._token(token), "balanceOf", account or self.address)

    async def token_allowance(self, token: str, account: str | None = None) -> int:
        return await self._view(self._token(token), "allowance", account or self.address, self.deployment.market)

    def _token(self, token: str) -> Any:
        address = to_checksum_address(token)
        self._names_by_address[address.lower()] = "IERC20"
        return self.w3.eth.contract(address=address, abi=abi("IERC20"))

    def cancel_job(self, job_id: int) -> Call:
        return self._call(self.market, "cancelJob", job_id)

    def draw(self, job_id: int, task_ids: Sequence[int], *, gas: int | None = None) -> Call:
        """Fill the open seats of ``task_ids`` with drawn workers (anyone may)."""
        return self._call(self.market, "draw", job_id, list(task_ids), gas=gas)

    def decline(self, job_id: int, task_ids: Sequence[int], *, gas: int | None = None) -> Call:
        """Give back seats this worker was drawn for and will not run (no slash)."""
        return self._call(self.market, "decline", job_id, list(task_ids), gas=gas)

    def report_unavailable(self, job_id: int, task_ids: Sequence[int], *, gas: int | None = None) -> Call:
        """Give back seats, as ``decline``, because their input could not be fetched
        from anyone: at the job's margin of such reports on a task, the job fails."""
        return self._call(self.market, "reportUnavailable", job_id, list(task_ids), gas=gas)

    def commit(self, job_id: int, task_ids: Sequence[int], results: Sequence[bytes], seals: Sequence[bytes], *,
               gas: int | None = None) -> Call:
        """``results``/``seals``: resultOf/sealOf hashes; the chain takes their
        first 12 bytes (what it stores and compares), so that is all that is sent."""
        return self._call(self.market, "commit", job_id, list(task_ids), [bytes(r)[:12] for r in results],
                          [bytes(s)[:12] for s in seals], gas=gas)

    def reveal(self, job_id: int, task_ids: Sequence[int], digests: Sequence[bytes], *,
               gas: int | None = None) -> Call:
        return self._call(self.market, "reveal", job_id, list(task_ids), list(digests), gas=gas)

    def collect(self, job_id: int, task_ids: Sequence[int], *, gas: int | None = None) -> Call:
        return self._call(self.market, "collect", job_id, list(task_ids), gas=gas)

    def resolve(self, job_id: int, task_id: int, worker: str) -> Call:
        return self._call(self.market, "resolve", job_id, task_id, to_checksum_address(worker))

    def poke(self, job_id: int, task_id: int) -> Call:
        return self._call(self.market, "poke", job_id, task_id)

    def expire_job(self, job_id: int) -> Call:
        return self._call(self.market, "expireJob", job_id)

    def refund(self, job_id: int) -> Call:
        return self._call(self.market, "refund", job_id)

    def withdraw(self) -> Call:
        """Withdraw market credits (rewards and refunds)."""
        return self._call(self.market, "withdraw")

    def stake(self, amount: int) -> Call:
        return self._call(self.registry, "stake", value=amount)

    def request_unbond(self, amount: int) -> Call:
        return self._call(self.registry, "requestUnbond", amount)

    def withdraw_unbonded(self) -> Call:
        return self._call(self.registry, "withdrawUnbonded")

    def opt_in(self, resource_class: int) -> Call:
        """Enter the lottery of ``resource_class`` (0 CPU, 1 GPU) from the next epoch on."""
        return self._call(self.registry, "optIn", resource_class)

    def opt_out(self, resource_class: int) -> Call:
        return self._call(self.registry, "optOut", resource_class)

    def announce(self, endpoint: str) -> Call:
        """Publish where this worker serves its outputs (event only)."""
        return self._call(self.registry, "announce", endpoint)

    # ------------------------------------------------------------ events

    async def events(self, from_block: int | None = None, to_block: int | str = "latest",
                     names: Sequence[str] | None = None, job_id: int | None = None) -> list[Event]:
        """Decoded events of both contracts in block order; only those ``names``
        and only job ``job_id``'s, if given (the node filters: by topic)."""
        query: dict[str, Any] = {
            "fromBlock": self.deployment.block if from_block is None else from_block, "toBlock": to_block,
            "address": [self.deployment.market, self.deployment.registry],
        }
        topic0 = None
        if names is not None:
            by_name = codec.event_topics()
            topic0 = [by_name[n] for n in names if n in by_name]
            if not topic0:
                return []
        if job_id is not None:
            # Every JobMarket event of a job has the job id as its first indexed argument.
            query["address"] = [self.deployment.market]
            query["topics"] = [topic0, "0x" + job_id.to_bytes(32, "big").hex()]
        elif topic0 is not None:
            query["topics"] = [topic0]
        decoded = (self.decode_log(log) for log in await self.w3.eth.get_logs(query))
        return [e for e in decoded if e is not None and (job_id is None or getattr(e, "job_id", None) == job_id)]

    def decode_log(self, log: Any) -> Event | None:
        contract_name = self._names_by_address.get(str(log["address"]).lower())
        if contract_name is None or not log["topics"]:
            return None
        topics = [bytes(t) for t in log["topics"]]
        event = codec.events(contract_name).get(topics[0])
        if event is None:
            return None
        args = event.decode(topics, bytes(log["data"]))
        return models.event_from_log(event.name, args, log["blockNumber"], "0x" + bytes(log["transactionHash"]).hex(),
                                     log["logIndex"], contract_name)

    # ------------------------------------------------------------ plumbing

    def _call(self, contract: Any, fn: str, *args: Any, value: int = 0, gas: int | None = None) -> Call:
        return Call(self, contract, fn, args, value, gas)

    async def _view(self, contract: Any, fn: str, *args: Any, block: int | str = "latest") -> Any:
        try:
            return await contract.functions[fn](*args).call(block_identifier=block)
        except ContractLogicError as exc:
            raise decode_revert(exc.data) from None

    def _tx_of(self, call: Call, sender: str) -> dict[str, Any]:
        contract_name = self._names_by_address[call.contract.address.lower()]
        data = "0x" + codec.encode_call(contract_name, call.fn, call.args).hex()
        return {"from": sender, "to": call.contract.address, "data": data, "value": call.value,
                "chainId": self.deployment.chain_id}

    async def unsigned_tx(self, call: Call, sender: str, nonce_offset: int = 0,
                          estimate: bool = True) -> dict[str, Any]:
        """``call`` as an EIP-1559 transaction for ``sender`` to sign elsewhere
        (a wallet): gas estimated (which dry-runs it, so a revert is raised here,
        decoded), fees and the sender's next nonce (+ ``nonce_offset``) filled in.
        ``estimate=False`` when an earlier transaction of the same batch must be
        mined first for this one to succeed; a fixed generous gas is used then."""
        tx = self._tx_of(call, to_checksum_address(sender))
        gas = await self._estimate(tx) if estimate else 1_000_000
        max_fee, tip = await self._fee()
        nonce = await self.w3.eth.get_transaction_count(tx["from"], "pending")
        tx.update({"gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2,
                   "nonce": nonce + nonce_offset})
        return tx

    async def send_raw(self, raw: bytes, tx: dict[str, Any], label: str = "transaction") -> PendingTx:
        """Broadcast a transaction someone else signed; ``tx`` is its decoded
        form (from, to, data, value), kept to replay a failure for its error."""
        try:
            tx_hash = await self.w3.eth.send_raw_transaction(raw)
        except ContractLogicError as exc:
            raise decode_revert(exc.data) from None
        except Web3RPCError as exc:
            raise TransactionRejected(f"{label} rejected by the node: {_rpc_message(exc)}") from None
        return PendingTx(self, "0x" + bytes(tx_hash).hex(), tx, label)

    async def send_call(self, call: Call, gas: int | None) -> PendingTx:
        account = self._signer()
        tx = self._tx_of(call, account.address)
        if gas is None:
            # Estimation also dry-runs the call: a revert is raised here, decoded,
            # before a nonce is spent or gas is paid.
            gas = await self._estimate(tx)
        max_fee, tip = await self._fee()
        tx.update({"gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2})
        async with self._nonce_lock:
            if self._nonce is None:
                self._nonce = await self.w3.eth.get_transaction_count(account.address, "pending")
            tx["nonce"] = self._nonce
            signed = account.sign_transaction({k: v for k, v in tx.items() if k != "from"})
            try:
                tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except ContractLogicError as exc:
                self._nonce = None  # resync next time: the node may or may not have taken it
                raise decode_revert(exc.data) from None
            except Web3RPCError as exc:
                self._nonce = None
                if "nonce too low" in _rpc_message(exc).lower():
                    # This client hands out its account's nonces one by one: only another sender
                    # can have used this one.
                    raise NonceTaken(f"{call.fn}: nonce {tx['nonce']} of {account.address} was already used by "
                                     "another process signing with this key (a second worker or a requester "
                                     "on the same account?); resynced, retrying. Use one process per key.") from None
                raise
            except Exception:
                self._nonce = None
                raise
            self._nonce += 1
        return PendingTx(self, "0x" + bytes(tx_hash).hex(), tx, f"{call.fn}")

    async def _estimate(self, tx: dict[str, Any]) -> int:
        try:
            estimate = await self.w3.eth.estimate_gas(tx)
        except ContractLogicError as exc:
            raise decode_revert(exc.data) from None
        except Web3RPCError as exc:  # not a revert: e.g. the sender cannot pay value + gas
            raise TransactionRejected(f"{tx['from']} cannot send this transaction: {_rpc_message(exc)}") from None
        # Headroom: gas used can differ from the estimate when state moves
        # between estimate and inclusion (e.g. another draw on the same task).
        return estimate * 5 // 4 + 10_000

    async def _fee(self) -> tuple[int, int]:
        now = time.monotonic()
        if self._fees is None or now - self._fees[0] > 5.0:
            block = await self.w3.eth.get_block("latest")
            base = block.get("baseFeePerGas", 0) or 0
            self._fees = (now, *self.fees.fees(base))
        return self._fees[1], self._fees[2]

    async def wait_for(self, pending: PendingTx, timeout: float) -> Receipt:
        deadline = time.monotonic() + timeout
        delay = 0.002
        next_look = time.monotonic() + 2.0
        while True:
            try:
                raw = await self.w3.eth.get_transaction_receipt(pending.tx_hash)
                break
            except TransactionNotFound:  # still pending
                pass
            if time.monotonic() > deadline:
                raise ChainError(f"{pending.label} {pending.tx_hash} not mined after {timeout:.0f}s")
            if time.monotonic() > next_look:
                next_look = time.monotonic() + 2.0
                if why := await self._never_mined(pending):
                    self._nonce = None  # what the node holds now decides the next nonce
                    raise TransactionDropped(f"{pending.label} {pending.tx_hash} will never be mined: {why}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        if raw["status"] != 1:
            raise await self._failure(pending, raw["blockNumber"])
        events = [e for e in (self.decode_log(log) for log in raw["logs"]) if e is not None]
        return Receipt(pending.tx_hash, raw["blockNumber"], raw["gasUsed"], raw.get("effectiveGasPrice", 0), events,
                       await self.l1_fee(raw))

    async def l1_fee(self, raw_receipt: Any) -> int:
        """A mined transaction's L1 data fee: as its receipt reports it, else estimated at the
        configured L1 prices, else 0 (not an OP Stack chain, or nobody said what L1 costs)."""
        reported = reported_l1_fee(raw_receipt)
        if reported is not None:
            return reported
        if self.l1_pricing is None:
            return 0
        tx = await self.w3.eth.get_transaction(raw_receipt["transactionHash"])
        return self.l1_pricing.estimate(bytes(tx["input"]))

    async def _never_mined(self, pending: PendingTx) -> str | None:
        """Why a transaction still unmined never will be, or None: the node forgot it (it
        restarted, or a reorg dropped it), or a nonce below it is free again (the chain went
        back past its predecessors), so it waits in the pool for a gap nobody fills."""
        try:
            await self.w3.eth.get_transaction(pending.tx_hash)
        except TransactionNotFound:
            return "the node no longer has it (it restarted, or a reorg dropped it)"
        nonce = pending.tx.get("nonce")
        if nonce is not None and "from" in pending.tx:
            next_nonce = await self.w3.eth.get_transaction_count(pending.tx["from"], "pending")
            if nonce > next_nonce:
                return f"its nonce {nonce} waits behind nonce {next_nonce}, which the chain lost"
        return None

    async def _failure(self, pending: PendingTx, block: int) -> ChainError:
        """Replays a failed transaction to recover its custom error."""
        replay = {k: pending.tx[k] for k in ("from", "to", "data", "value")}
        try:
            await self.w3.eth.call(replay, block - 1)
        except ContractLogicError as exc:
            return decode_revert(exc.data)
        except Web3RPCError as exc:
            return TransactionFailed(f"{pending.label} {pending.tx_hash} failed: {exc}")
        return TransactionFailed(f"{pending.label} {pending.tx_hash} failed (out of gas or state changed)")


def _rpc_message(exc: Web3RPCError) -> str:
    message = getattr(exc, "rpc_response", None) or {}
    error = message.get("error") if isinstance(message, dict) else None
    return error.get("message", str(exc)) if isinstance(error, dict) else str(exc)
