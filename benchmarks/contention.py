"""Training and the runtime on a busy machine: how much slower each setting gets with CPU-bound processes
beside it, against the fair share.

    python -m edgevae.benchmarks.contention [--busy 0,1,2] [--limit-train 3840] [--rounds 2] [--out FILE.json]

With N CPU-bound processes beside a job on C cores, a fair scheduler gives it C / (N + C) of the machine, so
an epoch should take at most (N + C) / C x its quiet time; the goal is 1.25x that bound.
- Training: `edgevae train --epochs 1 --limit-train L` per setting (the default: one process per core; fp32,
  bf16 where offered, auto; one process of all threads or of 1 thread; OpenMP's idle threads spinning or not),
  its epoch seconds from metrics.json (the probe's verdict is cached by the first run, as for a user); the
  settings interleaved, `--rounds` times, medians.
- Runtime: the shipped model's decoder at batch 1 and 64 with 2 intra-op threads, spinning on and off:
  median latency and the process's CPU time per call (what a phone pays in battery), calls interleaved.
Busy processes are Python loops (`while True: pass`), started before and killed after each load level.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgevae.cpu import cpu_model, usable_cores

BUSY_LOOP = "while True: pass"


class Busy:
    """n CPU-bound processes for the duration of a `with` block."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def train_settings() -> dict:
    """{name: (extra argv, environment changes)} for one epoch of `edgevae train`."""
    from edgevae.train.precision import native_bf16

    one = ["--processes", "1"]
    settings = {"default (auto: 1 process per core x 1 thread, precision probed)": ([], {}),
                "fp32, 1 process per core": (["--precision", "fp32"], {}),
                "fp32, 1 process x all threads": ([*one, "--precision", "fp32"], {}),
                "fp32, 1 process x all threads, OpenMP threads spinning": ([*one, "--precision", "fp32"], {"OMP_WAIT_POLICY": "ACTIVE"}),
                "fp32, 1 process x 1 thread": ([*one, "--precision", "fp32"], {"OMP_NUM_THREADS": "1"}),
                "auto, 1 process x all threads": (one, {})}
    if native_bf16("cpu"):
        settings["bf16, 1 process per core"] = (["--precision", "bf16"], {})
        settings["bf16, 1 process x all threads"] = ([*one, "--precision", "bf16"], {})
    return settings


def epoch_seconds(extra: list, env: dict, *, limit_train: int, folder: Path) -> float:
    out = folder / f"run{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "edgevae", "train", "--epochs", "1", "--limit-train", str(limit_train), "--out", str(out), *extra]
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ | env, timeout=3600)
    return json.loads((out / "metrics.json").read_text())["epochs"][0]["epoch_seconds"]


def runtime_rows(budget_s: float) -> list:
    """Decoder latency and CPU time per call, spinning on and off, at batch 1 and 64 (2 threads)."""
    from edgevae.runtime import VAERuntime
    from edgevae.runtime.inference.random_input import random_input

    rows = []
    for batch in (1, 64):
        runtimes = {spin: VAERuntime.load(variant="fp32", threads=min(2, usable_cores()), spinning=spin) for spin in (False, True)}
        z = random_input(runtimes[False].model, "decoder", batch)
        samples = {spin: {"wall": [], "cpu": []} for spin in runtimes}
        for rt in runtimes.values():
            rt.decode(z)
        start = time.perf_counter()
        while time.perf_counter() - start < budget_s:
            for spin, rt in runtimes.items():  # interleaved segments of 20 calls each
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in range(20):
                    rt.decode(z)
                samples[spin]["wall"].append((time.perf_counter() - w0) / 20)
                samples[spin]["cpu"].append((time.process_time() - c0) / 20)
        for spin, s in samples.items():
            rows.append({"batch": batch, "spinning": spin, "latency_ms": 1e3 * statistics.median(s["wall"]),
                         "cpu_ms_per_call": 1e3 * statistics.median(s["cpu"])})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", default="0,1,2", help="numbers of busy processes beside the job (default 0,1,2)")
    parser.add_argument("--limit-train", type=int, default=3840, help="training images per epoch (default 3840)")
    parser.add_argument("--rounds", type=int, default=2, help="times each training setting runs per load (default 2)")
    parser.add_argument("--runtime-s", type=float, default=6.0, help="seconds of runtime timing per batch size and load")
    parser.add_argument("--skip-train", action="store_true", help="runtime only")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    cores = usable_cores()
    print(f"{cpu_model()}, {cores} usable cores")
    results = {"cpu": cpu_model(), "cores": cores, "train": {}, "runtime": {}}
    settings = train_settings()
    with tempfile.TemporaryDirectory(prefix="edgevae-contention-") as tmp:
        for busy in map(int, args.busy.split(",")):
            with Busy(busy):
                time.sleep(1.0)  # let the loops reach the scheduler
                if not args.skip_train:
                    times = {name: [] for name in settings}
                    for _ in range(args.rounds):
                        for name, (extra, env) in settings.items():
                            times[name].append(epoch_seconds(extra, env, limit_train=args.limit_train, folder=Path(tmp)))
                    results["train"][busy] = {name: statistics.median(t) for name, t in times.items()}
                    results["train"][f"{busy} all"] = times
                results["runtime"][busy] = runtime_rows(args.runtime_s)
            print(f"busy {busy}: " + json.dumps({"train": results["train"].get(busy), "runtime": results["runtime"][busy]}))
    quiet = results["train"].get(0)
    if quiet:
        for busy, row in results["train"].items():
            if isinstance(busy, int) and busy:
                bound = (busy + cores) / cores
                print(f"busy {busy}: epoch / quiet epoch (fair bound {bound:.2f}, goal <= {1.25 * bound:.2f}): "
                      + ", ".join(f"{name} {row[name] / quiet[name]:.2f}" for name in row))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
