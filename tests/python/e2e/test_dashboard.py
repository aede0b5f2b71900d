"""The gateway's dashboard in a real headless Chromium, following a real job live.

A job is submitted through the API before any worker runs, so the page first
shows it in MAP with every task open; then two workers start and the page must
follow the job to COMPLETED through /v1/events alone (no reload), ending with
a result link whose bytes are the independently computed word count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from shardex.api_client import GatewayClient
from tests.python.e2e.conftest import REQUESTER, Devnet, Gateway, dev_key, real_text
from tests.python.e2e.test_jobs import wordcount_reference

pytestmark = pytest.mark.e2e

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "build" / "screenshots"
LONG_MS = 180_000  # generous: the machine may be busy; nothing here asserts on wall-clock time

MAP_SHARDS, REDUCE_SHARDS = 3, 2
TASKS = MAP_SHARDS + REDUCE_SHARDS
HEX_DIGEST = re.compile(r"^0x[0-9a-fA-F]{48,64}$")


@pytest.fixture
def browser_page() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
            context.close()
        finally:
            browser.close()


def _cells_in(page, state: str) -> int:
    return page.locator(f'[data-testid="task-cell"][data-state="{state}"]').count()


def test_dashboard_follows_a_job_live_to_its_verified_result(devnet: Devnet, gateway: Gateway, browser_page,
                                                             tmp_path: Path) -> None:
    page = browser_page
    expect = playwright_sync.expect
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    text = real_text(300_000)
    src = tmp_path / "input.txt"
    src.write_bytes(text)
    with GatewayClient(gateway.url, dev_key(devnet, REQUESTER)) as client:
        client.sign_in()
        # A margin of 2 (epsilon 2% against a 10% adversary): both workers agree on every task.
        posted = client.submit(src, program="wordcount", map_shards=MAP_SHARDS, reduce_shards=REDUCE_SHARDS,
                               epsilon=0.02, adversary=0.1, extra_seats=0, reveal_window_s=60)
    job_id = posted["job_id"]
    assert isinstance(job_id, int)

    # --- before any worker: the job is in MAP and every task is open
    page.goto(f"{gateway.url}/dashboard/#/jobs/{job_id}", wait_until="domcontentloaded")
    state = page.get_by_test_id("job-state")
    expect(state).to_have_text("MAP", timeout=LONG_MS)
    cells = page.get_by_test_id("task-cell")
    expect(cells).to_have_count(TASKS)
    assert _cells_in(page, "open") == TASKS
    assert page.locator('[data-testid="task-group-map"] [data-testid="task-cell"]').count() == MAP_SHARDS
    assert page.locator('[data-testid="task-group-reduce"] [data-testid="task-cell"]').count() == REDUCE_SHARDS
    expect(page.get_by_test_id("result-link")).to_have_count(0)
    escrow = page.get_by_test_id("escrow").locator(".eth")  # wei strings shown as ETH, exactly (BigInt)
    assert int(posted["escrow_wei"]) == 2 * TASKS * 10**15
    expect(escrow).to_have_text("0.01 ETH")
    expect(escrow).to_have_attribute("title", f"{posted['escrow_wei']} wei")
    expect(page.get_by_test_id("margin").locator(".stat-v")).to_have_text("2")
    # Why it does not run yet: nobody is in the CPU pool.
    expect(page.locator('[data-testid="waiting-reason"][data-code="no-workers"]')).to_have_count(1)
    try:  # the event stream is open
        page.wait_for_function("window.__shardexLive && window.__shardexLive.opens > 0", timeout=LONG_MS)
    except playwright_sync.Error as exc:
        raise AssertionError(f"event stream never opened: {page.evaluate('window.__shardexLive')}\n"
                             f"{gateway.log()[-3000:]}") from exc
    assert page.evaluate("window.__shardexLoads") == 1
    renders_before = page.evaluate("window.__shardexRenders")
    page.evaluate("window.__testMarker = 'same document'")  # gone if anything reloads the page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-job-open.png"), full_page=True)

    # --- workers start: the page follows the job to COMPLETED through live events alone
    devnet.start_worker(0)
    devnet.start_worker(1)
    expect(state).to_have_text("COMPLETED", timeout=LONG_MS)
    page.wait_for_function(
        "n => { const c = document.querySelectorAll('[data-testid=task-cell]');"
        " return c.length === n && [...c].every(e => e.dataset.state === 'settled'); }",
        arg=TASKS, timeout=LONG_MS)
    expect(page.get_by_test_id("job-state-label")).to_have_text("Completed")
    expect(page.get_by_test_id("waiting-reason")).to_have_count(0)
    link = page.get_by_test_id("result-link")
    expect(link).to_be_visible(timeout=LONG_MS)
    assert link.get_attribute("href") == f"/v1/jobs/{job_id}/result"

    assert page.evaluate("window.__shardexLoads") == 1
    assert page.evaluate("window.__testMarker") == "same document"
    assert page.evaluate("window.__shardexRenders") > renders_before > 0
    assert page.evaluate("window.__shardexLive.events") > 0  # the updates came through /v1/events

    # Each settled task shows its two drawn seats, paid for opening the settled result.
    page.locator('[data-testid="task-cell"][data-task-id="0"]').click()
    replicas = page.get_by_test_id("replica-row")
    expect(replicas).to_have_count(2)
    expect(page.get_by_test_id("task-seats")).to_contain_text("2 of 2 drawn")
    expect(page.get_by_test_id("task-digest")).to_have_text(HEX_DIGEST)

    # The link downloads the verified result: the word count computed independently here.
    href = link.evaluate("a => a.href")
    result = httpx.get(href, timeout=120)
    assert result.status_code == 200, result.text[:500]
    assert result.content == wordcount_reference(text)

    page.screenshot(path=str(SCREENSHOTS / "dashboard-job.png"), full_page=True)

    # --- workers page (a hash navigation, still the same document)
    page.get_by_role("link", name="Workers", exact=True).click()
    table = page.get_by_test_id("workers-table")
    for i in (0, 1):
        address = Account.from_key(dev_key(devnet, i)).address
        expect(table.locator(f'[data-testid="worker-row"][data-address="{address}"]')).to_have_count(1,
                                                                                                      timeout=LONG_MS)
        expect(table).to_contain_text(address)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-workers.png"), full_page=True)

    # --- jobs list: the job is listed as completed; the throughput chart counts its settled tasks
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')
    expect(row).to_have_count(1)
    expect(row).to_contain_text("COMPLETED")
    expect(row).to_contain_text(f"{TASKS} / {TASKS}")
    expect(page.get_by_test_id("throughput-total").locator(".stat-v")).to_have_text(str(TASKS))
    page.screenshot(path=str(SCREENSHOTS / "dashboard-jobs.png"), full_page=True)

    assert page.evaluate("window.__shardexLoads") == 1
    assert page.evaluate("window.__testMarker") == "same document"
    assert not page_errors, page_errors
    assert not [e for e in console_errors if "Failed to load resource" not in e], console_errors
