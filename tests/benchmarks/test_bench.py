"""edgevae.benchmarks: `edgevae bench --quick` end to end on a seeded model dir (fields and figures of
results.json, results.md, plots), FLOP counting, interleaved timing, child-process RSS, and refusals."""

import json
import math
import sys

import pytest
from helpers import make_model, save_test_checkpoint

from edgevae.benchmarks.coldstart import run_process
from edgevae.benchmarks.flops import graph_flops
from edgevae.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STAT_FIELDS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s", "gflops", "roofline_fraction")


def conv_flops(latent_dim: int) -> tuple[int, int]:
    """FLOPs per image of the exported seed graphs, by hand: 2 * (output size) * (weights per output). Export
    folds the last encoder Conv and the mu / logvar Linears into one Gemm from 72 x 7 x 7 features, and the
    decoder's projection and first ConvTranspose into one Gemm to 64 x 7 x 7 (export/fold.py)."""
    encoder = 2 * (32 * 28 * 28 * 1 * 9 + 64 * 14 * 14 * 32 * 9 + 72 * 7 * 7 * 64 * 9 + 72 * 7 * 7 * 2 * latent_dim)
    # ConvTranspose: every input element scatters into Cout * k * k outputs
    decoder = 2 * (latent_dim * 64 * 7 * 7 + 64 * 7 * 7 * 72 * 9 + 72 * 13 * 13 * 32 * 9 + 32 * 27 * 27 * 1 * 16)
    return encoder, decoder


