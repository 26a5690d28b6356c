"""Fixed-shape variants (export/static.py; the manifest's `static`; the runtime, goldens and verify running them):
built from the shipped model's graphs, so these run in the quick tier."""

import dataclasses
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import flip_byte, run_cli

from edgevae.export.static import add_static, fix_batch, parse_batches, plan
from edgevae.runtime import InputError, ModelDirError, VAERuntime
from edgevae.runtime.device import golden as goldens
from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.device.profile import Choice, Plan


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory):
    """The shipped model with fixed-shape fp32 siblings at batch 2 and 3, and their goldens (3 does not divide the
    8 golden inputs: they are repeated to 9)."""
    folder = tmp_path_factory.mktemp("static") / "model"
    shutil.copytree(contract.DEFAULT_MODEL_DIR, folder)
    model = contract.load(folder)
    manifest = add_static(folder, model.manifest, siblings=plan(model.manifest, (), keep=[("fp32", 2), ("fp32", 3)]))
    golden, files = goldens.build(contract.ModelDir(folder, manifest), ["fp32-b2", "fp32-b3"],
                                  inputs=goldens.read_inputs(model), previous=model.manifest.golden, source="test")
    goldens.write_files(folder, files)
    contract.write(folder, dataclasses.replace(manifest, golden=golden))
    return folder


@pytest.mark.parametrize("text, expected", [("1,8", (1, 8)), ("8, 1,8", (1, 8)), ("4096", (4096,))])
def test_batch_lists_parse(text, expected):
    assert parse_batches(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "a", "", "1,,2", "1.5", "²", "4097", "1;8"])
def test_a_batch_list_that_is_not_positive_integers_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="--static-batch"):
        parse_batches(text)


@pytest.mark.parametrize("text", ["0", "x,1"])
def test_cli_refuses_a_bad_batch_list_in_one_line(tmp_path, text):
    result = run_cli("quantize", tmp_path / "missing", "--static-batch", text)  # the list is refused before the dir
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "--static-batch" in result.stderr


@pytest.mark.parametrize("file", ["decoder.onnx", "decoder.int8.onnx", "encoder.int8.onnx"])
def test_fixed_batch_graphs_have_every_shape_fixed_and_compute_the_same(file):
    source = onnx.load(contract.DEFAULT_MODEL_DIR / file)
    fixed = fix_batch(source, 3)
    values = [*fixed.graph.input, *fixed.graph.output, *fixed.graph.value_info]
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in values]
    assert all(d and all(x > 0 for x in d) for d in dims)  # no dim_param, no unknown dimension anywhere
    assert all(d[0] == 3 for d in dims[:len(fixed.graph.input) + len(fixed.graph.output)])
    name = source.graph.input[0].name
    shape = [3, *[d.dim_value for d in source.graph.input[0].type.tensor_type.shape.dim[1:]]]
    feed = {name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)  # noqa: E731
    for got, expected in zip(run(fixed), run(source)):
        assert got.shape == expected.shape and np.array_equal(got, expected)  # same kernels on the same numbers


def test_a_graph_with_another_dynamic_dimension_is_refused():
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "width"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(ValueError, match="only its batch"):
        fix_batch(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), 1)


def _raw_with_static(**static):
    raw = json.loads((contract.DEFAULT_MODEL_DIR / contract.MANIFEST).read_text())
    raw["variants"]["fp32-b1"] = raw["variants"]["fp32"]
    raw["static"] = static
    return raw


@pytest.mark.parametrize("static, message", [
    ({"fp32-b1": {"base": "nope", "batch": 1}}, "base"),
    ({"fp32-b1": {"base": "fp32-b1", "batch": 1}}, "base"),
    ({"nope": {"base": "fp32", "batch": 1}}, "listed variant"),
    ({"fp32-b1": {"base": "fp32", "batch": 0}}, "outside 1..4096"),
    ({"fp32-b1": {"base": "fp32", "batch": 5000}}, "outside 1..4096"),
    ({"fp32-b1": {"base": "fp32", "batch": 1}, "int8": {"base": "fp32", "batch": 1}}, "two variants"),
])
def test_static_entries_are_checked_naming_the_field(static, message):
    with pytest.raises(ValueError, match=message):
        contract.parse_manifest(_raw_with_static(**static))


