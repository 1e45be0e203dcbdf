// sa0's check page: a .glb with KHR_gaussian_splatting drawn by Babylon.js (npm @babylonjs/core + loaders)
// from the camera in view.json, on white; the pixels go to window.peer.rgba (base64 RGBA, top row first; grab() and settle()
// come from common.js, which sa0.export.peers puts in the same module).
import { Engine } from "@babylonjs/core/Engines/engine.js";
import { Scene } from "@babylonjs/core/scene.js";
import { Color4 } from "@babylonjs/core/Maths/math.color.js";
import { Vector3 } from "@babylonjs/core/Maths/math.vector.js";
import { FreeCamera } from "@babylonjs/core/Cameras/freeCamera.js";
import { ImportMeshAsync } from "@babylonjs/core/Loading/sceneLoader.js";
import "@babylonjs/loaders/glTF/index.js";

async function main() {
  const v = await (await fetch("view.json")).json();
  const canvas = document.getElementById("c");
  canvas.width = v.width; canvas.height = v.height;
  canvas.style.width = `${v.width}px`; canvas.style.height = `${v.height}px`;
  const engine = new Engine(canvas, false, { preserveDrawingBuffer: true, adaptToDeviceRatio: false });
  const scene = new Scene(engine);
  scene.useRightHandedSystem = true;  // glTF's and sa0's handedness: no mirroring root node
  scene.clearColor = new Color4(1, 1, 1, 1);
  const camera = new FreeCamera("view", new Vector3(...v.position), scene);
  camera.upVector = new Vector3(...v.up);
  camera.setTarget(new Vector3(...v.target));
  camera.fov = (v.fov * Math.PI) / 180;  // vertical (Babylon's default fovMode)
  camera.minZ = 0.01;
  camera.maxZ = 100;
  await ImportMeshAsync(v.file, scene);
  const frames = await settle(() => scene.render());
  window.peer = { rgba: grab(canvas, v.width, v.height), frames };
}

main().catch((e) => { window.peer = { error: String(e && e.stack || e) }; });
