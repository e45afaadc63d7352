// The page: flows, every run, the graph, a node inspector, replay and step-through debugging.
// Plain JavaScript, no build step, nothing fetched from elsewhere (the layout is computed by
// the server).
// The token comes from ?token= (then removed from the address bar) or the field, and is kept in
// sessionStorage only. REST calls send it as a bearer header, WebSockets as ?token=.
"use strict";

const TOKEN_KEY = "atomiton.token";
const FINAL = new Set(["execution.completed", "execution.failed", "execution.cancelled"]);
const DONE = new Set(["completed", "cached", "pinned", "resumed"]);
const ENDED = new Set([...DONE, "failed", "skipped", "cancelled", "interrupted"]);
const SVG = "http://www.w3.org/2000/svg";
//: A value shown in full up to this many lines / characters; past them, "show all".
const SHOW_LINES = 24;
const SHOW_CHARS = 3000;
//: Containers whose children run once per item, under a label ("each/iteration 3/double").
const LABELLED = new Set(["loop", "parallel"]);
const INJECTIONS = ["error", "timeout", "delay"];
//: Run statuses with an end (a run listed so is not "running" again, whatever a stale read says).
const RUN_ENDED = new Set(["completed", "failed", "cancelled", "interrupted"]);
//: How often the run list is read from storage (runs another process writes appear so), and
//: how often the log of a run on show that this server does not hold is read: at most, for a
//: read that takes longer is done less often (a tenth of the time at most goes to reading).
const RUNS_POLL_MS = 2000;
const LOG_POLL_MS = 700;
const POLL_SHARE = 10;
const POLL_MAX_MS = 30_000;
//: How often the triggers are read again (the flows whose triggers cannot be read are only
//: said so there; the events keep the triggers themselves up to date).
const TRIGGERS_POLL_MS = 10_000;
//: How often the "in 4 s" / "3 s ago" of the triggers are brought up to date.
const TRIGGERS_TICK_MS = 500;
const $ = (sel) => document.querySelector(sel);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  flow: null, // the picked flow's data
  socket: null, // the shown live run's event stream
  stream: null, // /api/events: every execution's events
  streamRetry: 0,
  starting: false, // this page is starting a run (follow waits for it)
  view: null, // what is on show: a flow, a live run or a past run (see newView)
  runs: new Map(), // execution id -> run summary, as listed
  flowIds: new Set(),
  zoom: null, // null: fit the width
  collapsed: new Set(), // template paths of containers drawn as one box
  selected: null, // {template, instance} in the inspector
  rendering: false,
  playing: null,
  // flow id -> what the next run of it is debugged with, set on the page:
  // {marks: Map(template path -> breakpoint name), injects: Map(template path -> {name, value})}
  plans: new Map(),
  connected: false,
  runsSeq: 0, // the latest run list asked for (an older answer is dropped)
  runsTimer: null,
  // the statistics on show: the flow's, over its last `last` runs (GET /api/flows/{id}/stats)
  stats: { flowId: null, last: 50, data: null, error: null, seq: 0, timer: null, sort: { key: "flow", dir: 1 } },
  // every stored flow's triggers (GET /api/triggers), kept live by trigger.updated / .removed:
  // key -> {data: its state, seenAt: when an event or an answer last set it, rank: its place}
  triggers: { byKey: new Map(), problems: [], off: false, error: null, seq: 0, timer: null, loadTimer: null, ticker: null },
  // execution id -> the trigger that started it ({flowId, id, type}), from the triggers' states
  // (a run's summary says more, once the run list has it)
  triggerRuns: new Map(),
  streamOpened: false,
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
    const error = new Error(`${response.status} ${err.code || ""} ${err.message}${detail}`);
    error.status = response.status;
    error.code = err.code;
    throw error;
  }
  return data;
}

