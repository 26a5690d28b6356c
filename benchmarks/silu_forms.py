"""SiLU (x * sigmoid(x)) in int8, three forms besides int8's own, on the GroupNorm/SiLU decoders of
benchmarks/any_vae_models.py (ResNet VAE, diffusers AutoencoderKL): decoder speedup over fp32 at batch 1 and 8
(1 intra-op thread, interleaved rounds, medians of per-call CPU time), decoder PSNR vs fp32, and the operators
onnxruntime runs. What export/silu.py decided from.

    python -m edgevae.benchmarks.silu_forms --out OUT [--families resnet,kl] [--rounds 21]

Forms: int8 (export/silu.py: Q/DQ around Sigmoid and Mul), sigmoid-fp32 (the Sigmoid left out of quantization,
as int8 did before), fp32 (Sigmoid and Mul left out), quickgelu (each pair written as one com.microsoft QuickGelu,
left fp32). Weights are seeded initialisations: the speed is the architecture's, the PSNR only roughly a trained
model's.
"""

import argparse
import collections
import json
import tempfile
from pathlib import Path


FORMS = ("int8", "sigmoid-fp32", "fp32", "quickgelu")
BATCHES = (1, 8)
SHOWN_OPS = ("QLinearSigmoid", "QLinearMul", "QuickGelu", "Sigmoid", "Mul", "QuantizeLinear", "DequantizeLinear")


def build(form: str, src: Path, *, dst: Path, calibration) -> None:
    """The int8 decoder of src at dst with its SiLUs in `form`."""
    import dataclasses

    import onnx

    from edgevae.export.silu import silu_pairs
    from edgevae.export.variants import Int8Settings, prepare_int8, quantize_prepared

    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        prepare_int8(src, prepared, graph="decoder")
        model = onnx.load(prepared)
        pairs = silu_pairs(model)
        fp32 = {"int8": [], "sigmoid-fp32": [s for s, _ in pairs], "fp32": [n for p in pairs for n in p], "quickgelu": []}[form]
        if form == "quickgelu":
            onnx.save(as_quick_gelu(model, pairs), prepared)
        quantize_prepared(prepared, dst, graph="decoder", calibration=calibration, settings=dataclasses.replace(Int8Settings(), fp32_nodes=tuple(fp32)))


def as_quick_gelu(model, pairs):
    """model with each (Sigmoid, Mul) pair replaced by one com.microsoft QuickGelu(alpha=1): x * sigmoid(x)."""
    import onnx
    from onnx import helper

    by_name = {n.name: n for n in model.graph.node}
    muls = dict(pairs)
    nodes = []
    for node in model.graph.node:
        if node.name in muls:
            nodes.append(helper.make_node("QuickGelu", [node.input[0]], [by_name[muls[node.name]].output[0]],
                                          name=f"{node.name}/quick_gelu", domain="com.microsoft", alpha=1.0))
        elif node.name not in muls.values():
            nodes.append(node)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def run_ops(path: Path, work: Path) -> dict:
    """{operator: count} of the graph onnxruntime's CPU provider runs for path (the runtime's session options)."""
    import onnx
    import onnxruntime as ort

    from edgevae.runtime.inference.sessions import SessionConfig, session_options

    options = session_options(SessionConfig(threads=1))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # fusions without NCHWc layout
    options.optimized_model_filepath = str(work / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(work / "optimized.onnx").graph.node)
    return {op: ops[op] for op in SHOWN_OPS if ops[op]}


def family_rows(name: str, out: Path, *, rounds: int) -> dict:
    from edgevae.benchmarks.any_vae import export_family
    from edgevae.export import calibrate, quality
    from edgevae.runtime.contract import manifest as contract
    from edgevae.runtime.contract.conventions import to_pixels
    from edgevae.runtime.inference.graph_pair import GraphPair
    from edgevae.runtime.inference.random_input import random_input
    from edgevae.runtime.inference.sessions import SessionConfig
    from edgevae.timing import Schedule, interleave, median, thread_clock
    from edgevae.train.data import DataOverrides, held_out_images

    folder = export_family(name, out)
    model = contract.load(folder)
    data = calibrate.data_for(model.manifest, DataOverrides(data="fashion-mnist"))  # as any_vae.py's quantize
    fp32 = GraphPair.of_variant(model, "fp32")
    encoder, decoder = (folder / model.manifest.variants["fp32"][g].file for g in ("encoder", "decoder"))
    images = to_pixels(calibrate.training_images(data, 256, seed=0), model.conventions)
    calibration = calibrate.posterior_latents(fp32, images, seed=0)
    test = to_pixels(held_out_images(calibrate.images_of(data), limit=256).numpy(), model.conventions)
    reference = quality.graph_outputs(fp32, test, seed=0)
    rows, paths = {}, {"fp32 reference": decoder}
    for form in FORMS:
        paths[form] = folder / f"decoder.silu-{form}.onnx"
        build(form, decoder, dst=paths[form], calibration=calibration)
        pair = GraphPair.of_files(model, {"encoder": encoder, "decoder": paths[form]})  # the decoder alone int8
        rows[form] = {"psnr_db": quality.measure(reference, pair, test_images=test, seed=0)["decoder_psnr_db"],
                      "ops": run_ops(paths[form], folder)}
    pairs = {form: GraphPair.of_files(model, {"encoder": encoder, "decoder": path}, config=SessionConfig(threads=1))
             for form, path in paths.items()}
    schedule = Schedule(min_rounds=rounds, max_rounds=rounds, budget_s=0.0, segment_s=0.0, warmup_calls=0)  # one call a round
    for batch in BATCHES:
        z = random_input(model, "decoder", batch)
        times = interleave({form: pair.call("decoder", z) for form, pair in pairs.items()}, schedule, clock=thread_clock(1)[0])
        reference_s = median(times["fp32 reference"])
        for form in FORMS:
            rows[form][f"batch{batch}_ms"] = round(1e3 * median(times[form]), 3)
            rows[form][f"batch{batch}_speedup"] = round(reference_s / median(times[form]), 3)
        rows[f"fp32_batch{batch}_ms"] = round(1e3 * reference_s, 3)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edgevae.benchmarks.silu_forms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", default="resnet,kl")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    unknown = [f for f in args.families.split(",") if f not in ("resnet", "kl")]
    if unknown:
        raise SystemExit(f"--families: {unknown[0]!r} has no SiLU; choose from resnet, kl")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {f: family_rows(f, args.out, rounds=args.rounds) for f in args.families.split(",")}
    (args.out / "silu_forms.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
