// @ts-check
// manifest.json of an edgevae model dir, checked the way the Python runtime checks it
// (runtime/contract/manifest.py, docs/model-dir.schema.json). Pure functions: no I/O, so browser and Node share it.
// Only the fields the JS runtime needs are typed here; the optional reports (parity, training, quality,
// latency_ms, ort) are kept as they are. Every problem throws ModelDirError with one line naming the field.

export const FORMAT = "edgevae-model/1";
export const GRAPHS = ["encoder", "decoder"];
export const FP32 = "fp32"; // the variant every model dir has
export const AUTO = "auto"; // chosen by measurement in THIS runtime (see edgevae.js selectVariants)
export const MAX_MANIFEST_BYTES = 1 << 20;
export const MAX_GRAPH_BYTES = 1 << 30;
export const MAX_STATIC_BATCH = 4096; // runtime/contract/manifest.py's bound on a fixed-shape graph's batch
// The fields every manifest has (docs/model-dir.schema.json "required"; web/test/schema.test.mjs keeps them in step).
export const REQUIRED = ["format", "edgevae_version", "latent_dim", "image_shape", "opset", "io", "variants"];
export const FILE_ENTRY_REQUIRED = ["file", "sha256", "bytes"];
const SHA256 = /^[0-9a-f]{64}$/;
// runtime/contract/manifest.py's Conventions: what each field may hold (tests/web/test_web.py keeps them equal)
export const PIXEL_RANGES = [[0, 1], [-1, 1]];
export const DECODER_HEADS = ["bernoulli_means", "bernoulli_logits", "gaussian_mean", "image"];
export const POSTERIORS = ["gaussian", "deterministic"];
export const PRIORS = ["standard_normal", "none"];
export const MAX_FACTOR = 1024; // downsampling and receptive_field: 1..1024
/**
 * @typedef {object} Conventions How a model's graphs speak (runtime/contract/manifest.py Conventions, docs/model-dir.md).
 * @property {number[]} pixelRange [low, high]: [0, 1] or [-1, 1]
 * @property {string} decoderHead bernoulli_means, bernoulli_logits, gaussian_mean or image
 * @property {number | null} decoderScale gaussian_mean's standard deviation
 * @property {string} posterior gaussian (mu, logvar) or deterministic (the latent alone)
 * @property {string} prior standard_normal, or none (sample is refused)
 * @property {number} latentScale the API's latents are (graph latent - latentShift) x latentScale
 * @property {number} latentShift
 * @property {number | null} downsampling fully convolutional: image H, W = this x latent h, w
 * @property {number | null} receptiveField the decoder's receptive field radius in latent pixels, if bounded
 */
/** @type {Readonly<Conventions>} edgevae's own family: what a manifest without `conventions` declares */
export const CLASSIC = Object.freeze({
  pixelRange: [0, 1], decoderHead: "bernoulli_means", decoderScale: null, posterior: "gaussian", prior: "standard_normal",
  latentScale: 1, latentShift: 0, downsampling: null, receptiveField: null,
});

/** @typedef {"encoder" | "decoder"} Graph */
/** @typedef {{file: string, sha256: string, bytes: number}} FileEntry A file the manifest lists, with its size and hash. */
/** @typedef {{inputs: string[], outputs: string[]}} GraphIo A graph's input and output names, in order. */
/**
 * @typedef {object} Golden The checked `golden` entry (see parseGolden).
 * @property {Record<string, FileEntry>} inputs graph -> its golden input
 * @property {Record<string, Record<string, Record<string, FileEntry>>>} outputs variant -> graph -> output name -> file
 * @property {Record<string, Record<string, number>>} tolerance variant -> graph -> max abs difference
 * @property {Record<string, Record<string, number>>} measured variant -> graph -> measured difference
 * @property {Record<string, Record<string, number>>} reference variant -> graph -> reference difference
 */
