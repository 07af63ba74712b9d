// Image view: pick a picture, see its top classes, click a class → every method's map; drag the occluder.
import { api, apiUrl, h, percent, picturePicker, progressText, route, setRoute, showError, upload } from "./util.js";
import { colourBar, loadColormaps, sharedCanvas } from "./scale.js";
import { exportPng, exportSettings } from "./export.js";
import { startWebcam } from "./webcam.js";
import { topConcepts } from "./relevance.js";
import { badges, metricsTable } from "./metrics.js";

const STAGE = 336;
const INDEPENDENT = "This map is the same for a random picture (checked): with this model it shows the network, not " +
  "this picture. A deconvnet needs max-pooling switches to follow the picture; this model has none.";
let state = { pic: null, target: null, generation: 0 };
let els = {};
let classNames = null;
let methods = null;
let mapLayers = null;

function params() { return route().params; }

export const imageView = {
  async mount(main, p) {
    state = { pic: null, target: null, compare: null, generation: 0, settings: {}, shared: false, cards: [] };
    els.picker = h("div");
    els.img = h("img", { alt: "the picture as the model sees it", draggable: "false" });
    els.occluder = h("div", { class: "occluder", title: "drag me", hidden: true });
    els.stage = h("div", { class: "stage", id: "stage" }, els.img, els.occluder);
    const sizes = [1, 2, 3, 4, 6].map((n) => Math.max(1, Math.round((n * inputSize()) / 14)));  // 16 … 96 px at 224
    els.size = h("select", { "aria-label": "occluder size", onchange: () => probe() },
      ...sizes.map((s, n) => h("option", { value: s, selected: n === 2 }, `${s} px`)));
    els.metrics = h("div", { id: "metrics" });
    els.conceptLayer = h("select", { id: "concepts-layer", "aria-label": "concepts layer" });
    els.conceptButton = h("button", { type: "button", id: "concepts-button", onclick: findConcepts }, "Find the top concepts");
    els.concepts = h("div", { id: "concepts" }, h("p", { class: "note" }, "The channels of a layer that carried most of " +
      "the class's relevance (concept relevance propagation), each with the relevance that went through it alone."));
    els.live = h("button", { type: "button", id: "webcam-live", "aria-pressed": "false", hidden: !navigator.mediaDevices,
      title: "a frame about every second; each new frame cancels the previous frame's maps", onclick: toggleLive }, "Live webcam");
    els.liveStatus = h("span", { class: "note", id: "webcam-status" });
    els.readout = h("div", { class: "readout", id: "occlusion-readout" },
      h("span", { class: "note" }, "Drag the grey square over the picture (or click on it): the class probability " +
        "and the top class update as it moves — Zeiler & Fergus's occlusion, live. Drop a picture file here to upload it."));
    els.topk = h("ul", { class: "topk", id: "topk" });
    els.classInput = h("input", { list: "class-names", id: "class-input", placeholder: "type a class…", size: 26,
      onkeydown: (e) => { if (e.key === "Enter") chooseTyped(); } });
    els.datalist = h("datalist", { id: "class-names" });
    els.maps = h("div", { class: "maps", id: "maps" });
    els.compare = h("input", { list: "class-names", id: "compare-input", placeholder: "a second class…", size: 20,
      onkeydown: (e) => { if (e.key === "Enter") chooseCompared(); } });
    els.shared = h("select", { id: "scale-mode", "aria-label": "colour scale", onchange: () =>
      setRoute("image", { ...params(), pic: state.pic, scale: els.shared.value }) },
      h("option", { value: "" }, "each map its own range"),
      h("option", { value: "method" }, "shared by a method's maps (both classes)"),
      h("option", { value: "all" }, "shared by all maps (absolute)"));
    els.mapControls = h("div", { class: "controls map-controls" },
      h("label", { title: "every map from 0 to the largest |attribution| shown, in one colour map (the methods' " +
        "units differ: compare the two classes of one method, or methods of one kind)" }, "scale ", els.shared),
      h("span", { class: "note" }, "side by side with"), els.compare,
      h("button", { type: "button", onclick: chooseCompared }, "Compare"),
      h("button", { type: "button", id: "compare-clear", onclick: () => setRoute("image", { ...params(), pic: state.pic, compare: "" }) }, "×"),
      h("span", { class: "note", style: "margin-left:auto" }, "export"),
      h("button", { type: "button", id: "export-png", title: "the picture and every map shown, with colour bars",
        onclick: () => exportPng(view(), els.img).catch(showError) }, "PNG"),
      h("button", { type: "button", id: "export-json", title: "the model, picture, classes and every map's settings",
        onclick: () => exportSettings(view()) }, "settings JSON"),
      h("datalist", { id: "baselines" }, h("option", { value: "black" }), h("option", { value: "mean" }), h("option", { value: "0.5" })));
    els.caption = h("div", { class: "note", id: "maps-caption" });
    main.append(
      h("div", { class: "row" },
        h("div", { class: "panel", style: "width:362px" }, h("h2", {}, "Picture"), els.picker, els.stage,
          h("div", { class: "controls" }, "occluder", els.size,
            h("button", { type: "button", onclick: hideOccluder }, "remove"), els.live, els.liveStatus), els.readout),
        h("div", { class: "panel" }, h("h2", {}, "Top classes"), els.topk,
          h("div", { class: "controls", style: "margin-top:10px" }, els.classInput, els.datalist,
            h("button", { type: "button", onclick: chooseTyped }, "Explain")),
          h("p", { class: "note" }, "Click a class (or type any of the model's classes) to explain it with every method."))),
      h("h2", { style: "font-size:15px;margin:16px 0 0" }, "Attribution maps"), els.caption, els.mapControls, els.maps,
      h("h2", { style: "font-size:15px;margin:16px 0 4px" }, "Metrics of these maps"),
      h("div", { class: "controls" }, h("button", { type: "button", id: "metrics-button", onclick: evaluateMaps },
        "Evaluate the maps shown"), h("button", { type: "button", id: "metrics-cancel", onclick: cancelMetrics }, "cancel"),
        h("span", { class: "note" }, "the metrics of convscope check (those that need no object masks), for this picture and class")),
      els.metrics,
      h("h2", { style: "font-size:15px;margin:16px 0 4px" }, "Top concepts"),
      h("div", { class: "controls" }, "layer", els.conceptLayer, els.conceptButton), els.concepts);
    setupOccluder();
    api("/api/classes").then((r) => {
      classNames = r.classes;
      els.datalist.replaceChildren(...classNames.map((n) => h("option", { value: n })));
    }).catch(showError);
    methods = (await api("/api/methods")).methods;
    mapLayers = (await api("/api/layers")).layers.filter((l) => l.maps && l.kind !== "Identity");
    const middle = mapLayers.some((l) => l.name === "blocks.4") ? "blocks.4" : (mapLayers[Math.floor(mapLayers.length / 2)] || {}).name;
    els.conceptLayer.replaceChildren(...mapLayers.map((l) => h("option", { value: l.name, selected: l.name === middle },
      `${l.name} (${l.shape.join("×")})`)));
    await loadColormaps();
    await this.update(p);
  },

  leave() { stopLive(); cancelQueued(); state.generation++; },

  async update(p) {
    const pic = p.pic || "sample:chelsea";
    const target = p.target || "";
    if (pic !== state.pic) {
      state.pic = pic;
      state.target = null;
      state.top = null;
      cancelQueued();
      state.generation++;  // the previous picture's maps, classes and readout go, whether or not this one loads
      els.maps.replaceChildren();
      els.caption.textContent = "";
      els.topk.replaceChildren(h("li", { class: "note" }, "computing…"));
      els.picker.replaceChildren(await picturePicker(pic, (id) => setRoute("image", { pic: id })));
      els.img.hidden = false;
      els.img.src = apiUrl("/api/picture.png", { pic });
      hideOccluder();
      try { state.top = await api("/api/predict", { pic, k: 5 }); } catch (error) {
        if (pic !== state.pic) return;
        els.img.hidden = true;
        els.topk.replaceChildren(h("li", { class: "failed", id: "picture-error" }, error.message));
        throw error;
      }
      if (pic !== state.pic) return;
      renderTopk();
    }
    const compare = p.compare || null;
    const shared = ["method", "all"].includes(p.scale) ? p.scale : "";
    els.compare.value = compare && /^\d+$/.test(compare) && classNames ? classNames[Number(compare)] || compare : compare || "";
    els.shared.value = shared;
    if (target !== state.target || compare !== state.compare) {
      const moved = target !== state.target;
      state.target = target;
      state.compare = compare;
      state.shared = shared;
      renderTopk();
      explainAll();
      if (moved && !els.occluder.hidden) probe();
    } else if (shared !== state.shared) {
      state.shared = shared;
      redrawShared();
    }
  },
};

