// The explorer's front end: routes the URL hash to a view; shows what the worker is doing.
import { api, progressText, route, showError } from "./util.js";
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

async function pollQueue() {
  const box = document.getElementById("queue");
  try {
    const q = await api("/api/queue");
    window.queueStatus = q;
    const running = q.running || (q.scan && q.scan.running);  // the model's worker, else the scan's
    const waiting = q.waiting.length + (q.scan ? q.scan.waiting.length : 0);
    box.classList.toggle("busy", running !== null);
    box.textContent = running ? `computing: ${running.what} (${running.seconds.toFixed(1)} s` +
      (progressText(running) ? `, ${progressText(running)})` : ")") + (waiting ? `, ${waiting} waiting` : "") : "idle";
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
