// edgevae's JavaScript runtime: an exported model dir (manifest.json + ONNX graphs) run with
// onnxruntime-web (browser, wasm) or onnxruntime-node, with the Python runtime's shapes, ranges and checks.
//
//   import { EdgeVAE, tensor } from "./edgevae.js";
//   const vae = await EdgeVAE.load("model/");            // URL (browser) or folder path (Node)
//   const x = await vae.sample(64, 0);                   // {data: Float32Array, dims: [64, C, H, W]}
//   const y = await vae.decode(tensor(z, [n, vae.latentDim]));
//
// Every file is size- and sha256-checked before a session is built from those same bytes; every graph
// output is checked (dtype, shape, finite, decoder in [0, 1]) before it is returned. Errors are
// InputError (bad argument) or ModelDirError (unusable model dir), one line each.

import { checkCount, checkFinite, checkImages, checkLatents, tensor } from "./checks.js";
import { AUTO, GRAPHS, InputError, MAX_GRAPH_BYTES, MAX_MANIFEST_BYTES, ModelDirError, escape, parseManifestBytes } from "./manifest.js";
import { Generator } from "./random.js";
import { IS_NODE, openSource, sha256Hex } from "./source.js";

export { AUTO, InputError, ModelDirError, tensor, Generator };

// Images per onnxruntime call (bounds intermediate tensors). 64: the page's grid in one call.
export const CHUNK = 64;
// `auto` times every variant at these batch sizes and runs, at batch n, the winner of the largest probe <= n
// (the same rule as the manifest's native "selection", but measured in THIS runtime: in wasm the int8
// graphs were slower than fp32, the opposite of native onnxruntime).
export const PROBE_BATCHES = [1, 64];
const choices = new Map(); // measured choices in this process/page: key -> {choice, timings}

