// mdlm ui: hand-written, no dependencies. Every value from the server is
// inserted as text (textContent, SVG attributes), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
const CURVES = [
  ["loss", "training loss"], ["val_ppl", "validation perplexity"], ["lr", "learning rate"],
  ["grad_norm", "gradient norm"], ["tokens_per_sec", "tokens per second"], ["val_gen_ppl", "generative perplexity"],
];
const POLL_MS = 3000;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()));
  return r.json();
}
function status(msg) { document.getElementById("status").textContent = msg; }
function human(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + " " + u[i];
}

// ---- views ----
const views = {graph: loadGraph, curves: loadCurves, table: loadTable, samples: loadSamples};
let current = "graph", selected = "", timer = null;

function show() {
  // #graph=STAGE opens that stage's details (a link to share, a screenshot).
  [current, selected] = decodeURIComponent((location.hash || "#graph").slice(1)).split("=");
  if (!views[current]) current = "graph";
  for (const s of document.querySelectorAll(".view")) s.classList.toggle("active", s.id === "view-" + current);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === current);
  refresh();
}
async function refresh() {
  clearTimeout(timer);
  const view = current;
  try {
    await views[view]();
    status("updated " + new Date().toLocaleTimeString());
  } catch (e) {
    status("error: " + e.message);
  }
  if (view === current) timer = setTimeout(refresh, POLL_MS);
}

// ---- pipeline graph ----
async function loadGraph() {
  const graphs = await getJSON("/api/graph");
  const box = document.getElementById("graphs");
  box.replaceChildren();
  if (graphs.length === 0) box.append(el("p", {}, "No pipeline given: run `mdlm ui PIPELINE.yaml` to see its graph."));
  for (const g of graphs) box.append(drawGraph(g));
  // The stage asked for, else the first that failed: its error at a glance.
  const all = graphs.flatMap(g => g.stages);
  const s = all.find(s => s.name === (shown || selected)) || all.find(s => s.state === "failed");
  if (s) details(s);
}
let shown = "";

function layers(stages) {
  const depth = {};
  const by = Object.fromEntries(stages.map(s => [s.name, s]));
  const d = (name, seen) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name) || !by[name]) return 0;
    seen.add(name);
    let m = 0;
    for (const from of Object.values(by[name].inputs || {})) m = Math.max(m, d(from, seen) + 1);
    return (depth[name] = m);
  };
  for (const s of stages) d(s.name, new Set());
  return depth;
}

function drawGraph(g) {
  const wrap = el("div", {class: "pipeline", "data-pipeline": g.name});
  wrap.append(el("h2", {}, g.name + " (" + g.path + ")"));
  if (g.error) wrap.append(el("p", {class: "error"}, g.error));
  const depth = layers(g.stages);
  const rows = {}, pos = {};
  const W = 140, H = 46, DX = 168, DY = 62;
  for (const s of g.stages) {
    const x = depth[s.name] || 0;
    rows[x] = (rows[x] || 0) + 1;
    pos[s.name] = {x: 10 + x * DX, y: 10 + (rows[x] - 1) * DY};
  }
  const width = 20 + (Math.max(0, ...Object.keys(rows).map(Number)) + 1) * DX;
  const height = 20 + Math.max(1, ...Object.values(rows)) * DY;
  const root = svg("svg", {width, height, class: "graph"});
  for (const s of g.stages) {
    for (const from of Object.values(s.inputs || {})) {
      if (!pos[from]) continue;
      const a = pos[from], b = pos[s.name];
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      root.append(svg("path", {class: "edge", d: `M${x1},${y1} C${x1 + 25},${y1} ${x2 - 25},${y2} ${x2},${y2}`}));
    }
  }
  for (const s of g.stages) {
    const p = pos[s.name];
    const node = svg("g", {class: "node " + s.state, "data-stage": s.name, "data-state": s.state, transform: `translate(${p.x},${p.y})`});
    node.append(svg("rect", {width: W, height: H}));
    node.append(svg("text", {x: 8, y: 18}, s.name.length > 20 ? s.name.slice(0, 19) + "…" : s.name));
    const label = s.kind + " · " + stateLabel(s.state);
    node.append(svg("text", {x: 8, y: 36, class: "kind"}, label));
    node.append(svg("title", {}, s.name + ": " + label + (s.error ? "\n" + s.error : "") + (s.reasons ? "\n" + s.reasons.join("\n") : "")));
    node.addEventListener("click", () => details(s));
    root.append(node);
  }
  wrap.append(root);
  return wrap;
}

