// Evaluation metrics (as `convscope check --metrics`) of the maps shown: a badge under every map — deletion
// (pixel flipping's area, lower is better) and the random-logit check — and a table for the picture, computed in
// the background after the maps, cancellable.
import { api, h, showError } from "./util.js";
import { short } from "./scale.js";

const BADGE = "pixel_flipping,random_logit";
const WORDS = {
  pixel_flipping: "Deletion: the class probability as the most important pixels are removed first (area under " +
    "the curve, 20 steps); lower is better.",
  random_logit: "Random logit (Sixt et al. 2020): SSIM between this map and the map of another class; a map that " +
    "hardly changes does not explain this class.",
};

export async function badges(pane, query, still) {
  const box = h("div", { class: "metric-badges" }, h("span", { class: "note" }, "metrics: waiting for the maps…"));
  pane.badges = box;  // kept when the pane is drawn again (another scale)
  pane.element.append(box);
  try {
    const r = await api("/api/metrics", { ...query, metrics: BADGE });
    if (!still()) return;
    const rows = Object.fromEntries(r.metrics.map((m) => [m.name, m]));
    const deletion = rows.pixel_flipping;
    const logit = rows.random_logit;
    box.replaceChildren(
      h("span", { class: "badge", "data-metric": "pixel_flipping", title: WORDS.pixel_flipping },
        `deletion ${deletion.value === null ? "n/a" : short(deletion.value)} ↓`),
      logit.value === null ? "" : h("span", { class: "badge" + (logit.passes ? "" : " warn"), "data-metric": "random_logit",
        "data-passes": String(logit.passes), title: `${WORDS.random_logit} ${logit.verdict}.` },
        `${logit.passes ? "✓" : "✗"} random logit ${short(logit.value)}`));
    box.dataset.state = "done";
  } catch (error) {
    if (!still()) return;
    box.replaceChildren(h("span", { class: "note failed" }, `metrics: ${error.message}`));
  }
}

// The table: one row per method shown, one column per metric (↑ higher / ↓ lower is better), the best bold.
export function metricsTable(box, { cards, query, group, still }) {
  const table = h("table", { id: "metrics-table" });
  const note = h("p", { class: "note", id: "metrics-note" }, "Computing in the background, one method after another " +
    "(after the maps)…");
  box.replaceChildren(note, table);
  let header = null;
  const results = [];
  const rows = cards.map((card) => {
    const row = h("tr", { "data-method": card.method.name }, h("td", {}, card.method.title), h("td", { class: "note" }, "queued…"));
    table.append(row);
    return row;
  });
  const finish = () => {
    if (!header) return;
    header.forEach((m, column) => {  // the best value of each column in bold
      const values = results.filter(Boolean).map((r) => r.metrics[column].value).filter((v) => v !== null);
      if (!values.length) return;
      const best = m.direction === "higher" ? Math.max(...values) : Math.min(...values);
      table.querySelectorAll(`td[data-metric=${m.name}]`).forEach((td) => td.classList.toggle("best", Number(td.dataset.value) === best));
    });
  };
  const abort = new AbortController();
  const asked = cards.map((card, n) => api("/api/metrics", { ...query(card), group }, { signal: abort.signal }).then((r) => {
    if (!still()) return;
    if (!header) {
      header = r.metrics;
      table.prepend(h("tr", {}, h("th", {}, "method"), ...header.map((m) => h("th", { title: `${m.family}: ${m.what}` },
        `${m.name.replaceAll("_", " ")} ${m.direction === "higher" ? "↑" : "↓"}`))));
    }
    results[n] = r;
    rows[n].dataset.state = "done";
    rows[n].replaceChildren(h("td", {}, card.method.title), ...r.metrics.map((m) => h("td", {
      "data-metric": m.name, "data-value": m.value === null ? "" : m.value, title: m.verdict || m.what,
      class: m.passes === false ? "failed" : "" }, m.value === null ? "n/a" : short(m.value))));
    finish();
  }).catch((error) => {
    if (!still() || rows[n].dataset.state === "cancelled") return;
    rows[n].dataset.state = "failed";
    rows[n].replaceChildren(h("td", {}, card.method.title), h("td", { class: "note", colspan: 20 }, error.message));
  }));
  Promise.all(asked).then(() => {
    if (still() && !abort.signal.aborted) note.textContent = "Each value is for this picture and the class shown (no interval: one picture). " +
      "↑ higher is better, ↓ lower is better; bold: the best of the methods. The same metrics as `convscope check`.";
  }).catch(showError);
  // Cancel: the rows not done say so at once; their requests are aborted (the server drops work nobody waits for).
  return () => {
    for (const row of rows) {
      if (row.dataset.state) continue;
      row.dataset.state = "cancelled";
      row.replaceChildren(row.firstChild, h("td", { class: "note", colspan: 20 }, "cancelled"));
    }
    if (rows.some((row) => row.dataset.state === "cancelled")) note.textContent = "Cancelled; the rows done are kept.";
    abort.abort();
  };
}
