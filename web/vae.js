// @ts-check
// edgevae's JavaScript runtime, free of any platform: an exported model dir (manifest.json + ONNX graphs) run
// with onnxruntime-web, -node or -react-native, with the Python runtime's shapes, ranges and checks.
//
//   import { EdgeVAE, defaultBackend } from "./vae.js";
//   const vae = await EdgeVAE.load(loader, { ort });     // ort: any onnxruntime module; loader: see below
//   const x = await vae.sample(64, 0);                   // {data: Float32Array, dims: [64, C, H, W]}
//
// This module uses nothing but onnxruntime-common's interface (InferenceSession.create(bytes, options),
// session.run, session.inputNames/outputNames, Tensor) and the loader it is given:
//   loader = {where: "text naming the dir", read(name, {maxBytes, exact, sha256}) -> Promise<Uint8Array>}
// where name is a plain file name from the manifest, maxBytes a bound the loader must enforce before reading,
// exact the manifest's size and sha256 its hash (a caching loader may key on it; this module checks it anyway).
// edgevae.js adds the loaders for URLs and folders and imports onnxruntime by name (browser and Node);
// React Native passes onnxruntime-react-native and its own loader.
//
// Every file is size- and sha256-checked before a session is built from those same bytes; every graph
// output is checked (dtype, shape, finite, decoder in [0, 1]) before it is returned. Errors are
// InputError (bad argument) or ModelDirError (unusable model dir), one line each.

import { choose, measured } from "./auto.js";
import { defaultBackend, label } from "./backends.js";
import { checkCount, checkFinite, checkImages, checkLatents, tensor } from "./checks.js";
import { AUTO, GRAPHS, InputError, MAX_GRAPH_BYTES, MAX_MANIFEST_BYTES, ModelDirError, escape, parseManifestBytes } from "./manifest.js";
import { Generator } from "./random.js";
import { sha256Hex } from "./sha256.js";

/**
 * @import { Choice } from "./auto.js"
 * @import { Backend, Candidate } from "./backends.js"
 * @import { Batch, Tensor32 } from "./checks.js"
 * @import { FileEntry, Manifest } from "./manifest.js"
 */
/**
 * @typedef {object} ReadOptions What a loader is told about the file it reads.
 * @property {number} maxBytes refuse a larger file before reading it
 * @property {number} [exact] the manifest's size of the file
 * @property {string} [sha256] the manifest's hash of the file (a caching loader may key on it)
 */
/**
 * @typedef {object} Loader Reads the files of one model dir.
 * @property {string} [where] text naming the dir in messages
 * @property {(name: string, options: ReadOptions) => Promise<Uint8Array>} read
 */
/**
 * @typedef {object} ChoiceCache Keeps measured choices across loads (e.g. over localStorage).
 * @property {(key: string) => any} get
 * @property {(key: string, value: any) => void} set
 */
/**
 * @typedef {object} LoadOptions See EdgeVAE.load.
 * @property {any} [ort] an onnxruntime module
 * @property {Backend[]} [backends]
 * @property {string} [variant]
 * @property {number} [threads]
 * @property {number} [chunk]
 * @property {ChoiceCache | null} [cache]
 * @property {string | null} [untilMeasured]
 * @property {boolean} [lazy]
 */
/** @typedef {{session: any, ort: any}} Built An InferenceSession and the module that built it. */

export { AUTO, InputError, ModelDirError, tensor, Generator };
export { PROBE_BATCHES } from "./auto.js";
export { defaultBackend, webBackend } from "./backends.js";

/** @param {any} err a thrown value */
const firstLine = (err) => String(err?.message ?? err).split("\n")[0];

// Images per onnxruntime call (bounds intermediate tensors). 64: the page's grid in one call.
export const CHUNK = 64;