function details(s) {
  shown = s.name;
  const d = document.getElementById("details");
  d.replaceChildren(el("h2", {}, s.name), el("div", {class: "meta"}, s.kind + " · " + stateLabel(s.state, true)));
  if (s.since) d.append(el("div", {class: "meta"}, (s.state === "failed" ? "failed at " : "since ") + new Date(s.since).toLocaleString()));
  if (s.error) d.append(el("h2", {}, s.state === "failed" ? "error" : "note"), el("pre", {class: "error stage-error", "data-stage": s.name}, s.error));
  if (s.reasons && s.reasons.length) {
    const ul = el("ul");
    for (const r of s.reasons) ul.append(el("li", {}, r));
    d.append(el("h2", {}, "why"), ul);
  }
  const a = s.artifact;
  if (a) {
    const t = el("table");
    const add = (k, v) => { const tr = el("tr"); tr.append(el("th", {class: "text"}, k), el("td", {class: "text"}, v)); t.append(tr); };
    add("type", a.type); add("size", human(a.size) + " in " + a.files + " files"); add("digest", a.digest); add("dir", a.dir);
    for (const [k, v] of Object.entries(a.params || {}).sort()) add(k, v);
    d.append(el("h2", {}, "artifact"), t);
  }
}

// ---- curves ----
async function loadCurves() {
  const runs = await getJSON("/api/runs");
  const legend = document.getElementById("legend"), charts = document.getElementById("charts");
  legend.replaceChildren();
  charts.replaceChildren();
  if (runs.length === 0) { charts.append(el("p", {}, "No training runs in the cache yet.")); return; }
  runs.forEach((r, i) => {
    const span = el("span", {"data-run": r.id});
    const sw = el("i");
    sw.style.background = COLORS[i % COLORS.length];
    span.append(sw, document.createTextNode(r.stage + " [" + r.state + "] " + r.id));
    legend.append(span);
  });
  for (const [key, title] of CURVES) {
    const series = runs.map((r, i) => ({run: r, color: COLORS[i % COLORS.length],
      pts: r.points.filter(p => p[key] !== undefined && p.step !== undefined).map(p => [Number(p.step), Number(p[key])])}));
    if (series.every(s => s.pts.length === 0)) continue;
    charts.append(chart(key, title, series));
  }
}

