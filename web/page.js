// The sampling page: a grid of 64 samples, a latent walk between two of them, the variant in use and the
// measured decode times. Query parameters: ?variant=auto|fp32|int8|...&threads=N&model=URL&fresh=1
// (fresh: re-measure `auto` instead of using the choice cached in localStorage).
// Tests and benchmarks drive it through window.edgevae = {ready, vae, state, draw}.

import { EdgeVAE, tensor } from "./edgevae.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const COLUMNS = 8, ROWS = 8, WALK = 10;
const state = { grid: null, latents: null, ends: [0, 1], timings: {}, firstGridMs: null, firstVariant: null, error: null };

function fail(err) {
  // A clear message instead of a blank or wrong image: the grid is hidden and nothing else is drawn.
  state.error = String(err?.message ?? err);
  $("error").textContent = `The model could not be used: ${state.error}`;
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

/** Draw images {data, dims [N,C,H,W]} (C 1 or 3) into canvas as a grid of `columns`. */
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

async function newSamples(vae) {
  const seed = Number($("seed").value);
  $("status").textContent = "decoding...";
  state.latents = vae.sampleLatents(ROWS * COLUMNS, seed); // throws InputError for a bad seed
  state.grid = await timed("grid", () => vae.decode(state.latents));
  draw($("grid"), state.grid, COLUMNS);
  await walk(vae);
  $("status").textContent = `seed ${seed}`;
}

async function walk(vae) {
  const D = vae.latentDim, z = state.latents.data;
  const [a, b] = state.ends.map((i) => tensor(z.slice(i * D, (i + 1) * D), [D]));
  draw($("walk"), await timed("walk", () => vae.walk(a, b, WALK)), WALK);
}

async function info(vae) {
  const used = await vae.variantFor("decoder", ROWS * COLUMNS);
  const measured = vae.measured("decoder");
  const variant = vae.variant === "auto"
    ? `${used} (auto; measured in this browser, batch: variant ${JSON.stringify(measured?.choice ?? null)})`
    : vae.variant;
  const t = state.timings;
  $("info").textContent = [
    `runtime: ${vae.runtime}, cross-origin isolated: ${self.crossOriginIsolated}`,
    `variant: ${variant}`,
    `decode, median ms: batch 1 ${t.decode1?.toFixed(2)}, batch 64 ${t.decode64?.toFixed(1)}   (last grid ${t.grid?.toFixed(1)}, walk of ${WALK} ${t.walk?.toFixed(1)})`,
    `first grid drawn ${state.firstGridMs?.toFixed(0)} ms after navigation: load (fetch + sha256) ${t.load?.toFixed(0)} ms, `
      + `first decode (${state.firstVariant}) ${t.firstGrid?.toFixed(0)} ms; auto measured after it: ${t.auto?.toFixed(0) ?? "cached"} ms`,
  ].join("\n");
}

async function medianMs(vae, n, reps) {
  const z = vae.sampleLatents(n, 1), times = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); await vae.decode(z); times.push(performance.now() - t0); }
  return times.sort((a, b) => a - b)[(reps - 1) >> 1];
}

async function main() {
  // First visit: `auto` draws the first grid with fp32 (nothing is measured yet), then measures the
  // variants in this browser and uses the winner from then on (and on later visits, from localStorage).
  const options = { variant: params.get("variant") ?? "auto", cache: localCache(), untilMeasured: "fp32" };
  if (params.get("threads")) options.threads = Number(params.get("threads"));
  const vae = await timed("load", () => EdgeVAE.load(params.get("model") ?? "model/", options));
  window.edgevae.vae = vae;
  state.firstVariant = await vae.variantFor("decoder", ROWS * COLUMNS);
  await newSamples(vae);
  await new Promise((resolve) => requestAnimationFrame(resolve)); // the frame that paints the grid
  state.firstGridMs = performance.now(); // performance.now() counts from navigation start
  state.timings.firstGrid = state.timings.grid;
  $("status").textContent += ", measuring...";
  if (vae.variant === "auto" && !vae.measured("decoder")) await timed("auto", () => vae.choose("decoder"));
  state.timings.decode1 = await medianMs(vae, 1, 9);
  state.timings.decode64 = await medianMs(vae, ROWS * COLUMNS, 3);
  $("status").textContent = `seed ${$("seed").value}`;
  await info(vae);
  document.body.dataset.state = "ready";
  // A bad seed is the visitor's input, not a broken model: say so beside the button and keep the page.
  const guard = (call) => (...args) => call(...args).then(() => info(vae)).catch((err) => {
    if (err?.name === "InputError") $("status").textContent = err.message; else fail(err);
  });
  $("new").onclick = guard(() => newSamples(vae));
  $("seed").onchange = guard(() => newSamples(vae));
  $("grid").onclick = guard(async (event) => {
    const box = event.target.getBoundingClientRect();
    const i = Math.floor((event.clientY - box.top) / box.height * ROWS) * COLUMNS + Math.floor((event.clientX - box.left) / box.width * COLUMNS);
    state.ends = [state.ends[1], i];
    await walk(vae);
  });
}

window.edgevae = { state, draw, vae: null };
window.edgevae.ready = main().catch((err) => { fail(err); });
