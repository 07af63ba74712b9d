// Data set view (from a scan): a canvas scatter of a layer's embedding (zoom, pan, hover thumbnails, click →
// neighbours in feature vs pixel space), the dead-filter table and per-channel statistics.
import { api, apiUrl, h, route, setRoute, showError } from "./util.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf", "#393b79", "#e7ba52", "#637939", "#ad494a", "#7b4173", "#3182bd", "#e6550d", "#31a354"];
let state = {};
let els = {};
let info = null;
const go = (changes) => setRoute("dataset", { ...route().params, ...changes });

export const datasetView = {
  async mount(main, p) {
    state = { hidden: new Set(), alpha: 0.5, density: false, lassoing: false, selected: new Set(), matches: null };
    try { info = await api("/api/scan"); } catch (error) {
      main.append(h("div", { class: "panel" }, h("h2", {}, "No scan open"), h("p", { class: "note" }, error.message,
        h("br"), "For example: convscope scan fashion-mnist --model fashion_cnn --layers relu2 relu7 --out scans/fashion, " +
        "then convscope explore --model fashion_cnn --scan scans/fashion")));
      return;
    }
    els.layer = h("select", { id: "scan-layer", "aria-label": "layer", onchange: () => go({ layer: els.layer.value, point: "" }) },
      ...info.layers.map((l) => h("option", { value: l }, `${l} (${info.shapes[l].join("×")})`)));
    els.method = h("select", { id: "scan-method", "aria-label": "method", onchange: () => go({ method: els.method.value }) },
      ...[["pca", "PCA"], ["tsne", "t-SNE (5 000 points)"], ["umap", "UMAP (5 000 points)"]]
        .filter(([v]) => info.methods.includes(v)).map(([v, t]) => h("option", { value: v }, t)));  // those installed
    els.colour = h("select", { id: "scan-colour", "aria-label": "colour by", onchange: () => go({ color: els.colour.value }) },
      h("option", { value: "label" }, "label"), h("option", { value: "prediction" }, "predicted class"));
    els.canvas = h("canvas", { class: "scatter", id: "scatter", width: 720, height: 560 });
    els.search = h("input", { id: "scatter-search", type: "search", size: 18, placeholder: "id or label…",
      oninput: () => { search(els.search.value); draw(); },
      onkeydown: (e) => { if (e.key === "Enter" && state.matches && state.matches.size === 1) go({ point: state.embedding.indices[[...state.matches][0]] }); } });
    els.found = h("span", { class: "note", id: "search-count" });
    els.alpha = h("input", { id: "scatter-alpha", type: "range", min: 0.05, max: 1, step: 0.05, value: 0.5,
      title: "opacity of each point", oninput: () => { state.alpha = Number(els.alpha.value); draw(); } });
    els.density = h("input", { id: "scatter-density", type: "checkbox", onchange: () => { state.density = els.density.checked; draw(); } });
    els.lasso = h("button", { type: "button", id: "scatter-lasso", "aria-pressed": "false", title: "draw around points to select them",
      onclick: () => { state.lassoing = !state.lassoing; els.lasso.setAttribute("aria-pressed", String(state.lassoing));
                       els.lasso.classList.toggle("on", state.lassoing); } }, "lasso");
    els.selection = h("div", { id: "selection" });
    els.tooltip = h("div", { class: "tooltip", hidden: true });
    els.legend = h("div", { class: "legend" });
    els.note = h("div", { class: "note", id: "scatter-note" });
    els.neighbours = h("div", { id: "neighbours" }, h("p", { class: "note" }, "Click a point for its nearest neighbours."));
    els.dead = h("div", { class: "scroll", id: "dead-filters" });
    els.stats = h("div", { class: "scroll", id: "channel-stats" });
    main.append(
      h("div", { class: "controls" }, `${info.count} pictures scanned with ${info.model} · layer`, els.layer, "map", els.method, "colour by", els.colour,
        h("span", { class: "note" }, "wheel: zoom · drag: pan · double-click: reset")),
      h("div", { class: "controls" }, "search", els.search, els.found, "opacity", els.alpha,
        h("label", { title: "shade by how many points fall in each 8-pixel cell (log scale), in the cell's most common class's colour" },
          els.density, " density"), els.lasso),
      h("div", { class: "row" },
        h("div", { class: "panel" }, els.canvas, els.legend, els.note, els.selection),
        h("div", { class: "panel", style: "flex:1 1 360px" }, h("h2", {}, "Nearest neighbours"), els.neighbours)),
      h("div", { class: "row", style: "margin-top:12px" },
        h("div", { class: "panel", style: "flex:1" }, h("h2", {}, "Dead filters"), els.dead),
        h("div", { class: "panel", style: "flex:1" }, h("h2", {}, "Channel statistics over the set"), els.stats)),
      els.tooltip);
    setupCanvas();
    await this.update(p);
  },

  async update(p) {
    if (!info) return;
    const layer = p.layer || info.layers[info.layers.length - 1];
    const method = p.method || "pca";
    const point = p.point === undefined || p.point === "" ? null : Number(p.point);
    const colour = p.color === "prediction" ? "prediction" : "label";
    els.layer.value = layer; els.method.value = method; els.colour.value = colour;
    if (layer !== state.layer || method !== state.method) {
      state.layer = layer; state.method = method;
      els.note.textContent = `computing the ${method} map of ${layer}…`;
      try {
        state.embedding = await api("/api/scan/embedding", { layer, method });
      } catch (error) { els.note.textContent = error.message; throw error; }
      state.colourBy = null;
      prepare();
      resetView();
      tables(layer);
    }
    if (colour !== state.colourBy) {
      state.colourBy = colour;
      if (colour === "prediction" && !state.predicted) {
        els.note.textContent = "computing the model's prediction for every scanned picture…";
        try { state.predicted = await api("/api/scan/predictions"); } catch (error) {
          state.colourBy = "label"; els.colour.value = "label"; colourPoints(); draw(); throw error;
        }
      }
      colourPoints();
      draw();
    }
    if (point !== state.point) { state.point = point; draw(); if (point !== null) neighbours(point, layer); }
  },
};