// The live webcam: frames replace the picture (in the URL too) until the button is pressed again.
let stopWebcam = null;
function toggleLive() {
  if (stopWebcam) return stopLive();
  els.live.setAttribute("aria-pressed", "true");
  els.live.classList.add("on");
  els.liveStatus.textContent = "starting the camera…";
  stopWebcam = startWebcam({
    show: (id) => {
      setRoute("image", { ...params(), pic: id }, { replace: true });
      return new Promise((resolve) => {
        const began = performance.now();
        const check = () => (state.pic === id && state.top) || performance.now() - began > 20000 || !stopWebcam
          ? resolve() : setTimeout(check, 50);
        check();
      });
    },
    status: (text, frames, began) => {
      els.liveStatus.textContent = text;
      els.liveStatus.dataset.frames = frames;
      if (began !== undefined) {  // when each frame was taken (page clock, ms): the throttle is checked on these
        els.liveStatus.dataset.taken = [els.liveStatus.dataset.taken, began.toFixed(1)].filter(Boolean).join(" ");
      }
      if (frames < 0) stopLive();
    },
  });
}

function stopLive() {
  if (!stopWebcam) return;
  stopWebcam();
  stopWebcam = null;
  els.live.setAttribute("aria-pressed", "false");
  els.live.classList.remove("on");
  if (!/stopped/.test(els.liveStatus.textContent)) els.liveStatus.textContent += " (stopped)";
}

