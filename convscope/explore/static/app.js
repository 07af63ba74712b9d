// The explorer's front end: routes the URL hash to a view; shows what the worker is doing.
import { api, h, progressText, route, showError } from "./util.js";
import { imageView } from "./image.js";
import { layerView } from "./layer.js";
import { datasetView } from "./dataset.js";
import { modelView } from "./model.js";

const VIEWS = { image: imageView, layer: layerView, dataset: datasetView, model: modelView };
let current = null;

async function render() {
  const { view, params } = route();
  const show = VIEWS[view] || imageView;
  document.querySelectorAll("nav a[data-view]").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  const main = document.getElementById("view");
  try {
    if (current !== show) {
      if (current && current.leave) current.leave();
      main.replaceChildren(); current = show; await show.mount(main, params);
    }
    else await show.update(params);
  } catch (error) { showError(error); }
}

// The header says what the workers do; a button cancels every job (queued and running).
async function pollQueue() {
  const box = document.getElementById("queue");
  try {
    const q = await api("/api/queue");
    window.queueStatus = q;
    const lanes = [q, q.background, q.scan].filter(Boolean);
    const running = lanes.map((l) => l.running).find(Boolean) || null;  // the interactive lane's first
    const waiting = lanes.reduce((n, l) => n + l.waiting.length, 0);
    box.classList.toggle("busy", running !== null);
    const text = running ? `computing: ${running.what} (${running.seconds.toFixed(1)} s` +
      (progressText(running) ? `, ${progressText(running)}` : "") + (running.paused ? ", paused for a click" : "") +
      ")" + (waiting ? `, ${waiting} waiting` : "") : "idle";
    box.replaceChildren(text, running || waiting ? h("button", { type: "button", id: "cancel-all",
      title: "cancel every job, queued and running", onclick: () => api("/api/cancel", {}, { method: "POST" })
        .catch(showError) }, "cancel") : "");
  } catch { box.textContent = ""; }
  setTimeout(pollQueue, 500);
}

async function start() {
  window.addEventListener("hashchange", render);
  try {
    const info = await api("/api/info");
    document.getElementById("model-info").textContent =
      `${info.model} · ${info.classes} classes · ${info.device}` + (info.scan ? ` · scan: ${info.scan.count} pictures` : "");
    window.explorerInfo = info;
  } catch (error) { showError(error); }
  render();
  pollQueue();
}

start();
