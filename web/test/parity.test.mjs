// decode/encode in onnxruntime-node equal the Python runtime's outputs for the same inputs (goldens
// written by make_golden.py; tests/web/test_web.py runs this with EDGEVAE_GOLDEN set).
import assert from "node:assert/strict";
import { test } from "node:test";
import { EdgeVAE } from "../edgevae.js";
import { GOLDEN_DIR, maxAbsDiff, readGolden } from "./helpers.mjs";

// fp32: the bound. int8: quantized graphs run the same integer kernels in both, measured
// bit-identical here; 1e-4 leaves room for another CPU's kernels without hiding a wrong graph (int8 vs
// fp32 differs by up to 0.36 on this model).
const TOLERANCE = { fp32: 1e-5, int8: 1e-4 };

test("JS decode and encode match the Python runtime per variant", { skip: !GOLDEN_DIR && "EDGEVAE_GOLDEN not set" }, async () => {
  const { meta, arrays } = readGolden();
  const report = {};
  for (const variant of meta.variants) {
    const vae = await EdgeVAE.load(meta.model, { variant });
    const tol = TOLERANCE[variant] ?? 1e-4;
    const x = await vae.decode(arrays.z);
    assert.deepEqual(x.dims, arrays[`decode_${variant}`].dims);
    const { mu, logvar } = await vae.encode(arrays.x);
    const w = arrays.x.data.length / arrays.x.dims[0];
    const image = (i) => ({ data: arrays.x.data.subarray(i * w, (i + 1) * w), dims: arrays.x.dims.slice(1) });
    const frames = await vae.interpolate(image(0), image(1), 5);
    report[variant] = {
      interpolate: maxAbsDiff(frames.data, arrays[`interpolate_${variant}`].data),
      decode: maxAbsDiff(x.data, arrays[`decode_${variant}`].data),
      mu: maxAbsDiff(mu.data, arrays[`mu_${variant}`].data),
      logvar: maxAbsDiff(logvar.data, arrays[`logvar_${variant}`].data),
    };
    for (const [what, diff] of Object.entries(report[variant])) assert.ok(diff <= tol, `${variant} ${what}: max abs diff ${diff} > ${tol}`);
    await vae.release();
  }
  console.log(`# parity ${JSON.stringify(report)}`);
});

test("the variants really differ (the parity test would catch a swapped graph)", { skip: !GOLDEN_DIR && "EDGEVAE_GOLDEN not set" }, () => {
  const { meta, arrays } = readGolden();
  if (meta.variants.length < 2) return;
  assert.ok(maxAbsDiff(arrays.decode_fp32.data, arrays[`decode_${meta.variants[1]}`].data) > 1e-3);
});
