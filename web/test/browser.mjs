// Drive the sampling page in headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser)
// with playwright-core, and print one JSON report. Used by tests/test_web.py and benchmarks.
//
//   node web/test/browser.mjs URL [--golden DIR] [--screenshot FILE] [--bench] [--interact] [--timeout MS]
//
// Report: {state: "ready"|"failed", error, firstGridMs, timings, variant, runtime, crossOriginIsolated,
//          tiles (grid image count), parity: {variant: max abs diff vs the Python runtime}, parityUnfused: {the
//          same vs the graph run unfused (make_golden.py)}, pixelDiff: {variant: max canvas level diff}, bench}.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGolden } from "./helpers.mjs";
import { Generator } from "../random.js";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio"];

function parseArgs(argv) {
  const args = { url: argv[0], golden: null, screenshot: null, bench: false, timeout: 60000 };
  for (let i = 1; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (key === "bench" || key === "interact") args[key] = true;
    else args[key] = key === "timeout" ? Number(argv[++i]) : argv[++i];
  }
  return args;
}

async function openPage(context, url, timeout) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 800, height: 1100 });
  const logs = [];
  page.on("console", (msg) => { if (msg.type() === "error") logs.push(msg.text()); });
  page.on("pageerror", (err) => logs.push(String(err)));
  await page.goto(url);
  await page.waitForFunction(() => ["ready", "failed"].includes(document.body.dataset.state), null, { timeout });
  await page.evaluate(() => window.edgevae.ready);
  return { page, logs };
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

export async function run(args) {
  const profile = mkdtempSync(join(tmpdir(), "edgevae-chromium-"));
  // A fresh profile per run (Playwright passes it as --user-data-dir); headless: true adds --headless.
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    const { page, logs } = await openPage(browser, args.url, args.timeout);
    const report = await page.evaluate(async () => {
      const { state, vae } = window.edgevae;
      return {
        state: document.body.dataset.state, error: state.error, firstGridMs: state.firstGridMs, timings: state.timings,
        errorText: document.getElementById("error").textContent,
        errorVisible: document.getElementById("error").checkVisibility(),
        gridVisible: document.getElementById("grid").checkVisibility(),
        tiles: state.grid ? state.grid.dims[0] : 0, gridPixels: state.grid ? state.grid.dims.slice(1) : null,
        variant: vae?.variant ?? null, runtime: vae?.runtime ?? null, crossOriginIsolated: self.crossOriginIsolated,
        choice: vae && vae.variant === "auto" ? await vae.choose("decoder") : null,
      };
    });
    report.logs = logs;
    if (args.screenshot) { await page.screenshot({ path: args.screenshot, fullPage: true }); report.screenshot = args.screenshot; }
    if (args.golden && report.state === "ready") Object.assign(report, await parity(page, args.golden));
    if (args.bench && report.state === "ready") report.bench = await bench(page);
    if (args.interact && report.state === "ready") report.interact = await interact(page);
    return report;
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const report = await run(parseArgs(process.argv.slice(2)));
  console.log(JSON.stringify(report));
}
