"""A model dir is untrusted input (issue 15, points 1, 2, 4, 7, 10): a hostile dir whose hashes all match
still cannot read files outside it, hang, exhaust memory, drive the terminal, or hand garbage to the user."""

import json
import os
import shutil

import numpy as np
import pytest
from helpers import resign, run_cli, shipped_model_dir

from edgevae.runtime import InputError, ModelDirError, VAERuntime
from edgevae.runtime.contract.manifest import load

try:
    import onnx
    from onnx import TensorProto, helper
except ImportError:  # the runtime's own install (CI runs tests/runtime there): the tests that build graphs skip
    onnx = None
needs_onnx = pytest.mark.skipif(onnx is None, reason="builds ONNX graphs with onnx, which the runtime's own install lacks")


@pytest.fixture
def hostile(tmp_path, model_dir):
    """A fresh copy of a good fp32 model dir for each test to damage."""
    return shipped_model_dir(tmp_path / "model")


def _edit(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@needs_onnx
def test_external_data_is_refused_and_the_cwd_file_never_read(tmp_path, hostile):
    """Point 1: an initializer stored as external data at a path relative to the user's current folder."""
    secret = tmp_path / "notes" / "private.txt"
    secret.parent.mkdir()
    secret.write_bytes(np.full(64 * 3136, 0.5, np.float32).tobytes())
    proto = onnx.load(hostile / "decoder.onnx")
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="notes/private.txt")
    (hostile / "decoder.onnx").write_bytes(proto.SerializeToString())
    resign(hostile, "decoder.onnx")
    out = tmp_path / "s.png"
    result = run_cli("sample", "--model", hostile, "--variant", "fp32", "--n", 4, "--out", out, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "decoder.onnx refers to external data" in result.stderr and not out.exists()


def _external(tensor, location="x.bin", entries=True):
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    if entries:
        tensor.external_data.add(key="location", value=location)
    return tensor


@needs_onnx
@pytest.mark.parametrize("where", ["initializer", "constant node", "if branch", "sparse", "location flag only"])
def test_external_data_scan_finds_tensors_wherever_they_sit(where):
    from edgevae.runtime.contract.onnx_scan import GraphRefused, check_self_contained

    value = helper.make_tensor("c", TensorProto.FLOAT, [2], np.ones(2, np.float32).tobytes(), raw=True)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes, inits, sparse = [helper.make_node("Constant", [], ["y"], value=value)], [], []
    if where == "initializer":
        nodes, inits = [helper.make_node("Identity", ["c"], ["y"])], [_external(value)]
    elif where == "constant node":
        nodes = [helper.make_node("Constant", [], ["y"], value=_external(value))]
    elif where == "if branch":
        branch = helper.make_graph([helper.make_node("Constant", [], ["y"], value=_external(value))], "b", [], [out])
        nodes = [helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
                 helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
    elif where == "sparse":
        indices = helper.make_tensor("i", TensorProto.INT64, [1], [0])
        sparse = [helper.make_sparse_tensor(_external(helper.make_tensor("s", TensorProto.FLOAT, [1], [1.0])), indices, [2])]
        nodes = [helper.make_node("Identity", ["s"], ["y"])]
    else:
        nodes = [helper.make_node("Constant", [], ["y"], value=_external(value, entries=False))]
    graph = helper.make_graph(nodes, "g", [], [out], inits, sparse_initializer=sparse)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()
    with pytest.raises(GraphRefused, match="external data"):
        check_self_contained(data)


def test_external_data_scan_passes_real_graphs_and_refuses_garbage(model_dir):
    from edgevae.runtime.contract.onnx_scan import GraphRefused, check_self_contained

    check_self_contained((model_dir / "decoder.onnx").read_bytes())
    for junk in (b"\xff" * 10, b"\x0a\xff\xff\xff\xff\x0f", np.random.default_rng(0).bytes(4096)):
        with pytest.raises(GraphRefused):
            check_self_contained(junk)


def test_a_symlink_to_an_outside_file_is_not_read_even_with_its_hash(tmp_path, hostile):
    """Point 2: decoder.onnx -> a file outside the dir, manifest re-signed with that file's hash."""
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret outside the model dir")
    (hostile / "decoder.onnx").unlink()
    (hostile / "decoder.onnx").symlink_to(outside)
    resign(hostile, "decoder.onnx")
    with pytest.raises(ModelDirError, match="decoder.onnx is a symbolic link") as info:
        VAERuntime.load(hostile, variant="fp32")
    assert "sha256" not in str(info.value)  # nothing of the outside file's hash is shown


def test_manifest_as_fifo_or_dev_zero_is_refused_at_once(hostile):
    (hostile / "manifest.json").unlink()
    os.mkfifo(hostile / "manifest.json")  # opened without blocking (O_NONBLOCK), refused from its type, never read
    with pytest.raises(ModelDirError, match="manifest.json is not a regular file"):
        load(hostile)
    (hostile / "manifest.json").unlink()
    (hostile / "manifest.json").symlink_to("/dev/zero")
    with pytest.raises(ModelDirError, match="manifest.json is a symbolic link"):
        load(hostile)


def test_sizes_are_checked_before_reading(hostile):
    """A huge (sparse) graph file is refused from its size alone; a manifest over 1 MiB likewise."""
    with open(hostile / "encoder.onnx", "r+b") as f:
        f.truncate(20 << 30)  # 20 GiB, sparse: costs no disk
    with pytest.raises(ModelDirError, match=r"encoder.onnx is 21474836480 bytes, the manifest says"):
        VAERuntime.load(hostile, variant="fp32")
    _edit(hostile, lambda m: m.update(padding="x" * (2 << 20)))
    with pytest.raises(ModelDirError, match="more than the 1048576 allowed"):
        load(hostile)


def test_deeply_nested_manifest_is_a_model_dir_error(hostile):
    (hostile / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelDirError, match="nested too deeply|not a JSON object"):
        load(hostile)


def test_info_escapes_names_from_the_manifest(hostile):
    """Point 4: a variant name that would set the terminal title and clear the screen."""
    evil = "\x1b]0;pwned\x07\x1b[2Jall checks passed\n"
    _edit(hostile, lambda m: m["variants"].update({evil: m["variants"]["fp32"]}))
    result = run_cli("info", "--model", hostile)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout
    assert not any(line.startswith("all checks passed") for line in result.stdout.splitlines())
    bad = run_cli("sample", "--model", hostile, "--variant", "\x1b[2J", "--n", 1, "--out", hostile / "x.png")
    assert bad.returncode == 2 and "\x1b" not in bad.stderr and len(bad.stderr.splitlines()) == 1


def _decoder(output_value: float, dtype=None, batch_from_input: bool = True, latent: int = 64):
    """A decoder graph z [batch, latent] -> x_hat filled with output_value (of dtype, float32 by default); with
    batch_from_input False it returns 2 rows whatever the batch (a graph that ignores the batch size)."""
    dtype = TensorProto.FLOAT if dtype is None else dtype
    nodes = [helper.make_node("Shape", ["z"], ["zshape"], start=0, end=1),
             helper.make_node("Concat", ["zshape" if batch_from_input else "two", "tail"], ["shape"], axis=0),
             helper.make_node("ConstantOfShape", ["shape"], ["x_hat"],
                              value=helper.make_tensor("v", dtype, [1], [output_value]))]
    inits = [helper.make_tensor("tail", TensorProto.INT64, [3], [1, 28, 28]),
             helper.make_tensor("two", TensorProto.INT64, [1], [2])]
    graph = helper.make_graph(nodes, "decoder", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent])],
                              [helper.make_tensor_value_info("x_hat", dtype, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("case, graph, message", [
    ("ignores batch", _decoder(0.5, batch_from_input=False), r"returned x_hat as float32 \[2, 1, 28, 28\] for a batch of 32"),
    ("NaN", _decoder(float("nan")), "returned NaN or inf in x_hat for finite input"),
    ("inf", _decoder(float("inf")), "returned NaN or inf"),
    ("5.0", _decoder(5.0), r"values in \[5, 5\], outside the \[0, 1\]"),
    ("-3.0", _decoder(-3.0), r"outside the \[0, 1\]"),
    ("int64", _decoder(1, TensorProto.INT64), "x_hat is not a float32 tensor"),
] if onnx else [])  # built at collection: without onnx, no cases (skipped)
def test_graph_outputs_are_checked_and_blamed_on_the_model_dir(tmp_path, hostile, case, graph, message):
    """Point 7: broken or hostile decoders whose hashes match."""
    (hostile / "decoder.onnx").write_bytes(graph.SerializeToString())
    resign(hostile, "decoder.onnx")
    with pytest.raises(ModelDirError, match=message):
        VAERuntime.load(hostile, variant="fp32").sample(64, seed=0)
    out = tmp_path / "s.png"
    result = run_cli("sample", "--model", hostile, "--variant", "fp32", "--n", 64, "--out", out)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "model dir" in result.stderr
    assert not out.exists()


@needs_onnx
def test_float64_input_graph_is_refused(hostile):
    graph = _decoder(0.5)
    graph.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    (hostile / "decoder.onnx").write_bytes(graph.SerializeToString())
    resign(hostile, "decoder.onnx")
    with pytest.raises(ModelDirError, match="z is not a float32 tensor"):
        VAERuntime.load(hostile, variant="fp32").sample(2, seed=0)


def test_a_huge_z_is_still_the_callers_fault(rt):
    from helpers import overflowing_z

    with pytest.raises(InputError, match="too large for the decoder"):
        rt.decode(overflowing_z(rt))


@pytest.mark.parametrize("call", [
    lambda rt: rt.sample(2, seed=-1), lambda rt: rt.sample(2, seed="abc"), lambda rt: rt.sample(2, seed=1.5),
    lambda rt: rt.reconstruct(rt.sample(1, seed=0), seed=-5),
    lambda rt: rt.interpolate(rt.sample(1, seed=0)[0], rt.sample(1, seed=1)[0], steps=10**12),
    lambda rt: rt.sample(10**12), lambda rt: rt.decode(np.zeros((2, rt.latent_dim), np.float64)[:, :3]),
])
def test_bad_api_arguments_raise_input_error(rt, call):
    """Point 10: never ValueError/TypeError/MemoryError from inside numpy or onnxruntime."""
    with pytest.raises(InputError):
        call(rt)


@pytest.mark.parametrize("kwargs, error", [
    ({"variant": []}, InputError), ({"variant": None}, InputError), ({"model_dir": 123}, InputError),
    ({"variant": "int4"}, ModelDirError), ({"threads": "2"}, InputError), ({"providers": "CPUExecutionProvider"}, InputError),
])
def test_bad_load_arguments(model_dir, kwargs, error):
    with pytest.raises(error):
        VAERuntime.load(**({"model_dir": model_dir} | kwargs))


def test_selection_keys_and_values_are_checked(hostile):
    for selection in ({"decoder": {"²": "fp32"}}, {"decoder": {"8": ["fp32"]}}, {"nope": {"8": "fp32"}}):
        _edit(hostile, lambda m: m.update(selection=selection))
        with pytest.raises(ModelDirError, match="selection"):
            VAERuntime.load(hostile)


def test_nothing_is_read_outside_the_dir_through_a_linked_dir_entry(tmp_path, hostile):
    """A name with a folder part never reaches the file system."""
    shutil.copy(hostile / "decoder.onnx", tmp_path / "decoder.onnx")
    _edit(hostile, lambda m: m["variants"]["fp32"]["decoder"].update(file="../decoder.onnx"))
    with pytest.raises(ModelDirError, match="not a plain file name"):
        load(hostile)