/**
 * @typedef {object} Manifest The checked manifest (parseManifest).
 * @property {number} latentDim
 * @property {number[]} imageShape [C, H, W]
 * @property {number[]} latentShape one item's latent at imageShape: [D] or [C, h, w] ([latentDim] when absent)
 * @property {Conventions} conventions the declared conventions (CLASSIC when absent)
 * @property {Record<string, GraphIo>} io graph -> names
 * @property {Record<string, Record<string, FileEntry>>} variants variant -> graph -> file
 * @property {Record<string, Record<number, string>>} selection graph -> batch size -> variant
 * @property {Record<string, {base: string, batch: number}>} static fixed-shape variants
 * @property {Golden | null} golden
 * @property {any} raw the decoded manifest.json as it was
 */
const BATCH_KEY = /^[1-9][0-9]{0,8}$/;

/** A model dir that cannot be used (bad manifest, missing or changed file, unknown variant, graph I/O). */
export class ModelDirError extends Error {
  /** @param {string} message */
  constructor(message) { super(oneLine(message)); this.name = "ModelDirError"; }
}

/** An argument the runtime refuses (shape, NaN/inf, range, count). */
export class InputError extends Error {
  /** @param {string} message */
  constructor(message) { super(oneLine(message)); this.name = "InputError"; }
}

/**
 * text with control characters shown as \x.. codes, so names from an untrusted manifest print on one line.
 * @param {unknown} text
 * @returns {string}
 */
export function escape(text) {
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
}

function oneLine(message) { return escape(message); }

function short(value) {
  let text;
  try { text = JSON.stringify(value); } catch { text = String(value); }
  if (text === undefined) text = String(value);
  return text.length <= 40 ? text : text.slice(0, 37) + "...";
}

/**
 * True for a plain file name inside the dir: no folders, no "." / "..", no NUL, no URL syntax.
 * @param {unknown} name
 * @returns {name is string}
 */
