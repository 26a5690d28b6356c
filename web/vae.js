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
// output is checked (dtype, shape, finite, Bernoulli means in [0, 1]) before it is returned. Errors are
// InputError (bad argument) or ModelDirError (unusable model dir), one line each.
//
// Any VAE the manifest describes (docs/model-dir.md): latents [D] or [C, h, w], and the declared conventions
// applied as the Python runtime applies them (conventions.js): images in and out in [0, 1] whatever the pixel range
// and decoder head, latents in the model's convention (latent scale and shift), a deterministic encoder's latent
// alone, `sample` refused without a prior, any image size a fully convolutional model divides, and tiled decode.

import { choose, measured } from "./auto.js";
import { defaultBackend, label } from "./backends.js";
import { checkCount, checkFinite, checkImages, checkLatents, tensor } from "./checks.js";
import { fromGraphLatent, toGraphLatent, toPixels, toUnit } from "./conventions.js";
import { AUTO, GRAPHS, InputError, MAX_GRAPH_BYTES, MAX_MANIFEST_BYTES, ModelDirError, escape, forBatch, parseManifestBytes } from "./manifest.js";
import { Generator } from "./random.js";
import { sha256Hex } from "./sha256.js";
import { DEFAULT_TILE, decodeTiles } from "./tiles.js";

