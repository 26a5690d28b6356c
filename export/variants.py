"""The quantized variants of a model dir: how each is built from the fp32 graph (a plain dict registry).

Measured on this project's 2-core AVX-512 VNNI CPU, onnxruntime 1.32 (see export/quantize.py's report):
- int8: static QDQ, U8S8 (uint8 activations, int8 weights), reduce_range=False as onnxruntime's docs
  advise for VNNI. The decoder is first rewritten ConvTranspose -> Conv (export/rewrite.py), since ORT
  has no int8 ConvTranspose. The final Sigmoid stays fp32: an int8 sigmoid rounds probabilities below
  1/510 to exactly 0, which makes the Bernoulli log-likelihood of a non-zero pixel blow up.
- int8-dynamic: weights int8, activations quantized at run time (only Gemm/MatMul benefit here).
- fp16: weights and compute in fp16 with float32 I/O kept (a size win; the CPU provider computes fp32).
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from .calibrate import ArrayReader
from .rewrite import conv_transpose_as_conv

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Int8Settings:
    """Options of the static int8 variant."""

    calibration: str = "minmax"  # one of CALIBRATION_METHODS
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

    method = _calibration_method(settings.calibration)
    model = onnx.load(src)
    if graph == "decoder":
        model = conv_transpose_as_conv(model)
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
        )


def build_int8_dynamic(src: Path, dst: Path, graph: str, calibration, settings: Int8Settings) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=settings.per_channel, reduce_range=False)


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
