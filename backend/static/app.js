/* Shardex dashboard: a dependency-free single-page app over the gateway's /v1 API.
 *
 * Routes (hash): #/jobs[?state=&before=], #/jobs/{id}, #/workers.
 * Live: one EventSource on /v1/events; an event that concerns the visible page
 * schedules a debounced re-fetch of that page's JSON and a re-render. The page
 * is never reloaded: window.__shardexLoads is set once when this script starts,
 * window.__shardexRenders counts renders.
 * Wei amounts arrive as decimal strings and are only ever handled as BigInt.
 */
"use strict";

(() => {
  window.__shardexLoads = (window.__shardexLoads || 0) + 1;
  window.__shardexRenders = 0;

  const DEBOUNCE_MS = 200;
  const HEALTH_EVERY_MS = 5000;
  const FALLBACK_POLL_MS = 10000;
  const THROUGHPUT = { bucket_s: 10, buckets: 60 };
  const PHASES = ["MAP", "REDUCE", "COMPLETED", "FAILED", "EXPIRED", "CANCELLED"];
  const PHASE_LABEL = {
    MAP: "Map phase", REDUCE: "Reduce phase", COMPLETED: "Completed", FAILED: "Failed",
    EXPIRED: "Expired", CANCELLED: "Cancelled",
  };
  const ENDED_WITHOUT_RESULT = ["FAILED", "EXPIRED", "CANCELLED"];
  const TASK_STATES = ["open", "assigned", "committing", "revealing", "settled", "abandoned"];
  const TASK_STATE_HELP = {
    open: "seats waiting to be drawn",
    assigned: "workers drawn for its seats are computing",
    committing: "drawn workers are committing results",
    revealing: "a result leads by the margin; its committers are opening it",
    settled: "a result led by the margin and was opened",
    abandoned: "the job ended before it settled",
  };
  const CLASS_NAMES = { 0: "CPU", 1: "GPU" };
  const className = (c) => CLASS_NAMES[c] || `class ${c}`;
  const PPM = 1e6;

  const view = document.getElementById("view");
  const banner = document.getElementById("banner");

  // ------------------------------------------------------------------ DOM helpers

  const SVG_NS = "http://www.w3.org/2000/svg";

  function build(ns, tag, attrs, children) {
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "class") {
        el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(el, child);
      else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
  const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);

  // ------------------------------------------------------------------ formatting

  const WEI_PER_ETH = 10n ** 18n;

  function toBig(value) {
    try {
      return BigInt(value);
    } catch (_) {
      return null;
    }
  }

  /** "21000000000000000" -> "0.021" (truncated to maxFrac decimals, thousands separated). */
  function formatEth(wei, maxFrac = 6) {
    let v = toBig(wei);
    if (v === null) return "—";
    const neg = v < 0n;
    if (neg) v = -v;
    const whole = v / WEI_PER_ETH;
    const frac = v % WEI_PER_ETH;
    const fracStr = frac.toString().padStart(18, "0").slice(0, maxFrac).replace(/0+$/, "");
    const sign = neg ? "-" : "";
    if (whole === 0n && frac > 0n && !fracStr) return `${sign}<0.${"0".repeat(maxFrac - 1)}1`;
    const wholeStr = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + wholeStr + (fracStr ? `.${fracStr}` : "");
  }

  function eth(wei, maxFrac) {
    const big = toBig(wei);
    return h("span", { class: "eth", title: big === null ? null : `${big.toString()} wei` },
      formatEth(wei, maxFrac), h("span", { class: "unit" }, " ETH"));
  }

  const shortAddr = (a) => (a && a.length > 12 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a || "—");
  const shortHex = (d, n = 10) => (d ? (d.length > n + 2 ? `${d.slice(0, n)}…` : d) : "—");

  function addr(a, full = false) {
    if (!a) return h("span", { class: "muted" }, "—");
    return h("span", { class: "mono addr", title: a }, full ? a : shortAddr(a));
  }

  function hex(d, n) {
    if (!d) return h("span", { class: "muted" }, "—");
    return h("span", { class: "mono", title: d }, shortHex(d, n));
  }

  function fmtInt(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
  }

  function fmtTime(ts) {
    if (!ts) return "—";
    const d = new Date(ts * 1000);
    return d.toLocaleString("en-GB", { year: "numeric", month: "short", day: "2-digit", hour: "2-digit",
      minute: "2-digit", second: "2-digit", hour12: false });
  }

  function fmtClock(ts) {
    return new Date(ts * 1000).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false });
  }

  function fmtAgo(ts) {
    if (!ts) return "—";
    const s = Math.round(Date.now() / 1000 - ts);
    if (s < -5) return fmtTime(ts); // chain time ahead of this clock (a dev chain that warped)
    if (s < 5) return "just now";
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function timeEl(ts, extra) {
    return h("time", { datetime: ts ? new Date(ts * 1000).toISOString() : null,
      title: [fmtTime(ts), extra].filter(Boolean).join(" · ") }, fmtAgo(ts));
  }

  /** Parts per million -> "0.001"; null (not indexed) -> "—". */
  function fmtPpm(ppm) {
    return ppm === null || ppm === undefined ? "—" : String(Number((ppm / PPM).toPrecision(6)));
  }

  function fmtMb(mb) {
    if (mb === null || mb === undefined) return "—";
    return mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 ? 1 : 0)} GiB` : `${mb} MiB`;
  }

  const phaseBadge = (state, attrs = {}, size = null) =>
    h("span", { class: ["badge", size, `phase-${String(state).toLowerCase()}`], ...attrs }, state);

  const stateBadge = (state) => h("span", { class: ["badge", `st-${state}`] }, state);

  function pct(done, total) {
    return total > 0 ? Math.round((100 * done) / total) : 0;
  }

  function progress(done, total, label) {
    const p = pct(done, total);
    return h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total,
      "aria-valuenow": done, "aria-label": label || "Tasks settled" },
    h("div", { class: "progress-fill", style: `width:${p}%` }));
  }

  function card(title, body, opts = {}) {
    const id = opts.id || null;
    return h("section", { class: ["card", opts.class], "aria-labelledby": id ? `${id}-h` : null, id },
      title ? h("header", { class: "card-head" }, h("h2", { id: id ? `${id}-h` : null }, title), opts.actions || null)
        : null,
      h("div", { class: ["card-body", opts.flush ? "flush" : null] }, body));
  }

  function kv(pairs) {
    return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  function emptyRow(cols, text) {
    return h("tr", { class: "empty" }, h("td", { colspan: cols }, text));
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path) {
    // no-cache: revalidate every time; job details answer 304 to the ETag while unchanged.
    const res = await fetch(path, { headers: { accept: "application/json" }, cache: "no-cache" });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  // ------------------------------------------------------------------ routing

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = raw.split("?");
    const params = new URLSearchParams(qs || "");
    const parts = path.split("/").filter(Boolean);
    if (parts.length === 0 || (parts[0] === "jobs" && parts.length === 1)) {
      const state = PHASES.includes(params.get("state")) ? params.get("state") : null;
      const before = /^\d+$/.test(params.get("before") || "") ? params.get("before") : null;
      return { name: "jobs", state, before };
    }
    if (parts[0] === "jobs" && parts.length === 2 && /^\d+$/.test(parts[1])) {
      return { name: "job", id: Number(parts[1]) };
    }
    if (parts[0] === "workers" && parts.length === 1) return { name: "workers" };
    return { name: "notfound", path };
  }

  function jobsHash(state, before) {
    const q = new URLSearchParams();
    if (state) q.set("state", state);
    if (before) q.set("before", before);
    const s = q.toString();
    return `#/jobs${s ? `?${s}` : ""}`;
  }

  // Per-page UI state that survives re-renders.
  const ui = { selectedTask: new Map() }; // job id -> task id

  let route = parseHash();
  let loadSeq = 0;
  let lastData = null; // the data of the page on screen, for live refreshes

  async function load(isNavigation) {
    const seq = ++loadSeq;
    const r = route;
    if (isNavigation) {
      lastData = null;
      showRoute(r);
      renderPage(r, { loading: true });
    }
    let data;
    try {
      data = await PAGES[r.name].fetch(r);
    } catch (err) {
      if (seq !== loadSeq) return;
      if (isNavigation || !lastData) renderPage(r, { error: err });
      else showBanner(`Live update failed: ${err.message}. Retrying on the next event.`);
      return;
    }
    if (seq !== loadSeq) return; // a newer load (or navigation) superseded this one
    hideBanner();
    lastData = data;
    renderPage(r, { data });
  }

  /** What depends on the route alone: the document title and the active nav link (once per navigation). */
  function showRoute(r) {
    document.title = `${PAGES[r.name].title(r)} · Shardex`;
    for (const a of document.querySelectorAll(".nav a")) {
      const on = a.dataset.route === (r.name === "job" ? "jobs" : r.name);
      a.classList.toggle("active", on);
      if (on) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function renderPage(r, state) {
    const active = document.activeElement;
    const focusKey = active && active.dataset ? active.dataset.focusKey : null;
    const content = state.loading ? h("div", { class: "card pad loading", "aria-busy": "true" }, "Loading…")
      : state.error ? errorCard(state.error) : PAGES[r.name].render(r, state.data);
    view.replaceChildren(content);
    if (focusKey) {
      const again = view.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
    window.__shardexRenders += 1;
  }

  function errorCard(err) {
    const status = err instanceof ApiError ? err.status : null;
    return h("section", { class: "card pad error-card", role: "alert" },
      h("h2", {}, status === 404 ? "Not found" : "Could not load this page"),
      h("p", {}, err.message || String(err)),
      h("p", { class: "muted" }, status === 404 ? "It may not be indexed yet: this page updates live."
        : "The page retries on the next live event."));
  }

  // ------------------------------------------------------------------ refresh scheduling (debounced, serialized)

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;

  function scheduleRefresh(delay = DEBOUNCE_MS) {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, delay);
  }

  async function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      await load(false);
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh();
      }
    }
  }

  function navigate() {
    route = parseHash();
    if (refreshTimer !== null) {
      clearTimeout(refreshTimer);
      refreshTimer = null;
    }
    load(true);
    view.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }

  // ------------------------------------------------------------------ banner, header

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = false;
  }

  function hideBanner() {
    banner.hidden = true;
  }

  function setPill(el, kind, text, title) {
    el.className = `pill ${kind}`;
    el.querySelector(".pill-text").textContent = text;
    if (title) el.title = title;
  }

  async function refreshHealth() {
    const pill = document.getElementById("health-pill");
    const facts = document.getElementById("chain-facts");
    let body;
    try {
      body = await api("/healthz");
    } catch (err) {
      body = (err instanceof ApiError && err.body && err.body.health) || null; // 503 still carries the health
    }
    if (!body) {
      setPill(pill, "bad", "Gateway unreachable");
      facts.replaceChildren();
      return;
    }
    const ok = body.status === "ok";
    setPill(pill, ok ? "ok" : "warn", ok ? "Indexer OK" : "Indexer degraded",
      body.indexer_error ? `Indexer error: ${body.indexer_error}` : "The indexer is in sync with the chain");
    const lag = body.lag_blocks;
    facts.replaceChildren(
      h("span", { class: "fact", "data-testid": "chain-id" }, h("span", { class: "fact-k" }, "Chain"),
        String(body.chain_id)),
      h("span", { class: "fact", "data-testid": "indexed-block" }, h("span", { class: "fact-k" }, "Indexed"),
        `#${fmtInt(body.indexed_block)}`),
      h("span", { class: ["fact", lag > 5 ? "lagging" : null], "data-testid": "lag",
        title: `Chain head #${fmtInt(body.head_block)}` }, h("span", { class: "fact-k" }, "Lag"),
      lag === null || lag === undefined ? "—" : `${fmtInt(lag)} block${lag === 1 ? "" : "s"}`),
    );
  }

  // ------------------------------------------------------------------ live events

  let source = null;
  // Diagnostics for tests and curious operators: how the event stream has fared.
  const liveStats = { opens: 0, errors: 0, events: 0, reorgs: 0, last_event_id: null };
  window.__shardexLive = liveStats;

  function connectEvents() {
    const pill = document.getElementById("live-pill");
    source = new EventSource("/v1/events");
    source.addEventListener("open", () => {
      liveStats.opens += 1;
      setPill(pill, "ok", "Live", "Receiving chain events from /v1/events");
      scheduleRefresh(); // catch up on anything that happened while (re)connecting
    });
    source.addEventListener("event", (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      liveStats.events += 1;
      liveStats.last_event_id = msg.lastEventId || null;
      pill.title = `Receiving chain events (${liveStats.events} so far; last: ${ev.event} in block ${ev.block_number})`;
      onChainEvent(ev);
    });
    source.addEventListener("reorg", () => {
      liveStats.reorgs += 1;
      scheduleRefresh();
      scheduleHealth();
    });
    source.addEventListener("error", () => {
      liveStats.errors += 1;
      if (source.readyState === EventSource.CLOSED) {
        setPill(pill, "bad", "Live: offline", "The event stream closed; retrying in 5 s");
        setTimeout(connectEvents, 5000);
      } else {
        setPill(pill, "warn", "Live: reconnecting", "Reconnecting to /v1/events");
      }
    });
  }

  let healthTimer = null;

  function scheduleHealth() {
    if (healthTimer !== null) return;
    healthTimer = setTimeout(() => {
      healthTimer = null;
      refreshHealth();
    }, 1000);
  }

  function onChainEvent(ev) {
    scheduleHealth();
    const page = PAGES[route.name];
    if (page.affectedBy(route, ev)) scheduleRefresh(page.debounceMs || DEBOUNCE_MS);
  }

  // ------------------------------------------------------------------ page: jobs

  const jobsPage = {
    title: (r) => (r.state ? `${PHASE_LABEL[r.state]} jobs` : "Jobs"),
    affectedBy: () => true,
    async fetch(r) {
      const q = new URLSearchParams({ limit: "25" });
      if (r.state) q.set("state", r.state);
      if (r.before) q.set("before", r.before);
      const [page, throughput, stats] = await Promise.all([
        api(`/v1/jobs?${q}`),
        api(`/v1/stats/throughput?bucket_s=${THROUGHPUT.bucket_s}&buckets=${THROUGHPUT.buckets}`),
        api("/v1/stats/jobs"),
      ]);
      return { page, throughput, stats };
    },
    render(r, { page, throughput, stats }) {
      const filter = h("label", { class: "field" }, h("span", {}, "State"),
        h("select", { "data-focus-key": "state-filter", "aria-label": "Filter jobs by state",
          onchange: (e) => { location.hash = jobsHash(e.target.value, null); } },
        h("option", { value: "" }, `All states (${stats.total})`),
        PHASES.map((p) => h("option", { value: p, selected: r.state === p },
          `${PHASE_LABEL[p]} (${stats.phases[p] ?? 0})`))));
      const pager = h("div", { class: "pager" },
        r.before ? h("a", { class: "btn", href: jobsHash(r.state, null) }, "↺ Newest") : null,
        page.next_before !== null && page.next_before !== undefined
          ? h("a", { class: "btn", href: jobsHash(r.state, page.next_before), "data-testid": "older" }, "Older →")
          : h("span", { class: "muted small" }, page.jobs.length ? "End of list" : ""));
      const rows = page.jobs.map((j) => h("tr", { "data-testid": "job-row", "data-job-id": j.job_id },
        h("td", {}, h("a", { href: `#/jobs/${j.job_id}`, class: "job-link" }, `#${j.job_id}`)),
        h("td", {}, phaseBadge(j.state)),
        h("td", {}, addr(j.requester)),
        h("td", { class: "tasks-cell" },
          h("div", { class: "tasks-count" }, `${j.settled_tasks} / ${j.tasks}`,
            h("span", { class: "muted small" }, ` · ${j.map_tasks}m + ${j.reduce_tasks}r`)),
          progress(j.settled_tasks, j.tasks, `Job ${j.job_id}: ${j.settled_tasks} of ${j.tasks} tasks settled`)),
        h("td", { class: "num", title: `ε = ${fmtPpm(j.epsilon_ppm)}, adversary ${fmtPpm(j.adversary_ppm)} · `
          + `${className(j.resource_class)} pool` }, `${j.margin} · ε ${fmtPpm(j.epsilon_ppm)}`),
        h("td", { class: "num" }, eth(j.escrow_wei)),
        h("td", {}, timeEl(j.posted_time, `block #${j.posted_block}`))));
      const table = h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": "jobs-table" },
        h("caption", { class: "sr-only" }, "Jobs, newest first"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Job"), h("th", { scope: "col" }, "State"),
          h("th", { scope: "col" }, "Requester"), h("th", { scope: "col" }, "Tasks settled"),
          h("th", { scope: "col", class: "num",
            title: "Margin of agreeing drawn workers that settles a task · accepted error ε" }, "Margin · ",
          h("span", { class: "no-caps" }, "ε")),
          h("th", { scope: "col", class: "num" }, "Escrow"), h("th", { scope: "col" }, "Posted"))),
        h("tbody", {}, rows.length ? rows : emptyRow(7, r.state ? `No ${PHASE_LABEL[r.state].toLowerCase()} jobs.`
          : "No jobs yet. Submit one with `shardex job submit` or POST /v1/jobs."))));
      return h("div", { class: "stack" },
        h("div", { class: "page-head" }, h("h1", {}, "Jobs"),
          h("p", { class: "muted" }, "Map/reduce jobs posted to the JobMarket contract, newest first.")),
        throughputCard(throughput),
        card("All jobs", [table], { id: "jobs", flush: true, actions: h("div", { class: "toolbar" }, filter, pager) }));
    },
  };

  /** Integer y-axis ticks: a 1/2/5 x 10^k step giving at most 5 intervals. */
  function yTicks(peak) {
    let step = 1;
    for (let k = 1; ; k *= 10) {
      const found = [1, 2, 5].map((m) => m * k).find((st) => Math.ceil(Math.max(peak, 1) / st) <= 5);
      if (found) {
        step = found;
        break;
      }
    }
    const top = Math.max(step, Math.ceil(peak / step) * step);
    const ticks = [];
    for (let v = 0; v <= top; v += step) ticks.push(v);
    return { top, ticks };
  }

  function throughputCard(t) {
    const counts = t.buckets.map((b) => b.settled);
    const total = counts.reduce((a, b) => a + b, 0);
    const peak = Math.max(0, ...counts);
    const lastMin = counts.slice(-Math.max(1, Math.round(60 / t.bucket_s))).reduce((a, b) => a + b, 0);
    const W = 1180, H = 190, L = 40, R = 8, T = 12, B = 26;
    const iw = W - L - R, ih = H - T - B;
    const { top, ticks } = yTicks(peak);
    const bw = iw / counts.length;
    const y = (v) => T + ih - (v / top) * ih;
    const grid = ticks.map((v) => svg("g", { class: "grid" },
      svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v))));
    const bars = t.buckets.map((b, i) => {
      const bh = (b.settled / top) * ih;
      return svg("rect", { class: b.settled ? "bar" : "bar zero", x: L + i * bw + 1, y: T + ih - Math.max(bh, 1),
        width: Math.max(1, bw - 2), height: Math.max(bh, 1), rx: 1.5 },
      svg("title", {}, `${fmtClock(b.start_time)}: ${b.settled} task${b.settled === 1 ? "" : "s"} settled`));
    });
    const every = Math.max(1, Math.round(counts.length / 6));
    const labels = t.buckets.map((b, i) => (i % every === 0 || i === counts.length - 1
      ? svg("text", { class: "xlabel", x: L + i * bw + bw / 2, y: H - 8, "text-anchor": "middle" },
        fmtClock(i === counts.length - 1 ? t.end_time : b.start_time)) : null));
    const windowMin = Math.round((t.bucket_s * t.buckets.length) / 60);
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Tasks settled per ${t.bucket_s} seconds over the last ${windowMin} minutes: ${total} in total, `
        + `peak ${peak} per bucket.` }, grid, bars, labels,
    total === 0 ? svg("text", { class: "chart-empty", x: L + iw / 2, y: T + ih / 2, "text-anchor": "middle" },
      "No tasks settled in this window") : null);
    const stats = h("div", { class: "chart-stats" },
      stat("Settled", fmtInt(total), `last ${windowMin} min`, { "data-testid": "throughput-total" }),
      stat("Last minute", fmtInt(lastMin), "tasks"),
      stat("Peak", fmtInt(peak), `per ${t.bucket_s} s`));
    return card("Settlement throughput", [stats, chart], { id: "throughput", class: "chart-card",
      actions: h("span", { class: "muted small" }, `Tasks settled per ${t.bucket_s} s of chain time`) });
  }

  function stat(label, value, sub, attrs = {}) {
    return h("div", { class: "stat", ...attrs }, h("div", { class: "stat-k" }, label),
      h("div", { class: "stat-v" }, value), sub ? h("div", { class: "stat-sub" }, sub) : null);
  }

  // ------------------------------------------------------------------ page: job

  const jobPage = {
    title: (r) => `Job #${r.id}`,
    // The job's own events, and the pool's (why a job waits depends on who is opted in to its class).
    affectedBy: (r, ev) => ev.job_id === r.id
      || ((ev.job_id === null || ev.job_id === undefined) && /Opted|Staked|Unbond|Slashed/.test(ev.event)),
    async fetch(r) {
      try {
        const [job, events] = await Promise.all([api(`/v1/jobs/${r.id}`), api(`/v1/jobs/${r.id}/events?limit=40`)]);
        return { job, events: events.events };
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return { missing: err };
        throw err;
      }
    },
    render(r, data) {
      if (data.missing) {
        return h("div", { class: "stack" }, breadcrumbs(r.id),
          h("section", { class: "card pad", role: "status" },
            h("h1", {}, `Job #${r.id}`),
            h("p", {}, `Job #${r.id} is not indexed (yet). This page updates as soon as it appears on chain.`),
            h("p", { class: "muted small" }, data.missing.message)));
      }
      const { job, events } = data;
      return h("div", { class: "stack" },
        breadcrumbs(r.id),
        jobHeader(job),
        waitingCard(job),
        failureCard(job),
        summaryCards(job),
        h("div", { class: "grid-2 wide-left" }, taskGridCard(job), taskDetailCard(job)),
        h("div", { class: "grid-3" }, costsCard(job), payoutsCard(job), slashesCard(job)),
        activityCard(job, events));
    },
  };

  function breadcrumbs(id) {
    return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/jobs" }, "Jobs"), h("span", { "aria-hidden": "true" }, " / "),
      h("span", { "aria-current": "page" }, `Job #${id}`));
  }

  function jobHeader(job) {
    const result = job.result_available
      ? h("a", { class: "btn primary", href: `/v1/jobs/${job.job_id}/result`, download: `job-${job.job_id}-result`,
        "data-testid": "result-link" }, "⬇ Download result")
      : ENDED_WITHOUT_RESULT.includes(job.state)
        ? h("span", { class: "btn disabled", "aria-disabled": "true", title: "The job ended without a result" },
          "No result")
        : h("span", { class: "btn disabled", "aria-disabled": "true", title: "Available once the job completes" },
          "Result pending");
    return h("section", { class: "card job-head", "aria-label": `Job ${job.job_id} status` },
      h("div", { class: "job-title" },
        h("h1", {}, `Job #${job.job_id}`),
        phaseBadge(job.state, { "data-testid": "job-state" }, "lg"),
        h("span", { class: "phase-label", "data-testid": "job-state-label" }, PHASE_LABEL[job.state] || job.state),
        h("div", { class: "spacer" }), result),
      phaseSteps(job),
      h("div", { class: "job-progress" },
        h("span", {}, h("strong", {}, `${job.settled_tasks} of ${job.tasks}`), " tasks settled"),
        progress(job.settled_tasks, job.tasks), h("span", { class: "muted" }, `${pct(job.settled_tasks, job.tasks)}%`)));
  }

  function phaseSteps(job) {
    const failed = ENDED_WITHOUT_RESULT.includes(job.state);
    const order = ["POSTED", "MAP", "REDUCE", "COMPLETED"];
    const mapDone = job.tasks_detail.filter((t) => t.kind === "map" && t.state === "settled").length;
    const redDone = job.tasks_detail.filter((t) => t.kind === "reduce" && t.state === "settled").length;
    const at = job.state === "COMPLETED" ? 4 : job.state === "REDUCE" ? 2 : 1;
    const stopAt = failed ? (mapDone === job.map_tasks ? 2 : 1) : null;
    const label = { POSTED: "Posted", MAP: `Map · ${mapDone}/${job.map_tasks}`,
      REDUCE: `Reduce · ${redDone}/${job.reduce_tasks}`, COMPLETED: failed ? PHASE_LABEL[job.state] : "Completed" };
    return h("ol", { class: "steps", "aria-label": "Job phases" }, order.map((step, i) => {
      const cls = failed ? (i < stopAt ? "done" : i === stopAt ? "stopped" : i === 3 ? "failed" : "todo")
        : (i < at ? "done" : i === at ? "current" : "todo");
      return h("li", { class: ["step", cls], "aria-current": cls === "current" ? "step" : null },
        h("span", { class: "step-dot", "aria-hidden": "true" }), h("span", { class: "step-label" }, label[step]));
    }));
  }

  /** "Why is my job not running?": the reasons the gateway found, while the job is live. */
  function waitingCard(job) {
    const reasons = job.waiting || [];
    if (!reasons.length) return null;
    return card("Why this job is waiting", [h("ul", { class: "waiting-list" }, reasons.map((r) =>
      h("li", { "data-testid": "waiting-reason", "data-code": r.code },
        h("span", { class: "waiting-code" }, r.code), r.message)))],
    { id: "waiting", class: "waiting-card" });
  }

  /** Why a failed job failed (e.g. inputs nobody could fetch), as the gateway words it. */
  function failureCard(job) {
    if (!job.failure) return null;
    return card("Why this job failed", [h("p", { "data-testid": "failure-reason" }, job.failure)],
      { id: "failure", class: "waiting-card" });
  }

  function summaryCards(job) {
    const extra = job.extra_seats === null || job.extra_seats === undefined ? "" : ` of ${fmtInt(job.extra_seats)}`;
    const adversary = job.adversary_ppm === null || job.adversary_ppm === undefined ? "—"
      : `${Number(((100 * job.adversary_ppm) / PPM).toPrecision(4))}%`;
    return h("div", { class: "stats-row" },
      stat("Requester", addr(job.requester), null),
      stat("Tasks", `${job.map_tasks} + ${job.reduce_tasks}`, `map + reduce · ${job.tasks} total`),
      stat("Margin", String(job.margin), `ε ${fmtPpm(job.epsilon_ppm)} · f ${adversary} · ${className(job.resource_class)}`,
        { "data-testid": "margin", title: `A task settles when one result leads all others by ${job.margin} agreeing, `
          + `independently drawn workers: a wrong result is accepted with probability at most ε = `
          + `${fmtPpm(job.epsilon_ppm)} against an adversary holding ${adversary} of the stake. Seats are drawn from `
          + `the ${className(job.resource_class)} pool.` }),
      stat("Seats drawn", fmtInt(job.seats_drawn), `${fmtInt(job.escalations)} escalated · ${fmtInt(job.declines)} declined`,
        { "data-testid": "seats-drawn", title: `Escalation seats used: ${fmtInt(job.extra_seats_used)}${extra}` }),
      stat("Reward per seat", eth(job.reward_per_replica_wei), job.collateral_wei
        ? h("span", {}, "collateral ", eth(job.collateral_wei)) : null),
      stat("Escrow", eth(job.escrow_wei), null, { "data-testid": "escrow" }),
      stat("Posted", timeEl(job.posted_time), `block #${fmtInt(job.posted_block)}`),
      stat("Spec digest", hex(job.spec_digest, 12), `updated in block #${fmtInt(job.updated_block)}`));
  }

  function selectedTaskId(job) {
    const sel = ui.selectedTask.get(job.job_id);
    if (sel !== undefined && sel < job.tasks_detail.length) return sel;
    return 0;
  }

  function taskTooltip(job, t) {
    const lines = [`${t.kind === "map" ? "Map" : "Reduce"} task ${t.task_id}: ${t.state} (${TASK_STATE_HELP[t.state]})`,
      `round ${t.round} · ${t.seated}/${t.seats} seats drawn · ${t.committed} committed · `
        + `tally ${t.lead_count}/${t.total} (margin ${job.margin})`];
    for (const rep of t.replicas) {
      lines.push(`${shortAddr(rep.worker)} r${rep.round} ${rep.state}${rep.digest ? ` ${shortHex(rep.digest)}` : ""}`);
    }
    return lines.join("\n");
  }

  function taskCell(job, t, selected, compact) {
    // The current round's seats: held (drawn, committed, ...) first; a declined seat is drawn again.
    const current = t.replicas.filter((rep) => rep.round === t.round && rep.state !== "declined");
    const pips = [];
    for (let i = 0; i < Math.max(t.seats, current.length); i += 1) {
      const rep = current[i];
      pips.push(h("span", { class: ["pip", rep ? `rep-${rep.state}` : "rep-none"] }));
    }
    const label = t.kind === "map" ? `M${t.task_id}` : `R${t.task_id - job.map_tasks}`;
    return h("li", { class: "cell-item" },
      h("button", { type: "button", class: ["cell", `st-${t.state}`, selected ? "selected" : null, compact ? "compact" : null],
        "data-testid": "task-cell", "data-state": t.state, "data-task-id": t.task_id, "data-kind": t.kind,
        "data-focus-key": `task-${t.task_id}`, "aria-pressed": selected ? "true" : "false",
        "aria-label": `${t.kind} task ${t.task_id}: ${t.state}, round ${t.round}, ${t.seated} of ${t.seats} seats drawn, `
          + `${t.committed} committed`,
        title: taskTooltip(job, t),
        onclick: () => {
          ui.selectedTask.set(job.job_id, t.task_id);
          renderPage(route, { data: lastData });
        } },
      compact ? null : h("span", { class: "cell-label" }, label),
      compact ? null : h("span", { class: "pips", "aria-hidden": "true" }, pips)));
  }

  function taskGridCard(job) {
    const sel = selectedTaskId(job);
    const compact = job.tasks_detail.length > 150;
    const group = (kind, title) => {
      const tasks = job.tasks_detail.filter((t) => t.kind === kind);
      const settled = tasks.filter((t) => t.state === "settled").length;
      const gid = `grid-${kind}`;
      return h("div", { class: "task-group", "data-testid": `task-group-${kind}` },
        h("h3", { id: gid }, title, h("span", { class: "muted small" }, ` ${settled} / ${tasks.length} settled`)),
        h("ul", { class: "cells", role: "list", "aria-labelledby": gid },
          tasks.map((t) => taskCell(job, t, t.task_id === sel, compact))));
    };
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0]));
    for (const t of job.tasks_detail) counts[t.state] += 1;
    const legend = h("ul", { class: "legend", "aria-label": "Task states" },
      TASK_STATES.map((s) => h("li", { title: TASK_STATE_HELP[s] }, h("span", { class: ["swatch", `st-${s}`] }),
        `${s} `, h("span", { class: "muted" }, String(counts[s])))));
    return card("Tasks", [group("map", "Map"), group("reduce", "Reduce"), legend],
      { id: "tasks", class: "task-card", actions: h("span", { class: "muted small" }, "Select a task for its seats") });
  }

  function digestsAgree(a, b) {
    if (!a || !b) return false;
    const n = Math.min(a.length, b.length);
    return a.slice(0, n).toLowerCase() === b.slice(0, n).toLowerCase();
  }

  function taskDetailCard(job) {
    const t = job.tasks_detail[selectedTaskId(job)];
    if (!t) return card("Task", [h("p", { class: "muted" }, "This job has no tasks.")], { id: "task-detail" });
    const title = t.kind === "map" ? `Map task ${t.task_id}` : `Reduce task ${t.task_id}`
      + ` · partition ${t.task_id - job.map_tasks}`;
    const reps = [...t.replicas].sort((a, b) => b.round - a.round || a.worker.localeCompare(b.worker));
    const rows = reps.map((rep) => h("tr", { "data-testid": "replica-row", "data-state": rep.state },
      h("td", {}, addr(rep.worker)),
      h("td", { class: "num" }, String(rep.round)),
      h("td", {}, stateBadge(rep.state)),
      h("td", {}, hex(rep.result),
        rep.agrees === true ? h("span", { class: "agree", title: "The settled result" }, " ✓")
          : rep.agrees === false ? h("span", { class: "disagree", title: "Differs from the settled result" }, " ✗")
            : null),
      h("td", {}, hex(rep.digest),
        rep.digest && t.digest ? (digestsAgree(rep.digest, t.digest)
          ? h("span", { class: "agree", title: "Matches the settled digest" }, " ✓")
          : h("span", { class: "disagree", title: "Differs from the settled digest" }, " ✗")) : null),
      h("td", { class: "num" }, rep.amount_wei ? eth(rep.amount_wei) : h("span", { class: "muted" }, "—"))));
    return card(title, [
      kv([
        ["State", h("span", {}, stateBadge(t.state), h("span", { class: "muted small" }, ` ${TASK_STATE_HELP[t.state]}`))],
        ["Round", t.round ? `${t.round} (escalated: earlier results differed)` : "0"],
        ["Seats", h("span", { "data-testid": "task-seats" },
          `${t.seated} of ${t.seats} drawn · ${t.committed} committed this round`
          + (t.declined ? ` · ${t.declined} declined` : ""))],
        ["Tally", `${t.lead_count} of ${t.total} commits for the leading result (it settles at a lead of ${job.margin})`],
        t.reveal_deadline && !t.settled ? ["Open until", timeEl(t.reveal_deadline)] : null,
        ["Settled digest", t.digest ? h("span", { class: "mono wrap", "data-testid": "task-digest" }, t.digest)
          : h("span", { class: "muted" }, "not settled")],
      ]),
      h("div", { class: "table-wrap" }, h("table", { class: "table compact", "data-testid": "replicas-table" },
        h("caption", { class: "sr-only" }, `Replicas of task ${t.task_id}`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Worker"), h("th", { scope: "col", class: "num" }, "Round"),
          h("th", { scope: "col" }, "State"),
          h("th", { scope: "col", title: "What it committed: results are compared before any digest is public" },
            "Result"),
          h("th", { scope: "col" }, "Revealed digest"),
          h("th", { scope: "col", class: "num" }, "Amount"))),
        h("tbody", {}, rows.length ? rows : emptyRow(6, "No seat drawn yet.")))),
    ], { id: "task-detail" });
  }

  function costsCard(job) {
    const c = job.costs;
    const escrow = toBig(c.escrow_wei) || 0n;
    const share = (v) => (escrow > 0n ? Number(((toBig(v) || 0n) * 10000n) / escrow) / 100 : 0);
    const [paid, refunded, open] = [c.paid_wei, c.refunded_wei, c.owed_or_open_wei].map(share);
    const bar = h("div", { class: "stackbar", role: "img",
      "aria-label": `Escrow: ${paid}% paid, ${refunded}% refunded, ${open}% open` },
    h("span", { class: "seg paid", style: `width:${paid}%` }),
    h("span", { class: "seg refunded", style: `width:${refunded}%` }),
    h("span", { class: "seg open", style: `width:${open}%` }));
    return card("Costs", [bar, kv([
      ["Escrow", eth(c.escrow_wei)],
      [h("span", {}, h("span", { class: "swatch paid" }), "Paid to workers"), eth(c.paid_wei)],
      [h("span", {}, h("span", { class: "swatch refunded" }), "Refunded"), eth(c.refunded_wei)],
      [h("span", {}, h("span", { class: "swatch open" }), "Owed or open"), eth(c.owed_or_open_wei)],
      [h("span", { title: "Slashed collateral is burned: owed to no one" }, "Slashed collateral (burned)"),
        eth(c.slashed_collateral_burned_wei)],
      ["Transactions", fmtInt(c.transactions)],
    ])], { id: "costs" });
  }

  function payoutsCard(job) {
    const rows = job.payouts.map((p) => h("tr", {}, h("td", {}, addr(p.worker)), h("td", { class: "num" }, eth(p.amount_wei))));
    return card("Payouts", [h("div", { class: "table-wrap" }, h("table", { class: "table compact", "data-testid": "payouts" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Worker"), h("th", { scope: "col", class: "num" }, "Paid"))),
      h("tbody", {}, rows.length ? rows : emptyRow(2, "No payouts yet."))))], { id: "payouts", flush: true });
  }

  function slashesCard(job) {
    const REASON = { "no-show": "never committed", dissent: "committed another result", unopened: "did not open the winner" };
    const rows = job.slashes.map((s) => h("tr", {}, h("td", {}, addr(s.worker)),
      h("td", { class: "num" }, `${s.task_id} / r${s.round}`),
      h("td", { class: "small" }, s.reason ? REASON[s.reason] || s.reason : h("span", { class: "muted" }, "—")),
      h("td", { class: "num" }, eth(s.collateral_wei)),
      h("td", {}, hex(s.tx_hash))));
    return card("Slashes", [h("div", { class: "table-wrap" }, h("table", { class: "table compact", "data-testid": "slashes" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Worker"), h("th", { scope: "col", class: "num" }, "Task / round"),
        h("th", { scope: "col" }, "Why"), h("th", { scope: "col", class: "num", title: "Burned" }, "Collateral"),
        h("th", { scope: "col" }, "Tx"))),
      h("tbody", {}, rows.length ? rows : emptyRow(5, job.state === "COMPLETED" ? "No slashes: every drawn worker agreed."
        : "No slashes."))))],
    { id: "slashes", flush: true });
  }

  function eventSummary(ev) {
    const a = ev.args || {};
    const bits = [];
    if (a.worker) bits.push(shortAddr(a.worker));
    if (ev.task_id !== null && ev.task_id !== undefined) bits.push(`task ${ev.task_id}`);
    if (a.round !== undefined) bits.push(`round ${a.round}`);
    if (a.seats !== undefined) bits.push(`${a.seats} fresh seat${a.seats === 1 ? "" : "s"}`);
    if (a.margin !== undefined) bits.push(`margin ${a.margin}`);
    if (a.seed_block !== undefined) bits.push(`seed block #${fmtInt(a.seed_block)}`);
    if (a.class_ !== undefined) bits.push(`${className(a.class_)} from epoch ${a.from_epoch}`);
    if (a.result) bits.push(`result ${shortHex(a.result)}`);
    if (a.digest) bits.push(shortHex(a.digest));
    if (a.outcome) bits.push(String(a.outcome).toLowerCase());
    if (a.amount !== undefined) bits.push(`${formatEth(a.amount)} ETH`);
    if (a.state !== undefined && ev.event === "JobStateChanged") bits.push(`→ ${a.state}`);
    return bits.join(" · ");
  }

  function activityCard(job, events) {
    const rows = [...events].reverse().slice(0, 40).map((ev) => h("tr", {},
      h("td", { class: "num mono" }, `#${fmtInt(ev.block_number)}`),
      h("td", {}, h("span", { class: ["evname", `ev-${ev.event}`] }, ev.event)),
      h("td", {}, eventSummary(ev)),
      h("td", {}, timeEl(ev.block_time)),
      h("td", {}, hex(ev.tx_hash))));
    return card("Activity", [h("div", { class: "table-wrap scroll" }, h("table", { class: "table compact", "data-testid": "activity" },
      h("caption", { class: "sr-only" }, "The job's contract events, newest first"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "Block"), h("th", { scope: "col" }, "Event"),
        h("th", { scope: "col" }, "Details"), h("th", { scope: "col" }, "Time"), h("th", { scope: "col" }, "Tx"))),
      h("tbody", {}, rows.length ? rows : emptyRow(5, "No events."))))],
    { id: "activity", flush: true, actions: h("span", { class: "muted small" }, "Contract events, newest first · live") });
  }

  // ------------------------------------------------------------------ page: workers

  const workersPage = {
    title: () => "Workers",
    debounceMs: 1000, // each fetch probes every worker's endpoint: coalesce bursts of events harder
    affectedBy: (r, ev) => ev.job_id === null || ev.job_id === undefined
      || /Resolved|Assigned|Declined|Slash|Stake|Opted|Endpoint/.test(ev.event),
    async fetch() {
      return api("/v1/workers");
    },
    render(r, data) {
      const ws = data.workers;
      let stake = 0n, earned = 0n, gpus = 0;
      for (const w of ws) {
        stake += toBig(w.stake_wei) || 0n;
        earned += toBig(w.earned_wei) || 0n;
        gpus += (w.resources && w.resources.gpus && w.resources.gpus.gpu_count) || 0;
      }
      const online = ws.filter((w) => w.online).length;
      const rows = ws.map((w) => {
        const res = w.resources || {};
        const g = res.gpus || null;
        const gpuCell = g && g.gpu_count
          ? h("div", {}, h("strong", {}, `${g.gpu_count}×`), " ", (g.models || []).join(", "),
            h("div", { class: "muted small" }, (g.memory_mb || []).map(fmtMb).join(" + ")))
          : h("span", { class: "muted" }, w.resources ? "none" : "—");
        return h("tr", { "data-testid": "worker-row", "data-address": w.address },
          h("td", {}, addr(w.address, true)),
          h("td", {}, h("span", { class: ["status", w.online ? "on" : "off"] }, w.online ? "online" : "offline")),
          h("td", { class: "num" }, eth(w.stake_wei, 4)),
          h("td", { class: "num" }, eth(w.locked_wei, 4)),
          h("td", {}, w.classes && w.classes.length
            ? h("span", { class: "classes" }, w.classes.map((c) => h("span", { class: "class-tag" }, className(c))))
            : h("span", { class: "muted", title: "Not opted in to any pool: never drawn" }, "none")),
          h("td", { class: "num" }, eth(w.earned_wei)),
          h("td", { class: "num" }, fmtInt(w.seats),
            w.declined ? h("div", { class: "muted small" }, `${fmtInt(w.declined)} declined`) : null),
          h("td", { class: "num" }, fmtInt(w.settled)),
          h("td", { class: "num" }, w.slashed ? h("span", { class: "bad-text", title: `${formatEth(w.slashed_wei)} ETH slashed` },
            fmtInt(w.slashed)) : "0"),
          h("td", {}, gpuCell),
          h("td", { class: "num" }, res.memory_mb ? fmtMb(res.memory_mb) : "—"),
          h("td", { class: "small" }, res.programs ? res.programs.join(", ") : "—",
            res.max_tasks ? h("div", { class: "muted small" }, `up to ${res.max_tasks} tasks`) : null));
      });
      const table = h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": "workers-table" },
        h("caption", { class: "sr-only" }, "Staked workers"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Address"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col", class: "num" }, "Stake"), h("th", { scope: "col", class: "num" }, "Locked"),
          h("th", { scope: "col", title: "Resource classes it opted in to: the pools it is drawn from" }, "Pools"),
          h("th", { scope: "col", class: "num" }, "Earned"),
          h("th", { scope: "col", class: "num", title: "Seats it was drawn for" }, "Seats"),
          h("th", { scope: "col", class: "num", title: "Seats paid" }, "Settled"),
          h("th", { scope: "col", class: "num" }, "Slashed"), h("th", { scope: "col" }, "GPUs"),
          h("th", { scope: "col", class: "num" }, "Memory"), h("th", { scope: "col" }, "Programs"))),
        h("tbody", {}, rows.length ? rows : emptyRow(12, "No staked workers yet. Start one with `shardex worker run`."))));
      return h("div", { class: "stack" },
        h("div", { class: "page-head" }, h("h1", {}, "Workers"),
          h("p", { class: "muted" }, "Staked workers: stake, locks and pools from the WorkerPool (seats are drawn by "
            + "stake from the pool of a job's resource class), earnings from settled seats, resources as each worker "
            + "describes itself.")),
        h("div", { class: "stats-row" },
          stat("Workers", fmtInt(ws.length), `${online} online`),
          stat("Total stake", eth(stake.toString(), 4), null),
          stat("Total earned", eth(earned.toString()), null),
          stat("GPUs offered", fmtInt(gpus), null)),
        card("All workers", [table], { id: "workers", flush: true }));
    },
  };

  const notFoundPage = {
    title: () => "Not found",
    affectedBy: () => false,
    fetch: async () => ({}),
    render: (r) => h("section", { class: "card pad" }, h("h1", {}, "Page not found"),
      h("p", {}, `Nothing at #${r.path}. `, h("a", { href: "#/jobs" }, "Back to jobs"))),
  };

  const PAGES = { jobs: jobsPage, job: jobPage, workers: workersPage, notfound: notFoundPage };

  // ------------------------------------------------------------------ start

  window.addEventListener("hashchange", navigate);
  connectEvents();
  refreshHealth();
  setInterval(refreshHealth, HEALTH_EVERY_MS);
  // Belt and braces: if the event stream is down, refresh the page slowly instead.
  setInterval(() => {
    if (!source || source.readyState !== EventSource.OPEN) scheduleRefresh();
  }, FALLBACK_POLL_MS);
  // Relative times ("12s ago") age without data changing: re-render them from the data on screen.
  setInterval(() => {
    for (const el of view.querySelectorAll("time[datetime]")) {
      el.textContent = fmtAgo(Date.parse(el.getAttribute("datetime")) / 1000);
    }
  }, 15000);
  load(true);
})();
