"""The quantized variants of a model dir: how each is built from the fp32 graph (a plain dict registry).

- int8: static QDQ, U8S8 (uint8 activations, int8 weights), 8-bit weights (reduce_range off): on an AVX2 CPU
  without VNNI, where onnxruntime's docs warn that U8S8 sums may saturate, 7-bit weights cost decoder PSNR and
  still did not make the fused kernels agree with the reference path (docs/results.md). Each graph first gets its
  INT8_REWRITES (export/rewrite.py, exact): the decoder's ConvTranspose -> Conv, since onnxruntime has no int8
  ConvTranspose; the encoder's 1-channel input padded to 4 channels, since a reduction depth of 9 runs in a slow
  int8 path. The final Sigmoid stays fp32: an int8 sigmoid rounds probabilities below 1/510 to 0, where only the
  BCE's probability floor bounds the loss (a SiLU's Sigmoid runs int8: export/silu.py); so do attention's
  MatMuls of two activations and the Softmax between them (export/attention.py). The decoder calibrates by
  percentile, the encoder by MinMax (DEFAULT_CALIBRATION: outliers vs clipping).
- int8-dynamic: Gemm/MatMul weights int8, activations quantized at run time. Convs stay fp32: dynamic int8
  Convs run as ConvInteger, several times slower than fp32 here.
- fp16: weights and compute in fp16 with float32 I/O kept (a size win; the CPU provider computes fp32).
- int8-mixed: int8 with chosen layers kept fp32 and settings per graph, found by `quantize --search`
  (export/mixed.py: measured sensitivity, greedy under the user's budget).
- fp32-npu, fp16-npu, int8-npu: for NNAPI and other NPUs, which take no ConvTranspose (NNAPI) or no 5-D tensor
  (NNAPI's Transpose and Reshape take rank <= 4): the decoder's ConvTransposes rewritten as stride-phase Conv +
  DepthToSpace (export/rewrite.py, exact), every tensor 4-D. On the CPU the ConvTranspose graph stays fp32's
  default: the rewritten fp32 decoder ran 1.8-2.3x slower there (docs/results.md), and int8 keeps its channels-last
  interleave, which onnxruntime's int8 CPU kernels run fastest.

The measurements behind each decision, with the commands that reproduce them: docs/results.md.
"""

import contextlib
import io
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgevae.runtime.contract.manifest import GRAPH_NAMES

from .attention import ATTENTION_FP32, attention_fp32_nodes
from .calibrate import ArrayReader
from .rewrite import DEPTH_TO_SPACE, REWRITES, TRANSPOSE, conv_transpose_as_conv
from .silu import HEAD_SIGMOID, SILU_INT8, head_sigmoids
from .unshare import preflight, unshare_initializers

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_REWRITES = {"encoder": ("pad-input-channels",), "decoder": ("conv-transpose-as-conv",)}  # graph -> REWRITES names
# Calibration per graph unless Int8Settings.calibration names one for both: decoder activations have rare
# outliers that MinMax spends the uint8 range on, while clipping hurts the encoder's mu (docs/results.md).
DEFAULT_CALIBRATION = {"encoder": "minmax", "decoder": "percentile"}


@dataclass(frozen=True)
class Int8Settings:
    """Options of the static int8 variant."""

    calibration: str | None = None  # one of CALIBRATION_METHODS for both graphs; None: DEFAULT_CALIBRATION
    percentile: float = 99.9  # share of activation values inside the range "percentile" calibration keeps
    per_channel: bool = False  # per-tensor measured as fast or faster on this CPU
    reduce_range: bool = False  # 7-bit weights: measured no gain here (module docstring)
    batch_size: int = 64  # calibration batch
    activation_symmetric: bool = False  # onnxruntime's ActivationSymmetric: zero point 128 for uint8 activations
    fp32_nodes: tuple[str, ...] = ()  # nodes of the rewritten graph kept fp32 besides head Sigmoids (export/mixed.py)
    keep_conv_transpose: tuple[str, ...] = ()  # ConvTranspose nodes of the fp32 graph left unrewritten, so fp32
    interleave: str = TRANSPOSE  # the decoder rewrite's interleave (DEPTH_TO_SPACE for int8-npu: 4-D tensors only)