def test_selection_may_not_name_a_fixed_shape_variant():
    raw = _raw_with_static(**{"fp32-b1": {"base": "fp32", "batch": 1}})
    raw["selection"] = {"decoder": {"1": "fp32-b1"}}
    with pytest.raises(ValueError, match="fixed-shape variant 'fp32-b1'"):
        contract.parse_manifest(raw)


def test_a_variant_with_a_matching_batch_runs_its_fixed_shape_sibling_and_the_same_numbers(static_dir):
    rt = VAERuntime.load(static_dir, variant="fp32", threads=1)
    assert [rt.choice("decoder", n).variant for n in (1, 2, 3, 4)] == ["fp32", "fp32-b2", "fp32-b3", "fp32"]
    z = np.random.default_rng(0).standard_normal((3, rt.latent_dim)).astype(np.float32)
    direct = ort.InferenceSession(str(static_dir / "decoder.onnx"), providers=["CPUExecutionProvider"])
    for n in (2, 3, 1):
        assert np.array_equal(rt.decode(z[:n]), direct.run(None, {"z": z[:n]})[0])
    assert {key[0] for key in rt._sessions} == {"fp32-b2", "fp32-b3", "fp32"}  # each batch ran its own graph


def test_a_fixed_shape_variant_asked_for_by_name_runs_whole_batches_and_never_pads(static_dir):
    fixed = VAERuntime.load(static_dir, variant="fp32-b2", threads=1)
    plain = VAERuntime.load(static_dir, variant="fp32", threads=1)
    z = np.random.default_rng(1).standard_normal((4, fixed.latent_dim)).astype(np.float32)
    assert np.array_equal(fixed.decode(z), plain.decode(z))  # 4 rows: two calls of 2
    assert np.allclose(fixed.sample(6, seed=3), plain.sample(6, seed=3), atol=0, rtol=0)  # the same noise stream
    for call in (lambda: fixed.decode(z[:3]), lambda: fixed.sample(5, seed=0)):
        with pytest.raises(InputError, match="fixed batch of 2"):
            call()


def test_auto_maps_a_profiles_fixed_shape_pick_back_to_its_base_at_other_sizes(static_dir):
    model = contract.load(static_dir)
    # no profile: the sibling runs whenever the batch matches
    assert Plan("fp32", None).choose(model, "decoder", batch=2).variant == "fp32-b2"
    assert Plan("fp32-b3", None).choose(model, "decoder", batch=6).variant == "fp32-b3"  # by name: the runtime checks sizes
    from edgevae.runtime.device.profile import DeviceProfile, FORMAT

    def profile(pick):
        from edgevae.runtime.device.profile import Timing

        choice = {g: {"1": Choice("fp32", 1), "2": Choice(pick, 1), "4": Choice("fp32", 1)} for g in ("encoder", "decoder")}
        timings = {g: {size: (Timing(c.variant, 1, 1.0, 1.0, 1.0, 1),) for size, c in sizes.items()} for g, sizes in choice.items()}
        return DeviceProfile(format=FORMAT, model_key="0" * 64, onnxruntime="x", cpu_model="x", cores=1, choice=choice,
                             timings=timings, default={}, budget_s=1.0, edgevae_version="x")

    tuned = Plan("auto", "auto", profile("fp32-b2"), None)
    assert [tuned.choose(model, "decoder", batch=n).variant for n in (1, 2, 3)] == ["fp32", "fp32-b2", "fp32"]
    measured_base = Plan("auto", "auto", profile("fp32"), None)  # tune found the base faster at 2: it runs
    assert measured_base.choose(model, "decoder", batch=2).variant == "fp32"


