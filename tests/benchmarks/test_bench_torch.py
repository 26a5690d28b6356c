"""`edgevae bench --torch MODULE:FACTORY` / run_bench(torch_decoder=): the user's own PyTorch decoder as the bench's
reference, on a tiny fully convolutional model dir with a [-1, 1] image head and a latent scale and shift (so the
conventions must be applied on the PyTorch side too): factory resolution, refusals, the shape and parity checks, FLOPs
at the manifest's size, the goal without a reference, and one quick bench end to end (heavy)."""

import json
import types

import numpy as np
import pytest
import torch
from torch import nn

from edgevae.benchmarks.candidates import NOT_EDGEVAE, PARITY_TOLERANCE, check_parity, torch_modules
from edgevae.benchmarks.flops import graph_flops
from edgevae.benchmarks.report import _goal_rows
from edgevae.benchmarks.suite import BenchConfig, _goals, run_bench
from edgevae.benchmarks.torch_decoder import TorchDecoder, load_factory, torch_decoder_for
from edgevae.cli import main
from edgevae.runtime.contract.errors import InputError
from edgevae.runtime.contract.manifest import Conventions

# the user's file: an encoder and a decoder of latent [2, 4, 4] <-> image [3, 8, 8], seeded, so that each call
# builds the same weights (the model dir below is exported from them)
USER_FILE = """
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)

    def forward(self, x):
        return tuple(self.conv(x).chunk(2, dim=1))


def encoder(seed=0):
    torch.manual_seed(seed)
    return Encoder().eval()


def decoder(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 8, 1), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(8, 3, 3, 1, 1),
                         nn.Tanh()).eval()


shared = decoder()
not_callable = 3


def raises():
    raise RuntimeError("no weights here")


def not_a_module():
    return {"decoder": None}
"""
CONVENTIONS = Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", latent_scale=0.5, latent_shift=0.1,
                          downsampling=2)
# FLOPs by hand, 2 per multiply-add: decoder Conv 1x1 2->8 on 4x4, Conv 3x3 8->3 on 8x8; encoder Conv 3x3 s2 3->4
DECODER_FLOPS = 2 * (8 * 4 * 4 * 2 + 3 * 8 * 8 * 8 * 9)
ENCODER_FLOPS = 2 * 4 * 4 * 4 * 3 * 9


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_vae.py"
    path.write_text(USER_FILE)
    return path


@pytest.fixture(scope="module")
def tiny_dir(user_file, tmp_path_factory):
    from edgevae.export.custom import export_vae

    encoder, _ = load_factory(f"{user_file}:encoder")
    decoder, _ = load_factory(f"{user_file}:decoder")
    return export_vae(encoder, decoder, tmp_path_factory.mktemp("model") / "tiny", image_shape=(3, 8, 8),
                      latent_shape=(2, 4, 4), conventions=CONVENTIONS)


@pytest.fixture(scope="module")
def tiny_rt(tiny_dir):
    from edgevae.runtime import VAERuntime

    return VAERuntime.load(tiny_dir, variant="fp32", threads=1)


def test_factory_from_a_file_a_module_name_or_a_module_itself(user_file):
    module, label = load_factory(f"{user_file}:decoder")
    assert isinstance(module, nn.Sequential) and label == f"--torch {user_file}:decoder"
    assert isinstance(load_factory(f"{user_file}:shared")[0], nn.Sequential)  # a module, not a factory: taken as is
    module, _ = load_factory("edgevae.benchmarks.any_vae_models:mlp_decoder")
    assert isinstance(module, nn.Module)


@pytest.mark.parametrize("spec, message", [
    ("{file}", "is not MODULE:FACTORY"),
    ("{file}:", "is not MODULE:FACTORY"),
    ("{dir}/missing.py:decoder", "missing.py is not a file"),
    ("no_such_module_edgevae:decoder", "cannot import no_such_module_edgevae: ModuleNotFoundError"),
    ("{dir}/broken.py:decoder", "cannot import {dir}/broken.py: SyntaxError"),
    ("{file}:nothing", "has no nothing"),
    ("{file}:not_callable", "not_callable is a int, not callable"),
    ("{file}:raises", "raises() raised RuntimeError: no weights here"),
    ("{file}:not_a_module", "not_a_module() returned a dict, not a torch.nn.Module"),
])
def test_bad_factories_are_one_line_input_errors_naming_the_spec(user_file, spec, message):
    (user_file.parent / "broken.py").write_text("def decoder(:\n")
    spec, message = (s.format(file=user_file, dir=user_file.parent) for s in (spec, message))
    with pytest.raises(InputError) as err:
        load_factory(spec)
    text = str(err.value)
    assert message in text and "\n" not in text and (spec in text or repr(spec) in text)


