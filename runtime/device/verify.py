"""`edgevae verify`: run a model dir's golden inputs through its graphs on this device and compare the
outputs with the expected ones stored beside them, within each variant's recorded tolerance (runtime/device/golden.py
says how the tolerance was derived, and the cap past which a tolerance is refused). Torch-free: the base install
runs it. What this proves, and what it does not (it is no signature), is in docs/security.md."""

from dataclasses import dataclass

import numpy as np

from .golden import fit_rows, max_abs_diff, read_expected, read_inputs, rule_tolerance, run_graph, tolerance_cap
from ..contract.manifest import AUTO, FP32, GRAPH_NAMES, ModelDir
from ..contract.safe_files import escape
from ..inference.selection import variants_needed

ALL = "all"


@dataclass(frozen=True)
class Check:
    """One (graph, variant) compared with its goldens."""

    graph: str
    variant: str
    max_abs_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance  # NaN fails


def variants_to_check(model: ModelDir, variant: str) -> list:
    """The variants `--variant` names: all (every variant with goldens), auto (those auto may run), or one."""
    golden = model.manifest.golden
    if variant == ALL:
        return sorted(golden.outputs, key=lambda v: (v != "fp32", v))
    concrete = variants_needed(model.manifest, model.check_variant(variant)) if variant == AUTO else [model.check_variant(variant)]
    missing = [v for v in concrete if v not in golden.outputs]
    if missing:
        raise model.fail(f"has no goldens for variant {escape(missing[0])} (quantized before goldens existed? "
                         "re-run edgevae quantize)")
    return concrete


def allowed_tolerance(model: ModelDir, variant: str, *, graph: str, expected: list) -> float:
    """min(the rule recomputed from the manifest's measured figures with golden.py's factors, never the manifest's,
    and golden.tolerance_cap): the largest tolerance for (variant, graph) that the manifest's own figures and its
    expected outputs justify."""
    golden = model.manifest.golden
    figure = lambda table, v: table.get(v, {}).get(graph, 0.0)  # noqa: E731
    rule = rule_tolerance(figure(golden.measured, variant), measured_fp32=figure(golden.measured, FP32), reference=figure(golden.reference, variant))
    return min(rule, tolerance_cap(variant, graph, expected=expected))


def checked_tolerance(model: ModelDir, variant: str, *, graph: str, expected: list) -> float:
    """The manifest's tolerance for (variant, graph) once it is within allowed_tolerance; ModelDirError otherwise
    (goldens that loose would pass graphs of another model)."""
    tolerance = model.manifest.golden.tolerance[variant][graph]
    allowed = allowed_tolerance(model, variant, graph=graph, expected=expected)
    if tolerance > allowed * (1 + 1e-9):
        raise model.fail(f"golden.tolerance.{escape(variant)}.{graph} is {tolerance:.3g}, more than its measured "
                         f"figures and the cap allow ({allowed:.3g}): goldens that loose prove nothing (docs/security.md; "
                         "goldens made before the cap: python -m edgevae.runtime.device.golden DIR re-makes them)")
    return tolerance


def verify(model: ModelDir, variant: str = ALL, *, threads: int | None = None) -> list[Check]:
    """A Check per graph and variant. model: a ModelDir (manifest.load); variant: all, auto or one variant;
    threads: intra-op threads (None: onnxruntime's default). InputError for a wrong argument, ModelDirError when
    the dir has no goldens, lacks the variant, its goldens are unreadable, or a tolerance is looser than
    checked_tolerance allows (refused before any graph runs)."""
    from ..inference.checks import check_model, check_threads
    from ..contract.errors import InputError

    check_model(model)
    if not isinstance(variant, str):
        raise InputError(f"variant must be a string (all, auto or a variant), got {type(variant).__name__}")
    threads = None if threads is None else check_threads(threads)
    if model.manifest.golden is None:
        raise model.fail("has no goldens (made before edgevae stored them; re-export it, or add them with "
                         "python -m edgevae.runtime.device.golden DIR)")
    inputs = read_inputs(model)
    variants = variants_to_check(model, variant)
    # fixed shapes: whole batches
    expected = {(v, g): read_expected(model, v, graph=g, n=len(fit_rows(model, v, feed=inputs[g]))) for v in variants for g in GRAPH_NAMES}
    tolerance = {key: checked_tolerance(model, key[0], graph=key[1], expected=outputs) for key, outputs in expected.items()}  # before any run
    checks = []
    for v in variants:
        for graph in GRAPH_NAMES:
            with np.errstate(invalid="ignore", over="ignore"):
                got = run_graph(model, v, graph=graph, feed=inputs[graph], threads=threads)
            checks.append(Check(graph, v, max_abs_diff(got, expected[v, graph]), tolerance[v, graph]))
    return checks


def _excess(check: Check) -> float:
    """How far past its tolerance a failed check is (NaN outputs: the worst)."""
    if check.max_abs_diff != check.max_abs_diff:
        return float("inf")
    return check.max_abs_diff / max(check.tolerance, 1e-30)


def format_table(checks: list[Check]) -> str:
    lines = [f"{'graph':<9}{'variant':<14}{'max abs diff':>14}{'tolerance':>12}  pass"]
    for c in checks:
        lines.append(f"{c.graph:<9}{escape(c.variant):<14}{c.max_abs_diff:>14.3g}{c.tolerance:>12.3g}  "
                     f"{'yes' if c.passed else 'NO'}")
    failed = [c for c in checks if not c.passed]
    if failed:
        worst = max(failed, key=_excess)
        lines.append(f"FAIL: {len(failed)} of {len(checks)} differ beyond tolerance; worst: {worst.graph} "
                     f"{escape(worst.variant)} ({worst.max_abs_diff:.3g} > {worst.tolerance:.3g})")
    else:
        lines.append(f"ok: all {len(checks)} graph x variant outputs match their goldens")
    return "\n".join(lines)


def main(args) -> int:
    """CLI entry: 0 when every check passes, 1 when any fails (table on stdout, the summary names it);
    bad input (a missing or corrupt dir, an unknown variant) raises for the dispatcher's exit 2."""
    from ..inference.checks import check_threads
    from ..contract.manifest import load

    threads = None if args.threads is None else check_threads(args.threads, "--threads")
    model = load(args.model)
    if args.trust is not None:  # before anything of the dir is run: a dir its signer did not write is bad input
        from ..contract.signing import SIGNATURE, check_signature

        count = check_signature(model, args.trust)
        print(f"signature {SIGNATURE} verified with {escape(args.trust)}: manifest.json and {count - 1} files it names")
    model.verify()  # every file hashed first: a changed file is bad input (exit 2), not a failed check
    checks = verify(model, args.variant, threads=threads)
    print(format_table(checks))
    return 0 if all(c.passed for c in checks) else 1
