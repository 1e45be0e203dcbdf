// sa0's web viewer: FLAME-bound Gaussians bound and splatted on the GPU (WebGL2), driven by posed
// mesh vertices per frame. The binding and projection follow sa0/gaussians/bind.py and
// sa0/render/projection.py; sa0/export/web.py documents the data files and the conventions.

const FORMAT = "sa0-web", VERSION = 1, WIDTH = 4096;  // texture width in texels
const DATA = ["gaussians.bin", "faces.bin", "motion.bin"];

const VERTEX = `#version 300 es
precision highp float; precision highp int; precision highp sampler2D;
uniform sampler2D uGauss, uFaces, uVerts;
uniform mat4 uView;   // world -> camera, OpenCV (x right, y down, z forward)
uniform vec4 uIntr;   // fx, fy, cx, cy (pixels)
uniform vec2 uSize;   // width, height (pixels)
in uint aIndex;       // per instance: the Gaussian drawn at this place in the depth order
in vec2 aCorner;      // per vertex: a corner of the quad, (+-1, +-1)
flat out vec3 vColor; flat out float vOpacity; flat out vec3 vConic; flat out vec2 vCenter;

vec4 fetch(sampler2D t, int i) { return texelFetch(t, ivec2(i % ${WIDTH}, i / ${WIDTH}), 0); }
vec3 safeNormalize(vec3 v, vec3 fallback) { float sq = dot(v, v); return sq > 1e-12 ? v * inversesqrt(sq) : fallback; }
vec3 orthogonalUnit(vec3 a) { return normalize(cross(a, abs(a.x) < 0.9 ? vec3(1, 0, 0) : vec3(0, 1, 0))); }
mat3 quatToMatrix(vec4 q) {  // (w, x, y, z), unit; columns
  float w = q.x, x = q.y, y = q.z, z = q.w;
  return mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
              2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
              2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
}
void cull() { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); }  // outside the clip volume: no fragments

void main() {
  int g = int(aIndex) * 4;
  vec4 t0 = fetch(uGauss, g), t1 = fetch(uGauss, g + 1), t2 = fetch(uGauss, g + 2), t3 = fetch(uGauss, g + 3);
  vec4 face = fetch(uFaces, int(t0.w));
  vec3 v0 = fetch(uVerts, int(face.x)).xyz, v1 = fetch(uVerts, int(face.y)).xyz, v2 = fetch(uVerts, int(face.z)).xyz;
  // the face's frame (sa0/gaussians/frames.py)
  vec3 e1 = v1 - v0, e2 = v2 - v0;
  vec3 a0 = safeNormalize(e1, vec3(1, 0, 0));
  vec3 a1 = safeNormalize(cross(e1, e2), orthogonalUnit(a0));
  vec3 a2 = cross(a0, a1);
  mat3 rf = mat3(a0, a1, a2);
  float sf = 0.5 * (length(e1) + abs(dot(a2, e2)));
  // binding (METHOD §1)
  vec3 mean = rf * t0.xyz * sf + (v0 + v1 + v2) / 3.0;
  mat3 axes = rf * quatToMatrix(normalize(t1)) * mat3(t2.x * sf, 0, 0, 0, t2.y * sf, 0, 0, 0, t2.z * sf);
  float opacity = t2.w;
  // EWA projection (sa0/render/projection.py)
  vec3 p = (uView * vec4(mean, 1.0)).xyz;
  if (p.z <= 0.01 || opacity < 1.0 / 255.0) { cull(); return; }
  float fx = uIntr.x, fy = uIntr.y, cx = uIntr.z, cy = uIntr.w;
  float tanX = 0.5 * uSize.x / fx, tanY = 0.5 * uSize.y / fy;
  float u = clamp(p.x / p.z, -(cx / fx + 0.3 * tanX), (uSize.x - cx) / fx + 0.3 * tanX);
  float v = clamp(p.y / p.z, -(cy / fy + 0.3 * tanY), (uSize.y - cy) / fy + 0.3 * tanY);
  mat3 jac = mat3(fx / p.z, 0.0, 0.0, 0.0, fy / p.z, 0.0, -fx * u / p.z, -fy * v / p.z, 0.0);
  mat3 m = jac * mat3(uView) * axes;
  mat3 cov = m * transpose(m);
  float xx = cov[0][0] + 0.3, xy = cov[1][0], yy = cov[1][1] + 0.3;
  float det = max(xx * yy - xy * xy, 1e-10);
  vec2 center = vec2(fx * p.x / p.z + cx, fy * p.y / p.z + cy);
  float extent = min(3.33, sqrt(2.0 * log(opacity * 255.0)));
  vec2 radius = ceil(extent * sqrt(vec2(xx, yy)));
  if (center.x + radius.x <= 0.0 || center.x - radius.x >= uSize.x || center.y + radius.y <= 0.0 ||
      center.y - radius.y >= uSize.y || radius.x <= 0.0 || radius.y <= 0.0) { cull(); return; }
  vec2 pixel = center + aCorner * radius;
  gl_Position = vec4(2.0 * pixel.x / uSize.x - 1.0, 1.0 - 2.0 * pixel.y / uSize.y, 0.0, 1.0);
  vColor = t3.rgb; vOpacity = opacity; vConic = vec3(yy, -xy, xx) / det; vCenter = center;
}`;

