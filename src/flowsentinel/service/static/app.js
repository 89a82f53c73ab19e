// flowsentinel web page: upload a file, show each flow's identity and verdict, who sends the
// flagged flows to whom, and one flow's whole record on request.
// Plain browser JavaScript, no library, nothing loaded from elsewhere.
"use strict";

const SHOWN_ROWS = 1000;
const FLAGGED = "\u0000flagged"; // the filter value "every verdict but the benign class"
const state = {
  models: [], defaultModel: null,
  out: null, benign: "BENIGN", columns: [], sort: { key: "row", dir: 1 }, filter: "",
};

// The verdict table's columns: the record field, its heading, how a value is shown and whether
// the column needs the flow's identity (a JSON upload scored by /v1/predict has none).
const COLUMNS = [
  { key: "row", title: "#", identity: true },
  { key: "label", title: "verdict" },
  { key: "incident_id", title: "incident", identity: true },
  { key: "attack_probability", title: "attack prob.", show: pct },
  { key: "start", title: "start (UTC)", identity: true, show: shortTime },
  { key: "src_ip", title: "source", identity: true },
  { key: "src_port", title: "src port", identity: true },
  { key: "dst_ip", title: "destination", identity: true },
  { key: "dst_port", title: "dst port", identity: true },
  { key: "protocol", title: "proto", identity: true },
  { key: "duration_s", title: "duration (s)", identity: true, show: (v) => v.toFixed(3) },
  { key: "fwd_packets", title: "pkts →", identity: true },
  { key: "bwd_packets", title: "pkts ←", identity: true },
  { key: "fwd_bytes", title: "bytes →", identity: true },
  { key: "bwd_bytes", title: "bytes ←", identity: true },
  { key: "probability", title: "probability", show: pct },
  { key: "true_label", title: "label in file", optional: true },
];

function $(id) { return document.getElementById(id); }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = $("api-key").value.trim();
  if (key) { h["X-API-Key"] = key; localStorage.setItem("flowsentinel-api-key", key); }
  return h;
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function describeError(status, body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  if (body && body.detail) { return String(body.detail); }
  return `HTTP ${status}`;
}

async function loadModels() {
  try {
    const res = await fetch("/v1/models", { headers: headers() });
    const body = await res.json();
    if (!res.ok) { $("model-line").textContent = describeError(res.status, body); return; }
    state.models = body.models;
    state.defaultModel = body.default;
    const select = $("model-select");
    select.textContent = "";
    const auto = document.createElement("option");
    auto.value = "";
    auto.textContent = "automatic (by the file's data set)";
    select.appendChild(auto);
    for (const m of body.models) {
      const opt = document.createElement("option");
      opt.value = m.name + (m.version ? "/" + m.version : "");
      opt.textContent = `${m.name} v${m.version ?? "?"} (${m.dataset_title}, ${m.task}, ${m.model})`;
      select.appendChild(opt);
    }
    $("model-line").textContent = "Serving " + body.models
      .map((m) => `${m.name} version ${m.version ?? "?"} (${m.dataset_title} ${m.task}, ${m.model})`)
      .join(" · ");
  } catch (err) {
    $("model-line").textContent = "cannot reach the server: " + err;
  }
}

function toFlows(doc) {
  if (Array.isArray(doc)) { return { flows: doc }; }
  if (doc && typeof doc === "object" && Array.isArray(doc.flows)) { return { flows: doc.flows }; }
  return { flows: [doc] };
}

