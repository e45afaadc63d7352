// The live execution page: plain JavaScript, no build step.
// The token comes from ?token= (then removed from the address bar) or the field, and is kept in
// sessionStorage only. REST calls send it as a bearer header, WebSockets as ?token=.
"use strict";

const TOKEN_KEY = "atomiton.token";
const FINAL = new Set(["execution.completed", "execution.failed", "execution.cancelled"]);
const $ = (sel) => document.querySelector(sel);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  flow: null,
  executionId: null,
  socket: null,
  finished: false,
  rows: new Map(), // node path -> {tr, type, status, startedAt, endedAt}
};

// -- token ------------------------------------------------------------------------------------
(function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given) {
    state.token = given;
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function setConn(text, kind) {
  const el = $("#conn");
  el.textContent = text;
  el.dataset.state = kind;
}

function say(text, bad = false) {
  const el = $("#message");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401) setConn("token refused", "bad");
    const err = (data && data.error) || { message: response.statusText };
    const problems = (data && data.report && data.report.problems) || err.problems || [];
    const detail = problems.map((p) => `\n • ${p.location}: ${p.message}${p.hint ? " (" + p.hint + ")" : ""}`).join("");
    throw new Error(`${response.status} ${err.code || ""} ${err.message}${detail}`);
  }
  return data;
}

// -- flows -------------------------------------------------------------------------------------
async function connect() {
  const select = $("#flow-select");
  try {
    const { flows } = await api("/api/flows");
    setConn("connected", "ok");
    select.innerHTML = "";
    if (!flows.length) {
      select.append(new Option("— no stored flows —", ""));
    }
    for (const f of flows) {
      select.append(new Option(f.name ? `${f.name} (${f.id})` : f.id, f.id));
    }
    select.disabled = !flows.length;
    if (flows.length) await pickFlow(select.value);
    say(`${flows.length} stored flow(s)`);
  } catch (e) {
    select.disabled = true;
    $("#execute").disabled = true;
    say(e.message, true);
  }
}

function childRows(nodes, prefix, out) {
  for (const n of nodes || []) {
    out.push({ path: prefix + n.id, type: n.type });
    if (n.type === "group") childRows(n.nodes, prefix + n.id + "/", out);
  }
  return out;
}

async function pickFlow(flowId) {
  state.flow = null;
  $("#execute").disabled = true;
  if (!flowId) return;
  const flow = await api("/api/flows/" + encodeURIComponent(flowId));
  state.flow = flow;
  $("#flow-desc").textContent = flow.description || "";
  const defaults = {};
  for (const [name, v] of Object.entries(flow.variables || {})) defaults[name] = v.defaultValue ?? null;
  $("#inputs").value = JSON.stringify(defaults, null, 2);
  resetRun(childRows(flow.nodes, "", []));
  $("#execute").disabled = false;
}