// The points in a seeded random order: drawn in label order, the last class would cover all the others where they
// overlap (in the relu7 PCA of Fashion-MNIST, T-shirt/top kept 190 visible pixels against 7 162 for Ankle boot).
function shuffled(n) {
  const order = Array.from({ length: n }, (_, i) => i);
  let seed = 12345;
  const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  return order;
}

// Colours by label or by the model's predicted class.
function colourPoints() {
  const e = state.embedding;
  const n = e.x.length;
  const byPrediction = state.colourBy === "prediction";
  const labels = byPrediction ? e.indices.map((i) => state.predicted.predicted[i]) : e.labels;
  const names = byPrediction ? state.predicted.class_names : e.class_names;
  state.shown = labels;
  const classes = [...new Set(labels)].sort((a, b) => a - b);
  state.order = shuffled(n);
  state.colour = Object.fromEntries(classes.map((c, i) => [c, c < 0 ? "#888" : PALETTE[i % PALETTE.length]]));
  const shownClasses = classes.length > 30 ? classes.slice(0, 30) : classes;
  state.hidden = new Set([...state.hidden].filter((c) => classes.includes(c)));
  els.legend.replaceChildren(...shownClasses.map((c) => h("label", { title: "show or hide this class" },
    h("input", { type: "checkbox", "data-class": c, checked: !state.hidden.has(c), onchange: (ev) => {
      if (ev.target.checked) state.hidden.delete(c); else state.hidden.add(c);
      draw(); } }),
    h("i", { style: `background:${state.colour[c]}` }), c < 0 ? "no label" : (names ? names[c] : c))),
    classes.length > 30 ? `… ${classes.length} classes` : "");
  state.names = names;
  els.note.textContent = `${n} points, ${e.method} of ${e.layer}` + (e.note ? ` — ${e.note}` : "") +
    `; coloured by ${byPrediction ? "the model's predicted class" : "label"}, drawn in random order and partly ` +
    "transparent (where classes overlap, their colours mix; dense places are darker). Click a point for its " +
    "neighbours and to open it in the image view; the lasso selects the points drawn around.";
}

