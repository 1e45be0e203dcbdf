// Live mode of sa0's viewer (?live=1): posed vertices stream in over a WebSocket from
// jobs/drive.py --serve (sa0/drive/live.py documents the messages). The page asks for a frame, poses
// the viewer with it as soon as it arrives and asks for the next: the server always answers with the
// newest frame, so a page that draws slower than frames arrive shows the present, never a queue.
// A dropped connection is retried every half second.

export function connectLive(viewer, posed) {  // -> { stats, drop }: drop() closes the socket (as a network would)
  const stats = { connected: false, frames: 0, last: -1, latencyMs: NaN, reconnects: 0, ended: false, firstAt: 0,
                  sliderMs: [] };
  let socket = null, setAt = null;
  // the head's sliders (the server's hello lists them): each move is posed on the server and comes back as a frame
  const sliders = (controls) => {
    const box = document.createElement("div");
    box.id = "sliders";
    box.style.cssText = "display:flex;gap:12px;flex-wrap:wrap;justify-content:center";
    for (const c of controls) {
      const label = document.createElement("label");
      const input = Object.assign(document.createElement("input"), { type: "range", min: c.min, max: c.max,
                                                                      step: (c.max - c.min) / 100, value: c.min });
      input.name = c.name;
      input.oninput = () => {
        if (!socket || socket.readyState !== WebSocket.OPEN) return;
        setAt = performance.now();
        socket.send(JSON.stringify({ set: { [c.name]: Number(input.value) } }));
      };
      label.append(`${c.name} `, input);
      box.append(label);
    }
    document.querySelector("main").append(box);
  };
  const label = document.getElementById("live");
  if (label) label.hidden = false;
  const show = (text) => { if (label) label.textContent = text; };
  const open = () => {
    const ws = new WebSocket(`ws://${location.host}/live`);
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { stats.connected = true; show("live: connected"); ws.send(JSON.stringify({ ready: true })); };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        const said = JSON.parse(event.data);
        if (said.hello && Number.isInteger(said.frame)) posed(Math.min(said.frame, viewer.meta.frames - 1));
        if (said.hello && said.controls && !document.getElementById("sliders")) sliders(said.controls);
        if (said.end) { stats.ended = true; show(`live: source ended after ${stats.frames} frames`); }
        return;
      }
      const head = new DataView(event.data, 0, 16);
      const index = head.getUint32(0, true), latency = head.getFloat32(4, true), count = head.getUint32(8, true);
      if (count !== viewer.meta.vertices) { show(`live: ${count} vertices, this avatar has ${viewer.meta.vertices}`); return; }
      viewer.setVertices(new Float32Array(event.data, 16, count * 3));
      if (setAt !== null) { stats.sliderMs.push(performance.now() - setAt); setAt = null; }
      if (!stats.frames) stats.firstAt = performance.now();
      stats.frames++; stats.last = index; stats.latencyMs = latency;
      posed(viewer.frame);
      ws.send(JSON.stringify({ posed: index }));
      const rate = stats.frames / Math.max(1e-3, (performance.now() - stats.firstAt) / 1000);
      show(`live: frame ${index} · ${rate.toFixed(1)} poses/s · latency ${Number.isNaN(latency) ? "-" : latency.toFixed(0)} ms`);
    };
    ws.onclose = () => {
      stats.connected = false;
      if (stats.ended) return;
      stats.reconnects++;
      show("live: connection lost, reconnecting");
      setTimeout(open, 500);
    };
  };
  open();
  return { stats, drop: () => socket && socket.close() };
}
