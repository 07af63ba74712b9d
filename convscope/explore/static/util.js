// Small helpers shared by the views: elements, API calls, URL state, errors.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  return url.toString();
}

// Every call carries X-Convscope-Request: the server starts work only for requests with it, which no other web
// page can send (an <img>, a form or another origin's fetch cannot).
export async function api(path, params = {}, options = {}) {
  const headers = { "X-Convscope-Request": "1", ...(options.headers || {}) };
  const response = await fetch(apiUrl(path, params), { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

// The view and its settings live in the URL hash: #/layer?pic=sample:chelsea&layer=blocks.4&channel=17
export function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  return { view: path || "image", params: Object.fromEntries(new URLSearchParams(query || "")) };
}

export function setRoute(view, params, { replace = false } = {}) {
  const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const hash = `#/${view}` + (Object.keys(clean).length ? "?" + new URLSearchParams(clean).toString() : "");
  if (hash === location.hash) return;
  if (replace) { history.replaceState(null, "", hash); window.dispatchEvent(new HashChangeEvent("hashchange")); }
  else location.hash = hash;
}

// Errors are shown once each: the same message again while it is on screen is not repeated.
let errorTimer = null;
const shown = [];
export function showError(error) {
  if (error && error.name === "AbortError") return;  // a request the page itself gave up
  const text = (error && error.message) || String(error);
  const box = document.getElementById("error");
  if (!shown.includes(text)) shown.push(text);
  box.replaceChildren(...shown.map((line) => h("div", {}, line)));
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { box.hidden = true; shown.length = 0; }, 6000);
}

export const percent = (p) => `${(100 * p).toFixed(1)} %`;

// One shared picture picker: bundled photos, the named folders, uploads, a webcam frame.
let pictureList = null;
export async function pictures(refresh = false) {
  if (!pictureList || refresh) pictureList = (await api("/api/pictures")).pictures;
  return pictureList;
}

export async function picturePicker(current, onPick) {
  const list = await pictures();
  const select = h("select", { "aria-label": "picture", id: "picture-select",
                               onchange: () => onPick(select.value) });
  const groups = {};
  for (const p of list) {
    const label = p.source === "bundled" ? "bundled photos" : p.source === "upload" ? "uploads" : p.source;
    groups[label] ??= h("optgroup", { label });
    groups[label].append(h("option", { value: p.id, selected: p.id === current }, p.name));
  }
  if (current && !list.some((p) => p.id === current)) select.append(h("option", { value: current, selected: true }, current));
  select.append(...Object.values(groups));
  const file = h("input", { type: "file", accept: "image/*", hidden: true, onchange: async () => {
    if (!file.files.length) return;
    try { onPick(await upload(file.files[0], file.files[0].name)); } catch (error) { showError(error); }
    file.value = "";  // the same file chosen again is a new choice
  } });
  const buttons = [h("button", { type: "button", onclick: () => file.click() }, "Upload…"), file];
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    buttons.push(h("button", { type: "button", onclick: async () => {
      try { onPick(await webcamFrame()); } catch (e) { showError(e); }
    } }, "Webcam"));
  }
  return h("span", { class: "controls" }, select, ...buttons);
}

export async function upload(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const body = await api("/api/upload", {}, { method: "POST", body: form });
  await pictures(true);
  return body.id;
}

async function webcamFrame() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true });
  try {
    const video = h("video", { muted: true, playsinline: true });
    video.srcObject = stream;
    await video.play();
    await new Promise((r) => setTimeout(r, 400));
    const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((r) => canvas.toBlob(r, "image/png"));
    return await upload(blob, "webcam.png");
  } finally { stream.getTracks().forEach((t) => t.stop()); }
}

// "45 % (12 of 27 batches)" from the worker's progress, or "" when the job has no progress bar.
export function progressText(running) {
  const p = running && running.progress;
  if (!p || !p.total) return "";
  return `${Math.floor((100 * p.done) / p.total)} % (${p.done} of ${p.total}${p.what ? " " + p.what : ""})`;
}