export class EdgeVAE {
  /**
   * Load and check the model dir that `loader` reads (see the top of this file).
   * options.ort: an onnxruntime module, or options.backends: [backend, ...] (defaultBackend, webBackend); the
   * first backend runs until `auto` has measured. options.variant: a variant the manifest lists, or "auto"
   * (default: measured here, see PROBE_BATCHES; with several backends every variant x backend is a candidate,
   * and a named variant is still measured across backends). options.threads: intra-op threads.
   * options.cache: {get(key), set(key, value)} keeps measured choices across loads (e.g. over localStorage).
   * options.untilMeasured: a variant `auto` runs (on the first backend) until choose() has measured (default
   * null: measure on first use); the page uses "fp32" so a first visit draws at once and measures after.
   * options.lazy: false (default) reads and hashes every file the candidates may run now, so a changed file
   * fails load; true reads each when its first session is built (the page: its first grid needs one file).
   * @param {Loader} loader
   * @param {LoadOptions} [options]
   * @returns {Promise<EdgeVAE>}
   */
  static async load(loader, options = {}) {
    const { variant = AUTO, threads, chunk = CHUNK, cache = null, untilMeasured = null, lazy = false } = options;
    if (typeof variant !== "string") throw new InputError(`variant must be a string, got ${typeof variant}`);
    if (threads !== undefined) checkCount("threads", threads);
    checkCount("chunk", chunk);
    if (typeof loader?.read !== "function") throw new InputError("the model dir's loader must have a read(name, options) method");
    const backends = options.backends ?? (options.ort ? [defaultBackend(options.ort, threads)] : null);
    if (!Array.isArray(backends) || !backends.length || new Set(backends.map((b) => b?.name)).size !== backends.length
        || !backends.every((b) => typeof b.name === "string" && b.ort && b.options)) {
      throw new InputError("pass options.ort (an onnxruntime module) or options.backends: [{name, ort, options}, ...] with distinct names");
    }
    const where = loader.where ?? "model dir";
    const model = parseManifestBytes(await loader.read("manifest.json", { maxBytes: MAX_MANIFEST_BYTES }), where);
    const names = Object.keys(model.variants);
    for (const v of [variant, untilMeasured]) {
      if (v !== null && v !== AUTO && !names.includes(v)) {
        throw new InputError(`variant ${escape(JSON.stringify(v))} is not in ${where} (has: ${names.map(escape).join(", ")}, or 'auto')`);
      }
    }
    const vae = new this(loader, where, model, variant, { backends, chunk, cache, untilMeasured, threads });
    if (!lazy) await Promise.all((variant === AUTO ? names : [variant]).flatMap((v) => GRAPHS.map((g) => vae._graphBytes(v, g))));
    return vae;
  }

  /**
   * Use load(), which checks the arguments and the manifest.
   * @param {Loader} loader
   * @param {string} where
   * @param {Manifest} model
   * @param {string} variant
   * @param {{backends: Backend[], chunk: number, cache: ChoiceCache | null, untilMeasured: string | null, threads?: number}} options
   */
  constructor(loader, where, model, variant, { backends, chunk, cache, untilMeasured, threads }) {
    this.loader = loader;
    this.where = where;
    this.model = model;
    this.variant = variant;
    this.backends = backends;
    this.threads = threads;
    this.chunk = chunk;
    this.cache = cache;
    // a named variant runs as itself until measured; untilMeasured only stands in for `auto`
    this.untilMeasured = variant === AUTO ? untilMeasured : variant;
    /** @type {Map<string, Promise<Uint8Array>>} */
    this._files = new Map(); // file name -> Promise<checked bytes>
    /** @type {Map<string, Promise<any>>} */
    this._orts = new Map(); // backend name -> Promise<onnxruntime module>
    /** @type {Map<string, Promise<Built>>} */
    this._sessions = new Map(); // "backend/variant/graph" -> Promise<InferenceSession>, each built once
  }

  /** @returns {number} */
  get latentDim() { return this.model.latentDim; }
  /** @returns {number[]} [C, H, W] */
  get imageShape() { return [...this.model.imageShape]; }

  /**
   * Which onnxruntime runs the graphs, and how: part of the key under which `auto` choices are kept.
   * @returns {string}
   */
  get runtime() { return this.backends.map((b) => b.describe ?? b.name).join(" + "); }

