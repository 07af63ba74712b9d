// Colour bars under the maps and the shared absolute scale: every heat drawn from 0 to the largest heat shown.
import { api, h } from "./util.js";

let colormaps = null;
export async function loadColormaps() {
  colormaps = colormaps || (await api("/api/colormaps"));
  return colormaps;
}

// 3 significant digits, as the library's colour bars print them.
export const short = (v) => String(Number(Number(v).toPrecision(3)));

function gradient(cmap) {
  if (!cmap || !colormaps) return "linear-gradient(to right, #000, #fff)";  // a signed gradient: grey at 0
  const lut = colormaps[cmap];
  const stops = [];
  for (let i = 0; i <= 16; i++) {
    const [r, g, b] = lut[Math.min(255, Math.round((i * 255) / 16))];
    stops.push(`rgb(${r},${g},${b}) ${(100 * i) / 16}%`);
  }
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

// A bar of the colour map with the values at its ends (and 0 in the middle of a signed one), what they are below.
export function colourBar({ cmap, low, high, what }) {
  return h("div", { class: "colour-bar", "data-cmap": cmap || "signed" },
    h("div", { class: "ramp", style: `background:${gradient(cmap)}` }),
    h("div", { class: "ends" }, h("span", { class: "low" }, short(low)),
      low < 0 ? h("span", { class: "mid" }, "0") : "", h("span", { class: "high" }, short(high))),
    what ? h("div", { class: "what" }, what) : "");
}

const decoded = new Map();  // heat data URL → its grey levels (0 … 255), kept while the page shows it
async function greyLevels(url) {
  if (decoded.has(url)) return decoded.get(url);
  const img = new Image();
  img.src = url;
  await img.decode();
  const canvas = h("canvas", { width: img.naturalWidth, height: img.naturalHeight });
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height);
  const levels = { width: canvas.width, height: canvas.height, grey: new Uint8ClampedArray(data.data.length / 4) };
  for (let i = 0; i < levels.grey.length; i++) levels.grey[i] = data.data[4 * i];
  if (decoded.size > 64) decoded.delete(decoded.keys().next().value);
  decoded.set(url, levels);
  return levels;
}

// The heat (|attribution|, 0 … heatMax, sent as grey levels of heat / heatMax) in inferno from 0 to `top`.
export async function sharedCanvas(heatUrl, heatMax, top) {
  await loadColormaps();
  const { width, height, grey } = await greyLevels(heatUrl);
  const canvas = h("canvas", { width, height, class: "shared" });
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const lut = colormaps.inferno;
  const factor = top > 0 ? heatMax / top : 0;
  for (let i = 0; i < grey.length; i++) {
    const [r, g, b] = lut[Math.min(255, Math.round(grey[i] * factor))];
    image.data.set([r, g, b, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
  return canvas;
}
