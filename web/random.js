// @ts-check
// Seeded standard normal draws that are the same on every run of every JavaScript engine we test
// (V8 in Node and Chromium). The generator: splitmix64 (Steele, Lea & Flood 2014) expands the seed into
// the 128-bit state of xoshiro128** (Blackman & Vigna 2018); two 32-bit outputs make one 53-bit uniform;
// the Box-Muller transform turns two uniforms into two normals (z0 = r cos t, z1 = r sin t), rounded to
// float32. This is NOT numpy's stream: cross-language parity is checked on given latents instead.
// Math.log/cos/sin are V8's fdlibm ports; another engine may differ in the last bit of a float64, which
// float32 rounding almost always hides.

import { InputError } from "./manifest.js";

const MASK64 = (1n << 64n) - 1n;

/**
 * @param {bigint} state
 * @returns {[bigint, bigint]}
 */
function splitmix64(state) {
  // returns [next state, output]; BigInt keeps all 64 bits (this runs 2 times per generator)
  const s = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [s, z ^ (z >> 31n)];
}

/**
 * A seed as a non-negative safe integer, or a fresh one from crypto when seed is undefined/null.
 * @param {unknown} seed
 * @returns {number}
 */
export function checkSeed(seed) {
  if (seed === undefined || seed === null) {
    // Math.random: seeds fresh draws only (no secret rides on them), and exists in every engine
    return Math.floor(Math.random() * 2 ** 53);
  }
  if (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0) {
    throw new InputError(`seed must be an integer in [0, 2^53), got ${String(seed).slice(0, 40)}`);
  }
  return seed;
}

/** xoshiro128** seeded by splitmix64(seed): .next32() unsigned 32-bit, .uniform() in [0, 1), .normal(). */
export class Generator {
  /** @param {number | null} [seed] undefined/null: fresh entropy */
  constructor(seed) {
    let state = BigInt(checkSeed(seed));
    const s = new Uint32Array(4);
    for (let i = 0; i < 2; i++) {
      let out;
      [state, out] = splitmix64(state);
      s[2 * i] = Number(out & 0xffffffffn);
      s[2 * i + 1] = Number(out >> 32n);
    }
    if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 1; // the all-zero state is a fixed point
    this.s = s;
    /** @type {number | null} */
    this.spare = null; // Box-Muller makes normals in pairs
  }

  /** @returns {number} */
  next32() {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** @returns {number} */
  uniform() { // 53 random bits, as numpy and most libraries build a double
    return ((this.next32() >>> 5) * 67108864 + (this.next32() >>> 6)) / 9007199254740992;
  }

  /** @returns {number} */
  normal() {
    if (this.spare !== null) { const z = this.spare; this.spare = null; return z; }
    const u1 = 1 - this.uniform(); // (0, 1]: log(u1) is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /**
   * A Float32Array of n standard normal draws.
   * @param {number} n
   * @returns {Float32Array}
   */
  normals(n) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}

/** @param {number} x @param {number} k */
function rotl(x, k) { return (x << k) | (x >>> (32 - k)); }