export function isPlainName(name) {
  return typeof name === "string" && name.length > 0 && name.length <= 255 && name !== "." && name !== ".."
    && !/[\/\\\u0000?#%:]/.test(name);
}

const isInt = (v) => Number.isInteger(v) && typeof v === "number";
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function fileEntry(value, where, fail) {
  if (!isObject(value)) fail(`${where} must be an object with file, sha256 and bytes`);
  for (const key of FILE_ENTRY_REQUIRED) if (!(key in value)) fail(`${where} lacks field "${key}"`);
  const { file, sha256, bytes } = value;
  if (!isPlainName(file)) fail(`${where}.file ${short(file)} is not a plain file name inside the dir`);
  if (typeof sha256 !== "string" || !SHA256.test(sha256)) fail(`${where}.sha256 of ${short(file)} is not 64 lower-case hex digits`);
  if (!isInt(bytes) || bytes < 1 || bytes > MAX_GRAPH_BYTES) fail(`${where}.bytes of ${short(file)} is ${short(bytes)}, outside 1..${MAX_GRAPH_BYTES}`);
  return { file, sha256, bytes };
}

function graphMap(value, where, fail) {
  if (!isObject(value)) fail(`${where} must be an object`);
  const keys = Object.keys(value).sort();
  if (keys.join(",") !== [...GRAPHS].sort().join(",")) fail(`${where} must have exactly the graphs ${GRAPHS.join(", ")}, got ${short(keys)}`);
}

/**
 * The checked manifest of a decoded manifest.json: {latentDim, imageShape, io, variants, selection, raw}.
 * `where` names the dir in messages. Throws ModelDirError naming the first bad field.
 * @param {any} obj the decoded JSON
 * @param {string} [where]
 * @returns {Manifest}
 */
export function parseManifest(obj, where = "model dir") {
  /** @type {(what: string) => never} */
  const fail = (what) => { throw new ModelDirError(`${where}: manifest.json: ${what}`); };
  if (!isObject(obj)) fail("is not a JSON object");
  if (obj.format !== FORMAT) fail(`format ${short(obj.format)} is not "${FORMAT}"`);
  for (const key of REQUIRED) {
    if (!(key in obj)) fail(`lacks field "${key}"`);
  }
  if (typeof obj.edgevae_version !== "string") fail(`edgevae_version must be a string, got ${short(obj.edgevae_version)}`);
  if (!isInt(obj.opset)) fail(`opset must be an integer, got ${short(obj.opset)}`);
  if (!isInt(obj.latent_dim) || obj.latent_dim < 1) fail(`latent_dim ${short(obj.latent_dim)} is not a positive integer`);
  const shape = obj.image_shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((s) => isInt(s) && s > 0)) {
    fail(`image_shape ${short(shape)} is not [C, H, W] of positive sizes`);
  }
  graphMap(obj.io, "io", fail);
  const conventions = obj.conventions === undefined || obj.conventions === null ? CLASSIC : parseConventions(obj.conventions, fail);
  const latentShape = parseLatentShape(obj.latent_shape, obj.latent_dim, shape, conventions, fail);
  // Null-prototype maps: a key like "__proto__" or "toString" from the file is just a name here.
  const io = Object.create(null);
  for (const graph of GRAPHS) {
    const names = obj.io[graph];
    const want = graph === "encoder" && conventions.posterior === "gaussian" ? 2 : 1;
    if (!isObject(names) || !Array.isArray(names.inputs) || !Array.isArray(names.outputs)
        || ![...names.inputs, ...names.outputs].every((n) => typeof n === "string")) {
      fail(`io.${graph} needs "inputs" and "outputs" lists of names`);
    }
    if (names.inputs.length !== 1 || names.outputs.length !== want) fail(`io.${graph} must have 1 input and ${want} output(s)`);
    io[graph] = { inputs: [...names.inputs], outputs: [...names.outputs] };
  }
  if (!isObject(obj.variants) || !Object.hasOwn(obj.variants, FP32)) fail(`variants must include "${FP32}"`);
  const variants = Object.create(null);
  for (const [variant, graphs] of Object.entries(obj.variants)) {
    if (!variant || variant === AUTO) fail(`variant name ${short(variant)} is reserved`);
    graphMap(graphs, `variants.${variant}`, fail);
    variants[variant] = Object.create(null);
    for (const graph of GRAPHS) variants[variant][graph] = fileEntry(graphs[graph], `variants.${variant}.${graph}`, fail);
  }
  const selection = Object.create(null);
  if (obj.selection !== undefined && obj.selection !== null) {
    if (!isObject(obj.selection)) fail("selection must map graphs to {batch size: variant}");
    for (const [graph, choice] of Object.entries(obj.selection)) {
      if (!GRAPHS.includes(graph)) fail(`selection names graph ${short(graph)}, not one of ${GRAPHS.join(", ")}`);
      if (!isObject(choice)) fail(`selection.${graph} must be an object`);
      selection[graph] = Object.create(null);
      for (const [size, variant] of Object.entries(choice)) {
        if (!BATCH_KEY.test(size)) fail(`selection.${graph} key ${short(size)} is not a positive batch size`);
        if (typeof variant !== "string" || !Object.hasOwn(variants, variant)) fail(`selection.${graph}.${size} names variant ${short(variant)}, which the manifest lacks`);
        selection[graph][Number(size)] = variant;
      }
    }
  }
  const fixed = obj.static === undefined || obj.static === null ? Object.create(null) : parseStatic(obj.static, variants, fail);
  const golden = obj.golden === undefined || obj.golden === null ? null : parseGolden(obj.golden, fail);
  return {
    latentDim: obj.latent_dim, imageShape: [...shape], latentShape, conventions, io, variants, selection, static: fixed, golden, raw: obj,
  };
}

/** The optional `conventions` entry, checked field by field as runtime/contract/manifest.py's Conventions checks it
 * (absent fields take CLASSIC's values; unknown fields are ignored, as there).
 * @param {any} value
 * @param {(what: string) => never} fail
 * @returns {Conventions}
 */