function renderTopk() {
  if (!state.top) return;
  const chosen = state.target === "" ? state.top.top[0].index : Number(state.target);
  els.topk.replaceChildren(...state.top.top.map((c) => h("li", {
    class: c.index === chosen ? "chosen" : "", "data-index": c.index,
    onclick: () => setRoute("image", { ...params(), pic: state.pic, target: c.index }),
  }, h("span", {}, c.name), h("span", { style: "text-align:right" }, percent(c.probability)),
     h("span", { class: "bar", style: `width:${100 * c.probability}%` }))));
}

function chooseTyped() {
  const text = els.classInput.value.trim();
  if (!text) return;
  const index = classNames ? classNames.indexOf(text) : -1;
  setRoute("image", { ...params(), pic: state.pic, target: index >= 0 ? index : text });
}

// The metrics table: its own group, so that its cancel button leaves the maps alone.
const metricsGroup = (generation) => `metrics-${PAGE}-${generation}`;
function evaluateMaps() {
  const generation = state.generation;
  cancelMetrics();
  state.stopMetrics = metricsTable(els.metrics, { cards: state.cards, group: metricsGroup(generation), still: () => generation === state.generation,
    query: (card) => ({ pic: state.pic, method: card.method.name, target: card.targets[0], ...(state.settings[card.method.name] || {}) }) });
}

function cancelMetrics() {
  if (state.stopMetrics) { state.stopMetrics(); state.stopMetrics = null; }
  api("/api/cancel", { group: metricsGroup(state.generation) }, { method: "POST" }).catch(() => {});
}

function findConcepts() {
  const generation = state.generation;
  topConcepts(els.concepts, { pic: state.pic, layer: els.conceptLayer.value, target: state.target === "" ? "top" : String(state.target),
    group: groupOf(generation), still: () => generation === state.generation }).catch((error) => {
    if (generation !== state.generation) return;
    els.concepts.replaceChildren(h("p", { class: "failed" }, error.message));
    showError(error);
  });
}

