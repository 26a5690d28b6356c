"""Does the tuned default hold up? Tune twice on this device; in the second, independent run, compare what the
first run's profile picks (and what the runtime ran before any profile) with the fastest candidate measured.

    python -m edgevae.benchmarks.tune_check [--model DIR] [--budget-s S]

The issue's goal: with no flags, after `edgevae tune`, every graph x batch size within 5% of the fastest
variant x threads measured for it. Torch-free, like tune.
"""

import argparse
from pathlib import Path


def compare(first, second) -> list[dict]:
    """Per graph and batch: second-run medians of first's choice, of the no-profile default, and of the best."""
    rows = []
    for graph, sizes in first.choice.items():
        for batch, choice in sizes.items():
            timings = second.timings[graph][batch]
            ms = {(t.variant, t.threads, t.provider): t.median_ms for t in timings}
            best = min(timings, key=lambda t: t.median_ms)
            default = second.default[graph][batch]
            tuned = ms.get((choice.variant, choice.threads, choice.provider))
            rows.append({"graph": graph, "batch": batch, "tuned": (choice.variant, choice.threads),
                         "best": (best.variant, best.threads), "best_ms": best.median_ms,
                         "tuned_vs_best": None if tuned is None else tuned / best.median_ms,
                         "default": (default.variant, default.threads),
                         "default_vs_best": ms[(default.variant, default.threads, default.provider)] / best.median_ms})
    return rows


def _name(choice: tuple) -> str:
    return f"{choice[0]} x{choice[1] or 'default'}"


def main(argv=None) -> None:
    import os

    from edgevae.runtime.inference.checks import usable_cores
    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.device.tune import tune

    parser = argparse.ArgumentParser(prog="python -m edgevae.benchmarks.tune_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model dir (default: the shipped model)")
    parser.add_argument("--budget-s", type=float, default=20.0, help="budget of each tune run (default 20)")
    args = parser.parse_args(argv)
    model = load(args.model)
    first, second = (tune(model, args.budget_s, progress=False) for _ in range(2))
    rows = compare(first, second)
    print(f"{'graph':<8}{'batch':>6}  {'tuned (run 1)':<15}{'vs best':>8}  {'no profile':<15}{'vs best':>8}  {'best in run 2':<15}{'ms':>9}")
    for r in rows:
        tuned = "n/a" if r["tuned_vs_best"] is None else f"{r['tuned_vs_best']:.3f}"
        print(f"{r['graph']:<8}{r['batch']:>6}  {_name(r['tuned']):<15}{tuned:>8}  {_name(r['default']):<15}"
              f"{r['default_vs_best']:>8.3f}  {_name(r['best']):<15}{r['best_ms']:>9.3f}")
    within = sum(1 for r in rows if r["tuned_vs_best"] is not None and r["tuned_vs_best"] <= 1.05)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"tuned within 5% of the best: {within} of {len(rows)}; {usable_cores()} usable cores, load average {load1:.1f}")


if __name__ == "__main__":
    main()
