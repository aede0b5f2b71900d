"""The gateway as requesters and operators use it: a real `shardex gateway`
process over a real Anvil, real worker processes, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account

from shardex import siwe
from shardex.chain import codec
from shardex.api_client import GatewayClient, GatewayError
from tests.python.e2e.conftest import REQUESTER, Devnet, Gateway, dev_key, real_text
from tests.python.e2e.test_jobs import wordcount_reference

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def sse_events(url: str, stop: Callable[[list], bool], timeout: float = 180) -> list[tuple[str, dict]]:
    """Read a Server-Sent Events stream until ``stop(events)`` is true."""
    out: list[tuple[str, dict]] = []
    with httpx.stream("GET", url, timeout=httpx.Timeout(timeout, connect=10)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind, data = None, None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and kind is not None:
                out.append((kind, data))
                kind, data = None, None
                if stop(out):
                    break
    return out


def _prometheus(text: str) -> dict[str, float]:
    """Samples of a Prometheus text exposition: 'name{labels}' -> value."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


# ------------------------------------------------------------------ the whole loop through the API

def test_wallet_submit_runs_to_a_verified_result_accounted_to_the_wei(devnet: Devnet, gateway: Gateway,
                                                                       tmp_path: Path) -> None:
    text = real_text(600_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    requester = Account.from_key(dev_key(devnet, REQUESTER))
    with GatewayClient(gateway.url, requester.key.hex()) as client:
        client.sign_in()
        # epsilon 2% against a 10% adversary: a margin of 2, unanimity of the two workers below; no escalation
        # seats prefunded, so the escrow is exactly a reward per seat.
        first = client.submit(src, program="wordcount", map_shards=3, reduce_shards=2, epsilon=0.02, adversary=0.1,
                              extra_seats=0, reward_wei=10**15, collateral_wei=10**16, reveal_window_s=30)
        # The requester names the gateway as where its inputs are served, once.
        assert [t["purpose"] for t in first["transactions"]] == ["announce", "post_job"]
        assert all(t["tx"]["from"] == requester.address for t in first["transactions"])
        job_id = first["job_id"]
        escrow = 2 * 5 * 10**15
        assert first["escrow_wei"] == str(escrow) and first["sender"] == requester.address

        # Read-your-writes: the job is indexed when POST /v1/tx answers.
        job = client.get(f"/v1/jobs/{job_id}")
        assert (job["state"], job["requester"], job["tasks"], job["escrow_wei"]) == ("MAP", requester.address, 5,
                                                                                     str(escrow))
        assert (job["margin"], job["epsilon_ppm"], job["adversary_ppm"], job["extra_seats"]) == (2, 20_000, 100_000, 0)
        assert all(t["state"] == "open" and (t["seats"], t["seated"]) == (2, 0) for t in job["tasks_detail"])
        # Nobody is in the pool yet: the job says so.
        assert {"no-workers", "seats-open"} <= {r["code"] for r in job["waiting"]}, job["waiting"]

        # Follow the job live over SSE from the start, while workers run it.
        stream: list = []
        reader = threading.Thread(target=lambda: stream.extend(sse_events(
            f"{gateway.url}/v1/events?job_id={job_id}&since=0-0",
            lambda evs: any(d.get("event") == "JobStateChanged" and d["args"]["state"] == "COMPLETED"
                            for _, d in evs))))
        reader.start()
        devnet.start_worker(0)
        devnet.start_worker(1)
        reader.join(240)
        assert not reader.is_alive(), gateway.log()[-3000:]

        devnet.wait_for(lambda: client.get(f"/v1/jobs/{job_id}")["state"] == "COMPLETED", what="job completed")
        result = client.http.get(f"/v1/jobs/{job_id}/result")
        assert result.status_code == 200
        assert result.content == wordcount_reference(text)

        # Every replica gets collected by its worker: the books close at the escrow.
        devnet.wait_for(lambda: client.get(f"/v1/jobs/{job_id}")["costs"]["paid_wei"] == str(escrow),
                        what="payouts collected")
        job = client.get(f"/v1/jobs/{job_id}")
        assert job["costs"]["owed_or_open_wei"] == "0" and job["slashes"] == [] and job["waiting"] == []
        assert sum(int(p["amount_wei"]) for p in job["payouts"]) == escrow
        assert job["seats_drawn"] == 10 and job["escalations"] == 0
        for t in job["tasks_detail"]:
            assert t["state"] == "settled" and len(t["replicas"]) == 2 and t["round"] == 0
            assert {r["digest"] for r in t["replicas"]} == {t["digest"]}
            assert {r["outcome"] for r in t["replicas"]} == {"paid"}
            assert {r["agrees"] for r in t["replicas"]} == {True}
        # The same numbers as the chain itself reports.
        chain_view = devnet.json("job", "show", str(job_id))
        assert str(chain_view["paid"]) == job["costs"]["paid_wei"] and chain_view["state"] == "COMPLETED"

        # The stream carried every event of the job, in chain order, same as the REST history.
        history = client.get(f"/v1/jobs/{job_id}/events")["events"]
        streamed = [d for kind, d in stream if kind == "event"]
        assert [e["id"] for e in streamed] == [e["id"] for e in history[:len(streamed)]]
        assert sum(e["event"] == "TaskSettled" for e in streamed) == 5
        middle = history[len(history) // 2]["id"]
        tail = client.get(f"/v1/jobs/{job_id}/events", after=middle)["events"]
        assert [e["id"] for e in tail] == [e["id"] for e in history[len(history) // 2 + 1:]]
        stats = client.get("/v1/stats/jobs")
        assert stats["phases"]["COMPLETED"] == 1 and stats["total"] == 1 and stats["tasks_settled"] == 5

        workers = {w["address"]: w for w in client.get("/v1/workers")["workers"]}
        earned = sum(int(w["earned_wei"]) for w in workers.values())
        assert earned == escrow and all(w["online"] and w["resources"]["programs"] for w in workers.values())
        assert all(0 in w["classes"] and w["seats"] >= 1 for w in workers.values())
        # Each worker's own /metrics counts what the index says it did: its seats computed, committed and
        # revealed (all 10 seats of the job, none failed); a reveal pays, so there is nothing to collect.
        scraped = [_prometheus(httpx.get(f"{w['endpoint']}/metrics").text) for w in workers.values()]
        for m, w in zip(scraped, workers.values(), strict=True):
            assert m["shardex_worker_tasks_computed_total"] == w["seats"], (m, w)
            for step in ("committed", "revealed"):
                assert m[f'shardex_worker_replicas_total{{step="{step}"}}'] == w["seats"], (step, m, w)
            assert m['shardex_worker_replicas_total{step="collected"}'] == 0, m
            assert m['shardex_worker_task_failures_total{kind="runner"}'] == 0
        assert sum(m["shardex_worker_tasks_computed_total"] for m in scraped) == 10
        # The Grafana dashboard reads only metrics that a gateway and a worker export.
        from tests.python.unit.test_operability import dashboard_metrics

        exported = {sample.split("{")[0] for sample in (*_prometheus(httpx.get(f"{gateway.url}/metrics").text),
                                                          *scraped[0])}
        missing = {m for m in dashboard_metrics() if not m.startswith("shardex_colocation_")} - exported
        assert not missing, missing

        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'shardex_jobs{phase="completed"} 1.0' in metrics
        assert "shardex_tasks_settled_total 5.0" in metrics
        assert 'shardex_pool_members{resource_class="cpu"} 2.0' in metrics
        assert re.search(r'shardex_http_request_duration_seconds_count\{method="GET",route="/v1/jobs/\{job_id\}",'
                         r'status="200"\} \d+', metrics)

        # A second job from the same requester needs no second announcement.
        again = client.submit(src, program="wordcount", map_shards=2, reduce_shards=1)
        assert [t["purpose"] for t in again["transactions"]] == ["post_job"]


# ------------------------------------------------------------------ one gateway for the checks below

@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def quiet_net(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Devnet, Gateway]]:
    """A devnet and a gateway with a 1 MiB upload limit, no workers: nothing settles underneath.
    Every check below runs against an index on SQLite and on a real PostgreSQL server."""
    net = Devnet(tmp_path_factory.mktemp("gw") / "home")
    net.home.mkdir()
    net.info = json.loads(net.cli("devnet", "up", "--json", account=None).stdout)
    if request.param == "postgres":
        index = request.getfixturevalue("postgres_cluster").create_database(f"quiet_{os.getpid()}")
    else:
        index = f"sqlite:///{net.home / 'gateway.db'}"
    gw = Gateway(net, "--dev-sign", "--max-upload-mb", "1", "--db", index)
    gw.index = index
    yield net, gw
    gw.stop()
    net.cli("devnet", "down", account=None, check=False)


@pytest.fixture
def signed_in(quiet_net) -> Iterator[GatewayClient]:
    net, gw = quiet_net
    with GatewayClient(gw.url, dev_key(net, REQUESTER)) as client:
        client.sign_in()
        yield client


def _store_blocks(net: Devnet) -> int:
    return sum(1 for p in (net.home / "store").rglob("*") if p.is_file())


def _problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code and body["status"] == status and body["detail"], body
    return body


def _siwe(gw: Gateway, key: str, **overrides) -> tuple[str, str]:
    nonce = httpx.get(f"{gw.url}/v1/auth/nonce").json()
    now = datetime.now(UTC)
    fields = {"domain": urlsplit(gw.url).netloc, "address": Account.from_key(key).address, "uri": gw.url,
              "chain_id": nonce["chain_id"], "nonce": nonce["nonce"], "issued_at": now,
              "expiration_time": now + timedelta(minutes=5)} | overrides
    msg = siwe.SiweMessage(**fields)
    return msg.text(), msg.sign(key)


def test_sign_in_proves_the_address_and_nothing_else(quiet_net) -> None:
    net, gw = quiet_net
    key, other = dev_key(net, REQUESTER), dev_key(net, 7)
    login = f"{gw.url}/v1/auth/siwe"

    _problem(httpx.post(f"{gw.url}/v1/jobs", data={"program": "wordcount"}), 401, "unauthenticated")
    _problem(httpx.get(f"{gw.url}/v1/auth/me", headers={"Authorization": "Bearer forged"}), 401, "unauthenticated")

    text, sig = _siwe(gw, key)
    _, other_sig = _siwe(gw, other)
    assert "signature is by" in _problem(httpx.post(login, json={"message": text, "signature": other_sig}), 401,
                                         "invalid-signature")["detail"]
    for bad in ({"domain": "evil.example"}, {"chain_id": 1},
                {"expiration_time": datetime.now(UTC) - timedelta(seconds=1)},
                {"issued_at": datetime.now(UTC) + timedelta(hours=1)}, {"nonce": "neverissued1"}):
        t, s = _siwe(gw, key, **bad)
        _problem(httpx.post(login, json={"message": t, "signature": s}), 401, "invalid-signature")
    _problem(httpx.post(login, json={"message": "hello", "signature": sig}), 401, "invalid-signature")
    _problem(httpx.post(login, json={"message": text, "signature": "0x1234"}), 401, "invalid-signature")

    ok = httpx.post(login, json={"message": text, "signature": sig})
    assert ok.status_code == 200 and ok.json()["address"] == Account.from_key(key).address
    # A nonce signs in once.
    _problem(httpx.post(login, json={"message": text, "signature": sig}), 401, "invalid-signature")
    token = ok.json()["token"]
    me = httpx.get(f"{gw.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["address"] == Account.from_key(key).address
    assert httpx.post(f"{gw.url}/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    _problem(httpx.get(f"{gw.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}), 401, "unauthenticated")


def test_gateways_over_one_index_share_sign_ins_and_spend_each_nonce_once(quiet_net, signed_in: GatewayClient,
                                                                          tmp_path: Path) -> None:
    """A second gateway over the same database (as behind a load balancer): a session signed in at one
    acts at the other, a nonce handed out by one signs in at most once across both, signing out at one
    signs out at both, and a job posted through one is read through the other."""
    net, gw = quiet_net
    other = Gateway(net, "--dev-sign", "--db", gw.index)
    try:
        key = dev_key(net, REQUESTER)
        text, sig = _siwe(gw, key)  # the nonce comes from the first gateway
        login = {"message": text, "signature": sig}
        # Domain-bound: the message names the first gateway's host, so it is signed for that host.
        at_other = httpx.post(f"{other.url}/v1/auth/siwe", json=login, headers={"Host": urlsplit(gw.url).netloc})
        assert at_other.status_code == 200, at_other.text
        _problem(httpx.post(f"{gw.url}/v1/auth/siwe", json=login), 401, "invalid-signature")  # spent at the other
        token = {"Authorization": f"Bearer {at_other.json()['token']}"}
        assert httpx.get(f"{gw.url}/v1/auth/me", headers=token).json()["address"] == Account.from_key(key).address

        src = tmp_path / "in.txt"
        src.write_bytes(b"one gateway posts, the other reads\n")
        job_id = signed_in.submit(src, signing="gateway", program="wordcount", map_shards=1)["job_id"]
        with GatewayClient(other.url) as reader:
            net.wait_for(lambda: reader.http.get(f"/v1/jobs/{job_id}").status_code == 200, what="job read elsewhere")
            seen_here, seen_there = signed_in.get(f"/v1/jobs/{job_id}"), reader.get(f"/v1/jobs/{job_id}")
            assert (seen_there["requester"], seen_there["escrow_wei"]) == (seen_here["requester"],
                                                                          seen_here["escrow_wei"])

        assert httpx.post(f"{other.url}/v1/auth/logout", headers=token).status_code == 204
        _problem(httpx.get(f"{gw.url}/v1/auth/me", headers=token), 401, "unauthenticated")
        # A restarted gateway keeps everyone signed in: nothing of it lived in its memory.
        gw_session = {"Authorization": f"Bearer {signed_in.token}"}
        other.stop()
        other = Gateway(net, "--dev-sign", "--db", gw.index, port=other.port)
        assert httpx.get(f"{other.url}/v1/auth/me", headers=gw_session).status_code == 200
    finally:
        other.stop()


def test_bad_submissions_get_a_4xx_and_leave_nothing_behind(quiet_net, signed_in: GatewayClient,
                                                            tmp_path: Path) -> None:
    net, gw = quiet_net
    small = tmp_path / "small.txt"
    small.write_bytes(b"one line\nanother line\n" * 100)
    big = tmp_path / "big.txt"
    big.write_bytes((b"y" * 99 + b"\n") * 12_000)  # 1.2 MB: over the gateway's 1 MiB limit
    jobs_before = signed_in.get("/v1/jobs")["jobs"]
    blocks_before = _store_blocks(net)
    base = {"program": "wordcount", "map_shards": "2"}

    def post(data: dict, path: Path | None = small, headers: dict | None = None) -> httpx.Response:
        files = {"input": ("input", path.read_bytes(), "text/plain")} if path is not None else None
        return signed_in.http.post("/v1/jobs", data=data, files=files, headers=headers or signed_in.auth)

    body = _problem(post(base | {"map_shards": "0"}), 422, "invalid-request")
    assert body["errors"][0]["loc"][-1] == "map_shards"
    _problem(post(base | {"epsilon": "0"}), 422, "invalid-request")
    _problem(post(base | {"adversary": "0.5"}), 422, "invalid-request")
    _problem(post(base | {"extra_seats": "-1"}), 422, "invalid-request")
    _problem(post(base | {"lease_s": "1"}), 422, "invalid-request")
    _problem(post(base | {"reward_wei": "0.5"}), 422, "invalid-request")
    _problem(post(base | {"reward_wei": str(2**96)}), 422, "invalid-request")
    # No margin of at most 16 drawn workers meets epsilon 1e-6 against an adversary with 45% of the stake.
    assert "cannot be met" in _problem(post(base | {"epsilon": "0.000001", "adversary": "0.45"}), 422,
                                       "invalid-job")["detail"]
    _problem(post(base | {"max_rounds": "1", "extra_seats": "2"}), 422, "invalid-job")
    _problem(post(base | {"program": "no-such-program"}), 422, "invalid-job")
    _problem(post(base, path=None), 422, "invalid-job")  # no input at all
    _problem(post(base | {"input_cid": "not-a-cid"}, path=None), 400, "invalid-cid")
    _problem(post(base | {"input_cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, path=None),
             422, "input-unavailable")
    _problem(post(base, path=big), 413, "payload-too-large")
    _problem(post(base | {"signing": "teleport"}), 422, "invalid-request")

    # A requester who cannot pay is told before anything is stored.
    with GatewayClient(gw.url, Account.create().key.hex()) as broke:
        broke.sign_in()
        with pytest.raises(GatewayError) as info:
            broke.submit(small, program="wordcount", map_shards=2)
    assert info.value.status == 422 and info.value.problem["code"] == "insufficient-funds"

    assert _store_blocks(net) == blocks_before
    assert signed_in.get("/v1/jobs")["jobs"] == jobs_before


def test_contract_reverts_reach_the_user_by_name(quiet_net, signed_in: GatewayClient, tmp_path: Path) -> None:
    net, gw = quiet_net
    src = tmp_path / "in.txt"
    src.write_bytes(b"alpha beta\ngamma\n" * 50)
    posted = signed_in.submit(src, signing="gateway", program="wordcount", map_shards=2)
    job_id = posted["job_id"]
    job = signed_in.get(f"/v1/jobs/{job_id}")
    assert job["requester"] == posted["requester"]
    # "Why is my job not running?": no worker runs on this devnet, and the job says so.
    waiting = {r["code"]: r["message"] for r in job["waiting"]}
    assert "no-workers" in waiting and "CPU" in waiting["no-workers"], waiting
    assert waiting["seats-open"].startswith("2 task(s)")  # the map phase's: the reduce task waits for it
    first = httpx.get(f"{gw.url}/v1/jobs/{job_id}")
    tag = first.headers["etag"]
    unchanged = httpx.get(f"{gw.url}/v1/jobs/{job_id}", headers={"If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.content == b""

    # Someone who is not the requester tries to cancel it: relayed, mined, reverted, decoded.
    stranger = Account.from_key(dev_key(net, 7))
    nonce = httpx.post(net.info["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount",
                                                  "params": [stranger.address, "pending"]}).json()["result"]
    tx = {"to": net.info["market"], "data": "0x" + codec.encode_call("JobMarket", "cancelJob", (job_id,)).hex(),
          "value": 0, "chainId": net.info["chain_id"], "nonce": int(nonce, 16), "gas": 200_000, "type": 2,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**6}
    raw = "0x" + bytes(stranger.sign_transaction(tx).raw_transaction).hex()
    body = _problem(httpx.post(f"{gw.url}/v1/tx", json={"raw": raw}, timeout=60), 409, "contract-revert")
    assert body["error"] == {"name": "JobMarketNotRequester", "args": {"jobId": job_id, "caller": stranger.address}}
    assert body["detail"] == f"JobMarketNotRequester(jobId={job_id}, caller={stranger.address})"

    # The gateway relays only to its own contracts, on its own chain, and only signed transactions.
    elsewhere = "0x" + bytes(stranger.sign_transaction(tx | {"to": "0x" + "11" * 20}).raw_transaction).hex()
    _problem(httpx.post(f"{gw.url}/v1/tx", json={"raw": elsewhere}), 422, "invalid-transaction")
    other_chain = "0x" + bytes(stranger.sign_transaction(tx | {"chainId": 1}).raw_transaction).hex()
    _problem(httpx.post(f"{gw.url}/v1/tx", json={"raw": other_chain}), 422, "invalid-transaction")
    _problem(httpx.post(f"{gw.url}/v1/tx", json={"raw": "0xdeadbeef"}), 422, "invalid-transaction")
    _problem(httpx.post(f"{gw.url}/v1/tx", json={"raw": "zz"}), 422, "invalid-transaction")
    # A sender with no ETH: the node's refusal, named, not a 500.
    broke = Account.create()
    poor = "0x" + bytes(broke.sign_transaction(tx | {"nonce": 0}).raw_transaction).hex()
    _problem(httpx.post(f"{gw.url}/v1/tx", json={"raw": poor}), 422, "transaction-rejected")

    # The requester's own cancel works, through the same relay.
    requester = Account.from_key(dev_key(net, 5))
    assert requester.address == posted["requester"]
    nonce = httpx.post(net.info["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount",
                                                  "params": [requester.address, "pending"]}).json()["result"]
    mine = "0x" + bytes(requester.sign_transaction(tx | {"nonce": int(nonce, 16)}).raw_transaction).hex()
    done = httpx.post(f"{gw.url}/v1/tx", json={"raw": mine}, timeout=60)
    assert done.status_code == 200 and [e["event"] for e in done.json()["events"]] == ["JobStateChanged", "Refunded"]
    changed = httpx.get(f"{gw.url}/v1/jobs/{job_id}", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json()["state"] == "CANCELLED" and changed.headers["etag"] != tag
    assert changed.json()["waiting"] == []
    assert changed.json()["costs"]["refunded_wei"] == changed.json()["escrow_wei"]
    _problem(httpx.get(f"{gw.url}/v1/jobs/{job_id}/result"), 409, "job-not-completed")


def test_reads_validate_their_input(quiet_net) -> None:
    _, gw = quiet_net
    _problem(httpx.get(f"{gw.url}/v1/jobs/999999"), 404, "job-not-found")
    _problem(httpx.get(f"{gw.url}/v1/jobs/0"), 422, "invalid-request")
    _problem(httpx.get(f"{gw.url}/v1/jobs/abc"), 422, "invalid-request")
    _problem(httpx.get(f"{gw.url}/v1/jobs?limit=100000"), 422, "invalid-request")
    _problem(httpx.get(f"{gw.url}/v1/jobs?state=DANCING"), 422, "invalid-request")
    _problem(httpx.get(f"{gw.url}/v1/events?since=yesterday"), 422, "invalid-request")
    _problem(httpx.get(f"{gw.url}/v1/nothing-here"), 404, "not-found")
    assert httpx.get(f"{gw.url}/ipfs/not-a-cid?format=raw").status_code == 400
    page = httpx.get(f"{gw.url}/v1/jobs?limit=1")
    assert page.status_code == 200 and set(page.json()) == {"jobs", "next_before"}


def test_jobs_list_filters_and_paginates(quiet_net, signed_in: GatewayClient, tmp_path: Path) -> None:
    net, gw = quiet_net
    src = tmp_path / "in.txt"
    src.write_bytes(b"x y z\n" * 40)
    ids = [signed_in.submit(src, program="wordcount", map_shards=1)["job_id"] for _ in range(3)]
    me = Account.from_key(dev_key(net, REQUESTER)).address
    seen, before = [], None
    while True:
        page = signed_in.get("/v1/jobs", requester=me.lower(), limit=2, before=before)
        seen += [j["job_id"] for j in page["jobs"]]
        if page["next_before"] is None:
            break
        before = page["next_before"]
    assert seen == sorted(seen, reverse=True) and set(ids) <= set(seen)
    assert all(j["requester"] == me for j in signed_in.get("/v1/jobs", requester=me)["jobs"])
    in_map = {j["job_id"] for j in signed_in.get("/v1/jobs", state="MAP", limit=200)["jobs"]}
    assert set(ids) <= in_map
    assert not set(ids) & {j["job_id"] for j in signed_in.get("/v1/jobs", state="COMPLETED")["jobs"]}
    health = httpx.get(f"{gw.url}/healthz").json()
    assert health["status"] == "ok" and health["chain_id"] == net.info["chain_id"]


# ------------------------------------------------------------------ the OpenAPI contract, fuzzed

def test_openapi_contract_holds_under_fuzzing(quiet_net, tmp_path: Path) -> None:
    """Schemathesis (its CLI: its pytest plugin does not load under this pytest) generates requests from
    /openapi.json -- valid, boundary and invalid ones, and stateful sequences -- signed in as a requester:
    no 5xx, and every status, content type and body as documented."""
    net, gw = quiet_net
    with GatewayClient(gw.url, dev_key(net, REQUESTER)) as client:
        token = client.sign_in()
    schemathesis = Path(sys.executable).parent / "schemathesis"
    proc = subprocess.run(
        [str(schemathesis), "run", f"{gw.url}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
         # The event stream never ends by design (tested above with a real reader); logging out would end
         # the session the fuzzer signs in with.
         "--exclude-path", "/v1/events", "--exclude-path", "/v1/auth/logout",
         "-H", f"Authorization: Bearer {token}", "--max-examples", "40", "--seed", "7", "--request-timeout", "60",
         "--no-color", "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"(\d+) generated, \1 passed", proc.stdout), proc.stdout[-3000:]


# ------------------------------------------------------------------ the indexer survives kill -9

def rebuilt_index(devnet: Devnet, url: str) -> dict:
    """The devnet's index rebuilt from its deployment block into the empty database at ``url``, dumped."""
    from backend import db
    from backend.indexer import Indexer
    from shardex.chain import ChainClient, Deployment
    from tests.python.integration.test_indexer import dump

    async def rebuild() -> dict:
        engine = db.make_engine(url)
        deployment = Deployment.from_json({k: devnet.info[k] for k in ("chain_id", "market", "registry", "block")})
        async with ChainClient(devnet.info["rpc_url"], deployment) as chain:
            await Indexer(engine, chain).rebuild()
        return dump(engine)

    return asyncio.run(rebuild())


def test_gateway_killed_repeatedly_while_jobs_settle_ends_equal_to_a_rebuild(devnet: Devnet, tmp_path: Path,
                                                                            index_db) -> None:
    from backend import db
    from tests.python.integration.test_indexer import dump

    src = tmp_path / "in.txt"
    src.write_bytes(real_text(400_000))
    index_url = index_db("gateway")  # on SQLite, then on PostgreSQL
    gw = Gateway(devnet, "--dev-sign", "--db", index_url)
    port = gw.port
    try:
        with GatewayClient(gw.url, dev_key(devnet, REQUESTER)) as client:
            client.sign_in()
            # A margin of 2: the two workers below can settle every task.
            job_ids = [client.submit(src, program="wordcount", map_shards=4, reduce_shards=2, epsilon=0.02,
                                     adversary=0.1)["job_id"] for _ in range(2)]
        devnet.start_worker(0)
        devnet.start_worker(1)
        # SIGKILL the gateway at arbitrary points while the workers settle tasks, restart it on the same
        # port (it is the requester's announced input server) over the same database.
        for delay in (0.4, 0.9, 0.2, 1.3):
            time.sleep(delay)
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(10)
            gw = Gateway(devnet, "--dev-sign", "--db", index_url, port=port)
        with GatewayClient(gw.url) as reader:
            def answer(path: str) -> dict:
                # A sync that failed under load answers 503 until the indexer's retry succeeds: keep polling.
                try:
                    return reader.get(path)
                except GatewayError:
                    return {}

            devnet.wait_for(lambda: all(answer(f"/v1/jobs/{j}").get("state") == "COMPLETED" for j in job_ids),
                            timeout=240, what="both jobs completed")
            for index in list(devnet.workers):
                devnet.stop_worker(index)  # they collect and withdraw on the way out; then the chain is idle
            head = int(httpx.post(devnet.info["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                                                "params": []}).json()["result"], 16)
            devnet.wait_for(lambda: answer("/healthz").get("indexed_block") == head, what="indexer caught up")
    finally:
        gw.stop()

    survived = dump(db.make_engine(index_url))
    assert survived["events"] and survived == rebuilt_index(devnet, index_db("rebuilt"))


def test_result_of_a_job_the_chain_completed_before_the_index_did(devnet: Devnet, tmp_path: Path) -> None:
    """A requester watching the chain asks for the result the moment the job completes; the indexer
    (polling every 60 s here) has not seen it yet. The gateway catches up instead of answering 409."""
    text = real_text(200_000)
    src = tmp_path / "in.txt"
    src.write_bytes(text)
    gw = Gateway(devnet, "--dev-sign", "--poll", "60")
    try:
        with GatewayClient(gw.url, dev_key(devnet, REQUESTER)) as client:
            client.sign_in()
            # One worker: trust it (no adversary assumed), a margin of 1.
            job_id = client.submit(src, signing="gateway", program="wordcount", map_shards=2,
                                   adversary=0)["job_id"]
            devnet.start_worker(0)
            devnet.wait_for(lambda: devnet.json("job", "show", str(job_id))["state"] == "COMPLETED",
                            what="job completed on chain")
            result = client.http.get(f"/v1/jobs/{job_id}/result")
            assert result.status_code == 200, result.text
            assert result.content == wordcount_reference(text)
    finally:
        gw.stop()


@pytest.mark.postgres
def test_two_gateways_over_postgresql_lose_nothing_when_the_writer_is_killed_mid_settlement(
        devnet: Devnet, postgres_cluster, tmp_path: Path) -> None:
    """Two gateways over one PostgreSQL index, behind an imagined load balancer. The one that writes the
    index is SIGKILLed while workers settle tasks; the other takes over. A live stream opened at the
    survivor before the kill carries every event of the jobs once, in chain order, and the index
    equals a rebuild from the chain."""
    from backend import db
    from tests.python.integration.test_indexer import dump

    index = postgres_cluster.create_database(f"failover_{os.getpid()}")
    writer = Gateway(devnet, "--dev-sign", "--db", index)
    wait = devnet.wait_for
    wait(lambda: httpx.get(f"{writer.url}/healthz").json()["index_writer"], what="the first gateway writes")
    survivor = Gateway(devnet, "--dev-sign", "--db", index)
    try:
        assert not httpx.get(f"{survivor.url}/healthz").json()["index_writer"]
        src = tmp_path / "in.txt"
        src.write_bytes(real_text(400_000))
        with GatewayClient(survivor.url, dev_key(devnet, REQUESTER)) as client:
            client.sign_in()
            # The survivor serves the inputs; a margin of 2, which the two workers below settle.
            job_ids = [client.submit(src, program="wordcount", map_shards=4, reduce_shards=2, epsilon=0.02,
                                     adversary=0.1)["job_id"] for _ in range(2)]
        done: set[int] = set()
        stream: list = []  # the events so far, as the reader thread receives them

        def both_completed(evs: list) -> bool:
            stream[:] = evs
            done.update(d["job_id"] for kind, d in evs[-1:] if kind == "event" and d["event"] == "JobStateChanged"
                        and d["args"]["state"] == "COMPLETED")
            return done >= set(job_ids)

        reader = threading.Thread(target=lambda: sse_events(f"{survivor.url}/v1/events?since=0-0", both_completed,
                                                            timeout=300))
        reader.start()
        devnet.start_worker(0)
        devnet.start_worker(1)
        wait(lambda: sum(kind == "event" and d["event"] == "TaskSettled" for kind, d in list(stream)) >= 2,
             what="tasks settling")
        writer.proc.send_signal(signal.SIGKILL)
        writer.proc.wait(10)
        streamed_before_kill = len(stream)
        wait(lambda: httpx.get(f"{survivor.url}/healthz").json()["index_writer"], timeout=30,
             what="the survivor takes over")
        reader.join(300)
        assert not reader.is_alive(), survivor.log()[-3000:]
        for i in list(devnet.workers):
            devnet.stop_worker(i)  # they collect on the way out; then the chain is idle
        head = int(httpx.post(devnet.info["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                                            "params": []}).json()["result"], 16)
        wait(lambda: httpx.get(f"{survivor.url}/healthz").json()["indexed_block"] == head, what="index caught up")
        with GatewayClient(survivor.url) as reads:
            history = [e["id"] for j in job_ids for e in reads.get(f"/v1/jobs/{j}/events", limit=1000)["events"]]
        streamed = [d["id"] for kind, d in stream if kind == "event" and d["job_id"] in job_ids]
        key = lambda ident: tuple(map(int, ident.split("-")))  # noqa: E731
        # Each event once, in chain order, none lost: the stream (closed when both jobs completed) is the
        # history up to there, and it went on past the takeover.
        assert streamed == sorted(history, key=key)[:len(streamed)]
        assert len(stream) > streamed_before_kill
        assert [kind for kind, _ in stream].count("reorg") == 0
    finally:
        survivor.stop()
        if writer.proc.poll() is None:
            writer.stop()

    survived = dump(db.make_engine(index))
    assert survived["events"] and survived == rebuilt_index(
        devnet, postgres_cluster.create_database(f"failover_rebuilt_{os.getpid()}"))