function wsUrl(path) {
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${window.location.host}${path}?token=${encodeURIComponent(state.token)}`;
}

// -- formatting ----------------------------------------------------------------------------------
const numberFormat = new Intl.NumberFormat("en-US");

function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function fmtBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function fmtWhen(ms) {
  if (ms == null) return "—";
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const today = new Date().toDateString() === d.toDateString();
  return today ? time : `${d.toLocaleDateString()} ${time}`;
}

function isoMs(text) {
  if (text == null) return null;
  if (typeof text === "number") return text * 1000; // epoch seconds, as run logs write them
  // Python writes microseconds; Date.parse wants at most milliseconds.
  const ms = Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(ms) ? null : ms;
}

// A value's kind in a few words: "list of 1,000", "text of 12 characters".
function describe(value) {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return `list of ${numberFormat.format(value.length)}`;
  if (typeof value === "string") {
    return value.length <= 40 && !value.includes("\n") ? JSON.stringify(value) : `text of ${numberFormat.format(value.length)} characters`;
  }
  if (typeof value === "object") {
    if (value.$ === "bytes" || value.$ === "blob") return "binary data";
    const keys = Object.keys(value);
    return `object of ${numberFormat.format(keys.length)} key${keys.length === 1 ? "" : "s"}`;
  }
  return String(value);
}

function describePorts(outputs) {
  if (!outputs || typeof outputs !== "object") return "";
  return Object.entries(outputs).map(([port, v]) => `${port}: ${describe(v)}`).join(" · ");
}

// A value, formatted: JSON indented, cut at a line (never inside a number or a word's middle
// without saying so) past SHOW_LINES / SHOW_CHARS, with a button showing all of it.
function valueView(value) {
  const box = document.createElement("div");
  box.className = "value";
  let text;
  if (value === undefined) text = "—";
  else if (typeof value === "string") text = value;
  else {
    try {
      text = JSON.stringify(value, null, 2);
    } catch (e) {
      text = String(value);
    }
  }
  const pre = document.createElement("pre");
  box.append(pre);
  const lines = text.split("\n");
  if (lines.length <= SHOW_LINES && text.length <= SHOW_CHARS) {
    pre.textContent = text;
    return box;
  }
  let shown = [];
  let size = 0;
  for (const line of lines) {
    if (shown.length >= SHOW_LINES || size + line.length > SHOW_CHARS) break;
    shown.push(line);
    size += line.length + 1;
  }
  let head = shown.join("\n");
  if (!shown.length) head = text.slice(0, SHOW_CHARS).replace(/\S*$/, ""); // one long line: cut at a space
  pre.textContent = head;
  const more = document.createElement("div");
  more.className = "more";
  const note = document.createElement("span");
  note.className = "muted";
  note.textContent = `showing ${numberFormat.format(shown.length || 1)} of ${numberFormat.format(lines.length)} lines, ` +
    `${numberFormat.format(head.length)} of ${numberFormat.format(text.length)} characters (${describe(value)})`;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "show-all";
  button.textContent = "show all";
  button.addEventListener("click", () => {
    const all = pre.dataset.all !== "1";
    pre.dataset.all = all ? "1" : "0";
    pre.textContent = all ? text : head;
    button.textContent = all ? "show less" : "show all";
    note.hidden = all;
  });
  more.append(note, button);
  box.append(more);
  return box;
}

// -- flows -------------------------------------------------------------------------------------
async function connect() {
  const select = $("#flow-select");
  try {
    const { flows } = await api("/api/flows");
    setConn("connected", "ok");
    const picked = select.value;
    select.innerHTML = "";
    if (!flows.length) select.append(new Option("— no stored flows —", ""));
    for (const f of flows) {
      select.append(new Option(f.name ? `${f.name} (${f.id})` : f.id, f.id));
      state.flowIds.add(f.id);
    }
    select.disabled = !flows.length;
    if (picked && flows.some((f) => f.id === picked)) select.value = picked;
    say(`${flows.length} stored flow(s)`);
    state.connected = true;
    listenToAll();
    fillFlowFilter();
    loadRuns({ first: true });
    scheduleRunsPoll();
    loadTriggers();
    scheduleTriggersPoll();
    // a flow that cannot be read (its file broken) is said so; the page stays connected
    if (flows.length) await pickFlow(select.value).catch((e) => say(e.message, true));
  } catch (e) {
    state.connected = false;
    select.disabled = true;
    $("#execute").disabled = true;
    say(e.message, true);
  }
}

async function pickFlow(flowId) {
  state.flow = null;
  $("#execute").disabled = true;
  if (!flowId) return;
  const flow = await api("/api/flows/" + encodeURIComponent(flowId));
  if ($("#flow-select").value !== flowId) return; // another flow was picked meanwhile
  state.flow = flow;
  markTriggersOfFlow();
  renderPlan();
  $("#flow-desc").textContent = flow.description || "";
  const defaults = {};
  for (const [name, v] of Object.entries(flow.variables || {})) defaults[name] = v.defaultValue ?? null;
  $("#inputs").value = JSON.stringify(defaults, null, 2);
  $("#execute").disabled = false;
  const running = state.view && state.view.kind === "live" && !state.view.finished;
  if (!running) {
    show(newView("flow", { flowId }));
    await loadGraph(state.view);
  }
}

// -- what is on show -------------------------------------------------------------------------------
function newView(kind, { executionId = null, flowId = null } = {}) {
  return {
    kind, // "flow" (not run), "live" (running or watched while it ran), "past" (from storage)
    executionId,
    flowId,
    graph: null,
    graphSource: null,
    boxes: new Map(), // template path -> graph node
    childIds: new Map(), // template path of a container ("" for the top) -> its children's ids
    nodes: new Map(), // instance path -> what is known of it
    byTemplate: new Map(), // template path -> instance paths
    changes: new Map(), // instance path -> [{t, status, fraction, message}] (for replay)
    status: kind === "flow" ? "idle" : "running",
    progress: 0,
    result: null,
    finished: kind === "past",
    t0: null,
    t1: null,
    at: null, // the replayed moment (ms), or null: now / the end
    dirty: new Set(),
    rowsDirty: new Set(),
    // a live run's debugging state (GET .../debug): undefined until asked, null when the run
    // was started without debugging
    debug: undefined,
  };
}

function show(view) {
  if (state.socket) {
    const old = state.socket;
    state.socket = null;
    old.onclose = null;
    old.close();
  }
  stopPlaying();
  state.view = view;
  state.selected = null;
  $("#nodes tbody").innerHTML = "";
  $("#exec-id").textContent = view.executionId || "—";
  $("#exec-kind").textContent = view.kind === "past" ? "recorded" : view.kind === "live" ? "live" : "";
  setStatus(view.status, view.progress);
  $("#outputs").textContent = "—";
  $("#outputs").classList.add("muted");
  $("#error").hidden = true;
  $("#timeline").innerHTML = '<span class="muted">The timeline is drawn when a run finishes.</span>';
  $("#scrubber").hidden = true;
  $("#graph-note").hidden = true;
  $("#graph-title").textContent = view.flowId ? view.flowId + (view.executionId ? " · " + view.executionId.slice(0, 12) : "") : "";
  $("#cancel").disabled = !(view.kind === "live" && !view.finished);
  renderInspector();
  renderDebugBar(view);
  markSelectedRun();
  syncStats(view.flowId);
  showRunTrigger(view);
}

function setStatus(status, progress) {
  const el = $("#exec-status");
  el.dataset.status = status;
  el.textContent = status;
  $("#exec-progress").style.width = `${Math.round((progress || 0) * 100)}%`;
}

// The template path of an instance path: its node ids, without the labels containers give
// their runs ("tag/iteration 3/is-big" -> "tag/is-big"); null when the graph lacks it.
function templateOf(view, path) {
  if (!view.graph) return null;
  let current = "";
  let matched = false;
  for (const segment of path.split("/")) {
    const ids = view.childIds.get(current);
    if (ids && ids.has(segment)) {
      current = current ? `${current}/${segment}` : segment;
      matched = true;
    } else {
      matched = false;
    }
  }
  return matched ? current : null;
}

function nodeOf(view, path, nodeId, nodeType) {
  let node = view.nodes.get(path);
  if (!node) {
    node = {
      path, nodeId: nodeId || path.split("/").pop(), type: nodeType || "", status: "pending",
      fraction: null, message: null, startedAt: null, endedAt: null, durationMs: null,
      attempts: 0, error: null, outputs: undefined, inputs: undefined, cpuMs: null,
      peakMemory: null, reason: null, resumedFrom: null, log: [],
      injected: null, pausedAt: null, pauseReason: null,
    };
    view.nodes.set(path, node);
    const template = templateOf(view, path);
    if (template) {
      if (!view.byTemplate.has(template)) view.byTemplate.set(template, []);
      view.byTemplate.get(template).push(path);
    }
  } else if (nodeType && !node.type) {
    node.type = nodeType;
  }
  return node;
}

function reindex(view) {
  view.byTemplate.clear();
  for (const path of view.nodes.keys()) {
    const template = templateOf(view, path);
    if (!template) continue;
    if (!view.byTemplate.has(template)) view.byTemplate.set(template, []);
    view.byTemplate.get(template).push(path);
  }
}

function change(view, node, t, status, fraction = null, message = null) {
  if (t == null) return;
  if (!view.changes.has(node.path)) view.changes.set(node.path, []);
  view.changes.get(node.path).push({ t, status, fraction, message });
}

// One event (from a WebSocket or a run log) applied to the view.
function applyEvent(view, ev) {
  if (!ev.type || !ev.type.startsWith("node.") || !ev.path) return;
  const node = nodeOf(view, ev.path, ev.nodeId, ev.nodeType);
  const t = ev.t != null ? ev.t * 1000 : isoMs(ev.timestamp);
  node.log.push(Object.assign({ at: t }, ev));
  if (ev.injected) node.injected = ev.injected;
  switch (ev.type) {
    case "node.started":
      node.startedAt = node.startedAt ?? t;
      node.attempts = ev.attempt || node.attempts || 1;
      node.status = "running";
      node.fraction = 0;
      node.message = ev.attempt > 1 ? `attempt ${ev.attempt}` : "";
      change(view, node, t, "running", 0, node.message);
      break;
    case "node.progress":
      node.status = "running";
      node.fraction = ev.fraction;
      node.message = ev.message || `${Math.round((ev.fraction || 0) * 100)}%`;
      change(view, node, t, "running", ev.fraction, node.message);
      break;
    case "node.retrying":
      node.status = "retrying";
      node.error = ev.error || node.error;
      node.message = `retrying in ${fmtMs(ev.delayMs)}: ${(ev.error || {}).message || ""}`;
      change(view, node, t, "retrying", null, node.message);
      break;
    case "node.paused":
      node.status = "paused";
      node.pausedAt = t;
      node.pauseReason = ev.message || ev.reason || null; // "breakpoint" or "step"
      if (ev.inputs !== undefined) node.inputs = ev.inputs;
      node.message = "paused before it runs";
      change(view, node, t, "paused", null, node.message);
      break;
    case "node.completed": {
      const status = ev.resumedFrom ? "resumed" : ev.status || "completed";
      const started = isoMs(ev.startedAt);
      if (started != null && node.startedAt == null) {
        node.startedAt = started;
        change(view, node, started, "running", 0, "");
      }
      node.status = status;
      node.fraction = 1;
      node.endedAt = t;
      node.durationMs = ev.durationMs ?? node.durationMs;
      node.attempts = ev.attempts || node.attempts || (status === "completed" ? 1 : 0);
      node.error = null;
      if (ev.outputs !== undefined && !view.result) node.outputs = ev.outputs;
      node.cpuMs = ev.cpuMs ?? node.cpuMs;
      node.peakMemory = ev.peakMemory ?? node.peakMemory;
      node.resumedFrom = ev.resumedFrom || null;
      node.message = describePorts(node.outputs);
      change(view, node, t, status, 1, node.message);
      break;
    }
    case "node.failed":
      node.status = "failed";
      node.endedAt = t;
      node.durationMs = ev.durationMs ?? node.durationMs;
      node.error = ev.error || node.error;
      node.attempts = ev.attempts || ev.attempt || node.attempts;
      node.message = (ev.error || {}).message || "failed";
      change(view, node, t, "failed", null, node.message);
      break;
    case "node.cancelled":
      node.status = "cancelled";
      node.endedAt = t;
      node.message = "cancelled";
      change(view, node, t, "cancelled", null, "cancelled");
      break;
    case "node.skipped":
      node.status = "skipped";
      node.reason = ev.reason || node.reason;
      node.message = (ev.error || {}).message || ev.reason || "skipped";
      change(view, node, t, "skipped", null, node.message);
      break;
    default:
      break;
  }
  if (ev.progress != null && view.kind === "live") view.progress = Math.max(view.progress, ev.progress);
  touch(view, node.path);
}

// What a finished run's result says, over what the events said.
function applyResult(view, result) {
  view.result = result;
  view.status = result.status;
  view.finished = true;
  view.t0 = isoMs(result.startedAt);
  if (view.t0 != null && result.durationMs != null) view.t1 = view.t0 + result.durationMs;
  for (const [path, r] of Object.entries(result.nodes || {})) {
    const node = nodeOf(view, path, r.nodeId, r.nodeType);
    const status = r.resumedFrom ? "resumed" : r.reason === "interrupted" ? "interrupted" : r.status;
    node.status = status;
    node.attempts = r.attempts ?? node.attempts;
    node.startedAt = isoMs(r.startedAt) ?? node.startedAt;
    node.durationMs = r.durationMs ?? node.durationMs;
    if (node.startedAt != null && node.durationMs != null) node.endedAt = node.startedAt + node.durationMs;
    node.error = r.error || null;
    node.outputs = r.outputs === null && !DONE.has(status) ? undefined : r.outputs;
    node.cpuMs = r.cpuMs ?? node.cpuMs;
    node.peakMemory = r.peakMemory ?? node.peakMemory;
    node.reason = r.reason || node.reason;
    node.resumedFrom = r.resumedFrom || null;
    node.injected = r.injected || node.injected;
    if (DONE.has(status)) node.fraction = 1;
    node.message = node.error ? node.error.message : DONE.has(status) ? describePorts(node.outputs) : node.reason || node.message;
    if (!view.changes.has(path) && node.startedAt != null) {
      // no log (a run recorded as a summary): its start and end from the result
      change(view, node, node.startedAt, "running", 0, "");
      if (node.endedAt != null) change(view, node, node.endedAt, status, DONE.has(status) ? 1 : null, node.message);
    }
    touch(view, path);
  }
  for (const node of view.nodes.values()) {
    if (node.status !== "paused") continue;
    // paused when the run ended (aborted there): it never ran
    node.status = result.status === "cancelled" ? "cancelled" : "pending";
    node.message = node.status === "cancelled" ? "cancelled while paused" : "";
    change(view, node, node.endedAt ?? view.t1, node.status, null, node.message);
    touch(view, node.path);
  }
  for (const list of view.changes.values()) list.sort((a, b) => a.t - b.t);
}

function touch(view, path) {
  view.rowsDirty.add(path);
  const template = templateOf(view, path);
  if (template) view.dirty.add(template);
  scheduleRender();
}

// The state shown for an instance: as it is, or at the replayed moment.
function shownState(view, path) {
  const node = view.nodes.get(path);
  if (view.at == null || !node) return node || { status: "pending", fraction: null, message: "" };
  const list = view.changes.get(path) || [];
  let last = null;
  for (const c of list) {
    if (c.t <= view.at) last = c;
    else break;
  }
  if (view.t1 != null && view.at >= view.t1) return node; // the end: as recorded
  if (!last) return { status: "pending", fraction: null, message: "" };
  return { status: last.status, fraction: last.fraction, message: last.message };
}

// One status for a graph box from all its instances (a loop's child ran once per item).
function boxState(view, template) {
  const paths = view.byTemplate.get(template) || [];
  if (!paths.length) return { status: "pending", fraction: null, count: 0, message: "" };
  let states = paths.map((p) => shownState(view, p));
  if (view.finished && view.at == null && states.some((x) => x.status !== "pending")) {
    states = states.filter((x) => x.status !== "pending"); // never reached: the run is over
  }
  const count = states.length;
  const has = (s) => states.some((x) => x.status === s);
  let status;
  if (has("running") || has("retrying") || has("paused")) {
    status = has("paused") ? "paused" : has("retrying") ? "retrying" : "running";
  } else if (has("failed")) status = "failed";
  else if (has("interrupted")) status = "interrupted";
  else if (has("cancelled")) status = "cancelled";
  else if (states.every((x) => x.status === "pending")) status = "pending";
  else if (states.some((x) => x.status === "pending")) status = "running";
  else if (has("completed")) status = "completed";
  else if (has("resumed")) status = "resumed";
  else if (has("cached")) status = "cached";
  else if (has("pinned")) status = "pinned";
  else status = states[0].status;
  const running = states.find((x) => x.status === "running" && x.fraction != null);
  let fraction = running ? running.fraction : DONE.has(status) ? 1 : null;
  if (count > 1) fraction = states.filter((x) => ENDED.has(x.status)).length / count;
  let message = count === 1 ? states[0].message || "" : "";
  if (count > 1) {
    const tally = {};
    for (const x of states) tally[x.status] = (tally[x.status] || 0) + 1;
    message = Object.entries(tally).map(([s, n]) => `${n} ${s}`).join(" · ");
  }
  return { status, fraction, count, message };
}

function scheduleRender() {
  if (state.rendering) return;
  state.rendering = true;
  requestAnimationFrame(() => {
    state.rendering = false;
    render();
  });
}

function render() {
  const view = state.view;
  if (!view) return;
  for (const path of view.rowsDirty) renderRow(view, path);
  view.rowsDirty.clear();
  for (const template of view.dirty) renderBox(view, template);
  view.dirty.clear();
  setStatus(view.status, view.status === "completed" ? 1 : view.progress);
  renderDebugBar(view);
  if (state.selected) renderInspector();
}

function renderAll(view) {
  for (const path of view.nodes.keys()) view.rowsDirty.add(path);
  for (const template of view.boxes.keys()) view.dirty.add(template);
  render();
}

// -- the node table ------------------------------------------------------------------------------
function rowOf(path) {
  return $("#nodes tbody").querySelector(`tr[data-path="${CSS.escape(path)}"]`);
}

function renderRow(view, path) {
  const node = view.nodes.get(path);
  if (!node) return;
  let tr = rowOf(path);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.path = path;
    tr.innerHTML =
      '<td class="path"><span class="bp" role="button" tabindex="0"></span><span class="p"></span><span class="inj"></span></td>' +
      '<td class="type muted"></td><td><span class="badge"></span></td>' +
      '<td class="prog"><div class="bar"><div></div></div></td><td class="time num"></td><td class="detail"></td>';
    tr.querySelector(".p").textContent = path;
    tr.addEventListener("click", () => select(templateOf(state.view, path), path));
    const dot = tr.querySelector(".bp");
    dot.setAttribute("aria-label", `breakpoint on ${path}`);
    dot.title = "breakpoint: pause before this node runs (click to toggle)";
    const flip = (e) => {
      e.stopPropagation();
      const template = templateOf(state.view, path);
      if (template) toggleBreakpoint(template);
    };
    dot.addEventListener("click", flip);
    dot.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") flip(e); });
    $("#nodes tbody").append(tr);
  }
  const shown = shownState(view, path);
  tr.dataset.status = shown.status;
  tr.classList.toggle("selected", !!state.selected && state.selected.instance === path);
  const template = templateOf(view, path);
  tr.dataset.breakpoint = template && isMarked(view, template) ? "on" : "off";
  tr.querySelector(".bp").hidden = !template;
  const injected = injectionAt(view, path);
  const inj = tr.querySelector(".inj");
  inj.textContent = injected ? `⚡ ${injected}` : "";
  inj.title = injected ? `fault injected: ${injected}` : "";
  if (injected) tr.dataset.injected = injected;
  else delete tr.dataset.injected;
  tr.querySelector(".type").textContent = node.type || "";
  const badge = tr.querySelector(".badge");
  badge.dataset.status = shown.status;
  badge.textContent = shown.status;
  const fraction = shown.fraction != null ? shown.fraction : DONE.has(shown.status) ? 1 : 0;
  tr.querySelector(".prog .bar > div").style.width = `${Math.round(fraction * 100)}%`;
  tr.querySelector(".time").textContent = view.at == null || ENDED.has(shown.status) ? fmtMs(node.durationMs) : "";
  const detail = tr.querySelector(".detail");
  detail.textContent = shown.message || "";
  detail.title = shown.message || "";
  detail.classList.toggle("bad", shown.status === "failed" || shown.status === "retrying");
}

// Rows for what will run, before any event: the top-level nodes and the children of groups.
function seedRows(view) {
  if (!view.graph) return;
  const groups = new Set(view.graph.nodes.filter((n) => n.type === "group").map((n) => n.path));
  for (const n of view.graph.nodes) {
    if (n.parent === null || groups.has(n.parent)) {
      let ancestor = n.parent;
      let direct = true;
      while (ancestor) {
        if (!groups.has(ancestor)) direct = false;
        ancestor = view.boxes.get(ancestor) ? view.boxes.get(ancestor).parent : null;
      }
      if (direct) nodeOf(view, n.path, n.id, n.type);
    }
  }
  for (const path of view.nodes.keys()) view.rowsDirty.add(path);
}

// -- the graph -------------------------------------------------------------------------------------
async function loadGraph(view, { fromRun = view.kind === "past" } = {}) {
  const query = [...state.collapsed].map((p) => "collapsed=" + encodeURIComponent(p)).join("&");
  const suffix = query ? "?" + query : "";
  let graph = null;
  try {
    if (fromRun && view.executionId) {
      graph = await api(`/api/runs/${encodeURIComponent(view.executionId)}/graph${suffix}`);
    } else if (view.flowId) {
      try {
        graph = await api(`/api/flows/${encodeURIComponent(view.flowId)}/graph${suffix}`);
      } catch (e) {
        if (e.status !== 404 || !view.executionId) throw e;
        graph = await api(`/api/runs/${encodeURIComponent(view.executionId)}/graph${suffix}`);
      }
    }
  } catch (e) {
    if (state.view !== view) return;
    $("#graph").innerHTML = "";
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `No graph: ${e.message}`;
    $("#graph").append(p);
    return;
  }
  if (state.view !== view || !graph) return;
  setGraph(view, graph);
}

function setGraph(view, graph) {
  view.graph = graph;
  view.graphSource = graph.source || "stored flow";
  view.boxes = new Map(graph.nodes.map((n) => [n.path, n]));
  view.childIds = new Map([["", new Set()]]);
  for (const n of graph.nodes) {
    const parent = n.parent || "";
    if (!view.childIds.has(parent)) view.childIds.set(parent, new Set());
    view.childIds.get(parent).add(n.id);
  }
  reindex(view);
  seedRows(view);
  if (state.view === view && state.selected && state.selected.instance && !state.selected.template) {
    state.selected.template = templateOf(view, state.selected.instance);
  }
  const note = $("#graph-note");
  const problems = graph.problems || [];
  note.hidden = !problems.length;
  note.textContent = problems.join("\n");
  drawGraph(view);
  renderAll(view);
  if (view.flowId === state.stats.flowId) renderStats(); // in the flow's order, as drawn
}

function svgEl(parent, name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  if (parent) parent.append(node);
  return node;
}

function clip(text, width, charW = 7) {
  const room = Math.max(3, Math.floor(width / charW));
  return text.length <= room ? text : text.slice(0, room - 1) + "…";
}

function edgePath(points) {
  let d = `M ${points[0][0]} ${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    if (y0 === y1) {
      d += ` L ${x1} ${y1}`;
    } else {
      const mx = (x0 + x1) / 2;
      d += ` C ${mx} ${y0} ${mx} ${y1} ${x1} ${y1}`;
    }
  }
  return d;
}

