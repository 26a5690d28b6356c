// @ts-check
// Backends of the JavaScript runtime (vae.js): an onnxruntime module with the session options of one execution
// provider. `auto` times every variant on every backend it is given (auto.js).

/**
 * @typedef {object} Backend An onnxruntime module with one execution provider's session options.
 * @property {string} name what `auto` and messages call it ("cpu", "wasm", "webgpu", ...)
 * @property {any} ort the onnxruntime module, or a function that imports it (then called on first use)
 * @property {object} options its InferenceSession options
 * @property {string} [describe] a label for measured choices (which onnxruntime, provider, threads)
 * @property {number} [threads]
 * @property {(module: any) => void} [prepare] called once with the loaded module, before its first session
 */
/** @typedef {{variant: string, backend: string}} Candidate A variant run on a backend (by name). */

/**
 * The backend an onnxruntime module gives by itself: onnxruntime-web's wasm provider, or the CPU provider of
 * onnxruntime-node / -react-native with the Python runtime's options (runtime/inference/sessions.py: a sequential chain
 * of convolutions, no spinning threads). A backend is {name, ort, options, describe}: ort the module or a
 * function that imports it on first use, options its session options, describe a label for measured choices.
 * @param {any} ort an onnxruntime module
 * @param {number} [threads] intra-op threads
 * @returns {Backend}
 */
export function defaultBackend(ort, threads) {
  const versions = ort.env?.versions ?? {};
  if (versions.web) return webBackend("wasm", ort, { threads, version: versions.web });
  const platform = versions.node ? `onnxruntime-node ${versions.node}` : versions["react-native"]
    ? `onnxruntime-react-native ${versions["react-native"]}` : `onnxruntime ${versions.common ?? "?"}`;
  return {
    name: "cpu", ort, describe: `${platform} cpu threads=${threads ?? "default"}`,
    options: {
      executionProviders: ["cpu"], graphOptimizationLevel: "all", executionMode: "sequential", logSeverityLevel: 3,
      interOpNumThreads: 1, ...(threads ? { intraOpNumThreads: threads } : {}),
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    },
  };
}

/** onnxruntime-web with one execution provider ("wasm" or "webgpu"). ort: the module, or a function that imports
 * it (then it is loaded when a session first needs it). threads: wasm threads, set before the module starts.
 * @param {string} provider
 * @param {any} ort the module, or a function returning a Promise of it
 * @param {{threads?: number, version?: string, describe?: string}} [options]
 * @returns {Backend}
 */
export function webBackend(provider, ort, { threads, version = "?", describe } = {}) {
  return {
    name: provider, ort, threads, describe: describe ?? `onnxruntime-web ${version} ${provider} threads=${threads ?? "default"}`,
    options: { executionProviders: [provider], graphOptimizationLevel: "all", logSeverityLevel: 3 },
    prepare(module) { // onnxruntime-web reads these once, when its first session starts the wasm module
      module.env.logLevel = "error";
      if (threads !== undefined) module.env.wasm.numThreads = threads;
    },
  };
}

/**
 * "variant@backend": how a candidate is named in timings and messages.
 * @type {(candidate: Candidate) => string}
 */
export const label = ({ variant, backend }) => `${variant}@${backend}`;
