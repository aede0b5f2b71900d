"""Wrong results accepted, and replicas computed, by protocol v2's settlement rule under attack.

    python bench/verification.py [--tasks 2000] [--sim-tasks 1000000] [--quick]

What it measures. An adversary holds a stake share f in {0.1, 0.2, 0.33} of
the worker pool, spread over many equal-stake addresses, and plays its best
strategy for getting wrong results accepted by JobMarket
(contracts/JobMarket.sol, docs/protocol.md): every seat it is drawn for
commits the same garbage digest for the task. Where it holds every seat that
decides, the garbage wins; where it holds some, it dissents and forces an
escalation to fresh seats, another chance. Honest seats commit the true
digest. The target is epsilon = 1e-3 at every f, and the seats per task come
from the contract itself: ``marginFor(epsilonPpm, adversaryPpm)`` (margin rule:
round 0 seats m, a round that leaves the leader `lead` ahead draws m - lead
more, a result wins at a lead of m) or, for the artifact of the earlier
unanimity rule (``--artifact-rev b82c289``), ``replicationFor`` (r seats per
round, a unanimous round wins, any dissent re-runs r fresh seats).

* Part A, simulation: ``--sim-tasks`` (10^6) tasks per f drawn the way the
  contract draws: a pool of ``--pool`` (100) equal-stake workers, round(f*N)
  of them the adversary's; every seat stake-weighted among the workers that
  never served the task (the contract skips them), so a task's seats in
  order are a successive weighted sample without replacement, which is
  exactly the Efraimidis-Spirakis order (ascending Exp(1) / stake),
  vectorised in numpy; rounds sized and judged as the contract does, up to
  ``--max-rounds`` rounds (a task still undecided then fails: the contract
  fails the job); the escalation budget never binds. Counted: wrong results
  accepted, failed tasks, replicas computed (every seat computes once).
  A second simulation does the same for a pool of 4096 (per-round
  hypergeometric draws: exact for equal stakes, and cheap for any N).
* Exact values beside it (round-by-round dynamic programme over the tally):
  the same process for the run's N, for N = 4096 (the sortition tree's
  capacity, the most addresses a class holds) and with replacement
  (N -> infinity; unbounded rounds: f^k / (f^k + (1-f)^k) for the margin
  rule, the gambler's ruin). More addresses only help the adversary (each of
  its seats depletes a small pool more), so equal stakes over as many
  addresses as the pool admits is its best split and N -> infinity its limit.
* Part B, the real contracts on Anvil: JobMarket deployed from its
  artifact (shardex/abi/JobMarket.json), ``--pool`` staked worker accounts
  opted in to class 0, the first round(f*N) of them adversarial; ``--tasks``
  (2000) map tasks per f in jobs of ``--job-tasks`` (500), driven wave by wave:
  draw (batched per job), commit (one transaction per worker per job), reveal
  the won tasks, redraw the escalated ones. Outcomes come from the events:
  TaskSettled's digest against the true digest, TaskAssigned for the seats;
  at the end each job's own books (settledTasks, escalation budget used,
  state) are checked against them. Anvil mines on demand (--no-mining): one
  block per phase. A draw that reverts JobMarketNothingToDraw (every
  candidate it looked at had served the task) is retried after the seed's
  blockhash ages out (257 blocks), when the contract re-arms it.
* Compute multiplier: mean replicas per task against plain majority voting at
  the same epsilon: the least odd r with P(Binomial(r, f) >= (r+1)/2) <=
  epsilon, in exact arithmetic. The honest-only cost (nobody dissents) is
  the first round's seats, printed beside it.

Aims (the issue's): the error within epsilon at every f; at f = 0.1 at most
4 replicas per task on average (majority needs 9). Both are judged and
printed plainly, the error against the simulation's 95% interval and against
the exact value at the adversary's best split.

Deployment settings the run needs, printed with the results: Anvil runs with
--disable-code-size-limit when JobMarket's runtime code is over EIP-170's
24,576 bytes (a chain enforcing the limit cannot deploy it); jobs are posted
with maxRounds = M + 1 and a task that escalates into round M is abandoned
and counted failed, because on chain one task exhausting maxRounds fails its
whole job and would end its sibling tasks' run. An error of 1e-3 over 2,000
tasks is a handful of events at most: the on-chain figure comes with its 95%
interval and the simulation is the precise one.

Flags: --tasks N (on-chain tasks per f; 0 skips Part B), --sim-tasks N,
--pool N, --max-rounds M (32: never binding at these f; with 8, the margin
rule fails ~8-12% of tasks at f = 0.33), --job-tasks N, --artifact-rev REV
(the artifacts at a git revision instead of the working tree's), --fractions
0.1,0.2,0.33, --seed S, --quick (10^5 simulated and 200 on-chain tasks per f).
About a minute on 2 idle cores with the defaults.

Ends with one JSON line holding all figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import httpx
import numpy as np
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.devnet import Anvil, find_anvil, free_port
from shardex.chain.artifacts import load_artifact

PPM = 1_000_000
EPSILON = 1e-3
EPSILON_PPM = round(EPSILON * PPM)
FRACTIONS = (0.10, 0.20, 0.33)
AIM_REPLICAS_AT_01 = 4.0
CAPACITY = 4096  # Sortition.CAPACITY: the most members one class's lottery holds
MAX_SEATS_PER_ROUND = 16  # JobMarket.MAX_REPLICATION
Z95 = 1.959963984540054
ETH = 10**18
REWARD = 10**9  # per replica; collateral = DETERRENCE (2) * reward
EIP170 = 24_576
EPOCH_BLOCKS = 100_000  # no epoch ends during a run: no seed re-arms for that reason
DRAW_DELAY = 1
BLOCKHASH_WINDOW = 256
TASKS_PER_DRAW_TX = 250

MARGIN, UNANIMITY = "margin", "unanimity"


# --------------------------------------------------------------------------- the rules


def rule_size_py(rule: str, epsilon_ppm: int, adversary_ppm: int) -> int:
    """Python mirror of marginFor / replicationFor (checked against the contract)."""
    if rule == UNANIMITY:
        p = PPM
        for r in range(1, MAX_SEATS_PER_ROUND + 1):
            p = (p * adversary_ppm + PPM - 1) // PPM
            if p <= epsilon_ppm:
                return r
        return 0
    bad = good = 10**36
    for m in range(1, MAX_SEATS_PER_ROUND + 1):
        bad = (bad * adversary_ppm + PPM - 1) // PPM
        good = good * (PPM - adversary_ppm) // PPM
        if bad * (PPM - epsilon_ppm) <= good * epsilon_ppm:
            return m
    return 0


def round_seats(rule: str, k: int, diff: int) -> int:
    """Seats of the next round; `diff` = honest minus adversary commits in the tally."""
    return k if rule == UNANIMITY else min(k - abs(diff), MAX_SEATS_PER_ROUND)


def judge(rule: str, k: int, seats: int, adv_in_round: int, diff_after: int) -> str:
    """'wrong', 'right' or 'escalate' after a complete round."""
    if rule == UNANIMITY:
        return "wrong" if adv_in_round == seats else "right" if adv_in_round == 0 else "escalate"
    return "wrong" if diff_after <= -k else "right" if diff_after >= k else "escalate"


# --------------------------------------------------------------------------- statistics and exact values


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score 95% interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def majority_replicas(f_ppm: int, epsilon: float) -> tuple[int, float]:
    """Least odd r with P(Binomial(r, f) >= (r+1)/2) <= epsilon, in exact arithmetic."""
    f = Fraction(f_ppm, PPM)
    eps = Fraction(epsilon).limit_denominator(10**12)
    r = 1
    while True:
        tail = sum(math.comb(r, i) * f**i * (1 - f) ** (r - i) for i in range((r + 1) // 2, r + 1))
        if tail <= eps:
            return r, float(tail)
        r += 2


def exact(rule: str, k: int, rounds: int, f: float, pool: int | None) -> dict:
    """Exact wrong / failed / replicas of the rule against the always-dissenting
    adversary: a dynamic programme over (adversary, honest) commits so far,
    round by round; draws without replacement from `pool` equal-stake workers
    (round(f*pool) adversarial), or with replacement when `pool` is None.
    A round that the pool cannot seat counts as failed (starved)."""
    n_adv = None if pool is None else round(f * pool)
    dist: dict[tuple[int, int], float] = {(0, 0): 1.0}
    wrong = seats = starved = 0.0
    for _ in range(rounds):
        nxt: dict[tuple[int, int], float] = defaultdict(float)
        for (a, h), p in dist.items():
            s = round_seats(rule, k, h - a)
            if pool is not None and a + h + s > pool:
                starved += p
                continue
            seats += p * s
            for x in range(s + 1):  # adversary seats in this round
                if pool is None:
                    px = math.comb(s, x) * f**x * (1 - f) ** (s - x)
                else:
                    px = math.comb(n_adv - a, x) * math.comb(pool - n_adv - h, s - x) / math.comb(pool - a - h, s)
                if px == 0:
                    continue
                a2, h2 = a + x, h + s - x
                verdict = judge(rule, k, s, x, h2 - a2)
                if verdict == "wrong":
                    wrong += p * px
                elif verdict == "escalate":
                    # With replacement only the difference matters: keep the state small.
                    key = (max(a2 - h2, 0), max(h2 - a2, 0)) if pool is None else (a2, h2)
                    nxt[key] += p * px
        dist = nxt
        if not dist:
            break
    return {"wrong": wrong, "failed": sum(dist.values()) + starved, "starved": starved, "replicas": seats}


def unbounded_formula(rule: str, k: int, f: float) -> float:
    """With replacement and unbounded rounds: the margin rule's gambler's ruin
    f^k/(f^k+(1-f)^k); for unanimity f^r/(1-q), q = 1-f^r-(1-f)^r, the same expression."""
    return f**k / (f**k + (1 - f) ** k)


# --------------------------------------------------------------------------- Part A: simulation


def simulate(rule: str, k: int, rounds: int, n_pool: int, n_adv: int, tasks: int, rng: np.random.Generator,
             chunk: int = 100_000) -> dict:
    """The contract's draw and judgement, task by task, vectorised over tasks."""
    stakes = np.ones(n_pool)  # equal stakes: the adversary's best split (see the docstring)
    adversarial = np.zeros(n_pool, dtype=np.int16)
    adversarial[:n_adv] = 1
    wrong = failed = starved = seats_total = 0
    rounds_hist = np.zeros(rounds + 1, dtype=np.int64)
    done = 0
    while done < tasks:
        c = min(chunk, tasks - done)
        # Successive stake-weighted draws that skip earlier seats == ascending Exp(1) / stake.
        order = np.argsort(rng.standard_exponential((c, n_pool)) / stakes, axis=1)
        adv_cum = np.zeros((c, n_pool + 1), dtype=np.int16)
        np.cumsum(adversarial[order], axis=1, out=adv_cum[:, 1:])
        pos = np.zeros(c, dtype=np.int64)  # seats used so far
        diff = np.zeros(c, dtype=np.int64)  # honest minus adversary commits
        state = np.zeros(c, dtype=np.int8)  # 0 open, 1 right, 2 wrong, 3 starved
        played = np.zeros(c, dtype=np.int64)
        rows = np.arange(c)
        for _ in range(rounds):
            live = np.flatnonzero(state == 0)
            if live.size == 0:
                break
            s = np.full(live.size, k) if rule == UNANIMITY else np.minimum(k - np.abs(diff[live]),
                                                                          MAX_SEATS_PER_ROUND)
            short = pos[live] + s > n_pool
            state[live[short]] = 3
            live, s = live[~short], s[~short]
            start, end = pos[live], pos[live] + s
            adv = (adv_cum[rows[live], end] - adv_cum[rows[live], start]).astype(np.int64)
            pos[live] = end
            played[live] += 1
            diff[live] += s - 2 * adv
            if rule == UNANIMITY:
                is_wrong, is_right = adv == s, adv == 0
            else:
                is_wrong, is_right = diff[live] <= -k, diff[live] >= k
            state[live[is_wrong]] = 2
            state[live[is_right]] = 1
        wrong += int((state == 2).sum())
        failed += int(((state == 0) | (state == 3)).sum())
        starved += int((state == 3).sum())
        seats_total += int(pos.sum())
        decided = state == 1
        decided |= state == 2
        rounds_hist += np.bincount(np.where(decided, played, 0), minlength=rounds + 1)[: rounds + 1]
        done += c
    return {"tasks": tasks, "wrong": wrong, "failed": failed, "starved": starved, "seats": seats_total,
            "replicas": seats_total / tasks,
            "decided_in_round": {str(i): int(v) for i, v in enumerate(rounds_hist) if i > 0 and v}}