function drawGraph(view) {
  const graph = view.graph;
  const box = $("#graph");
  box.innerHTML = "";
  if (!graph.nodes.length) {
    box.innerHTML = '<p class="muted">This flow has no nodes.</p>';
    return;
  }
  const svg = svgEl(null, "svg", {
    viewBox: `0 0 ${graph.width} ${graph.height}`, role: "img", "aria-label": `graph of ${graph.flowId}`,
    "data-flow": graph.flowId,
  });
  const defs = svgEl(svg, "defs");
  const marker = svgEl(defs, "marker", { id: "arrow", viewBox: "0 0 8 8", refX: "7", refY: "4", markerWidth: "7", markerHeight: "7", orient: "auto" });
  svgEl(marker, "path", { d: "M 0 0 L 8 4 L 0 8 z", class: "arrow" });
  const containers = svgEl(svg, "g", { class: "containers" });
  const edges = svgEl(svg, "g", { class: "edges" });
  const leaves = svgEl(svg, "g", { class: "leaves" });
  for (const n of graph.nodes) {
    const open = n.container && !n.collapsed;
    const g = svgEl(open ? containers : leaves, "g", {
      class: "gnode" + (n.container ? " container" : "") + (open ? " open" : ""),
      "data-path": n.path, "data-status": "pending", "data-type": n.type, tabindex: "0",
    });
    const title = n.name || n.id;
    svgEl(g, "title", {}, `${n.path} (${n.type})`);
    svgEl(g, "rect", { class: "box", x: n.x, y: n.y, width: n.w, height: n.h, rx: 6 });
    svgEl(g, "rect", { class: "stripe", x: n.x, y: n.y, width: 5, height: n.h, rx: 2 });
    svgEl(g, "text", { class: "title", x: n.x + 12, y: n.y + 16 }, clip(title, n.w - (n.container ? 60 : 44)));
    svgEl(g, "text", { class: "type", x: n.x + 12, y: n.y + 31 }, clip(n.type + (n.pinned ? " · pinned" : ""), n.w - 96, 6.5));
    svgEl(g, "text", { class: "state", x: n.x + n.w - 8, y: n.y + 31, "text-anchor": "end" }, "");
    svgEl(g, "text", { class: "count", x: n.x + n.w - (n.container ? 28 : 8), y: n.y + 16, "text-anchor": "end" }, "");
    svgEl(g, "text", { class: "inj", x: n.x + n.w - (n.container ? 28 : 8), y: n.y + 16, "text-anchor": "end" }, "");
    svgEl(g, "rect", { class: "track", x: n.x + 5, y: n.y + n.h - 3, width: n.w - 5, height: 3 });
    svgEl(g, "rect", { class: "progress", x: n.x + 5, y: n.y + n.h - 3, width: 0, height: 3, "data-w": n.w - 5 });
    if (n.container) {
      const toggle = svgEl(g, "g", { class: "toggle", role: "button", "aria-label": (open ? "collapse " : "open ") + n.path });
      svgEl(toggle, "rect", { x: n.x + n.w - 24, y: n.y + 4, width: 18, height: 18, rx: 4 });
      svgEl(toggle, "text", { x: n.x + n.w - 15, y: n.y + 17, "text-anchor": "middle" }, open ? "−" : "+");
      toggle.addEventListener("click", (e) => {
        e.stopPropagation();
        toggleContainer(n.path);
      });
      if (!open) svgEl(g, "text", { class: "inside", x: n.x + 12, y: n.y + n.h - 10 }, `${n.children} node${n.children === 1 ? "" : "s"} inside`);
    }
    const portText = (p, side) => {
      svgEl(g, "circle", { class: "port" + (p.connected ? "" : " loose"), cx: p.x, cy: p.y, r: 3.5, "data-port": p.name, "data-side": side });
      const inward = side === "in" ? 7 : -7;
      // a container's port has edges on both sides of the border: its name sits above them
      const y = open ? p.y - 5 : p.y + 3.5;
      svgEl(g, "text", { class: "port-label", x: p.x + inward, y, "text-anchor": side === "in" ? "start" : "end" }, clip(p.name, 90, 6));
    };
    for (const p of n.inputs) portText(p, "in");
    for (const p of n.outputs) portText(p, "out");
    // the breakpoint toggle: a dot on the box's corner (or the key "b" on a focused box)
    const dot = svgEl(g, "circle", { class: "bp", cx: n.x + 1, cy: n.y + 1, r: 6, role: "button",
      "aria-label": `breakpoint on ${n.path}` });
    svgEl(dot, "title", {}, "breakpoint: pause before this node runs (click to toggle)");
    dot.addEventListener("click", (e) => {
      e.stopPropagation();
      toggleBreakpoint(n.path);
    });
    g.addEventListener("click", (e) => {
      e.stopPropagation();
      select(n.path, null);
    });
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter") select(n.path, null);
      if (e.key === "b") toggleBreakpoint(n.path);
    });
  }
  for (const e of graph.edges) {
    svgEl(edges, "path", {
      class: "gedge", d: edgePath(e.points), "marker-end": "url(#arrow)",
      "data-source": `${e.source}.${e.sourceHandle}`, "data-target": `${e.target}.${e.targetHandle}`,
    });
  }
  box.append(svg);
  applyZoom();
  renderOverlay();
}

function applyZoom() {
  const svg = $("#graph svg");
  const view = state.view;
  if (!svg || !view || !view.graph) return;
  const room = $("#graph").clientWidth - 2 || view.graph.width;
  const fit = Math.min(1, Math.max(0.7, room / view.graph.width));
  const zoom = state.zoom == null ? fit : state.zoom;
  svg.setAttribute("width", Math.round(view.graph.width * zoom));
  svg.setAttribute("height", Math.round(view.graph.height * zoom));
}

async function toggleContainer(path) {
  if (state.collapsed.has(path)) state.collapsed.delete(path);
  else state.collapsed.add(path);
  if (state.view) await loadGraph(state.view);
}

function renderBox(view, template) {
  const g = $("#graph svg") && $("#graph svg").querySelector(`.gnode[data-path="${CSS.escape(template)}"]`);
  if (!g) return;
  const shown = boxState(view, template);
  g.dataset.status = shown.status;
  g.classList.toggle("selected", !!state.selected && state.selected.template === template);
  const label = shown.status === "running" && shown.fraction != null && shown.count <= 1
    ? `running ${Math.round(shown.fraction * 100)}%` : shown.status;
  g.querySelector(".state").textContent = shown.status === "pending" && !shown.count ? "" : label;
  const count = shown.count > 1 ? `×${numberFormat.format(shown.count)}` : "";
  g.querySelector(".count").textContent = count;
  g.dataset.breakpoint = isMarked(view, template) ? "on" : "off";
  const injected = boxInjection(view, template);
  const inj = g.querySelector(".inj");
  inj.textContent = injected ? `⚡${injected}` : "";
  inj.setAttribute("dx", count ? String(-7 * count.length - 6) : "0");
  if (injected) g.dataset.injected = injected;
  else delete g.dataset.injected;
  const bar = g.querySelector(".progress");
  bar.setAttribute("width", Math.max(0, Number(bar.dataset.w) * (shown.fraction || 0)));
  const title = g.querySelector("title");
  title.textContent = `${template} (${g.dataset.type}): ${shown.status}${shown.message ? " — " + shown.message : ""}` +
    (g.dataset.breakpoint === "on" ? " · breakpoint" : "") + (injected ? ` · injected: ${injected}` : "");
}

// -- the inspector ---------------------------------------------------------------------------------
function select(template, instance) {
  const view = state.view;
  if (!view) return;
  if (!instance && template) {
    const paths = view.byTemplate.get(template) || [];
    const failed = paths.find((p) => (view.nodes.get(p) || {}).status === "failed");
    instance = failed || paths[paths.length - 1] || null;
  }
  const old = state.selected;
  state.selected = { template, instance };
  if (old) {
    if (old.template) view.dirty.add(old.template);
    if (old.instance) view.rowsDirty.add(old.instance);
  }
  if (template) view.dirty.add(template);
  if (instance) view.rowsDirty.add(instance);
  for (const tr of $("#stats-nodes tbody").children) tr.classList.toggle("selected", tr.dataset.node === template);
  renderInspector();
  scheduleRender();
}

function section(parent, part, heading) {
  const s = document.createElement("section");
  s.dataset.part = part;
  if (heading) {
    const h = document.createElement("h3");
    h.textContent = heading;
    s.append(h);
  }
  parent.append(s);
  return s;
}

function facts(parent, pairs) {
  const dl = document.createElement("dl");
  dl.className = "facts";
  for (const [k, v] of pairs) {
    if (v == null || v === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.className = "num";
    dd.textContent = v;
    dl.append(dt, dd);
  }
  parent.append(dl);
  return dl;
}

function errorView(parent, error) {
  const box = document.createElement("div");
  box.className = "error";
  const head = document.createElement("div");
  head.className = "error-message";
  head.textContent = `${error.code || "ERROR"}: ${error.message || ""}`;
  box.append(head);
  if (error.hint) {
    const hint = document.createElement("div");
    hint.className = "hint";
    hint.textContent = `hint: ${error.hint}`;
    box.append(hint);
  }
  const rest = Object.assign({}, error);
  for (const k of ["code", "message", "hint", "nodeId", "path"]) delete rest[k];
  if (Object.keys(rest).length) box.append(valueView(rest));
  parent.append(box);
}

function logLine(view, ev) {
  const start = view.t0 ?? null;
  const at = ev.at != null && start != null ? `+${fmtMs(ev.at - start)}` : ev.at != null ? fmtWhen(ev.at) : "";
  let text = ev.type.replace("node.", "");
  if (ev.type === "node.started") text += ev.attempt > 1 ? ` (attempt ${ev.attempt})` : "";
  if (ev.type === "node.progress") text += ` ${Math.round((ev.fraction || 0) * 100)}%${ev.message ? " " + ev.message : ""}`;
  if (ev.type === "node.retrying") text += ` in ${fmtMs(ev.delayMs)}: ${(ev.error || {}).message || ""}`;
  if (ev.type === "node.completed") text += `${ev.status && ev.status !== "completed" ? " (" + ev.status + ")" : ""} in ${fmtMs(ev.durationMs)}`;
  if (ev.type === "node.failed") text += `: ${(ev.error || {}).code || ""} ${(ev.error || {}).message || ""}`;
  if (ev.type === "node.skipped") text += `: ${ev.reason || (ev.error || {}).message || ""}`;
  if (ev.type === "node.paused") text += ` before it runs: ${describePorts(ev.inputs) || "no inputs"}`;
  return [at, text];
}

// What flows into the node's input ports: along the graph's edges, from the outputs the
// nodes upstream (in the same run of their container) gave.
function derivedInputs(view, template, instance) {
  if (!view.graph || !template) return [];
  const prefix = instance && instance.includes("/") ? instance.slice(0, instance.lastIndexOf("/")) : "";
  const box = view.boxes.get(template);
  const out = [];
  for (const e of view.graph.edges) {
    if (e.target !== template || e.parent === template) continue;
    const entry = { port: e.targetHandle, from: `${e.source}.${e.sourceHandle}`, value: undefined, known: false };
    if (e.source === (box && box.parent)) {
      entry.from = `its container's ${e.sourceHandle}`;
    } else {
      const sourceId = view.boxes.get(e.source) ? view.boxes.get(e.source).id : e.source;
      const sourcePath = prefix ? `${prefix}/${sourceId}` : sourceId;
      const source = view.nodes.get(sourcePath);
      if (source && source.outputs && typeof source.outputs === "object" && e.sourceHandle in source.outputs) {
        entry.value = source.outputs[e.sourceHandle];
        entry.known = true;
      }
    }
    out.push(entry);
  }
  return out;
}

function renderInspector() {
  const body = $("#inspector-body");
  const view = state.view;
  const sel = state.selected;
  body.innerHTML = "";
  if (!view || !sel || (!sel.template && !sel.instance)) {
    body.innerHTML = '<p class="muted">Click a node in the graph or the table.</p>';
    return;
  }
  const box = sel.template ? view.boxes.get(sel.template) : null;
  const node = sel.instance ? view.nodes.get(sel.instance) : null;
  const shown = sel.instance ? shownState(view, sel.instance) : { status: "pending" };
  body.dataset.path = sel.instance || sel.template;

  const head = document.createElement("div");
  head.className = "insp-head";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.dataset.status = shown.status;
  badge.textContent = shown.status;
  const name = document.createElement("strong");
  name.textContent = (box && box.name) || (node && node.nodeId) || (box && box.id) || sel.instance;
  const type = document.createElement("span");
  type.className = "muted";
  type.textContent = (box && box.type) || (node && node.type) || "";
  head.append(badge, name, type);
  body.append(head);
  const where = document.createElement("code");
  where.className = "insp-path";
  where.textContent = sel.instance || sel.template;
  body.append(where);

  const instances = sel.template ? view.byTemplate.get(sel.template) || [] : [];
  if (instances.length > 1) {
    const pick = document.createElement("select");
    pick.id = "inspector-instance";
    pick.setAttribute("aria-label", "which run of this node");
    for (const p of instances) pick.append(new Option(`${p} — ${shownState(view, p).status}`, p));
    pick.value = sel.instance;
    pick.addEventListener("change", () => select(sel.template, pick.value));
    body.append(pick);
  }

  if (node && node.error && (view.at == null || ["failed", "retrying"].includes(shown.status))) {
    errorView(section(body, "error", "Error"), node.error);
  }
  if (box) debugSection(body, view, sel.template);

  const timing = section(body, "timings", "Attempts and timings");
  if (node) {
    facts(timing, [
      ["attempts", node.attempts ? String(node.attempts) : null],
      ["started", node.startedAt != null ? fmtWhen(node.startedAt) + "." + String(Math.floor(node.startedAt % 1000)).padStart(3, "0") : null],
      ["after run start", node.startedAt != null && view.t0 != null ? `+${fmtMs(node.startedAt - view.t0)}` : null],
      ["duration", fmtMs(node.durationMs)],
      ["cpu", fmtMs(node.cpuMs)],
      ["peak memory", fmtBytes(node.peakMemory)],
      ["skipped because", node.reason],
      ["paused", shown.status === "paused" ? `before it runs${node.pauseReason ? " (" + node.pauseReason + ")" : ""}` : null],
      ["injected", node.injected],
      ["reused from run", node.resumedFrom],
      ["progress", shown.status === "running" && shown.fraction != null ? `${Math.round(shown.fraction * 100)}%` : null],
      ["message", shown.status === "running" ? shown.message : null],
    ]);
  } else {
    timing.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "Not run (yet)." }));
  }

  const params = section(body, "parameters", "Parameters");
  if (box && box.parameters && Object.keys(box.parameters).length) params.append(valueView(box.parameters));
  else params.append(Object.assign(document.createElement("p"), { className: "muted", textContent: box ? "none set" : "unknown (the flow is not stored)" }));

  const inputs = section(body, "inputs", "Inputs");
  if (node && node.inputs !== undefined) {
    // resolved by the engine (a debugged run's pause): what the node is called with
    if (shown.status === "paused") {
      inputs.append(Object.assign(document.createElement("p"), { className: "muted resolved", textContent: "resolved: what it will be called with" }));
    }
    const ports = node.inputs && typeof node.inputs === "object" && !Array.isArray(node.inputs) ? Object.entries(node.inputs) : null;
    if (ports && !ports.length) inputs.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "none" }));
    if (!ports) inputs.append(valueView(node.inputs));
    for (const [port, value] of ports || []) {
      const label = document.createElement("div");
      label.className = "port-head";
      label.textContent = `${port}: ${describe(value)}`;
      inputs.append(label, valueView(value));
    }
  } else {
    const derived = derivedInputs(view, sel.template, sel.instance);
    if (!derived.length) inputs.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "no edge feeds it" }));
    for (const d of derived) {
      const label = document.createElement("div");
      label.className = "port-head";
      label.textContent = `${d.port} ← ${d.from}`;
      inputs.append(label);
      if (d.known && (view.at == null || ENDED.has(shown.status) || shown.status === "running")) inputs.append(valueView(d.value));
    }
  }

  const outputs = section(body, "outputs", "Outputs");
  const showOutputs = node && node.outputs !== undefined && node.outputs !== null && (view.at == null || DONE.has(shown.status));
  if (showOutputs && typeof node.outputs === "object" && !Array.isArray(node.outputs)) {
    for (const [port, value] of Object.entries(node.outputs)) {
      const label = document.createElement("div");
      label.className = "port-head";
      label.textContent = `${port}: ${describe(value)}`;
      outputs.append(label, valueView(value));
    }
  } else if (showOutputs) {
    outputs.append(valueView(node.outputs));
  } else {
    outputs.append(Object.assign(document.createElement("p"), { className: "muted", textContent: ENDED.has(shown.status) ? "none" : "none yet" }));
  }

  const log = section(body, "log", "Log");
  const events = node ? node.log.filter((ev) => view.at == null || ev.at == null || ev.at <= view.at) : [];
  if (!events.length) log.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "no events" }));
  const list = document.createElement("ol");
  list.className = "log";
  const tail = events.length > 60 ? events.slice(-60) : events;
  if (tail.length < events.length) {
    log.append(Object.assign(document.createElement("p"), { className: "muted", textContent: `the last 60 of ${events.length} events` }));
  }
  for (const ev of tail) {
    const li = document.createElement("li");
    const [at, text] = logLine(view, ev);
    const time = document.createElement("span");
    time.className = "num muted";
    time.textContent = at;
    const what = document.createElement("span");
    what.textContent = text;
    li.dataset.type = ev.type;
    li.append(time, what);
    list.append(li);
  }
  log.append(list);
}