  /**
   * A file the manifest lists, read once, its size and sha256 checked before anything uses it.
   * @param {FileEntry} entry
   * @param {number} [maxBytes]
   * @returns {Promise<Uint8Array>}
   */
  readFile(entry, maxBytes = MAX_GRAPH_BYTES) {
    if (!this._files.has(entry.file)) {
      this._files.set(entry.file, (async () => {
        const data = await this.loader.read(entry.file, { maxBytes, exact: entry.bytes, sha256: entry.sha256 });
        if (!(data instanceof Uint8Array) || data.byteLength !== entry.bytes) {
          throw new ModelDirError(`${this.where}: ${escape(entry.file)} was read as ${data?.byteLength ?? typeof data} bytes, the manifest says ${entry.bytes}`);
        }
        if (await sha256Hex(data) !== entry.sha256) {
          throw new ModelDirError(`${this.where}: ${escape(entry.file)} does not match its sha256 in the manifest (file changed or corrupt)`);
        }
        return data;
      })());
      this._files.get(entry.file).catch(() => {}); // reported where it is awaited; a lazy read nobody awaits is no crash
    }
    return this._files.get(entry.file);
  }

  /** @param {string} variant @param {string} graph */
  _graphBytes(variant, graph) { return this.readFile(this.model.variants[variant][graph]); }

  /** @param {string} name */
  _backend(name) { return this.backends.find((b) => b.name === name); }

  /** @param {Backend} backend @returns {Promise<any>} the module, loaded once */
  _ort(backend) {
    if (!this._orts.has(backend.name)) {
      this._orts.set(backend.name, (async () => {
        let module = backend.ort;
        if (typeof module === "function") {
          try { module = await module(); } catch (err) {
            throw new Error(`cannot load the ${backend.name} backend of onnxruntime: ${firstLine(err)}`);
          }
        }
        module = module?.InferenceSession ? module : module?.default;
        if (typeof module?.InferenceSession?.create !== "function" || typeof module?.Tensor !== "function") {
          throw new Error(`the ${backend.name} backend's module is not onnxruntime (it has no InferenceSession and Tensor)`);
        }
        backend.prepare?.(module);
        return module;
      })());
    }
    return this._orts.get(backend.name);
  }

  /** The candidates (variant x backend) of this runtime, first backend first. `auto` takes the variants with a
   * dynamic batch: a fixed-shape one (the manifest's `static`, for NPUs) runs only when named.
   * @returns {Candidate[]}
   */
  candidates() {
    const variants = this.variant === AUTO ? Object.keys(this.model.variants).filter((v) => !(v in this.model.static)) : [this.variant];
    return this.backends.flatMap((b) => variants.map((variant) => ({ variant, backend: b.name })));
  }

  /** @param {Candidate} candidate @param {string} graph @returns {Promise<Built>} */
  _session(candidate, graph) {
    const key = `${candidate.backend}/${candidate.variant}/${graph}`;
    if (!this._sessions.has(key)) this._sessions.set(key, this._createSession(candidate, graph));
    return this._sessions.get(key);
  }

  /** @param {Candidate} candidate @param {string} graph @returns {Promise<Built>} */
  async _createSession({ variant, backend: name }, graph) {
    const backend = this._backend(name);
    if (!backend || !Object.hasOwn(this.model.variants, variant)) {
      throw new InputError(`${escape(label({ variant, backend: name }))} is no candidate here (backends: `
        + `${this.backends.map((b) => b.name).join(", ")}; variants: ${Object.keys(this.model.variants).map(escape).join(", ")})`);
    }
    const [ort, bytes] = await Promise.all([this._ort(backend), this._graphBytes(variant, graph)]);
    const file = escape(this.model.variants[variant][graph].file);
    let session;
    try {
      session = await ort.InferenceSession.create(bytes, backend.options);
    } catch (err) {
      throw new ModelDirError(`${this.where}: onnxruntime (${escape(name)}) cannot load ${file}: ${firstLine(err)}`);
    }
    const io = this.model.io[graph];
    if (JSON.stringify(session.inputNames) !== JSON.stringify(io.inputs) || JSON.stringify(session.outputNames) !== JSON.stringify(io.outputs)) {
      throw new ModelDirError(`${this.where}: ${file} has inputs ${escape(JSON.stringify(session.inputNames))} and outputs `
        + `${escape(JSON.stringify(session.outputNames))}, the manifest says ${escape(JSON.stringify(io.inputs))} and ${escape(JSON.stringify(io.outputs))}`);
    }
    return { session, ort };
  }

