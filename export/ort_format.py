"""`--ort-format`: ORT-format copies of the fp32 graphs, for ORT Mobile and reduced-operator builds.

onnxruntime's own converter does the work (optimisation style "Fixed", its default: the graph is
optimised once, at conversion, so a minimal build needs no optimiser). It also writes
required_operators.config, the operator list a reduced-operator onnxruntime build is compiled with
(build.py --include_ops_by_config); the manifest records both.
"""

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgevae.runtime.contract.manifest import OrtFormat, OrtGraph, file_entry
from edgevae.runtime.contract.typed_json import to_json

CONFIG = "required_operators.config"


def required_operators(config: Path) -> dict[str, list[str]]:
    """{"domain;opset": [op, ...]} from a required_operators.config ("domain;opset;op1,op2" lines, '#' comments)."""
    ops = {}
    for line in config.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            domain, opset, names = line.strip().split(";")
            ops[f"{domain};{opset}"] = sorted(names.split(","))
    return ops


def max_abs_diff_ort_vs_onnx(onnx_path: Path, ort_path: Path) -> float:
    """Largest output difference of the .ort against its .onnx on one seeded float32 batch of 3."""
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (onnx_path, ort_path)]
    x = sessions[0].get_inputs()[0]
    feed = {x.name: np.random.default_rng(0).random((3, *x.shape[1:]), dtype=np.float32)}
    outs = [s.run(None, feed) for s in sessions]
    return max(float(np.max(np.abs(a - b))) for a, b in zip(*outs))


def convert_to_ort(model_dir: Path, onnx_files: list[str]) -> dict:
    """Write X.ort beside each X.onnx in model_dir plus required_operators.config; the manifest's "ort" entry.

    Every .onnx in model_dir is converted: call it while the folder holds only the fp32 graphs.
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    model_dir = Path(model_dir)
    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)  # it logs at INFO to stderr by default
    with contextlib.redirect_stdout(io.StringIO()):  # the converter narrates each step on stdout
        convert_onnx_models_to_ort(model_dir, optimization_styles=[OptimizationStyle.Fixed])
    graphs = {}
    for name in onnx_files:
        onnx_path = model_dir / name
        ort_path = onnx_path.with_suffix(".ort")
        if not ort_path.is_file():
            raise RuntimeError(f"onnxruntime's converter wrote no {ort_path.name}")
        entry = file_entry(ort_path)
        graphs[onnx_path.stem] = OrtGraph(entry.file, entry.sha256, entry.bytes, max_abs_diff_ort_vs_onnx(onnx_path, ort_path))
    return OrtFormat(onnxruntime=ort.__version__, optimization_style="Fixed", optimization_level="all", graphs=graphs,
                     required_operators=to_json(file_entry(model_dir / CONFIG)) | {
                         "operators": required_operators(model_dir / CONFIG)})
