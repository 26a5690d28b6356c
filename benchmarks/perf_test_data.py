"""`edgevae bench --perf-test-data DIR`: the model dir's graphs and seeded inputs in onnxruntime_perf_test's
layout, so the same graphs and inputs can be timed with onnxruntime's own tool on a phone or a board:

    DIR/<graph>-b<batch>/<variant>.onnx                   the graph (a hard link, or a copy across file systems)
    DIR/<graph>-b<batch>/test_data_set_0/input_0.pb       the input as an ONNX TensorProto, named as the graph's input

onnxruntime_perf_test reads test_data_set_* beside the model file it is given, e.g.
    onnxruntime_perf_test -e cpu -m times -r 200 -x 1 DIR/decoder-b1/int8.onnx
The inputs are the benchmark's own (benchmarks/candidates.py `inputs`): images in [0, 1] for the encoder,
z ~ N(0, I) for the decoder, numpy seed 0.
"""

import os
import shutil
from pathlib import Path

from edgevae.runtime.contract.manifest import GRAPH_NAMES

BATCH_SIZES = (1, 8, 64, 256)


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)


def write_perf_test_data(model_dir, out, *, batch_sizes=BATCH_SIZES) -> list[Path]:
    """Write the layout above for every variant, graph and batch size; returns the graph paths written."""
    from onnx import numpy_helper

    from edgevae.atomic import write_bytes
    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.inference.random_input import random_input

    model = load(model_dir)
    model.verify()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--perf-test-data {out} exists and is not a folder")
    written = []
    for graph in GRAPH_NAMES:
        name = model.manifest.io[graph].inputs[0]
        for batch in batch_sizes:
            folder = out / f"{graph}-b{batch}"
            (folder / "test_data_set_0").mkdir(parents=True, exist_ok=True)
            tensor = numpy_helper.from_array(random_input(model, graph, batch), name=name)
            write_bytes(folder / "test_data_set_0" / "input_0.pb", tensor.SerializeToString())
            for variant, graphs in model.manifest.variants.items():
                fixed = model.manifest.static.get(variant)
                if fixed is not None and fixed.batch != batch:  # a fixed-shape graph takes its own batch size only
                    continue
                target = folder / f"{variant}.onnx"
                _link_or_copy(model.path / graphs[graph].file, target)
                written.append(target)
    return written