  /**
   * The shapes of graph's outputs after the batch dimension, in the manifest's output order.
   * @param {string} graph
   * @returns {number[][]}
   */
  outputShapes(graph) {
    return graph === "decoder" ? [this.model.imageShape] : [[this.model.latentDim], [this.model.latentDim]];
  }

  /**
   * Run graph with one candidate {variant, backend} on a batch {data: Float32Array, dims} in chunks: one
   * Float32Array per output, dtype and shape checked. The input is not checked and the outputs' values are not
   * either (encode and decode do both): this is for verify.js and for comparing backends on the same input.
   * @param {string} graph
   * @param {Candidate} candidate
   * @param {{data: Float32Array, dims: readonly number[]}} input
   * @returns {Promise<Float32Array[]>}
   */
  async runGraph(graph, candidate, input) {
    const { session, ort } = await this._session(candidate, graph);
    const { inputs, outputs } = this.model.io[graph];
    const outTails = this.outputShapes(graph);
    const n = input.dims[0], tail = input.dims.slice(1), width = input.data.length / n;
    // a fixed-shape variant runs whole batches of its size, never a padded one
    const step = this.model.static[candidate.variant]?.batch ?? this.chunk;
    if (candidate.variant in this.model.static && n % step !== 0) {
      throw new InputError(`variant ${escape(candidate.variant)} has a fixed batch of ${step}: give it a multiple of ${step} rows, got ${n}`);
    }
    const widths = outTails.map((t) => t.reduce((a, b) => a * b, 1));
    const results = widths.map((w) => new Float32Array(n * w));
    for (let start = 0; start < n; start += step) {
      const k = Math.min(step, n - start);
      const feed = new ort.Tensor("float32", input.data.slice(start * width, (start + k) * width), [k, ...tail]);
      const out = await session.run({ [inputs[0]]: feed });
      outputs.forEach((name, j) => {
        const t = out[name], want = [k, ...outTails[j]];
        if (t?.type !== "float32" || JSON.stringify([...t.dims]) !== JSON.stringify(want)) {
          throw new ModelDirError(`${this.where}: ${graph} (${label(candidate)}) returned ${name} as ${t?.type} ${JSON.stringify(t ? [...t.dims] : null)}, expected float32 ${JSON.stringify(want)}`);
        }
        results[j].set(t.data, start * widths[j]);
      });
    }
    return results;
  }

  /**
   * The candidate {variant, backend} that runs graph on a batch of n (measured here when there are several).
   * @param {string} graph
   * @param {number} n
   * @returns {Promise<Candidate>}
   */
  async pick(graph, n) {
    const all = this.candidates();
    if (all.length === 1) return all[0];
    if (this.untilMeasured && !this.measured(graph)) return { variant: this.untilMeasured, backend: this.backends[0].name };
    const { choice } = await this.choose(graph);
    const sizes = Object.keys(choice).map(Number).sort((a, b) => a - b);
    const below = sizes.filter((s) => s <= n);
    return choice[below.length ? below[below.length - 1] : sizes[0]];
  }

  /**
   * Build (once) the session that graph at batch n will run, and say which: the page times its start alone.
   * @param {string} graph
   * @param {number} n
   * @returns {Promise<Candidate>}
   */
  async prepare(graph, n) {
    const candidate = await this.pick(graph, n);
    await this._session(candidate, graph);
    return candidate;
  }

