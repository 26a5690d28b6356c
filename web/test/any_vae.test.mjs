// Other VAE families in the JS runtime, against the Python runtime on the same model dirs (exported by
// make_any_vae.py with edgevae's Python exporter; tests/web/test_web.py sets EDGEVAE_ANY_VAE): an RGB [-1, 1] model
// with a spatial, scaled and shifted Gaussian latent and a Gaussian head ("signed"), and a deterministic, prior-less
// image-head model ("tiny"): decode, encode, reconstruct, interpolate, another image size, tiled decode, sample where
// a prior exists and its refusal where none does, and the goldens in JS.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { EdgeVAE, InputError, NO_PRIOR, tensor } from "../edgevae.js";
import { forBatch } from "../manifest.js";
import { verifyGoldens } from "../verify.js";
import { MODEL_DIR, maxAbsDiff, readGolden } from "./helpers.mjs";

const ROOT = process.env.EDGEVAE_ANY_VAE ?? null;
const skip = !ROOT && "EDGEVAE_ANY_VAE not set";
// fp32 through the same graph in onnxruntime-node and Python's onnxruntime: the parity bound of the classic model
// (parity.test.mjs). The conventions' float32 maps are the same steps in both (conventions.js), and the tiles' blend
// too (tiles.js), so they add rounding of the graph outputs' size at most.
const TOLERANCE = 1e-5;

/** The model `name` (a folder of make_any_vae.py), its Python outputs and a loaded fp32 runtime. */
async function open(name) {
  const { meta, arrays } = readGolden(join(ROOT, name));
  return { meta, arrays, vae: await EdgeVAE.load(meta.model, { variant: "fp32", threads: 1 }) };
}

const item = (t, i) => {
  const width = t.data.length / t.dims[0];
  return tensor(t.data.subarray(i * width, (i + 1) * width), t.dims.slice(1));
};

for (const name of ["signed", "tiny"]) {
  test(`${name}: decode, encode, reconstruct and interpolate equal the Python runtime's`, { skip }, async () => {
    const { arrays, vae } = await open(name);
    const report = {};
    const decoded = await vae.decode(arrays.z);
    assert.deepEqual(decoded.dims, arrays.decode.dims);
    report.decode = maxAbsDiff(decoded.data, arrays.decode.data);
    const { mu, logvar } = await vae.encode(arrays.x);
    assert.deepEqual(mu.dims, arrays.mu.dims);
    report.mu = maxAbsDiff(mu.data, arrays.mu.data);
    if (arrays.logvar) report.logvar = maxAbsDiff(logvar.data, arrays.logvar.data);
    else assert.equal(logvar, null); // a deterministic encoder: the latent alone
    report.reconstruct = maxAbsDiff((await vae.reconstruct(arrays.x)).data, arrays.reconstruct.data);
    report.interpolate = maxAbsDiff((await vae.interpolate(item(arrays.x, 0), item(arrays.x, 1), 5)).data, arrays.interpolate.data);
    const other = await vae.reconstruct(arrays.x_other); // a size the model divides, not its native one
    assert.deepEqual(other.dims, [2, 3, 6, 10]);
    report.reconstruct_other = maxAbsDiff(other.data, arrays.reconstruct_other.data);
    for (const [what, diff] of Object.entries(report)) assert.ok(diff <= TOLERANCE, `${name} ${what}: max abs diff ${diff} > ${TOLERANCE}`);
    // every output is an image in [0, 1], and the head's clip was exercised (a Gaussian mean runs past [-1, 1])
    assert.ok(decoded.data.every((v) => v >= 0 && v <= 1));
    console.log(`# any-vae ${name} ${JSON.stringify(report)}`);
    await vae.release();
  });

  test(`${name}: tiled decode equals the Python runtime's tiled decode, seams included`, { skip }, async () => {
    const { meta, arrays, vae } = await open(name);
    const whole = await vae.decode(arrays.zt);
    assert.ok(maxAbsDiff(whole.data, arrays.decode_zt.data) <= TOLERANCE);
    const report = {};
    for (const [tile, overlap] of meta.tilings) {
      const expected = arrays[`tiled_${tile}_${overlap ?? "default"}`];
      const tiled = await vae.decodeTiled(arrays.zt, overlap === null ? { tile } : { tile, overlap });
      assert.deepEqual(tiled.dims, expected.dims);
      const diff = maxAbsDiff(tiled.data, expected.data);
      // where Python's blend differs from the whole decode, JS's must differ the same way: matching the whole
      // decode instead would fail here
      const seams = maxAbsDiff(expected.data, arrays.decode_zt.data);
      assert.ok(diff <= TOLERANCE, `${name} tile ${tile} overlap ${overlap}: max abs diff ${diff} > ${TOLERANCE} (seams ${seams})`);
      report[`${tile}/${overlap ?? "default"}`] = { vsPython: diff, vsWhole: seams };
    }
    console.log(`# any-vae tiled ${name} ${JSON.stringify(report)}`);
    await vae.release();
  });

  test(`${name}: the goldens pass in JS`, { skip }, async () => {
    const { vae } = await open(name);
    const checks = await verifyGoldens(vae);
    assert.deepEqual(checks.map((c) => c.graph).sort(), ["decoder", "encoder"]);
    assert.ok(checks.every((c) => c.passed), JSON.stringify(checks));
    await vae.release();
  });
}