// -- one run -----------------------------------------------------------------------------------
function fmtMs(ms) {
  if (ms == null) return "";
  return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function resetRun(nodes) {
  state.rows.clear();
  $("#nodes tbody").innerHTML = "";
  for (const n of nodes) ensureRow(n.path, n.type);
  setStatus("idle", 0);
  $("#exec-id").textContent = "—";
  $("#outputs").textContent = "—";
  $("#outputs").classList.add("muted");
  $("#error").hidden = true;
  $("#timeline").innerHTML = '<span class="muted">The timeline is drawn when a run finishes.</span>';
}

function ensureRow(path, type) {
  let row = state.rows.get(path);
  if (row) {
    if (type && !row.type) {
      row.type = type;
      row.tr.querySelector(".type").textContent = type;
    }
    return row;
  }
  const tr = document.createElement("tr");
  tr.dataset.path = path;
  tr.dataset.status = "pending";
  tr.innerHTML =
    '<td class="path"></td><td class="type muted"></td>' +
    '<td><span class="badge" data-status="pending">pending</span></td>' +
    '<td class="prog"><div class="bar"><div></div></div></td><td class="time"></td><td class="detail"></td>';
  tr.querySelector(".path").textContent = path;
  tr.querySelector(".type").textContent = type || "";
  $("#nodes tbody").append(tr);
  row = { tr, type, status: "pending", startedAt: null, endedAt: null };
  state.rows.set(path, row);
  return row;
}

function setRow(row, status, fraction, detail, bad = false) {
  row.status = status;
  row.tr.dataset.status = status;
  const badge = row.tr.querySelector(".badge");
  badge.dataset.status = status;
  badge.textContent = status;
  if (fraction != null) row.tr.querySelector(".prog .bar > div").style.width = `${Math.round(fraction * 100)}%`;
  if (detail != null) {
    const td = row.tr.querySelector(".detail");
    td.textContent = detail;
    td.classList.toggle("bad", bad);
  }
}

function setStatus(status, progress) {
  const el = $("#exec-status");
  el.dataset.status = status;
  el.textContent = status;
  $("#exec-progress").style.width = `${Math.round((progress || 0) * 100)}%`;
}

function short(value) {
  const text = JSON.stringify(value);
  return text && text.length > 120 ? text.slice(0, 117) + "…" : text;
}

function onEvent(ev) {
  if (ev.type === "events.dropped") {
    say(`${ev.dropped} early event(s) were dropped by the server's buffer`);
    return;
  }
  if (ev.type.startsWith("node.")) {
    const row = ensureRow(ev.path, ev.nodeType);
    const t = isoMs(ev.timestamp) ?? Date.now();
    switch (ev.type) {
      case "node.started":
        row.startedAt = row.startedAt || t;
        setRow(row, "running", 0, ev.attempt > 1 ? `attempt ${ev.attempt}` : "");
        break;
      case "node.progress":
        setRow(row, "running", ev.fraction, ev.message || `${Math.round(ev.fraction * 100)}%`);
        break;
      case "node.retrying":
        setRow(row, "retrying", null, `retrying in ${fmtMs(ev.delayMs)}: ${(ev.error || {}).message || ""}`, true);
        break;
      case "node.completed": {
        // completed, cached (from the output cache) or pinned (by the flow); resumed: reused
        const status = ev.resumedFrom ? "resumed" : ev.status || "completed";
        row.endedAt = t;
        setRow(row, status, 1, short(ev.outputs) || "");
        row.tr.querySelector(".time").textContent = fmtMs(ev.durationMs);
        break;
      }
      case "node.failed":
        row.endedAt = t;
        setRow(row, "failed", null, (ev.error || {}).message || "failed", true);
        row.tr.querySelector(".time").textContent = fmtMs(ev.durationMs);
        break;
      case "node.cancelled":
        row.endedAt = t;
        setRow(row, "cancelled", null, "cancelled");
        break;
      case "node.skipped":
        setRow(row, "skipped", null, (ev.error || {}).message || "skipped");
        break;
    }
    setStatus("running", ev.progress);
    return;
  }
  if (ev.type === "execution.started") setStatus("running", 0);
  if (FINAL.has(ev.type)) finish(ev.result || { status: ev.status, error: ev.error, nodes: {} }, ev.progress);
}

function finish(result, progress) {
  if (state.finished) return;
  state.finished = true;
  setStatus(result.status, result.status === "completed" ? 1 : progress);
  $("#cancel").disabled = true;
  $("#execute").disabled = !state.flow;
  for (const [path, node] of Object.entries(result.nodes || {})) {
    const row = ensureRow(path);
    const status = node.resumedFrom ? "resumed" : node.status;
    if (row.status !== status) {
      const err = node.error ? node.error.message : null;
      const done = ["completed", "cached", "pinned", "resumed"].includes(status);
      setRow(row, status, done ? 1 : null, err, node.status === "failed");
    }
    if (node.durationMs != null) row.tr.querySelector(".time").textContent = fmtMs(node.durationMs);
  }
  const out = $("#outputs");
  out.textContent = JSON.stringify(result.outputs || {}, null, 2);
  out.classList.remove("muted");
  const errBox = $("#error");
  if (result.error) {
    errBox.hidden = false;
    const where = result.error.path || result.error.nodeId;
    errBox.textContent = `${result.error.code}: ${where ? "node " + where + ": " : ""}${result.error.message}${result.error.hint ? "\nhint: " + result.error.hint : ""}`;
  }
  drawTimeline(result);
  say(`execution ${result.status}${result.durationMs != null ? " in " + fmtMs(result.durationMs) : ""}`,
      result.status !== "completed");
}

// -- the timeline (an SVG Gantt chart) ---------------------------------------------------------
function isoMs(text) {
  if (!text) return null;
  // Python writes microseconds; Date.parse wants at most milliseconds.
  return Date.parse(text.replace(/(\.\d{3})\d+/, "$1"));
}

function drawTimeline(result) {
  const bars = [];
  for (const [path, node] of Object.entries(result.nodes || {})) {
    const row = state.rows.get(path);
    let start = isoMs(node.startedAt);
    if (start == null && row) start = row.startedAt;
    if (start == null) continue;
    let end = node.durationMs != null ? start + node.durationMs : row && row.endedAt;
    if (end == null) end = start;
    bars.push({ path, start, end, status: node.status });
  }
  const box = $("#timeline");
  if (!bars.length) {
    box.innerHTML = '<span class="muted">No node ran.</span>';
    return;
  }
  const t0 = Math.min(isoMs(result.startedAt) ?? Infinity, ...bars.map((b) => b.start));
  const t1 = Math.max(...bars.map((b) => b.end), t0 + 1);
  const span = t1 - t0;
  const labelW = Math.min(240, 24 + 7 * Math.max(...bars.map((b) => b.path.length)));
  const width = 760, rowH = 22, top = 22, plotW = width - labelW - 16;
  const height = top + bars.length * rowH + 8;
  const x = (t) => labelW + ((t - t0) / span) * plotW;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "node timeline");
  const el = (name, attrs, text) => {
    const node = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (span * i) / 4;
    el("line", { x1: x(t), x2: x(t), y1: top - 4, y2: height - 4, class: "axis" });
    el("text", { x: x(t), y: 12, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" },
       fmtMs(t - t0) || "0 ms");
  }
  bars.sort((a, b) => a.start - b.start);
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    el("text", { x: 4, y: y + 15 }, b.path);
    const w = Math.max(2, x(b.end) - x(b.start));
    const rect = el("rect", { x: x(b.start), y: y + 4, width: w, height: rowH - 8, rx: 3,
      class: `gantt-bar gantt-${b.status}`, "data-path": b.path });
    const title = document.createElementNS(ns, "title");
    title.textContent = `${b.path}: ${b.status}, ${fmtMs(b.end - b.start)}`;
    rect.append(title);
  });
  box.innerHTML = "";
  box.append(svg);
}