// -- a run, live -----------------------------------------------------------------------------------
async function openLive(executionId, flowId) {
  if (state.view && state.view.executionId === executionId) return;
  const previous = state.view;
  const view = newView("live", { executionId, flowId });
  show(view);
  if (!state.runs.has(executionId)) upsertRun({ executionId, flowId, status: "running", live: true });
  say(`watching run ${executionId.slice(0, 12)}…`);
  listen(view);
  refreshDebug(view);
  if (previous && previous.flowId === flowId && previous.graph && previous.graphSource === "stored flow") {
    setGraph(view, previous.graph);
  } else {
    await loadGraph(view);
  }
}

function onEvent(view, ev) {
  if (state.view !== view) return;
  if (ev.type === "events.dropped") {
    say(`${ev.dropped} early event(s) were dropped by the server's buffer`);
    return;
  }
  if (ev.type.startsWith("node.")) {
    applyEvent(view, ev);
    if (ev.type === "node.paused" && ev.path) {
      // the pause on show: the inspector opens on the node, with its resolved inputs (the
      // event says why it paused; the debug state is asked for only if not known yet)
      select(templateOf(view, ev.path), ev.path);
      say(`paused before ${ev.path}${ev.message ? " (" + ev.message + ")" : ""}`);
      if (!view.debug) refreshDebug(view);
    }
    return;
  }
  if (ev.type === "execution.started") {
    view.t0 = isoMs(ev.timestamp);
    view.status = "running";
    scheduleRender();
  }
  if (FINAL.has(ev.type)) {
    if (ev.result) finish(view, ev.result);
    else if (ev.resultUrl) api(ev.resultUrl).then((r) => finish(view, r)).catch((e) => say(e.message, true));
    else finish(view, { status: ev.status, error: ev.error, nodes: {}, outputs: {} });
  }
}

function listen(view) {
  const socket = new WebSocket(wsUrl(`/api/executions/${encodeURIComponent(view.executionId)}/events`));
  let opened = false;
  state.socket = socket;
  socket.onopen = () => { opened = true; };
  socket.onmessage = (msg) => onEvent(view, JSON.parse(msg.data));
  socket.onclose = async (ev) => {
    if (state.view !== view || view.finished) return;
    // Closed early (1013: read too slowly), or refused (a run this server does not hold, e.g.
    // one `atomiton run` is writing to the same storage): its log and record say how it goes.
    if (!opened) {
      followStored(view);
      return;
    }
    try {
      const data = await api(`/api/executions/${encodeURIComponent(view.executionId)}`);
      if (data.status !== "running") finish(view, data);
      else say(`event stream closed (${ev.code} ${ev.reason}); the run goes on`, true);
    } catch (e) {
      say(e.message, true);
    }
  };
}

// A running run this server does not hold (`atomiton run` writing to the same storage, or a
// server before a restart): its log (GET /api/runs/{id}/events) applied as it grows, its record
// (GET /api/runs/{id}) saying when it has ended; then its result, as for a past run.
async function followStored(view) {
  if (state.view !== view || view.finished) return;
  view.remote = true;
  $("#exec-kind").textContent = "live, from its log";
  $("#cancel").disabled = true; // its process is elsewhere: nothing here can cancel it
  renderDebugBar(view);
  const id = encodeURIComponent(view.executionId);
  let applied = 0;
  while (state.view === view && !view.finished) {
    const asked = performance.now();
    let log;
    let record;
    try {
      [log, record] = await Promise.all([
        api(`/api/runs/${id}/events?after=${applied}`), // only the lines not yet applied
        api(`/api/runs/${id}`),
      ]);
    } catch (e) {
      if (state.view === view) say(e.message, true);
      return;
    }
    if (state.view !== view || view.finished) return;
    const events = log.events || [];
    for (const ev of events) {
      if (ev.type === "execution.started" && ev.t != null) view.t0 = ev.t * 1000;
      else applyEvent(view, ev);
      const node = ev.type === "node.started" ? view.nodes.get(ev.path) : null;
      if (node) node.fraction = null; // a log has no progress: "running", not "running 0%"
    }
    applied = log.next ?? applied + events.length;
    if (view.t0 == null && record.startedAt != null) view.t0 = isoMs(record.startedAt);
    if (record.status !== "running") {
      try {
        finish(view, await api(`/api/executions/${id}`));
      } catch (e) {
        say(e.message, true);
      }
      return;
    }
    scheduleRender();
    const wait = Math.min(POLL_MAX_MS, Math.max(LOG_POLL_MS, (performance.now() - asked) * POLL_SHARE));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function finish(view, result) {
  if (state.view !== view || (view.finished && view.result)) return;
  applyResult(view, result);
  view.progress = result.status === "completed" ? 1 : view.progress;
  $("#cancel").disabled = true;
  $("#execute").disabled = !state.flow;
  showOutputs(result);
  drawTimeline(view);
  enableScrubber(view);
  upsertRun({ executionId: view.executionId, flowId: view.flowId, status: result.status, startedAt: result.startedAt, durationMs: result.durationMs });
  say(`execution ${result.status}${result.durationMs != null ? " in " + fmtMs(result.durationMs) : ""}`,
      result.status !== "completed");
  if (view.graphSource !== "stored flow" && view.executionId) loadGraph(view, { fromRun: true });
  renderAll(view);
}

function showOutputs(result) {
  const out = $("#outputs");
  out.innerHTML = "";
  out.append(valueView(result.outputs || {}));
  out.classList.remove("muted");
  const errBox = $("#error");
  errBox.hidden = !result.error;
  if (result.error) {
    const where = result.error.path || result.error.nodeId;
    errBox.textContent = `${result.error.code}: ${where ? "node " + where + ": " : ""}${result.error.message}${result.error.hint ? "\nhint: " + result.error.hint : ""}`;
  }
}

// -- a run, as recorded ----------------------------------------------------------------------------
async function openPast(executionId, flowId) {
  const view = newView("past", { executionId, flowId });
  show(view);
  try {
    const id = encodeURIComponent(executionId);
    const [result, log] = await Promise.all([
      api(`/api/executions/${id}`),
      api(`/api/runs/${id}/events`).catch(() => ({ events: [] })),
    ]);
    if (state.view !== view) return;
    view.flowId = result.flowId || flowId;
    syncStats(view.flowId);
    await loadGraph(view);
    if (state.view !== view) return;
    for (const ev of log.events || []) applyEvent(view, ev);
    applyResult(view, result);
    showOutputs(result);
    drawTimeline(view);
    enableScrubber(view);
    renderAll(view);
    say(`run ${executionId.slice(0, 12)}: ${result.status}`);
  } catch (e) {
    say(e.message, true);
  }
}

function openRun(executionId) {
  const run = state.runs.get(executionId);
  if (!run) return;
  if (run.status === "running") openLive(executionId, run.flowId);
  else openPast(executionId, run.flowId);
}

// -- replay ------------------------------------------------------------------------------------------
function enableScrubber(view) {
  if (view.t0 == null || view.t1 == null) return;
  $("#scrubber").hidden = false;
  $("#scrub").value = "1000";
  view.at = null;
  $("#scrub-time").textContent = `end (${fmtMs(view.t1 - view.t0)})`;
}

function scrubTo(value) {
  const view = state.view;
  if (!view || view.t0 == null || view.t1 == null) return;
  const fraction = Number(value) / 1000;
  view.at = fraction >= 1 ? null : view.t0 + fraction * (view.t1 - view.t0);
  $("#scrub-time").textContent = view.at == null ? `end (${fmtMs(view.t1 - view.t0)})` : `+${fmtMs(view.at - view.t0)}`;
  const cursor = $("#timeline svg .cursor");
  if (cursor) {
    const x = Number(cursor.dataset.x0) + fraction * Number(cursor.dataset.w);
    cursor.setAttribute("x1", x);
    cursor.setAttribute("x2", x);
    cursor.style.display = view.at == null ? "none" : "";
  }
  renderAll(view);
}

function stopPlaying() {
  if (state.playing) cancelAnimationFrame(state.playing);
  state.playing = null;
  $("#play").textContent = "▶";
}

function play() {
  if (state.playing) {
    stopPlaying();
    return;
  }
  const slider = $("#scrub");
  const from = Number(slider.value) >= 1000 ? 0 : Number(slider.value);
  const started = performance.now();
  const length = 4000 * (1 - from / 1000);
  $("#play").textContent = "❚❚";
  const step = (now) => {
    const value = Math.min(1000, from + ((now - started) / length) * (1000 - from));
    slider.value = String(Math.round(value));
    scrubTo(slider.value);
    if (value < 1000) state.playing = requestAnimationFrame(step);
    else stopPlaying();
  };
  state.playing = requestAnimationFrame(step);
}

// -- the timeline (an SVG Gantt chart) ---------------------------------------------------------
function drawTimeline(view) {
  const bars = [];
  for (const node of view.nodes.values()) {
    if (node.startedAt == null) continue;
    const end = node.durationMs != null ? node.startedAt + node.durationMs : node.endedAt ?? node.startedAt;
    bars.push({ path: node.path, start: node.startedAt, end, status: node.status });
  }
  const box = $("#timeline");
  if (!bars.length) {
    box.innerHTML = '<span class="muted">No node ran.</span>';
    return;
  }
  const t0 = Math.min(view.t0 ?? Infinity, ...bars.map((b) => b.start));
  const t1 = Math.max(view.t1 ?? -Infinity, ...bars.map((b) => b.end), t0 + 1);
  const span = t1 - t0;
  const labelW = Math.min(240, 24 + 7 * Math.max(...bars.map((b) => b.path.length)));
  const width = 760, rowH = 22, top = 22, plotW = width - labelW - 16;
  const height = top + bars.length * rowH + 8;
  const x = (t) => labelW + ((t - t0) / span) * plotW;
  const svg = svgEl(null, "svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "node timeline" });
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (span * i) / 4;
    svgEl(svg, "line", { x1: x(t), x2: x(t), y1: top - 4, y2: height - 4, class: "axis" });
    svgEl(svg, "text", { x: x(t), y: 12, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" },
       fmtMs(t - t0) || "0 ms");
  }
  bars.sort((a, b) => a.start - b.start);
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    svgEl(svg, "text", { x: 4, y: y + 15 }, clip(b.path, labelW - 8));
    const w = Math.max(2, x(b.end) - x(b.start));
    const rect = svgEl(svg, "rect", { x: x(b.start), y: y + 4, width: w, height: rowH - 8, rx: 3,
      class: `gantt-bar gantt-${b.status}`, "data-path": b.path });
    svgEl(rect, "title", {}, `${b.path}: ${b.status}, ${fmtMs(b.end - b.start)}`);
    rect.addEventListener("click", () => select(templateOf(view, b.path), b.path));
  });
  // the replayed moment; the run's own span maps onto the slider
  const runStart = view.t0 ?? t0;
  const runEnd = view.t1 ?? t1;
  svgEl(svg, "line", { class: "cursor", x1: x(runStart), x2: x(runStart), y1: top - 6, y2: height - 2,
    "data-x0": x(runStart), "data-w": x(runEnd) - x(runStart), style: "display:none" });
  box.innerHTML = "";
  box.append(svg);
}

// -- debugging -------------------------------------------------------------------------------------
// Breakpoints and faults are set on the page per flow (its plan), sent with Execute; during a
// debugged run the breakpoints shown are the run's (GET .../debug), and a change is POSTed.
function planOf(flowId) {
  let plan = state.plans.get(flowId);
  if (!plan) {
    plan = { marks: new Map(), injects: new Map() };
    state.plans.set(flowId, plan);
  }
  return plan;
}

// The breakpoint name the engine matches for a box: its template path when its containers
// are groups (a group's child runs as "group/child"), with a wildcard for each label a loop or
// a parallel gives its children's runs otherwise ("each/*/double").
function breakpointName(view, template) {
  const box = view.boxes.get(template);
  if (!box) return template;
  const parts = [box.id];
  let parent = box.parent ? view.boxes.get(box.parent) : null;
  while (parent) {
    if (LABELLED.has(parent.type)) parts.unshift("*");
    parts.unshift(parent.id);
    parent = parent.parent ? view.boxes.get(parent.parent) : null;
  }
  return parts.join("/");
}

// The name an injection is given for a box: as the engine looks it up (the path, else the id).
function injectionName(view, template) {
  const name = breakpointName(view, template);
  return name.includes("*") ? view.boxes.get(template).id : name;
}

const globs = new Map();

// A shell-style pattern as the engine's fnmatch reads it ("*" also crosses "/").
function globRegex(pattern) {
  let re = globs.get(pattern);
  if (re) return re;
  let text = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") text += ".*";
    else if (c === "?") text += ".";
    else if (c === "[" && pattern.indexOf("]", i + 2) > 0) {
      const end = pattern.indexOf("]", i + 2);
      let body = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
      if (body[0] === "!") body = "^" + body.slice(1);
      text += `[${body}]`;
      i = end;
    } else {
      text += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
  }
  try {
    re = new RegExp(`^${text}$`);
  } catch (e) {
    re = /$^/;
  }
  globs.set(pattern, re);
  return re;
}

// Whether the breakpoint `bp` stops the box's node (any run of it).
function hits(view, bp, template) {
  const box = view.boxes.get(template);
  if (!box) return false;
  if (bp === box.id || bp === template) return true;
  const instance = breakpointName(view, template).split("/").map((p) => (p === "*" ? "iteration 0" : p)).join("/");
  return globRegex(bp).test(instance) || globRegex(bp).test(template);
}

function liveDebug(view) {
  return !!view && view.kind === "live" && !view.finished && !!view.debug;
}

function isMarked(view, template) {
  if (!view || !template) return false;
  if (liveDebug(view)) return (view.debug.breakpoints || []).some((bp) => hits(view, bp, template));
  return !!view.flowId && planOf(view.flowId).marks.has(template);
}

async function toggleBreakpoint(template) {
  const view = state.view;
  if (!view || !view.flowId || !view.boxes.has(template)) return;
  const on = !isMarked(view, template);
  const plan = planOf(view.flowId);
  if (on) plan.marks.set(template, breakpointName(view, template));
  else plan.marks.delete(template);
  renderPlan();
  if (!liveDebug(view)) {
    renderAll(view);
    return;
  }
  const current = view.debug.breakpoints || [];
  const names = on ? [...new Set([...current, breakpointName(view, template)])] : current.filter((bp) => !hits(view, bp, template));
  view.debug = Object.assign({}, view.debug, { breakpoints: names });
  renderAll(view);
  try {
    const data = await api(`/api/executions/${encodeURIComponent(view.executionId)}/debug`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ breakpoints: names }),
    });
    applyDebug(view, data);
    say(on ? `breakpoint on ${template}` : `no breakpoint on ${template}`);
  } catch (e) {
    say(e.message, true);
    refreshDebug(view);
  }
}

