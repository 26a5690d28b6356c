"""export/sensitivity.py and export/mixed.py (`quantize --search`) on a tiny model dir and synthetic IDX data:
groups, kernel attribution, the search's structure (every group measured, fp32 layers really fp32 in the
written graphs, budget met or reported unmet, the time bound) and its numbers."""

import json

import numpy as np
import onnx
import pytest

from edgevae.train.data import DataOverrides
from helpers import make_model_dir, write_idx_dataset

LATENT = 8
BUDGET_DB = 120.0  # above any int8 layer's PSNR, below fp32's float-rounding differences (~150 dB)


def _prepared(tmp_path, graph: str):
    from edgevae.export import sensitivity

    model_dir = make_model_dir(tmp_path / "m", latent_dim=LATENT)
    calibration = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32) if graph == "encoder" else \
        np.random.default_rng(0).standard_normal((8, LATENT)).astype(np.float32)
    return sensitivity.prepare(graph, model_dir / f"{graph}.onnx", calibration=calibration, work=tmp_path)


@pytest.mark.parametrize("graph", ["encoder", "decoder"])
def test_groups_cover_every_compute_node_once_and_never_the_sigmoid(tmp_path, graph):
    from edgevae.export.sensitivity import COMPUTE_OPS

    prepared = _prepared(tmp_path, graph)
    model = onnx.load(prepared.prepared)
    compute = [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]
    grouped = [n for g in prepared.groups for n in g.nodes]
    assert [g.name for g in prepared.groups] == compute  # one group per compute node, in graph order
    assert len(grouped) == len(set(grouped))
    sigmoid = [n.name for n in model.graph.node if n.op_type == "Sigmoid"]
    assert not set(sigmoid) & set(grouped)
    assert set(grouped) | set(sigmoid) == {n.name for n in model.graph.node}  # every other node belongs to a group


def test_excluded_groups_stay_fp32_in_the_built_graph(tmp_path):
    import dataclasses

    from edgevae.export.sensitivity import fp32_compute_nodes, fp32_nodes_of
    from edgevae.export.variants import Int8Settings

    prepared = _prepared(tmp_path, "decoder")
    keep = [prepared.groups[0].name, prepared.groups[-1].name]
    settings = dataclasses.replace(Int8Settings(), fp32_nodes=fp32_nodes_of(list(prepared.groups), keep))
    built = onnx.load(prepared.build(tmp_path / "mixed.onnx", settings))
    assert sorted(fp32_compute_nodes(built)) == sorted(keep)
    all_int8 = onnx.load(prepared.build(tmp_path / "all.onnx", Int8Settings()))
    assert fp32_compute_nodes(all_int8) == []
    with pytest.raises(ValueError, match="no group named 'nope'"):
        fp32_nodes_of(list(prepared.groups), ["nope"])


def test_a_group_kept_fp32_can_run_as_its_original_conv_transpose(tmp_path):
    from edgevae.runtime.inference.sessions import new_session
    from edgevae.export.sensitivity import fp32_compute_nodes, fp32_nodes_of
    from edgevae.export.variants import Int8Settings, prepare_int8

    prepared = _prepared(tmp_path, "decoder")
    assert len(prepared.origins) == 3  # the decoder's ConvTranspose layers (export folds the first into the Gemm)
    group, origin = list(prepared.origins.items())[-1]
    settings = Int8Settings(fp32_nodes=fp32_nodes_of(list(prepared.groups), [group]), keep_conv_transpose=(origin,))
    built = onnx.load(prepared.build(tmp_path / "kept.onnx", settings))
    assert fp32_compute_nodes(built) == [origin]
    assert [n.op_type for n in built.graph.node if n.name == origin] == ["ConvTranspose"]
    # all four put back: the fp32 function is unchanged
    restored = tmp_path / "restored.onnx"
    prepare_int8(prepared.source, restored, graph="decoder", keep_conv_transpose=tuple(prepared.origins.values()))
    z = np.random.default_rng(1).standard_normal((4, LATENT)).astype(np.float32)
    ours, theirs = (new_session(f.read_bytes()).run(None, {"z": z})[0] for f in (restored, prepared.source))
    assert np.abs(ours - theirs).max() < 1e-5
    with pytest.raises(ValueError, match="not a ConvTranspose"):
        prepare_int8(prepared.source, tmp_path / "x.onnx", graph="decoder", keep_conv_transpose=("node_linear",))


def test_kernels_are_attributed_by_the_longest_node_or_tensor_name():
    from edgevae.export.sensitivity import Group, attribute

    groups = [Group("node_conv", "Conv", ("node_conv", "node_relu"), ("conv", "relu")),
              Group("node_conv_1", "Conv", ("node_conv_1",), ("conv_1",))]
    assert attribute("node_conv_token_3", groups) == "node_conv"
    assert attribute("node_conv_1_token_5", groups) == "node_conv_1"  # not node_conv: the longer name wins
    assert attribute("relu_nchwc", groups) == "node_conv"  # a fused kernel named after a group's output
    assert attribute("Transpose_token_12", groups) is None


