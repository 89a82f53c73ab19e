// flowsentinel web page: upload a file, show each flow's verdict and a summary chart.
// Plain browser JavaScript, no library, nothing loaded from elsewhere.
"use strict";

const SHOWN_ROWS = 1000;
const state = { models: [], defaultModel: null };

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

async function scoreFile(file, model) {
  const form = new FormData();
  form.append("file", file, file.name);
  if (model) { form.append("model", model); }
  const res = await fetch("/v1/scan", { method: "POST", headers: headers(), body: form });
  const out = await res.json();
  if (!res.ok) { throw new Error(describeError(res.status, out)); }
  return out;
}

function pct(p) { return (100 * p).toFixed(1) + " %"; }

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

function render(out) {
  $("results").hidden = false;
  const model = state.models.find((m) => m.name === out.model || m.name + "/" + m.version === out.model);
  const benign = model ? model.classes[0] : "BENIGN";
  $("result-model").textContent =
    `model ${out.model} version ${out.version ?? "?"} (${out.dataset}, ${out.task})` +
    (out.source ? ` · read as ${out.source}` : "");
  const attacks = out.attack_flows ?? out.predictions.filter((p) => p.label !== benign).length;
  $("summary").textContent = `${out.n_flows} flow(s): ${attacks} attack, ${out.n_flows - attacks} benign · ` +
    Object.entries(out.summary).map(([k, v]) => `${k}: ${v}`).join(", ");
  const holder = $("chart");
  holder.textContent = "";
  holder.appendChild(chart(out.summary, benign));
  const tbody = $("verdicts").querySelector("tbody");
  tbody.textContent = "";
  out.predictions.slice(0, SHOWN_ROWS).forEach((p, i) => {
    const tr = document.createElement("tr");
    tr.className = p.label === benign ? "benign" : "attack";
    const cells = [String(p.row ?? i), p.label, pct(p.probability), pct(p.attack_probability),
      p.true_label ?? ""];
    cells.forEach((c, j) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (j === 1) { td.className = "verdict"; }
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  });
  const more = out.predictions.length - SHOWN_ROWS;
  $("truncated").hidden = more <= 0;
  $("truncated").textContent = more > 0 ? `${more} more flow(s) not shown` : "";
}

async function onSubmit(event) {
  event.preventDefault();
  const file = $("file-input").files[0];
  if (!file) { setStatus("choose a file first", true); return; }
  const model = $("model-select").value || null;
  setStatus(`scoring ${file.name}…`, false);
  $("submit-button").disabled = true;
  try {
    const isJson = file.name.toLowerCase().endsWith(".json") || file.type === "application/json";
    const out = isJson ? await scoreJson(file, model) : await scoreFile(file, model);
    render(out);
    setStatus(`scored ${out.n_flows} flow(s) from ${file.name}`, false);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    $("submit-button").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem("flowsentinel-api-key") || "";
  $("upload-form").addEventListener("submit", onSubmit);
  $("api-key").addEventListener("change", loadModels);
  loadModels();
});