  /** `auto`'s choice for graph: {choice: {batch: {variant, backend}}, timings: {"variant@backend": {batch: median
   * ms}}, failed: {"variant@backend": reason}, runtime}, measured once per runtime and file set (auto.js).
   * @param {string} graph
   * @returns {Promise<Choice>}
   */
  choose(graph) { return choose(this, graph); }

  /**
   * The choice for graph already measured here (this process/page, or options.cache), else null.
   * @param {string} graph
   * @returns {Choice | null}
   */
  measured(graph) { return measured(this, graph); }

  /**
   * x {data, dims [N,C,H,W]} in [0,1] -> {mu, logvar}, each {data: Float32Array, dims [N,D]}.
   * @param {Batch} x
   * @returns {Promise<{mu: Tensor32, logvar: Tensor32}>}
   */
  async encode(x) {
    const images = checkImages(x, this.model.imageShape);
    const n = images.dims[0], D = this.model.latentDim;
    const candidate = await this.pick("encoder", n);
    const [mu, logvar] = await this.runGraph("encoder", candidate, images);
    for (const [name, data] of /** @type {[string, Float32Array][]} */ ([["mu", mu], ["logvar", logvar]])) {
      try { checkFinite(name, data, [n, D]); } catch (err) {
        throw new ModelDirError(`${this.where}: the encoder (${label(candidate)}) returned non-finite ${err.message}`);
      }
    }
    return { mu: tensor(mu, [n, D]), logvar: tensor(logvar, [n, D]) };
  }

  /**
   * z = mu + exp(logvar/2) * eps, eps ~ N(0, I) from Generator(seed) (Kingma & Welling 2014, eq. 10).
   * @param {Batch} mu
   * @param {Batch} logvar
   * @param {number | null} [seed] undefined/null: fresh entropy
   * @returns {Tensor32}
   */
  reparameterize(mu, logvar, seed) {
    const m = checkLatents(mu, this.model.latentDim, "mu");
    const lv = checkLatents(logvar, this.model.latentDim, "logvar");
    if (m.dims[0] !== lv.dims[0]) throw new InputError(`mu and logvar must have the same shape, got ${JSON.stringify(m.dims)} and ${JSON.stringify(lv.dims)}`);
    const eps = new Generator(seed).normals(m.data.length);
    const z = new Float32Array(m.data.length);
    for (let i = 0; i < z.length; i++) z[i] = m.data[i] + Math.exp(0.5 * lv.data[i]) * eps[i];
    if (!z.every(Number.isFinite)) throw new InputError("z = mu + exp(logvar/2) * eps overflows float32");
    return tensor(z, m.dims);
  }

  /**
   * z {data, dims [N,D]} -> x_hat {data: Float32Array, dims [N,C,H,W]}, Bernoulli means in [0,1].
   * @param {Batch} z
   * @returns {Promise<Tensor32>}
   */
  async decode(z) {
    const latents = checkLatents(z, this.model.latentDim);
    const n = latents.dims[0], dims = [n, ...this.model.imageShape];
    const candidate = await this.pick("decoder", n);
    const [x] = await this.runGraph("decoder", candidate, latents);
    let low = Infinity, high = -Infinity;
    for (const v of x) {
      if (!Number.isFinite(v)) {
        // as the Python runtime: a finite but huge z overflows inside the graph
        throw new InputError(`z holds values up to ${latents.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0)} in magnitude: too large for the decoder (its output overflowed to NaN)`);
      }
      if (v < low) low = v;
      if (v > high) high = v;
    }
    if (low < 0 || high > 1) throw new ModelDirError(`${this.where}: the decoder (${label(candidate)}) returned values in [${low}, ${high}], outside [0, 1]`);
    return tensor(x, dims);
  }

  /**
   * n latents z ~ N(0, I) from Generator(seed): {data, dims [n,D]} (seed undefined: fresh entropy).
   * @param {number} n
   * @param {number | null} [seed]
   * @returns {Tensor32}
   */
  sampleLatents(n, seed) {
    n = checkCount("n", n);
    return tensor(new Generator(seed).normals(n * this.model.latentDim), [n, this.model.latentDim]);
  }