function chooseCompared() {
  const text = els.compare.value.trim();
  if (!text) return;
  const index = classNames ? classNames.indexOf(text) : -1;
  setRoute("image", { ...params(), pic: state.pic, compare: index >= 0 ? index : text });
}

const PAGE = Math.random().toString(36).slice(2, 10);
const groupOf = (generation) => `image-${PAGE}-${generation}`;

// The maps of the previous class or picture are no longer wanted: their requests are aborted (the server drops a
// job whose clients went away) and their group cancelled (queued and running jobs alike).
function cancelQueued() {
  if (state.abort) state.abort.abort();
  if (state.generation) cancelMetrics();
  if (state.generation) api("/api/cancel", { group: groupOf(state.generation) }, { method: "POST" }).catch(() => {});
}

// A class the model certainly has (an index, or one of its names): every map is asked for at once. Anything else
// is checked with the first map alone, so that a typo is one error, not one per method.
function knownClass(target) {
  if (target === "top") return true;
  if (/^\d+$/.test(target)) return classNames ? Number(target) < classNames.length : false;
  return classNames ? classNames.includes(target) : false;
}

async function explainAll() {
  cancelQueued();
  const generation = ++state.generation;
  state.abort = new AbortController();
  const pic = state.pic;
  const targets = [state.target === "" ? "top" : String(state.target)];
  if (state.compare) targets.push(state.compare);
  els.caption.textContent = "Cheap methods first; the slow ones (many forward passes) follow. " +
    "Heat maps are laid over the picture (red = important); gradient methods are shown as images. " +
    "Each map is scaled to its own range (its colour bar says which) unless the scale is shared.";
  els.maps.replaceChildren();
  els.metrics.replaceChildren();
  els.concepts.querySelector("#concepts-list") && els.concepts.replaceChildren(h("p", { class: "note" }, "Find the top concepts again for this class."));
  state.cards = [];
  let first = null;
  for (const [n, m] of methods.entries()) {
    if (n === 1 && !targets.every(knownClass)) {
      try { await first; } catch (error) {
        if (generation !== state.generation) return;
        els.maps.replaceChildren();
        els.caption.replaceChildren(h("span", { class: "failed", id: "maps-error" }, error.message));
        showError(error);
        return;
      }
      if (generation !== state.generation) return;
    }
    const card = makeCard(m, targets);
    els.maps.append(card.element);
    state.cards.push(card);
    const asked = loadCard(card, generation);
    if (n === 0) { first = asked; asked.catch(() => {}); }  // awaited below only when a class may be a typo
  }
}

// One method's card: its title, its settings (only those it takes), one pane per class shown.
function makeCard(m, targets) {
  const card = { method: m, targets, panes: [], element: null, body: h("div", { class: "panes" }) };
  const inputs = Object.entries(m.settings || {}).map(([name, spec]) => settingInput(m, name, spec));
  const form = inputs.length ? h("details", { class: "method-settings" },
    h("summary", {}, "settings"),
    ...inputs.map((i) => h("label", { title: i.spec.what }, i.name, " ", i.input)),
    h("button", { type: "button", class: "apply", onclick: () => {
      state.settings[m.name] = Object.fromEntries(inputs.map((i) => [i.name, i.input.value.trim()]).filter(([, v]) => v));
      loadCard(card, state.generation);
    } }, "apply")) : "";
  card.element = h("div", { class: "card" + (targets.length > 1 ? " two" : ""), "data-method": m.name, "data-state": "waiting" },
    h("h3", {}, h("span", {}, m.title), h("a", { href: m.paper, target: "_blank", rel: "noopener" }, "paper")),
    form, card.body);
  return card;
}

function settingInput(m, name, spec) {
  const chosen = (state.settings[m.name] || {})[name] || "";
  let input;
  if (spec.kind === "layer") {
    input = h("select", { "data-setting": name },
      h("option", { value: "" }, "default (" + (spec.default || "last feature map") + ")"),
      ...(mapLayers || []).map((l) => h("option", { value: l.name, selected: l.name === chosen }, `${l.name} ${l.shape.join("×")}`)));
  } else if (spec.kind === "baseline") {
    input = h("input", { "data-setting": name, list: "baselines", size: 6, placeholder: String(spec.default), value: chosen });
  } else {
    input = h("input", { "data-setting": name, type: "number", min: spec.min, max: spec.max,
      step: spec.kind === "int" ? 1 : 0.01, placeholder: String(spec.default), value: chosen, style: "width:70px" });
  }
  return { name, spec, input };
}