function planInjection(flowId, template) {
  const found = flowId ? planOf(flowId).injects.get(template) : null;
  return found ? found.value : null;
}

function setInjection(view, template, value, quiet = false) {
  const plan = planOf(view.flowId);
  if (value) plan.injects.set(template, { name: injectionName(view, template), value });
  else plan.injects.delete(template);
  renderPlan();
  if (!quiet) renderAll(view);
}

// What is injected into an instance: as its result says, as the running run was started with,
// or (a flow not run) as the page will send.
function injectionAt(view, path) {
  const node = view.nodes.get(path);
  if (node && node.injected) return node.injected;
  if (view.kind === "live" && !view.finished && view.debug && view.debug.inject) {
    return view.debug.inject[path] || (node ? view.debug.inject[node.nodeId] : null) || null;
  }
  if (view.kind === "flow") {
    const template = templateOf(view, path);
    return template ? planInjection(view.flowId, template) : null;
  }
  return null;
}

function boxInjection(view, template) {
  for (const path of view.byTemplate.get(template) || []) {
    const node = view.nodes.get(path);
    if (node && node.injected) return node.injected;
  }
  const box = view.boxes.get(template);
  if (view.kind === "live" && !view.finished && view.debug && view.debug.inject && box) {
    return view.debug.inject[injectionName(view, template)] || view.debug.inject[box.id] || null;
  }
  if (view.kind === "flow") return planInjection(view.flowId, template);
  return null;
}

// The inspector's part for debugging: the node's breakpoint and the fault to inject into it.
function debugSection(body, view, template) {
  const part = section(body, "debug", "Debug");
  const live = view.kind === "live" && !view.finished;
  const label = document.createElement("label");
  label.className = "check";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = "insp-breakpoint";
  box.checked = isMarked(view, template);
  box.addEventListener("change", () => toggleBreakpoint(template));
  const later = live && !view.debug;
  label.append(box, document.createTextNode(later ? " breakpoint (for the next run: this one is not debugged)" : " breakpoint: pause before it runs"));
  part.append(label);

  const row = document.createElement("div");
  row.className = "row inject";
  const pick = document.createElement("select");
  pick.id = "insp-inject";
  pick.setAttribute("aria-label", "fault to inject");
  pick.append(new Option("inject: none", ""));
  for (const kind of INJECTIONS) pick.append(new Option(kind === "delay" ? "inject: delay (ms)" : `inject: ${kind}`, kind));
  const ms = document.createElement("input");
  ms.type = "number";
  ms.min = "0";
  ms.step = "100";
  ms.id = "insp-delay";
  ms.setAttribute("aria-label", "delay, milliseconds");
  const current = live ? boxInjection(view, template) : planInjection(view.flowId, template);
  const delay = current && current.startsWith("delay:") ? current.slice(6) : null;
  pick.value = delay != null ? "delay" : current || "";
  ms.value = delay != null ? delay : "500";
  ms.hidden = pick.value !== "delay";
  pick.disabled = ms.disabled = live || !view.flowId;
  if (live) pick.title = "faults are injected when a run starts: set them before Execute";
  const value = () => (pick.value === "delay" ? `delay:${Math.max(0, Number(ms.value) || 0)}` : pick.value || null);
  pick.addEventListener("change", () => setInjection(view, template, value()));
  ms.addEventListener("input", () => setInjection(view, template, value(), true));
  ms.addEventListener("change", () => setInjection(view, template, value()));
  row.append(pick, ms);
  part.append(row);
  if (!live && view.kind !== "flow" && view.flowId) {
    part.append(Object.assign(document.createElement("p"), { className: "muted", textContent: `set for the next run of ${view.flowId}` }));
  }
}

// A debug state (GET or POST .../debug) applied: the breakpoints, and the paused nodes with
// why they paused and their inputs. The events stay the word on what a node does: a node the
// state says is paused is shown so only while no event said it started.
function applyDebug(view, data) {
  if (state.view !== view || view.finished || !data) return;
  view.debug = data;
  for (const p of data.paused || []) {
    const node = nodeOf(view, p.path, p.nodeId, p.nodeType);
    if (node.status !== "pending" && node.status !== "paused") continue;
    if (node.status === "pending") {
      node.status = "paused";
      node.pausedAt = p.since != null ? p.since * 1000 : Date.now();
      node.message = "paused before it runs";
      change(view, node, node.pausedAt, "paused", null, node.message);
    }
    node.pauseReason = p.reason || node.pauseReason;
    if (p.inputs !== undefined) node.inputs = p.inputs;
  }
  renderAll(view);
}

async function refreshDebug(view) {
  if (!view || !view.executionId || view.finished) return;
  try {
    applyDebug(view, await api(`/api/executions/${encodeURIComponent(view.executionId)}/debug`));
  } catch (e) {
    if (state.view !== view || view.finished) return;
    if (e.status === 409) {
      if (view.debug === undefined) view.debug = null; // started without debugging (or just over)
      renderDebugBar(view);
    } else if (e.status !== 404) {
      say(e.message, true);
    }
  }
}

function pausedNodes(view) {
  return [...view.nodes.values()].filter((n) => n.status === "paused").sort((a, b) => (a.pausedAt ?? 0) - (b.pausedAt ?? 0));
}

function renderDebugBar(view) {
  const bar = $("#debug-bar");
  const on = !!view && view.kind === "live" && !!view.debug;
  bar.hidden = !on;
  if (!on) {
    bar.dataset.state = "idle";
    return;
  }
  const paused = view.finished ? [] : pausedNodes(view);
  const first = paused[0];
  let kind;
  let what;
  if (view.finished) [kind, what] = ["ended", `the run ended: ${view.status}`];
  else if (first) [kind, what] = ["paused", "❚❚ paused before"];
  else if (view.debug.halted) [kind, what] = ["stepping", "stepping: it pauses before the next node"];
  else [kind, what] = ["running", "running on to the next breakpoint"];
  bar.dataset.state = kind;
  $("#debug-what").textContent = what;
  const where = $("#debug-node");
  where.textContent = first ? first.path : "";
  where.hidden = !first;
  const reason = $("#debug-reason");
  reason.textContent = first ? first.pauseReason || "…" : "";
  reason.dataset.reason = first ? first.pauseReason || "" : "";
  reason.hidden = !first;
  const info = [];
  if (paused.length > 1) info.push(`${paused.length - 1} more waiting`);
  if (first && first.inputs && typeof first.inputs === "object") info.push(`inputs: ${describePorts(first.inputs) || "none"}`);
  const points = view.debug.breakpoints || [];
  info.push(points.length ? `breakpoints: ${points.join(", ")}` : "no breakpoints");
  const inject = Object.entries(view.debug.inject || {});
  if (inject.length) info.push(`inject: ${inject.map(([k, v]) => `${k}=${v}`).join(", ")}`);
  if (view.debug.slowMo) info.push(`slow motion ${fmtMs(view.debug.slowMo)}`);
  $("#debug-info").textContent = info.join(" · ");
  for (const id of ["#debug-step", "#debug-continue", "#debug-abort"]) $(id).disabled = view.finished;
}

async function debugAction(action) {
  const view = state.view;
  if (!liveDebug(view)) return;
  say(action === "abort" ? "aborting…" : action === "step" ? "stepping one node…" : "continuing…");
  try {
    const data = await api(`/api/executions/${encodeURIComponent(view.executionId)}/debug`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action }),
    });
    applyDebug(view, data);
  } catch (e) {
    say(e.message, true);
  }
}

// What Execute sends to debug the run: the flow's marked breakpoints and faults, the page's
// "step from the start" and slow motion.
function debugOptions(flowId) {
  const plan = planOf(flowId);
  const options = {};
  if (plan.marks.size) options.breakpoints = [...new Set(plan.marks.values())];
  if ($("#step-start").checked) options.step = true;
  if (plan.injects.size) options.inject = Object.fromEntries([...plan.injects.values()].map((x) => [x.name, x.value]));
  const text = $("#slow-mo").value.trim();
  if (text) {
    const ms = Number(text);
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`slow motion must be milliseconds, 0 or more (not ${text})`);
    if (ms > 0) options.slowMo = ms;
  }
  return options;
}

function renderPlan() {
  const note = $("#debug-plan");
  const plan = state.flow ? state.plans.get(state.flow.id) : null;
  const marks = plan ? [...plan.marks.keys()] : [];
  const injects = plan ? [...plan.injects.entries()] : [];
  const any = marks.length + injects.length > 0;
  $("#debug-clear").hidden = !any;
  note.classList.toggle("muted", !any);
  if (!any) {
    note.textContent = "Breakpoints: click a node's dot in the graph. Faults: inject one in the node's inspector.";
    return;
  }
  const parts = [];
  if (marks.length) parts.push(`breakpoints: ${marks.join(", ")}`);
  if (injects.length) parts.push(`inject: ${injects.map(([t, x]) => `${t}=${x.value}`).join(", ")}`);
  note.textContent = parts.join(" · ");
}

function clearPlan() {
  if (state.flow) state.plans.delete(state.flow.id);
  renderPlan();
  if (state.view) renderAll(state.view);
}

// -- statistics ------------------------------------------------------------------------------------
// The flow on show (its graph's) over its last runs, from GET /api/flows/{id}/stats: the runs'
// counts and p50 / p95, a table of its nodes (sortable; by the flow at first) and, with the
// graph's "stats" ticked, each box's p95 and failure rate on a label coloured by how slow it is.
// Read again when the flow on show changes, when "last" changes, and when a run of it ends.

//: The table's columns: the figure each sorts by (a node without it goes last either way).
const STAT_SORTS = {
  flow: null, // the flow's order: see flowRank
  type: (n) => n.nodeType || "",
  runs: (n) => n.runs,
  p50: (n) => n.p50Ms,
  p95: (n) => n.p95Ms,
  failure: (n) => n.failureRate,
  attempts: (n) => n.meanAttempts,
  cached: (n) => n.cached,
  skipped: (n) => n.skipped,
};

function fmtRate(rate) {
  if (rate == null) return "—";
  const percent = rate * 100;
  if (percent === 0 || percent === 100) return `${percent}%`;
  if (percent < 1) return `${percent.toFixed(1)}%`;
  return `${Math.round(percent)}%`;
}

function syncStats(flowId) {
  if ((flowId || null) !== state.stats.flowId) loadStats(flowId || null);
}

function scheduleStats() {
  clearTimeout(state.stats.timer);
  state.stats.timer = setTimeout(() => loadStats(state.stats.flowId), 150);
}

async function loadStats(flowId) {
  const st = state.stats;
  clearTimeout(st.timer);
  if (st.flowId !== flowId) {
    st.data = null;
    st.error = null;
  }
  st.flowId = flowId;
  const seq = ++st.seq;
  if (!flowId) {
    renderStats();
    return;
  }
  $("#stats-card").dataset.loading = "1";
  try {
    const data = await api(`/api/flows/${encodeURIComponent(flowId)}/stats?last=${st.last}`);
    if (seq !== st.seq) return;
    st.data = data;
    st.error = null;
  } catch (e) {
    if (seq !== st.seq) return;
    st.data = null;
    st.error = e;
  }
  delete $("#stats-card").dataset.loading;
  renderStats();
}

// A node's place in the flow's order: its box's in the graph (a container before its
// children), or, for one the graph does not draw (in a collapsed container, or no longer in
// the flow), right after its nearest ancestor that it draws; the API's order breaks ties.
function flowRank(order, place, index) {
  let at = place;
  while (at) {
    if (order.has(at)) return [order.get(at), at === place ? 0 : 1, index];
    at = at.includes("/") ? at.slice(0, at.lastIndexOf("/")) : "";
  }
  return [Infinity, 1, index];
}

function sortedStats(nodes) {
  const { key, dir } = state.stats.sort;
  const view = state.view;
  const graph = view && view.graph && view.flowId === state.stats.flowId ? view.graph : null;
  const order = new Map(graph ? graph.nodes.map((n, i) => [n.path, i]) : []);
  const rows = nodes.map((n, i) => ({ n, i, rank: flowRank(order, n.node, i) }));
  const get = STAT_SORTS[key];
  rows.sort((a, b) => {
    if (get) {
      const x = get(a.n);
      const y = get(b.n);
      if (x == null || y == null) {
        if (x != null) return -1; // no figure: last, whichever way
        if (y != null) return 1;
      } else if (x !== y) {
        return (x < y ? -1 : 1) * dir;
      }
    }
    for (let k = 0; k < 3; k++) {
      if (a.rank[k] !== b.rank[k]) return (a.rank[k] < b.rank[k] ? -1 : 1) * (get ? 1 : dir);
    }
    return 0;
  });
  return rows.map((r) => r.n);
}