test("tiled parity is a real test: some tilings differ from the whole decode", { skip }, () => {
  const { meta, arrays } = readGolden(join(ROOT, "tiny"));
  const seams = meta.tilings.map(([t, o]) => maxAbsDiff(arrays[`tiled_${t}_${o ?? "default"}`].data, arrays.decode_zt.data));
  assert.ok(Math.max(...seams) > 0.05, JSON.stringify(seams));
});

test("signed: sample decodes the prior; sampleLatents are in the model's convention", { skip }, async () => {
  const { vae } = await open("signed");
  const x = await vae.sample(3, 7);
  assert.deepEqual(x.dims, [3, 3, 8, 8]);
  assert.ok(x.data.every((v) => v >= 0 && v <= 1));
  const z = vae.sampleLatents(3, 7);
  assert.deepEqual(z.dims, [3, 4, 4, 4]);
  // (eps - shift) x scale, mapped back by decode: the same images up to that round trip's float32 rounding
  assert.ok(maxAbsDiff((await vae.decode(z)).data, x.data) <= TOLERANCE);
  assert.deepEqual((await vae.sample(3, 7)).data, x.data);
  await vae.release();
});

test("tiny: no prior, so sample is refused with the Python runtime's message; decode and encode work", { skip }, async () => {
  const { arrays, vae } = await open("tiny");
  for (const call of [() => vae.sample(2, 0), () => vae.sampleLatents(2, 0)]) {
    await assert.rejects(async () => call(), (err) => err instanceof InputError && err.message === NO_PRIOR);
  }
  const { mu, logvar } = await vae.encode(arrays.x);
  assert.equal(logvar, null);
  assert.deepEqual(vae.reparameterize(mu, null, 3), mu); // the identity
  assert.throws(() => vae.reparameterize(mu, mu, 0), (err) => err instanceof InputError && /deterministic/.test(err.message));
  assert.deepEqual((await vae.reconstruct(arrays.x, 5)).data, (await vae.reconstruct(arrays.x)).data);
  await vae.release();
});

test("inputs a fully convolutional model refuses get one-line InputErrors", { skip }, async () => {
  const { vae } = await open("signed");
  const cases = [
    [() => vae.encode(tensor(new Float32Array(3 * 7 * 8), [1, 3, 7, 8])), /multiples of 2/],
    [() => vae.decode(tensor(new Float32Array(3 * 16), [1, 3, 4, 4])), /C = 4/],
    [() => vae.decodeTiled(tensor(new Float32Array(64), [1, 4, 4, 4]), { tile: 4, overlap: 4 }), /overlap 4 must be smaller than tile 4/],
    [() => vae.decodeTiled(tensor(new Float32Array(64), [1, 4, 4, 4]), { tile: 0 }), /tile must be >= 1/],
    [() => vae.interpolate(tensor(new Float32Array(3 * 64), [3, 8, 8]), tensor(new Float32Array(3 * 60), [3, 6, 10])), /same shape/],
    [() => vae.reparameterize(tensor(new Float32Array(64), [1, 4, 4, 4]), tensor(new Float32Array(64), [1, 4, 2, 8]), 0), /same shape/],
  ];
  for (const [call, pattern] of cases) {
    await assert.rejects(async () => call(), (err) => err instanceof InputError && pattern.test(err.message) && !err.message.includes("\n"), String(pattern));
  }
  const classic = await EdgeVAE.load(MODEL_DIR, { variant: "fp32" });
  await assert.rejects(classic.decodeTiled(classic.sampleLatents(1, 0)), /fully convolutional/);
  await vae.release();
});

test("forBatch: the largest key <= n, the smallest when n is below all", () => {
  const table = { 1: "a", 8: "b", 64: "c" };
  assert.deepEqual([1, 7, 8, 63, 64, 1000].map((n) => forBatch(table, n)), ["a", "a", "b", "b", "c", "c"]);
  assert.deepEqual([1, 3, 4, 9].map((n) => forBatch({ 4: "x", 16: "y" }, n)), ["x", "x", "x", "x"]);
  assert.equal(forBatch({}, 3), undefined);
});
