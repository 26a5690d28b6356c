// Goldens in JavaScript (verify.js, verify-cli.mjs): the shipped model's goldens pass in onnxruntime-node within
// the manifest's tolerances, a graph swapped for another one (its hash re-signed, as an attacker who can edit the
// whole dir would) fails exactly there, and malformed goldens are ModelDirErrors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { EdgeVAE, ModelDirError } from "../edgevae.js";
import { formatChecks, parseNpy, verifyGoldens } from "../verify.js";
import { MODEL_DIR, copyModel } from "./helpers.mjs";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "verify-cli.mjs");
const manifestOf = (dir) => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));

/** Point manifest entries at the file's current bytes again (size and sha256). */
function resign(dir, file) {
  const m = manifestOf(dir), data = readFileSync(join(dir, file));
  const entries = [...Object.values(m.variants).flatMap((g) => Object.values(g)), ...Object.values(m.golden.inputs),
    ...Object.values(m.golden.outputs).flatMap((g) => Object.values(g).flatMap((o) => Object.values(o)))];
  for (const e of entries.filter((e) => e.file === file)) Object.assign(e, { sha256: createHash("sha256").update(data).digest("hex"), bytes: data.length });
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
}

test("the shipped model's goldens pass for every variant", async () => {
  const vae = await EdgeVAE.load(MODEL_DIR);
  const checks = await verifyGoldens(vae);
  assert.deepEqual(checks.map((c) => `${c.graph} ${c.variant}`), ["encoder fp32", "decoder fp32", "encoder int8", "decoder int8"]);
  for (const c of checks) {
    assert.ok(c.passed && c.maxAbsDiff <= c.tolerance && c.tolerance === manifestOf(MODEL_DIR).golden.tolerance[c.variant][c.graph], JSON.stringify(c));
  }
  assert.match(formatChecks(checks).split("\n").at(-1), /^ok: all 4 /);
});

test("a graph swapped and re-signed fails its goldens, and only there", async () => {
  const dir = copyModel();
  copyFileSync(join(dir, "decoder.int8.onnx"), join(dir, "decoder.onnx")); // other weights, same interface
  resign(dir, "decoder.onnx");
  const vae = await EdgeVAE.load(dir, { variant: "fp32" }); // its hash matches: only the goldens can tell
  const checks = await verifyGoldens(vae, { variant: "fp32" });
  const failed = checks.filter((c) => !c.passed);
  assert.deepEqual(failed.map((c) => `${c.graph} ${c.variant}`), ["decoder fp32"]);
  assert.ok(failed[0].maxAbsDiff > 100 * failed[0].tolerance, JSON.stringify(failed));
  assert.match(formatChecks(checks).split("\n").at(-1), /^FAIL: 1 of 2 .*worst: decoder fp32 on cpu/);
  const cli = spawnSync(process.execPath, [CLI, dir], { encoding: "utf8" });
  assert.equal(cli.status, 1, cli.stderr);
  assert.match(cli.stdout, /decoder  fp32 .* NO\n/);
});

test("malformed or missing goldens are ModelDirErrors naming the file", async () => {
  const cases = [
    ["no goldens", (m) => { delete m.golden; }, /has no goldens/],
    ["variant without goldens", (m) => { delete m.golden.outputs.int8; delete m.golden.tolerance.int8; }, /no goldens for variant int8/],
    ["outputs of another graph", (m) => { m.golden.outputs.int8.decoder = { y: m.golden.outputs.int8.decoder.x_hat }; }, /names outputs \["y"\]/],
  ];
  for (const [what, edit, pattern] of cases) {
    const dir = copyModel();
    const m = manifestOf(dir);
    edit(m);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
    const vae = await EdgeVAE.load(dir, { variant: "int8" });
    await assert.rejects(verifyGoldens(vae, { variant: "int8" }), (err) => err instanceof ModelDirError && pattern.test(err.message), what);
  }
  const dir = copyModel(); // a golden whose bytes changed is caught by its sha256, like a graph
  const file = manifestOf(dir).golden.outputs.fp32.decoder.x_hat.file;
  const data = readFileSync(join(dir, file));
  data[data.length - 1] ^= 1;
  writeFileSync(join(dir, file), data);
  await assert.rejects(verifyGoldens(await EdgeVAE.load(dir, { variant: "fp32" }), { variant: "fp32" }), new RegExp(`${file.replaceAll(".", "\\.")} does not match its sha256`));
});

test("a tolerance looser than the measured figures and the cap allow is refused before any graph runs", async () => {
  for (const [variant, loose] of [["fp32", 1e-3], ["int8", 0.5]]) {
    const dir = copyModel();
    const m = manifestOf(dir);
    m.golden.tolerance[variant].decoder = loose;
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
    const vae = await EdgeVAE.load(dir, { variant });
    let ran = 0;
    const runGraph = vae.runGraph.bind(vae);
    vae.runGraph = (...args) => { ran++; return runGraph(...args); };
    await assert.rejects(verifyGoldens(vae, { variant }), new RegExp(`golden.tolerance.${variant}.decoder is .*more than its measured figures and the cap allow`));
    assert.equal(ran, 0);
  }
});

