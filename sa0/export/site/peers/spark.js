// sa0's check page: a .spz drawn by Spark (npm @sparkjsdev/spark on three.js) from the camera in view.json,
// on white; the pixels go to window.peer.rgba (base64 RGBA, top row first; grab() and settle()
// come from common.js, which sa0.export.peers puts in the same module).
import * as THREE from "three";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";

async function main() {
  const v = await (await fetch("view.json")).json();
  const canvas = document.getElementById("c");
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(v.width, v.height, true);
  renderer.setClearColor(0xffffff, 1);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(v.fov, v.width / v.height, 0.01, 100);
  camera.position.set(...v.position);
  camera.up.set(...v.up);
  camera.lookAt(...v.target);
  scene.add(new SparkRenderer({ renderer }));
  const splats = new SplatMesh({ url: v.file });
  await splats.initialized;
  scene.add(splats);
  const frames = await settle(() => renderer.render(scene, camera));
  window.peer = { rgba: grab(canvas, v.width, v.height), frames };
}

main().catch((e) => { window.peer = { error: String(e && e.stack || e) }; });