const FRAGMENT = `#version 300 es
precision highp float;
uniform vec2 uSize;
flat in vec3 vColor; flat in float vOpacity; flat in vec3 vConic; flat in vec2 vCenter;
out vec4 outColor;
void main() {
  vec2 d = vec2(gl_FragCoord.x, uSize.y - gl_FragCoord.y) - vCenter;  // OpenCV pixel centre - mean
  float power = 0.5 * (vConic.x * d.x * d.x + vConic.z * d.y * d.y) + vConic.y * d.x * d.y;
  if (power < 0.0) discard;
  float alpha = min(0.99, vOpacity * exp(-power));
  if (alpha < 1.0 / 255.0) discard;
  outColor = vec4(vColor * alpha, alpha);  // premultiplied, drawn back to front with "over"
}`;

const COMPOSITE_VERTEX = `#version 300 es
void main() { vec2 p = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0); gl_Position = vec4(p, 0, 1); }`;
const COMPOSITE_FRAGMENT = `#version 300 es
precision highp float;
uniform sampler2D uAccum; uniform vec3 uBackground;
out vec4 outColor;
void main() { vec4 a = texelFetch(uAccum, ivec2(gl_FragCoord.xy), 0); outColor = vec4(a.rgb + (1.0 - a.a) * uBackground, 1.0); }`;

class LoadError extends Error {}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = `This avatar could not be shown.\n${message}`;
  box.hidden = false;
  document.getElementById("view").hidden = true;
}

async function fetchChecked(name, kind, bytes) {
  let response;
  try {
    response = await fetch(name);
  } catch (err) {
    throw new LoadError(`${name}: ${err.message}`);
  }
  if (!response.ok) throw new LoadError(`${name}: HTTP ${response.status} ${response.statusText} (is the file missing?)`);
  if (kind === "json") {
    try { return await response.json(); } catch (err) { throw new LoadError(`${name}: not valid JSON (${err.message})`); }
  }
  const buffer = await response.arrayBuffer();
  if (buffer.byteLength !== bytes) throw new LoadError(`${name}: ${buffer.byteLength} bytes, avatar.json says ${bytes}`);
  return buffer;
}

async function load() {
  const meta = await fetchChecked("avatar.json", "json");
  if (meta.format !== FORMAT || meta.version !== VERSION) {
    throw new LoadError(`avatar.json: format ${meta.format} version ${meta.version}; this page reads ${FORMAT} version ${VERSION} (export it again with this sa0)`);
  }
  const [gauss, faces, motion] = await Promise.all(DATA.map((name) => fetchChecked(name, "bin", meta.bytes[name])));
  return { meta, gauss: new Float32Array(gauss), faces: new Float32Array(faces), motion: new Uint16Array(motion) };
}

