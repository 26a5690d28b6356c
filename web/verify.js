// @ts-check
// Goldens in JavaScript: the model dir's golden inputs run through its graphs in THIS runtime (onnxruntime-web,
// -node or -react-native, any backend) and compared with the expected outputs stored beside them, within the
// manifest's tolerances, as `edgevae verify` does in Python (runtime/device/verify.py; runtime/device/golden.py derives the
// tolerances). Platform-free like vae.js: the files come through the runtime's loader, size- and sha256-checked.

import { GRAPHS, ModelDirError, escape } from "./manifest.js";

/**
 * @import { FileEntry, Golden } from "./manifest.js"
 * @import { Tensor32 } from "./checks.js"
 * @import { EdgeVAE } from "./vae.js"
 */
/**
 * @typedef {object} Check One graph x variant x backend compared with its goldens.
 * @property {string} graph
 * @property {string} variant
 * @property {string} backend
 * @property {number} maxAbsDiff NaN when an output is NaN
 * @property {number} tolerance the manifest's
 * @property {boolean} passed
 */

export const ALL = "all";
export const MAX_GOLDEN_BYTES = 16 << 20; // per file, as runtime/device/golden.py: a golden batch is tens of KB
const MAX_GOLDEN_N = 4096;
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
// runtime/device/golden.py's rule and cap, never the manifest's factors (tests/web/test_web.py keeps these equal to Python's)
export const RULE = {
  SAFETY_FACTOR: 10.0, REFERENCE_FACTOR: 1.5, FLOOR: 8 * 2 ** -23, PARITY_TOLERANCE: 1e-4, QUANTIZED_CAP_STEPS: 48,
};

/**
 * A float32 .npy file's array: {data: Float32Array, dims}. Only what numpy writes for a C-ordered little-endian
 * float32 array is accepted (no pickle, no other dtype); `fail(what)` throws for anything else.
 * @param {Uint8Array} bytes
 * @param {(what: string) => never} fail
 * @returns {Tensor32}
 */
export function parseNpy(bytes, fail) {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) fail("is not a .npy array");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  if (major < 1 || major > 3) fail(`is .npy format version ${major}, not 1, 2 or 3`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLength;
  if (start > bytes.length) fail("is a truncated .npy array");
  let header = "";
  for (let i = start - headerLength; i < start; i++) header += String.fromCharCode(bytes[i]);
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== "<f4" || fortran !== "False" || shape === undefined) {
    fail(`holds ${escape(descr ?? "?")}${fortran === "True" ? " in Fortran order" : ""}, not C-ordered float32`);
  }
  const dims = shape.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`has shape (${escape(shape)}), not sizes`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - start !== 4 * count) fail(`holds ${bytes.length - start} bytes of data, its shape (${dims}) needs ${4 * count}`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = view.getFloat32(start + 4 * i, true);
  return { data, dims };
}

/** @param {Float32Array} got @param {Float32Array} expected @returns {number} */
function maxAbsDiff(got, expected) {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - expected[i]);
    if (Number.isNaN(d)) return NaN; // a NaN output fails, whatever the others
    if (d > worst) worst = d;
  }
  return worst;
}

/**
 * The variants `variant` names: "all" (every variant with goldens, fp32 first) or one the manifest lists.
 * @param {EdgeVAE} vae
 * @param {Golden} golden
 * @param {string} variant
 * @returns {string[]}
 */
function variantsToCheck(vae, golden, variant) {
  const names = variant === ALL ? Object.keys(golden.outputs).sort((a, b) => Number(a !== "fp32") - Number(b !== "fp32") || (a < b ? -1 : 1)) : [variant];
  for (const v of names) {
    if (!Object.hasOwn(vae.model.variants, v)) throw new ModelDirError(`${vae.where}: golden outputs name variant ${escape(v)}, which the manifest lacks`);
    if (!Object.hasOwn(golden.outputs, v)) {
      throw new ModelDirError(`${vae.where}: has no goldens for variant ${escape(v)} (quantized before goldens existed? re-run edgevae quantize)`);
    }
  }
  return names;
}

