"""Golden inputs and expected outputs: what lets a device prove that its copy of a model dir computes what
was exported (`edgevae verify`), in the spirit of ExecuTorch's BundledProgram.

A model dir carries a few images and latents (GOLDEN_N of each) as .npy files, and for every variant the
outputs of both graphs on them, each listed in the manifest's `golden` entry with its sha256 and size and
read back with ModelDir.read (the same safe reader as the graphs), then np.load(allow_pickle=False).

Tolerance rule (the manifest's `golden.rule` says it in short; docs/model-dir.md repeats it):
    measured[v][g] = the largest max-abs difference, over every output of graph g in variant v, between the
                     expected output (onnxruntime, 1 intra-op thread, the whole batch) and
                       - the same batch at every other thread count in THREADS (1 .. the usable cores, >= 2),
                       - a second run at 1 thread (run to run),
                       - the inputs fed one at a time (batch 1 takes other kernel paths than batch N),
                       - for fp32 only: the export's parity figure against PyTorch for g (two independent
                         implementations, oneDNN and MLAS, summing in other orders: the best stand-in we have
                         for another CPU's kernels), when the manifest has one.
    reference[v][g] = over PROBE_N inputs, the largest difference between onnxruntime's fused kernels and its
                      unfused reference path (graph optimizations off: a QDQ graph then runs as dequantize,
                      fp32 op, quantize), which is what another CPU's kernels approximate: int8 kernels that
                      round a requantization tie the other way flip one quantization step, rarely, and the
                      flip grows through the later layers
    tolerance[v][g] = max(SAFETY_FACTOR x max(measured[v][g], measured[fp32][g], FLOOR),
                          REFERENCE_FACTOR x reference[v][g])
Taking fp32's figure as a floor for every variant covers the float parts every variant keeps (Sigmoid,
dequantization, casts); FLOOR (8 float32 ulps of 1.0) keeps a tolerance from being 0 when every run agreed
bit for bit. With SAFETY_FACTOR 10, fp32 tolerances land near 1e-5: 400x below one grey level (1/255), while
a corrupt weight or another model's graphs move outputs by 1e-2 and more.

The cap. A manifest's figures are whatever its writer put there (a re-signed manifest can say tolerance 1e30,
with measured figures to match), so verify accepts a tolerance only up to
    allowed[v][g] = min(rule(measured, reference) recomputed from the manifest's figures with this module's
                        factors, cap[v][g]),
and build records min(rule, cap) too. cap depends only on the variant and the expected outputs, which the
device's graphs must reproduce. It is derived once, in tolerance_cap:
  - fp32: export refuses graphs farther than PARITY_TOLERANCE (1e-4, export/validate.py) from PyTorch, and the
    fp32 spread over threads and batch sizes is below the parity figure (docs/results.md), so no dir export
    accepts needs more than SAFETY_FACTOR x PARITY_TOLERANCE = 1e-3 on outputs of magnitude 1; float32
    rounding grows with the values, so the cap grows with an output's range past 1.
  - any other variant (8-bit integers or 16-bit floats inside): an 8-bit quantizer splits an output's range into
    255 steps, and a requantization tie rounded the other way moves one step and grows through later layers. The
    largest difference measured between a CPU's fused int8 kernels and the reference path is 20.4 steps (x_hat
    of the shipped decoder with AVX2's saturating u8s8 kernels, docs/results.md). Two CPUs' kernels may sit on
    either side of the reference path, so they may differ by twice that, 41 steps; the cap is
    QUANTIZED_CAP_STEPS = 48 steps (3/16 of the range), still 2.7x below the half range at which an output fixed
    at mid-range would pass every check.
The range is x_hat's [0, 1] for the decoder (the contract's), the spread of the expected output over the golden
batch for the encoder's mu and logvar (the smaller of the two).

Limits, stated rather than hidden. (1) int8 goldens are much looser than fp32's: where a requantization
lands on a rounding tie, fused int8 kernels and the reference path (and so CPUs with other kernels: AVX2,
AVX-512 VNNI, ARM) may round it the other way, and one quantization step grows through the later layers.
On the shipped decoder that moved hundreds of its 802,816 pixels by more than 1e-3 (docs/results.md),
so its tolerance is far looser than fp32's: still below what another model's graphs or a corrupt
weight do to it. fp16 graphs may run real fp16 arithmetic on ARM where x86 computes in fp32, which no
measurement here can see; verify names the variant, and fp32 is the reference to trust. (2) Goldens bound numerical
effect, not bits: flipping the lowest mantissa byte of one decoder weight passes (docs/results.md);
bit identity is what the sha256 in the manifest is for. (3) Goldens are no signature: whoever can rewrite the
dir can rewrite the goldens from a tampered graph, and verify then passes (docs/security.md).

For the shipped default model (no checkpoint, no PyTorch at hand) `python -m edgevae.runtime.device.golden [DIR]`
computes the goldens with onnxruntime from the dir's own graphs: the fp32 expected outputs are then the
runtime's outputs on the machine that ran it, and the same rule applies (without the PyTorch term when the
manifest has no parity figure).
"""