def simulate_large_pool(rule: str, k: int, rounds: int, n_pool: int, n_adv: int, tasks: int,
                        rng: np.random.Generator) -> dict:
    """The same process for a pool too large to sort per task: with equal
    stakes a round's adversary seats are hypergeometric over the workers the
    task has not used yet, drawn for all tasks at once."""
    n_honest = n_pool - n_adv
    a_used = np.zeros(tasks, dtype=np.int64)
    h_used = np.zeros(tasks, dtype=np.int64)
    state = np.zeros(tasks, dtype=np.int8)  # 0 open, 1 right, 2 wrong, 3 starved
    for _ in range(rounds):
        live = np.flatnonzero(state == 0)
        if live.size == 0:
            break
        diff = h_used[live] - a_used[live]
        s = np.full(live.size, k) if rule == UNANIMITY else np.minimum(k - np.abs(diff), MAX_SEATS_PER_ROUND)
        short = a_used[live] + h_used[live] + s > n_pool
        state[live[short]] = 3
        live, s = live[~short], s[~short]
        adv = rng.hypergeometric(n_adv - a_used[live], n_honest - h_used[live], s)
        a_used[live] += adv
        h_used[live] += s - adv
        diff = h_used[live] - a_used[live]
        if rule == UNANIMITY:
            is_wrong, is_right = adv == s, adv == 0
        else:
            is_wrong, is_right = diff <= -k, diff >= k
        state[live[is_wrong]] = 2
        state[live[is_right]] = 1
    seats = int(a_used.sum() + h_used.sum())
    return {"tasks": tasks, "pool": n_pool, "wrong": int((state == 2).sum()),
            "failed": int(((state == 0) | (state == 3)).sum()), "starved": int((state == 3).sum()),
            "seats": seats, "replicas": seats / tasks}


