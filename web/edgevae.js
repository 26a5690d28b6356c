// @ts-check
// edgevae's JavaScript runtime for browsers and Node.js: vae.js (platform-free) with a model dir given as a URL
// (browser, Node) or a folder path (Node), and onnxruntime imported by name (onnxruntime-web in a browser,
// through the page's import map; onnxruntime-node in Node) unless options.ort or options.backends is given.
//
//   import { EdgeVAE, tensor } from "./edgevae.js";
//   const vae = await EdgeVAE.load("model/");            // URL (browser) or folder path (Node)
//   const x = await vae.sample(64, 0);                   // {data: Float32Array, dims: [64, C, H, W]}
//   const y = await vae.decode(tensor(z, [n, ...vae.latentShape]));    // latents [D] or [C, h, w] each
//
// React Native: import vae.js and pass onnxruntime-react-native and a loader (see vae.js).

import { EdgeVAE as Runtime } from "./vae.js";
import { IS_NODE, openSource } from "./source.js";

/** @import { LoadOptions, Loader } from "./vae.js" */

export { AUTO, CHUNK, Generator, InputError, ModelDirError, NO_PRIOR, PROBE_BATCHES, defaultBackend, tensor, webBackend } from "./vae.js";

/** @returns {Promise<any>} onnxruntime-node in Node, onnxruntime-web elsewhere */
async function importOrt() {
  const name = IS_NODE ? "onnxruntime-node" : "onnxruntime-web";
  try {
    return await import(name);
  } catch (err) {
    throw new Error(`cannot import ${name} (run \`npm ci\` in web/, or pass {ort}): ${String(err?.message ?? err).split("\n")[0]}`);
  }
}

/** @param {unknown} dir @returns {dir is Loader} */
const isLoader = (dir) => typeof (/** @type {any} */ (dir))?.read === "function";

export class EdgeVAE extends Runtime {
  /** As vae.js's load, with `dir` a URL or folder path (or a loader) and onnxruntime imported by name when
   * neither options.ort nor options.backends is given.
   * @param {string | URL | Loader} dir
   * @param {LoadOptions} [options]
   * @returns {Promise<EdgeVAE>}
   */
  static async load(dir, options = {}) {
    const loader = isLoader(dir) ? dir : await openSource(dir);
    const ort = options.backends || options.ort ? options.ort : await importOrt();
    return super.load(loader, { ...options, ort });
  }
}

