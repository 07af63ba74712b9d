// Model view: any convolution's filters; the per-layer statistics (activations, gradients, weights) for a picture.
import { api, h, picturePicker, route, setRoute } from "./util.js";

let state = {};
let els = {};
const go = (changes) => setRoute("model", { ...route().params, ...changes });

export const modelView = {
  async mount(main, p) {
    state = {};
    const convs = (await api("/api/model/convolutions")).layers;
    els.conv = h("select", { id: "conv-select", "aria-label": "convolution", onchange: () => go({ layer: els.conv.value }) },
      ...convs.map((c) => h("option", { value: c }, c)));
    els.filters = h("div", { class: "wide", id: "filters" });
    els.picker = h("div");
    els.stats = h("div", { id: "layer-stats" });
    main.append(
      h("div", { class: "panel" }, h("h2", {}, "Filters"), h("div", { class: "controls" }, "convolution", els.conv), els.filters),
      h("div", { class: "panel", style: "margin-top:12px" }, h("h2", {}, "Per-layer statistics"),
        h("div", { class: "controls" }, els.picker, h("span", { class: "note" }, "target: the picture's top class")), els.stats));
    await this.update(p);
  },

  async update(p) {
    const layer = p.layer || els.conv.options[0].value;
    const pic = p.pic || "sample:chelsea";
    if (layer !== state.layer) {
      state.layer = layer; els.conv.value = layer;
      els.filters.replaceChildren(h("p", { class: "note" }, "loading…"));
      const r = await api("/api/model/filters", { layer });
      els.filters.replaceChildren(h("p", { class: "note" }, `${r.layer}: ${r.shape.join("×")} (${r.kind})`),
        h("img", { src: r.image, alt: `filters of ${r.layer}`, style: "width:min(100%, 900px);image-rendering:pixelated" }));
    }
    if (pic !== state.pic) {
      state.pic = pic;
      els.picker.replaceChildren(await picturePicker(pic, (id) => go({ pic: id })));
      els.stats.replaceChildren(h("p", { class: "note" }, "computing…"));
      const r = await api("/api/model/statistics", { pic });
      const num = (v) => v === null || v === undefined ? "–" : Number(v).toPrecision(3);
      const cols = ["layer", "kind", "shape", "act_min", "act_max", "act_mean", "act_zero", "grad_min", "grad_max", "weight_min", "weight_max"];
      els.stats.replaceChildren(h("p", { class: "note" }, r.target),
        h("div", { class: "scroll" }, h("table", { id: "stats-table" }, h("tr", {}, ...cols.map((c) => h("th", {}, c))),
          ...r.rows.map((row) => h("tr", {}, ...cols.map((c) => h("td", {},
            c === "layer" || c === "kind" ? row[c] : c === "shape" ? row[c].join("×") : c === "act_zero" ? `${(100 * row[c]).toFixed(0)} %` : num(row[c]))))))),
        h("div", { class: "wide" }, h("img", { src: r.image, alt: "per-layer statistics figure" })));
    }
  },
};