async function scoreJson(file, model) {
  let doc;
  try { doc = JSON.parse(await file.text()); } catch (err) {
    throw new Error("the file is not valid JSON: " + err.message);
  }
  const body = toFlows(doc);
  if (model) { body.model = model; }
  const res = await fetch("/v1/predict", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  const out = await res.json();
  if (!res.ok) { throw new Error(describeError(res.status, out)); }
  return out;
}

async function scoreFiles(files, model) {
  const form = new FormData();
  for (const file of files) { form.append("file", file, file.name); }
  if (model) { form.append("model", model); }
  const res = await fetch("/v1/scan", { method: "POST", headers: headers(), body: form });
  const out = await res.json();
  if (!res.ok) { throw new Error(describeError(res.status, out)); }
  return out;
}

function pct(p) { return (100 * p).toFixed(1) + " %"; }

function shortTime(iso) { return iso.replace("T", " ").replace(/\+00:00$/, ""); }

function shown(column, value) {
  if (value === null || value === undefined) { return ""; }
  return column.show ? column.show(value) : String(value);
}

function chart(summary, benign) {
  const entries = Object.entries(summary).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const rowH = 28, labelW = 140, barW = 320, width = labelW + barW + 80;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", entries.length * rowH + 8);
  svg.setAttribute("role", "img");
  entries.forEach(([label, count], i) => {
    const y = i * rowH + 4;
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", labelW - 8); text.setAttribute("y", y + 17);
    text.setAttribute("text-anchor", "end");
    text.textContent = label;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", labelW); bar.setAttribute("y", y);
    bar.setAttribute("width", Math.max(2, (barW * count) / max)); bar.setAttribute("height", rowH - 8);
    bar.setAttribute("class", label === benign ? "bar benign" : "bar attack");
    bar.setAttribute("data-label", label);
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", labelW + Math.max(2, (barW * count) / max) + 6); value.setAttribute("y", y + 17);
    value.textContent = String(count);
    svg.append(text, bar, value);
  });
  return svg;
}

function ipKey(text) {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!v4) { return "1" + text; }
  return "0" + v4.slice(1).map((o) => o.padStart(3, "0")).join(".");
}

function sortValue(key, value) {
  if (value === null || value === undefined) { return null; }
  return key === "src_ip" || key === "dst_ip" ? ipKey(value) : value;
}

function compareRows(key, dir) {
  return (a, b) => {
    const x = sortValue(key, a[key]), y = sortValue(key, b[key]);
    if (x === y) { return (a.row ?? 0) - (b.row ?? 0); }
    if (x === null) { return 1; } // missing values last, either direction
    if (y === null) { return -1; }
    if (typeof x === "number" && typeof y === "number") { return dir * (x - y); }
    return dir * String(x).localeCompare(String(y));
  };
}

function visibleRows() {
  const out = state.out;
  let rows = out.predictions.map((p, i) => (p.row === undefined ? Object.assign({ row: i }, p) : p));
  if (state.filter === FLAGGED) {
    rows = rows.filter((p) => p.label !== state.benign);
  } else if (state.filter) {
    rows = rows.filter((p) => p.label === state.filter);
  }
  return rows.slice().sort(compareRows(state.sort.key, state.sort.dir));
}

function renderHead() {
  const tr = $("verdicts").querySelector("thead tr");
  tr.textContent = "";
  for (const c of state.columns) {
    const th = document.createElement("th");
    th.dataset.key = c.key;
    const sorted = state.sort.key === c.key;
    th.setAttribute("aria-sort", sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = c.title + (sorted ? (state.sort.dir > 0 ? " ▲" : " ▼") : "");
    button.addEventListener("click", () => sortBy(c.key));
    th.appendChild(button);
    tr.appendChild(th);
  }
}

function verdictCell(td, p) {
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = p.label;
  td.appendChild(label);
  td.classList.add("verdict");
  if (p.in_distribution === false) {
    const mark = document.createElement("span");
    mark.className = "novel";
    mark.title = "unlike the flows the model was trained on";
    mark.textContent = "novel traffic";
    td.append(" ", mark);
  }
}

function renderRows() {
  const rows = visibleRows();
  const tbody = $("verdicts").querySelector("tbody");
  tbody.textContent = "";
  rows.slice(0, SHOWN_ROWS).forEach((p) => {
    const tr = document.createElement("tr");
    // a flow in an incident is part of an attack, whatever the flow model said of it alone
    tr.className = p.label === state.benign && !p.incident_id ? "benign" : "attack";
    if (p.in_distribution === false) { tr.classList.add("novel-row"); }
    tr.tabIndex = 0;
    tr.dataset.row = String(p.row);
    for (const c of state.columns) {
      const td = document.createElement("td");
      td.classList.add("col-" + c.key);
      if (c.key === "label") { verdictCell(td, p); } else { td.textContent = shown(c, p[c.key]); }
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => openDetail(p));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") { openDetail(p); } });
    tbody.appendChild(tr);
  });
  const total = state.out.predictions.length;
  $("shown").textContent = `${rows.length} of ${total} flow(s)`;
  const more = rows.length - SHOWN_ROWS;
  $("truncated").hidden = more <= 0;
  $("truncated").textContent = more > 0 ? `${more} more flow(s) not shown` : "";
}

function sortBy(key) {
  state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: 1 };
  renderHead();
  renderRows();
}

