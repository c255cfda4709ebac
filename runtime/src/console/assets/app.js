// The sluice console: plain JavaScript, no build step, served by the worker at /ui.
//
// Rules kept throughout: everything that comes from the worker or from records is put in the
// page as text (textContent / text nodes, never innerHTML); nothing is written to the worker
// without a click on a button that says what it does; a refused request shows the worker's
// error text next to the control that sent it.
"use strict";

// ---------- small helpers ----------

/** el("td", {class: "num"}, "text", child) — children are nodes or text (always as text). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "value") node.value = v;
    else if (k === "checked") node.checked = !!v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

/** A refusal from the worker, with its message. */
class ApiError extends Error {}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError("the worker did not answer: " + e.message);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!response.ok) {
    const message = data && typeof data === "object" && data.message ? data.message : (text || response.statusText);
    throw new ApiError(`${response.status}: ${message}`);
  }
  return data;
}

const enc = encodeURIComponent;

/** A span after `control` that shows the outcome of what the control sent. */
function statusFor(control) {
  let span = control.nextElementSibling;
  if (!span || !span.classList.contains("outcome")) {
    span = el("span", { class: "outcome", role: "status", "aria-live": "polite" });
    control.after(span);
  }
  return {
    error(e) { span.className = "outcome error"; span.textContent = e.message || String(e); },
    ok(text) { span.className = "outcome ok"; span.textContent = text; },
    clear() { span.className = "outcome"; span.textContent = ""; },
  };
}