import dataclasses
import io
from pathlib import Path

import numpy as np

from ..inference.latent import rng_of, standard_normal
from ..contract.manifest import FP32, GRAPH_NAMES, FileEntry, Golden, ModelDir
from ..contract.safe_files import escape, sha256_hex
from ..inference.sessions import SessionConfig, create_session, run_checked

GOLDEN_N = 8  # images and latents: enough to exercise every kernel, small (~25 KB per decoder output)
SAFETY_FACTOR = 10.0
# The reference-path term is already a worst case over PROBE_N inputs, 32x the golden batch: a margin, not 10x
REFERENCE_FACTOR = 1.5
FLOOR = 8 * float(np.finfo(np.float32).eps)  # 9.5e-7
SEED = 0  # the golden latents: z ~ N(0, I) from runtime.latent's stream
MAX_GOLDEN_BYTES = 16 << 20  # per file; refused before reading (a golden batch is tens of KB)
MAX_GOLDEN_N = 4096
PROBE_N = 256  # inputs on which the reference-path difference is measured (not stored)
NPY_MAGIC = b"\x93NUMPY"
PARITY_TOLERANCE = 1e-4  # export/validate.py's TOLERANCE (the runtime imports nothing of export; a test keeps them equal)
QUANTIZED_CAP_STEPS = 48  # steps of 1/255 of an output's range (see the cap, above)
RULE = ("tolerance = safety_factor x max(measured[variant][graph], measured[fp32][graph], 8 float32 ulps of 1.0); "
        "measured = max abs diff of the expected outputs (1 thread, whole batch) against other thread counts, a "
        "second run, batch-1 runs and, for fp32, the export's parity against PyTorch; tolerance is at least "
        "reference_factor x reference, the largest difference between fused and unoptimized onnxruntime kernels "
        "over 256 inputs; and at most the cap: fp32 1e-3 x max(1, range), other variants 48/255 x range, range "
        "being 1 for x_hat and the spread of the expected output for mu and logvar (runtime/device/golden.py)")


def input_file(graph: str) -> str:
    return f"golden.{graph}.input.npy"


def output_file(variant: str, graph: str, *, output: str) -> str:
    return f"golden.{variant}.{graph}.{output}.npy"


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, np.float32), allow_pickle=False)
    return buffer.getvalue()


def _entry(name: str, data: bytes) -> FileEntry:
    return FileEntry(file=name, sha256=sha256_hex(data), bytes=len(data))


def read_array(model: ModelDir, entry: FileEntry) -> np.ndarray:
    """A golden .npy of model: size bounded, sha256 checked, no pickle, float32. ModelDirError otherwise."""
    if entry.bytes > MAX_GOLDEN_BYTES:
        raise model.fail(f"{escape(entry.file)} is {entry.bytes} bytes, more than the {MAX_GOLDEN_BYTES} a golden may be")
    data = model.read(entry)
    if not data.startswith(NPY_MAGIC):  # not .npy: no .npz archive or pickle ever reaches np.load
        raise model.fail(f"{escape(entry.file)} is not a .npy array")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise model.fail(f"{escape(entry.file)} is not a readable .npy array ({escape(str(err)[:80])})") from None
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise model.fail(f"{escape(entry.file)} holds {getattr(array, 'dtype', type(array).__name__)}, not float32")
    return array


def read_inputs(model: ModelDir) -> dict:
    """{graph: golden input array}, shapes checked against the manifest."""
    golden = model.manifest.golden
    arrays = {g: read_array(model, golden.inputs[g]) for g in GRAPH_NAMES}
    for graph, array in arrays.items():
        n = len(array) if array.ndim else 0
        if not 1 <= n <= MAX_GOLDEN_N or array.shape != model.io_shapes(graph, n)[0]:
            raise model.fail(f"{escape(golden.inputs[graph].file)} has shape {list(array.shape)}, not the {graph}'s input")
    return arrays