function renderFilter(summary) {
  const select = $("verdict-filter");
  select.textContent = "";
  const options = [["", "all verdicts"], [FLAGGED, `flagged (not ${state.benign})`]];
  for (const label of Object.keys(summary).sort()) { options.push([label, label]); }
  for (const [value, text] of options) {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = text;
    select.appendChild(opt);
  }
  select.value = state.filter;
}

// The share of novel flows (a scan's summary, or counted from the verdicts of a batch) and
// the features most often out of range; the warning when more than a fifth is novel.
function renderNovelty(out) {
  const el = $("novelty-summary");
  let found = out.novelty;
  if (!found) {
    const judged = out.predictions.filter((p) => typeof p.in_distribution === "boolean");
    if (judged.length === 0) { el.hidden = true; return; }
    const novel = judged.filter((p) => !p.in_distribution).length;
    found = { novel_flows: novel, novel_share: novel / judged.length, out_of_range: [], warning: null };
  }
  const ranges = found.out_of_range.map((o) => `${o.feature} (${o.flows})`).join(", ");
  el.textContent = `Novel flows (unlike the training rows): ${found.novel_flows} ` +
    `(${(100 * found.novel_share).toFixed(1)} %)` +
    (ranges ? ` · most often out of range: ${ranges}` : "") +
    (found.warning ? ` · warning: ${found.warning}` : "");
  el.hidden = false;
}

function renderSources(sources) {
  $("sources-block").hidden = !sources || sources.length === 0;
  const tbody = $("sources").querySelector("tbody");
  tbody.textContent = "";
  for (const s of sources || []) {
    const tr = document.createElement("tr");
    if (s.flagged > 0) { tr.className = "attack"; }
    for (const value of [s.source, s.flows, s.flagged, s.top_destination ?? ""]) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
}

function plain(value) {
  if (value === null || value === undefined) { return "—"; }
  if (typeof value === "number" && !Number.isInteger(value)) { return String(Number(value.toPrecision(10))); }
  return String(value);
}

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.appendChild(td);
}

function openDetail(p) {
  const panel = $("detail");
  const who = p.src_ip ? ` ${p.src_ip}:${p.src_port ?? "?"} → ${p.dst_ip ?? "?"}:${p.dst_port ?? "?"}` : "";
  $("detail-title").textContent = `Flow ${p.row ?? ""}${who}`;
  $("detail-novel").hidden = p.in_distribution !== false;
  const fields = $("detail-fields").querySelector("tbody");
  fields.textContent = "";
  for (const [key, value] of Object.entries(p)) {
    if (key === "reasons") { continue; }
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = key;
    tr.appendChild(th);
    cell(tr, plain(value));
    fields.appendChild(tr);
  }
  const reasons = Array.isArray(p.reasons) ? p.reasons : [];
  $("detail-reasons").hidden = reasons.length === 0;
  const body = $("detail-reasons").querySelector("tbody");
  body.textContent = "";
  for (const r of reasons) {
    const tr = document.createElement("tr");
    cell(tr, r.text ?? r.feature ?? "");
    cell(tr, plain(r.value));
    cell(tr, typeof r.contribution === "number" ? r.contribution.toFixed(4) : "");
    body.appendChild(tr);
  }
  panel.hidden = false;
  $("detail-close").focus();
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) { el.setAttribute(k, String(v)); }
  return el;
}

function incidentTarget(i) {
  if (i.target_port === null || i.target_port === undefined) { return i.target_ip; }
  return i.target_ip.includes(":") ? `[${i.target_ip}]:${i.target_port}` : `${i.target_ip}:${i.target_port}`;
}

