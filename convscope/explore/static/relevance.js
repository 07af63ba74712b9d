// Relevance (concept relevance propagation): a channel's relevance for the picture's class and its conditional
// heat map (layer view); the channels that carried most relevance, each with its map (image view).
import { api, h, percent, setRoute, showError } from "./util.js";
import { colourBar, loadColormaps, short } from "./scale.js";

const CRP = "https://doi.org/10.1038/s42256-023-00711-8";

function mapFigure(r, caption) {
  return h("figure", { "data-channel": r.channel, class: "concept" },
    h("img", { src: r.map, alt: `conditional relevance of #${r.channel}` }), colourBar(r.scale), caption);
}

// The layer view's figure: this channel's share of the class's relevance at its layer, and where it looked.
export async function channelRelevance(box, { pic, layer, channel, target }) {
  box.replaceChildren(h("figcaption", {}, "relevance for the class: computing (one LRP pass)…"));
  try {
    await loadColormaps();
    const r = await api("/api/relevance/channel", { pic, layer, channel, target: target || "top" });
    box.replaceChildren(mapFigure(r, h("figcaption", { id: "relevance-text" },
      `relevance for ${r.class.name}: R = ${short(r.relevance)} (${percent(r.share)} of the layer's |R|, rank ` +
      `${r.rank} of ${r.of}) — `, h("a", { href: CRP, target: "_blank", rel: "noopener" }, "CRP"),
      `, LRP ${r.composite}; red: relevance for the class, blue: against it`)));
  } catch (error) {
    box.replaceChildren(h("figcaption", { class: "failed" }, error.message));
    showError(error);
  }
}

// The image view's panel: the top `count` channels of a layer by relevance, each with its conditional map.
export async function topConcepts(box, { pic, layer, target, group, count = 6, still }) {
  box.replaceChildren(h("p", { class: "note" }, `ranking the channels of ${layer} by relevance…`));
  const ranked = await api("/api/relevance", { pic, layer, target, group });
  if (!still()) return;
  await loadColormaps();
  const rows = ranked.channels.slice(0, count);
  const list = h("div", { class: "concepts", id: "concepts-list" });
  box.replaceChildren(h("p", { class: "note" }, `The ${rows.length} channels of ${layer} that carried most of the ` +
    `relevance for ${ranked.class.name} (LRP ${ranked.composite}, `, h("a", { href: CRP, target: "_blank", rel: "noopener" }, "CRP"),
    "); each map is the relevance that went through that channel alone. Click one to see it in the layer view."), list);
  for (const row of rows) {
    const open = () => setRoute("layer", { pic, layer, channel: row.channel, target });
    const slot = h("div", { class: "concept-slot", "data-channel": row.channel, onclick: open, title: "open in the layer view" },
      h("div", { class: "wait" }, "waiting…"),
      h("div", { class: "concept-label" }, `#${row.channel}: ${percent(row.share)}`));
    list.append(slot);
  }
  for (const [n, row] of rows.entries()) {  // one LRP pass each, in order (a new class or picture cancels the rest)
    if (!still()) return;
    const slot = list.children[n];
    try {
      const r = await api("/api/relevance/channel", { pic, layer, channel: row.channel, target, group });
      if (!still()) return;
      slot.replaceChildren(h("img", { src: r.map, alt: `#${r.channel}` }), colourBar(r.scale),
        h("div", { class: "concept-label" }, `#${r.channel}: ${percent(r.share)} · R ${short(r.relevance)}`));
      slot.dataset.state = "done";
    } catch (error) {
      if (!still()) return;
      slot.querySelector(".wait").textContent = error.message;
      slot.dataset.state = "failed";
    }
  }
}
