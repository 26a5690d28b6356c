"""Cold start and footprint: wall time from process start until 64 samples are written as a PNG, and
the process's peak RSS, for a runtime-only process (`edgevae sample`; `edgevae decode` of 64 seeded latents for
a model with no prior, whose sample is refused) and a minimal PyTorch one (benchmarks/torch_sample.py, edgevae's
own decoder only). The kinds alternate, run after run, and the medians are reported. A third
process only imports numpy and onnxruntime: the floor of any Python runtime built on them, which no
change to edgevae's own code can go below.

"Cold" means a fresh interpreter; the files are in the page cache after the first run (dropping it
needs root), so these are warm-disk cold starts, the usual case for a command run repeatedly.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SAMPLES = 64


# Measures one command from a fresh, small interpreter. The peak RSS a parent reads for its child
# (wait4's ru_maxrss) counts the memory of the process the child was forked from, up to its exec: read
# here directly, it would report this benchmark's own hundreds of MiB. Spawned from this launcher it can
# only be inflated up to the launcher's own size, which run_process measures and reports as a floor.
LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - t0, "exit": os.waitstatus_to_exitcode(status),
                  "max_rss_kib": usage.ru_maxrss}))
"""


def run_process(cmd: list[str]) -> dict:
    """Run cmd (cmd[0] an absolute path); {"seconds": wall time from spawn to exit, "max_rss_mib": its
    peak RSS}. Raises RuntimeError when it fails."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"cannot run the launcher for {' '.join(cmd)}: {proc.stderr.strip()[-300:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["exit"] != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{' '.join(cmd)} exited with {result['exit']}: {last}")
    return {"seconds": result["seconds"], "max_rss_mib": result["max_rss_kib"] / 1024}


def runtime_command(model, tmp: Path) -> list[str]:
    """`edgevae sample --n 64`, or for a model with no prior `edgevae decode` of 64 seeded latents saved in tmp."""
    common = [sys.executable, "-m", "edgevae"]
    tail = ["--model", str(model.path), "--variant", "fp32", "--out", str(tmp / "runtime.png")]
    if model.conventions.prior != "none":
        return [*common, "sample", *tail, "--n", str(SAMPLES), "--seed", "0"]
    np.save(tmp / "z.npy", np.random.default_rng(0).standard_normal((SAMPLES, *model.latent_shape), dtype=np.float32))
    return [*common, "decode", *tail, "--latents", str(tmp / "z.npy")]


def torch_command(decoder_state: Path, *, latent_dim: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "edgevae.benchmarks.torch_sample", str(decoder_state), str(latent_dim),
            str(SAMPLES), str(out)]


def _summary(runs: list[dict], command: list[str]) -> dict:
    return {"seconds_median": float(np.median([r["seconds"] for r in runs])),
            "max_rss_mib_median": float(np.median([r["max_rss_mib"] for r in runs])),
            "runs": runs, "command": " ".join(command)}


def cold_start(model, decoder_module, *, runs: int, torch_skipped: str = "no PyTorch weights") -> dict:
    """{"runtime": summary, "imports only": summary, "torch": summary or {"skipped": reason},
    "rss_floor_mib": the launcher's size (see LAUNCHER)}, over `runs` alternating runs of each.

    model: the runtime's ModelDir. decoder_module: edgevae's PyTorch decoder with the model dir's weights (None:
    torch side skipped, for torch_skipped); its state dict is saved to a temporary file for the torch process to
    load, as a torch deployment would.
    """
    with tempfile.TemporaryDirectory(prefix="edgevae-bench-") as tmp:
        tmp = Path(tmp)
        commands = {"runtime": runtime_command(model, tmp),
                    "imports only": [sys.executable, "-c", "import numpy, onnxruntime"]}
        if decoder_module is not None:
            import torch

            torch.save(decoder_module.state_dict(), tmp / "decoder.pt")
            commands["torch"] = torch_command(tmp / "decoder.pt", latent_dim=model.latent_dim, out=tmp / "torch.png")
        results = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                results[name].append(run_process(cmd))
        summary = {name: _summary(r, commands[name]) for name, r in results.items()}
    if "torch" not in summary:
        summary["torch"] = {"skipped": torch_skipped}
    true = shutil.which("true")
    summary["rss_floor_mib"] = run_process([true])["max_rss_mib"] if true else None
    return summary
