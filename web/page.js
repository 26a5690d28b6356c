// @ts-check
// The sampling page: a grid of 64 samples (gray or RGB), a latent walk between two of them, the candidate in use, the
// measured decode times, which files came from the browser's cache, and whether the model's goldens pass here. A model
// without a prior (conventions.prior "none") is said to have none instead of sampled; on any model, latents from a
// .npy file [N, ...latent] are decoded into the grid.
// Query parameters: ?variant=auto|fp32|int8|...&backend=auto|wasm|webgpu&threads=N&model=URL&fresh=1&nocache=1
// (fresh: re-measure `auto` instead of using the choice kept in localStorage; nocache: fetch every file).
// Tests and benchmarks drive it through window.edgevae = {ready, vae, state, draw}.

import { FileCache, cachedSource } from "./cache.js";
import { EdgeVAE, Generator, InputError, ModelDirError, tensor, webBackend } from "./edgevae.js";
import { openSource } from "./source.js";
import { formatChecks, parseNpy, verifyGoldens } from "./verify.js";

/**
 * @import { Tensor32 } from "./checks.js"
 * @import { Loader } from "./vae.js"
 * @import { Check } from "./verify.js"
 */

const params = new URLSearchParams(location.search);
/** @param {string} id @returns {any} the page's element (index.html has every id this file asks for) */
const $ = (id) => document.getElementById(id);
const COLUMNS = 8, ROWS = 8, WALK = 10;
const MAX_LATENT_FILE_BYTES = 64 << 20; // a .npy of latents to decode; its first ROWS x COLUMNS are drawn
const state = {
  grid: null, latents: null, ends: [0, 1], timings: { modules: performance.now() }, firstGridMs: null, firstCandidate: null,
  error: null, files: [], adapter: null, checks: null,
};

function fail(err, detail = "") {
  // A clear message instead of a blank or wrong image: the grid is hidden and nothing else is drawn.
  state.error = String(err?.message ?? err);
  $("error").textContent = `The model could not be used: ${state.error}${detail ? "\n" + detail : ""}`;
  document.body.classList.add("failed");
  document.body.dataset.state = "failed";
}

function localCache() {
  if (params.get("fresh")) return null;
  try {
    const store = window.localStorage;
    return { get: (k) => JSON.parse(store.getItem(k) ?? "null"), set: (k, v) => store.setItem(k, JSON.stringify(v)) };
  } catch { return null; } // storage disabled: measure on every load
}

/**
 * Draw images {data, dims [N,C,H,W]} (C 1 or 3) into canvas as a grid of `columns`.
 * @param {HTMLCanvasElement} canvas
 * @param {Tensor32} images
 * @param {number} columns
 */
function draw(canvas, images, columns) {
  const [n, C, H, W] = images.dims;
  const rows = Math.ceil(n / columns);
  canvas.width = columns * W; canvas.height = rows * H;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < n; i++) {
    const x0 = (i % columns) * W, y0 = Math.floor(i / columns) * H;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const at = 4 * ((y0 + y) * canvas.width + x0 + x);
      for (let c = 0; c < 3; c++) {
        pixels.data[at + c] = Math.round(255 * images.data[((i * C + (C === 3 ? c : 0)) * H + y) * W + x]);
      }
      pixels.data[at + 3] = 255;
    }
  }
  ctx.putImageData(pixels, 0, 0);
}

