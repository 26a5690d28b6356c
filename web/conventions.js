// @ts-check
// A model's declared conventions (manifest.js Conventions) as maps over Float32Arrays: the Python runtime's
// (runtime/contract/conventions.py, and VAERuntime's _to_graph_latent / _from_graph_latent in
// runtime/inference/vae.py) done in the same float32 steps (Math.fround after each operation numpy does in float32),
// so both runtimes turn the same graph outputs into the same values.

/** @import { Conventions } from "./manifest.js" */

const f = Math.fround;

/**
 * Images in [0, 1] -> the encoder's pixel range (data itself for [0, 1]).
 * @param {Float32Array} data
 * @param {Conventions} c
 * @returns {Float32Array}
 */
export function toPixels(data, c) {
  const [low, high] = c.pixelRange;
  if (low === 0 && high === 1) return data;
  const out = new Float32Array(data.length), span = f(high - low);
  for (let i = 0; i < data.length; i++) out[i] = f(low + f(span * data[i]));
  return out;
}

/**
 * The decoder's x_hat (finite) -> images in [0, 1], in place: Bernoulli means as they are, the sigmoid of logits,
 * a Gaussian mean or an image mapped from the pixel range and clipped.
 * @param {Float32Array} y
 * @param {Conventions} c
 * @returns {Float32Array}
 */
export function toUnit(y, c) {
  if (c.decoderHead === "bernoulli_means") return y;
  if (c.decoderHead === "bernoulli_logits") {
    for (let i = 0; i < y.length; i++) y[i] = f(1 / f(1 + f(Math.exp(-y[i])))); // exp overflows to inf for y << 0: mean 0
    return y;
  }
  const [low, high] = c.pixelRange, span = f(high - low);
  for (let i = 0; i < y.length; i++) y[i] = Math.min(1, Math.max(0, f(f(y[i] - low) / span)));
  return y;
}

/** @param {Conventions} c */
const identity = (c) => c.latentScale === 1 && c.latentShift === 0;

/**
 * Latents in the model's convention -> the decoder's input: z / latent_scale + latent_shift (data itself when 1 and 0).
 * @param {Float32Array} z
 * @param {Conventions} c
 * @returns {Float32Array}
 */
export function toGraphLatent(z, c) {
  if (identity(c)) return z;
  const scale = f(c.latentScale), shift = f(c.latentShift), out = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) out[i] = f(f(z[i] / scale) + shift);
  return out;
}

/**
 * The encoder's (mu, logvar) -> the model's convention: (mu - shift) x scale, logvar + 2 ln scale (logvar null for a
 * deterministic encoder).
 * @param {Float32Array} mu
 * @param {Float32Array | null} logvar
 * @param {Conventions} c
 * @returns {[Float32Array, Float32Array | null]}
 */
export function fromGraphLatent(mu, logvar, c) {
  if (identity(c)) return [mu, logvar];
  const scale = f(c.latentScale), shift = f(c.latentShift), twoLog = f(2 * Math.log(c.latentScale));
  const m = new Float32Array(mu.length);
  for (let i = 0; i < mu.length; i++) m[i] = f(f(mu[i] - shift) * scale);
  if (logvar === null) return [m, null];
  const lv = new Float32Array(logvar.length);
  for (let i = 0; i < logvar.length; i++) lv[i] = f(logvar[i] + twoLog);
  return [m, lv];
}
