"""Issue 23's family table: each VAE family through every command a user runs on it, as that user would run them
(the CLI, one process per step), one row per family and one cell per step: what it reported, or the one line it
ended with. Figures that need a quiet machine (speedups) are benchmarks/any_vae.py's; this says what works.

    python -m edgevae.benchmarks.any_vae_matrix --out OUT [--families seed,mlp,resnet,kl,tiny]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FAMILIES = ("seed", "mlp", "resnet", "kl", "tiny")
TORCH_FACTORIES = {"seed": "seed_decoder", "mlp": "mlp_decoder", "resnet": "resnet_decoder", "kl": "diffusers_kl",
                   "tiny": "diffusers_tiny"}  # benchmarks/any_vae_models.py: the module each family was exported from
STEP_TIMEOUT_S = 900
ROOT = Path(__file__).resolve().parents[1]


def run_step(*args: str, cwd: Path) -> dict:
    """One `python -m edgevae ...` (or other) command: exit status, seconds, and its last output line."""
    command = [sys.executable, "-m", "edgevae", *args] if args[0] != "node" else list(args)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
        rc, output = done.returncode, (done.stdout + done.stderr).strip()
    except subprocess.TimeoutExpired:
        rc, output = "timeout", f"no answer in {STEP_TIMEOUT_S} s"
    lines = output.replace("\r", "\n").splitlines()  # progress bars redraw with \r
    return {"rc": rc, "s": round(time.perf_counter() - start, 1), "line": lines[-1][:300] if lines else ""}


def export(name: str, out: Path) -> tuple[Path, dict]:
    """The family's model dir: diffusers folders through `edgevae export --diffusers`, the others through the
    Python API (a user's own module has no command)."""
    folder = out / name
    if name in ("kl", "tiny"):
        from edgevae.benchmarks import any_vae_models as models

        source = out / f"{name}-src"
        (models.diffusers_kl() if name == "kl" else models.diffusers_tiny()).save_pretrained(source)
        return folder, run_step("export", "--diffusers", str(source), "--image-size", "32x32", "--out", str(folder),
                                "--force", cwd=out)
    from edgevae.benchmarks.any_vae import export_family

    start = time.perf_counter()
    export_family(name, out)
    return folder, {"rc": 0, "s": round(time.perf_counter() - start, 1), "line": "export_vae / export_model_dir"}


def family_row(name: str, out: Path) -> dict:
    from edgevae.runtime.contract.manifest import load

    folder, row = None, {"family": name}
    folder, row["export"] = export(name, out)
    if row["export"]["rc"] != 0:
        return row
    model = load(folder)
    parity = model.manifest.parity
    row["parity"] = {"max_abs_diff": max(d for rows in parity.max_abs_diff.values() for outs in rows.values()
                                         for d in outs.values()), "tolerance": parity.tolerance}
    rng = np.random.default_rng(0)
    np.save(out / f"{name}-z.npy", rng.standard_normal((4, *model.latent_shape)).astype(np.float32))
    np.save(out / f"{name}-x.npy", rng.random((4, *model.image_shape), dtype=np.float32))
    small = ("--calibration-images", "64", "--test-images", "64", "--nll-images", "0")
    row["int8"] = run_step("quantize", str(folder), "--variants", "int8", *small, cwd=out)
    row["search"] = run_step("quantize", str(folder), "--variants", "int8", *small, "--search", "--min-speedup", "1",
                             "--search-budget-s", "120", cwd=out)
    quality = load(folder).manifest.quality
    row["quality"] = {v: {"decoder_psnr_db": q.decoder_psnr_db} for v, q in quality.items()}
    model_flag = ("--model", str(folder))
    row["decode"] = run_step("decode", *model_flag, "--latents", str(out / f"{name}-z.npy"), "--out",
                             str(out / f"{name}-decoded.npy"), cwd=out)
    row["sample"] = run_step("sample", *model_flag, "--n", "4", "--out", str(out / f"{name}-sample.png"), cwd=out)
    row["reconstruct"] = run_step("reconstruct", *model_flag, "--input", str(out / f"{name}-x.npy"), "--out",
                                  str(out / f"{name}-reconstruct.png"), cwd=out)
    row["verify"] = run_step("verify", *model_flag, cwd=out)
    row["tune"] = run_step("tune", *model_flag, "--in-model-dir", cwd=out)  # the default budget, as a user runs it
    row["bench"] = run_step("bench", *model_flag, "--quick", "--torch", f"edgevae.benchmarks.any_vae_models:{TORCH_FACTORIES[name]}",
                            "--out", str(out / f"{name}-bench"), cwd=out)
    row["web"] = run_step("web", *model_flag, "--out", str(out / f"{name}-site"), cwd=out)
    row["web_goldens"] = run_step("node", str(ROOT / "web" / "verify-cli.mjs"), str(folder), cwd=ROOT / "web")
    return row


def cell(step: dict) -> str:
    return ("ok" if step["rc"] == 0 else f"exit {step['rc']}") + f" ({step['s']} s): {step['line']}"


def markdown(rows: list) -> str:
    steps = ("export", "int8", "search", "decode", "sample", "reconstruct", "verify", "tune", "bench", "web", "web_goldens")
    lines = [f"## {row['family']}\n" + "\n".join(f"- {s}: {cell(row[s])}" for s in steps if s in row)
             + (f"\n- parity: {row['parity']}\n- quality: {row['quality']}" if "parity" in row else "") for row in rows]
    return "\n\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edgevae.benchmarks.any_vae_matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for family in (f for f in args.families.split(",") if f):
        rows.append(family_row(family, args.out))
        (args.out / "matrix.json").write_text(json.dumps(rows, indent=1))  # kept as it goes
        (args.out / "matrix.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