def test_pareto_front_and_budget():
    from edgevae.export.mixed import badness, meets, pareto_front

    points = [{"name": "fp32", "ms": 10.0, "fp32_ms": 10.0, "nats": 0.0, "psnr_db": None},
              {"name": "int8", "ms": 4.0, "fp32_ms": 10.0, "nats": 0.3, "psnr_db": 36.0},
              # fewer ms than int8, but timed beside a faster fp32 (a quieter moment): relatively slower, and worse
              {"name": "worse", "ms": 3.0, "fp32_ms": 6.0, "nats": 0.4, "psnr_db": 35.0},
              {"name": "mixed", "ms": 6.0, "fp32_ms": 10.0, "nats": 0.1, "psnr_db": 40.0}]
    assert pareto_front(points) == ["fp32", "int8", "mixed"]
    budget = {"nats": 0.2, "psnr_db": 39.0}
    assert [meets(p, budget) for p in points] == [True, False, False, True]
    assert badness(points[3], budget) == pytest.approx(0.5 + 10 ** -0.1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One bounded search on a tiny model: a PSNR budget only a decoder all in fp32 meets (the rewritten fp32
    graph differs from the original by summation order only), so the greedy step must keep decoder groups fp32;
    min_speedup tiny: the machine's timing noise cannot decide the outcome. Timing cut to small batches."""
    from edgevae.export.mixed import SearchConfig
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir

    root = tmp_path_factory.mktemp("search")
    model_dir = make_model_dir(root / "m", latent_dim=LATENT)
    data = write_idx_dataset(root / "data", n_train=64, n_test=16)
    config = QuantizeConfig(variants=("int8",), calibration_images=32, test_images=16, select=True, search=SearchConfig(
        budget_psnr=BUDGET_DB, min_speedup=0.01, budget_s=300, methods=("minmax",), per_channel=(False,), symmetric=(True,),
        speed_batch=8, quick_rounds=1, timing_batches=(1,), retime_rounds=2))
    manifest = quantize_model_dir(model_dir, config, data=DataOverrides(data_dir=data))
    return model_dir, manifest, json.loads((model_dir / "quant-search.json").read_text())


@pytest.mark.heavy
def test_search_measures_every_group_and_keeps_the_chosen_ones_fp32(searched):
    from edgevae.export.sensitivity import COMPUTE_OPS, fp32_compute_nodes

    model_dir, manifest, report = searched
    for graph in ("encoder", "decoder"):  # every compute node of both graphs has a sensitivity row
        prepared_names = [n.name for n in onnx.load(model_dir / f"{graph}.int8.onnx").graph.node if n.op_type in COMPUTE_OPS]
        assert sorted(r["group"] for r in report["sensitivity"] if r["graph"] == graph) == sorted(prepared_names)
    summary = report["summary"]
    assert summary["met"] and "int8-mixed" in manifest.variants
    settings = manifest.quality["int8-mixed"].settings
    for graph in ("encoder", "decoder"):
        written = onnx.load(model_dir / manifest.variants["int8-mixed"][graph].file)
        record = settings["graphs"][graph]
        as_conv_transpose = {g: g.split("/")[0] for g in record["conv_transpose_groups"]}  # the original node's name
        assert sorted(fp32_compute_nodes(written)) == sorted(as_conv_transpose.get(g, g) for g in record["fp32_groups"])
    assert settings["graphs"]["decoder"]["fp32_groups"], "the budget needs decoder layers in fp32"
    psnr = manifest.quality["int8-mixed"].decoder_psnr_db
    assert psnr is None or psnr >= BUDGET_DB  # the budget really is met (None: identical to fp32)
    assert settings["report"]["json"] == "quant-search.json"
    for name in settings["report"].values():
        assert (model_dir / name).stat().st_size > 0
    assert "int8-mixed" in manifest.latency_ms.eligible and "int8" not in manifest.latency_ms.eligible  # --select obeys the budget


@pytest.mark.heavy
def test_search_numbers_are_finite_and_costs_not_negative(searched):
    _, manifest, report = searched
    by_name = {c["name"]: c for c in report["candidates"]}
    assert by_name["fp32"]["nats"] == 0 and by_name["fp32"]["psnr_db"] is None
    fp32_elbo = report["summary"]["budget"]["fp32_neg_elbo"]
    for c in report["candidates"] + report["sensitivity"]:
        assert c["psnr_db"] is None or np.isfinite(c["psnr_db"])
        assert np.isfinite(c["nats"]) and c["nats"] > -0.01 * fp32_elbo  # int8 noise cannot buy likelihood
    assert {c["name"] for c in report["candidates"] if c["on_front"]} == set(report["front"])
    assert all(c["latency_ms"] for c in report["candidates"] if c["on_front"])  # the front is re-timed at every batch
    # the deadline's own verdict is on observable state, not seconds: test_search_out_of_time_or_speed_...


@pytest.mark.heavy
def test_search_out_of_time_or_speed_reports_the_budget_unmet(tmp_path):
    from edgevae.export.mixed import SearchConfig
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir

    model_dir = make_model_dir(tmp_path / "m", latent_dim=LATENT)
    data = write_idx_dataset(tmp_path / "data", n_train=32, n_test=8)
    config = QuantizeConfig(variants=(), calibration_images=16, test_images=8,
                            search=SearchConfig(budget_psnr=200.0, min_speedup=1000.0, budget_s=0.001, speed_batch=8,
                                                quick_rounds=1, timing_batches=(1,), retime_rounds=1))
    manifest = quantize_model_dir(model_dir, config, data=DataOverrides(data_dir=data))
    report = json.loads((model_dir / "quant-search.json").read_text())
    assert "int8-mixed" not in manifest.variants and not report["summary"]["met"]
    assert report["summary"]["timed_out"] and "no candidate met the budget" in report["summary"]["why"]
    assert [c["name"] for c in report["candidates"]] == ["fp32", "int8"]  # nothing built after the deadline


def test_search_config_refuses_bad_values():
    from edgevae.export.mixed import SearchConfig

    with pytest.raises(ValueError, match="--budget-nats -1"):
        SearchConfig(budget_nats=-1)
    with pytest.raises(ValueError, match="'kl'"):
        SearchConfig(methods=("kl",))