function parseConventions(value, fail) {
  if (!isObject(value)) fail("conventions must be an object");
  const field = (key, name, check, what) => {
    if (!Object.hasOwn(value, key)) return CLASSIC[name];
    if (!check(value[key])) fail(`conventions.${key} must be ${what}, got ${short(value[key])}`);
    return value[key];
  };
  const number = (v) => typeof v === "number" && Number.isFinite(v), integer = (v) => v === null || isInt(v);
  const range = field("pixel_range", "pixelRange", (v) => Array.isArray(v) && v.length === 2 && v.every(number), "a list of 2 numbers");
  const c = {
    pixelRange: [...range],
    decoderHead: field("decoder_head", "decoderHead", (v) => typeof v === "string", "a string"),
    decoderScale: field("decoder_scale", "decoderScale", (v) => v === null || number(v), "a number or null"),
    posterior: field("posterior", "posterior", (v) => typeof v === "string", "a string"),
    prior: field("prior", "prior", (v) => typeof v === "string", "a string"),
    latentScale: field("latent_scale", "latentScale", number, "a finite number"),
    latentShift: field("latent_shift", "latentShift", number, "a finite number"),
    downsampling: field("downsampling", "downsampling", integer, "an integer or null"),
    receptiveField: field("receptive_field", "receptiveField", integer, "an integer or null"),
  };
  if (!PIXEL_RANGES.some(([low, high]) => c.pixelRange[0] === low && c.pixelRange[1] === high)) {
    fail(`conventions.pixel_range ${short(c.pixelRange)} is not [0, 1] or [-1, 1]`);
  }
  for (const [key, allowed] of /** @type {[string, string[]][]} */ ([["decoder_head", DECODER_HEADS], ["posterior", POSTERIORS], ["prior", PRIORS]])) {
    const name = { decoder_head: "decoderHead", posterior: "posterior", prior: "prior" }[key];
    if (!allowed.includes(c[name])) fail(`conventions.${key} ${short(c[name])} is not one of ${allowed.join(", ")}`);
  }
  if (c.decoderHead.startsWith("bernoulli") && c.pixelRange[0] !== 0) {
    fail(`conventions.decoder_head ${c.decoderHead} models pixels in [0, 1], not ${short(c.pixelRange)}`);
  }
  if ((c.decoderHead === "gaussian_mean") !== (c.decoderScale !== null)) fail("conventions.decoder_scale is given exactly when decoder_head is gaussian_mean");
  if (c.decoderScale !== null && !(c.decoderScale > 0)) fail(`conventions.decoder_scale ${c.decoderScale} must be > 0`);
  if (!(c.latentScale > 0)) fail(`conventions.latent_scale ${c.latentScale} must be > 0`);
  for (const [key, v] of [["downsampling", c.downsampling], ["receptive_field", c.receptiveField]]) {
    if (v !== null && !(v >= 1 && v <= MAX_FACTOR)) fail(`conventions.${key} ${v} is outside 1..${MAX_FACTOR}`);
  }
  return c;
}

/** The optional `latent_shape` ([D] or [C, h, w], whose product is latent_dim; absent: [latent_dim]), and a fully
 * convolutional factor checked against it and image_shape, as runtime/contract/manifest.py's _check_latent does.
 * @param {any} value
 * @param {number} latentDim
 * @param {number[]} imageShape
 * @param {Conventions} conventions
 * @param {(what: string) => never} fail
 * @returns {number[]}
 */