/** What a difference in one output is measured against: x_hat's [0, 1] for the decoder, the spread of the
 * expected values for the encoder's outputs (0 if any is not finite), as runtime/device/golden.py's output_range.
 * @param {string} graph
 * @param {Float32Array} data
 * @returns {number}
 */
function outputRange(graph, data) {
  if (graph === "decoder") return 1;
  let low = Infinity, high = -Infinity;
  for (const v of data) {
    if (!Number.isFinite(v)) return 0;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return data.length ? high - low : 0;
}

/**
 * The largest tolerance the manifest may state for (variant, graph): the rule recomputed from its measured figures
 * with runtime/device/golden.py's factors, capped by golden.py's tolerance_cap (10 x export's parity bound for fp32, 48
 * steps of 1/255 of the output's range for a quantized variant). A looser one would pass graphs of another model.
 * @param {Golden} golden
 * @param {string} variant
 * @param {string} graph
 * @param {Tensor32[]} expected the graph's expected outputs
 * @returns {number}
 */
export function allowedTolerance(golden, variant, graph, expected) {
  const { SAFETY_FACTOR, REFERENCE_FACTOR, FLOOR, PARITY_TOLERANCE, QUANTIZED_CAP_STEPS } = RULE;
  const figure = (table, v) => table[v]?.[graph] ?? 0;
  const rule = Math.max(SAFETY_FACTOR * Math.max(figure(golden.measured, variant), figure(golden.measured, "fp32"), FLOOR),
    REFERENCE_FACTOR * figure(golden.reference, variant));
  const scale = Math.min(...expected.map((e) => outputRange(graph, e.data)));
  const cap = variant === "fp32" ? SAFETY_FACTOR * PARITY_TOLERANCE * Math.max(1, scale) : QUANTIZED_CAP_STEPS / 255 * scale;
  return Math.min(rule, Math.max(cap, SAFETY_FACTOR * FLOOR));
}

/** input as a fixed-shape variant takes it: its rows repeated up to the next multiple of the batch (golden.py's
 * fit_rows), so every golden input is covered in whole batches; unchanged for a dynamic variant.
 * @param {Tensor32} input
 * @param {number} [step] the variant's fixed batch, if it has one
 * @returns {Tensor32}
 */
function fitRows(input, step) {
  const n = input.dims[0];
  if (!step || n % step === 0) return input;
  const rows = Math.ceil(n / step) * step, width = input.data.length / n, data = new Float32Array(rows * width);
  for (let i = 0; i < rows; i++) data.set(input.data.subarray((i % n) * width, (i % n + 1) * width), i * width);
  return { data, dims: [rows, ...input.dims.slice(1)] };
}

/** @param {EdgeVAE} vae @param {FileEntry} entry @returns {Promise<Tensor32>} */
async function readArray(vae, entry) {
  /** @type {(what: string) => never} */
  const fail = (what) => { throw new ModelDirError(`${vae.where}: ${escape(entry.file)} ${what}`); };
  if (entry.bytes > MAX_GOLDEN_BYTES) fail(`is ${entry.bytes} bytes, more than the ${MAX_GOLDEN_BYTES} a golden may be`);
  return parseNpy(await vae.readFile(entry, MAX_GOLDEN_BYTES), fail);
}

/** @param {readonly number[]} a @param {readonly number[]} b */
const sameDims = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Run the goldens on vae (an EdgeVAE): one check {graph, variant, backend, maxAbsDiff, tolerance, passed} per
 * backend x variant x graph. variant: "all" or one variant; backends: names (default: the runtime's first).
 * ModelDirError when the dir has no goldens or they are malformed.
 * @param {EdgeVAE} vae
 * @param {{variant?: string, backends?: string[]}} [options]
 * @returns {Promise<Check[]>}
 */
export async function verifyGoldens(vae, { variant = ALL, backends = [vae.backends[0].name] } = {}) {
  const golden = vae.model.golden;
  if (!golden) {
    throw new ModelDirError(`${vae.where}: has no goldens (made before edgevae stored them; re-export it, or add them with python -m edgevae.runtime.device.golden DIR)`);
  }
  const inputs = {};
  for (const graph of GRAPHS) {
    const array = await readArray(vae, golden.inputs[graph]);
    const n = array.dims[0];
    const want = [n, ...(graph === "encoder" ? vae.model.imageShape : vae.model.latentShape)];
    if (!(n >= 1 && n <= MAX_GOLDEN_N) || !sameDims(array.dims, want)) {
      throw new ModelDirError(`${vae.where}: ${escape(golden.inputs[graph].file)} has shape [${array.dims}], not the ${graph}'s input`);
    }
    inputs[graph] = array;
  }
  // every expected output read and every tolerance checked before any graph runs
  const variants = variantsToCheck(vae, golden, variant), cases = [];
  for (const v of variants) {
    for (const graph of GRAPHS) {
      const names = vae.model.io[graph].outputs, entries = golden.outputs[v][graph];
      if (Object.keys(entries).sort().join() !== [...names].sort().join()) {
        throw new ModelDirError(`${vae.where}: golden.outputs.${escape(v)}.${graph} names outputs ${escape(JSON.stringify(Object.keys(entries)))}, the graph has ${escape(JSON.stringify(names))}`);
      }
      const input = fitRows(inputs[graph], vae.model.static[v]?.batch), n = input.dims[0];
      const expected = [];
      for (const [j, name] of names.entries()) {
        const array = await readArray(vae, entries[name]), want = [n, ...vae.outputShapes(graph)[j]];
        if (!sameDims(array.dims, want)) throw new ModelDirError(`${vae.where}: ${escape(entries[name].file)} has shape [${array.dims}], expected [${want}]`);
        expected.push(array);
      }
      const tolerance = golden.tolerance[v][graph], allowed = allowedTolerance(golden, v, graph, expected);
      if (tolerance > allowed * (1 + 1e-9)) {
        throw new ModelDirError(`${vae.where}: golden.tolerance.${escape(v)}.${graph} is ${tolerance.toPrecision(3)}, more than its measured `
          + `figures and the cap allow (${allowed.toPrecision(3)}): goldens that loose prove nothing`);
      }
      cases.push({ v, graph, input, expected, tolerance });
    }
  }
  const checks = [];
  for (const backend of backends) {
    for (const { v, graph, input, expected, tolerance } of cases) {
      const got = await vae.runGraph(graph, { variant: v, backend }, input);
      let worst = 0;
      for (const [j, array] of expected.entries()) {
        const d = maxAbsDiff(got[j], array.data);
        worst = Number.isNaN(d) || Number.isNaN(worst) ? NaN : Math.max(worst, d);
      }
      checks.push({ graph, variant: v, backend, maxAbsDiff: worst, tolerance, passed: worst <= tolerance });
    }
  }
  return checks;
}

/**
 * The checks as a table with a last line saying ok or naming the worst failure (as `edgevae verify` prints).
 * @param {Check[]} checks
 * @returns {string}
 */
export function formatChecks(checks) {
  const num = (x) => (Number.isNaN(x) ? "nan" : x === 0 ? "0" : Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(3));
  const lines = [`${"graph".padEnd(9)}${"variant".padEnd(14)}${"backend".padEnd(9)}${"max abs diff".padStart(14)}${"tolerance".padStart(12)}  pass`];
  for (const c of checks) {
    lines.push(`${c.graph.padEnd(9)}${escape(c.variant).padEnd(14)}${escape(c.backend).padEnd(9)}${num(c.maxAbsDiff).padStart(14)}${num(c.tolerance).padStart(12)}  ${c.passed ? "yes" : "NO"}`);
  }
  const failed = checks.filter((c) => !c.passed);
  if (failed.length) {
    const excess = (c) => (Number.isNaN(c.maxAbsDiff) ? Infinity : c.maxAbsDiff / Math.max(c.tolerance, 1e-30));
    const worst = failed.reduce((a, b) => (excess(b) > excess(a) ? b : a));
    lines.push(`FAIL: ${failed.length} of ${checks.length} differ beyond tolerance; worst: ${worst.graph} ${escape(worst.variant)} `
      + `on ${escape(worst.backend)} (${num(worst.maxAbsDiff)} > ${num(worst.tolerance)})`);
  } else {
    lines.push(`ok: all ${checks.length} graph x variant x backend outputs match their goldens`);
  }
  return lines.join("\n");
}
