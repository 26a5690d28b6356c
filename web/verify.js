// Goldens in JavaScript: the model dir's golden inputs run through its graphs in THIS runtime (onnxruntime-web,
// -node or -react-native, any backend) and compared with the expected outputs stored beside them, within the
// manifest's tolerances, as `edgevae verify` does in Python (runtime/verify.py; runtime/golden.py derives the
// tolerances). Platform-free like vae.js: the files come through the runtime's loader, size- and sha256-checked.

import { GRAPHS, ModelDirError, escape } from "./manifest.js";

export const ALL = "all";
export const MAX_GOLDEN_BYTES = 16 << 20; // per file, as runtime/golden.py: a golden batch is tens of KB
const MAX_GOLDEN_N = 4096;
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/**
 * A float32 .npy file's array: {data: Float32Array, dims}. Only what numpy writes for a C-ordered little-endian
 * float32 array is accepted (no pickle, no other dtype); `fail(what)` throws for anything else.
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

function maxAbsDiff(got, expected) {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - expected[i]);
    if (Number.isNaN(d)) return NaN; // a NaN output fails, whatever the others
    if (d > worst) worst = d;
  }
  return worst;
}

/** The variants `variant` names: "all" (every variant with goldens, fp32 first) or one the manifest lists. */
function variantsToCheck(vae, golden, variant) {
  const names = variant === ALL ? Object.keys(golden.outputs).sort((a, b) => (a !== "fp32") - (b !== "fp32") || (a < b ? -1 : 1)) : [variant];
  for (const v of names) {
    if (!Object.hasOwn(vae.model.variants, v)) throw new ModelDirError(`${vae.where}: golden outputs name variant ${escape(v)}, which the manifest lacks`);
    if (!Object.hasOwn(golden.outputs, v)) {
      throw new ModelDirError(`${vae.where}: has no goldens for variant ${escape(v)} (quantized before goldens existed? re-run edgevae quantize)`);
    }
  }
  return names;
}

async function readArray(vae, entry) {
  const fail = (what) => { throw new ModelDirError(`${vae.where}: ${escape(entry.file)} ${what}`); };
  if (entry.bytes > MAX_GOLDEN_BYTES) fail(`is ${entry.bytes} bytes, more than the ${MAX_GOLDEN_BYTES} a golden may be`);
  return parseNpy(await vae.readFile(entry, MAX_GOLDEN_BYTES), fail);
}

const sameDims = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Run the goldens on vae (an EdgeVAE): one check {graph, variant, backend, maxAbsDiff, tolerance, passed} per
 * backend x variant x graph. variant: "all" or one variant; backends: names (default: the runtime's first).
 * ModelDirError when the dir has no goldens or they are malformed.
 */
export async function verifyGoldens(vae, { variant = ALL, backends = [vae.backends[0].name] } = {}) {
  const golden = vae.model.golden;
  if (!golden) {
    throw new ModelDirError(`${vae.where}: has no goldens (made before edgevae stored them; re-export it, or add them with python -m edgevae.runtime.golden DIR)`);
  }
  const [C, H, W] = vae.model.imageShape, D = vae.model.latentDim;
  const inputs = {};
  for (const graph of GRAPHS) {
    const array = await readArray(vae, golden.inputs[graph]);
    const n = array.dims[0];
    const want = graph === "encoder" ? [n, C, H, W] : [n, D];
    if (!(n >= 1 && n <= MAX_GOLDEN_N) || !sameDims(array.dims, want)) {
      throw new ModelDirError(`${vae.where}: ${escape(golden.inputs[graph].file)} has shape [${array.dims}], not the ${graph}'s input`);
    }
    inputs[graph] = array;
  }
  const checks = [];
  for (const backend of backends) {
    for (const v of variantsToCheck(vae, golden, variant)) {
      for (const graph of GRAPHS) {
        const names = vae.model.io[graph].outputs, entries = golden.outputs[v][graph];
        if (Object.keys(entries).sort().join() !== [...names].sort().join()) {
          throw new ModelDirError(`${vae.where}: golden.outputs.${escape(v)}.${graph} names outputs ${escape(JSON.stringify(Object.keys(entries)))}, the graph has ${escape(JSON.stringify(names))}`);
        }
        const n = inputs[graph].dims[0];
        const got = await vae.runGraph(graph, { variant: v, backend }, inputs[graph]);
        let worst = 0;
        for (const [j, name] of names.entries()) {
          const expected = await readArray(vae, entries[name]);
          const tail = vae.outputShapes(graph)[j];
          if (!sameDims(expected.dims, [n, ...tail])) {
            throw new ModelDirError(`${vae.where}: ${escape(entries[name].file)} has shape [${expected.dims}], expected [${[n, ...tail]}]`);
          }
          const d = maxAbsDiff(got[j], expected.data);
          worst = Number.isNaN(d) || Number.isNaN(worst) ? NaN : Math.max(worst, d);
        }
        const tolerance = golden.tolerance[v][graph];
        checks.push({ graph, variant: v, backend, maxAbsDiff: worst, tolerance, passed: worst <= tolerance });
      }
    }
  }
  return checks;
}

/** The checks as a table with a last line saying ok or naming the worst failure (as `edgevae verify` prints). */
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