function prepare() {
  const e = state.embedding;
  const n = e.x.length;
  // A grid of the points for hover look-ups (cells of 1/64 of the range).
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < n; i++) { x0 = Math.min(x0, e.x[i]); x1 = Math.max(x1, e.x[i]); y0 = Math.min(y0, e.y[i]); y1 = Math.max(y1, e.y[i]); }
  state.bounds = [x0, x1 === x0 ? x0 + 1 : x1, y0, y1 === y0 ? y0 + 1 : y1];
  state.cells = new Map();
  for (let i = 0; i < n; i++) {
    const key = cellOf(e.x[i], e.y[i]);
    if (!state.cells.has(key)) state.cells.set(key, []);
    state.cells.get(key).push(i);
  }
}

const CELLS = 64;
function cellOf(x, y) {
  const [x0, x1, y0, y1] = state.bounds;
  return `${Math.floor((x - x0) / (x1 - x0) * CELLS)},${Math.floor((y - y0) / (y1 - y0) * CELLS)}`;
}

function resetView() {
  const [x0, x1, y0, y1] = state.bounds;
  const { width, height } = els.canvas;
  const scale = 0.92 * Math.min(width / (x1 - x0), height / (y1 - y0));
  state.view = { scale, cx: (x0 + x1) / 2, cy: (y0 + y1) / 2 };
}

const toScreen = (x, y) => [els.canvas.width / 2 + (x - state.view.cx) * state.view.scale,
                            els.canvas.height / 2 - (y - state.view.cy) * state.view.scale];
const toData = (sx, sy) => [state.view.cx + (sx - els.canvas.width / 2) / state.view.scale,
                            state.view.cy - (sy - els.canvas.height / 2) / state.view.scale];

function draw() {
  const e = state.embedding;
  if (!e) return;
  const ctx = els.canvas.getContext("2d");
  ctx.clearRect(0, 0, els.canvas.width, els.canvas.height);
  if (state.density) drawDensity(ctx, e); else if (e.x.length > 5000) drawPixels(ctx, e); else drawSquares(ctx, e);
  for (const k of [...(state.matches || []), ...state.selected]) {  // found and selected points, ringed
    if (!visible(k)) continue;
    const [sx, sy] = toScreen(e.x[k], e.y[k]);
    ctx.strokeStyle = state.selected.has(k) ? "#111" : "#d62728"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(sx, sy, 5, 0, 2 * Math.PI); ctx.stroke();
  }
  if (state.lassoPath && state.lassoPath.length > 1) {
    ctx.strokeStyle = "#2f6fde"; ctx.setLineDash([4, 3]); ctx.beginPath();
    state.lassoPath.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath(); ctx.stroke(); ctx.setLineDash([]);
  }
  const marked = state.point === null || state.point === undefined ? -1 : e.indices.indexOf(state.point);
  if (marked >= 0) {
    const [sx, sy] = toScreen(e.x[marked], e.y[marked]);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(sx, sy, 7, 0, 2 * Math.PI); ctx.stroke();
  }
}

// Many points: blended straight into the canvas's pixels (2×2 each, 35 % opaque over white), a few milliseconds for
// 70 000 points.
// A point is drawn unless its class is hidden or a search leaves it out.
function visible(k) { return !state.hidden.has(state.shown[k]) && (!state.matches || state.matches.has(k)); }

