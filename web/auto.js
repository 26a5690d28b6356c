// @ts-check
// `auto`: the candidates (variant x backend) of a runtime timed in THAT runtime, never copied from the manifest's
// native "selection" (in wasm the int8 graphs were slower than fp32 at batch 1, the opposite of native
// onnxruntime). Every candidate is timed at PROBE_BATCHES (median after a warm-up, first backend first), and batch
// n runs the winner of the largest probe <= n, the manifest's rule (manifest.js forBatch). Kept per process and in the runtime's cache.

import { label } from "./backends.js";
import { tensor } from "./checks.js";
import { Generator } from "./random.js";

/**
 * @import { Candidate } from "./backends.js"
 * @import { EdgeVAE } from "./vae.js"
 */
/**
 * @typedef {object} Choice `auto`'s measured choice for one graph.
 * @property {Record<string, Candidate>} choice probe batch size -> the fastest candidate there
 * @property {Record<string, Record<string, number>>} timings "variant@backend" -> batch size -> median ms
 * @property {Record<string, string>} failed "variant@backend" -> why it is no candidate
 * @property {string} runtime EdgeVAE.runtime of the runtime that measured it
 */

export const PROBE_BATCHES = [1, 64];
/** @type {Map<string, Choice>} */
const choices = new Map(); // measured choices in this process/page: key -> {choice, timings, failed, runtime}
/** @type {Map<string, Promise<Choice>>} */
const measuring = new Map(); // key -> Promise of the measurement in progress

/** @param {number[]} values */
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

/**
 * The key of vae's choice for graph: its backends, threads, variant option and the graphs' sha256.
 * @param {EdgeVAE} vae
 * @param {string} graph
 * @returns {string}
 */
export function choiceKey(vae, graph) {
  const files = Object.keys(vae.model.variants).map((v) => vae.model.variants[v][graph].sha256.slice(0, 16));
  return ["edgevae-choice", vae.runtime, vae.variant, graph, ...files].join("|");
}

/**
 * The choice for graph already measured (this process/page, or vae.cache), else null.
 * @param {EdgeVAE} vae
 * @param {string} graph
 * @returns {Choice | null}
 */
export function measured(vae, graph) {
  const key = choiceKey(vae, graph);
  let found = choices.get(key) ?? null;
  if (!found) { try { found = vae.cache?.get(key) ?? null; } catch { found = null; } }
  // a cached entry is only a hint: it must name batch sizes and candidates this runtime has
  const names = new Set(vae.candidates().map(label));
  const valid = found && typeof found.choice === "object" && found.choice !== null && Object.keys(found.choice).length > 0
    && Object.entries(found.choice).every(([n, c]) => /^[1-9][0-9]*$/.test(n) && typeof c?.variant === "string"
      && typeof c?.backend === "string" && names.has(label(c)));
  return valid ? found : null;
}

/**
 * The choice for graph, measured once even when several calls ask at once.
 * @param {EdgeVAE} vae
 * @param {string} graph
 * @returns {Promise<Choice>}
 */
export async function choose(vae, graph) {
  const key = choiceKey(vae, graph);
  const found = measured(vae, graph);
  if (found) { choices.set(key, found); return found; }
  if (!measuring.has(key)) {
    measuring.set(key, measure(vae, graph).then((measurement) => {
      const result = { runtime: vae.runtime, ...measurement };
      choices.set(key, result);
      try { vae.cache?.set(key, result); } catch { /* storage full or disabled: measured again next time */ }
      return result;
    }).finally(() => measuring.delete(key)));
  }
  return measuring.get(key);
}

/**
 * @param {EdgeVAE} vae
 * @param {string} graph
 * @returns {Promise<Omit<Choice, "runtime">>}
 */
async function measure(vae, graph) {
  const gen = new Generator(0);
  /** @type {Choice["choice"]} */
  const choice = {};
  /** @type {Choice["timings"]} */
  const timings = {};
  /** @type {Choice["failed"]} */
  const failed = {};
  const item = graph === "decoder" ? vae.model.latentShape : vae.model.imageShape;
  const size = item.reduce((a, b) => a * b, 1);
  for (const n of PROBE_BATCHES) {
    // timing only: the graph's own inputs (a latent's normals, uniform pixels) at the model's native size
    const input = tensor(graph === "decoder" ? gen.normals(n * size) : Float32Array.from({ length: n * size }, () => gen.uniform()), [n, ...item]);
    let best = Infinity;
    for (const candidate of vae.candidates()) {
      const name = label(candidate);
      if (failed[name]) continue;
      // a batch never runs faster than a smaller one: a candidate already twice the best at a smaller batch is
      // not run at this one (on a software WebGPU adapter that saves tens of seconds)
      if (Object.values(timings[name] ?? {}).some((ms) => ms > 2 * best)) continue;
      try {
        await vae.runGraph(graph, candidate, input); // warm-up (builds the session)
      } catch (err) {
        // a second backend may lack an operator the first runs: it is no candidate then, not a broken model
        if (candidate.backend === vae.backends[0].name) throw err;
        failed[name] = String(err?.message ?? err).split("\n")[0];
        continue;
      }
      const times = [];
      for (let r = 0; r < (n === 1 ? 7 : 3); r++) {
        const t0 = performance.now();
        await vae.runGraph(graph, candidate, input);
        times.push(performance.now() - t0);
        if (Math.min(...times) > 2 * best) break; // even its fastest run is twice the best median: no need for more
      }
      (timings[name] ??= {})[n] = median(times);
      if (timings[name][n] < best) { best = timings[name][n]; choice[n] = candidate; }
    }
  }
  return { choice, timings, failed };
}
