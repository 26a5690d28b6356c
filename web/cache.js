// The browser's Cache Storage for the files whose sha256 the page knows before it fetches them: onnxruntime-web's
// wasm (site.json, written by `edgevae web`) and the model's files (manifest.json). An entry is keyed by its
// sha256, so a changed file is a new key and is fetched again; every read from the cache is hashed and checked
// as a fetch is, and a damaged entry is dropped and fetched again. A second visit then takes from the network
// only what changed (the small manifest.json and site.json are revalidated by the browser's HTTP cache).

import { ModelDirError } from "./manifest.js";
import { sha256Hex } from "./sha256.js";

const PREFIX = "edgevae-file/"; // keys: <site folder>/edgevae-file/<sha256>, never fetched

export class FileCache {
  /** Cache Storage `name`; without one (an insecure context, storage disabled, enabled false) every file is
   * fetched, and still checked. */
  static async open(name, { enabled = true } = {}) {
    let storage = null;
    if (enabled) {
      try { storage = (await globalThis.caches?.open(name)) ?? null; } catch { storage = null; }
    }
    return new FileCache(storage);
  }

  constructor(storage) {
    this.storage = storage;
    this.log = []; // {file, from: "cache" | "network", bytes, ms}, in the order the files were ready
    this._used = new Set();
    this._storing = []; // puts in flight
  }

  _key(sha256) { return new URL(PREFIX + sha256, globalThis.document?.baseURI ?? globalThis.location?.href).href; }

  /**
   * The bytes of `file`, whose size and sha256 are known: from the cache when an entry matches both, else from
   * fetchBytes(), stored when they match. Bytes that do not match call fail(message), which must throw.
   */
  async get(file, { sha256, bytes }, fetchBytes, fail) {
    const t0 = performance.now();
    const key = this._key(sha256);
    this._used.add(key);
    const matches = async (data) => data.byteLength === bytes && await sha256Hex(data) === sha256;
    if (this.storage) {
      let data = null;
      try {
        const hit = await this.storage.match(key);
        data = hit ? new Uint8Array(await hit.arrayBuffer()) : null;
      } catch { data = null; } // storage refused: fetch instead
      if (data && await matches(data)) {
        this.log.push({ file, from: "cache", bytes, ms: performance.now() - t0 });
        return data;
      }
      if (data) await this.storage.delete(key).catch(() => {}); // damaged entry: fetched again below
    }
    const data = await fetchBytes();
    if (!(await matches(data))) fail(`${file} does not match its sha256 (file changed or corrupt)`);
    if (this.storage) {
      // stored while the bytes are used (prune() waits for it); a full disk only costs the next visit a fetch
      this._storing.push(this.storage.put(key, new Response(data, { headers: { "content-type": "application/octet-stream" } })).catch(() => {}));
    }
    this.log.push({ file, from: "network", bytes, ms: performance.now() - t0 });
    return data;
  }

  /** Once every entry is stored, delete this site's entries that this page did not use (files of an earlier
   * model or onnxruntime-web). */
  async prune() {
    if (!this.storage) return 0;
    await Promise.all(this._storing);
    const mine = this._key("");
    const stale = (await this.storage.keys()).filter((r) => r.url.startsWith(mine) && !this._used.has(r.url));
    await Promise.all(stale.map((r) => this.storage.delete(r)));
    return stale.length;
  }
}

/** A loader (vae.js) that reads through the cache the files whose sha256 the runtime passes, else from `source`. */
export function cachedSource(source, cache) {
  return {
    where: source.where,
    read(name, options = {}) {
      const { sha256, exact } = options;
      if (sha256 === undefined || exact === undefined) return source.read(name, options);
      return cache.get(name, { sha256, bytes: exact }, () => source.read(name, options), (message) => {
        throw new ModelDirError(`${source.where}: ${message}`);
      });
    },
  };
}
