// tonne operator console: plain JavaScript, no build step, no CDN. Every request goes to the
// same origin with the credential the browser was given (HTTP Basic); every value from the
// server is put in the page as text, never as HTML (records carry clients' free text).
"use strict";

const $ = (id) => document.getElementById(id);
const LIVE_WAIT_S = 20;
const PAGE = 50;
const ROWS_MAX = 1000; // rows kept in the live log table

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function utc(ns) {
  if (!ns) return "";
  return new Date(Number(ns) / 1e6).toISOString().replace("T", " ").replace("Z", "");
}

async function getJSON(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!r.ok && r.status !== 404) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// -- tabs ---------------------------------------------------------------------------------
for (const b of document.querySelectorAll("nav button")) {
  b.addEventListener("click", () => {
    for (const x of document.querySelectorAll("nav button")) x.classList.toggle("on", x === b);
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("on", t.id === "tab-" + b.dataset.tab);
  });
}

// -- health -------------------------------------------------------------------------------
function fact(label, value) {
  const s = el("span", label + " ");
  s.appendChild(el("b", value));
  return s;
}

async function health() {
  try {
    const h = await getJSON("/api/health");
    const strip = $("health");
    strip.replaceChildren(
      fact("sessions", `${h.sessions.tcp} tcp, ${h.sessions.ws} ws (${h.sessions.logged_on} logged on)`),
      fact("commands/s", h.commands_per_s),
      fact("commit p50/p99", `${h.commit.latency_ms.p50} / ${h.commit.latency_ms.p99} ms`),
      fact("batch p50/max", `${h.commit.batch_commands.p50} / ${h.commit.batch_commands.max}`),
      fact("writer lag", `${h.writer.lag_commands} commands`),
      fact("writer", h.writer.pid ? `process ${h.writer.pid}` : h.writer.kind),
      fact("last snapshot", h.snapshot ? `seq ${h.snapshot.seq}, ${h.snapshot.age_s} s ago` : "none"),
      fact("log head", `${h.log_head.seq} ${String(h.log_head.hash).slice(0, 16)}…`),
      fact("state hash", String(h.state_hash).slice(0, 16) + "…"),
    );
    if (h.failed) strip.appendChild(el("b", "FAILED: " + h.failed, "bad"));
    $("status-json").textContent = JSON.stringify(h, null, 2);
  } catch (e) {
    $("health").textContent = "not reachable: " + e.message;
  }
}

// -- the settlement log -------------------------------------------------------------------
const log = { filter: "", after: 0, before: null, generation: 0, following: false };

function filterQuery() {
  const q = new URLSearchParams();
  const kind = $("f-kind").value, account = $("f-account").value.trim();
  const series = $("f-series").value.trim(), serial = $("f-serial").value.trim();
  if (kind) q.set("kind", kind);
  if (account) q.set("account", account);
  if (series) q.set("series", series);
  if (serial) q.set("serial", serial);
  return q;
}

function recordRow(r, fresh) {
  const tr = el("tr", undefined, fresh ? "new" : "");
  tr.dataset.seq = r.seq;
  tr.appendChild(el("td", r.seq));
  tr.appendChild(el("td", utc(r.ts)));
  tr.appendChild(el("td", r.kind));
  tr.appendChild(el("td", r.line.replace(/^\s*\d+\s+\S+\s+\S+\s+/, "")));
  tr.appendChild(el("td", String(r.hash).slice(0, 16) + "…"));
  return tr;
}

async function loadLog() {
  const gen = ++log.generation;
  log.filter = filterQuery().toString();
  $("log-status").textContent = "loading…";
  let page;
  try {
    page = await getJSON("/api/log?" + new URLSearchParams([...filterQuery(), ["limit", PAGE]]));
  } catch (e) {
    $("log-status").textContent = e.message;
    return;
  }
  if (gen !== log.generation) return;
  $("log-rows").replaceChildren(...page.records.map((r) => recordRow(r, false)));
  log.before = page.next_before;
  log.after = page.head;
  $("log-older").disabled = log.before === null;
  $("log-status").textContent = `${page.records.length} records shown, log head ${page.head}`;
  if ($("f-live").checked) follow(gen);
}

async function older() {
  if (log.before === null) return;
  const gen = log.generation;
  const q = new URLSearchParams([...filterQuery(), ["limit", PAGE], ["before", log.before]]);
  const page = await getJSON("/api/log?" + q);
  if (gen !== log.generation) return; // the filter changed meanwhile
  for (const r of page.records) $("log-rows").appendChild(recordRow(r, false));
  log.before = page.next_before;
  $("log-older").disabled = log.before === null;
}

async function follow(gen) {
  if (log.following) return; // one long poll at a time: a second loop would show rows twice
  log.following = true;
  try {
    await followLoop(gen);
  } finally {
    log.following = false;
  }
}

