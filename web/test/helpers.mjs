// Shared by the Node tests: where the model dir and goldens are, and a copy of a model dir to damage.
import { cpSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** EDGEVAE_MODEL, or the default model shipped with the Python package. */
export const MODEL_DIR = resolve(process.env.EDGEVAE_MODEL ?? join(here, "..", "..", "runtime", "default_model"));
/** EDGEVAE_GOLDEN: a folder written by make_golden.py (unset: the parity tests skip). */
export const GOLDEN_DIR = process.env.EDGEVAE_GOLDEN ?? null;

/** A fresh copy of the model dir in a temp folder. */
export function copyModel() {
  const dir = join(mkdtempSync(join(tmpdir(), "edgevae-js-")), "model");
  cpSync(MODEL_DIR, dir, { recursive: true });
  return dir;
}

/** {name: {data: Float32Array, dims}} from golden.json. */
export function readGolden(dir = GOLDEN_DIR) {
  const meta = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
  const arrays = {};
  for (const [name, { file, dims }] of Object.entries(meta.arrays)) {
    const bytes = readFileSync(join(dir, file));
    arrays[name] = { data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), dims };
  }
  return { meta, arrays };
}

export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
