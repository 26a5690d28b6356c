"""Parity of the exported graphs with PyTorch, measured in onnxruntime (as Optimum validates its exports).

Both graphs run at several batch sizes: the encoder on images, the decoder on z ~ N(0, I). The largest
absolute difference per graph, output and batch size goes into the manifest; past TOLERANCE the export
is refused.
"""

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgevae.runtime.contract.manifest import Parity
from edgevae.runtime.inference.sessions import new_session
from edgevae.train.model import VAE

from .graphs import conventions_of, graph_specs, latent_shape_of

PARITY_BATCH_SIZES = (1, 3, 64)
SEED = 0  # z ~ N(0, I), and the stand-in images when no dataset is at hand, come from this numpy seed

# fp32 tolerance. PyTorch (oneDNN) and onnxruntime (MLAS) sum the same products in different orders, so
# outputs differ by accumulated rounding (dot products of length <= 3136, fp32 eps 1.2e-7): we measure
# 2e-7..1.7e-6 on a Fashion-MNIST-trained model. 1e-4 leaves ~60x margin for other CPUs' kernels, yet is 40x
# below one grey level (1/255) of x_hat, and any real export fault (wrong padding, weights, a missing
# sigmoid, a batch-1 specialisation) moves outputs by 1e-2 or more.
TOLERANCE = 1e-4


def stand_in_images(n: int, image_shape: tuple, *, seed: int = SEED) -> np.ndarray:
    """Uniform [0,1) float32 images [n,C,H,W]: the validation input when no dataset is available."""
    return np.random.default_rng(seed).random((n, *image_shape), dtype=np.float32)


def max_abs_diffs(model: VAE, protos: dict[str, onnx.ModelProto], *, images: np.ndarray,
                  batch_sizes=PARITY_BATCH_SIZES) -> dict:
    """{graph: {batch: {output: max |onnxruntime - PyTorch|}}} on images[:b] and z ~ N(0, I) [b, D]."""
    model.eval()
    z_all = np.random.default_rng(SEED).standard_normal((max(batch_sizes), *latent_shape_of(model)), dtype=np.float32)
    low, high = conventions_of(model).pixel_range
    inputs = {"encoder": (low + (high - low) * images).astype(np.float32), "decoder": z_all}  # in the model's range
    modules = {"encoder": model.encoder, "decoder": model.decoder}
    result = {}
    for name, spec in graph_specs(model).items():
        sess, rows = new_session(protos[name].SerializeToString()), {}  # the session options devices run
        for b in batch_sizes:
            feed = np.ascontiguousarray(inputs[name][:b])
            got = sess.run(list(spec.outputs), {spec.inputs[0]: feed})
            with torch.no_grad():
                want = modules[name](torch.from_numpy(feed))
            want = want if isinstance(want, tuple) else (want,)
            rows[str(b)] = {out: _max_abs(g, w) for out, g, w in zip(spec.outputs, got, want)}
        result[name] = rows
    return result


def _max_abs(got: np.ndarray, want) -> float:
    """max |got - want|; inf when the shapes differ (never broadcast)."""
    want = want.numpy()
    return float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")


def other_size(model) -> tuple | None:
    """A fully convolutional model's second image shape for the parity check: one latent pixel taller and two
    wider than image_shape (not square, so swapped axes show); None for a fixed-size model."""
    factor = conventions_of(model).downsampling
    if factor is None:
        return None
    c, h, w = model.config.image_shape
    return (c, h + factor, w + 2 * factor)


def other_size_diffs(model, protos: dict[str, onnx.ModelProto]) -> dict:
    """{graph: {output: max |onnxruntime - PyTorch|}} at batch 2 of other_size(model): the dynamic H and W checked."""
    c, h, w = other_size(model)
    factor = conventions_of(model).downsampling
    latent = latent_shape_of(model)
    images = stand_in_images(2, (c, h, w), seed=SEED + 1)
    z = np.random.default_rng(SEED + 1).standard_normal((2, latent[0], h // factor, w // factor), dtype=np.float32)
    low, high = conventions_of(model).pixel_range
    feeds = {"encoder": (low + (high - low) * images).astype(np.float32), "decoder": z}
    modules = {"encoder": model.encoder, "decoder": model.decoder}
    result = {}
    for name, spec in graph_specs(model).items():
        got = new_session(protos[name].SerializeToString()).run(list(spec.outputs), {spec.inputs[0]: feeds[name]})
        with torch.no_grad():
            want = modules[name](torch.from_numpy(feeds[name]))
        want = want if isinstance(want, tuple) else (want,)
        result[name] = {out: _max_abs(g, t) for out, g, t in zip(spec.outputs, got, want)}
    return result


def check_parity(model: VAE, protos: dict[str, onnx.ModelProto], *, images: np.ndarray | None = None,
                 images_source: str | None = None, tolerance: float = TOLERANCE) -> dict:
    """The manifest's "parity" entry; ValueError naming the graph, batch and output past `tolerance`.

    images: float32 [N>=64,C,H,W] in [0,1] (e.g. test images, described by images_source); None
    uses seeded uniform noise, and the manifest says so.
    """
    need, shape = max(PARITY_BATCH_SIZES), tuple(model.config.image_shape)
    if images is None:
        images, images_source = stand_in_images(need, shape), f"uniform random images (numpy seed {SEED}); no dataset given"
    if images.dtype != np.float32 or images.shape[1:] != shape or len(images) < need:
        raise ValueError(f"validation images must be float32 [>={need},{','.join(map(str, shape))}], "
                         f"got {images.dtype} {list(images.shape)}")
    diffs = max_abs_diffs(model, protos, images=images[:need])
    sizes = {}
    if other_size(model) is not None:
        sizes = {"x".join(map(str, other_size(model))): other_size_diffs(model, protos)}
    rows_of = [(f"at batch {b}", graph, outs) for graph, rows in diffs.items() for b, outs in rows.items()]
    rows_of += [(f"at image shape {shape}", graph, outs) for shape, graphs in sizes.items() for graph, outs in graphs.items()]
    for where, graph, outs in rows_of:
        for out, d in outs.items():
            if not d <= tolerance:  # also catches NaN
                raise ValueError(f"{graph} output {out} {where} differs from PyTorch by {d:.3g} "
                                 f"(tolerance {tolerance:g}); export refused")
    return Parity(
        tolerance=tolerance, metric="max abs difference, onnxruntime CPU (the runtime's session options) vs PyTorch CPU, fp32",
        onnxruntime=ort.__version__, torch=torch.__version__, encoder_inputs=images_source or "caller-supplied images",
        decoder_inputs=f"z ~ N(0, I), numpy default_rng({SEED}).standard_normal", max_abs_diff=diffs, sizes=sizes or None)
