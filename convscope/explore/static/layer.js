// Layer view: layers with shapes; every channel's map sorted by strength (dead ones marked); one channel in detail.
import { api, h, picturePicker, progressText, route, setRoute, showError } from "./util.js";
import { channelRelevance } from "./relevance.js";

let state = {};
let els = {};
let layers = null;

const go = (changes) => setRoute("layer", { ...route().params, ...changes });

export const layerView = {
  async mount(main, p) {
    state = {};
    layers = layers || (await api("/api/layers")).layers;
    const mapLayers = shownLayers();
    els.picker = h("div");
    els.tree = h("div", { class: "scroll tree-box" });
    els.layer = h("select", { id: "layer-select", "aria-label": "layer", onchange: () => go({ layer: els.layer.value, channel: "" }) },
      ...mapLayers.map((l) => h("option", { value: l.name }, `${l.name}  (${l.kind}, ${l.shape.join("×")})`)));
    els.summary = h("div", { class: "note", id: "channels-summary" });
    els.channels = h("div", { class: "channels", id: "channels" });
    els.detail = h("div", { id: "channel-detail" }, h("p", { class: "note" }, "Click a channel to see it in detail."));
    main.append(h("div", { class: "controls" }, els.picker, "layer", els.layer),
      h("div", { class: "row" },
        h("div", { class: "panel", style: "flex:0 0 250px" }, h("h2", {}, "Layers"), els.tree),
        h("div", { class: "panel", style: "flex:1 1 480px" }, h("h2", {}, "Channels, strongest first"), els.summary, els.channels),
        h("div", { class: "panel", style: "flex:1 1 480px" }, h("h2", {}, "Channel"), els.detail)));
    await this.update(p);
  },

  async update(p) {
    const pic = p.pic || "sample:chelsea";
    const layer = p.layer || defaultLayer();
    const channel = p.channel === undefined || p.channel === "" ? null : Number(p.channel);
    if (pic !== state.pic) els.picker.replaceChildren(await picturePicker(pic, (id) => go({ pic: id })));
    if (pic !== state.pic || layer !== state.layer) {
      state.pic = pic; state.layer = layer; state.channel = undefined;
      els.layer.value = layer;
      els.tree.replaceChildren(layerTree(shownLayers(), layer));
      await loadChannels(pic, layer);
    }
    if (channel !== state.channel) {
      state.channel = channel;
      els.channels.querySelectorAll(".channel").forEach((c) => c.classList.toggle("chosen", Number(c.dataset.channel) === channel));
      if (channel !== null) await loadDetail(pic, layer, channel);
    }
  },
};

// Layers with feature maps, without the Identity placeholders (they repeat their input).
function shownLayers() { return layers.filter((l) => l.maps && l.kind !== "Identity"); }

// The layers as the model nests them (blocks → blocks.4 → blocks.4.0 → …), each with its type and shape; the
// branch of the chosen layer is open.
function layerTree(list, chosen) {
  const root = { children: new Map() };
  for (const l of list) {
    let node = root;
    const parts = l.name.split(".");
    parts.forEach((part, i) => {
      if (!node.children.has(part)) node.children.set(part, { name: parts.slice(0, i + 1).join("."), part, children: new Map() });
      node = node.children.get(part);
    });
    node.layer = l;
  }
  const render = (node) => {
    const label = node.layer
      ? h("a", { href: "#", "data-layer": node.name, class: node.name === chosen ? "chosen" : "",
                 onclick: (e) => { e.preventDefault(); go({ layer: node.name, channel: "" }); } },
          node.part, h("span", { class: "note" }, ` ${node.layer.kind} ${node.layer.shape.join("×")}`))
      : h("span", {}, node.part);
    if (!node.children.size) return h("li", {}, label);
    const open = chosen === node.name || chosen.startsWith(node.name + ".");
    return h("li", {}, h("details", { open }, h("summary", {}, label),
      h("ul", {}, ...[...node.children.values()].map(render))));
  };
  return h("ul", { class: "tree", id: "layer-tree" }, ...[...root.children.values()].map(render));
}

function defaultLayer() {
  const names = shownLayers().map((l) => l.name);
  return names.includes("blocks.4") ? "blocks.4" : names[Math.floor(names.length / 2)];
}

async function loadChannels(pic, layer) {
  els.channels.replaceChildren(h("p", { class: "note" }, "computing…"));
  const r = await api("/api/activations", { pic, layer });
  const atlas = new Image();
  atlas.src = r.atlas;
  await atlas.decode();
  const [height, width] = r.cell;
  els.summary.textContent = `${r.layer}: ${r.shape.join("×")}; ${r.dead} of ${r.shape[0]} channels dead for this ` +
    "picture (red); each map scaled to its own range; sorted by mean activation.";
  els.summary.append(atlasLink(r.layer));
  els.channels.replaceChildren(...r.channels.map((c, n) => {
    const canvas = h("canvas", { width, height });
    const ctx = canvas.getContext("2d");
    ctx.drawImage(atlas, (n % r.columns) * width, Math.floor(n / r.columns) * height, width, height, 0, 0, width, height);
    return h("div", { class: "channel" + (c.dead ? " dead" : ""), "data-channel": c.index,
      title: `#${c.index}: mean ${c.mean.toFixed(3)}, max ${c.max.toFixed(3)}, zero ${(100 * c.zero).toFixed(0)} %` + (c.dead ? " (dead)" : ""),
      onclick: () => go({ pic, layer, channel: c.index }) }, canvas, `#${c.index}${c.dead ? " dead" : ""}`);
  }));
}