# --------------------------------------------------------------------------- Part B: Anvil plumbing


def load_artifacts(rev: str | None) -> tuple[dict, dict]:
    if rev is None:
        return load_artifact("JobMarket"), load_artifact("WorkerPool")
    out = []
    # Before the v2 market replaced v1 (b82c289..5a35237) it was committed as JobMarketV2.
    for names in (("JobMarketV2", "JobMarket"), ("WorkerPool",)):
        for name in names:
            shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:shardex/abi/{name}.json"],
                                   capture_output=True, text=True)
            if shown.returncode == 0 and "marginFor" in shown.stdout or "replicationFor" in shown.stdout:
                out.append(json.loads(shown.stdout))
                break
            if shown.returncode == 0 and name == "WorkerPool":
                out.append(json.loads(shown.stdout))
                break
        else:
            raise SystemExit(f"no protocol v2 artifact {names} at {rev}")
    return out[0], out[1]


def _canonical(inp: dict) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in inp["components"]) + ")" + t[len("tuple"):]
    return t


class Abi:
    """Calldata, event layouts and custom errors of one contract (errors of others too)."""

    def __init__(self, artifact: dict, *others: dict) -> None:
        self.functions: dict[str, tuple[bytes, list[str], list[dict]]] = {}
        self.outputs: dict[str, list[dict]] = {}
        self.events: dict[str, tuple[str, list[str]]] = {}  # topic0 -> (name, non-indexed input names)
        self.errors: dict[bytes, tuple[str, list[str]]] = {}
        for i, art in enumerate((artifact, *others)):
            for item in art["abi"]:
                types = [_canonical(x) for x in item.get("inputs", [])]
                sig = f"{item.get('name')}({','.join(types)})"
                if item["type"] == "error":
                    self.errors[keccak(text=sig)[:4]] = (item["name"], types)
                elif i == 0 and item["type"] == "function":
                    self.functions[item["name"]] = (keccak(text=sig)[:4], types, item["inputs"])
                    self.outputs[item["name"]] = item["outputs"]
                elif i == 0 and item["type"] == "event":
                    self.events["0x" + keccak(text=sig).hex()] = (
                        item["name"], [x["name"] for x in item["inputs"] if not x["indexed"]])

    def has(self, fn: str) -> bool:
        return fn in self.functions

    def call_data(self, fn: str, *args: object) -> str:
        selector, types, _ = self.functions[fn]
        return "0x" + (selector + abi_encode(types, list(args))).hex()

    def decode_struct(self, fn: str, raw: bytes) -> dict:
        """The single struct `fn` returns, as {field: value}."""
        out = self.outputs[fn][0]
        (values,) = abi_decode([_canonical(out)], raw)
        return dict(zip([c["name"] for c in out["components"]], values, strict=True))

    def struct_fields(self, fn: str, arg: int = 0) -> list[str]:
        return [c["name"] for c in self.functions[fn][2][arg]["components"]]

    def decode_error(self, output: str | None) -> str:
        if not output or output == "0x":
            return "no revert data (out of gas, or a failed creation)"
        raw = bytes.fromhex(output.removeprefix("0x"))
        if raw[:4] in self.errors:
            name, types = self.errors[raw[:4]]
            return f"{name}({', '.join(str(a) for a in abi_decode(types, raw[4:]))})"
        return f"unknown revert data {output[:74]}"


class Reverted(RuntimeError):
    def __init__(self, label: str, error: str) -> None:
        super().__init__(f"{label} reverted: {error}")
        self.label, self.error = label, error