async function loadOrt() {
  const name = IS_NODE ? "onnxruntime-node" : "onnxruntime-web";
  try {
    const mod = await import(name);
    return mod.InferenceSession ? mod : mod.default;
  } catch (err) {
    throw new Error(`cannot import ${name} (run \`npm ci\` in web/, or pass {ort}): ${String(err?.message ?? err).split("\n")[0]}`);
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

/** The variants `auto` measures: those with a dynamic batch. A fixed-shape variant (the manifest's `static`, for
 * NPUs) takes only batches of its own size; this runtime runs one only when asked for it by name. */
function dynamicVariants(model) {
  const fixed = model.raw.static !== null && typeof model.raw.static === "object" ? model.raw.static : {};
  return Object.keys(model.variants).filter((v) => !Object.hasOwn(fixed, v));
}

export class EdgeVAE {
  /**
   * Load and check the model dir at `dir` (URL in a browser; URL or folder path in Node).
   * options.variant: a variant the manifest lists, or "auto" (default: measured here, see PROBE_BATCHES).
   * options.threads: intra-op threads (Node per session; web: ort.env.wasm.numThreads, set before the
   * first session). options.ort: the onnxruntime module (default: imported by name). options.cache:
   * {get(key), set(key, value)} to keep measured choices across page loads (e.g. over localStorage).
   * options.untilMeasured: a variant `auto` runs until choose() has measured (default null: measure on
   * first use); the page uses "fp32" so a first visit draws at once and measures after.
   */
  static async load(dir, options = {}) {
    const { variant = AUTO, threads, ort: given, chunk = CHUNK, cache = null, untilMeasured = null } = options;
    if (typeof variant !== "string") throw new InputError(`variant must be a string, got ${typeof variant}`);
    if (threads !== undefined) checkCount("threads", threads);
    checkCount("chunk", chunk);
    const ort = given ?? await loadOrt();
    const source = await openSource(dir);
    const model = parseManifestBytes(await source.read("manifest.json", { maxBytes: MAX_MANIFEST_BYTES }), source.where);
    const names = Object.keys(model.variants);
    for (const v of [variant, untilMeasured]) {
      if (v !== null && v !== AUTO && !names.includes(v)) {
        throw new InputError(`variant ${escape(JSON.stringify(v))} is not in ${source.where} (has: ${names.map(escape).join(", ")}, or 'auto')`);
      }
    }
    // Every file this runtime may run is hashed now (fetched in parallel), so a changed file fails load.
    const bytes = new Map();
    await Promise.all((variant === AUTO ? names : [variant]).flatMap((v) => GRAPHS.map(async (graph) => {
      const entry = model.variants[v][graph];
      const data = await source.read(entry.file, { maxBytes: MAX_GRAPH_BYTES, exact: entry.bytes });
      if (await sha256Hex(data, source.where) !== entry.sha256) {
        throw new ModelDirError(`${source.where}: ${escape(entry.file)} does not match its sha256 in the manifest (file changed or corrupt)`);
      }
      bytes.set(`${v}/${graph}`, data);
    })));
    if (!IS_NODE) {
      ort.env.logLevel = "error";
      if (threads !== undefined) ort.env.wasm.numThreads = threads; // read once, when the first session starts wasm
    }
    return new EdgeVAE(ort, source.where, model, variant, { threads, chunk, cache, bytes, untilMeasured });
  }

  constructor(ort, where, model, variant, { threads, chunk, cache, bytes, untilMeasured = null }) {
    this.ort = ort;
    this.where = where;
    this.model = model;
    this.variant = variant;
    this.threads = threads;
    this.chunk = chunk;
    this.cache = cache;
    this.untilMeasured = untilMeasured;
    this._bytes = bytes;
    this._sessions = new Map(); // "variant/graph" -> Promise<InferenceSession>, each built once
    this._measuring = new Map(); // choice key -> Promise of the measurement in progress
  }

  get latentDim() { return this.model.latentDim; }
  get imageShape() { return [...this.model.imageShape]; }

  /** Which onnxruntime runs the graphs, and how: the key under which `auto` choices are measured. */
  get runtime() {
    const versions = this.ort.env?.versions ?? {};
    if (IS_NODE) return `onnxruntime-node ${versions.node ?? "?"} cpu threads=${this.threads ?? "default"}`;
    return `onnxruntime-web ${versions.web ?? "?"} wasm threads=${this.ort.env.wasm.numThreads ?? "default"}`;
  }

  _sessionOptions() {
    if (!IS_NODE) return { executionProviders: ["wasm"], graphOptimizationLevel: "all", logSeverityLevel: 3 };
    // As the Python runtime's (runtime/sessions.py): sequential chain of convolutions, no spinning threads.
    return {
      executionProviders: ["cpu"], graphOptimizationLevel: "all", executionMode: "sequential", logSeverityLevel: 3,
      interOpNumThreads: 1, ...(this.threads ? { intraOpNumThreads: this.threads } : {}),
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    };
  }

  _session(variant, graph) {
    const key = `${variant}/${graph}`;
    if (!this._sessions.has(key)) this._sessions.set(key, this._createSession(variant, graph));
    return this._sessions.get(key);
  }

  async _createSession(variant, graph) {
    const file = escape(this.model.variants[variant][graph].file);
    let session;
    try {
      session = await this.ort.InferenceSession.create(this._bytes.get(`${variant}/${graph}`), this._sessionOptions());
    } catch (err) {
      throw new ModelDirError(`${this.where}: onnxruntime cannot load ${file}: ${String(err?.message ?? err).split("\n")[0]}`);
    }
    const io = this.model.io[graph];
    if (JSON.stringify(session.inputNames) !== JSON.stringify(io.inputs) || JSON.stringify(session.outputNames) !== JSON.stringify(io.outputs)) {
      throw new ModelDirError(`${this.where}: ${file} has inputs ${escape(JSON.stringify(session.inputNames))} and outputs `
        + `${escape(JSON.stringify(session.outputNames))}, the manifest says ${escape(JSON.stringify(io.inputs))} and ${escape(JSON.stringify(io.outputs))}`);
    }
    return session;
  }

  /** Run graph (concrete variant) on a checked batch in chunks; one Float32Array per output, checked. */
  async _run(graph, variant, input, outTails) {
    const session = await this._session(variant, graph);
    const { inputs, outputs } = this.model.io[graph];
    const n = input.dims[0], tail = input.dims.slice(1), width = input.data.length / n;
    const widths = outTails.map((t) => t.reduce((a, b) => a * b, 1));
    const results = widths.map((w) => new Float32Array(n * w));
    for (let start = 0; start < n; start += this.chunk) {
      const k = Math.min(this.chunk, n - start);
      const feed = new this.ort.Tensor("float32", input.data.slice(start * width, (start + k) * width), [k, ...tail]);
      const out = await session.run({ [inputs[0]]: feed });
      outputs.forEach((name, j) => {
        const t = out[name], want = [k, ...outTails[j]];
        if (t?.type !== "float32" || JSON.stringify([...t.dims]) !== JSON.stringify(want)) {
          throw new ModelDirError(`${this.where}: ${graph} (${variant}) returned ${name} as ${t?.type} ${JSON.stringify(t ? [...t.dims] : null)}, expected float32 ${JSON.stringify(want)}`);
        }
        results[j].set(t.data, start * widths[j]);
      });
    }
    return results;
  }

  /** The concrete variant that runs graph on a batch of n (measured here when variant is "auto"). */
  async variantFor(graph, n) {
    if (this.variant !== AUTO) return this.variant;
    if (this.untilMeasured && !this.measured(graph)) return this.untilMeasured;
    const { choice } = await this.choose(graph);
    const sizes = Object.keys(choice).map(Number).sort((a, b) => a - b);
    const below = sizes.filter((s) => s <= n);
    return choice[below.length ? below[below.length - 1] : sizes[0]];
  }

  /** `auto`'s choice for graph: {choice: {batch: variant}, timings: {variant: {batch: median ms}}, runtime}.
   * Measured once per runtime and file set (cached in-process and in options.cache). */
  async choose(graph) {
    const key = this._choiceKey(graph);
    const found = this.measured(graph);
    if (found) { choices.set(key, found); return found; }
    if (!this._measuring.has(key)) { // one measurement even when several calls ask at once
      this._measuring.set(key, this._measure(graph, dynamicVariants(this.model)).then((measured) => {
        const result = { runtime: this.runtime, ...measured };
        choices.set(key, result);
        try { this.cache?.set(key, result); } catch { /* storage full or disabled: measured again next time */ }
        return result;
      }).finally(() => this._measuring.delete(key)));
    }
    return this._measuring.get(key);
  }

  _choiceKey(graph) {
    const files = Object.keys(this.model.variants).map((v) => this.model.variants[v][graph].sha256.slice(0, 16));
    return ["edgevae-choice", this.runtime, graph, ...files].join("|");
  }

  /** The choice for graph already measured here (this process/page, or options.cache), else null. */
  measured(graph) {
    const key = this._choiceKey(graph);
    let found = choices.get(key) ?? null;
    if (!found) { try { found = this.cache?.get(key) ?? null; } catch { found = null; } }
    // a cached entry is only a hint: it must name batch sizes and variants this model has
    const valid = found && typeof found.choice === "object" && found.choice !== null && Object.keys(found.choice).length > 0
      && Object.entries(found.choice).every(([n, v]) => /^[1-9][0-9]*$/.test(n) && Object.hasOwn(this.model.variants, v));
    return valid ? found : null;
  }

  async _measure(graph, candidates) {
    const gen = new Generator(0), choice = {}, timings = {};
    const [C, H, W] = this.model.imageShape, D = this.model.latentDim;
    for (const n of PROBE_BATCHES) {
      const input = graph === "decoder" ? tensor(gen.normals(n * D), [n, D])
        : tensor(Float32Array.from({ length: n * C * H * W }, () => gen.uniform()), [n, C, H, W]);
      const tails = graph === "decoder" ? [[C, H, W]] : [[D], [D]];
      let best = Infinity;
      for (const v of candidates) {
        await this._run(graph, v, input, tails); // warm-up (builds the session)
        const times = [];
        for (let r = 0; r < (n === 1 ? 7 : 3); r++) {
          const t0 = performance.now();
          await this._run(graph, v, input, tails);
          times.push(performance.now() - t0);
          if (times.length >= 3 && median(times) > 2 * best) break; // clearly slower than the best: stop spending time on it
        }
        (timings[v] ??= {})[n] = median(times);
        if (timings[v][n] < best) { best = timings[v][n]; choice[n] = v; }
      }
    }
    return { choice, timings };
  }

  /** x {data, dims [N,C,H,W]} in [0,1] -> {mu, logvar}, each {data: Float32Array, dims [N,D]}. */
  async encode(x) {
    x = checkImages(x, this.model.imageShape);
    const n = x.dims[0], D = this.model.latentDim;
    const variant = await this.variantFor("encoder", n);
    const [mu, logvar] = await this._run("encoder", variant, x, [[D], [D]]);
    for (const [name, data] of [["mu", mu], ["logvar", logvar]]) {
      try { checkFinite(name, data, [n, D]); } catch (err) {
        throw new ModelDirError(`${this.where}: the encoder (${variant}) returned non-finite ${err.message}`);
      }
    }
    return { mu: tensor(mu, [n, D]), logvar: tensor(logvar, [n, D]) };
  }

  /** z = mu + exp(logvar/2) * eps, eps ~ N(0, I) from Generator(seed) (Kingma & Welling 2014, eq. 10). */
  reparameterize(mu, logvar, seed) {
    mu = checkLatents(mu, this.model.latentDim, "mu");
    logvar = checkLatents(logvar, this.model.latentDim, "logvar");
    if (mu.dims[0] !== logvar.dims[0]) throw new InputError(`mu and logvar must have the same shape, got ${JSON.stringify(mu.dims)} and ${JSON.stringify(logvar.dims)}`);
    const eps = new Generator(seed).normals(mu.data.length);
    const z = new Float32Array(mu.data.length);
    for (let i = 0; i < z.length; i++) z[i] = mu.data[i] + Math.exp(0.5 * logvar.data[i]) * eps[i];
    if (!z.every(Number.isFinite)) throw new InputError("z = mu + exp(logvar/2) * eps overflows float32");
    return tensor(z, mu.dims);
  }

  /** z {data, dims [N,D]} -> x_hat {data: Float32Array, dims [N,C,H,W]}, Bernoulli means in [0,1]. */
  async decode(z) {
    z = checkLatents(z, this.model.latentDim);
    const n = z.dims[0], dims = [n, ...this.model.imageShape];
    const variant = await this.variantFor("decoder", n);
    const [x] = await this._run("decoder", variant, z, [this.model.imageShape]);
    let low = Infinity, high = -Infinity;
    for (const v of x) {
      if (!Number.isFinite(v)) {
        // as the Python runtime: a finite but huge z overflows inside the graph
        throw new InputError(`z holds values up to ${z.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0)} in magnitude: too large for the decoder (its output overflowed to NaN)`);
      }
      if (v < low) low = v;
      if (v > high) high = v;
    }
    if (low < 0 || high > 1) throw new ModelDirError(`${this.where}: the decoder (${variant}) returned values in [${low}, ${high}], outside [0, 1]`);
    return tensor(x, dims);
  }

  /** n latents z ~ N(0, I) from Generator(seed): {data, dims [n,D]} (seed undefined: fresh entropy). */
  sampleLatents(n, seed) {
    n = checkCount("n", n);
    return tensor(new Generator(seed).normals(n * this.model.latentDim), [n, this.model.latentDim]);
  }

  /** n images decoded from z ~ N(0, I): {data, dims [n,C,H,W]}. Same seed, same images. */
  async sample(n, seed) { return this.decode(this.sampleLatents(n, seed)); }

  /** Decode x's posterior: its mean when seed is undefined/null, else one reparameterized draw. */
  async reconstruct(x, seed) {
    const { mu, logvar } = await this.encode(x);
    return this.decode(seed === undefined || seed === null ? mu : this.reparameterize(mu, logvar, seed));
  }

  /** Decode `steps` points on the line from mu(xA) to mu(xB), ends included: {dims [steps,C,H,W]}.
   * xA, xB: one image each, dims [C,H,W] or [1,C,H,W]. */
  async interpolate(xA, xB, steps = 8) {
    steps = checkCount("steps", steps, 2);
    const pair = [["x_a", xA], ["x_b", xB]].map(([name, x]) => {
      if (x && Array.isArray(x.dims) && x.dims.length === this.model.imageShape.length) x = { data: x.data, dims: [1, ...x.dims] };
      x = checkImages(x, this.model.imageShape, name);
      if (x.dims[0] !== 1) throw new InputError(`${name} must be one image, got a batch of ${x.dims[0]}`);
      return x.data;
    });
    const both = new Float32Array(pair[0].length * 2);
    both.set(pair[0]); both.set(pair[1], pair[0].length);
    const { mu } = await this.encode(tensor(both, [2, ...this.model.imageShape]));
    const D = this.model.latentDim;
    return this.decode(line(mu.data.subarray(0, D), mu.data.subarray(D), steps));
  }

  /** Decode `steps` points on the line from latent zA to zB (dims [D] or [1,D]), ends included. */
  async walk(zA, zB, steps = 8) {
    steps = checkCount("steps", steps, 2);
    const ends = [["z_a", zA], ["z_b", zB]].map(([name, z]) => {
      if (z && Array.isArray(z.dims) && z.dims.length === 1) z = { data: z.data, dims: [1, ...z.dims] };
      z = checkLatents(z, this.model.latentDim, name);
      if (z.dims[0] !== 1) throw new InputError(`${name} must be one latent, got a batch of ${z.dims[0]}`);
      return z.data;
    });
    return this.decode(line(ends[0], ends[1], steps));
  }

  /** Free the onnxruntime sessions. */
  async release() {
    for (const s of this._sessions.values()) await (await s.catch(() => null))?.release?.();
    this._sessions.clear();
  }
}

// (1 - t) * a + t * b in float32 arithmetic, t = linspace(0, 1, steps) as float32: numpy's float32 result.
function line(a, b, steps) {
  const f = Math.fround, D = a.length, out = new Float32Array(steps * D);
  for (let i = 0; i < steps; i++) {
    const t = f(i === steps - 1 ? 1 : i * (1 / (steps - 1)));
    for (let j = 0; j < D; j++) out[i * D + j] = f(f(f(1 - t) * a[j]) + f(t * b[j]));
  }
  return tensor(out, [steps, D]);
}
