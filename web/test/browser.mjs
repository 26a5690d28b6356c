// Drive the sampling page in headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser)
// with playwright-core, and print one JSON report. Used by tests/web/test_web.py, .ci/run and benchmarks.
//
//   node web/test/browser.mjs URL [--golden DIR] [--screenshot FILE] [--bench] [--interact] [--timeout MS]
//                                 [--visits N] [--webgpu] [--profile DIR] [--dump] [--latents FILE.npy]
//
// Report (of the first visit): {state: "ready"|"failed", error, firstGridMs, timings, variant, runtime,
//   crossOriginIsolated, tiles (grid image count), files (which came from the browser's cache), network
//   ({bytes, requests: [[url, status, bytes]]} over the wire), checks (the page's goldens), parity: {variant: max
//   abs diff vs the Python runtime}, parityUnfused: {the same vs the graph run unfused (make_golden.py)},
//   pixelDiff: {variant: max canvas level diff}, bench, webgpu: {adapter, checks, diff}, drawn: {maxDiff: the grid
//   canvas against round(255 x the grid's values) over every channel, color: whether any pixel's channels differ},
//   noPriorVisible, dump: {latents, grid} (--dump: the grid's latents and images, for a comparison with Python),
//   fromFile: the same after decoding --latents FILE.npy through the page's file input}; visits: the report of
//   every visit (--visits N: the same URL again in the same browser profile, so from its caches).
// --webgpu starts Chromium with a WebGPU adapter (SwiftShader, on the CPU: correct, slow). --profile DIR keeps the
// browser profile (its caches) in DIR for a later run instead of a fresh temporary one.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGolden } from "./helpers.mjs";
import { Generator } from "../random.js";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio"];
// WebGPU in headless Chromium without a GPU: --enable-unsafe-webgpu gives SwiftShader's adapter (--disable-gpu off)
export const WEBGPU_FLAGS = [...FLAGS.filter((f) => f !== "--disable-gpu"), "--enable-unsafe-webgpu"];

function parseArgs(argv) {
  const args = { url: argv[0], golden: null, screenshot: null, bench: false, interact: false, webgpu: false, timeout: 60000, visits: 1,
    profile: null, dump: false, latents: null };
  for (let i = 1; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (["bench", "interact", "webgpu", "dump"].includes(key)) args[key] = true;
    else args[key] = ["timeout", "visits"].includes(key) ? Number(argv[++i]) : argv[++i];
  }
  return args;
}

async function openPage(context, url, timeout) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 800, height: 1100 });
  const logs = [];
  page.on("console", (msg) => { if (msg.type() === "error") logs.push(msg.text()); });
  page.on("pageerror", (err) => logs.push(String(err)));
  // what crosses the wire (a 304 revalidation counts its headers; files read from Cache Storage count nothing)
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const requests = new Map();
  cdp.on("Network.responseReceived", (e) => requests.set(e.requestId, { url: e.response.url, status: e.response.status, bytes: 0 }));
  cdp.on("Network.loadingFinished", (e) => { if (requests.has(e.requestId)) requests.get(e.requestId).bytes = e.encodedDataLength; });
  await page.goto(url);
  await page.waitForFunction(() => ["ready", "failed"].includes(document.body.dataset.state), null, { timeout });
  await page.evaluate(() => window.edgevae.ready);
  const list = [...requests.values()].map((r) => [new URL(r.url).pathname, r.status, r.bytes]);
  return { page, logs, network: { bytes: list.reduce((sum, r) => sum + r[2], 0), requests: list } };
}

