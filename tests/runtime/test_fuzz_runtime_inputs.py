"""Property-based tests (hypothesis) of the runtime's input checks: whatever array (shape, dtype, values)
or count a caller hands VAERuntime, the call either succeeds with finite outputs (images in [0, 1]) or
raises InputError, never another exception; and images are accepted exactly when they are valid."""

import numpy as np
import pytest
from helpers import make_model_dir, need_torch

pytest.importorskip("hypothesis", reason="property-based: needs hypothesis, which the runtime's own install lacks")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from edgevae.runtime import InputError, VAERuntime  # noqa: E402

LATENT = 8
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FLOATS = [np.float16, np.float32, np.float64, np.longdouble, ">f4", ">f8"]
DTYPES = FLOATS * 2 + [np.uint8, np.int32, np.int64, np.bool_, np.complex64]  # floats twice: their values matter


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    need_torch(f"export a latent-{LATENT} model")
    return VAERuntime.load(make_model_dir(tmp_path_factory.mktemp("fuzz") / "model", latent_dim=LATENT))


def shapes(valid_tail: tuple):
    """Mostly the valid shape with a batch of 1-3 (so values get checked too), else an empty batch, one
    side off by one, the batch dimension missing, or any shape."""
    valid = st.integers(1, 3).map(lambda n: (n, *valid_tail))
    off = st.tuples(st.integers(0, 3), st.integers(0, len(valid_tail) - 1), st.sampled_from([-1, 1])).map(
        lambda t: (t[0], *[s + t[2] if i == t[1] else s for i, s in enumerate(valid_tail)]))
    return st.one_of(valid, valid, valid, valid, st.just((0, *valid_tail)), off, st.just(valid_tail),
                     hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))


def as_dtype(value: float, dtype) -> float:
    """value rounded to dtype (1e300 in float16 is inf), so hypothesis can store it without loss."""
    with np.errstate(over="ignore"):
        return float(np.array(value).astype(dtype))


def values(dtype):
    """Elements for dtype: for floats mostly pixels in [0, 1], sometimes anything (NaN, inf, huge, tiny)."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        width = min(np.dtype(dtype).itemsize * 8, 64)
        edges = [0.0, -0.0, 1.0, np.nextafter(1, 2), -1e-45, np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e300]
        return st.one_of(st.floats(0, 1, width=width), st.floats(width=width), st.floats(allow_nan=False, allow_infinity=False, width=width),
                         st.sampled_from(edges).map(lambda v: as_dtype(v, dtype)))
    return hnp.from_dtype(np.dtype(dtype))


@st.composite
def arrays(draw, valid_tail: tuple, shape=None, dtype=None):
    dtype = draw(st.sampled_from(DTYPES)) if dtype is None else dtype
    shape = draw(shapes(valid_tail)) if shape is None else shape
    elements = values(dtype)
    if draw(st.integers(0, 3)) == 0:  # one value everywhere: extremes in every element at once
        return np.full(shape, draw(elements), dtype)
    # fill: most elements share one drawn value, a few differ; keeps 28x28 arrays cheap to generate
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=elements))


def non_arrays():
    return st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=3),
                     st.lists(st.floats(0, 1), max_size=3), st.just([[0.5] * 28] * 28))


def valid_images(x, image_shape) -> bool:
    """The documented contract, written independently of runtime/inference/checks.py."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.shape[1:] != image_shape or x.ndim != 4 or len(x) == 0:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x.astype(np.float32)  # the runtime runs float32; a float64 1e300 becomes inf
    return bool(np.all(np.isfinite(x32)) and np.all((x32 >= 0) & (x32 <= 1)))


@FUZZ
@given(x=st.one_of(arrays((1, 28, 28)), non_arrays()))
def test_encode_accepts_exactly_the_valid_images(rt, x):
    try:
        mu, logvar = rt.encode(x)
    except InputError as err:
        assert not valid_images(x, rt.image_shape), f"valid input refused: {err}"
        assert "\n" not in str(err)
        return
    assert valid_images(x, rt.image_shape)
    assert mu.shape == logvar.shape == (len(x), LATENT) and mu.dtype == np.float32
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(logvar))


@FUZZ
@given(z=st.one_of(arrays((LATENT,)), non_arrays()))
@example(z=np.full((2, LATENT), 3.4e38, np.float32))  # finite, but the graph overflows to NaN: rare to draw
def test_decode_gives_images_in_0_1_or_input_error(rt, z):
    try:
        x_hat = rt.decode(z)
    except InputError as err:
        assert "\n" not in str(err)
        # refusing a small, finite, well-shaped float z would be a bug
        if isinstance(z, np.ndarray) and z.dtype.kind == "f" and z.ndim == 2 and z.shape[1:] == (LATENT,) and len(z):
            with np.errstate(over="ignore", invalid="ignore"):
                small = np.all(np.abs(z.astype(np.float32)) < 1e6)
            assert not small, f"valid latents refused: {err}"
        return
    assert x_hat.shape == (len(z), 1, 28, 28) and x_hat.dtype == np.float32
    assert np.all(np.isfinite(x_hat)) and x_hat.min() >= 0 and x_hat.max() <= 1


@st.composite
def mu_logvar(draw):
    """Mostly a pair of one shape and dtype (so the values get checked, not just the shapes)."""
    if draw(st.integers(0, 4)) == 0:
        return draw(arrays((LATENT,))), draw(arrays((LATENT,)))
    shape, dtype = draw(shapes((LATENT,))), draw(st.sampled_from(DTYPES))
    return draw(arrays((LATENT,), shape, dtype)), draw(arrays((LATENT,), shape, dtype))


@FUZZ
@given(pair=mu_logvar(), seed=st.one_of(st.none(), st.integers(0, 2**63)))
def test_reparameterize_gives_finite_latents_or_input_error(rt, pair, seed):
    mu, logvar = pair
    try:
        z = rt.reparameterize(mu, logvar, seed=seed)
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert z.shape == mu.shape == logvar.shape and z.dtype == np.float32 and np.all(np.isfinite(z))


@FUZZ
@given(n=st.one_of(st.integers(-3, 40), st.floats(-2, 40), st.booleans(), st.none(), st.text(max_size=2),
                   st.just(np.int64(5)), st.just(np.uint8(3))),
       seed=st.one_of(st.none(), st.integers(0, 2**32)))
def test_sample_gives_n_images_or_input_error(rt, n, seed):
    try:
        x = rt.sample(n, seed=seed)
    except InputError:
        assert isinstance(n, (bool, float, str, type(None))) or n < 1
        return
    assert x.shape == (int(n), 1, 28, 28) and np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1
    if seed is not None:
        assert np.array_equal(x, rt.sample(n, seed=seed))


@FUZZ
@given(x_a=arrays((1, 28, 28)), x_b=arrays((28, 28)), steps=st.one_of(st.integers(-2, 12), st.floats(0, 9)))
def test_interpolate_gives_steps_images_or_input_error(rt, x_a, x_b, steps):
    try:
        frames = rt.interpolate(x_a, x_b, steps=steps)
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(steps, int) and steps >= 2
    assert frames.shape == (steps, 1, 28, 28) and np.all(np.isfinite(frames))
    assert frames.min() >= 0 and frames.max() <= 1