async function loadDetail(pic, layer, channel) {
  els.detail.replaceChildren(h("p", { class: "note" }, `channel ${channel}: computing…`));
  let r;
  try { r = await api("/api/channel", { pic, layer, channel }); } catch (error) {
    if (state.channel === channel) els.detail.replaceChildren(h("p", { class: "failed" }, error.message));
    throw error;
  }
  if (state.channel !== channel) return;
  const figures = [["activation", "activation map over the picture"], ["deconvnet", "deconvnet projection (Zeiler & Fergus)"],
                   ["guided_backprop", "guided backprop of the channel's mean"]];
  const featureBox = h("figure", { id: "feature-vis" }, h("button", { type: "button", id: "feature-button", onclick: () => features(featureBox, layer, channel) },
    "Feature visualisation"), h("figcaption", {}, "optimised on demand (about half a minute on a CPU), then cached on disk"));
  const relevanceBox = h("figure", { id: "channel-relevance", "data-view": "relevance" });
  channelRelevance(relevanceBox, { pic, layer, channel, target: route().params.target });
  els.detail.replaceChildren(
    h("p", {}, h("b", {}, `${r.layer} #${r.channel}`), r.dead ? h("span", { style: "color:var(--bad)" }, " dead for this picture") : "",
      h("span", { class: "note" }, ` mean ${r.mean.toFixed(3)}, max ${r.max.toFixed(3)}, zero ${(100 * r.zero).toFixed(0)} %`),
      atlasLink(r.layer, r.channel)),
    h("div", { class: "detail" },
      ...figures.map(([key, caption]) => r.views[key]
        ? h("figure", { "data-view": key, class: r.independent.includes(key) ? "independent" : "" },
          h("img", { src: r.views[key], alt: caption }), h("figcaption", {}, caption,
            r.independent.includes(key) ? h("span", { class: "badge warn", title: "the same map for a random picture " +
              "(checked): it shows the network, not this picture" }, " same for any picture") : ""))
        : h("figure", {}, h("figcaption", {}, `${caption}: ${r.notes[key] || "n/a"}`))),
      featureBox, relevanceBox),
    r.patches ? h("figure", { class: "wide", id: "top-patches" }, h("figcaption", {}, "top-9 patches of the scanned set (boxes: receptive fields)"),
      h("img", { src: r.patches, alt: "top-9 patches", style: "width:100%" }))
      : h("p", { class: "note" }, r.notes.patches ? `Top patches: ${r.notes.patches}.` : "Open a scan (--scan) to see this channel's top-9 patches."));
}

// The layer's or the channel's page in the atlas the explorer serves (--atlas), when the atlas holds the layer.
function atlasLink(layer, channel = null) {
  const atlas = window.explorerInfo && window.explorerInfo.atlas;
  if (!atlas || !(layer in atlas) || (channel !== null && channel >= atlas[layer])) return "";
  const folder = `/atlas/layers/${encodeURIComponent(layer.replaceAll("/", "_"))}`;
  const away = { target: "_blank", rel: "noopener", style: "margin-left:0.5em" };
  return channel === null
    ? h("a", { id: "atlas-layer-link", href: `${folder}/index.html`, ...away }, "the layer's atlas page ↗")
    : h("a", { id: "atlas-link", href: `${folder}/channels/${channel}.html`, ...away }, "atlas page ↗");
}

async function features(box, layer, channel) {
  const began = performance.now();
  const caption = box.querySelector("figcaption");
  const timer = setInterval(() => {
    const running = window.queueStatus && window.queueStatus.background.running;
    const mine = running && running.what.startsWith("feature visualisation") ? progressText(running) : "";
    caption.textContent = `optimising… ${mine || ((performance.now() - began) / 1000).toFixed(0) + " s"}`;
  }, 500);
  try {
    const r = await api("/api/features", { layer, channel });
    box.replaceChildren(h("img", { src: r.image, alt: "feature visualisation" }),
      h("figcaption", {}, `feature visualisation: ${r.steps} steps, ${r.size} px, ${r.parameterisation}; ` +
        `activation ${r.activation.toFixed(2)}${r.from_disk ? " (from the disk cache)" : ""}`));
  } catch (error) { showError(error); caption.textContent = error.message; }
  clearInterval(timer);
}