function chart(key, title, series) {
  const W = 420, H = 240, L = 56, R = 10, T = 22, B = 30;
  const all = series.flatMap(s => s.pts);
  let [x0, x1] = [Math.min(...all.map(p => p[0])), Math.max(...all.map(p => p[0]))];
  let [y0, y1] = [Math.min(...all.map(p => p[1])), Math.max(...all.map(p => p[1]))];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  // A log axis where values span more than two decades (perplexities).
  const log = y0 > 0 && y1 / y0 > 100;
  const ty = log ? Math.log10 : (v => v), ly0 = ty(y0), ly1 = ty(y1);
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R), sy = y => H - B - (ty(y) - ly0) / (ly1 - ly0) * (H - T - B);
  const root = svg("svg", {width: W, height: H, class: "chart", "data-metric": key});
  root.append(svg("text", {x: L, y: 14, class: "title"}, title + " (" + key + (log ? ", log scale" : "") + ")"));
  root.append(svg("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
  root.append(svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
  for (const f of [0, 0.5, 1]) {
    const y = log ? Math.pow(10, ly0 + f * (ly1 - ly0)) : y0 + f * (y1 - y0), x = x0 + f * (x1 - x0);
    root.append(svg("text", {x: L - 4, y: sy(y) + 3, "text-anchor": "end"}, fmt(y)));
    root.append(svg("text", {x: sx(x), y: H - B + 14, "text-anchor": "middle"}, fmt(x)));
  }
  root.append(svg("text", {x: W - R, y: H - 4, "text-anchor": "end"}, "step"));
  for (const s of series) {
    if (s.pts.length === 0) continue;
    const pts = s.pts.map(p => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
    const line = svg("polyline", {class: "curve", points: pts, stroke: s.color, "data-run": s.run.id, "data-points": s.pts.length});
    line.append(svg("title", {}, s.run.stage + " " + key));
    root.append(line);
    if (s.pts.length < 60) for (const p of s.pts) root.append(svg("circle", {cx: sx(p[0]), cy: sy(p[1]), r: 2, fill: s.color}));
  }
  return root;
}
function fmt(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

// ---- results table ----
let sortBy = null, sortDir = 1, lastTable = null;
let sortedFrom = "";
async function loadTable() {
  lastTable = await getJSON("/api/results");
  // #table=COLUMN sorts by it ascending, #table=-COLUMN descending.
  if (selected && selected !== sortedFrom) {
    sortedFrom = selected;
    sortDir = selected.startsWith("-") ? -1 : 1;
    sortBy = selected.replace(/^-/, "");
  }
  drawTable();
}
function drawTable() {
  const t = lastTable, table = document.getElementById("results");
  table.replaceChildren();
  if (!t) return;
  const several = new Set(t.rows.map(r => r.pipeline || "")).size > 1;
  const cols = (several ? [["pipeline", r => r.pipeline || "", true]] : []).concat([["stage", r => r.stage, true]])
    .concat(t.varying.map(k => [k, r => r.params[k] ?? "", true]))
    .concat(t.metrics.map(k => [k, r => r.metrics[k] ?? "", false]))
    .concat([["digest", r => (r.digest || "").replace("sha256:", "").slice(0, 12), true]]);
  const head = el("tr");
  for (const [name, , text] of cols) {
    const th = el("th", {class: text ? "text" : "", "data-col": name}, name);
    if (sortBy === name) th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
    th.addEventListener("click", () => { sortDir = sortBy === name ? -sortDir : 1; sortBy = name; drawTable(); });
    head.append(th);
  }
  const thead = el("thead"); thead.append(head); table.append(thead);
  let rows = t.rows.slice();
  const q = document.getElementById("filter").value.toLowerCase();
  if (q) rows = rows.filter(r => JSON.stringify(r).toLowerCase().includes(q));
  const col = cols.find(c => c[0] === sortBy);
  if (col) {
    rows.sort((a, b) => {
      const va = col[1](a), vb = col[1](b), na = Number(va), nb = Number(vb);
      const c = va !== "" && vb !== "" && !isNaN(na) && !isNaN(nb) ? na - nb : String(va).localeCompare(String(vb));
      return c * sortDir;
    });
  }
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", {"data-stage": r.stage});
    for (const [name, get, text] of cols) tr.append(el("td", {class: text ? "text" : "", "data-col": name}, String(get(r))));
    body.append(tr);
  }
  table.append(body);
  if (t.rows.length === 0) table.append(el("caption", {}, "No metrics/v1 results yet."));
}

// ---- samples ----
async function loadSamples() {
  const sets = await getJSON("/api/samples");
  const box = document.getElementById("samplesets");
  box.replaceChildren();
  if (sets.length === 0) box.append(el("p", {}, "No samples/v1 artifacts in the cache yet."));
  for (const s of sets) {
    const div = el("div", {class: "sampleset", "data-samples": s.id});
    div.append(el("h2", {}, s.stage));
    const p = s.params || {};
    const made = ["sampler", "steps", "seed", "num"].filter(k => p[k] !== undefined).map(k => k + " " + p[k]).join(" · ");
    div.append(el("div", {class: "meta"}, made + " · checkpoint " + (s.model || "?") + " " + (s.checkpoint || "").replace("sha256:", "").slice(0, 12)));
    for (const r of s.rows) {
      div.append(el("div", {class: "meta"}, "#" + r.index + " · NFE " + r.nfe));
      div.append(el("pre", {class: "sample"}, r.text));
    }
    if (s.truncated) div.append(el("p", {class: "meta"}, "(more samples in " + s.id + ")"));
    box.append(div);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filter").addEventListener("input", drawTable);
  window.addEventListener("hashchange", show);
  show();
});

function stateLabel(state, long) {
  if (state === "stopped" && long) return "stopped: its run was interrupted or its process is gone";
  if (state === "failed" && long) return "failed in its last run (mdlm run); fix and rerun";
  return {run: "would run"}[state] || state;
}
