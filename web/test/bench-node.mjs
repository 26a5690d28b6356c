// Median decode latency in onnxruntime-node, per variant at batch 1 and 64 (benchmarks/web_latency.py).
//   node web/test/bench-node.mjs MODEL_DIR [THREADS]   -> JSON {runtime, ms: {variant: {1: ms, 64: ms}}}
import { EdgeVAE } from "../edgevae.js";

const [dir, threads] = process.argv.slice(2);
const ms = {};
let runtime = null;
for (const variant of ["fp32", "int8"]) {
  const vae = await EdgeVAE.load(dir, { variant, ...(threads ? { threads: Number(threads) } : {}) });
  runtime = vae.runtime;
  ms[variant] = {};
  for (const [n, reps] of [[1, 31], [64, 9]]) {
    const z = vae.sampleLatents(n, 0);
    await vae.decode(z);
    const times = [];
    for (let r = 0; r < reps; r++) { const t0 = performance.now(); await vae.decode(z); times.push(performance.now() - t0); }
    ms[variant][n] = times.sort((a, b) => a - b)[(reps - 1) / 2];
  }
  await vae.release();
}
console.log(JSON.stringify({ runtime, ms }));