async function timed(label, call) {
  const t0 = performance.now();
  const result = await call();
  state.timings[label] = performance.now() - t0;
  return result;
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

async function newSamples(vae) {
  const seed = Number($("seed").value);
  $("status").textContent = "decoding...";
  state.latents = vae.sampleLatents(ROWS * COLUMNS, seed); // throws InputError for a bad seed
  state.grid = await timed("grid", () => vae.decode(state.latents));
  draw($("grid"), state.grid, COLUMNS);
  $("status").textContent = `seed ${seed}`;
}

async function walk(vae) {
  if (!state.latents) return; // a model without a prior, before a file of latents was decoded
  const z = state.latents, size = z.data.length / z.dims[0];
  const [a, b] = state.ends.map((i) => tensor(z.data.slice(i * size, (i + 1) * size), z.dims.slice(1)));
  draw($("walk"), await timed("walk", () => vae.walk(a, b, WALK)), WALK);
  $("walk").hidden = false;
}

/** Decode the first ROWS x COLUMNS latents of a .npy file (float32 [N, ...latent]) into the grid. */
async function decodeFile(vae, file) {
  if (file.size > MAX_LATENT_FILE_BYTES) throw new InputError(`${file.name} is ${file.size} bytes, more than the ${MAX_LATENT_FILE_BYTES} this page reads`);
  /** @type {(what: string) => never} */
  const fail = (what) => { throw new InputError(`${file.name} ${what}`); };
  const all = parseNpy(new Uint8Array(await file.arrayBuffer()), fail);
  const n = Math.min(all.dims[0] ?? 0, ROWS * COLUMNS), size = all.data.length / Math.max(1, all.dims[0]);
  const latents = tensor(all.data.slice(0, n * size), [n, ...all.dims.slice(1)]);
  state.grid = await timed("grid", () => vae.decode(latents)); // checks the shape: one line naming the latent's
  state.latents = latents;
  state.ends = [0, Math.min(1, n - 1)];
  draw($("grid"), state.grid, COLUMNS);
  $("grid").hidden = false;
  $("status").textContent = `decoded ${n} latent(s) from ${file.name}`;
}

/** onnxruntime-web's bundles and their files' sha256 (site.json, written by `edgevae web`). */
async function readSite() {
  const response = await fetch("site.json");
  if (!response.ok) throw new Error(`site.json: HTTP ${response.status} (not a site written by \`edgevae web\`?)`);
  return response.json();
}

/** A backend whose onnxruntime-web module starts from the wasm binary read through the cache (checked there). */
/**
 * @param {string} provider
 * @param {any} site site.json
 * @param {FileCache} files
 * @param {Loader} ortDir
 * @param {{threads?: number, describe?: string}} options
 */
function ortBackend(provider, site, files, ortDir, { threads, describe }) {
  const { bundles, files: entries, version } = site.onnxruntime_web ?? {};
  const bundle = bundles?.[provider], entry = entries?.[bundle?.wasm];
  if (!entry || !Number.isSafeInteger(entry.bytes) || typeof entry.sha256 !== "string") {
    throw new Error(`site.json lists no onnxruntime-web ${provider} bundle with its sha256 (rebuild the site with \`edgevae web\`)`);
  }
  let loading = null;
  const load = () => (loading ??= Promise.all([
    import(`./ort/${bundle.module}`),
    files.get(`ort/${bundle.wasm}`, entry, () => ortDir.read(bundle.wasm, { maxBytes: entry.bytes, exact: entry.bytes }),
      (message) => { throw new ModelDirError(`onnxruntime-web: ${message}`); }),
  ]).then(([module, binary]) => {
    module.env.wasm.wasmBinary = binary; // so onnxruntime-web compiles these checked bytes instead of fetching its own
    return module;
  }));
  return { ...webBackend(provider, load, { threads, version, describe }), load };
}

/** The backends this page offers `auto`: wasm, and WebGPU where it is wanted and the browser gives an adapter. */
async function backends(site, files, threads) {
  const wanted = params.get("backend") ?? "auto";
  if (!["auto", "wasm", "webgpu"].includes(wanted)) throw new Error(`backend must be auto, wasm or webgpu, got ${wanted.slice(0, 40)}`);
  const ortDir = await openSource("ort/", "onnxruntime-web folder");
  const list = [];
  if (wanted !== "webgpu") {
    list.push(ortBackend("wasm", site, files, ortDir, { threads }));
    list[0].load().catch(() => {}); // its wasm is read while the rest starts (errors surface where a session awaits it)
  }
  if (wanted !== "wasm") {
    // WebGPU is not in TypeScript's DOM library yet
    const adapter = await /** @type {any} */ (navigator).gpu?.requestAdapter().catch(() => null);
    if (adapter) {
      const { vendor = "?", architecture = "?" } = adapter.info ?? {};
      state.adapter = `${vendor} ${architecture}${adapter.info?.isFallbackAdapter ? " (software)" : ""}`;
      list.push(ortBackend("webgpu", site, files, ortDir, { threads, describe: `onnxruntime-web ${site.onnxruntime_web.version} webgpu ${state.adapter}` }));
    } else if (wanted === "webgpu") {
      throw new Error("backend=webgpu, but this browser gives no WebGPU adapter");
    }
  }
  return list;
}

const label = (c) => (c ? `${c.variant}@${c.backend}` : "?");
const megabytes = (n) => `${(n / 1e6).toFixed(n < 1e5 ? 3 : 1)} MB`;

async function info(vae) {
  const used = await vae.pick("decoder", ROWS * COLUMNS);
  const measured = vae.measured("decoder");
  const choice = measured ? Object.entries(measured.choice).map(([n, c]) => `${n}: ${label(c)}`).join(", ") : null;
  const t = state.timings, ms = (x, digits = 0) => (x === undefined || x === null ? "-" : x.toFixed(digits));
  const from = (where) => state.files.filter((f) => f.from === where).map((f) => `${f.file} ${megabytes(f.bytes)}`).join(", ") || "none";
  $("info").textContent = [
    `runtime: ${vae.runtime}, cross-origin isolated: ${self.crossOriginIsolated}`,
    `candidate: ${label(used)}${vae.candidates().length > 1 ? ` (measured in this browser, batch: candidate ${choice ?? "not yet"})` : ""}`,
    `decode, median ms: batch 1 ${ms(t.decode1, 2)}, batch 64 ${ms(t.decode64, 1)}   (last grid ${ms(t.grid, 1)}, walk of ${WALK} ${ms(t.walk, 1)})`,
    `first grid drawn ${ms(state.firstGridMs)} ms after navigation: page modules ${ms(t.modules)} ms, manifest ${ms(t.load)} ms, `
      + `onnxruntime start + decoder session (${label(state.firstCandidate)}) ${ms(t.session)} ms, first decode ${ms(t.firstGrid)} ms; `
      + `measuring auto after it: ${t.auto === undefined ? "cached" : ms(t.auto) + " ms"}`,
    `from the browser's cache (sha256 checked): ${from("cache")}`,
    `from the network: ${from("network")}`,
  ].join("\n");
}

/** @param {Check[]} checks */
function showChecks(checks) {
  const failed = checks.filter((c) => !c.passed);
  const badge = $("verified");
  badge.className = failed.length ? "fail" : "pass";
  const variants = [...new Set(checks.map((c) => c.variant))].join(", ");
  const where = [...new Set(checks.map((c) => c.backend))].join(", ");
  badge.textContent = failed.length ? `goldens FAIL here:\n${formatChecks(checks)}`
    : `verified: the goldens of ${variants} match within the manifest's tolerances (${where})`;
}

async function medianMs(vae, n, reps) {
  // timing only: normals in the latent's shape (a model without a prior has no sampleLatents)
  const z = tensor(new Generator(1).normals(n * vae.latentDim), [n, ...vae.latentShape]), times = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); await vae.decode(z); times.push(performance.now() - t0); }
  return times.sort((a, b) => a - b)[(reps - 1) >> 1];
}