function parseLatentShape(value, latentDim, imageShape, conventions, fail) {
  const shape = value === undefined || value === null ? [latentDim] : value;
  if (!Array.isArray(shape) || !shape.every(isInt)) fail(`latent_shape must be a list of integers, got ${short(shape)}`);
  if (![1, 3].includes(shape.length) || shape.some((s) => s < 1)) fail(`latent_shape ${short(shape)} is not [D] or [C, h, w] of positive sizes`);
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== latentDim) fail(`latent_shape ${short(shape)} holds ${size} values, latent_dim says ${latentDim}`);
  const factor = conventions.downsampling;
  if (factor !== null && (shape.length !== 3 || shape[1] * factor !== imageShape[1] || shape[2] * factor !== imageShape[2])) {
    fail(`conventions.downsampling ${factor} needs latent_shape [C, h, w] with image_shape [C, ${factor}h, ${factor}w], got ${short(shape)} and ${short(imageShape)}`);
  }
  return [...shape];
}

/**
 * The entry of a {batch size: value} table that a batch of n falls under: the one of the largest key <= n, the
 * smallest key's when n is below all (undefined for an empty table). The manifest's rule for `selection`
 * (runtime/contract/manifest.py ModelDir.variant_for), which `auto` applies to its measured choice: written once here.
 * @template T
 * @param {Record<number, T>} table keys: batch sizes (decimal strings of positive integers)
 * @param {number} n
 * @returns {T | undefined}
 */
export function forBatch(table, n) {
  let below = -Infinity, least = Infinity;
  for (const key of Object.keys(table)) {
    const size = Number(key);
    if (size < least) least = size;
    if (size <= n && size > below) below = size;
  }
  return table[below > -Infinity ? below : least];
}

/** The optional `static` entry: {variant: {base, batch}} for fixed-shape variants (NPUs), which run batches of
 * exactly `batch` rows and are never candidates of `auto`; checked as runtime/contract/manifest.py checks it. */
function parseStatic(value, variants, fail) {
  if (!isObject(value)) fail("static must map variants to {base, batch}");
  const fixed = Object.create(null);
  for (const [variant, shape] of Object.entries(value)) {
    const base = shape?.base, batch = shape?.batch;
    if (!Object.hasOwn(variants, variant) || typeof base !== "string" || !Object.hasOwn(variants, base) || Object.hasOwn(value, base)) {
      fail(`static.${variant} must name a listed variant whose base is a listed variant with a dynamic batch`);
    }
    if (!isInt(batch) || batch < 1 || batch > MAX_STATIC_BATCH) fail(`static.${variant}.batch ${short(batch)} is outside 1..${MAX_STATIC_BATCH}`);
    fixed[variant] = { base, batch };
  }
  return fixed;
}

/** The optional `golden` entry (runtime/contract/manifest.py Golden): {inputs: {graph: file entry}, outputs: {variant:
 * {graph: {output name: file entry}}}, tolerance: {variant: {graph: max abs difference}}}. Which variants and
 * outputs it must name is checked where it is used (web/verify.js), as the Python runtime does. */
function parseGolden(value, fail) {
  if (!isObject(value)) fail("golden must be an object");
  graphMap(value.inputs, "golden.inputs", fail);
  const inputs = Object.create(null);
  for (const graph of GRAPHS) inputs[graph] = fileEntry(value.inputs[graph], `golden.inputs.${graph}`, fail);
  if (!isObject(value.outputs) || !isObject(value.tolerance)) fail("golden needs \"outputs\" and \"tolerance\" objects");
  const outputs = Object.create(null), tolerance = Object.create(null);
  for (const [variant, graphs] of Object.entries(value.outputs)) {
    const where = `golden.outputs.${variant}`;
    graphMap(graphs, where, fail);
    const limits = value.tolerance[variant];
    if (!Object.hasOwn(value.tolerance, variant) || !isObject(limits)) fail(`golden.tolerance must give every graph of variant ${short(variant)}`);
    outputs[variant] = Object.create(null);
    tolerance[variant] = Object.create(null);
    for (const graph of GRAPHS) {
      if (!isObject(graphs[graph])) fail(`${where}.${graph} must map output names to files`);
      outputs[variant][graph] = Object.create(null);
      for (const [name, entry] of Object.entries(graphs[graph])) outputs[variant][graph][name] = fileEntry(entry, `${where}.${graph}.${name}`, fail);
      const limit = limits[graph];
      if (typeof limit !== "number" || !(limit >= 0) || limit === Infinity) fail(`golden.tolerance.${variant}.${graph} ${short(limit)} is not a finite number >= 0`);
      tolerance[variant][graph] = limit;
    }
  }
  // the figures the tolerance rule was applied to (verify.js recomputes the rule from them, as runtime/device/verify.py does)
  const figures = (table, name) => {
    if (table === undefined) return Object.create(null);
    if (!isObject(table)) fail(`golden.${name} must map variants to {graph: number}`);
    const out = Object.create(null);
    for (const [variant, graphs] of Object.entries(table)) {
      if (!isObject(graphs)) fail(`golden.${name}.${variant} must map graphs to numbers`);
      out[variant] = Object.create(null);
      for (const [graph, x] of Object.entries(graphs)) {
        if (typeof x !== "number" || !(x >= 0) || x === Infinity) fail(`golden.${name}.${variant}.${graph} ${short(x)} is not a finite number >= 0`);
        out[variant][graph] = x;
      }
    }
    return out;
  };
  return { inputs, outputs, tolerance, measured: figures(value.measured, "measured"), reference: figures(value.reference, "reference") };
}