class ToDouble(nn.Module):
    def forward(self, x):
        return x.double()


def test_decoder_output_shape_is_checked_against_the_manifest(tiny_rt):
    with pytest.raises(InputError, match=r"^mine returned torch.float32 \[2, 3, 4, 4\] for z \[2, 2, 4, 4\]; the model "
                                         r"dir's decoder returns torch.float32 \[2, 3, 8, 8\]$"):
        torch_decoder_for(tiny_rt, nn.Conv2d(2, 3, 1), label="mine")
    with pytest.raises(InputError, match=r"^mine does not run on z \[2, 2, 4, 4\]: RuntimeError"):
        torch_decoder_for(tiny_rt, nn.Linear(3, 3), label="mine")
    with pytest.raises(InputError, match=r"returned torch.float64 \[2, 3, 8, 8\]"):
        torch_decoder_for(tiny_rt, nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2, 3, 1), ToDouble()), label="mine")
    with pytest.raises(InputError, match="^mine is a function, not a torch.nn.Module$"):
        torch_decoder_for(tiny_rt, lambda z: z, label="mine")


def test_parity_maps_latents_and_head_by_the_model_conventions(tiny_rt, user_file):
    module, label = load_factory(f"{user_file}:decoder")
    decoder = torch_decoder_for(tiny_rt, module, label=label)
    z = np.random.default_rng(3).standard_normal((4, 2, 4, 4), dtype=np.float32)
    with torch.inference_mode():  # by hand: the graph's latent is z / scale + shift, its [-1, 1] image maps to [0, 1]
        raw = module(torch.from_numpy(z / 0.5 + 0.1)).numpy()
        unscaled = module(torch.from_numpy(z)).numpy()
    assert np.abs(tiny_rt.decode(z) - np.clip((raw + 1) / 2, 0, 1)).max() <= 1e-5
    assert np.abs(tiny_rt.decode(z) - np.clip((unscaled + 1) / 2, 0, 1)).max() > 10 * PARITY_TOLERANCE  # scale matters
    parity = check_parity(tiny_rt, {"decoder": decoder}, source=label)
    assert parity["max_abs_diff"]["decoder"] <= 1e-5 and parity["weights"] == label  # float32 rounding only

    other = torch_decoder_for(tiny_rt, load_factory(f"{user_file}:decoder")[0].apply(_reseed), label="other")
    with pytest.raises(InputError, match=r"^PyTorch weights from other differ from the model dir's fp32 decoder"):
        check_parity(tiny_rt, {"decoder": other}, source="other")


def _reseed(layer):
    if isinstance(layer, nn.Conv2d):
        torch.manual_seed(1)
        layer.reset_parameters()


def test_a_whole_vae_is_decoded_through_its_decode_method(tiny_rt, user_file):
    inner = load_factory(f"{user_file}:decoder")[0]

    class WholeVAE(nn.Module):  # diffusers-like: decode returns an object holding .sample; forward is not a decoder
        def __init__(self):
            super().__init__()
            self.inner = inner

        def decode(self, z):
            return types.SimpleNamespace(sample=self.inner(z))

        def forward(self, x):
            raise AssertionError("the VAE's forward must not run")

    decoder = torch_decoder_for(tiny_rt, WholeVAE(), label="vae")
    assert isinstance(decoder, TorchDecoder) and decoder.method == "decode"
    assert check_parity(tiny_rt, {"decoder": decoder}, source="vae")["max_abs_diff"]["decoder"] <= 1e-5


def test_a_flat_decoder_output_is_reshaped_only_for_a_fixed_image_size():
    """export_vae's rule: an MLP's [N, C*H*W] is the image [N,C,H,W]; a fully convolutional model has no flat form."""
    from edgevae.runtime.contract.manifest import CLASSIC

    mlp = nn.Linear(3, 12)
    z = torch.zeros(5, 3)
    assert TorchDecoder(mlp, conventions=CLASSIC, image_shape=(3, 2, 2))(z).shape == (5, 3, 2, 2)
    assert TorchDecoder(mlp, conventions=Conventions(downsampling=2), image_shape=(3, 2, 2))(z).shape == (5, 12)  # left for the shape check


