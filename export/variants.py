"""The quantized variants of a model dir: how each is built from the fp32 graph (a plain dict registry).

Measured on this project's 2-core AVX-512 VNNI CPU, onnxruntime 1.32 (see export/quantize.py's report):
- int8: static QDQ, U8S8 (uint8 activations, int8 weights), reduce_range=False as onnxruntime's docs
  advise for VNNI. Each graph first gets its INT8_REWRITES (export/rewrite.py, exact): the decoder's
  ConvTranspose -> Conv, since ORT has no int8 ConvTranspose; the encoder's 1-channel input padded to 4
  channels, since a reduction depth of 9 runs in a slow int8 path. The final Sigmoid stays fp32: an int8
  sigmoid rounds probabilities below 1/510 to 0, where only the BCE's probability floor bounds the loss
  (12-epoch model: test -ELBO +0.82% vs fp32 with it, +0.55% without).
  Decoder quality: with MinMax calibration 29.8 dB (5 epochs; no single layer kept fp32 gave more than
  30.0 dB) and 31.0 dB (12 epochs) vs fp32, under --select's 35 dB; hence DEFAULT_CALIBRATION below.
  Encoder speed-up over fp32, runtime session options, 1 thread, batch 1 / 8 / 64 / 256, median of
  per-round ratios over 31 interleaved rounds, 5-epoch model, 2 cores shared with a training run (shipped
  vs fp32 again: `edgevae quantize MODEL_DIR --select --threads 1`; the other rows were one-off builds):
    as shipped (input padded to 4 channels)   2.25x / 2.17x / 1.86-1.99x / 1.94-2.01x
    without the rewrite                       1.98x / 1.88x / 1.77-1.83x / 1.66-1.80x
    first Conv + LeakyRelu kept fp32          2.43x / 2.16x / 1.71-1.81x / 1.64-1.68x (its NCHWc output
      must be reordered and quantized: 3 ms of 12 at batch 64)
    first Conv as Expand + depthwise Conv     2.22x / 2.12x / 1.86-1.92x / 1.67-1.77x
    per-channel weights, or Gemm heads fp32: no faster (1.91x, 1.63x at batch 64), no better -ELBO.
  12-epoch model, as shipped: 2.17x / 2.07x / 1.82x / 1.94x. With 2 threads the ratio at batch 64 ranged
  1.38x-2.11x over 4 runs: fp32 gains from a free second core, int8 hardly (4.8 -> 5.0-5.3 ms).
  Encoder quality, every row (5 epochs): test -ELBO +0.06% vs fp32, mu max |diff| 0.20 (mean 0.014;
  mu spans +-4).
- int8-dynamic: Gemm/MatMul weights int8, activations quantized at run time. Convs stay fp32: dynamic
  int8 Convs run as ConvInteger, which made the encoder 5x SLOWER than fp32 (0.21x at batch 1, 0.18x at
  64, 1 thread); with the Gemm heads alone it measured 1.31x / 1.06x (decoder: 1.04x / 1.01x either way).
- fp16: weights and compute in fp16 with float32 I/O kept (a size win; the CPU provider computes fp32).
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from .calibrate import ArrayReader
from .rewrite import REWRITES

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_REWRITES = {"encoder": ("pad-input-channels",), "decoder": ("conv-transpose-as-conv",)}  # graph -> REWRITES names
# Calibration per graph unless Int8Settings.calibration names one for both. Decoder activations have rare
# outliers that MinMax spends the uint8 range on; 12-epoch model, decoder PSNR vs fp32 / test -ELBO change:
# minmax 31.0 dB / +0.55%, percentile 99.999: 32.9 dB, 99.99: 34.6 dB, 99.9: 36.0 dB / +0.19%, 99.5: 33.3
# dB. The encoder's mu is hurt by clipping: percentile 99.9 there took mu max |diff| 0.15 -> 1.52.
DEFAULT_CALIBRATION = {"encoder": "minmax", "decoder": "percentile"}


@dataclass(frozen=True)
class Int8Settings:
    """Options of the static int8 variant."""

    calibration: str | None = None  # one of CALIBRATION_METHODS for both graphs; None: DEFAULT_CALIBRATION
    percentile: float = 99.9  # share of activation values inside the range "percentile" calibration keeps
    per_channel: bool = False  # per-tensor measured as fast or faster on this CPU
    batch_size: int = 64  # calibration batch


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    if name not in methods:
        raise ValueError(f"calibration method {name!r} is not one of {', '.join(methods)}")
    return methods[name]


def build_int8(src: Path, dst: Path, graph: str, calibration, settings: Int8Settings) -> None:
    """Static QDQ int8 of src (an fp32 graph) at dst, calibrated on `calibration` (the graph's input array)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = _calibration_method(settings.calibration or DEFAULT_CALIBRATION[graph])
    model = onnx.load(src)
    for name in INT8_REWRITES[graph]:
        model = REWRITES[name](model)
    keep_fp32 = [n.name for n in model.graph.node if n.op_type == "Sigmoid"]
    input_name = model.graph.input[0].name
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as tmp:
        rewritten, prepared = Path(tmp) / "rewritten.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, rewritten)
        quant_pre_process(str(rewritten), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(dst), ArrayReader(input_name, calibration, settings.batch_size, f"calibrating {graph}"),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=settings.per_channel, reduce_range=False, calibrate_method=method, nodes_to_exclude=keep_fp32,
            extra_options={"CalibPercentile": settings.percentile},
        )


def build_int8_dynamic(src: Path, dst: Path, graph: str, calibration, settings: Int8Settings) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=settings.per_channel, reduce_range=False,
                     op_types_to_quantize=["MatMul", "Gemm"])


def build_fp16(src: Path, dst: Path, graph: str, calibration, settings: Int8Settings) -> None:
    from onnxconverter_common.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(src), keep_io_types=True), dst)


# variant -> (file suffix, builder(src, dst, graph, calibration array or None, Int8Settings), needs calibration)
VARIANTS = {
    "int8": (".int8.onnx", build_int8, True),
    "int8-dynamic": (".int8-dynamic.onnx", build_int8_dynamic, False),
    "fp16": (".fp16.onnx", build_fp16, False),
}


def variant_file(graph: str, variant: str) -> str:
    """File name of (graph, variant) in the model dir, e.g. decoder.int8.onnx."""
    return graph + VARIANTS[variant][0]
