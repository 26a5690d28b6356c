// @ts-check
// The browser's Cache Storage for the files whose sha256 the page knows before it fetches them: onnxruntime-web's
// wasm (site.json, written by `edgevae web`) and the model's files (manifest.json). An entry is keyed by its
// sha256, so a changed file is a new key and is fetched again; every read from the cache is hashed and checked
// as a fetch is, and a damaged entry is dropped and fetched again. A second visit then takes from the network
// only what changed (the small manifest.json and site.json are revalidated by the browser's HTTP cache).

import { ModelDirError } from "./manifest.js";
import { sha256Hex } from "./sha256.js";

/** @import { Loader, ReadOptions } from "./vae.js" */
/** @typedef {{file: string, from: "cache" | "network", bytes: number, ms: number}} Fetched How one file was read. */

const PREFIX = "edgevae-file/"; // keys: <site folder>/edgevae-file/<sha256>, never fetched

export class FileCache {
  /** Cache Storage `name`; without one (an insecure context, storage disabled, enabled false) every file is
   * fetched, and still checked.
   * @param {string} name
   * @param {{enabled?: boolean}} [options]
   * @returns {Promise<FileCache>}
   */
  static async open(name, { enabled = true } = {}) {
    let storage = null;
    if (enabled) {
      try { storage = (await globalThis.caches?.open(name)) ?? null; } catch { storage = null; }
    }
    return new FileCache(storage);
  }

  /** @param {Cache | null} storage */
  constructor(storage) {
    this.storage = storage;
    /** @type {Fetched[]} */
    this.log = []; // {file, from: "cache" | "network", bytes, ms}, in the order the files were ready
    /** @type {Set<string>} */
    this._used = new Set();
    /** @type {Promise<void>[]} */
    this._storing = []; // puts in flight
  }

  /** @param {string} sha256 */
  _key(sha256) { return new URL(PREFIX + sha256, globalThis.document?.baseURI ?? globalThis.location?.href).href; }

  /**
   * The bytes of `file`, whose size and sha256 are known: from the cache when an entry matches both, else from
   * fetchBytes(), stored when they match. Bytes that do not match call fail(message), which must throw.
   * @param {string} file
   * @param {{sha256: string, bytes: number}} expected
   * @param {() => Promise<Uint8Array>} fetchBytes
   * @param {(message: string) => never} fail
   * @returns {Promise<Uint8Array>}
   */
  async get(file, { sha256, bytes }, fetchBytes, fail) {
    const t0 = performance.now();
    const key = this._key(sha256);
    this._used.add(key);
    /** @param {Uint8Array} data */
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
      // (the cast: fetched bytes never sit in a SharedArrayBuffer, which Response refuses)
      this._storing.push(this.storage.put(key, new Response(/** @type {Uint8Array<ArrayBuffer>} */ (data), { headers: { "content-type": "application/octet-stream" } })).catch(() => {}));
    }
    this.log.push({ file, from: "network", bytes, ms: performance.now() - t0 });
    return data;
  }

  /** Once every entry is stored, delete this site's entries that this page did not use (files of an earlier
   * model or onnxruntime-web).
   * @returns {Promise<number>} how many were deleted
   */
  async prune() {
    if (!this.storage) return 0;
    await Promise.all(this._storing);
    const mine = this._key("");
    const stale = (await this.storage.keys()).filter((r) => r.url.startsWith(mine) && !this._used.has(r.url));
    await Promise.all(stale.map((r) => this.storage.delete(r)));
    return stale.length;
  }
}

/**
 * A loader (vae.js) that reads through the cache the files whose sha256 the runtime passes, else from `source`.
 * @param {Loader} source
 * @param {FileCache} cache
 * @returns {Loader}
 */
export function cachedSource(source, cache) {
  return {
    where: source.where,
    /** @param {string} name @param {ReadOptions} [options] */
    read(name, options = /** @type {ReadOptions} */ ({})) {
      const { sha256, exact } = options;
      if (sha256 === undefined || exact === undefined) return source.read(name, options);
      return cache.get(name, { sha256, bytes: exact }, () => source.read(name, options), (message) => {
        throw new ModelDirError(`${source.where}: ${message}`);
      });
    },
  };
}
