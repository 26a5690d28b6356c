"""Hostile round 2, point 2: a graph that runs for ever is refused at load (undeclared control flow), stopped at
its deadline (declared control flow), and stopped by SIGTERM while onnxruntime computes (runtime/inference/run_guard.py).
No verdict here depends on speed: the hostile graphs never finish, and HANG_S only turns a hang into a failure."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import resign, run_cli, shipped_model_dir

onnx = pytest.importorskip("onnx", reason="splices control flow into graphs with onnx, which the runtime's own install lacks")
from onnx import TensorProto, helper  # noqa: E402

from edgevae.runtime import ModelDirError, VAERuntime  # noqa: E402
from edgevae.runtime.contract.onnx_scan import GraphRefused, check_self_contained  # noqa: E402
from edgevae.runtime.inference.run_guard import RunStopped, default_timeout, run, stop_all_runs  # noqa: E402

HANG_S = 600
FOREVER = 10**12  # loop iterations: ~days at any speed


def _loop_body(op: str):
    """A subgraph that carries a float on: v + 1 (Loop's body) or the branch of an If."""
    v_in = helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])
    v_out = helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])
    one = helper.make_node("Constant", [], ["one"], value=helper.make_tensor("o", TensorProto.FLOAT, [], [1.0]))
    add = helper.make_node("Add", ["v_in", "one"], ["v_out"])
    if op == "Loop":
        cond_in = helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])
        cond_out = helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])
        i = helper.make_tensor_value_info("i", TensorProto.INT64, [])
        nodes = [one, add, helper.make_node("Identity", ["cond_in"], ["cond_out"])]
        return helper.make_graph(nodes, "body", [i, cond_in, v_in], [cond_out, v_out])
    return helper.make_graph([helper.make_node("Constant", [], ["v_out"], value=helper.make_tensor("b", TensorProto.FLOAT, [], [0.0]))],
                             "branch", [], [v_out])


def add_control_flow(model_dir, op: str = "Loop", graph: str = "decoder", manifest_declares: bool = False):
    """Splice a node with a subgraph into model_dir's graph so that its output feeds the result unchanged:
    out = Max(out, Min(v, 0)) with v >= 0. A Loop runs FOREVER iterations. The manifest is re-signed."""
    path = model_dir / f"{graph}.onnx"
    proto = onnx.load(path)
    out = proto.graph.output[0].name
    proto.graph.node[-1].output[0] = "pre_out"
    consts = [helper.make_node("Constant", [], ["trips"], value=helper.make_tensor("t", TensorProto.INT64, [], [FOREVER])),
              helper.make_node("Constant", [], ["true"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
              helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]))]
    if op == "Loop":
        flow = helper.make_node("Loop", ["trips", "true", "zero"], ["v"], body=_loop_body("Loop"))
    else:
        flow = helper.make_node("If", ["true"], ["v"], then_branch=_loop_body("If"), else_branch=_loop_body("If"))
    tail = [helper.make_node("Min", ["v", "zero"], ["vmin"]), helper.make_node("Max", ["pre_out", "vmin"], [out])]
    proto.graph.node.extend(consts + [flow] + tail)
    path.write_bytes(proto.SerializeToString())
    resign(model_dir, path.name)
    if manifest_declares:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        manifest["control_flow"] = [op]
        (model_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def looping(tmp_path, model_dir):
    folder = shipped_model_dir(tmp_path / "model")
    add_control_flow(folder)
    return folder


@pytest.mark.parametrize("op", ["Loop", "If"])
@pytest.mark.parametrize("graph", ["decoder", "encoder"])
def test_undeclared_control_flow_is_refused_at_load(tmp_path, model_dir, op, graph):
    folder = shipped_model_dir(tmp_path / "model")
    add_control_flow(folder, op, graph)
    rt = VAERuntime.load(folder, variant="fp32")
    with pytest.raises(ModelDirError, match=f"{graph}.onnx has a {op} node with a subgraph"):
        rt.sample(2) if graph == "decoder" else rt.encode(np.zeros((1, *rt.image_shape), np.float32))


@pytest.mark.parametrize("command", [["sample", "--n", "2", "--out", "s.png"], ["tune", "--budget-s", "1"],
                                     ["verify", "--variant", "fp32"]])
def test_every_command_refuses_a_looping_graph_in_one_line(tmp_path, looping, command):
    proc = run_cli(*command, "--model", looping, cwd=tmp_path, timeout=HANG_S)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "decoder.onnx has a Loop node with a subgraph" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_control_flow_in_a_function_or_nested_subgraph_is_found():
    """A Loop hidden inside an If's branch, or in a model-local function, is control flow too."""
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    loop = helper.make_node("Loop", ["", "c"], [], body=_loop_body("Loop"))
    inner = helper.make_graph([loop, helper.make_node("Constant", [], ["y"], value=helper.make_tensor("k", TensorProto.FLOAT, [], [0.0]))],
                              "inner", [], [out])
    outer = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph([outer], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])], [out])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()
    with pytest.raises(GraphRefused, match="If node"):
        check_self_contained(data)
    with pytest.raises(GraphRefused, match="Loop node"):
        check_self_contained(data, control_flow=("If",))
    check_self_contained(data, control_flow=("If", "Loop"))
    function = helper.make_function("custom", "F", ["c"], ["y"], [outer], [helper.make_opsetid("", 20)])
    call = helper.make_graph([helper.make_node("F", ["c"], ["y"], domain="custom")], "g",
                             [helper.make_tensor_value_info("c", TensorProto.BOOL, [])], [out])
    data = helper.make_model(call, functions=[function], opset_imports=[helper.make_opsetid("", 20),
                                                                        helper.make_opsetid("custom", 1)]).SerializeToString()
    with pytest.raises(GraphRefused, match="If node"):
        check_self_contained(data)