function compile(gl, vertex, fragment) {
  const program = gl.createProgram();
  for (const [type, source] of [[gl.VERTEX_SHADER, vertex], [gl.FRAGMENT_SHADER, fragment]]) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new LoadError(`shader: ${gl.getShaderInfoLog(shader)}`);
    gl.attachShader(program, shader);
  }
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new LoadError(`shader link: ${gl.getProgramInfoLog(program)}`);
  return program;
}

function dataTexture(gl, unit, texels, data) {  // RGBA32F, WIDTH texels per row, zero-padded
  const rows = Math.max(1, Math.ceil(texels / WIDTH));
  const padded = new Float32Array(rows * WIDTH * 4);
  if (data) padded.set(data);
  const texture = gl.createTexture();
  gl.activeTexture(gl.TEXTURE0 + unit);
  gl.bindTexture(gl.TEXTURE_2D, texture);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, WIDTH, rows, 0, gl.RGBA, gl.FLOAT, padded);
  return { texture, rows, padded };
}

// 4x4 row-major helpers (OpenCV world -> camera)
function orbitView(base, target, yaw, pitch, zoom) {
  const t = [0, 1, 2].map((r) => base[4 * r] * target[0] + base[4 * r + 1] * target[1] + base[4 * r + 2] * target[2] + base[4 * r + 3]);
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  const rot = [[cy, 0, sy], [sp * sy, cp, -sp * cy], [-cp * sy, sp, cp * cy]];  // Rx(pitch) Ry(yaw), camera axes
  const out = new Array(16).fill(0);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      let sum = 0;
      for (let k = 0; k < 3; k++) sum += rot[r][k] * (base[4 * k + c] - (c === 3 ? t[k] : 0));
      out[4 * r + c] = sum + (c === 3 ? t[r] * zoom : 0);
    }
  }
  out[15] = 1;
  return out;
}

