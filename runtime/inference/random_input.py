"""The one random input of a graph, for timing and profiling it (tune, quantize --select and --search, the
benchmarks): what the graph takes, in shape and range, but no data. Goldens, calibration and parity inputs are
not this: each has its own recorded recipe."""

import numpy as np

from ..contract.manifest import GRAPH_NAMES, ModelDir
from .latent import rng_of, standard_normal


def random_input(model: ModelDir, graph: str, batch: int, seed=0, image_hw: tuple | None = None, *,
                 for_api: bool = False) -> np.ndarray:
    """A float32 input of `graph` for a batch of `batch`, shaped as the contract fixes it (model.io_shapes, so a
    latent [C, h, w] follows image_hw = (H, W) on a fully convolutional model; default image_shape's): images
    uniform in the model's pixel_range for the encoder, z ~ N(0, I) (the prior) for the decoder. seed: an int
    or a numpy Generator (drawn from, so several inputs can come from one stream). for_api: images in [0, 1],
    what VAERuntime.encode takes (it maps them to the pixel range itself); latents are the same either way."""
    if graph not in GRAPH_NAMES:
        raise ValueError(f"graph must be one of {', '.join(GRAPH_NAMES)}, got {graph!r}")
    shape, rng = model.io_shapes(graph, batch, image_hw=image_hw)[0], rng_of(seed)
    if graph == "decoder":
        return standard_normal(rng, shape)
    low, high = (0.0, 1.0) if for_api else model.conventions.pixel_range
    return (low + (high - low) * rng.random(shape, dtype=np.float32)).astype(np.float32, copy=False)  # [0, 1): as drawn