def test_load_hashes_the_fixed_shape_siblings_of_what_it_may_run(static_dir, tmp_path):
    copy = shutil.copytree(static_dir, tmp_path / "m")
    flip_byte(copy / "decoder.fp32-b3.onnx")
    VAERuntime.load(copy, variant="int8")  # int8 has no sibling: untouched
    with pytest.raises(ModelDirError, match="decoder.fp32-b3.onnx does not match its sha256"):
        VAERuntime.load(copy, variant="fp32")


def test_goldens_cover_fixed_shapes_in_whole_batches_and_verify_passes(static_dir):
    manifest = contract.load(static_dir).manifest
    x_hat = manifest.golden.outputs["fp32-b3"]["decoder"]["x_hat"]
    assert np.load(static_dir / x_hat.file).shape[0] == 9  # 8 golden latents repeated to 3 calls of 3
    result = run_cli("verify", "--model", static_dir, "--variant", "all")
    assert result.returncode == 0, result.stdout + result.stderr
    checked = {line.split()[1] for line in result.stdout.splitlines()[1:-1]}
    assert {"fp32", "int8", "fp32-b2", "fp32-b3"} == checked


def test_info_says_which_batches_run_a_fixed_shape_variant(static_dir):
    result = run_cli("info", "--model", static_dir, "--variant", "fp32")
    assert result.returncode == 0, result.stderr
    assert "fixed batch 2 of fp32" in result.stdout and "never padded" in result.stdout


@pytest.mark.heavy
def test_export_then_quantize_with_static_batches_and_npu_variants_end_to_end(tmp_path):
    """export --static-batch 2, quantize two NPU variants with --static-batch 1, quantize one again without it: every
    variant gets its siblings (a rebuilt base its siblings rebuilt), every golden verifies, and onnxruntime's checker
    puts both NPU variants' fixed-shape graphs whole on NNAPI, in one partition each."""
    from helpers import make_model, save_test_checkpoint, write_idx_dataset

    checkpoint = save_test_checkpoint(tmp_path / "checkpoint.pt", make_model(seed=1))
    data = write_idx_dataset(tmp_path / "data")
    model_dir = tmp_path / "m"
    assert run_cli("export", checkpoint, "--out", model_dir, "--data-dir", data, "--static-batch", "2").returncode == 0
    quantize = ["quantize", model_dir, "--data-dir", data, "--calibration-images", 64, "--test-images", 64, "--nll-images", 0]
    result = run_cli(*quantize, "--variants", "int8-npu,fp32-npu", "--static-batch", "1")
    assert result.returncode == 0, result.stderr
    before = contract.load(model_dir).manifest
    assert {v: (s.base, s.batch) for v, s in before.static.items()} == {
        "fp32-b2": ("fp32", 2), "fp32-b1": ("fp32", 1), "int8-npu-b1": ("int8-npu", 1), "fp32-npu-b1": ("fp32-npu", 1)}
    inode = lambda variant: (model_dir / f"decoder.{variant}.onnx").stat().st_ino  # noqa: E731  (a rewrite is a new file)
    inodes = {v: inode(v) for v in ("fp32-npu-b1", "int8-npu-b1")}
    assert run_cli(*quantize, "--variants", "fp32-npu").returncode == 0
    after = contract.load(model_dir).manifest
    assert after.static == before.static
    assert inode("fp32-npu-b1") != inodes["fp32-npu-b1"]  # rebuilt with its base
    assert inode("int8-npu-b1") == inodes["int8-npu-b1"]  # its base was not rebuilt: untouched
    verify = run_cli("verify", "--model", model_dir)
    assert verify.returncode == 0 and verify.stdout.strip().endswith(f"all {2 * len(after.variants)} graph x variant "
                                                                     "outputs match their goldens"), verify.stdout
    for variant in ("fp32-npu-b1", "int8-npu-b1"):
        for graph in contract.GRAPH_NAMES:
            nnapi = after.targets.fits[variant][graph]["nnapi"]
            assert (nnapi.taken, nnapi.partitions) == (nnapi.nodes, 1), (variant, graph, nnapi)
