// @ts-check
// Loaders (vae.js) for browsers and Node: a model dir in a folder (Node, fs) or at a URL (fetch). Either way
// only plain names the manifest lists are read and the size is checked against the manifest before the body
// is taken; vae.js checks the sha256 before the bytes go anywhere else.

import { ModelDirError, escape, isPlainName } from "./manifest.js";

/** @import { Loader, ReadOptions } from "./vae.js" */

/** True in Node.js (not in a browser, even one with a `process` stand-in). */
export const IS_NODE = typeof process === "object" && !!process.versions?.node && typeof window === "undefined";

/** @param {unknown} dir */
function isUrl(dir) {
  return dir instanceof URL || (typeof dir === "string" && /^(https?|file|blob):/i.test(dir)) || (!IS_NODE && typeof dir === "string");
}

/**
 * A loader for the folder `dir`: {where, read(name, {maxBytes, exact})} returning a Uint8Array.
 * `dir`: a URL (string or URL; relative strings resolve against the page in a browser) or, in Node, a path.
 * what: how messages name the folder.
 * @param {string | URL} dir
 * @param {string} [what]
 * @returns {Promise<Loader & {where: string}>}
 */
export async function openSource(dir, what = "model dir") {
  if (isUrl(dir)) return urlSource(dir, what);
  if (typeof dir !== "string") throw new ModelDirError(`${what} must be a path or URL string, got ${typeof dir}`);
  return fsSource(dir, what);
}

/** @param {string} where @param {string} name */
function checkName(where, name) {
  if (!isPlainName(name)) throw new ModelDirError(`${where}: ${escape(JSON.stringify(name))} is not a plain file name inside the dir`);
}

/**
 * @param {string} where
 * @param {string} name
 * @param {number} size
 * @param {number} maxBytes
 * @param {number} [exact]
 */
function checkSize(where, name, size, maxBytes, exact) {
  if (exact !== undefined && size !== exact) throw new ModelDirError(`${where}: ${escape(name)} is ${size} bytes, the manifest says ${exact}`);
  if (size > maxBytes) throw new ModelDirError(`${where}: ${escape(name)} is ${size} bytes, more than the ${maxBytes} allowed`);
}

/** @param {string | URL} dir @param {string} what @returns {Loader & {where: string}} */
function urlSource(dir, what) {
  const base = new URL(String(dir).endsWith("/") ? String(dir) : String(dir) + "/",
    typeof document !== "undefined" ? document.baseURI : undefined);
  const where = `${what} ${escape(base.href)}`;
  return {
    where,
    /** @param {string} name @param {Partial<ReadOptions>} [options] */
    async read(name, { maxBytes, exact } = {}) {
      checkName(where, name);
      const url = new URL(encodeURIComponent(name), base);
      let response;
      try {
        response = await fetch(url, { redirect: "error", credentials: "same-origin" });
      } catch (err) {
        throw new ModelDirError(`${where}: cannot reach ${escape(url.href)} (${err?.message ?? err})`);
      }
      if (!response.ok) {
        throw new ModelDirError(`${where}: cannot fetch ${escape(name)} (HTTP ${response.status}${name === "manifest.json" ? ": not an edgevae model dir?" : ""})`);
      }
      const declared = response.headers.get("content-length");
      if (declared !== null && !response.headers.get("content-encoding")) checkSize(where, name, Number(declared), maxBytes, exact);
      const bytes = new Uint8Array(await response.arrayBuffer());
      checkSize(where, name, bytes.byteLength, maxBytes, exact);
      return bytes;
    },
  };
}

/** @param {string} dir @param {string} what @returns {Promise<Loader & {where: string}>} */
async function fsSource(dir, what) {
  const fs = await import("node:fs");
  const path = await import("node:path");
  const where = `${what} ${escape(dir)}`;
  let info;
  try { info = await fs.promises.stat(dir); } catch { info = null; }
  if (!info?.isDirectory()) throw new ModelDirError(`${where}: does not exist or is not a folder`);
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  return {
    where,
    /** @param {string} name @param {Partial<ReadOptions>} [options] */
    async read(name, { maxBytes, exact } = {}) {
      checkName(where, name);
      let handle;
      try {
        // O_NOFOLLOW: a symbolic link is refused (ELOOP); O_NONBLOCK: a FIFO cannot hang the open.
        handle = await fs.promises.open(path.join(dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      } catch (err) {
        if (err.code === "ENOENT") throw new ModelDirError(`${where}: ${escape(name)} is missing${name === "manifest.json" ? " (not an edgevae model dir)" : ""}`);
        if (err.code === "ELOOP") throw new ModelDirError(`${where}: ${escape(name)} is a symbolic link; only regular files inside the dir are read`);
        throw new ModelDirError(`${where}: cannot read ${escape(name)} (${err.code ?? err.message})`);
      }
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) throw new ModelDirError(`${where}: ${escape(name)} is not a regular file`);
        checkSize(where, name, stat.size, maxBytes, exact);
        const bytes = new Uint8Array(stat.size);
        let done = 0;
        while (done < stat.size) {
          const { bytesRead } = await handle.read(bytes, done, stat.size - done, done);
          if (bytesRead === 0) throw new ModelDirError(`${where}: ${escape(name)} changed size while being read`);
          done += bytesRead;
        }
        return bytes;
      } finally {
        await handle.close();
      }
    },
  };
}