def test_flops_of_a_fully_convolutional_graph_at_the_manifest_size(tiny_dir):
    with pytest.raises(ValueError, match="symbolic dimension"):
        graph_flops(tiny_dir / "decoder.onnx")  # H and W are dynamic: no size, no count
    assert graph_flops(tiny_dir / "decoder.onnx", (2, 4, 4)) == DECODER_FLOPS
    assert graph_flops(tiny_dir / "encoder.onnx", (3, 8, 8)) == ENCODER_FLOPS


def test_without_a_pytorch_reference_the_goal_is_not_measured(tiny_dir):
    from edgevae.runtime.contract.manifest import load

    assert torch_modules(load(tiny_dir), None) == (None, NOT_EDGEVAE)  # not edgevae's network: nothing to rebuild
    rows = [{"graph": "decoder", "batch": 1, "threads": 1, "engine": "runtime", "variant": "fp32",
             "name": "runtime fp32", "vs_torch_eager": None, "roofline_fraction": 0.5}]
    side = {"seconds_median": 0.5, "max_rss_mib_median": 60.0}
    goals = _goals(rows, {"runtime": side, "imports only": side})
    assert goals["decoder_batch1_vs_torch_eager"]["met"] is None
    assert _goal_rows(goals)[0][-1] == "not measured"


def test_cli_refuses_a_bad_torch_reference_in_one_line_before_timing(tiny_dir, user_file, tmp_path, capsys):
    out = tmp_path / "results"
    cases = {f"{user_file}:raises": f"edgevae bench: error: --torch {user_file}:raises: raises() raised RuntimeError",
             f"{user_file}:not_a_module": "not_a_module() returned a dict, not a torch.nn.Module"}
    for spec, message in cases.items():
        assert main(["bench", "--model", str(tiny_dir), "--out", str(out), "--quick", "--torch", spec]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    checkpoint = tmp_path / "c.pt"
    checkpoint.write_bytes(b"")
    assert main(["bench", "--model", str(tiny_dir), "--out", str(out), "--quick", "--torch", f"{user_file}:decoder",
                 "--checkpoint", str(checkpoint)]) == 2
    assert capsys.readouterr().err.strip() == ("edgevae bench: error: --checkpoint and --torch are two PyTorch "
                                               "references: pass one")
    assert not out.exists()


def test_api_refuses_two_references(tiny_dir, user_file, tmp_path):
    config = BenchConfig(model_dir=tiny_dir, out=tmp_path, torch_factory=f"{user_file}:decoder").quickened()
    with pytest.raises(InputError, match="^--torch and torch_decoder are two PyTorch references: pass one$"):
        run_bench(config, torch_decoder=nn.Identity())


@pytest.mark.heavy
def test_quick_bench_against_the_users_decoder(tiny_dir, user_file, tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "--model", str(tiny_dir), "--out", str(out), "--quick", "--torch", f"{user_file}:decoder"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["command"].endswith(f"--torch {user_file}:decoder --quick")
    assert r["config"]["torch_factory"] == f"{user_file}:decoder"
    assert r["torch"]["weights"] == f"--torch {user_file}:decoder" and r["torch"]["graphs"] == ["decoder"]
    assert r["torch"]["parity"]["max_abs_diff"]["decoder"] <= 1e-5
    assert r["model"]["flops_per_image"] == {"encoder": ENCODER_FLOPS, "decoder": DECODER_FLOPS}
    threads = r["config"]["threads"]
    engines = {(x["graph"], x["threads"], x["batch"], x["name"]) for x in r["latency"]}
    assert engines == {(g, t, b, "runtime fp32") for g in ("encoder", "decoder") for t in threads for b in (1, 64)} | {
        ("decoder", t, b, "torch eager") for t in threads for b in (1, 64)}  # the decoder only: no PyTorch encoder
    for row in r["latency"]:
        assert (row["vs_torch_eager"] is None) == (row["graph"] == "encoder")
    goal = r["goals"]["decoder_batch1_vs_torch_eager"]
    assert isinstance(goal["met"], bool) and goal["by_variant"]["fp32"] > 0
    assert "torch eager" in r["overhead"]["stats"]
    assert r["cold_start"]["torch"] == {"skipped": "edgevae's own decoder only, not a --torch module"}
    assert "-m edgevae sample" in r["cold_start"]["runtime"]["command"]  # the model has a prior
    md = (out / "results.md").read_text()
    assert f"PyTorch weights: --torch {user_file}:decoder (max abs diff vs the runtime's fp32" in md
