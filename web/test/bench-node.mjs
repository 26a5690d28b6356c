// Median decode latency in onnxruntime-node, per variant (fp32 and int8, those the dir has) and batch size
// (benchmarks/web_latency.py, web/test/bench_any_vae.py). Latents: seeded normals of the model's latent shape.
//   node web/test/bench-node.mjs MODEL_DIR [THREADS] [BATCHxREPEATS,...]   (default 1x31,64x9)
//   -> JSON {runtime, ms: {variant: {batch: ms}}}
import { EdgeVAE, Generator, tensor } from "../edgevae.js";

const [dir, threads, batches = "1x31,64x9"] = process.argv.slice(2);
const ms = {}, options = threads ? { threads: Number(threads) } : {};
let runtime = null;
const { model } = await EdgeVAE.load(dir, { ...options, variant: "fp32", lazy: true });
for (const variant of ["fp32", "int8"].filter((v) => v in model.variants)) {
  const vae = await EdgeVAE.load(dir, { ...options, variant });
  runtime = vae.runtime;
  ms[variant] = {};
  for (const [n, reps] of batches.split(",").map((b) => b.split("x").map(Number))) {
    const z = tensor(new Generator(0).normals(n * vae.latentDim), [n, ...vae.latentShape]);
    await vae.decode(z);
    const times = [];
    for (let r = 0; r < reps; r++) { const t0 = performance.now(); await vae.decode(z); times.push(performance.now() - t0); }
    ms[variant][n] = times.sort((a, b) => a - b)[(reps - 1) >> 1];
  }
  await vae.release();
}
console.log(JSON.stringify({ runtime, ms }));
