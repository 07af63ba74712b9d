// Export of the image view: a PNG of what is shown (picture, maps, colour bars, labels) and the settings as JSON.
import { h } from "./util.js";
import { loadColormaps, short } from "./scale.js";

const TILE = 224;
const PAD = 12;

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const stem = (view) => `convscope-${view.picture.replace(/[^a-z0-9._-]+/gi, "_")}-${view.target}`;

// What made the view: enough to make it again (`convscope explain` with these settings) and to cite it.
export function settingsOf(view) {
  return {
    convscope_view: "image", model: view.info && view.info.model, fingerprint: view.info && view.info.fingerprint,
    picture: view.picture, target: view.target, compare: view.compare || null,
    scale: { all: "shared by all maps (0 … the largest |attribution| shown, inferno)",
             method: "shared by each method's maps (0 … its largest |attribution|, inferno)" }[view.shared] || "each map its own",
    url: location.href, exported: new Date().toISOString(),
    maps: view.cards.flatMap((c) => c.panes.filter((p) => p.result).map((p) => ({
      method: c.method.name, title: p.result.title, paper: p.result.paper, class: p.result.label,
      layer: p.result.layer, settings: p.result.settings, colour_bar: view.shared
        ? { cmap: "inferno", low: 0, high: view.sharedTop(c) } : p.result.scale,
      heat_max: p.result.heat_max, independent_of_the_picture: p.result.independent,
    }))),
  };
}

export function exportSettings(view) {
  download(new Blob([JSON.stringify(settingsOf(view), null, 2)], { type: "application/json" }), `${stem(view)}.json`);
}

function drawBar(ctx, colormaps, scale, x, y) {
  const lut = scale.cmap ? colormaps[scale.cmap] : null;
  for (let i = 0; i < TILE; i++) {
    const [r, g, b] = lut ? lut[Math.round((i * 255) / (TILE - 1))] : Array(3).fill(Math.round((i * 255) / (TILE - 1)));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x + i, y, 1, 8);
  }
  ctx.fillStyle = "#1d2330";
  ctx.font = "10px sans-serif";
  ctx.textAlign = "left"; ctx.fillText(short(scale.low), x, y + 19);
  ctx.textAlign = "right"; ctx.fillText(short(scale.high), x + TILE, y + 19);
  if (scale.low < 0) { ctx.textAlign = "center"; ctx.fillText("0", x + TILE / 2, y + 19); }
  ctx.textAlign = "left";
}

// One tile per map shown (as drawn on the page: its own scale or the shared one), the picture first.
export async function exportPng(view, picture) {
  const colormaps = await loadColormaps();
  const panes = view.cards.flatMap((c) => c.panes.filter((p) => p.result).map((p) => ({ card: c, pane: p })));
  const columns = Math.min(4, panes.length + 1);
  const rows = Math.ceil((panes.length + 1) / columns);
  const cellH = TILE + 70;
  const canvas = h("canvas", { width: PAD + columns * (TILE + PAD), height: 36 + rows * cellH });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#1d2330";
  ctx.font = "bold 14px sans-serif";
  ctx.fillText(`${view.info ? view.info.model : ""} · ${view.picture} · ` + (view.shared ? `scale shared by ${view.shared === "all" ? "all maps" : "each method's maps"}` :
    "each map scaled to its own range"), PAD, 22);
  const place = (n) => [PAD + (n % columns) * (TILE + PAD), 36 + Math.floor(n / columns) * cellH];
  const caption = (text, x, y, bold) => {
    ctx.font = `${bold ? "bold " : ""}11px sans-serif`;
    ctx.fillStyle = "#1d2330";
    ctx.fillText(text.length > 40 ? text.slice(0, 39) + "…" : text, x, y);
  };
  let [x, y] = place(0);
  caption("the picture as the model sees it", x, y + 10, true);
  ctx.drawImage(picture, x, y + 16, TILE, TILE);
  for (const [n, { card, pane }] of panes.entries()) {
    [x, y] = place(n + 1);
    caption(card.method.title, x, y + 10, true);
    const shown = pane.element.querySelector("img, canvas");
    ctx.drawImage(shown, x, y + 16, TILE, TILE);
    drawBar(ctx, colormaps, view.shared ? { cmap: "inferno", low: 0, high: view.sharedTop(card) } : pane.result.scale, x, y + TILE + 20);
    caption(pane.result.label, x, y + TILE + 54, false);
  }
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  download(blob, `${stem(view)}.png`);
}
