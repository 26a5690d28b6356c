"""`edgevae bench --perf-test-data DIR` (benchmarks/perf_test_data.py): onnxruntime_perf_test's layout, read back with onnx."""

import numpy as np
from helpers import run_cli


def test_perf_test_data_layout_reads_back_with_onnx(tmp_path, model_dir):
    import onnx
    from onnx import numpy_helper

    from edgevae.runtime.contract.manifest import load

    out = tmp_path / "perf"
    result = run_cli("bench", "--model", model_dir, "--perf-test-data", out)
    assert result.returncode == 0, result.stderr
    model = load(model_dir)
    expected = {"encoder": lambda b: (b, *model.image_shape), "decoder": lambda b: (b, model.latent_dim)}
    for graph, shape in expected.items():
        for batch in (1, 8, 64, 256):
            folder = out / f"{graph}-b{batch}"
            tensor = onnx.load_tensor(str(folder / "test_data_set_0" / "input_0.pb"))
            array = numpy_helper.to_array(tensor)
            assert tensor.name == model.manifest.io[graph].inputs[0]
            assert array.shape == shape(batch) and array.dtype == np.float32 and np.isfinite(array).all()
            graph_file = folder / "fp32.onnx"
            assert graph_file.read_bytes() == model.graph_bytes("fp32", graph)
            proto = onnx.load(str(graph_file))
            assert proto.graph.input[0].name == tensor.name  # perf_test binds input_0 to the graph's first input


def test_bench_needs_out_or_perf_test_data(model_dir):
    result = run_cli("bench", "--model", model_dir)
    assert result.returncode == 2 and "--perf-test-data" in result.stderr