/** A .npy file of float32 rows (C order), as numpy writes it. */
function npyBytes(data, dims) {
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(", ")}${dims.length === 1 ? "," : ""}), }`.padEnd(117) + "\n";
  const out = new Uint8Array(10 + header.length + 4 * data.length);
  out.set([0x93, ...Buffer.from("NUMPY"), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(Buffer.from(header), 10);
  new Float32Array(out.buffer, 10 + header.length).set(data);
  return out;
}

test("a fixed-shape variant runs whole batches of its size, is never auto's, and its goldens cover the rows repeated", async () => {
  const dir = copyModel();
  const m = manifestOf(dir);
  // fp32's graphs listed again as a fixed-batch-3 variant (onnxruntime takes any batch; the runtime must not)
  m.variants["fp32-b3"] = structuredClone(m.variants.fp32);
  m.static = { "fp32-b3": { base: "fp32", batch: 3 } };
  m.golden.outputs["fp32-b3"] = {};
  m.golden.tolerance["fp32-b3"] = { ...m.golden.tolerance.fp32 };
  for (const [graph, outs] of Object.entries(m.golden.outputs.fp32)) {
    m.golden.outputs["fp32-b3"][graph] = {};
    for (const [name, entry] of Object.entries(outs)) {
      // the 8 golden rows fitted to 9 (rows 0..7 then 0), as runtime/device/golden.py's fit_rows writes them
      const { data, dims } = parseNpy(new Uint8Array(readFileSync(join(dir, entry.file))), (what) => { throw new Error(what); });
      const width = data.length / dims[0];
      const fitted = new Float32Array(9 * width);
      for (let i = 0; i < 9; i++) fitted.set(data.subarray((i % 8) * width, (i % 8 + 1) * width), i * width);
      const file = `golden.fp32-b3.${graph}.${name}.npy`, bytes = npyBytes(fitted, [9, ...dims.slice(1)]);
      writeFileSync(join(dir, file), bytes);
      m.golden.outputs["fp32-b3"][graph][name] = { file, sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.length };
    }
  }
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
  const auto = await EdgeVAE.load(dir);
  assert.deepEqual(auto.candidates().map((c) => c.variant), ["fp32", "int8"]);
  const fixed = await EdgeVAE.load(dir, { variant: "fp32-b3" });
  await assert.rejects(fixed.sample(4, 0), /fixed batch of 3: give it a multiple of 3 rows, got 4/);
  assert.deepEqual((await fixed.sample(6, 0)).data, (await EdgeVAE.load(dir, { variant: "fp32" }).then((v) => v.sample(6, 0))).data);
  const checks = await verifyGoldens(fixed, { variant: "fp32-b3" });
  assert.ok(checks.length === 2 && checks.every((c) => c.passed), JSON.stringify(checks));
});

test("parseNpy reads numpy's float32 files and refuses anything else", () => {
  const golden = parseNpy(new Uint8Array(readFileSync(join(MODEL_DIR, "golden.decoder.input.npy"))), (what) => { throw new Error(what); });
  assert.deepEqual(golden.dims, [8, 64]);
  assert.ok(golden.data.every(Number.isFinite));
  const npy = (header, dataBytes) => {
    const text = header.padEnd(118) + "\n";
    return Uint8Array.from([0x93, ...Buffer.from("NUMPY"), 1, 0, text.length & 0xff, text.length >> 8, ...Buffer.from(text), ...new Uint8Array(dataBytes)]);
  };
  const fail = (what) => { throw new Error(what); };
  assert.deepEqual(parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24), fail).dims, [2, 3]);
  assert.deepEqual(parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4), fail).dims, []);
  const refused = [
    [npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16), /not C-ordered float32/],
    [npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24), /Fortran order/],
    [npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8), /not C-ordered float32/],
    [npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20), /needs 24/],
    [npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0), /not sizes/],
    [Uint8Array.from(Buffer.from("PK\x03\x04 a zip, not npy")), /not a \.npy/],
  ];
  for (const [bytes, pattern] of refused) assert.throws(() => parseNpy(bytes, fail), pattern);
});

test("verify-cli exits 0 when the goldens pass and 2 with one line for a bad dir or argument", () => {
  const ok = spawnSync(process.execPath, [CLI, MODEL_DIR, "--variant", "int8"], { encoding: "utf8" });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: all 2 /m);
  for (const args of [[join(MODEL_DIR, "nope")], [MODEL_DIR, "--variant", "int4"], [], [MODEL_DIR, "--bogus"]]) {
    const bad = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
    assert.equal(bad.status, 2, `${args}: ${bad.stdout}`);
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  }
});