// -- executing ---------------------------------------------------------------------------------
async function execute() {
  if (!state.flow) return;
  let inputs;
  try {
    inputs = JSON.parse($("#inputs").value || "{}");
  } catch (e) {
    say("inputs are not valid JSON: " + e.message, true);
    return;
  }
  resetRun(childRows(state.flow.nodes, "", []));
  state.finished = false;
  $("#execute").disabled = true;
  try {
    const started = await api("/api/executions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ flowId: state.flow.id, inputs }),
    });
    state.executionId = started.executionId;
    $("#exec-id").textContent = started.executionId;
    $("#cancel").disabled = false;
    setStatus("running", 0);
    say("running…");
    listen(started.executionId);
  } catch (e) {
    $("#execute").disabled = false;
    say(e.message, true);
  }
}

function listen(executionId) {
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${window.location.host}/api/executions/${executionId}/events?token=${encodeURIComponent(state.token)}`;
  const socket = new WebSocket(url);
  state.socket = socket;
  socket.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  socket.onclose = async (ev) => {
    if (state.finished || state.executionId !== executionId) return;
    // Closed early (1013: we read too slowly): the server still has the result.
    try {
      const data = await api(`/api/executions/${executionId}`);
      if (data.status !== "running") finish(data, data.progress);
      else say(`event stream closed (${ev.code} ${ev.reason}); the run goes on`, true);
    } catch (e) {
      say(e.message, true);
    }
  };
}

async function cancel() {
  if (!state.executionId) return;
  try {
    await api(`/api/executions/${state.executionId}/cancel`, { method: "POST" });
    say("cancelling…");
  } catch (e) {
    say(e.message, true);
  }
}

// -- wiring ------------------------------------------------------------------------------------
$("#token").value = state.token;
$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  connect();
});
$("#refresh").addEventListener("click", connect);
$("#flow-select").addEventListener("change", (e) => pickFlow(e.target.value).catch((err) => say(err.message, true)));
$("#execute").addEventListener("click", execute);
$("#cancel").addEventListener("click", cancel);
if (state.token) connect();
