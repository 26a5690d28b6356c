"""Execution providers as a tune dimension (runtime/inference/providers.py, runtime/device/tune.py, runtime/device/profile.py):
which providers count here, and, with a fake provider list, that tune times them and the runtime runs the pick."""

import dataclasses
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from edgevae.runtime import VAERuntime
from edgevae.runtime.device import tune
from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.device.profile import IN_MODEL_DIR, Choice, Timing, write
from edgevae.runtime.inference import graph_pair
from edgevae.runtime.inference.providers import CPU, takes_nodes, usable_providers

FAKE = "FakeNpuExecutionProvider"


def test_on_this_machine_only_the_cpu_runs_the_graphs():
    """onnxruntime's pip wheel for Linux also lists AzureExecutionProvider (a cloud endpoint client), which takes no
    node of a local graph: tune times the CPU's alone here."""
    data = contract.load().graph_bytes("fp32", "decoder")
    available = ort.get_available_providers()
    assert CPU in available
    assert usable_providers(data) == [CPU]
    assert [p for p in available if p != CPU and takes_nodes(data, p)] == []


def test_usable_providers_keeps_a_provider_that_takes_nodes(monkeypatch):
    monkeypatch.setattr("edgevae.runtime.inference.providers.takes_nodes", lambda data, p: p in (FAKE, CPU))
    assert usable_providers(b"", [FAKE, "AzureExecutionProvider", CPU]) == [FAKE, CPU]


def test_candidates_cover_every_variant_threads_and_provider_and_what_ran_before():
    was = Choice("fp32", None, CPU)
    found = tune.candidates(["fp32", "int8"], [1, 2], providers=[FAKE, CPU], was=was)
    assert len(found) == 2 * 2 * 2 + 1 and found[-1] == was
    assert {c.provider for c in found} == {FAKE, CPU}


def _row(variant, threads, provider, ms):
    return Timing(variant=variant, threads=threads, median_ms=ms, p25_ms=ms, p75_ms=ms, calls=10, provider=provider)


@pytest.mark.parametrize("fake_ms, expected", [(0.5, FAKE), (0.99, CPU)])
def test_pick_takes_the_fastest_provider_unless_what_ran_is_within_the_margin(fake_ms, expected):
    was = Choice("fp32", None, CPU)
    rows = [_row("fp32", None, CPU, 1.0), _row("fp32", 1, FAKE, fake_ms), _row("int8", 1, CPU, 2.0)]
    assert tune.pick(rows, was).provider == expected


@pytest.fixture()
def model_copy(tmp_path):
    return shutil.copytree(contract.DEFAULT_MODEL_DIR, tmp_path / "m")


def test_tune_times_every_provider_it_is_given(monkeypatch, model_copy):
    """A fake provider (sessions of the CPU's behind it: nothing here can run another) gets timed like the CPU's,
    and the profile records the provider of every timing and of the default."""
    real = graph_pair.create_session  # tune opens its sessions through GraphPair

    def create(model, variant, graph, config):
        assert config.providers in ((CPU,), (FAKE, CPU))  # the pick first, the CPU's for the nodes it leaves
        return real(model, variant, graph=graph, config=dataclasses.replace(config, providers=(CPU,)))

    monkeypatch.setattr(graph_pair, "create_session", create)
    profile = tune.tune(contract.load(model_copy), budget_s=0.05, batch_sizes=(1,), progress=False, providers=[FAKE, CPU])
    for graph in contract.GRAPH_NAMES:
        rows = profile.timings[graph]["1"]
        assert {r.provider for r in rows} == {FAKE, CPU}
        assert profile.default[graph]["1"].provider == CPU and profile.choice[graph]["1"].provider in (FAKE, CPU)


def _profile_picking(model, provider):
    """A profile of model (as tune writes it) whose decoder choice at every size runs on `provider`."""
    profile = tune.tune(model, budget_s=0.02, batch_sizes=(1,), progress=False, providers=[CPU])
    choice = dict(profile.choice, decoder={"1": Choice("fp32", 1, provider)})
    timed = dataclasses.replace(profile.timings["decoder"]["1"][0], variant="fp32", threads=1, provider=provider)
    timings = dict(profile.timings, decoder={"1": (*profile.timings["decoder"]["1"], timed)})  # a choice is a timed one
    return dataclasses.replace(profile, choice=choice, timings=timings)


def test_the_runtime_builds_its_session_with_the_profiles_provider(monkeypatch, model_copy):
    model = contract.load(model_copy)
    write(model_copy / IN_MODEL_DIR, _profile_picking(model, FAKE))
    monkeypatch.setattr(ort, "get_available_providers", lambda: [FAKE, CPU])
    import edgevae.runtime.inference.vae as vae

    built, real = [], vae.create_session

    def create(model, variant, graph, config):
        built.append((graph, config.providers))
        return real(model, variant, graph=graph, config=dataclasses.replace(config, providers=(CPU,)))

    monkeypatch.setattr(vae, "create_session", create)
    z = np.zeros((1, model.latent_dim), np.float32)
    VAERuntime.load(model_copy).decode(z)
    assert built == [("decoder", (FAKE, CPU))]
    built.clear()
    VAERuntime.load(model_copy, providers=[CPU]).decode(z)  # providers given: they win over the profile
    assert built == [("decoder", (CPU,))]


def test_a_profile_naming_a_provider_this_onnxruntime_lacks_is_ignored_with_one_warning(capsys, model_copy):
    model = contract.load(model_copy)
    write(model_copy / IN_MODEL_DIR, _profile_picking(model, FAKE))
    rt = VAERuntime.load(model_copy)
    assert rt.plan.profile is None
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"names execution provider {FAKE}" in err