function statCell(tr, text, cls = "", title = "") {
  const td = document.createElement("td");
  td.className = cls;
  td.textContent = text;
  if (title) td.title = title;
  tr.append(td);
  return td;
}

function renderStats() {
  const st = state.stats;
  const summary = $("#stats-summary");
  const table = $("#stats-nodes");
  const body = table.querySelector("tbody");
  $("#stats-title").textContent = st.flowId || "";
  $("#stats-last").value = String(st.last);
  summary.innerHTML = "";
  body.innerHTML = "";
  const data = st.data && st.data.flowId === st.flowId ? st.data : null;
  table.hidden = !data || !data.nodes.length;
  for (const th of table.querySelectorAll("th[data-sort]")) {
    const on = th.dataset.sort === st.sort.key;
    if (on) th.setAttribute("aria-sort", st.sort.dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  const note = (text, bad = false) => {
    const p = document.createElement("p");
    p.className = bad ? "message bad" : "muted";
    p.textContent = text;
    summary.append(p);
  };
  if (!st.flowId) note("Pick a flow, or open a run.");
  else if (st.error) note(st.error.status === 404 ? `No statistics: ${st.flowId} is not stored and has no runs.` : st.error.message, st.error.status !== 404);
  else if (!data) note("reading…");
  if (data) {
    const figures = document.createElement("dl");
    figures.className = "facts stats-figures";
    const fact = (name, label, value, title = "") => {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.className = "num";
      dd.dataset.fact = name;
      dd.textContent = value;
      if (title) dd.title = title;
      figures.append(dt, dd);
    };
    fact("runs", "runs", `${numberFormat.format(data.runs)} (of the last ${numberFormat.format(data.last)} asked)`);
    fact("finished", "finished", numberFormat.format(data.finished) + (data.unfinished ? ` (${numberFormat.format(data.unfinished)} unfinished, not counted)` : ""),
      "completed, failed or cancelled: what the figures are over (running or interrupted runs are not)");
    fact("p50", "run p50", data.p50Ms != null ? fmtMs(data.p50Ms) : "—", "median run duration (nearest rank)");
    fact("p95", "run p95", data.p95Ms != null ? fmtMs(data.p95Ms) : "—", "95th percentile run duration (nearest rank)");
    if (data.since) fact("span", "started", data.since === data.until ? fmtWhen(isoMs(data.since)) : `${fmtWhen(isoMs(data.since))} to ${fmtWhen(isoMs(data.until))}`);
    summary.append(figures);
    const statuses = document.createElement("div");
    statuses.className = "stats-statuses";
    for (const [status, count] of Object.entries(data.statuses || {})) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = status;
      badge.textContent = `${numberFormat.format(count)} ${status}`;
      statuses.append(badge);
    }
    summary.append(statuses);
    if (!data.runs) note(`${data.flowId} has no runs yet.`);
  }
  for (const n of data ? sortedStats(data.nodes) : []) {
    const tr = document.createElement("tr");
    tr.dataset.node = n.node;
    const known = state.view && state.view.flowId === st.flowId && state.view.boxes.has(n.node);
    tr.classList.toggle("gone", !!state.view && !!state.view.graph && state.view.flowId === st.flowId && !known);
    tr.classList.toggle("selected", !!state.selected && state.selected.template === n.node);
    statCell(tr, n.node, "path", known || !state.view || !state.view.graph ? n.node : `${n.node}: not in the flow drawn`);
    statCell(tr, n.nodeType, "type muted");
    statCell(tr, numberFormat.format(n.runs), "num ran-in", `ran ${n.ran} time(s) in ${n.runs} run(s)`);
    statCell(tr, n.p50Ms != null ? fmtMs(n.p50Ms) : "—", "num p50");
    statCell(tr, n.p95Ms != null ? fmtMs(n.p95Ms) : "—", "num p95");
    const rate = statCell(tr, fmtRate(n.failureRate), "num failure", n.ran ? `${n.failed} of ${n.ran} failed` : "never ran");
    rate.classList.toggle("bad", !!n.failureRate);
    statCell(tr, n.meanAttempts != null ? n.meanAttempts.toFixed(2).replace(/\.?0+$/, "") : "—", "num attempts");
    statCell(tr, n.cached ? numberFormat.format(n.cached) : "", "num cached");
    statCell(tr, n.skipped ? numberFormat.format(n.skipped) : "", "num skipped");
    tr.tabIndex = 0;
    const open = () => {
      if (state.view && state.view.boxes.has(n.node)) select(n.node, null);
    };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    body.append(tr);
  }
  renderOverlay();
}

// Slower is redder: a label's colour from its p95 over the slowest leaf's (0 to 1).
function heatColour(heat) {
  const h = Math.max(0, Math.min(1, heat));
  return `hsl(${Math.round(55 - 55 * h)}, ${Math.round(90 - 10 * h)}%, ${Math.round(88 - 16 * h)}%)`;
}

function renderOverlay() {
  const svg = $("#graph svg");
  const key = $("#stats-key");
  if (svg) for (const old of svg.querySelectorAll(".gnode > .stat")) old.remove();
  const view = state.view;
  const st = state.stats;
  const data = st.data && st.data.flowId === st.flowId ? st.data : null;
  const on = $("#stats-overlay").checked && !!svg && !!view && !!view.graph && view.flowId === st.flowId && !!data;
  if (svg) svg.classList.toggle("with-stats", on);
  key.hidden = !$("#stats-overlay").checked;
  if (!on) {
    key.textContent = !view || !view.graph ? "" : !data ? "stats: none to show yet" : "";
    return;
  }
  const byPlace = new Map(data.nodes.map((n) => [n.node, n]));
  let slowest = 0;
  for (const n of data.nodes) {
    const box = view.boxes.get(n.node);
    if (box && !box.container && n.p95Ms != null) slowest = Math.max(slowest, n.p95Ms);
  }
  key.textContent = `stats on the graph: each node's p95 over the last ${numberFormat.format(data.finished)} finished run(s)` +
    ` and ✗ its failure rate; slower is redder (the slowest node is ${fmtMs(slowest) || "—"})`;
  for (const g of svg.querySelectorAll(".gnode")) {
    const box = view.boxes.get(g.dataset.path);
    const n = byPlace.get(g.dataset.path);
    if (!box || !n) continue;
    let text;
    if (n.ran) text = `p95 ${fmtMs(n.p95Ms)}${n.failureRate ? ` · ✗ ${fmtRate(n.failureRate)}` : ""}`;
    else if (n.cached) text = `cached ×${n.cached}`;
    else if (n.skipped) text = `skipped ×${n.skipped}`;
    else text = "not run";
    const heat = n.p95Ms != null && slowest > 0 ? Math.min(1, n.p95Ms / slowest) : 0;
    const w = Math.min(box.w - 8, 12 + text.length * 6.2);
    const tag = svgEl(g, "g", {
      class: "stat" + (n.failureRate ? " failing" : ""), "data-p95": n.p95Ms ?? "", "data-failure-rate": n.failureRate ?? "",
      "data-heat": heat.toFixed(3),
    });
    svgEl(tag, "title", {}, `${n.node}: p50 ${fmtMs(n.p50Ms) || "—"}, p95 ${fmtMs(n.p95Ms) || "—"}, ` +
      `failure rate ${fmtRate(n.failureRate)} (ran ${n.ran} time(s) in ${n.runs} of the last runs)`);
    svgEl(tag, "rect", { x: box.x + box.w / 2 - w / 2, y: box.y + box.h - 7, width: w, height: 14, rx: 7, style: `fill: ${heatColour(heat)}` });
    svgEl(tag, "text", { x: box.x + box.w / 2, y: box.y + box.h + 3.5, "text-anchor": "middle" }, clip(text, w - 8, 6.2));
  }
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
  let debug;
  try {
    debug = debugOptions(state.flow.id);
  } catch (e) {
    say(e.message, true);
    return;
  }
  $("#execute").disabled = true;
  state.starting = true;
  try {
    const started = await api("/api/executions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ flowId: state.flow.id, inputs }, debug)),
    });
    state.starting = false;
    say(Object.keys(debug).length ? "running, debugged…" : "running…");
    await openLive(started.executionId, state.flow.id);
  } catch (e) {
    state.starting = false;
    $("#execute").disabled = false;
    say(e.message, true);
  }
}

async function cancel() {
  const view = state.view;
  if (!view || !view.executionId) return;
  try {
    await api(`/api/executions/${encodeURIComponent(view.executionId)}/cancel`, { method: "POST" });
    say("cancelling…");
  } catch (e) {
    say(e.message, true);
  }
}

// -- every run -----------------------------------------------------------------------------------
function filters() {
  return { flowId: $("#filter-flow").value, status: $("#filter-status").value };
}

function fillFlowFilter() {
  const select = $("#filter-flow");
  const picked = select.value;
  const have = new Set([...select.options].map((o) => o.value));
  for (const id of [...state.flowIds].sort()) {
    if (!have.has(id)) select.append(new Option(id, id));
  }
  select.value = picked;
}

// The run list from storage: at connect and when a filter changes (`first`), and every
// RUNS_POLL_MS after, so runs another process writes to the same storage (`atomiton run
// --storage`) appear, go on and end on the list as their records say. A poll's new running run
// is followed (shown) like one the event stream announces.
async function loadRuns({ first = false } = {}) {
  const { flowId, status } = filters();
  const params = new URLSearchParams({ limit: "200" });
  if (flowId) params.set("flowId", flowId);
  if (status) params.set("status", status);
  const seq = ++state.runsSeq;
  let runs;
  let note = "";
  try {
    runs = (await api(`/api/runs?${params}`)).runs;
  } catch (e) {
    if (seq !== state.runsSeq) return;
    if (e.status === 401) state.connected = false;
    if (e.code !== "NO_STORAGE") {
      $("#runs-note").textContent = e.message;
      return;
    }
    try {
      runs = (await api("/api/executions")).executions.filter(
        (r) => (!flowId || r.flowId === flowId) && (!status || r.status === status));
    } catch (e2) {
      if (seq === state.runsSeq) $("#runs-note").textContent = e2.message;
      return;
    }
    note = "no storage: only this server's executions are listed";
  }
  if (seq !== state.runsSeq) return; // a newer list was asked for meanwhile
  const listed = new Set(runs.map((r) => r.executionId));
  for (const [id, run] of state.runs) {
    // deleted, or out of the filters: off the list; this server's running runs stay
    if (listed.has(id) || (run.live && run.status === "running" && passes(run))) continue;
    state.runs.delete(id);
    const li = $("#runs").querySelector(`li[data-id="${CSS.escape(id)}"]`);
    if (li) li.remove();
  }
  for (const r of [...runs].reverse()) {
    const old = state.runs.get(r.executionId);
    if (old && RUN_ENDED.has(old.status) && r.status === "running") continue; // read before it ended
    upsertRun(r);
    if (old || first) continue;
    if (r.status === "running") followNew(r.executionId, r.flowId);
    else runEnded(r); // started and ended between two reads
  }
  $("#runs-note").textContent = note || (state.runs.size ? "" : "no runs match");
  markSelectedRun();
}

function scheduleRunsPoll(wait = RUNS_POLL_MS) {
  clearTimeout(state.runsTimer);
  state.runsTimer = setTimeout(pollRuns, wait);
}

async function pollRuns() {
  if (!state.connected) return;
  const asked = performance.now();
  if (!document.hidden) await loadRuns();
  const took = performance.now() - asked;
  if (state.connected) scheduleRunsPoll(Math.min(POLL_MAX_MS, Math.max(RUNS_POLL_MS, took * POLL_SHARE)));
}

// A run that has just started, wherever: shown at once with "follow new runs", unless this
// page is starting one or a live run is on show.
function followNew(executionId, flowId) {
  const view = state.view;
  const busy = view && view.kind === "live" && !view.finished;
  if ($("#follow").checked && !state.starting && !busy) openLive(executionId, flowId);
}

// A run ended: the statistics of its flow, if on show, are read again.
function runEnded(run) {
  if (run.flowId && run.flowId === state.stats.flowId) scheduleStats();
}

function passes(run) {
  const { flowId, status } = filters();
  return (!flowId || run.flowId === flowId) && (!status || run.status === status);
}

function upsertRun(update) {
  const old = state.runs.get(update.executionId) || {};
  const run = Object.assign({}, old, Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined)));
  state.runs.set(run.executionId, run);
  if (old.status === "running" && RUN_ENDED.has(run.status)) runEnded(run);
  if (run.flowId && !state.flowIds.has(run.flowId)) {
    state.flowIds.add(run.flowId);
    fillFlowFilter();
  }
  let li = $("#runs").querySelector(`li[data-id="${CSS.escape(run.executionId)}"]`);
  if (!passes(run)) {
    if (li) li.remove();
    return;
  }
  if (!li) {
    li = document.createElement("li");
    li.className = "run";
    li.dataset.id = run.executionId;
    li.tabIndex = 0;
    li.innerHTML = '<span class="badge"></span><span class="flow"></span><span class="when num"></span>' +
      '<span class="took num"></span><span class="rid muted"></span><span class="trig-mark" hidden></span>' +
      '<div class="bar"><div></div></div>';
    li.addEventListener("click", () => openRun(run.executionId));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") openRun(run.executionId); });
    // newest first, by start: a run found late (another process's) goes where it belongs
    const t = isoMs(run.startedAt || run.createdAt) ?? Date.now();
    li.dataset.t = String(t);
    const list = $("#runs");
    const after = [...list.children].find((other) => Number(other.dataset.t) <= t) || null;
    list.insertBefore(li, after);
    $("#runs-note").textContent = "";
  }
  li.dataset.status = run.status;
  li.dataset.flow = run.flowId || "";
  const badge = li.querySelector(".badge");
  const shownStatus = run.status === "running" && run.paused ? "paused" : run.status;
  badge.dataset.status = shownStatus;
  badge.textContent = shownStatus;
  li.querySelector(".flow").textContent = run.flowId || "";
  li.querySelector(".when").textContent = fmtWhen(isoMs(run.startedAt || run.createdAt));
  li.querySelector(".took").textContent = run.durationMs != null ? fmtMs(run.durationMs) : run.status === "running" ? "…" : "";
  li.querySelector(".rid").textContent = run.executionId.slice(0, 8);
  const trigger = runTrigger(run);
  fillTriggerMark(li.querySelector(".trig-mark"), trigger);
  if (trigger) {
    li.dataset.trigger = `${trigger.flowId}/${trigger.id}`;
    li.dataset.triggerType = trigger.manual ? "manual" : trigger.type;
  } else {
    delete li.dataset.trigger;
    delete li.dataset.triggerType;
  }
  li.title = `${run.executionId}${trigger ? "\n" + firingText(trigger) : ""}${run.error ? "\n" + run.error : ""}`;
  if (state.view && state.view.executionId === run.executionId) showRunTrigger(state.view);
  const bar = li.querySelector(".bar > div");
  bar.style.width = `${Math.round((run.status === "running" ? run.progress || 0 : 1) * 100)}%`;
  li.querySelector(".bar").hidden = run.status !== "running";
}