async function followLoop(gen) {
  while (gen === log.generation && $("f-live").checked) {
    const q = new URLSearchParams([...filterQuery(), ["after", log.after], ["wait", LIVE_WAIT_S], ["limit", 200]]);
    try {
      const page = await getJSON("/api/log?" + q);
      if (gen !== log.generation) return;
      const rows = $("log-rows");
      for (const r of page.records) rows.insertBefore(recordRow(r, true), rows.firstChild);
      while (rows.children.length > ROWS_MAX) rows.removeChild(rows.lastChild);
      log.after = Math.max(log.after, page.last_seq);
      $("log-status").textContent = `live · log head ${page.head}`;
    } catch (e) {
      $("log-status").textContent = "live paused: " + e.message;
      await new Promise((ok) => setTimeout(ok, 2000));
    }
  }
}

$("log-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadLog(); });
$("f-live").addEventListener("change", () => { if ($("f-live").checked) follow(log.generation); });
$("log-older").addEventListener("click", older);

// -- books and trades ---------------------------------------------------------------------
function spark(prices) {
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 160 32");
  if (prices.length > 1) {
    const lo = Math.min(...prices), hi = Math.max(...prices), span = hi - lo || 1;
    const pts = prices.map((p, i) => `${(i / (prices.length - 1)) * 158 + 1},${31 - ((p - lo) / span) * 30}`);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function level(x) { return x ? `${x[1]} @ ${x[0]}` : "—"; }

async function market() {
  try {
    const m = await getJSON("/api/market");
    $("book-rows").replaceChildren(...m.books.map((b) => {
      const tr = el("tr");
      tr.appendChild(el("td", b.series));
      tr.appendChild(el("td", level(b.bid)));
      tr.appendChild(el("td", level(b.ask)));
      tr.appendChild(el("td", b.last ?? "—"));
      tr.appendChild(el("td", b.halted ? "halted" : "open", b.halted ? "bad" : ""));
      const chart = el("td");
      chart.appendChild(spark(b.prices));
      tr.appendChild(chart);
      return tr;
    }));
    $("trade-rows").replaceChildren(...m.trades.slice(0, 50).map((t) => {
      const tr = el("tr");
      for (const v of [utc(t.ts), t.series, t.price, t.qty, t.buyer, t.seller]) tr.appendChild(el("td", v));
      tr.appendChild(el("td", t.serials.join(", "), "mono"));
      return tr;
    }));
  } catch (e) { /* the health strip says when the server is away */ }
}

// -- certificates -------------------------------------------------------------------------
async function certificate(ev) {
  ev.preventDefault();
  const id = $("cert-id").value.trim();
  const verdict = $("cert-verdict"), shown = $("cert-records");
  verdict.replaceChildren(el("p", "checking…"));
  shown.replaceChildren();
  let c;
  try {
    c = await getJSON("/api/certificate?" + new URLSearchParams({ id }));
  } catch (e) {
    verdict.replaceChildren(el("p", e.message, "bad"));
    return;
  }
  if (!c.found) {
    verdict.replaceChildren(el("p", `no certificate ${id} in the settlement log`, "bad verdict"));
    return;
  }
  const head = `log head ${c.head.seq} ${c.head.hash}`;
  verdict.replaceChildren(
    c.verified
      ? el("p", `✓ ${c.id} verified: its records are in the settlement log and the hash chain links them to the head (checked through record ${c.linked_through})`, "ok verdict")
      : el("p", `✗ ${c.id} NOT verified: ${c.problems.join("; ")}`, "bad verdict"),
    el("p", head, "mono"),
  );
  if (c.proof) {
    verdict.appendChild(el("p", "proof: " + c.proof.summary, c.proof.ok ? "mono" : "bad mono"));
    const a = el("a", `download the proof file (tonne-certificate-1), for tonne certificate verify`);
    a.href = "/api/certificate/proof?" + new URLSearchParams({ id: c.id });
    a.id = "cert-proof";
    verdict.appendChild(a);
  }
  for (const r of c.records) {
    shown.appendChild(el("h2", `record ${r.seq} · ${r.kind}`));
    shown.appendChild(el("p", `hash ${r.hash} (recomputed ${r.recomputed_hash}) · prev ${r.prev}`, "mono"));
    shown.appendChild(el("pre", JSON.stringify(r.body, null, 2)));
  }
}
$("cert-form").addEventListener("submit", certificate);

// -- registry events and halts ------------------------------------------------------------
async function registry() {
  try {
    const g = await getJSON("/api/registry");
    $("halted").textContent = g.halted.length ? g.halted.join(", ") : "none";
    $("registry-rows").replaceChildren(...g.events.map((r) => {
      const tr = el("tr");
      tr.appendChild(el("td", r.seq));
      tr.appendChild(el("td", utc(r.ts)));
      tr.appendChild(el("td", r.kind));
      tr.appendChild(el("td", r.line.replace(/^\s*\d+\s+\S+\s+\S+\s+/, "")));
      return tr;
    }));
  } catch (e) { /* as above */ }
}

function every(ms, fn) { fn(); setInterval(fn, ms); }
every(2000, health);
every(2000, market);
every(5000, registry);
loadLog();
