#!/usr/bin/env node
// @ts-check
// `edgevae verify` for the JavaScript runtime in Node: the model dir's goldens through onnxruntime-node.
//   node web/verify-cli.mjs MODEL_DIR [--variant all|V] [--threads T]
// Prints a table; exit 0 when every output is within its tolerance, 1 when any is not, 2 (one line on stderr)
// when the dir or an argument is bad.
import { EdgeVAE } from "./edgevae.js";
import { ALL, formatChecks, verifyGoldens } from "./verify.js";

const USAGE = "usage: node verify-cli.mjs MODEL_DIR [--variant all|V] [--threads T]";

/**
 * @param {string[]} argv
 * @returns {{dir: string, variant: string, threads: number | undefined}}
 */
function parseArgs(argv) {
  const args = { dir: null, variant: ALL, threads: undefined };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--variant" && i + 1 < argv.length) args.variant = argv[++i];
    else if (argv[i] === "--threads" && i + 1 < argv.length) args.threads = Number(argv[++i]);
    else if (!argv[i].startsWith("--") && args.dir === null) args.dir = argv[i];
    else throw new Error(`unexpected argument ${JSON.stringify(argv[i])} (${USAGE})`);
  }
  if (args.dir === null) throw new Error(USAGE);
  return args;
}

try {
  const args = parseArgs(process.argv.slice(2));
  const vae = await EdgeVAE.load(args.dir, { variant: args.variant === ALL ? "auto" : args.variant, threads: args.threads });
  const checks = await verifyGoldens(vae, { variant: args.variant });
  console.log(formatChecks(checks));
  await vae.release();
  process.exitCode = checks.every((c) => c.passed) ? 0 : 1;
} catch (err) {
  process.stderr.write(`verify-cli: error: ${String(err?.message ?? err).split("\n")[0]}\n`);
  process.exitCode = 2;
}
