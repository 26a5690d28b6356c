"""Wrong arguments to the public API (issue 21, item 6) raise InputError naming the argument, never an error
blamed on the model (ModelDirError) or a bare TypeError/ValueError/AttributeError from deep inside numpy or
onnxruntime. One parametrized test walks every argument of every public function with values of the wrong
type (str, float, bool, None, numpy scalars, lists, bytes, ...) and out of range; the shipped model serves as
the model, so no export is needed."""

import shutil

import numpy as np
import pytest

from edgevae.runtime import InputError, ModelDirError, VAERuntime
from edgevae.runtime.device.golden import add_to_model_dir, default_inputs
from edgevae.runtime.image_io.image_files import NpyWriter, check_output_path, grid, read_images, to_uint8, write_images
from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR, load
from edgevae.runtime.site.page import make_server, write_site
from edgevae.runtime.device.tune import tune
from edgevae.runtime.device.verify import verify

# Wrong values by the kind of argument they are wrong for. Each list holds values of every other type, plus
# values of the right type out of range.
COUNTS = ["3", 3.0, True, None, np.float64(3), np.bool_(True), [3], b"3", {}, object(), 0, -1, np.int64(-2)]
ARRAYS = ["x", 0.5, True, None, np.float64(0.5), [[0.5]], b"x", {}, object(), np.zeros((1, 1, 28, 28), np.int64),
          np.zeros((1, 1, 28, 28), bool), np.zeros((1, 1, 28, 28), object), np.zeros((1, 1, 28, 28), np.complex64),
          np.zeros((0, 1, 28, 28), np.float32), np.full((1, 1, 28, 28), np.nan, np.float32)]
LATENTS = ARRAYS[:9] + [np.zeros((1, 64), np.int32), np.zeros((1, 63), np.float32), np.zeros((0, 64), np.float32),
                        np.full((1, 64), np.inf, np.float32)]
SEEDS = ["0", 0.5, True, np.float64(0), [0], b"0", {}, object(), -1, np.int64(-1)]
PATHS = [3, 1.5, True, np.int64(3), [".", "x"], b"/tmp/x", {}, object(), "", "a\0b"]
VARIANTS = [8, 1.5, True, np.float64(1), ["fp32"], b"fp32", {}, object()]
THREADS = ["2", 2.0, True, np.float64(2), [2], b"2", {}, object(), 0, -1, 10**9]  # None means onnxruntime's default


def _not(values, *valid):
    return [v for v in values if not any(v is x for x in valid)]


@pytest.fixture(scope="module")
def rt():
    return VAERuntime.load(variant="fp32", threads=1)