// One bar per incident on a shared time axis (inline SVG, no library).
function timeline(incidents) {
  const t0 = Math.min(...incidents.map((i) => i.first_us));
  const t1 = Math.max(...incidents.map((i) => i.last_us));
  const span = Math.max(1, t1 - t0);
  const width = 640, left = 150, row = 18;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${incidents.length * row + 20}`, role: "img",
                             class: "timeline" });
  incidents.forEach((i, k) => {
    const y = k * row;
    const label = svgEl("text", { x: 0, y: y + 13, "font-size": 11 });
    label.textContent = `${i.id} ${incidentTarget(i)}`;
    svg.appendChild(label);
    const x = left + ((i.first_us - t0) / span) * (width - left - 10);
    const w = Math.max(3, ((i.last_us - i.first_us) / span) * (width - left - 10));
    const bar = svgEl("rect", { x, y: y + 3, width: w, height: row - 6, rx: 2,
                                class: `bar ${i.family === "PortScan" ? "scan" : "attack"}` });
    const tip = svgEl("title", {});
    tip.textContent = `${i.label}: ${i.to_target.packets} packets, ${i.duration_s.toFixed(1)} s`;
    bar.appendChild(tip);
    svg.appendChild(bar);
  });
  const axis = svgEl("text", { x: left, y: incidents.length * row + 14, "font-size": 10 });
  axis.textContent = `${shortTime(new Date(t0 / 1000).toISOString())} → ${((t1 - t0) / 1e6).toFixed(1)} s`;
  svg.appendChild(axis);
  return svg;
}

function renderIncidents(incidents) {
  const list = incidents || [];
  $("incidents-block").hidden = list.length === 0;
  const holder = $("incident-timeline");
  holder.textContent = "";
  const tbody = $("incidents").querySelector("tbody");
  tbody.textContent = "";
  if (list.length === 0) { return; }
  holder.appendChild(timeline(list));
  for (const i of list) {
    const tr = document.createElement("tr");
    tr.className = "attack";
    for (const value of [i.id, i.family, i.label, incidentTarget(i), shortTime(i.first),
      i.duration_s.toFixed(1), i.to_target.packets, i.flows, i.sources,
      i.spoofing_suspected ? "yes" : "", i.confidence.toFixed(2)]) {
      cell(tr, String(value));
    }
    tbody.appendChild(tr);
  }
}

function render(out) {
  $("results").hidden = false;
  $("detail").hidden = true;
  const model = state.models.find((m) => m.name === out.model || m.name + "/" + m.version === out.model);
  const benign = model ? model.classes[0] : "BENIGN";
  state.out = out;
  state.benign = benign;
  state.sort = { key: "row", dir: 1 };
  state.filter = "";
  const first = out.predictions[0] || {};
  const hasIdentity = "src_ip" in first;
  const hasTruth = out.predictions.some((p) => p.true_label !== undefined && p.true_label !== null);
  state.columns = COLUMNS.filter((c) => (!c.identity || hasIdentity) && (!c.optional || hasTruth));
  if (!hasIdentity) { state.columns.unshift({ key: "row", title: "#" }); }
  $("result-model").textContent =
    `model ${out.model} version ${out.version ?? "?"} (${out.dataset}, ${out.task})` +
    (out.source ? ` · read as ${out.source}` : "");
  const attacks = out.attack_flows ?? out.predictions.filter((p) => p.label !== benign).length;
  $("summary").textContent = `${out.n_flows} flow(s): ${attacks} attack, ${out.n_flows - attacks} benign · ` +
    Object.entries(out.summary).map(([k, v]) => `${k}: ${v}`).join(", ");
  const holder = $("chart");
  holder.textContent = "";
  holder.appendChild(chart(out.summary, benign));
  renderNovelty(out);
  renderIncidents(out.incidents);
  renderSources(out.sources);
  renderFilter(out.summary);
  renderHead();
  renderRows();
}

async function onSubmit(event) {
  event.preventDefault();
  const files = Array.from($("file-input").files);
  const file = files[0];
  if (!file) { setStatus("choose a file first", true); return; }
  const model = $("model-select").value || null;
  const names = files.length === 1 ? file.name : `${files.length} captures`;
  setStatus(`scoring ${names}…`, false);
  $("submit-button").disabled = true;
  try {
    const isJson = file.name.toLowerCase().endsWith(".json") || file.type === "application/json";
    if (isJson && files.length > 1) { throw new Error("score one JSON file at a time"); }
    const out = isJson ? await scoreJson(file, model) : await scoreFiles(files, model);
    render(out);
    setStatus(`scored ${out.n_flows} flow(s) from ${names}`, false);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    $("submit-button").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem("flowsentinel-api-key") || "";
  $("upload-form").addEventListener("submit", onSubmit);
  $("verdict-filter").addEventListener("change", (e) => { state.filter = e.target.value; renderRows(); });
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") { $("detail").hidden = true; } });
  $("api-key").addEventListener("change", loadModels);
  loadModels();
});