class Chain:
    """Lean JSON-RPC to an Anvil that mines only on request: a phase's
    transactions go out from unlocked dev accounts in JSON-RPC batches, are
    mined into one block, and come back as receipts and logs."""

    def __init__(self, url: str, abi: Abi) -> None:
        self.url, self.abi = url, abi
        self.http = httpx.Client(timeout=600)
        self.gas_used = self.txs = 0
        self.nonces: dict[str, int] = {}

    def rpc(self, method: str, *params: object) -> object:
        body = self.http.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                              "params": list(params)}).json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def batch(self, calls: list[tuple[str, list]], max_bytes: int = 1_000_000) -> list[dict]:
        """Replies in order; batches split to stay under Anvil's 2 MB request limit."""
        out: list[dict] = []
        group: list[dict] = []
        size = 0
        for i, (method, params) in enumerate(calls):
            req = {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
            n = len(json.dumps(req))
            if group and size + n > max_bytes:
                out += self._post(group)
                group, size = [], 0
            group.append(req)
            size += n
        if group:
            out += self._post(group)
        return out

    def _post(self, group: list[dict]) -> list[dict]:
        return sorted(self.http.post(self.url, json=group).json(), key=lambda x: x["id"])

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> None:
        if blocks > 0:
            self.rpc("anvil_mine", hex(blocks))

    def eth_call(self, to: str, data: str) -> bytes:
        return bytes.fromhex(str(self.rpc("eth_call", {"to": to, "data": data}, "latest"))[2:])

    def run_phase(self, txs: list[tuple[str, dict]]) -> tuple[list[dict], list[tuple[str, str]]]:
        """Sends `txs` ([(label, tx)]), mines them (one block if they fit),
        returns (their logs, [(label, decoded revert)] of those that reverted)."""
        if not txs:
            return [], []
        start = self.block_number()
        unknown = sorted({tx["from"] for _, tx in txs} - self.nonces.keys())
        for account, reply in zip(unknown, self.batch([("eth_getTransactionCount", [a, "latest"]) for a in unknown]),
                                  strict=True):
            self.nonces[account] = int(reply["result"], 16)
        for _, tx in txs:  # explicit nonces: a non-mining Anvil would hand out the same one twice
            tx["nonce"] = hex(self.nonces[tx["from"]])
            self.nonces[tx["from"]] += 1
        hashes = []
        for (label, _), reply in zip(txs, self.batch([("eth_sendTransaction", [tx]) for _, tx in txs]), strict=True):
            if "error" in reply:
                raise RuntimeError(f"{label} not accepted: {reply['error']}")
            hashes.append(reply["result"])
        receipts: list[dict | None] = [None] * len(hashes)
        for _ in range(50):
            self.mine(1)
            missing = [i for i, rc in enumerate(receipts) if rc is None]
            for i, reply in zip(missing, self.batch([("eth_getTransactionReceipt", [hashes[i]]) for i in missing]),
                                strict=True):
                receipts[i] = reply.get("result")
            if all(rc is not None for rc in receipts):
                break
        else:
            raise RuntimeError("transactions still pending after 50 blocks")
        failures = []
        for (label, _), h, rc in zip(txs, hashes, receipts, strict=True):
            self.gas_used += int(rc["gasUsed"], 16)
            self.txs += 1
            if rc["status"] != "0x1":
                failures.append((label, self.revert_reason(h)))
        logs = self.rpc("eth_getLogs", {"fromBlock": hex(start + 1), "toBlock": hex(self.block_number())})
        return logs, failures

    def revert_reason(self, tx_hash: str) -> str:
        trace = self.rpc("debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
        return self.abi.decode_error(trace.get("output"))


def result_of(job_id: int, task_id: int, digest: bytes) -> bytes:
    return keccak(job_id.to_bytes(32, "big") + task_id.to_bytes(32, "big") + digest)


def seal_of(worker: str, job_id: int, task_id: int, digest: bytes) -> bytes:
    return keccak(bytes(12) + bytes.fromhex(worker[2:]) + job_id.to_bytes(32, "big")
                  + task_id.to_bytes(32, "big") + digest)


def true_digest(job_id: int, task_id: int) -> bytes:
    return hashlib.sha256(b"task %d/%d" % (job_id, task_id)).digest()


def garbage_digest(job_id: int, task_id: int) -> bytes:
    """One wrong digest per task, the same from every adversary seat, so its commits add up."""
    return hashlib.sha256(b"garbage %d/%d" % (job_id, task_id)).digest()


@dataclass
class TaskRun:
    job: int
    task: int
    need: int  # seats of the current round
    round: int = 0
    seats: list[str] = field(default_factory=list)  # current round
    served: set[str] = field(default_factory=set)  # every round
    drawn: int = 0  # seats over all rounds
    requested: int = 0  # seats the contract opened over all rounds
    seed_block: int | None = None  # own seed (escalated rounds); None: the job's
    status: str = "draw"  # draw | commit | reveal | settled | failed | starved
    reveal_by: str | None = None
    wrong: bool = False
    round0_adversary: int = 0


@dataclass
class ChainSetup:
    anvil: Anvil
    chain: Chain
    abi: Abi
    rule: str
    size_fn: str
    market: str
    pool: str
    requester: str
    workers: list[str]
    code_size: int
    setup_s: float


def start_chain(n_workers: int, market_art: dict, pool_art: dict) -> ChainSetup:
    t0 = time.perf_counter()
    abi = Abi(market_art, pool_art)
    if abi.has("marginFor"):
        rule, size_fn = MARGIN, "marginFor"
    elif abi.has("replicationFor"):
        rule, size_fn = UNANIMITY, "replicationFor"
    else:
        raise SystemExit("JobMarket artifact has neither marginFor nor replicationFor: unknown settlement rule")
    code_size = len(bytes.fromhex(market_art["deployedBytecode"].removeprefix("0x")))
    port = free_port()
    cmd = [str(find_anvil()), "--host", "127.0.0.1", "--port", str(port), "--accounts", str(n_workers + 1),
           "--balance", "10000000", "--gas-limit", str(10**12), "--no-mining", "--chain-id", "31337",
           # Genesis just before an epoch boundary: opt-ins count from the next epoch.
           "--number", str(EPOCH_BLOCKS - 16)]
    if code_size > EIP170:
        cmd.append("--disable-code-size-limit")
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    anvil = Anvil(process, f"http://127.0.0.1:{port}", port, None)
    try:
        anvil.wait_ready(30)
        chain = Chain(anvil.rpc_url, abi)
        accounts = [to_checksum_address(a) for a in chain.rpc("eth_accounts")]
        requester, workers = accounts[0], accounts[1:n_workers + 1]
        # Config: unbondingDelay, minStake, minCollateral, minLeaseDuration, minRevealWindow, epochBlocks, drawDelay
        config = (3600, ETH, 0, 60, 60, EPOCH_BLOCKS, DRAW_DELAY)
        ctor = abi_encode(["(uint256,uint96,uint96,uint32,uint32,uint32,uint32)", "address"],
                          [config, "0x" + "00" * 20])  # zero randomness source: blockhash
        data = "0x" + market_art["bytecode"].removeprefix("0x") + ctor.hex()
        h = chain.rpc("eth_sendTransaction", {"from": requester, "data": data, "gas": hex(60_000_000)})
        chain.mine(1)
        rc = chain.rpc("eth_getTransactionReceipt", h)
        if rc["status"] != "0x1":
            raise RuntimeError(f"JobMarket deployment failed: {chain.revert_reason(h)}")
        market = to_checksum_address(rc["contractAddress"])
        pool = to_checksum_address("0x" + chain.eth_call(market, abi.call_data("pool"))[-20:].hex())
        pool_abi = Abi(pool_art)
        stake = 100 * ETH
        txs = []
        for w in workers:
            txs.append((f"stake {w}", {"from": w, "to": pool, "value": hex(stake), "gas": hex(300_000),
                                       "data": pool_abi.call_data("stake")}))
            txs.append((f"optIn {w}", {"from": w, "to": pool, "gas": hex(2_000_000),
                                       "data": pool_abi.call_data("optIn", 0)}))
        _, failures = chain.run_phase(txs)
        if failures:
            raise Reverted(*failures[0])
        # Weights set now count from the next epoch on: mine up to it.
        chain.mine(EPOCH_BLOCKS - chain.block_number() % EPOCH_BLOCKS)
        weight = int.from_bytes(chain.eth_call(pool, pool_abi.call_data("poolWeight", 0)), "big")
        if weight != stake * n_workers:
            raise RuntimeError(f"pool weight {weight} after opting in, expected {stake * n_workers}")
        return ChainSetup(anvil, chain, abi, rule, size_fn, market, pool, requester, workers, code_size,
                          time.perf_counter() - t0)
    except BaseException:
        anvil.stop()
        raise


def size_on_chain(setup: ChainSetup, epsilon_ppm: int, f_ppm: int) -> int:
    data = setup.abi.call_data(setup.size_fn, epsilon_ppm, f_ppm)
    return int.from_bytes(setup.chain.eth_call(setup.market, data), "big")


def run_on_chain(setup: ChainSetup, f_ppm: int, k: int, tasks: int, job_tasks: int, rounds: int,
                 log=print) -> dict:
    """Drives `tasks` map tasks through the real contracts, the first
    round(f*N) workers playing the adversary; returns the counted outcomes."""
    chain, abi, market, rule = setup.chain, setup.abi, setup.market, setup.rule
    n_pool = len(setup.workers)
    n_adv = round(f_ppm * n_pool / PPM)
    adversary = set(setup.workers[:n_adv])
    t0 = time.perf_counter()
    gas0, txs0, block0 = chain.gas_used, chain.txs, chain.block_number()
    chain_rounds = min(rounds + 1, 255)

    # ---- post the jobs
    sizes = [min(job_tasks, tasks - i) for i in range(0, tasks, job_tasks)]
    post = []
    for size in sizes:
        values = {"specDigest": b"\x5a" * 32, "mapTasks": size, "reduceTasks": 0, "resourceClass": 0,
                  "epsilonPpm": EPSILON_PPM, "adversaryPpm": f_ppm, "maxRounds": chain_rounds,
                  "rewardPerReplica": REWARD, "collateral": 2 * REWARD, "minStake": ETH,
                  "leaseDuration": 10**8, "revealWindow": 10**8, "jobTimeout": 10**9}
        if rule == MARGIN:  # escalation budget in seats: never binding (a task cannot seat more than the pool)
            values["extraSeats"] = size * (n_pool - k)
            value = REWARD * (k * size + values["extraSeats"])
        else:  # escalation budget in rounds: the most the contract allows
            values["escalations"] = size * (chain_rounds - 1)
            value = REWARD * k * (size + values["escalations"])
        params = tuple(values[name] for name in abi.struct_fields("postJob"))
        post.append(("postJob", {"from": setup.requester, "to": market, "value": hex(value), "gas": hex(1_000_000),
                                 "data": abi.call_data("postJob", params)}))
    logs, failures = chain.run_phase(post)
    if failures:
        raise Reverted(*failures[0])
    job_seed: dict[int, int] = {}
    runs: dict[tuple[int, int], TaskRun] = {}
    for lg in logs:
        name, fields = abi.events.get(lg["topics"][0], ("", []))
        if name == "JobPosted" and lg["address"].lower() == market.lower():
            data = _words(lg["data"], fields)
            job_id = int(lg["topics"][1], 16)
            size = data.get("margin", data.get("replication"))
            if size != k:
                raise RuntimeError(f"job {job_id} posted with {size} seats per task, expected {k}")
            for t in range(data["mapTasks"]):
                runs[(job_id, t)] = TaskRun(job_id, t, need=k, requested=k)
    _apply_logs(logs, abi, market, runs, job_seed, k, rounds, adversary)
    if len(runs) != tasks:
        raise RuntimeError(f"posted {len(runs)} tasks, expected {tasks}")

    stalls: list[dict] = []
    reveals_pending: list[TaskRun] = []
    waves = 0
    while True:
        for t in runs.values():
            if t.status == "draw" and len(t.served) - len(t.seats) + t.need > n_pool:
                t.status = "starved"  # never twice on a task: the pool has too few fresh workers left
        to_draw = [t for t in runs.values() if t.status == "draw"]
        if not to_draw and not reveals_pending:
            break
        waves += 1
        if waves > 20 * rounds + 20:
            raise RuntimeError("the run does not converge")
        # ---- draw phase, with the previous wave's reveals in the same block
        if to_draw:
            seeds = [t.seed_block if t.seed_block is not None else job_seed[t.job] for t in to_draw]
            chain.mine(max(seeds) - chain.block_number())  # the draw's block must follow every seed block
        txs = []
        by_job: dict[int, list[TaskRun]] = defaultdict(list)
        for t in to_draw:
            by_job[t.job].append(t)
        for job_id, ts in by_job.items():
            for i in range(0, len(ts), TASKS_PER_DRAW_TX):
                part = ts[i:i + TASKS_PER_DRAW_TX]
                open_seats = sum(t.need - len(t.seats) for t in part)
                txs.append((f"draw job {job_id} ({len(part)} tasks)",
                            {"from": setup.requester, "to": market,
                             "gas": hex(300_000 + 60_000 * len(part) + 600_000 * open_seats),
                             "data": abi.call_data("draw", job_id, [t.task for t in part])}))
        groups: dict[tuple[int, str], list[TaskRun]] = defaultdict(list)
        for t in reveals_pending:
            groups[(t.job, t.reveal_by)].append(t)
        for (job_id, w), ts in groups.items():
            digests = [(garbage_digest if w in adversary else true_digest)(job_id, t.task) for t in ts]
            txs.append((f"reveal job {job_id} by {w}",
                        {"from": w, "to": market, "gas": hex(150_000 + 100_000 * len(ts)),
                         "data": abi.call_data("reveal", job_id, [t.task for t in ts], digests)}))
        reveals_pending = []
        logs, failures = chain.run_phase(txs)
        stalled = []
        for label, error in failures:
            if label.startswith("draw") and error.startswith("JobMarketNothingToDraw"):
                stalled.append(label)
                stalls.append({"call": label, "error": error, "block": chain.block_number()})
            else:
                raise Reverted(label, error)
        _apply_logs(logs, abi, market, runs, job_seed, k, rounds, adversary)
        if stalled:
            # Every candidate the call looked at was ineligible (already served
            # the task), so it reverted and its drawNonce did not advance: the
            # same candidates come up on every retry until the seed is re-armed.
            # Let the seed's blockhash age out; the next draw re-arms it.
            log(f"    {', '.join(stalled)}: reverted JobMarketNothingToDraw; "
                f"mining {BLOCKHASH_WINDOW + 1} blocks so the seed is re-armed")
            chain.mine(BLOCKHASH_WINDOW + 1)
        # ---- commit phase: every task whose round is fully seated
        ready = [t for t in runs.values() if t.status == "draw" and len(t.seats) == t.need]
        per_worker: dict[tuple[int, str], list[TaskRun]] = defaultdict(list)
        for t in ready:
            t.status = "commit"
            for w in t.seats:
                per_worker[(t.job, w)].append(t)
        txs = []
        for (job_id, w), ts in per_worker.items():
            ids, results, seals = [], [], []
            for t in ts:
                d = (garbage_digest if w in adversary else true_digest)(job_id, t.task)
                ids.append(t.task)
                results.append(result_of(job_id, t.task, d))
                seals.append(seal_of(w, job_id, t.task, d))
            txs.append((f"commit job {job_id} by {w}",
                        {"from": w, "to": market, "gas": hex(200_000 + 150_000 * len(ids)),
                         "data": abi.call_data("commit", job_id, ids, results, seals)}))
        logs, failures = chain.run_phase(txs)
        if failures:
            raise Reverted(*failures[0])
        _apply_logs(logs, abi, market, runs, job_seed, k, rounds, adversary)
        reveals_pending = [t for t in ready if t.status == "reveal"]
        stuck = [t for t in ready if t.status == "commit"]
        if stuck:
            raise RuntimeError(f"{len(stuck)} fully committed tasks neither opened a reveal nor escalated")

    _check_jobs(setup, runs, k)
    settled = [t for t in runs.values() if t.status == "settled"]
    drawn = sum(t.drawn for t in runs.values())
    return {"tasks": tasks, "jobs": len(sizes), "wrong": sum(t.wrong for t in settled),
            "failed": sum(t.status in ("failed", "starved") for t in runs.values()),
            "starved": sum(t.status == "starved" for t in runs.values()), "settled": len(settled),
            "seats": drawn, "replicas": drawn / tasks,
            "adversary_share_round0": sum(t.round0_adversary for t in runs.values()) / (tasks * k),
            "max_round": max(t.round for t in runs.values()), "waves": waves, "draw_stalls": stalls,
            "wall_s": time.perf_counter() - t0, "gas_per_task": (chain.gas_used - gas0) / tasks,
            "transactions": chain.txs - txs0, "blocks": chain.block_number() - block0,
            "adversary_workers": n_adv, "chain_max_rounds": chain_rounds}


def _check_jobs(setup: ChainSetup, runs: dict[tuple[int, int], TaskRun], k: int) -> None:
    """The contract's own books agree with what the bench read from its events."""
    by_job: dict[int, list[TaskRun]] = defaultdict(list)
    for t in runs.values():
        by_job[t.job].append(t)
    for job_id, ts in by_job.items():
        job = setup.abi.decode_struct("job", setup.chain.eth_call(setup.market, setup.abi.call_data("job", job_id)))
        settled = sum(t.status == "settled" for t in ts)
        if setup.rule == MARGIN:
            used, expected = job["extraSeatsUsed"], sum(t.requested - k for t in ts)
        else:
            used, expected = job["escalationsUsed"], sum(t.round for t in ts)
        want_state = 3 if settled == len(ts) else 1  # Completed, or still Map
        if job["settledTasks"] != settled or used != expected or job["state"] != want_state:
            raise RuntimeError(f"job {job_id} on chain: settledTasks {job['settledTasks']}, escalation budget used "
                               f"{used}, state {job['state']}; the events said {settled}, {expected}, {want_state}")


def _words(data: str, fields: list[str]) -> dict[str, int]:
    return {name: int(data[2 + 64 * i: 66 + 64 * i], 16) for i, name in enumerate(fields)}


def _apply_logs(logs: list[dict], abi: Abi, market: str, runs: dict, job_seed: dict, k: int, rounds: int,
                adversary: set[str]) -> None:
    for lg in logs:
        if lg["address"].lower() != market.lower():
            continue
        name, fields = abi.events.get(lg["topics"][0], ("", []))
        topics = lg["topics"]
        if name not in ("SeedArmed", "TaskAssigned", "RevealOpened", "TaskEscalated", "TaskSettled"):
            continue
        data = _words(lg["data"], fields)
        job_id, task_id = int(topics[1], 16), int(topics[2], 16)
        if name == "SeedArmed":
            if task_id == 2**256 - 1:
                job_seed[job_id] = data["seedBlock"]
            else:
                runs[(job_id, task_id)].seed_block = data["seedBlock"]
            continue
        t: TaskRun = runs[(job_id, task_id)]
        if name == "TaskAssigned":
            w = to_checksum_address("0x" + topics[3][-40:])
            if w in t.served:
                raise RuntimeError(f"the contract seated {w} twice on job {job_id} task {task_id}")
            if data["round"] != t.round or t.status != "draw" or len(t.seats) >= t.need:
                raise RuntimeError(f"unexpected TaskAssigned for job {job_id} task {task_id}: {data}")
            t.seats.append(w)
            t.served.add(w)
            t.drawn += 1
            if t.round == 0:
                t.round0_adversary += w in adversary
        elif name == "RevealOpened":
            t.status, t.reveal_by = "reveal", t.seats[0]
            # Under both rules the winner is the result of every seat of the
            # deciding round; the reveal is by any of them (here the first).
        elif name == "TaskEscalated":
            t.round, t.seats, t.seed_block = data["round"], [], data["seedBlock"]
            t.need = data.get("seats", k)
            t.requested += t.need
            # On chain maxRounds is M + 1 (see the docstring): entering round M
            # is where the contract itself would have failed the job.
            t.status = "failed" if t.round >= rounds else "draw"
        elif name == "TaskSettled":
            digest = bytes.fromhex(lg["data"][66:130])
            t.status = "settled"
            t.wrong = digest != true_digest(job_id, task_id)
            if t.wrong and digest != garbage_digest(job_id, task_id):
                raise RuntimeError(f"job {job_id} task {task_id} settled on a digest nobody committed")


# --------------------------------------------------------------------------- report


def fmt_rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:.2e} ({k:,}/{n:,}), 95% CI [{lo:.2e}, {hi:.2e}]"


def verdict(lo: float, hi: float, target: float) -> str:
    if hi <= target:
        return "within target (the whole 95% CI is below it)"
    if lo > target:
        return "ABOVE target (the whole 95% CI is above it)"
    return "inconclusive (the 95% CI contains the target)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="on-chain tasks per f (0: skip Part B)")
    parser.add_argument("--sim-tasks", type=int, default=1_000_000, help="simulated tasks per f")
    parser.add_argument("--pool", type=int, default=100, help="equal-stake workers (simulation and chain)")
    parser.add_argument("--max-rounds", type=int, default=32, help="rounds before a task fails (M)")
    parser.add_argument("--job-tasks", type=int, default=500, help="map tasks per on-chain job")
    parser.add_argument("--artifact-rev", default=None,
                        help="git revision whose shardex/abi artifacts to deploy (default: the working tree's)")
    parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in FRACTIONS),
                        help="adversary stake shares f, comma-separated")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--quick", action="store_true", help="10^5 simulated and 200 on-chain tasks per f")
    args = parser.parse_args()
    if args.quick:
        args.sim_tasks, args.tasks = min(args.sim_tasks, 100_000), min(args.tasks, 200)
    if not 1 <= args.max_rounds <= 254:
        raise SystemExit("--max-rounds must be 1..254 (maxRounds is a uint8 and the chain gets M + 1)")
    fractions = [float(x) for x in args.fractions.split(",")]
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n, m_rounds = args.pool, args.max_rounds

    market_art, pool_art = load_artifacts(args.artifact_rev)
    setup = start_chain(n, market_art, pool_art)
    rule = setup.rule
    sym = "m" if rule == MARGIN else "r"
    other = UNANIMITY if rule == MARGIN else MARGIN
    source = f"artifact at {args.artifact_rev}" if args.artifact_rev else "working tree's artifact"
    print(f"Verification bench: JobMarket ({source}), {rule} rule, seats from {setup.size_fn}; "
          f"epsilon = {EPSILON:g} at every f")
    print(f"Pool N = {n} equal-stake workers, round(f*N) of them the adversary's, which commits one garbage digest "
          f"from every seat it gets; maxRounds M = {m_rounds}, escalation budget never binding")
    if setup.code_size > EIP170:
        print(f"NOTE: JobMarket runtime code is {setup.code_size:,} bytes, over the EIP-170 limit of {EIP170:,}: "
              f"it deploys here only because Anvil runs with --disable-code-size-limit")
    results: dict = {"rule": rule, "size_function": setup.size_fn, "artifact_rev": args.artifact_rev,
                     "epsilon": EPSILON, "pool": n, "max_rounds": m_rounds, "sim_tasks": args.sim_tasks,
                     "chain_tasks": args.tasks, "seed": args.seed, "market_code_size": setup.code_size,
                     "market_over_eip170": setup.code_size > EIP170, "chain_setup_s": setup.setup_s, "per_f": {}}
    try:
        for f in fractions:
            f_ppm = round(f * PPM)
            k = size_on_chain(setup, EPSILON_PPM, f_ppm)
            if k != rule_size_py(rule, EPSILON_PPM, f_ppm):
                raise RuntimeError(f"{setup.size_fn}({EPSILON_PPM}, {f_ppm}) = {k}: the Python mirror disagrees")
            n_adv = round(f * n)
            maj_r, maj_err = majority_replicas(f_ppm, EPSILON)
            ex = {f"N={n}": exact(rule, k, m_rounds, f, n), f"N={CAPACITY}": exact(rule, k, m_rounds, f, CAPACITY),
                  "N=inf": exact(rule, k, m_rounds, f, None)}
            ex["N=inf"]["wrong_unbounded_rounds"] = unbounded_formula(rule, k, f)
            k_other = rule_size_py(other, EPSILON_PPM, f_ppm)
            ex_other = exact(other, k_other, m_rounds, f, None)
            t = time.perf_counter()
            sim = simulate(rule, k, m_rounds, n, n_adv, args.sim_tasks, rng)
            sim["wall_s"] = time.perf_counter() - t
            sim["error"] = sim["wrong"] / sim["tasks"]
            sim["error_ci95"] = list(wilson(sim["wrong"], sim["tasks"]))
            t = time.perf_counter()
            big = simulate_large_pool(rule, k, m_rounds, CAPACITY, round(f * CAPACITY), args.sim_tasks, rng)
            big["wall_s"] = time.perf_counter() - t
            big["error"] = big["wrong"] / big["tasks"]
            big["error_ci95"] = list(wilson(big["wrong"], big["tasks"]))
            entry = {"f": f, "target_epsilon": EPSILON, sym: k, "seats_per_task_without_dissent": k,
                     "majority_r": maj_r, "majority_error": maj_err, "sim": sim, f"sim_N{CAPACITY}": big,
                     "exact": ex,
                     f"{other}_rule_for_comparison": {"seats_param": k_other, "N=inf": ex_other}}
            print(f"\nf = {f:.2f}: {sym} = {k} ({setup.size_fn}({EPSILON_PPM}, {f_ppm})); adversary {n_adv} of {n} "
                  f"workers; majority voting needs r = {maj_r} (its error {maj_err:.2e})")
            print(f"  sim   {sim['tasks']:>9,} tasks ({sim['wall_s']:.1f} s): "
                  f"wrong accepted {fmt_rate(sim['wrong'], sim['tasks'])}")
            print(f"        failed {sim['failed'] / sim['tasks']:.3%} (starved of fresh workers "
                  f"{sim['starved'] / sim['tasks']:.3%}), replicas/task {sim['replicas']:.3f}")
            print(f"  sim N={CAPACITY} {big['tasks']:>9,} tasks ({big['wall_s']:.1f} s, per-round hypergeometric): "
                  f"wrong accepted {fmt_rate(big['wrong'], big['tasks'])}")
            print(f"        failed {big['failed'] / big['tasks']:.3%}, replicas/task {big['replicas']:.3f}")
            for label, e in ex.items():
                extra = (f"; unbounded rounds f^{sym}/(f^{sym}+(1-f)^{sym}) = {e['wrong_unbounded_rounds']:.2e}"
                         if "wrong_unbounded_rounds" in e else "")
                print(f"  exact {label:<7} wrong {e['wrong']:.2e}, failed {e['failed']:.3%}, "
                      f"replicas/task {e['replicas']:.3f}{extra}")
            if args.tasks > 0:
                ch = run_on_chain(setup, f_ppm, k, args.tasks, args.job_tasks, m_rounds)
                ch["error"] = ch["wrong"] / ch["tasks"]
                ch["error_ci95"] = list(wilson(ch["wrong"], ch["tasks"]))
                entry["anvil"] = ch
                print(f"  anvil {ch['tasks']:>9,} tasks ({ch['jobs']} jobs, {ch['wall_s']:.1f} s, "
                      f"{ch['transactions']:,} txs, {ch['gas_per_task'] / 1e6:.2f} Mgas/task): "
                      f"wrong accepted {fmt_rate(ch['wrong'], ch['tasks'])}")
                print(f"        failed {ch['failed'] / ch['tasks']:.2%}, replicas/task {ch['replicas']:.3f}, "
                      f"adversary share of round-0 seats {ch['adversary_share_round0']:.3f} (f = {n_adv / n:.2f}), "
                      f"latest round {ch['max_round']}, draws that reverted NothingToDraw {len(ch['draw_stalls'])}")
            entry["majority_over_new"] = maj_r / sim["replicas"]
            entry["majority_over_new_without_dissent"] = maj_r / k
            print(f"  replicas/task: {rule} rule {sim['replicas']:.3f} under attack, {k} with no dissent; "
                  f"majority {maj_r}: majority/new = {maj_r / sim['replicas']:.2f}x under attack, "
                  f"{maj_r / k:.2f}x with no dissent")
            print(f"  for comparison, the {other} rule ({'r' if other == UNANIMITY else 'm'} = {k_other}), N=inf: "
                  f"wrong {ex_other['wrong']:.2e}, failed {ex_other['failed']:.3%}, "
                  f"replicas/task {ex_other['replicas']:.3f}")
            results["per_f"][f"{f:.2f}"] = entry
    finally:
        setup.anvil.stop()

    print("\nAims")
    aims: dict = {"error_within_target": {}}
    all_sim = all_best = True
    for key, e in results["per_f"].items():
        lo, hi = e["sim"]["error_ci95"]
        big = e[f"sim_N{CAPACITY}"]
        blo, bhi = big["error_ci95"]
        limit = e["exact"]["N=inf"]["wrong"]
        all_sim &= hi <= EPSILON
        all_best &= limit <= EPSILON
        print(f"  f = {key}, error vs target {EPSILON:g}: sim N = {n} {e['sim']['error']:.2e}: "
              f"{verdict(lo, hi, EPSILON)}; sim N = {CAPACITY} {big['error']:.2e}: {verdict(blo, bhi, EPSILON)}")
        line = (f"            exact at the adversary's best split (N -> inf) {limit:.2e}: "
                f"{'within' if limit <= EPSILON else 'ABOVE'} target")
        if "anvil" in e:
            clo, chi = e["anvil"]["error_ci95"]
            line += (f"; anvil {e['anvil']['error']:.2e} [{clo:.1e}, {chi:.1e}]: "
                     f"{'consistent with' if clo <= EPSILON else 'ABOVE'} the target")
        print(line)
        aims["error_within_target"][key] = {
            "sim_met": hi <= EPSILON, "sim_verdict": verdict(lo, hi, EPSILON),
            f"sim_N{CAPACITY}_verdict": verdict(blo, bhi, EPSILON), "exact_N_inf": limit,
            "best_split_met": limit <= EPSILON,
            "anvil_consistent": None if "anvil" not in e else e["anvil"]["error_ci95"][0] <= EPSILON}
    print(f"  error within target at every f: {'MET' if all_sim else 'NOT MET'} (sim, N = {n}); "
          f"{'MET' if all_best else 'NOT MET'} exactly, against the adversary's best split (N -> inf)")
    aims["error_within_target_all_f_sim"] = all_sim
    aims["error_within_target_all_f_best_split"] = all_best
    e01 = results["per_f"].get("0.10")
    if e01:
        rep = e01["sim"]["replicas"]
        k01 = e01[sym]
        aims["replicas_at_f01"] = {"aim": AIM_REPLICAS_AT_01, "under_attack": rep,
                                   "met_under_attack": rep <= AIM_REPLICAS_AT_01, "without_dissent": k01,
                                   "met_without_dissent": k01 <= AIM_REPLICAS_AT_01, "majority_r": e01["majority_r"]}
        print(f"  f = 0.10, at most {AIM_REPLICAS_AT_01:g} replicas per task: {rep:.3f} under attack -> "
              f"{'MET' if rep <= AIM_REPLICAS_AT_01 else 'NOT MET'}; {k01} with no dissent -> "
              f"{'MET' if k01 <= AIM_REPLICAS_AT_01 else 'NOT MET'} (majority: {e01['majority_r']})")
    results["aims"] = aims
    results["summary"] = [
        {"f": e["f"], "target_epsilon": EPSILON, "seats_param": e[sym],
         "sim_error": e["sim"]["error"], "sim_error_ci95": e["sim"]["error_ci95"],
         f"sim_N{CAPACITY}_error": e[f"sim_N{CAPACITY}"]["error"],
         f"sim_N{CAPACITY}_error_ci95": e[f"sim_N{CAPACITY}"]["error_ci95"],
         "exact_error_best_split": e["exact"]["N=inf"]["wrong"],
         "anvil_error": e["anvil"]["error"] if "anvil" in e else None,
         "anvil_error_ci95": e["anvil"]["error_ci95"] if "anvil" in e else None,
         "replicas_new_rule_sim": e["sim"]["replicas"],
         "replicas_new_rule_anvil": e["anvil"]["replicas"] if "anvil" in e else None,
         "replicas_new_rule_without_dissent": e[sym], "replicas_majority": e["majority_r"],
         "majority_over_new": e["majority_over_new"]}
        for e in results["per_f"].values()]
    results["wall_s"] = time.perf_counter() - started
    print(f"\nTotal {results['wall_s']:.0f} s (chain setup {setup.setup_s:.1f} s)")
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