// In the page: decode the golden z with each variant (a fresh EdgeVAE per variant) and report max abs diff,
// plus the canvas pixels of the drawn golden grid against round(255 * python).
async function parity(page, golden) {
  const { meta, arrays } = readGolden(golden);
  const payload = { variants: meta.variants, z: Array.from(arrays.z.data), zDims: arrays.z.dims,
    expected: Object.fromEntries(meta.variants.map((v) => [v, Array.from(arrays[`decode_${v}`].data)])),
    unfused: Object.fromEntries(meta.variants.map((v) => [v, Array.from(arrays[`decode_${v}_qdq`].data)])) };
  return page.evaluate(async ({ variants, z, zDims, expected, unfused }) => {
    const { EdgeVAE, tensor } = await import("./edgevae.js");
    const out = { parity: {}, parityUnfused: {}, pixelDiff: {} };
    for (const variant of variants) {
      const vae = await EdgeVAE.load("model/", { variant });
      const x = await vae.decode(tensor(Float32Array.from(z), zDims));
      let diff = 0;
      x.data.forEach((v, i) => { diff = Math.max(diff, Math.abs(v - expected[variant][i])); });
      out.parity[variant] = diff;
      diff = 0;
      x.data.forEach((v, i) => { diff = Math.max(diff, Math.abs(v - unfused[variant][i])); });
      out.parityUnfused[variant] = diff;
      // pixels as drawn on a canvas, against Python's output rounded the same way
      const canvas = document.createElement("canvas");
      window.edgevae.draw(canvas, x, 8);
      const drawn = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      const [n, , H, W] = x.dims;
      let pix = 0;
      for (let i = 0; i < n; i++) for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) {
        const at = 4 * (((Math.floor(i / 8) * H) + y) * canvas.width + (i % 8) * W + xx);
        pix = Math.max(pix, Math.abs(drawn[at] - Math.round(255 * expected[variant][(i * H + y) * W + xx])));
      }
      out.pixelDiff[variant] = pix;
      await vae.release();
    }
    const first = await EdgeVAE.load("model/", { variant: variants[0] });
    out.latents = Array.from(first.sampleLatents(8, 123).data);
    return out;
  }, payload).then((out) => {
    // the page's seeded latents against Node's: the generator is the same in both engines
    const node = new Generator(123).normals(out.latents.length);
    out.latentsEqualNode = out.latents.every((v, i) => v === node[i]);
    delete out.latents;
    return out;
  });
}

// In the page: median decode ms at batch 1 and 64 per variant (same seeded z), after a warm-up.
async function bench(page) {
  return page.evaluate(async () => {
    const { EdgeVAE } = await import("./edgevae.js");
    const result = {};
    for (const variant of ["fp32", "int8"]) {
      const vae = await EdgeVAE.load("model/", { variant });
      result[variant] = {};
      for (const [n, reps] of [[1, 31], [64, 9]]) {
        const z = vae.sampleLatents(n, 0);
        await vae.decode(z);
        const times = [];
        for (let r = 0; r < reps; r++) { const t0 = performance.now(); await vae.decode(z); times.push(performance.now() - t0); }
        result[variant][n] = times.sort((a, b) => a - b)[(reps - 1) / 2];
      }
      await vae.release();
    }
    return result;
  });
}

// Use the page as a visitor does: a new seed redraws the grid (equal to sample(64, seed)), a bad seed is
// reported beside the button while the grid stays.
async function interact(page) {
  const pixels = () => page.evaluate(() => Array.from(window.edgevae.state.grid.data.slice(0, 784 * 64)));
  const before = await pixels();
  await page.fill("#seed", "3");
  await page.click("#new");
  await page.waitForFunction(() => document.getElementById("status").textContent === "seed 3");
  const after = await pixels();
  const expected = await page.evaluate(async () => Array.from((await window.edgevae.vae.sample(64, 3)).data));
  await page.fill("#seed", "-1");
  await page.click("#new");
  await page.waitForFunction(() => /seed must be/.test(document.getElementById("status").textContent));
  return {
    redrawn: after.some((v, i) => v !== before[i]), equalsSample: after.every((v, i) => v === expected[i]),
    badSeedStatus: await page.textContent("#status"), gridStillVisible: await page.isVisible("#grid"),
  };
}

// In the page: the goldens on wasm and on WebGPU (each against the model dir's expected outputs and tolerances),
// and the two backends' outputs on the golden inputs against each other.
async function webgpu(page) {
  return page.evaluate(async () => {
    const { state, vae } = window.edgevae;
    const { parseNpy, verifyGoldens } = await import("./verify.js");
    const backends = vae.backends.map((b) => b.name);
    if (!backends.includes("webgpu")) return { adapter: state.adapter, backends };
    const checks = await verifyGoldens(vae, { variant: "all", backends: ["wasm", "webgpu"] });
    const diff = {};
    for (const variant of Object.keys(vae.model.variants)) {
      for (const graph of ["encoder", "decoder"]) {
        const input = parseNpy(await vae.readFile(vae.model.golden.inputs[graph]), (what) => { throw new Error(what); });
        const wasm = await vae.runGraph(graph, { variant, backend: "wasm" }, input);
        const gpu = await vae.runGraph(graph, { variant, backend: "webgpu" }, input);
        diff[`${variant} ${graph}`] = Math.max(...wasm.map((out, j) => out.reduce((m, v, i) => Math.max(m, Math.abs(v - gpu[j][i])), 0)));
      }
    }
    return { adapter: state.adapter, backends, checks, diff };
  });
}

