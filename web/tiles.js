// @ts-check
// Tiled decode of a fully convolutional model: the Python runtime's rule (runtime/inference/vae.py decode_tiled,
// _tile_starts, _ramp) step by step in float32, so that both runtimes cut the same tiles, weight them the same
// way and sum them in the same order: given the same tile outputs their results are equal bit for bit.

/** @import { Tensor32 } from "./checks.js" */

export const DEFAULT_TILE = 32; // latent pixels a side (vae.py's DEFAULT_TILE: a 256 x 256 image at downsampling 8)
const f = Math.fround;

/**
 * Start positions of tiles of `tile` covering [0, length) with at least `overlap` in common; the last flush with the end.
 * @param {number} length
 * @param {number} tile
 * @param {number} overlap smaller than tile
 * @returns {number[]}
 */
export function tileStarts(length, tile, overlap) {
  if (length <= tile) return [0];
  const starts = [];
  for (let start = 0; start < length - tile; start += tile - overlap) starts.push(start);
  return [...starts, length - tile];
}

/**
 * One tile's blending weight along one axis, in output pixels: 0 over `margin` latent pixels at each side shared
 * with a neighbour, then a linear ramp to 1 across the rest of the overlap.
 * @param {number} start the tile's first latent pixel
 * @param {number} size its latent pixels along this axis
 * @param {number} length the latent's along this axis
 * @param {number} overlap
 * @param {number} margin
 * @param {number} factor the downsampling factor
 * @returns {Float32Array}
 */
export function ramp(start, size, length, overlap, margin, factor) {
  const count = size * factor, span = Math.max(1, (overlap - 2 * margin) * factor), skip = margin * factor;
  const weight = new Float32Array(count).fill(1);
  const clip = (v) => Math.min(1, Math.max(0, v));
  for (let i = 0; i < count; i++) {
    if (start > 0) weight[i] = Math.min(weight[i], clip(f(f(i + 0.5 - skip) / span)));
    if (start + size < length) weight[i] = Math.min(weight[i], clip(f(f(count - 1 - i + 0.5 - skip) / span)));
  }
  return weight;
}

/**
 * Blend decoded tiles of graph latents z [N, C', h, w] into images [N, C, f h, f w]: each tile's image times its
 * weights summed into the output, the weights summed alike, then the output divided by them.
 * @param {Tensor32} z the graph's latents
 * @param {{tile: number, overlap: number, margin: number, factor: number, channels: number}} plan
 * @param {(part: Tensor32) => Promise<Float32Array>} decode a tile's images in [0, 1], [N, C, f th, f tw]
 * @returns {Promise<Tensor32>}
 */
export async function decodeTiles(z, { tile, overlap, margin, factor, channels }, decode) {
  const [n, latentC, h, w] = z.dims, H = h * factor, W = w * factor;
  const out = new Float32Array(n * channels * H * W), total = new Float32Array(H * W);
  for (const top of tileStarts(h, tile, overlap)) {
    for (const left of tileStarts(w, tile, overlap)) {
      const th = Math.min(tile, h - top), tw = Math.min(tile, w - left);
      const part = new Float32Array(n * latentC * th * tw);
      for (let plane = 0; plane < n * latentC; plane++) {
        for (let r = 0; r < th; r++) {
          const from = (plane * h + top + r) * w + left;
          part.set(z.data.subarray(from, from + tw), (plane * th + r) * tw);
        }
      }
      const image = await decode({ data: part, dims: [n, latentC, th, tw] });
      const rows = ramp(top, th, h, overlap, margin, factor), cols = ramp(left, tw, w, overlap, margin, factor);
      const TH = th * factor, TW = tw * factor, y0 = top * factor, x0 = left * factor;
      for (let y = 0; y < TH; y++) {
        for (let x = 0; x < TW; x++) {
          const weight = f(rows[y] * cols[x]), at = (y0 + y) * W + x0 + x;
          for (let plane = 0; plane < n * channels; plane++) {
            out[plane * H * W + at] = f(out[plane * H * W + at] + f(weight * image[(plane * TH + y) * TW + x]));
          }
          total[at] = f(total[at] + weight);
        }
      }
    }
  }
  for (let plane = 0; plane < n * channels; plane++) {
    for (let at = 0; at < H * W; at++) out[plane * H * W + at] = f(out[plane * H * W + at] / total[at]);
  }
  return { data: out, dims: [n, channels, H, W] };
}
