// manifest.js follows the committed JSON Schema of the model dir (docs/model-dir.schema.json, generated
// from runtime/contract/manifest.py): the same required fields, format and file entries; the shipped manifest passes.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { FILE_ENTRY_REQUIRED, FORMAT, REQUIRED, parseManifest } from "../manifest.js";
import { MODEL_DIR } from "./helpers.mjs";

const SCHEMA = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "model-dir.schema.json");

test("manifest.js requires what the schema requires", { skip: !existsSync(SCHEMA) && "no docs/model-dir.schema.json" }, () => {
  const schema = JSON.parse(readFileSync(SCHEMA, "utf8"));
  assert.deepEqual([...REQUIRED].sort(), [...schema.required].sort());
  assert.equal(schema.properties.format.const, FORMAT);
  assert.deepEqual([...FILE_ENTRY_REQUIRED].sort(), [...schema.$defs.FileEntry.required].sort());
  assert.deepEqual([...schema.$defs.GraphIO.required].sort(), ["inputs", "outputs"]);
});

test("the shipped manifest parses, with its optional reports kept", () => {
  const raw = JSON.parse(readFileSync(join(MODEL_DIR, "manifest.json"), "utf8"));
  const model = parseManifest(raw, "shipped");
  assert.equal(model.latentDim, raw.latent_dim);
  assert.ok("fp32" in model.variants);
  assert.equal(model.raw, raw);
});