function markSelectedRun() {
  const id = state.view && state.view.executionId;
  for (const li of $("#runs").querySelectorAll("li.run")) li.classList.toggle("selected", li.dataset.id === id);
}

// Every execution's events: new runs appear as they start, wherever they were started.
function listenToAll() {
  if (state.stream && state.stream.readyState <= 1) return;
  const socket = new WebSocket(wsUrl("/api/events"));
  state.stream = socket;
  const pill = $("#stream");
  socket.onopen = () => {
    state.streamRetry = 0;
    pill.dataset.state = "ok";
    pill.textContent = "live: on";
    // back after a break: what the triggers did meanwhile came as events nobody heard
    if (state.streamOpened) loadTriggers();
    state.streamOpened = true;
  };
  socket.onmessage = (msg) => onStreamEvent(JSON.parse(msg.data));
  socket.onclose = () => {
    if (state.stream !== socket) return;
    pill.dataset.state = "bad";
    pill.textContent = "live: off";
    state.streamRetry = Math.min(10_000, (state.streamRetry || 500) * 2);
    setTimeout(() => { if (state.stream === socket) { state.stream = null; listenToAll(); } }, state.streamRetry);
  };
}

function onStreamEvent(ev) {
  if (ev.type === "trigger.updated") {
    if (ev.trigger) upsertTrigger(ev.trigger);
    return;
  }
  if (ev.type === "trigger.removed") {
    removeTrigger(`${ev.flowId}/${ev.triggerId}`);
    return;
  }
  if (ev.type === "flow.saved" || ev.type === "flow.deleted") {
    state.flowIds.add(ev.flowId);
    fillFlowFilter();
    scheduleTriggersLoad(); // its triggers come as events; whether they can be read, not
    return;
  }
  if (!ev.executionId) return;
  if (ev.type === "execution.started") {
    const started = { executionId: ev.executionId, flowId: ev.flowId, status: "running", startedAt: ev.timestamp, progress: 0, live: true };
    if (ev.trigger) started.trigger = ev.trigger; // what fired it, as the event says
    upsertRun(started);
    followNew(ev.executionId, ev.flowId);
    return;
  }
  const run = state.runs.get(ev.executionId);
  if (ev.type.startsWith("node.")) {
    if (run && ev.progress != null && ev.progress > (run.progress || 0)) upsertRun({ executionId: ev.executionId, progress: ev.progress });
    if (run && (ev.type === "node.paused" || (ev.type === "node.started" && run.paused))) {
      upsertRun({ executionId: ev.executionId, paused: ev.type === "node.paused" });
    }
    return;
  }
  if (FINAL.has(ev.type)) {
    const result = ev.result || {};
    upsertRun({
      executionId: ev.executionId, flowId: ev.flowId, status: ev.status || ev.type.split(".")[1],
      durationMs: result.durationMs, startedAt: result.startedAt, live: false, paused: false,
      error: ev.error ? ev.error.message : undefined,
    });
  }
}

// -- triggers --------------------------------------------------------------------------------------
// Every stored flow's triggers (GET /api/triggers): what fires each, its status, its next and
// last fire, its last run (a link opening it), its counts, its problem and last error, with
// Pause / Resume / Fire (POST /api/triggers/{flow}/{id}/pause|resume|fire); above them the
// flows whose triggers cannot be read. Kept live by /api/events' trigger.updated and
// trigger.removed; read again every TRIGGERS_POLL_MS, when a flow is saved or deleted and when
// the event stream comes back, for what no event says (the flows whose triggers cannot be read).

// "in 4 s", "3 min ago": how far a moment is from now.
function fmtRel(ms, now = Date.now()) {
  const d = ms - now;
  const a = Math.abs(d);
  if (a < 1000) return d >= 0 ? "in <1 s" : "<1 s ago";
  let text;
  if (a < 60_000) text = `${d >= 0 ? Math.ceil(a / 1000) : Math.floor(a / 1000)} s`;
  else if (a < 3_600_000) text = `${Math.floor(a / 60_000)} min`;
  else if (a < 86_400_000) {
    const h = Math.floor(a / 3_600_000);
    const m = Math.floor((a % 3_600_000) / 60_000);
    text = m ? `${h} h ${m} min` : `${h} h`;
  } else {
    const days = Math.floor(a / 86_400_000);
    const h = Math.floor((a % 86_400_000) / 3_600_000);
    text = h ? `${days} d ${h} h` : `${days} d`;
  }
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

// What a relative-time span says now: a next fire counts down ("due" once passed: the server
// is firing it), a last fire counts up.
function relText(span) {
  const at = Number(span.dataset.at);
  if (!Number.isFinite(at)) return "";
  const now = Date.now();
  const text = span.dataset.kind === "next" && at <= now ? "due" : fmtRel(at, now);
  return span.dataset.suffix ? `${text} ${span.dataset.suffix}` : text;
}

function setRel(span, ms, kind, suffix = "") {
  if (ms == null) {
    delete span.dataset.at;
    span.textContent = suffix;
    return;
  }
  span.dataset.at = String(ms);
  span.dataset.kind = kind;
  span.dataset.suffix = suffix;
  span.textContent = relText(span);
}

function tickTriggers() {
  for (const span of document.querySelectorAll("#triggers .rel[data-at]")) {
    const text = relText(span);
    if (span.textContent !== text) span.textContent = text;
  }
}

// The trigger that started a run: its summary's (what fired it), else the one whose state
// listed it running.
function runTrigger(run) {
  return (run && (run.trigger || state.triggerRuns.get(run.executionId))) || null;
}

function firingShort(t) {
  if (t.manual) return "fired by hand";
  if (t.type === "watch" && t.path) return String(t.path).split("/").pop();
  if (t.type === "schedule" && t.missed) return `schedule (${t.missed} missed)`;
  return t.type;
}

// What started a run, in a sentence: the trigger, and what fired it (the slot, the request,
// the file, a hand).
function firingText(t) {
  const parts = [`started by trigger ${t.flowId}/${t.id} (${t.type})`];
  if (t.manual) parts.push("fired by hand");
  if (t.scheduledFor) parts.push(`its slot of ${fmtWhen(isoMs(t.scheduledFor))}`);
  if (t.missed) parts.push(`once for ${t.missed} slot(s) missed while the server was down`);
  if (t.type === "webhook" && t.path && !t.manual) {
    parts.push(`${t.method || ""} /api/hooks/${t.path}${t.remote ? " from " + t.remote : ""}`.trim());
  }
  if (t.type === "watch" && t.path) parts.push(`${t.change || "new"}: ${t.path}`);
  if (t.firedAt) parts.push(`fired at ${fmtWhen(isoMs(t.firedAt))}`);
  return parts.join(", ");
}

function fillTriggerMark(el, trigger) {
  el.hidden = !trigger;
  if (!trigger) {
    el.textContent = "";
    el.removeAttribute("title");
    return;
  }
  el.textContent = `⚑ ${trigger.id} · ${firingShort(trigger)}`;
  el.title = firingText(trigger);
}

// The execution card's mark: what trigger started the run on show.
function showRunTrigger(view) {
  const el = $("#exec-trigger");
  const id = view && view.executionId;
  const trigger = id ? runTrigger(state.runs.get(id)) || state.triggerRuns.get(id) || null : null;
  fillTriggerMark(el, trigger);
  if (trigger) el.dataset.trigger = `${trigger.flowId}/${trigger.id}`;
  else delete el.dataset.trigger;
}

// The runs a trigger's state lists (going on, its last) are noted as its: a run the event
// stream announces is marked at once, before its summary says what fired it.
function noteTriggerRuns(t) {
  const ids = [...(t.running || [])];
  if (t.lastRun && t.lastRun.executionId) ids.push(t.lastRun.executionId);
  for (const eid of ids) {
    if (state.triggerRuns.has(eid)) continue;
    state.triggerRuns.set(eid, { flowId: t.flowId, id: t.id, type: t.type });
    if (state.triggerRuns.size > 5000) state.triggerRuns.delete(state.triggerRuns.keys().next().value);
    const run = state.runs.get(eid);
    if (run && !run.trigger) upsertRun({ executionId: eid });
  }
}

async function loadTriggers() {
  const tr = state.triggers;
  clearTimeout(tr.loadTimer);
  const seq = ++tr.seq;
  const asked = performance.now();
  let data;
  try {
    data = await api("/api/triggers");
  } catch (e) {
    if (seq !== tr.seq) return;
    tr.off = e.status === 404;
    tr.error = tr.off ? null : e;
    renderTriggers();
    return;
  }
  if (seq !== tr.seq) return; // a newer read was asked for meanwhile
  tr.off = false;
  tr.error = null;
  const listed = new Set();
  (data.triggers || []).forEach((t, rank) => {
    listed.add(t.key);
    const old = tr.byKey.get(t.key);
    if (old) {
      old.rank = rank;
      if (old.seenAt > asked) return; // an event or an answer newer than this read
      old.data = t;
      old.seenAt = asked;
    } else {
      tr.byKey.set(t.key, { data: t, seenAt: asked, rank, msg: null, busy: false });
    }
    noteTriggerRuns(t);
  });
  for (const [key, entry] of tr.byKey) {
    if (!listed.has(key) && entry.seenAt <= asked) tr.byKey.delete(key); // gone since
  }
  tr.problems = data.problems || [];
  renderTriggers();
}

function scheduleTriggersLoad() {
  clearTimeout(state.triggers.loadTimer);
  state.triggers.loadTimer = setTimeout(loadTriggers, 300);
}

function scheduleTriggersPoll(wait = TRIGGERS_POLL_MS) {
  clearTimeout(state.triggers.timer);
  state.triggers.timer = setTimeout(pollTriggers, wait);
}

async function pollTriggers() {
  if (!state.connected) return;
  const asked = performance.now();
  if (!document.hidden) await loadTriggers();
  const took = performance.now() - asked;
  if (state.connected) scheduleTriggersPoll(Math.min(POLL_MAX_MS, Math.max(TRIGGERS_POLL_MS, took * POLL_SHARE)));
}

// A trigger's state from an event or an answer: newer than any read under way.
function upsertTrigger(t) {
  const tr = state.triggers;
  let entry = tr.byKey.get(t.key);
  if (!entry) {
    entry = { data: t, seenAt: 0, rank: Infinity, msg: null, busy: false };
    tr.byKey.set(t.key, entry);
  }
  entry.data = t;
  entry.seenAt = performance.now();
  noteTriggerRuns(t);
  renderTrigger(entry);
  renderTriggersHead();
}

function removeTrigger(key) {
  state.triggers.byKey.delete(key);
  const body = triggerBody(key);
  if (body) body.remove();
  renderTriggersHead();
}

function sortedTriggers() {
  return [...state.triggers.byKey.values()].sort((a, b) => {
    const x = a.data.flowId;
    const y = b.data.flowId;
    if (x !== y) return x < y ? -1 : 1;
    if (a.rank !== b.rank) return a.rank < b.rank ? -1 : 1;
    return a.data.key < b.data.key ? -1 : 1;
  });
}

function triggerBody(key) {
  return $("#triggers").querySelector(`tbody[data-key="${CSS.escape(key)}"]`);
}

function renderTriggers() {
  const table = $("#triggers");
  const entries = sortedTriggers();
  const keys = new Set(entries.map((e) => e.data.key));
  for (const body of [...table.tBodies]) if (!keys.has(body.dataset.key)) body.remove();
  for (const entry of entries) renderTrigger(entry);
  for (const entry of entries) table.append(triggerBody(entry.data.key)); // in order
  renderTriggersHead();
}

// The card's title, note and the flows whose triggers cannot be read.
function renderTriggersHead() {
  const tr = state.triggers;
  const all = [...tr.byKey.values()].map((e) => e.data);
  $("#triggers").hidden = !all.length;
  const note = $("#triggers-note");
  note.classList.toggle("bad", !!tr.error);
  if (tr.off) note.textContent = "This server runs no triggers.";
  else if (tr.error) note.textContent = tr.error.message;
  else if (!all.length && !tr.problems.length) {
    note.textContent = state.connected ? "No stored flow has triggers (a flow's `triggers:` section: schedule, webhook, watch)." : "Connect to see the triggers.";
  } else note.textContent = "";
  note.hidden = !note.textContent;
  const count = (status) => all.filter((t) => t.status === status).length;
  const bits = all.length ? [`${all.length} trigger${all.length === 1 ? "" : "s"}`] : [];
  for (const status of ["paused", "error", "disabled"]) if (count(status)) bits.push(`${count(status)} ${status}`);
  if (tr.problems.length) bits.push(`${tr.problems.length} flow(s) unreadable`);
  $("#triggers-title").textContent = bits.join(" · ");

  const box = $("#trigger-problems");
  box.innerHTML = "";
  box.hidden = !tr.problems.length;
  for (const p of tr.problems) {
    const item = document.createElement("div");
    item.className = "flow-problem";
    item.dataset.flow = p.flowId;
    const head = document.createElement("div");
    const name = document.createElement("strong");
    name.textContent = p.flowId;
    head.append(name, document.createTextNode(": its triggers cannot be read, so none of them runs"));
    const message = document.createElement("div");
    message.className = "problem-message";
    message.textContent = p.message;
    item.append(head, message);
    box.append(item);
  }
  if (!all.length) stopTicker();
  else startTicker();
}

function startTicker() {
  if (!state.triggers.ticker) state.triggers.ticker = setInterval(tickTriggers, TRIGGERS_TICK_MS);
}

function stopTicker() {
  clearInterval(state.triggers.ticker);
  state.triggers.ticker = null;
}

function markTriggersOfFlow() {
  const flowId = state.flow ? state.flow.id : null;
  for (const body of $("#triggers").tBodies) body.classList.toggle("current", body.dataset.flow === flowId);
}

function buildTriggerBody(key) {
  const body = document.createElement("tbody");
  body.dataset.key = key;
  body.innerHTML =
    '<tr class="trig-row">' +
    '<td class="trig-name"><strong class="tid"></strong> <span class="ttype"></span>' +
    '<button type="button" class="flow-link" title="Show this flow"></button><div class="tdesc muted"></div></td>' +
    '<td class="trig-when"></td>' +
    '<td class="trig-status"><span class="badge"></span><div class="trig-busy muted"></div></td>' +
    '<td class="trig-next"><span class="at num"></span> <span class="rel muted"></span><div class="tz muted"></div></td>' +
    '<td class="trig-last"><div class="last-fire"><span class="at num"></span> <span class="rel muted"></span></div>' +
    '<div class="last-run"></div></td>' +
    '<td class="trig-counts"></td>' +
    '<td class="trig-actions">' +
    '<button type="button" data-action="pause" title="Fire no more until resumed (kept across restarts)">❚❚ Pause</button>' +
    '<button type="button" data-action="resume" title="Fire again">▶ Resume</button>' +
    '<button type="button" data-action="fire" title="Start a run now, paused or not, under its overlap policy">⚑ Fire</button>' +
    "</td></tr>" +
    '<tr class="trig-notes"><td colspan="7"><div class="trig-problem error"></div><div class="trig-error error"></div>' +
    '<div class="trig-msg" role="status"></div></td></tr>';
  for (const button of body.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => triggerAction(key, button.dataset.action));
  }
  body.querySelector(".flow-link").addEventListener("click", () => {
    const entry = state.triggers.byKey.get(key);
    const select = $("#flow-select");
    if (!entry || select.disabled || ![...select.options].some((o) => o.value === entry.data.flowId)) return;
    select.value = entry.data.flowId;
    pickFlow(entry.data.flowId).catch((err) => say(err.message, true));
  });
  return body;
}