def int8_rewrites(graph: str, interleave: str = TRANSPOSE) -> tuple[str, ...]:
    """The REWRITES names applied to graph before int8 quantization."""
    return tuple(f"{name}-d2s" if name == "conv-transpose-as-conv" and interleave == DEPTH_TO_SPACE else name
                 for name in INT8_REWRITES[graph])


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    if name not in methods:
        raise ValueError(f"calibration method {name!r} is not one of {', '.join(methods)}")
    return methods[name]


@dataclass(frozen=True)
class DynamicSettings:
    """Options of the int8-dynamic variant."""

    per_channel: bool = False
    reduce_range: bool = False


@dataclass(frozen=True)
class Fp16Settings:
    """Options of the fp16 variant."""

    keep_io_types: bool = True  # float32 at the boundary, as the model-dir contract says


def build_int8(src: Path, dst: Path, *, graph: str, calibration, settings: Int8Settings) -> None:
    """Static QDQ int8 of src (an fp32 graph) at dst, calibrated on `calibration` (the graph's input array)."""
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        prepare_int8(src, prepared, graph=graph, keep_conv_transpose=settings.keep_conv_transpose, interleave=settings.interleave)
        preflight(prepared, graph, calibration=calibration, settings=settings)  # seconds, before minutes of calibration (export/unshare.py)
        quantize_prepared(prepared, dst, graph=graph, calibration=calibration, settings=settings)