def read_expected(model: ModelDir, variant: str, *, graph: str, n: int) -> list:
    """The expected outputs of (variant, graph), in the graph's output order, shapes checked."""
    entries = model.manifest.golden.outputs[variant][graph]
    names = model.manifest.io[graph].outputs
    if set(entries) != set(names):
        raise model.fail(f"golden.outputs.{escape(variant)}.{graph} names outputs {escape(sorted(entries))}, "
                         f"the graph has {escape(list(names))}")
    arrays = [read_array(model, entries[name]) for name in names]
    for name, array, shape in zip(names, arrays, model.io_shapes(graph, n)[1]):
        if array.shape != shape:
            raise model.fail(f"{escape(entries[name].file)} has shape {list(array.shape)}, expected {list(shape)}")
    return arrays


def run_session(model: ModelDir, graph: str, *, session, feed: np.ndarray, one_at_a_time: bool = False,
                step: int | None = None) -> list:
    """The outputs of graph's session on feed: whole, one input at a time (batch 1 takes other kernel paths), or
    `step` rows at a time (a fixed-shape variant's batch)."""
    name, label = model.manifest.io[graph].inputs[0], f"the {graph}"
    step = 1 if one_at_a_time else step
    if step is None:
        return run_checked(model, label, session=session, feed={name: feed})
    parts = [run_checked(model, label, session=session, feed={name: feed[i:i + step]}) for i in range(0, len(feed), step)]
    return [np.concatenate(outs) for outs in zip(*parts)]


def static_step(model: ModelDir, variant: str) -> int | None:
    """A fixed-shape variant's batch (None for a variant with a dynamic batch)."""
    shape = model.manifest.static.get(variant)
    return None if shape is None else shape.batch


