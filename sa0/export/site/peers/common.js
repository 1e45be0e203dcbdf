// Shared by sa0's check pages (sa0.export.peers inlines it into each page's module).

// The canvas's pixels as base64 RGBA, top row first.
function grab(canvas, w, h) {
  const copy = document.createElement("canvas");
  copy.width = w; copy.height = h;
  const ctx = copy.getContext("2d");
  ctx.drawImage(canvas, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h).data;
  let s = "";
  for (let i = 0; i < data.length; i += 32768) s += String.fromCharCode.apply(null, data.subarray(i, i + 32768));
  return btoa(s);
}

// Draw until the reader's splat sort has settled (it runs in a worker or over frames): at least 30
// frames and 4 seconds; -> frames drawn.
async function settle(draw) {
  const start = performance.now();
  let frames = 0;
  while (frames < 30 || performance.now() - start < 4000) {
    draw();
    frames += 1;
    await new Promise((r) => setTimeout(r, 30));
  }
  return frames;
}