/**
 * The manifest from its bytes (Uint8Array): size, UTF-8 and JSON checked, then parseManifest.
 * @param {Uint8Array} bytes
 * @param {string} [where]
 * @returns {Manifest}
 */
export function parseManifestBytes(bytes, where = "model dir") {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new ModelDirError(`${where}: manifest.json is ${bytes.byteLength} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`);
  }
  let text;
  try { text = decodeUtf8(bytes); } catch {
    throw new ModelDirError(`${where}: manifest.json is not UTF-8 text`);
  }
  let obj;
  try { obj = JSON.parse(text); } catch (err) {
    throw new ModelDirError(`${where}: manifest.json is not valid JSON (${err.message})`);
  }
  return parseManifest(obj, where);
}

/** Strict UTF-8 decoding of bytes (a leading byte order mark dropped, as TextDecoder does): TextDecoder where the
 * platform has one, else by hand (React Native's Hermes has none). Throws TypeError on malformed input
 * (overlong forms, surrogates, code points past U+10FFFF, truncated sequences).
 * @param {Uint8Array} bytes
 * @param {{native?: boolean}} [options] native: false skips TextDecoder (for tests)
 * @returns {string}
 */
export function decodeUtf8(bytes, { native = true } = {}) {
  if (native && typeof TextDecoder === "function") return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  const units = [];
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < bytes.length) {
    const lead = bytes[i++];
    // [continuation bytes, the smallest code point that needs them]
    const [more, least] = lead < 0x80 ? [0, 0] : lead >= 0xc2 && lead < 0xe0 ? [1, 0x80]
      : lead >= 0xe0 && lead < 0xf0 ? [2, 0x800] : lead >= 0xf0 && lead < 0xf5 ? [3, 0x10000] : [-1, 0];
    if (more < 0) throw new TypeError(`invalid UTF-8 lead byte at ${i - 1}`);
    let point = more ? lead & (0x3f >> more) : lead;
    for (let k = 0; k < more; k++) {
      const next = bytes[i++];
      if (next === undefined || (next & 0xc0) !== 0x80) throw new TypeError(`invalid UTF-8 continuation at ${i - 1}`);
      point = (point << 6) | (next & 0x3f);
    }
    if (point < least || point > 0x10ffff || (point >= 0xd800 && point < 0xe000)) throw new TypeError(`invalid UTF-8 sequence before ${i}`);
    if (point >= 0x10000) units.push(0xd800 + ((point - 0x10000) >> 10), 0xdc00 + ((point - 0x10000) & 0x3ff));
    else units.push(point);
  }
  let text = "";
  for (let k = 0; k < units.length; k += 8192) text += String.fromCharCode(...units.slice(k, k + 8192));
  return text;
}