/**
 * @import { Choice } from "./auto.js"
 * @import { Backend, Candidate } from "./backends.js"
 * @import { Batch, Tensor32 } from "./checks.js"
 * @import { Conventions, FileEntry, Manifest } from "./manifest.js"
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
// ...and at most this many values in one item's input or output times the rows of a call (4 MB of float32): a
// 512 x 512 RGB decoder, whose intermediate tensors are ~100x its output, runs one image at a time (vae.py's rule).
export const CHUNK_VALUES = 1 << 20;
// The Python runtime's message (runtime/inference/vae.py NO_PRIOR; tests/web/test_web.py keeps them equal).
export const NO_PRIOR = "this model has no prior to sample from; decode latents with `edgevae decode`";
const HUGE_LATENT = 1e4; // |z| beyond this is the caller's doing when the decoder overflows; below it, the model's
/** @param {readonly number[]} dims */
const product = (dims) => dims.reduce((a, b) => a * b, 1);
/** @param {readonly number[]} a @param {readonly number[]} b */
const sameDims = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

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

  /** @returns {number} values in one item's latent */
  get latentDim() { return this.model.latentDim; }
  /** @returns {number[]} [C, H, W] */
  get imageShape() { return [...this.model.imageShape]; }
  /** @returns {number[]} one item's latent at imageShape: [D] or [C, h, w] */
  get latentShape() { return [...this.model.latentShape]; }
  /** @returns {Conventions} the model's declared conventions, which every method applies */
  get conventions() { return this.model.conventions; }

  /**
   * One item's latent for an image of [H, W] (a fully convolutional model's follows the size).
   * @param {readonly number[]} imageHw
   * @returns {number[]}
   */
  latentShapeFor(imageHw) {
    const factor = this.model.conventions.downsampling, shape = this.model.latentShape;
    return factor === null ? [...shape] : [shape[0], imageHw[0] / factor, imageHw[1] / factor];
  }

  /**
   * One item's image decoded from a latent of [h, w].
   * @param {readonly number[]} latentHw
   * @returns {number[]}
   */
  imageShapeFor(latentHw) {
    const factor = this.model.conventions.downsampling, shape = this.model.imageShape;
    return factor === null ? [...shape] : [shape[0], latentHw[0] * factor, latentHw[1] * factor];
  }

  /** @param {Batch} x @param {string} [name] @returns {Tensor32} */
  _checkImages(x, name = "x") { return checkImages(x, this.model.imageShape, name, this.model.conventions.downsampling); }

  /** @param {Batch} z @param {string} [name] @returns {Tensor32} */
  _checkLatents(z, name = "z") { return checkLatents(z, this.model.latentShape, name, this.model.conventions.downsampling !== null); }

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
   * @param {readonly number[]} [inputTail] one item's input (default: the model's native image or latent)
   * @returns {number[][]}
   */
  outputShapes(graph, inputTail) {
    if (graph === "decoder") return [this.imageShapeFor((inputTail ?? this.model.latentShape).slice(1))];
    const latent = this.latentShapeFor((inputTail ?? this.model.imageShape).slice(1));
    return this.model.io.encoder.outputs.map(() => latent);
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
    const n = input.dims[0], tail = input.dims.slice(1), width = input.data.length / n;
    const outTails = this.outputShapes(graph, tail);
    // a fixed-shape variant runs whole batches of its size, never a padded one
    const rows = Math.max(1, Math.min(this.chunk, Math.floor(CHUNK_VALUES / Math.max(product(tail), ...outTails.map(product)))));
    const step = this.model.static[candidate.variant]?.batch ?? rows;
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
    return forBatch((await this.choose(graph)).choice, n);
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
   * x {data, dims [N,C,H,W]} in [0,1] -> {mu, logvar}, each {data: Float32Array, dims [N, ...latentShape]} in the
   * model's latent convention; a deterministic encoder (conventions.posterior) gives {mu: z, logvar: null}.
   * A fully convolutional model takes any H and W its downsampling divides.
   * @param {Batch} x
   * @returns {Promise<{mu: Tensor32, logvar: Tensor32 | null}>}
   */
  async encode(x) {
    const images = this._checkImages(x);
    const n = images.dims[0], dims = [n, ...this.latentShapeFor(images.dims.slice(2))];
    const candidate = await this.pick("encoder", n);
    const outputs = await this.runGraph("encoder", candidate, { data: toPixels(images.data, this.conventions), dims: images.dims });
    outputs.forEach((data, j) => {
      try { checkFinite(this.model.io.encoder.outputs[j], data, dims); } catch (err) {
        throw new ModelDirError(`${this.where}: the encoder (${label(candidate)}) returned non-finite ${err.message}`);
      }
    });
    const [mu, logvar] = fromGraphLatent(outputs[0], outputs[1] ?? null, this.conventions);
    return { mu: tensor(mu, dims), logvar: logvar && tensor(logvar, dims) };
  }

  /**
   * z = mu + exp(logvar/2) * eps, eps ~ N(0, I) from Generator(seed) (Kingma & Welling 2014, eq. 10); a
   * deterministic encoder's {mu: z, logvar: null}: z itself.
   * @param {Batch} mu
   * @param {Batch | null} logvar
   * @param {number | null} [seed] undefined/null: fresh entropy
   * @returns {Tensor32}
   */
  reparameterize(mu, logvar, seed) {
    const generator = new Generator(seed); // a bad seed is refused first, as in Python
    const m = this._checkLatents(mu, "mu");
    if (this.conventions.posterior === "deterministic") {
      if (logvar !== null && logvar !== undefined) throw new InputError("this model's encoder is deterministic: pass logvar null (encode returns it so)");
      return m;
    }
    const lv = this._checkLatents(logvar, "logvar");
    if (!sameDims(m.dims, lv.dims)) throw new InputError(`mu and logvar must have the same shape, got ${JSON.stringify(m.dims)} and ${JSON.stringify(lv.dims)}`);
    const eps = generator.normals(m.data.length);
    const z = new Float32Array(m.data.length);
    for (let i = 0; i < z.length; i++) z[i] = m.data[i] + Math.exp(0.5 * lv.data[i]) * eps[i];
    if (!z.every(Number.isFinite)) throw new InputError("z = mu + exp(logvar/2) * eps overflows float32");
    return tensor(z, m.dims);
  }

  /**
   * The decoder on graph latents (already mapped from the model's convention) -> images in [0, 1]: the output
   * checked (finite; Bernoulli means in [0, 1]) and the declared head mapped onto [0, 1], as the Python runtime does.
   * @param {Candidate} candidate
   * @param {Tensor32} latents
   * @returns {Promise<Float32Array>}
   */
  async _decodeGraph(candidate, latents) {
    const [x] = await this.runGraph("decoder", candidate, latents);
    let low = Infinity, high = -Infinity;
    for (const v of x) {
      if (v < low) low = v;
      if (v > high) high = v;
    }
    if (!Number.isFinite(low) || !Number.isFinite(high) || x.some(Number.isNaN)) {
      const largest = latents.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      // as the Python runtime: a finite but huge z overflows inside the graph (the caller's doing), else the model's
      if (largest > HUGE_LATENT) throw new InputError(`z holds values up to ${largest} in magnitude: too large for the decoder (its output overflowed to NaN)`);
      throw new ModelDirError(`${this.where}: the decoder (${label(candidate)}) returned NaN or inf for finite input`);
    }
    if (this.conventions.decoderHead === "bernoulli_means" && (low < 0 || high > 1)) {
      throw new ModelDirError(`${this.where}: the decoder (${label(candidate)}) returned values in [${low}, ${high}], outside the [0, 1] of Bernoulli means`);
    }
    return toUnit(x, this.conventions);
  }

  /**
   * z {data, dims [N, ...latentShape]} in the model's latent convention -> x_hat {data: Float32Array, dims [N,C,H,W]}
   * in [0,1] (Bernoulli means, or the declared head mapped onto [0, 1]). A fully convolutional model takes any h, w.
   * @param {Batch} z
   * @returns {Promise<Tensor32>}
   */
  async decode(z) {
    const latents = this._checkLatents(z);
    const n = latents.dims[0];
    const candidate = await this.pick("decoder", n);
    const x = await this._decodeGraph(candidate, { data: toGraphLatent(latents.data, this.conventions), dims: latents.dims });
    return tensor(x, [n, ...this.imageShapeFor(latents.dims.slice(2))]);
  }

  /**
   * decode(z) of a fully convolutional model tile by tile, so that the decoder's intermediate tensors are bounded by
   * a tile x tile latent whatever the latent's size; the same [N,C,H,W] result. The Python runtime's rule
   * (VAERuntime.decode_tiled, tiles.js): tiles of `tile` latent pixels overlapping by `overlap` (default: twice the
   * declared receptive field, else tile / 4 rounded down), each tile's outer margin (the receptive field, else
   * overlap / 4) weighted 0, then a linear ramp across the rest of the overlap. With overlap >= 2 x the receptive
   * field the result equals decode(z) up to float rounding.
   * @param {Batch} z
   * @param {{tile?: number, overlap?: number}} [options]
   * @returns {Promise<Tensor32>}
   */
  async decodeTiled(z, { tile = DEFAULT_TILE, overlap } = {}) {
    const { downsampling: factor, receptiveField: field } = this.conventions;
    if (factor === null) throw new InputError("tiled decode needs a fully convolutional model (conventions.downsampling); this one decodes one fixed size");
    tile = checkCount("tile", tile);
    overlap = overlap === undefined || overlap === null ? (field ? 2 * field : Math.floor(tile / 4)) : checkCount("overlap", overlap, 0);
    if (overlap >= tile) throw new InputError(`overlap ${overlap} must be smaller than tile ${tile}`);
    const margin = Math.min(field ? field : Math.floor(overlap / 4), Math.floor(overlap / 2));
    const latents = this._checkLatents(z);
    const candidate = await this.pick("decoder", latents.dims[0]);
    const graphLatents = { data: toGraphLatent(latents.data, this.conventions), dims: latents.dims };
    const plan = { tile, overlap, margin, factor, channels: this.model.imageShape[0] };
    return decodeTiles(graphLatents, plan, (part) => this._decodeGraph(candidate, part));
  }

  /**
   * n latents of the prior, z ~ N(0, I) on the graph's latent from Generator(seed), in the model's convention:
   * {data, dims [n, ...latentShape]} (seed undefined: fresh entropy); decode() of them is sample(n, seed).
   * InputError for a model without a prior.
   * @param {number} n
   * @param {number | null} [seed]
   * @returns {Tensor32}
   */
  sampleLatents(n, seed) {
    n = checkCount("n", n);
    const generator = new Generator(seed);
    if (this.conventions.prior === "none") throw new InputError(NO_PRIOR);
    const [z] = fromGraphLatent(generator.normals(n * this.model.latentDim), null, this.conventions);
    return tensor(z, [n, ...this.model.latentShape]);
  }

  /**
   * n images decoded from z ~ N(0, I) (the prior is on the graph's latent): {data, dims [n,C,H,W]}. Same seed,
   * same images. InputError for a model that declares no prior (conventions.prior "none": decode latents instead).
   * @param {number} n
   * @param {number | null} [seed]
   * @returns {Promise<Tensor32>}
   */
  async sample(n, seed) {
    n = checkCount("n", n);
    const generator = new Generator(seed);
    if (this.conventions.prior === "none") throw new InputError(NO_PRIOR);
    const z = tensor(generator.normals(n * this.model.latentDim), [n, ...this.model.latentShape]);
    return tensor(await this._decodeGraph(await this.pick("decoder", n), z), [n, ...this.model.imageShape]);
  }

  /**
   * Decode x's posterior: its mean when seed is undefined/null, else one reparameterized draw.
   * @param {Batch} x
   * @param {number | null} [seed]
   * @returns {Promise<Tensor32>}
   */
  async reconstruct(x, seed) {
    if (seed !== undefined && seed !== null) new Generator(seed); // a bad seed is refused before any work
    const { mu, logvar } = await this.encode(x);
    return this.decode(seed === undefined || seed === null ? mu : this.reparameterize(mu, logvar, seed));
  }

  /**
   * `which` (two items named a and b) as one batch [2, ...tail]: each [...tail] or [1, ...tail], checked by check.
   * @param {[string, Batch][]} which
   * @param {number} rank of one item
   * @param {(x: Batch, name: string) => Tensor32} check
   * @param {string} what
   * @returns {Tensor32}
   */
  _pair(which, rank, check, what) {
    const [a, b] = which.map(([name, x]) => {
      if (x && Array.isArray(x.dims) && x.dims.length === rank) x = { data: x.data, dims: [1, ...x.dims] };
      const item = check(x, name);
      if (item.dims[0] !== 1) throw new InputError(`${name} must be one ${what}, got a batch of ${item.dims[0]}`);
      return item;
    });
    if (!sameDims(a.dims, b.dims)) throw new InputError(`${which[0][0]} and ${which[1][0]} must have the same shape, got ${JSON.stringify(a.dims)} and ${JSON.stringify(b.dims)}`);
    const both = new Float32Array(a.data.length * 2);
    both.set(a.data); both.set(b.data, a.data.length);
    return tensor(both, [2, ...a.dims.slice(1)]);
  }

  /** Decode `steps` points on the line from mu(xA) to mu(xB), ends included: {dims [steps,C,H,W]}.
   * xA, xB: one image each, dims [C,H,W] or [1,C,H,W] (any size a fully convolutional model divides; both the same).
   * @param {Batch} xA
   * @param {Batch} xB
   * @param {number} [steps]
   * @returns {Promise<Tensor32>}
   */
  async interpolate(xA, xB, steps = 8) {
    steps = checkCount("steps", steps, 2);
    const pair = this._pair([["x_a", xA], ["x_b", xB]], this.model.imageShape.length, (x, name) => this._checkImages(x, name), "image");
    const { mu } = await this.encode(pair);
    const L = mu.data.length / 2;
    return this.decode(line(mu.data.subarray(0, L), mu.data.subarray(L), steps, mu.dims.slice(1)));
  }

  /**
   * Decode `steps` points on the line from latent zA to zB (dims [...latentShape] or [1, ...latentShape]), ends included.
   * @param {Batch} zA
   * @param {Batch} zB
   * @param {number} [steps]
   * @returns {Promise<Tensor32>}
   */
  async walk(zA, zB, steps = 8) {
    steps = checkCount("steps", steps, 2);
    const ends = this._pair([["z_a", zA], ["z_b", zB]], this.model.latentShape.length, (z, name) => this._checkLatents(z, name), "latent");
    const L = ends.data.length / 2;
    return this.decode(line(ends.data.subarray(0, L), ends.data.subarray(L), steps, ends.dims.slice(1)));
  }

  /** Free the onnxruntime sessions. @returns {Promise<void>} */
  async release() {
    for (const s of this._sessions.values()) await (await s.catch(() => null))?.session?.release?.();
    this._sessions.clear();
  }
}

// (1 - t) * a + t * b with t = i / (steps - 1), in float64 rounded to float32 once: the Python runtime's values
/** @param {Float32Array} a @param {Float32Array} b @param {number} steps @param {readonly number[]} shape one item's @returns {Tensor32} */
function line(a, b, steps, shape) {
  const D = a.length, out = new Float32Array(steps * D);
  for (let i = 0; i < steps; i++) {
    const t = i / (steps - 1);
    for (let j = 0; j < D; j++) out[i * D + j] = (1 - t) * a[j] + t * b[j];
  }
  return tensor(out, [steps, ...shape]);
}
