// Interactive 3D preview of an uploaded model (three.js shipped with the app; no CDN).
// <div id="model-3d" data-url="/api/jobs/1/file" data-format="stl">; sets data-state to
// "ready" once the model is shown, "failed" when the browser can't draw it.
import * as THREE from "three";
import {STLLoader} from "three/addons/loaders/STLLoader.js";
import {OBJLoader} from "three/addons/loaders/OBJLoader.js";
import {ThreeMFLoader} from "three/addons/loaders/3MFLoader.js";
import {OrbitControls} from "three/addons/controls/OrbitControls.js";

function toObject(format, buffer) {
  const material = new THREE.MeshStandardMaterial({color: 0x2f7dd1, metalness: 0.1, roughness: 0.6});
  if (format === "stl") return new THREE.Mesh(new STLLoader().parse(buffer), material);
  if (format === "obj") {
    const group = new OBJLoader().parse(new TextDecoder().decode(buffer));
    group.traverse(o => { if (o.isMesh) o.material = material; });
    return group;
  }
  if (format === "3mf") return new ThreeMFLoader().parse(buffer);
  throw new Error("format " + format);
}

async function show(box) {
  const res = await fetch(box.dataset.url, {credentials: "same-origin"});
  if (!res.ok) throw new Error("HTTP " + res.status);
  const object = toObject(box.dataset.format, await res.arrayBuffer());
  const renderer = new THREE.WebGLRenderer({antialias: true, preserveDrawingBuffer: true});
  const width = box.clientWidth || 320, height = Math.round(width * 0.75);
  renderer.setSize(width, height);
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xeef1f4);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x667788, 1.4));
  const sun = new THREE.DirectionalLight(0xffffff, 1.6);
  sun.position.set(1, -1, 2);
  scene.add(sun);
  object.rotation.x = -Math.PI / 2;  // models are Z-up, three.js is Y-up
  scene.add(object);
  const bounds = new THREE.Box3().setFromObject(object);
  const size = bounds.getSize(new THREE.Vector3()).length() || 1;
  const centre = bounds.getCenter(new THREE.Vector3());
  const camera = new THREE.PerspectiveCamera(40, width / height, size / 100, size * 20);
  camera.position.copy(centre).add(new THREE.Vector3(size * 0.9, size * 0.7, size * 1.1));
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.copy(centre);
  controls.update();
  const draw = () => renderer.render(scene, camera);
  controls.addEventListener("change", draw);
  renderer.domElement.setAttribute("tabindex", "0");
  renderer.domElement.setAttribute("aria-label", box.dataset.label || "3D");
  controls.listenToKeyEvents(renderer.domElement);
  box.replaceChildren(renderer.domElement);
  draw();
  box.dataset.triangles = String(object.isMesh ? object.geometry.index ?
    object.geometry.index.count / 3 : object.geometry.attributes.position.count / 3 : 0);
  box.dataset.state = "ready";
}

const box = document.getElementById("model-3d");
if (box) {
  show(box).catch(err => {
    box.dataset.state = "failed";
    box.dataset.error = String(err && err.message || err);
    const p = box.querySelector("[data-fallback]");
    if (p) p.hidden = false;
  });
}