  /**
   * n images decoded from z ~ N(0, I): {data, dims [n,C,H,W]}. Same seed, same images.
   * @param {number} n
   * @param {number | null} [seed]
   * @returns {Promise<Tensor32>}
   */
  async sample(n, seed) { return this.decode(this.sampleLatents(n, seed)); }

  /**
   * Decode x's posterior: its mean when seed is undefined/null, else one reparameterized draw.
   * @param {Batch} x
   * @param {number | null} [seed]
   * @returns {Promise<Tensor32>}
   */
  async reconstruct(x, seed) {
    const { mu, logvar } = await this.encode(x);
    return this.decode(seed === undefined || seed === null ? mu : this.reparameterize(mu, logvar, seed));
  }

  /** Decode `steps` points on the line from mu(xA) to mu(xB), ends included: {dims [steps,C,H,W]}.
   * xA, xB: one image each, dims [C,H,W] or [1,C,H,W].
   * @param {Batch} xA
   * @param {Batch} xB
   * @param {number} [steps]
   * @returns {Promise<Tensor32>}
   */
  async interpolate(xA, xB, steps = 8) {
    steps = checkCount("steps", steps, 2);
    const pair = /** @type {[string, Batch][]} */ ([["x_a", xA], ["x_b", xB]]).map(([name, x]) => {
      if (x && Array.isArray(x.dims) && x.dims.length === this.model.imageShape.length) x = { data: x.data, dims: [1, ...x.dims] };
      const image = checkImages(x, this.model.imageShape, name);
      if (image.dims[0] !== 1) throw new InputError(`${name} must be one image, got a batch of ${image.dims[0]}`);
      return image.data;
    });
    const both = new Float32Array(pair[0].length * 2);
    both.set(pair[0]); both.set(pair[1], pair[0].length);
    const { mu } = await this.encode(tensor(both, [2, ...this.model.imageShape]));
    const D = this.model.latentDim;
    return this.decode(line(mu.data.subarray(0, D), mu.data.subarray(D), steps));
  }

  /**
   * Decode `steps` points on the line from latent zA to zB (dims [D] or [1,D]), ends included.
   * @param {Batch} zA
   * @param {Batch} zB
   * @param {number} [steps]
   * @returns {Promise<Tensor32>}
   */
  async walk(zA, zB, steps = 8) {
    steps = checkCount("steps", steps, 2);
    const ends = /** @type {[string, Batch][]} */ ([["z_a", zA], ["z_b", zB]]).map(([name, z]) => {
      if (z && Array.isArray(z.dims) && z.dims.length === 1) z = { data: z.data, dims: [1, ...z.dims] };
      const latent = checkLatents(z, this.model.latentDim, name);
      if (latent.dims[0] !== 1) throw new InputError(`${name} must be one latent, got a batch of ${latent.dims[0]}`);
      return latent.data;
    });
    return this.decode(line(ends[0], ends[1], steps));
  }

  /** Free the onnxruntime sessions. @returns {Promise<void>} */
  async release() {
    for (const s of this._sessions.values()) await (await s.catch(() => null))?.session?.release?.();
    this._sessions.clear();
  }
}

// (1 - t) * a + t * b in float32 arithmetic, t = linspace(0, 1, steps) as float32: numpy's float32 result.
/** @param {Float32Array} a @param {Float32Array} b @param {number} steps @returns {Tensor32} */
function line(a, b, steps) {
  const f = Math.fround, D = a.length, out = new Float32Array(steps * D);
  for (let i = 0; i < steps; i++) {
    const t = f(i === steps - 1 ? 1 : i * (1 / (steps - 1)));
    for (let j = 0; j < D; j++) out[i * D + j] = f(f(f(1 - t) * a[j]) + f(t * b[j]));
  }
  return tensor(out, [steps, D]);
}