function codeEl(text) {
  const el = document.createElement("code");
  el.textContent = text;
  return el;
}

function smallNote(parts) {
  const el = document.createElement("div");
  el.className = "muted small";
  el.textContent = parts.filter(Boolean).join(" · ");
  return el;
}

// What fires a trigger, as its flow declares it: the cron and its time zone or the interval;
// the webhook's method and path, and what it needs; the watched folder and glob.
function fillWhen(cell, t) {
  const spec = t.spec || {};
  cell.innerHTML = "";
  cell.title = t.when || "";
  const line = document.createElement("div");
  line.className = "what";
  if (t.type === "schedule") {
    if (spec.cron != null) {
      line.append("cron ", codeEl(spec.cron), " ", Object.assign(document.createElement("span"), { className: "tzname", textContent: spec.timezone || "UTC" }));
    } else {
      line.append("every ", codeEl(typeof spec.interval === "number" ? `${spec.interval} ms` : String(spec.interval)));
    }
    cell.append(line, smallNote([`overlap: ${t.overlap}`, t.missed === "once" ? "missed: run once" : "missed: skip"]));
  } else if (t.type === "webhook") {
    line.append(codeEl(`${t.method || "POST"} ${t.url || "/api/hooks/" + (spec.path || "")}`));
    cell.append(line, smallNote([t.public ? "public" : "needs the token", t.signed ? `signed (${spec.signatureHeader || "X-Signature-256"})` : "unsigned",
      spec.respond === "result" ? "answers with the outputs" : "answers 202", `overlap: ${t.overlap}`]));
  } else {
    line.append(codeEl(spec.glob || "*"), " in ", codeEl(spec.folder || ""));
    cell.append(line, smallNote([spec.recursive ? "and the folders inside" : "", t.watching ? "watching" : "not watching yet", `overlap: ${t.overlap}`]));
  }
}

function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return null;
  }
}

function timeIn(ms, zone) {
  try {
    return new Date(ms).toLocaleTimeString([], { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, weekday: "short" });
  } catch (e) {
    return "";
  }
}

function renderTrigger(entry) {
  const t = entry.data;
  let body = triggerBody(t.key);
  if (!body) {
    body = buildTriggerBody(t.key);
    const entries = sortedTriggers();
    const later = entries.slice(entries.indexOf(entry) + 1).map((e) => triggerBody(e.data.key)).find(Boolean);
    $("#triggers").insertBefore(body, later || null);
  }
  const spec = t.spec || {};
  body.dataset.status = t.status;
  body.dataset.type = t.type;
  body.dataset.flow = t.flowId;
  body.classList.toggle("current", !!state.flow && state.flow.id === t.flowId);

  body.querySelector(".tid").textContent = t.id;
  const type = body.querySelector(".ttype");
  type.textContent = t.type;
  type.dataset.type = t.type;
  body.querySelector(".flow-link").textContent = t.flowId;
  body.querySelector(".tdesc").textContent = t.description || "";

  fillWhen(body.querySelector(".trig-when"), t);

  const badge = body.querySelector(".trig-status .badge");
  badge.dataset.status = t.status;
  badge.textContent = t.status;
  const running = (t.running || []).length;
  body.querySelector(".trig-busy").textContent = [running ? `${running} running` : "", t.queued ? `${t.queued} queued` : ""].filter(Boolean).join(" · ");

  const next = body.querySelector(".trig-next");
  const nextMs = isoMs(t.nextFireAt);
  next.dataset.at = t.nextFireAt || "";
  next.title = t.nextFireAt ? `next slot: ${t.nextFireAt}` : "";
  const nextAt = next.querySelector(".at");
  nextAt.classList.toggle("muted", nextMs == null);
  if (nextMs != null) nextAt.textContent = fmtWhen(nextMs);
  else if (!t.enabled) nextAt.textContent = "never (disabled)";
  else if (t.type === "webhook") nextAt.textContent = "on a request";
  else if (t.type === "watch") nextAt.textContent = "on a new or changed file";
  else nextAt.textContent = "—";
  setRel(next.querySelector(".rel"), nextMs, "next", nextMs != null && t.paused ? "(paused: no run)" : "");
  const zone = t.type === "schedule" && spec.cron != null ? spec.timezone || "UTC" : null;
  next.querySelector(".tz").textContent = nextMs != null && zone && zone !== localZone() ? `${timeIn(nextMs, zone)} ${zone}` : "";

  const lastFire = body.querySelector(".last-fire");
  const fireMs = isoMs(t.lastFireAt);
  lastFire.dataset.at = t.lastFireAt || "";
  lastFire.querySelector(".at").textContent = fireMs != null ? fmtWhen(fireMs) : "never fired";
  lastFire.querySelector(".at").classList.toggle("muted", fireMs == null);
  setRel(lastFire.querySelector(".rel"), fireMs, "past");
  const lastRun = body.querySelector(".last-run");
  const run = t.lastRun;
  const link = lastRun.querySelector("a");
  if (!run || !run.executionId) {
    lastRun.innerHTML = '<span class="muted">no run yet</span>';
  } else if (!link || link.dataset.id !== run.executionId) {
    lastRun.innerHTML = "";
    const a = document.createElement("a");
    a.href = `#run-${run.executionId}`;
    a.className = "run-link";
    a.dataset.id = run.executionId;
    a.innerHTML = '<span class="badge"></span> <code></code>';
    a.addEventListener("click", (e) => {
      e.preventDefault();
      const now = (state.triggers.byKey.get(t.key) || { data: t }).data.lastRun || run;
      openRunFor(a.dataset.id, t.flowId, now.executionId === a.dataset.id ? now.status : null);
    });
    lastRun.append(a);
  }
  const a = lastRun.querySelector("a");
  if (a && run) {
    a.dataset.status = run.status || "";
    a.querySelector(".badge").dataset.status = run.status || "idle";
    a.querySelector(".badge").textContent = run.status || "?";
    a.querySelector("code").textContent = run.executionId.slice(0, 8);
    a.title = `open run ${run.executionId}${run.startedAt ? ", started " + fmtWhen(isoMs(run.startedAt)) : ""}`;
  }

  const counts = body.querySelector(".trig-counts");
  counts.innerHTML = "";
  const c = t.counts || {};
  for (const name of ["fired", "started", "queued", "skipped", "failed", "missed"]) {
    const n = c[name] || 0;
    if (!n && name !== "fired" && name !== "started") continue;
    const span = document.createElement("span");
    span.className = "count" + (name === "failed" ? " bad" : "");
    span.dataset.count = name;
    span.dataset.n = String(n);
    span.textContent = `${numberFormat.format(n)} ${name}`;
    counts.append(span);
  }

  const pause = body.querySelector("[data-action='pause']");
  const resume = body.querySelector("[data-action='resume']");
  const fire = body.querySelector("[data-action='fire']");
  pause.hidden = !!t.paused;
  resume.hidden = !t.paused;
  pause.disabled = resume.disabled = entry.busy;
  fire.disabled = entry.busy || !t.enabled;
  fire.title = t.enabled ? "Start a run now, paused or not, under its overlap policy" : "disabled in its flow (enabled: false): it never fires";

  const problem = body.querySelector(".trig-problem");
  problem.hidden = !t.problem;
  problem.textContent = t.problem ? `problem: ${t.problem}` : "";
  const error = body.querySelector(".trig-error");
  const le = t.lastError;
  error.hidden = !le;
  error.innerHTML = "";
  if (le) {
    const head = document.createElement("div");
    head.textContent = `last error${le.at ? " (" + fmtWhen(isoMs(le.at)) + ")" : ""}: ${le.code || "ERROR"}: ${le.message || ""}`;
    error.append(head);
    if (le.hint) error.append(Object.assign(document.createElement("div"), { className: "hint", textContent: `hint: ${le.hint}` }));
  }
  const msg = body.querySelector(".trig-msg");
  msg.hidden = !entry.msg;
  msg.classList.toggle("bad", !!(entry.msg && entry.msg.bad));
  msg.innerHTML = "";
  if (entry.msg) {
    msg.append(entry.msg.text);
    if (entry.msg.run) {
      const open = document.createElement("a");
      open.href = `#run-${entry.msg.run}`;
      open.className = "run-link";
      open.dataset.id = entry.msg.run;
      open.append(codeEl(entry.msg.run.slice(0, 8)));
      open.addEventListener("click", (e) => {
        e.preventDefault();
        openRunFor(entry.msg.run, t.flowId, null);
      });
      msg.append(" ", open);
    }
  }
  body.querySelector(".trig-notes").hidden = problem.hidden && error.hidden && msg.hidden;
}

// Open a run by id: as the list has it, else as its trigger says (running: live).
function openRunFor(executionId, flowId, status) {
  if (state.runs.has(executionId)) openRun(executionId);
  else if (status === "running") openLive(executionId, flowId);
  else openPast(executionId, flowId);
}

async function triggerAction(key, action) {
  const tr = state.triggers;
  const entry = tr.byKey.get(key);
  if (!entry || entry.busy) return;
  const t = entry.data;
  entry.busy = true;
  renderTrigger(entry);
  const url = `/api/triggers/${encodeURIComponent(t.flowId)}/${encodeURIComponent(t.id)}/${action}`;
  try {
    const answer = await api(url, { method: "POST" });
    if (action === "fire") {
      if (answer.executionId) {
        state.triggerRuns.set(answer.executionId, { flowId: t.flowId, id: t.id, type: t.type, manual: true });
        if (state.runs.has(answer.executionId)) upsertRun({ executionId: answer.executionId });
        entry.msg = { text: "fired by hand: run", run: answer.executionId };
        say(`trigger ${key} fired: run ${answer.executionId.slice(0, 12)} started`);
      } else {
        entry.msg = { text: `fired by hand: queued (${answer.position} waiting), it starts when a run of it ends` };
        say(`trigger ${key} fired: queued`);
      }
    } else {
      entry.data = answer;
      entry.seenAt = performance.now();
      entry.msg = null;
      say(`trigger ${key} ${answer.status === "paused" ? "paused" : "resumed"}`);
    }
  } catch (e) {
    // refused by its state or policy (paused, skipping, a full queue): the answer says why; a
    // run that could not start is the trigger's last error, shown below it in full
    const said = [401, 404, 409, 429].includes(e.status) || action !== "fire";
    const short = `${e.status || ""} ${e.code || ""}`.trim();
    entry.msg = { text: said ? `${action}: ${e.message}` : `fire: ${short}: the run was not started (its last error says why)`, bad: true };
    say(`trigger ${key}: ${action}: ${said ? e.message : short}`, true);
  } finally {
    entry.busy = false;
    if (tr.byKey.get(key) === entry) {
      renderTrigger(entry);
      renderTriggersHead();
    }
  }
}

// -- wiring ------------------------------------------------------------------------------------
$("#token").value = state.token;
$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  if (state.stream) {
    const old = state.stream;
    state.stream = null;
    old.close();
  }
  connect();
});
$("#refresh").addEventListener("click", connect);
$("#triggers-refresh").addEventListener("click", loadTriggers);
$("#flow-select").addEventListener("change", (e) => pickFlow(e.target.value).catch((err) => say(err.message, true)));
$("#execute").addEventListener("click", execute);
$("#debug-step").addEventListener("click", () => debugAction("step"));
$("#debug-continue").addEventListener("click", () => debugAction("continue"));
$("#debug-abort").addEventListener("click", () => debugAction("abort"));
$("#debug-clear").addEventListener("click", clearPlan);
$("#cancel").addEventListener("click", cancel);
$("#filter-flow").addEventListener("change", () => loadRuns({ first: true }));
$("#filter-status").addEventListener("change", () => loadRuns({ first: true }));
$("#stats-last").addEventListener("change", (e) => {
  state.stats.last = Number(e.target.value) || 50;
  loadStats(state.stats.flowId);
});
$("#stats-refresh").addEventListener("click", () => loadStats(state.stats.flowId));
$("#stats-overlay").addEventListener("change", renderOverlay);
for (const th of document.querySelectorAll("#stats-nodes th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const sort = state.stats.sort;
    const key = th.dataset.sort;
    // a figure sorts largest first on the first click; the node column by the flow
    if (sort.key === key) sort.dir = -sort.dir;
    else Object.assign(sort, { key, dir: key === "flow" || key === "type" ? 1 : -1 });
    renderStats();
  });
}
$("#scrub").addEventListener("input", (e) => {
  stopPlaying();
  scrubTo(e.target.value);
});
$("#play").addEventListener("click", play);
for (const button of document.querySelectorAll("[data-zoom]")) {
  button.addEventListener("click", () => {
    const view = state.view;
    if (!view || !view.graph) return;
    const current = Number($("#graph svg").getAttribute("width")) / view.graph.width;
    const how = button.dataset.zoom;
    state.zoom = how === "fit" ? null : Math.max(0.25, Math.min(2, current * (how === "in" ? 1.25 : 0.8)));
    applyZoom();
  });
}
window.addEventListener("resize", applyZoom);
if (state.token) connect();