def test_declared_control_flow_is_stopped_at_its_deadline(tmp_path, model_dir):
    folder = shipped_model_dir(tmp_path / "model")
    add_control_flow(folder, manifest_declares=True)
    rt = VAERuntime.load(folder, variant="fp32", timeout_s=0.5)
    with pytest.raises(ModelDirError, match=r"decoder.onnx ran longer than 0.5 s on a batch of 2 and was stopped"):
        rt.sample(2)
    proc = run_cli("sample", "--model", folder, "--n", "2", "--timeout", "0.5", "--out", tmp_path / "s.png", timeout=HANG_S)
    assert proc.returncode == 2 and "ran longer than 0.5 s" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True])
def test_bad_timeouts_are_refused(model_dir, bad):
    from edgevae.runtime import InputError

    with pytest.raises(InputError, match="timeout_s must be a positive number of seconds"):
        VAERuntime.load(model_dir, timeout_s=bad)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_run_inside_onnxruntime(tmp_path, model_dir, signum):
    """SIGTERM while the decoder loops inside one session.run: the run is terminated, the process ends with one
    line and 128 + signal (130 for SIGINT), and the .npy's temporary file is gone."""
    folder = shipped_model_dir(tmp_path / "model")
    add_control_flow(folder, manifest_declares=True)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "edgevae", "sample", "--model", str(folder), "--variant", "fp32",
                             "--n", "4", "--out", str(out / "x.npy")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_S
    while not any(p.name.endswith(".tmp") for p in out.iterdir()):  # the temporary exists before the first decode
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "hung"
        time.sleep(0.02)
    time.sleep(0.5)  # not a verdict: lets the run enter onnxruntime, which a signal before it also passes
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert len(err.splitlines()) == 1 and list(out.iterdir()) == []


def test_stop_all_runs_reaches_runs_in_other_threads(tmp_path, model_dir):
    """The API's handle for an embedding app: stop_all_runs from any thread ends a run in flight."""
    import threading

    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.inference.sessions import new_session

    folder = shipped_model_dir(tmp_path / "model")
    add_control_flow(folder, manifest_declares=True)
    session = new_session(load(folder).graph_bytes("fp32", "decoder"), control_flow=("Loop",))
    caught = []

    def call():
        try:
            run(session, {"z": np.zeros((1, 64), np.float32)}, timeout_s=HANG_S)
        except RunStopped as err:
            caught.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    while not caught and thread.is_alive():
        stop_all_runs()  # repeated: the run may not have started at the first call
        thread.join(0.05)
    assert len(caught) == 1 and not caught[0].timed_out


def test_default_deadline_follows_the_measured_cost():
    assert default_timeout(None, 32) == 300.0  # nothing measured yet
    assert default_timeout(1e-4, 32) == 10.0  # a fast graph: the floor
    assert default_timeout(0.5, 32) == 1600.0  # 100 x 0.5 s x 32 inputs