@pytest.fixture(scope="module")
def quick_run(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results"
    code = main(["bench", "--model", str(model_dir), "--out", str(out), "--quick"])
    return code, out


def test_graph_flops_matches_the_layer_shapes(model_dir):
    encoder, decoder = conv_flops(64)
    assert graph_flops(model_dir / "encoder.onnx") == encoder == 12_644_352  # 16,608,256 unfolded
    assert graph_flops(model_dir / "decoder.onnx") == decoder == 12_220_928  # 15,833,600 unfolded


@pytest.mark.heavy
def test_quick_bench_writes_json_markdown_and_plots(quick_run, model_dir):
    code, out = quick_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["cold_start.png", "results.json", "results.md", "throughput.png"]
    for name in ("cold_start.png", "throughput.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
    r = json.loads((out / "results.json").read_text())
    assert r["quick"] is True and r["command"].startswith("edgevae bench --model ") and r["command"].endswith("--quick")
    m = r["machine"]
    assert m["cpu_model"] and m["cpu_count"] >= 1 and 1 <= m["usable_cores"] <= m["cpu_count"]
    assert all(m["versions"][k] for k in ("edgevae", "numpy", "onnxruntime", "onnx", "torch"))
    assert r["model"]["flops_per_image"] == dict(zip(("encoder", "decoder"), conv_flops(64)))
    assert r["model"]["size_bytes"]["fp32"]["decoder"] == (model_dir / "decoder.onnx").stat().st_size
    assert r["torch"]["weights"] == "the fp32 graphs' initializers"
    assert max(r["torch"]["parity"]["max_abs_diff"].values()) < 1e-4  # the very same weights
    assert r["torch"]["compile"]["skipped"] == "skipped (--quick)"

    threads = r["config"]["threads"]
    assert threads[0] == 1 and threads[-1] == m["usable_cores"]
    rows = r["latency"]
    expected = {(g, t, b, n) for g in ("encoder", "decoder") for t in threads for b in (1, 64)
                for n in ("runtime fp32", "torch eager")}
    assert {(x["graph"], x["threads"], x["batch"], x["name"]) for x in rows} == expected
    for row in rows:
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in STAT_FIELDS), row
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["calls"] >= 3
        # throughput comes from the mean latency; GFLOP/s from the p50 and the counted FLOPs
        assert row["throughput_per_s"] == pytest.approx(row["batch"] / row["mean_ms"] * 1e3)
        flops = r["model"]["flops_per_image"][row["graph"]]
        assert row["gflops"] == pytest.approx(flops * row["batch"] / row["p50_ms"] / 1e6)
        eager = next(x for x in rows if x["name"] == "torch eager" and
                     (x["graph"], x["threads"], x["batch"]) == (row["graph"], row["threads"], row["batch"]))
        assert row["vs_torch_eager"] == pytest.approx(row["p50_ms"] / eager["p50_ms"])
    assert all(g > 0 for g in r["sgemm"]["gflops_by_threads"].values())

    oh = r["overhead"]
    assert set(oh["stats"]) == {"runtime.decode", "session.run", "run_with_iobinding", "torch eager"}
    assert oh["python_overhead_ms"] == pytest.approx(oh["stats"]["runtime.decode"]["p50_ms"] - oh["stats"]["session.run"]["p50_ms"])

    profiles = r["profile"]
    assert [(p["graph"], p["batch"]) for p in profiles] == [("encoder", 1), ("encoder", 64), ("decoder", 1), ("decoder", 64)]
    for p in profiles:
        assert p["run_us"] > 0 and 0 <= p["outside_kernels"] < 1 and sum(n["share"] for n in p["nodes"]) <= 1 + 1e-9
    ops = {n["op"] for p in profiles if p["graph"] == "decoder" for n in p["nodes"]}
    assert {"ConvTranspose", "Gemm"} <= ops

    cold = r["cold_start"]
    for side in ("runtime", "torch"):
        assert len(cold[side]["runs"]) == 2 and cold[side]["seconds_median"] > 0
        assert cold[side]["max_rss_mib_median"] > cold["rss_floor_mib"] > 0
    assert "-m edgevae sample" in cold["runtime"]["command"]
    assert cold["torch"]["max_rss_mib_median"] > cold["runtime"]["max_rss_mib_median"]  # torch alone is bigger
    assert cold["imports only"]["max_rss_mib_median"] < cold["runtime"]["max_rss_mib_median"]  # the floor is below

    goals = r["goals"]
    assert goals["decoder_batch1_vs_torch_eager"]["by_variant"]["fp32"] == pytest.approx(next(
        x["vs_torch_eager"] for x in rows if (x["graph"], x["threads"], x["batch"], x["name"]) == ("decoder", 1, 1, "runtime fp32")))
    assert goals["decoder_roofline_fraction"]["batch"] == 64
    assert goals["cold_start"]["seconds"] == cold["runtime"]["seconds_median"]
    assert goals["cold_start"]["imports_floor_s"] == cold["imports only"]["seconds_median"]
    assert all(isinstance(g["met"], bool) for g in goals.values())

    md = (out / "results.md").read_text()
    for heading in ("## Goals", "## Encoder latency", "## Decoder latency", "## Per-call overhead", "## Where the time goes", "## Cold start", "## Model size"):
        assert heading in md
    assert md.count("| runtime fp32 |") == 2 * len(threads) * 2


def test_checkpoint_with_other_weights_is_refused_before_timing(model_dir, tmp_path, capsys):
    checkpoint = save_test_checkpoint(tmp_path / "checkpoint.pt", make_model(seed=1))
    out = tmp_path / "results"
    assert main(["bench", "--model", str(model_dir), "--out", str(out), "--quick", "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgevae bench: error: PyTorch weights from checkpoint")
    assert "differ from the model dir's fp32" in err[0]
    assert not out.exists()


def test_missing_checkpoint_and_model_dir_are_one_line_errors(model_dir, tmp_path, capsys):
    assert main(["bench", "--model", str(model_dir), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "no.pt")]) == 2
    assert capsys.readouterr().err.strip() == f"edgevae bench: error: --checkpoint {tmp_path / 'no.pt'} does not exist or is not a file"
    assert main(["bench", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing" in err[0] and "does not exist" in err[0]


@pytest.mark.heavy
def test_run_process_reads_the_child_peak_rss_not_the_parents():
    big = run_process([sys.executable, "-c", "b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096])"])
    small = run_process([sys.executable, "-c", "pass"])
    assert big["max_rss_mib"] >= 300 and small["max_rss_mib"] < 100 and small["seconds"] > 0
    with pytest.raises(RuntimeError, match="exited with 3"):
        run_process([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_graph_flops_follow_an_attention_reshape_computed_from_the_input_shape(tmp_path):
    """x [N, C, H, W] -> Reshape to [N, C, H*W] with the sizes read from Shape (as diffusers' attention does) ->
    q = x^T x: [N, H*W, C] @ [N, C, H*W], 2 * (H*W) * C * (H*W) FLOPs per image; onnx's own shape inference leaves
    the reshaped sizes symbolic, onnxruntime's resolves them."""
    import onnx
    from onnx import TensorProto, helper

    c, h, w = 4, 3, 5
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "start", "end"], ["nc"]),
             helper.make_node("Concat", ["nc", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Transpose", ["flat"], ["flat_t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["flat_t", "flat"], ["scores"])]
    consts = [helper.make_tensor("start", TensorProto.INT64, [1], [0]), helper.make_tensor("end", TensorProto.INT64, [1], [2]),
              helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1])]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, h, w])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)], consts)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "attention.onnx")
    assert graph_flops(tmp_path / "attention.onnx") == 2 * (h * w) * c * (h * w)