@pytest.fixture(scope="module")
def model():
    return load(DEFAULT_MODEL_DIR)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A copy of the shipped model (golden.add_to_model_dir would write into it) and a folder for outputs."""
    root = tmp_path_factory.mktemp("api")
    return shutil.copytree(DEFAULT_MODEL_DIR, root / "model"), root


X = np.zeros((2, 1, 28, 28), np.float32)
Z = np.zeros((2, 64), np.float32)

# (argument, the wrong values, a call that passes the wrong value as that argument and valid values elsewhere)
SURFACE = [
    ("model_dir", PATHS, lambda v, rt, m, s: VAERuntime.load(v)),
    ("variant", VARIANTS, lambda v, rt, m, s: VAERuntime.load(variant=v)),
    ("threads", THREADS, lambda v, rt, m, s: VAERuntime.load(threads=v)),
    ("providers", ["CPUExecutionProvider", [3], [], ["NoSuchProvider"], [b"CPU"], 3, {"CPUExecutionProvider"}],
     lambda v, rt, m, s: VAERuntime.load(providers=v)),
    ("timeout_s", ["1", True, 0, -1.0, float("nan"), [1.0], b"1", {}], lambda v, rt, m, s: VAERuntime.load(timeout_s=v)),
    ("spinning", ["yes", 1, None, 1.5, [True], b"1"], lambda v, rt, m, s: VAERuntime.load(spinning=v)),
    ("trust", [3, b"key.pem", "", "/nonexistent/key.pem", ["key.pem"]], lambda v, rt, m, s: VAERuntime.load(trust=v)),
    ("x", ARRAYS, lambda v, rt, m, s: rt.encode(v)),
    ("z", LATENTS, lambda v, rt, m, s: rt.decode(v)),
    ("mu", LATENTS, lambda v, rt, m, s: rt.reparameterize(v, Z)),
    ("logvar", LATENTS, lambda v, rt, m, s: rt.reparameterize(Z, v)),
    ("seed", SEEDS, lambda v, rt, m, s: rt.reparameterize(Z, Z, seed=v)),
    ("n", COUNTS, lambda v, rt, m, s: rt.sample(v)),
    ("seed", SEEDS, lambda v, rt, m, s: rt.sample(2, seed=v)),
    ("n", COUNTS, lambda v, rt, m, s: next(rt.iter_samples(v))),
    ("seed", SEEDS, lambda v, rt, m, s: next(rt.iter_samples(2, seed=v))),
    ("x", ARRAYS, lambda v, rt, m, s: rt.reconstruct(v)),
    ("seed", SEEDS, lambda v, rt, m, s: rt.reconstruct(X, seed=v)),
    ("x_a", ARRAYS, lambda v, rt, m, s: rt.interpolate(v, X[0])),
    ("x_b", ARRAYS, lambda v, rt, m, s: rt.interpolate(X[0], v)),
    ("steps", COUNTS + [1], lambda v, rt, m, s: rt.interpolate(X[0], X[1], steps=v)),
    ("x_a", ARRAYS, lambda v, rt, m, s: next(rt.iter_interpolate(v, X[0]))),
    ("steps", COUNTS + [1], lambda v, rt, m, s: next(rt.iter_interpolate(X[0], X[1], steps=v))),
    ("model", PATHS + [None], lambda v, rt, m, s: verify(v, "fp32")),
    ("variant", VARIANTS + [None], lambda v, rt, m, s: verify(m, v)),
    ("threads", THREADS, lambda v, rt, m, s: verify(m, "fp32", threads=v)),  # the example: threads="2"
    ("model", PATHS + [None], lambda v, rt, m, s: tune(v, 0.1)),
    ("budget_s", ["1", True, None, [1.0], b"1", 0, -1.0, float("nan"), float("inf"), 1e9],
     lambda v, rt, m, s: tune(m, v)),
    ("batch_sizes", ["1", 1, 1.5, True, None, [], [0], [1.5], ["1"], [True], [10**9], b"\x01"],
     lambda v, rt, m, s: tune(m, 0.1, batch_sizes=v)),
    ("progress", ["yes", 1, None, 1.5, [True]], lambda v, rt, m, s: tune(m, 0.1, progress=v)),
    ("model_dir", PATHS, lambda v, rt, m, s: add_to_model_dir(v)),
    ("images", _not(ARRAYS, None), lambda v, rt, m, s: add_to_model_dir(s[0], images=v)),
    ("source", [3, None, b"x", ["x"], True], lambda v, rt, m, s: add_to_model_dir(s[0], source=v)),
    ("images", _not(ARRAYS, None), lambda v, rt, m, s: default_inputs(m, v)),
    ("path", _not(PATHS, ""), lambda v, rt, m, s: read_images(v)),
    ("size", ["28x28", 28, 28.0, (28,), (28, 28, 1), (28, "28"), (0, 28), (28.0, 28.0), [True, 28], b"ab"],
     lambda v, rt, m, s: read_images(s[1] / "in.npy", size=v)),
    ("count", _not(COUNTS, None), lambda v, rt, m, s: read_images(s[1] / "in.npy", count=v)),
    ("channels", _not(COUNTS, None), lambda v, rt, m, s: read_images(s[1] / "in.npy", channels=v)),
    ("max_bytes", _not(COUNTS, None), lambda v, rt, m, s: read_images(s[1] / "in.npy", max_bytes=v)),
    ("path", PATHS, lambda v, rt, m, s: check_output_path(v)),
    ("path", PATHS, lambda v, rt, m, s: write_images(v, X)),
    ("images", ARRAYS + [np.zeros((2, 28, 28), np.float32)], lambda v, rt, m, s: write_images(s[1] / "o.png", v)),
    ("columns", _not(COUNTS, None), lambda v, rt, m, s: write_images(s[1] / "o.png", X, columns=v)),
    ("images", ARRAYS, lambda v, rt, m, s: grid(v)),
    ("columns", _not(COUNTS, None), lambda v, rt, m, s: grid(X, columns=v)),
    ("images", ARRAYS[:9], lambda v, rt, m, s: to_uint8(v)),
    ("path", PATHS, lambda v, rt, m, s: NpyWriter(v, (2, 1, 28, 28))),
    ("shape", ["2", 2, None, (2, -1), (2, "1"), (2.0, 1), [True], b"\x02"], lambda v, rt, m, s: NpyWriter(s[1] / "o.npy", v)),
    ("dtype", ["float99", 3.5, object(), "O", np.int8], lambda v, rt, m, s: NpyWriter(s[1] / "o.npy", (2, 1, 28, 28), dtype=v)),
    ("out", PATHS, lambda v, rt, m, s: write_site(v)),
    ("model_dir", PATHS, lambda v, rt, m, s: write_site(s[1] / "site", v)),
    ("ort_web_dir", PATHS, lambda v, rt, m, s: write_site(s[1] / "site", None, ort_web_dir=v)),
    ("site", PATHS + [None], lambda v, rt, m, s: make_server(v, 0)),
    ("port", COUNTS[:-3] + [-1, 65536], lambda v, rt, m, s: make_server(s[1], v)),
    ("host", [127, None, b"127.0.0.1", ["127.0.0.1"]], lambda v, rt, m, s: make_server(s[1], 0, host=v)),
]
def _case(name: str, value, call):
    """One pytest case; a value given as pytest.param keeps its marks."""
    marks = ()
    if isinstance(value, type(pytest.param(0))):
        (value,), marks = value.values, value.marks
    shown = f"array{list(value.shape)}:{value.dtype}" if isinstance(value, np.ndarray) else repr(value)[:24]
    return pytest.param(name, value, call, marks=marks, id=f"{call.__code__.co_firstlineno}:{name}={shown}")


CASES = [_case(name, value, call) for name, values, call in SURFACE for value in values]


@pytest.mark.parametrize("name, value, call", CASES)
def test_a_wrong_argument_is_an_input_error_naming_it(rt, model, scratch, name, value, call):
    model_copy, folder = scratch
    np.save(folder / "in.npy", np.zeros((3, 28, 28), np.float32))
    (folder / "index.html").touch()
    (folder / "model").mkdir(exist_ok=True)
    (folder / "model" / "manifest.json").touch()
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(InputError) as info:
        call(value, rt, model, (model_copy, folder))
    assert name.split("[")[0] in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == before  # refused before anything was written


def test_the_surface_covers_every_argument_of_the_public_functions():
    """A new argument (or function) must be added to SURFACE: the walk above is over the whole public API."""
    import inspect

    functions = [VAERuntime.load, VAERuntime.encode, VAERuntime.decode, VAERuntime.reparameterize, VAERuntime.sample,
                 VAERuntime.iter_samples, VAERuntime.reconstruct, VAERuntime.interpolate, VAERuntime.iter_interpolate,
                 verify, tune, add_to_model_dir, default_inputs, read_images, check_output_path, write_images, grid,
                 to_uint8, NpyWriter, write_site, make_server]
    covered = {name for name, _, _ in SURFACE}
    for function in functions:
        for arg in inspect.signature(function).parameters:
            assert arg in covered | {"self"} or (function is default_inputs and arg == "model"), \
                (function.__qualname__, arg)


def test_valid_odd_types_are_accepted(rt, model, scratch):
    """What is right stays accepted: numpy integers for counts, float64 and float16 arrays, a Path or str."""
    assert rt.sample(np.int64(2), seed=np.uint8(3)).shape == (2, 1, 28, 28)
    assert np.array_equal(rt.decode(Z.astype(np.float64)), rt.decode(Z))
    assert rt.interpolate(X[0].astype(np.float16), X[1], steps=np.int32(3)).shape == (3, 1, 28, 28)
    assert read_images(str(scratch[1] / "in.npy"), size=np.array([28, 28]), count=np.int64(1)).shape == (1, 1, 28, 28)
    assert read_images(scratch[1] / "in.npy", size=None, channels=None).shape == (3, 1, 28, 28)  # as the file declares
    assert [c.passed for c in verify(model, "fp32", threads=np.int64(1))] == [True, True]
    with pytest.raises(ModelDirError, match="has no variant"):  # a string naming no variant: the dir lacks it
        verify(model, "int9")