function drawPixels(ctx, e) {
  const ALPHA = Math.min(1, 0.7 * state.alpha);
  const { width, height } = els.canvas;
  const image = ctx.createImageData(width, height);
  const data = image.data;
  data.fill(255);
  const rgb = {};
  for (const [label, colour] of Object.entries(state.colour)) {
    const n = parseInt(colour.slice(1), 16);
    rgb[label] = [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  }
  const { scale, cx, cy } = state.view;
  for (const i of state.order) {
    if (!visible(i)) continue;
    const x = Math.round(width / 2 + (e.x[i] - cx) * scale);
    const y = Math.round(height / 2 - (e.y[i] - cy) * scale);
    if (x < 0 || y < 0 || x >= width - 1 || y >= height - 1) continue;
    const c = rgb[state.shown[i]];
    for (const at of [y * width + x, y * width + x + 1, (y + 1) * width + x, (y + 1) * width + x + 1]) {
      for (let k = 0; k < 3; k++) data[4 * at + k] += (c[k] - data[4 * at + k]) * ALPHA;
    }
  }
  ctx.putImageData(image, 0, 0);
}

function drawSquares(ctx, e) {
  const size = e.x.length > 3000 ? 2.5 : e.x.length > 200 ? 4 : 8;
  let colour = null;
  ctx.globalAlpha = state.alpha;
  for (const i of state.order) {
    if (!visible(i)) continue;
    const c = state.colour[state.shown[i]];
    if (c !== colour) { ctx.fillStyle = c; colour = c; }
    const [sx, sy] = toScreen(e.x[i], e.y[i]);
    ctx.fillRect(sx - size / 2, sy - size / 2, size, size);
  }
  ctx.globalAlpha = 1;
}

// Density: points counted in 8-pixel cells; each cell in its most common class's colour, stronger the more
// points it holds (log scale), so that a dense region is not hidden by the last points drawn on it.
function drawDensity(ctx, e) {
  const CELL = 8;
  const counts = new Map();
  for (let i = 0; i < e.x.length; i++) {
    if (!visible(i)) continue;
    const [sx, sy] = toScreen(e.x[i], e.y[i]);
    const key = `${Math.floor(sx / CELL)},${Math.floor(sy / CELL)}`;
    const cell = counts.get(key) || { n: 0, by: new Map() };
    cell.n++; cell.by.set(state.shown[i], (cell.by.get(state.shown[i]) || 0) + 1);
    counts.set(key, cell);
  }
  const most = Math.max(1, ...[...counts.values()].map((c) => c.n));
  for (const [key, cell] of counts) {
    const [cx, cy] = key.split(",").map(Number);
    const top = [...cell.by.entries()].sort((a, b) => b[1] - a[1])[0][0];
    ctx.globalAlpha = Math.min(1, Math.max(0.08, Math.log1p(cell.n) / Math.log1p(most)) * Math.max(state.alpha, 0.2) / 0.5);
    ctx.fillStyle = state.colour[top];
    ctx.fillRect(cx * CELL, cy * CELL, CELL, CELL);
  }
  ctx.globalAlpha = 1;
}

// Search by picture id (12 or #12) or by a class name's part; the count of matches is shown.
function search(text) {
  const query = text.trim().toLowerCase();
  const e = state.embedding;
  if (!query || !e) { state.matches = null; els.found.textContent = ""; return; }
  const id = query.replace(/^#/, "");
  const matches = new Set();
  for (let k = 0; k < e.x.length; k++) {
    const name = state.names ? String(state.names[state.shown[k]] ?? "").toLowerCase() : String(state.shown[k]);
    if ((/^\d+$/.test(id) && e.indices[k] === Number(id)) || (!/^#?\d+$/.test(query) && name.includes(query))) matches.add(k);
  }
  state.matches = matches;
  els.found.textContent = `${matches.size} found` + (matches.size === 1 ? " (Enter opens it)" : "");
}

// The points inside the lasso (of the classes shown), with their classes counted and the first ones' thumbnails.
function select(path) {
  const e = state.embedding;
  const inside = (x, y) => {
    let odd = false;
    for (let i = 0, j = path.length - 1; i < path.length; j = i++) {
      const [xi, yi] = path[i], [xj, yj] = path[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
    }
    return odd;
  };
  state.selected = new Set();
  for (let k = 0; k < e.x.length; k++) if (visible(k) && inside(...toScreen(e.x[k], e.y[k]))) state.selected.add(k);
  const counts = {};
  for (const k of state.selected) { const n = state.names ? state.names[state.shown[k]] : state.shown[k]; counts[n] = (counts[n] || 0) + 1; }
  const chosen = [...state.selected];
  els.selection.replaceChildren(!chosen.length ? "" : h("div", {},
    h("p", {}, h("b", { id: "selection-count" }, `${chosen.length} selected`), h("span", { class: "note" }, " — " +
      Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([n, c]) => `${n}: ${c}`).join(", ")),
      " ", h("button", { type: "button", onclick: () => { state.selected = new Set(); els.selection.replaceChildren(); draw(); } }, "clear")),
    h("div", { class: "neighbours" }, ...chosen.slice(0, 24).map((k) => h("figure", { title: `#${e.indices[k]}` },
      h("img", { src: apiUrl("/api/scan/thumb.png", { index: e.indices[k] }), alt: `#${e.indices[k]}` }), `#${e.indices[k]}`))),
    chosen.length > 24 ? h("p", { class: "note" }, `the first 24 of ${chosen.length}`) : ""));
  draw();
}

function nearestPoint(sx, sy, radius = 8) {
  const e = state.embedding;
  const [x, y] = toData(sx, sy);
  const reach = radius / state.view.scale;
  const [x0, x1, y0, y1] = state.bounds;
  const span = Math.ceil(reach / Math.min((x1 - x0) / CELLS, (y1 - y0) / CELLS)) + 1;
  const [cx, cy] = cellOf(x, y).split(",").map(Number);
  let best = -1, bestD = reach * reach;
  for (let i = cx - span; i <= cx + span; i++) for (let j = cy - span; j <= cy + span; j++) {
    for (const k of state.cells.get(`${i},${j}`) || []) {
      if (!visible(k)) continue;
      const d = (e.x[k] - x) ** 2 + (e.y[k] - y) ** 2;
      if (d <= bestD) { bestD = d; best = k; }
    }
  }
  return best;
}

// Where a point is drawn, in page coordinates (for tests and the browser console).
window.convscopeScatter = {
  count: () => (state.embedding ? state.embedding.x.length : 0),
  labels: () => (state.shown ? [...state.shown] : []),
  clientPoint(k) {
    const b = els.canvas.getBoundingClientRect();
    const [sx, sy] = toScreen(state.embedding.x[k], state.embedding.y[k]);
    return [b.left + sx * b.width / els.canvas.width, b.top + sy * b.height / els.canvas.height];
  },
};

function setupCanvas() {
  const c = els.canvas;
  let drag = null;
  const local = (ev) => { const b = c.getBoundingClientRect(); return [(ev.clientX - b.left) * c.width / b.width, (ev.clientY - b.top) * c.height / b.height]; };
  c.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [sx, sy] = local(ev);
    const [x, y] = toData(sx, sy);
    const factor = Math.exp(-ev.deltaY * 0.0015);
    state.view.scale *= factor;
    const [nx, ny] = toData(sx, sy);
    state.view.cx += x - nx; state.view.cy += y - ny;
    draw();
  }, { passive: false });
  c.addEventListener("pointerdown", (ev) => {
    c.setPointerCapture(ev.pointerId);
    if (state.lassoing) { state.lassoPath = [local(ev)]; return; }
    drag = { start: local(ev), view: { ...state.view }, moved: false };
  });
  c.addEventListener("pointermove", (ev) => {
    const [sx, sy] = local(ev);
    if (state.lassoPath) { state.lassoPath.push([sx, sy]); draw(); return; }
    if (drag) {
      const dx = sx - drag.start[0], dy = sy - drag.start[1];
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        state.view.cx = drag.view.cx - dx / state.view.scale; state.view.cy = drag.view.cy + dy / state.view.scale;
        draw(); els.tooltip.hidden = true; return;
      }
    }
    hover(ev, sx, sy);
  });
  c.addEventListener("pointerup", (ev) => {
    if (state.lassoPath) {
      const path = state.lassoPath;
      state.lassoPath = null;
      if (path.length > 2) select(path); else draw();
      return;
    }
    const wasDrag = drag && drag.moved;
    drag = null;
    if (wasDrag || !state.embedding) return;
    const [sx, sy] = local(ev);
    const k = nearestPoint(sx, sy);
    if (k >= 0) go({ point: state.embedding.indices[k] });
  });
  c.addEventListener("dblclick", () => { resetView(); draw(); });
  c.addEventListener("pointerleave", () => { els.tooltip.hidden = true; });
}

let hovered = -1;
function hover(ev, sx, sy) {
  if (!state.embedding) return;
  const k = nearestPoint(sx, sy);
  if (k < 0) { els.tooltip.hidden = true; hovered = -1; return; }
  const e = state.embedding;
  if (k !== hovered) {
    hovered = k;
    const index = e.indices[k];
    const label = e.labels[k];
    const predicted = state.predicted ? state.predicted.class_names[state.predicted.predicted[index]] : null;
    els.tooltip.replaceChildren(h("img", { src: apiUrl("/api/scan/thumb.png", { index }), alt: `picture ${index}` }),
      h("div", { id: "tooltip-text" }, `#${index} ${label >= 0 && e.class_names ? e.class_names[label] : ""}`),
      predicted ? h("div", { class: "note" }, `predicted: ${predicted}`) : "");
  }
  Object.assign(els.tooltip.style, { left: `${ev.clientX + 14}px`, top: `${ev.clientY + 14}px` });
  els.tooltip.hidden = false;
}

async function neighbours(index, layer) {
  els.neighbours.replaceChildren(h("p", { class: "note" }, `neighbours of #${index}: computing…`));
  try {
    const r = await api("/api/scan/neighbors", { index, layer, k: Math.min(8, info.count - 1) });
    if (state.point !== index) return;
    const name = (row) => row.class || (row.label >= 0 ? row.label : `#${row.index}`);
    const strip = (rows) => h("div", { class: "neighbours" }, ...rows.map((row) => h("figure", {
      class: r.label >= 0 && row.label !== r.label ? "other" : "", title: `#${row.index}, distance ${row.distance.toFixed(3)}` },
      h("img", { src: apiUrl("/api/scan/thumb.png", { index: row.index }), alt: `#${row.index}` }), name(row))));
    const share = (v) => v === null ? "" : ` — ${(100 * v).toFixed(0)} % of the query's class`;
    els.neighbours.replaceChildren(
      h("div", { class: "neighbours" }, h("figure", {}, h("img", { src: apiUrl("/api/scan/thumb.png", { index }), alt: "query" }),
        `query #${index}`), h("button", { type: "button", id: "open-in-image", style: "align-self:center",
          onclick: () => setRoute("image", { pic: `scan:${index}` }) }, "open in the image view")),
      h("p", {}, h("b", {}, `feature space (${r.layer}, ${r.metric})`), h("span", { class: "note" }, share(r.agreement.feature))),
      strip(r.feature),
      h("p", {}, h("b", {}, "pixel space"), h("span", { class: "note" }, share(r.agreement.pixel))), strip(r.pixel),
      h("p", { class: "note" }, "Framed red: a neighbour of another class."));
  } catch (error) {
    if (state.point !== index) return;
    els.neighbours.replaceChildren(h("p", { class: "failed", id: "neighbours-error" }, error.message));  // no spinner left
    showError(error);
  }
}

async function tables(layer) {
  try {
    const [dead, stats] = await Promise.all([api("/api/scan/dead", { layer }), api("/api/scan/statistics", { layer })]);
    els.dead.replaceChildren(h("p", {}, dead.lines[0]),
      dead.channels.length ? h("table", {}, h("tr", {}, h("th", {}, "channel"), h("th", {}, "active in"), h("th", {}, "largest value")),
        ...dead.channels.map((c) => { const s = stats.channels[c]; return h("tr", {}, h("td", {}, `#${c}`),
          h("td", {}, `${(100 * s.active_images).toFixed(2)} %`), h("td", {}, s.max.toPrecision(3))); })) : "");
    const rows = [...stats.channels].sort((a, b) => b.mean - a.mean);
    els.stats.replaceChildren(h("table", {}, h("tr", {}, ...["channel", "active in", "mean", "std", "max"].map((t) => h("th", {}, t))),
      ...rows.map((s) => h("tr", {}, h("td", {}, `#${s.channel}`), h("td", {}, `${(100 * s.active_images).toFixed(1)} %`),
        h("td", {}, s.mean.toPrecision(3)), h("td", {}, s.std.toPrecision(3)), h("td", {}, s.max.toPrecision(3))))));
  } catch (error) { showError(error); }
}