/** Runs `action` for a button: disables it while running, shows the outcome beside it. */
async function act(button, action, okText) {
  const status = statusFor(button);
  status.clear();
  button.disabled = true;
  try {
    const result = await action();
    if (okText) status.ok(typeof okText === "function" ? okText(result) : okText);
    return result;
  } catch (e) {
    status.error(e);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

function stateBadge(state) {
  const s = state || "UNKNOWN";
  return el("span", { class: "state " + s, "data-state": s }, s);
}

function fmtTime(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function fmtNum(n) {
  return n === null || n === undefined || Number.isNaN(n) ? "" : Number(n).toLocaleString("en");
}

/** Prometheus text: [{name, labels, value}] for the metric names wanted. */
function parseMetrics(text, wanted) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const brace = line.indexOf("{");
    const space = line.lastIndexOf(" ");
    const name = brace >= 0 ? line.slice(0, brace) : line.slice(0, space);
    if (!wanted.has(name)) continue;
    const labels = {};
    if (brace >= 0) {
      const body = line.slice(brace + 1, line.lastIndexOf("}"));
      for (const m of body.matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2].replace(/\\(.)/g, "$1");
    }
    out.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return out;
}

const SECRET_KEY = /(password|secret|token|api\.key|apikey|credentials|private\.key|sasl\.jaas)/i;
const MASK = "********";
/** A config value as shown: secrets hidden unless written as a ${provider:...} placeholder. */
function maskValue(key, value, secretKeys) {
  const isSecret = SECRET_KEY.test(key) || (secretKeys && secretKeys.has(key));
  if (!isSecret || value === null || value === undefined || value === "") return value;
  return /^\$\{[^}]*\}$/.test(String(value)) ? value : MASK;
}

// ---------- page plumbing ----------

const main = () => document.getElementById("main");
let timers = [];
let pageToken = 0;

/** Polls `f` every `ms` while the page that was shown as `token` is still shown. */
function every(token, ms, f) {
  if (token !== pageToken) return;
  const id = setInterval(() => { if (token === pageToken) f(); }, ms);
  timers.push(id);
}

function clearPage() {
  for (const id of timers) clearInterval(id);
  timers = [];
  pageToken += 1;
  main().replaceChildren();
}

const routes = [
  [/^#\/connectors$/, pageConnectors, "connectors"],
  [/^#\/connector\/(.+)$/, pageConnector, "connectors"],
  [/^#\/new$/, pageNew, "new"],
  [/^#\/topics$/, pageTopics, "topics"],
  [/^#\/topic\/(.+)$/, pageTopic, "topics"],
  [/^#\/dlq$/, pageDeadLetters, "dlq"],
  [/^#\/dlq\/(.+)$/, pageDeadLetters, "dlq"],
  [/^#\/groups$/, pageGroups, "groups"],
  [/^#\/group\/(.+)$/, pageGroup, "groups"],
];

function route() {
  const hash = location.hash || "#/connectors";
  clearPage();
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (m) {
      for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === nav);
      const args = m.slice(1).map(decodeURIComponent);
      Promise.resolve(page(main(), ...args)).catch((e) => main().append(el("p", { class: "error" }, e.message || String(e))));
      return;
    }
  }
  main().append(el("p", {}, "No such page. ", el("a", { href: "#/connectors" }, "Connectors")));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// ---------- connectors ----------

const STATES = ["ALL", "FAILED", "RUNNING", "PAUSED", "STOPPED", "RESTARTING", "UNASSIGNED"];

function connectorTopics(config) {
  return (config.topics || config.topic || config["topics.regex"] || "").toString();
}

async function loadSinkLag() {
  try {
    const text = await (await fetch("/metrics")).text();
    const lag = {};
    for (const m of parseMetrics(text, new Set(["kafka_consumergroup_lag"]))) {
      const g = m.labels.consumergroup || "";
      if (g.startsWith("connect-")) lag[g.slice(8)] = (lag[g.slice(8)] || 0) + m.value;
    }
    return lag;
  } catch (_) {
    return {};
  }
}

async function pageConnectors(root) {
  const token = pageToken;
  const selected = new Set();
  let filter = sessionStorage.getItem("sluice.filter") || "ALL";
  let search = "";
  const tbody = el("tbody");
  const count = el("span", { class: "muted" });
  const loadError = el("p", { class: "error", role: "alert" });
  const stateSelect = el("select", { id: "state-filter", "aria-label": "Filter by state",
    onchange: (e) => { filter = e.target.value; sessionStorage.setItem("sluice.filter", filter); render(); } },
    STATES.map((s) => el("option", { value: s }, s === "ALL" ? "All states" : s)));
  stateSelect.value = filter;
  const searchBox = el("input", { type: "text", placeholder: "Filter by name, class or topic", "aria-label": "Filter by name",
    oninput: (e) => { search = e.target.value.toLowerCase(); render(); } });
  const selectAll = el("input", { type: "checkbox", "aria-label": "Select all shown",
    onchange: (e) => { for (const r of shown) e.target.checked ? selected.add(r.name) : selected.delete(r.name); render(); } });
  const bulk = (label, method, path) => el("button", { "data-bulk": label.toLowerCase(), onclick: (e) => bulkAction(e.target, label, method, path) }, label);
  const bulkButtons = [bulk("Pause", "PUT", "pause"), bulk("Resume", "PUT", "resume"), bulk("Stop", "PUT", "stop"), bulk("Restart", "POST", "restart?includeTasks=true&onlyFailed=false")];
  root.append(
    el("h1", {}, "Connectors"),
    el("div", { class: "toolbar" }, stateSelect, searchBox, count, el("a", { href: "#/new" }, "New connector")),
    el("div", { class: "toolbar", role: "group", "aria-label": "Act on selected connectors" }, el("span", {}, "Selected:"), bulkButtons),
    loadError,
    el("table", { id: "connectors" },
      el("thead", {}, el("tr", {}, el("th", {}, selectAll), el("th", {}, "Name"), el("th", {}, "State"),
        el("th", { class: "num" }, "Tasks running"), el("th", {}, "Type"), el("th", {}, "Class"), el("th", {}, "Topics"), el("th", { class: "num" }, "Sink lag"))),
      tbody));

  let rows = [];
  let shown = [];
  let lag = {};
  async function bulkAction(button, label, method, path) {
    const names = [...selected];
    if (names.length === 0) { statusFor(button).error(new Error("select one or more connectors first")); return; }
    await act(button, async () => {
      const failures = [];
      await Promise.all(names.map((n) => api(method, `/connectors/${enc(n)}/${path}`).catch((e) => failures.push(`${n}: ${e.message}`))));
      if (failures.length) throw new Error(failures.join("\n"));
      await load();
    }, `${label}: sent for ${names.length}`);
  }
  function render() {
    shown = rows.filter((r) => (filter === "ALL" || r.state === filter) &&
      (!search || r.name.toLowerCase().includes(search) || r.cls.toLowerCase().includes(search) || r.topics.toLowerCase().includes(search)));
    count.textContent = `${shown.length} of ${rows.length}`;
    selectAll.checked = shown.length > 0 && shown.every((r) => selected.has(r.name));
    tbody.replaceChildren(...shown.map((r) => el("tr", { class: selected.has(r.name) ? "selected" : "", "data-connector": r.name },
      el("td", {}, el("input", { type: "checkbox", "aria-label": "Select " + r.name, checked: selected.has(r.name),
        onchange: (e) => { e.target.checked ? selected.add(r.name) : selected.delete(r.name); render(); } })),
      el("td", {}, el("a", { href: "#/connector/" + enc(r.name) }, r.name)),
      el("td", {}, stateBadge(r.state)),
      el("td", { class: "num" }, `${r.running} / ${r.total}`),
      el("td", {}, r.type),
      el("td", { class: "clip", title: r.cls }, r.cls),
      el("td", { class: "clip", title: r.topics }, r.topics),
      el("td", { class: "num" }, r.type === "sink" && r.name in lag ? fmtNum(lag[r.name]) : ""))));
    // For the first-paint measurement (runtime/benches/console.rs).
    if (rows.length && !performance.getEntriesByName("sluice:connectors-rendered").length) performance.mark("sluice:connectors-rendered");
  }
  async function load() {
    let data;
    try {
      data = await api("GET", "/connectors?expand=status&expand=info");
      loadError.textContent = "";
    } catch (e) {
      loadError.textContent = e.message;
      return;
    }
    rows = Object.entries(data).map(([name, c]) => {
      const status = c.status || {};
      const info = c.info || { config: {} };
      const tasks = status.tasks || [];
      return {
        name,
        state: (status.connector || {}).state || "UNASSIGNED",
        running: tasks.filter((t) => t.state === "RUNNING").length,
        total: tasks.length,
        failedTasks: tasks.filter((t) => t.state === "FAILED").length,
        type: status.type || info.type || "",
        cls: info.config["connector.class"] || "",
        topics: connectorTopics(info.config),
      };
    });
    // Failed first (a failed task counts), then by name.
    rows.sort((a, b) => ((b.state === "FAILED" || b.failedTasks > 0) - (a.state === "FAILED" || a.failedTasks > 0)) || a.name.localeCompare(b.name));
    for (const n of [...selected]) if (!(n in data)) selected.delete(n);
    render();
    loadSinkLag().then((l) => { lag = l; render(); });
  }
  await load();
  every(token, 3000, load);
}

// ---------- one connector ----------

function timelineKey(name) { return "sluice.timeline." + name; }

function recordState(name, state) {
  const key = timelineKey(name);
  let list = [];
  try { list = JSON.parse(localStorage.getItem(key) || "[]"); } catch (_) { list = []; }
  if (!list.length || list[list.length - 1].state !== state) {
    list.push({ state, at: Date.now() });
    localStorage.setItem(key, JSON.stringify(list.slice(-50)));
  }
  return list;
}

function sparkline(samples, label) {
  const w = 260, h = 56;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  const last = samples.length ? samples[samples.length - 1] : 0;
  svg.setAttribute("aria-label", `${label}: ${last.toFixed(1)} records/s`);
  const max = Math.max(1, ...samples);
  const pts = samples.map((v, i) => `${(i / Math.max(1, samples.length - 1)) * (w - 4) + 2},${h - 14 - (v / max) * (h - 20)}`).join(" ");
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#0b5cad");
  line.setAttribute("stroke-width", "1.5");
  const text = document.createElementNS(SVG, "text");
  text.setAttribute("x", "4");
  text.setAttribute("y", String(h - 3));
  text.setAttribute("font-size", "11");
  text.textContent = `${label}: ${last.toFixed(1)}/s (max ${max.toFixed(1)})`;
  svg.append(line, text);
  return svg;
}

const RATE_METRICS = {
  in: ["kafka_connect_source_task_metrics_source_record_poll_total", "kafka_connect_sink_task_metrics_sink_record_read_total"],
  out: ["kafka_connect_source_task_metrics_source_record_write_total", "kafka_connect_sink_task_metrics_sink_record_send_total"],
};

/** Lines of what changes between two configs, compared as written, shown with secrets masked. */
function configDiff(before, after, secretKeys) {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const show = (k, v) => maskValue(k, v, secretKeys);
  const lines = [];
  for (const k of keys) {
    if (!(k in after)) lines.push(["del", `- ${k}: ${show(k, before[k])}`]);
    else if (!(k in before)) lines.push(["add", `+ ${k}: ${show(k, after[k])}`]);
    else if (String(before[k]) !== String(after[k])) lines.push(["chg", `~ ${k}: ${show(k, before[k])} → ${show(k, after[k])}`]);
  }
  return lines;
}

async function pageConnector(root, name) {
  const token = pageToken;
  const path = `/connectors/${enc(name)}`;
  const head = el("div", { class: "toolbar" });
  const timeline = el("ol", { class: "timeline", id: "timeline" });
  const tasksBody = el("tbody");
  const configBox = el("div");
  const offsetsBox = el("div");
  const charts = el("div", { class: "toolbar", id: "rates" });
  const loadError = el("p", { class: "error", role: "alert" });
  const stateHolder = el("span", { id: "connector-state" });
  const control = (label, method, sub, ok) => el("button", { "data-action": label.toLowerCase().replace(/ /g, "-"),
    onclick: (e) => act(e.target, async () => { await api(method, `${path}/${sub}`); await load(); }, ok || `${label}: sent`) }, label);
  head.append(stateHolder,
    control("Pause", "PUT", "pause"), control("Resume", "PUT", "resume"), control("Stop", "PUT", "stop"),
    control("Restart", "POST", "restart"), control("Restart failed tasks", "POST", "restart?includeTasks=true&onlyFailed=true"));
  root.append(el("h1", {}, "Connector ", el("span", { class: "mono" }, name)), head, loadError,
    el("div", { class: "grid2" },
      el("section", {}, el("h2", {}, "State changes seen"), el("p", { class: "muted" }, "As observed by this browser while the page was open."), timeline),
      el("section", {}, el("h2", {}, "Records per second"), charts)),
    el("h2", {}, "Tasks"),
    el("table", { id: "tasks" }, el("thead", {}, el("tr", {}, el("th", {}, "Task"), el("th", {}, "State"), el("th", {}, "Worker"), el("th", {}, "Failure trace"), el("th", {}, ""))), tasksBody),
    el("h2", {}, "Configuration"), configBox,
    el("h2", {}, "Offsets"), offsetsBox);

  let info = null;
  let state = null;
  let secretKeys = new Set();
  async function load() {
    let status;
    try {
      [status, info] = await Promise.all([api("GET", `${path}/status`), info ? Promise.resolve(info) : api("GET", path)]);
      loadError.textContent = "";
    } catch (e) {
      loadError.textContent = e.message;
      return;
    }
    const newState = status.connector.state;
    stateHolder.replaceChildren(stateBadge(newState), " ", el("span", { class: "muted" }, `${status.type} · worker ${status.connector.worker_id || ""}`));
    const list = recordState(name, newState);
    timeline.replaceChildren(...list.map((e) => el("li", {}, fmtTime(e.at), " ", stateBadge(e.state))));
    tasksBody.replaceChildren(...status.tasks.map((t) => el("tr", { "data-task": t.id },
      el("td", {}, String(t.id)), el("td", {}, stateBadge(t.state)), el("td", { class: "mono" }, t.worker_id || ""),
      el("td", {}, t.trace ? el("details", {}, el("summary", {}, t.trace.split("\n")[0].slice(0, 160)), el("pre", {}, t.trace)) : ""),
      el("td", {}, el("button", { onclick: (e) => act(e.target, async () => { await api("POST", `${path}/tasks/${t.id}/restart`); await load(); }, "restart sent") }, `Restart task ${t.id}`)))));
    if (state !== newState) {
      state = newState;
      renderOffsets();
    }
  }

  /** The config as a table; `note` (after a save) says what just happened, since the editor
   *  and the outcome beside its Save button are gone. */
  async function renderConfig(note) {
    const config = info.config;
    try {
      const defs = await api("GET", `/connector-plugins/${enc(config["connector.class"])}/config`);
      secretKeys = new Set(defs.filter((d) => d.type === "PASSWORD").map((d) => d.name));
    } catch (_) { /* unknown plugin: name-based masking only */ }
    const rows = Object.keys(config).sort().map((k) => el("tr", {}, el("th", { class: "mono" }, k), el("td", { class: "mono" }, String(maskValue(k, config[k], secretKeys)))));
    const editButton = el("button", { id: "config-edit", onclick: () => openEditor() }, "Edit as JSON");
    configBox.replaceChildren(el("table", { class: "kv", id: "config" }, el("tbody", {}, rows)), el("div", { class: "toolbar" }, editButton,
      note ? el("span", { class: "outcome ok", id: "config-outcome", role: "status" }, note) : ""));
  }

  function openEditor() {
    const original = info.config;
    const masked = Object.fromEntries(Object.entries(original).map(([k, v]) => [k, maskValue(k, v, secretKeys)]));
    const area = el("textarea", { rows: 16, id: "config-editor", "aria-label": "Connector configuration as JSON", spellcheck: "false" });
    area.value = JSON.stringify(masked, null, 2);
    const problems = el("div", { id: "config-problems", role: "status", "aria-live": "polite" });
    const diffBox = el("pre", { class: "diff", id: "config-diff", hidden: true });
    const review = el("button", { id: "config-review" }, "Review changes");
    const save = el("button", { class: "primary", id: "config-save", disabled: true }, "Save");
    const cancel = el("button", { id: "config-cancel", onclick: () => renderConfig() }, "Cancel");
    let parsed = null;
    // Values left masked keep the stored secret.
    const unmask = (cfg) => Object.fromEntries(Object.entries(cfg).map(([k, v]) => [k, v === MASK && k in original ? original[k] : v]));
    let timer = null;
    async function validate() {
      try { parsed = unmask(JSON.parse(area.value)); } catch (e) { problems.replaceChildren(el("p", { class: "error" }, "Not valid JSON: " + e.message)); parsed = null; save.disabled = true; return; }
      try {
        const answer = await api("PUT", `/connector-plugins/${enc(parsed["connector.class"] || original["connector.class"])}/config/validate`, parsed);
        const errs = answer.configs.flatMap((c) => c.value.errors.map((m) => `${c.value.name}: ${m}`));
        problems.replaceChildren(errs.length ? el("ul", { class: "error" }, errs.map((m) => el("li", {}, m))) : el("p", { class: "ok" }, "Valid"));
      } catch (e) {
        problems.replaceChildren(el("p", { class: "error" }, e.message));
      }
    }
    area.addEventListener("input", () => { save.disabled = true; diffBox.hidden = true; clearTimeout(timer); timer = setTimeout(validate, 400); });
    review.addEventListener("click", async () => {
      await validate();
      if (!parsed) return;
      const lines = configDiff(original, parsed, secretKeys);
      diffBox.replaceChildren(...(lines.length ? lines.map(([c, t]) => el("div", { class: c }, t)) : [el("div", {}, "No changes.")]));
      diffBox.hidden = false;
      save.disabled = lines.length === 0;
    });
    save.addEventListener("click", () => act(save, async () => {
      const answer = await api("PUT", `${path}/config`, parsed);
      info = answer;
      await renderConfig("Saved.");
    }));
    configBox.replaceChildren(area, el("div", { class: "toolbar" }, review, save, cancel), problems, diffBox);
    validate();
  }

  /** `note` (after a write or a reset) says what just happened, as the buttons are redrawn. */
  async function renderOffsets(note) {
    let data;
    try { data = await api("GET", `${path}/offsets`); } catch (e) { offsetsBox.replaceChildren(el("p", { class: "error" }, e.message)); return; }
    const view = el("pre", { id: "offsets" }, JSON.stringify(data, null, 2));
    if (state !== "STOPPED") {
      offsetsBox.replaceChildren(view, el("p", { class: "muted" }, "Offsets can be edited or reset once the connector is STOPPED."));
      return;
    }
    const area = el("textarea", { rows: 8, id: "offsets-editor", "aria-label": "Offsets to write" });
    area.value = JSON.stringify(data, null, 2);
    const apply = el("button", { id: "offsets-write", onclick: () => act(apply, async () => {
      let body;
      try { body = JSON.parse(area.value); } catch (e) { throw new Error("Not valid JSON: " + e.message); }
      await api("PATCH", `${path}/offsets`, body);
      await renderOffsets("Offsets written.");
    }) }, "Write these offsets");
    const reset = el("button", { class: "danger", id: "offsets-reset", onclick: () => act(reset, async () => {
      await api("DELETE", `${path}/offsets`);
      await renderOffsets("Offsets reset.");
    }) }, "Reset all offsets");
    offsetsBox.replaceChildren(view, area, el("div", { class: "toolbar" }, apply, reset,
      note ? el("span", { class: "outcome ok", id: "offsets-outcome", role: "status" }, note) : ""));
  }

  const history = { in: [], out: [] };
  let previous = null;
  async function sampleRates() {
    let text;
    try { text = await (await fetch("/metrics")).text(); } catch (_) { return; }
    const wanted = new Set([...RATE_METRICS.in, ...RATE_METRICS.out]);
    const totals = { in: 0, out: 0 };
    for (const m of parseMetrics(text, wanted)) {
      if (m.labels.connector !== name) continue;
      totals[RATE_METRICS.in.includes(m.name) ? "in" : "out"] += m.value;
    }
    const now = Date.now();
    if (previous) {
      const secs = Math.max(0.001, (now - previous.at) / 1000);
      for (const k of ["in", "out"]) {
        history[k].push(Math.max(0, (totals[k] - previous[k]) / secs));
        if (history[k].length > 60) history[k].shift();
      }
    }
    previous = { ...totals, at: now };
    charts.replaceChildren(sparkline(history.in, "in"), sparkline(history.out, "out"));
  }

  await load();
  if (info) await renderConfig();
  sampleRates();
  every(token, 2000, load);
  every(token, 2000, sampleRates);
}

// ---------- new connector ----------

async function pageNew(root) {
  const plugins = await api("GET", "/connector-plugins");
  const pluginSelect = el("select", { id: "plugin", "aria-label": "Connector plugin" },
    el("option", { value: "" }, "Choose a plugin…"),
    plugins.map((p) => el("option", { value: p.class }, `${p.class} (${p.type}${p.aliases && p.aliases.length ? ", " + p.aliases.join(", ") : ""})`)));
  const nameInput = el("input", { type: "text", id: "connector-name", name: "name", "aria-label": "Connector name", placeholder: "my-connector" });
  const formBox = el("div", { id: "form" });
  const extras = el("div", { id: "extras" });
  const jsonArea = el("textarea", { rows: 18, id: "json-editor", hidden: true, "aria-label": "Connector as JSON", spellcheck: "false" });
  const generalErrors = el("div", { id: "general-errors", role: "status", "aria-live": "polite" });
  const modeButton = el("button", { id: "json-mode" }, "JSON mode");
  const validateButton = el("button", { id: "validate" }, "Validate");
  const createButton = el("button", { class: "primary", id: "create" }, "Create connector");
  const fileInput = el("input", { type: "file", id: "import", accept: ".json,application/json", "aria-label": "Import a connector JSON file" });
  root.append(el("h1", {}, "New connector"),
    el("div", { class: "toolbar" }, el("label", { for: "plugin" }, "Plugin"), pluginSelect, el("label", { for: "connector-name" }, "Name"), nameInput),
    el("div", { class: "toolbar" }, modeButton, el("label", { for: "import" }, "Import JSON file:"), fileInput),
    formBox, el("div", {}, el("h2", {}, "Other options"), el("p", { class: "muted" }, "Options the plugin does not declare (converter or transform settings)."), extras,
      el("button", { onclick: () => addExtra("", "") }, "Add option")),
    jsonArea, generalErrors,
    el("div", { class: "toolbar" }, validateButton, createButton));

  let defs = [];
  let jsonMode = false;
  const inputs = new Map();

  function addExtra(k, v) {
    const key = el("input", { type: "text", placeholder: "option", value: k, "aria-label": "Option name", class: "extra-key" });
    const val = el("input", { type: "text", placeholder: "value", value: v, "aria-label": "Option value", class: "extra-value" });
    const row = el("div", { class: "toolbar extra" }, key, val, el("button", { "aria-label": "Remove option", onclick: () => { row.remove(); scheduleValidate(); } }, "Remove"));
    key.addEventListener("input", scheduleValidate);
    val.addEventListener("input", scheduleValidate);
    extras.append(row);
  }

  function collect() {
    if (jsonMode) {
      const parsed = JSON.parse(jsonArea.value);
      const config = parsed.config ? { ...parsed.config } : { ...parsed };
      delete config.name;
      return { name: parsed.name || (parsed.config || {}).name || "", config };
    }
    const config = {};
    if (pluginSelect.value) config["connector.class"] = pluginSelect.value;
    for (const [k, input] of inputs) {
      if (k === "connector.class" || k === "name") continue;
      const v = input.value.trim();
      if (v !== "") config[k] = v;
    }
    for (const row of extras.querySelectorAll(".extra")) {
      const k = row.querySelector(".extra-key").value.trim();
      if (k) config[k] = row.querySelector(".extra-value").value;
    }
    return { name: nameInput.value.trim(), config };
  }

  function fill(name, config) {
    nameInput.value = name || "";
    const cls = config["connector.class"] || "";
    const match = plugins.find((p) => p.class === cls || (p.aliases || []).includes(cls));
    const apply = () => {
      extras.replaceChildren();
      for (const [k, v] of Object.entries(config)) {
        if (k === "connector.class" || k === "name") continue;
        if (inputs.has(k)) inputs.get(k).value = String(v);
        else addExtra(k, String(v));
      }
      jsonArea.value = JSON.stringify({ name: nameInput.value, config: { ...config, "connector.class": pluginSelect.value || cls } }, null, 2);
      scheduleValidate();
    };
    if (match && pluginSelect.value !== match.class) {
      pluginSelect.value = match.class;
      loadForm().then(apply);
    } else apply();
  }

  async function loadForm() {
    inputs.clear();
    formBox.replaceChildren();
    if (!pluginSelect.value) return;
    try {
      defs = await api("GET", `/connector-plugins/${enc(pluginSelect.value)}/config`);
    } catch (e) {
      formBox.append(el("p", { class: "error" }, e.message));
      return;
    }
    const groups = new Map();
    for (const d of [...defs].sort((a, b) => a.order - b.order)) {
      if (d.name === "name" || d.name === "connector.class") continue;
      const g = d.group || "Options";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(d);
    }
    for (const [group, list] of groups) {
      const fs = el("fieldset", { class: "card" }, el("legend", {}, group));
      for (const d of list) {
        const id = "f-" + d.name.replace(/[^a-zA-Z0-9_-]/g, "_");
        let input;
        if (d.type === "BOOLEAN") {
          input = el("select", { id, name: d.name, "data-field": d.name },
            el("option", { value: "" }, d.default_value === null ? "(not set)" : `(default: ${d.default_value})`), el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"));
        } else {
          input = el("input", { id, name: d.name, "data-field": d.name, type: d.type === "PASSWORD" ? "password" : "text",
            placeholder: d.default_value === null || d.default_value === undefined || d.default_value === "" ? "" : `default: ${d.default_value}`,
            "aria-describedby": id + "-doc " + id + "-err" });
        }
        input.addEventListener(d.type === "BOOLEAN" ? "change" : "input", scheduleValidate);
        inputs.set(d.name, input);
        fs.append(el("div", { class: "field" },
          el("label", { for: id, class: d.required ? "required" : "" }, d.display_name || d.name, d.display_name && d.display_name !== d.name ? el("span", { class: "muted mono" }, " " + d.name) : ""),
          input,
          el("div", { class: "doc", id: id + "-doc" }, `${d.type.toLowerCase()} · ${d.importance.toLowerCase()}${d.documentation ? " · " + d.documentation : ""}`),
          el("div", { class: "error", id: id + "-err", "data-error-for": d.name, role: "status", "aria-live": "polite" })));
      }
      formBox.append(fs);
    }
  }

  let timer = null;
  function scheduleValidate() { clearTimeout(timer); timer = setTimeout(() => validate(), 400); }

  async function validate() {
    let body;
    try { body = collect(); } catch (e) { generalErrors.replaceChildren(el("p", { class: "error" }, "Not valid JSON: " + e.message)); return null; }
    const cls = body.config["connector.class"];
    if (!cls) { generalErrors.replaceChildren(el("p", { class: "error" }, "Choose a plugin first.")); return null; }
    let answer;
    try {
      answer = await api("PUT", `/connector-plugins/${enc(cls)}/config/validate`, { ...body.config, name: body.name || "validate" });
    } catch (e) {
      generalErrors.replaceChildren(el("p", { class: "error" }, e.message));
      return null;
    }
    for (const node of formBox.querySelectorAll("[data-error-for]")) node.textContent = "";
    const elsewhere = [];
    for (const c of answer.configs) {
      if (!c.value.errors.length) continue;
      const target = !jsonMode && formBox.querySelector(`[data-error-for="${CSS.escape(c.value.name)}"]`);
      if (target) target.textContent = c.value.errors.join("; ");
      else elsewhere.push(`${c.value.name}: ${c.value.errors.join("; ")}`);
    }
    generalErrors.replaceChildren(...(elsewhere.length ? [el("ul", { class: "error" }, elsewhere.map((m) => el("li", {}, m)))] : []),
      el("p", { class: answer.error_count ? "error" : "ok", id: "error-count" }, answer.error_count ? `${answer.error_count} problem(s)` : "Valid"));
    return answer;
  }

  pluginSelect.addEventListener("change", () => loadForm().then(scheduleValidate));
  nameInput.addEventListener("input", scheduleValidate);
  jsonArea.addEventListener("input", scheduleValidate);
  modeButton.addEventListener("click", () => {
    try {
      if (!jsonMode) {
        const body = collect();
        jsonArea.value = JSON.stringify(body, null, 2);
      } else {
        const body = collect();
        fill(body.name, body.config);
      }
    } catch (e) { statusFor(modeButton).error(new Error("Not valid JSON: " + e.message)); return; }
    jsonMode = !jsonMode;
    jsonArea.hidden = !jsonMode;
    formBox.hidden = jsonMode;
    extras.parentElement.hidden = jsonMode;
    modeButton.textContent = jsonMode ? "Form mode" : "JSON mode";
  });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    try {
      const parsed = JSON.parse(await file.text());
      const config = parsed.config ? parsed.config : parsed;
      fill(parsed.name || config.name, config);
      statusFor(fileInput).ok(`imported ${file.name}`);
    } catch (e) { statusFor(fileInput).error(new Error(`${file.name}: ${e.message}`)); }
  });
  validateButton.addEventListener("click", () => act(validateButton, validate));
  createButton.addEventListener("click", () => act(createButton, async () => {
    const body = collect();
    const created = await api("POST", "/connectors", body);
    location.hash = "#/connector/" + enc(created.name);
  }));
}

// ---------- records (topics and dead letters) ----------

function hexdump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length && i < 1024; i += 16) {
    const chunk = Array.from(bytes.slice(i, i + 16));
    lines.push(i.toString(16).padStart(6, "0") + "  " + chunk.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48) + "  " +
      chunk.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join(""));
  }
  return lines.join("\n");
}

/** Short text for a table cell. */
function preview(field) {
  if (!field) return "null";
  if (field.format === "binary") return `(${fmtNum(field.size)} bytes binary)`;
  const t = field.text.length > 120 ? field.text.slice(0, 120) + "…" : field.text;
  return field.truncated ? t + " …" : t;
}

/** A key/value/header shown in full: JSON pretty-printed, binary as a hex dump. */
function fieldView(field, onShowAll) {
  if (!field) return el("pre", { class: "muted" }, "null");
  const parts = [];
  if (field.format === "binary") {
    const raw = atob(field.base64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    parts.push(el("pre", { class: "value" }, hexdump(bytes)));
  } else if (field.format === "json") {
    let pretty = field.text;
    try { pretty = JSON.stringify(JSON.parse(field.text), null, 2); } catch (_) { /* shown as is */ }
    parts.push(el("pre", { class: "value" }, pretty));
  } else {
    parts.push(el("pre", { class: "value" }, field.text));
  }
  if (field.truncated) {
    parts.push(el("p", { class: "muted" }, `Showing the first part of ${fmtNum(field.size)} bytes. `,
      onShowAll ? el("button", { class: "show-all", onclick: (e) => act(e.target, onShowAll) }, "Show all") : ""));
  }
  return el("div", {}, parts);
}

const DEAD_LETTER_FIELDS = [["topic", "Original topic"], ["partition", "Original partition"], ["offset", "Original offset"],
  ["connector", "Connector"], ["task", "Task"], ["stage", "Stage"], ["class", "Class"], ["exception", "Exception"], ["message", "Message"]];

function recordDetail(topic, record, container) {
  const showAll = async () => {
    const full = await api("GET", `/ui/api/topics/${enc(topic)}/messages?partition=${record.partition}&offset=${record.offset}&limit=1&max_bytes=${Math.max(record.value ? record.value.size : 0, record.key ? record.key.size : 0, 16)}`);
    if (full.records.length) recordDetail(topic, full.records[0], container);
  };
  const dl = record.dead_letter;
  container.replaceChildren(el("div", { class: "card", id: "record-detail" },
    el("h2", {}, `Partition ${record.partition}, offset ${record.offset}`),
    el("p", { class: "muted" }, fmtTime(record.timestamp)),
    dl ? el("section", {}, el("h2", {}, "Why it failed"),
      el("table", { class: "kv", id: "dead-letter" }, el("tbody", {}, DEAD_LETTER_FIELDS.map(([k, label]) =>
        el("tr", { "data-header": k }, el("th", {}, label), el("td", { class: "mono" }, dl[k] === null ? "" : String(dl[k])))))),
      dl.stacktrace ? el("details", {}, el("summary", {}, "Stack trace"), el("pre", {}, dl.stacktrace)) : "") : "",
    el("h2", {}, "Key"), fieldView(record.key, showAll),
    el("h2", {}, "Value"), fieldView(record.value, showAll),
    el("h2", {}, "Headers"),
    record.headers.length ? el("table", { class: "kv" }, el("tbody", {}, record.headers.map((h) =>
      el("tr", {}, el("th", { class: "mono" }, h.key), el("td", {}, h.value ? preview(h.value) : "null"))))) : el("p", { class: "muted" }, "none")));
}

function readControls(onRead, partitions) {
  const partition = el("select", { id: "partition", "aria-label": "Partition" }, el("option", { value: "" }, "All partitions"),
    (partitions || []).map((p) => el("option", { value: String(p.partition) }, `Partition ${p.partition}`)));
  const from = el("select", { id: "from", "aria-label": "Start from" }, el("option", { value: "beginning" }, "From the beginning"),
    el("option", { value: "offset" }, "From offset"), el("option", { value: "time" }, "From time"));
  const offset = el("input", { type: "number", id: "from-offset", "aria-label": "Offset", min: 0, hidden: true, placeholder: "offset" });
  const time = el("input", { type: "datetime-local", id: "from-time", "aria-label": "Time (UTC)", step: 1, hidden: true });
  const limit = el("input", { type: "number", id: "limit", "aria-label": "Records", value: "50", min: 1, max: 500 });
  from.addEventListener("change", () => { offset.hidden = from.value !== "offset"; time.hidden = from.value !== "time"; });
  const read = el("button", { class: "primary", id: "read" }, "Read");
  read.addEventListener("click", () => {
    const q = new URLSearchParams();
    if (partition.value !== "") q.set("partition", partition.value);
    if (from.value === "offset" && offset.value !== "") q.set("offset", offset.value);
    if (from.value === "time" && time.value) q.set("timestamp", String(Date.parse(time.value + "Z")));
    q.set("limit", limit.value || "50");
    act(read, () => onRead(q.toString()), (n) => `${n} record(s)`);
  });
  return { node: el("div", { class: "toolbar" }, partition, from, offset, time, el("label", { for: "limit" }, "Records"), limit, read), read };
}

// ---------- topics ----------

async function pageTopics(root) {
  const showInternal = el("input", { type: "checkbox", id: "internal" });
  const tbody = el("tbody");
  const err = el("p", { class: "error", role: "alert" });
  root.append(el("h1", {}, "Topics"), el("div", { class: "toolbar" }, showInternal, el("label", { for: "internal" }, "Show internal topics")), err,
    el("table", { id: "topics" }, el("thead", {}, el("tr", {}, el("th", {}, "Topic"), el("th", { class: "num" }, "Partitions"), el("th", { class: "num" }, "Records (end − start offsets)"))), tbody),
    el("p", { class: "muted" }, "Sizes are in records (offset ranges); the Kafka client the worker uses cannot ask for log sizes in bytes."));
  let topics = [];
  const render = () => tbody.replaceChildren(...topics.filter((t) => showInternal.checked || !t.internal).map((t) =>
    el("tr", { "data-topic": t.name }, el("td", {}, el("a", { href: "#/topic/" + enc(t.name) }, t.name)), el("td", { class: "num" }, String(t.partitions.length)), el("td", { class: "num" }, fmtNum(t.records)))));
  showInternal.addEventListener("change", render);
  try { topics = (await api("GET", "/ui/api/topics")).topics; } catch (e) { err.textContent = e.message; }
  render();
}

async function pageTopic(root, topic) {
  const info = await api("GET", `/ui/api/topics/${enc(topic)}`);
  const results = el("tbody");
  const detail = el("div");
  let records = [];
  const controls = readControls(async (q) => {
    const data = await api("GET", `/ui/api/topics/${enc(topic)}/messages?${q}`);
    records = data.records;
    results.replaceChildren(...records.map((r, i) => el("tr", { "data-offset": r.offset, "data-partition": r.partition },
      el("td", { class: "num" }, String(r.partition)), el("td", { class: "num" }, String(r.offset)), el("td", {}, fmtTime(r.timestamp)),
      el("td", { class: "clip mono" }, preview(r.key)), el("td", { class: "clip mono" }, preview(r.value)), el("td", { class: "num" }, String(r.headers.length)),
      el("td", {}, el("button", { class: "open", onclick: () => recordDetail(topic, records[i], detail) }, "Open")))));
    return records.length;
  }, info.partitions);
  root.append(el("h1", {}, "Topic ", el("span", { class: "mono" }, topic)),
    el("div", { class: "grid2" },
      el("section", {}, el("h2", {}, "Partitions"), el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Partition"), el("th", { class: "num" }, "Start offset"), el("th", { class: "num" }, "End offset"))),
        el("tbody", {}, info.partitions.map((p) => el("tr", {}, el("td", {}, String(p.partition)), el("td", { class: "num" }, fmtNum(p.low)), el("td", { class: "num" }, fmtNum(p.high))))))),
      el("section", {}, el("h2", {}, "Configuration"), el("details", {}, el("summary", {}, `${info.configs.filter((c) => !c.default).length} set, ${info.configs.length} in all`),
        el("table", { class: "kv" }, el("tbody", {}, info.configs.map((c) => el("tr", {}, el("th", { class: "mono" }, c.name), el("td", { class: "mono" }, c.sensitive ? MASK : (c.value ?? ""), c.default ? el("span", { class: "muted" }, " (default)") : "")))))))),
    el("h2", {}, "Messages"), controls.node,
    el("table", { id: "messages" }, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Partition"), el("th", { class: "num" }, "Offset"), el("th", {}, "Time (UTC)"), el("th", {}, "Key"), el("th", {}, "Value"), el("th", { class: "num" }, "Headers"), el("th", {}, ""))), results),
    detail);
}

// ---------- dead letters ----------

async function pageDeadLetters(root, topic) {
  const picker = el("select", { id: "dlq-topic", "aria-label": "Dead letter topic" }, el("option", { value: "" }, "Choose a dead letter topic…"));
  try {
    const connectors = await api("GET", "/connectors?expand=info");
    const topics = new Map();
    for (const [name, c] of Object.entries(connectors)) {
      const t = ((c.info || {}).config || {})["errors.deadletterqueue.topic.name"];
      if (t) topics.set(t, [...(topics.get(t) || []), name]);
    }
    for (const [t, names] of topics) picker.append(el("option", { value: t }, `${t} (${names.join(", ")})`));
  } catch (_) { /* the free text box still works */ }
  const other = el("input", { type: "text", id: "dlq-other", placeholder: "or any topic name", "aria-label": "Dead letter topic name" });
  const open = el("button", { onclick: () => { const t = other.value.trim() || picker.value; if (t) location.hash = "#/dlq/" + enc(t); } }, "Open");
  root.append(el("h1", {}, "Dead letters", topic ? el("span", { class: "mono" }, " " + topic) : ""), el("div", { class: "toolbar" }, picker, other, open));
  if (!topic) return;
  picker.value = topic;
  let info;
  try { info = await api("GET", `/ui/api/topics/${enc(topic)}`); } catch (e) { root.append(el("p", { class: "error" }, e.message)); return; }
  const groupsBox = el("div", { id: "dlq-groups" });
  const detail = el("div");
  const selected = new Map();
  const replayButton = el("button", { id: "replay" }, "Replay selected…");
  const confirmBox = el("div", { class: "warning", hidden: true, id: "replay-confirm" });
  const replayResult = el("div", { id: "replay-result" });
  let records = [];
  const controls = readControls(async (q) => {
    const data = await api("GET", `/ui/api/topics/${enc(topic)}/messages?${q}`);
    records = data.records;
    selected.clear();
    renderGroups();
    return records.length;
  }, info.partitions);
  function renderGroups() {
    const groups = new Map();
    for (const r of records) {
      const dl = r.dead_letter || {};
      const key = dl.exception || "(no context headers)";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    }
    groupsBox.replaceChildren(...[...groups.entries()].sort((a, b) => b[1].length - a[1].length).map(([exception, list]) =>
      el("details", { class: "card", open: true, "data-exception": exception },
        el("summary", {}, el("strong", {}, exception), ` — ${list.length} record(s)`),
        el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "Partition/offset"), el("th", {}, "Original"), el("th", {}, "Stage"), el("th", {}, "Message"), el("th", {}, ""))),
          el("tbody", {}, list.map((r) => {
            const dl = r.dead_letter || {};
            const id = `${r.partition}:${r.offset}`;
            return el("tr", { "data-record": id },
              el("td", {}, el("input", { type: "checkbox", "aria-label": `Select record ${id}`, checked: selected.has(id),
                onchange: (e) => { e.target.checked ? selected.set(id, r) : selected.delete(id); } })),
              el("td", { class: "mono" }, `${r.partition} @ ${r.offset}`),
              el("td", { class: "mono" }, dl.topic ? `${dl.topic}-${dl.partition} @ ${dl.offset}` : ""),
              el("td", {}, dl.stage || ""),
              el("td", { class: "clip" }, dl.message || ""),
              el("td", {}, el("button", { class: "open", onclick: () => recordDetail(topic, r, detail) }, "Open")));
          }))))));
  }
  replayButton.addEventListener("click", () => {
    if (selected.size === 0) { statusFor(replayButton).error(new Error("select one or more records first")); return; }
    statusFor(replayButton).clear();
    const chosen = [...selected.values()];
    const yes = el("button", { class: "primary", id: "replay-confirm-yes" }, `Produce ${chosen.length} record(s) again`);
    const no = el("button", { onclick: () => { confirmBox.hidden = true; } }, "Cancel");
    yes.addEventListener("click", () => act(yes, async () => {
      const answer = await api("POST", `/ui/api/topics/${enc(topic)}/replay`, { records: chosen.map((r) => ({ partition: r.partition, offset: r.offset })) });
      confirmBox.hidden = true;
      replayResult.replaceChildren(el("p", { class: "ok" }, `Replayed ${answer.replayed.length} record(s):`),
        el("ul", {}, answer.replayed.map((x) => el("li", { class: "mono" }, `${x.from.partition} @ ${x.from.offset} → ${x.topic}-${x.partition} @ ${x.offset}`))));
    }));
    confirmBox.replaceChildren(el("p", {}, `Replay produces the ${chosen.length} selected record(s) again to their original topics, with their key, value, timestamp and headers (not the error headers). `,
      el("strong", {}, "A record replayed twice is produced twice."), " The dead letters stay where they are."), el("div", { class: "toolbar" }, yes, no));
    confirmBox.hidden = false;
    yes.focus();
  });
  root.append(el("p", { class: "muted" }, "Records are grouped by the exception that sent them here. Select some to replay them to the topic they came from."),
    controls.node, el("div", { class: "toolbar" }, replayButton), confirmBox, replayResult, groupsBox, detail);
  controls.read.click();
}

// ---------- consumer groups ----------

async function pageGroups(root) {
  const err = el("p", { class: "error", role: "alert" });
  const tbody = el("tbody");
  root.append(el("h1", {}, "Consumer groups"), err,
    el("table", { id: "groups" }, el("thead", {}, el("tr", {}, el("th", {}, "Group"), el("th", {}, "State"), el("th", {}, "Protocol"), el("th", { class: "num" }, "Members"))), tbody));
  try {
    const data = await api("GET", "/ui/api/groups");
    tbody.replaceChildren(...data.groups.map((g) => el("tr", { "data-group": g.name }, el("td", {}, el("a", { href: "#/group/" + enc(g.name) }, g.name)),
      el("td", {}, g.state), el("td", {}, g.protocol_type), el("td", { class: "num" }, String(g.members)))));
  } catch (e) { err.textContent = e.message; }
}

async function pageGroup(root, group) {
  const token = pageToken;
  const err = el("p", { class: "error", role: "alert" });
  const body = el("div");
  root.append(el("h1", {}, "Consumer group ", el("span", { class: "mono" }, group)), err, body);
  async function load() {
    let g;
    try { g = await api("GET", `/ui/api/groups/${enc(group)}`); err.textContent = ""; } catch (e) { err.textContent = e.message; return; }
    const total = g.partitions.reduce((s, p) => s + (p.lag || 0), 0);
    const members = g.members.length
      ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Member"), el("th", {}, "Client"), el("th", {}, "Host"), el("th", {}, "Assignment"))),
        el("tbody", {}, g.members.map((m) => el("tr", {}, el("td", { class: "mono" }, m.id), el("td", {}, m.client_id), el("td", {}, m.host),
          el("td", { class: "mono" }, m.assignment ? Object.entries(m.assignment).map(([t, ps]) => `${t}: ${ps.join(",")}`).join("; ") : "")))))
      : el("p", { class: "muted" }, "No members.");
    const lagRows = g.partitions.map((p) => el("tr", {}, el("td", {}, p.topic), el("td", { class: "num" }, String(p.partition)),
      el("td", { class: "num" }, p.committed === null ? "none" : fmtNum(p.committed)), el("td", { class: "num" }, fmtNum(p.end)),
      el("td", { class: "num" }, p.lag === null ? "" : fmtNum(p.lag)), el("td", { class: "mono" }, p.member || "")));
    const lag = el("table", { id: "lag" }, el("thead", {}, el("tr", {}, el("th", {}, "Topic"), el("th", { class: "num" }, "Partition"), el("th", { class: "num" }, "Committed"),
      el("th", { class: "num" }, "End"), el("th", { class: "num" }, "Lag"), el("th", {}, "Member"))), el("tbody", {}, lagRows));
    body.replaceChildren(el("p", {}, `State ${g.state || "unknown"} · ${g.protocol_type || ""} · total lag ${fmtNum(total)}`),
      el("h2", {}, "Members"), members, el("h2", {}, "Lag per partition"), lag);
  }
  await load();
  every(token, 5000, load);
}