// Every pane of a card asked again (its settings changed, or a new card).
function loadCard(card, generation) {
  const signal = state.abort.signal;
  card.element.dataset.state = "waiting";
  card.element.classList.remove("failed");
  card.body.replaceChildren();
  card.panes = card.targets.map((target) => {
    const pane = { target, result: null, element: h("div", { class: "pane", "data-target": target }) };
    card.body.append(pane.element);
    return pane;
  });
  return Promise.all(card.panes.map((pane) => loadPane(card, pane, generation, signal)));
}

async function loadPane(card, pane, generation, signal) {
  const m = card.method;
  const wait = h("div", { class: "wait" }, m.slow ? "waiting (slow method)…" : "waiting…");
  pane.element.replaceChildren(wait);
  const began = performance.now();
  const timer = setInterval(() => {
    if (generation !== state.generation) return clearInterval(timer);
    const q = window.queueStatus;
    const running = q && [q.running, q.background && q.background.running].find((r) => r && r.what.startsWith(m.title + " on "));
    wait.textContent = (running ? `computing… ${progressText(running) || running.seconds.toFixed(1) + " s"}` : "queued…") +
      (m.slow ? " (slow method: many passes)" : "") + ` — ${((performance.now() - began) / 1000).toFixed(0)} s since the click`;
  }, 250);
  try {
    const r = await api("/api/explain", { pic: state.pic, method: m.name, target: pane.target,
                                          group: groupOf(generation), ...(state.settings[m.name] || {}) }, { signal });
    if (generation !== state.generation) return;
    pane.result = r;
    await drawPane(card, pane);
    badges(pane, { pic: state.pic, method: m.name, target: pane.target, group: groupOf(generation),
                   ...(state.settings[m.name] || {}) }, () => generation === state.generation && card.panes.includes(pane));
    if (card.panes.every((p) => p.result)) {
      card.element.dataset.state = "done";
      markCard(card, r);
      if (state.shared) redrawShared();
    }
  } catch (error) {
    if (generation !== state.generation) return;
    card.element.classList.add("failed");
    card.element.dataset.state = "failed";
    wait.textContent = error.message;
    if (card === state.cards[0]) throw error;  // the first card's maps tell a typo in a class
  } finally { clearInterval(timer); }
}

function markCard(card, r) {
  const title = card.element.querySelector("h3 span");
  title.querySelectorAll(".badge").forEach((b) => b.remove());
  if (r.checks && r.checks.pointing !== undefined && r.checks.pointing !== null) {
    title.append(" ", h("span", { class: "badge", title: "convscope check: pointing game accuracy" }, `pointing ${r.checks.pointing.toFixed(2)}`));
  }
  card.element.classList.toggle("independent", card.panes.some((p) => p.result.independent));
  if (card.panes.some((p) => p.result.independent)) {  // the method shows the model here, not this picture
    title.append(" ", h("span", { class: "badge warn", title: INDEPENDENT }, "same for any picture"));
  }
}

// A pane: the map (its own scale, or the shared one) with its colour bar and what made it.
async function drawPane(card, pane) {
  const r = pane.result;
  pane.element.dataset.heatMax = r.heat_max;
  const settings = Object.entries(r.settings).map(([k, v]) => `${k}=${v}`).join(", ");
  const top = sharedTop(card);
  const picture = state.shared
    ? await sharedCanvas(r.heat, r.heat_max, top)
    : h("img", { src: r.image, alt: `${r.title} map`, title: r.label });
  const bar = state.shared
    ? colourBar({ cmap: "inferno", low: 0, high: top, what: state.shared === "all"
      ? "shared: |attribution| of every map shown" : `shared by the ${card.method.title} maps` })
    : colourBar(r.scale);
  pane.element.replaceChildren(card.targets.length > 1 ? h("div", { class: "pane-label" }, r.label) : "", picture, bar,
    h("div", { class: "settings" }, `${r.label}` + (settings ? ` · ${settings}` : "") +
      ` · ${r.cached ? "cached" : r.seconds.toFixed(2) + " s"}`), pane.badges || "");
}

