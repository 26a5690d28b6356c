// vae.js and verify.js run where onnxruntime-react-native does: they import only their own files, and they run
// with nothing but an injected onnxruntime module (InferenceSession and Tensor of onnxruntime-common's
// interface) and an injected file loader, with the platform's fetch, WebCrypto and TextDecoder taken away.
// Their fallbacks (sha256.js, manifest.js decodeUtf8) are checked against node:crypto and TextDecoder.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as nodeOrt from "onnxruntime-node";
import { EdgeVAE as NodeVAE } from "../edgevae.js";
import { MODEL_DIR } from "./helpers.mjs";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const PLATFORM_FREE = ["vae.js", "verify.js"];

/** Every module specifier in a file: static imports, re-exports and dynamic import() calls. */
function specifiers(file) {
  const text = readFileSync(join(WEB, file), "utf8");
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*"([^"]+)"|import\(\s*([^)]*)\)/g)].map((m) => m[1] ?? `import(${m[2]})`);
}

test("vae.js and verify.js import only their own platform-free files", () => {
  const seen = new Set(), queue = [...PLATFORM_FREE];
  while (queue.length) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of specifiers(file)) {
      assert.match(spec, /^\.\/[a-z0-9]+\.js$/, `${file} imports ${spec}`);
      queue.push(spec.slice(2));
    }
  }
  assert.deepEqual([...seen].sort(), ["auto.js", "backends.js", "checks.js", "conventions.js", "manifest.js", "random.js", "sha256.js", "tiles.js", "vae.js", "verify.js"]);
  // and the platform layer is where fetch, fs and import-by-name live
  assert.ok(specifiers("edgevae.js").includes("./source.js"));
});

test("the runtime runs with only an injected backend and loader (React Native's shape)", async () => {
  // what the test needs from the platform is taken before the platform's APIs are
  const files = new Map(readdirSync(MODEL_DIR).map((name) => [name, new Uint8Array(readFileSync(join(MODEL_DIR, name)))]));
  const reference = await NodeVAE.load(MODEL_DIR, { variant: "fp32" });
  const expected = await reference.sample(3, 42);
  const saved = {};
  for (const name of ["fetch", "crypto", "TextDecoder", "Request", "Response", "caches"]) {
    saved[name] = Object.getOwnPropertyDescriptor(globalThis, name);
    delete globalThis[name];
  }
  try {
    assert.equal(typeof fetch, "undefined");
    assert.equal(globalThis.crypto, undefined);
    const { EdgeVAE } = await import("../vae.js");
    const { verifyGoldens } = await import("../verify.js");
    // onnxruntime-common's interface only, as onnxruntime-react-native exports it
    const ort = { InferenceSession: nodeOrt.InferenceSession, Tensor: nodeOrt.Tensor, env: { versions: { "react-native": "injected" } } };
    const reads = [];
    const loader = {
      where: "bundled model",
      async read(name, { maxBytes }) {
        reads.push(name);
        const data = files.get(name);
        if (!data || data.length > maxBytes) throw new Error(`no ${name}`);
        return data;
      },
    };
    const vae = await EdgeVAE.load(loader, { ort, variant: "fp32", threads: 1 });
    assert.match(vae.runtime, /onnxruntime-react-native injected cpu threads=1/);
    const x = await vae.sample(3, 42);
    assert.deepEqual(x.dims, expected.dims);
    assert.deepEqual(x.data, expected.data); // same graph, same kernels, same seeded latents: the same bits
    const checks = await verifyGoldens(vae, { variant: "fp32" });
    assert.ok(checks.length === 2 && checks.every((c) => c.passed), JSON.stringify(checks));
    assert.ok(reads.includes("manifest.json") && reads.includes("decoder.onnx"));
    // the sha256 is checked without WebCrypto too
    const bad = { ...loader, read: async (name, o) => (name === "decoder.onnx" ? new Uint8Array(files.get(name)).fill(7, 100, 101) : loader.read(name, o)) };
    await assert.rejects(EdgeVAE.load(bad, { ort, variant: "fp32" }), /decoder\.onnx does not match its sha256/);
  } finally {
    for (const [name, descriptor] of Object.entries(saved)) if (descriptor) Object.defineProperty(globalThis, name, descriptor);
  }
});

test("the SHA-256 fallback equals node:crypto's", async () => {
  const { sha256Js } = await import("../sha256.js");
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 65537]) {
    const bytes = randomBytes(n);
    assert.equal(sha256Js(new Uint8Array(bytes.buffer, bytes.byteOffset, n)), createHash("sha256").update(bytes).digest("hex"), `length ${n}`);
  }
  // a view into a larger buffer hashes only its own bytes
  const big = randomBytes(300);
  const view = new Uint8Array(big.buffer, big.byteOffset + 7, 200);
  assert.equal(sha256Js(view), createHash("sha256").update(big.subarray(7, 207)).digest("hex"));
});

test("the UTF-8 fallback decodes as TextDecoder does and refuses what it refuses", async () => {
  const { decodeUtf8 } = await import("../manifest.js");
  const good = ["", "plain", "ümlaut é", "日本語", "emoji 🙂 and 𝄞", "\u{10ffff}", "\ufeffwith a BOM", "\u0000nul"];
  for (const text of good) {
    const bytes = new TextEncoder().encode(text);
    assert.equal(decodeUtf8(bytes, { native: false }), new TextDecoder("utf-8", { fatal: true }).decode(bytes), text);
  }
  const bad = [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0xff], [0xc3, 0x28]];
  for (const bytes of bad) {
    assert.throws(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes)));
    assert.throws(() => decodeUtf8(new Uint8Array(bytes), { native: false }), TypeError, JSON.stringify(bytes));
  }
});