def fit_rows(model: ModelDir, variant: str, *, feed: np.ndarray) -> np.ndarray:
    """feed as a fixed-shape variant takes it: its rows repeated up to the next multiple of the variant's batch,
    so every input is covered in whole batches (unchanged for a dynamic variant)."""
    step = static_step(model, variant)
    if step is None or len(feed) % step == 0:
        return feed
    return np.ascontiguousarray(feed[np.arange(-(-len(feed) // step) * step) % len(feed)])


def run_graph(model: ModelDir, variant: str, *, graph: str, feed: np.ndarray, threads: int | None = None,
              optimize: bool = True) -> list:
    """The outputs of (variant, graph) on feed (fit_rows'd for a fixed-shape variant), through a fresh session
    with the runtime's options (optimize=False: onnxruntime's unfused reference path)."""
    session = create_session(model, variant, graph=graph, config=SessionConfig(threads=threads, optimize=optimize))
    return run_session(model, graph, session=session, feed=fit_rows(model, variant, feed=feed), step=static_step(model, variant))


def max_abs_diff(a: list, b: list) -> float:
    """The largest |a - b| over pairs of arrays: inf when a pair differs in shape (never broadcast), NaN when
    any output is NaN (Python's max would drop a NaN that is not first, so it is checked for explicitly)."""
    diffs = []
    for x, y in zip(a, b, strict=True):
        if not isinstance(x, np.ndarray) or x.shape != y.shape:
            return float("inf")
        diffs.append(float(np.max(np.abs(x.astype(np.float64) - y))) if x.size else 0.0)
    return float("nan") if any(d != d for d in diffs) else max(diffs)


def rule_tolerance(measured: float, *, measured_fp32: float, reference: float) -> float:
    """The rule's tolerance from its three figures (the module docstring)."""
    return max(SAFETY_FACTOR * max(measured, measured_fp32, FLOOR), REFERENCE_FACTOR * reference)


def output_range(graph: str, expected: np.ndarray) -> float:
    """What a difference in one output is measured against: x_hat's [0, 1] (the contract's range) for the
    decoder, the spread of the expected values for the encoder's outputs (0 if any is not finite)."""
    if graph == "decoder":
        return 1.0
    return float(np.ptp(expected)) if expected.size and np.isfinite(expected).all() else 0.0


def tolerance_cap(variant: str, graph: str, *, expected: list) -> float:
    """The loosest tolerance verify accepts for (variant, graph) whose expected outputs are `expected`, whatever
    the manifest says (derivation in the module docstring). Never below the rule's own floor."""
    scale = min(output_range(graph, e) for e in expected)
    if variant == FP32:
        cap = SAFETY_FACTOR * PARITY_TOLERANCE * max(1.0, scale)
    else:
        cap = QUANTIZED_CAP_STEPS / 255 * scale
    return max(cap, SAFETY_FACTOR * FLOOR)


def measurement_threads() -> tuple:
    from ..inference.checks import usable_cores

    return tuple(sorted({1, max(2, usable_cores())}))


def parity_of(manifest, graph: str) -> float:
    """The export's worst fp32-vs-PyTorch difference for graph (0 when the manifest has none)."""
    if manifest.parity is None:
        return 0.0
    rows = manifest.parity.max_abs_diff.get(graph, {})
    return max((d for outs in rows.values() for d in outs.values()), default=0.0)


def build(model: ModelDir, variants, *, inputs: dict, previous: Golden | None = None,
          source: str = "export") -> tuple[Golden, dict]:
    """(the manifest's Golden entry, {file name: .npy bytes to write}) for model's graphs.

    variants: those to compute; the variants in `previous` not listed here keep their files and figures.
    inputs: {graph: float32 batch} (default_inputs, or read_inputs of a dir that has goldens already).
    The files are not written here: the caller writes them (edgevae.atomic) inside its own transaction.
    """
    import onnxruntime as ort

    names = model.manifest.io
    files = {input_file(g): npy_bytes(inputs[g]) for g in GRAPH_NAMES}
    entries = {g: _entry(input_file(g), files[input_file(g)]) for g in GRAPH_NAMES}
    outputs, measured, reference, cap = {}, {}, {}, {}
    if previous is not None:
        keep = [v for v in previous.outputs if v not in variants and v in model.manifest.variants]
        outputs = {v: previous.outputs[v] for v in keep}
        measured = {v: dict(previous.measured[v]) for v in keep if v in previous.measured}
        reference = {v: dict(previous.reference[v]) for v in keep if v in previous.reference}
        cap = {v: {g: tolerance_cap(v, g, expected=[read_array(model, outputs[v][g][name]) for name in names[g].outputs])
                   for g in GRAPH_NAMES} for v in keep}
    threads = measurement_threads()
    for variant in variants:
        outputs[variant], measured[variant], reference[variant], cap[variant] = {}, {}, {}, {}
        step = static_step(model, variant)  # a fixed-shape variant runs its own batch size, never batch 1
        for graph in GRAPH_NAMES:
            feed = fit_rows(model, variant, feed=np.ascontiguousarray(inputs[graph], np.float32))
            one = create_session(model, variant, graph=graph, config=SessionConfig(threads=1))  # expected, batch-1 runs, probe
            expected = run_session(model, graph, session=one, feed=feed, step=step)
            cap[variant][graph] = tolerance_cap(variant, graph, expected=expected)
            others = [run_graph(model, variant, graph=graph, feed=feed, threads=t) for t in threads]  # t=1 again: run to run
            if step is None:
                others.append(run_session(model, graph, session=one, feed=feed, one_at_a_time=True))
            spread = max(max_abs_diff(expected, other) for other in others)
            probe = fit_rows(model, variant, feed=probe_inputs(model, graph, golden=feed))
            reference[variant][graph] = max_abs_diff(run_session(model, graph, session=one, feed=probe, step=step),
                                                     run_graph(model, variant, graph=graph, feed=probe, threads=1, optimize=False))
            if variant == FP32:
                spread = max(spread, parity_of(model.manifest, graph))
            measured[variant][graph] = spread
            outputs[variant][graph] = {}
            for name, value in zip(names[graph].outputs, expected):
                file = output_file(variant, graph, output=name)
                files[file] = npy_bytes(value)
                outputs[variant][graph][name] = _entry(file, files[file])
    base = measured.get(FP32, {})
    tolerance = {v: {g: rule_tolerance(measured[v][g], measured_fp32=base.get(g, 0.0), reference=reference.get(v, {}).get(g, 0.0))
                     for g in GRAPH_NAMES} for v in outputs}
    for v, graphs in cap.items():
        for g, most in graphs.items():
            tolerance[v][g] = min(tolerance[v][g], most)
    golden = Golden(inputs=entries, outputs=outputs, tolerance=tolerance, measured=measured, reference=reference,
                    safety_factor=SAFETY_FACTOR, reference_factor=REFERENCE_FACTOR, rule=RULE, threads=threads,
                    onnxruntime=ort.__version__, source=source)
    return golden, files


def probe_inputs(model: ModelDir, graph: str, *, golden: np.ndarray) -> np.ndarray:
    """PROBE_N inputs for the reference-path term: the golden batch, then seeded ones (latents z ~ N(0, I);
    images as the golden images under seeded noise, clipped to [0, 1]). In an int8 graph the fused and the
    reference kernels differ only where a requantization rounds a tie the other way, a rare event (49 of
    200,704 decoder pixels here) that 8 golden inputs may not show, so it is measured on many."""
    rng = rng_of(SEED + 1)
    extra = max(0, PROBE_N - len(golden))
    if graph == "decoder":
        more = standard_normal(rng, (extra, *model.latent_shape))
    else:
        base = golden[np.arange(extra) % len(golden)]
        low, high = model.conventions.pixel_range
        more = np.clip(base + 0.1 * (high - low) * standard_normal(rng, base.shape), low, high).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([golden, more]), np.float32)


def default_inputs(model: ModelDir, images: np.ndarray | None = None) -> dict:
    """{graph: golden input}: the first GOLDEN_N of images (None: seeded uniform noise) and GOLDEN_N latents
    z ~ N(0, I) from runtime.latent's stream with SEED. Images in [0, 1] are fed in the model's pixel range."""
    if images is None:
        images = np.random.default_rng(SEED).random((GOLDEN_N, *model.image_shape), dtype=np.float32)
    else:
        from ..inference.checks import check_images

        images = check_images(images, model.image_shape, name="images")
    low, high = model.conventions.pixel_range
    return {"encoder": np.ascontiguousarray(low + (high - low) * images[:GOLDEN_N], np.float32),
            "decoder": standard_normal(rng_of(SEED), (GOLDEN_N, *model.latent_shape))}


def write_files(folder: Path, files: dict) -> None:
    from edgevae.atomic import write_bytes

    for name, data in files.items():
        write_bytes(Path(folder) / name, data, mode=0o644)  # a model dir is for sharing, whatever the umask


def add_to_model_dir(model_dir=None, *, images: np.ndarray | None = None, source: str = "runtime") -> Golden:
    """Compute goldens for every variant of an existing model dir from its own graphs (torch-free) and
    record them in its manifest. images: None keeps the dir's golden images if it has some, else noise."""
    from ..inference.checks import check_images
    from ..contract.errors import InputError
    from ..contract.manifest import load, write

    if not isinstance(source, str):
        raise InputError(f"source must be a string, got {type(source).__name__}")
    model = load(model_dir)
    if images is not None:
        images = check_images(images, model.image_shape, name="images")
    model.verify()
    inputs = default_inputs(model, images)
    if images is None and model.manifest.golden is not None:
        inputs = read_inputs(model)
    golden, files = build(model, list(model.manifest.variants), inputs=inputs, source=source)
    write_files(model.path, files)
    write(model.path, dataclasses.replace(model.manifest, golden=golden))
    return golden


def main(argv=None) -> None:
    """python -m edgevae.runtime.device.golden [MODEL_DIR] [--images IDX]: add goldens to a model dir (default:
    the shipped one), with the first GOLDEN_N images of an IDX/.npy/.png file when given."""
    import argparse

    from ..image_io.image_input import read_images

    parser = argparse.ArgumentParser(prog="python -m edgevae.runtime.device.golden", description=main.__doc__)
    parser.add_argument("model_dir", nargs="?", type=Path, help="model dir (default: the shipped model)")
    parser.add_argument("--images", type=Path, help="images for the encoder goldens (IDX, .npy or .png)")
    args = parser.parse_args(argv)
    images = None
    if args.images is not None:
        from ..contract.manifest import load

        shape = load(args.model_dir).image_shape
        images = read_images(args.images, size=shape[1:], count=GOLDEN_N, channels=shape[0])
    source = f"the runtime's own outputs (onnxruntime, this machine), images {args.images or 'seeded uniform noise'}"
    golden = add_to_model_dir(args.model_dir, images=images, source=source)
    for variant, graphs in golden.tolerance.items():
        print(variant, {g: f"{t:.3g}" for g, t in graphs.items()})


if __name__ == "__main__":
    main()
