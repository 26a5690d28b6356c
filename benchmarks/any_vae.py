"""Issue 23's table: each VAE family through export, int8 quantize and the runtime, with the int8 decoder's
speedup over fp32 at batch 1 and 8 (1 intra-op thread, interleaved rounds, medians of per-call CPU time) and its
PSNR; and tiled vs whole decode of a 64x64x4 latent to 512x512 with a TAESD-sized decoder (peak RSS, time, max
abs difference), each decode in its own process so that peak RSS is its own.

    python -m edgevae.benchmarks.any_vae --out OUT [--families seed,mlp,resnet,kl,tiny] [--tiled]

Weights are seeded initialisations (benchmarks/any_vae_models.py): speed depends on the architecture, and the int8
error on the value ranges, which a random network of the same layout reproduces only roughly; the quality of a
trained model must be measured on it.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgevae.runtime.inference.random_input import random_input

ROUNDS = 15
BATCHES = (1, 8)


def export_family(name: str, out: Path) -> Path:

    from edgevae.benchmarks import any_vae_models as models
    from edgevae.export.custom import export_vae

    folder = out / name
    if name == "seed":
        from edgevae.export.exporter import export_model_dir

        export_model_dir(models.seed_vae(), folder, force=True)
    elif name == "mlp":
        m = models.mlp_vae()
        export_vae(m.encode, m.decode, folder, image_shape=(1, 28, 28), latent_dim=20, force=True)
    elif name == "resnet":
        m = models.resnet_vae()
        export_vae(m.encoder, m.decoder, folder, image_shape=m.image_shape, latent_shape=m.latent_shape,
                   conventions=m.conventions, force=True)
    else:
        from edgevae.export.diffusers_import import export_diffusers

        vae = models.diffusers_kl() if name == "kl" else models.diffusers_tiny()
        vae.save_pretrained(out / f"{name}-src")
        export_diffusers(out / f"{name}-src", folder, image_size=(32, 32), force=True)
    return folder


def decoder_speed(folder: Path) -> dict:
    """{batch: fp32 ms / int8 ms} of the decoder, 1 thread, per-call CPU time medians over interleaved rounds."""
    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.inference.graph_pair import GraphPair
    from edgevae.runtime.inference.sessions import SessionConfig
    from edgevae.timing import Schedule, interleave, median, thread_clock

    model = load(folder)
    pairs = {v: GraphPair.of_variant(model, v, config=SessionConfig(threads=1)) for v in ("fp32", "int8")}
    schedule = Schedule(min_rounds=ROUNDS, max_rounds=ROUNDS, budget_s=0.0, segment_s=0.0, warmup_calls=0)  # one call a round
    result = {}
    for batch in BATCHES:
        z = random_input(model, "decoder", batch)
        times = interleave({v: pair.call("decoder", z) for v, pair in pairs.items()}, schedule, clock=thread_clock(1)[0])
        fp32, int8 = median(times["fp32"]), median(times["int8"])
        result[batch] = {"fp32_ms": round(1e3 * fp32, 3), "int8_ms": round(1e3 * int8, 3), "speedup": round(fp32 / int8, 2)}
    return result


def family_row(name: str, out: Path) -> dict:
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir
    from edgevae.train.data import DataOverrides
    from edgevae.runtime import VAERuntime

    row, t0 = {"family": name}, time.perf_counter()
    folder = export_family(name, out)
    row["export_s"] = round(time.perf_counter() - t0, 1)
    parity = VAERuntime.load(folder, variant="fp32").model.manifest.parity
    row["parity"] = max(d for rows in parity.max_abs_diff.values() for outs in rows.values() for d in outs.values())
    t0 = time.perf_counter()
    config = QuantizeConfig(variants=("int8",), calibration_images=256, test_images=256, nll_images=0)
    q = quantize_model_dir(folder, config, data=DataOverrides(data="fashion-mnist")).quality["int8"]
    row["quantize_s"] = round(time.perf_counter() - t0, 1)
    row["int8_psnr_db"], row["int8_nats"] = q.decoder_psnr_db, q.test_neg_elbo
    row["decoder"] = decoder_speed(folder)
    rt = VAERuntime.load(folder, variant="int8", threads=1)
    x = random_input(rt.model, "encoder", 2, for_api=True)
    row["reconstruct"] = list(rt.reconstruct(x).shape)
    try:
        row["sample"] = list(rt.sample(2, seed=0).shape)
    except ValueError as err:
        row["sample"] = f"refused: {err}"
    return row


def tiled_child(folder: str, mode: str) -> None:
    """One decode of a 64x64x4 latent in this process; prints JSON with its time and peak RSS."""
    from edgevae.runtime import VAERuntime

    rt = VAERuntime.load(folder, variant="fp32", threads=1)
    z = random_input(rt.model, "decoder", 1, image_hw=rt.model.image_shape_for((64, 64))[1:])  # a 64x64 latent
    start = time.perf_counter()
    tile, _, overlap = mode.partition(":")  # "whole", "T" (default overlap) or "T:O"
    x = rt.decode(z) if mode == "whole" else rt.decode_tiled(z, tile=int(tile), overlap=int(overlap) if overlap else None)
    seconds = time.perf_counter() - start
    np.save(Path(folder).parent / f"tiled-{mode.replace(':', '-')}.npy", x)
    print(json.dumps({"mode": mode, "seconds": round(seconds, 2),
                      "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, Linux): unlike getrusage's ru_maxrss, it is not carried over
    from the parent that forked it (the parent here held torch and the exported model)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def tiled_rows(out: Path) -> list:
    """TAESD's decoder layout (64 channels, 3 blocks per stage), random weights, fp32: whole vs tiled decodes."""
    from edgevae.benchmarks.any_vae_models import diffusers_tiny
    from edgevae.export.diffusers_import import export_diffusers

    diffusers_tiny(channels=64, blocks=3).save_pretrained(out / "taesd-src")
    folder = export_diffusers(out / "taesd-src", out / "taesd", image_size=(64, 64), force=True)
    rows = []
    # TAESD's measured receptive field is ~19 latent pixels: tile 48 with the default overlap (2r) is exact; tile 32
    # with overlap 8 is a user's memory-first choice, blended
    for mode in ("whole", "48", "32:8"):
        done = subprocess.run([sys.executable, "-m", "edgevae.benchmarks.any_vae", "--tiled-child", str(folder), mode],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    whole = np.load(out / "tiled-whole.npy")
    for row in rows[1:]:
        row["max_abs_diff_vs_whole"] = float(np.abs(np.load(out / f"tiled-{row['mode'].replace(':', '-')}.npy") - whole).max())
    from edgevae.runtime.contract.manifest import load

    rows.append({"receptive_field": load(folder).conventions.receptive_field})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edgevae.benchmarks.any_vae", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--families", default="seed,mlp,resnet,kl,tiny")
    parser.add_argument("--tiled", action="store_true", help="also the tiled vs whole decode measurement")
    parser.add_argument("--tiled-child", nargs=2, metavar=("DIR", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiled_child:
        tiled_child(*args.tiled_child)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"families": []}
    for family in (f for f in args.families.split(",") if f):
        result["families"].append(family_row(family, args.out))
        (args.out / "any_vae.json").write_text(json.dumps(result, indent=1))  # kept as it goes
    if args.tiled:
        result["tiled"] = tiled_rows(args.out)
    (args.out / "any_vae.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
