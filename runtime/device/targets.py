"""Which execution providers could run a model dir's graphs: the manifest's `targets` record (written by export
and quantize through export/check.py, which needs onnx) as `edgevae check`'s table and `edgevae info`'s summary.
Torch- and onnx-free: a device with the base install reads the record.
"""

from ..contract.manifest import GRAPH_NAMES, Manifest, TargetFit, Targets
from ..contract.safe_files import escape

TARGETS = ("nnapi", "coreml", "xnnpack", "qnn", "cpu")


def cell(fit: TargetFit | None) -> str:
    """'taken/nodes in P' (P partitions), or '?' when the provider could not be judged."""
    if fit is None or fit.taken is None:
        return "?"
    return f"{fit.taken}/{fit.nodes} in {fit.partitions}"


def table(targets: Targets, names: list[str]) -> str:
    """Per variant x graph, each target's cell, then why nodes stay off, one line per (target, reason)."""
    lines = [f"{'variant':<18}{'graph':<9}" + "".join(f"{t:>13}" for t in names)]
    reasons = {}  # {(target, reason key, text): [variant graph, ...]}
    for variant, graphs in targets.fits.items():
        for graph in GRAPH_NAMES:
            fits = graphs.get(graph, {})
            lines.append(f"{escape(variant):<18}{graph:<9}" + "".join(f"{cell(fits.get(t)):>13}" for t in names))
            for t in names:
                for key, text in (fits[t].why.items() if t in fits else ()):
                    reasons.setdefault((t, key, text), []).append(f"{escape(variant)} {graph}")
    lines.append("cells: nodes the provider takes / nodes after onnxruntime's basic optimizations, in how many partitions")
    for (t, key, text), where in reasons.items():
        shown = ", ".join(where[:4]) + (f" and {len(where) - 4} more" if len(where) > 4 else "")
        lines.append(f"{t}: {escape(key) + ': ' if key else ''}{escape(text)} ({shown})")
    return "\n".join(lines)


def summary(manifest: Manifest) -> list[str]:
    """One line per target: the variants whose two graphs it takes whole, in one partition each; else the
    variant it takes most of; else why it cannot be told."""
    targets = manifest.targets
    if targets is None:
        return ["not recorded (made before edgevae recorded it): edgevae check --model DIR"]
    lines = []
    for t in TARGETS:
        fits = {v: [graphs.get(g, {}).get(t) for g in GRAPH_NAMES] for v, graphs in targets.fits.items()}
        known = {v: fs for v, fs in fits.items() if all(f is not None and f.taken is not None for f in fs)}
        whole = [v for v, fs in known.items() if all(f.taken == f.nodes and f.partitions == 1 for f in fs)]
        if whole:
            lines.append(f"{t}: both graphs whole, in one partition each: {', '.join(escape(v) for v in whole)}")
        elif known:
            best = max(known, key=lambda v: sum(f.taken for f in known[v]) / max(1, sum(f.nodes for f in known[v])))
            lines.append(f"{t}: at best {escape(best)}: " + ", ".join(f"{g} {cell(f)}" for g, f in zip(GRAPH_NAMES, known[best])))
        else:
            reason = next((text for fs in fits.values() for f in fs if f is not None for text in f.why.values()), "not checked")
            lines.append(f"{t}: unknown ({escape(reason)})")
    return lines