// What the export needs of the view.
function view() {
  return { info: window.explorerInfo, picture: state.pic, target: state.target === "" ? "top" : String(state.target),
           compare: state.compare, shared: state.shared, sharedTop, cards: state.cards };
}

// The top of the shared scale: the largest heat of every map shown, or of the card's maps.
function sharedTop(card) {
  const cards = state.shared === "method" ? [card] : state.cards;
  return Math.max(0, ...cards.flatMap((c) => c.panes).filter((p) => p.result).map((p) => p.result.heat_max));
}

let redrawing = Promise.resolve();
function redrawShared() {
  redrawing = redrawing.then(() => Promise.all(state.cards.flatMap((c) => c.panes.filter((p) => p.result).map((p) => drawPane(c, p)))))
    .catch(showError);
  return redrawing;
}

// Live occlusion: a grey square dragged over the picture; the server answers with the probabilities.
let inFlight = false;
let queued = false;

function setupOccluder() {
  let dragging = false;
  const place = (event) => {
    const box = els.stage.getBoundingClientRect();
    const side = Number(els.size.value) * STAGE / inputSize();
    const x = Math.min(Math.max(event.clientX - box.left - side / 2, 0), STAGE - side);
    const y = Math.min(Math.max(event.clientY - box.top - side / 2, 0), STAGE - side);
    Object.assign(els.occluder.style, { left: `${x}px`, top: `${y}px`, width: `${side}px`, height: `${side}px` });
    els.occluder.hidden = false;
    probe();
  };
  els.stage.addEventListener("pointerdown", (e) => { dragging = true; els.stage.setPointerCapture(e.pointerId); place(e); });
  els.stage.addEventListener("pointermove", (e) => { if (dragging) place(e); });
  els.stage.addEventListener("pointerup", () => { dragging = false; });
  // A picture file dropped on the stage is uploaded and shown.
  els.stage.addEventListener("dragover", (e) => { e.preventDefault(); });
  els.stage.addEventListener("drop", async (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (!file) return;
    try { setRoute("image", { pic: await upload(file, file.name) }); } catch (error) { showError(error); }
  });
}

function inputSize() { return (window.explorerInfo && window.explorerInfo.input_size[1]) || 224; }

function hideOccluder() {
  els.occluder.hidden = true;
  els.readout.querySelector("b") && els.readout.replaceChildren(h("span", { class: "note" }, "Occluder removed."));
}

async function probe() {
  if (els.occluder.hidden) return;
  if (inFlight) { queued = true; return; }
  inFlight = true;
  const scale = inputSize() / STAGE;
  const size = Number(els.size.value);
  const side = size / scale;
  const left = Math.min(parseFloat(els.occluder.style.left) || 0, STAGE - side);
  const top = Math.min(parseFloat(els.occluder.style.top) || 0, STAGE - side);
  Object.assign(els.occluder.style, { width: `${side}px`, height: `${side}px`, left: `${left}px`, top: `${top}px` });
  try {
    const r = await api("/api/occlude", { pic: state.pic, x: Math.round(left * scale), y: Math.round(top * scale),
                                          size, target: state.target === "" ? "top" : state.target });
    const best = r.top[0];
    const changed = best.index !== r.target.index;
    els.readout.replaceChildren(
      h("div", {}, `${r.target.name}: `, h("b", { id: "occluded-probability" }, percent(r.probability)),
        h("span", { class: "note" }, ` (without the square ${percent(r.clean_probability)})`)),
      h("div", { id: "occluded-top", style: changed ? "color:var(--bad)" : "" },
        `top class: ${best.name} ${percent(best.probability)}`));
  } catch (error) { showError(error); }
  inFlight = false;
  if (queued) { queued = false; probe(); }
}
