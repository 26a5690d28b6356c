"""The aarch64 lane's numbers (scripts/aarch64_lane.sh): what the installed runtime computes, written on
each platform with the same code, then compared. Torch-free: numpy, onnxruntime and edgevae only.

    python scripts/aarch64_outputs.py write DIR [--inputs N]     # under x86 or under QEMU's aarch64
    python scripts/aarch64_outputs.py compare X86_DIR ARM_DIR... # a table; exit 1 past a tolerance

`write` first checks every variant's goldens as `edgevae verify --variant all` does (same code, its table
printed; exit 1 when one fails), then runs every variant x graph of the shipped model, one intra-op
thread, on the golden inputs and the golden module's probe inputs after them (N in all), and saves each
output as graph.VARIANT.GRAPH.OUTPUT.npy with the platform's facts in facts.json. The lane's CLI commands
(sample, reconstruct, interpolate) write their outputs into the same DIR as cmd.*.npy / cmd.*.png.

`compare` holds each aarch64 output to the x86 one within the tolerance `edgevae verify` uses, the
manifest's golden.tolerance[variant][graph] (derived in runtime/device/golden.py from measured differences on the
exporting machine, not tuned to any ISA). A command's output is held to the decoder tolerance of the
loosest variant `--variant auto` may run (the decoder is the last graph every command's pixels pass
through); a PNG, 8-bit, one grey level more, since a value within tolerance of a rounding boundary may
round to the next level.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

PROBE_N = 64  # golden inputs + seeded ones: 8x the goldens, few enough for CI's time under emulation


def write(out: Path, n: int = PROBE_N) -> int:
    from edgevae.runtime.device.golden import probe_inputs, read_inputs, run_graph
    from edgevae.runtime.contract.manifest import GRAPH_NAMES, load
    from edgevae.runtime.device.platform_facts import facts
    from edgevae.runtime.device.verify import format_table, verify

    model = load(None)
    model.verify()
    checks = verify(model, "all")
    print(format_table(checks))
    out.mkdir(parents=True, exist_ok=True)
    inputs = read_inputs(model)
    for graph in GRAPH_NAMES:
        feed = probe_inputs(model, graph, golden=inputs[graph])[:n]
        for variant in model.manifest.variants:
            outputs = run_graph(model, variant, graph=graph, feed=feed, threads=1)
            for name, value in zip(model.manifest.io[graph].outputs, outputs):
                np.save(out / f"graph.{variant}.{graph}.{name}.npy", value)
    (out / "facts.json").write_text(json.dumps(dataclasses.asdict(facts()), indent=1))
    return 0 if all(c.passed for c in checks) else 1


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        from edgevae.runtime.image_io.png import decode_png

        return decode_png(path.read_bytes()).astype(np.float64) / 255
    return np.load(path, allow_pickle=False).astype(np.float64)


def _tolerance(name: str, golden, auto_variants: list) -> float:
    """The tolerance for one output file (the module docstring says why)."""
    parts = name.split(".")
    if parts[0] == "graph":
        return golden.tolerance[parts[1]][parts[2]]
    tolerance = max(golden.tolerance[v]["decoder"] for v in auto_variants)
    return tolerance + 1 / 255 if name.endswith(".png") else tolerance


def compare(x86: Path, arms: list) -> int:
    from edgevae.runtime.contract.manifest import AUTO, load
    from edgevae.runtime.inference.selection import variants_needed

    model = load(None)
    golden = model.manifest.golden
    auto_variants = variants_needed(model.manifest, AUTO)
    base = json.loads((x86 / "facts.json").read_text())
    print(f"x86 side: {base['machine']}, {base['cpu']}, onnxruntime {base['onnxruntime']}, numpy {base['numpy']}")
    print(f"{'aarch64 cpu':<13}{'output':<36}{'n':>4}{'max abs diff':>13}{'tolerance':>11}  bit-identical  pass")
    failed, identical, total = [], 0, 0
    for arm in arms:
        facts = json.loads((arm / "facts.json").read_text())
        if (facts["onnxruntime"], facts["numpy"]) != (base["onnxruntime"], base["numpy"]):
            print(f"{arm.name}: onnxruntime {facts['onnxruntime']}, numpy {facts['numpy']} differ from x86's")
            return 1
        for name in sorted(p.name for p in arm.iterdir() if p.suffix in (".npy", ".png")):
            if not (x86 / name).is_file():
                print(f"{arm.name}: {name} has no x86 counterpart in {x86}")
                return 1
            a, b = _read(arm / name), _read(x86 / name)
            if name.startswith("graph."):
                b = b[:len(a)]  # the same probe inputs, of which this side may have run fewer
            diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
            tolerance = _tolerance(name, golden, auto_variants)
            same = a.shape == b.shape and np.array_equal(a, b)
            ok = diff <= tolerance  # NaN fails
            total, identical = total + 1, identical + same
            if not ok:
                failed.append(f"{arm.name} {name}")
            count = len(a) if name.endswith(".npy") else "-"  # images (a PNG is one grid)
            print(f"{arm.name:<13}{name:<36}{count:>4}{diff:>13.3g}{tolerance:>11.3g}  {'yes' if same else 'no':<13}  "
                  f"{'yes' if ok else 'NO'}")
    if failed:
        print(f"FAIL: {len(failed)} of {total} aarch64 outputs differ from x86's beyond tolerance: {', '.join(failed)}")
        return 1
    print(f"ok: {total} aarch64 outputs within tolerance of x86's, {identical} of them bit-identical")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aarch64_outputs.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write")
    p.add_argument("dir", type=Path)
    p.add_argument("--inputs", type=int, default=PROBE_N, help=f"inputs per graph (default {PROBE_N}; at least the goldens)")
    p = sub.add_parser("compare")
    p.add_argument("x86", type=Path)
    p.add_argument("arm", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "write":
        return write(args.dir, args.inputs)
    return compare(args.x86, args.arm)


if __name__ == "__main__":
    sys.exit(main())
