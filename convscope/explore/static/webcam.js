// Continuous webcam mode: a frame is taken, uploaded and shown; the next one only after the view has the previous
// frame's prediction and at least `interval` ms later (frames are throttled); showing a new frame cancels the
// previous frame's maps (as a new picture always does).
import { h, upload } from "./util.js";

export function startWebcam({ show, status, interval = 1000 }) {
  let live = true;
  let stream = null;
  const stop = () => {
    live = false;
    if (stream) stream.getTracks().forEach((t) => t.stop());
  };
  (async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
      if (!live) return stop();
      const video = h("video", { muted: true, playsinline: true });
      video.srcObject = stream;
      await video.play();
      let frames = 0;
      while (live) {
        const began = performance.now();
        const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
        canvas.getContext("2d").drawImage(video, 0, 0);
        const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.9));
        if (!live) break;
        const id = await upload(blob, `webcam-${++frames}.jpg`);
        if (!live) break;
        await show(id);  // resolves once the view shows this frame's top classes
        if (!live) break;
        status(`live: frame ${frames}`, frames, began);
        const rest = interval - (performance.now() - began);
        if (rest > 0) await new Promise((r) => setTimeout(r, rest));
      }
    } catch (error) {
      status(`webcam stopped: ${error.message}`, -1);
      stop();
    }
  })();
  return stop;
}
