"""The runtime's commands in this process (edgevae.cli.main), on the shipped model, and the platform facts
`edgevae info` reports (torch-free: see conftest.py). In-process, because under QEMU user-mode emulation
a child Python cannot be started without binfmt_misc; CI's aarch64 lane runs the real commands itself."""

import platform

import numpy as np
import onnxruntime as ort
import pytest

from edgevae.cli import main
from edgevae.runtime import VAERuntime
from edgevae.runtime.inference.checks import usable_cores
from edgevae.runtime.image_io.image_files import grid
from edgevae.runtime.device.platform_facts import facts, lines
from edgevae.runtime.image_io.png import decode_png


def test_info_reports_the_model_and_what_ran_it(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "sha256 ok" in out and "goldens" in out
    f = facts()
    for line in lines(f):
        assert line in out
    assert f"machine       {platform.machine()}," in out
    assert f"onnxruntime   {ort.__version__} (" in out


def test_platform_facts_are_this_process_s():
    f = facts()
    assert f.machine == platform.machine() and f.cores == usable_cores()
    assert f.onnxruntime == ort.__version__ and f.numpy == np.__version__
    assert f.onnxruntime_build == ort.get_build_info().removeprefix("ORT Build Info: ")
    assert "CPUExecutionProvider" in f.providers
    if f.machine == "aarch64" and platform.system() == "Linux":
        assert "asimd" in f.features  # every aarch64 Linux CPU has Advanced SIMD: the hwcap read works


def test_verify_passes_every_graph_and_variant_on_this_machine(shipped, capsys):
    assert main(["verify", "--variant", "all"]) == 0
    rows = capsys.readouterr().out.rstrip().splitlines()
    checked = {tuple(row.split()[:2]) for row in rows[1:-1] if row.split()[-1] == "yes"}
    assert checked == {(g, v) for g in ("encoder", "decoder") for v in shipped.manifest.variants}
    assert rows[-1].startswith("ok:")


def test_sample_png_holds_the_api_s_pixels(tmp_path):
    assert main(["sample", "--n", "16", "--seed", "5", "--out", str(tmp_path / "s.png")]) == 0
    pixels = decode_png((tmp_path / "s.png").read_bytes())  # edgevae's own decoder: no Pillow needed
    assert np.array_equal(pixels, grid(VAERuntime.load().sample(16, seed=5)))


@pytest.mark.parametrize("argv, message", [
    (["sample", "--n", "0", "--out", "{tmp}/s.png"], "--n"),
    (["sample", "--n", "4", "--out", "{tmp}/s.txt"], ".txt"),
    (["reconstruct", "--input", "{tmp}/missing.npy", "--out", "{tmp}/r.png"], "missing.npy"),
    (["verify", "--variant", "no-such-variant"], "no-such-variant"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert list(tmp_path.iterdir()) == []