class Viewer {
  constructor(canvas, data, scale) {
    const { meta } = data;
    this.meta = meta; this.data = data; this.canvas = canvas;
    // drawn `scale` times the clip's resolution (intrinsics scaled alike), so a small clip is not a stamp
    this.scale = scale; this.width = meta.width * scale; this.height = meta.height * scale;
    canvas.width = this.width; canvas.height = this.height;
    const gl = canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: false });
    if (!gl) throw new LoadError("this browser has no WebGL2");
    this.gl = gl;
    const floatTarget = gl.getExtension("EXT_color_buffer_float");
    const floatBlend = gl.getExtension("EXT_float_blend");
    this.splat = compile(gl, VERTEX, FRAGMENT);
    this.composite = compile(gl, COMPOSITE_VERTEX, COMPOSITE_FRAGMENT);
    dataTexture(gl, 0, meta.gaussians * 4, data.gauss);
    dataTexture(gl, 1, meta.faces, data.faces);
    this.verts = dataTexture(gl, 2, meta.vertices, null);
    // the float accumulation target (8-bit blending would round every one of the many layers)
    this.accum = gl.createTexture();
    gl.activeTexture(gl.TEXTURE3);
    gl.bindTexture(gl.TEXTURE_2D, this.accum);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    const internal = floatTarget ? (floatBlend ? gl.RGBA32F : gl.RGBA16F) : gl.RGBA8;
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, this.width, this.height, 0, gl.RGBA, floatTarget ? gl.FLOAT : gl.UNSIGNED_BYTE, null);
    this.framebuffer = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.framebuffer);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.accum, 0);
    if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) throw new LoadError("no renderable accumulation target");
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    this.accumulation = internal === gl.RGBA32F ? "rgba32f" : internal === gl.RGBA16F ? "rgba16f" : "rgba8";
    // geometry: one quad per instance, the draw order per instance
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const corners = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, corners);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const cornerAt = gl.getAttribLocation(this.splat, "aCorner");
    gl.enableVertexAttribArray(cornerAt);
    gl.vertexAttribPointer(cornerAt, 2, gl.FLOAT, false, 0, 0);
    this.orderBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.orderBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, meta.gaussians * 4, gl.DYNAMIC_DRAW);
    const indexAt = gl.getAttribLocation(this.splat, "aIndex");
    gl.enableVertexAttribArray(indexAt);
    gl.vertexAttribIPointer(indexAt, 1, gl.UNSIGNED_INT, 0, 0);
    gl.vertexAttribDivisor(indexAt, 1);
    gl.bindVertexArray(null);
    // CPU side of the depth sort
    this.faceIndex = Int32Array.from(data.faces.filter((_, i) => i % 4 !== 3));
    this.frameVerts = new Float32Array(meta.vertices * 4);
    this.order = new Uint32Array(meta.gaussians);
    this.depth = new Float32Array(meta.gaussians);
    this.counts = new Uint32Array(65536);
    this.keys = new Uint16Array(meta.gaussians);
    this.faceCoef = new Float32Array(meta.faces * 4);
    this.uniforms = Object.fromEntries(["uGauss", "uFaces", "uVerts", "uView", "uIntr", "uSize"]
      .map((name) => [name, gl.getUniformLocation(this.splat, name)]));
    const [low, high] = meta.bbox;
    this.pivot = [0, 1, 2].map((k) => 0.5 * (low[k] + high[k]));
    this.frame = 0; this.yaw = 0; this.pitch = 0; this.zoom = 1;
    this.loadedFrame = -1;
  }

  decodeFrame(frame) {
    const { meta, data } = this;
    const [low, high] = meta.bbox, n = meta.vertices, off = frame * n * 3;
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 3; k++) this.frameVerts[4 * i + k] = low[k] + (data.motion[off + 3 * i + k] / 65535) * (high[k] - low[k]);
    }
    this.uploadVerts();
    this.loadedFrame = frame;
  }

  setVertices(xyz) {  // live mode: world positions (V * 3 floats) replace the recorded motion
    for (let i = 0; i < this.meta.vertices; i++) {
      for (let k = 0; k < 3; k++) this.frameVerts[4 * i + k] = xyz[3 * i + k];
    }
    this.uploadVerts();
    this.live = true;
  }

  uploadVerts() {
    const gl = this.gl;
    this.verts.padded.set(this.frameVerts);
    gl.activeTexture(gl.TEXTURE2);
    gl.bindTexture(gl.TEXTURE_2D, this.verts.texture);
    gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, WIDTH, this.verts.rows, gl.RGBA, gl.FLOAT, this.verts.padded);
  }

  view() {
    const camera = this.meta.cameras[Math.min(this.frame, this.meta.cameras.length - 1)];
    return { view: orbitView(camera.viewmat, this.pivot, this.yaw, this.pitch, this.zoom), K: camera.K };
  }

  sortBackToFront(view) {
    // depth of a Gaussian = w . (R_f p s_f + c_f) + t_z = (s_f R_f^T w) . p + (w . c_f + t_z), w = view row 2
    const { meta, data, frameVerts: V, faceIndex: F } = this;
    const w = [view[8], view[9], view[10]], tz = view[11];
    const faceCoef = this.faceCoef;
    for (let f = 0; f < meta.faces; f++) {
      const i0 = 4 * F[3 * f], i1 = 4 * F[3 * f + 1], i2 = 4 * F[3 * f + 2];
      const e1 = [V[i1] - V[i0], V[i1 + 1] - V[i0 + 1], V[i1 + 2] - V[i0 + 2]];
      const e2 = [V[i2] - V[i0], V[i2 + 1] - V[i0 + 1], V[i2 + 2] - V[i0 + 2]];
      const l1 = Math.hypot(...e1) || 1;
      const a0 = e1.map((x) => x / l1);
      const nrm = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
      const ln = Math.hypot(...nrm) || 1;
      const a1 = nrm.map((x) => x / ln);
      const a2 = [a0[1] * a1[2] - a0[2] * a1[1], a0[2] * a1[0] - a0[0] * a1[2], a0[0] * a1[1] - a0[1] * a1[0]];
      const sf = 0.5 * (Math.hypot(...e1) + Math.abs(a2[0] * e2[0] + a2[1] * e2[1] + a2[2] * e2[2]));
      const dot = (a) => sf * (a[0] * w[0] + a[1] * w[1] + a[2] * w[2]);
      faceCoef[4 * f] = dot(a0); faceCoef[4 * f + 1] = dot(a1); faceCoef[4 * f + 2] = dot(a2);
      faceCoef[4 * f + 3] = w[0] * (V[i0] + V[i1] + V[i2]) / 3 + w[1] * (V[i0 + 1] + V[i1 + 1] + V[i2 + 1]) / 3
        + w[2] * (V[i0 + 2] + V[i1 + 2] + V[i2 + 2]) / 3 + tz;
    }
    const G = data.gauss, n = meta.gaussians, depth = this.depth;
    let lo = Infinity, hi = -Infinity;
    for (let g = 0; g < n; g++) {
      const o = 16 * g, f = 4 * G[o + 3];
      const d = faceCoef[f] * G[o] + faceCoef[f + 1] * G[o + 1] + faceCoef[f + 2] * G[o + 2] + faceCoef[f + 3];
      depth[g] = d; if (d < lo) lo = d; if (d > hi) hi = d;
    }
    // counting sort on 16-bit depth keys, far first (stable within a key)
    const counts = this.counts; counts.fill(0);
    const scale = hi > lo ? 65535 / (hi - lo) : 0, keys = this.keys;
    for (let g = 0; g < n; g++) { keys[g] = 65535 - Math.floor((depth[g] - lo) * scale); counts[keys[g]]++; }
    for (let k = 1; k < 65536; k++) counts[k] += counts[k - 1];
    for (let g = n - 1; g >= 0; g--) this.order[--counts[keys[g]]] = g;
  }

  draw() {
    const { gl, meta } = this;
    if (!this.live && this.loadedFrame !== this.frame) this.decodeFrame(this.frame);
    const { view, K } = this.view();
    this.sortBackToFront(view);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.orderBuffer);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, this.order);
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.framebuffer);
    gl.viewport(0, 0, this.width, this.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.splat);
    const u = this.uniforms;
    gl.uniform1i(u.uGauss, 0); gl.uniform1i(u.uFaces, 1); gl.uniform1i(u.uVerts, 2);
    const columnMajor = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15].map((i) => view[i]);
    gl.uniformMatrix4fv(u.uView, false, columnMajor);
    const s = this.scale;
    gl.uniform4f(u.uIntr, K[0] * s, K[4] * s, K[2] * s, K[5] * s);
    gl.uniform2f(u.uSize, this.width, this.height);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.bindVertexArray(this.vao);
    gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, meta.gaussians);
    gl.bindVertexArray(null);
    gl.disable(gl.BLEND);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.useProgram(this.composite);
    gl.uniform1i(gl.getUniformLocation(this.composite, "uAccum"), 3);
    gl.uniform3f(gl.getUniformLocation(this.composite, "uBackground"), ...meta.background);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
  }

  pixels() {  // RGBA8, rows top to bottom (as sa0's images), base64
    const { gl } = this, w = this.width, h = this.height, raw = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, raw);
    const flipped = new Uint8Array(raw.length);
    for (let r = 0; r < h; r++) flipped.set(raw.subarray((h - 1 - r) * w * 4, (h - r) * w * 4), r * w * 4);
    let text = "";
    for (let i = 0; i < flipped.length; i += 32768) text += String.fromCharCode(...flipped.subarray(i, i + 32768));
    return { width: w, height: h, frame: this.frame, rgba: btoa(text) };
  }
}

