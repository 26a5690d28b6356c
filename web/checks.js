// @ts-check
// Checks of what callers hand the runtime, the same as the Python runtime's (runtime/inference/checks.py): each
// returns a Float32Array ready for onnxruntime or throws InputError naming the argument and the bad value.
// A batch is {data, dims}: data a Float32Array, Float64Array or Array of numbers in row-major order, dims
// its shape (an onnxruntime Tensor qualifies).

import { InputError } from "./manifest.js";

const FLOAT_ARRAYS = [Float32Array, Float64Array];

/**
 * @typedef {object} Batch A batch as callers give it: `data` in row-major order, `dims` its shape.
 * @property {Float32Array | Float64Array | number[]} data
 * @property {readonly number[]} dims
 */
/**
 * @typedef {object} Tensor32 A batch as the runtime returns it.
 * @property {Float32Array} data
 * @property {number[]} dims
 */

/**
 * A {data, dims} batch (the shape every method takes and returns).
 * @template {Float32Array | Float64Array | number[]} T
 * @param {T} data
 * @param {Iterable<number>} dims
 * @returns {{data: T, dims: number[]}}
 */
export function tensor(data, dims) { return { data, dims: [...dims] }; }

/**
 * @param {string} name
 * @param {Batch} value
 * @returns {Float32Array}
 */
function asFloat32(name, value) {
  if (value === null || typeof value !== "object" || !("data" in value) || !Array.isArray(value.dims)) {
    throw new InputError(`${name} must be a {data, dims} batch, got ${value === null ? "null" : typeof value}`);
  }
  const { data, dims } = value;
  if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(`${name}.dims must be non-negative integers, got ${JSON.stringify(dims).slice(0, 60)}`);
  }
  if (ArrayBuffer.isView(data) && !FLOAT_ARRAYS.some((T) => data instanceof T)) {
    const hint = data instanceof Uint8Array || data instanceof Uint8ClampedArray ? " (divide uint8 pixels by 255)" : "";
    throw new InputError(`${name} must hold floating point numbers, got ${data.constructor.name}${hint}`);
  }
  if (!ArrayBuffer.isView(data) && !Array.isArray(data)) {
    throw new InputError(`${name}.data must be a Float32Array, Float64Array or Array of numbers, got ${typeof data}`);
  }
  const size = dims.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new InputError(`${name} has ${data.length} values but dims ${JSON.stringify(dims)} need ${size}`);
  }
  if (Array.isArray(data)) {
    const bad = data.findIndex((v) => typeof v !== "number");
    if (bad >= 0) throw new InputError(`${name} must hold numbers, got ${typeof data[bad]} at flat index ${bad}`);
  }
  // A float64 beyond float32's range becomes inf here, and checkFinite names it (as numpy's cast does).
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

function unravel(index, dims) {
  const out = [];
  for (let i = dims.length - 1; i >= 0; i--) { out.unshift(index % dims[i]); index = Math.floor(index / dims[i]); }
  return out;
}

/**
 * InputError unless every value of data is finite.
 * @param {string} name
 * @param {ArrayLike<number>} data
 * @param {readonly number[]} dims its shape, for the index in the message
 */
export function checkFinite(name, data, dims) {
  let count = 0, first = -1;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) { count++; if (first < 0) first = i; }
  }
  if (count) throw new InputError(`${name} holds ${count} NaN/inf value(s), first at index ${JSON.stringify(unravel(first, dims))}`);
}

function checkBatch(name, dims, tail, tailText) {
  if (dims.length !== 1 + tail.length || dims.slice(1).some((d, i) => d !== tail[i])) {
    throw new InputError(`${name} must have shape ${tailText}, got ${JSON.stringify(dims)}`);
  }
  if (dims[0] === 0) throw new InputError(`${name} is an empty batch (shape ${JSON.stringify(dims)})`);
}

/**
 * x as {data: Float32Array, dims: [N,C,H,W]} with N >= 1, finite, every value in [0, 1]. multipleOf: a fully
 * convolutional model's downsampling factor; H and W may then be any positive multiple of it.
 * @param {Batch} x
 * @param {readonly number[]} imageShape [C, H, W]
 * @param {string} [name]
 * @param {number | null} [multipleOf]
 * @returns {Tensor32}
 */
export function checkImages(x, imageShape, name = "x", multipleOf = null) {
  const data = asFloat32(name, x);
  const dims = x.dims;
  if (multipleOf !== null && dims.length === 4 && dims[1] === imageShape[0] && Math.min(dims[2], dims[3]) >= 1) {
    if (dims[2] % multipleOf || dims[3] % multipleOf) {
      throw new InputError(`${name} has H x W ${dims[2]} x ${dims[3]}; this model takes multiples of ${multipleOf}`);
    }
    imageShape = dims.slice(1);
  }
  checkBatch(name, dims, imageShape, `[N, ${imageShape.join(", ")}]`);
  checkFinite(name, data, dims);
  let low = Infinity, high = -Infinity;
  for (const v of data) { if (v < low) low = v; if (v > high) high = v; }
  if (low < 0 || high > 1) throw new InputError(`${name} must hold pixel values in [0, 1], got values in [${low}, ${high}]`);
  return { data, dims: [...dims] };
}

/**
 * z as {data: Float32Array, dims: [N, ...latent]} with N >= 1 and latent the model's latent shape ([D] or
 * [C, h, w]; a number D: [D]), finite. anySize: a fully convolutional model's [C, h, w], whose h and w may be any
 * positive sizes.
 * @param {Batch} z
 * @param {number | readonly number[]} latentShape
 * @param {string} [name]
 * @param {boolean} [anySize]
 * @returns {Tensor32}
 */
export function checkLatents(z, latentShape, name = "z", anySize = false) {
  const data = asFloat32(name, z);
  let latent = typeof latentShape === "number" ? [latentShape] : [...latentShape];
  const dims = z.dims;
  if (anySize && dims.length === 1 + latent.length && dims[1] === latent[0] && Math.min(...dims.slice(2)) >= 1) latent = dims.slice(1);
  const text = anySize ? `[N, C, h, w] with C = ${latent[0]}` : `[N, ${latent.join(", ")}]`;
  const model = latent.length === 1 ? `the model's latent_dim is ${latent[0]}` : `the model's latent is [${latent.join(", ")}]`;
  checkBatch(name, dims, latent, `${text} (${model})`);
  checkFinite(name, data, dims);
  return { data, dims: [...dims] };
}

/**
 * value as an integer >= minimum (booleans, floats and strings refused).
 * @param {string} name
 * @param {unknown} value
 * @param {number} [minimum]
 * @returns {number}
 */
export function checkCount(name, value, minimum = 1) {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new InputError(`${name} must be an integer, got ${String(value).slice(0, 40)}`);
  }
  if (value < minimum) throw new InputError(`${name} must be >= ${minimum}, got ${value}`);
  return value;
}