def prepare_int8(src: Path, dst: Path, *, graph: str, keep_conv_transpose=(), interleave: str = TRANSPOSE) -> None:
    """src with the graph's INT8_REWRITES applied and onnxruntime's pre-processing, at dst: the fp32 graph whose
    node names Int8Settings.fp32_nodes refers to. The ConvTransposes named in keep_conv_transpose are put back
    after the rewrite: a layer kept fp32 can run faster as the original ConvTranspose than as its Conv form."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    original = model = onnx.load(src)
    for name in int8_rewrites(graph, interleave):
        model = REWRITES[name](model)
    if keep_conv_transpose:
        model = restore_nodes(original, model, names=keep_conv_transpose)
    rewritten = Path(dst).with_suffix(".rewritten.onnx")
    try:
        onnx.save(model, rewritten)
        quant_pre_process(str(rewritten), str(dst), skip_symbolic_shape=True)
        # after pre-processing, whose optimizer may share equal constants again: the QDQ quantizer refuses a
        # weight read by several nodes (GroupNorm's InstanceNormalization scale and bias: export/unshare.py)
        onnx.save(unshare_initializers(onnx.load(dst)), dst)
    finally:
        rewritten.unlink(missing_ok=True)


def restore_nodes(original: onnx.ModelProto, rewritten: onnx.ModelProto, *, names) -> onnx.ModelProto:
    """rewritten with the nodes that conv_transpose_as_conv made of each original node in `names` (named
    "<name>/...", ending in that node's output tensor) replaced by the original node and its initializers."""
    by_name = {n.name: n for n in original.graph.node}
    unknown = [n for n in names if n not in by_name or by_name[n].op_type != "ConvTranspose"]
    if unknown:
        raise ValueError(f"keep_conv_transpose: {unknown[0]!r} is not a ConvTranspose node of the fp32 graph")
    nodes, placed = [], []
    for node in rewritten.graph.node:
        owner = next((n for n in names if node.name.startswith(n + "/")), None)
        if owner is None:
            nodes.append(node)
        elif owner not in placed:  # the rewrite's first node reads the original's input: same place in the order
            nodes.append(by_name[owner])
            placed.append(owner)
    if len(placed) != len(set(names)):
        raise ValueError(f"keep_conv_transpose: the rewrite left {sorted(set(names) - set(placed))} as they were")
    model = onnx.ModelProto()
    model.CopyFrom(rewritten)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    weights = {i.name: i for i in [*original.graph.initializer, *rewritten.graph.initializer]}
    del model.graph.initializer[:]
    model.graph.initializer.extend(w for name, w in weights.items() if name in used)
    del model.graph.value_info[:]  # the rewrite's tensors are gone; pre-processing infers shapes again
    onnx.checker.check_model(model)
    return model


def quantize_prepared(prepared: Path, dst: Path, *, graph: str, calibration, settings: Int8Settings, cache: Path | None = None) -> None:
    """Static QDQ int8 of a prepare_int8 graph at dst. cache: onnxruntime's calibration cache file (the ranges of
    every tensor for this graph, data and method; computed on first use), so a search calibrates once per method."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    method = _calibration_method(settings.calibration or DEFAULT_CALIBRATION[graph])
    model = onnx.load(prepared)
    # ConvTransposes left by the rewrite (it warned, naming them) stay fp32 too: ORT has no int8 kernel for them
    # a SiLU's Sigmoid is int8 like its Mul (export/silu.py); an output head's stays fp32
    # attention's Softmax and MatMuls of two activations stay fp32: faster and closer to fp32 (export/attention.py)
    keep_fp32 = [n.name for n in model.graph.node if n.op_type == "ConvTranspose"] + head_sigmoids(model) \
        + attention_fp32_nodes(model) + list(settings.fp32_nodes)
    input_name = model.graph.input[0].name
    if len(calibration) > settings.batch_size:  # whole batches only: ORT's histogram calibrators (percentile,
        calibration = calibration[:len(calibration) // settings.batch_size * settings.batch_size]  # entropy) stack them
    with quiet_quantizer(graph):
        quantize_static(
            str(prepared), str(dst), ArrayReader(input_name, calibration, batch_size=settings.batch_size, description=f"calibrating {graph}"),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=settings.per_channel, reduce_range=settings.reduce_range, calibrate_method=method, nodes_to_exclude=keep_fp32,
            extra_options={"CalibPercentile": settings.percentile, "ActivationSymmetric": settings.activation_symmetric},
            calibration_cache_path=cache,
        )


@dataclass(frozen=True)
class MixedSettings:
    """Options of the int8-mixed variant: int8 settings per graph (fp32_nodes among them), found by
    `quantize --search` (export/mixed.py)."""

    encoder: Int8Settings = Int8Settings()
    decoder: Int8Settings = Int8Settings()


def build_int8_mixed(src: Path, dst: Path, *, graph: str, calibration, settings: MixedSettings) -> None:
    build_int8(src, dst, graph=graph, calibration=calibration, settings=getattr(settings, graph))


def build_int8_dynamic(src: Path, dst: Path, *, graph: str, calibration, settings: DynamicSettings) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_quantizer(graph):
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=settings.per_channel,
                         reduce_range=settings.reduce_range, op_types_to_quantize=["MatMul", "Gemm"])


def build_fp16(src: Path, dst: Path, *, graph: str, calibration, settings: Fp16Settings) -> None:
    import warnings

    from onnxconverter_common.float16 import convert_float_to_float16

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        onnx.save(convert_float_to_float16(onnx.load(src), keep_io_types=settings.keep_io_types), dst)
    clipped = [str(w.message) for w in caught if "truncated" in str(w.message) or "clip" in str(w.message).lower()]
    if clipped:  # onnxconverter prints one UserWarning per tensor; one line says what was clipped
        print(f"fp16 {graph}: {len(clipped)} initializer(s) had values outside fp16's range or precision and "
              f"were clipped ({clipped[0].splitlines()[0][:120]})", file=sys.stderr)


@dataclass(frozen=True)
class NpuSettings:
    """Options of the fp32-npu and fp16-npu variants."""

    interleave: str = DEPTH_TO_SPACE  # 4-D tensors only: NNAPI's Transpose and Reshape take rank <= 4


def build_fp32_npu(src: Path, dst: Path, *, graph: str, calibration, settings: NpuSettings) -> None:
    """The fp32 graph with its ConvTransposes rewritten as Conv (the encoder has none: copied as it is)."""
    onnx.save(conv_transpose_as_conv(onnx.load(src), settings.interleave), dst)


def build_fp16_npu(src: Path, dst: Path, *, graph: str, calibration, settings: NpuSettings) -> None:
    """fp16 of the fp32-npu graph."""
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as tmp:
        rewritten = Path(tmp) / "rewritten.onnx"
        build_fp32_npu(src, rewritten, graph=graph, calibration=calibration, settings=settings)
        build_fp16(rewritten, dst, graph=graph, calibration=calibration, settings=Fp16Settings())


@contextlib.contextmanager
def quiet_quantizer(graph: str):
    """onnxruntime.quantization narrates on stdout ("Collecting tensor data", "Finding optimal threshold")
    and through logging: keep the tool's log to one line per graph."""
    import logging

    buffer = io.StringIO()
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        logging.getLogger().setLevel(level)
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    if lines:
        print(f"quantizing {graph}: onnxruntime.quantization reported {len(lines)} progress line(s), "
              f"last: {lines[-1].strip()[:100]}", file=sys.stderr)


def _int8_record(settings: Int8Settings, calibration_images: int) -> dict:
    return {"format": "QDQ U8S8", "calibration": {g: settings.calibration or DEFAULT_CALIBRATION[g] for g in GRAPH_NAMES},
            "percentile": settings.percentile, "per_channel": settings.per_channel,
            "weight_bits": 7 if settings.reduce_range else 8, "calibration_images": calibration_images,
            "rewrites": {g: list(int8_rewrites(g, settings.interleave)) for g in GRAPH_NAMES}, "fp32_nodes": [HEAD_SIGMOID, ATTENTION_FP32],
            "silu": SILU_INT8}


def _dynamic_record(settings: DynamicSettings, calibration_images: int) -> dict:
    return {"format": "dynamic S8 weights", "per_channel": settings.per_channel,
            "weight_bits": 7 if settings.reduce_range else 8, "quantized_ops": ["MatMul", "Gemm"]}


def _fp16_record(settings: Fp16Settings, calibration_images: int) -> dict:
    return {"format": "fp16 weights, float32 I/O"}


def _npu_record(precision: str) -> Callable[[NpuSettings, int], dict]:
    def record(settings: NpuSettings, calibration_images: int) -> dict:
        return {"format": f"{precision} weights, float32 I/O", "rewrites": {"decoder": ["conv-transpose-as-conv"]},
                "interleave": settings.interleave}
    return record


def _search_record(settings: MixedSettings, calibration_images: int) -> dict:
    raise ValueError("int8-mixed records the settings its search found (export/mixed.py), not a fixed set")


@dataclass(frozen=True)
class VariantSpec:
    """Everything about one variant, in one place: its name, how it is built from the fp32 graph, the settings
    type that build takes (and the QuantizeConfig field holding them), whether it needs calibration data (the
    graph's inputs), how `quantize` asks for it, and what its manifest entry records of its settings.

    Every variant may also get fixed-shape siblings (export/static.py) and is selected under the same quality
    budget (QuantizeConfig.min_psnr_db / max_elbo_rel; --search's own for int8-mixed)."""

    name: str
    build: Callable[..., None]  # build(src, dst, graph, calibration array or None, settings)
    settings: type
    record: Callable[..., dict]  # record(settings, calibration_images) -> the manifest's quality.<variant>.settings
    needs_calibration: bool
    default: bool = False  # in `quantize --variants`' default list
    from_search: bool = False  # made by `quantize --search`, never named in --variants

    @property
    def suffix(self) -> str:
        """What the variant adds to a graph's file name: encoder + ".int8.onnx"."""
        return f".{self.name}.onnx"

    @property
    def config_field(self) -> str | None:
        """The QuantizeConfig field that holds this variant's settings (None for a search's: it finds them)."""
        return None if self.from_search else self.name.replace("-", "_")


VARIANTS = {spec.name: spec for spec in (
    VariantSpec("int8", build_int8, Int8Settings, _int8_record, needs_calibration=True, default=True),
    VariantSpec("int8-dynamic", build_int8_dynamic, DynamicSettings, _dynamic_record, needs_calibration=False, default=True),
    VariantSpec("fp16", build_fp16, Fp16Settings, _fp16_record, needs_calibration=False, default=True),
    VariantSpec("int8-mixed", build_int8_mixed, MixedSettings, _search_record, needs_calibration=True, from_search=True),
    VariantSpec("fp32-npu", build_fp32_npu, NpuSettings, _npu_record("fp32"), needs_calibration=False),
    VariantSpec("fp16-npu", build_fp16_npu, NpuSettings, _npu_record("fp16"), needs_calibration=False),
    VariantSpec("int8-npu", build_int8, Int8Settings, _int8_record, needs_calibration=True),
)}
DEFAULT_VARIANTS = tuple(name for name, spec in VARIANTS.items() if spec.default)


def variant_spec(name: str) -> VariantSpec:
    """The VariantSpec of name; ValueError naming it and the known ones otherwise."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[name]


def variant_file(graph: str, variant: str) -> str:
    """File name of (graph, variant) in the model dir, e.g. decoder.int8.onnx."""
    return graph + variant_spec(variant).suffix