function start(viewer) {
  const params = new URLSearchParams(location.search), meta = viewer.meta;
  const ui = Object.fromEntries(["play", "scrub", "counter", "fps", "reset"].map((id) => [id, document.getElementById(id)]));
  const state = { playing: params.get("paused") !== "1", frame: Math.min(meta.frames - 1, Number(params.get("frame") || 0)),
                  dirty: true, drawn: 0, t0: performance.now(), rate: 0 };
  ui.scrub.max = meta.frames - 1;
  const playStart = () => { state.clock = performance.now() - (state.frame / meta.fps) * 1000; };
  const setFrame = (k) => { state.frame = ((k % meta.frames) + meta.frames) % meta.frames; state.dirty = true; };
  const setPlaying = (on) => { state.playing = on; ui.play.textContent = on ? "Pause" : "Play"; if (on) playStart(); };
  setPlaying(state.playing);
  ui.play.onclick = () => setPlaying(!state.playing);
  ui.scrub.oninput = () => { setPlaying(false); setFrame(Number(ui.scrub.value)); };
  ui.reset.onclick = () => { viewer.yaw = viewer.pitch = 0; viewer.zoom = 1; state.dirty = true; };
  document.addEventListener("keydown", (e) => { if (e.code === "Space") { e.preventDefault(); setPlaying(!state.playing); } });
  let drag = null;
  viewer.canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; viewer.canvas.setPointerCapture(e.pointerId); });
  viewer.canvas.addEventListener("pointerup", () => { drag = null; });
  viewer.canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    viewer.yaw += (e.clientX - drag[0]) * 0.01;
    viewer.pitch = Math.max(-1.4, Math.min(1.4, viewer.pitch - (e.clientY - drag[1]) * 0.01));
    drag = [e.clientX, e.clientY]; state.dirty = true;
  });
  viewer.canvas.addEventListener("wheel", (e) => {
    e.preventDefault(); viewer.zoom = Math.max(0.2, Math.min(5, viewer.zoom * Math.exp(e.deltaY * 0.001))); state.dirty = true;
  }, { passive: false });
  const redraw = () => {
    viewer.frame = state.frame;
    viewer.draw();
    state.dirty = false; state.drawn++;
    ui.scrub.value = state.frame;
    ui.counter.textContent = `frame ${state.frame + 1} / ${meta.frames}`;
  };
  const tick = (now) => {
    if (state.playing) {
      const k = Math.floor(((now - state.clock) / 1000) * meta.fps) % meta.frames;
      if (k !== state.frame) setFrame(k);
    }
    if (state.dirty) redraw();
    if (now - state.t0 > 1000) {
      state.rate = (state.drawn * 1000) / (now - state.t0); state.drawn = 0; state.t0 = now;
      ui.fps.textContent = `${state.rate.toFixed(1)} FPS`;
    }
    requestAnimationFrame(tick);
  };
  redraw();  // the first frame exists before the page reports itself ready
  requestAnimationFrame(tick);
  const live = params.get("live") ? { stats: null, drop: null } : null;
  if (live) {  // ?live=1: poses arrive over a WebSocket (jobs/drive.py --serve); live.js
    setPlaying(false);
    for (const id of ["play", "scrub", "counter"]) ui[id].hidden = true;  // the recorded motion's controls
    import("./live.js").then((m) => Object.assign(live, m.connectLive(viewer, (frame) => { state.frame = frame; state.dirty = true; })));
  }
  return {
    live,
    meta, state, accumulation: viewer.accumulation, scale: viewer.scale,
    setFrame: (k) => { setPlaying(false); setFrame(k); redraw(); },
    play: () => setPlaying(true), pause: () => setPlaying(false),
    orbit: (yaw, pitch, zoom = 1) => { viewer.yaw = yaw; viewer.pitch = pitch; viewer.zoom = zoom; state.dirty = true; },
    pixels: () => viewer.pixels(),
    bench: (n) => {  // ms per drawn frame over n frames, each waited for (a pixel read back)
      const gl = viewer.gl, one = new Uint8Array(4), t = performance.now();
      for (let i = 0; i < n; i++) {
        viewer.frame = (state.frame + i) % meta.frames; viewer.draw();
        gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, one);
      }
      return (performance.now() - t) / n;
    },
  };
}

window.sa0viewer = { ready: null, error: null };
function displayScale(meta) {  // ?scale=N, else enough to draw the longer side at >= 512 px (at most 4)
  const asked = Number(new URLSearchParams(location.search).get("scale"));
  if (Number.isInteger(asked) && asked >= 1 && asked <= 8) return asked;
  return Math.min(4, Math.max(1, Math.ceil(512 / Math.max(meta.width, meta.height))));
}

window.sa0viewer.ready = load()
  .then((data) => Object.assign(window.sa0viewer,
    start(new Viewer(document.getElementById("view"), data, displayScale(data.meta)))))
  .catch((err) => {
    const message = err instanceof LoadError ? err.message : `${err.name}: ${err.message}`;
    window.sa0viewer.error = message;
    showError(message);
    throw err;
  });
