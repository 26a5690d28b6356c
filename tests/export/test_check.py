"""`edgevae check` (export/check.py) and the `targets` record behind `edgevae info`'s summary: onnxruntime's own
usability checker and sessions decide, on the shipped model's graphs and their fixed-shape and NPU forms."""

import json
import subprocess
import sys

import onnx
import pytest
from helpers import run_cli

from edgevae.export.check import TARGET_SPECS, fit, ort_tools
from edgevae.export.rewrite import DEPTH_TO_SPACE, conv_transpose_as_conv
from edgevae.export.static import fix_batch
from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR
from edgevae.runtime.device.targets import TARGETS


def graph(file: str, batch: int | None = None, npu: bool = False) -> bytes:
    model = onnx.load(DEFAULT_MODEL_DIR / file)
    model = conv_transpose_as_conv(model, DEPTH_TO_SPACE) if npu else model
    return (fix_batch(model, batch) if batch else model).SerializeToString()


def test_target_names_are_one_list():
    assert tuple(TARGET_SPECS) == TARGETS


def test_dynamic_shapes_keep_every_node_off_nnapi_and_say_so():
    nnapi = fit(graph("decoder.onnx"), ["nnapi"])["nnapi"]
    assert nnapi.taken == 0 and nnapi.partitions == 0 and nnapi.nodes > 0
    assert "dynamic shapes" in nnapi.why and "--static-batch" in nnapi.why["dynamic shapes"]


def test_fixed_shapes_leave_only_conv_transpose_off_nnapi():
    data = graph("decoder.onnx", batch=1)
    nnapi = fit(data, ["nnapi"])["nnapi"]
    conv_transposes = sum(n.op_type == "ConvTranspose" for n in onnx.load_from_string(data).graph.node)
    assert nnapi.taken == nnapi.nodes - conv_transposes and nnapi.partitions > 1
    assert set(nnapi.why) == {"ai.onnx:ConvTranspose"} and "operator list" in nnapi.why["ai.onnx:ConvTranspose"]


def test_the_npu_decoder_at_a_fixed_batch_is_one_partition_on_nnapi_and_coreml():
    fits = fit(graph("decoder.onnx", batch=1, npu=True), ["nnapi", "coreml"])
    for target in ("nnapi", "coreml"):
        assert (fits[target].taken, fits[target].partitions, fits[target].why) == (fits[target].nodes, 1, {})


def test_counts_are_onnxruntimes_own_checker_plus_nnapis_rank_limit(tmp_path):
    """CoreML is onnxruntime's checker exactly; NNAPI too, but for inputs of rank > 4 (the int8 decoder's 5-D
    channels-last interleave), which onnxruntime's NNAPI op builders refuse and its Python checker lets through."""
    checker, utils = ort_tools("mobile_helpers.usability_checker"), ort_tools("onnx_model_utils")
    data = graph("decoder.int8.onnx", batch=1)
    (tmp_path / "g.onnx").write_bytes(data)
    utils.optimize_model(tmp_path / "g.onnx", tmp_path / "o.onnx")
    model = utils.ModelProtoWithShapeInfo(tmp_path / "o.onnx").model_with_shape_info
    theirs = {"nnapi": checker.check_nnapi_partitions(model, True),
              "coreml": checker.check_coreml_partitions(model, True, "coreml_supported_mlprogram_ops.md")}
    ours = fit(data, ["nnapi", "coreml"])
    coreml = theirs["coreml"]
    assert (ours["coreml"].nodes, ours["coreml"].taken, ours["coreml"].partitions) == (
        coreml.num_nodes, coreml.num_supported_nodes, coreml.num_partitions)
    assert theirs["nnapi"].num_supported_nodes == theirs["nnapi"].num_nodes  # what onnxruntime's checker claims
    assert ours["nnapi"].taken < ours["nnapi"].nodes and ours["nnapi"].partitions > 1
    assert {"ai.onnx:Transpose", "ai.onnx:Reshape"} <= set(ours["nnapi"].why)
    assert all("rank > 4" in ours["nnapi"].why[op] for op in ("ai.onnx:Transpose", "ai.onnx:Reshape"))


def test_cpu_is_measured_by_a_session_here_and_absent_providers_are_unknown_not_guessed():
    fits = fit(graph("encoder.int8.onnx"), ["cpu", "xnnpack", "qnn"])
    assert (fits["cpu"].taken, fits["cpu"].partitions) == (fits["cpu"].nodes, 1) and "session" in fits["cpu"].method
    for target in ("xnnpack", "qnn"):
        assert fits[target].taken is None and fits[target].partitions is None
        assert "ships no operator list" in fits[target].why[""]


def test_check_cli_prints_a_table_and_json_without_importing_torch():
    code = ("import sys; from edgevae.cli import main; status = main(['check', '--target', 'all', '--json']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    body, marker = result.stdout.strip().rsplit("\n", 1)
    assert marker == "NO-TORCH"
    record = json.loads(body)
    assert set(record["fits"]) == {"fp32", "int8"} and set(record["fits"]["fp32"]["decoder"]) == set(TARGETS)
    table = run_cli("check", "--target", "nnapi")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["variant", "graph", "nnapi"]


@pytest.mark.parametrize("args, message", [(["--target", "gpu"], "invalid choice"), (["--model", "/nonexistent"], "does not exist")])
def test_check_refuses_bad_input_in_one_line(args, message):
    result = run_cli("check", *args)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_info_summarises_the_record_or_says_how_to_make_it(model_dir):
    result = run_cli("info", "--model", model_dir)  # exported here: export recorded it
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[14:].startswith(TARGETS)]
    assert [line[14:].split(":")[0] for line in lines] == list(TARGETS)
    assert "cpu: both graphs whole, in one partition each: fp32" in result.stdout
    shipped = run_cli("info")  # made before the record existed
    assert "edgevae check --model DIR" in shipped.stdout


def test_a_graph_onnxruntimes_tools_cannot_prepare_is_recorded_as_unknown_not_an_error():
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])  # declares y as an int64 tensor: strict shape inference refuses it
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 4])])
    fits = fit(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString())
    assert set(fits) == set(TARGETS) and all(f.taken is None and f.why[""] for f in fits.values())