// In the page: the grid's latents and images as plain arrays.
const dumpGrid = (page) => page.evaluate(() => {
  const { state } = window.edgevae;
  return state.grid && { latents: { data: Array.from(state.latents.data), dims: state.latents.dims }, grid: { data: Array.from(state.grid.data), dims: state.grid.dims } };
});

// Decode a .npy of latents through the page's file input, as a visitor does.
async function fromFile(page, file) {
  await page.setInputFiles("#latents", file);
  await page.waitForFunction(() => /^decoded |must|not|holds/.test(document.getElementById("status").textContent));
  return { status: await page.textContent("#status"), gridVisible: await page.isVisible("#grid"), ...(await dumpGrid(page)) };
}

async function visit(context, args) {
  const { page, logs, network } = await openPage(context, args.url, args.timeout);
  const report = await page.evaluate(async () => {
    const { state, vae } = window.edgevae;
    return {
      state: document.body.dataset.state, error: state.error, firstGridMs: state.firstGridMs, timings: state.timings,
      errorText: document.getElementById("error").textContent,
      errorVisible: document.getElementById("error").checkVisibility(),
      gridVisible: document.getElementById("grid").checkVisibility(),
      verifiedText: document.getElementById("verified")?.textContent ?? null,
      tiles: state.grid ? state.grid.dims[0] : 0, gridPixels: state.grid ? state.grid.dims.slice(1) : null,
      variant: vae?.variant ?? null, runtime: vae?.runtime ?? null, crossOriginIsolated: self.crossOriginIsolated,
      candidates: vae?.candidates?.() ?? null, firstCandidate: state.firstCandidate, adapter: state.adapter,
      files: state.files, checks: state.checks, noPriorVisible: document.getElementById("noprior")?.checkVisibility() ?? false,
      drawn: (() => { // the grid canvas against the grid's values, every channel: gray and RGB drawn as they are
        if (!state.grid) return null;
        const canvas = document.getElementById("grid"), [n, C, H, W] = state.grid.dims;
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let maxDiff = 0, color = false;
        for (let i = 0; i < n; i++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
          const at = 4 * (((Math.floor(i / 8) * H) + y) * canvas.width + (i % 8) * W + x);
          for (let c = 0; c < 3; c++) {
            const value = state.grid.data[((i * C + (C === 3 ? c : 0)) * H + y) * W + x];
            maxDiff = Math.max(maxDiff, Math.abs(pixels[at + c] - Math.round(255 * value)));
          }
          color ||= pixels[at] !== pixels[at + 1] || pixels[at + 1] !== pixels[at + 2];
        }
        return { maxDiff, color };
      })(),
      // (candidates?.(): a page from before backends existed is still timed, for comparisons)
      choice: vae && document.body.dataset.state === "ready" && vae.candidates?.().length > 1 ? await vae.choose("decoder") : null,
    };
  });
  Object.assign(report, { logs, network });
  return { page, report };
}

export async function run(args) {
  const profile = args.profile ?? mkdtempSync(join(tmpdir(), "edgevae-chromium-"));
  // A fresh profile per run (Playwright passes it as --user-data-dir); headless: true adds --headless.
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: args.webgpu ? WEBGPU_FLAGS : FLAGS });
  try {
    const visits = [];
    let page = null;
    for (let i = 0; i < args.visits; i++) {
      if (page) await page.close(); // a later visit: the same profile, so the browser's caches and localStorage
      const opened = await visit(browser, args);
      page = opened.page;
      visits.push(opened.report);
    }
    const report = { ...visits[0], visits };
    if (args.screenshot) { await page.screenshot({ path: args.screenshot, fullPage: true }); report.screenshot = args.screenshot; }
    if (args.golden && report.state === "ready") Object.assign(report, await parity(page, args.golden));
    if (args.bench && report.state === "ready") report.bench = await bench(page);
    if (args.interact && report.state === "ready") report.interact = await interact(page);
    if (args.webgpu && report.state === "ready") report.webgpu = await webgpu(page);
    if (args.dump && report.state === "ready") report.dump = await dumpGrid(page);
    if (args.latents && report.state === "ready") report.fromFile = await fromFile(page, args.latents);
    return report;
  } finally {
    await browser.close();
    if (!args.profile) rmSync(profile, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const report = await run(parseArgs(process.argv.slice(2)));
  console.log(JSON.stringify(report));
}