async function main() {
  const threads = params.get("threads") ? Number(params.get("threads")) : undefined;
  const [site, files] = await Promise.all([readSite(), FileCache.open("edgevae", { enabled: !params.get("nocache") })]);
  const list = await backends(site, files, threads);
  list[0].load().catch(() => {}); // the runtime's wasm is read while the manifest and the first graph are
  // First visit: `auto` draws the first grid with fp32 on the first backend (nothing is measured yet), then
  // measures every candidate in this browser and uses the winners from then on (later visits: localStorage).
  const options = { variant: params.get("variant") ?? "auto", backends: list, threads, cache: localCache(), untilMeasured: "fp32", lazy: true };
  const source = cachedSource(await openSource(params.get("model") ?? "model/"), files);
  const vae = await timed("load", () => EdgeVAE.load(source, options));
  page.vae = vae;
  state.firstCandidate = await timed("session", () => vae.prepare("decoder", ROWS * COLUMNS));
  const prior = vae.conventions.prior !== "none";
  if (prior) {
    await newSamples(vae);
    await nextFrame(); // the frame that paints the grid
    state.firstGridMs = performance.now(); // performance.now() counts from navigation start
    state.timings.firstGrid = state.timings.grid;
  } else {
    // nothing to sample: say so (not an error), and offer to decode latents from a file
    $("grid").hidden = $("walk").hidden = $("new").disabled = $("seed").disabled = true;
    $("noprior").hidden = false;
  }
  state.files = [...files.log];
  await walk(vae);
  $("status").textContent += ", measuring...";
  if (vae.candidates().length > 1 && !vae.measured("decoder")) await timed("auto", () => vae.choose("decoder"));
  state.timings.decode1 = await medianMs(vae, 1, 9);
  state.timings.decode64 = await medianMs(vae, ROWS * COLUMNS, 3);
  // the goldens of every variant on the first backend, and on every other backend `auto` chose
  const chosen = Object.values(vae.measured("decoder")?.choice ?? {}).map((c) => c.backend);
  const checkBackends = [...new Set([list[0].name, ...chosen])];
  state.checks = await timed("verify", () => verifyGoldens(vae, { variant: vae.variant === "auto" ? "all" : vae.variant, backends: checkBackends }));
  showChecks(state.checks);
  if (!state.checks.every((c) => c.passed)) return fail("its goldens do not match here", formatChecks(state.checks));
  state.files = [...files.log];
  await files.prune();
  $("status").textContent = prior ? `seed ${$("seed").value}` : "no prior: choose a .npy file of latents to decode";
  await info(vae);
  document.body.dataset.state = "ready";
  // A bad seed is the visitor's input, not a broken model: say so beside the button and keep the page.
  const guard = (call) => (...args) => call(...args).then(() => info(vae)).catch((err) => {
    if (err?.name === "InputError") $("status").textContent = err.message; else fail(err);
  });
  $("new").onclick = guard(async () => { await newSamples(vae); await walk(vae); });
  $("latents").onchange = guard(async () => { if ($("latents").files[0]) { await decodeFile(vae, $("latents").files[0]); await walk(vae); } });
  $("seed").onchange = $("new").onclick;
  $("grid").onclick = guard(async (event) => {
    const box = event.target.getBoundingClientRect();
    const i = Math.floor((event.clientY - box.top) / box.height * ROWS) * COLUMNS + Math.floor((event.clientX - box.left) / box.width * COLUMNS);
    state.ends = [state.ends[1], Math.min(i, (state.latents?.dims[0] ?? 1) - 1)];
    await walk(vae);
  });
}

/** @type {{state: typeof state, draw: typeof draw, vae: EdgeVAE | null, ready?: Promise<void>}} */
const page = { state, draw, vae: null };
/** @type {any} */ (window).edgevae = page;
page.ready = main().catch((err) => { fail(err); });
